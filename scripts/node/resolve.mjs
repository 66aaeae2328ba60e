// resolve.mjs: loads the npm packages of scripts/node/package.json from the
// node_modules that `make setup-node` fills (.cache/node/node_modules), which
// is not an ancestor of this directory, so plain `import 'apache-arrow'`
// cannot find it (and NODE_PATH does not apply to ES modules).
//
// The directory is $DISTILL_NODE_MODULES (the Makefile exports it), else
// .cache/node/node_modules at the repository root, two levels above this file.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const nodeModules =
  process.env.DISTILL_NODE_MODULES ||
  fileURLToPath(new URL('../../.cache/node/node_modules', import.meta.url));

// createRequire resolves from the directory of the file it is given, and
// Node looks for packages in that directory when it is itself a node_modules.
const require = createRequire(path.join(nodeModules, 'resolve-anchor.js'));

// load returns the CommonJS export of package name, or exits with status 3
// and a message naming the directory and the fix.
export function load(name) {
  try {
    return require(name);
  } catch (err) {
    console.error(`cannot load npm package ${name} from ${nodeModules}: ${err.message}\n(run 'make setup-node')`);
    process.exit(3);
  }
}

// openParts opens an in-memory DuckDB (@duckdb/node-api, one thread) over
// the Parquet parts DIR/*.parquet and returns src (the read_parquet(...)
// table expression), query (SQL → rows as JSON objects: BIGINT as a
// decimal string, DOUBLE as a number), DuckDB's version and close. The
// caller handles query errors.
export async function openParts(dir) {
  const { DuckDBInstance } = load('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  const query = async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJson();
  const src = `read_parquet('${path.join(dir, '*.parquet').replaceAll("'", "''")}')`;
  const [{ v: version }] = await query('SELECT version() AS v');
  const close = () => {
    conn.closeSync();
    instance.closeSync();
  };
  return { src, query, version, close };
}
