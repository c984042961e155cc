package policy

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// keyPolicies read the input in the ways the decision cache key must
// cover: single headers, whole maps, bodies, identity, peers, metadata.
var keyPolicies = []string{
	`decision := input.mcp.tool == "x" if input.attributes.request.http.headers["x-role"]`,
	`decision := count(input.attributes.contextExtensions) + count(input.identity.roles)`,
	`decision := [input.parsed_body.params.name, input.parsed_query, input.parsed_path]`,
	`decision := [input.attributes.source, input.attributes.destination.labels, input.attributes.metadataContext]`,
	`decision := [input.identity, input.mcp, input.truncated_body, input.client_ip]`,
	`decision := [input.attributes.request.http.method, input.attributes.request.http.path, input.attributes.tlsSession]`,
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// randomInput draws a request from small sets of values, so that many
// draws are equal or nearly so.
func randomInput(r *rand.Rand) *extauthz.PolicyInput {
	req := &extauthz.Request{
		Method:  pick(r, "GET", "POST"),
		Path:    pick(r, "/mcp", "/mcp?a=1", "/mcp?a=1&a=2", "/a%2Fb/c", "/"),
		Headers: map[string]string{"content-type": "application/json"},
		Body: pick(r,
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
			`{"jsonrpc":"2.0","method":"tools/call","id":1,"params":{"name":"x"}}`,
			`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"y"}}`,
			`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`),
		ClientIP: pick(r, "", "10.0.0.1", "10.0.0.2"),
	}
	for _, h := range []string{"x-role", "x-other", "authorization"} {
		if r.IntN(2) == 0 {
			req.Headers[h] = pick(r, "a", "b", "ab")
		}
	}
	if r.IntN(2) == 0 {
		req.ContextExtensions = map[string]string{"tenant": pick(r, "t1", "t2"), pick(r, "k1", "k2"): "v"}
	}
	if r.IntN(3) == 0 {
		req.Headers["content-length"] = "9999"
	}
	req.Source = extauthz.Peer{Address: pick(r, "", "10.1.1.1"), Port: pick[uint32](r, 0, 1, 2), Principal: pick(r, "", "p")}
	req.Destination.Labels = pick(r, map[string]string(nil), map[string]string{"app": "mcp"}, map[string]string{"app": "x", "v": "1"})
	req.MetadataContext = pick(r, map[string]any(nil), map[string]any{},
		map[string]any{"ns": map[string]any{"sub": "a", "n": float64(1)}},
		map[string]any{"ns": map[string]any{"sub": "a", "n": float64(2)}, "other": []any{"x", true}})
	req.TLSSession = r.IntN(2) == 0
	req.TLSSessionSNI = pick(r, "", "sni")

	in := &extauthz.PolicyInput{Request: req}
	in.Identity = pick(r, &extauthz.Anonymous,
		&extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "u1", Roles: []string{"a"}},
		&extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "u1", Roles: []string{"a", "b"}},
		&extauthz.Identity{Authenticated: true, Method: extauthz.MethodAPIKey, Subject: "u2", Tenant: "t1",
			APIKey: &extauthz.APIKeyInfo{ID: "k", AllowedTools: []string{"x"}}, Claims: map[string]any{"s": "a", "t": float64(1)}})
	if !req.Truncated() {
		v, err := mcp.DecodeJSON(req.Body)
		if err == nil {
			in.Body = &v
			if m, err := mcp.Parse(in.Body, mcp.Headers{}, mcp.Options{}); err == nil {
				in.MCP, in.Message = m, &m.Messages[0]
			}
		}
	}
	return in
}

