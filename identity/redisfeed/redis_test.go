package redisfeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/internal/testredis"
)

// testRedis returns a client on MCPAUTHZ_TEST_REDIS_URL and a key prefix of
// the test's own (testredis.Shared).
func testRedis(t *testing.T) (*redis.Client, string) { return testredis.Shared(t) }

// subscribe subscribes to the feed's channel and returns the events as
// they arrive.
func subscribe(t *testing.T, rdb *redis.Client, channel string) <-chan identity.Event {
	t.Helper()
	ctx := context.Background()
	ps := rdb.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	out := make(chan identity.Event, 64)
	go func() {
		for msg := range ps.Channel() {
			ev, err := redisfeed.DecodeEvent([]byte(msg.Payload))
			if err != nil {
				// Not t.Errorf: this goroutine may outlive the test.
				ev = identity.Event{Kind: identity.EventKind("undecodable: " + msg.Payload)}
			}
			out <- ev
		}
	}()
	return out
}

// next returns the next event, or fails after a while.
func next(t *testing.T, evs <-chan identity.Event) identity.Event {
	t.Helper()
	select {
	case ev := <-evs:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return identity.Event{}
	}
}

// noEvent checks that no event is waiting.
func noEvent(t *testing.T, evs <-chan identity.Event) {
	t.Helper()
	select {
	case ev := <-evs:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

// newFeed returns a Feed on rdb.
func newFeed(t *testing.T, rdb redis.UniversalClient, opts ...redisfeed.Option) *redisfeed.Feed {
	t.Helper()
	f, err := redisfeed.New(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
