package s3test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/distill-ml/distill/internal/store"
)

// GCSServer is a running fake Google Cloud Storage: fake-gcs-server
// (BSD-2) in this process on a loopback port, speaking the GCS JSON API
// that gcsblob uses, found through STORAGE_EMULATOR_HOST (the GCS
// client's standard emulator variable).
type GCSServer struct {
	srv *fakestorage.Server
}

// StartGCS starts a fake GCS for the test with Bucket created, sets
// STORAGE_EMULATOR_HOST (t.Setenv: not for parallel tests) and checks
// every upload through package store on the server, as Start does.
func StartGCS(t testing.TB) *GCSServer {
	t.Helper()
	// The server routes downloads by Host, so it must know its own
	// address before it starts: take a free port first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		PublicHost: fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", u.Host)
	g := &GCSServer{srv: srv}
	hookUploads(t, "gs://", g.checkUpload)
	return g
}

// GCSPrefix returns gs://Bucket/name.
func GCSPrefix(name string) string { return "gs://" + Bucket + "/" + name }

func (g *GCSServer) checkUpload(loc, key string, w store.Written) error {
	obj, err := g.srv.GetObject(Bucket, key)
	if err != nil {
		return fmt.Errorf("s3test: %s: read back: %w", loc, err)
	}
	return sameAsSent(loc, bytes.NewReader(obj.Content), w)
}
