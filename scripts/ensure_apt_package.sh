#!/usr/bin/env bash
# ensure_apt_package.sh PACKAGE CHECK HINT: exit 0 when the shell test CHECK passes; else, as
# root with apt, install Debian's PACKAGE and check again; else print HINT and exit 1.
set -euo pipefail
package=$1 check=$2 hint=$3
if eval "$check"; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing Debian's $package..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$package" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$package" >/dev/null 2>&1; } \
    || true
  if eval "$check"; then
    exit 0
  fi
fi
echo "$hint" >&2
exit 1
