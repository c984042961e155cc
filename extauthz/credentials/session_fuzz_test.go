package credentials

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// cookieStore is a session store holding one session, its user, their
// organization and membership, with the digests it was asked for.
type cookieStore struct {
	sess    identity.Session
	user    identity.User
	org     identity.Org
	role    identity.Role
	digests []token.Digest
}

func (s *cookieStore) SessionByDigest(_ context.Context, d []byte) (*identity.Session, error) {
	s.digests = append(s.digests, token.Digest(d))
	if !bytes.Equal(d, s.sess.TokenDigest) {
		return nil, identity.ErrNotFound
	}
	c := s.sess
	return &c, nil
}

func (s *cookieStore) UserByID(_ context.Context, id string) (*identity.User, error) {
	if id != s.user.ID {
		return nil, identity.ErrNotFound
	}
	c := s.user
	return &c, nil
}

func (s *cookieStore) Membership(_ context.Context, org, user string) (*identity.Membership, error) {
	if org != s.org.ID || user != s.user.ID {
		return nil, identity.ErrNotFound
	}
	return &identity.Membership{OrgID: org, UserID: user, Role: s.role}, nil
}

func (s *cookieStore) OrgByID(_ context.Context, id string) (*identity.Org, error) {
	if id != s.org.ID {
		return nil, identity.ErrNotFound
	}
	c := s.org
	return &c, nil
}

// cookieFixture is a live session, the genuine signed cache cookie a
// sidecar issues for it at now, and another well-formed session token the
// store does not know.
type cookieFixture struct {
	now      time.Time
	key      []byte
	token    string
	stranger string
	cache    string // the signed cache cookie's value
	want     extauthz.Identity
}

func newCookieFixture(tb testing.TB) *cookieFixture {
	tb.Helper()
	fx := &cookieFixture{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), key: bytes.Repeat([]byte{7}, 32)}
	var err error
	if fx.token, err = token.New(token.KindSession, bytes.NewReader(bytes.Repeat([]byte{0x5a}, token.RandomBytes))); err != nil {
		tb.Fatal(err)
	}
	if fx.stranger, err = token.New(token.KindSession, bytes.NewReader(bytes.Repeat([]byte{0xa5}, token.RandomBytes))); err != nil {
		tb.Fatal(err)
	}
	id, err := fx.verify(fx.newStore(), DefaultSessionCookie+"="+fx.token)
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := http.ParseSetCookie(id.SetCookie)
	if err != nil || sc.Name != DefaultSessionCacheCookie {
		tb.Fatalf("Set-Cookie %q: %v", id.SetCookie, err)
	}
	fx.cache = sc.Value
	id.SetCookie = ""
	fx.want = id
	return fx
}

func (fx *cookieFixture) newStore() *cookieStore {
	d := token.DigestOf(fx.token)
	return &cookieStore{
		sess: identity.Session{ID: "sess-1", UserID: "user-1", TokenDigest: d[:], ActiveOrgID: "org-1",
			AuthTime: fx.now.Add(-time.Hour), IdleExpires: fx.now.Add(time.Hour), ExpiresAt: fx.now.Add(24 * time.Hour)},
		user: identity.User{ID: "user-1", PlatformRoles: []string{"admin"}},
		org:  identity.Org{ID: "org-1", Tier: identity.TierPro, TimeZone: "Europe/Paris"},
		role: identity.RoleMember,
	}
}

// verify runs a fresh verifier, so nothing is remembered between calls.
func (fx *cookieFixture) verify(st *cookieStore, header string) (extauthz.Identity, error) {
	c, err := NewSignedSessionCache(fx.key, DefaultSessionCacheCookie, time.Minute)
	if err != nil {
		return extauthz.Identity{}, err
	}
	v := NewSessionVerifier(st, FixedFreshness(time.Minute), WithSessionCacheSize(1),
		WithSessionClock(func() time.Time { return fx.now }), WithSignedSessionCache(c))
	return v.Verify(context.Background(), &extauthz.Request{Method: "POST", Path: "/mcp",
		Headers: map[string]string{"cookie": header}, ClientIP: "192.0.2.1"})
}

