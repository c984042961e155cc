package identity_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/identity/token"
	"github.com/mcpauthz/mcpauthz/internal/testclock"
)

// published records revocation events.
type published struct {
	mu  sync.Mutex
	evs []identity.Event
}

func (p *published) Publish(_ context.Context, ev identity.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, ev)
	return nil
}

func (p *published) all() []identity.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.evs)
}

type fixture struct {
	svc    *identity.Service
	cfg    identity.Config
	store  *sqlstore.Store
	audit  *identity.Auditor
	clock  *testclock.Clock
	events *published
}

const goodPassword = "correct horse battery staple"

var meta = identity.Meta{IP: "192.0.2.7", UserAgent: "test-agent/1.0"}

func newFixture(t *testing.T, edit ...func(*identity.Config)) *fixture {
	t.Helper()
	f := openFixture(t, edit...)
	t.Cleanup(func() {
		// Whatever a test did, the audit chain it left verifies.
		if rep, err := f.audit.Verify(context.Background(), f.store); err != nil {
			t.Errorf("audit chain: %v (%+v)", err, rep)
		}
	})
	return f
}

// newBenchFixture uses the default, production password parameters.
func newBenchFixture(b *testing.B) *fixture {
	b.Helper()
	return openFixture(b, func(c *identity.Config) { c.Password = password.DefaultParams })
}

func openFixture(t testing.TB, edit ...func(*identity.Config)) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "identity.db"))
	if err != nil {
		t.Fatal(err)
	}
	audit, err := identity.NewAuditor(auditKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := identity.DefaultConfig()
	// The cheapest parameters the policy accepts keep tests quick; the
	// benchmarks put the defaults back.
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	for _, e := range edit {
		e(&cfg)
	}
	f := &fixture{cfg: cfg, store: store, audit: audit, clock: testclock.New(time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)), events: &published{}}
	f.svc, err = identity.NewService(store, audit, cfg, rand.Reader, identity.WithClock(f.clock.Now), identity.WithEvents(f.events))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return f
}

func consents() []identity.Consent {
	return []identity.Consent{
		{Kind: "privacy_policy", Version: "2026-01", Granted: true},
		{Kind: "terms", Version: "2026-01", Granted: true},
		{Kind: "marketing", Version: "1", Granted: false},
	}
}

func (f *fixture) signUp(t *testing.T, email string) *identity.User {
	t.Helper()
	u, err := f.svc.SignUp(context.Background(), identity.SignUp{Email: email, Password: goodPassword, Consents: consents()}, meta)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) actions(t *testing.T) []string {
	t.Helper()
	evs, err := f.store.AuditEvents(context.Background(), identity.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}

func TestSignUp(t *testing.T) {
	tests := []struct {
		name  string
		in    identity.SignUp
		field string // the InputError field expected; "" for success
	}{
		{name: "ok/normalized email", in: identity.SignUp{Email: "  Ada.Lovelace@Example.COM ", Password: goodPassword, DisplayName: " Ada ", Consents: consents()}},
		{name: "fail/bad email", in: identity.SignUp{Email: "ada@", Password: goodPassword, Consents: consents()}, field: "email"},
		{name: "fail/short password", in: identity.SignUp{Email: "a@example.com", Password: "short", Consents: consents()}, field: "password"},
		{name: "fail/common password", in: identity.SignUp{Email: "a@example.com", Password: "password12345", Consents: consents()}, field: "password"},
		{name: "fail/missing consent", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, Consents: consents()[1:]}, field: "consents"},
		{name: "fail/refused consent", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, Consents: []identity.Consent{
			{Kind: "privacy_policy", Version: "2026-01", Granted: false}, {Kind: "terms", Version: "2026-01", Granted: true}}}, field: "consents"},
		{name: "fail/old consent version", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, Consents: []identity.Consent{
			{Kind: "privacy_policy", Version: "2025-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}}, field: "consents"},
		{name: "fail/unknown consent", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, Consents: append(consents(),
			identity.Consent{Kind: "telemetry", Version: "1", Granted: true})}, field: "consents"},
		{name: "fail/long display name", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, DisplayName: strings.Repeat("é", 101), Consents: consents()}, field: "display_name"},
		{name: "fail/display name with a control character", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, DisplayName: "Ada\x1b[2J", Consents: consents()}, field: "display_name"},
		{name: "fail/display name not UTF-8", in: identity.SignUp{Email: "a@example.com", Password: goodPassword, DisplayName: "Ada\xff", Consents: consents()}, field: "display_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			u, err := f.svc.SignUp(context.Background(), tt.in, meta)
			if tt.field != "" {
				var ie *identity.InputError
				if !errors.As(err, &ie) || ie.Field != tt.field {
					t.Fatalf("got %v, want an InputError on %s", err, tt.field)
				}
				if all, _ := f.store.ListUsers(context.Background(), "", "", 10); len(all) != 0 || len(f.actions(t)) != 0 {
					t.Fatal("a refused sign-up changed something")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != "ada.lovelace@example.com" || u.DisplayName != "Ada" || u.PasswordHash == goodPassword {
				t.Fatalf("user %+v", u)
			}
			cs, _ := f.store.Consents(context.Background(), u.ID)
			if len(cs) != 3 || !cs[0].At.Equal(f.clock.Now()) {
				t.Fatalf("consents %+v", cs)
			}
			if got := f.actions(t); !slices.Equal(got, []string{"user.signup"}) {
				t.Fatalf("audit %v", got)
			}
		})
	}
}

