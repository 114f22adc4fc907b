#!/usr/bin/env bash
# The tests start a private PostgreSQL server (tests/conftest.py) to check --storage
# postgresql://...; they need the server binaries. Installs Debian's postgresql when missing.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${AUTOPRUNE_TEST_POSTGRES:-}" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing PostgreSQL (Debian package postgresql) for the storage tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
fi
echo "PostgreSQL server binaries not found: install Debian's 'postgresql' or set" \
     "AUTOPRUNE_TEST_POSTGRES=postgresql://user@host/db for the storage tests." >&2
exit 1
