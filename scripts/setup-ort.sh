#!/usr/bin/env bash
# Provision the onnxruntime 1.24.3 shared library into the project cache
# (.cache/onnxruntime/1.24.3/<os>-<arch>/) from the npm package
# onnxruntime-node@1.24.3. Idempotent: does nothing when the pinned library is
# already there. Both the tarball and the library are sha256-verified.
set -euo pipefail
VERSION=1.24.3
TGZ_SHA=aa1bb5fa261ea68de05dd53efbba210cd7adf2d2850f4c3a201054c74cc78040
root=$(cd "$(dirname "$0")/.." && pwd)

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)  plat=linux-x64;   member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1;   lib=libonnxruntime.so.1
                 LIB_SHA=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682 ;;
  Linux-aarch64) plat=linux-arm64; member=package/bin/napi-v6/linux/arm64/libonnxruntime.so.1; lib=libonnxruntime.so.1
                 LIB_SHA=33032cb5b91c12edbf028d7c69fa40a31848d66c0095448758af237d5e0b07db ;;
  Darwin-arm64)  plat=darwin-arm64; member=package/bin/napi-v6/darwin/arm64/libonnxruntime.1.24.3.dylib; lib=libonnxruntime.1.24.3.dylib
                 LIB_SHA=76831409ce6eded92b4cb343cf422c458a60c1ea1d5f3cfa69692ab7fcc67f0f ;;
  *) echo "setup-ort: no onnxruntime $VERSION build for $(uname -s)-$(uname -m) in onnxruntime-node; pass --ort-lib to a library you built" >&2; exit 1 ;;
esac

dest="$root/.cache/onnxruntime/$VERSION/$plat"
sha() { if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi; }

if [ -f "$dest/$lib" ] && [ "$(sha "$dest/$lib")" = "$LIB_SHA" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "setup-ort: npm is needed to fetch onnxruntime-node@$VERSION (apt-get install npm)" >&2; exit 1; }

mkdir -p "$root/.cache"
tmp=$(mktemp -d "$root/.cache/ort-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: fetching onnxruntime-node@$VERSION with npm pack ..."
(cd "$tmp" && npm pack --silent "onnxruntime-node@$VERSION" >/dev/null)
tgz="$tmp/onnxruntime-node-$VERSION.tgz"
got=$(sha "$tgz")
[ "$got" = "$TGZ_SHA" ] || { echo "setup-ort: $tgz sha256 $got, want $TGZ_SHA; refusing to use it" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" "$member"
got=$(sha "$tmp/$member")
[ "$got" = "$LIB_SHA" ] || { echo "setup-ort: $member sha256 $got, want $LIB_SHA; refusing to use it" >&2; exit 1; }
mkdir -p "$dest"
mv "$tmp/$member" "$dest/$lib.tmp" && mv "$dest/$lib.tmp" "$dest/$lib"
echo "setup-ort: onnxruntime $VERSION ready at ${dest#$root/}/$lib"
