package main

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// Credential kinds of the mix.
const (
	kindAPIKey    = "api_key"
	kindSession   = "session"
	kindJWT       = "jwt"
	kindRevoked   = "revoked" // credentials revoked mid-run, of every kind
	kindAnonymous = "anonymous"
	kindInvalid   = "invalid"
)

// share is a kind's share of the load, in percent.
type share struct {
	kind   string
	weight int
}

var mixWeights = []share{
	{kindAPIKey, 28}, {kindSession, 22}, {kindJWT, 24}, {kindRevoked, 6}, {kindAnonymous, 8}, {kindInvalid, 12},
}

// victim is a credential that is revoked during the run.
type victim struct {
	name      string
	revokedAt atomic.Int64 // unix nanoseconds; 0 until revoked
}

func (v *victim) revoked() (time.Time, bool) {
	if n := v.revokedAt.Load(); n != 0 {
		return time.Unix(0, n), true
	}
	return time.Time{}, false
}

// credential is one caller of the mix.
type credential struct {
	kind    string
	label   string // names it in reports; never holds a secret
	headers map[string]string
	jwt     *jwtHolder // for JWTs: the current token
	victim  *victim
}

// header returns the credential's headers for one request.
func (c *credential) header() (map[string]string, string) {
	h := map[string]string{"content-type": "application/json"}
	for k, v := range c.headers {
		h[k] = v
	}
	kid := ""
	if c.jwt != nil {
		t := c.jwt.current()
		h["authorization"] = "Bearer " + t.raw
		kid = t.kid
	}
	return h, kid
}

// jwtHolder keeps a JWT of a session or API key current by exchanging
// the credential again before the token expires.
type jwtHolder struct {
	session, apiKey string
	tok             atomic.Pointer[jwtToken]
	victim          *victim
}

type jwtToken struct{ raw, kid string }

func (j *jwtHolder) current() *jwtToken { return j.tok.Load() }

func (j *jwtHolder) refresh(ctx context.Context, c *idClient) error {
	raw, err := c.token(ctx, j.session, j.apiKey)
	if err != nil {
		return err
	}
	j.tok.Store(&jwtToken{raw: raw, kid: kidOf(raw)})
	return nil
}

// kidOf reads the kid of a JWT's header, unverified, for reports.
func kidOf(raw string) string {
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct{ Kid string }
	json.Unmarshal(b, &h)
	return h.Kid
}

// keepFresh refreshes every holder a third of a token's lifetime, until
// stop. A revoked credential keeps its last token, which the load keeps
// sending until it expires.
func keepFresh(ctx context.Context, c *idClient, holders []*jwtHolder, stop <-chan struct{}) {
	t := time.NewTicker(tokenTTL / 3)
	defer t.Stop()
	for {
		if _, ok := next(ctx, stop, t); !ok {
			return
		}
		for _, h := range holders {
			if h.victim != nil {
				if _, gone := h.victim.revoked(); gone {
					continue
				}
			}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			h.refresh(rctx, c)
			cancel()
		}
	}
}

// mix is every credential of the load, by kind.
type mix struct {
	byKind  map[string][]*credential
	holders []*jwtHolder
	victims []*victim
}

// buildMix makes the credentials from the fixture and fetches the first
// JWTs.
func buildMix(ctx context.Context, c *idClient, f *fixture, issuer string) (*mix, error) {
	m := &mix{byKind: map[string][]*credential{}}
	add := func(cr *credential) { m.byKind[cr.kind] = append(m.byKind[cr.kind], cr) }
	cookie := func(s *session) map[string]string {
		return map[string]string{"cookie": "__Host-mcpauthz_session=" + s.token}
	}
	newJWT := func(label, sess, key string, v *victim) (*credential, error) {
		h := &jwtHolder{session: sess, apiKey: key, victim: v}
		if err := h.refresh(ctx, c); err != nil {
			return nil, fmt.Errorf("exchanging %s for a JWT: %w", label, err)
		}
		m.holders = append(m.holders, h)
		kind := kindJWT
		if v != nil {
			kind = kindRevoked
		}
		return &credential{kind: kind, label: label, jwt: h, victim: v}, nil
	}
	for i, o := range f.orgs {
		for j, s := range o.sessions {
			add(&credential{kind: kindSession, label: fmt.Sprintf("session %d/%d", i, j), headers: cookie(s)})
		}
		for j, k := range o.keys {
			add(&credential{kind: kindAPIKey, label: fmt.Sprintf("key %d/%d", i, j), headers: map[string]string{"x-api-key": k.secret}})
		}
		for _, src := range []struct{ label, sess, key string }{
			{fmt.Sprintf("jwt of session %d/0", i), o.sessions[0].token, ""},
			{fmt.Sprintf("jwt of key %d/0", i), "", o.keys[0].secret},
		} {
			cr, err := newJWT(src.label, src.sess, src.key, nil)
			if err != nil {
				return nil, err
			}
			add(cr)
		}
	}
	for i, s := range f.victimSessions {
		v := &victim{name: fmt.Sprintf("session %s", s.id)}
		m.victims = append(m.victims, v)
		add(&credential{kind: kindRevoked, label: "revoked session " + s.id, headers: cookie(s), victim: v})
		if i%2 == 0 {
			cr, err := newJWT("jwt of revoked session "+s.id, s.token, "", v)
			if err != nil {
				return nil, err
			}
			add(cr)
		}
	}
	for i, k := range f.victimKeys {
		v := &victim{name: "key " + k.id}
		m.victims = append(m.victims, v)
		add(&credential{kind: kindRevoked, label: "revoked key " + k.id, headers: map[string]string{"x-api-key": k.secret}, victim: v})
		if i%2 == 0 {
			cr, err := newJWT("jwt of revoked key "+k.id, "", k.secret, v)
			if err != nil {
				return nil, err
			}
			add(cr)
		}
	}
	add(&credential{kind: kindAnonymous, label: "anonymous"})
	invalid, err := invalidCredentials(f, issuer)
	if err != nil {
		return nil, err
	}
	for _, cr := range invalid {
		add(cr)
	}
	return m, nil
}

