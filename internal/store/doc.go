// Package store is distill's one layer between its commands and where
// files live: a plain path (or file://), an S3 bucket (s3://bucket/prefix)
// or a Google Cloud Storage bucket (gs://bucket/prefix). Every place that
// reads or writes a cache, a dataset, a teacher, a checkpoint or an export
// goes through it, so a location string behaves the same on every flag.
//
// # Sections
//
//   - Locations: Parse, Loc, IsRemote, Join, Base, Parent.
//   - Directories (a cache shard, a checkpoint): OpenDir, Dir (Open,
//     Stat, List, ReadFile, Create, CreateNew, WriteFile, Remove, Lock,
//     MkdirAll).
//   - Files: File (io.ReaderAt with a read-ahead buffer, io.ReadSeeker,
//     Size), Writer (streaming; Commit makes the object appear whole).
//   - Whole files and folders by location: Open, ReadFile, Create, Stat,
//     Fetch and FetchDir (a local copy for code that needs a path, such
//     as onnxruntime), Upload and UploadDir.
//   - Errors: ErrExist and fs.ErrNotExist are wrapped; every other
//     failure of a remote call is one line that names the location, the
//     cause (no credentials, access denied, no such bucket, endpoint
//     unreachable) and the fix.
//
// # Backends
//
// Remote locations go through gocloud.dev/blob (s3blob on aws-sdk-go-v2,
// gcsblob on cloud.google.com/go/storage): range reads, streamed
// multipart uploads with bounded memory (the transfer manager's parts of
// PartSize, Concurrency at a time) and create-only writes (S3
// If-None-Match: *, GCS DoesNotExist). Credentials, region and endpoint
// come only from the SDKs' standard chains: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity (EKS IRSA),
// instance metadata, AWS_REGION, AWS_ENDPOINT_URL(_S3); for GCS,
// GOOGLE_APPLICATION_CREDENTIALS or the metadata server, or
// STORAGE_EMULATOR_HOST for an emulator (no credentials). distill takes no
// secret on its command line and prints none. With a custom endpoint
// (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3: MinIO, Ceph, R2, a test
// server) requests use path-style addressing and, when AWS_REGION is
// unset, region us-east-1; DISTILL_S3_ADDRESSING=virtual or path
// overrides the style.
//
// Local locations use the file system directly, not gocloud's fileblob:
// fileblob's create-only write is a stat then a rename, which two
// processes can both pass; here CreateNew commits with link(2), which
// cannot (atomicfile.File.CommitNew). Local writers also keep the
// advisory directory lock (Dir.Lock, package internal/lock).
//
// # Integrity of uploads
//
// A Writer hashes what it is given (Commit returns the size and sha256)
// and, for a remote object, checks after the upload that the service
// stores exactly that many bytes: some S3-compatible servers store the
// aws-chunked framing of a streamed upload as data. A mismatch is an
// error that names AWS_REQUEST_CHECKSUM_CALCULATION=when_required as the
// fix. AfterUpload lets tests check every upload's bytes on the server.
package store
