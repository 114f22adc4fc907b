#!/usr/bin/env bash
# The report test opens report.html in a real headless browser; it needs Chromium.
# Installs Debian's chromium when missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${AUTOPRUNE_CHROMIUM:-}" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing Chromium (Debian package chromium) for the browser test of report.html..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "Chromium not found: install Debian's 'chromium' or set AUTOPRUNE_CHROMIUM=/path/to/it" \
     "for the browser test of report.html." >&2
exit 1
