package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const userColumns = `id, email, password_hash, display_name, platform_roles, status, ban_reason,
	banned_until, failed_logins, last_failed_at, created_at, updated_at`

func scanUser(row scanner) (identity.User, error) {
	var u identity.User
	var status string
	err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.DisplayName, scanJSON{&u.PlatformRoles}, &status,
		&u.BanReason, scanTime{&u.BannedUntil}, &u.FailedLogins, scanTime{&u.LastFailedAt},
		scanTime{&u.CreatedAt}, scanTime{&u.UpdatedAt})
	u.Status = identity.UserStatus(status)
	return u, err
}

func (q queries) CreateUser(ctx context.Context, u *identity.User) error {
	_, err := q.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		u.ID, u.Email, u.PasswordHash, u.DisplayName, stringsArg(u.PlatformRoles), string(u.Status), u.BanReason,
		q.t(u.BannedUntil), u.FailedLogins, q.t(u.LastFailedAt), q.t(u.CreatedAt), q.t(u.UpdatedAt))
	return err
}

func (q queries) UserByID(ctx context.Context, id string) (*identity.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return &u, q.wrap(err)
}

func (q queries) UserForUpdate(ctx context.Context, id string) (*identity.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`+q.d.ForUpdate, id))
	return &u, q.wrap(err)
}

func (q queries) UserByEmail(ctx context.Context, email string) (*identity.User, error) {
	u, err := scanUser(q.row(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	return &u, q.wrap(err)
}

func (q queries) UpdateUser(ctx context.Context, u *identity.User) error {
	return changed(q.exec(ctx, `UPDATE users SET email = ?, password_hash = ?, display_name = ?,
		platform_roles = ?, status = ?, ban_reason = ?, banned_until = ?, failed_logins = ?,
		last_failed_at = ?, updated_at = ? WHERE id = ?`,
		u.Email, u.PasswordHash, u.DisplayName, stringsArg(u.PlatformRoles), string(u.Status), u.BanReason,
		q.t(u.BannedUntil), u.FailedLogins, q.t(u.LastFailedAt), q.t(u.UpdatedAt), u.ID))
}

func (q queries) RecordLoginFailure(ctx context.Context, userID string, at time.Time) (int, error) {
	var n int
	err := q.row(ctx, `UPDATE users SET failed_logins = failed_logins + 1, last_failed_at = ?
		WHERE id = ? RETURNING failed_logins`, q.t(at), userID).Scan(&n)
	return n, q.wrap(err)
}

func (q queries) RecordLoginSuccess(ctx context.Context, userID, oldHash, newHash string, at time.Time) error {
	return changed(q.exec(ctx, `UPDATE users SET failed_logins = 0, last_failed_at = NULL, updated_at = ?,
		password_hash = CASE WHEN password_hash = ? THEN ? ELSE password_hash END WHERE id = ?`,
		q.t(at), oldHash, newHash, userID))
}

func (q queries) ListUsers(ctx context.Context, query, after string, limit int) ([]identity.User, error) {
	return queryAll(ctx, q, scanUser, `SELECT `+userColumns+` FROM users
		WHERE email LIKE ? ESCAPE '\' AND id > ? ORDER BY id LIMIT ?`,
		"%"+likeEscape(query)+"%", after, limit)
}

// likeEscape escapes LIKE's wildcards so a search matches literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (q queries) DeleteUser(ctx context.Context, id string) error {
	return changed(q.exec(ctx, `DELETE FROM users WHERE id = ?`, id))
}

func (q queries) SetConsents(ctx context.Context, userID string, cs []identity.Consent) error {
	for _, c := range cs {
		_, err := q.exec(ctx, `INSERT INTO consents (user_id, kind, version, granted, at) VALUES (?,?,?,?,?)
			ON CONFLICT (user_id, kind) DO UPDATE SET version = excluded.version, granted = excluded.granted, at = excluded.at`,
			userID, c.Kind, c.Version, c.Granted, q.t(c.At))
		if err != nil {
			return err
		}
	}
	return nil
}

func (q queries) Consents(ctx context.Context, userID string) ([]identity.Consent, error) {
	return queryAll(ctx, q, func(r scanner) (identity.Consent, error) {
		var c identity.Consent
		err := r.Scan(&c.Kind, &c.Version, &c.Granted, scanTime{&c.At})
		return c, err
	}, `SELECT kind, version, granted, at FROM consents WHERE user_id = ? ORDER BY kind`, userID)
}

// returningRevoked runs a statement ending in RETURNING id, token_digest
// and collects what it ended.
func (q queries) returningRevoked(ctx context.Context, query string, args ...any) ([]identity.Revoked, error) {
	return queryAll(ctx, q, func(r scanner) (identity.Revoked, error) {
		var rv identity.Revoked
		return rv, r.Scan(&rv.ID, &rv.Digest)
	}, query, args...)
}

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryAll runs a query and scans every row it returns with scan.
func queryAll[T any](ctx context.Context, q queries, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
