package identity

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// MaxAuditPage bounds one page of audit events.
const MaxAuditPage = 500

// AuditLog returns audit events for the session's user: every event for a
// platform admin with a fresh session; for anyone else, only events of an
// organization they own, and f.OrgID must name it. Pages follow AfterSeq.
func (s *Service) AuditLog(ctx context.Context, sess *Session, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 || f.Limit > MaxAuditPage {
		f.Limit = MaxAuditPage
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	isAdmin := isPlatformAdmin(u, false)
	switch {
	case isAdmin && s.Fresh(sess):
	case isAdmin && f.OrgID == "":
		return nil, ErrFreshAuthRequired
	case f.OrgID == "":
		return nil, ErrForbidden
	default:
		if _, err := atLeast(ctx, s.store, f.OrgID, u.ID, RoleOwner); err != nil {
			return nil, err
		}
	}
	return s.store.AuditEvents(ctx, f)
}

// AuditRecord is an audit event as exported and served: hashes in hex,
// and whether its personal data was erased.
type AuditRecord struct {
	Seq        int64          `json:"seq"`
	ID         string         `json:"id"`
	At         time.Time      `json:"at"`
	Action     string         `json:"action"`
	OrgID      string         `json:"org_id,omitempty"`
	ActorID    string         `json:"actor_id,omitempty"`
	ActorRef   string         `json:"actor_ref,omitempty"`
	TargetType string         `json:"target_type,omitempty"`
	TargetID   string         `json:"target_id,omitempty"`
	TargetRef  string         `json:"target_ref,omitempty"`
	IP         string         `json:"ip,omitempty"`
	UserAgent  string         `json:"user_agent,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
	Erased     bool           `json:"pii_erased,omitempty"`
	Hash       string         `json:"hash"`
}

// Record returns the event as exported.
func (e *AuditEvent) Record() AuditRecord {
	return AuditRecord{Seq: e.Seq, ID: e.ID, At: e.At, Action: e.Action, OrgID: e.OrgID, ActorID: e.ActorID,
		ActorRef: e.ActorRef, TargetType: e.TargetType, TargetID: e.TargetID, TargetRef: e.TargetRef, IP: e.IP,
		UserAgent: e.UserAgent, Details: e.Details, Erased: !e.PIIErasedAt.IsZero(), Hash: hex.EncodeToString(e.Hash)}
}

// WriteAuditJSONL writes events as JSON lines.
func WriteAuditJSONL(w io.Writer, evs []AuditEvent) error {
	enc := json.NewEncoder(w)
	for i := range evs {
		if err := enc.Encode(evs[i].Record()); err != nil {
			return err
		}
	}
	return nil
}

var auditCSVHeader = []string{"seq", "id", "at", "action", "org_id", "actor_id", "actor_ref", "target_type",
	"target_id", "target_ref", "ip", "user_agent", "details", "pii_erased", "hash"}

// WriteAuditCSV writes events as CSV with a header row. Cells that a
// spreadsheet would run as a formula are prefixed with a quote.
func WriteAuditCSV(w io.Writer, evs []AuditEvent, header bool) error {
	cw := csv.NewWriter(w)
	if header {
		if err := cw.Write(auditCSVHeader); err != nil {
			return err
		}
	}
	for i := range evs {
		r := evs[i].Record()
		details := ""
		if len(r.Details) > 0 {
			b, err := json.Marshal(r.Details)
			if err != nil {
				return fmt.Errorf("event %d details: %w", r.Seq, err)
			}
			details = string(b)
		}
		row := []string{strconv.FormatInt(r.Seq, 10), r.ID, r.At.UTC().Format(time.RFC3339Nano), r.Action, r.OrgID,
			r.ActorID, r.ActorRef, r.TargetType, r.TargetID, r.TargetRef, r.IP, r.UserAgent, details,
			strconv.FormatBool(r.Erased), r.Hash}
		for j, cell := range row {
			row[j] = defuseFormula(cell)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// defuseFormula keeps spreadsheets from evaluating attacker-chosen cells
// such as a user agent starting with "=".
func defuseFormula(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r') {
		return "'" + s
	}
	return s
}