func TestSignUpTakenEmail(t *testing.T) {
	f := newFixture(t)
	f.signUp(t, "ada@example.com")
	_, err := f.svc.SignUp(context.Background(), identity.SignUp{Email: "ADA@example.com", Password: goodPassword, Consents: consents()}, meta)
	var ie *identity.InputError
	if !errors.As(err, &ie) || ie.Field != "email" || !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("got %v", err)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := f.signUp(t, "ada@example.com")

	l, err := f.svc.Login(ctx, "Ada@Example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	if kind, err := token.Parse(l.Token); err != nil || kind != token.KindSession {
		t.Fatalf("token %v %v", kind, err)
	}
	sess, who, err := f.svc.Authenticate(ctx, l.Token)
	if err != nil || who.ID != u.ID || sess.ID != l.Session.ID {
		t.Fatalf("authenticate: %v", err)
	}
	d := token.DigestOf(l.Token)
	if string(sess.TokenDigest) != string(d[:]) || sess.IP != meta.IP {
		t.Fatal("the session does not hold the token's digest")
	}

	for _, c := range []struct{ email, pw string }{{"ada@example.com", "wrong password!"}, {"nobody@example.com", goodPassword}, {"not an email", goodPassword}} {
		if _, err := f.svc.Login(ctx, c.email, c.pw, meta); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("%s: %v", c.email, err)
		}
	}
	if got := f.actions(t); !slices.Equal(got, []string{"user.signup", "user.login", "user.login_failed"}) {
		t.Fatalf("audit %v", got)
	}
}

func TestLockout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	for i := range 5 {
		if _, err := f.svc.Login(ctx, "ada@example.com", "wrong password!", meta); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Locked: even the right password is refused, and not counted.
	var le *identity.LockedError
	if _, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta); !errors.As(err, &le) {
		t.Fatalf("after 5 failures: %v", err)
	}
	if !le.Until.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("locked until %v", le.Until)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	u, _ := f.store.UserByEmail(ctx, "ada@example.com")
	if u.FailedLogins != 0 {
		t.Fatalf("failures not reset: %d", u.FailedLogins)
	}
}

// banMidLogin bans the user as soon as a login has read it: a ban that
// commits while the password is being checked.
type banMidLogin struct {
	*sqlstore.Store
	until time.Time
}

func (s banMidLogin) UserByEmail(ctx context.Context, email string) (*identity.User, error) {
	u, err := s.Store.UserByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	banned := *u
	banned.Status, banned.BannedUntil = identity.UserBanned, s.until
	return u, s.Store.UpdateUser(ctx, &banned)
}

