// Package formats owns the cache contract between `distill extract` and
// `distill train`: the Arrow schema of cached teacher outputs, the part
// files that hold them (Arrow IPC or Parquet), the manifest that describes a
// cache directory, and the readers that stream it back in bounded memory.
// It is the only package of distill that holds Arrow memory.
//
// # Sections
//
//   - Schema: Config, TensorSpec, Dtype, Schema, ConfigFromSchema, column
//     names (ColRow, ColLogits, ...) and metadata keys (MetaVersion, ...).
//   - Rows: Batch, the column-major Go view of cache rows; TopK, LogSumExp.
//   - Part files: Writer (NewWriter, WriterOptions, DefaultRowsPerBatchFor)
//     and Reader (NewReader, OpenReader, ReaderOptions).
//   - Cache directories: Manifest (Teacher, Dataset, DatasetOptions,
//     DatasetInput, Settings, PartInfo), ReadManifest, ParseManifest;
//     CreateCache, OpenCacheForAppend, CacheWriter (Close, Discard,
//     Attempt), PartWriter; Attempts, Attempt; CommittedError,
//     ErrCommitted; Leftover.
//   - Input preprocessing: Preprocess (as extract applies it and the
//     manifest records it), Channels, SolveShape (one unknown dimension
//     of a per-sample shape from its width).
//   - Reading a cache: Open, OpenWithOptions, Cache, Unit, ShardDirName;
//     Cache.DenseScores (all scores by row id); Cache.Uncommitted,
//     Cache.Leftovers, Cache.GC.
//   - Verification: Verify, Report.
//   - Summaries (distill inspect): Summarize, Summary, SummaryColumn,
//     SummaryShard, SummaryRow, ClassProb, JSONFloat (NaN as null),
//     SummarizeVerify, VerifySummary, RawBytesPerSample.
//   - Errors: ErrVersion, ErrSchema, ErrCorrupt, ErrIncomplete, ErrTooLarge,
//     ErrLocked, CorruptError.
//
// # Layout
//
// A cache is a directory (a local one, or an object prefix: every
// function here takes a path or an s3:// / gs:// / file:// location,
// through package internal/store) that DuckDB, Spark, Polars or pyarrow
// read as a plain dataset:
//
//	cache/
//	  manifest.json                   Manifest: teacher, dataset, settings, parts; written last
//	  part-00000-1a2b3c4d5e6f.arrow   every part has the identical schema
//	  part-00001-1a2b3c4d5e6f.arrow
//	  _attempt-1a2b3c4d5e6f.json      the writing attempt's journal, until it commits
//	  .part-00002-….arrow.tmp-…       only while being written locally; never matched by *.arrow
//
// A large extraction may be split into N shard directories, each with its
// own manifest (Settings.ShardIndex i of ShardCount N), conventionally the
// subdirectories ShardDirName(i, N) = shard-IIIII-of-NNNNN of one cache
// directory; Open merges them, given the shard directories or their parent.
//
// Parquet parts store float32 columns with BYTE_STREAM_SPLIT encoding and
// the Arrow schema under "ARROW:schema", so fixed-size lists, float16 and
// field metadata survive in Arrow-aware readers; others see LIST columns.
//
// # Schema
//
// One row per sample, columns in this order, none nullable:
//
//	row         int64                             index of the sample in the source dataset
//	label       int64                             only if Config.HasLabel
//	logits      fixed_size_list<f32|f16>[C]       raw teacher scores (Config.TopK == 0)
//	topk_index  fixed_size_list<int32>[k]         or the k largest scores (Config.TopK == k):
//	topk_logit  fixed_size_list<f32|f16>[k]         their values, descending,
//	logsumexp   float32                             and log Σ_c exp(score_c) over all C
//	hidden.<n>  fixed_size_list<f32|f16>[size]    teacher hidden states, shape in field metadata
//	input.<n>   fixed_size_list<f32>[size]        model inputs, shape in field metadata
//
// A per-token cache (Config.Positions = T, a language-model teacher) has
// one row per window of T tokens and the same columns, each holding T
// times the values, position-major: label fixed_size_list<int64>[T] (the
// next-token ids), logits [T·C] (C the vocabulary), topk_index and
// topk_logit [T·k], logsumexp fixed_size_list<float32>[T]; the schema
// metadata adds MetaPositions. Hidden states and attention maps are
// hidden.* columns of their per-window shape ([T, D], [H, T, T]).
//
// A sampled cache (Config.Samples = S) keeps only the ids drawn, so its
// target columns are variable-length lists, each row's entries position
// after position, ids ascending within a position:
//
//	topk_index       list<uint|int32>       the distinct ids drawn
//	topk_logit       list<f32|f16>          their scores
//	logsumexp        float32 ([T])          over all C
//	sample_count     list<uint|int32>       draws of each id, S per position
//	sample_distinct  uint ([T])             entries of each position
//
// Readers give a Batch min(S, C) slots per position: the drawn ids by
// descending score, then the last repeated with count 0 (Config.Samples).
//
// Scores never have a temperature applied; Manifest.ScoreKind says whether
// they are logits, log-probabilities or log-softmax outputs. With top-k,
// the probability of class topk_index[j] is exp(topk_logit[j] − logsumexp)
// and the remaining mass 1 − Σ_j of those is spread over the other C − k.
//
// The schema metadata carries MetaVersion, MetaClasses, MetaScoreDtype and
// MetaTopK, and in a cache also MetaManifest (the manifest JSON without
// its parts) and MetaTeacher, so a single part file describes itself.
//
// # Versions
//
// Version is "MAJOR.MINOR". A reader accepts any MINOR of its MAJOR and
// refuses a newer MAJOR with an error wrapping ErrVersion that names both.
// Version 1.1 added the dataset recipe to the manifest (Dataset.Options,
// Inputs, Preprocess: how to recompute the model inputs from the dataset);
// 1.0 manifests read as before, without it. Version 1.2 added per-token
// caches (Config.Positions); per-sample caches are written as before but
// for the version. Version 1.3 changed how a directory is written (parts
// named per attempt, journals, the manifest written once at the end);
// the manifest and part formats are unchanged, and 1.2 caches read as
// before.
//
// # Writing
//
// extract writes a cache directory part by part under a commit protocol
// that needs no lock, so it holds on object storage as on a local disk
// (CacheWriter has the details): each writer is an attempt with a random
// id naming its parts; after each part it rewrites its journal; Close
// writes manifest.json create-only (If-None-Match: * on S3, link(2)
// locally), and the first attempt to commit a shard wins. An interrupted
// run resumes with OpenCacheForAppend, which continues the furthest
// attempt's journal:
//
//	cw, err := formats.CreateCache(dir, manifest, cfg, &formats.WriterOptions{Format: formats.FormatParquet})
//	...
//	for ... {
//		if _, err := cw.WritePart(batch); err != nil { ... }
//	}
//	err = cw.Close() // commits; a *CommittedError if another attempt did first
//
// A local directory is also locked: CreateCache and OpenCacheForAppend
// take an flock on the directory itself (package internal/lock; no lock
// file, and the kernel drops the lock when the process dies) until Close,
// and fail at once with an error wrapping ErrLocked while another
// CacheWriter, in any process, holds it. A run that fails or is
// interrupted calls Discard instead of Close: nothing is committed, the
// journal and parts stay for a resume, and a writer from CreateCache with
// no part removes its journal and the directories it created, so the
// failed run leaves nothing behind.
//
// Files that no committed manifest names (parts and journals of failed,
// superseded or duplicate attempts) are leftovers: never read, listed by
// Cache.Leftovers and Verify, removed by Cache.GC.
//
// # Reading
//
// train opens the cache and reads units (one record batch or row group
// each) in any order, or streams them:
//
//	c, err := formats.Open(dirs...)
//	defer c.Close()
//	var b formats.Batch
//	for _, u := range rng.Perm(c.NumBatches()) {
//		if err := c.ReadBatch(u, &b); err != nil { ... }
//		// b.Logits holds b.Len()×C float32 values, whatever the stored dtype.
//	}
//
// Decoding is guarded: malformed files yield a *CorruptError (never a
// panic), and no batch larger than ReaderOptions.MaxBatchBytes is allocated.
//
// # Integrity
//
// A byte changed in a part file may still decode, into wrong values. So
// the first time a Cache opens a part (its first ReadBatch, not Open) it
// reads the whole file once, sequentially, through sha256 and checks size
// and hash against the manifest's PartInfo; a mismatch fails that read and
// every later one of the part with a *CorruptError naming the file. The
// file is then in the page cache, which the random-access reads that follow
// use. Each part is hashed once per Cache, parts that are never read are
// not hashed (inspect reading the first rows hashes one part), and a hash
// does not hold up reads of other parts. It costs about 0.7 s per GB on
// the project's machine (SHA extensions, one core; BenchmarkHashPart):
// small beside decoding Parquet, and 3–4× the time of reading uncompressed
// Arrow from the page cache (BenchmarkReadCache, hash vs nohash), once per
// run. ReaderOptions.SkipHashCheck turns it off; Verify hashes every part
// itself whatever the option, and its reads do not hash again.
package formats
