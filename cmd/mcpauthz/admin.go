package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz/credentials"
	"github.com/mcpauthz/mcpauthz/extauthz/policy"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
)

// The admin listener serves what operators and orchestrators read, and
// nothing that changes the sidecar:
//
//	/healthz  liveness: 200 while the process serves
//	/readyz   readiness: 200 with a policy active, else 503; a JSON body
//	          with the policy's revision and history, the shadow's counts,
//	          the revocation events and the decision log
//	/metrics  Prometheus metrics
func (s *sidecar) adminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		goCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		sidecarCollector{s},
	)
	if s.metrics != nil {
		reg.MustRegister(s.metrics.collectors()...)
	}
	if s.identity != nil {
		reg.MustRegister(s.identity.collectors()...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := s.readiness()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          promLogger{s},
		EnableOpenMetrics: true,
	}))
	return mux
}

type promLogger struct{ s *sidecar }

func (l promLogger) Println(v ...any) { l.s.log.Warn("metrics", "error", v) }

// readiness is the /readyz body.
type readiness struct {
	Ready       bool          `json:"ready"`
	Policy      bundleReport  `json:"policy"`
	Shadow      *shadowReport `json:"shadow,omitempty"`
	Revocations string        `json:"revocations"` // "live", "degraded" or "off"
	// Store is the identity store as the sidecar reads it: "ok",
	// "unreachable" (not ready: credentials not in memory cannot be
	// verified) or "none" (credentials need no store).
	Store       string       `json:"store"`
	Limits      limitsReport `json:"limits"`
	DecisionLog *logReport   `json:"decision_log,omitempty"`
}

// limitsReport says where limits are counted: "shared" (Redis),
// "fallback" (Redis unreachable: each limit by its on_backend_error mode)
// or "local" (in process, no Redis configured).
type limitsReport struct {
	State     string `json:"state"`
	Failures  uint64 `json:"redis_failures,omitempty"`
	Fallbacks uint64 `json:"fallback_decisions,omitempty"`
	Keys      int    `json:"local_keys"`
}

type bundleReport struct {
	Revision    string                `json:"revision,omitempty"`
	Source      string                `json:"source,omitempty"`
	ActivatedAt *time.Time            `json:"activated_at,omitempty"`
	Activations int                   `json:"activations"`
	Failures    int                   `json:"failures"`
	LastError   string                `json:"last_error,omitempty"`
	LastErrorAt *time.Time            `json:"last_error_at,omitempty"`
	Remote      *bundles.RemoteStatus `json:"remote,omitempty"`
}

type shadowReport struct {
	Bundle    bundleReport      `json:"bundle"`
	Decisions map[string]uint64 `json:"decisions"` // by change
	Dropped   uint64            `json:"dropped"`
	Unlogged  uint64            `json:"unlogged"`
}

type logReport struct {
	Written        uint64 `json:"written"`
	Dropped        uint64 `json:"dropped"`
	Lost           uint64 `json:"lost"`
	Uploaded       uint64 `json:"uploaded,omitempty"`
	UploadsDropped uint64 `json:"uploads_dropped,omitempty"`
}

func (s *sidecar) readiness() readiness {
	r := readiness{Policy: reportBundle(s.source), Revocations: s.revocationsState(), Limits: s.limitsReport()}
	r.Store = s.storeState()
	r.Ready = s.engine.Active() != nil && r.Store != "unreachable"
	if s.shadow != nil {
		st := s.shadow.Stats()
		sr := &shadowReport{Bundle: reportBundle(s.shadowSrc), Decisions: map[string]uint64{}, Dropped: st.Dropped, Unlogged: st.Unlogged}
		for c, n := range st.Counts {
			sr.Decisions[c.String()] = n
		}
		r.Shadow = sr
	}
	if s.decisions != nil {
		lr := &logReport{Written: s.decisions.Written(), Dropped: s.decisions.Dropped(), Lost: s.decisions.Lost()}
		if s.uploader != nil {
			lr.Uploaded, lr.UploadsDropped = s.uploader.Sent(), s.uploader.Dropped()
		}
		r.DecisionLog = lr
	}
	return r
}

// storeTimeout bounds the store check of a readiness probe.
const storeTimeout = time.Second

