package extract

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/formats"
)

// Preprocess is what extract does to dataset values before the teacher sees
// them; it is defined in package formats, which records it in the manifest
// (Manifest.Dataset.Preprocess) so that train can recompute the inputs.
type Preprocess = formats.Preprocess

// ParseFloatList parses "0.5,0.25" or "1/255" style values (a fraction is
// allowed in each item).
func ParseFloatList(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, item := range strings.Split(s, ",") {
		v, err := ParseNumber(item)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseNumber parses a finite float or a fraction like "1/255"; NaN and
// ±Inf are errors.
func ParseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if a, b, ok := strings.Cut(s, "/"); ok {
		x, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		y, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if err1 != nil || err2 != nil || y == 0 {
			return 0, fmt.Errorf("bad number %q (want e.g. 0.0039 or 1/255)", s)
		}
		v, err = x/y, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bad number %q (want e.g. 0.0039 or 1/255)", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

// ParseShape parses "1,28,28" (no batch axis); -1 is allowed once.
func ParseShape(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int64
	free := 0
	for _, item := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(item), 10, 64)
		if err != nil || v == 0 || v < -1 || v > 1<<31 {
			return nil, fmt.Errorf("bad shape %q: want positive sizes like 1,28,28 (one -1 allowed)", s)
		}
		if v == -1 {
			free++
		}
		out = append(out, v)
	}
	if free > 1 {
		return nil, fmt.Errorf("bad shape %q: at most one -1", s)
	}
	return out, nil
}

// ParseShard parses "I/N" (0 ≤ I < N ≤ 99999: shard directories have
// five-digit names).
func ParseShard(s string) (index, count int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		index, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			count, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || count < 1 || count > 99999 || index < 0 || index >= count {
		return 0, 0, fmt.Errorf("bad --shard %q: want I/N with 0 ≤ I < N, e.g. 0/4", s)
	}
	return index, count, nil
}

// ShardFromEnv resolves the shard to extract: the --shard flag value I/N
// when set, else the Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with
// count or DISTILL_SHARD_COUNT for N) or Slurm array (SLURM_ARRAY_TASK_ID,
// SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN) variables read through
// getenv (os.Getenv; the command line is the only caller that reads the
// environment); 0, 0 when none is set.
func ShardFromEnv(flag string, count int, getenv func(string) string) (int, int, error) {
	if flag != "" {
		return ParseShard(flag)
	}
	if c := getenv("DISTILL_SHARD_COUNT"); c != "" && count == 0 {
		n, err := strconv.Atoi(c)
		if err != nil {
			return 0, 0, fmt.Errorf("DISTILL_SHARD_COUNT=%q is not a number", c)
		}
		count = n
	}
	if idx := getenv("JOB_COMPLETION_INDEX"); idx != "" {
		if count == 0 {
			return 0, 0, fmt.Errorf("JOB_COMPLETION_INDEX=%s is set but the shard count is not: pass --shard-count N (the Job's completions) or set DISTILL_SHARD_COUNT", idx)
		}
		return ParseShard(idx + "/" + strconv.Itoa(count))
	}
	if idx := getenv("SLURM_ARRAY_TASK_ID"); idx != "" {
		c := getenv("SLURM_ARRAY_TASK_COUNT")
		if count > 0 {
			c = strconv.Itoa(count)
		}
		if c == "" {
			return 0, 0, fmt.Errorf("SLURM_ARRAY_TASK_ID=%s is set but SLURM_ARRAY_TASK_COUNT is not: pass --shard-count N", idx)
		}
		// Slurm arrays may start at 1 (--array=1-N): SLURM_ARRAY_TASK_MIN says.
		i, err := strconv.Atoi(idx)
		if err != nil {
			return 0, 0, fmt.Errorf("SLURM_ARRAY_TASK_ID=%q is not a number", idx)
		}
		if m := getenv("SLURM_ARRAY_TASK_MIN"); m != "" {
			if lo, err := strconv.Atoi(m); err == nil {
				i -= lo
			}
		}
		return ParseShard(strconv.Itoa(i) + "/" + c)
	}
	return 0, 0, nil
}
