package eval

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(len(sorted)-1, max(0, i))]
}

// BenchLatency times run, which scores one batch of batch rows: two
// warm-up runs, then runs until budget has passed and at least minRuns
// were made (but stopping at 10×budget with at least 5), and returns the
// per-run and per-sample p50 and p99 (nearest rank) and the throughput
// batch / p50. An error from run stops it.
func BenchLatency(run func() error, batch int, budget time.Duration, minRuns int) (Latency, error) {
	d, err := timeRuns(budget, minRuns, 2, func(record func(time.Duration)) error {
		t0 := time.Now()
		err := run()
		record(time.Since(t0))
		return err
	})
	if err != nil {
		return Latency{}, err
	}
	ms := func(x time.Duration) float64 { return x.Seconds() * 1e3 }
	p50, p99 := percentile(d, 50), percentile(d, 99)
	l := Latency{
		Batch:      batch,
		Runs:       len(d),
		P50:        ms(p50) / float64(batch),
		P99:        ms(p99) / float64(batch),
		P50Batch:   ms(p50),
		P99Batch:   ms(p99),
		Throughput: float64(batch) / p50.Seconds(),
	}
	return l, nil
}

// timeRuns makes warm runs of run untimed, then runs it until budget has
// passed and it recorded at least minTimes durations (but stopping at
// 10×budget with at least 5), and returns the durations recorded, sorted.
// A run records the durations of the calls it times (one or several). An
// error from run stops it.
func timeRuns(budget time.Duration, minTimes, warm int, run func(record func(time.Duration)) error) ([]time.Duration, error) {
	var d []time.Duration
	discard := func(time.Duration) {}
	for range warm {
		if err := run(discard); err != nil {
			return nil, err
		}
	}
	record := func(x time.Duration) { d = append(d, x) }
	start := time.Now()
	for {
		if err := run(record); err != nil {
			return nil, err
		}
		el := time.Since(start)
		if el >= budget && len(d) >= minTimes || el >= 10*budget && len(d) >= 5 {
			break
		}
	}
	slices.Sort(d)
	return d, nil
}
