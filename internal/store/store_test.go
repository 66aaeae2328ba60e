package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distill-ml/distill/internal/s3test"
	"github.com/distill-ml/distill/internal/store"
)

var ctx = context.Background()

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// backends runs f against a local directory, a prefix on the fake S3 and
// one on the fake GCS.
func backends(t *testing.T, f func(t *testing.T, dir string)) {
	t.Run("local", func(t *testing.T) { f(t, t.TempDir()) })
	t.Run("s3", func(t *testing.T) {
		s3test.Start(t)
		f(t, s3test.Prefix(strings.ReplaceAll(t.Name(), "/", "_")))
	})
	t.Run("gs", func(t *testing.T) {
		s3test.StartGCS(t)
		f(t, s3test.GCSPrefix(strings.ReplaceAll(t.Name(), "/", "_")))
	})
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"cache", "cache", ""},
		{"/abs/cache", "/abs/cache", ""},
		{"file:///abs/cache", "/abs/cache", ""},
		{"file://rel/dir", "rel/dir", ""},
		{"s3://bucket/a/b/", "s3://bucket/a/b", ""},
		{"s3://bucket", "s3://bucket", ""},
		{"S3://bucket//x", "s3://bucket/x", ""},
		{"gs://b/p", "gs://b/p", ""},
		{"./dir://odd", "./dir://odd", ""},
		{"http://host/x", "", "unknown scheme"},
		{"s3:///prefix", "", "no bucket"},
		{"s3://b/p?endpoint=x", "", "query strings"},
	} {
		l, err := store.Parse(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, %v; want error with %q", c.in, l, err, c.err)
			}
			continue
		}
		if err != nil || l.String() != c.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", c.in, l.String(), err, c.want)
		}
	}
	if got := store.Join("s3://b/p", "shard-1", "manifest.json"); got != "s3://b/p/shard-1/manifest.json" {
		t.Errorf("Join = %q", got)
	}
	if got := store.Parent("s3://b/p/m.json"); got != "s3://b/p" {
		t.Errorf("Parent = %q", got)
	}
	if got := store.Base("s3://b/p/m.json"); got != "m.json" {
		t.Errorf("Base = %q", got)
	}
}

// TestRoundTrip writes files small and multipart-large and reads them back
// whole, sequentially and at random offsets.
func TestRoundTrip(t *testing.T) {
	backends(t, func(t *testing.T, loc string) {
		d, err := store.OpenDir(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.MkdirAll(); err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 1000, store.PartSize*2 + 12345} {
			name := "f" + string(rune('a'+size%26))
			data := randomBytes(size, uint64(size))
			w, err := d.Create(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			// Uneven writes, as the Parquet writer makes.
			for off := 0; off < len(data); {
				n := min(len(data)-off, 1+off%70001)
				if _, err := w.Write(data[off : off+n]); err != nil {
					t.Fatal(err)
				}
				off += n
			}
			got, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if got.Size != int64(size) {
				t.Fatalf("Commit size %d, want %d", got.Size, size)
			}
			back, err := d.ReadFile(ctx, name, 0)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("ReadFile: %d bytes, %v; want the %d written", len(back), err, size)
			}
			f, err := d.Open(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			var wg sync.WaitGroup
			for g := 0; g < 4 && size > 0; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 50 {
						off := r.IntN(size)
						n := min(r.IntN(store.ReadAhead*2), size-off)
						p := make([]byte, n)
						if _, err := f.ReadAt(p, int64(off)); err != nil {
							t.Errorf("ReadAt(%d, %d): %v", n, off, err)
							return
						}
						if !bytes.Equal(p, data[off:off+n]) {
							t.Errorf("ReadAt(%d, %d) returned other bytes", n, off)
							return
						}
					}
				}()
			}
			wg.Wait()
			p := make([]byte, 10)
			if n, err := f.ReadAt(p, int64(size)-5); size >= 5 && (n != 5 || err != io.EOF) {
				t.Errorf("ReadAt past the end: %d, %v; want 5, EOF", n, err)
			}
			f.Close()
		}
	})
}