// crumbs reads a Cookie header as RFC 6265 §4.1.1 and the proxies that
// join headers with "," allow: the values of the session and cache
// cookies, unquoted. It walks bytes; the verifier splits on runes.
func crumbs(h string) (sessions, caches []string) {
	start := 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != ';' && h[i] != ',' {
			continue
		}
		crumb := h[start:i]
		start = i + 1
		if crumb == "" {
			continue
		}
		name, value := crumb, ""
		if j := strings.IndexByte(crumb, '='); j >= 0 {
			name, value = crumb[:j], crumb[j+1:]
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch strings.TrimSpace(name) {
		case DefaultSessionCookie:
			sessions = append(sessions, value)
		case DefaultSessionCacheCookie:
			caches = append(caches, value)
		}
	}
	return sessions, caches
}

// sameIdentity compares identities, times by instant.
func sameIdentity(a, b extauthz.Identity) bool {
	norm := func(id extauthz.Identity) extauthz.Identity {
		if id.Session != nil {
			s := *id.Session
			s.AuthTime = s.AuthTime.UTC()
			id.Session = &s
		}
		id.SetCookie = ""
		return id
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// FuzzSessionCookie feeds arbitrary Cookie headers to the session
// verifier. The outcome follows from the header's session and cache
// cookies alone, as a byte-wise reading of the header finds them: none is
// not mine; two are refused; one that is not a well-formed session token
// is refused without a lookup; a well-formed one is looked up once, by
// the digest of exactly that value. The signed cache answers without a
// lookup only for the very value the sidecar issued, and then with the
// identity the lookup gives. And whatever else the header holds, a
// session cookie added before or after it is found.
func FuzzSessionCookie(f *testing.F) {
	fx := newCookieFixture(f)
	s, c := DefaultSessionCookie+"="+fx.token, DefaultSessionCacheCookie+"="+fx.cache
	for _, seed := range []string{
		s,
		DefaultSessionCookie + `="` + fx.token + `"`,
		"_ga=GA1.1.1234567890.1700000000; " + s + "; theme=dark",
		s + "; " + c,
		c + ", " + s,
		s + "; " + c + "; " + c,
		s + "; " + DefaultSessionCacheCookie + "=" + fx.cache[:len(fx.cache)-1] + "B",
		s + "; " + s,
		DefaultSessionCookie + "=" + fx.stranger + "; " + c,
		DefaultSessionCookie + "=" + strings.ToUpper(fx.token),
		"__host-mcpauthz_session=" + fx.token,
		"a=\"b;c\"; " + s,
		" ; ,, " + s + " ;",
		DefaultSessionCookie,
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		sessions, caches := crumbs(header)
		st := fx.newStore()
		id, err := fx.verify(st, header)
		lookups := 0
		switch {
		case len(sessions) == 0:
			if !errors.Is(err, ErrNotMine) {
				t.Fatalf("no session cookie in %q: %v", header, err)
			}
		case len(sessions) > 1:
			if !errors.Is(err, extauthz.ErrInvalidCredential) {
				t.Fatalf("%d session cookies in %q: %v", len(sessions), header, err)
			}
		default:
			value := sessions[0]
			kind, perr := token.Parse(value)
			switch {
			case perr != nil || kind != token.KindSession:
				if !errors.Is(err, extauthz.ErrInvalidCredential) {
					t.Fatalf("malformed session %q: %v", value, err)
				}
			case value == fx.token && len(caches) == 1 && caches[0] == fx.cache:
				if err != nil || id.SetCookie != "" || !sameIdentity(id, fx.want) {
					t.Fatalf("the genuine cache cookie in %q: %+v, %v", header, id, err)
				}
			default:
				lookups = 1
				if value != fx.token {
					if !errors.Is(err, extauthz.ErrInvalidCredential) {
						t.Fatalf("unknown session %q: %v", value, err)
					}
					break
				}
				if err != nil || id.SetCookie == "" || !sameIdentity(id, fx.want) {
					t.Fatalf("the session in %q: %+v, %v (caches %q)", header, id, err, caches)
				}
			}
		}
		if len(st.digests) != lookups || lookups == 1 && st.digests[0] != token.DigestOf(sessions[0]) {
			t.Fatalf("%q: store asked for %d digests, want %d, of %q", header, len(st.digests), lookups, sessions)
		}

		if len(sessions) > 0 {
			return
		}
		for _, h := range []string{header + "; " + s, s + "," + header} {
			if id, err := fx.verify(fx.newStore(), h); err != nil || !sameIdentity(id, fx.want) {
				t.Fatalf("a neighbour hid the session cookie in %q: %+v, %v", h, id, err)
			}
		}
	})
}
