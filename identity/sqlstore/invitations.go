package sqlstore

import (
	"context"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const invitationColumns = `id, org_id, email, role, token_digest, invited_by, created_at, expires_at, accepted_at, revoked_at`

func scanInvitation(row scanner) (identity.Invitation, error) {
	var inv identity.Invitation
	var role string
	err := row.Scan(&inv.ID, &inv.OrgID, &inv.Email, &role, &inv.TokenDigest, &inv.InvitedBy,
		scanTime{&inv.CreatedAt}, scanTime{&inv.ExpiresAt}, scanTime{&inv.AcceptedAt}, scanTime{&inv.RevokedAt})
	inv.Role = identity.Role(role)
	return inv, err
}

func (q queries) CreateInvitation(ctx context.Context, inv *identity.Invitation) error {
	_, err := q.exec(ctx, `INSERT INTO invitations (`+invitationColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		inv.ID, inv.OrgID, inv.Email, string(inv.Role), inv.TokenDigest, inv.InvitedBy,
		q.t(inv.CreatedAt), q.t(inv.ExpiresAt), q.t(inv.AcceptedAt), q.t(inv.RevokedAt))
	return err
}

func (q queries) InvitationByDigest(ctx context.Context, digest []byte) (*identity.Invitation, error) {
	inv, err := scanInvitation(q.row(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE token_digest = ?`, digest))
	return &inv, q.wrap(err)
}

func (q queries) Invitations(ctx context.Context, orgID string) ([]identity.Invitation, error) {
	return queryAll(ctx, q, scanInvitation, `SELECT `+invitationColumns+` FROM invitations WHERE org_id = ? ORDER BY created_at, id`, orgID)
}

func (q queries) CloseInvitation(ctx context.Context, orgID, id string, acceptedAt, revokedAt time.Time) error {
	return changed(q.exec(ctx, `UPDATE invitations SET accepted_at = ?, revoked_at = ?
		WHERE org_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
		q.t(acceptedAt), q.t(revokedAt), orgID, id))
}
