//go:build cgo

package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// TestFailedRunLeavesNothing: nan_out.onnx gives NaN scores in the first
// batch, so the run fails before it commits a part. It must leave --out as
// it was (absent, or empty) so that the same command fails again with the
// same error, not with "already holds a cache".
func TestFailedRunLeavesNothing(t *testing.T) {
	rt := requireRuntime(t)
	nanErr := func(t *testing.T, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "rows 8, 9, 11, 14") || strings.Contains(err.Error(), "already holds") {
			t.Fatalf("err = %v; want the NaN rows named", err)
		}
	}
	t.Run("absent", func(t *testing.T) {
		o := tinyOpts(t, "nan_out.onnx")
		o.Out = filepath.Join(t.TempDir(), "a", "cache")
		for range 2 {
			_, err := rt.Run(context.Background(), o)
			nanErr(t, err)
			if _, err := os.Stat(filepath.Dir(o.Out)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("--out's created parent after the failed run: %v", err)
			}
		}
		o.Resume = true // --resume with nothing to resume starts afresh, and fails the same
		_, err := rt.Run(context.Background(), o)
		nanErr(t, err)
	})
	t.Run("empty", func(t *testing.T) {
		o := tinyOpts(t, "nan_out.onnx")
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			_, err := rt.Run(context.Background(), o)
			nanErr(t, err)
			if es, err := os.ReadDir(o.Out); err != nil || len(es) != 0 {
				t.Fatalf("--out after the failed run: %v, %v", es, err)
			}
		}
	})
	t.Run("shard", func(t *testing.T) {
		o := tinyOpts(t, "nan_out.onnx")
		o.ShardIndex, o.ShardCount = 0, 2
		_, err := rt.Run(context.Background(), o)
		nanErr(t, err)
		if _, err := os.Stat(o.Out); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("--out after the failed shard: %v", err)
		}
	})
	// A resumed cache keeps its parts when the resumed run fails before
	// adding one: a cache of the first two parts (rows 0..31, NaN rows
	// kept with --allow-nonfinite), as a kill would leave it; the resume
	// without the flag fails on row 36, the first NaN row after them.
	t.Run("resume keeps parts", func(t *testing.T) {
		o := tinyOpts(t, "nan_out.onnx")
		o.PartRows, o.AllowNonFinite = 16, true
		if _, err := rt.Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		m, err := formats.ReadManifest(o.Out)
		if err != nil || len(m.Parts) != 4 {
			t.Fatalf("manifest: %d parts, %v", len(m.Parts), err)
		}
		// Uncommit it: the journal of an attempt killed after two parts.
		for _, p := range m.Parts[2:] {
			os.Remove(filepath.Join(o.Out, p.File))
		}
		m.Parts, m.Rows = m.Parts[:2], 32
		data, _ := json.Marshal(&m)
		os.Remove(filepath.Join(o.Out, formats.ManifestName))
		if err := os.WriteFile(filepath.Join(o.Out, "_attempt-00000000000a.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		o.Progress, o.AllowNonFinite, o.Resume = nil, false, true
		for range 2 {
			_, err := rt.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "rows 36, 39, 42") {
				t.Fatalf("resume: %v, want the NaN rows after the kept parts named", err)
			}
			if _, err := formats.ReadManifest(o.Out); !errors.Is(err, formats.ErrIncomplete) {
				t.Fatalf("the failed resume committed: %v", err)
			}
			as, err := formats.Attempts(o.Out)
			if err != nil || len(as) != 1 || len(as[0].Manifest.Parts) != 2 || as[0].Manifest.Rows != 32 {
				t.Fatalf("journals after the failed resume: %+v, %v; want one of 2 parts, 32 rows", as, err)
			}
		}
	})
}

const lockOutEnv = "DISTILL_EXTRACT_LOCK_OUT"

