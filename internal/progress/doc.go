// Package progress reports long work on stderr: on a terminal an mpb bar
// with the rate and ETA, otherwise a plain line every few seconds and at
// the end, fit for CI logs and `kubectl logs`.
//
// # Sections
//
//   - Reporter: New, Update, Done, Println, SetUnit, Restart.
//
// # Example
//
//	pr := progress.New(os.Stderr, "extract", "rows")
//	for ... { pr.Update(done, total) }
//	pr.Done()
package progress
