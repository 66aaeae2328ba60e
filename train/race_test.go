//go:build race

package train

// raceEnabled reports a -race build, which allocates in instrumented code.
const raceEnabled = true
