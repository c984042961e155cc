package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mcpauthz/mcpauthz/identity/password"
)

// Config holds the service's rules. DefaultConfig gives sane values.
type Config struct {
	Password      password.Params
	Policy        password.Policy
	Lockout       password.Lockout
	SessionIdle   time.Duration // a session unused this long expires
	SessionMax    time.Duration // absolute session lifetime
	MaxSessions   int           // per user; the oldest is revoked beyond it
	MaxOrgsByUser int
	FreshAuth     time.Duration // admin actions need a password this recent
	// RequiredConsents maps each consent a sign-up must grant to its
	// current version (privacy_policy, terms).
	RequiredConsents map[string]string
	// OptionalConsents are kinds a sign-up may grant or refuse.
	OptionalConsents []string
	// MaxConcurrentHashes bounds password hashing in flight: each
	// argon2id computation holds its memory cost.
	MaxConcurrentHashes int
}

// DefaultConfig returns the default rules.
func DefaultConfig() Config {
	return Config{
		Password:            password.DefaultParams,
		Policy:              password.DefaultPolicy,
		Lockout:             password.DefaultLockout,
		SessionIdle:         12 * time.Hour,
		SessionMax:          7 * 24 * time.Hour,
		MaxSessions:         5,
		MaxOrgsByUser:       10,
		FreshAuth:           15 * time.Minute,
		RequiredConsents:    map[string]string{"privacy_policy": "2026-01", "terms": "2026-01"},
		OptionalConsents:    []string{"marketing", "analytics"},
		MaxConcurrentHashes: 4,
	}
}

// Validate checks the rules once, at start.
func (c Config) Validate() error {
	var errs []error
	if err := c.Password.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Lockout.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionIdle <= 0 || c.SessionMax < c.SessionIdle {
		errs = append(errs, errors.New("sessions: idle expiry must be positive and at most the absolute lifetime"))
	}
	if c.MaxSessions < 1 || c.MaxOrgsByUser < 1 || c.MaxConcurrentHashes < 1 {
		errs = append(errs, errors.New("max sessions, max organizations and concurrent hashes must be at least 1"))
	}
	if c.FreshAuth <= 0 {
		errs = append(errs, errors.New("fresh authentication window must be positive"))
	}
	return errors.Join(errs...)
}

// Service is the identity service: every change goes through it, audited
// in the same transaction.
type Service struct {
	store  Store
	audit  *Auditor
	cfg    Config
	now    func() time.Time
	random io.Reader
	events EventPublisher
	cache  Cache
	usage  KeyUseRecorder
	log    *slog.Logger
	hashes chan struct{} // semaphore for password hashing
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithEvents sets where revocations are published (default: nowhere).
func WithEvents(p EventPublisher) Option { return func(s *Service) { s.events = p } }

// KeyUseRecorder notes that an API key was used (identity.Usage batches the
// writes).
type KeyUseRecorder interface {
	Record(keyID string, at time.Time)
}

type nopUsage struct{}

func (nopUsage) Record(string, time.Time) {}

// WithKeyUsage sets where API key use is recorded (default: nowhere).
func WithKeyUsage(u KeyUseRecorder) Option { return func(s *Service) { s.usage = u } }

// WithCache sets where sessions and API keys are written through for the
// sidecars (default: nowhere).
func WithCache(c Cache) Option {
	return func(s *Service) {
		if c != nil {
			s.cache = c
		}
	}
}

// WithLogger sets the operational logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// NewService returns the service on store. random supplies tokens, salts
// and ids (crypto/rand.Reader in production).
func NewService(store Store, audit *Auditor, cfg Config, random io.Reader, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("identity configuration: %w", err)
	}
	s := &Service{
		store:  store,
		audit:  audit,
		cfg:    cfg,
		now:    time.Now,
		random: random,
		events: NopEvents{},
		cache:  NopCache{},
		usage:  nopUsage{},
		log:    slog.New(slog.DiscardHandler),
		hashes: make(chan struct{}, cfg.MaxConcurrentHashes),
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Meta describes where a request came from, for the audit log.
type Meta struct {
	IP        string
	UserAgent string
}

// maxUserAgent bounds what the audit log keeps of a user agent.
const maxUserAgent = 256

// trimmed makes the user agent valid UTF-8, which text columns require,
// and cuts it to maxUserAgent bytes at a character boundary.
func (m Meta) trimmed() Meta {
	ua := strings.ToValidUTF8(m.UserAgent, "\uFFFD")
	if len(ua) > maxUserAgent {
		cut := maxUserAgent
		for !utf8.RuneStart(ua[cut]) {
			cut--
		}
		ua = ua[:cut]
	}
	m.UserAgent = ua
	return m
}

// newID returns a time-ordered unique id (UUID version 7).
func (s *Service) newID() (string, error) {
	id, err := uuid.NewV7FromReader(s.random)
	if err != nil {
		return "", fmt.Errorf("generating an id: %w", err)
	}
	return id.String(), nil
}

// record seals and appends an audit event within tx.
func (s *Service) record(ctx context.Context, tx Tx, e AuditEvent, m Meta) error {
	id, err := s.newID()
	if err != nil {
		return err
	}
	m = m.trimmed()
	e.ID, e.At, e.IP, e.UserAgent = id, s.now(), m.IP, m.UserAgent
	s.audit.Seal(&e)
	if err := tx.AppendAudit(ctx, &e, s.audit.Link); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// publish sends revocation events after their transaction committed.
func (s *Service) publish(ctx context.Context, evs ...Event) {
	s.announce(ctx, sidecarNews{events: evs})
}

// hashing runs fn holding a password hashing slot.
func (s *Service) hashing(ctx context.Context, fn func()) error {
	select {
	case s.hashes <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashes }()
	fn()
	return nil
}
