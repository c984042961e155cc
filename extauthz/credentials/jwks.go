package credentials

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"
)

// Limits and defaults of the JWK set sources.
const (
	// MaxJWKSSize is the largest JWK set document read, from a URL or a
	// file. Real ones are a few kilobytes.
	MaxJWKSSize = 1 << 20
	// DefaultJWKSRefresh is how often a JWK set is fetched again. It is
	// shorter than the identity service's publishing lead (10 minutes), so
	// its new keys are known before they sign.
	DefaultJWKSRefresh = 5 * time.Minute
	// DefaultKIDRefreshInterval is the least time between two fetches
	// that tokens with an unknown kid may trigger.
	DefaultKIDRefreshInterval = 30 * time.Second
	// DefaultJWKSFetchTimeout bounds one fetch of a JWK set.
	DefaultJWKSFetchTimeout = 5 * time.Second

	jwksMinRSABits = 2048
	jwksRetryFirst = time.Second // first retry after a failed scheduled fetch
)

// ErrJWKSUnavailable is the error of a token whose issuer's keys could not
// be fetched: the identity provider is unreachable, answers an error, or
// serves no usable key. It does not wrap extauthz.ErrInvalidCredential —
// the token may well be valid — so it denies with 503, not 401.
var ErrJWKSUnavailable = errors.New("credentials: JWK set unavailable")

// jwksKey is one verification key of a JWK set.
type jwksKey struct {
	alg string // the JWK's alg; "" when it names none
	pub crypto.PublicKey
}

// jwksSet is the usable signing keys of one JWK set document, by kid.
// Several keys may share a kid (published for different algorithms).
type jwksSet struct {
	keys   map[string][]jwksKey
	loaded time.Time
}

// find returns the key of kid that verifies alg; known says whether kid
// names any key at all.
func (s *jwksSet) find(kid, alg string) (pub crypto.PublicKey, known bool) {
	ks, known := s.keys[kid]
	for _, k := range ks {
		if (k.alg == "" || k.alg == alg) && jwksKeyFits(k.pub, alg) {
			return k.pub, true
		}
	}
	return nil, known
}

// jwksKeyFits reports whether pub is a key for alg: RSA of at least 2048
// bits for RS*/PS*, ECDSA on the algorithm's own curve for ES*, Ed25519 for
// EdDSA. It is what keeps an RSA key from checking an HMAC or an ECDSA
// signature.
func jwksKeyFits(pub crypto.PublicKey, alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := pub.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= jwksMinRSABits
	case "ES256", "ES384", "ES512":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve == nil {
			return false
		}
		name := k.Curve.Params().Name
		return alg == "ES256" && name == "P-256" || alg == "ES384" && name == "P-384" || alg == "ES512" && name == "P-521"
	case "EdDSA":
		_, ok := pub.(ed25519.PublicKey)
		return ok
	}
	return false
}

// jwksParse reads a JWK set document, keeping the keys that can verify a
// signature: public asymmetric keys with a kid, not marked for
// encryption, of an algorithm the verifier supports. Other keys are
// skipped, not refused — identity providers publish encryption keys and
// keys for other consumers in the same set — but a set with no usable key
// is an error.
func jwksParse(doc []byte, now time.Time) (*jwksSet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	set := &jwksSet{keys: map[string][]jwksKey{}, loaded: now}
	var skipped []error
	for i, rk := range raw.Keys {
		k, kid, err := jwksParseKey(rk)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		set.keys[kid] = append(set.keys[kid], k)
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("no usable signing key among %d: %w", len(raw.Keys), errors.Join(skipped...))
	}
	return set, nil
}

