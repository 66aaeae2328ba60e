package formats

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// ShardDirName is the subdirectory that shard i of n writes inside a cache
// directory when an extraction is split with --shard: shard-IIIII-of-NNNNN.
// Open given the parent directory reads every shard below it as one cache.
func ShardDirName(i, n int) string { return fmt.Sprintf("shard-%05d-of-%05d", i, n) }

var shardDirRE = regexp.MustCompile(`^shard-[0-9]{5}-of-[0-9]{5}$`)

// expandShards returns the shard subdirectories of dir when dir has no
// manifest of its own but holds shard-*-of-* directories with one; nil
// otherwise.
func expandShards(dir string) []string {
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && shardDirRE.MatchString(e.Name()) {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), ManifestName)); err == nil {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out
}
