#!/usr/bin/env bash
# Make sure Fashion-MNIST is on this machine: Debian's package dataset-fashion-mnist, or a
# directory named by AUTOPRUNE_DATA. Installs the package when apt is available.
set -euo pipefail
DEB_DIR=/usr/share/datasets/fashion-mnist
have() { [ -f "$1/train-images-idx3-ubyte.gz" ] && [ -f "$1/t10k-labels-idx1-ubyte.gz" ]; }
if [ -n "${AUTOPRUNE_DATA:-}" ] && have "$AUTOPRUNE_DATA"; then exit 0; fi
if have "$DEB_DIR"; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  have "$DEB_DIR" && exit 0
fi
cat >&2 <<MSG
Fashion-MNIST not found in $DEB_DIR nor in \$AUTOPRUNE_DATA.
Install it with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or put the four
idx .gz files (train-images-idx3-ubyte.gz, ...) in a directory and export AUTOPRUNE_DATA=that
directory. When online, autoprune can also download it with torchvision.
MSG
exit 1
