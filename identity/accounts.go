package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mcpauthz/mcpauthz/identity/password"
)

// SignUp is a request to create an account.
type SignUp struct {
	Email       string
	Password    string
	DisplayName string
	// Consents must grant every required consent in its current version;
	// optional ones may be granted or refused.
	Consents []Consent
}

// maxName bounds display names and the names of organizations and API
// keys, in characters.
const maxName = 100

// SignUp creates an account. The email is normalized; the password must
// pass the policy; consents are recorded with their versions and time.
func (s *Service) SignUp(ctx context.Context, in SignUp, m Meta) (*User, error) {
	email, err := password.NormalizeEmail(in.Email)
	if err != nil {
		return nil, invalid("email", "not a valid email address", err)
	}
	name, err := cleanName("display_name", in.DisplayName, false)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Policy.Check(in.Password, email); err != nil {
		var pe *password.PolicyError
		if errors.As(err, &pe) {
			return nil, invalid("password", pe.Reason, err)
		}
		return nil, invalid("password", "not acceptable", err)
	}
	now := s.now()
	consents, err := s.consents(in.Consents)
	if err != nil {
		return nil, err
	}
	for i := range consents {
		consents[i].At = now
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	u := &User{ID: id, Email: email, PasswordHash: hash, DisplayName: name, PlatformRoles: []string{},
		Status: UserActive, CreatedAt: now, UpdatedAt: now}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			if errors.Is(err, ErrConflict) {
				return invalid("email", "already registered", ErrConflict)
			}
			return err
		}
		if err := tx.SetConsents(ctx, u.ID, consents); err != nil {
			return err
		}
		granted := map[string]any{}
		for _, c := range consents {
			granted[c.Kind] = c.Granted
		}
		return s.record(ctx, tx, AuditEvent{Action: "user.signup", ActorID: u.ID, TargetType: "user", TargetID: u.ID,
			Details: map[string]any{"consents": granted}}, m)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// cleanName trims a name people read and checks it: valid UTF-8, no
// control characters, at most maxName characters, and not empty if
// required. field names it in errors.
func cleanName(field, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		return "", invalid(field, "required", nil)
	case !utf8.ValidString(s):
		return "", invalid(field, "not valid UTF-8", nil)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", invalid(field, "contains control characters", nil)
	case utf8.RuneCountInString(s) > maxName:
		return "", invalid(field, fmt.Sprintf("longer than %d characters", maxName), nil)
	}
	return s, nil
}

// consents checks a sign-up's consents against the required and optional
// kinds: every required one granted in its current version, nothing unknown.
func (s *Service) consents(in []Consent) ([]Consent, error) {
	seen := map[string]bool{}
	out := make([]Consent, 0, len(in))
	for _, c := range in {
		if seen[c.Kind] {
			return nil, invalid("consents", "consent "+c.Kind+" given twice", nil)
		}
		seen[c.Kind] = true
		version, required := s.cfg.RequiredConsents[c.Kind]
		switch {
		case required && !c.Granted:
			return nil, invalid("consents", c.Kind+" must be accepted", nil)
		case required && c.Version != version:
			return nil, invalid("consents", c.Kind+" version "+c.Version+" is not the current one ("+version+")", nil)
		case !required && !slices.Contains(s.cfg.OptionalConsents, c.Kind):
			return nil, invalid("consents", "unknown consent "+c.Kind, nil)
		}
		out = append(out, Consent{Kind: c.Kind, Version: c.Version, Granted: c.Granted})
	}
	for kind := range s.cfg.RequiredConsents {
		if !seen[kind] {
			return nil, invalid("consents", kind+" must be accepted", nil)
		}
	}
	return out, nil
}

// Login is a successful sign-in: the session and its token, shown once.
type Login struct {
	User    *User
	Session *Session
	Token   string
}

