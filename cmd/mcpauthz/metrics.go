package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/identity"
)

// sidecarMetrics are the decision path's metrics: what was decided, by
// which credential, how long it took, and the Redis calls it made.
type sidecarMetrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	policy    prometheus.Histogram
	redisCmds *prometheus.CounterVec
	redisTime *prometheus.HistogramVec
	// The credential verifiers' reads of the identity store.
	storeQueries *prometheus.CounterVec
	storeTime    *prometheus.HistogramVec
}

// latencyBuckets cover a decision from 25 µs to 1 s.
var latencyBuckets = prometheus.ExponentialBucketsRange(25e-6, 1, 16)

func newSidecarMetrics() *sidecarMetrics {
	return &sidecarMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauthz_decisions_total",
			Help: "Decisions, by result (allow or deny), reason and credential method (\"unverified\" when a credential was refused or never checked).",
		}, []string{"result", "reason", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpauthz_decision_duration_seconds",
			Help:    "Time to decide a request, by result.",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		policy: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mcpauthz_policy_eval_duration_seconds",
			Help:    "Time spent evaluating the policy for a request.",
			Buckets: latencyBuckets,
		}),
		redisCmds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauthz_redis_commands_total",
			Help: "Redis commands, by client (credentials or limits) and result (ok, miss, error).",
		}, []string{"client", "result"}),
		redisTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpauthz_redis_command_duration_seconds",
			Help:    "Redis command latency, by client.",
			Buckets: latencyBuckets,
		}, []string{"client"}),
		storeQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauthz_store_queries_total",
			Help: "Reads of the identity store (Postgres or SQLite) by the credential verifiers, by what was read and result (ok, miss, error).",
		}, []string{"op", "result"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpauthz_store_query_duration_seconds",
			Help:    "Latency of the credential verifiers' reads of the identity store.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
	}
}

func (m *sidecarMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.decisions, m.duration, m.policy, m.redisCmds, m.redisTime, m.storeQueries, m.storeTime}
}

// ObserveDecision counts a decision.
func (m *sidecarMetrics) ObserveDecision(ev *extauthz.DecisionEvent) {
	result := "deny"
	if ev.Allowed {
		result = "allow"
	}
	method := ev.Method
	if method == "" {
		method = "unverified"
	}
	m.decisions.WithLabelValues(result, reasonLabel(ev.Reason), method).Inc()
	m.duration.WithLabelValues(result).Observe(ev.Duration.Seconds())
	if ev.PolicyTime > 0 {
		m.policy.Observe(ev.PolicyTime.Seconds())
	}
}

// reasonLabel keeps the reason label's values few: a policy's reason is
// whatever it says, so one that is not a short token counts as "other".
func reasonLabel(r string) string {
	if r == "" {
		return "none"
	}
	if len(r) > 48 {
		return "other"
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "other"
		}
	}
	return r
}

// identityMetrics count what the identity service did, by the actions
// of the audit events its committed changes wrote: logins
// (user.login), failures (user.login_failed), refusals of locked or banned
// accounts (user.login_refused), key operations (api_key.create, .rotate,
// .revoke), ...
type identityMetrics struct {
	audited *prometheus.CounterVec
}

func newIdentityMetrics() *identityMetrics {
	return &identityMetrics{audited: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpauthz_identity_events_total",
		Help: "Changes the identity service committed, by audit action (user.login, user.login_failed, user.login_refused, api_key.create, ...).",
	}, []string{"action"})}
}

func (m *identityMetrics) observe(action string) { m.audited.WithLabelValues(action).Inc() }

func (m *identityMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.audited}
}

// redisHook times a Redis client's commands for the metrics.
type redisHook struct {
	m      *sidecarMetrics
	client string
}

func (m *sidecarMetrics) redisHook(client string) redis.Hook { return redisHook{m, client} }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(time.Since(start), 1, err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(time.Since(start), len(cmds), err)
		return err
	}
}

func (h redisHook) observe(d time.Duration, n int, err error) {
	result := "ok"
	switch {
	case errors.Is(err, redis.Nil):
		result = "miss"
	case err != nil:
		result = "error"
	}
	h.m.redisCmds.WithLabelValues(h.client, result).Add(float64(n))
	h.m.redisTime.WithLabelValues(h.client).Observe(d.Seconds())
}

// adminHandler serves the identity service's /healthz, /readyz (200 while
// the store answers) and /metrics.
func (s *identityServer) adminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(s.metrics.collectors()...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !storeAnswers(r.Context(), s.store, s.log) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"ready":false,"store":"unreachable"}` + "\n"))
			return
		}
		w.Write([]byte(`{"ready":true,"store":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	return mux
}

// credentialStore is what the credential verifiers read from the identity
// store.
type credentialStore interface {
	credentials.KeyStore
	credentials.SessionStore
}

// timedStore times the verifiers' reads of the identity store.
type timedStore struct {
	next    credentialStore
	queries *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func (m *sidecarMetrics) timedStore(next credentialStore) *timedStore {
	return &timedStore{next: next, queries: m.storeQueries, latency: m.storeTime}
}

func timed[T any](s *timedStore, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	result := "ok"
	switch {
	case errors.Is(err, identity.ErrNotFound):
		result = "miss"
	case err != nil:
		result = "error"
	}
	s.queries.WithLabelValues(op, result).Inc()
	s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	return v, err
}

func (s *timedStore) APIKeyByDigest(ctx context.Context, d []byte) (*identity.APIKey, error) {
	return timed(s, "api_key", func() (*identity.APIKey, error) { return s.next.APIKeyByDigest(ctx, d) })
}

func (s *timedStore) SessionByDigest(ctx context.Context, d []byte) (*identity.Session, error) {
	return timed(s, "session", func() (*identity.Session, error) { return s.next.SessionByDigest(ctx, d) })
}

func (s *timedStore) UserByID(ctx context.Context, id string) (*identity.User, error) {
	return timed(s, "user", func() (*identity.User, error) { return s.next.UserByID(ctx, id) })
}

func (s *timedStore) OrgByID(ctx context.Context, id string) (*identity.Org, error) {
	return timed(s, "org", func() (*identity.Org, error) { return s.next.OrgByID(ctx, id) })
}

func (s *timedStore) Membership(ctx context.Context, org, user string) (*identity.Membership, error) {
	return timed(s, "membership", func() (*identity.Membership, error) { return s.next.Membership(ctx, org, user) })
}

// goCollector is the Go runtime's metrics, with the live heap and the heap
// goal (go_gc_heap_live_bytes, go_gc_heap_goal_bytes): RSS follows the
// goal, which is (1 + GOGC/100) times the live heap.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC))
}
