// Package human formats numbers for people: byte counts with binary
// units, integers with thousands separators, shapes. The command line,
// eval's text output and the HTML report share it, so a figure reads the
// same everywhere.
//
// # Sections
//
//   - Bytes: 1536 → "1.5 KiB".
//   - Digits: 1234567 → "1,234,567".
//   - Shape: []int64{1, 28, 28} → "[1,28,28]".
//
// # Example
//
//	fmt.Printf("%s params, %s\n", human.Digits(p), human.Bytes(size))
package human
