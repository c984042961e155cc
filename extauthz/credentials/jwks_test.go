package credentials

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// TestJWKSRotation: a key the provider adds verifies without a restart,
// and a flood of made-up kids costs the provider at most one fetch per
// KIDRefreshInterval — each such token gets 401.
func TestJWKSRotation(t *testing.T) {
	ctx := context.Background()
	clk := jwtNewClock()
	idp := jwtNewIdP(t, jwtKey("ec"))
	v := jwtNewVerifier(t, idp, clk)
	if n := idp.hits.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}

	// The provider rotates: ec-2 is published, and signs.
	idp.publish(t, jwtKey("ec"), jwtKey("ec2"))
	rotated := jwtSign(t, jwtKey("ec2"), jwtClaims(clk.Now()))
	if _, err := v.Verify(ctx, jwtReq("Bearer "+rotated)); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	if n := idp.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one for the new kid)", n)
	}

	flood := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				kid := make([]byte, 12)
				_, _ = rand.Read(kid)
				k := *jwtKey("ec2")
				k.kid = fmt.Sprintf("%x", kid)
				_, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, &k, jwtClaims(clk.Now()))))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if jwtStatus(err) != 401 || !errors.Is(err, errJWTKID) {
				t.Fatalf("a made-up kid: %v, want 401 unknown kid", err)
			}
		}
	}
	t.Run("fail/a flood right after a fetch fetches nothing", func(t *testing.T) {
		flood(200)
		if n := idp.hits.Load(); n != 2 {
			t.Fatalf("%d fetches, want still 2", n)
		}
		if s := v.Stats(); s.KIDRefreshCaps < 200 {
			t.Fatalf("stats %+v: the cap was not what refused", s)
		}
	})
	t.Run("fail/a flood an interval later fetches once", func(t *testing.T) {
		clk.Advance(DefaultKIDRefreshInterval)
		flood(200)
		if n := idp.hits.Load(); n != 3 {
			t.Fatalf("%d fetches, want 3", n)
		}
	})
	t.Run("ok/the known keys still verify during a flood", func(t *testing.T) {
		if _, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now())))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/a key the provider withdraws is refused, cached tokens included", func(t *testing.T) {
		tok := jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now()))
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
		idp.publish(t, jwtKey("ec2"))
		if err := v.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Advance(DefaultKIDRefreshInterval)
		_, err := v.Verify(ctx, jwtReq("Bearer "+tok))
		if jwtStatus(err) != 401 || !errors.Is(err, errJWTKID) {
			t.Fatalf("err %v, want 401 unknown kid", err)
		}
	})
	t.Run("fail/a key replaced under the same kid stops its cached tokens", func(t *testing.T) {
		tok := jwtSign(t, jwtKey("ec2"), jwtClaims(clk.Now()))
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
		replacement := *jwtKey("ec") // another key pair, published as ec2
		replacement.kid = jwtKey("ec2").kid
		idp.publish(t, &replacement)
		if err := v.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); jwtStatus(err) != 401 {
			t.Fatalf("a token of the replaced key: %v, want 401", err)
		}
	})
}

