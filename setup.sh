#!/usr/bin/env bash
# Set up unlearnkit in ./.venv:  ./setup.sh        (library + CLI)
#                                ./setup.sh --dev  (also the test tools)
# Installs the Debian package dataset-fashion-mnist when apt is available and the data is missing.
# Torch is pinned by constraints.txt (the CPU build); set UNLEARNKIT_FREE_TORCH=1 to let pip choose.
set -euo pipefail
cd "$(dirname "$0")"

extras=""
case "${1:-}" in
  --dev) extras="[dev]" ;;
  "") ;;
  *) echo "usage: ./setup.sh [--dev]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
constraints=(-c constraints.txt)
[ -n "${UNLEARNKIT_FREE_TORCH:-}" ] && constraints=()
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -e ".${extras}"

debian_fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ -z "${UNLEARNKIT_DATA:-}" ] && [ ! -f "$debian_fmnist" ] && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
    || echo "setup: could not install dataset-fashion-mnist; see README 'Data' to point unlearnkit at the files" >&2
fi
echo "setup: done (.venv/bin/unlearnkit)" >&2
