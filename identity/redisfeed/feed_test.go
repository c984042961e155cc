package redisfeed_test

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
)

// at is a clock stopped at t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestSessionRoundTrip(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(at(t0)), redisfeed.WithMaxTTL(48*time.Hour))
	s := testSession()
	if err := f.PutSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := f.Session(ctx, s.TokenDigest)
	if err != nil {
		t.Fatal(err)
	}
	want := testSession()
	want.LastSeenAt, want.IP, want.UserAgent = time.Time{}, "", ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n got %+v\nwant %+v", got, want)
	}
	// Kept until its absolute expiry, 24 hours on.
	ttl := rdb.PTTL(ctx, redisfeed.SessionKey(prefix, s.TokenDigest)).Val()
	if ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("TTL %v, want 24h", ttl)
	}
	if _, err := f.Session(ctx, digestOf("another")); !errors.Is(err, redisfeed.ErrMiss) {
		t.Fatalf("an uncached session: %v", err)
	}
	if _, err := f.APIKey(ctx, s.TokenDigest); !errors.Is(err, redisfeed.ErrMiss) {
		t.Fatalf("a session's digest read as a key: %v", err)
	}
}

func TestAPIKeyTTL(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(at(t0)), redisfeed.WithMaxTTL(72*time.Hour))
	tests := []struct {
		name string
		edit func(*identity.APIKey)
		want time.Duration // 0: not cached
	}{
		{"ok/until it expires", func(*identity.APIKey) {}, 48 * time.Hour},
		{"ok/never expires: the maximum", func(k *identity.APIKey) { k.ExpiresAt = time.Time{} }, 72 * time.Hour},
		{"ok/expires after the maximum", func(k *identity.APIKey) { k.ExpiresAt = t0.Add(1000 * time.Hour) }, 72 * time.Hour},
		{"ok/rotated: until its grace ends", func(k *identity.APIKey) { k.ReplacedBy, k.GraceUntil = "k2", t0.Add(time.Hour) }, time.Hour},
		{"ok/rotated, expiring first", func(k *identity.APIKey) {
			k.ReplacedBy, k.GraceUntil, k.ExpiresAt = "k2", t0.Add(time.Hour), t0.Add(time.Minute)
		}, time.Minute},
		{"fail/expired", func(k *identity.APIKey) { k.ExpiresAt = t0 }, 0},
		{"fail/revoked", func(k *identity.APIKey) { k.RevokedAt = t0.Add(-time.Second) }, 0},
		{"fail/grace over", func(k *identity.APIKey) { k.ReplacedBy, k.GraceUntil = "k2", t0.Add(-time.Second) }, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testKey()
			k.TokenDigest = digestOf(tt.name)
			k.ID = string(rune('a' + i))
			tt.edit(k)
			if err := f.PutAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			got, err := f.APIKey(ctx, k.TokenDigest)
			if tt.want == 0 {
				if !errors.Is(err, redisfeed.ErrRevoked) {
					t.Fatalf("an unusable key is cached: %+v %v", got, err)
				}
				return
			}
			if err != nil || got.ID != k.ID || !got.GraceUntil.Equal(k.GraceUntil) {
				t.Fatalf("read back %+v %v", got, err)
			}
			ttl := rdb.PTTL(ctx, redisfeed.APIKeyKey(prefix, k.TokenDigest)).Val()
			if ttl <= tt.want-time.Minute/2 || ttl > tt.want {
				t.Fatalf("TTL %v, want %v", ttl, tt.want)
			}
		})
	}
}

