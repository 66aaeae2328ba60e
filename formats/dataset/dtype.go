package dataset

import (
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/float16"
)

// DType is the element type a column has in its file. Read converts every
// DType to float32; DType lets a consumer feed a model input of the original
// type later without guessing.
type DType uint8

// The element types the readers understand.
const (
	Invalid DType = iota
	Bool
	Uint8
	Int8
	Uint16
	Int16
	Uint32
	Int32
	Uint64
	Int64
	Float16
	Float32
	Float64
)

var dtypeNames = [...]string{
	Invalid: "invalid",
	Bool:    "bool",
	Uint8:   "uint8",
	Int8:    "int8",
	Uint16:  "uint16",
	Int16:   "int16",
	Uint32:  "uint32",
	Int32:   "int32",
	Uint64:  "uint64",
	Int64:   "int64",
	Float16: "float16",
	Float32: "float32",
	Float64: "float64",
}

// String returns the lower-case name of t, such as "float32".
func (t DType) String() string {
	if int(t) < len(dtypeNames) {
		return dtypeNames[t]
	}
	return "invalid"
}

// Size returns the number of bytes one element of t occupies in a dense
// file (npy, idx), or 0 for Invalid.
func (t DType) Size() int {
	switch t {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, Float16:
		return 2
	case Uint32, Int32, Float32:
		return 4
	case Uint64, Int64, Float64:
		return 8
	}
	return 0
}

// IsFloat reports whether t is a floating-point type.
func (t DType) IsFloat() bool { return t == Float16 || t == Float32 || t == Float64 }

// arrowDType maps an Arrow primitive type to a DType, or Invalid.
func arrowDType(t arrow.DataType) DType {
	switch t.ID() {
	case arrow.BOOL:
		return Bool
	case arrow.UINT8:
		return Uint8
	case arrow.INT8:
		return Int8
	case arrow.UINT16:
		return Uint16
	case arrow.INT16:
		return Int16
	case arrow.UINT32:
		return Uint32
	case arrow.INT32:
		return Int32
	case arrow.UINT64:
		return Uint64
	case arrow.INT64:
		return Int64
	case arrow.FLOAT16:
		return Float16
	case arrow.FLOAT32:
		return Float32
	case arrow.FLOAT64:
		return Float64
	}
	return Invalid
}

// decodeDense appends the float32 value of each element of the packed
// buffer src (elements of type t in byte order bo) to dst.
func decodeDense(dst []float32, src []byte, t DType, bo binary.ByteOrder) []float32 {
	switch t {
	case Bool, Uint8:
		for _, v := range src {
			dst = append(dst, float32(v))
		}
	case Int8:
		for _, v := range src {
			dst = append(dst, float32(int8(v)))
		}
	case Uint16:
		for i := 0; i+2 <= len(src); i += 2 {
			dst = append(dst, float32(bo.Uint16(src[i:])))
		}
	case Int16:
		for i := 0; i+2 <= len(src); i += 2 {
			dst = append(dst, float32(int16(bo.Uint16(src[i:]))))
		}
	case Float16:
		for i := 0; i+2 <= len(src); i += 2 {
			dst = append(dst, float16.FromBits(bo.Uint16(src[i:])).Float32())
		}
	case Uint32:
		for i := 0; i+4 <= len(src); i += 4 {
			dst = append(dst, float32(bo.Uint32(src[i:])))
		}
	case Int32:
		for i := 0; i+4 <= len(src); i += 4 {
			dst = append(dst, float32(int32(bo.Uint32(src[i:]))))
		}
	case Float32:
		for i := 0; i+4 <= len(src); i += 4 {
			dst = append(dst, math.Float32frombits(bo.Uint32(src[i:])))
		}
	case Uint64:
		for i := 0; i+8 <= len(src); i += 8 {
			dst = append(dst, float32(bo.Uint64(src[i:])))
		}
	case Int64:
		for i := 0; i+8 <= len(src); i += 8 {
			dst = append(dst, float32(int64(bo.Uint64(src[i:]))))
		}
	case Float64:
		for i := 0; i+8 <= len(src); i += 8 {
			dst = append(dst, float32(math.Float64frombits(bo.Uint64(src[i:]))))
		}
	}
	return dst
}
