package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // AppendJSON of the result; empty means an error is expected
	}{
		{"ok/object", `{"a":1,"b":[true,false,null],"c":"x"}`, `{"a":1,"b":[true,false,null],"c":"x"}`},
		{"ok/whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n", `{"a":[1,2]}`},
		{"ok/number forms", `[0,-0,1.5,-2e10,3E+2,4e-2,123456789012345678901234567890]`, `[0,-0,1.5,-2e10,3E+2,4e-2,123456789012345678901234567890]`},
		{"ok/escapes", `"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"`, `"a\"b\\c/d\u0008\u000c\n\r\té😀"`},
		{"ok/empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
		{"ok/scalar top level", `"tools/call"`, `"tools/call"`},
		{"ok/same key in different objects", `{"a":{"a":1},"b":{"a":2}}`, `{"a":{"a":1},"b":{"a":2}}`},
		{"fail/duplicate key", `{"a":1,"a":2}`, ""},
		{"fail/duplicate key after unescaping", `{"method":"x","m\u0065thod":"y"}`, ""},
		{"fail/duplicate nested key", `{"p":{"name":"a","name":"b"}}`, ""},
		{"fail/trailing data", `{"a":1}{"a":2}`, ""},
		{"fail/trailing comma object", `{"a":1,}`, ""},
		{"fail/trailing comma array", `[1,]`, ""},
		{"fail/leading zero", `[01]`, ""},
		{"fail/plus sign", `[+1]`, ""},
		{"fail/bare dot", `[1.]`, ""},
		{"fail/bare exponent", `[1e]`, ""},
		{"fail/nan", `[NaN]`, ""},
		{"fail/single quotes", `{'a':1}`, ""},
		{"fail/unquoted key", `{a:1}`, ""},
		{"fail/control char in string", "\"a\x01b\"", ""},
		{"fail/invalid escape", `"\x41"`, ""},
		{"fail/short unicode escape", `"\u12"`, ""},
		{"fail/lone high surrogate", `"\ud83d"`, ""},
		{"fail/lone low surrogate", `"\ude00"`, ""},
		{"fail/high surrogate then non-surrogate", `"\ud83d\u0041"`, ""},
		{"fail/invalid utf8", "\"\xff\"", ""},
		{"fail/byte order mark", "\ufeff{}", ""},
		{"fail/empty", ``, ""},
		{"fail/only whitespace", `   `, ""},
		{"fail/unterminated string", `"abc`, ""},
		{"fail/unterminated object", `{"a":1`, ""},
		{"fail/truncated literal", `tru`, ""},
		{"fail/comment", `{"a":1 /* c */}`, ""},
		{"fail/too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ""},
		{"ok/max depth", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodeJSON(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("DecodeJSON(%q) = %s, want an error", tt.in, AppendJSON(nil, &v))
				}
				var syn *SyntaxError
				if !errors.As(err, &syn) && !errors.Is(err, ErrInvalidUTF8) {
					t.Fatalf("error %v is neither a *SyntaxError nor ErrInvalidUTF8", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeJSON(%q): %v", tt.in, err)
			}
			if got := string(AppendJSON(nil, &v)); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDecodeJSONDuplicateKeyOffset(t *testing.T) {
	_, err := DecodeJSON(`{"a":1,"a":2}`)
	var syn *SyntaxError
	if !errors.As(err, &syn) {
		t.Fatalf("got %v, want *SyntaxError", err)
	}
	if syn.Offset != 7 || !strings.Contains(syn.Msg, `duplicate object key "a"`) {
		t.Fatalf("got offset %d message %q", syn.Offset, syn.Msg)
	}
}

func TestValueGet(t *testing.T) {
	v, err := DecodeJSON(`{"a":{"b":"c"}}`)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := v.Get("a")
	if !ok || a.Kind != Object {
		t.Fatalf("Get(a) = %v, %v", a, ok)
	}
	b, ok := a.Get("b")
	if !ok || b.Kind != String || b.Text != "c" {
		t.Fatalf("Get(b) = %v, %v", b, ok)
	}
	if _, ok := a.Get("missing"); ok {
		t.Fatal("Get(missing) found something")
	}
	if _, ok := b.Get("x"); ok {
		t.Fatal("Get on a string found something")
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ok/plain", "abc", `"abc"`},
		{"ok/quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"ok/html", "<a&b>", `"\u003ca\u0026b\u003e"`},
		{"ok/control", "\x00\x1f", `"\u0000\u001f"`},
		{"ok/line separators", "\u2028\u2029", `"\u2028\u2029"`},
		{"ok/invalid utf8", "a\xffb", `"a\ufffdb"`},
		{"ok/unicode", "é😀", `"é😀"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendString(nil, tt.in))
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
		})
	}
}

// FuzzDecodeJSON checks DecodeJSON against encoding/json: whatever DecodeJSON
// accepts, encoding/json accepts with the same meaning; whatever encoding/json
// rejects, DecodeJSON rejects too.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,2.5,"s",null,true]}}}`,
		`[{"a":1},{"b":"\u00e9\ud83d\ude00"}]`,
		`{"a":1,"a":2}`,
		`"\ud800"`,
		`-0.0e+00`,
		"\xef\xbb\xbf{}",
		"2" + strings.Repeat("0", 300), // valid JSON, too large for a float64
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(string(data))
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("DecodeJSON accepted %q, which encoding/json rejects", data)
			}
			return
		}
		if err != nil {
			return // stricter than encoding/json: duplicates, surrogates, depth
		}
		// Numbers are compared as written, as OPA keeps them: a valid
		// number may not fit a float64.
		decode := func(b []byte) (any, error) {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var v any
			return v, dec.Decode(&v)
		}
		want, err := decode(data)
		if err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		out := AppendJSON(nil, &v)
		got, err := decode(out)
		if err != nil {
			t.Fatalf("AppendJSON produced invalid JSON %q: %v", out, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("round trip changed the value:\n in: %q\nout: %q", data, out)
		}
	})
}

func BenchmarkDecodeJSON(b *testing.B) {
	body := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search","arguments":{"query":"quarterly report","limit":10}}}`
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}
