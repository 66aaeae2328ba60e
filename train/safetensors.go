package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
)

// The safetensors format (https://huggingface.co/docs/safetensors), as
// written by WriteSafetensors and read by ReadSafetensors:
//
//	[8 bytes]  N, little-endian uint64: header length
//	[N bytes]  JSON header, padded with spaces to a multiple of 8:
//	           {"__metadata__": {"key": "value", ...},
//	            "NAME": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//	[rest]     tensor data, little-endian, row-major; offsets relative to the
//	           start of this buffer, tensors contiguous without gaps
//
// Only dtype F32 is written or read.

// ErrCheckpoint reports a checkpoint or safetensors file that cannot be
// decoded or does not match what it should hold.
var ErrCheckpoint = errors.New("train: bad checkpoint")

// maxHeaderBytes bounds a safetensors header (the reference
// implementation's limit).
const maxHeaderBytes = 100 << 20

// WriteSafetensors writes the tensors, in order, and the metadata to w.
func WriteSafetensors(w io.Writer, tensors []*Param, metadata map[string]string) error {
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		h.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(metadata[k])
			h.Write(kb)
			h.WriteByte(':')
			h.Write(vb)
		}
		h.WriteString("}")
	}
	seen := map[string]bool{}
	var off int64
	for i, t := range tensors {
		if seen[t.Name] || t.Name == "__metadata__" {
			return fmt.Errorf("train: safetensors: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		if len(t.Data) != t.Size() {
			return fmt.Errorf("train: safetensors: tensor %s has %d values for shape %v", t.Name, len(t.Data), t.Shape)
		}
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		nb, _ := json.Marshal(t.Name)
		h.Write(nb)
		h.WriteString(`:{"dtype":"F32","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + 4*int64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(h.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(h.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

// ReadSafetensors decodes a safetensors file into tensors (Params without
// Grad) in the order of their data. It checks every size against
// len(data) before allocating, so corrupt bytes yield an error wrapping
// ErrCheckpoint, never a panic or an allocation beyond about len(data).
func ReadSafetensors(data []byte) ([]*Param, map[string]string, error) {
	bad := func(format string, args ...any) ([]*Param, map[string]string, error) {
		return nil, nil, fmt.Errorf("%w: safetensors: %s", ErrCheckpoint, fmt.Sprintf(format, args...))
	}
	if len(data) < 8 {
		return bad("%d bytes, shorter than the header length", len(data))
	}
	hn := binary.LittleEndian.Uint64(data[:8])
	if hn > maxHeaderBytes || hn > uint64(len(data)-8) {
		return bad("header length %d exceeds the file (%d bytes) or %d", hn, len(data), maxHeaderBytes)
	}
	header, buf := data[8:8+hn], data[8+hn:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return bad("header: %v", err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return bad("__metadata__: %v", err)
		}
		delete(raw, "__metadata__")
	}
	type entry struct {
		name       string
		shape      []int
		begin, end int64
	}
	entries := make([]entry, 0, len(raw))
	for name, msg := range raw {
		var e struct {
			Dtype   string  `json:"dtype"`
			Shape   []int64 `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return bad("tensor %q: %v", name, err)
		}
		if e.Dtype != "F32" {
			return bad("tensor %q has dtype %q; only F32 is supported", name, e.Dtype)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > int64(len(buf)) {
			return bad("tensor %q: data_offsets %v outside the %d data bytes", name, e.Offsets, len(buf))
		}
		count := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 || (d > 0 && count > int64(len(buf))/d) {
				return bad("tensor %q: shape %v too large for the file", name, e.Shape)
			}
			count *= d
			shape[i] = int(d)
		}
		if 4*count != e.Offsets[1]-e.Offsets[0] {
			return bad("tensor %q: shape %v needs %d bytes, data_offsets %v give %d", name, e.Shape, 4*count, e.Offsets, e.Offsets[1]-e.Offsets[0])
		}
		entries = append(entries, entry{name, shape, e.Offsets[0], e.Offsets[1]})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return int(min(max(a.begin-b.begin, -1), 1))
		}
		return int(min(max(a.end-b.end, -1), 1))
	})
	var next int64
	for _, e := range entries {
		if e.begin != next {
			return bad("tensor %q starts at %d, want %d (tensors must be contiguous)", e.name, e.begin, next)
		}
		next = e.end
	}
	if next != int64(len(buf)) {
		return bad("tensors end at byte %d of %d", next, len(buf))
	}
	out := make([]*Param, 0, len(entries))
	for _, e := range entries {
		vals := make([]float32, (e.end-e.begin)/4)
		b := buf[e.begin:e.end]
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out = append(out, &Param{Name: e.name, Shape: e.shape, Data: vals})
	}
	return out, meta, nil
}
