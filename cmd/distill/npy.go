package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/atomicfile"
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
	buf := make([]byte, 0, 10+len(header)+4*len(out))
	buf = append(buf, "\x93NUMPY\x01\x00"...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	buf = append(buf, header...)
	for _, v := range out {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	return atomicfile.WriteFileAll(path, buf, 0o644)
}
