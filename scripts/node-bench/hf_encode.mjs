// hf_encode.mjs TOKENIZER.json TEXT [RUNS]: encodes the documents of TEXT
// (its blank-line blocks, in one encodeBatch call, no special tokens;
// RAYON_NUM_THREADS sets its threads) with Hugging Face's tokenizers (npm `tokenizers`,
// the Rust implementation) RUNS times after one warm-up and prints one
// JSON object: {"impl": "tokenizers 0.23.2", "bytes": N, "ids": M,
// "best_seconds": s, "mb_per_s": x}. formats/tokenizer's
// BenchmarkEncodeVsHF runs it beside the Go encoder on the same file.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [tokPath, textPath, runsArg] = process.argv.slice(2);
if (!tokPath || !textPath) {
  console.error('usage: node hf_encode.mjs TOKENIZER.json TEXT [RUNS]');
  process.exit(2);
}
const modules = process.env.DISTILL_BENCH_NODE_MODULES ||
  fileURLToPath(new URL('../../.cache/node-bench/node_modules', import.meta.url));
let Tokenizer, version;
try {
  const require = createRequire(path.join(modules, 'anchor.js'));
  ({ Tokenizer } = require('tokenizers'));
  version = require('tokenizers/package.json').version;
} catch (e) {
  console.error(`cannot load npm tokenizers from ${modules}: ${e.message} (run make setup-bench)`);
  process.exit(3);
}
const tok = Tokenizer.fromFile(tokPath);
const text = fs.readFileSync(textPath, 'utf8');
const docs = text.split('\n\n');
const runs = Number(runsArg || 3);
let ids = 0;
let best = Infinity;
for (let i = 0; i <= runs; i++) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const enc of await tok.encodeBatch(docs, { addSpecialTokens: false })) {
    n += enc.getIds().length;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  ids = n;
  if (i > 0) best = Math.min(best, s);
}
const bytes = Buffer.byteLength(text, 'utf8');
console.log(JSON.stringify({ impl: `tokenizers ${version}`, bytes, ids, best_seconds: best, mb_per_s: bytes / best / 1e6 }));
