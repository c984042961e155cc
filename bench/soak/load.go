package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// generator sends the mix to the sidecar and records every answer.
type generator struct {
	clients []authv3.AuthorizationClient
	conns   []*grpc.ClientConn
	mix     *mix
	rec     *recorder
	next    atomic.Uint64
	skipped atomic.Int64 // tickets the workers could not take in time
}

func newGenerator(addr string, connections int, m *mix, rec *recorder) (*generator, error) {
	g := &generator{mix: m, rec: rec}
	for range connections {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, conn)
		g.clients = append(g.clients, authv3.NewAuthorizationClient(conn))
	}
	return g, nil
}

func (g *generator) close() {
	for _, c := range g.conns {
		c.Close()
	}
}

// one sends one request of the mix.
func (g *generator) one(ctx context.Context, r *rand.Rand) {
	kind := pick(r, mixWeights, func(s share) int { return s.weight }).kind
	creds := g.mix.byKind[kind]
	cr := creds[r.IntN(len(creds))]
	op := pick(r, opsFor(kind), func(o operation) int { return o.weight })
	g.send(ctx, cr, op)
}

// send makes one Check and records its outcome.
func (g *generator) send(ctx context.Context, cr *credential, op operation) outcome {
	headers, kid := cr.header()
	req := op.request(headers)
	client := g.clients[g.next.Add(1)%uint64(len(g.clients))]
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	start := time.Now()
	resp, err := client.Check(cctx, req)
	o := outcome{start: start, latency: time.Since(start), cred: cr, op: op, kid: kid}
	cancel()
	switch {
	case err != nil:
		o.code, o.err = status.Code(err), err
		// The capacity probe or the soak is ending: not the sidecar's
		// answer. gRPC may see the deadline pass before the context's
		// timer has cancelled it.
		if d, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(d) {
			return o
		}
	case resp.GetStatus().GetCode() == int32(codes.OK):
		o.allowed, o.status = true, 200
	default:
		o.status = int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	g.rec.record(o)
	return o
}

// closedLoop runs workers that send back to back for d, and returns the
// answers per second.
func (g *generator) closedLoop(ctx context.Context, workers int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				g.one(ctx, r)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// openLoop sends rate requests a second, paced whatever the answers'
// latency, until stop is closed or ctx is done.
func (g *generator) openLoop(ctx context.Context, rate float64, workers int, stop <-chan struct{}) {
	tickets := make(chan struct{}, workers)
	var wg sync.WaitGroup
	seed := uint64(time.Now().UnixNano())
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), seed))
			for range tickets {
				g.one(ctx, r)
			}
		})
	}
	defer wg.Wait()
	defer close(tickets)
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		now, ok := next(ctx, stop, t)
		if !ok {
			return
		}
		for due := int(rate*now.Sub(start).Seconds()) - sent; due > 0; due-- {
			select {
			case tickets <- struct{}{}:
			default:
				g.skipped.Add(1)
			}
			sent++
		}
	}
}

// preflight checks the credentials before any load: every valid one is
// allowed a read-only tool, every invalid one is refused with 401.
func (g *generator) preflight(ctx context.Context) error {
	op := probeOps[0]
	for kind, creds := range g.mix.byKind {
		for _, cr := range creds {
			o := g.send(ctx, cr, op)
			want := 200
			if kind == kindInvalid || kind == kindAnonymous {
				want = 401
			}
			if o.code != codes.OK || o.status != want {
				return fmt.Errorf("preflight: %s got status %d (gRPC %s), want %d", cr.label, o.status, o.code, want)
			}
		}
	}
	return nil
}
