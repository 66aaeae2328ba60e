package formats

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Pre-validation of Arrow IPC files. arrow-go trusts the lengths of
// flatbuffer vectors in the footer and message headers and allocates from
// them (make([]arrow.Field, n) for n from the file), so a few hostile bytes
// could ask for terabytes. Before handing a file to arrow/ipc, these checks
// walk the flatbuffers with bounds checks and accept only the shapes a
// cache part can have: fields of Int, FloatingPoint, FixedSizeList or List
// type, nested at most once, no dictionaries, short metadata vectors.
//
// Flatbuffer layout (flatbuffers.dev, "Internals"): a buffer starts with a
// uint32 offset to the root table; a table starts with an int32 offset back
// to its vtable; a vtable is uint16 vtable size, uint16 table size, then one
// uint16 offset per field slot (0 = absent); reference fields hold a uint32
// offset forward from their own position; a vector is a uint32 length
// followed by its elements.

// Limits of the accepted IPC structure.
const (
	ipcMaxFields   = maxTensors + 8 // top-level columns
	ipcMaxMetadata = 4096           // key/value pairs per metadata vector
)

// flatbuffers type ids used by arrow (format/Schema.fbs, enum Type).
const (
	fbTypeInt           = 2
	fbTypeFloatingPoint = 3
	fbTypeList          = 12
	fbTypeFixedSizeList = 16
	fbHeaderSchema      = 1 // format/Message.fbs, union MessageHeader
	fbHeaderRecordBatch = 3
)

var errFlatbuffer = errors.New("malformed flatbuffer")

type fbTable struct {
	b   []byte
	pos int // table start
	vt  int // vtable start
	vtn int // vtable size in bytes
}

func fbU32(b []byte, at int) (int, bool) {
	if at < 0 || at > len(b)-4 {
		return 0, false
	}
	return int(binary.LittleEndian.Uint32(b[at:])), true
}

// fbRoot returns the root table of a flatbuffer.
func fbRoot(b []byte) (fbTable, error) {
	off, ok := fbU32(b, 0)
	if !ok {
		return fbTable{}, errFlatbuffer
	}
	return fbTableAt(b, off)
}

func fbTableAt(b []byte, pos int) (fbTable, error) {
	so, ok := fbU32(b, pos)
	if !ok {
		return fbTable{}, errFlatbuffer
	}
	vt := pos - int(int32(uint32(so)))
	if vt < 0 || vt > len(b)-4 {
		return fbTable{}, errFlatbuffer
	}
	vtn := int(binary.LittleEndian.Uint16(b[vt:]))
	if vtn < 4 || vtn%2 != 0 || vt > len(b)-vtn {
		return fbTable{}, errFlatbuffer
	}
	return fbTable{b: b, pos: pos, vt: vt, vtn: vtn}, nil
}

// field returns the absolute position of slot's value, 0 if absent, checking
// that size bytes are in the buffer.
func (t fbTable) field(slot, size int) (int, error) {
	at := 4 + 2*slot
	if at+2 > t.vtn {
		return 0, nil
	}
	off := int(binary.LittleEndian.Uint16(t.b[t.vt+at:]))
	if off == 0 {
		return 0, nil
	}
	p := t.pos + off
	if p > len(t.b)-size {
		return 0, errFlatbuffer
	}
	return p, nil
}

// ref follows the uint32 offset stored in slot; 0 if absent.
func (t fbTable) ref(slot int) (int, error) {
	p, err := t.field(slot, 4)
	if err != nil || p == 0 {
		return 0, err
	}
	off, _ := fbU32(t.b, p)
	return p + off, nil
}

// vector returns the element start and length of the vector in slot,
// checking that n elements of elem bytes fit in the buffer.
func (t fbTable) vector(slot, elem int) (start, n int, err error) {
	p, err := t.ref(slot)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	n, ok := fbU32(t.b, p)
	if !ok || n > (len(t.b)-p-4)/elem {
		return 0, 0, errFlatbuffer
	}
	return p + 4, n, nil
}

// tables returns the tables of a vector of tables in slot.
func (t fbTable) tables(slot, max int) ([]fbTable, error) {
	start, n, err := t.vector(slot, 4)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%d entries, at most %d accepted", n, max)
	}
	out := make([]fbTable, n)
	for i := range out {
		off, _ := fbU32(t.b, start+4*i)
		if out[i], err = fbTableAt(t.b, start+4*i+off); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t fbTable) u8(slot int) (int, error) {
	p, err := t.field(slot, 1)
	if err != nil || p == 0 {
		return 0, err
	}
	return int(t.b[p]), nil
}

