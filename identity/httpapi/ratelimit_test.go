package httpapi_test

import (
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/httpapi"
)

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, func(c *httpapi.Config) {
		c.LoginRate = httpapi.Rate{Every: time.Minute, Burst: 2}
		c.SignUpRate = httpapi.Rate{Every: time.Hour, Burst: 1}
	})
	alice := f.signUp("alice@example.com") // the one sign-up, and one login
	login := request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword}}
	from := func(ip string) request {
		r := login
		r.header = http.Header{"X-Forwarded-For": {ip}}
		return r
	}
	retry := func(min, max int) func(*testing.T, *response) {
		return func(t *testing.T, res *response) {
			n, err := strconv.Atoi(res.header.Get("Retry-After"))
			if err != nil || n < min || n > max {
				t.Errorf("Retry-After %q, want %d..%d", res.header.Get("Retry-After"), min, max)
			}
		}
	}
	run(t, f, []step{
		{name: "ok/second login from the address", req: login, status: 201},
		{name: "fail/third login from the address", req: login, status: 429, code: "rate_limited", check: retry(1, 60)},
		{name: "fail/a second sign-up", req: request{method: "POST", path: "/v1/users", body: signUpBody("bob@example.com", goodPassword)},
			status: 429, code: "rate_limited", check: retry(1, 3600)},
		{name: "ok/another client behind the trusted proxy", req: from("198.51.100.1"), status: 201},
		{name: "ok/its second", req: from("198.51.100.1"), status: 201},
		{name: "fail/its third", req: from("198.51.100.1"), status: 429, code: "rate_limited"},
		{name: "ok/a client elsewhere in the IPv6 world", req: from("2001:db8:1::1"), status: 201},
		{name: "ok/its second", req: from("2001:db8:1::2"), status: 201},
		{name: "fail/rotating addresses in one /64", req: from("2001:db8:1::3"), status: 429, code: "rate_limited"},
	})
	f.clock.Advance(time.Minute)
	run(t, f, []step{{name: "ok/after a minute", req: login, status: 201}})
}

func TestUntrustedForwardedForIsIgnored(t *testing.T) {
	f := newFixture(t, func(c *httpapi.Config) {
		c.TrustedProxies = []netip.Prefix{}
		c.LoginRate = httpapi.Rate{Every: time.Minute, Burst: 1}
	})
	alice := f.signUp("alice@example.com") // takes the one login
	run(t, f, []step{
		{name: "fail/a forged X-Forwarded-For does not buy a new bucket", req: request{method: "POST", path: "/v1/sessions",
			header: http.Header{"X-Forwarded-For": {"203.0.113.50"}}, body: map[string]string{"email": alice.email, "password": goodPassword}},
			status: 429, code: "rate_limited"},
	})
}

func TestLockout(t *testing.T) {
	f := newFixture(t)
	alice := f.signUp("alice@example.com")
	wrong := request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": "not the password at all"}}
	var steps []step
	for i := range 5 {
		steps = append(steps, step{name: "fail/wrong password " + strconv.Itoa(i+1), req: wrong, status: 401, code: "invalid_credentials", audits: true})
	}
	// Locked, even the right password fails, and the answer is the one an
	// unknown email gets: a lock would tell that the email has an account.
	locked := request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": alice.email, "password": goodPassword}}
	unknown := request{method: "POST", path: "/v1/sessions", body: map[string]string{"email": "nobody@example.com", "password": goodPassword}}
	steps = append(steps,
		step{name: "fail/locked, even with the right password", req: locked, status: 401, code: "invalid_credentials", audits: true,
			check: func(t *testing.T, res *response) {
				if res.header.Get("Retry-After") != "" {
					t.Error("a locked account is told apart by Retry-After")
				}
			}},
		step{name: "fail/an unknown email answers alike", req: unknown, status: 401, code: "invalid_credentials", audits: true})
	run(t, f, steps)
	var lockedBody, unknownBody []byte
	lockedBody, unknownBody = f.do(locked).body, f.do(unknown).body
	if string(lockedBody) != string(unknownBody) {
		t.Errorf("a locked account answers %s, an unknown email %s", lockedBody, unknownBody)
	}
	f.clock.Advance(time.Minute)
	run(t, f, []step{{name: "ok/after the lock", req: locked, status: 201}})
}
