// duckdb_sampled.mjs DIR T: reads DIR/*.parquet, the parts of a sampled
// per-token distill cache (windows of T tokens; ragged columns
// topk_index, topk_logit, sample_count with sample_distinct LIST[T] entries
// per position, and label LIST<BIGINT>[T]), with DuckDB (@duckdb/node-api)
// and prints, from SQL alone, per-position figures that need each
// position's own entries, sliced as README "Per-token caches" says
// (position t, 1-based: entries o+1 .. o+sample_distinct[t] with o the sum
// of sample_distinct[1 .. t−1]):
//
//	{"reader": "duckdb v1.5.6", "positions": 768, "hit": 0.83, "mass": 0.91, "draws_min": 64, "draws_max": 64}
//
// hit: the share of positions whose next token (label) was drawn; mass:
// the mean teacher probability of the drawn ids, Σ exp(topk_logit) (the
// scores of an f16 cache are log-probabilities, distill.topk_log_probs);
// draws_min/max: the least and most draws at a position (S when the
// slicing is right). extract/seq_test.go compares them with Go's.
//
// Exit status: 0 ok, 1 query failed, 2 usage, 3 packages missing.

import { openParts } from './resolve.mjs';

const [dir, T] = [process.argv[2], Number(process.argv[3])];
if (!dir || !(T > 0) || process.argv.length !== 4) {
  console.error('usage: node duckdb_sampled.mjs CACHE_DIR T');
  process.exit(2);
}
try {
  const { src, query, version } = await openParts(dir);
  const [res] = await query(`
    WITH pos AS (
      SELECT label[t] AS y, sample_distinct[t] AS d,
             coalesce(list_sum(list_slice(sample_distinct, 1, t - 1)), 0) AS o,
             topk_index, topk_logit, sample_count
      FROM ${src}, range(1, ${T} + 1) AS g(t)
    ), ent AS (
      SELECT y, list_slice(topk_index, o + 1, o + d) AS ids,
             list_slice(topk_logit, o + 1, o + d) AS lp,
             list_slice(sample_count, o + 1, o + d) AS cnt
      FROM pos
    )
    SELECT count(*) AS n,
           avg(CASE WHEN list_contains(ids, y) THEN 1.0 ELSE 0.0 END) AS hit,
           avg(list_sum(list_transform(lp, x -> exp(x)))) AS mass,
           min(list_sum(cnt)) AS dmin, max(list_sum(cnt)) AS dmax
    FROM ent`);
  console.log(JSON.stringify({
    reader: `duckdb ${version}`, positions: Number(res.n), hit: Number(res.hit), mass: Number(res.mass),
    draws_min: Number(res.dmin), draws_max: Number(res.dmax),
  }));
} catch (e) {
  console.error(`duckdb_sampled: ${e.message}`);
  process.exit(1);
}
