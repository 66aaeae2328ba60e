package dataset

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// recordSource yields the Arrow record batches of a Parquet or Arrow IPC
// file by row. Implementations keep at most one record in memory.
type recordSource interface {
	// schema is the schema of the records returned by record.
	schema() *arrow.Schema
	// numRows is the total row count.
	numRows() int64
	// record returns a record containing row and the index of its first
	// row. The source owns the record: it is valid until the next call.
	record(row int64) (arrow.RecordBatch, int64, error)
	close() error
}

// tensorCol is a list-typed field read as one tensor per row.
type tensorCol struct {
	field  string
	levels []int // list length per nesting level; -1 until known
	meta   []int // per-row shape from MetaShape metadata, or nil
}

// arrowPlan maps an Arrow schema onto dataset columns.
type arrowPlan struct {
	cols     []Column
	tensors  []tensorCol // cols[i] for i < len(tensors)
	combined []string    // scalar fields forming the last column, or nil
	label    string      // label field, or ""
}

// fields returns the names of the fields the plan reads.
func (p *arrowPlan) fields() []string {
	var out []string
	for _, t := range p.tensors {
		out = append(out, t.field)
	}
	out = append(out, p.combined...)
	if p.label != "" {
		out = append(out, p.label)
	}
	return out
}

// tensorLevels returns the list lengths of a list-of-...-of-numbers type
// (-1 for variable-length levels) and its element type, or ok == false.
func tensorLevels(t arrow.DataType) (levels []int, leaf DType, ok bool) {
	for depth := 0; depth < 8; depth++ {
		switch lt := t.(type) {
		case *arrow.FixedSizeListType:
			levels = append(levels, int(lt.Len()))
			t = lt.Elem()
		case *arrow.ListType:
			levels = append(levels, -1)
			t = lt.Elem()
		case *arrow.LargeListType:
			levels = append(levels, -1)
			t = lt.Elem()
		default:
			leaf = arrowDType(t)
			return levels, leaf, len(levels) > 0 && leaf != Invalid
		}
	}
	return nil, Invalid, false
}

// metaShape parses a MetaShape field metadata value.
func metaShape(f arrow.Field) []int {
	v, ok := f.Metadata.GetValue(MetaShape)
	if !ok {
		return nil
	}
	var s []int
	if json.Unmarshal([]byte(v), &s) != nil {
		return nil
	}
	for _, d := range s {
		if d < 0 {
			return nil
		}
	}
	return s
}

// planArrow chooses the columns of an Arrow schema per the rules in Options:
// every numeric list field is a tensor column; scalar numeric fields named
// in o.Features (or, when there are no tensor columns and no Features, all
// of them but the label) are combined into one column o.FeatureName.
func planArrow(path string, sc *arrow.Schema, o *Options) (*arrowPlan, error) {
	p := &arrowPlan{}
	if name, required := o.labelName(); name != "" {
		idx := sc.FieldIndices(name)
		switch {
		case len(idx) == 0 && required:
			return nil, fmt.Errorf("%w: %s: no label column %q", ErrColumn, path, name)
		case len(idx) > 0:
			if arrowDType(sc.Field(idx[0]).Type) == Invalid || sc.Field(idx[0]).Type.ID() == arrow.BOOL {
				return nil, fmt.Errorf("%w: %s: label column %q has type %s; want integers", ErrColumn, path, name, sc.Field(idx[0]).Type)
			}
			p.label = name
		}
	}
	var scalars []string
	types := map[string]DType{}
	for _, f := range sc.Fields() {
		if f.Name == p.label {
			continue
		}
		if levels, leaf, ok := tensorLevels(f.Type); ok {
			p.tensors = append(p.tensors, tensorCol{field: f.Name, levels: levels, meta: metaShape(f)})
			p.cols = append(p.cols, Column{Name: f.Name, DType: leaf})
			continue
		}
		if t := arrowDType(f.Type); t != Invalid {
			scalars = append(scalars, f.Name)
			types[f.Name] = t
		}
	}
	switch {
	case len(o.Features) > 0:
		for _, name := range o.Features {
			if len(sc.FieldIndices(name)) == 0 {
				return nil, fmt.Errorf("%w: %s: no feature column %q", ErrColumn, path, name)
			}
			if name == p.label {
				return nil, fmt.Errorf("%w: %s: feature column %q is the label; set Options.Label to another column or %q", ErrColumn, path, name, NoLabel)
			}
			if types[name] == Invalid {
				return nil, fmt.Errorf("%w: %s: feature column %q is %s; want a numeric scalar", ErrColumn, path, name, sc.Field(sc.FieldIndices(name)[0]).Type)
			}
		}
		p.combined = o.Features
	case len(p.tensors) == 0:
		p.combined = scalars
	}
	if len(p.combined) > 0 {
		dt := types[p.combined[0]]
		for _, name := range p.combined[1:] {
			if types[name] != dt {
				dt = Float32
				for _, n := range p.combined {
					if types[n] == Float64 {
						dt = Float64
					}
				}
				break
			}
		}
		for _, c := range p.cols {
			if c.Name == o.FeatureName {
				return nil, fmt.Errorf("%w: %s: combined feature column %q clashes with a list column; set Options.FeatureName", ErrColumn, path, o.FeatureName)
			}
		}
		p.cols = append(p.cols, Column{Name: o.FeatureName, DType: dt, Shape: []int{len(p.combined)}})
	}
	if len(p.cols) == 0 {
		return nil, fmt.Errorf("%w: %s: no numeric feature columns (want list<number> columns or numeric scalars besides the label)", ErrColumn, path)
	}
	p.setShapes()
	return p, nil
}

