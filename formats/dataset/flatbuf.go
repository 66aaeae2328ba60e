package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A bounds-checked FlatBuffers reader and verifier for Arrow IPC message
// metadata (https://flatbuffers.dev/internals/,
// https://github.com/apache/arrow/blob/main/format/Message.fbs and
// Schema.fbs). arrow-go decodes these flatbuffers without verifying them:
// a forged vector length makes it allocate that many elements, and a
// forged cycle recurses without end. Both are fatal, not panics, so every
// message goes through verifyIPCMessage before arrow-go sees it.
//
// Layout: a table at pos starts with an i32 offset back to its vtable
// (vtable = pos - i32); the vtable holds u16 vtable size, u16 table size,
// then one u16 offset per field (from pos, 0 when absent). Offsets to
// tables, vectors and strings are u32 relative to where they are stored;
// a vector is a u32 length followed by its elements, a string is a byte
// vector with a NUL after it.

const (
	fbMaxDepth  = 64      // nesting of Field.children
	fbMaxTables = 1 << 16 // tables visited per message (bounds DAG blow-up)
)

// fbTable is a verified table: its bytes are b[pos:pos+size].
type fbTable struct {
	b         []byte
	pos, size int
	vt, vtLen int
}

// fbVerifier walks a flatbuffer with a budget of tables.
type fbVerifier struct {
	b      []byte
	tables int
}

var errFlatbuf = errors.New("malformed flatbuffer")

func (v *fbVerifier) u32(p int) (int, error) {
	if p < 0 || p+4 > len(v.b) {
		return 0, errFlatbuf
	}
	return int(binary.LittleEndian.Uint32(v.b[p:])), nil
}

// table verifies the table at pos.
func (v *fbVerifier) table(pos int) (fbTable, error) {
	if v.tables++; v.tables > fbMaxTables {
		return fbTable{}, fmt.Errorf("more than %d tables", fbMaxTables)
	}
	if pos < 0 || pos+4 > len(v.b) {
		return fbTable{}, errFlatbuf
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(v.b[pos:])))
	if vt < 0 || vt+4 > len(v.b) {
		return fbTable{}, errFlatbuf
	}
	vtLen := int(binary.LittleEndian.Uint16(v.b[vt:]))
	size := int(binary.LittleEndian.Uint16(v.b[vt+2:]))
	if vtLen < 4 || vtLen%2 != 0 || vt+vtLen > len(v.b) || size < 4 || pos+size > len(v.b) {
		return fbTable{}, errFlatbuf
	}
	return fbTable{b: v.b, pos: pos, size: size, vt: vt, vtLen: vtLen}, nil
}

// field returns the position of field i of width bytes, or ok == false if
// it is absent. A field outside its table is an error.
func (t fbTable) field(i, width int) (int, bool, error) {
	o := 4 + 2*i
	if o+2 > t.vtLen {
		return 0, false, nil
	}
	fo := int(binary.LittleEndian.Uint16(t.b[t.vt+o:]))
	if fo == 0 {
		return 0, false, nil
	}
	if fo+width > t.size {
		return 0, false, errFlatbuf
	}
	return t.pos + fo, true, nil
}

// uint8 returns scalar field i, or 0 if absent.
func (t fbTable) uint8(i int) byte {
	if p, ok, err := t.field(i, 1); ok && err == nil {
		return t.b[p]
	}
	return 0
}

// int64 returns scalar field i, or 0 if absent.
func (t fbTable) int64(i int) int64 {
	if p, ok, err := t.field(i, 8); ok && err == nil {
		return int64(binary.LittleEndian.Uint64(t.b[p:]))
	}
	return 0
}

// ref follows the u32 offset in field i of t.
func (v *fbVerifier) ref(t fbTable, i int) (int, bool, error) {
	p, ok, err := t.field(i, 4)
	if !ok || err != nil {
		return 0, ok, err
	}
	off, err := v.u32(p)
	return p + off, true, err
}

// subTable verifies the table referenced by field i, if present.
func (v *fbVerifier) subTable(t fbTable, i int) (fbTable, bool, error) {
	p, ok, err := v.ref(t, i)
	if !ok || err != nil {
		return fbTable{}, ok, err
	}
	sub, err := v.table(p)
	return sub, true, err
}

// vector verifies the vector in field i with elements of elemSize bytes
// and returns the position of its first element and its length.
func (v *fbVerifier) vector(t fbTable, i, elemSize int) (start, n int, err error) {
	p, ok, err := v.ref(t, i)
	if !ok || err != nil {
		return 0, 0, err
	}
	n, err = v.u32(p)
	if err != nil || n > (len(v.b)-p-4)/elemSize {
		return 0, 0, errFlatbuf
	}
	return p + 4, n, nil
}

// str verifies the string in field i.
func (v *fbVerifier) str(t fbTable, i int) error {
	start, n, err := v.vector(t, i, 1)
	if err == nil && n > 0 && start+n >= len(v.b) {
		return errFlatbuf // no room for the NUL terminator
	}
	return err
}