// TestLockHelper is the child process of TestSecondRunLocked: it extracts
// mlp_logits.onnx into $DISTILL_EXTRACT_LOCK_OUT, printing "running" once
// the cache exists and waiting there until its stdin closes.
func TestLockHelper(t *testing.T) {
	out := os.Getenv(lockOutEnv)
	if out == "" {
		t.Skip("helper process for TestSecondRunLocked")
	}
	rt := requireRuntime(t)
	o := tinyOpts(t, "mlp_logits.onnx")
	o.Out, o.PartRows = out, 16
	first := true
	o.Progress = func(done, total int64) {
		if first {
			first = false
			os.Stdout.WriteString("running\n")
			io.Copy(io.Discard, os.Stdin)
		}
	}
	if _, err := rt.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// TestSecondRunLocked runs an extraction in another process and, while it
// writes, a second into the same --out: with or without --resume, it
// fails at once with one line naming the directory and saying another
// distill process writes it, and changes nothing. Once the first has
// finished (and committed), the second, with --resume, finds the shard
// done and leaves it.
func TestSecondRunLocked(t *testing.T) {
	if !lock.Supported {
		t.Skip("no locks on this system")
	}
	rt := requireRuntime(t)
	o := tinyOpts(t, "mlp_logits.onnx")
	o.PartRows = 16
	h := sharedtest.Hold(t, "TestLockHelper", "running", lockOutEnv+"="+o.Out)
	listing := func() string {
		es, err := os.ReadDir(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			info, _ := e.Info()
			names = append(names, fmt.Sprint(e.Name(), info.Size(), info.ModTime()))
		}
		return strings.Join(names, "\n")
	}
	before := listing()
	for _, resume := range []bool{false, true} {
		o.Resume = resume
		start := time.Now()
		_, err := rt.Run(context.Background(), o)
		if !errors.Is(err, formats.ErrLocked) || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "--out "+o.Out+": another distill process is writing this cache") {
			t.Errorf("resume %v: %v, want one line naming %s and the other process", resume, err, o.Out)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("resume %v: took %v to fail", resume, d)
		}
	}
	if after := listing(); after != before {
		t.Errorf("the refused runs changed the directory:\n%s\nwas\n%s", after, before)
	}
	h.Stop(t)
	o.Resume = true
	res, err := rt.Run(context.Background(), o)
	if err != nil || !res.AlreadyCommitted || res.Skipped != 64 || res.Rows != 0 {
		t.Fatalf("resume after the first run finished: %+v, %v; want the committed shard left as it is", res, err)
	}
}

// TestStreamsKeepOrder runs a tiny teacher over 22 batches in 8 parts with
// three streams (three runs in flight at once, finishing in any order)
// and with one: the caches hold the same rows in the same parts in the
// same order with the same scores and hidden states.
func TestStreamsKeepOrder(t *testing.T) {
	rt := requireRuntime(t)
	run := func(streams int) (formats.Manifest, *formats.Batch) {
		o := tinyOpts(t, "mlp_logits.onnx")
		o.PartRows, o.Batch, o.Threads, o.Streams, o.Hidden = 8, 3, streams, streams, []string{"h"}
		if _, err := rt.Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		m, err := formats.ReadManifest(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		return m, readJoined(t, o.Out)
	}
	m1, one := run(1)
	m3, three := run(3)
	if len(m1.Parts) != 8 || len(m3.Parts) != len(m1.Parts) {
		t.Fatalf("%d and %d parts, want 8", len(m1.Parts), len(m3.Parts))
	}
	for i := range m1.Parts {
		if m1.Parts[i].Rows != m3.Parts[i].Rows || m1.Parts[i].FirstRow != m3.Parts[i].FirstRow {
			t.Errorf("part %d: %+v with one stream, %+v with three", i, m1.Parts[i], m3.Parts[i])
		}
	}
	if !slices.Equal(one.Rows, three.Rows) || !slices.Equal(one.Logits, three.Logits) || !slices.Equal(one.Hidden["h"], three.Hidden["h"]) {
		t.Errorf("three streams cached other rows or values: rows %v, want %v", three.Rows, one.Rows)
	}
	for i, r := range one.Rows {
		if r != int64(i) {
			t.Fatalf("row %d is %d", i, r)
		}
	}
}
