package credentials_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
)

// FuzzCredentialHeaders feeds arbitrary Authorization, x-api-key and Cookie
// headers to the verifiers: no panic, and never an identity from garbage.
func FuzzCredentialHeaders(f *testing.F) {
	for _, s := range [][3]string{
		{"Bearer mcpk_abc", "", ""},
		{"", "mcpk_" + strings.Repeat("A", 48), ""},
		{"", "", credentials.DefaultSessionCookie + `="mcps_x"; a=b, c="d,e"`},
		{"bearer a=b=", "x", "=;;,,\""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	keys := credentials.NewAPIKeyVerifier(nil, credentials.FixedFreshness(0))
	sessions := credentials.NewSessionVerifier(nil, credentials.FixedFreshness(0))
	chain := credentials.NewChain(keys, sessions)
	f.Fuzz(func(t *testing.T, authz, apiKey, cookie string) {
		var headers []string
		for _, h := range [][2]string{{"authorization", authz}, {"x-api-key", apiKey}, {"cookie", cookie}} {
			if h[1] != "" {
				headers = append(headers, h[0], h[1])
			}
		}
		defer func() {
			// A store is never reached by garbage: the nil stores above
			// would panic if a lookup were attempted on a token that only
			// looks well-formed, which the fuzzer cannot forge (checksum).
			if r := recover(); r != nil {
				t.Fatalf("panic on %q %q %q: %v", authz, apiKey, cookie, r)
			}
		}()
		id, err := chain.Verify(context.Background(), request("192.0.2.1", headers...))
		if err == nil && !id.IsAnonymous() {
			t.Fatalf("an identity from %q %q %q: %+v", authz, apiKey, cookie, id)
		}
	})
}
