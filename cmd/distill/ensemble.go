package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

// ensembleFlags are distill train's flags for teacher ensembles.
type ensembleFlags struct {
	TeacherWeights []float64
	Ensemble       string
	Calibrate      bool
}

// openTrainCaches opens --cache as the training source. The directories
// are grouped by teacher (manifest teacher sha256), in order of first
// appearance: those of one teacher are the shards of one cache, as
// formats.Open reads them; two or more teachers make a train.Ensemble
// (--ensemble, --teacher-weights; its targets are for the KD temperature
// T) whose first teacher's cache gives the inputs (trainSource: from the
// dataset if it holds none, --data if it moved), labels and hidden
// states. It returns the source, the first teacher's cache and a func
// that releases what was opened.
func openTrainCaches(stderr io.Writer, o trainOptions, T float64) (_ train.Source, _ *formats.Cache, _ func(), err error) {
	mode, err := train.ParseEnsembleMode(o.Ensemble)
	if err != nil || o.Ensemble == "" {
		return nil, nil, nil, usageError("--ensemble %q: want probs (the mean of the teachers' tempered probabilities) or logits (the mean of their logits)", o.Ensemble)
	}
	var sum float64
	for _, w := range o.TeacherWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return nil, nil, nil, usageError("--teacher-weights %s: %v is not a weight; want finite weights ≥ 0, one per teacher", joinFloats(o.TeacherWeights), w)
		}
		sum += w
	}
	if len(o.TeacherWeights) > 0 && !(sum > 0 && sum <= math.MaxFloat64) {
		return nil, nil, nil, usageError("--teacher-weights %s: the weights sum to %v; want at least one positive weight, and a finite sum", joinFloats(o.TeacherWeights), sum)
	}
	var closers releasers
	defer closers.onError(&err)
	groups, err := groupByTeacher(o.Cache)
	if err != nil {
		return nil, nil, nil, err
	}
	caches := make([]*formats.Cache, len(groups))
	for i, g := range groups {
		c, err := formats.Open(g...)
		if err != nil {
			if len(groups) > 1 {
				err = fmt.Errorf("--cache %s: %w", strings.Join(g, ","), err)
			}
			return nil, nil, nil, err
		}
		closers.add(func() { c.Close() })
		caches[i] = c
	}
	if len(caches) == 1 && (len(o.TeacherWeights) > 0 || mode != train.EnsembleProbs || o.Calibrate) {
		return nil, nil, nil, usageError("--teacher-weights, --ensemble logits and --calibrate-teachers need the caches of two or more teachers; --cache %s holds one teacher's (%s)",
			strings.Join(o.Cache, ","), caches[0].Manifest().Teacher.File)
	}
	if n := len(o.TeacherWeights); n > 0 && n != len(caches) {
		return nil, nil, nil, usageError("--teacher-weights %s: %d weights for %d teachers (%s): give one per teacher, in the order of --cache",
			joinFloats(o.TeacherWeights), n, len(caches), teacherNames(caches))
	}
	primary, closePrimary, err := trainSource(stderr, caches[0], o.Data, "--data")
	if err != nil {
		return nil, nil, nil, err
	}
	closers.add(closePrimary)
	if len(caches) == 1 {
		return primary, caches[0], closers.release, nil
	}
	e, err := train.NewEnsemble(primary, caches, &train.EnsembleOptions{Mode: mode, Weights: o.TeacherWeights, Temperature: T, Calibrate: o.Calibrate})
	if err != nil {
		return nil, nil, nil, err
	}
	what := fmt.Sprintf("the mean of their probabilities at T = %g", T)
	if mode == train.EnsembleLogits {
		what = "the mean of their logits"
	}
	if o.Calibrate {
		what += fmt.Sprintf(", each teacher's log-probabilities divided by its calibration temperature (%s)", joinFloats(e.Scales()))
	}
	fmt.Fprintf(stderr, "train: an ensemble of %d teachers (%s), weights %s: the targets are %s; inputs, labels and hidden states from %s\n",
		len(caches), teacherNames(caches), joinFloats(e.Weights()), what, caches[0].Dir())
	return e, caches[0], closers.release, nil
}

// groupByTeacher groups the --cache directories by the teacher sha256 of
// their manifests, in order of first appearance.
func groupByTeacher(paths []string) ([][]string, error) {
	if len(paths) <= 1 {
		return [][]string{paths}, nil
	}
	var groups [][]string
	index := map[string]int{}
	for _, p := range paths {
		// One directory may be one shard of several: read its manifest
		// without requiring the others or hashing its parts.
		c, err := formats.OpenWithOptions(&formats.ReaderOptions{AllowMissingShards: true, SkipHashCheck: true}, p)
		if err != nil {
			return nil, fmt.Errorf("--cache %s: %w", p, err)
		}
		sha := c.Manifest().Teacher.SHA256
		c.Close()
		i, ok := index[sha]
		if !ok {
			i = len(groups)
			index[sha] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], p)
	}
	return groups, nil
}

// teacherNames lists the caches' teacher files, comma-separated.
func teacherNames(caches []*formats.Cache) string {
	s := make([]string, len(caches))
	for i, c := range caches {
		s[i] = c.Manifest().Teacher.File
	}
	return strings.Join(s, ", ")
}

func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'g', 4, 64)
	}
	return strings.Join(s, ",")
}

// checkEnsembleVal checks that the --val cache val feeds the student the
// inputs of the training source data when data is an ensemble: those of
// its first teacher's cache, whose preprocessing the other teachers' need
// not share. Its input names and preprocessing must be that cache's.
func checkEnsembleVal(data train.Source, val *formats.Cache) error {
	e, ok := data.(*train.Ensemble)
	if !ok {
		return nil
	}
	a, b := e.Manifest().Dataset, val.Manifest().Dataset
	if inputs, vin := recipeInputs(a), recipeInputs(b); inputs != vin || !slices.Equal(a.Preprocessing, b.Preprocessing) {
		return fmt.Errorf("--val %s: its inputs are %s, preprocessed as %s; the ensemble's are its first teacher's (%s): %s, preprocessed as %s. Give a --val cache of that teacher, or its --cache first",
			val.Dir(), vin, describeSteps(b.Preprocessing), e.Dir(), inputs, describeSteps(a.Preprocessing))
	}
	return nil
}

// recipeInputs names the model inputs a dataset recipe feeds.
func recipeInputs(d formats.Dataset) string {
	s := make([]string, len(d.Inputs))
	for i, in := range d.Inputs {
		s[i] = strconv.Quote(in.Name)
	}
	return strings.Join(s, ", ")
}

func describeSteps(steps []string) string {
	if len(steps) == 0 {
		return "fed unchanged"
	}
	return strings.Join(steps, ", ")
}