func TestDrop(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(at(t0)), redisfeed.WithMaxTTL(time.Hour))
	s1, s2 := testSession(), testSession()
	s2.ID, s2.TokenDigest = "s2", digestOf("tok2")
	k := testKey()
	for _, err := range []error{f.PutSession(ctx, s1), f.PutSession(ctx, s2), f.PutAPIKey(ctx, k)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.DropSessions(ctx, [][]byte{s1.TokenDigest, digestOf("never cached")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Session(ctx, s1.TokenDigest); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("dropped session: %v", err)
	}
	if _, err := f.Session(ctx, digestOf("never cached")); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("a session dropped before it was cached: %v", err)
	}
	if ttl := rdb.PTTL(ctx, redisfeed.SessionKey(prefix, s1.TokenDigest)).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("tombstone TTL %v, want the maximum", ttl)
	}
	if _, err := f.Session(ctx, s2.TokenDigest); err != nil {
		t.Fatalf("another session went too: %v", err)
	}
	if _, err := f.APIKey(ctx, k.TokenDigest); err != nil {
		t.Fatalf("a key went with the session: %v", err)
	}
	// A put that lost the race with the revocation does not bring it back.
	if err := f.PutSession(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Session(ctx, s1.TokenDigest); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("a late put revived the session: %v", err)
	}
	if err := f.DropAPIKeys(ctx, [][]byte{k.TokenDigest}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.APIKey(ctx, k.TokenDigest); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("dropped key: %v", err)
	}
	if err := f.DropAPIKeys(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBadDigests(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(at(t0)))
	s := testSession()
	s.TokenDigest = nil // as listings hand them out
	k := testKey()
	k.TokenDigest = []byte("short")
	good := testSession()
	tests := []struct {
		name string
		err  error
	}{
		{"fail/put a session without digest", f.PutSession(ctx, s)},
		{"fail/put a key with a short digest", f.PutAPIKey(ctx, k)},
		{"fail/read with no digest", func() error { _, err := f.Session(ctx, nil); return err }()},
		{"fail/drop a bad digest among good ones", f.DropSessions(ctx, [][]byte{nil, good.TokenDigest})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, redisfeed.ErrBadDigest) {
				t.Fatalf("got %v", tt.err)
			}
		})
	}
	// The good digest was dropped all the same.
	if _, err := f.Session(ctx, good.TokenDigest); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("a good digest beside a bad one: %v", err)
	}
	if n := rdb.Exists(ctx, prefix+":session:", prefix+":apikey:"+"73686f7274").Val(); n != 0 {
		t.Fatalf("%d records under malformed keys", n)
	}
}

func TestPublish(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix))
	if f.Channel() != prefix+":identity:events" {
		t.Fatalf("channel %q", f.Channel())
	}
	evs := subscribe(t, rdb, f.Channel())
	want := []identity.Event{
		{Kind: identity.EventSessionsRevoked, UserID: "u1", SessionIDs: []string{"s1", "s2"}},
		{Kind: identity.EventOrgDeleted, OrgID: "o1", KeyIDs: []string{"k1"}},
	}
	for _, ev := range want {
		if err := f.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range want {
		if got := next(t, evs); !reflect.DeepEqual(got, w) {
			t.Fatalf("got %+v, want %+v", got, w)
		}
	}
}

// TestTimeout checks that a Redis that accepts connections but never
// answers holds no call past the timeout.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // open, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	opt := &redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, DisableIdentity: true, Protocol: 2}
	deaf := redis.NewClient(opt)
	defer deaf.Close()
	if _, err := redisfeed.New(deaf); !errors.Is(err, redisfeed.ErrNoDeadlines) {
		t.Fatalf("a client that ignores deadlines: %v", err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	f := newFeed(t, rdb, redisfeed.WithTimeout(100*time.Millisecond), redisfeed.WithClock(at(t0)))
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"fail/put", func() error { return f.PutSession(ctx, testSession()) }},
		{"fail/drop", func() error { return f.DropAPIKeys(ctx, [][]byte{digestOf("k")}) }},
		{"fail/read", func() error { _, err := f.Session(ctx, digestOf("s")); return err }},
		{"fail/publish", func() error { return f.Publish(ctx, identity.Event{Kind: identity.EventUserBanned}) }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call()
			if err == nil || errors.Is(err, redisfeed.ErrMiss) {
				t.Fatalf("got %v, want an error", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// TestDefaultMaxTTL: by default a record outlives its last write by ten
// minutes at most, whatever its credential's validity: a lost drop leaves
// a stale record that long, no longer.
func TestDefaultMaxTTL(t *testing.T) {
	rdb, prefix := testRedis(t)
	ctx := context.Background()
	f := newFeed(t, rdb, redisfeed.WithPrefix(prefix), redisfeed.WithClock(at(t0)))
	s := testSession() // valid for 24 h
	if err := f.PutSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, redisfeed.SessionKey(prefix, s.TokenDigest)).Val(); ttl <= redisfeed.DefaultMaxTTL-time.Minute || ttl > redisfeed.DefaultMaxTTL {
		t.Fatalf("TTL %v, want %v", ttl, redisfeed.DefaultMaxTTL)
	}
}
