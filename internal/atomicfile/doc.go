// Package atomicfile owns the one way distill puts a file in place: it
// appears whole or not at all. The writers of cache parts and manifests
// (formats), dataset files (formats/dataset) and exported models (export)
// go through it, as does the directory swap of a training checkpoint
// (train).
//
// # Sections
//
//   - Whole files: WriteFile, WriteFileAll.
//   - Streaming: Create, File (Commit, Abort, Close).
//   - Renaming: Rename, SyncDir.
//   - Directories a failed write should not leave: MkdirAll (returns what
//     it created), RemoveEmptyDirs.
//
// # Protocol
//
// A file for path is written as a temporary file in path's own directory
// (so the rename cannot cross file systems), then, as restic's local
// backend does:
//
//	write → fsync → close → rename over path → fsync the directory
//
// Readers see the old file or the new one, never a part. A crash before
// the rename leaves path as it was plus the temporary file, named
//
//	.BASE.tmp-RANDOM        BASE = filepath.Base(path); RANDOM from os.CreateTemp
//
// Its leading "." hides it from globs such as *.arrow and from ls, and the
// ".tmp-" lets an owner find and remove leftovers (formats does so when it
// reopens a cache). This package removes no leftovers itself.
//
// The mode of the new file is perm exactly: it is set with Chmod, so the
// umask does not apply. A file system that cannot fsync a directory (it
// returns EINVAL or ENOTSUP, as some network and FUSE file systems do) is
// not an error; every other failure is.
//
// Errors are those of package os (*fs.PathError, *os.LinkError), not
// wrapped, so that the caller adds its context once.
//
// # Example
//
//	err := atomicfile.WriteFile("cache/manifest.json", data, 0o644)
//
//	f, err := atomicfile.Create("student.onnx", 0o644)
//	if err != nil {
//		return err
//	}
//	defer f.Close() // removes the temporary file unless Commit ran
//	if _, err := f.Write(data); err != nil {
//		return err
//	}
//	return f.Commit()
package atomicfile
