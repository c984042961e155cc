package identity

import (
	"context"
	"errors"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// touchEvery is how stale LastSeenAt may get before a use of the session
// writes it again: sessions are not rewritten on every request.
const touchEvery = time.Minute

// openSession creates a session for the user and revokes the oldest ones
// beyond MaxSessions. It returns the session, its token (shown once) and
// the sessions it revoked.
func (s *Service) openSession(ctx context.Context, tx Tx, userID string, now time.Time, m Meta) (*Session, string, []Revoked, error) {
	active, err := tx.SessionsOfUser(ctx, userID, now)
	if err != nil {
		return nil, "", nil, err
	}
	var evicted []Revoked
	for i := 0; len(active)-i >= s.cfg.MaxSessions; i++ {
		if err := tx.RevokeSession(ctx, userID, active[i].ID, now); err != nil {
			return nil, "", nil, err
		}
		evicted = append(evicted, Revoked{ID: active[i].ID, Digest: active[i].TokenDigest})
	}
	tok, err := token.New(token.KindSession, s.random)
	if err != nil {
		return nil, "", nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, "", nil, err
	}
	d := token.DigestOf(tok)
	m = m.trimmed()
	sess := &Session{
		ID: id, UserID: userID, TokenDigest: d[:], AuthTime: now, CreatedAt: now, LastSeenAt: now,
		IdleExpires: now.Add(s.cfg.SessionIdle), ExpiresAt: now.Add(s.cfg.SessionMax), IP: m.IP, UserAgent: m.UserAgent,
	}
	if err := tx.CreateSession(ctx, sess); err != nil {
		return nil, "", nil, err
	}
	if len(evicted) > 0 {
		if err := s.record(ctx, tx, AuditEvent{Action: "session.evict", ActorID: userID,
			Details: map[string]any{"sessions": len(evicted)}}, m); err != nil {
			return nil, "", nil, err
		}
	}
	return sess, tok, evicted, nil
}

// Authenticate returns the session and user a session token stands for.
// Malformed, unknown, expired and revoked tokens, and banned users, are
// ErrUnauthenticated. Use extends the session's idle expiry.
func (s *Service) Authenticate(ctx context.Context, tok string) (*Session, *User, error) {
	if kind, err := token.Parse(tok); err != nil || kind != token.KindSession {
		return nil, nil, ErrUnauthenticated
	}
	d := token.DigestOf(tok)
	sess, err := s.store.SessionByDigest(ctx, d[:])
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if !sess.Active(now) {
		return nil, nil, ErrUnauthenticated
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	if u.Banned(now) {
		return nil, nil, ErrUnauthenticated
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		sess.LastSeenAt = now
		sess.IdleExpires = now.Add(s.cfg.SessionIdle)
		if sess.IdleExpires.After(sess.ExpiresAt) {
			sess.IdleExpires = sess.ExpiresAt
		}
		if err := s.store.UpdateSession(ctx, sess); errors.Is(err, ErrNotFound) {
			return nil, nil, ErrUnauthenticated // revoked since it was read
		} else if err != nil {
			return nil, nil, err
		}
		s.announce(ctx, sidecarNews{sessions: []*Session{sess}})
	}
	return sess, u, nil
}

// Reauth checks the password again and refreshes the session's
// authentication time, which fresh-session rules judge.
func (s *Service) Reauth(ctx context.Context, sess *Session, pw string, m Meta) error {
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return err
	}
	now := s.now()
	if until := s.cfg.Lockout.Until(u.FailedLogins, u.LastFailedAt); now.Before(until) {
		return &LockedError{Until: until}
	}
	ok, err := s.checkPassword(ctx, u, pw)
	if err != nil {
		return err
	}
	if !ok {
		return s.loginFailed(ctx, u, m, "wrong password on re-authentication")
	}
	hash, err := s.rehash(ctx, u, pw)
	if err != nil {
		return err
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := loginSucceeded(ctx, tx, u, hash, now); err != nil {
			return err
		}
		sess.AuthTime = now
		if err := tx.UpdateSession(ctx, sess); errors.Is(err, ErrNotFound) {
			return ErrUnauthenticated // revoked since it was read
		} else if err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "session.reauth", ActorID: u.ID,
			Details: map[string]any{"session_id": sess.ID}}, m)
	})
	if err != nil {
		return err
	}
	s.announce(ctx, sidecarNews{sessions: []*Session{sess},
		events: []Event{{Kind: EventSessionChanged, UserID: sess.UserID, SessionIDs: []string{sess.ID}}}})
	return nil
}

// Fresh reports whether the session authenticated within the fresh window.
func (s *Service) Fresh(sess *Session) bool {
	return s.now().Sub(sess.AuthTime) <= s.cfg.FreshAuth
}

// Sessions returns the user's active sessions, oldest first.
func (s *Service) Sessions(ctx context.Context, userID string) ([]Session, error) {
	return s.store.SessionsOfUser(ctx, userID, s.now())
}

// RevokeSession ends one of the user's sessions (logout, when it is the
// current one). A session revoked already is ErrNotFound, and dropped from
// the cache again, in case dropping it failed the first time.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID string, m Meta) error {
	var sess *Session
	err := s.store.Tx(ctx, func(tx Tx) error {
		found, err := tx.Session(ctx, userID, sessionID)
		if err != nil {
			return err
		}
		sess = found
		if err := tx.RevokeSession(ctx, userID, sessionID, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "session.revoke", ActorID: userID,
			Details: map[string]any{"session_id": sessionID}}, m)
	})
	if sess == nil || (err != nil && !errors.Is(err, ErrNotFound)) {
		return err
	}
	n := sidecarNews{dropSessions: []Revoked{{ID: sess.ID, Digest: sess.TokenDigest}}}
	if err == nil {
		n.events = []Event{{Kind: EventSessionsRevoked, UserID: userID, SessionIDs: []string{sessionID}}}
	}
	s.announce(ctx, n)
	return err
}

// RevokeAllSessions ends every session of the user and returns their ids.
func (s *Service) RevokeAllSessions(ctx context.Context, userID string, m Meta) ([]string, error) {
	var revoked []Revoked
	err := s.store.Tx(ctx, func(tx Tx) error {
		var err error
		if revoked, err = tx.RevokeSessionsOfUser(ctx, userID, s.now()); err != nil {
			return err
		}
		return s.record(ctx, tx, AuditEvent{Action: "session.revoke_all", ActorID: userID,
			Details: map[string]any{"sessions": len(revoked)}}, m)
	})
	if err != nil {
		return nil, err
	}
	ids := idsOf(revoked)
	if len(ids) > 0 {
		s.announce(ctx, sidecarNews{dropSessions: revoked,
			events: []Event{{Kind: EventSessionsRevoked, UserID: userID, SessionIDs: ids}}})
	}
	return ids, nil
}

// CleanupSessions deletes expired and revoked sessions, at most batch at a
// time, until none is left or ctx is done. It returns how many it deleted.
func (s *Service) CleanupSessions(ctx context.Context, batch int) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := s.store.DeleteExpiredSessions(ctx, s.now(), batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
	return total, ctx.Err()
}
