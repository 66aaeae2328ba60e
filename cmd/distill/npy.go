package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/distill-ml/distill/formats"
)

// writeLogitsNPY writes a full-logit cache's scores as a NumPy v1.0 .npy
// file of shape [rows, C], float32, row i holding the sample with row id i
// (the cache must hold the row ids 0..rows-1, as an unsharded or complete
// sharded extraction does). The file appears atomically.
func writeLogitsNPY(c *formats.Cache, path string) error {
	cfg := c.Config()
	if cfg.TopK > 0 {
		return fmt.Errorf("--logits-npy: the cache stores top-%d scores, not all %d logits", cfg.TopK, cfg.Classes)
	}
	n, classes := c.NumRows(), cfg.Classes
	out := make([]float32, n*int64(classes))
	seen := make([]bool, n)
	for b, err := range c.All() {
		if err != nil {
			return err
		}
		for i, r := range b.Rows {
			if r < 0 || r >= n || seen[r] {
				return fmt.Errorf("--logits-npy: row id %d is outside 0..%d or repeated; the cache is not one whole dataset", r, n-1)
			}
			seen[r] = true
			copy(out[r*int64(classes):], b.Logits[i*classes:(i+1)*classes])
		}
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, classes)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad) + "\n"
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(header)))
	w.WriteString(header)
	var buf [4]byte
	for _, v := range out {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		w.Write(buf[:])
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