func TestCreateNewOnce(t *testing.T) {
	backends(t, func(t *testing.T, loc string) {
		d, _ := store.OpenDir(ctx, loc)
		d.MkdirAll()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = d.WriteFile(ctx, "manifest.json", []byte{byte('0' + i)}, true)
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won < 0:
				won = i
			case err == nil:
				t.Fatalf("writers %d and %d both created the file", won, i)
			case !errors.Is(err, store.ErrExist):
				t.Fatalf("writer %d: %v, want ErrExist", i, err)
			}
		}
		if won < 0 {
			t.Fatal("no writer created the file")
		}
		got, err := d.ReadFile(ctx, "manifest.json", 0)
		if err != nil || string(got) != string(rune('0'+won)) {
			t.Fatalf("file holds %q, %v; want the winner's %q", got, err, string(rune('0'+won)))
		}
		// An ordinary Create replaces.
		if _, err := d.WriteFile(ctx, "manifest.json", []byte("x"), false); err != nil {
			t.Fatal(err)
		}
		if es, _ := d.List(ctx); len(es) != 1 || es[0].Name != "manifest.json" || es[0].Size != 1 {
			t.Fatalf("List = %+v, want only manifest.json of 1 byte", es)
		}
	})
}

func TestAbortLeavesNothing(t *testing.T) {
	backends(t, func(t *testing.T, loc string) {
		d, _ := store.OpenDir(ctx, loc)
		d.MkdirAll()
		w, err := d.Create(ctx, "part")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(randomBytes(store.PartSize+5, 9)) // one part already uploaded
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if es, err := d.List(ctx); err != nil || len(es) != 0 {
			t.Fatalf("after Abort List = %+v, %v; want empty", es, err)
		}
		if _, err := d.Stat(ctx, "part"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat after Abort: %v, want ErrNotExist", err)
		}
		if _, err := d.Open(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open missing: %v, want ErrNotExist", err)
		}
	})
}

func TestListSubdirs(t *testing.T) {
	backends(t, func(t *testing.T, loc string) {
		d, _ := store.OpenDir(ctx, loc)
		for _, n := range []string{"shard-0/manifest.json", "shard-1/part", "top"} {
			w, err := store.Create(ctx, store.Join(loc, strings.Split(n, "/")...))
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(n))
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		es, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Name+map[bool]string{true: "/", false: ""}[e.IsDir])
		}
		if strings.Join(got, " ") != "shard-0/ shard-1/ top" {
			t.Fatalf("List = %v", got)
		}
		tmp, cleanup, err := store.FetchDir(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		if b, err := os.ReadFile(filepath.Join(tmp, "shard-1", "part")); err != nil || string(b) != "shard-1/part" {
			t.Fatalf("FetchDir copy: %q, %v", b, err)
		}
	})
}

// TestTruncatedWhileReading: an object replaced by a shorter one between
// Open and a read is an error that says so, not short data.
func TestTruncatedWhileReading(t *testing.T) {
	s := s3test.Start(t)
	loc := s3test.Prefix("trunc")
	d, _ := store.OpenDir(ctx, loc)
	data := randomBytes(100000, 1)
	if _, err := d.WriteFile(ctx, "p", data, false); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s.Put(t, "trunc/p", data[:50000])
	p := make([]byte, 1000)
	if _, err := f.ReadAt(p, 60000); err == nil {
		t.Fatal("ReadAt beyond the truncated object succeeded")
	}
	if _, err := io.ReadAll(f); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Read of the truncated object: %v, want an error naming truncation", err)
	}
}

// TestStoredSizeChecked: a server that stores fewer bytes than were
// uploaded (as gofakes3 stores more, the aws-chunked framing, for some
// client settings) fails the Commit with the fix named, and leaves no
// object behind.
func TestStoredSizeChecked(t *testing.T) {
	s := s3test.Start(t)
	s.Hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/short") {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		s.Put(t, "sized/short", body[:len(body)-10])
		w.Header().Set("ETag", `"0"`)
		return true
	}
	d, _ := store.OpenDir(ctx, s3test.Prefix("sized"))
	_, err := d.WriteFile(ctx, "short", randomBytes(1000, 2), false)
	if err == nil || !strings.Contains(err.Error(), "stored 990 bytes of the 1000") ||
		!strings.Contains(err.Error(), "AWS_REQUEST_CHECKSUM_CALCULATION=when_required") {
		t.Fatalf("Commit: %v; want the size mismatch naming the fix", err)
	}
	if keys := s.Keys(t, "sized/"); len(keys) != 0 {
		t.Fatalf("the short object stayed: %v", keys)
	}
}