func jwksParseKey(rk json.RawMessage) (jwksKey, string, error) {
	var meta struct {
		KTY    string   `json:"kty"`
		Use    string   `json:"use"`
		KID    string   `json:"kid"`
		Alg    string   `json:"alg"`
		KeyOps []string `json:"key_ops"`
	}
	if err := json.Unmarshal(rk, &meta); err != nil {
		return jwksKey{}, "", err
	}
	switch {
	case meta.KID == "":
		return jwksKey{}, "", errors.New("no kid")
	case meta.KTY == string(jwkset.KtyOct):
		return jwksKey{}, "", errors.New("a symmetric key")
	case meta.Use != "" && meta.Use != string(jwkset.UseSig):
		return jwksKey{}, "", fmt.Errorf("use %q", meta.Use)
	case meta.KeyOps != nil && !slices.Contains(meta.KeyOps, string(jwkset.KeyOpsVerify)):
		return jwksKey{}, "", errors.New("key_ops without verify")
	case meta.Alg != "" && !jwtAsymmetric[meta.Alg]:
		return jwksKey{}, "", fmt.Errorf("alg %q", meta.Alg)
	}
	// The certificate chain is checked against the key but never fetched
	// (no GetX5U), so the x5u scheme does not matter.
	j, err := jwkset.NewJWKFromRawJSON(rk, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{SkipX5UScheme: true})
	if err != nil {
		return jwksKey{}, "", err
	}
	pub := j.Key()
	fits := false
	for alg := range jwtAsymmetric {
		if (meta.Alg == "" || meta.Alg == alg) && jwksKeyFits(pub, alg) {
			fits = true
			break
		}
	}
	if !fits {
		return jwksKey{}, "", fmt.Errorf("a %T key for no supported algorithm (RSA needs %d bits)", pub, jwksMinRSABits)
	}
	return jwksKey{alg: meta.Alg, pub: pub}, meta.KID, nil
}

// jwksSource holds the keys of one issuer and loads them: from a URL (on
// schedule, and on demand for an unknown kid, at a capped rate), from a
// file (on schedule), or from a document given once.
type jwksSource struct {
	issuer   string // for messages
	url      string
	file     string
	client   *http.Client
	timeout  time.Duration
	interval time.Duration
	limiter  *rate.Limiter // on-demand fetches
	now      func() time.Time
	log      *slog.Logger

	keys atomic.Pointer[jwksSet]

	mu     sync.Mutex
	flight *jwksFlight // the fetch in progress, if any

	fetches  atomic.Uint64
	failures atomic.Uint64
	capped   atomic.Uint64 // on-demand fetches refused by the rate cap
}

// jwksFlight is one load in progress; every caller that needs it waits on
// done.
type jwksFlight struct {
	done chan struct{}
	err  error
}

// has reports whether kid is among the current keys.
func (s *jwksSource) has(kid string) bool {
	ks := s.keys.Load()
	return ks != nil && len(ks.keys[kid]) > 0
}

// still reports whether kid still names key for alg: a key replaced
// under the same kid stops the tokens the old one signed.
func (s *jwksSource) still(kid, alg string, key crypto.PublicKey) bool {
	ks := s.keys.Load()
	if ks == nil {
		return false
	}
	pub, _ := ks.find(kid, alg)
	e, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(key)
}

// lookup returns the key of kid for alg. A kid the current keys do not
// know sends a URL source to fetch the set again, at most once per rate
// interval; the answer is then
//   - the key, if the fetched set has it;
//   - invalid (401) if the fetched set does not, or no fetch was allowed
//     but keys were loaded before — so a flood of made-up kids costs the
//     identity provider at most one fetch per interval;
//   - ErrJWKSUnavailable (503) if the fetch failed, or no keys were ever
//     loaded and no fetch was allowed: whether the token is valid cannot
//     be told.
func (s *jwksSource) lookup(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	ks := s.keys.Load()
	if ks != nil {
		pub, known := ks.find(kid, alg)
		switch {
		case pub != nil:
			return pub, nil
		case known:
			return nil, jwtInvalid(errJWTKey, "kid %s has no key for %s", jwtQuote(kid), alg)
		case s.url == "":
			return nil, jwtInvalid(errJWTKID, "kid %s", jwtQuote(kid))
		}
	}
	if s.url == "" {
		// A file source that failed to load keeps no keys; construction
		// refuses it, so this is not reached.
		return nil, fmt.Errorf("%w: issuer %s: no keys loaded", ErrJWKSUnavailable, s.issuer)
	}
	f := s.start(ctx, true)
	if f == nil {
		s.capped.Add(1)
		if ks == nil {
			return nil, fmt.Errorf("%w: issuer %s: no keys loaded yet (fetch rate-capped)", ErrJWKSUnavailable, s.issuer)
		}
		return nil, jwtInvalid(errJWTKID, "kid %s (refresh rate-capped)", jwtQuote(kid))
	}
	if err := f.wait(ctx); err != nil {
		return nil, fmt.Errorf("%w: issuer %s: %w", ErrJWKSUnavailable, s.issuer, err)
	}
	pub, known := s.keys.Load().find(kid, alg)
	switch {
	case pub != nil:
		return pub, nil
	case known:
		return nil, jwtInvalid(errJWTKey, "kid %s has no key for %s", jwtQuote(kid), alg)
	}
	return nil, jwtInvalid(errJWTKID, "kid %s", jwtQuote(kid))
}

