package dataset

import "encoding/binary"

// fbTable is a bounds-checked view of a FlatBuffers table
// (https://flatbuffers.dev/internals/): a table at pos starts with an i32
// offset back to its vtable; the vtable holds u16 vtable size, u16 table
// size, then one u16 offset (from pos) per field, 0 when absent. Only the
// few Arrow Message fields the IPC scan needs are read; every access is
// checked, so malformed metadata yields defaults or !ok, never a panic.
type fbTable struct {
	b   []byte
	pos int
}

// fbRoot returns the root table of buffer b.
func fbRoot(b []byte) (fbTable, bool) {
	if len(b) < 4 {
		return fbTable{}, false
	}
	t := fbTable{b: b, pos: int(binary.LittleEndian.Uint32(b))}
	return t, t.pos >= 0 && t.pos+4 <= len(b)
}

// field returns the absolute position of field i of width bytes, or false
// if it is absent or out of bounds.
func (t fbTable) field(i, width int) (int, bool) {
	if t.pos < 0 || t.pos+4 > len(t.b) {
		return 0, false
	}
	vt := t.pos - int(int32(binary.LittleEndian.Uint32(t.b[t.pos:])))
	if vt < 0 || vt+4 > len(t.b) {
		return 0, false
	}
	vtSize := int(binary.LittleEndian.Uint16(t.b[vt:]))
	o := 4 + 2*i
	if o+2 > vtSize || vt+o+2 > len(t.b) {
		return 0, false
	}
	fo := int(binary.LittleEndian.Uint16(t.b[vt+o:]))
	if fo == 0 || t.pos+fo+width > len(t.b) {
		return 0, false
	}
	return t.pos + fo, true
}

// uint8 returns scalar field i, or 0 if absent.
func (t fbTable) uint8(i int) byte {
	if p, ok := t.field(i, 1); ok {
		return t.b[p]
	}
	return 0
}

// int64 returns scalar field i, or 0 if absent.
func (t fbTable) int64(i int) int64 {
	if p, ok := t.field(i, 8); ok {
		return int64(binary.LittleEndian.Uint64(t.b[p:]))
	}
	return 0
}

// table follows the offset in field i to a sub-table.
func (t fbTable) table(i int) (fbTable, bool) {
	p, ok := t.field(i, 4)
	if !ok {
		return fbTable{}, false
	}
	sub := fbTable{b: t.b, pos: p + int(binary.LittleEndian.Uint32(t.b[p:]))}
	return sub, sub.pos >= 0 && sub.pos+4 <= len(t.b)
}
