package human

import "testing"

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 2 << 40: "2.0 TiB", 7 << 50: "7.0 PiB", 2048 << 50: "2048.0 PiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDigits(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 61706: "61,706", 1234567: "1,234,567",
		-1234567: "-1,234,567", -12: "-12"} {
		if got := Digits(n); got != want {
			t.Errorf("Digits(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestShape(t *testing.T) {
	for _, tc := range []struct {
		s    []int64
		want string
	}{{nil, "[]"}, {[]int64{784}, "[784]"}, {[]int64{1, 28, 28}, "[1,28,28]"}, {[]int64{-1, 3}, "[-1,3]"}} {
		if got := Shape(tc.s); got != tc.want {
			t.Errorf("Shape(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