// setShapes derives each tensor column's Shape from its levels and metadata.
func (p *arrowPlan) setShapes() {
	for i, t := range p.tensors {
		shape := append([]int{}, t.levels...)
		c := Column{Shape: shape}
		if w := c.Width(); w >= 0 && t.meta != nil && (Column{Shape: t.meta}).Width() == w {
			shape = append([]int{}, t.meta...)
		}
		p.cols[i].Shape = shape
	}
}

// resolveLevels fills in the variable list lengths of tensor columns from
// row 0 of rec; later rows must match them.
func (p *arrowPlan) resolveLevels(path string, rec arrow.RecordBatch) error {
	for ti := range p.tensors {
		t := &p.tensors[ti]
		arr, err := recordColumn(path, rec, t.field)
		if err != nil {
			return err
		}
		row := 0
		for li := range t.levels {
			ll, ok := arr.(array.ListLike)
			if !ok || row >= arr.Len() || arr.IsNull(row) {
				return corruptf(path, "column %q row 0 is null or not a list", t.field)
			}
			s, e := ll.ValueOffsets(row)
			if t.levels[li] < 0 {
				t.levels[li] = int(e - s)
			}
			arr, row = ll.ListValues(), int(s)
		}
	}
	p.setShapes()
	return nil
}

// recordColumn returns the field called name of rec.
func recordColumn(path string, rec arrow.RecordBatch, name string) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, corruptf(path, "record batch lacks column %q", name)
	}
	return rec.Column(idx[0]), nil
}

// arrowDataset is a Dataset over a recordSource.
type arrowDataset struct {
	path    string
	src     recordSource
	plan    *arrowPlan
	rows    int
	scratch []float32
}

// newArrowDataset plans the columns of src and resolves list lengths. It
// takes ownership of src, closing it on error.
func newArrowDataset(path string, src recordSource, o *Options) (d *arrowDataset, err error) {
	defer func() {
		if err != nil {
			src.close()
		}
	}()
	defer recovered(&err, path)
	plan, err := planArrow(path, src.schema(), o)
	if err != nil {
		return nil, err
	}
	if src.numRows() > math.MaxInt32*1024 {
		return nil, corruptf(path, "%d rows", src.numRows())
	}
	d = &arrowDataset{path: path, src: src, plan: plan, rows: int(src.numRows())}
	if d.rows > 0 {
		rec, _, err := src.record(0)
		if err != nil {
			return nil, err
		}
		if err := plan.resolveLevels(path, rec); err != nil {
			return nil, err
		}
	} else {
		plan.setShapes()
	}
	return d, nil
}

func (d *arrowDataset) Len() int          { return d.rows }
func (d *arrowDataset) Columns() []Column { return d.plan.cols }
func (d *arrowDataset) Label() bool       { return d.plan.label != "" }
func (d *arrowDataset) Files() []string   { return []string{d.path} }
func (d *arrowDataset) Close() error      { return d.src.close() }

