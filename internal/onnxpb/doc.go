// Package onnxpb holds the Go types of the ONNX protobuf schema (ModelProto,
// GraphProto, NodeProto, TensorProto, ...), generated with protoc-gen-go from
// the official onnx-ml.proto (ONNX 1.12, IR version 8) kept beside this file.
//
// extract uses them to read a teacher and append hidden tensors to its
// graph outputs in memory; export uses them to write students. Fields a newer
// ONNX adds survive a read-modify-write as protobuf unknown fields.
//
// Regenerate with `go generate ./internal/onnxpb` (needs protoc).
package onnxpb

//go:generate ./gen.sh
