// Package tokenizer turns text into token ids and back for language-model
// teachers and students, reading the tokenizer files users have:
//
//   - llama2.c tokenizer.bin (Llama2c): run.c's encoder — dummy prefix,
//     byte fallback, highest-score merges — and decoder.
//   - A character vocabulary (Chars): vocab.json, a JSON list, id = index.
//   - Hugging Face tokenizer.json (HF): see the Hugging Face section.
//
// # Sections
//
//   - Loading: Load (by content), Parse, Info, ErrFormat.
//   - The interface: Tokenizer (Encode, Decode, VocabSize, Special).
//   - Loaders: ParseLlama2c, ParseChars, ParseHF.
//
// # llama2.c
//
// tokenizer.bin holds int32 max_token_length, then per id a float32 score,
// an int32 length and the piece's bytes. Encode follows run.c exactly
// (same ids on every block of the TinyStories text), with the pairwise
// merge loop kept in a heap so a long text costs O(n log n), not O(n²).
//
// # Hugging Face
//
// ParseHF reads a tokenizer.json and encodes single sequences as the Rust
// tokenizers crate does (the same ids and decoded text on every golden
// line of ../shared/tokenizers: roberta-base, bert-base-uncased,
// phi-3-mini, t5-small, olmo2-dolma2; and llama2.c's ids for the
// stories260K-hf file). Added tokens are split out first (raw, then
// normalized; longest first; lstrip, rstrip, single_word), then the
// normalizer, pre-tokenizer, model and post-processor run; Decode runs
// the decoder. Supported (the types a file names are checked at load,
// an unknown one is an ErrFormat error):
//
//   - models: BPE (byte-level, or SentencePiece-style with byte_fallback
//     and fuse_unk; merges as "a b" or ["a", "b"]), WordPiece, WordLevel,
//     Unigram (Viterbi); a model without "type" has it inferred.
//   - normalizers: Sequence, BertNormalizer, NFC/NFD/NFKC/NFKD
//     (golang.org/x/text), Lowercase, Strip, StripAccents, Replace,
//     Prepend, Nmt, ByteLevel, Precompiled (SentencePiece charsmaps,
//     looked up per grapheme cluster as the crate does).
//   - pre-tokenizers: Sequence, ByteLevel, Split (String or Regex, all
//     five behaviors, invert), Whitespace, WhitespaceSplit,
//     BertPreTokenizer, Metaspace (old and new fields), Punctuation,
//     Digits, CharDelimiterSplit, FixedLength; not UnicodeScripts.
//   - post-processors: TemplateProcessing, RobertaProcessing,
//     BertProcessing, ByteLevel, Sequence (single sequences; truncation
//     and padding are not applied).
//   - decoders: ByteLevel, WordPiece, Metaspace, Replace, ByteFallback,
//     Fuse, Strip, BPEDecoder, CTC, Sequence.
//
// Regexes: the GPT-2 and Llama 3 (cl100k) split regexes, which use the
// lookahead \s+(?!\S) Go's regexp lacks, have hand-written matchers
// checked against github.com/dlclark/regexp2, which runs any other regex
// (Oniguruma-like: lookaround, Unicode \s and \p{..}). BPE merges with
// a priority queue (O(n log n) in a word) and caches the ids of
// pre-tokens; no stage is quadratic in the text.
//
// # Example
//
//	tok, info, err := tokenizer.Load("tok512.bin")
//	...
//	ids, err := tok.Encode("Once upon a time", true) // [1 403 407 261 378]
//	text := tok.Decode(ids, true)
package tokenizer
