package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpauthz/mcpauthz/bench/loadfile"
)

// keysResult is a row of the keys phase, with how it was reached.
type keysResult struct {
	loadfile.KeysRow

	warm    time.Duration // verifying every key once through the sidecar
	retried int64         // Checks of the warm-up sent again after a 503
}

const (
	// defaultCacheSize is credentials.cache_size's default; a larger
	// number of keys gets a cache as large, so every key stays cached.
	defaultCacheSize = 100_000
	// keySample is how many of the keys the latency run sends.
	keySample = 1000
	// warmWorkers are the concurrent Checks warming the keys.
	warmWorkers = 8
)

// measureKeys runs the keys phase for n keys in a store of its own.
func (b *bench) measureKeys(ctx context.Context, n int) (keysResult, error) {
	store := filepath.Join(b.tmp, fmt.Sprintf("keys-%d.db", n))
	ids, err := seedIdentities(ctx, store, b.auditKey, false)
	if err != nil {
		return keysResult{}, err
	}
	start := time.Now()
	secrets, err := insertKeys(ctx, store, ids, n)
	if err != nil {
		return keysResult{}, err
	}
	r := keysResult{KeysRow: loadfile.KeysRow{Keys: n, Setup: time.Since(start)}}

	if err := b.redis.flush(); err != nil {
		return r, err
	}
	config := filepath.Join(b.tmp, fmt.Sprintf("keys-%d.yaml", n))
	if err := b.writeSidecarConfig(config, sidecarConfig{store: store, cacheSize: max(n, defaultCacheSize)}); err != nil {
		return r, err
	}
	srv, err := startSidecar(b.o, b.mcpBin, config)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	variant, err := variants(b.template)
	if err != nil {
		return r, err
	}
	request := func(i int) *authv3.CheckRequest { return variant(i, apiKeyHeaders(i, secrets[i])) }

	before, err := srv.scrape()
	if err != nil {
		return r, err
	}
	start = time.Now()
	if r.retried, err = warmKeys(srv.addr, n, request); err != nil {
		after, _ := srv.scrape()
		return r, fmt.Errorf("verifying every key once: %w (denials: %s)", err, denials(before, after))
	}
	r.warm = time.Since(start)

	// The latency of keys answered from memory: a sample spread over all
	// of them, checked like a target's measurement.
	step := max(n/keySample, 1)
	var mix []*authv3.CheckRequest
	for i := 0; i < n; i += step {
		mix = append(mix, request(i))
	}
	dataFile := filepath.Join(b.tmp, "keys.json")
	if err := writeMix(dataFile, mix); err != nil {
		return r, err
	}
	l, err := b.drive(srv, dataFile, b.o.keysDuration, true)
	if err != nil {
		return r, err
	}
	if _, _, err := verify(target{method: "api_key", limiter: "mem"}, l.before, l.after); err != nil {
		return r, err
	}
	ps := l.rep.percentiles(50, 99)
	r.P50, r.P99 = ps[0], ps[1]
	r.LiveKiB = int64(l.after.sum("go_gc_heap_live_bytes")) >> 10
	r.RSSKiB, r.HWMKiB, err = memory(srv.pid())
	return r, err
}

// warmKeys sends request(i) for every i below n once, concurrently, and
// fails unless every one is allowed. A 503 is sent again, up to
// warmTries in all: a key's first use reads the store and Redis within
// the decision's 100 ms budget, which a busy machine can miss; the key is
// then not cached yet. It returns how many were sent again.
func warmKeys(addr string, n int, request func(i int) *authv3.CheckRequest) (retried int64, _ error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	var next, again atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range warmWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				err := warmKey(client, request(i), &again)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("key %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return again.Load(), errors.Join(errs...)
}

const warmTries = 3

func warmKey(client authv3.AuthorizationClient, cr *authv3.CheckRequest, again *atomic.Int64) error {
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.Check(ctx, cr)
		cancel()
		switch {
		case err != nil:
			return err
		case resp.GetStatus().GetCode() == int32(codes.OK):
			return nil
		case resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_ServiceUnavailable || try == warmTries:
			return fmt.Errorf("denied: %s %s", resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
		}
		again.Add(1)
	}
}
