#!/usr/bin/env bash
# Run every example notebook under nbval against a fresh embedded nats-server.
#
#   tests/run_nbval.sh [extra pytest args]
#
# Starts `natsbook server` in the background (JetStream + monitoring, free ports), exports
# NATS_URL and NATSBOOK_MONITOR_URL for the kernels, runs pytest --nbval on notebooks/, then
# stops the server by its own PID. Exits with pytest's status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
python="${PYTHON:-python}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/natsbook-nbval.XXXXXX")"
"$python" -m natsbook.lab.cli server --quiet --ready-file "$tmp/ready.json" \
    </dev/null >"$tmp/server.log" 2>&1 &
server_pid=$!

cleanup() {
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

for _ in $(seq 300); do
    [ -f "$tmp/ready.json" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run_nbval: natsbook server failed to start:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ ! -f "$tmp/ready.json" ]; then
    echo "run_nbval: natsbook server not ready after 30 s:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

read_field() { "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/ready.json" "$1"; }
NATS_URL="$(read_field url)"
NATSBOOK_MONITOR_URL="$(read_field monitor_url)"
export NATS_URL NATSBOOK_MONITOR_URL
echo "run_nbval: NATS_URL=$NATS_URL NATSBOOK_MONITOR_URL=$NATSBOOK_MONITOR_URL"

set +e
# The notebooks clean up after themselves only when asked (Run All leaves what they show live).
NATSBOOK_CLEANUP=1 "$python" -m pytest --nbval --nbval-current-env \
    --nbval-sanitize-with tests/nbval_sanitize.cfg \
    -p no:cacheprovider notebooks/ "$@"
status=$?
set -e
exit "$status"
