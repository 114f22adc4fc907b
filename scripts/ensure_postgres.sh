#!/usr/bin/env bash
# The tests start a private PostgreSQL server (tests/helpers.py) to check --storage
# postgresql://...; they need the server binaries. Installs Debian's postgresql when missing.
exec bash "$(dirname "$0")/ensure_apt_package.sh" postgresql \
  'ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${AUTOPRUNE_TEST_POSTGRES:-}" ]' \
  "PostgreSQL server binaries not found: install Debian's 'postgresql' or set AUTOPRUNE_TEST_POSTGRES=postgresql://user@host/db for the storage tests."
