package identity_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
)

var auditKey = []byte("0123456789abcdef0123456789abcdef")

// chain appends n sealed events to a fresh store.
func chain(t *testing.T, n int) (*sqlstore.Store, *identity.Auditor) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a, err := identity.NewAuditor(auditKey)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		e := &identity.AuditEvent{
			ID: fmt.Sprintf("e%d", i), At: at.Add(time.Duration(i) * time.Minute), Action: "member.role",
			OrgID: "o1", ActorID: "u1", TargetType: "user", TargetID: fmt.Sprintf("u%d", 2+i%2),
			IP: "10.0.0.1", UserAgent: "curl", Details: map[string]any{"role": "admin", "n": i, "ok": true},
		}
		a.Seal(e)
		if err := s.AppendAudit(context.Background(), e, a.Link); err != nil {
			t.Fatal(err)
		}
	}
	return s, a
}

func TestAuditorRejectsShortKeys(t *testing.T) {
	if _, err := identity.NewAuditor(make([]byte, 31)); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
}

func TestRefs(t *testing.T) {
	a, _ := identity.NewAuditor(auditKey)
	b, _ := identity.NewAuditor([]byte("another key, also thirty-two bytes"))
	if a.Ref("u1") != a.Ref("u1") || a.Ref("u1") == a.Ref("u2") || a.Ref("u1") == b.Ref("u1") || a.Ref("") != "" {
		t.Fatal("refs are not stable, distinct and keyed")
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string // statements run with the append-only triggers dropped
		broken int64
	}{
		{name: "ok/untouched"},
		{name: "ok/personal data erased", tamper: []string{`UPDATE audit_events SET target_id = '', pii_erased_at = 1 WHERE seq = 3`}},
		{name: "fail/action edited", tamper: []string{`UPDATE audit_events SET action = 'user.login' WHERE seq = 3`}, broken: 3},
		{name: "fail/details edited", tamper: []string{`UPDATE audit_events SET details = '{"role":"owner","n":3,"ok":true}' WHERE seq = 4`}, broken: 4},
		{name: "fail/time edited", tamper: []string{`UPDATE audit_events SET at = at + 1 WHERE seq = 2`}, broken: 2},
		{name: "fail/actor pseudonym edited", tamper: []string{`UPDATE audit_events SET actor_ref = 'x' WHERE seq = 5`}, broken: 5},
		{name: "fail/event deleted", tamper: []string{`DELETE FROM audit_events WHERE seq = 4`}, broken: 4},
		{name: "fail/event inserted", tamper: []string{
			`UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3`,
			`UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1003`,
			`INSERT INTO audit_events (seq, id, at, action, pii_digest, prev_hash, hash)
			 SELECT 3, 'forged', at, 'org.delete', pii_digest, hash, hash FROM audit_events WHERE seq = 2`}, broken: 3},
		{name: "fail/personal data edited, not erased", tamper: []string{`UPDATE audit_events SET ip = '192.0.2.9' WHERE seq = 2`}, broken: 2},
		{name: "fail/erasure claimed for a changed actor", tamper: []string{`UPDATE audit_events SET actor_ref = 'x', pii_erased_at = 1 WHERE seq = 6`}, broken: 6},
		{name: "fail/hashes recomputed without the key", tamper: []string{`UPDATE audit_events SET hash = zeroblob(32) WHERE seq = 6`}, broken: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, a := chain(t, 8)
			ctx := context.Background()
			if len(tt.tamper) > 0 {
				for _, q := range append([]string{`DROP TRIGGER audit_events_erase_only`, `DROP TRIGGER audit_events_no_delete`}, tt.tamper...) {
					if err := s.Exec(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
			rep, err := a.Verify(ctx, s)
			if tt.broken == 0 {
				if err != nil {
					t.Fatalf("Verify: %v (%+v)", err, rep)
				}
				if rep.Events != 8 {
					t.Fatalf("checked %d events", rep.Events)
				}
				return
			}
			if !errors.Is(err, identity.ErrChainBroken) || rep.Broken != tt.broken {
				t.Fatalf("got %v, %+v; want broken at %d", err, rep, tt.broken)
			}
		})
	}
}

func TestVerifyCountsErasures(t *testing.T) {
	s, a := chain(t, 6)
	ctx := context.Background()
	n, err := s.EraseAuditPII(ctx, "u3", time.Now())
	if err != nil || n != 3 {
		t.Fatalf("erased %d: %v", n, err)
	}
	rep, err := a.Verify(ctx, s)
	if err != nil || rep.Erased != 3 || rep.Events != 6 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestVerifyWithAnotherKeyFails(t *testing.T) {
	s, _ := chain(t, 2)
	other, _ := identity.NewAuditor([]byte("a different key of thirty-two by"))
	if _, err := other.Verify(context.Background(), s); !errors.Is(err, identity.ErrChainBroken) {
		t.Fatalf("a chain verified under another key: %v", err)
	}
}

// cappedReader returns at most n events a page, whatever is asked.
type cappedReader struct {
	identity.AuditReader
	n int
}

func (r cappedReader) AuditEvents(ctx context.Context, f identity.AuditFilter) ([]identity.AuditEvent, error) {
	f.Limit = min(f.Limit, r.n)
	return r.AuditReader.AuditEvents(ctx, f)
}

// TestVerifyReadsEveryPage: a log longer than a page, read as it is and
// through a reader with smaller pages, is checked to its last event.
func TestVerifyReadsEveryPage(t *testing.T) {
	s, a := chain(t, identity.MaxAuditPage+3)
	for _, r := range []identity.AuditReader{s, cappedReader{s, 7}} {
		rep, err := a.Verify(context.Background(), r)
		if err != nil || rep.Events != identity.MaxAuditPage+3 {
			t.Fatalf("%T: %+v %v", r, rep, err)
		}
	}
}
