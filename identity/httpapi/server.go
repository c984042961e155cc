// Package httpapi is the identity service's HTTP JSON API: sign-up and
// login, sessions, organizations and their members, invitations and API
// keys, token exchange and the JWKS, the audit log, GDPR export and
// erasure, and platform administration. It also serves the API's OpenAPI 3
// document at /openapi.json.
//
// Every error is a JSON body {"error": {"code", "message"}} with a status
// that says what to do; the message is safe to show, the cause goes to the
// log. Calls authenticate with the session cookie or with the session token
// as a bearer token; state-changing calls are refused when a browser says
// they come from another origin (CSRF), and login and sign-up are rate
// limited per client address.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/internal/clientip"
)

// Config holds the API's settings. The zero value of each field means its
// default.
type Config struct {
	// CookieName is the session cookie's name: by default
	// "__Host-mcpauthz_session", whose prefix makes browsers refuse a
	// cookie of that name set by a sibling domain or for a narrower path
	// (cookie tossing), or "mcpauthz_session" with a CookieDomain.
	CookieName string
	// CookieDomain is the cookie's Domain attribute; empty scopes it to
	// the API's host.
	CookieDomain string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxBody bounds a request body (default 64 KiB).
	MaxBody int64
	// LoginRate and SignUpRate limit attempts per client address.
	LoginRate  Rate
	SignUpRate Rate
	// MaxLimiterKeys bounds the addresses the rate limiters remember
	// (default 65536).
	MaxLimiterKeys int
}

// Rate is Burst events at once, then one per Every.
type Rate struct {
	Every time.Duration
	Burst int
}

// Defaults.
const (
	DefaultCookieName       = "__Host-mcpauthz_session"
	DefaultDomainCookieName = "mcpauthz_session"
	DefaultMaxBody          = 64 << 10
)

// Default rates: 10 login attempts, then one every 6 s (10 a minute);
// 5 sign-ups, then one every 12 minutes (5 an hour).
var (
	DefaultLoginRate  = Rate{Every: 6 * time.Second, Burst: 10}
	DefaultSignUpRate = Rate{Every: 12 * time.Minute, Burst: 5}
)

func (c *Config) withDefaults() {
	switch {
	case c.CookieName != "":
	case c.CookieDomain == "":
		c.CookieName = DefaultCookieName
	default:
		c.CookieName = DefaultDomainCookieName
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.LoginRate == (Rate{}) {
		c.LoginRate = DefaultLoginRate
	}
	if c.SignUpRate == (Rate{}) {
		c.SignUpRate = DefaultSignUpRate
	}
	if c.MaxLimiterKeys <= 0 {
		c.MaxLimiterKeys = 1 << 16
	}
}

// Handler serves the API.
type Handler struct {
	svc     *identity.Service
	tokens  *identity.Tokens
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	clients clientip.Resolver
	login   *limiter
	signUp  *limiter
	openAPI []byte
	mux     *http.ServeMux
	root    http.Handler
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithClock sets the clock the rate limiters use (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// New returns the API of svc, issuing tokens with tokens.
func New(svc *identity.Service, tokens *identity.Tokens, cfg Config, opts ...Option) (*Handler, error) {
	cfg.withDefaults()
	for _, r := range []Rate{cfg.LoginRate, cfg.SignUpRate} {
		if r.Every <= 0 || r.Burst < 1 {
			return nil, errors.New("httpapi: a rate needs a positive interval and a burst of at least 1")
		}
	}
	if (&http.Cookie{Name: cfg.CookieName, Value: "v"}).Valid() != nil {
		return nil, fmt.Errorf("httpapi: %q is not a valid cookie name", cfg.CookieName)
	}
	if strings.HasPrefix(cfg.CookieName, "__Host-") && cfg.CookieDomain != "" {
		return nil, errors.New("httpapi: a __Host- cookie cannot have a Domain")
	}
	doc, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		svc: svc, tokens: tokens, cfg: cfg,
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		clients: clientip.New(cfg.TrustedProxies),
		openAPI: doc,
		mux:     http.NewServeMux(),
	}
	for _, o := range opts {
		o(h)
	}
	h.login = newLimiter(cfg.LoginRate, cfg.MaxLimiterKeys)
	h.signUp = newLimiter(cfg.SignUpRate, cfg.MaxLimiterKeys)
	for _, rt := range routes {
		h.mux.Handle(rt.method+" "+rt.path, h.endpoint(rt))
	}
	// The API serves no CORS: a browser application calls it from the
	// API's own origin, and anything a browser marks cross-origin is
	// refused if it could change state.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errCrossOrigin)
	}))
	h.root = csrf.Handler(http.HandlerFunc(h.route))
	return h, nil
}

// ServeHTTP serves one API call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.root.ServeHTTP(w, r)
}

// route dispatches to the endpoint; the mux's own 404 and 405 answers are
// turned into the API's error bodies.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) {
	handler, pattern := h.mux.Handler(r)
	if pattern != "" {
		h.mux.ServeHTTP(w, r) // sets the path values; Handler does not
		return
	}
	rec := &statusRecorder{header: http.Header{}}
	handler.ServeHTTP(rec, r)
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if rec.status == http.StatusMethodNotAllowed {
		h.fail(w, r, errMethod)
		return
	}
	h.fail(w, r, errNoRoute)
}

// statusRecorder keeps the status and headers the mux's fallback writes.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }
func (s *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }
