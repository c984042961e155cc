package sqlstore

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const apiKeyColumns = `id, org_id, created_by, name, token_digest, hint, scopes, allowed_tools, tier,
	ip_allowlist, created_at, expires_at, revoked_at, last_used_at, replaced_by, grace_until`

func scanAPIKey(row scanner) (identity.APIKey, error) {
	var k identity.APIKey
	var tier string
	err := row.Scan(&k.ID, &k.OrgID, &k.CreatedBy, &k.Name, &k.TokenDigest, &k.Hint, scanJSON{&k.Scopes},
		scanJSON{&k.AllowedTools}, &tier, scanJSON{&k.IPAllowlist}, scanTime{&k.CreatedAt}, scanTime{&k.ExpiresAt},
		scanTime{&k.RevokedAt}, scanTime{&k.LastUsedAt}, &k.ReplacedBy, scanTime{&k.GraceUntil})
	k.Tier = identity.Tier(tier)
	return k, err
}

func (q queries) CreateAPIKey(ctx context.Context, k *identity.APIKey) error {
	_, err := q.exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		k.ID, k.OrgID, k.CreatedBy, k.Name, k.TokenDigest, k.Hint, stringsArg(k.Scopes), stringsArg(k.AllowedTools),
		string(k.Tier), stringsArg(k.IPAllowlist), q.t(k.CreatedAt), q.t(k.ExpiresAt), q.t(k.RevokedAt),
		q.t(k.LastUsedAt), k.ReplacedBy, q.t(k.GraceUntil))
	return err
}

func (q queries) APIKeyByDigest(ctx context.Context, digest []byte) (*identity.APIKey, error) {
	k, err := scanAPIKey(q.row(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE token_digest = ?`, digest))
	return &k, q.wrap(err)
}

func (q queries) APIKey(ctx context.Context, orgID, id string) (*identity.APIKey, error) {
	k, err := scanAPIKey(q.row(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE org_id = ? AND id = ?`, orgID, id))
	return &k, q.wrap(err)
}

func (q queries) APIKeys(ctx context.Context, orgID string) ([]identity.APIKey, error) {
	return queryAll(ctx, q, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys WHERE org_id = ? ORDER BY created_at, id`, orgID)
}

func (q queries) APIKeysOfUser(ctx context.Context, userID string) ([]identity.APIKey, error) {
	return queryAll(ctx, q, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys WHERE created_by = ? ORDER BY created_at, id`, userID)
}

func (q queries) RevokeAPIKey(ctx context.Context, orgID, id string, at time.Time) error {
	return changed(q.exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL`,
		q.t(at), orgID, id))
}

func (q queries) ReplaceAPIKey(ctx context.Context, orgID, id, replacedBy string, graceUntil time.Time) error {
	return changed(q.exec(ctx, `UPDATE api_keys SET replaced_by = ?, grace_until = ?
		WHERE org_id = ? AND id = ? AND revoked_at IS NULL AND replaced_by = ''`,
		replacedBy, q.t(graceUntil), orgID, id))
}

func (q queries) RevokeAPIKeysOfUser(ctx context.Context, userID string, at time.Time) ([]identity.Revoked, error) {
	return q.returningRevoked(ctx, `UPDATE api_keys SET revoked_at = ? WHERE created_by = ? AND revoked_at IS NULL
		RETURNING id, token_digest`, q.t(at), userID)
}

func (q queries) DeleteAPIKeysOfUser(ctx context.Context, userID string) ([]identity.Revoked, error) {
	return q.returningRevoked(ctx, `DELETE FROM api_keys WHERE created_by = ? RETURNING id, token_digest`, userID)
}

func (q queries) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	// In id order, so concurrent batches lock rows in the same order.
	for _, id := range slices.Sorted(maps.Keys(lastUsed)) {
		at := lastUsed[id]
		if _, err := q.exec(ctx, `UPDATE api_keys SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, q.t(at), id, q.t(at)); err != nil {
			return err
		}
	}
	return nil
}
