#!/usr/bin/env bash
# Install what the browser test of the book (tests/browser) needs, when it is missing:
#   - Chromium, from the system's packages (Debian's `chromium`, with fonts for the screenshots);
#   - MathJax, pinned, from the npm registry, into a cache folder: the book loads MathJax from a CDN,
#     which the test answers from this copy (the test's machine has no network beyond the registries).
#
# Usage: tools/ensure_browser.sh [VENDOR_DIR]      (default: _build/vendor)
# Prints CHROMIUM=<path> and MATHJAX=<folder holding es5/tex-mml-chtml.js> on success.
# Exit status 3: nothing usable can be installed here (not root and no sudo, no apt-get, no npm); the
# test then skips with this script's message, except on CI (CI=true), where it fails.
# Set CHROMIUM=/path/to/chromium to use another Chromium or Chrome.
set -euo pipefail

MATHJAX_VERSION=3.2.2
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

mathjax_prefix="$VENDOR/mathjax-$MATHJAX_VERSION"
mathjax="$mathjax_prefix/node_modules/mathjax"
if [ ! -f "$mathjax/es5/tex-mml-chtml.js" ]; then
    command -v npm >/dev/null || apt_install "npm, to install MathJax" npm
    mkdir -p "$mathjax_prefix"
    echo "installing mathjax@$MATHJAX_VERSION from the npm registry into $mathjax_prefix" >&2
    npm install --prefix "$mathjax_prefix" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error "mathjax@$MATHJAX_VERSION" >&2 \
        || unavailable "could not install mathjax@$MATHJAX_VERSION from the npm registry"
    [ -f "$mathjax/es5/tex-mml-chtml.js" ] || unavailable "mathjax@$MATHJAX_VERSION has no es5/tex-mml-chtml.js"
fi

echo "CHROMIUM=$chromium"
echo "MATHJAX=$mathjax"
echo "$("$chromium" --version 2>/dev/null), MathJax $MATHJAX_VERSION" >&2