// TestMultipart: a large object written as a stream goes up in PartSize
// parts, several requests, and comes back whole (checked by AfterUpload
// too); a manifest-sized create-only write goes as one PUT.
func TestMultipart(t *testing.T) {
	s := s3test.Start(t)
	var mu sync.Mutex
	parts := 0
	s.Hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" {
			mu.Lock()
			parts++
			mu.Unlock()
		}
		return false
	}
	d, _ := store.OpenDir(ctx, s3test.Prefix("multi"))
	data := randomBytes(3*store.PartSize+7, 5)
	before := s.Uploads()
	w, err := d.Create(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		w.Write(data[off:min(off+1<<20, len(data))])
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if parts != 4 {
		t.Fatalf("%d part uploads, want 4 of PartSize", parts)
	}
	if s.Uploads() != before+1 {
		t.Fatal("AfterUpload did not check the upload")
	}
	if !bytes.Equal(s.Object(t, "multi/big"), data) {
		t.Fatal("stored object differs")
	}
	// A create-only write of a manifest's size is one PUT (below the
	// transfer manager's 16 MiB multipart threshold), where every S3
	// honours If-None-Match (gofakes3 ignores it on
	// CompleteMultipartUpload).
	parts = 0
	small := data[:1<<20]
	if _, err := d.WriteFile(ctx, "manifest.json", small, true); err != nil {
		t.Fatal(err)
	}
	if parts != 0 || !bytes.Equal(s.Object(t, "multi/manifest.json"), small) {
		t.Fatalf("create-only WriteFile of 1 MiB: %d part uploads, want one PUT", parts)
	}
}

// TestErrors: each bad location or environment is one line naming the
// cause, and wraps what callers test for.
func TestErrors(t *testing.T) {
	s := s3test.Start(t)
	check := func(name, loc, want string) {
		t.Helper()
		store.ResetBuckets()
		_, err := store.ReadFile(ctx, loc, 0)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: ReadFile(%s) = %v; want one line containing %q", name, loc, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "distill-test-secret") {
			t.Errorf("%s: the error prints the secret key", name)
		}
	}
	check("unknown scheme", "ftp://x/y", "unknown scheme")
	check("no bucket", "s3:///y", "no bucket")
	check("missing bucket", "s3://no-such-bucket/x/manifest.json", `bucket "no-such-bucket" does not exist`)
	check("denied", "s3://"+s3test.DeniedBucket+"/x/manifest.json", "access denied")
	check("missing key", s3test.Prefix("nothing/manifest.json"), "file does not exist")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	check("endpoint down", s3test.Prefix("x/manifest.json"), "cannot reach the storage endpoint at http://127.0.0.1:1")
	t.Setenv("AWS_ENDPOINT_URL", s.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	check("no credentials", s3test.Prefix("x/manifest.json"), "no credentials found")
}

// TestForwardReadsFetchOnce: small and large reads that move forward
// through a remote file (a header, then a body, as IPC and Parquet
// readers do) fetch each byte about once, not a read-ahead per miss on
// top of the bodies.
func TestForwardReadsFetchOnce(t *testing.T) {
	s3test.Start(t)
	d, _ := store.OpenDir(ctx, s3test.Prefix("forward"))
	data := randomBytes(40<<20, 7)
	if _, err := d.WriteFile(ctx, "f", data, false); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; off < len(data); {
		for _, n := range []int{64, 6 << 20, 100, 300 << 10} {
			n = min(n, len(data)-off)
			p := make([]byte, n)
			if _, err := f.ReadAt(p, int64(off)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, data[off:off+n]) {
				t.Fatalf("ReadAt(%d, %d) returned other bytes", n, off)
			}
			off += n
		}
	}
	if f.Fetched > int64(len(data))+store.ReadAhead {
		t.Fatalf("fetched %d bytes to read %d forward", f.Fetched, len(data))
	}
}

// TestGCSNoCredentials: gs:// without Application Default Credentials (no
// variable, no gcloud file; off GCP the metadata-server probe fails at
// once) is one line naming the Google ways to provide them.
func TestGCSNoCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	store.ResetBuckets()
	_, err := store.ReadFile(ctx, "gs://some-bucket/cache/manifest.json", 0)
	if err == nil || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("gs:// without credentials: %v; want one line naming GOOGLE_APPLICATION_CREDENTIALS", err)
	}
}
