package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// Arrow IPC (https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc)
// is a sequence of encapsulated messages:
//
//	0xFFFFFFFF  meta_len i32 LE  Message flatbuffer (meta_len bytes, padded)  body (Message.bodyLength bytes)
//
// (pre-1.0 writers omit the 0xFFFFFFFF) ending with 0xFFFFFFFF 0x00000000.
// A stream is Schema, then DictionaryBatch and RecordBatch messages. A file
// is "ARROW1" + 2 pad bytes, a stream, the footer flatbuffer, its i32 length
// and "ARROW1".
//
// Instead of decoding every batch to learn its row count, openIPC scans the
// message headers once (reading only metadata) and records each batch's
// offset and RecordBatch.length, verifying each message's flatbuffer (see
// verifyIPCMessage); a batch is then decoded on demand by
// feeding arrow-go's stream reader the schema, the dictionaries before it
// and the batch. The same scan serves both the stream and the file format.

const (
	ipcMagic          = "ARROW1"
	ipcMaxMetadata    = 64 << 20 // as arrow-go's default metadata limit
	ipcEOSContinuator = 0xFFFFFFFF
)

// ipcMessage locates one encapsulated message.
type ipcMessage struct {
	off, size int64 // whole message: prefix, metadata and body
	kind      byte
	rows      int64 // RecordBatch.length
}

// scanIPC indexes the messages in [start, end) of r.
func scanIPC(path string, r io.ReaderAt, start, end int64) (msgs []ipcMessage, err error) {
	var pre [8]byte
	for pos := start; pos < end; {
		if end-pos < 4 {
			return nil, corruptf(path, "arrow: truncated message at offset %d", pos)
		}
		n, _ := r.ReadAt(pre[:min(8, end-pos)], pos)
		prefix, metaLen := int64(4), int64(int32(binary.LittleEndian.Uint32(pre[:])))
		if binary.LittleEndian.Uint32(pre[:]) == ipcEOSContinuator {
			if n < 8 {
				return nil, corruptf(path, "arrow: truncated message at offset %d", pos)
			}
			prefix, metaLen = 8, int64(int32(binary.LittleEndian.Uint32(pre[4:])))
		}
		if metaLen == 0 {
			break // end-of-stream marker
		}
		if metaLen < 0 || metaLen > ipcMaxMetadata || metaLen > end-pos-prefix {
			return nil, corruptf(path, "arrow: message metadata length %d at offset %d exceeds the file", metaLen, pos)
		}
		meta := make([]byte, metaLen)
		if m, _ := r.ReadAt(meta, pos+prefix); int64(m) != metaLen {
			return nil, corruptf(path, "arrow: truncated message at offset %d", pos)
		}
		var msg ipcMessage
		var body int64
		msg.kind, msg.rows, body, err = verifyIPCMessage(meta)
		if err != nil {
			return nil, corruptf(path, "arrow: message at offset %d: %v", pos, err)
		}
		if body < 0 || body > end-pos-prefix-metaLen {
			return nil, corruptf(path, "arrow: message body of %d bytes at offset %d exceeds the file", body, pos)
		}
		msg.off, msg.size = pos, prefix+metaLen+body
		if len(msgs) == 0 && msg.kind != msgSchema {
			return nil, corruptf(path, "arrow: stream does not start with a schema")
		}
		msgs = append(msgs, msg)
		pos += msg.size
	}
	if len(msgs) == 0 {
		return nil, corruptf(path, "arrow: no schema message")
	}
	return msgs, nil
}

// ipcSource decodes the record batches of an indexed IPC stream on demand.
type ipcSource struct {
	path        string
	r           io.ReaderAt
	o           *Options
	sc          *arrow.Schema
	schema0     ipcMessage
	dicts       []ipcMessage // dictionary messages, in order
	batches     []ipcMessage
	dictsBefore []int   // number of dicts preceding each batch
	starts      []int64 // first row of each batch
	rows        int64
	cur         arrow.RecordBatch // owned
	curIdx      int
	closer      io.Closer
}

// ipcFileMessages returns where the messages of an Arrow IPC file of size
// bytes lie: between its leading magic and its footer, whose length is
// checked, never decoded.
func ipcFileMessages(path string, r io.ReaderAt, size int64) (start, end int64, err error) {
	var head, tail [10]byte
	if size < 18 {
		return 0, 0, corruptf(path, "arrow file of %d bytes is too short", size)
	}
	r.ReadAt(head[:], 0)
	r.ReadAt(tail[:], size-10)
	if string(head[:6]) != ipcMagic {
		return 0, 0, fmt.Errorf("%w: %s: not an Arrow IPC file (missing ARROW1 magic; for the stream format use .arrows)", ErrFormat, path)
	}
	flen := int64(int32(binary.LittleEndian.Uint32(tail[:4])))
	if string(tail[4:]) != ipcMagic || flen <= 0 || flen > size-18 {
		return 0, 0, corruptf(path, "arrow file without a valid footer (truncated?)")
	}
	return 8, size - 10 - flen, nil
}

