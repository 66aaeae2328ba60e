package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
func WriteFile(path string, c *train.Checkpoint, opts *Options) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("export: %s is a directory; give the path of the .onnx file to write", path)
	}
	var buf bytes.Buffer
	if err := Write(&buf, c, opts); err != nil {
		return err
	}
	return writeAtomic(path, buf.Bytes())
}

func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("export: writing %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable; a directory that cannot be synced (some
	// network file systems) is not an error.
	if d, derr := os.Open(dir); derr == nil {
		if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
			d.Close()
			return serr
		}
		d.Close()
	}
	return nil
}