func TestBanDuringLoginStays(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	// A failure first, so that the login has a count to clear.
	if _, err := f.svc.Login(ctx, "ada@example.com", "wrong password!", meta); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	svc, err := identity.NewService(banMidLogin{f.store, f.clock.Now().Add(time.Hour)}, f.audit, f.cfg, rand.Reader,
		identity.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	l, err := svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.store.UserByID(ctx, l.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != identity.UserBanned || u.FailedLogins != 0 {
		t.Fatalf("after the login: status %s, %d failures", u.Status, u.FailedLogins)
	}
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("the session opened across the ban works: %v", err)
	}
}

func TestLoginUpgradesTheHash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	cfg := f.cfg
	cfg.Password.Iterations++
	svc, err := identity.NewService(f.store, f.audit, cfg, rand.Reader, identity.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Login(ctx, "ada@example.com", goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	u, err := f.store.UserByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if password.NeedsRehash(u.PasswordHash, cfg.Password) || !password.NeedsRehash(u.PasswordHash, f.cfg.Password) {
		t.Fatalf("hash %s not upgraded", u.PasswordHash)
	}
	if _, err := svc.Login(ctx, "ada@example.com", goodPassword, meta); err != nil {
		t.Fatalf("with the upgraded hash: %v", err)
	}
}

func TestUserAgentKeptValid(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	// 255 bytes, then a two-byte character across the limit, then a byte
	// that is not UTF-8.
	ua := strings.Repeat("a", 255) + "é\xff"
	l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, identity.Meta{IP: meta.IP, UserAgent: ua})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Session.UserAgent; got != strings.Repeat("a", 255) {
		t.Fatalf("user agent kept as %q", got)
	}
	short := "agent/\xff1"
	l, err = f.svc.Login(ctx, "ada@example.com", goodPassword, identity.Meta{IP: meta.IP, UserAgent: short})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Session.UserAgent; got != "agent/\uFFFD1" {
		t.Fatalf("user agent kept as %q", got)
	}
}

// cancelAfterCommit cancels the caller's context as each transaction
// commits: a client that leaves as soon as its change is done.
type cancelAfterCommit struct {
	*sqlstore.Store
	cancel context.CancelFunc
}

func (s cancelAfterCommit) Tx(ctx context.Context, fn func(identity.Tx) error) error {
	err := s.Store.Tx(ctx, fn)
	s.cancel()
	return err
}

// ctxPublisher refuses events on a context that is done, as a network
// publisher would.
type ctxPublisher struct{ published }

func (p *ctxPublisher) Publish(ctx context.Context, ev identity.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.published.Publish(ctx, ev)
}

func TestEventsOutliveTheCaller(t *testing.T) {
	f := newFixture(t)
	f.signUp(t, "ada@example.com")
	l, err := f.svc.Login(context.Background(), "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := &ctxPublisher{}
	svc, err := identity.NewService(cancelAfterCommit{f.store, cancel}, f.audit, f.cfg, rand.Reader,
		identity.WithClock(f.clock.Now), identity.WithEvents(pub))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeSession(ctx, l.User.ID, l.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	if evs := pub.all(); len(evs) != 1 || evs[0].SessionIDs[0] != l.Session.ID {
		t.Fatalf("events %+v", evs)
	}
}

func TestBannedUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := f.signUp(t, "ada@example.com")
	l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	u.Status, u.BannedUntil = identity.UserBanned, f.clock.Now().Add(time.Hour)
	if err := f.store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta); !errors.Is(err, identity.ErrBanned) {
		t.Fatalf("banned, right password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "ada@example.com", "wrong password!", meta); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("banned, wrong password: %v", err)
	}
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("a banned user's session still works: %v", err)
	}
	f.clock.Advance(time.Hour)
	if _, _, err := f.svc.Authenticate(ctx, l.Token); err != nil {
		t.Fatalf("after the ban ended: %v", err)
	}
}

func TestMaxSessions(t *testing.T) {
	f := newFixture(t, func(c *identity.Config) { c.MaxSessions = 3 })
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	var tokens []string
	for range 4 {
		l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, l.Token)
		f.clock.Advance(time.Second)
	}
	if _, _, err := f.svc.Authenticate(ctx, tokens[0]); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("the oldest session survived: %v", err)
	}
	for _, tok := range tokens[1:] {
		if _, _, err := f.svc.Authenticate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.events.all()
	if len(evs) != 1 || evs[0].Kind != identity.EventSessionsRevoked || len(evs[0].SessionIDs) != 1 {
		t.Fatalf("events %+v", evs)
	}
}

