package sqlstore

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const sessionColumns = `id, user_id, token_digest, active_org_id, auth_time, created_at, last_seen_at,
	idle_expires_at, expires_at, revoked_at, ip, user_agent`

func scanSession(row scanner) (identity.Session, error) {
	var s identity.Session
	err := row.Scan(&s.ID, &s.UserID, &s.TokenDigest, &s.ActiveOrgID, scanTime{&s.AuthTime}, scanTime{&s.CreatedAt},
		scanTime{&s.LastSeenAt}, scanTime{&s.IdleExpires}, scanTime{&s.ExpiresAt}, scanTime{&s.RevokedAt},
		&s.IP, &s.UserAgent)
	return s, err
}

func (q queries) CreateSession(ctx context.Context, s *identity.Session) error {
	_, err := q.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.ID, s.UserID, s.TokenDigest, s.ActiveOrgID, q.t(s.AuthTime), q.t(s.CreatedAt), q.t(s.LastSeenAt),
		q.t(s.IdleExpires), q.t(s.ExpiresAt), q.t(s.RevokedAt), s.IP, s.UserAgent)
	return err
}

func (q queries) SessionByDigest(ctx context.Context, digest []byte) (*identity.Session, error) {
	s, err := scanSession(q.row(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_digest = ?`, digest))
	return &s, q.wrap(err)
}

func (q queries) Session(ctx context.Context, userID, id string) (*identity.Session, error) {
	s, err := scanSession(q.row(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE user_id = ? AND id = ?`, userID, id))
	return &s, q.wrap(err)
}

func (q queries) SessionsOfUser(ctx context.Context, userID string, now time.Time) ([]identity.Session, error) {
	return queryAll(ctx, q, scanSession, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND idle_expires_at > ?
		ORDER BY created_at, id`, userID, q.t(now), q.t(now))
}

func (q queries) UpdateSession(ctx context.Context, s *identity.Session) error {
	return changed(q.exec(ctx, `UPDATE sessions SET active_org_id = ?, auth_time = ?, last_seen_at = ?,
		idle_expires_at = ?, expires_at = ? WHERE user_id = ? AND id = ? AND revoked_at IS NULL`,
		s.ActiveOrgID, q.t(s.AuthTime), q.t(s.LastSeenAt), q.t(s.IdleExpires), q.t(s.ExpiresAt),
		s.UserID, s.ID))
}

func (q queries) TouchSessions(ctx context.Context, lastSeen map[string]time.Time, idle time.Duration) error {
	// In id order, so concurrent batches lock rows in the same order.
	for _, id := range slices.Sorted(maps.Keys(lastSeen)) {
		at := lastSeen[id]
		until := q.t(at.Add(idle))
		if _, err := q.exec(ctx, `UPDATE sessions SET last_seen_at = ?,
			idle_expires_at = CASE WHEN expires_at < ? THEN expires_at ELSE ? END
			WHERE id = ? AND revoked_at IS NULL AND last_seen_at < ? AND idle_expires_at > ?`,
			q.t(at), until, until, id, q.t(at), q.t(at)); err != nil {
			return err
		}
	}
	return nil
}

func (q queries) RevokeSession(ctx context.Context, userID, id string, at time.Time) error {
	return changed(q.exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id = ? AND revoked_at IS NULL`,
		q.t(at), userID, id))
}

func (q queries) RevokeSessionsOfUser(ctx context.Context, userID string, at time.Time) ([]identity.Revoked, error) {
	return q.returningRevoked(ctx, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL
		RETURNING id, token_digest`,
		q.t(at), userID)
}

func (q queries) DeleteExpiredSessions(ctx context.Context, before time.Time, limit int) (int, error) {
	res, err := q.exec(ctx, `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions WHERE expires_at < ? OR idle_expires_at < ? OR revoked_at < ? LIMIT ?)`,
		q.t(before), q.t(before), q.t(before), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
