package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const auditColumns = `seq, id, at, action, org_id, actor_id, actor_ref, target_type, target_id, target_ref,
	ip, user_agent, details, pii_digest, pii_erased_at, prev_hash, hash`

func (q queries) AppendAudit(ctx context.Context, e *identity.AuditEvent, link func(*identity.AuditEvent) []byte) error {
	// The head row serializes appends: concurrent writers take turns, so
	// the chain never forks.
	var seq int64
	var prev []byte
	if err := q.row(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+q.d.ForUpdate).Scan(&seq, &prev); err != nil {
		return fmt.Errorf("reading the audit chain head: %w", q.wrap(err))
	}
	e.Seq, e.PrevHash = seq+1, prev
	e.Hash = link(e)
	details, err := jsonArg(e.Details)
	if err != nil {
		return fmt.Errorf("audit details: %w", err)
	}
	if e.Details == nil {
		details = "{}"
	}
	if _, err := q.exec(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.Seq, e.ID, q.t(e.At), e.Action, e.OrgID, e.ActorID, e.ActorRef, e.TargetType, e.TargetID, e.TargetRef,
		e.IP, e.UserAgent, details, e.PIIDigest, q.t(e.PIIErasedAt), e.PrevHash, e.Hash); err != nil {
		return err
	}
	_, err = q.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash)
	return err
}

func scanAudit(row scanner) (identity.AuditEvent, error) {
	var e identity.AuditEvent
	err := row.Scan(&e.Seq, &e.ID, scanTime{&e.At}, &e.Action, &e.OrgID, &e.ActorID, &e.ActorRef, &e.TargetType,
		&e.TargetID, &e.TargetRef, &e.IP, &e.UserAgent, scanJSON{&e.Details}, &e.PIIDigest, scanTime{&e.PIIErasedAt},
		&e.PrevHash, &e.Hash)
	return e, err
}

func (q queries) AuditEvents(ctx context.Context, f identity.AuditFilter) ([]identity.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	add("seq > ?", f.AfterSeq)
	if f.OrgID != "" {
		add("org_id = ?", f.OrgID)
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		add("at >= ?", q.t(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < ?", q.t(f.Until))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	return queryAll(ctx, q, scanAudit, `SELECT `+auditColumns+` FROM audit_events WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT ?`, args...)
}

func (q queries) EraseAuditPII(ctx context.Context, userID string, at time.Time) (int, error) {
	// The IP and user agent are the actor's; right-hand sides see the
	// row as it was, so the CASEs test the actor before it is cleared.
	res, err := q.exec(ctx, `UPDATE audit_events SET
		actor_id = CASE WHEN actor_id = ? THEN '' ELSE actor_id END,
		target_id = CASE WHEN target_id = ? THEN '' ELSE target_id END,
		ip = CASE WHEN actor_id = ? THEN '' ELSE ip END,
		user_agent = CASE WHEN actor_id = ? THEN '' ELSE user_agent END,
		pii_erased_at = ?
		WHERE actor_id = ? OR target_id = ?`, userID, userID, userID, userID, q.t(at), userID, userID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
