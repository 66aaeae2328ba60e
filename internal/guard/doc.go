// Package guard keeps a command's outputs off its inputs. Before a command
// writes anything it resolves every input and output path (absolute,
// symlinks followed as far as the path exists) and refuses an output that
// is an input, lies inside an input directory, or contains one; and an
// output that is, or lies inside, another tool artefact — a cache (a
// directory with manifest.json, or shard-*-of-* directories holding one)
// or a student checkpoint (config.json beside model.safetensors) — unless
// it is the command's own kind of output.
//
// # Sections
//
//   - Paths: Path (a named input or output), Check.
//   - Artefacts: Kind (Cache, Checkpoint, File, Dir), KindOf.
//
// # Example
//
//	err := guard.Check(
//		[]guard.Path{{Flag: "--student", Path: ckpt}, {Flag: "--verify", Path: cache}},
//		[]guard.Path{{Flag: "--out", Path: out, Kind: guard.File}})
package guard
