package dataset

import (
	"context"
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetBatchBytes is the target uncompressed size of one record read from
// a Parquet file, which bounds memory whatever the row group size.
const parquetBatchBytes = 16 << 20

// parquetSource reads a Parquet file's selected columns in record batches
// through a pqarrow.RecordReader. Sequential reads continue it; a read
// elsewhere starts a new reader at the row group holding the row and skips
// forward to it, so a jump costs at most one row group of decoding. (The
// reader's SeekToRow is not used: in arrow-go v18.8.0 it fails on list
// columns after a backward seek.)
type parquetSource struct {
	path     string
	pf       *file.Reader
	fr       *pqarrow.FileReader
	leaves   []int
	rr       pqarrow.RecordReader
	sc       *arrow.Schema
	rows     int64
	rgStarts []int64           // first row of each row group
	cur      arrow.RecordBatch // owned by rr
	curFrom  int64
	next     int64 // first row of the record rr.Next would return
}

// openParquet opens the Parquet file in r and plans its columns.
func openParquet(path string, r parquet.ReaderAtSeeker, o *Options) (ds *arrowDataset, err error) {
	defer recovered(&err, path)
	props := parquet.NewReaderProperties(o.Allocator)
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(r, file.WithReadProps(props))
	if err != nil {
		return nil, corruptf(path, "parquet: %v", err)
	}
	src := &parquetSource{path: path, pf: pf}
	defer func() {
		if err != nil {
			src.close()
		}
	}()
	if err := checkStoredSchema(path, pf); err != nil {
		return nil, err
	}
	var bytesPerRow int64 = 1
	for i := range pf.NumRowGroups() {
		rg := pf.MetaData().RowGroup(i)
		if rg.NumRows() < 0 || src.rows+rg.NumRows() < src.rows {
			return nil, corruptf(path, "parquet row group %d has %d rows", i, rg.NumRows())
		}
		src.rgStarts = append(src.rgStarts, src.rows)
		src.rows += rg.NumRows()
		if rg.NumRows() > 0 {
			bytesPerRow = max(bytesPerRow, rg.TotalByteSize()/rg.NumRows())
		}
	}
	batch := min(max(parquetBatchBytes/bytesPerRow, 1), 4096)
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batch}, o.Allocator)
	if err != nil {
		return nil, corruptf(path, "parquet: %v", err)
	}
	full, err := fr.Schema()
	if err != nil {
		return nil, corruptf(path, "parquet schema: %v", err)
	}
	plan, err := planArrow(path, full, o)
	if err != nil {
		return nil, err
	}
	var leaves []int
	var collect func(f *pqarrow.SchemaField)
	collect = func(f *pqarrow.SchemaField) {
		if f.IsLeaf() {
			leaves = append(leaves, f.ColIndex)
		}
		for i := range f.Children {
			collect(&f.Children[i])
		}
	}
	for _, name := range plan.fields() {
		for i := range fr.Manifest.Fields {
			if f := &fr.Manifest.Fields[i]; f.Field != nil && f.Field.Name == name {
				collect(f)
			}
		}
	}
	src.fr, src.leaves, src.sc = fr, leaves, full
	if src.rows > 0 {
		if err := src.restart(0); err != nil {
			return nil, err
		}
		src.sc = src.rr.Schema()
	}
	return newArrowDataset(path, src, o)
}

func (s *parquetSource) schema() *arrow.Schema { return s.sc }
func (s *parquetSource) numRows() int64        { return s.rows }

// restart replaces the record reader with one starting at row group rg.
func (s *parquetSource) restart(rg int) error {
	if s.rr != nil {
		s.rr.Release()
		s.rr, s.cur = nil, nil
	}
	groups := make([]int, 0, len(s.rgStarts)-rg)
	for g := rg; g < len(s.rgStarts); g++ {
		groups = append(groups, g)
	}
	rr, err := s.fr.GetRecordReader(context.Background(), s.leaves, groups)
	if err != nil {
		return corruptf(s.path, "parquet: %v", err)
	}
	s.rr, s.next = rr, s.rgStarts[rg]
	return nil
}

func (s *parquetSource) record(row int64) (rec arrow.RecordBatch, from int64, err error) {
	defer recovered(&err, s.path)
	if s.cur != nil && row >= s.curFrom && row < s.curFrom+s.cur.NumRows() {
		return s.cur, s.curFrom, nil
	}
	if row < 0 || row >= s.rows {
		return nil, 0, corruptf(s.path, "row %d out of range", row)
	}
	if rg := batchIndex(s.rgStarts, row); s.rr == nil || row < s.next || rg > batchIndex(s.rgStarts, s.next) {
		if err := s.restart(rg); err != nil {
			return nil, 0, err
		}
	}
	for {
		if !s.rr.Next() {
			err := s.rr.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			s.rr.Release()
			s.rr, s.cur = nil, nil
			return nil, 0, corruptf(s.path, "parquet: reading row %d: %v", row, err)
		}
		s.cur, s.curFrom = s.rr.RecordBatch(), s.next
		if s.cur.NumRows() <= 0 {
			s.rr.Release()
			s.rr, s.cur = nil, nil
			return nil, 0, corruptf(s.path, "parquet: empty record at row %d", row)
		}
		s.next += s.cur.NumRows()
		if row < s.next {
			return s.cur, s.curFrom, nil
		}
	}
}

func (s *parquetSource) close() (err error) {
	defer recovered(&err, s.path)
	var errs []error
	if s.rr != nil {
		s.rr.Release()
		s.rr = nil
	}
	s.cur = nil
	if s.pf != nil {
		errs = append(errs, s.pf.Close())
		s.pf = nil
	}
	return errors.Join(errs...)
}

func openParquetFile(path string, o *Options) (Dataset, error) {
	f, _, err := openSized(path)
	if err != nil {
		return nil, err
	}
	d, err := openParquet(path, f, o) // closes f with d
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}