// Login checks an email and password and opens a session. Unknown emails
// and wrong passwords fail alike, in message and in time; repeated
// failures lock the account with growing delays.
func (s *Service) Login(ctx context.Context, email, pw string, m Meta) (*Login, error) {
	norm, err := password.NormalizeEmail(email)
	var u *User
	if err == nil {
		u, err = s.store.UserByEmail(ctx, norm)
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, password.ErrInvalidEmail) {
			return nil, err
		}
		if err := s.spendACheck(ctx, pw); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	now := s.now()
	if until := s.cfg.Lockout.Until(u.FailedLogins, u.LastFailedAt); now.Before(until) {
		// Refused without checking, and without counting: a locked
		// account cannot be kept locked forever by more guesses.
		if err := s.spendACheck(ctx, pw); err != nil {
			return nil, err
		}
		return nil, &LockedError{Until: until}
	}
	ok, err := s.checkPassword(ctx, u, pw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.loginFailed(ctx, u, m, "wrong password")
	}
	if u.Banned(now) {
		if err := s.store.Tx(ctx, func(tx Tx) error {
			return s.record(ctx, tx, AuditEvent{Action: "user.login_refused", ActorID: u.ID,
				Details: map[string]any{"reason": "banned"}}, m)
		}); err != nil {
			return nil, err
		}
		return nil, ErrBanned
	}
	hash, err := s.rehash(ctx, u, pw)
	if err != nil {
		return nil, err
	}
	var login *Login
	var evicted []Revoked
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := loginSucceeded(ctx, tx, u, hash, now); err != nil {
			return err
		}
		sess, tok, ev, err := s.openSession(ctx, tx, u.ID, now, m)
		if err != nil {
			return err
		}
		login, evicted = &Login{User: u, Session: sess, Token: tok}, ev
		return s.record(ctx, tx, AuditEvent{Action: "user.login", ActorID: u.ID,
			Details: map[string]any{"session_id": sess.ID}}, m)
	})
	if err != nil {
		return nil, err
	}
	n := sidecarNews{dropSessions: evicted, sessions: []*Session{login.Session}}
	if len(evicted) > 0 {
		n.events = []Event{{Kind: EventSessionsRevoked, UserID: u.ID, SessionIDs: idsOf(evicted)}}
	}
	s.announce(ctx, n)
	return login, nil
}

// checkPassword verifies pw against the user's hash, holding a hashing slot.
func (s *Service) checkPassword(ctx context.Context, u *User, pw string) (bool, error) {
	var ok bool
	var verr error
	if err := s.hashing(ctx, func() { ok, verr = password.Verify(pw, u.PasswordHash) }); err != nil {
		return false, err
	}
	if verr != nil {
		// A stored hash that does not parse is a fault, not a guess.
		s.log.ErrorContext(ctx, "stored password hash is unusable", "user_id", u.ID, "error", verr)
		return false, nil
	}
	return ok, nil
}

// loginFailed counts a failure and records it.
func (s *Service) loginFailed(ctx context.Context, u *User, m Meta, reason string) error {
	err := s.store.Tx(ctx, func(tx Tx) error {
		n, err := tx.RecordLoginFailure(ctx, u.ID, s.now())
		if err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "user.login_failed", ActorID: u.ID,
			Details: map[string]any{"reason": reason, "failures": n}}, m)
	})
	if err != nil {
		return err
	}
	return ErrInvalidCredentials
}

// spendACheck spends what checking a password spends, so that refusing
// without a check takes as long as a wrong password.
func (s *Service) spendACheck(ctx context.Context, pw string) error {
	return s.hashing(ctx, func() { password.VerifyDummy(pw, s.cfg.Password) })
}

// hashPassword hashes pw with the configured parameters, holding a
// hashing slot.
func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	var hash string
	var err error
	if herr := s.hashing(ctx, func() { hash, err = password.Hash(pw, s.cfg.Password, s.random) }); herr != nil {
		return "", herr
	}
	return hash, err
}

// rehash returns the hash to keep for a verified password: a new one when
// the parameters changed, the stored one otherwise. It hashes before any
// transaction opens, so none is held open for it.
func (s *Service) rehash(ctx context.Context, u *User, pw string) (string, error) {
	if !password.NeedsRehash(u.PasswordHash, s.cfg.Password) {
		return u.PasswordHash, nil
	}
	return s.hashPassword(ctx, pw)
}

// loginSucceeded clears the user's failure count and stores the rehashed
// password, where either changes anything.
func loginSucceeded(ctx context.Context, tx Tx, u *User, hash string, now time.Time) error {
	if u.FailedLogins == 0 && hash == u.PasswordHash {
		return nil
	}
	if err := tx.RecordLoginSuccess(ctx, u.ID, u.PasswordHash, hash, now); err != nil {
		return err
	}
	u.FailedLogins, u.LastFailedAt, u.PasswordHash, u.UpdatedAt = 0, time.Time{}, hash, now
	return nil
}
