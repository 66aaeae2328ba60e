package extract

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestParsers(t *testing.T) {
	if v, err := ParseNumber("1/255"); err != nil || math.Abs(v-1.0/255) > 1e-15 {
		t.Errorf("ParseNumber(1/255) = %v, %v", v, err)
	}
	for _, bad := range []string{"", "x", "1/0", "1/x", "nan", "NaN", "inf", "-Inf", "1e400", "inf/2", "1/1e-400"} {
		if _, err := ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
	if s, err := ParseShape("1,28,28"); err != nil || len(s) != 3 || s[2] != 28 {
		t.Errorf("ParseShape = %v, %v", s, err)
	}
	for _, bad := range []string{"1,,2", "0,3", "-1,-1", "-2", "a"} {
		if _, err := ParseShape(bad); err == nil {
			t.Errorf("ParseShape(%q) accepted", bad)
		}
	}
	if i, n, err := ParseShard("2/4"); err != nil || i != 2 || n != 4 {
		t.Errorf("ParseShard(2/4) = %d, %d, %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0", "1/2/3"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

func TestShardFromEnv(t *testing.T) {
	for _, k := range []string{"JOB_COMPLETION_INDEX", "DISTILL_SHARD_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"} {
		t.Setenv(k, "")
	}
	check := func(flag string, count, wantI, wantN int, wantErr string) {
		t.Helper()
		i, n, err := ShardFromEnv(flag, count, os.Getenv)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("shardFromEnv(%q, %d): err %v, want %q", flag, count, err, wantErr)
			}
			return
		}
		if err != nil || i != wantI || n != wantN {
			t.Errorf("shardFromEnv(%q, %d) = %d/%d, %v; want %d/%d", flag, count, i, n, err, wantI, wantN)
		}
	}
	check("", 0, 0, 0, "") // no sharding
	check("2/5", 0, 2, 5, "")
	// Kubernetes Indexed Job.
	t.Setenv("JOB_COMPLETION_INDEX", "3")
	check("", 0, 0, 0, "--shard-count")
	check("", 8, 3, 8, "")
	t.Setenv("DISTILL_SHARD_COUNT", "4")
	check("", 0, 3, 4, "")
	check("1/2", 0, 1, 2, "") // the flag wins
	t.Setenv("DISTILL_SHARD_COUNT", "")
	t.Setenv("JOB_COMPLETION_INDEX", "")
	// Slurm array --array=1-4: ids 1..4 become shards 0..3.
	t.Setenv("SLURM_ARRAY_TASK_ID", "4")
	check("", 0, 0, 0, "SLURM_ARRAY_TASK_COUNT")
	t.Setenv("SLURM_ARRAY_TASK_COUNT", "4")
	t.Setenv("SLURM_ARRAY_TASK_MIN", "1")
	check("", 0, 3, 4, "")
	t.Setenv("SLURM_ARRAY_TASK_MIN", "0")
	check("", 0, 0, 0, "bad --shard") // id 4 of 4 from a 0-based array is out of range
}
