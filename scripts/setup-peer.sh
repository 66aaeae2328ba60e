#!/usr/bin/env bash
# Provision the PyTorch peer that `make bench` measures distill's trainer
# against (../shared/peers/torch_kd_train.py): Debian's python3-torch, and a
# tuned BLAS for it, as ../shared/peers/README.md describes: the
# libopenblas0-openmp .deb unpacked into .cache/openblas (the system BLAS is
# left alone). Prints the LD_LIBRARY_PATH to use. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup-peer: installing python3-torch python3-numpy (Debian) ..." >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-numpy >&2
  else
    echo "setup-peer: the PyTorch peer needs Debian's python3-torch and python3-numpy (apt-get install python3-torch python3-numpy)" >&2
    exit 1
  fi
fi
dir="$root/.cache/openblas"
lib="$dir/usr/lib/x86_64-linux-gnu/openblas-openmp"
if [ ! -f "$lib/libblas.so.3" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download libopenblas0-openmp >&2)
  dpkg -x "$tmp"/libopenblas0-openmp_*.deb "$dir"
fi
[ -f "$lib/libblas.so.3" ] || { echo "setup-peer: no libblas.so.3 in $lib" >&2; exit 1; }
echo "$lib"
