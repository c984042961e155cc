package identity_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

func TestAuditLogAccess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	org, owner, admin, _, _ := f.team(t)
	other := f.signUp(t, "other@example.com")
	otherOrg, _ := f.svc.CreateOrg(ctx, other.ID, "Other", "UTC", meta)
	platform := f.signUp(t, "platform@example.com")
	ps := f.promote(t, platform, identity.PlatformAdmin)
	lo, _ := f.svc.Login(ctx, owner.Email, goodPassword, meta)
	la, _ := f.svc.Login(ctx, admin.Email, goodPassword, meta)

	evs, err := f.svc.AuditLog(ctx, lo.Session, identity.AuditFilter{OrgID: org.ID})
	if err != nil || len(evs) == 0 {
		t.Fatalf("owner's own org: %d %v", len(evs), err)
	}
	for _, e := range evs {
		if e.OrgID != org.ID {
			t.Fatalf("owner saw another org's event %+v", e)
		}
	}
	for name, c := range map[string]struct {
		sess *identity.Session
		f    identity.AuditFilter
		err  error
	}{
		"fail/owner, all orgs":    {lo.Session, identity.AuditFilter{}, identity.ErrForbidden},
		"fail/owner, another org": {lo.Session, identity.AuditFilter{OrgID: otherOrg.ID}, identity.ErrForbidden},
		"fail/org admin, own org": {la.Session, identity.AuditFilter{OrgID: org.ID}, identity.ErrForbidden},
	} {
		if _, err := f.svc.AuditLog(ctx, c.sess, c.f); !errors.Is(err, c.err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	all, err := f.svc.AuditLog(ctx, ps, identity.AuditFilter{Limit: 3})
	if err != nil || len(all) != 3 {
		t.Fatalf("platform admin: %d %v", len(all), err)
	}
	next, _ := f.svc.AuditLog(ctx, ps, identity.AuditFilter{AfterSeq: all[2].Seq, Limit: 3})
	if len(next) != 3 || next[0].Seq != all[2].Seq+1 {
		t.Fatalf("cursor paging: %+v", next)
	}
	f.clock.Advance(16 * time.Minute)
	if _, err := f.svc.AuditLog(ctx, ps, identity.AuditFilter{}); !errors.Is(err, identity.ErrFreshAuthRequired) {
		t.Fatalf("stale platform admin: %v", err)
	}
}

func TestAuditExport(t *testing.T) {
	evs := []identity.AuditEvent{
		{Seq: 1, ID: "e1", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Action: "user.login", ActorID: "u1",
			UserAgent: "=HYPERLINK(\"http://evil\")", Details: map[string]any{"session_id": "s1"}, Hash: []byte{0xab}},
		{Seq: 2, ID: "e2", At: time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC), Action: "gdpr.delete", PIIErasedAt: time.Now(), Hash: []byte{0xcd}},
	}
	var jl bytes.Buffer
	if err := identity.WriteAuditJSONL(&jl, evs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(jl.String()), "\n")
	var first, second map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("JSON lines:\n%s", jl.String())
	}
	if first["hash"] != "ab" || first["details"].(map[string]any)["session_id"] != "s1" || second["pii_erased"] != true {
		t.Fatalf("records %v %v", first, second)
	}
	var c bytes.Buffer
	if err := identity.WriteAuditCSV(&c, evs, true); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "seq" || rows[1][11] != `'=HYPERLINK("http://evil")` {
		t.Fatalf("CSV %v %v", rows, err)
	}
}
