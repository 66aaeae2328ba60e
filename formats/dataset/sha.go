package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// FileSHA256 returns the lower-case hex SHA-256 of the file at the
// location path (a path or a URL, as Open takes), streaming it through a
// fixed buffer (memory does not grow with the file). Hash every location
// of Dataset.Files for a manifest.
func FileSHA256(path string) (string, error) {
	f, _, err := openSized(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
