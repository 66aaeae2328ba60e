package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

// Marshal returns the ONNX model of the checkpoint's student (see Write).
func Marshal(c *train.Checkpoint, opts *Options) ([]byte, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	m, err := build(c, o)
	if err != nil {
		return nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("export: encode: %w", err)
	}
	return data, nil
}

// Write writes the checkpoint's student to w as an ONNX model: the graph
// input is named like the teacher's (CheckpointInfo.Input) with the
// teacher's per-sample shape and a symbolic batch axis "N"; the output is
// LogitsName [N, classes] (and ProbsName with Options.Probs); the metadata
// records the provenance (Meta* keys). A nil opts means the defaults. The
// same checkpoint and options always give the same bytes. Errors about
// what cannot be exported wrap ErrUnsupported; nothing is written then.
func Write(w io.Writer, c *train.Checkpoint, opts *Options) error {
	data, err := Marshal(c, opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// WriteFile writes the model as Write does to path, atomically: to a
// temporary file in the same directory, synced, then renamed over path
// (mode 0644). On any error nothing is left behind and an existing file
// at path is unchanged. A path that is a directory is an error.
//
// A remote path (s3://, gs://; package internal/store) is uploaded as one
// object that appears whole on success and not at all on error.
func WriteFile(path string, c *train.Checkpoint, opts *Options) error {
	if store.IsRemote(path) {
		data, err := Marshal(c, opts)
		if err != nil {
			return err
		}
		return writeRemoteFile(context.Background(), path, data)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("export: %s is a directory; give the path of the .onnx file to write", path)
	}
	var buf bytes.Buffer
	if err := Write(&buf, c, opts); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("export: writing %s: %w", path, err)
	}
	return nil
}