func TestSessionExpiry(t *testing.T) {
	f := newFixture(t, func(c *identity.Config) { c.SessionIdle, c.SessionMax = time.Hour, 3*time.Hour })
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	// Used every 50 minutes, it stays alive until the absolute limit.
	for range 3 {
		f.clock.Advance(50 * time.Minute)
		if _, _, err := f.svc.Authenticate(ctx, l.Token); err != nil {
			t.Fatalf("at %v: %v", f.clock.Now(), err)
		}
	}
	f.clock.Advance(40 * time.Minute) // 3h10 after login
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("past the absolute limit: %v", err)
	}
	l, err = f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(61 * time.Minute)
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("past the idle limit: %v", err)
	}
	n, err := f.svc.CleanupSessions(ctx, 1)
	if err != nil || n != 2 {
		t.Fatalf("cleaned %d: %v", n, err)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	apiKey, _ := token.New(token.KindAPIKey, rand.Reader)
	unknown, _ := token.New(token.KindSession, rand.Reader)
	for _, tok := range []string{"", "garbage", apiKey, unknown, unknown[:len(unknown)-1] + "x"} {
		if _, _, err := f.svc.Authenticate(ctx, tok); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("%q: %v", tok, err)
		}
	}
}

func TestReauthAndFreshness(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signUp(t, "ada@example.com")
	l, err := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Fresh(l.Session) {
		t.Fatal("a new session is not fresh")
	}
	f.clock.Advance(20 * time.Minute)
	sess, _, err := f.svc.Authenticate(ctx, l.Token)
	if err != nil {
		t.Fatal(err)
	}
	if f.svc.Fresh(sess) {
		t.Fatal("a 20-minute-old authentication is fresh")
	}
	if err := f.svc.Reauth(ctx, sess, "wrong password!", meta); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := f.svc.Reauth(ctx, sess, goodPassword, meta); err != nil {
		t.Fatal(err)
	}
	sess, _, _ = f.svc.Authenticate(ctx, l.Token)
	if !f.svc.Fresh(sess) {
		t.Fatal("re-authentication did not refresh the session")
	}

	// Revoked after it was read, the session cannot be re-authenticated
	// back to life.
	if err := f.svc.RevokeSession(ctx, sess.UserID, sess.ID, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Reauth(ctx, sess, goodPassword, meta); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("re-authenticating a revoked session: %v", err)
	}
	if _, _, err := f.svc.Authenticate(ctx, l.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("a revoked session works again: %v", err)
	}
}

func TestRevokeSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ada := f.signUp(t, "ada@example.com")
	bob := f.signUp(t, "bob@example.com")
	l1, _ := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	l2, _ := f.svc.Login(ctx, "ada@example.com", goodPassword, meta)
	lb, _ := f.svc.Login(ctx, "bob@example.com", goodPassword, meta)

	if err := f.svc.RevokeSession(ctx, bob.ID, l1.Session.ID, meta); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("bob revoked ada's session: %v", err)
	}
	if err := f.svc.RevokeSession(ctx, ada.ID, l1.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, l1.Token); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatal("a revoked session still works")
	}
	ids, err := f.svc.RevokeAllSessions(ctx, ada.ID, meta)
	if err != nil || len(ids) != 1 || ids[0] != l2.Session.ID {
		t.Fatalf("revoke all: %v %v", ids, err)
	}
	if _, _, err := f.svc.Authenticate(ctx, lb.Token); err != nil {
		t.Fatal("another user's session was revoked")
	}
	evs := f.events.all()
	if len(evs) != 2 || evs[0].SessionIDs[0] != l1.Session.ID || evs[1].SessionIDs[0] != l2.Session.ID {
		t.Fatalf("events %+v", evs)
	}
}
