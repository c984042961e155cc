package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/internal/testclock"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

const goodPassword = "correct horse battery staple"

var meta = identity.Meta{IP: "192.0.2.7", UserAgent: "test"}

// store is the identity store with its reads counted, and failing on
// demand as a backend that is down.
type store struct {
	*sqlstore.Store
	reads atomic.Int64
	down  atomic.Bool
}

var errDown = errors.New("store down")

func (s *store) read() error {
	s.reads.Add(1)
	if s.down.Load() {
		return errDown
	}
	return nil
}

func (s *store) APIKeyByDigest(ctx context.Context, d []byte) (*identity.APIKey, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.Store.APIKeyByDigest(ctx, d)
}

func (s *store) SessionByDigest(ctx context.Context, d []byte) (*identity.Session, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.Store.SessionByDigest(ctx, d)
}

func (s *store) UserByID(ctx context.Context, id string) (*identity.User, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.Store.UserByID(ctx, id)
}

func (s *store) OrgByID(ctx context.Context, id string) (*identity.Org, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.Store.OrgByID(ctx, id)
}

func (s *store) Membership(ctx context.Context, org, user string) (*identity.Membership, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.Store.Membership(ctx, org, user)
}

// events hands the service's revocation events to evictors in process,
// as a live subscription would.
type events struct {
	mu       sync.Mutex
	evictors []interface{ Evict(identity.Event) }
	seen     []identity.Event
}

func (e *events) Publish(_ context.Context, ev identity.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = append(e.seen, ev)
	for _, v := range e.evictors {
		v.Evict(ev)
	}
	return nil
}

type fixture struct {
	svc    *identity.Service
	store  *store
	clock  *testclock.Clock
	events *events
	feed   *redisfeed.Feed // nil without Redis
	rdb    *redis.Client
	prefix string
}

// newFixture is an identity service on SQLite, with Redis as its
// write-through when MCPAUTHZ_TEST_REDIS_URL is set and redis is asked for.
func newFixture(t testing.TB, withRedis bool) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "id.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	audit, err := identity.NewAuditor(bytes.Repeat([]byte{1}, identity.MinAuditKeyBytes))
	if err != nil {
		t.Fatal(err)
	}
	cfg := identity.DefaultConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	f := &fixture{store: &store{Store: st}, clock: testclock.New(time.Now().UTC().Truncate(time.Second)), events: &events{}}
	opts := []identity.Option{identity.WithClock(f.clock.Now), identity.WithEvents(f.events)}
	if withRedis {
		f.rdb, f.prefix = testredis.Shared(t)
		f.feed, err = redisfeed.New(f.rdb, redisfeed.WithPrefix(f.prefix), redisfeed.WithClock(f.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, identity.WithCache(f.feed))
	}
	f.svc, err = identity.NewService(st, audit, cfg, rand.Reader, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) signUp(t testing.TB, email string) *identity.User {
	t.Helper()
	u, err := f.svc.SignUp(context.Background(), identity.SignUp{Email: email, Password: goodPassword, Consents: []identity.Consent{
		{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true},
	}}, meta)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) login(t testing.TB, email string) *identity.Login {
	t.Helper()
	l, err := f.svc.Login(context.Background(), email, goodPassword, meta)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// request is a request carrying headers, from a client address.
func request(ip string, headers ...string) *extauthz.Request {
	h := map[string]string{}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return &extauthz.Request{Method: "POST", Path: "/mcp", Headers: h, ClientIP: ip}
}

// kind names the class of a verification's outcome.
func kind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, extauthz.ErrInvalidCredential):
		return "invalid"
	case errors.Is(err, credentials.ErrNotMine):
		return "not mine"
	}
	return "backend: " + err.Error()
}
