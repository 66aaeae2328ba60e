package store

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Loc is a parsed location: a local path, or an object key prefix in a
// bucket.
type Loc struct {
	Scheme string // "" for a local path (also for file://), "s3" or "gs"
	Bucket string // remote only
	Key    string // remote: the key (no leading or trailing "/"); local: the path
}

// Remote reports whether l is in a bucket.
func (l Loc) Remote() bool { return l.Scheme != "" }

// String returns the location as the user writes it: the path, or
// scheme://bucket/key.
func (l Loc) String() string {
	if !l.Remote() {
		return l.Key
	}
	if l.Key == "" {
		return l.Scheme + "://" + l.Bucket
	}
	return l.Scheme + "://" + l.Bucket + "/" + l.Key
}

// Join returns the location of elem below l.
func (l Loc) Join(elem ...string) Loc {
	if !l.Remote() {
		l.Key = filepath.Join(append([]string{l.Key}, elem...)...)
		return l
	}
	l.Key = strings.Trim(path.Join(append([]string{l.Key}, elem...)...), "/")
	return l
}

// Base returns the last element of l.
func (l Loc) Base() string {
	if !l.Remote() {
		return filepath.Base(l.Key)
	}
	return path.Base("/" + l.Key)
}

// Parent returns the location that holds l.
func (l Loc) Parent() Loc {
	if !l.Remote() {
		l.Key = filepath.Dir(l.Key)
		return l
	}
	if i := strings.LastIndexByte(l.Key, '/'); i >= 0 {
		l.Key = l.Key[:i]
	} else {
		l.Key = ""
	}
	return l
}

// schemes are the remote schemes distill reads and writes.
var schemes = map[string]bool{"s3": true, "gs": true}

// Parse parses a location: a plain path, file:///abs/path (or
// file://rel), s3://bucket/prefix or gs://bucket/prefix. An unknown
// scheme or a remote location without a bucket is an error naming the
// accepted forms.
func Parse(s string) (Loc, error) {
	i := strings.Index(s, "://")
	if i < 0 || strings.ContainsAny(s[:i], `/\.`) {
		if s == "" {
			return Loc{}, fmt.Errorf("empty location")
		}
		return Loc{Key: s}, nil
	}
	scheme := strings.ToLower(s[:i])
	rest := s[i+3:]
	if scheme == "file" {
		if rest == "" {
			return Loc{}, fmt.Errorf("%s: no path after file://", s)
		}
		if u, err := url.PathUnescape(rest); err == nil {
			rest = u
		}
		return Loc{Key: rest}, nil
	}
	if !schemes[scheme] {
		return Loc{}, fmt.Errorf("%s: unknown scheme %q; distill reads and writes plain paths, file://, s3://BUCKET/PREFIX and gs://BUCKET/PREFIX", s, scheme+"://")
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Loc{}, fmt.Errorf("%s: no bucket; write %s://BUCKET/PREFIX", s, scheme)
	}
	if strings.ContainsAny(bucket, "?#") || strings.ContainsAny(key, "?#") {
		return Loc{}, fmt.Errorf("%s: query strings are not part of a location; set the endpoint and region with AWS_ENDPOINT_URL and AWS_REGION (README, Caches on object storage)", s)
	}
	return Loc{Scheme: scheme, Bucket: bucket, Key: strings.Trim(path.Clean("/"+key), "/")}, nil
}

// MustParse is Parse for locations known to be valid; it panics otherwise.
func MustParse(s string) Loc {
	l, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

// IsRemote reports whether s names a bucket location (s3:// or gs://, or
// any other scheme, which Parse then refuses).
func IsRemote(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], `/\.`) && !strings.EqualFold(s[:i], "file")
}

// Join returns the location string of elem below the location s, keeping
// its form: a path for a path, a URL for a URL (file:// becomes a path).
func Join(s string, elem ...string) string {
	l, err := Parse(s)
	if err != nil {
		return s + "/" + path.Join(elem...)
	}
	return l.Join(elem...).String()
}

// Base returns the last element of the location s.
func Base(s string) string {
	l, err := Parse(s)
	if err != nil {
		return path.Base(s)
	}
	return l.Base()
}

// Parent returns the location that holds s.
func Parent(s string) string {
	l, err := Parse(s)
	if err != nil {
		return path.Dir(s)
	}
	return l.Parent().String()
}

// Abs returns s with a local path made absolute; remote locations are
// returned as they are.
func Abs(s string) string {
	l, err := Parse(s)
	if err != nil || l.Remote() {
		return s
	}
	if abs, err := filepath.Abs(l.Key); err == nil {
		return abs
	}
	return l.Key
}
