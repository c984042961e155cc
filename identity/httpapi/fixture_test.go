package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/httpapi"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/internal/testclock"
)

const goodPassword = "correct horse battery staple"

type fixture struct {
	t      *testing.T
	svc    *identity.Service
	tokens *identity.Tokens
	store  *sqlstore.Store
	audit  *identity.Auditor
	clock  *testclock.Clock
	srv    *httptest.Server
	doc    *openapi3.T
	router routers.Router
}

func init() {
	// Audit exports as JSON lines are a download: the document gives them
	// no schema beyond a string.
	openapi3filter.RegisterBodyDecoder("application/jsonl", openapi3filter.FileBodyDecoder)
}

var auditKey = bytes.Repeat([]byte{7}, identity.MinAuditKeyBytes)

func newFixture(t *testing.T, edit ...func(*httpapi.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "identity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	audit, err := identity.NewAuditor(auditKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := identity.DefaultConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	// The clock starts at the real time: the HTTP client's cookie jar
	// judges cookie expiry by it.
	f := &fixture{t: t, store: store, audit: audit, clock: testclock.New(time.Now().UTC().Truncate(time.Second))}
	f.svc, err = identity.NewService(store, audit, cfg, rand.Reader, identity.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	f.tokens, err = identity.NewTokens(f.svc, identity.TokenConfig{
		Issuer: "https://id.example.com", Audience: "https://mcp.example.com/mcp", KEK: bytes.Repeat([]byte{9}, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tokens.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Generous rates: the rate limit test sets its own.
	hcfg := httpapi.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		LoginRate:      httpapi.Rate{Every: time.Millisecond, Burst: 1000},
		SignUpRate:     httpapi.Rate{Every: time.Millisecond, Burst: 1000},
	}
	for _, e := range edit {
		e(&hcfg)
	}
	h, err := httpapi.New(f.svc, f.tokens, hcfg, httpapi.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewTLSServer(h)
	t.Cleanup(f.srv.Close)

	f.doc, err = openapi3.NewLoader().LoadFromData(f.get("/openapi.json").body)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.doc.Validate(ctx); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	// The router matches requests by path; the servers entry is "/", so
	// the test server's address must be among them.
	f.doc.Servers = openapi3.Servers{{URL: f.srv.URL}}
	f.router, err = gorillamux.NewRouter(f.doc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if rep, err := audit.Verify(context.Background(), store); err != nil {
			t.Errorf("audit chain: %v (%+v)", err, rep)
		}
	})
	return f
}

// request is one API call.
type request struct {
	method, path string
	body         any // marshalled to JSON unless a string or []byte
	token        string
	header       http.Header
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode is the code of an error body, "" if none.
func (r *response) errorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends the call, and checks the response against the OpenAPI
// document: its status is documented for the operation, its body matches
// the documented schema, and a successful call's request matched too.
func (f *fixture) do(req request) *response {
	f.t.Helper()
	var reqBody []byte
	switch b := req.body.(type) {
	case nil:
	case string:
		reqBody = []byte(b)
	case []byte:
		reqBody = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		reqBody = j
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(reqBody)
	}
	hr, err := http.NewRequest(req.method, f.srv.URL+req.path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	res, err := f.srv.Client().Do(hr)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	out := &response{status: res.StatusCode, header: res.Header}
	if out.body, err = io.ReadAll(res.Body); err != nil {
		f.t.Fatal(err)
	}
	hr.Body = io.NopCloser(bytes.NewReader(reqBody))
	f.conforms(hr, out)
	return out
}

func (f *fixture) conforms(hr *http.Request, res *response) {
	f.t.Helper()
	route, params, err := f.router.FindRoute(hr)
	if err != nil {
		if c := res.errorCode(); c != "not_found" && c != "method_not_allowed" {
			f.t.Errorf("%s %s: not in the OpenAPI document (%v), yet answered %d %s", hr.Method, hr.URL.Path, err, res.status, c)
		}
		return
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route, Options: opts}
	if res.status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			f.t.Errorf("%s %s: a request that succeeded does not match the document: %v", hr.Method, hr.URL.Path, err)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: res.status, Header: res.header,
		Body: io.NopCloser(bytes.NewReader(res.body)), Options: opts,
	})
	if err != nil {
		f.t.Errorf("%s %s → %d: the response does not match the document: %v", hr.Method, hr.URL.Path, res.status, err)
	}
}

func (f *fixture) get(path string) *response {
	f.t.Helper()
	res, err := f.srv.Client().Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

// user is a signed-up, signed-in person.
type user struct {
	id, email, token string
}

func (f *fixture) signUp(email string) user {
	f.t.Helper()
	res := f.do(request{method: "POST", path: "/v1/users", body: signUpBody(email, goodPassword)})
	if res.status != http.StatusCreated {
		f.t.Fatalf("sign-up %s: %d %s", email, res.status, res.body)
	}
	var u struct{ ID string }
	res.decode(f.t, &u)
	return user{id: u.ID, email: email, token: f.login(email)}
}

func (f *fixture) login(email string) string {
	f.t.Helper()
	res := f.do(request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": email, "password": goodPassword}})
	if res.status != http.StatusCreated {
		f.t.Fatalf("login %s: %d %s", email, res.status, res.body)
	}
	var l struct{ Token string }
	res.decode(f.t, &l)
	return l.Token
}

func signUpBody(email, pw string) map[string]any {
	return map[string]any{
		"email": email, "password": pw, "display_name": "Someone",
		"consents": []map[string]any{
			{"kind": "privacy_policy", "version": "2026-01", "granted": true},
			{"kind": "terms", "version": "2026-01", "granted": true},
		},
	}
}

// makeAdmin grants platform roles directly in the store, as an operator
// bootstrapping the first admin would.
func (f *fixture) makeAdmin(u user, roles ...string) {
	f.t.Helper()
	ctx := context.Background()
	rec, err := f.store.UserByID(ctx, u.id)
	if err != nil {
		f.t.Fatal(err)
	}
	rec.PlatformRoles = roles
	if err := f.store.UpdateUser(ctx, rec); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) createOrg(u user, name string) string {
	f.t.Helper()
	res := f.do(request{method: "POST", path: "/v1/orgs", token: u.token, body: map[string]string{"name": name}})
	if res.status != http.StatusCreated {
		f.t.Fatalf("create org: %d %s", res.status, res.body)
	}
	var o struct{ ID string }
	res.decode(f.t, &o)
	return o.ID
}

// auditCount is the number of audit events.
func (f *fixture) auditCount() int {
	f.t.Helper()
	rep, err := f.audit.Verify(context.Background(), f.store)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep.Events
}
