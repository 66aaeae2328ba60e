package dataset

import (
	"path/filepath"
	"testing"
)

// BenchmarkReadMNIST reads the MNIST test split in 256-row chunks from
// each format, as extract does.
func BenchmarkReadMNIST(b *testing.B) {
	dir := mnistDirForTest(b)
	m, err := LoadMNIST(dir, "test")
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	paths := map[string]string{"idx.gz": filepath.Join(dir, "t10k-images-idx3-ubyte.gz")}
	for _, format := range []string{"parquet", "arrow"} {
		p := filepath.Join(tmp, "mnist."+format)
		if _, err := WriteMNISTFile(p, m, &WriteOptions{Format: format}); err != nil {
			b.Fatal(err)
		}
		paths[format] = p
	}
	for _, name := range []string{"idx.gz", "parquet", "arrow"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(m.Images)))
			for b.Loop() {
				d, err := Open(paths[name], nil)
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for batch, err := range All(d, 0, 256) {
					if err != nil {
						b.Fatal(err)
					}
					rows += batch.Len()
				}
				d.Close()
				if rows != m.Rows {
					b.Fatalf("read %d rows", rows)
				}
			}
			b.ReportMetric(float64(m.Rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
