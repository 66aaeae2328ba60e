package formats

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/distill-ml/distill/internal/store"
)

// ShardDirName is the subdirectory that shard i of n writes inside a cache
// directory when an extraction is split with --shard: shard-IIIII-of-NNNNN.
// Open given the parent directory reads every shard below it as one cache.
func ShardDirName(i, n int) string { return fmt.Sprintf("shard-%05d-of-%05d", i, n) }

var shardDirRE = regexp.MustCompile(`^shard-[0-9]{5}-of-[0-9]{5}$`)

// expandShards returns the shard subdirectories of dir when dir has no
// manifest of its own but holds shard-*-of-* directories; nil otherwise.
// Every shard directory is returned, committed or not: Open reports one
// that has not committed (readManifestIn says why).
func expandShards(dir string) []string {
	d, err := store.OpenDir(ctxBG, dir)
	if err != nil {
		return nil
	}
	entries, err := d.List(ctxBG)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Name == ManifestName && !e.IsDir {
			return nil
		}
		if e.IsDir && shardDirRE.MatchString(e.Name) {
			out = append(out, d.Path(e.Name))
		}
	}
	sort.Strings(out)
	return out
}
