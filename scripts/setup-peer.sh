#!/usr/bin/env bash
# Provision the fair PyTorch peer that `make bench` measures distill's
# trainers against (../shared/peers/torch_kd_train.py and
# torch_seq_kd_train.py), as ../shared/peers/README.md describes it:
# Debian's python3-torch, the tuned BLAS (the libopenblas0-openmp .deb
# unpacked into .cache/openblas) and tcmalloc (the libtcmalloc-minimal4 .deb
# unpacked into .cache/tcmalloc, to be preloaded: glibc malloc maps and
# unmaps the peer's large activation tensors every step, a third of the
# transformer peer's time). The system is left alone. Idempotent.
#
# Prints, one per line, what bench.sh needs:
#   PEER_BLAS_DIR=<dir for LD_LIBRARY_PATH>
#   PEER_TCMALLOC=<libtcmalloc_minimal.so.4 for LD_PRELOAD>
#   PEER_TCMALLOC_VERSION=<its Debian version>
#
# tcmalloc is pinned to the version the peer README measured,
# PEER_TCMALLOC_VERSION (2.10-1, Debian 12), and on amd64 its .deb to
# PEER_TCMALLOC_SHA256 (empty: not checked), so every run preloads the
# same bytes; set both to move to another version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "setup-peer: $*" >&2; exit 1; }
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup-peer: installing python3-torch python3-numpy (Debian) ..." >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-numpy >&2
  else
    die "the PyTorch peer needs Debian's python3-torch and python3-numpy (apt-get install python3-torch python3-numpy)"
  fi
fi
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "apt-get and dpkg are needed to fetch the peer's OpenBLAS and tcmalloc (Debian or Ubuntu)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- OpenBLAS (OpenMP build)
dir="$root/.cache/openblas"
lib="$dir/usr/lib/x86_64-linux-gnu/openblas-openmp"
if [ ! -f "$lib/libblas.so.3" ]; then
  mkdir -p "$dir"
  (cd "$tmp" && apt-get download libopenblas0-openmp >&2)
  dpkg -x "$tmp"/libopenblas0-openmp_*.deb "$dir"
fi
[ -f "$lib/libblas.so.3" ] || die "no libblas.so.3 in $lib"

# ---- tcmalloc, pinned; unpacked next to its final place, then renamed in
tc_ver=${PEER_TCMALLOC_VERSION:-2.10-1}
tc_sha=${PEER_TCMALLOC_SHA256-464aa2e804b0d48300ad71edfe525599deed8765db4af7a8d9de60326dc8e4c7}
[ "$(dpkg --print-architecture)" = amd64 ] || tc_sha=""
tc_dir="$root/.cache/tcmalloc/$tc_ver"
if [ ! -f "$tc_dir/.complete" ]; then
  (cd "$tmp" && apt-get download "libtcmalloc-minimal4=$tc_ver" >&2) ||
    die "apt-get download libtcmalloc-minimal4=$tc_ver failed (apt-get update? if the archive moved on, set PEER_TCMALLOC_VERSION to a version apt-cache policy libtcmalloc-minimal4 lists and PEER_TCMALLOC_SHA256 to its .deb's sha256, or to empty)"
  deb=$(ls "$tmp"/libtcmalloc-minimal4_*.deb)
  if [ -n "$tc_sha" ]; then
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    [ "$got" = "$tc_sha" ] || die "$(basename "$deb") has sha256 $got, not the pinned $tc_sha (set PEER_TCMALLOC_SHA256 to accept it)"
  fi
  mkdir -p "$root/.cache/tcmalloc"
  rm -rf "$tc_dir.partial"
  dpkg -x "$deb" "$tc_dir.partial"
  touch "$tc_dir.partial/.complete"
  rm -rf "$tc_dir"
  mv "$tc_dir.partial" "$tc_dir"
fi
tc_so=$(find "$tc_dir/usr/lib" -name libtcmalloc_minimal.so.4 | head -1)
[ -n "$tc_so" ] || die "no libtcmalloc_minimal.so.4 in $tc_dir"
# It must load into the peer's interpreter (a failed LD_PRELOAD is only a warning of ld.so's).
LD_PRELOAD=$tc_so /usr/bin/python3 -c "import sys; sys.exit('libtcmalloc_minimal' not in open('/proc/self/maps').read())" 2>"$tmp/preload.err" ||
  die "LD_PRELOAD=$tc_so does not load into /usr/bin/python3: $(head -1 "$tmp/preload.err")"

echo "PEER_BLAS_DIR=$lib"
echo "PEER_TCMALLOC=$tc_so"
echo "PEER_TCMALLOC_VERSION=$tc_ver"
