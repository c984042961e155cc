package credentials_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
)

// claims is a verifier of a made-up scheme: "Bearer good" verifies,
// "Bearer bad" does not, anything else is not its.
type claims struct{}

func (claims) Verify(_ context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	tok, _, ok := credentials.Bearer(req)
	switch {
	case ok && tok == "good":
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodJWT, Subject: "u"}, nil
	case ok && tok == "bad":
		return extauthz.Identity{}, extauthz.ErrInvalidCredential
	}
	return extauthz.Identity{}, credentials.ErrNotMine
}

// xtest verifies "x-test: good" as a session would be.
type xtest struct{}

func (xtest) Verify(_ context.Context, req *extauthz.Request) (extauthz.Identity, error) {
	if v, ok := req.Header("x-test"); ok && v == "good" {
		return extauthz.Identity{Authenticated: true, Method: extauthz.MethodSession, Subject: "s"}, nil
	}
	return extauthz.Identity{}, credentials.ErrNotMine
}

type broken struct{}

func (broken) Verify(context.Context, *extauthz.Request) (extauthz.Identity, error) {
	return extauthz.Identity{}, errors.New("backend down")
}

func TestChain(t *testing.T) {
	chain := credentials.NewChain(claims{}, xtest{})
	for _, c := range []struct {
		name string
		req  *extauthz.Request
		want string
		anon bool
	}{
		{name: "ok/no credential is anonymous", req: request("192.0.2.1"), want: "ok", anon: true},
		{name: "ok/a verified credential", req: request("192.0.2.1", "authorization", "Bearer good"), want: "ok"},
		{name: "fail/an invalid credential is never anonymous", req: request("192.0.2.1", "authorization", "Bearer bad"), want: "invalid"},
		{name: "fail/an Authorization header nobody accepts", req: request("192.0.2.1", "authorization", "Basic dTpw"), want: "invalid"},
		{name: "fail/a malformed bearer", req: request("192.0.2.1", "authorization", "Bearer a b"), want: "invalid"},
		{name: "fail/an x-api-key nobody accepts", req: request("192.0.2.1", "x-api-key", "k"), want: "invalid"},
		{name: "fail/access_token in the query", req: &extauthz.Request{Path: "/mcp?access_token=good", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/an API key in the query, any case", req: &extauthz.Request{Path: "/mcp?x=1&API_KEY=k", Headers: map[string]string{}}, want: "invalid"},
		{name: "ok/other query parameters", req: &extauthz.Request{Path: "/mcp?cursor=abc", Headers: map[string]string{}}, want: "ok", anon: true},
		{name: "fail/a token after a semicolon", req: &extauthz.Request{Path: "/mcp?x=1;access_token=eyJ.a.b", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/a token before a bad escape", req: &extauthz.Request{Path: "/mcp?access_token=eyJ.a.b&y=%", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/an encoded name", req: &extauthz.Request{Path: "/mcp?access%5Ftoken=x", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/a bracketed name", req: &extauthz.Request{Path: "/mcp?api_key[]=x", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/an API key under any name", req: &extauthz.Request{Path: "/mcp?q=mcpk_abc", Headers: map[string]string{}}, want: "invalid"},
		{name: "fail/a JWT under any name", req: &extauthz.Request{Path: "/mcp?q=eyJhbGciOi", Headers: map[string]string{}}, want: "invalid"},
		{name: "ok/another credential", req: request("192.0.2.1", "x-test", "good"), want: "ok"},
		{name: "fail/a Basic Authorization beside another credential", req: request("192.0.2.1", "authorization", "Basic dTpw", "x-test", "good"), want: "invalid"},
		{name: "fail/an unclaimed Bearer beside another credential", req: request("192.0.2.1", "authorization", "Bearer other", "x-test", "good"), want: "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := chain.Verify(context.Background(), c.req)
			if got := kind(err); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			if err == nil && id.IsAnonymous() != c.anon {
				t.Fatalf("anonymous = %v: %+v", id.IsAnonymous(), id)
			}
		})
	}
	t.Run("fail/a backend failure is neither anonymous nor invalid", func(t *testing.T) {
		_, err := credentials.NewChain(broken{}).Verify(context.Background(), request("192.0.2.1"))
		if err == nil || errors.Is(err, extauthz.ErrInvalidCredential) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		header        string
		tok           string
		present, isOK bool
	}{
		{"Bearer abc.DEF-_~+/==", "abc.DEF-_~+/==", true, true},
		{"bearer abc", "abc", true, true},
		{"Bearer  abc", "", true, false},
		{"Bearer abc=x", "", true, false},
		{"Bearer abc,Bearer def", "", true, false},
		{"Bearer ", "", true, false},
		{"Basic abc", "", true, false},
	} {
		tok, present, ok := credentials.Bearer(request("", "authorization", c.header))
		if tok != c.tok || present != c.present || ok != c.isOK {
			t.Errorf("%q: %q %v %v", c.header, tok, present, ok)
		}
	}
	if _, present, _ := credentials.Bearer(request("")); present {
		t.Error("no header is present")
	}
}