func (t fbTable) i64(slot int) (int64, error) {
	p, err := t.field(slot, 8)
	if err != nil || p == 0 {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(t.b[p:])), nil
}

// checkKeyValues checks a vector of KeyValue tables (two strings each).
func (t fbTable) checkKeyValues(slot int) error {
	kvs, err := t.tables(slot, ipcMaxMetadata)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, kv := range kvs {
		for s := 0; s < 2; s++ {
			if _, _, err := kv.vector(s, 1); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
		}
	}
	return nil
}

// ipcBlock is a footer Block: where a record batch message is in the file.
type ipcBlock struct {
	offset int64
	meta   int32
	body   int64
}

// checkIPCFooter validates the footer of an Arrow IPC file of size bytes
// and returns its record batch blocks.
func checkIPCFooter(r io.ReaderAt, size int64) ([]ipcBlock, error) {
	const tail = 10 // int32 footer length + "ARROW1"
	if size < 8+tail {
		return nil, errors.New("file too short for Arrow IPC")
	}
	var end [tail]byte
	if _, err := r.ReadAt(end[:], size-tail); err != nil {
		return nil, err
	}
	if string(end[4:]) != "ARROW1" {
		return nil, errors.New("missing Arrow IPC end marker (truncated file?)")
	}
	n := int64(binary.LittleEndian.Uint32(end[:4]))
	if n < 4 || n > maxMetaBytes || n > size-8-tail {
		return nil, fmt.Errorf("footer length %d out of range", n)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-tail-n); err != nil {
		return nil, err
	}
	footer, err := fbRoot(buf)
	if err != nil {
		return nil, fmt.Errorf("footer: %w", err)
	}
	if _, nd, err := footer.vector(2, 24); err != nil || nd != 0 {
		return nil, fmt.Errorf("footer: dictionaries not accepted (%d, %v)", nd, err)
	}
	if err := footer.checkKeyValues(4); err != nil {
		return nil, fmt.Errorf("footer: %w", err)
	}
	sp, err := footer.ref(1)
	if err != nil || sp == 0 {
		return nil, errors.New("footer: no schema")
	}
	schema, err := fbTableAt(buf, sp)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if err := checkIPCSchema(schema); err != nil {
		return nil, err
	}
	start, nb, err := footer.vector(3, 24)
	if err != nil {
		return nil, fmt.Errorf("footer record batches: %w", err)
	}
	blocks := make([]ipcBlock, nb)
	for i := range blocks {
		p := start + 24*i
		blocks[i] = ipcBlock{
			offset: int64(binary.LittleEndian.Uint64(buf[p:])),
			meta:   int32(binary.LittleEndian.Uint32(buf[p+8:])),
			body:   int64(binary.LittleEndian.Uint64(buf[p+16:])),
		}
	}
	return blocks, nil
}

// checkIPCSchema validates a Schema table.
func checkIPCSchema(schema fbTable) error {
	if err := schema.checkKeyValues(2); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if _, _, err := schema.vector(3, 8); err != nil {
		return fmt.Errorf("schema features: %w", err)
	}
	fields, err := schema.tables(1, ipcMaxFields)
	if err != nil {
		return fmt.Errorf("schema fields: %w", err)
	}
	for i, f := range fields {
		if err := checkIPCField(f, 0); err != nil {
			return fmt.Errorf("schema field %d: %w", i, err)
		}
	}
	return nil
}

// checkArrowSchemaMessage validates the serialized Arrow schema a Parquet
// file stores under "ARROW:schema" (base64 of an IPC schema message),
// which pqarrow decodes with the same trusting code as IPC footers.
func checkArrowSchemaMessage(b64 string) error {
	buf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// pqarrow also accepts unpadded base64; let it try.
		if buf, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return fmt.Errorf("ARROW:schema: %w", err)
		}
	}
	if len(buf) < 8 {
		return errors.New("ARROW:schema: too short")
	}
	prefix := 4
	if binary.LittleEndian.Uint32(buf) == 0xFFFFFFFF {
		prefix = 8
	}
	n, _ := fbU32(buf, prefix-4)
	if n > len(buf)-prefix {
		return errors.New("ARROW:schema: message length out of range")
	}
	buf = buf[prefix : prefix+n]
	msg, err := fbRoot(buf)
	if err != nil {
		return fmt.Errorf("ARROW:schema: %w", err)
	}
	if err := msg.checkKeyValues(4); err != nil {
		return fmt.Errorf("ARROW:schema message: %w", err)
	}
	if ht, err := msg.u8(1); err != nil || ht != fbHeaderSchema {
		return fmt.Errorf("ARROW:schema: message is not a schema (header type %d)", ht)
	}
	hp, err := msg.ref(2)
	if err != nil || hp == 0 {
		return errors.New("ARROW:schema: message has no header")
	}
	schema, err := fbTableAt(buf, hp)
	if err != nil {
		return fmt.Errorf("ARROW:schema: %w", err)
	}
	if err := checkIPCSchema(schema); err != nil {
		return fmt.Errorf("ARROW:schema: %w", err)
	}
	return nil
}

