package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// sidecarLog records, in order, what the service tells the sidecars:
// cache writes and events alike. With fail set, every call fails.
type sidecarLog struct {
	mu   sync.Mutex
	ops  []string
	fail error
}

func (l *sidecarLog) add(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err // as a network client would
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
	return l.fail
}

func (l *sidecarLog) PutSession(ctx context.Context, s *identity.Session) error {
	return l.add(ctx, "put session "+s.ID+" "+hex.EncodeToString(s.TokenDigest))
}

func (l *sidecarLog) PutAPIKey(ctx context.Context, k *identity.APIKey) error {
	op := "put key " + k.ID + " " + hex.EncodeToString(k.TokenDigest)
	if k.ReplacedBy != "" {
		op += " replaced by " + k.ReplacedBy
	}
	return l.add(ctx, op)
}

func (l *sidecarLog) DropSessions(ctx context.Context, ds [][]byte) error {
	return l.add(ctx, "drop sessions "+hexes(ds))
}

func (l *sidecarLog) DropAPIKeys(ctx context.Context, ds [][]byte) error {
	return l.add(ctx, "drop keys "+hexes(ds))
}

func (l *sidecarLog) Publish(ctx context.Context, ev identity.Event) error {
	return l.add(ctx, "event "+string(ev.Kind)+" "+strings.Join(slices.Sorted(slices.Values(append(ev.SessionIDs, ev.KeyIDs...))), ","))
}

