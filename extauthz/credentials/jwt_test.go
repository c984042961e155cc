package credentials

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/internal/testclock"
)

// The fixture: one identity provider with RSA, ECDSA and Ed25519 keys
// served over HTTP, and a second issuer with an inline key set.
const (
	jwtTestIssuer   = "https://idp.example"
	jwtTestOther    = "https://other.example"
	jwtTestAudience = "mcp://server"
)

// jwtTestKey is a real signing key with its kid and algorithm.
type jwtTestKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

func (k *jwtTestKey) public() crypto.PublicKey { return k.priv.Public() }

// jwtTestKeys are generated once per test binary (RSA generation is slow).
var jwtTestKeys = sync.OnceValue(func() map[string]*jwtTestKey {
	must := func(k crypto.Signer, err error) crypto.Signer {
		if err != nil {
			panic(err)
		}
		return k
	}
	rsaKey := func(bits int) crypto.Signer { return must(rsa.GenerateKey(rand.Reader, bits)) }
	ecKey := func(c elliptic.Curve) crypto.Signer { return must(ecdsa.GenerateKey(c, rand.Reader)) }
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]*jwtTestKey{
		"rsa":   {kid: "rsa-1", alg: "RS256", priv: rsaKey(2048)},
		"ec":    {kid: "ec-1", alg: "ES256", priv: ecKey(elliptic.P256())},
		"ed":    {kid: "ed-1", alg: "EdDSA", priv: ed},
		"ec2":   {kid: "ec-2", alg: "ES256", priv: ecKey(elliptic.P256())}, // published later (rotation)
		"other": {kid: "other-1", alg: "ES256", priv: ecKey(elliptic.P256())},
		"evil":  {kid: "ec-1", alg: "ES256", priv: ecKey(elliptic.P256())}, // the attacker's, reusing a kid
		"rsa1k": {kid: "rsa-weak", alg: "RS256", priv: rsaKey(1024)},
	}
})

func jwtKey(name string) *jwtTestKey { return jwtTestKeys()[name] }

