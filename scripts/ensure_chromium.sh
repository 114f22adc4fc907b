#!/usr/bin/env bash
# The report test opens report.html in a real headless browser; it needs Chromium.
# Installs Debian's chromium when missing.
exec bash "$(dirname "$0")/ensure_apt_package.sh" chromium \
  'command -v chromium >/dev/null 2>&1 || [ -n "${AUTOPRUNE_CHROMIUM:-}" ]' \
  "Chromium not found: install Debian's 'chromium' or set AUTOPRUNE_CHROMIUM=/path/to/it for the browser test of report.html."