// tables verifies the vector of tables in field i, calling fn on each.
func (v *fbVerifier) tableVector(t fbTable, i int, fn func(fbTable) error) error {
	start, n, err := v.vector(t, i, 4)
	if err != nil {
		return err
	}
	for k := range n {
		e := start + 4*k
		off, _ := v.u32(e)
		sub, err := v.table(e + off)
		if err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// keyValues verifies a [KeyValue] field (key:string, value:string).
func (v *fbVerifier) keyValues(t fbTable, i int) error {
	return v.tableVector(t, i, func(kv fbTable) error {
		if err := v.str(kv, 0); err != nil {
			return err
		}
		return v.str(kv, 1)
	})
}

// Arrow flatbuffer field indices and enum values used below.
const (
	fbMessageHeaderType = 1 // Message.header_type
	fbMessageHeader     = 2 // Message.header
	fbMessageBodyLen    = 3 // Message.bodyLength
	fbMessageMeta       = 4 // Message.custom_metadata
	fbRecordLength      = 0 // RecordBatch.length
	msgSchema           = 1 // MessageHeader values
	msgDictionary       = 2
	msgRecordBatch      = 3
	typeTimestamp       = 10 // Type values with non-scalar fields
	typeUnion           = 14
)

// verifyIPCMessage verifies the Message flatbuffer meta and returns its
// header type, record count (RecordBatch.length) and body length.
func verifyIPCMessage(meta []byte) (kind byte, rows, body int64, err error) {
	v := &fbVerifier{b: meta}
	rootPos, err := v.u32(0)
	if err != nil {
		return 0, 0, 0, err
	}
	root, err := v.table(rootPos)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := v.keyValues(root, fbMessageMeta); err != nil {
		return 0, 0, 0, err
	}
	kind, body = root.uint8(fbMessageHeaderType), root.int64(fbMessageBodyLen)
	hdr, ok, err := v.subTable(root, fbMessageHeader)
	if err != nil {
		return 0, 0, 0, err
	}
	if !ok {
		return 0, 0, 0, errors.New("message has no header")
	}
	switch kind {
	case msgSchema:
		err = v.schema(hdr)
	case msgRecordBatch:
		rows = hdr.int64(fbRecordLength)
		if rows < 0 {
			return 0, 0, 0, fmt.Errorf("negative record batch length %d", rows)
		}
		err = v.recordBatch(hdr, body)
	case msgDictionary:
		var data fbTable
		if data, ok, err = v.subTable(hdr, 1); err == nil && ok {
			err = v.recordBatch(data, body)
		}
	default:
		return 0, 0, 0, fmt.Errorf("unsupported message type %d (tensors are not tables)", kind)
	}
	return kind, rows, body, err
}

// schema verifies Schema{endianness, fields:[Field], custom_metadata, features:[long]}.
func (v *fbVerifier) schema(t fbTable) error {
	if err := v.tableVector(t, 1, func(f fbTable) error { return v.field(f, 0) }); err != nil {
		return err
	}
	if err := v.keyValues(t, 2); err != nil {
		return err
	}
	_, _, err := v.vector(t, 3, 8)
	return err
}

// field verifies Field{name, nullable, type_type, type, dictionary,
// children:[Field], custom_metadata}.
func (v *fbVerifier) field(t fbTable, depth int) error {
	if depth > fbMaxDepth {
		return fmt.Errorf("fields nested deeper than %d", fbMaxDepth)
	}
	if err := v.str(t, 0); err != nil {
		return err
	}
	if typ, ok, err := v.subTable(t, 3); err != nil {
		return err
	} else if ok {
		switch t.uint8(2) {
		case typeTimestamp: // Timestamp{unit, timezone:string}
			err = v.str(typ, 1)
		case typeUnion: // Union{mode, typeIds:[int]}
			_, _, err = v.vector(typ, 1, 4)
		}
		if err != nil {
			return err
		}
	}
	if dict, ok, err := v.subTable(t, 4); err != nil { // DictionaryEncoding{id, indexType:Int, ...}
		return err
	} else if ok {
		if _, _, err := v.subTable(dict, 1); err != nil {
			return err
		}
	}
	if err := v.tableVector(t, 5, func(c fbTable) error { return v.field(c, depth+1) }); err != nil {
		return err
	}
	return v.keyValues(t, 6)
}

// recordBatch verifies RecordBatch{length, nodes:[FieldNode], buffers:[Buffer],
// compression, variadicBufferCounts:[long]} and that every buffer lies in
// the body.
func (v *fbVerifier) recordBatch(t fbTable, body int64) error {
	if _, _, err := v.vector(t, 1, 16); err != nil { // FieldNode{length, null_count}
		return err
	}
	start, n, err := v.vector(t, 2, 16) // Buffer{offset, length}
	if err != nil {
		return err
	}
	for k := range n {
		off := int64(binary.LittleEndian.Uint64(v.b[start+16*k:]))
		size := int64(binary.LittleEndian.Uint64(v.b[start+16*k+8:]))
		if off < 0 || size < 0 || off > body || size > body-off {
			return fmt.Errorf("buffer %d (offset %d, length %d) outside the %d-byte body", k, off, size, body)
		}
	}
	if _, _, err := v.subTable(t, 3); err != nil {
		return err
	}
	_, _, err = v.vector(t, 4, 8)
	return err
}
