//go:build cgo

package extract

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// TestAutoSizes checks the automatic batch and part sizes: a classifier
// keeps 256 rows a run and 65536 a part; a sequence teacher's run holds
// rows·T² ≤ 2^20 (at least one window, at most 256) and its part about
// 2^20 tokens.
func TestAutoSizes(t *testing.T) {
	for _, c := range []struct{ T, batch, part int }{
		{0, 256, 65536}, {32, 256, 32768}, {64, 256, 16384}, {100, 104, 10485}, {128, 64, 8192},
		{256, 16, 4096}, {512, 4, 2048}, {1024, 1, 1024}, {4096, 1, 256}, {1 << 21, 1, 1},
	} {
		if b, p := AutoBatch(c.T), AutoPartRows(c.T); b != c.batch || p != c.part {
			t.Errorf("T = %d: batch %d, part %d rows; want %d, %d", c.T, b, p, c.batch, c.part)
		}
	}
}

// TestExtractSeqPeakMemory runs stories260K at T = 256 over 128 windows
// with the default batch and one stream and checks that the process's
// peak RSS (VmHWM, reset before the run) grows by less than 512 MiB. At
// the old default of 256 rows a run, all 128 windows went through one
// onnxruntime run, whose attention ([128, 8, 256, 256] float32, 256 MiB
// per tensor, several alive at once) raised it by 1.38 GB; at the 16
// windows a run of AutoBatch it grows by about 290 MiB (two sessions
// opened by the plan included), whatever the number of windows.
func TestExtractSeqPeakMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status")
	}
	rt := requireRuntime(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	const T, rows = 256, 128
	data, _ := tokenWindows(t, seq, T, rows)
	out := filepath.Join(t.TempDir(), "c")
	runtime.GC()
	// Writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	before := procStatusKB(t, "VmHWM")
	res, err := rt.Run(context.Background(), Options{Teacher: filepath.Join(seq, "stories260K.onnx"), Data: data, Out: out,
		TopK: 32, Dtype: "f16", KeepInput: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	grew := procStatusKB(t, "VmHWM") - before
	t.Logf("peak RSS grew by %d MiB (from %d MiB)", grew>>10, before>>10)
	if res.Rows != rows || res.Parts != 1 {
		t.Fatalf("%d rows in %d parts, want %d in 1", res.Rows, res.Parts, rows)
	}
	if grew > 512<<10 {
		t.Fatalf("extracting %d windows of %d tokens raised the peak RSS by %d MiB, want < 512", rows, T, grew>>10)
	}
	c, err := formats.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := c.Manifest(); m.Rows != rows || m.Settings.BatchSize != 16 {
		t.Fatalf("manifest: %d rows, batch %d; want %d, 16", m.Rows, m.Settings.BatchSize, rows)
	}
}

// procStatusKB returns a "kB" field of /proc/self/status.
func procStatusKB(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
