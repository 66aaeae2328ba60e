package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// jobj is a JSON object of a tokenizer.json being read, with its path in
// the document ("pre_tokenizer.pretokenizers[1]") for error messages.
// Its getters treat a missing key and JSON null alike.
type jobj struct {
	path string
	m    map[string]json.RawMessage
}

// isNull reports a missing or null JSON value.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// newObj reads the JSON object raw at path; null gives nil.
func newObj(path string, raw json.RawMessage) (*jobj, error) {
	if isNull(raw) {
		return nil, nil
	}
	o := &jobj{path: path}
	if err := json.Unmarshal(raw, &o.m); err != nil || o.m == nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrFormat, path)
	}
	return o, nil
}

// errorf returns an ErrFormat error naming o's path.
func (o *jobj) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrFormat, o.path, fmt.Sprintf(format, args...))
}

func (o *jobj) get(key string) (json.RawMessage, bool) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

// decode unmarshals the value of key into v, naming key on failure.
func (o *jobj) decode(key string, v any, what string) error {
	raw, _ := o.get(key)
	if err := json.Unmarshal(raw, v); err != nil {
		return o.errorf("%s is not %s", key, what)
	}
	return nil
}

// typ returns the "type" of a component.
func (o *jobj) typ() (string, error) {
	if _, ok := o.get("type"); !ok {
		return "", o.errorf(`no "type"`)
	}
	var s string
	err := o.decode("type", &s, "a string")
	return s, err
}

// str returns the string value of key; def is its default (nil: the key
// is required).
func (o *jobj) str(key string, def *string) (string, error) {
	if _, ok := o.get(key); !ok {
		if def == nil {
			return "", o.errorf("%s is missing", key)
		}
		return *def, nil
	}
	var s string
	err := o.decode(key, &s, "a string")
	return s, err
}

// optStr returns the string value of key, nil when missing or null.
func (o *jobj) optStr(key string) (*string, error) {
	if _, ok := o.get(key); !ok {
		return nil, nil
	}
	var s string
	if err := o.decode(key, &s, "a string"); err != nil {
		return nil, err
	}
	return &s, nil
}

// boolean returns the boolean value of key, def when missing or null.
func (o *jobj) boolean(key string, def bool) (bool, error) {
	b, err := o.optBool(key)
	if err != nil || b == nil {
		return def, err
	}
	return *b, nil
}

// optBool returns the boolean value of key, nil when missing or null.
func (o *jobj) optBool(key string) (*bool, error) {
	if _, ok := o.get(key); !ok {
		return nil, nil
	}
	var b bool
	if err := o.decode(key, &b, "a boolean"); err != nil {
		return nil, err
	}
	return &b, nil
}

// count returns the non-negative integer value of key, def when missing
// or null.
func (o *jobj) count(key string, def int) (int, error) {
	if _, ok := o.get(key); !ok {
		return def, nil
	}
	var n int64
	if err := o.decode(key, &n, "an integer"); err != nil {
		return 0, err
	}
	if n < 0 || n > 1<<40 {
		return 0, o.errorf("%s is %d, out of range", key, n)
	}
	return int(n), nil
}

// char returns the value of key, a string of one rune; def when missing.
func (o *jobj) char(key string, def rune) (rune, error) {
	if _, ok := o.get(key); !ok {
		return def, nil
	}
	var s string
	if err := o.decode(key, &s, "a string"); err != nil {
		return 0, err
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) {
		return 0, o.errorf("%s is %q, not one character", key, s)
	}
	return r, nil
}

// obj returns the object value of key, nil when missing or null.
func (o *jobj) obj(key string) (*jobj, error) {
	raw, _ := o.get(key)
	return newObj(o.path+"."+key, raw)
}

// objects returns the list of objects of key (required); null entries
// are nil.
func (o *jobj) objects(key string) ([]*jobj, error) {
	if _, ok := o.get(key); !ok {
		return nil, o.errorf("%s is missing", key)
	}
	var list []json.RawMessage
	if err := o.decode(key, &list, "a list"); err != nil {
		return nil, err
	}
	out := make([]*jobj, len(list))
	for i, raw := range list {
		var err error
		if out[i], err = newObj(fmt.Sprintf("%s.%s[%d]", o.path, key, i), raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pattern reads the pattern of key: {"String": s} (literal) or
// {"Regex": r}.
func (o *jobj) pattern(key string) (pattern, error) {
	if _, ok := o.get(key); !ok {
		return nil, o.errorf("%s is missing", key)
	}
	var p struct {
		String *string
		Regex  *string
	}
	if err := o.decode(key, &p, `{"String": ...} or {"Regex": ...}`); err != nil {
		return nil, err
	}
	switch {
	case p.String != nil && p.Regex == nil:
		return literalPattern(*p.String), nil
	case p.Regex != nil && p.String == nil:
		re, err := newRegexPattern(*p.Regex)
		if err != nil {
			return nil, o.errorf("%s: %v", key, err)
		}
		return re, nil
	}
	return nil, o.errorf(`%s is not {"String": ...} or {"Regex": ...}`, key)
}

// parseSequence parses the list of objects under key of a "Sequence"
// component with parse, leaving out the ones parse returns as nil (JSON
// null). It is the one loop behind the Sequence normalizer,
// pre-tokenizer, post-processor and decoder.
func parseSequence[T comparable](o *jobj, key string, parse func(*jobj) (T, error)) ([]T, error) {
	list, err := o.objects(key)
	if err != nil {
		return nil, err
	}
	var zero T
	var seq []T
	for _, c := range list {
		v, err := parse(c)
		if err != nil {
			return nil, err
		}
		if v != zero {
			seq = append(seq, v)
		}
	}
	return seq, nil
}