// take returns the operations so far and forgets them.
func (l *sidecarLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

func hexes(ds [][]byte) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = hex.EncodeToString(d)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// dg is the hex digest of tokens, as the log shows them.
func dg(toks ...string) string {
	ds := make([][]byte, len(toks))
	for i, tok := range toks {
		d := token.DigestOf(tok)
		ds[i] = d[:]
	}
	return hexes(ds)
}

func ids(ss ...string) string { return strings.Join(slices.Sorted(slices.Values(ss)), ",") }

// withSidecars returns the fixture's service writing to a sidecarLog.
func withSidecars(t *testing.T, f *fixture, opts ...identity.Option) (*identity.Service, *sidecarLog) {
	t.Helper()
	l := &sidecarLog{}
	opts = append([]identity.Option{identity.WithClock(f.clock.Now), identity.WithEvents(l), identity.WithCache(l)}, opts...)
	svc, err := identity.NewService(f.store, f.audit, f.cfg, rand.Reader, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return svc, l
}

func wantOps(t *testing.T, l *sidecarLog, want ...string) {
	t.Helper()
	if got := l.take(); !slices.Equal(got, want) {
		t.Fatalf("told the sidecars\n %q\nwant\n %q", got, want)
	}
}

func TestWriteThroughSessions(t *testing.T) {
	f := newFixture(t, func(c *identity.Config) { c.MaxSessions = 2 })
	svc, l := withSidecars(t, f)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	wantOps(t, l)

	l1, err := svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put session "+l1.Session.ID+" "+dg(l1.Token))
	// Used within a minute: nothing written.
	if _, _, err := svc.Authenticate(ctx, l1.Token); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l)
	f.clock.Advance(2 * time.Minute)
	sess, _, err := svc.Authenticate(ctx, l1.Token)
	if err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put session "+l1.Session.ID+" "+dg(l1.Token))
	if err := svc.Reauth(ctx, sess, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put session "+l1.Session.ID+" "+dg(l1.Token), "event session.changed "+l1.Session.ID)
	if err := svc.Reauth(ctx, sess, "wrong password!", meta); err == nil {
		t.Fatal("wrong password accepted")
	}
	wantOps(t, l)
	org, err := svc.CreateOrg(ctx, ada.ID, "Ada's", "", meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetActiveOrg(ctx, sess, org.ID); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put session "+l1.Session.ID+" "+dg(l1.Token), "event session.changed "+l1.Session.ID)
	if err := svc.SetActiveOrg(ctx, sess, "not-a-member-here"); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("active org outside the user's orgs: %v", err)
	}
	wantOps(t, l)

	l2, _ := svc.Login(ctx, "ada@example.com", goodPassword, meta)
	l.take()
	l3, _ := svc.Login(ctx, "ada@example.com", goodPassword, meta)
	// The evicted session is dropped before sidecars hear of it.
	wantOps(t, l, "drop sessions "+dg(l1.Token), "put session "+l3.Session.ID+" "+dg(l3.Token),
		"event sessions.revoked "+l1.Session.ID)

	if err := svc.RevokeSession(ctx, ada.ID, l2.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "drop sessions "+dg(l2.Token), "event sessions.revoked "+l2.Session.ID)
	// Revoked already: dropped again, in case the first drop was lost,
	// but no second event.
	if err := svc.RevokeSession(ctx, ada.ID, l2.Session.ID, meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	wantOps(t, l, "drop sessions "+dg(l2.Token))
	// Another user's session: nothing.
	if err := svc.RevokeSession(ctx, "someone-else", l3.Session.ID, meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("revoking another's session: %v", err)
	}
	wantOps(t, l)

	if _, err := svc.RevokeAllSessions(ctx, ada.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "drop sessions "+dg(l3.Token), "event sessions.revoked "+l3.Session.ID)
	if _, err := svc.RevokeAllSessions(ctx, ada.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l)
}

func TestWriteThroughAPIKeys(t *testing.T) {
	f := newFixture(t)
	svc, l := withSidecars(t, f)
	ctx := context.Background()
	owner := f.signUp(t, "owner@example.com")
	lo, _ := svc.Login(ctx, "owner@example.com", goodPassword, meta)
	org, err := svc.CreateOrg(ctx, owner.ID, "Acme", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	l.take()

	k, secret, err := svc.CreateAPIKey(ctx, owner.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put key "+k.ID+" "+dg(secret))
	nk, newSecret, err := svc.RotateAPIKey(ctx, owner.ID, org.ID, k.ID, time.Hour, meta)
	if err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "put key "+k.ID+" "+dg(secret)+" replaced by "+nk.ID, "put key "+nk.ID+" "+dg(newSecret))
	if _, _, err := svc.RotateAPIKey(ctx, owner.ID, org.ID, k.ID, time.Hour, meta); err == nil {
		t.Fatal("rotated twice")
	}
	wantOps(t, l)
	if err := svc.RevokeAPIKey(ctx, owner.ID, org.ID, nk.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "drop keys "+dg(newSecret), "event api_keys.revoked "+nk.ID)

	other, err := svc.CreateOrg(ctx, owner.ID, "Other", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = svc.CreateAPIKey(ctx, owner.ID, other.ID, identity.NewAPIKey{Name: "stays"}, meta)
	l.take()
	if err := svc.DeleteOrg(ctx, lo.Session, org.ID, meta); err != nil {
		t.Fatal(err)
	}
	// Every key of the organization, the revoked and rotated ones too.
	wantOps(t, l, "drop keys "+dg(secret, newSecret), "event org.deleted "+ids(k.ID, nk.ID))
}

func TestWriteThroughUsers(t *testing.T) {
	f := newFixture(t)
	svc, l := withSidecars(t, f)
	ctx := context.Background()
	admin := f.signUp(t, "admin@example.com")
	admin.PlatformRoles = []string{identity.PlatformAdmin}
	if err := f.store.UpdateUser(ctx, admin); err != nil {
		t.Fatal(err)
	}
	la, _ := svc.Login(ctx, "admin@example.com", goodPassword, meta)
	bob := f.signUp(t, "bob@example.com")
	org, _ := svc.CreateOrg(ctx, bob.ID, "Bob's", "UTC", meta)
	var keyIDs, secrets []string // every key Bob created
	bobLogsIn := func() (*identity.Login, *identity.APIKey, string) {
		t.Helper()
		lb, err := svc.Login(ctx, "bob@example.com", goodPassword, meta)
		if err != nil {
			t.Fatal(err)
		}
		k, secret, err := svc.CreateAPIKey(ctx, bob.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta)
		if err != nil {
			t.Fatal(err)
		}
		keyIDs, secrets = append(keyIDs, k.ID), append(secrets, secret)
		l.take()
		return lb, k, secret
	}

	lb, k, secret := bobLogsIn()
	if err := svc.AdminRevokeAll(ctx, la.Session, bob.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "drop sessions "+dg(lb.Token), "drop keys "+dg(secret),
		"event sessions.revoked "+lb.Session.ID, "event api_keys.revoked "+k.ID)

	lb, k, secret = bobLogsIn()
	if err := svc.Ban(ctx, la.Session, bob.ID, "abuse", time.Time{}, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l, "drop sessions "+dg(lb.Token), "drop keys "+dg(secret), "event user.banned "+ids(lb.Session.ID, k.ID))

	if err := svc.Unban(ctx, la.Session, bob.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, l)
	lb, _, _ = bobLogsIn()
	// Bob hands the organization over, then leaves for good.
	_, inv, err := svc.Invite(ctx, bob.ID, org.ID, "admin@example.com", identity.RoleOwner, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AcceptInvitation(ctx, admin.ID, inv, meta); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := svc.DeleteAccount(ctx, lb.Session, meta); err != nil {
		t.Fatal(err)
	}
	// Every key Bob created is deleted, those revoked before too.
	wantOps(t, l, "drop sessions "+dg(lb.Token), "drop keys "+dg(secrets...),
		"event user.deleted "+ids(append([]string{lb.Session.ID}, keyIDs...)...))
}

// failingCache fails every write.
type failingCache struct{ identity.NopCache }

func (failingCache) PutSession(context.Context, *identity.Session) error {
	return errors.New("redis: connection refused")
}

func (failingCache) DropSessions(context.Context, [][]byte) error {
	return errors.New("redis: connection refused")
}

func TestWriteThroughFailureIsLoggedNotReturned(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	pub := &published{}
	svc, err := identity.NewService(f.store, f.audit, f.cfg, rand.Reader, identity.WithClock(f.clock.Now),
		identity.WithEvents(pub), identity.WithCache(failingCache{}),
		identity.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	l, err := svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatalf("a cache failure failed the login: %v", err)
	}
	if err := svc.RevokeSession(ctx, ada.ID, l.Session.ID, meta); err != nil {
		t.Fatalf("a cache failure failed the logout: %v", err)
	}
	if evs := pub.all(); len(evs) != 1 || evs[0].Kind != identity.EventSessionsRevoked {
		t.Fatalf("events %+v", evs)
	}
	out := logs.String()
	if strings.Count(out, `"level":"ERROR"`) != 2 || !strings.Contains(out, l.Session.ID) ||
		!strings.Contains(out, `"op":"put session"`) || !strings.Contains(out, `"op":"drop sessions"`) {
		t.Fatalf("logs:\n%s", out)
	}
	d := token.DigestOf(l.Token)
	for _, secret := range []string{l.Token, hex.EncodeToString(d[:])} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, out)
		}
	}
}

func TestWriteThroughOutlivesTheCaller(t *testing.T) {
	f := newFixture(t)
	f.signUp(t, "ada@example.com")
	l, err := f.svc.Login(context.Background(), "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	side := &sidecarLog{}
	svc, err := identity.NewService(cancelAfterCommit{f.store, cancel}, f.audit, f.cfg, rand.Reader,
		identity.WithClock(f.clock.Now), identity.WithEvents(side), identity.WithCache(side))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeSession(ctx, l.User.ID, l.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	wantOps(t, side, "drop sessions "+dg(l.Token), "event sessions.revoked "+l.Session.ID)
}
