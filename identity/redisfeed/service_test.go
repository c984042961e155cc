package redisfeed_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
	"github.com/mcpauthz/mcpauthz/internal/testclock"
)

// world is an identity service on SQLite that writes through to Redis.
type world struct {
	svc    *identity.Service
	store  *sqlstore.Store
	feed   *redisfeed.Feed
	rdb    *redis.Client
	prefix string
	clock  *testclock.Clock
	events <-chan identity.Event
}

const goodPassword = "correct horse battery staple"

var meta = identity.Meta{IP: "192.0.2.7", UserAgent: "test-agent/1.0"}

const worldMaxTTL = 30 * 24 * time.Hour

func newWorld(t *testing.T, edit ...func(*identity.Config)) *world {
	t.Helper()
	rdb, prefix := testRedis(t)
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "identity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	audit, err := identity.NewAuditor([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := identity.DefaultConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	for _, e := range edit {
		e(&cfg)
	}
	w := &world{store: store, rdb: rdb, prefix: prefix, clock: testclock.New(time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC))}
	// A maximum longer than any validity, so records live by their own.
	w.feed = newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(w.clock.Now), redisfeed.WithMaxTTL(worldMaxTTL))
	w.events = subscribe(t, rdb, w.feed.Channel())
	w.svc, err = identity.NewService(store, audit, cfg, rand.Reader, identity.WithClock(w.clock.Now),
		identity.WithEvents(w.feed), identity.WithCache(w.feed))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) signUp(t *testing.T, email string) *identity.User {
	t.Helper()
	u, err := w.svc.SignUp(context.Background(), identity.SignUp{Email: email, Password: goodPassword,
		Consents: []identity.Consent{
			{Kind: "privacy_policy", Version: "2026-01", Granted: true},
			{Kind: "terms", Version: "2026-01", Granted: true},
		}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (w *world) login(t *testing.T, email string) *identity.Login {
	t.Helper()
	l, err := w.svc.Login(context.Background(), email, goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// platformAdmin signs up a platform admin and logs them in.
func (w *world) platformAdmin(t *testing.T, email string) *identity.Login {
	t.Helper()
	admin := w.signUp(t, email)
	admin.PlatformRoles = []string{identity.PlatformAdmin}
	if err := w.store.UpdateUser(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	return w.login(t, email)
}

func (w *world) createKey(t *testing.T, actorID, orgID, name string) (*identity.APIKey, string) {
	t.Helper()
	k, secret, err := w.svc.CreateAPIKey(context.Background(), actorID, orgID, identity.NewAPIKey{Name: name}, meta)
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func digest(tok string) []byte {
	d := token.DigestOf(tok)
	return d[:]
}

// cachedSession returns the session cached for a token.
func (w *world) cachedSession(t *testing.T, tok string) *identity.Session {
	t.Helper()
	s, err := w.feed.Session(context.Background(), digest(tok))
	if err != nil {
		t.Fatalf("cached session: %v", err)
	}
	return s
}

// cachedKey returns the API key cached for a secret.
func (w *world) cachedKey(t *testing.T, secret string) *identity.APIKey {
	t.Helper()
	k, err := w.feed.APIKey(context.Background(), digest(secret))
	if err != nil {
		t.Fatalf("cached key: %v", err)
	}
	return k
}

// revoked checks that the sessions and keys of these tokens are cached as
// revoked.
func (w *world) revoked(t *testing.T, sessions, keys []string) {
	t.Helper()
	for _, tok := range sessions {
		if s, err := w.feed.Session(context.Background(), digest(tok)); !errors.Is(err, redisfeed.ErrRevoked) {
			t.Errorf("session %+v still cached: %v", s, err)
		}
	}
	for _, secret := range keys {
		if k, err := w.feed.APIKey(context.Background(), digest(secret)); !errors.Is(err, redisfeed.ErrRevoked) {
			t.Errorf("key %+v still cached: %v", k, err)
		}
	}
}

// wantEvent checks the next event.
func (w *world) wantEvent(t *testing.T, want identity.Event) {
	t.Helper()
	got := next(t, w.events)
	slices.Sort(got.SessionIDs)
	slices.Sort(got.KeyIDs)
	slices.Sort(want.SessionIDs)
	slices.Sort(want.KeyIDs)
	if got.Kind != want.Kind || got.UserID != want.UserID || got.OrgID != want.OrgID ||
		!slices.Equal(got.SessionIDs, want.SessionIDs) || !slices.Equal(got.KeyIDs, want.KeyIDs) {
		t.Fatalf("event %+v, want %+v", got, want)
	}
}

func TestServiceSessions(t *testing.T) {
	w := newWorld(t, func(c *identity.Config) { c.MaxSessions = 2 })
	ctx := context.Background()
	ada := w.signUp(t, "ada@example.com")

	// Login caches the session until its absolute expiry.
	l := w.login(t, "ada@example.com")
	got := w.cachedSession(t, l.Token)
	if got.ID != l.Session.ID || got.UserID != ada.ID || !got.ExpiresAt.Equal(l.Session.ExpiresAt) ||
		!got.AuthTime.Equal(l.Session.AuthTime) || !got.IdleExpires.Equal(l.Session.IdleExpires) {
		t.Fatalf("cached %+v, want %+v", got, l.Session)
	}
	ttl := w.rdb.PTTL(ctx, redisfeed.SessionKey(w.prefix, digest(l.Token))).Val()
	if max := identity.DefaultConfig().SessionMax; ttl <= max-time.Minute || ttl > max {
		t.Fatalf("TTL %v, want %v", ttl, max)
	}

	// Use extends the idle expiry; re-authentication moves auth_time.
	w.clock.Advance(20 * time.Minute)
	if _, _, err := w.svc.Authenticate(ctx, l.Token); err != nil {
		t.Fatal(err)
	}
	if got := w.cachedSession(t, l.Token); !got.IdleExpires.Equal(w.clock.Now().Add(identity.DefaultConfig().SessionIdle)) {
		t.Fatalf("idle expiry cached %v", got.IdleExpires)
	}
	sess, _, err := w.svc.Authenticate(ctx, l.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Reauth(ctx, sess, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	if got := w.cachedSession(t, l.Token); !got.AuthTime.Equal(w.clock.Now()) {
		t.Fatalf("auth time cached %v, want %v", got.AuthTime, w.clock.Now())
	}
	// ... and tells the sidecars to read the session again.
	w.wantEvent(t, identity.Event{Kind: identity.EventSessionChanged, UserID: ada.ID, SessionIDs: []string{sess.ID}})

	// A login beyond MaxSessions evicts the oldest.
	l2 := w.login(t, "ada@example.com")
	l3 := w.login(t, "ada@example.com")
	w.wantEvent(t, identity.Event{Kind: identity.EventSessionsRevoked, UserID: ada.ID, SessionIDs: []string{l.Session.ID}})
	w.revoked(t, []string{l.Token}, nil)
	w.cachedSession(t, l2.Token)

	// Logout drops the session, then says so.
	if err := w.svc.RevokeSession(ctx, ada.ID, l2.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, []string{l2.Token}, nil)
	w.wantEvent(t, identity.Event{Kind: identity.EventSessionsRevoked, UserID: ada.ID, SessionIDs: []string{l2.Session.ID}})
	if err := w.svc.RevokeSession(ctx, ada.ID, l2.Session.ID, meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("logging out twice: %v", err)
	}
	noEvent(t, w.events)

	if _, err := w.svc.RevokeAllSessions(ctx, ada.ID, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, []string{l3.Token}, nil)
	w.wantEvent(t, identity.Event{Kind: identity.EventSessionsRevoked, UserID: ada.ID, SessionIDs: []string{l3.Session.ID}})
}

func TestServiceBan(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	la := w.platformAdmin(t, "admin@example.com")
	bob := w.signUp(t, "bob@example.com")
	l1, l2 := w.login(t, "bob@example.com"), w.login(t, "bob@example.com")
	org, err := w.svc.CreateOrg(ctx, bob.ID, "Bob's", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	k1, s1 := w.createKey(t, bob.ID, org.ID, "one")
	k2, s2 := w.createKey(t, bob.ID, org.ID, "two")
	if got := w.cachedKey(t, s1); got.ID != k1.ID || got.OrgID != org.ID || got.CreatedBy != bob.ID || got.Tier != identity.TierFree {
		t.Fatalf("cached key %+v", got)
	}

	if err := w.svc.Ban(ctx, la.Session, bob.ID, "abuse", time.Time{}, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, []string{l1.Token, l2.Token}, []string{s1, s2})
	w.wantEvent(t, identity.Event{Kind: identity.EventUserBanned, UserID: bob.ID,
		SessionIDs: []string{l1.Session.ID, l2.Session.ID}, KeyIDs: []string{k1.ID, k2.ID}})
	w.cachedSession(t, la.Token) // the admin's own stays
}

func TestServiceAdminRevokeAll(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	la := w.platformAdmin(t, "admin@example.com")
	bob := w.signUp(t, "bob@example.com")
	lb := w.login(t, "bob@example.com")
	org, err := w.svc.CreateOrg(ctx, bob.ID, "Bob's", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	k, secret := w.createKey(t, bob.ID, org.ID, "one")

	if err := w.svc.AdminRevokeAll(ctx, la.Session, bob.ID, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, []string{lb.Token}, []string{secret})
	w.wantEvent(t, identity.Event{Kind: identity.EventSessionsRevoked, UserID: bob.ID, SessionIDs: []string{lb.Session.ID}})
	w.wantEvent(t, identity.Event{Kind: identity.EventAPIKeysRevoked, UserID: bob.ID, KeyIDs: []string{k.ID}})
}

func TestServiceRotateAndRevokeKey(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	owner := w.signUp(t, "owner@example.com")
	org, err := w.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	old, oldSecret := w.createKey(t, owner.ID, org.ID, "ci")
	// PTTL counts down from the write: allow for the time since.
	if ttl := w.rdb.PTTL(ctx, redisfeed.APIKeyKey(w.prefix, digest(oldSecret))).Val(); ttl <= worldMaxTTL-time.Minute || ttl > worldMaxTTL {
		t.Fatalf("a key that never expires kept for %v, want the maximum", ttl)
	}

	nk, newSecret, err := w.svc.RotateAPIKey(ctx, owner.ID, org.ID, old.ID, time.Hour, meta)
	if err != nil {
		t.Fatal(err)
	}
	// The old key stays, until its grace ends.
	got := w.cachedKey(t, oldSecret)
	if got.ReplacedBy != nk.ID || !got.GraceUntil.Equal(w.clock.Now().Add(time.Hour)) || !got.Usable(w.clock.Now()) {
		t.Fatalf("old key cached as %+v", got)
	}
	if ttl := w.rdb.PTTL(ctx, redisfeed.APIKeyKey(w.prefix, digest(oldSecret))).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("old key kept for %v, want its grace", ttl)
	}
	if got := w.cachedKey(t, newSecret); got.ID != nk.ID || got.ReplacedBy != "" {
		t.Fatalf("new key cached as %+v", got)
	}
	noEvent(t, w.events)

	if err := w.svc.RevokeAPIKey(ctx, owner.ID, org.ID, nk.ID, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, nil, []string{newSecret})
	w.wantEvent(t, identity.Event{Kind: identity.EventAPIKeysRevoked, OrgID: org.ID, KeyIDs: []string{nk.ID}})
	w.cachedKey(t, oldSecret)
}

func TestServiceDeleteOrg(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	owner := w.signUp(t, "owner@example.com")
	lo := w.login(t, "owner@example.com")
	org, err := w.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	other, err := w.svc.CreateOrg(ctx, owner.ID, "Other", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	k1, s1 := w.createKey(t, owner.ID, org.ID, "one")
	k2, s2 := w.createKey(t, owner.ID, org.ID, "two")
	_, keep := w.createKey(t, owner.ID, other.ID, "other")

	if err := w.svc.DeleteOrg(ctx, lo.Session, org.ID, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, nil, []string{s1, s2})
	w.wantEvent(t, identity.Event{Kind: identity.EventOrgDeleted, OrgID: org.ID, KeyIDs: []string{k1.ID, k2.ID}})
	w.cachedKey(t, keep)
	w.cachedSession(t, lo.Token)
}

func TestServiceDeleteAccount(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	owner := w.signUp(t, "owner@example.com")
	org, err := w.svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	_, invite, err := w.svc.Invite(ctx, owner.ID, org.ID, "bob@example.com", identity.RoleMember, meta)
	if err != nil {
		t.Fatal(err)
	}
	bob := w.signUp(t, "bob@example.com")
	if _, err := w.svc.AcceptInvitation(ctx, bob.ID, invite, meta); err != nil {
		t.Fatal(err)
	}
	lb := w.login(t, "bob@example.com")
	k, secret := w.createKey(t, bob.ID, org.ID, "bob's")
	_, ownerSecret := w.createKey(t, owner.ID, org.ID, "owner's")

	if err := w.svc.DeleteAccount(ctx, lb.Session, meta); err != nil {
		t.Fatal(err)
	}
	w.revoked(t, []string{lb.Token}, []string{secret})
	w.wantEvent(t, identity.Event{Kind: identity.EventUserDeleted, UserID: bob.ID,
		SessionIDs: []string{lb.Session.ID}, KeyIDs: []string{k.ID}})
	w.cachedKey(t, ownerSecret)
}