// TestJWKSUnavailable: when the keys cannot be had, the answer is 503 —
// the token may be valid — never 401, and never an identity.
func TestJWKSUnavailable(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		serve func(*jwtIdP)
	}{
		{name: "fail/provider down", serve: func(p *jwtIdP) { p.srv.Close() }},
		{name: "fail/provider answers 500", serve: func(p *jwtIdP) { p.status.Store(500) }},
		{name: "fail/provider answers a redirect", serve: func(p *jwtIdP) { p.status.Store(http.StatusFound) }},
		{name: "fail/JWK set too large", serve: func(p *jwtIdP) {
			b := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`)
			p.jwks.Store(&b)
		}},
		{name: "fail/not JSON", serve: func(p *jwtIdP) { b := []byte("<html>"); p.jwks.Store(&b) }},
		{name: "fail/no usable key", serve: func(p *jwtIdP) { b := []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`); p.jwks.Store(&b) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := jwtNewClock()
			idp := jwtNewIdP(t, jwtKey("ec"))
			c.serve(idp)
			v, err := NewJWTVerifier(jwtConfig(t, idp.url()), WithJWTClock(clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Refresh(ctx); !errors.Is(err, ErrJWKSUnavailable) {
				t.Fatalf("Refresh: %v, want ErrJWKSUnavailable", err)
			}
			tok := jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now()))
			for i := range 2 { // the first fetches on demand, the second is rate-capped
				id, err := v.Verify(ctx, jwtReq("Bearer "+tok))
				if jwtStatus(err) != 503 || !errors.Is(err, ErrJWKSUnavailable) || errors.Is(err, extauthz.ErrInvalidCredential) {
					t.Fatalf("verify %d: %v, want 503 ErrJWKSUnavailable", i, err)
				}
				if id.Authenticated {
					t.Fatalf("identity %+v", id)
				}
			}
		})
	}

	t.Run("ok/the keys come once the provider is back", func(t *testing.T) {
		clk := jwtNewClock()
		idp := jwtNewIdP(t, jwtKey("ec"))
		idp.status.Store(503)
		v, err := NewJWTVerifier(jwtConfig(t, idp.url()), WithJWTClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		tok := jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now()))
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); jwtStatus(err) != 503 {
			t.Fatalf("err %v, want 503", err)
		}
		idp.status.Store(0)
		clk.Advance(DefaultKIDRefreshInterval)
		if _, err := v.Verify(ctx, jwtReq("Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ok/known keys outlive the provider; a new kid then gets 503", func(t *testing.T) {
		clk := jwtNewClock()
		idp := jwtNewIdP(t, jwtKey("ec"))
		v := jwtNewVerifier(t, idp, clk)
		idp.srv.Close()
		if err := v.Refresh(ctx); !errors.Is(err, ErrJWKSUnavailable) {
			t.Fatalf("Refresh: %v", err)
		}
		if _, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now())))); err != nil {
			t.Fatalf("a known key while the provider is down: %v", err)
		}
		_, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, jwtKey("ec2"), jwtClaims(clk.Now()))))
		if jwtStatus(err) != 503 {
			t.Fatalf("a new kid while the provider is down: %v, want 503", err)
		}
	})

	t.Run("fail/a request's deadline ends its wait, not the fetch", func(t *testing.T) {
		clk := jwtNewClock()
		slow := make(chan struct{})
		idp := jwtNewIdP(t, jwtKey("ec"))
		idp.block.Store(&slow)
		v, err := NewJWTVerifier(jwtConfig(t, idp.url()), WithJWTClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		tok := jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now()))
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := v.Verify(short, jwtReq("Bearer "+tok)); jwtStatus(err) != 503 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want 503 on the deadline", err)
		}
		close(slow)
		// The fetch went on: the keys arrive without another on-demand
		// fetch, which the rate cap would refuse now.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := v.Verify(ctx, jwtReq("Bearer "+tok))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("keys never arrived: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n := idp.hits.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
	})
}

func TestJWKSRun(t *testing.T) {
	t.Run("ok/fetches at once, retries after a failure, returns when done", func(t *testing.T) {
		clk := jwtNewClock()
		idp := jwtNewIdP(t, jwtKey("ec"))
		idp.status.Store(500)
		v, err := NewJWTVerifier(jwtConfig(t, idp.url()), WithJWTClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- v.Run(ctx) }()
		jwtEventually(t, func() bool { return idp.hits.Load() >= 1 })
		idp.status.Store(0)
		// The retry comes a second after the failure, well before the
		// refresh interval.
		jwtEventually(t, func() bool { return v.order[0].src.keys.Load() != nil })
		if _, err := v.Verify(context.Background(), jwtReq("Bearer "+jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now())))); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
	})

	t.Run("ok/a JWK set file is read again", func(t *testing.T) {
		clk := jwtNewClock()
		path := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(path, jwtJWKS(t, jwtKey("ec")), 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := NewJWTVerifier(JWTConfig{Issuers: []JWTIssuer{{
			Issuer: jwtTestIssuer, JWKSFile: path, Audiences: []string{jwtTestAudience}, RefreshInterval: time.Second,
		}}}, WithJWTClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := v.Verify(ctx, jwtReq("Bearer "+jwtSign(t, jwtKey("ec"), jwtClaims(clk.Now())))); err != nil {
			t.Fatal(err)
		}
		rotated := jwtSign(t, jwtKey("ec2"), jwtClaims(clk.Now()))
		if _, err := v.Verify(ctx, jwtReq("Bearer "+rotated)); !errors.Is(err, errJWTKID) {
			t.Fatalf("a key not in the file: %v", err)
		}
		if err := os.WriteFile(path, jwtJWKS(t, jwtKey("ec"), jwtKey("ec2")), 0o600); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = v.Run(runCtx) }()
		jwtEventually(t, func() bool { return v.order[0].src.has("ec-2") })
		if _, err := v.Verify(ctx, jwtReq("Bearer "+rotated)); err != nil {
			t.Fatal(err)
		}
	})
}

func jwtEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestJWKSParse: what a JWK set may hold, and which of its keys are used.
func TestJWKSParse(t *testing.T) {
	jwk := func(k *jwtTestKey, edit func(map[string]any)) string {
		j, err := jwkset.NewJWKFromKey(k.public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(k.alg), KID: k.kid}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(j.Marshal())
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if edit != nil {
			edit(m)
		}
		b, _ = json.Marshal(m)
		return string(b)
	}
	set := func(keys ...string) []byte { return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`) }
	ec := jwtKey("ec")
	for _, c := range []struct {
		name string
		doc  []byte
		kids []string // usable
	}{
		{name: "ok/RSA, ECDSA and Ed25519", doc: jwtJWKS(t, jwtKey("rsa"), ec, jwtKey("ed")), kids: []string{"rsa-1", "ec-1", "ed-1"}},
		{name: "ok/a key without alg", doc: set(jwk(ec, func(m map[string]any) { delete(m, "alg") })), kids: []string{"ec-1"}},
		{name: "ok/unusable keys are skipped", doc: set(
			jwk(ec, nil),
			jwk(jwtKey("ec2"), func(m map[string]any) { m["use"] = "enc" }),
			jwk(jwtKey("other"), func(m map[string]any) { m["key_ops"] = []string{"encrypt"} }),
			jwk(jwtKey("ed"), func(m map[string]any) { delete(m, "kid") }),
			jwk(jwtKey("rsa1k"), nil),
			jwk(jwtKey("rsa"), func(m map[string]any) { m["alg"] = "HS256" }),
			`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}`,
			`{"kty":"EC","kid":"junk","crv":"P-256","x":"AA","y":"AA"}`,
		), kids: []string{"ec-1"}},
		{name: "ok/an ECDSA key under an alg of another curve is skipped", doc: set(jwk(ec, nil), jwk(jwtKey("ec2"), func(m map[string]any) { m["alg"] = "ES384" })), kids: []string{"ec-1"}},
		{name: "fail/no keys", doc: []byte(`{"keys":[]}`)},
		{name: "fail/no keys member", doc: []byte(`{}`)},
		{name: "fail/only an HMAC key", doc: set(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}`)},
		{name: "fail/only a 1024-bit RSA key", doc: jwtJWKS(t, jwtKey("rsa1k"))},
		{name: "fail/not JSON", doc: []byte(`keys`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := jwksParse(c.doc, time.Time{})
			if c.kids == nil {
				if err == nil {
					t.Fatalf("parsed: %v", s.keys)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.keys) != len(c.kids) {
				t.Fatalf("keys %v, want %v", s.keys, c.kids)
			}
			for _, kid := range c.kids {
				if len(s.keys[kid]) == 0 {
					t.Fatalf("no key %s in %v", kid, s.keys)
				}
			}
		})
	}
}

// TestJWKSKeyFits: the key type must be the algorithm's, whatever the
// token's header says.
func TestJWKSKeyFits(t *testing.T) {
	rsaPub, ecPub, edPub := jwtKey("rsa").public(), jwtKey("ec").public(), jwtKey("ed").public()
	for _, c := range []struct {
		name string
		pub  any
		alg  string
		fits bool
	}{
		{"ok/RSA for RS256", rsaPub, "RS256", true},
		{"ok/RSA for PS512", rsaPub, "PS512", true},
		{"ok/P-256 for ES256", ecPub, "ES256", true},
		{"ok/Ed25519 for EdDSA", edPub, "EdDSA", true},
		{"fail/RSA for HS256 (key confusion)", rsaPub, "HS256", false},
		{"fail/RSA for ES256", rsaPub, "ES256", false},
		{"fail/P-256 for ES384", ecPub, "ES384", false},
		{"fail/P-256 for RS256", ecPub, "RS256", false},
		{"fail/Ed25519 for ES256", edPub, "ES256", false},
		{"fail/1024-bit RSA", jwtKey("rsa1k").public(), "RS256", false},
		{"fail/none", rsaPub, "none", false},
		{"fail/raw bytes", []byte("secret"), "HS256", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := jwksKeyFits(c.pub, c.alg); got != c.fits {
				t.Fatalf("fits = %v", got)
			}
		})
	}
}
