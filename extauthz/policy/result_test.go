package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// TestCompactResult: a remembered result is kept as JSON when JSON holds
// it exactly, reads back as the same term, and logs as the term does.
func TestCompactResult(t *testing.T) {
	tests := []struct {
		name, term string
		json       bool
	}{
		{"ok/a decision", `{"allowed": true, "limits": [{"name": "a", "limit": 1.5, "share": {"pool": "p", "weight": 3}}], "quotas": [], "x": null}`, true},
		{"ok/a boolean", `true`, true},
		{"ok/escapes", `{"h": "a\"b\\c\u0001é", "k\n": ["☃"]}`, true},
		{"ok/big and small numbers", `{"n": [12345678901234567890, 1e-7, -0, 3.0]}`, true},
		{"term/a set", `{"allowed": false, "reasons": {"a", "b"}}`, false},
		{"term/a number key", `{"allowed": true, "m": {1: "x"}}`, false},
		{"term/a set deep inside", `[{"a": [set()]}]`, false},
	}
	mask := extauthz.NewMask("/limits")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := ast.MustParseTerm(tt.term)
			r := compact(term)
			if (r.json != nil) != tt.json || (r.term != nil) == tt.json {
				t.Fatalf("compact kept json %q, term %v", r.json, r.term)
			}
			if got := r.Term(); got.Value.Compare(term.Value) != 0 {
				t.Errorf("reads back as %v, want %v", got, term)
			}
			for _, m := range []*extauthz.Mask{nil, mask} {
				want, wantErased := result{term: term}.AppendJSON(nil, m)
				got, gotErased := r.AppendJSON(nil, m)
				if string(got) != string(want) || len(gotErased) != len(wantErased) {
					t.Errorf("logs %s %q, want %s %q", got, gotErased, want, wantErased)
				}
			}
		})
	}
	if r := (result{}); r.Term() != nil {
		t.Error("an empty result has a term")
	}
}