// openIPC indexes the IPC data in r (size bytes). file selects the file
// format (magic, footer) over the stream format.
func openIPC(path string, r io.ReaderAt, size int64, o *Options, file bool) (ds *arrowDataset, err error) {
	s, err := indexIPC(path, r, size, o, file)
	if err != nil {
		return nil, err
	}
	return newArrowDataset(path, s, o)
}

// indexIPC verifies and indexes the messages of the IPC data in r and
// decodes its schema; the footer of the file format is never decoded
// (arrow-go trusts the lengths in it).
func indexIPC(path string, r io.ReaderAt, size int64, o *Options, file bool) (s *ipcSource, err error) {
	defer recovered(&err, path)
	start, end := int64(0), size
	if file {
		if start, end, err = ipcFileMessages(path, r, size); err != nil {
			return nil, err
		}
	}
	msgs, err := scanIPC(path, r, start, end)
	if err != nil {
		return nil, err
	}
	s = &ipcSource{path: path, r: r, o: o, schema0: msgs[0], curIdx: -1}
	for _, m := range msgs[1:] {
		switch m.kind {
		case msgDictionary:
			s.dicts = append(s.dicts, m)
		case msgRecordBatch:
			if m.rows == 0 {
				continue
			}
			if s.rows+m.rows < s.rows {
				return nil, corruptf(path, "arrow: row count overflows")
			}
			s.batches = append(s.batches, m)
			s.dictsBefore = append(s.dictsBefore, len(s.dicts))
			s.starts = append(s.starts, s.rows)
			s.rows += m.rows
		case msgSchema:
			return nil, corruptf(path, "arrow: second schema message at offset %d", m.off)
		}
	}
	// Decode the schema through arrow-go.
	rd, err := ipc.NewReader(s.messages(-1), ipc.WithAllocator(o.Allocator))
	if err != nil {
		return nil, corruptf(path, "arrow schema: %v", err)
	}
	s.sc = rd.Schema()
	rd.Release()
	return s, nil
}

// eos is the IPC end-of-stream marker.
var eos = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// messages returns a stream of the schema, the dictionaries before batch i
// and batch i (only the schema for i < 0).
func (s *ipcSource) messages(i int) io.Reader {
	section := func(m ipcMessage) io.Reader { return io.NewSectionReader(s.r, m.off, m.size) }
	parts := []io.Reader{section(s.schema0)}
	if i >= 0 {
		for _, d := range s.dicts[:s.dictsBefore[i]] {
			parts = append(parts, section(d))
		}
		parts = append(parts, section(s.batches[i]))
	}
	parts = append(parts, bytes.NewReader(eos))
	return io.MultiReader(parts...)
}

func (s *ipcSource) schema() *arrow.Schema { return s.sc }
func (s *ipcSource) numRows() int64        { return s.rows }

func (s *ipcSource) record(row int64) (rec arrow.RecordBatch, from int64, err error) {
	defer recovered(&err, s.path)
	i := batchIndex(s.starts, row)
	if i < 0 || row >= s.rows {
		return nil, 0, corruptf(s.path, "row %d out of range", row)
	}
	if i == s.curIdx {
		return s.cur, s.starts[i], nil
	}
	s.release()
	rd, err := ipc.NewReader(s.messages(i), ipc.WithAllocator(s.o.Allocator))
	if err != nil {
		return nil, 0, corruptf(s.path, "arrow: batch %d: %v", i, err)
	}
	defer rd.Release()
	if !rd.Next() {
		err := rd.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, corruptf(s.path, "arrow: batch %d: %v", i, err)
	}
	rec = rd.RecordBatch()
	if rec.NumRows() != s.batches[i].rows || !rec.Schema().Equal(s.sc) {
		return nil, 0, corruptf(s.path, "arrow: batch %d has %d rows, header says %d", i, rec.NumRows(), s.batches[i].rows)
	}
	rec.Retain()
	s.cur, s.curIdx = rec, i
	return rec, s.starts[i], nil
}

// release drops the current record.
func (s *ipcSource) release() {
	if s.cur != nil {
		s.cur.Release()
		s.cur, s.curIdx = nil, -1
	}
}

func (s *ipcSource) close() error {
	s.release()
	if s.closer != nil {
		err := s.closer.Close()
		s.closer = nil
		return err
	}
	return nil
}

func openIPCFile(path string, o *Options, stream bool) (Dataset, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	d, err := openIPC(path, f, size, o, !stream)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.src.(*ipcSource).closer = f
	return d, nil
}
