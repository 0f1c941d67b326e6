#!/bin/sh
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (Playwright is
# always launched with executable_path=/usr/bin/chromium; `playwright install` cannot download
# a browser here). Installs it with apt when running as root; otherwise says what to do.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: installing chromium with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    [ -x /usr/bin/chromium ] && exit 0
fi
echo "ensure_chromium: /usr/bin/chromium is missing - run 'sudo apt-get install -y chromium'" \
     "(or this script as root)" >&2
exit 1