// jwtJWKS publishes the public halves of keys as a JWK set.
func jwtJWKS(t testing.TB, keys ...*jwtTestKey) []byte {
	t.Helper()
	doc := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(k.alg), KID: k.kid, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		doc.Keys = append(doc.Keys, j.Marshal())
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwtB64Enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwtRaw signs header and payload, given as JSON text, with k under alg:
// any bytes, so duplicate members and odd headers carry a valid
// signature and are refused for what they are.
func jwtRaw(t testing.TB, k *jwtTestKey, alg, header, payload string) string {
	t.Helper()
	signing := jwtB64Enc([]byte(header)) + "." + jwtB64Enc([]byte(payload))
	var key any = k.priv
	m := jwt.GetSigningMethod(alg)
	if m == nil {
		t.Fatalf("no method %s", alg)
	}
	sig, err := m.Sign(signing, key)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + jwtB64Enc(sig)
}

// jwtClaims are valid claims at now; edit them per case.
func jwtClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": jwtTestIssuer, "aud": jwtTestAudience, "sub": "alice", "tid": "org-1",
		"roles": []string{"admin"}, "scope": "tools:read tools:call", "jti": "jti-1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// jwtSign signs claims with k under its own algorithm and kid.
func jwtSign(t testing.TB, k *jwtTestKey, claims map[string]any) string {
	t.Helper()
	return jwtSignHeader(t, k, map[string]any{"alg": k.alg, "typ": "JWT", "kid": k.kid}, claims)
}

func jwtSignHeader(t testing.TB, k *jwtTestKey, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return jwtRaw(t, k, header["alg"].(string), string(h), string(p))
}

func jwtNewClock() *testclock.Clock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// jwtIdP is an identity provider's JWK set endpoint, counting its hits.
type jwtIdP struct {
	srv    *httptest.Server
	jwks   atomic.Pointer[[]byte]
	hits   atomic.Int64
	status atomic.Int32                  // answered instead of the set when non-zero
	block  atomic.Pointer[chan struct{}] // answers wait for it to close when set
}

func jwtNewIdP(t testing.TB, keys ...*jwtTestKey) *jwtIdP {
	t.Helper()
	idp := &jwtIdP{}
	idp.publish(t, keys...)
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		idp.hits.Add(1)
		if ch := idp.block.Load(); ch != nil {
			<-*ch
		}
		if s := idp.status.Load(); s != 0 {
			http.Error(w, "down", int(s))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*idp.jwks.Load())
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

func (p *jwtIdP) publish(t testing.TB, keys ...*jwtTestKey) {
	b := jwtJWKS(t, keys...)
	p.jwks.Store(&b)
}

func (p *jwtIdP) url() string { return p.srv.URL + "/.well-known/jwks.json" }

// jwtConfig is the fixture's configuration: the provider at url, and the
// other issuer inline.
func jwtConfig(t testing.TB, url string) JWTConfig {
	return JWTConfig{Issuers: []JWTIssuer{{
		Issuer: jwtTestIssuer, JWKSURL: url, Audiences: []string{jwtTestAudience, "mcp://alt"},
		Leeway: 30 * time.Second, RequiredClaims: []string{"jti"},
	}, {
		Issuer: jwtTestOther, JWKS: jwtJWKS(t, jwtKey("other")), Algorithms: []string{"ES256"},
		Audiences: []string{jwtTestAudience},
	}}}
}

// jwtNewVerifier returns a verifier of the fixture with its keys loaded.
func jwtNewVerifier(t testing.TB, idp *jwtIdP, clk *testclock.Clock, edit ...func(*JWTConfig)) *JWTVerifier {
	t.Helper()
	cfg := jwtConfig(t, idp.url())
	for _, e := range edit {
		e(&cfg)
	}
	v, err := NewJWTVerifier(cfg, WithJWTClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

func jwtReq(authorization string) *extauthz.Request {
	h := map[string]string{}
	if authorization != "" {
		h["authorization"] = authorization
	}
	return &extauthz.Request{Method: "POST", Path: "/mcp", Headers: h}
}

// jwtStatus is the status the authorizer answers a verifier's error with
// (0: not mine).
func jwtStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotMine):
		return 0
	case errors.Is(err, extauthz.ErrInvalidCredential):
		return http.StatusUnauthorized
	}
	return http.StatusServiceUnavailable
}

// jwtTweak changes one segment of a token.
func jwtTweak(tok string, seg int, f func(string) string) string {
	parts := strings.Split(tok, ".")
	parts[seg] = f(parts[seg])
	return strings.Join(parts, ".")
}

// jwtSetLast sets bits in the value of a segment's last character: with
// bit 1 set on a segment whose length is 2 or 3 mod 4, a lax decoder
// reads the same bytes from a different string.
func jwtSetLast(bits byte) func(string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return func(s string) string {
		last := strings.IndexByte(alphabet, s[len(s)-1])
		return s[:len(s)-1] + string(alphabet[byte(last)|bits])
	}
}

func TestJWTVerify(t *testing.T) {
	clk := jwtNewClock()
	now := clk.Now()
	idp := jwtNewIdP(t, jwtKey("rsa"), jwtKey("ec"), jwtKey("ed"))
	rsaKey, ecKey, edKey := jwtKey("rsa"), jwtKey("ec"), jwtKey("ed")
	with := func(edit func(map[string]any)) map[string]any {
		c := jwtClaims(now)
		edit(c)
		return c
	}
	header := func(k *jwtTestKey, extra map[string]any) map[string]any {
		h := map[string]any{"alg": k.alg, "typ": "JWT", "kid": k.kid}
		for n, v := range extra {
			h[n] = v
		}
		return h
	}
	payload, _ := json.Marshal(jwtClaims(now))
	pemKey := func() []byte {
		der, err := x509.MarshalPKIXPublicKey(rsaKey.public())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	attackerJWK := func() map[string]any {
		j, err := jwkset.NewJWKFromKey(jwtKey("evil").public(), jwkset.JWKOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(j.Marshal())
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}()
	// signatureWith returns an ES256 token whose signature holds one of
	// chars, to turn it into the standard alphabet.
	signatureWith := func(chars string) string {
		for range 200 {
			tok := jwtSign(t, ecKey, jwtClaims(now))
			if strings.ContainsAny(strings.Split(tok, ".")[2], chars) {
				return tok
			}
		}
		t.Fatal("no signature with " + chars)
		return ""
	}
	// padded returns a token whose payload needs padding, padded.
	padded := func() string {
		c := jwtClaims(now)
		for i := 0; ; i++ {
			c["pad"] = strings.Repeat("x", i)
			tok := jwtSign(t, ecKey, c)
			if p := strings.Split(tok, ".")[1]; len(p)%4 != 0 {
				return jwtTweak(tok, 1, func(s string) string { return s + strings.Repeat("=", 4-len(s)%4) })
			}
		}
	}()
	for _, c := range []struct {
		name      string
		tok       string
		status    int
		reason    error // wrapped in the error, besides ErrInvalidCredential
		preparsed bool  // refused before any key lookup or signature check
	}{
		{name: "ok/RS256", tok: jwtSign(t, rsaKey, jwtClaims(now)), status: 200},
		{name: "ok/ES256", tok: jwtSign(t, ecKey, jwtClaims(now)), status: 200},
		{name: "ok/EdDSA", tok: jwtSign(t, edKey, jwtClaims(now)), status: 200},
		{name: "ok/aud array holding one audience", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["aud"] = []string{"x", "mcp://alt"} })), status: 200},
		{name: "ok/another issuer's own key", tok: jwtSign(t, jwtKey("other"), with(func(c map[string]any) { c["iss"] = jwtTestOther })), status: 200},
		{name: "ok/expired within the leeway", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })), status: 200},

		{name: "fail/alg none, empty signature", tok: jwtB64Enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + jwtB64Enc(payload) + ".", status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/alg none with a signature", tok: jwtB64Enc([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + jwtB64Enc(payload) + ".AAAA", status: 401, reason: errJWTAlg, preparsed: true},
		{name: "fail/alg None", tok: jwtB64Enc([]byte(`{"alg":"None","kid":"rsa-1"}`)) + "." + jwtB64Enc(payload) + ".AAAA", status: 401, reason: errJWTAlg, preparsed: true},
		{name: "fail/HS256 keyed with the RSA public key (key confusion)", tok: func() string {
			h := jwtB64Enc([]byte(`{"alg":"HS256","typ":"JWT","kid":"rsa-1"}`)) + "." + jwtB64Enc(payload)
			sig, err := jwt.SigningMethodHS256.Sign(h, pemKey)
			if err != nil {
				t.Fatal(err)
			}
			return h + "." + jwtB64Enc(sig)
		}(), status: 401, reason: errJWTAlg, preparsed: true},
		{name: "fail/alg not in the issuer's allowlist (PS256)", tok: jwtSignHeader(t, rsaKey, header(rsaKey, map[string]any{"alg": "PS256"}), jwtClaims(now)), status: 401, reason: errJWTAlg, preparsed: true},
		{name: "fail/alg the other issuer does not allow (EdDSA)", tok: jwtSignHeader(t, edKey, header(edKey, nil), with(func(c map[string]any) { c["iss"] = jwtTestOther })), status: 401, reason: errJWTAlg, preparsed: true},
		{name: "fail/ES256 against an RSA kid", tok: jwtSignHeader(t, ecKey, header(ecKey, map[string]any{"kid": "rsa-1"}), jwtClaims(now)), status: 401, reason: errJWTKey},
		{name: "fail/missing exp", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "exp") })), status: 401, reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "fail/expired", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), status: 401, reason: jwt.ErrTokenExpired},
		{name: "fail/nbf in the future", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), status: 401, reason: jwt.ErrTokenNotValidYet},
		{name: "fail/iat in the future", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })), status: 401, reason: jwt.ErrTokenUsedBeforeIssued},
		{name: "fail/missing iat", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "iat") })), status: 401, reason: errJWTClaims},
		{name: "fail/lifetime beyond the maximum", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() })), status: 401, reason: errJWTClaims},
		{name: "fail/exp not a number", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["exp"] = "tomorrow" })), status: 401, reason: jwt.ErrTokenInvalidClaims},
		{name: "fail/unknown issuer", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["iss"] = "https://evil.example" })), status: 401, reason: errJWTIssuer, preparsed: true},
		{name: "fail/issuer differing in case", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["iss"] = "https://IDP.example" })), status: 401, reason: errJWTIssuer, preparsed: true},
		{name: "fail/no iss", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "iss") })), status: 401, reason: errJWTIssuer, preparsed: true},
		{name: "fail/iss not a string", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["iss"] = []string{jwtTestIssuer} })), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/wrong audience", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["aud"] = "mcp://elsewhere" })), status: 401, reason: jwt.ErrTokenInvalidAudience},
		{name: "fail/no audience", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "aud") })), status: 401, reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "fail/crit header", tok: jwtSignHeader(t, ecKey, header(ecKey, map[string]any{"crit": []string{"exp"}}), jwtClaims(now)), status: 401, reason: errJWTHeader, preparsed: true},
		{name: "fail/embedded jwk", tok: jwtSignHeader(t, jwtKey("evil"), header(ecKey, map[string]any{"jwk": attackerJWK}), jwtClaims(now)), status: 401, reason: errJWTHeader, preparsed: true},
		{name: "fail/jku header", tok: jwtSignHeader(t, jwtKey("evil"), header(ecKey, map[string]any{"jku": "https://evil.example/jwks"}), jwtClaims(now)), status: 401, reason: errJWTHeader, preparsed: true},
		{name: "fail/x5u header", tok: jwtSignHeader(t, jwtKey("evil"), header(ecKey, map[string]any{"x5u": "https://evil.example/cert.pem"}), jwtClaims(now)), status: 401, reason: errJWTHeader, preparsed: true},
		{name: "fail/x5c header", tok: jwtSignHeader(t, jwtKey("evil"), header(ecKey, map[string]any{"x5c": []string{"MIIB"}}), jwtClaims(now)), status: 401, reason: errJWTHeader, preparsed: true},
		{name: "fail/oversize token", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["pad"] = strings.Repeat("x", DefaultMaxJWTSize) })), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/duplicate claim", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`,
			strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","sub":"admin"`, 1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/duplicate claim, escaped name", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`,
			strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","s\u0075b":"admin"`, 1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/duplicate iss (issuer confusion)", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`,
			strings.Replace(string(payload), `"iss":"https://idp.example"`, `"iss":"https://other.example","iss":"https://idp.example"`, 1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/duplicate nested claim", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`,
			strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","realm":{"roles":[],"roles":["admin"]}`, 1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/duplicate header parameter", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1","kid":"rsa-1"}`, string(payload)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/header not an object", tok: jwtRaw(t, ecKey, "ES256", `["ES256"]`, string(payload)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/header not UTF-8", tok: jwtRaw(t, ecKey, "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":\"\xff\"}", string(payload)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/a number out of range", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`,
			strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","n":1e400`, 1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/data after the payload object", tok: jwtRaw(t, ecKey, "ES256", `{"alg":"ES256","kid":"ec-1"}`, string(payload)+`{}`), status: 401, reason: errJWTMalformed, preparsed: true},
		// '=' inside a b64token is no Bearer credential: not the verifier's,
		// and the chain refuses it.
		{name: "fail/padded segment", tok: padded, status: 401, reason: ErrNotMine, preparsed: true},
		{name: "fail/padded signature", tok: jwtTweak(jwtSign(t, ecKey, jwtClaims(now)), 2, func(s string) string { return s + "==" }), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/signature with non-zero trailing bits", tok: jwtTweak(jwtSign(t, ecKey, jwtClaims(now)), 2, jwtSetLast(1)), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/header with non-zero trailing bits", tok: func() string {
			for i := 0; ; i++ {
				tok := jwtSignHeader(t, ecKey, header(ecKey, map[string]any{"x": strings.Repeat("y", i)}), jwtClaims(now))
				if h := strings.Split(tok, ".")[0]; len(h)%4 == 2 {
					return jwtTweak(tok, 0, jwtSetLast(1))
				}
			}
		}(), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/standard alphabet '+'", tok: jwtTweak(signatureWith("-"), 2, func(s string) string { return strings.ReplaceAll(s, "-", "+") }), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/standard alphabet '/'", tok: jwtTweak(signatureWith("_"), 2, func(s string) string { return strings.ReplaceAll(s, "_", "/") }), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/two segments", tok: strings.Join(strings.Split(jwtSign(t, ecKey, jwtClaims(now)), ".")[:2], "."), status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/five segments (JWE)", tok: jwtSign(t, ecKey, jwtClaims(now)) + ".AAAA.AAAA", status: 401, reason: errJWTMalformed, preparsed: true},
		{name: "fail/unknown kid", tok: jwtSignHeader(t, ecKey, header(ecKey, map[string]any{"kid": "nope"}), jwtClaims(now)), status: 401, reason: errJWTKID},
		{name: "fail/no kid", tok: jwtSignHeader(t, ecKey, map[string]any{"alg": "ES256"}, jwtClaims(now)), status: 401, reason: errJWTKID},
		{name: "fail/kid of another issuer", tok: jwtSign(t, jwtKey("other"), jwtClaims(now)), status: 401, reason: errJWTKID},
		{name: "fail/signed by another key under a known kid", tok: jwtSign(t, jwtKey("evil"), jwtClaims(now)), status: 401, reason: jwt.ErrTokenSignatureInvalid},
		{name: "fail/payload changed after signing", tok: func() string {
			tok := jwtSign(t, ecKey, jwtClaims(now))
			forged, _ := json.Marshal(with(func(c map[string]any) { c["sub"] = "root" }))
			return jwtTweak(tok, 1, func(string) string { return jwtB64Enc(forged) })
		}(), status: 401, reason: jwt.ErrTokenSignatureInvalid},
		{name: "fail/required claim missing", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "jti") })), status: 401, reason: errJWTClaims},
		{name: "fail/no subject", tok: jwtSign(t, ecKey, with(func(c map[string]any) { delete(c, "sub") })), status: 401, reason: errJWTClaims},
		{name: "fail/roles not strings", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["roles"] = []any{"admin", 7} })), status: 401, reason: errJWTClaims},
		{name: "fail/tenant not a string", tok: jwtSign(t, ecKey, with(func(c map[string]any) { c["tid"] = 42 })), status: 401, reason: errJWTClaims},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := jwtNewVerifier(t, idp, clk)
			before := v.Stats()
			id, err := v.Verify(context.Background(), jwtReq("Bearer "+c.tok))
			if errors.Is(err, ErrNotMine) {
				if c.reason != ErrNotMine {
					t.Fatalf("not mine: %v", err)
				}
				id, err = NewChain(v).Verify(context.Background(), jwtReq("Bearer "+c.tok))
				c.reason = extauthz.ErrInvalidCredential
			}
			if got := jwtStatus(err); got != c.status {
				t.Fatalf("status %d, want %d (err %v)", got, c.status, err)
			}
			if c.reason != nil && !errors.Is(err, c.reason) {
				t.Fatalf("err %v, want one wrapping %v", err, c.reason)
			}
			after := v.Stats()
			if c.preparsed && (after.SignatureChecks != before.SignatureChecks || after.JWKSFetches != before.JWKSFetches) {
				t.Fatalf("refused after a key lookup or signature check: %+v → %+v", before, after)
			}
			if err != nil {
				if !id.IsAnonymous() || id.Authenticated {
					t.Fatalf("an identity with an error: %+v", id)
				}
				return
			}
			if !id.Authenticated || id.Method != extauthz.MethodJWT || id.Subject != "alice" || id.UserID != "alice" || id.Tenant != "org-1" {
				t.Fatalf("identity %+v", id)
			}
			if fmt.Sprint(id.Roles) != "[admin]" || fmt.Sprint(id.Scopes) != "[tools:read tools:call]" {
				t.Fatalf("roles %q scopes %q", id.Roles, id.Scopes)
			}
			if _, ok := id.Claims["exp"].(float64); !ok || id.Claims["sub"] != "alice" {
				t.Fatalf("claims %#v", id.Claims)
			}
		})
	}
}

