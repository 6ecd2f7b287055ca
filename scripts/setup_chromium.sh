#!/usr/bin/env bash
# Chromium for the browser tests (tests/e2e/test_airlock_browser.py), only when asked:
#   SDE_SETUP_CHROMIUM=1 scripts/setup_chromium.sh
# Uses Debian's chromium package at /usr/bin/chromium; Playwright drives it through
# executable_path. Playwright's own browser download (`playwright install`) is never used.
set -euo pipefail

CHROMIUM="/usr/bin/chromium"
say() { printf '[setup] %s\n' "$*" >&2; }

if [ "${SDE_SETUP_CHROMIUM:-0}" != "1" ]; then
    exit 0
fi
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian's chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
    [ -x "$CHROMIUM" ] || { say "chromium was installed but $CHROMIUM is missing"; exit 1; }
else
    say "the browser tests need Chromium at $CHROMIUM, and installing it needs root:"
    say "  sudo apt-get install -y --no-install-recommends chromium"
    say "(or run without SDE_SETUP_CHROMIUM=1 and leave out the tests marked 'browser')"
    exit 1
fi