// invalidCredentials are credentials that must never verify.
func invalidCredentials(f *fixture, issuer string) ([]*credential, error) {
	unknownKey, err := token.New(token.KindAPIKey, crand.Reader)
	if err != nil {
		return nil, err
	}
	unknownSession, err := token.New(token.KindSession, crand.Reader)
	if err != nil {
		return nil, err
	}
	// A real key with one character changed: its checksum fails.
	bad := []byte(f.orgs[0].keys[0].secret)
	if i := len(bad) - 3; bad[i] == 'a' {
		bad[i] = 'b'
	} else {
		bad[i] = 'a'
	}
	// A token naming the identity service as issuer, signed by another key.
	forger, err := token.GenerateKey(token.ES256, crand.Reader, time.Now())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	forged, err := forger.Sign(jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": "key:forged", "tid": f.orgs[0].id, "scope": "mcp:tools:call",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "forged",
	})
	if err != nil {
		return nil, err
	}
	inv := func(label string, h map[string]string) *credential {
		return &credential{kind: kindInvalid, label: label, headers: h}
	}
	return []*credential{
		inv("garbage bearer", map[string]string{"authorization": "Bearer not-a-token"}),
		inv("key with a bad checksum", map[string]string{"x-api-key": string(bad)}),
		inv("unknown key", map[string]string{"x-api-key": unknownKey}),
		inv("unknown session", map[string]string{"cookie": "__Host-mcpauthz_session=" + unknownSession}),
		inv("forged JWT", map[string]string{"authorization": "Bearer " + forged}),
		inv("alg none JWT", map[string]string{"authorization": "Bearer " + algNone(issuer, f.orgs[0].id)}),
	}, nil
}

// algNone is an unsigned JWT.
func algNone(issuer, tenant string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "kid": "x"}) + "." +
		enc(map[string]any{"iss": issuer, "aud": audience, "sub": "u", "tid": tenant, "exp": time.Now().Add(time.Hour).Unix()}) + "."
}

// An operation of the mix: an MCP request, or a plain GET.
type operation struct {
	name   string
	method string
	path   string
	tool   string // tools/call
	mcp    string // the JSON-RPC method, "" for a plain request
	weight int
	// fresh: the policy asks for a fresh session (401 with a challenge
	// to a JWT that has none, 403 to an API key).
	fresh bool
}

var (
	// Authenticated callers: read-only tools, the tool list, and a tool
	// the policy does not declare (destructive: fresh sessions only).
	authenticatedOps = []operation{
		{name: "tools/call echo", method: "POST", path: "/mcp", mcp: "tools/call", tool: "echo", weight: 45},
		{name: "tools/call whoami", method: "POST", path: "/mcp", mcp: "tools/call", tool: "whoami", weight: 35},
		{name: "tools/list", method: "POST", path: "/mcp", mcp: "tools/list", weight: 12},
		{name: "tools/call delete_files", method: "POST", path: "/mcp", mcp: "tools/call", tool: "delete_files", weight: 8, fresh: true},
	}
	// A revoked credential asks for what it was allowed: any allow after
	// revocation is the credential still accepted.
	probeOps = []operation{{name: "tools/call echo", method: "POST", path: "/mcp", mcp: "tools/call", tool: "echo", weight: 1}}
	// Anonymous callers: a public route, and a tool call they must not get.
	anonymousOps = []operation{
		{name: "GET /healthz", method: "GET", path: "/healthz", weight: 1},
		{name: "tools/call echo", method: "POST", path: "/mcp", mcp: "tools/call", tool: "echo", weight: 1},
	}
)

// opsFor returns what callers of a kind ask.
func opsFor(kind string) []operation {
	switch kind {
	case kindAnonymous:
		return anonymousOps
	case kindRevoked, kindInvalid:
		return probeOps
	}
	return authenticatedOps
}

var rpcID atomic.Int64

// request builds the CheckRequest Envoy would send.
func (o operation) request(headers map[string]string) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{Method: o.method, Path: o.path, Headers: headers, Protocol: "HTTP/1.1"}
	switch {
	case o.mcp == "tools/call":
		h.Body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"text":"soak"}}}`, rpcID.Add(1), o.tool)
	case o.mcp != "":
		h.Body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, rpcID.Add(1), o.mcp)
	default:
		delete(headers, "content-type")
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

// pick chooses one of items at random, in proportion to their weights.
func pick[T any](r *rand.Rand, items []T, weight func(T) int) T {
	total := 0
	for _, it := range items {
		total += weight(it)
	}
	n := r.IntN(total)
	for _, it := range items {
		if n -= weight(it); n < 0 {
			return it
		}
	}
	return items[len(items)-1]
}
