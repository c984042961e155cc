package redisfeed_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func testSession() *identity.Session {
	return &identity.Session{ID: "s1", UserID: "u1", TokenDigest: digestOf("tok"), ActiveOrgID: "o1",
		AuthTime: t0, CreatedAt: t0, LastSeenAt: t0, IdleExpires: t0.Add(time.Hour), ExpiresAt: t0.Add(24 * time.Hour),
		IP: "192.0.2.1", UserAgent: "agent"}
}

func testKey() *identity.APIKey {
	return &identity.APIKey{ID: "k1", OrgID: "o1", CreatedBy: "u1", Name: "ci", TokenDigest: digestOf("secret"),
		Hint: "mcpk_…abcd", Scopes: []string{"mcp:tools:call"}, AllowedTools: []string{"echo"}, Tier: identity.TierPro,
		IPAllowlist: []string{"10.0.0.0/8"}, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
}

func TestKeys(t *testing.T) {
	d := digestOf("tok")
	tests := []struct {
		name, got, want string
	}{
		{"ok/session", redisfeed.SessionKey("mcpauthz", d), "mcpauthz:session:1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62"},
		{"ok/api key", redisfeed.APIKeyKey("p", d), "p:apikey:1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62"},
		{"ok/channel", redisfeed.Channel("mcpauthz"), "mcpauthz:identity:events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func TestSessionRecord(t *testing.T) {
	b, err := redisfeed.EncodeSession(testSession())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"tok", hexOf(digestOf("tok")), "192.0.2.1", "agent"} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("record %s holds %q", b, secret)
		}
	}
	got, err := redisfeed.DecodeSession(b)
	if err != nil {
		t.Fatal(err)
	}
	want := testSession()
	want.TokenDigest, want.LastSeenAt, want.IP, want.UserAgent = nil, time.Time{}, "", ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestAPIKeyRecord(t *testing.T) {
	tests := []struct {
		name string
		edit func(*identity.APIKey)
	}{
		{"ok/full", func(*identity.APIKey) {}},
		{"ok/never expires, empty lists", func(k *identity.APIKey) {
			k.ExpiresAt, k.Scopes, k.AllowedTools, k.IPAllowlist = time.Time{}, []string{}, []string{}, []string{}
		}},
		{"ok/rotated", func(k *identity.APIKey) { k.ReplacedBy, k.GraceUntil = "k2", t0.Add(time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testKey()
			tt.edit(k)
			b, err := redisfeed.EncodeAPIKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "secret") || strings.Contains(string(b), hexOf(k.TokenDigest)) ||
				strings.Contains(string(b), "null") {
				t.Fatalf("record %s", b)
			}
			got, err := redisfeed.DecodeAPIKey(b)
			if err != nil {
				t.Fatal(err)
			}
			k.TokenDigest, k.Hint, k.CreatedAt = nil, "", time.Time{}
			if !reflect.DeepEqual(got, k) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, k)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	session := `{"v":1,"id":"s1","user_id":"u1","auth_time":"2026-03-04T05:06:07Z",` +
		`"idle_expires_at":"2026-03-04T06:06:07Z","expires_at":"2026-03-05T05:06:07Z"}`
	key := `{"v":1,"id":"k1","org_id":"o1","scopes":[],"allowed_tools":[],"tier":"pro","ip_allowlist":[]}`
	tests := []struct {
		name   string
		decode func([]byte) error
		in     string
		want   error
	}{
		{"ok/session", decodeSession, session, nil},
		{"ok/key", decodeKey, key, nil},
		{"fail/session tombstone", decodeSession, `{"v":1,"revoked":true}`, redisfeed.ErrRevoked},
		{"fail/key tombstone", decodeKey, `{"v":1,"revoked":true}`, redisfeed.ErrRevoked},
		{"fail/other version", decodeSession, strings.Replace(session, `"v":1`, `"v":2`, 1), redisfeed.ErrBadRecord},
		{"fail/no version", decodeKey, strings.Replace(key, `"v":1,`, ``, 1), redisfeed.ErrBadRecord},
		{"fail/unknown field", decodeSession, strings.Replace(session, `"v":1`, `"v":1,"admin":true`, 1), redisfeed.ErrBadRecord},
		{"fail/no user", decodeSession, strings.Replace(session, `"user_id":"u1",`, ``, 1), redisfeed.ErrBadRecord},
		{"fail/no expiry", decodeSession, strings.Replace(session, `,"expires_at":"2026-03-05T05:06:07Z"`, ``, 1), redisfeed.ErrBadRecord},
		{"fail/no tier", decodeKey, strings.Replace(key, `"tier":"pro",`, ``, 1), redisfeed.ErrBadRecord},
		{"fail/unknown tier", decodeKey, strings.Replace(key, `"pro"`, `"platinum"`, 1), redisfeed.ErrBadRecord},
		{"fail/rotated without grace", decodeKey, strings.Replace(key, `"v":1`, `"v":1,"replaced_by":"k2"`, 1), redisfeed.ErrBadRecord},
		{"fail/trailing data", decodeKey, key + `{}`, redisfeed.ErrBadRecord},
		{"fail/not JSON", decodeSession, `mcps_abc`, redisfeed.ErrBadRecord},
		{"fail/a key as a session", decodeSession, key, redisfeed.ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.in))
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func decodeSession(b []byte) error { _, err := redisfeed.DecodeSession(b); return err }

func decodeKey(b []byte) error { _, err := redisfeed.DecodeAPIKey(b); return err }

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want identity.Event
		err  error
	}{
		{"ok/sessions revoked", `{"kind":"sessions.revoked","user_id":"u1","session_ids":["s1","s2"]}`,
			identity.Event{Kind: identity.EventSessionsRevoked, UserID: "u1", SessionIDs: []string{"s1", "s2"}}, nil},
		{"ok/unknown fields ignored", `{"kind":"org.deleted","org_id":"o1","key_ids":["k1"],"at":"later"}`,
			identity.Event{Kind: identity.EventOrgDeleted, OrgID: "o1", KeyIDs: []string{"k1"}}, nil},
		{"fail/no kind", `{"user_id":"u1"}`, identity.Event{}, redisfeed.ErrBadRecord},
		{"fail/not JSON", `sessions.revoked`, identity.Event{}, redisfeed.ErrBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redisfeed.DecodeEvent([]byte(tt.in))
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
