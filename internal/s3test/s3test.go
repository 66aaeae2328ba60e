// Package s3test runs in-process object stores for tests: S3 (Start) and
// Google Cloud Storage (StartGCS, fake-gcs-server). The S3 one is gofakes3 with its
// memory backend, speaking the real S3 HTTP protocol on a loopback port,
// so that distill's store layer (and distill subprocesses given Env) talk
// to it exactly as to AWS, through aws-sdk-go-v2. Nothing leaves the
// machine: the endpoint is 127.0.0.1, instance metadata is disabled and
// no shared AWS config or credentials file is read.
//
// Start also makes every upload through package store be checked on the
// server: the stored object must have the size and sha256 the writer
// sent (store.AfterUpload). gofakes3 does not decode aws-chunked bodies
// of multipart parts, so a client that streams them with trailing
// checksums would store the framing; Env sets
// AWS_REQUEST_CHECKSUM_CALCULATION=when_required as a user of such a
// server would; store's own size check after every upload
// (TestStoredSizeChecked) catches a server that stores other bytes.
package s3test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/distill-ml/distill/internal/store"
)

// Bucket is the bucket Start creates; DeniedBucket answers every request
// with 403 AccessDenied.
const (
	Bucket       = "distill-test"
	DeniedBucket = "distill-denied"
)

// Server is a running fake S3.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	Backend *s3mem.Backend
	srv     *httptest.Server

	mu      sync.Mutex
	uploads int
	// Hook, if set, sees every request before the fake does; returning
	// true means it answered the request itself.
	Hook func(w http.ResponseWriter, r *http.Request) bool
}

var serverMu sync.Mutex

// Start starts a server for the test, creates Bucket and sets the
// environment (t.Setenv) so that store and distill subprocesses use it.
// The test must not be parallel (the environment is process-wide).
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Backend: s3mem.New()}
	faker := gofakes3.New(s.Backend, gofakes3.WithIntegrityCheck(true), gofakes3.WithLogger(gofakes3.DiscardLog()))
	h := faker.Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/"+DeniedBucket) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		if hook := s.Hook; hook != nil && hook(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	if err := s.Backend.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	hookUploads(t, "s3://", s.checkUpload)
	return s
}

// hookUploads makes store check, for the rest of the test, every upload
// to a location starting with scheme through check (uploads elsewhere go
// to the check installed before), and forgets store's open buckets now
// and at the end, so that they are opened with the test's environment.
func hookUploads(t testing.TB, scheme string, check func(loc, key string, w store.Written) error) {
	store.ResetBuckets()
	t.Cleanup(store.ResetBuckets)
	serverMu.Lock()
	prev := store.AfterUpload
	store.AfterUpload = func(loc string, b *blob.Bucket, key string, w store.Written) error {
		switch {
		case strings.HasPrefix(loc, scheme):
			return check(loc, key, w)
		case prev != nil:
			return prev(loc, b, key, w)
		}
		return nil
	}
	serverMu.Unlock()
	t.Cleanup(func() {
		serverMu.Lock()
		store.AfterUpload = prev
		serverMu.Unlock()
	})
}

// sameAsSent compares the stored bytes of the object at loc, read from
// r, with what its writer sent.
func sameAsSent(loc string, r io.Reader, w store.Written) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("s3test: %s: read back: %w", loc, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != w.Size || sum != w.SHA256 {
		return fmt.Errorf("s3test: %s: the server stored %d bytes with sha256 %s, the writer sent %d with %s", loc, n, sum, w.Size, w.SHA256)
	}
	return nil
}

// Env is the environment that points the AWS SDK at the server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":                 s.URL,
		"AWS_ENDPOINT_URL_S3":              "",
		"AWS_ACCESS_KEY_ID":                "distill-test-key",
		"AWS_SECRET_ACCESS_KEY":            "distill-test-secret",
		"AWS_SESSION_TOKEN":                "",
		"AWS_REGION":                       "us-east-1",
		"AWS_PROFILE":                      "",
		"AWS_CONFIG_FILE":                  "/nonexistent/distill-test-aws-config",
		"AWS_SHARED_CREDENTIALS_FILE":      "/nonexistent/distill-test-aws-credentials",
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
		"AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
		store.EnvAddressing:                "",
	}
}

// Environ returns os.Environ-style KEY=VALUE lines of Env, to append to a
// subprocess's environment.
func (s *Server) Environ() []string {
	var out []string
	for k, v := range s.Env() {
		out = append(out, k+"="+v)
	}
	return out
}

// Prefix returns s3://Bucket/name, a fresh prefix for one test.
func Prefix(name string) string { return "s3://" + Bucket + "/" + name }

// Uploads returns how many uploads were checked so far.
func (s *Server) Uploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads
}

// checkUpload compares what the server stored with what the writer sent.
func (s *Server) checkUpload(loc, key string, w store.Written) error {
	bucketName, _, _ := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/")
	obj, err := s.Backend.GetObject(bucketName, key, nil)
	if err != nil {
		return fmt.Errorf("s3test: %s: read back: %w", loc, err)
	}
	defer obj.Contents.Close()
	if err := sameAsSent(loc, obj.Contents, w); err != nil {
		return err
	}
	s.mu.Lock()
	s.uploads++
	s.mu.Unlock()
	return nil
}

// Object returns the stored bytes of key in Bucket.
func (s *Server) Object(t testing.TB, key string) []byte {
	t.Helper()
	obj, err := s.Backend.GetObject(Bucket, key, nil)
	if err != nil {
		t.Fatalf("s3test: get %s: %v", key, err)
	}
	defer obj.Contents.Close()
	data, err := io.ReadAll(obj.Contents)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Put stores data at key in Bucket directly (not through the protocol).
func (s *Server) Put(t testing.TB, key string, data []byte) {
	t.Helper()
	if _, err := s.Backend.PutObject(Bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// Delete removes key from Bucket directly.
func (s *Server) Delete(t testing.TB, key string) {
	t.Helper()
	if _, err := s.Backend.DeleteObject(Bucket, key); err != nil {
		t.Fatal(err)
	}
}

// Keys lists the keys in Bucket below prefix.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	list, err := s.Backend.ListBucket(Bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: prefix}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}
