// arrow_read.mjs DIR: reads every DIR/*.arrow, the part files of a distill
// cache in Arrow IPC file format, with apache-arrow's tableFromIPC and
// prints one JSON object to stdout:
//
//	{"reader": "apache-arrow", "files": 2, "rows": 20, "batches": 4,
//	 "logits_sum": 24.625,             // null when the cache has no logits column
//	 "metadata": {"distill.version": "1.0", ...},   // schema metadata of the first file
//	 "columns": {"logits": {"type": "FixedSizeList[10]<Float32>", "sum": 24.625,
//	                        "values": 200, "nulls": 0, "shape": null}, ...}}
//
// for every column: its Arrow type as apache-arrow prints it, the sum of its
// values in float64 (for a fixed-size list, of all elements), the number of
// values, the null count and its distill.shape field metadata.
// formats/interop_test.go compares these with what Go wrote.
//
// Compressed record batches: apache-arrow decodes LZ4_FRAME and ZSTD
// buffers only with a codec registered in compressionRegistry; it ships
// none. We register fzstd (a zstd decoder) and lz4js (LZ4 frame format),
// both pure JavaScript. The registry checks a codec by encoding a test
// buffer, so ZSTD gets a minimal encoder that stores raw blocks.
//
// Exit status: 0 ok, 1 read failed, 2 usage, 3 packages missing.

import path from 'node:path';
import fs from 'node:fs';
import { load } from './resolve.mjs';

const dir = process.argv[2];
if (!dir || process.argv.length !== 3) {
  console.error('usage: node arrow_read.mjs CACHE_DIR');
  process.exit(2);
}
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.arrow')).sort();
if (files.length === 0) {
  console.error(`arrow_read: no *.arrow files in ${dir}`);
  process.exit(1);
}

const arrow = load('apache-arrow');
const fzstd = load('fzstd');
const lz4 = load('lz4js');

// zstdRawFrame wraps data in a zstd frame of uncompressed ("Raw") blocks,
// RFC 8878 section 3.1.1: magic, a frame header with Single_Segment_flag and a
// 4-byte Frame_Content_Size, then blocks of at most 128 KiB, each with a
// 3-byte header (Last_Block bit, Block_Type 0 = Raw, Block_Size << 3).
function zstdRawFrame(data) {
  const maxBlock = 128 << 10;
  const nBlocks = Math.max(1, Math.ceil(data.length / maxBlock));
  const out = new Uint8Array(4 + 1 + 4 + 3 * nBlocks + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0xfd2fb528, true);
  out[4] = (2 << 6) | (1 << 5); // FCS_Field_Size 4 bytes, Single_Segment
  view.setUint32(5, data.length, true);
  let at = 9;
  for (let b = 0; b < nBlocks; b++) {
    const chunk = data.subarray(b * maxBlock, Math.min(data.length, (b + 1) * maxBlock));
    const header = (b === nBlocks - 1 ? 1 : 0) | (chunk.length << 3);
    out[at] = header & 0xff;
    out[at + 1] = (header >> 8) & 0xff;
    out[at + 2] = (header >> 16) & 0xff;
    out.set(chunk, at + 3);
    at += 3 + chunk.length;
  }
  return out;
}

arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, {
  encode: zstdRawFrame,
  decode: (data) => fzstd.decompress(data),
});
arrow.compressionRegistry.set(arrow.CompressionType.LZ4_FRAME, {
  encode: (data) => Uint8Array.from(lz4.compress(data)),
  decode: (data) => Uint8Array.from(lz4.decompress(data)),
});

// sumVector adds up every value of a column (Int64 comes back as BigInt,
// Float16 as a number) and counts them.
function sumVector(vec) {
  let sum = 0;
  let values = 0;
  const add = (x) => {
    if (x === null || x === undefined) return;
    sum += Number(x);
    values++;
  };
  for (let i = 0; i < vec.length; i++) {
    const v = vec.get(i);
    if (v !== null && typeof v === 'object' && typeof v[Symbol.iterator] === 'function') {
      for (const x of v) add(x);
    } else {
      add(v);
    }
  }
  return { sum, values };
}

try {
  const out = { reader: 'apache-arrow', files: files.length, rows: 0, batches: 0, logits_sum: null, metadata: {}, columns: {} };
  for (const [i, f] of files.entries()) {
    const table = arrow.tableFromIPC(fs.readFileSync(path.join(dir, f)));
    if (i === 0) out.metadata = Object.fromEntries(table.schema.metadata);
    out.rows += table.numRows;
    out.batches += table.batches.length;
    for (const field of table.schema.fields) {
      const col = (out.columns[field.name] ??= {
        type: String(field.type), sum: 0, values: 0, nulls: 0,
        shape: field.metadata.get('distill.shape') ?? null,
      });
      if (col.type !== String(field.type)) {
        throw new Error(`${f}: column ${field.name} is ${field.type}, earlier files have ${col.type}`);
      }
      const vec = table.getChild(field.name);
      const { sum, values } = sumVector(vec);
      col.sum += sum;
      col.values += values;
      col.nulls += vec.nullCount;
    }
  }
  if (out.columns.logits) out.logits_sum = out.columns.logits.sum;
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(`arrow_read: ${dir}: ${err.message}`);
  process.exit(1);
}
