package sqlstore

import (
	"context"

	"github.com/mcpauthz/mcpauthz/identity"
)

func (q queries) SaveSigningKey(ctx context.Context, k *identity.StoredSigningKey) error {
	_, err := q.exec(ctx, `INSERT INTO signing_keys (id, alg, sealed, created_at, not_after) VALUES (?,?,?,?,?)`,
		k.ID, k.Alg, k.Sealed, q.t(k.CreatedAt), q.t(k.NotAfter))
	return err
}

func (q queries) SigningKeys(ctx context.Context) ([]identity.StoredSigningKey, error) {
	return queryAll(ctx, q, func(r scanner) (identity.StoredSigningKey, error) {
		var k identity.StoredSigningKey
		err := r.Scan(&k.ID, &k.Alg, &k.Sealed, scanTime{&k.CreatedAt}, scanTime{&k.NotAfter})
		return k, err
	}, `SELECT id, alg, sealed, created_at, not_after FROM signing_keys ORDER BY created_at, id`)
}

func (q queries) DeleteSigningKey(ctx context.Context, id string) error {
	return changed(q.exec(ctx, `DELETE FROM signing_keys WHERE id = ?`, id))
}

// signingKeysLock names the advisory lock of the signing keys.
const signingKeysLock = 0x6d6370617574 // "mcpaut"

func (q queries) LockSigningKeys(ctx context.Context) error {
	if q.d.AdvisoryLock == "" {
		return nil
	}
	_, err := q.exec(ctx, q.d.AdvisoryLock, int64(signingKeysLock))
	return err
}