func (s *sidecar) storeState() string {
	if s.store == nil {
		return "none"
	}
	if !storeAnswers(context.Background(), s.store, s.log) {
		return "unreachable"
	}
	return "ok"
}

// storeAnswers pings the identity store for a readiness probe, bounded by
// storeTimeout.
func storeAnswers(ctx context.Context, st *sqlstore.Store, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := st.DB().PingContext(ctx); err != nil {
		log.Warn("readiness: the identity store is unreachable", "error", err)
		return false
	}
	return true
}

// healthz is liveness: 200 while the process serves.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (s *sidecar) limitsReport() limitsReport {
	if s.localLimiter == nil {
		return limitsReport{State: "off"}
	}
	st := s.localLimiter.Stats()
	r := limitsReport{State: "local", Keys: st.Limits + st.Quotas}
	if s.limiter != nil {
		fs := s.limiter.Stats()
		r.State, r.Failures, r.Fallbacks = "shared", fs.Failures, fs.Fallbacks
		if fs.Down {
			r.State = "fallback"
		}
	}
	return r
}

func (s *sidecar) revocationsState() string {
	switch {
	case !s.listensForRevocations:
		return "off"
	case s.revocationsLive.Load():
		return "live"
	}
	return "degraded"
}

func reportBundle(src *policySource) bundleReport {
	st := src.engine.Status()
	r := bundleReport{
		Revision: st.Revision, Source: st.Source,
		Activations: st.Activations, Failures: st.Failures, LastError: st.LastError,
	}
	if !st.ActivatedAt.IsZero() {
		r.ActivatedAt = &st.ActivatedAt
	}
	if !st.LastErrorAt.IsZero() {
		r.LastErrorAt = &st.LastErrorAt
	}
	if src.remote != nil {
		rs := src.remote.Status()
		r.Remote = &rs
	}
	return r
}

func collectLookups(ch chan<- prometheus.Metric, kind string, st credentials.LookupStats) {
	ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(st.Memory), kind, "memory")
	ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(st.Feed), kind, "redis")
	ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(st.Store), kind, "store")
	ch <- prometheus.MustNewConstMetric(backendErrorsDesc, prometheus.CounterValue, float64(st.FeedErrors), kind, "redis")
	ch <- prometheus.MustNewConstMetric(backendErrorsDesc, prometheus.CounterValue, float64(st.StoreErrors), kind, "store")
}

// sidecarCollector reads the sidecar's counters at scrape time.
type sidecarCollector struct{ s *sidecar }

