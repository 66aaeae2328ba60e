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
// # Example
//
//	tok, info, err := tokenizer.Load("tok512.bin")
//	...
//	ids, err := tok.Encode("Once upon a time", true) // [1 403 407 261 378]
//	text := tok.Decode(ids, true)
package tokenizer
