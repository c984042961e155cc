package bundles

import (
	"encoding/base64"
	"slices"
	"testing"
)

// signaturesFile is a .signatures.json holding one JWS with the header
// and payload given (the signature is not checked here).
func signaturesFile(header, payload string) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return `{"signatures": ["` + enc(header) + "." + enc(payload) + `.AAAA"], "plugin": "_default"}`
}

func TestParseSignatures(t *testing.T) {
	const files = `{"files": [{"name": ".manifest", "hash": "ab", "algorithm": "SHA-256"}, {"name": "data.json"}]`
	tests := []struct {
		name, data string
		kid        string // "!" for an error
	}{
		{"ok/kid in the header", signaturesFile(`{"alg":"ES256","kid":"release"}`, files+`}`), "release"},
		{"ok/keyid in the payload without a kid", signaturesFile(`{"alg":"ES256"}`, files+`, "keyid": "old"}`), "old"},
		{"ok/the header's kid before the payload's keyid", signaturesFile(`{"alg":"RS256","kid":"new"}`, files+`, "keyid": "old"}`), "new"},
		{"ok/a KID in another case is not the kid", signaturesFile(`{"alg":"ES256","KID":"release"}`, files+`}`), ""},
		{"fail/a header member twice", signaturesFile(`{"alg":"ES256","kid":"a","kid":"b"}`, files+`}`), "!"},
		{"fail/a kid that is not a string", signaturesFile(`{"alg":"ES256","kid":7}`, files+`}`), "!"},
		{"fail/a header that is not an object", signaturesFile(`null`, files+`}`), "!"},
		{"fail/data after the header", signaturesFile(`{"alg":"ES256"} {}`, files+`}`), "!"},
		{"fail/a file hash that is not a string", signaturesFile(`{"alg":"ES256"}`, `{"files": [{"name": "a", "hash": 1}]}`), "!"},
		{"fail/two signatures", `{"signatures": ["a.b.c", "a.b.c"]}`, "!"},
		{"fail/not a compact JWS", `{"signatures": ["a.b"]}`, "!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parseSignatures([]byte(tt.data))
			if tt.kid == "!" {
				if err == nil {
					t.Fatalf("accepted: %+v", info)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.KeyID != tt.kid || !slices.Equal(info.Files, []string{".manifest", "data.json"}) {
				t.Fatalf("info %+v, want kid %q", info, tt.kid)
			}
		})
	}
}