var (
	bundleInfoDesc = prometheus.NewDesc("mcpauthz_policy_bundle_info",
		"The policy bundle in force: 1, labelled with its revision (role \"active\", or \"shadow\" for the candidate).",
		[]string{"role", "revision"}, nil)
	bundleActivationsDesc = prometheus.NewDesc("mcpauthz_policy_bundle_activations_total",
		"Policy bundles activated.", []string{"role"}, nil)
	bundleFailuresDesc = prometheus.NewDesc("mcpauthz_policy_bundle_activation_failures_total",
		"Policy bundles rejected: not read, not verified, not compiled, or failing their own tests.", []string{"role"}, nil)
	bundleActivatedDesc = prometheus.NewDesc("mcpauthz_policy_bundle_activated_timestamp_seconds",
		"When the policy bundle in force was activated.", []string{"role"}, nil)
	decisionCacheDesc = prometheus.NewDesc("mcpauthz_policy_decision_cache_lookups_total",
		"Lookups of remembered decisions, by result (hit: the decision was not evaluated; miss), over every bundle activated. Flat while the active policy's decisions are not cacheable.",
		[]string{"role", "result"}, nil)
	remoteFetchesDesc = prometheus.NewDesc("mcpauthz_policy_bundle_fetches_total",
		"Requests to the bundle server, by result (\"not_modified\" or \"other\").", []string{"role", "result"}, nil)
	remoteFailingDesc = prometheus.NewDesc("mcpauthz_policy_bundle_consecutive_fetch_failures",
		"Failed fetches from the bundle server since the last success.", []string{"role"}, nil)
	shadowDesc = prometheus.NewDesc("mcpauthz_policy_shadow_decisions_total",
		"Decisions the candidate bundle evaluated, by how its decision differs from the active one's.", []string{"change"}, nil)
	shadowDroppedDesc = prometheus.NewDesc("mcpauthz_policy_shadow_dropped_total",
		"Decisions not shadowed because the candidate's queue was full.", nil, nil)
	revocationsDesc = prometheus.NewDesc("mcpauthz_revocation_events_live",
		"1 while revocation events arrive, 0 while caches fall back to the short age.", nil, nil)
	logDroppedDesc = prometheus.NewDesc("mcpauthz_decision_log_dropped_total",
		"Decision log events dropped because the buffer was full.", nil, nil)
	logLostDesc = prometheus.NewDesc("mcpauthz_decision_log_lost_total",
		"Decision log events lost because writing them failed.", nil, nil)
	logWrittenDesc = prometheus.NewDesc("mcpauthz_decision_log_written_total",
		"Decision log events written.", nil, nil)
	uploadSentDesc = prometheus.NewDesc("mcpauthz_decision_log_uploaded_total",
		"Decision log events uploaded.", nil, nil)
	limiterFallbackDesc = prometheus.NewDesc("mcpauthz_limiter_fallback",
		"1 while Redis is unreachable and limits go by their on_backend_error mode, else 0.", nil, nil)
	limiterFailuresDesc = prometheus.NewDesc("mcpauthz_limiter_redis_failures_total",
		"Calls to Redis for limits that failed or timed out.", nil, nil)
	limiterFallbacksDesc = prometheus.NewDesc("mcpauthz_limiter_fallback_decisions_total",
		"Requests whose limits were decided without Redis.", nil, nil)
	limiterKeysDesc = prometheus.NewDesc("mcpauthz_limiter_local_keys",
		"Limits and quotas counted in process, by kind.", []string{"kind"}, nil)
	lookupsDesc = prometheus.NewDesc("mcpauthz_credential_lookups_total",
		"API keys and sessions looked up, by kind and where they were found (memory, redis, store).", []string{"kind", "source"}, nil)
	backendErrorsDesc = prometheus.NewDesc("mcpauthz_credential_backend_errors_total",
		"Failed reads of API keys and sessions, by kind and backend (redis: the store was asked instead; store: the request was refused).",
		[]string{"kind", "backend"}, nil)
	jwtDesc = prometheus.NewDesc("mcpauthz_jwt_verifications_total",
		"JWTs verified, by how (cached: answered from the verified-token cache; signature: checked).", []string{"how"}, nil)
	jwksDesc = prometheus.NewDesc("mcpauthz_jwks_fetches_total",
		"JWK set loads, by result.", []string{"result"}, nil)
	leasesDesc = prometheus.NewDesc("mcpauthz_limiter_local_leases",
		"Concurrency leases held in process.", nil, nil)
	limiterFullDesc = prometheus.NewDesc("mcpauthz_limiter_local_full_total",
		"Requests refused because the in-process limiter held limits.max_keys active keys.", nil, nil)
	uploadDroppedDesc = prometheus.NewDesc("mcpauthz_decision_log_upload_dropped_total",
		"Decision log events the uploader dropped.", nil, nil)
)

// Describe describes nothing: the collector is unchecked, since which
// metrics it has depends on the configuration and on what has happened.
func (c sidecarCollector) Describe(chan<- *prometheus.Desc) {}

func (c sidecarCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	collectBundle(ch, "active", s.source)
	if s.shadow != nil {
		collectBundle(ch, "shadow", s.shadowSrc)
		st := s.shadow.Stats()
		for _, change := range policy.Changes() {
			ch <- prometheus.MustNewConstMetric(shadowDesc, prometheus.CounterValue, float64(st.Counts[change]), change.String())
		}
		ch <- prometheus.MustNewConstMetric(shadowDroppedDesc, prometheus.CounterValue, float64(st.Dropped))
	}
	if s.localLimiter != nil {
		local := s.localLimiter.Stats()
		ch <- prometheus.MustNewConstMetric(limiterKeysDesc, prometheus.GaugeValue, float64(local.Limits), "limit")
		ch <- prometheus.MustNewConstMetric(limiterKeysDesc, prometheus.GaugeValue, float64(local.Quotas), "quota")
		ch <- prometheus.MustNewConstMetric(limiterFullDesc, prometheus.CounterValue, float64(local.Full))
	}
	if s.keys != nil {
		collectLookups(ch, "api_key", s.keys.Stats())
	}
	if s.sessions != nil {
		collectLookups(ch, "session", s.sessions.Stats())
	}
	if s.jwts != nil {
		st := s.jwts.Stats()
		ch <- prometheus.MustNewConstMetric(jwtDesc, prometheus.CounterValue, float64(st.CacheHits), "cached")
		ch <- prometheus.MustNewConstMetric(jwtDesc, prometheus.CounterValue, float64(st.SignatureChecks), "signature")
		ch <- prometheus.MustNewConstMetric(jwksDesc, prometheus.CounterValue, float64(st.JWKSFetches), "fetched")
		ch <- prometheus.MustNewConstMetric(jwksDesc, prometheus.CounterValue, float64(st.JWKSFailures), "failed")
	}
	if s.localLeases != nil {
		ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(s.localLeases.Stats().Leases))
	}
	if s.limiter != nil {
		st := s.limiter.Stats()
		down := 0.0
		if st.Down {
			down = 1
		}
		ch <- prometheus.MustNewConstMetric(limiterFallbackDesc, prometheus.GaugeValue, down)
		ch <- prometheus.MustNewConstMetric(limiterFailuresDesc, prometheus.CounterValue, float64(st.Failures))
		ch <- prometheus.MustNewConstMetric(limiterFallbacksDesc, prometheus.CounterValue, float64(st.Fallbacks))
	}
	if s.listensForRevocations {
		live := 0.0
		if s.revocationsLive.Load() {
			live = 1
		}
		ch <- prometheus.MustNewConstMetric(revocationsDesc, prometheus.GaugeValue, live)
	}
	if s.decisions != nil {
		ch <- prometheus.MustNewConstMetric(logWrittenDesc, prometheus.CounterValue, float64(s.decisions.Written()))
		ch <- prometheus.MustNewConstMetric(logDroppedDesc, prometheus.CounterValue, float64(s.decisions.Dropped()))
		ch <- prometheus.MustNewConstMetric(logLostDesc, prometheus.CounterValue, float64(s.decisions.Lost()))
	}
	if s.uploader != nil {
		ch <- prometheus.MustNewConstMetric(uploadSentDesc, prometheus.CounterValue, float64(s.uploader.Sent()))
		ch <- prometheus.MustNewConstMetric(uploadDroppedDesc, prometheus.CounterValue, float64(s.uploader.Dropped()))
	}
}

func collectBundle(ch chan<- prometheus.Metric, role string, src *policySource) {
	st := src.engine.Status()
	if st.Revision != "" {
		ch <- prometheus.MustNewConstMetric(bundleInfoDesc, prometheus.GaugeValue, 1, role, st.Revision)
		ch <- prometheus.MustNewConstMetric(bundleActivatedDesc, prometheus.GaugeValue, float64(st.ActivatedAt.UnixNano())/1e9, role)
	}
	ch <- prometheus.MustNewConstMetric(bundleActivationsDesc, prometheus.CounterValue, float64(st.Activations), role)
	ch <- prometheus.MustNewConstMetric(bundleFailuresDesc, prometheus.CounterValue, float64(st.Failures), role)
	cache := src.engine.CacheStats()
	ch <- prometheus.MustNewConstMetric(decisionCacheDesc, prometheus.CounterValue, float64(cache.Hits), role, "hit")
	ch <- prometheus.MustNewConstMetric(decisionCacheDesc, prometheus.CounterValue, float64(cache.Misses), role, "miss")
	if src.remote != nil {
		rs := src.remote.Status()
		ch <- prometheus.MustNewConstMetric(remoteFetchesDesc, prometheus.CounterValue, float64(rs.NotModified), role, "not_modified")
		ch <- prometheus.MustNewConstMetric(remoteFetchesDesc, prometheus.CounterValue, float64(rs.Fetches-rs.NotModified), role, "other")
		ch <- prometheus.MustNewConstMetric(remoteFailingDesc, prometheus.GaugeValue, float64(rs.Failures), role)
	}
}