func inputUse(t *testing.T, body string) *bundles.InputUse {
	t.Helper()
	e, err := bundles.NewEngine(bundles.DefaultDecisionPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundles.LoadFS(fstest.MapFS{"p.rego": &fstest.MapFile{Data: []byte("package mcpauthz.authz\n\n" + body + "\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Activate(context.Background(), b, "t"); err != nil {
		t.Fatal(err)
	}
	return e.Active().InputUse()
}

// TestCacheKeySoundness: for every pair of inputs, under every policy's
// input use, equal keys must mean equal input documents — a cached decision
// is only ever reused for the same input. Keys must also be stable: the
// same input gives the same key, whatever the order maps iterate in.
func TestCacheKeySoundness(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 400 inputs drawn from 150 seeds: equal seeds rebuild equal inputs
	// with maps of their own, so every use sees repeats.
	inputs := make([]*extauthz.PolicyInput, 400)
	for i := range inputs {
		inputs[i] = randomInput(rand.New(rand.NewPCG(uint64(i%150), 11)))
	}
	uses := []*bundles.InputUse{bundles.AllInput}
	for _, p := range keyPolicies {
		uses = append(uses, inputUse(t, p))
	}
	for ui, use := range uses {
		keys := make([]string, len(inputs))
		docs := make(map[string]int, len(inputs))
		equalKeys := 0
		for i, in := range inputs {
			keys[i] = string(inputKey(nil, in, use, now))
			if again := string(inputKey(nil, in, use, now)); again != keys[i] {
				t.Fatalf("use %d: input %d gives two keys", ui, i)
			}
			if j, ok := docs[keys[i]]; ok {
				equalKeys++
				a, b := buildInput(in, use, now), buildInput(inputs[j], use, now)
				if !a.Equal(b) {
					t.Fatalf("use %d: inputs %d and %d share a key but differ:\n%v\n%v", ui, i, j, a, b)
				}
			} else {
				docs[keys[i]] = i
			}
		}
		// The draws repeat often enough for the check to bite.
		if equalKeys < 20 {
			t.Fatalf("use %d: only %d inputs shared a key; the test does not exercise the cache", ui, equalKeys)
		}
		// By the same token, there are at least as many keys as documents.
		distinctDocs := map[string]bool{}
		for _, in := range inputs {
			distinctDocs[buildInput(in, use, now).String()] = true
		}
		if len(docs) < len(distinctDocs) {
			t.Fatalf("use %d: %d keys for %d distinct documents", ui, len(docs), len(distinctDocs))
		}
		t.Logf("use %d: %d keys for %d distinct documents over %d inputs", ui, len(docs), len(distinctDocs), len(inputs))
	}
}

// TestCacheKeyNearMisses: inputs that differ only in an empty value
// against an absent one, or an empty map against none, must not share a
// key where their documents differ.
func TestCacheKeyNearMisses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req := func(edit func(*extauthz.Request)) *extauthz.PolicyInput {
		r := &extauthz.Request{Method: "GET", Path: "/mcp", Headers: map[string]string{"x-a": "1"}}
		edit(r)
		return &extauthz.PolicyInput{Request: r, Identity: &extauthz.Anonymous}
	}
	variants := []*extauthz.PolicyInput{
		req(func(*extauthz.Request) {}),
		req(func(r *extauthz.Request) { r.Headers["x-role"] = "" }),
		req(func(r *extauthz.Request) { r.Headers["x-role"] = "a" }),
		req(func(r *extauthz.Request) { r.ContextExtensions = map[string]string{"k": ""} }),
		req(func(r *extauthz.Request) { r.MetadataContext = map[string]any{} }),
		req(func(r *extauthz.Request) { r.MetadataContext = map[string]any{"ns": map[string]any{}} }),
		req(func(r *extauthz.Request) { r.Path = "/mcp?x=" }),
		req(func(r *extauthz.Request) { r.Path = "/mcp?x" }),
	}
	uses := []*bundles.InputUse{bundles.AllInput}
	for _, p := range keyPolicies {
		uses = append(uses, inputUse(t, p))
	}
	for ui, use := range uses {
		for i, a := range variants {
			for j, b := range variants[:i] {
				if string(inputKey(nil, a, use, now)) != string(inputKey(nil, b, use, now)) {
					continue
				}
				if da, db := buildInput(a, use, now), buildInput(b, use, now); !da.Equal(db) {
					t.Errorf("use %d: variants %d and %d share a key but differ:\n%v\n%v", ui, i, j, da, db)
				}
			}
		}
	}
}
