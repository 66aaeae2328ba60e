package progress

import (
	"regexp"
	"strings"
	"testing"
)

// TestPlainLines: off a terminal the reporter prints the first update, then
// at most one line per interval, and always the last; lines name the work,
// counts, the percentage and the unit set last.
func TestPlainLines(t *testing.T) {
	var b strings.Builder
	pr := New(&b, "extract", "rows")
	pr.SetUnit("tokens")
	pr.Update(0, 100)
	for i := int64(1); i < 100; i++ {
		pr.Update(i, 100) // within the interval: silent
	}
	pr.Println("epoch 1/1: loss 0.5")
	pr.Update(100, 100)
	pr.Done()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	first := regexp.MustCompile(`^extract: 0/100 tokens \(0\.0%\), 0 tokens/s, ETA \?$`)
	last := regexp.MustCompile(`^extract: 100/100 tokens \(100\.0%\), \d+ tokens/s, ETA 0s$`)
	if !first.MatchString(lines[0]) || lines[1] != "epoch 1/1: loss 0.5" || !last.MatchString(lines[2]) {
		t.Errorf("lines:\n%s", b.String())
	}
}
