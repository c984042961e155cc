package sqlstore

import (
	"context"
	"database/sql"

	"github.com/mcpauthz/mcpauthz/identity"
)

func (q queries) SaveSigningKey(ctx context.Context, k *identity.StoredSigningKey) error {
	_, err := q.exec(ctx, `INSERT INTO signing_keys (id, alg, sealed, created_at, not_after) VALUES (?,?,?,?,?)`,
		k.ID, k.Alg, k.Sealed, q.t(k.CreatedAt), q.t(k.NotAfter))
	return err
}

func (q queries) SigningKeys(ctx context.Context) ([]identity.StoredSigningKey, error) {
	rows, err := q.query(ctx, `SELECT id, alg, sealed, created_at, not_after FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r *sql.Rows) (identity.StoredSigningKey, error) {
		var k identity.StoredSigningKey
		err := r.Scan(&k.ID, &k.Alg, &k.Sealed, scanTime{&k.CreatedAt}, scanTime{&k.NotAfter})
		return k, err
	})
}

func (q queries) DeleteSigningKey(ctx context.Context, id string) error {
	return changed(q.exec(ctx, `DELETE FROM signing_keys WHERE id = ?`, id))
}
