package formats

import "fmt"

// DenseScores returns every row's full scores in one slice ordered by row
// id: NumRows() × C values (× T for a per-token cache), row i holding the
// sample with row id i. The cache must store full logits (TopK 0) and
// hold exactly the row ids 0..NumRows()-1, as an unsharded or complete
// sharded extraction does; otherwise it is an error saying which.
func (c *Cache) DenseScores() ([]float32, error) {
	cfg := c.Config()
	if cfg.TopK > 0 {
		return nil, fmt.Errorf("the cache stores top-%d scores, not all %d logits", cfg.TopK, cfg.Classes)
	}
	n, per := c.NumRows(), int64(cfg.ScoreRows(1)*cfg.Classes)
	out := make([]float32, n*per)
	seen := make([]bool, n)
	for b, err := range c.All() {
		if err != nil {
			return nil, err
		}
		for i, r := range b.Rows {
			if r < 0 || r >= n || seen[r] {
				return nil, fmt.Errorf("row id %d is outside 0..%d or repeated; the cache is not one whole dataset", r, n-1)
			}
			seen[r] = true
			copy(out[r*per:], b.Logits[int64(i)*per:int64(i+1)*per])
		}
	}
	return out, nil
}
