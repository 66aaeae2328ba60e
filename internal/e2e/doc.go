// Package e2e holds cross-package tests only: the import-policy check
// (deps_test.go); export parity, every exported variant through
// onnxruntime against train's Forward (export_test.go); and the
// extract → train → export round trip as one round of born-again
// self-distillation on MNIST, the exported student serving as the next
// teacher (selfdistill_test.go).
package e2e