// refresh loads the keys now, or waits for the load in progress.
func (s *jwksSource) refresh(ctx context.Context) error {
	if s.url == "" && s.file == "" {
		return nil // a document given once
	}
	return s.start(ctx, false).wait(ctx)
}

// start returns the load in progress, or starts one. onDemand loads are
// rate-capped: start returns nil when none is allowed now. Joining a load
// in progress costs nothing.
func (s *jwksSource) start(ctx context.Context, onDemand bool) *jwksFlight {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flight != nil {
		return s.flight
	}
	if onDemand && !s.limiter.AllowN(s.now(), 1) {
		return nil
	}
	f := &jwksFlight{done: make(chan struct{})}
	s.flight = f
	go func() {
		// The load outlives the request that needed it (WithoutCancel):
		// its keys serve every later request, and a load cut short by one
		// request's deadline would leave them stale while the rate cap
		// holds the next one back. The fetch timeout bounds it instead.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		err := s.load(ctx)
		cancel()
		s.mu.Lock()
		s.flight = nil
		s.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// wait returns the flight's result, or ctx's error if ctx ends first.
func (f *jwksFlight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// load reads and parses the set and makes it current. A failed load keeps
// the keys loaded before.
func (s *jwksSource) load(ctx context.Context) error {
	var doc []byte
	var err error
	if s.url != "" {
		s.fetches.Add(1)
		doc, err = s.fetch(ctx)
	} else {
		doc, err = jwksReadFile(s.file)
	}
	if err == nil {
		var set *jwksSet
		if set, err = jwksParse(doc, s.now()); err == nil {
			s.keys.Store(set)
			return nil
		}
	}
	s.failures.Add(1)
	return err
}

// fetch GETs the JWK set URL: status 200, at most MaxJWKSSize bytes.
func (s *jwksSource) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", s.url, resp.StatusCode)
	}
	return jwksReadAll(resp.Body)
}

func jwksReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jwksReadAll(f)
}

func jwksReadAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("JWK set larger than %d bytes", MaxJWKSSize)
	}
	return b, nil
}

// run reloads a URL or file source until ctx ends: a URL at once unless
// keys were loaded less than an interval ago, then every interval; after
// a failure, sooner (1s, doubling up to the interval).
func (s *jwksSource) run(ctx context.Context) {
	delay := time.Duration(0)
	if ks := s.keys.Load(); ks != nil {
		delay = max(s.interval-s.now().Sub(ks.loaded), 0)
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	retry, failing := jwksRetryFirst, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := s.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("JWK set refresh failed; keeping the keys loaded before",
				slog.String("issuer", s.issuer), slog.Duration("retry_in", retry), slog.Any("error", err))
			failing = true
			timer.Reset(retry)
			retry = min(2*retry, s.interval)
		default:
			if failing {
				s.log.Info("JWK set refresh recovered", slog.String("issuer", s.issuer))
			}
			retry, failing = jwksRetryFirst, false
			timer.Reset(s.interval)
		}
	}
}

// Run keeps every issuer's keys fresh until ctx ends: a JWK set URL is
// fetched at once (unless Refresh just did), then every RefreshInterval,
// and sooner after a failure; a JWK set file is read again every
// RefreshInterval. A failed load keeps the keys loaded before. Run returns
// nil when ctx ends.
//
// Verify does not need Run to have fetched: before the first successful
// fetch it fetches on demand (rate-capped), and answers ErrJWKSUnavailable
// while it cannot.
func (v *JWTVerifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, iss := range v.order {
		if iss.src.url == "" && iss.src.file == "" {
			continue
		}
		wg.Go(func() { iss.src.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Refresh loads every issuer's keys now and returns the failures, each
// wrapping ErrJWKSUnavailable. Call it at start to wait for the keys (and
// to report an identity provider that cannot be reached) before serving;
// a failure need not be fatal, since Run keeps trying.
func (v *JWTVerifier) Refresh(ctx context.Context) error {
	var errs []error
	for _, iss := range v.order {
		if err := iss.src.refresh(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%w: issuer %s: %w", ErrJWKSUnavailable, iss.cfg.Issuer, err))
		}
	}
	return errors.Join(errs...)
}