// TestJWTNotMine: what is not a bearer JWT is left to the other verifiers,
// and the chain refuses an Authorization header none accepts.
func TestJWTNotMine(t *testing.T) {
	clk := jwtNewClock()
	v := jwtNewVerifier(t, jwtNewIdP(t, jwtKey("ec")), clk)
	chain := NewChain(v)
	for _, c := range []struct {
		name, authz string
		chain       int // the chain's status: 200 anonymous, 401
	}{
		{name: "ok/no Authorization header", chain: 200},
		{name: "fail/API-key-shaped bearer", authz: "Bearer mcpk_" + strings.Repeat("A", 49), chain: 401},
		{name: "fail/session-token-shaped bearer", authz: "Bearer mcps_" + strings.Repeat("A", 49), chain: 401},
		{name: "fail/Basic credentials", authz: "Basic dXNlcjpwYXNz", chain: 401},
		{name: "fail/Bearer without a token", authz: "Bearer", chain: 401},
		{name: "fail/Bearer with a space in the token", authz: "Bearer a.b c.d", chain: 401},
		{name: "fail/two Authorization headers joined", authz: "Bearer a.b.c,Bearer d.e.f", chain: 401},
		{name: "fail/opaque bearer without a dot", authz: "Bearer opaque-token", chain: 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), jwtReq(c.authz))
			if !errors.Is(err, ErrNotMine) {
				t.Fatalf("err %v, want ErrNotMine", err)
			}
			id, err := chain.Verify(context.Background(), jwtReq(c.authz))
			if got := jwtStatus(err); got != c.chain {
				t.Fatalf("chain status %d, want %d (err %v)", got, c.chain, err)
			}
			if err == nil && !id.IsAnonymous() {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestJWTClaimMapping(t *testing.T) {
	clk := jwtNewClock()
	now := clk.Now()
	k := jwtKey("ed")
	v, err := NewJWTVerifier(JWTConfig{Issuers: []JWTIssuer{{
		Issuer: "https://keycloak.example/realms/r", JWKS: jwtJWKS(t, k), Algorithms: []string{"EdDSA"},
		Audiences: []string{"mcp"}, RequiredClaims: []string{"realm_access.roles"},
		Claims: JWTClaimMap{UserID: "oid", Tenant: "org.id", Roles: "realm_access.roles", Scopes: "https://x.example/scopes"},
	}}}, WithJWTClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	base := func() map[string]any {
		return map[string]any{
			"iss": "https://keycloak.example/realms/r", "aud": []string{"acct", "mcp"}, "sub": "s-1", "oid": "u-1",
			"org": map[string]any{"id": "t-1"}, "realm_access": map[string]any{"roles": []string{"reader", "writer"}},
			"https://x.example/scopes": "a b", "scp": "ignored", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}
	}
	id, err := v.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, k, base())))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "s-1" || id.UserID != "u-1" || id.Tenant != "t-1" ||
		fmt.Sprint(id.Roles) != "[reader writer]" || fmt.Sprint(id.Scopes) != "[a b]" {
		t.Fatalf("identity %+v", id)
	}
	missing := base()
	delete(missing, "realm_access")
	if _, err := v.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, k, missing))); !errors.Is(err, errJWTClaims) {
		t.Fatalf("required nested claim missing: %v", err)
	}

	// Defaults: scp (Entra's space-separated string) when there is no scope.
	v2, err := NewJWTVerifier(JWTConfig{Issuers: []JWTIssuer{{Issuer: "https://login.example/t/v2.0", JWKS: jwtJWKS(t, k), Audiences: []string{"api://mcp"}}}}, WithJWTClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	id, err = v2.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, k, map[string]any{
		"iss": "https://login.example/t/v2.0", "aud": "api://mcp", "sub": "s", "tid": "t", "scp": "Mcp.Read Mcp.Call",
		"roles": []string{"Admin", "platform:super-admin"}, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	})))
	if err != nil {
		t.Fatal(err)
	}
	// A platform role claimed by a token is dropped: only sessions carry them.
	if fmt.Sprint(id.Scopes) != "[Mcp.Read Mcp.Call]" || fmt.Sprint(id.Roles) != "[Admin]" || id.Tenant != "t" {
		t.Fatalf("identity %+v", id)
	}

	// The organization's tier and time zone, as the identity service issues
	// them; a time zone that names no IANA zone refuses the token.
	withPlan := func(tz string) map[string]any {
		return map[string]any{"iss": "https://login.example/t/v2.0", "aud": "api://mcp", "sub": "s", "tid": "t",
			"tier": "pro", "tz": tz, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	id, err = v2.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, k, withPlan("Europe/Paris"))))
	if err != nil || id.Tier != "pro" || id.TimeZone != "Europe/Paris" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	for _, tz := range []string{"Mars/Olympus", "Local", "../../etc/passwd"} {
		if _, err := v2.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, k, withPlan(tz)))); !errors.Is(err, errJWTClaims) {
			t.Errorf("time zone %q: %v, want the claims refused", tz, err)
		}
	}
}

