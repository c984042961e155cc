package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcpauthz/mcpauthz/bench/loadfile"
	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// target is a server measured: a baseline (no method, no limiter) or
// mcpauthz with the default bundle's policy, a credential method and a
// limiter.
type target struct {
	name, method, limiter, note string
}

// The credential methods and limiters of the mcpauthz targets.
var (
	methods     = []string{"api_key", "jwt", "session-cookie", "session-redis"}
	methodNotes = map[string]string{
		"api_key": "API keys of the 16 principals (x-api-key or Bearer mcpk_), each read once from the store, then from the sidecar's memory",
		"jwt": "the identity service's ES256 JWTs for the principals' sessions, keys from its JWKS URL; each token's signature checked once, " +
			"then the verified-token cache answers",
		"session-cookie": "64 sessions, each request with its session cookie and the signed cache cookie (__Host-mcpauthz_sc) " +
			"the sidecar set on an earlier allow: the session is not looked up",
		// By design a session read is trusted from memory for live_max_age
		// (5 minutes while revocation events arrive), so one sidecar
		// sent the same sessions again answers every request from memory
		// and never reads Redis. Redis is read for a session the sidecar
		// has not seen within that age: a new session, one another
		// replica served, every session after a purge. To measure that
		// read, the cache holds 16 entries per kind while 64 sessions are
		// sent in turn: the session a request carries was last sent 64
		// requests before and has been evicted since, so the request
		// misses memory and reads Redis (see minOnPath for the few that do
		// not). The 16 users, 16 memberships and 4 organizations fit and
		// stay in memory: Redis holds sessions only, and a sidecar asks
		// the store for the rest. A flushed Redis is filled again by the
		// sidecar, which writes back each session it reads from the
		// store, as the identity service writes them at login.
		"session-redis": "64 sessions read from the identity service's Redis write-through on every request: credentials.cache_size is 16, " +
			"fewer than the sessions sent in turn, so the session memory (LRU) misses; users, memberships and organizations stay in memory",
	}
	limiters   = []string{"mem", "redis"}
	limitNotes = map[string]string{
		"mem":   "limits in process (memquota)",
		"redis": "limits in Redis (limits.redis)",
	}
)

// minOnPath is the share of decisions that must take the credential path
// a target names; less means the measurement was of something else
// (errOffPath). session-redis gets less: a request that falls behind the
// 16 sent after it (its ghz worker or its server goroutine descheduled)
// finds its session still in memory.
var minOnPath = map[string]float64{"api_key": 0.99, "jwt": 0.99, "session-cookie": 0.99, "session-redis": 0.90}

// minInRedis is the share of decisions of a target counting limits in
// Redis whose limits must be taken there, not in the in-process fallback
// (Redis answering later than limits.timeout).
const minInRedis = 0.99

func allTargets() []target {
	ts := []target{
		{name: "noop", note: "empty OK to every check"},
		{name: "noop-answer", note: "api_key/mem's answer to the first request, to every check"},
	}
	for _, m := range methods {
		for _, l := range limiters {
			ts = append(ts, target{name: m + "/" + l, method: m, limiter: l, note: methodNotes[m] + "; " + limitNotes[l]})
		}
	}
	return ts
}