// checkIPCField accepts Int, FloatingPoint, and FixedSizeList or List of
// Int|Float.
func checkIPCField(f fbTable, depth int) error {
	if _, _, err := f.vector(0, 1); err != nil { // name
		return err
	}
	if p, err := f.field(4, 4); err != nil || p != 0 {
		return errors.New("dictionary-encoded field not accepted")
	}
	if err := f.checkKeyValues(6); err != nil {
		return err
	}
	tt, err := f.u8(2)
	if err != nil {
		return err
	}
	if tp, err := f.ref(3); err != nil || tp == 0 {
		return errors.New("field has no type")
	} else if _, err := fbTableAt(f.b, tp); err != nil {
		return err
	}
	children, err := f.tables(5, 1)
	if err != nil {
		return fmt.Errorf("children: %w", err)
	}
	switch {
	case tt == fbTypeInt || tt == fbTypeFloatingPoint:
		if len(children) != 0 {
			return errors.New("primitive field with children")
		}
	case (tt == fbTypeFixedSizeList || tt == fbTypeList) && depth == 0:
		if len(children) != 1 {
			return errors.New("list without one child")
		}
		return checkIPCField(children[0], depth+1)
	default:
		return fmt.Errorf("field type %d not accepted in a cache part", tt)
	}
	return nil
}

// checkIPCMessage reads and validates the metadata of the record batch at
// blk and returns its row count. Arrow re-reads and re-validates the block.
func checkIPCMessage(r io.ReaderAt, size int64, blk ipcBlock, ncols int) (int64, error) {
	if blk.offset < 0 || blk.meta < 8 || int64(blk.meta) > maxMetaBytes || blk.offset > size-int64(blk.meta) {
		return 0, fmt.Errorf("record batch block [%d, +%d) outside file of %d bytes", blk.offset, blk.meta, size)
	}
	buf := make([]byte, blk.meta)
	if _, err := r.ReadAt(buf, blk.offset); err != nil {
		return 0, err
	}
	prefix := 4
	if binary.LittleEndian.Uint32(buf) == 0xFFFFFFFF {
		prefix = 8
	}
	buf = buf[prefix:]
	msg, err := fbRoot(buf)
	if err != nil {
		return 0, fmt.Errorf("message: %w", err)
	}
	if err := msg.checkKeyValues(4); err != nil {
		return 0, fmt.Errorf("message: %w", err)
	}
	if ht, err := msg.u8(1); err != nil || ht != fbHeaderRecordBatch {
		return 0, fmt.Errorf("message is not a record batch (header type %d)", ht)
	}
	hp, err := msg.ref(2)
	if err != nil || hp == 0 {
		return 0, errors.New("message has no header")
	}
	rb, err := fbTableAt(buf, hp)
	if err != nil {
		return 0, fmt.Errorf("record batch: %w", err)
	}
	rows, err := rb.i64(0)
	if err != nil {
		return 0, fmt.Errorf("record batch: %w", err)
	}
	// One node per column and per list child; up to 3 buffers per node.
	if _, n, err := rb.vector(1, 16); err != nil || n > 2*ncols {
		return 0, fmt.Errorf("record batch: %d field nodes for %d columns", n, ncols)
	}
	if _, n, err := rb.vector(2, 16); err != nil || n > 6*ncols {
		return 0, fmt.Errorf("record batch: %d buffers for %d columns", n, ncols)
	}
	if _, n, err := rb.vector(4, 8); err != nil || n != 0 {
		return 0, errors.New("record batch: variadic buffers not accepted")
	}
	if rows < 0 {
		return 0, fmt.Errorf("record batch: %d rows", rows)
	}
	return rows, nil
}