func TestJWTCache(t *testing.T) {
	ctx := context.Background()
	clk := jwtNewClock()
	idp := jwtNewIdP(t, jwtKey("ec"), jwtKey("rsa"))
	v := jwtNewVerifier(t, idp, clk, func(c *JWTConfig) { c.CacheTTL = 2 * time.Minute })
	tok := jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now()))

	t.Run("ok/a repeated token is not checked again", func(t *testing.T) {
		for range 3 {
			if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
				t.Fatal(err)
			}
		}
		if s := v.Stats(); s.SignatureChecks != 1 || s.CacheHits != 2 {
			t.Fatalf("stats %+v, want 1 signature check and 2 cache hits", s)
		}
	})
	t.Run("ok/checked again after the cache TTL", func(t *testing.T) {
		clk.Advance(2 * time.Minute)
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
		if s := v.Stats(); s.SignatureChecks != 2 {
			t.Fatalf("stats %+v, want a second signature check", s)
		}
	})
	t.Run("fail/a cached token past exp and the leeway", func(t *testing.T) {
		clk.Advance(3*time.Minute + 31*time.Second)
		_, err := v.Verify(ctx, jwtReq("Bearer "+tok))
		if jwtStatus(err) != 401 || !errors.Is(err, jwt.ErrTokenExpired) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestJWTRevocation(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		revoke  func(v *JWTVerifier, at time.Time)
		claims  func(map[string]any) // of the token revoked
		refused bool
		fresh   bool // a token issued after the revocation is accepted
	}{
		{name: "fail/a revoked subject's cached token", revoke: func(v *JWTVerifier, at time.Time) { v.RevokeSubject("alice", at) }, refused: true, fresh: true},
		{name: "fail/a revoked jti's cached token", revoke: func(v *JWTVerifier, at time.Time) { v.RevokeJTI("jti-1", at.Add(5*time.Minute)) }, refused: true},
		{name: "fail/a banned user's token (event)", revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventUserBanned, UserID: "alice"})
		}, refused: true},
		{name: "fail/a revoked API key's token (event)", claims: func(c map[string]any) { c["sub"] = "key:k1" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventAPIKeysRevoked, KeyIDs: []string{"k1"}})
		}, refused: true},
		{name: "fail/a removed member's token for that organization (event)", revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventMemberRemoved, UserID: "alice", OrgID: "org-1"})
		}, refused: true},
		{name: "ok/a removed member's token for another organization", claims: func(c map[string]any) { c["tid"] = "org-2" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventMemberRemoved, UserID: "alice", OrgID: "org-1"})
		}},
		{name: "fail/a deleted organization's tokens (event)", claims: func(c map[string]any) { c["sub"] = "bob" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventOrgDeleted, OrgID: "org-1"})
		}, refused: true},
		{name: "fail/a logged-out session's token (event)", claims: func(c map[string]any) { c["sid"] = "s1" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventSessionsRevoked, UserID: "alice", SessionIDs: []string{"s1"}})
		}, refused: true},
		{name: "ok/another session's token", claims: func(c map[string]any) { c["sid"] = "s2" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventSessionsRevoked, UserID: "alice", SessionIDs: []string{"s1"}})
		}},
		{name: "ok/a session that switched organization or signed in again keeps its tokens (event)", claims: func(c map[string]any) { c["sid"] = "s1" }, revoke: func(v *JWTVerifier, _ time.Time) {
			v.Evict(identity.Event{Kind: identity.EventSessionChanged, UserID: "alice", SessionIDs: []string{"s1"}})
		}},
		{name: "ok/another subject", revoke: func(v *JWTVerifier, at time.Time) { v.RevokeSubject("bob", at) }},
		{name: "ok/a revocation before the token was issued", revoke: func(v *JWTVerifier, at time.Time) { v.RevokeSubject("alice", at.Add(-time.Second)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := jwtNewClock()
			v := jwtNewVerifier(t, jwtNewIdP(t, jwtKey("ec")), clk)
			claims := jwtClaims(clk.Now())
			if c.claims != nil {
				c.claims(claims)
			}
			tok := jwtSign(t, jwtKey("ec"), claims)
			if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
				t.Fatal(err)
			}
			c.revoke(v, clk.Now())
			_, err := v.Verify(ctx, jwtReq("Bearer "+tok))
			if c.refused != (err != nil) {
				t.Fatalf("refused = %v, want %v (err %v)", err != nil, c.refused, err)
			}
			if c.refused && (jwtStatus(err) != 401 || !errors.Is(err, errJWTRevoked)) {
				t.Fatalf("err %v, want a revocation (401)", err)
			}
			if c.refused && v.Stats().CacheHits != 0 {
				t.Fatalf("a revoked token answered from the cache: %+v", v.Stats())
			}
			if c.fresh {
				clk.Advance(time.Second)
				later := jwtClaims(clk.Now())
				later["jti"] = "jti-2"
				if _, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, jwtKey("ec"), later))); err != nil {
					t.Fatalf("a token issued after the revocation: %v", err)
				}
			}
		})
	}

	t.Run("ok/revocations are forgotten once every token they refuse has expired", func(t *testing.T) {
		clk := jwtNewClock()
		v := jwtNewVerifier(t, jwtNewIdP(t, jwtKey("ec")), clk)
		for i := range 3000 {
			v.RevokeSubject(fmt.Sprint("user-", i), clk.Now())
			v.RevokeJTI(fmt.Sprint("jti-", i), time.Time{})
		}
		clk.Advance(DefaultMaxJWTLifetime + 30*time.Second)
		for i := range 2500 { // enough to pass the next sweep threshold
			v.RevokeSubject(fmt.Sprint("later-", i), clk.Now())
		}
		v.revoked.mu.RLock()
		n := len(v.revoked.subjects) + len(v.revoked.ids)
		v.revoked.mu.RUnlock()
		if n > 2500 {
			t.Fatalf("%d revocations kept, want only the live ones", n)
		}
		// A revocation older than the longest lifetime is not stored at all.
		v.RevokeSubject("ancient", clk.Now().Add(-2*DefaultMaxJWTLifetime))
		if _, ok := v.revoked.subjects[jwtRevSubject{sub: "ancient"}]; ok {
			t.Fatal("an expired revocation was stored")
		}
	})
}

