package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// csvDataset is a CSV file parsed fully into memory: its features as one
// row-major []float32 and its labels as []int64. Open refuses files larger
// than Options.MaxInMemoryBytes.
type csvDataset struct {
	path string
	col  Column
	x    []float32
	y    []int64 // nil without labels
	rows int
}

// openCSV parses the CSV text in data. The first record is a header when
// any of its fields is not a number; without a header the columns are
// named "0", "1", ... in order.
func openCSV(path string, data []byte, o *Options) (*csvDataset, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	r.TrimLeadingSpace = true
	first, err := r.Read()
	if err == io.EOF {
		return nil, corruptf(path, "empty CSV file; want a header or numeric rows")
	}
	if err != nil {
		return nil, corruptf(path, "%v", err)
	}
	first = slices.Clone(first)
	header := false
	for _, f := range first {
		if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err != nil {
			header = true
			break
		}
	}
	names := make([]string, len(first))
	for i := range first {
		names[i] = strconv.Itoa(i)
		if header {
			names[i] = strings.TrimSpace(first[i])
		}
	}
	index := func(name string) int { return slices.Index(names, name) }

	labelCol := -1
	if name, required := o.labelName(); name != "" {
		labelCol = index(name)
		if labelCol < 0 && required {
			return nil, fmt.Errorf("%w: %s: no label column %q among %q", ErrColumn, path, name, names)
		}
	}
	var feats []int
	if len(o.Features) > 0 {
		for _, name := range o.Features {
			i := index(name)
			if i < 0 {
				return nil, fmt.Errorf("%w: %s: no feature column %q among %q", ErrColumn, path, name, names)
			}
			feats = append(feats, i)
		}
	} else {
		for i := range names {
			if i != labelCol {
				feats = append(feats, i)
			}
		}
	}
	if len(feats) == 0 {
		return nil, fmt.Errorf("%w: %s: no feature columns besides the label", ErrColumn, path)
	}

	d := &csvDataset{path: path, col: Column{Name: o.FeatureName, DType: Float32, Shape: []int{len(feats)}}}
	if labelCol >= 0 {
		d.y = []int64{}
	}
	line := 1
	parse := func(rec []string) error {
		if len(rec) != len(names) {
			return fmt.Errorf("%w: %s: line %d has %d fields, want %d", ErrShape, path, line, len(rec), len(names))
		}
		for _, i := range feats {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return corruptf(path, "line %d column %q: %q is not a number", line, names[i], rec[i])
			}
			d.x = append(d.x, float32(v))
		}
		if labelCol >= 0 {
			s := strings.TrimSpace(rec[labelCol])
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				f, ferr := strconv.ParseFloat(s, 64)
				var ok bool
				if v, ok = floatLabel(f); ferr != nil || !ok {
					return corruptf(path, "line %d label %q is not an integer", line, s)
				}
			}
			d.y = append(d.y, v)
		}
		d.rows++
		return nil
	}
	if !header {
		if err := parse(first); err != nil {
			return nil, err
		}
	}
	r.FieldsPerRecord = -1
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, corruptf(path, "%v", err)
		}
		line, _ = r.FieldPos(0)
		if err := parse(rec); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func openCSVFile(path string, o *Options) (Dataset, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > o.MaxInMemoryBytes {
		return nil, fmt.Errorf("%w: %s: CSV of %d bytes is loaded into memory and exceeds %d; raise Options.MaxInMemoryBytes or convert it to Parquet", ErrLimit, path, size, o.MaxInMemoryBytes)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("dataset: reading %s: %w", path, err)
	}
	return openCSV(path, data, o)
}

func (d *csvDataset) Len() int          { return d.rows }
func (d *csvDataset) Columns() []Column { return []Column{d.col} }
func (d *csvDataset) Label() bool       { return d.y != nil }
func (d *csvDataset) Files() []string   { return []string{d.path} }
func (d *csvDataset) Close() error      { d.x, d.y, d.rows = nil, nil, 0; return nil }

func (d *csvDataset) Read(start, n int, dst *Batch) error {
	dst.reset([]Column{d.col}, d.y != nil)
	n, err := checkRange(start, n, d.rows)
	if err != nil {
		return err
	}
	w := d.col.Shape[0]
	for i := range n {
		dst.Rows = append(dst.Rows, int64(start+i))
	}
	dst.Cols[d.col.Name] = append(dst.Cols[d.col.Name], d.x[start*w:(start+n)*w]...)
	if d.y != nil {
		dst.Labels = append(dst.Labels, d.y[start:start+n]...)
	}
	return nil
}
