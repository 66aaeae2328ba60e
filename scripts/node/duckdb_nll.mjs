// duckdb_nll.mjs DIR T V: reads DIR/*.parquet, the parts of a dense
// per-token distill cache (windows of T tokens, vocabulary V; columns
// label LIST<BIGINT>[T] and logits LIST<FLOAT>[T·V]), with DuckDB
// (@duckdb/node-api) and prints, from SQL alone, the teacher's mean
// next-token negative log-likelihood and top-1 accuracy:
//
//	{"reader": "duckdb v1.5.6", "positions": 768, "nll": 1.8213, "top1": 0.514}
//
// NLL of a position = logsumexp(its V logits) − the logit of its label,
// logsumexp computed as m + ln Σ exp(x − m), m = max; top-1 counts the
// positions whose first largest logit is the label. extract/seq_test.go
// compares these with Go's figures from the same cache.
//
// Exit status: 0 ok, 1 query failed, 2 usage, 3 packages missing.

import { openParts } from './resolve.mjs';

const [dir, T, V] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!dir || !(T > 0) || !(V > 0) || process.argv.length !== 5) {
  console.error('usage: node duckdb_nll.mjs CACHE_DIR T V');
  process.exit(2);
}
try {
  const { src, query, version } = await openParts(dir);
  const [res] = await query(`
    WITH pos AS (
      SELECT list_slice(logits, t * ${V} + 1, (t + 1) * ${V}) AS s, label[t + 1] AS y
      FROM ${src}, range(0, ${T}) AS g(t)
    ), scored AS (
      SELECT s, y, list_max(s) AS m FROM pos
    )
    SELECT count(*) AS n,
           avg(m + ln(list_sum(list_transform(s, x -> exp(x - m)))) - s[y + 1]) AS nll,
           avg(CASE WHEN list_position(s, m) - 1 = y THEN 1.0 ELSE 0.0 END) AS top1
    FROM scored`);
  console.log(JSON.stringify({ reader: `duckdb ${version}`, positions: Number(res.n), nll: Number(res.nll), top1: Number(res.top1) }));
} catch (e) {
  console.error(`duckdb_nll: ${e.message}`);
  process.exit(1);
}
