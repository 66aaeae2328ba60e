package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Reporter reports long work: on a terminal an mpb bar with rate and ETA,
// otherwise a plain line every few seconds (and at the end), fit for CI
// logs and `kubectl logs`.
type Reporter struct {
	mu       sync.Mutex
	name     string
	unit     string
	w        io.Writer
	p        *mpb.Progress
	bar      *mpb.Bar
	last     time.Time
	start    time.Time
	lastDone int64
	every    time.Duration
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// New starts a reporter of work called name counted in unit, writing to
// w: an mpb bar when w is a terminal, plain lines otherwise.
func New(w io.Writer, name, unit string) *Reporter {
	pr := &Reporter{name: name, unit: unit, w: w, start: time.Now(), every: 5 * time.Second}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		pr.p = mpb.New(mpb.WithOutput(f), mpb.WithWidth(60))
	}
	return pr
}

// Update records done of total (total may grow from 0 once known).
func (pr *Reporter) Update(done, total int64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.p != nil {
		if pr.bar == nil {
			pr.bar = pr.p.New(total, mpb.BarStyle(),
				mpb.PrependDecorators(decor.Name(pr.name+" "), decor.CountersNoUnit("%d/%d "+pr.unit)),
				mpb.AppendDecorators(decor.EwmaSpeed(0, "%.0f "+pr.unit+"/s", 30), decor.Name(" ETA "), decor.EwmaETA(decor.ET_STYLE_MMSS, 30)))
		}
		pr.bar.SetTotal(total, false)
		pr.bar.EwmaSetCurrent(done, time.Since(pr.last))
		pr.last = time.Now()
		return
	}
	now := time.Now()
	if now.Sub(pr.last) < pr.every && done < total {
		return
	}
	el := now.Sub(pr.start).Seconds()
	rate := float64(done) / max(el, 1e-9)
	eta := "?"
	if rate > 0 && total >= done {
		eta = time.Duration(float64(time.Second) * float64(total-done) / rate).Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(pr.w, "%s: %d/%d %s (%.1f%%), %.0f %s/s, ETA %s\n", pr.name, done, total, pr.unit, pct, rate, pr.unit, eta)
	pr.last, pr.lastDone = now, done
}

// Done stops the bar (leaving it complete or where it stopped).
func (pr *Reporter) Done() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.p != nil {
		if pr.bar != nil {
			pr.bar.Abort(false)
		}
		pr.p.Wait()
		pr.p = nil
	}
}

// SetUnit changes the unit counted (before the bar is drawn).
func (pr *Reporter) SetUnit(unit string) {
	pr.mu.Lock()
	pr.unit = unit
	pr.mu.Unlock()
}

// Restart counts the rate from now: what came before (loading, a resumed
// run's earlier work) is not part of it.
func (pr *Reporter) Restart() {
	pr.mu.Lock()
	pr.start = time.Now()
	pr.mu.Unlock()
}

// Println prints a line above the bar, or as a plain line.
func (pr *Reporter) Println(line string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.p != nil {
		fmt.Fprintln(pr.p, line)
		return
	}
	fmt.Fprintln(pr.w, line)
}