func TestNewJWTVerifierConfig(t *testing.T) {
	jwks := jwtJWKS(t, jwtKey("ec"))
	ok := func() JWTIssuer {
		return JWTIssuer{Issuer: "https://idp.example", JWKS: jwks, Audiences: []string{"mcp"}}
	}
	for _, c := range []struct {
		name    string
		edit    func(*JWTConfig)
		setting string // named in the error; "" for ok
	}{
		{name: "ok/defaults", edit: func(*JWTConfig) {}},
		{name: "ok/https URL", edit: func(c *JWTConfig) { c.Issuers[0].JWKS, c.Issuers[0].JWKSURL = nil, "https://idp.example/jwks" }},
		{name: "ok/http to loopback", edit: func(c *JWTConfig) { c.Issuers[0].JWKS, c.Issuers[0].JWKSURL = nil, "http://127.0.0.1:8080/jwks" }},
		{name: "ok/http allowed", edit: func(c *JWTConfig) {
			c.Issuers[0].JWKS, c.Issuers[0].JWKSURL, c.Issuers[0].AllowHTTP = nil, "http://identity:8080/jwks", true
		}},
		{name: "fail/no issuers", edit: func(c *JWTConfig) { c.Issuers = nil }, setting: "issuers"},
		{name: "fail/no audience", edit: func(c *JWTConfig) { c.Issuers[0].Audiences = nil }, setting: "audiences"},
		{name: "fail/HS256", edit: func(c *JWTConfig) { c.Issuers[0].Algorithms = []string{"ES256", "HS256"} }, setting: "algorithms"},
		{name: "fail/none", edit: func(c *JWTConfig) { c.Issuers[0].Algorithms = []string{"none"} }, setting: "algorithms"},
		{name: "fail/unknown algorithm", edit: func(c *JWTConfig) { c.Issuers[0].Algorithms = []string{"ES256K"} }, setting: "algorithms"},
		{name: "fail/no key source", edit: func(c *JWTConfig) { c.Issuers[0].JWKS = nil }, setting: "jwks_url"},
		{name: "fail/two key sources", edit: func(c *JWTConfig) { c.Issuers[0].JWKSURL = "https://idp.example/jwks" }, setting: "jwks_url"},
		{name: "fail/http to a remote host", edit: func(c *JWTConfig) { c.Issuers[0].JWKS, c.Issuers[0].JWKSURL = nil, "http://idp.example/jwks" }, setting: "jwks_url"},
		{name: "fail/URL without host", edit: func(c *JWTConfig) { c.Issuers[0].JWKS, c.Issuers[0].JWKSURL = nil, "https:///jwks" }, setting: "jwks_url"},
		{name: "fail/leeway too large", edit: func(c *JWTConfig) { c.Issuers[0].Leeway = 10 * time.Minute }, setting: "leeway"},
		{name: "fail/negative leeway", edit: func(c *JWTConfig) { c.Issuers[0].Leeway = -time.Second }, setting: "leeway"},
		{name: "fail/refresh interval too short", edit: func(c *JWTConfig) { c.Issuers[0].RefreshInterval = time.Millisecond }, setting: "refresh_interval"},
		{name: "fail/kid refresh interval too short", edit: func(c *JWTConfig) { c.Issuers[0].KIDRefreshInterval = time.Millisecond }, setting: "kid_refresh_interval"},
		{name: "fail/duplicate issuer", edit: func(c *JWTConfig) { c.Issuers = append(c.Issuers, ok()) }, setting: "twice"},
		{name: "fail/no issuer", edit: func(c *JWTConfig) { c.Issuers[0].Issuer = "" }, setting: "issuer"},
		{name: "fail/empty required claim", edit: func(c *JWTConfig) { c.Issuers[0].RequiredClaims = []string{""} }, setting: "required_claims"},
		{name: "fail/bad inline JWK set", edit: func(c *JWTConfig) { c.Issuers[0].JWKS = []byte(`{"keys":[]}`) }, setting: "jwks"},
		{name: "fail/missing JWK set file", edit: func(c *JWTConfig) { c.Issuers[0].JWKS, c.Issuers[0].JWKSFile = nil, "/nonexistent/jwks.json" }, setting: "jwks_file"},
		{name: "fail/lifetime too long", edit: func(c *JWTConfig) { c.MaxTokenLifetime = 48 * time.Hour }, setting: "max_token_lifetime"},
		{name: "fail/token size too large", edit: func(c *JWTConfig) { c.MaxTokenSize = 1 << 20 }, setting: "max_token_size"},
		{name: "fail/fetch timeout too long", edit: func(c *JWTConfig) { c.FetchTimeout = time.Hour }, setting: "fetch_timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := JWTConfig{Issuers: []JWTIssuer{ok()}}
			c.edit(&cfg)
			_, err := NewJWTVerifier(cfg)
			if c.setting == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrJWTConfig) || !strings.Contains(err.Error(), c.setting) {
				t.Fatalf("err %v, want ErrJWTConfig naming %q", err, c.setting)
			}
		})
	}
}

// BenchmarkJWTVerify measures a cached token against full verification per
// algorithm, and the bare signature check of each as the baseline the
// verifier's overhead is read against.
func BenchmarkJWTVerify(b *testing.B) {
	ctx := context.Background()
	clk := jwtNewClock()
	idp := jwtNewIdP(b, jwtKey("rsa"), jwtKey("ec"), jwtKey("ed"))
	v := jwtNewVerifier(b, idp, clk)
	b.Run("cached", func(b *testing.B) {
		req := jwtReq("Bearer " + jwtSign(b, jwtKey("ec"), jwtClaims(clk.Now())))
		if _, err := v.Verify(ctx, req); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range []string{"rsa", "ec", "ed"} {
		k := jwtKey(name)
		tok := jwtSign(b, k, jwtClaims(clk.Now()))
		b.Run("uncached/"+k.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.verifyToken(ctx, tok, clk.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("signature-only/"+k.alg, func(b *testing.B) {
			i := strings.LastIndexByte(tok, '.')
			sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
			m := jwt.GetSigningMethod(k.alg)
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Verify(tok[:i], sig, k.public()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
