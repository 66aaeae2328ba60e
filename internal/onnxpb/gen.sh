#!/usr/bin/env bash
# Regenerates onnx-ml.pb.go from onnx-ml.proto (run through `go generate ./internal/onnxpb`).
# Needs protoc (Debian: protobuf-compiler). protoc-gen-go is built from the
# google.golang.org/protobuf version pinned in go.mod, so the generated code
# always matches the runtime library. The .proto is the official onnx-ml.proto
# as shipped by Debian's python3-onnx 1.12 (/usr/lib/python3/dist-packages/onnx/onnx-ml.proto).
set -euo pipefail
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "gen.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out=. --go_opt=paths=source_relative \
  --go_opt=Monnx-ml.proto=github.com/distill-ml/distill/internal/onnxpb onnx-ml.proto