func (d *arrowDataset) Read(start, n int, dst *Batch) (err error) {
	dst.reset(d.plan.cols, d.plan.label != "")
	n, err = checkRange(start, n, d.rows)
	if err != nil {
		return err
	}
	defer recovered(&err, d.path)
	for r := start; r < start+n; {
		rec, first, err := d.src.record(int64(r))
		if err != nil {
			return err
		}
		lo := r - int(first)
		if lo < 0 || int64(lo) >= rec.NumRows() {
			return corruptf(d.path, "record batch at row %d does not contain row %d", first, r)
		}
		hi := min(int(rec.NumRows()), lo+start+n-r)
		if err := d.convert(rec, lo, hi, dst); err != nil {
			return err
		}
		for i := range hi - lo {
			dst.Rows = append(dst.Rows, int64(r+i))
		}
		r += hi - lo
	}
	return nil
}

// convert appends rows [lo, hi) of rec to dst.
func (d *arrowDataset) convert(rec arrow.RecordBatch, lo, hi int, dst *Batch) error {
	p := d.plan
	for i, t := range p.tensors {
		arr, err := recordColumn(d.path, rec, t.field)
		if err != nil {
			return err
		}
		name := p.cols[i].Name
		if dst.Cols[name], err = d.appendTensor(dst.Cols[name], arr, lo, hi, t.levels, t.field); err != nil {
			return err
		}
	}
	if len(p.combined) > 0 {
		name := p.cols[len(p.cols)-1].Name
		k := len(p.combined)
		out := dst.Cols[name]
		base := len(out)
		out = append(out, make([]float32, (hi-lo)*k)...)
		for j, f := range p.combined {
			arr, err := recordColumn(d.path, rec, f)
			if err != nil {
				return err
			}
			if d.scratch, err = d.appendLeaf(d.scratch[:0], arr, lo, hi, f); err != nil {
				return err
			}
			for i, v := range d.scratch {
				out[base+i*k+j] = v
			}
		}
		dst.Cols[name] = out
	}
	if p.label != "" {
		arr, err := recordColumn(d.path, rec, p.label)
		if err != nil {
			return err
		}
		if dst.Labels, err = d.appendLabels(dst.Labels, arr, lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// appendTensor appends the values of rows [lo, hi) of a (nested) list
// array, checking every row's list lengths against levels.
func (d *arrowDataset) appendTensor(dst []float32, arr arrow.Array, lo, hi int, levels []int, field string) ([]float32, error) {
	if len(levels) == 0 {
		return d.appendLeaf(dst, arr, lo, hi, field)
	}
	ll, ok := arr.(array.ListLike)
	if !ok {
		return dst, corruptf(d.path, "column %q is %s, not a list", field, arr.DataType())
	}
	if lo < 0 || hi > arr.Len() {
		return dst, corruptf(d.path, "column %q has %d values, want rows %d..%d", field, arr.Len(), lo, hi)
	}
	if lo == hi {
		return dst, nil
	}
	cs, _ := ll.ValueOffsets(lo)
	next := cs
	for i := lo; i < hi; i++ {
		if arr.IsNull(i) {
			return dst, fmt.Errorf("%w: %s: column %q has a null row; fill or drop it", ErrShape, d.path, field)
		}
		s, e := ll.ValueOffsets(i)
		if s != next {
			return dst, corruptf(d.path, "column %q has non-contiguous list offsets", field)
		}
		if int(e-s) != levels[0] {
			return dst, fmt.Errorf("%w: %s: column %q has a row of %d values at one level, want %d like the first row", ErrShape, d.path, field, e-s, levels[0])
		}
		next = e
	}
	child := ll.ListValues()
	if cs < 0 || next > int64(child.Len()) {
		return dst, corruptf(d.path, "column %q list offsets %d..%d exceed %d values", field, cs, next, child.Len())
	}
	return d.appendTensor(dst, child, int(cs), int(next), levels[1:], field)
}

// appendLeaf appends the float32 value of rows [lo, hi) of a primitive
// numeric array to dst. Nulls are an error; NaN is data.
func (d *arrowDataset) appendLeaf(dst []float32, arr arrow.Array, lo, hi int, field string) ([]float32, error) {
	if lo < 0 || hi > arr.Len() {
		return dst, corruptf(d.path, "column %q has %d values, want %d..%d", field, arr.Len(), lo, hi)
	}
	if arr.NullN() > 0 {
		for i := lo; i < hi; i++ {
			if arr.IsNull(i) {
				return dst, fmt.Errorf("%w: %s: column %q has null values; fill or drop them", ErrShape, d.path, field)
			}
		}
	}
	switch a := arr.(type) {
	case *array.Boolean:
		for i := lo; i < hi; i++ {
			v := float32(0)
			if a.Value(i) {
				v = 1
			}
			dst = append(dst, v)
		}
	case *array.Uint8:
		dst = appendConv(dst, a.Uint8Values()[lo:hi])
	case *array.Int8:
		dst = appendConv(dst, a.Int8Values()[lo:hi])
	case *array.Uint16:
		dst = appendConv(dst, a.Uint16Values()[lo:hi])
	case *array.Int16:
		dst = appendConv(dst, a.Int16Values()[lo:hi])
	case *array.Uint32:
		dst = appendConv(dst, a.Uint32Values()[lo:hi])
	case *array.Int32:
		dst = appendConv(dst, a.Int32Values()[lo:hi])
	case *array.Uint64:
		dst = appendConv(dst, a.Uint64Values()[lo:hi])
	case *array.Int64:
		dst = appendConv(dst, a.Int64Values()[lo:hi])
	case *array.Float32:
		dst = append(dst, a.Float32Values()[lo:hi]...)
	case *array.Float64:
		dst = appendConv(dst, a.Float64Values()[lo:hi])
	case *array.Float16:
		for _, v := range a.Values()[lo:hi] {
			dst = append(dst, v.Float32())
		}
	default:
		return dst, fmt.Errorf("%w: %s: column %q has element type %s; want numbers", ErrUnsupported, d.path, field, arr.DataType())
	}
	return dst, nil
}

// appendConv appends src converted to float32.
func appendConv[T uint8 | int8 | uint16 | int16 | uint32 | int32 | uint64 | int64 | float64](dst []float32, src []T) []float32 {
	for _, v := range src {
		dst = append(dst, float32(v))
	}
	return dst
}

// appendLabels appends rows [lo, hi) of an integer (or integral float)
// array as labels.
func (d *arrowDataset) appendLabels(dst []int64, arr arrow.Array, lo, hi int) ([]int64, error) {
	if lo < 0 || hi > arr.Len() {
		return dst, corruptf(d.path, "label column has %d values, want %d..%d", arr.Len(), lo, hi)
	}
	for i := lo; i < hi; i++ {
		if arr.IsNull(i) {
			return dst, fmt.Errorf("%w: %s: label column %q has a null value; fill or drop it", ErrShape, d.path, d.plan.label)
		}
	}
	var bad bool
	switch a := arr.(type) {
	case *array.Int64:
		dst = append(dst, a.Int64Values()[lo:hi]...)
	case *array.Int32:
		dst = appendInts(dst, a.Int32Values()[lo:hi])
	case *array.Int16:
		dst = appendInts(dst, a.Int16Values()[lo:hi])
	case *array.Int8:
		dst = appendInts(dst, a.Int8Values()[lo:hi])
	case *array.Uint32:
		dst = appendInts(dst, a.Uint32Values()[lo:hi])
	case *array.Uint16:
		dst = appendInts(dst, a.Uint16Values()[lo:hi])
	case *array.Uint8:
		dst = appendInts(dst, a.Uint8Values()[lo:hi])
	case *array.Uint64:
		for _, v := range a.Uint64Values()[lo:hi] {
			bad = bad || v > math.MaxInt64
			dst = append(dst, int64(v))
		}
	case *array.Float64:
		for _, v := range a.Float64Values()[lo:hi] {
			l, ok := floatLabel(v)
			bad = bad || !ok
			dst = append(dst, l)
		}
	case *array.Float32:
		for _, v := range a.Float32Values()[lo:hi] {
			l, ok := floatLabel(float64(v))
			bad = bad || !ok
			dst = append(dst, l)
		}
	case *array.Float16:
		for _, v := range a.Values()[lo:hi] {
			l, ok := floatLabel(float64(v.Float32()))
			bad = bad || !ok
			dst = append(dst, l)
		}
	default:
		return dst, fmt.Errorf("%w: %s: label column %q has type %s; want integers", ErrColumn, d.path, d.plan.label, arr.DataType())
	}
	if bad {
		return dst, corruptf(d.path, "label column %q has a value that is not an integer", d.plan.label)
	}
	return dst, nil
}

func appendInts[T uint8 | int8 | uint16 | int16 | uint32 | int32](dst []int64, src []T) []int64 {
	for _, v := range src {
		dst = append(dst, int64(v))
	}
	return dst
}

// batchIndex finds the batch holding row given the first row of each batch
// (starts is sorted, starts[0] == 0).
func batchIndex(starts []int64, row int64) int {
	return sort.Search(len(starts), func(i int) bool { return starts[i] > row }) - 1
}
