package train

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/distill-ml/distill/train/gemm"
)

// pool runs elementwise work split over a fixed set of goroutines, so a
// training step starts no goroutine and allocates nothing. Work is split
// into disjoint ranges whose results do not depend on the split, so the
// outcome is the same for any thread count.
type pool struct {
	mu    sync.Mutex // one parallel loop at a time
	n     int        // goroutines including the caller
	tasks chan task
	wg    sync.WaitGroup
}

type task struct {
	fn     func(lo, hi int)
	pfn    func(part, lo, hi int) // instead of fn, for runParts
	part   int
	lo, hi int
}

// The pool in use, and every pool made so far by size: pools are never
// closed, so a Train running while another calls SetThreads keeps a
// working pool, and changing the count back and forth starts no new
// goroutines.
var (
	current atomic.Pointer[pool]
	poolsMu sync.Mutex
	pools   = map[int]*pool{}
)

func init() { current.Store(poolOf(runtime.GOMAXPROCS(0))) }

// par returns the pool in use.
func par() *pool { return current.Load() }

func poolOf(n int) *pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if p := pools[n]; p != nil {
		return p
	}
	p := &pool{n: n, tasks: make(chan task)}
	for range n - 1 {
		go func() {
			for t := range p.tasks {
				if t.pfn != nil {
					t.pfn(t.part, t.lo, t.hi)
				} else {
					t.fn(t.lo, t.hi)
				}
				p.wg.Done()
			}
		}()
	}
	pools[n] = p
	return p
}

// SetThreads sets the number of threads a training step uses, for matrix
// products (gemm.SetThreads) and elementwise work. n < 1 means
// runtime.NumCPU(). Results are deterministic for a given n; different n
// may round differently in matrix products. Train calls it with
// Options.Threads; it is safe to call at any time, and steps already
// running finish with the threads they started with.
func SetThreads(n int) {
	if n < 1 {
		n = runtime.NumCPU()
	}
	gemm.SetThreads(n)
	current.Store(poolOf(n))
}

// Threads returns the thread count set by SetThreads (by default
// runtime.GOMAXPROCS(0) at start-up).
func Threads() int { return par().n }

// run calls fn over [0, n) split into at most p.n contiguous ranges of at
// least grain items, the last on the calling goroutine, and waits.
func (p *pool) run(n, grain int, fn func(lo, hi int)) {
	parts := min(p.n, n/max(grain, 1))
	if parts <= 1 {
		fn(0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wg.Add(parts - 1)
	for i := range parts - 1 {
		p.tasks <- task{fn: fn, lo: n * i / parts, hi: n * (i + 1) / parts}
	}
	fn(n*(parts-1)/parts, n)
	p.wg.Wait()
}

// runParts is run for work that needs scratch space per goroutine: it
// calls fn(part, lo, hi) over [0, n) split into parts = min(p.n, n)
// contiguous ranges, range i = [n·i/parts, n·(i+1)/parts) with part = i
// (the last on the calling goroutine), and waits. It returns parts, so a
// caller can size its scratch with p.n beforehand. Results that must not
// depend on the thread count should be computed per fixed unit of work
// (a group of samples), not per part.
func (p *pool) runParts(n int, fn func(part, lo, hi int)) int {
	parts := min(p.n, n)
	if parts <= 1 {
		fn(0, 0, n)
		return 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wg.Add(parts - 1)
	for i := range parts - 1 {
		p.tasks <- task{pfn: fn, part: i, lo: n * i / parts, hi: n * (i + 1) / parts}
	}
	fn(parts-1, n*(parts-1)/parts, n)
	p.wg.Wait()
	return parts
}
