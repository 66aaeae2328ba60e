// Package extract runs a teacher ONNX model through onnxruntime over a
// dataset once and writes its outputs to a cache (package formats).
//
// # Sections
//
//   - Runtime: locating and loading the onnxruntime shared library
//     (LocateLibrary, NewRuntime). One environment per process.
//
// onnxruntime is reached through cgo (github.com/yalue/onnxruntime_go); a
// build with CGO_ENABLED=0 compiles, and NewRuntime then returns ErrNoRuntime.
package extract