// selectTargets picks targets by name; a method alone names both of its
// limiters. "all" is every target, "none" none.
func selectTargets(list string) ([]target, error) {
	all := allTargets()
	if list == "all" {
		return all, nil
	}
	var out []target
	for _, sel := range strings.Split(list, ",") {
		sel = strings.TrimSpace(sel)
		if sel == "" || sel == "none" {
			continue
		}
		found := false
		for _, t := range all {
			if t.name == sel || t.method == sel {
				found = true
				if !slices.Contains(out, t) {
					out = append(out, t)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("-targets: unknown target %q", sel)
		}
	}
	// Run in the canonical order, whatever the order asked.
	slices.SortFunc(out, func(a, b target) int {
		return slices.Index(all, a) - slices.Index(all, b)
	})
	return out, nil
}

// result is one target's measurement in one round, with what is printed
// but not kept in the file.
type result struct {
	loadfile.Round

	redisCPU time.Duration // redis-server's CPU per request
	path     string        // where credentials and limits were read, measured
}

// measure starts the target, checks that it allows every request of its
// mix, warms it up, then drives it with ghz, reads its CPU time and, for
// mcpauthz, checks from its metrics that every decision was an allow on
// the path the target names.
func (b *bench) measure(t target) (result, error) {
	if err := b.redis.flush(); err != nil {
		return result{}, err
	}
	srv, err := b.startTarget(t)
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	mix, err := b.mix(t, srv.addr)
	if err != nil {
		return result{}, err
	}
	dataFile := filepath.Join(b.tmp, "requests.json")
	if err := writeMix(dataFile, mix); err != nil {
		return result{}, err
	}
	l, err := b.drive(srv, dataFile, b.o.duration, t.method != "")
	if err != nil {
		return result{}, err
	}
	_, hwm, err := memory(srv.pid())
	if err != nil {
		return result{}, err
	}
	n := time.Duration(l.rep.Count)
	ps := l.rep.percentiles(50, 99, 99.9)
	r := result{Round: loadfile.Round{
		Requests: l.rep.Count, RPS: l.rep.RPS, P50: ps[0], P99: ps[1], P999: ps[2],
		CPUPerReq: l.cpu / n, ClientCPU: l.rep.cpu / n,
		PeakRSSKiB: hwm, Errors: l.rep.errors(),
		// A no-op server allows every check without deciding anything.
		AllowedFraction: 1,
	}, redisCPU: l.redisCPU / n}
	if t.method == "" {
		return r, nil
	}
	r.AllowedFraction, r.path, err = verify(t, l.before, l.after)
	return r, err
}

// load is one measured run of ghz against a server.
type load struct {
	rep           ghzReport
	cpu, redisCPU time.Duration // the server's and redis-server's CPU time
	before, after counters      // the sidecar's counters; nil without metrics
}

// settle is how long decisions cut off at the end of a warm-up may take
// to be counted: more than a decision's 100 ms budget.
const settle = 250 * time.Millisecond

// drive warms the server up for -warmup, then sends as many requests as
// the warm-up's rate sends in d, and reads the server's and Redis's CPU
// time and, with metrics, the sidecar's counters around them.
func (b *bench) drive(srv *server, dataFile string, d time.Duration, metrics bool) (load, error) {
	warm, err := ghz(b.o, srv.addr, dataFile, b.o.warmup, 0)
	if err != nil {
		return load{}, fmt.Errorf("warm-up: %w", err)
	}
	time.Sleep(settle)
	var l load
	if metrics {
		if l.before, err = srv.scrape(); err != nil {
			return load{}, err
		}
	}
	cpu0, err1 := cpuTime(srv.pid())
	redis0, err2 := cpuTime(b.redis.pid())
	l.rep, err = ghz(b.o, srv.addr, dataFile, 0, uint64(max(warm.RPS*d.Seconds(), 1)))
	if err != nil {
		return load{}, err
	}
	cpu1, err3 := cpuTime(srv.pid())
	redis1, err4 := cpuTime(b.redis.pid())
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return load{}, err
	}
	l.cpu, l.redisCPU = cpu1-cpu0, redis1-redis0
	if metrics {
		if l.after, err = srv.scrape(); err != nil {
			return load{}, err
		}
	}
	return l, nil
}

// startTarget starts a baseline, or a sidecar configured for the target's
// method and limiter, reading the run's identity store.
func (b *bench) startTarget(t target) (*server, error) {
	switch t.name {
	case "noop", "noop-answer":
		addr, err := freeport.Addr()
		if err != nil {
			return nil, err
		}
		args := []string{"-addr", addr}
		if t.name == "noop-answer" {
			args = append(args, "-response", b.answer)
		}
		return startServer(b.o, addr, "", b.noopBin, args...)
	}
	c := sidecarConfig{store: b.store, limitsRedis: t.limiter == "redis"}
	switch t.method {
	case "session-cookie":
		c.sessionCache = b.sessionCacheKey
	case "session-redis":
		c.cacheSize = principals
	}
	config := filepath.Join(b.tmp, strings.ReplaceAll(t.name, "/", "-")+".yaml")
	if err := b.writeSidecarConfig(config, c); err != nil {
		return nil, err
	}
	return startSidecar(b.o, b.mcpBin, config)
}

// answerWait bounds how long a server may take to allow a mix.
const answerWait = 20 * time.Second

// mix returns the target's requests, checked to be allowed by the
// server at addr. Request i acts as principal i mod 16. The baselines
// get api_key's requests.
func (b *bench) mix(t target, addr string) ([]*authv3.CheckRequest, error) {
	ps := b.ids.principals
	var cred func(i int) map[string]string
	switch t.method {
	case "", "api_key":
		cred = func(i int) map[string]string { return apiKeyHeaders(i%len(ps), ps[i%len(ps)].apiKey) }
	case "jwt":
		// Fresh tokens for each target: they live 30 minutes.
		tokens := make([]string, len(ps))
		for p := range ps {
			var err error
			if tokens[p], err = b.identity.token(ps[p].sessions[0]); err != nil {
				return nil, err
			}
		}
		cred = func(i int) map[string]string {
			return map[string]string{"authorization": "Bearer " + tokens[i%len(ps)]}
		}
	case "session-cookie", "session-redis":
		cred = func(i int) map[string]string { return sessionHeaders(b.ids.session(i), "") }
	}
	mix, err := requestMix(b.template, b.o.variants, cred)
	if err != nil {
		return nil, err
	}
	resps, err := allowAll(addr, mix, answerWait)
	if err != nil || t.method != "session-cookie" {
		return mix, err
	}
	// The cache cookies of the allows just made go with the next
	// requests, as a browser sends them back.
	for i, resp := range resps {
		if cacheCookie(resp) == "" {
			return nil, fmt.Errorf("the allow of request %d set no session cache cookie", i)
		}
	}
	mix, err = requestMix(b.template, b.o.variants, func(i int) map[string]string {
		return sessionHeaders(b.ids.session(i), cacheCookie(resps[i]))
	})
	if err != nil {
		return nil, err
	}
	if resps, err = allowAll(addr, mix, answerWait); err != nil {
		return nil, err
	}
	for i, resp := range resps {
		if cacheCookie(resp) != "" {
			return nil, fmt.Errorf("request %d: the session cache cookie was not taken (a new one was set)", i)
		}
	}
	return mix, nil
}

// maxLate is the share of decisions that may be denials for running past
// the decision's 100 ms budget (deadline_exceeded), as a descheduled
// goroutine on a busy machine does now and then. They took the whole
// budget, so they cannot flatter a measurement; they are counted in the
// allowed fraction and the note. Any other denial fails the run.
const maxLate = 0.001

// verify checks the sidecar's counters over the measurement: every
// decision an allow (but for maxLate), at least minOnPath of them on the
// credential path the target names, and limits taken in Redis when it
// names Redis. It returns the share of allows and says where credentials
// and limits were read.
func verify(t target, before, after counters) (allowed float64, path string, err error) {
	delta := func(name string, match ...string) float64 {
		return after.sum(name, match...) - before.sum(name, match...)
	}
	allows := delta("mcpauthz_decisions_total", "result=allow")
	total := allows + delta("mcpauthz_decisions_total", "result=deny")
	if total == 0 {
		return 0, "", errors.New("the sidecar counted no decision")
	}
	allowed = allows / total
	late := delta("mcpauthz_decisions_total", "result=deny", "reason=deadline_exceeded")
	if allows+late < total || late/total > maxLate {
		return allowed, "", fmt.Errorf("%.0f of %.0f decisions were denials: %s", total-allows, total, denials(before, after))
	}

	var on float64
	var what string
	switch t.method {
	case "api_key":
		on, what = delta("mcpauthz_credential_lookups_total", "kind=api_key", "source=memory"), "API key from memory"
	case "jwt":
		on, what = delta("mcpauthz_jwt_verifications_total", "how=cached"), "JWT from the verified-token cache"
	case "session-cookie":
		on, what = total-delta("mcpauthz_credential_lookups_total", "kind=session"), "session from its signed cache cookie"
	case "session-redis":
		on, what = delta("mcpauthz_credential_lookups_total", "kind=session", "source=redis"), "session from Redis"
	}
	fallbacks := delta("mcpauthz_limiter_fallback_decisions_total")
	path = fmt.Sprintf("%s on %.1f%% of decisions; per decision %.2f identity store reads, %.2f credential and %.2f limiter Redis commands",
		what, 100*on/total, delta("mcpauthz_store_queries_total")/total,
		delta("mcpauthz_redis_commands_total", "client=credentials")/total, delta("mcpauthz_redis_commands_total", "client=limits")/total)
	if fallbacks > 0 {
		path += fmt.Sprintf("; limits of %.0f decisions counted in process while Redis did not answer within limits.timeout", fallbacks)
	}
	if late > 0 {
		path += fmt.Sprintf("; %.0f decisions denied past the 100 ms budget (deadline_exceeded)", late)
	}
	switch {
	case on/total < minOnPath[t.method]:
		return allowed, path, fmt.Errorf("%w: %s", errOffPath, path)
	case t.limiter == "redis" && fallbacks/total > 1-minInRedis:
		return allowed, path, fmt.Errorf("%w (limits not taken in Redis): %s", errOffPath, path)
	}
	return allowed, path, nil
}

// errOffPath is a measurement that took another path than the one its
// target names.
var errOffPath = errors.New("the measured path is not the one named")

// denials lists the denials counted between the scrapes by reason and
// credential method.
func denials(before, after counters) string {
	var out []string
	for _, s := range after["mcpauthz_decisions_total"] {
		if s.labels["result"] != "deny" {
			continue
		}
		n := s.value - before.sum("mcpauthz_decisions_total", "result=deny", "reason="+s.labels["reason"], "method="+s.labels["method"])
		if n > 0 {
			out = append(out, fmt.Sprintf("%.0f %s (%s)", n, s.labels["reason"], s.labels["method"]))
		}
	}
	return strings.Join(out, ", ")
}
