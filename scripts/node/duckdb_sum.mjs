// duckdb_sum.mjs DIR: reads DIR/*.parquet, the part files of a distill cache
// written with --format parquet, with DuckDB (@duckdb/node-api) and prints
// one JSON object to stdout:
//
//	{"reader": "duckdb v1.5.6", "files": 2, "rows": 20,
//	 "logits_sum": 78.75,              // null when the cache has no logits column
//	 "columns": {"logits": {"type": "FLOAT[]", "nulls": 0, "sum": 78.75,
//	                        "values": 200, "min_len": 10, "max_len": 10}, ...}}
//
// for every column: its DuckDB type, the rows where it is NULL, and the sum
// of its values in float64 (for a list column, of all elements; "values"
// counts the non-NULL elements and min_len/max_len the list lengths).
// formats/interop_test.go compares these with what Go wrote.
//
// Types: Parquet has no fixed-size list, so the cache's
// fixed_size_list<float>[C] columns arrive as DuckDB LIST (FLOAT[]), and
// float16 ones as FLOAT. Sums cast to DOUBLE[] first, a cast that also
// accepts a DuckDB ARRAY (FLOAT[C]), should a reader map them to that.
//
// Exit status: 0 ok, 1 query failed, 2 usage, 3 packages missing.

import fs from 'node:fs';
import { openParts } from './resolve.mjs';

const dir = process.argv[2];
if (!dir || process.argv.length !== 3) {
  console.error('usage: node duckdb_sum.mjs CACHE_DIR');
  process.exit(2);
}
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.parquet'));
if (files.length === 0) {
  console.error(`duckdb_sum: no *.parquet files in ${dir}`);
  process.exit(1);
}

const ident = (s) => `"${s.replaceAll('"', '""')}"`;

let db;
try {
  db = await openParts(dir);
  const { src, query, version } = db;
  const described = await query(`DESCRIBE SELECT * FROM ${src}`);
  const exprs = ['count(*) AS "rows"'];
  described.forEach(({ column_name: name, column_type: type }, i) => {
    const c = ident(name);
    exprs.push(`count(*) - count(${c}) AS n${i}`);
    if (type.endsWith(']')) { // LIST (T[]) or ARRAY (T[n])
      exprs.push(
        `sum(list_sum(CAST(${c} AS DOUBLE[]))) AS s${i}`,
        `sum(list_count(CAST(${c} AS DOUBLE[]))) AS v${i}`,
        `min(len(${c})) AS lo${i}`,
        `max(len(${c})) AS hi${i}`);
    } else {
      exprs.push(`sum(CAST(${c} AS DOUBLE)) AS s${i}`, `count(${c}) AS v${i}`);
    }
  });
  const [agg] = await query(`SELECT ${exprs.join(', ')} FROM ${src}`);
  const num = (x) => (x === null || x === undefined ? null : Number(x));
  const columns = {};
  described.forEach(({ column_name: name, column_type: type }, i) => {
    columns[name] = { type, nulls: num(agg[`n${i}`]), sum: num(agg[`s${i}`]), values: num(agg[`v${i}`]) };
    if (`lo${i}` in agg) {
      columns[name].min_len = num(agg[`lo${i}`]);
      columns[name].max_len = num(agg[`hi${i}`]);
    }
  });
  console.log(JSON.stringify({
    reader: `duckdb ${version}`,
    files: files.length,
    rows: num(agg.rows),
    logits_sum: columns.logits ? columns.logits.sum : null,
    columns,
  }));
} catch (err) {
  console.error(`duckdb_sum: ${dir}: ${err.message}`);
  process.exitCode = 1;
} finally {
  db?.close();
}
