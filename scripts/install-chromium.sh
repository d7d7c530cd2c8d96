#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser test (tests/test_browser.py),
# only when no Chromium is on PATH yet. Idempotent; needs root (or sudo) and apt-get.
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "install-chromium: $(command -v "$name") is already installed ($("$name" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install Chromium yourself or set CHROMIUM=/path/to/chrome" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-chromium: apt-get needs root; rerun as root or install sudo" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "install-chromium: installed $(command -v chromium) ($(chromium --version 2>/dev/null || true))"
