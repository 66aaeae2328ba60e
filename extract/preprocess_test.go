package extract

import (
	"math"
	"testing"
)

func TestParsers(t *testing.T) {
	if v, err := ParseNumber("1/255"); err != nil || math.Abs(v-1.0/255) > 1e-15 {
		t.Errorf("ParseNumber(1/255) = %v, %v", v, err)
	}
	for _, bad := range []string{"", "x", "1/0", "1/x", "nan", "NaN", "inf", "-Inf", "1e400", "inf/2", "1/1e-400"} {
		if _, err := ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
	if s, err := ParseShape("1,28,28"); err != nil || len(s) != 3 || s[2] != 28 {
		t.Errorf("ParseShape = %v, %v", s, err)
	}
	for _, bad := range []string{"1,,2", "0,3", "-1,-1", "-2", "a"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) accepted", bad)
		}
	}
	if i, n, err := ParseShard("2/4"); err != nil || i != 2 || n != 4 {
		t.Errorf("ParseShard(2/4) = %d, %d, %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0", "1/2/3"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}
