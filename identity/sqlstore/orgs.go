package sqlstore

import (
	"context"

	"github.com/mcpauthz/mcpauthz/identity"
)

const orgColumns = `id, name, tier, time_zone, created_by, created_at, updated_at`

const membershipColumns = `org_id, user_id, role, created_at`

func scanOrg(row scanner) (identity.Org, error) {
	var o identity.Org
	var tier string
	err := row.Scan(&o.ID, &o.Name, &tier, &o.TimeZone, &o.CreatedBy, scanTime{&o.CreatedAt}, scanTime{&o.UpdatedAt})
	o.Tier = identity.Tier(tier)
	return o, err
}

func (q queries) CreateOrg(ctx context.Context, o *identity.Org) error {
	_, err := q.exec(ctx, `INSERT INTO orgs (`+orgColumns+`) VALUES (?,?,?,?,?,?,?)`,
		o.ID, o.Name, string(o.Tier), o.TimeZone, o.CreatedBy, q.t(o.CreatedAt), q.t(o.UpdatedAt))
	return err
}

func (q queries) OrgByID(ctx context.Context, id string) (*identity.Org, error) {
	o, err := scanOrg(q.row(ctx, `SELECT `+orgColumns+` FROM orgs WHERE id = ?`, id))
	return &o, q.wrap(err)
}

func (q queries) UpdateOrg(ctx context.Context, o *identity.Org) error {
	return changed(q.exec(ctx, `UPDATE orgs SET name = ?, tier = ?, time_zone = ?, updated_at = ? WHERE id = ?`,
		o.Name, string(o.Tier), o.TimeZone, q.t(o.UpdatedAt), o.ID))
}

func (q queries) DeleteOrg(ctx context.Context, id string) error {
	return changed(q.exec(ctx, `DELETE FROM orgs WHERE id = ?`, id))
}

func (q queries) CountOrgsCreatedBy(ctx context.Context, userID string) (int, error) {
	var n int
	err := q.row(ctx, `SELECT count(*) FROM orgs WHERE created_by = ?`, userID).Scan(&n)
	return n, q.wrap(err)
}

func (q queries) LockOrg(ctx context.Context, orgID string) error {
	var id string
	err := q.row(ctx, `SELECT id FROM orgs WHERE id = ?`+q.d.ForUpdate, orgID).Scan(&id)
	return q.wrap(err)
}

func (q queries) AddMember(ctx context.Context, m *identity.Membership) error {
	_, err := q.exec(ctx, `INSERT INTO memberships (`+membershipColumns+`) VALUES (?,?,?,?)`,
		m.OrgID, m.UserID, string(m.Role), q.t(m.CreatedAt))
	return err
}

func scanMembership(row scanner) (identity.Membership, error) {
	var m identity.Membership
	var role string
	err := row.Scan(&m.OrgID, &m.UserID, &role, scanTime{&m.CreatedAt})
	m.Role = identity.Role(role)
	return m, err
}

func (q queries) Membership(ctx context.Context, orgID, userID string) (*identity.Membership, error) {
	m, err := scanMembership(q.row(ctx, `SELECT `+membershipColumns+` FROM memberships
		WHERE org_id = ? AND user_id = ?`, orgID, userID))
	return &m, q.wrap(err)
}

func (q queries) SetMemberRole(ctx context.Context, orgID, userID string, r identity.Role) error {
	return changed(q.exec(ctx, `UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?`,
		string(r), orgID, userID))
}

func (q queries) RemoveMember(ctx context.Context, orgID, userID string) error {
	return changed(q.exec(ctx, `DELETE FROM memberships WHERE org_id = ? AND user_id = ?`, orgID, userID))
}

func (q queries) Members(ctx context.Context, orgID string) ([]identity.Membership, error) {
	return queryAll(ctx, q, scanMembership, `SELECT `+membershipColumns+` FROM memberships
		WHERE org_id = ? ORDER BY created_at, user_id`, orgID)
}

func (q queries) CountOwners(ctx context.Context, orgID string) (int, error) {
	var n int
	err := q.row(ctx, `SELECT count(*) FROM memberships WHERE org_id = ? AND role = ?`, orgID, string(identity.RoleOwner)).Scan(&n)
	return n, q.wrap(err)
}

func (q queries) MembershipsOfUser(ctx context.Context, userID string) ([]identity.Membership, error) {
	return queryAll(ctx, q, scanMembership, `SELECT `+membershipColumns+` FROM memberships
		WHERE user_id = ? ORDER BY created_at, org_id`, userID)
}
