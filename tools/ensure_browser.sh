#!/usr/bin/env bash
# Install what the browser test of the book (tests/browser) needs, when it is missing: Chromium, from
# the system's packages (Debian's `chromium`, with fonts for the screenshots). MathJax is not needed:
# the book ships its own copy (_static/mathjax), and the test refuses every request beyond the book.
#
# Usage: tools/ensure_browser.sh [VENDOR_DIR]      (default: _build/vendor; kept for callers, unused)
# Prints CHROMIUM=<path> on success.
# Exit status 3: nothing usable can be installed here (not root and no sudo, no apt-get); the
# test then skips with this script's message, except on CI (CI=true), where it fails.
# Set CHROMIUM=/path/to/chromium to use another Chromium or Chrome.
set -euo pipefail

UNAVAILABLE=3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="${1:-$ROOT/_build/vendor}"

unavailable() {
    echo "browser test unavailable: $*" >&2
    exit "$UNAVAILABLE"
}

# Run a command as root: directly, or through sudo when it needs no password.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 100
    fi
}

# apt_install WHAT PACKAGE...: install Debian packages, or explain that WHAT cannot be had here.
apt_install() {
    local what="$1"
    shift
    command -v apt-get >/dev/null || unavailable "no $what here, and no apt-get to install it ($*)"
    echo "installing $* with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 \
        || unavailable "could not install $* with apt-get for $what (root or password-less sudo is needed)"
}

find_chromium() {
    if [ -n "${CHROMIUM:-}" ]; then
        [ -x "$CHROMIUM" ] || unavailable "CHROMIUM=$CHROMIUM is not an executable"
        echo "$CHROMIUM"
        return
    fi
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if path="$(command -v "$name")" && "$path" --version >/dev/null 2>&1; then
            echo "$path"
            return
        fi
    done
}

chromium="$(find_chromium)"
if [ -z "$chromium" ]; then
    apt_install "Chromium (chromium, chromium-browser, google-chrome; or set CHROMIUM=/path)" \
        chromium fonts-dejavu-core fonts-liberation
    chromium="$(find_chromium)"
    [ -n "$chromium" ] || unavailable "chromium was installed but does not run"
fi

echo "CHROMIUM=$chromium"
echo "$("$chromium" --version 2>/dev/null)" >&2
