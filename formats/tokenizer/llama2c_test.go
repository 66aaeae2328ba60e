package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
)

func loadTok512(t testing.TB) *Llama2c {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "teachers", "seq", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseLlama2c(data)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runcEncode is llama2.c run.c's encode as written: a full scan of the
// pairs for every merge (quadratic), the reference for Encode's heap.
func runcEncode(t *Llama2c, text string, bos bool) []int {
	var ids []int
	if bos {
		ids = append(ids, 1)
	}
	if text != "" {
		ids = append(ids, t.lookup[" "])
	}
	b := []byte(text)
	var buf []byte
	for c := 0; c < len(b); c++ {
		if b[c]&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, b[c])
		if c+1 < len(b) && b[c+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.lookup[string(buf)]; ok {
			ids = append(ids, id)
		} else {
			for _, x := range buf {
				ids = append(ids, int(x)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(ids); i++ {
			if id, ok := t.lookup[t.pieces[ids[i]]+t.pieces[ids[i+1]]]; ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			break
		}
		ids[bestIdx] = bestID
		ids = slices.Delete(ids, bestIdx+1, bestIdx+2)
	}
	return ids
}

func TestLlama2c(t *testing.T) {
	tok := loadTok512(t)
	if tok.VocabSize() != 512 {
		t.Fatalf("tok512 has %d pieces", tok.VocabSize())
	}
	if bos, _ := tok.Special("bos"); bos != 1 || tok.Piece(1) != "\n<s>\n" {
		t.Errorf("BOS %d = %q", bos, tok.Piece(1))
	}
	ids, err := tok.Encode(sharedtest.StoriesGreedy, true)
	if err != nil {
		t.Fatal(err)
	}
	// The greedy text is 200 generated tokens after BOS; its encoding is
	// that token sequence (seq README: encode(decode(golden)) == golden).
	if len(ids) != 201 || ids[0] != 1 {
		t.Errorf("the greedy text encodes to %d ids (first %d), want BOS + 200", len(ids), ids[0])
	}
	if got := tok.Decode(ids, true); got != sharedtest.StoriesGreedy {
		t.Errorf("decode(encode) differs:\n%q\n%q", got, sharedtest.StoriesGreedy)
	}
	if want := runcEncode(tok, sharedtest.StoriesGreedy, true); !slices.Equal(ids, want) {
		t.Errorf("heap merge differs from run.c's loop:\n%v\n%v", ids, want)
	}
	// Byte fallback: a character with no piece becomes its UTF-8 bytes + 3,
	// and decodes back.
	for _, s := range []string{"é", "Ünïcödé ☃ 日本", "\x00\x01", "", " ", "  two  spaces ", "<s>", "\xff\xfe broken"} {
		ids, _ := tok.Encode(s, false)
		if want := runcEncode(tok, s, false); !slices.Equal(ids, want) {
			t.Errorf("%q: %v, run.c %v", s, ids, want)
		}
		if got := tok.Decode(ids, true); got != s {
			t.Errorf("%q decodes to %q", s, got)
		}
	}
	if ids, _ := tok.Encode("☃", false); len(ids) != 4 || ids[1] != 0xE2+3 {
		t.Errorf("☃ → %v, want the dummy prefix then bytes E2 98 83 + 3", ids)
	}
	if got := tok.Decode([]int{1, 2, 0}, false); got != "<s></s><unk>" {
		t.Errorf("specials decode to %q", got)
	}
}

// TestLlama2cTinyStories checks the heap encoder against run.c's loop on
// the first blocks of TinyStories and measures characters per token
// (seq README: 2.06 on the whole excerpt).
func TestLlama2cTinyStories(t *testing.T) {
	tok := loadTok512(t)
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "teachers", "seq", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "\n\n")
	n := 300
	if testing.Short() {
		n = 30
	}
	var chars, tokens int
	for i, b := range blocks {
		ids, _ := tok.Encode(b, true)
		if i < n {
			if want := runcEncode(tok, b, true); !slices.Equal(ids, want) {
				t.Fatalf("block %d: heap merge differs from run.c's loop", i)
			}
		}
		if got := tok.Decode(ids, true); got != b {
			t.Fatalf("block %d does not decode back", i)
		}
		chars += len(b)
		tokens += len(ids) - 1
	}
	if r := float64(chars) / float64(tokens); r < 2.0 || r > 2.12 {
		t.Errorf("%.3f bytes per token, want about 2.06", r)
	}
}

func TestParseLlama2cErrors(t *testing.T) {
	good := func() []byte {
		data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "teachers", "seq", "tok512.bin"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}()
	for name, data := range map[string][]byte{
		"empty": nil, "short": {1, 0}, "huge max": {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0},
		"truncated": good[:len(good)-3], "two pieces": good[:4+8+len("<unk>")+8+len("\n<s>\n")],
	} {
		if _, err := ParseLlama2c(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestChars(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "teachers", "seq", "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	tok, kind, err := Parse(data)
	if err != nil || kind != "chars" || tok.VocabSize() != 65 {
		t.Fatalf("vocab.json: %v, %s, %d", err, kind, tok.VocabSize())
	}
	text := "First Citizen:\nBefore we proceed any further, hear me speak."
	ids, err := tok.Encode(text, true)
	if err != nil || len(ids) != len(text) || tok.Decode(ids, false) != text {
		t.Errorf("round trip: %v %v", ids, err)
	}
	if _, err := tok.Encode("naïve", false); err == nil || !strings.Contains(err.Error(), "U+00EF") {
		t.Errorf("unknown character: %v", err)
	}
	multi, err := ParseChars([]byte(`["a", "ab", "b", "é"]`))
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := multi.Encode("abbaé", false); !slices.Equal(ids, []int{1, 2, 0, 3}) {
		t.Errorf("longest match: %v", ids)
	}
	for _, bad := range []string{`[]`, `["a", "a"]`, `["a", ""]`, `[1]`, `{"a": 1}`} {
		if _, err := ParseChars([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzLlama2c(f *testing.F) {
	// A tiny llama2.c vocabulary: specials, the 256 bytes, " ", "a", "b", "ab", " a".
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := range 256 {
		pieces = append(pieces, "<0x"+strings.ToUpper(string("0123456789abcdef"[b>>4])+string("0123456789abcdef"[b&15]))+">")
	}
	pieces = append(pieces, " ", "a", "b", "ab", " a", " ab")
	var data []byte
	le := func(v uint32) { data = append(data, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	le(8)
	for i, p := range pieces {
		le(uint32(i)) // scores: any order; float bits of small ints are fine
		le(uint32(len(p)))
		data = append(data, p...)
	}
	tok, err := ParseLlama2c(data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("ab ab", []byte{1, 2})
	f.Add("\xff\xfeé", []byte(nil))
	f.Fuzz(func(t *testing.T, text string, raw []byte) {
		ids, _ := tok.Encode(text, true)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		if got := tok.Decode(ids, true); got != text {
			t.Fatalf("%q decodes to %q", text, got)
		}
		ParseLlama2c(raw) // must not panic
	})
}
