package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/password"
	"github.com/mcpauthz/mcpauthz/identity/sqlstore"
	"github.com/mcpauthz/mcpauthz/internal/testpg"
)

// newTestService builds the identity service on the store c names, with
// the cheapest password parameters the policy accepts.
func newTestService(t *testing.T, c IdentityConfig, now func() time.Time) (*identity.Service, *sqlstore.Store) {
	t.Helper()
	store, err := openIdentityStore(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	auditor, err := c.auditor()
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.serviceConfig()
	cfg.Password = password.Params{Memory: 7 * 1024, Iterations: 5, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	svc, err := identity.NewService(store, auditor, cfg, rand.Reader, identity.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	return svc, store
}

// identityBackends are the stores the audit commands are tested on:
// SQLite always, Postgres when MCPAUTHZ_TEST_POSTGRES_URL is set. Each
// returns a migrated store of its own.
var identityBackends = []struct {
	name  string
	store func(t *testing.T) string
	// unguard lets the test edit audit rows the store's triggers protect.
	unguard string
}{
	{name: "sqlite", store: func(t *testing.T) string { return filepath.Join(t.TempDir(), "identity.db") },
		unguard: `DROP TRIGGER audit_events_erase_only`},
	{name: "postgres", store: func(t *testing.T) string {
		s := testpg.Schema(t)
		if code, _, stderr := runCmd(t, nil, "migrate", "-store", s); code != 0 {
			t.Fatalf("migrate: %s", stderr)
		}
		return s
	}, unguard: `ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`},
}

// auditFixture is a store with a few audit events written through the
// identity service, an hour apart from t0.
type auditFixture struct {
	env    []string // the store and the audit key
	store  *sqlstore.Store
	t0     time.Time
	orgID  string
	events []identity.AuditEvent
}

func newAuditFixture(t *testing.T, store string) *auditFixture {
	t.Helper()
	_, keyB64 := testKey(t, 32)
	f := &auditFixture{
		env: []string{"MCPAUTHZ_IDENTITY_STORE=" + store, "MCPAUTHZ_IDENTITY_AUDIT_KEY=" + keyB64},
		t0:  time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
	cfg := Defaults()
	if err := applyEnv(&cfg, f.env); err != nil {
		t.Fatal(err)
	}
	now := f.t0
	svc, s := newTestService(t, cfg.Identity, func() time.Time { return now })
	f.store = s
	ctx := context.Background()
	meta := identity.Meta{IP: "192.0.2.7", UserAgent: "=cmd|' /C calc'!A0"}
	consents := []identity.Consent{{Kind: "privacy_policy", Version: "2026-01", Granted: true}, {Kind: "terms", Version: "2026-01", Granted: true}}
	ada, err := svc.SignUp(ctx, identity.SignUp{Email: "ada@example.com", Password: "correct horse battery staple", Consents: consents}, meta)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	org, err := svc.CreateOrg(ctx, ada.ID, "Analytical Engines", "UTC", meta)
	if err != nil {
		t.Fatal(err)
	}
	f.orgID = org.ID
	now = now.Add(time.Hour)
	if _, _, err := svc.CreateAPIKey(ctx, ada.ID, org.ID, identity.NewAPIKey{Name: "ci"}, meta); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if _, err := svc.SignUp(ctx, identity.SignUp{Email: "bob@example.com", Password: "correct horse battery staple", Consents: consents}, meta); err != nil {
		t.Fatal(err)
	}
	if f.events, err = s.AuditEvents(ctx, identity.AuditFilter{Limit: identity.MaxAuditPage}); err != nil || len(f.events) < 4 {
		t.Fatalf("%d events, %v", len(f.events), err)
	}
	return f
}

func TestAuditVerify(t *testing.T) {
	_, otherKey := testKey(t, 32)
	tests := []struct {
		name   string
		tamper func(t *testing.T, f *auditFixture, unguard string)
		env    func(f *auditFixture) []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "ok/intact chain", code: 0, stdout: []string{"events checked   4", "chain            intact"}},
		{name: "fail/personal data blanked", tamper: func(t *testing.T, f *auditFixture, _ string) {
			// The store lets personal data be erased, but only with the
			// erasure recorded: a silent edit breaks the digest.
			f.exec(t, `UPDATE audit_events SET ip = '' WHERE seq = 2`)
		}, code: 1, stdout: []string{"events checked   1", "BROKEN at event 2: personal data does not match its digest"},
			stderr: "audit chain broken at event 2"},
		{name: "fail/action rewritten", tamper: func(t *testing.T, f *auditFixture, unguard string) {
			f.exec(t, unguard)
			f.exec(t, `UPDATE audit_events SET action = 'org.rename' WHERE seq = 3`)
		}, code: 1, stdout: []string{"events checked   2", "BROKEN at event 3: content does not match its hash"},
			stderr: "audit chain broken at event 3"},
		{name: "fail/wrong audit key", env: func(f *auditFixture) []string {
			return []string{f.env[0], "MCPAUTHZ_IDENTITY_AUDIT_KEY=" + otherKey}
		}, code: 1, stdout: []string{"BROKEN at event 1", "check that the audit key"}, stderr: "audit chain broken"},
		{name: "fail/no audit key", env: func(f *auditFixture) []string { return f.env[:1] },
			code: 1, stderr: "set identity.audit_key_file (a file holding it, base64) or MCPAUTHZ_IDENTITY_AUDIT_KEY"},
	}
	for _, b := range identityBackends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newAuditFixture(t, b.store(t))
					if tt.tamper != nil {
						tt.tamper(t, f, b.unguard)
					}
					env := f.env
					if tt.env != nil {
						env = tt.env(f)
					}
					code, stdout, stderr := runCmd(t, env, "audit", "verify")
					if code != tt.code || !strings.Contains(stderr, tt.stderr) {
						t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
					}
					for _, want := range tt.stdout {
						if !strings.Contains(stdout, want) {
							t.Fatalf("stdout lacks %q:\n%s", want, stdout)
						}
					}
				})
			}
		})
	}
}

func (f *auditFixture) exec(t *testing.T, query string) {
	t.Helper()
	if _, err := f.store.DB().Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestAuditExport(t *testing.T) {
	for _, b := range identityBackends {
		t.Run(b.name, func(t *testing.T) {
			f := newAuditFixture(t, b.store(t))
			all := seqs(f.events)
			var ofOrg []int64
			for _, e := range f.events {
				if e.OrgID == f.orgID {
					ofOrg = append(ofOrg, e.Seq)
				}
			}
			hour := func(h int) string { return f.t0.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
			outFile := filepath.Join(t.TempDir(), "audit.csv")
			tests := []struct {
				name string
				args []string
				csv  bool
				file string
				want []int64
			}{
				{name: "ok/jsonl", args: nil, want: all},
				{name: "ok/csv", args: []string{"-format", "csv"}, csv: true, want: all},
				{name: "ok/one organization", args: []string{"-org", f.orgID}, want: ofOrg},
				{name: "ok/time window", args: []string{"-since", hour(1), "-until", hour(3)}, want: seqsBetween(f.events, f.t0.Add(time.Hour), f.t0.Add(3*time.Hour))},
				{name: "ok/nothing matches, csv header only", args: []string{"-format", "csv", "-org", "org_none"}, csv: true, want: nil},
				{name: "ok/to a file", args: []string{"-format", "csv", "-o", outFile}, csv: true, file: outFile, want: all},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					code, stdout, stderr := runCmd(t, f.env[:1], append([]string{"audit", "export"}, tt.args...)...)
					if code != 0 {
						t.Fatalf("exit %d: %s", code, stderr)
					}
					out := stdout
					if tt.file != "" {
						if stdout != "" {
							t.Fatalf("stdout %q with -o", stdout)
						}
						st, err := os.Stat(tt.file)
						if err != nil {
							t.Fatal(err)
						}
						if st.Mode().Perm() != 0o600 {
							t.Fatalf("export file mode %v, want 0600", st.Mode().Perm())
						}
						b, _ := os.ReadFile(tt.file)
						out = string(b)
					}
					var got []int64
					if tt.csv {
						got = csvSeqs(t, out)
					} else {
						got = jsonlSeqs(t, out)
					}
					if !slices.Equal(got, tt.want) {
						t.Fatalf("exported %v, want %v\n%s", got, tt.want, out)
					}
				})
			}
		})
	}
}

func TestAuditExportUsage(t *testing.T) {
	store := filepath.Join(t.TempDir(), "id.db")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "ok/help", args: []string{"audit", "help"}, code: 0},
		{name: "fail/no subcommand", args: []string{"audit"}, code: 2, stderr: "mcpauthz audit verify"},
		{name: "fail/unknown subcommand", args: []string{"audit", "repair"}, code: 2, stderr: `unknown command "repair"`},
		{name: "fail/bad format", args: []string{"audit", "export", "-format", "xml"}, code: 2, stderr: "-format"},
		{name: "fail/bad since", args: []string{"audit", "export", "-since", "yesterday"}, code: 2, stderr: "-since"},
		{name: "fail/empty window", args: []string{"audit", "export", "-since", "2026-02-01T00:00:00Z", "-until", "2026-01-01T00:00:00Z"},
			code: 2, stderr: "-since must be before -until"},
		{name: "fail/stray argument", args: []string{"audit", "verify", "now"}, code: 2, stderr: `unexpected argument "now"`},
		{name: "fail/output directory missing", args: []string{"audit", "export", "-o", filepath.Join(t.TempDir(), "no", "x.jsonl")},
			code: 1, stderr: "exporting the audit log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, []string{"MCPAUTHZ_IDENTITY_STORE=" + store}, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tt.code, stderr, tt.stderr)
			}
		})
	}
}

// pagedReader serves events a few at a time, as a reader capping pages
// below the limit would, and records the filters it was asked.
type pagedReader struct {
	events  []identity.AuditEvent
	page    int
	filters []identity.AuditFilter
}

func (r *pagedReader) AuditEvents(_ context.Context, f identity.AuditFilter) ([]identity.AuditEvent, error) {
	r.filters = append(r.filters, f)
	var out []identity.AuditEvent
	for _, e := range r.events {
		if e.Seq > f.AfterSeq && e.OrgID == f.OrgID && len(out) < min(r.page, f.Limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func TestExportAuditPages(t *testing.T) {
	var evs []identity.AuditEvent
	for i := range 7 {
		evs = append(evs, identity.AuditEvent{Seq: int64(i + 1), ID: "ev" + string(rune('a'+i)), Action: "user.signup",
			At: time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC), Hash: []byte{byte(i)}})
	}
	for _, format := range exportFormats {
		t.Run("ok/"+format, func(t *testing.T) {
			r := &pagedReader{events: evs, page: 3}
			var out bytes.Buffer
			n, err := exportAudit(context.Background(), r, identity.AuditFilter{}, format, &out)
			if err != nil || n != 7 {
				t.Fatalf("n %d, err %v", n, err)
			}
			var got []int64
			if format == "csv" {
				got = csvSeqs(t, out.String())
			} else {
				got = jsonlSeqs(t, out.String())
			}
			if !slices.Equal(got, seqs(evs)) {
				t.Fatalf("exported %v", got)
			}
			var cursors []int64
			for _, f := range r.filters {
				if f.Limit != identity.MaxAuditPage {
					t.Fatalf("page limit %d", f.Limit)
				}
				cursors = append(cursors, f.AfterSeq)
			}
			if !slices.Equal(cursors, []int64{0, 3, 6, 7}) {
				t.Fatalf("cursors %v, want 0 3 6 7 (stop at the empty page)", cursors)
			}
		})
	}
}

func seqs(evs []identity.AuditEvent) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func seqsBetween(evs []identity.AuditEvent, since, until time.Time) []int64 {
	var out []int64
	for _, e := range evs {
		if !e.At.Before(since) && e.At.Before(until) {
			out = append(out, e.Seq)
		}
	}
	return out
}

func jsonlSeqs(t *testing.T, s string) []int64 {
	t.Helper()
	var out []int64
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var r identity.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.Hash == "" || r.Action == "" {
			t.Fatalf("record %+v", r)
		}
		out = append(out, r.Seq)
	}
	return out
}

// csvSeqs checks that the CSV has exactly one header row, first, and
// returns the sequence numbers of the rows after it.
func csvSeqs(t *testing.T, s string) []int64 {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || rows[0][0] != "seq" {
		t.Fatalf("no header row:\n%s", s)
	}
	var out []int64
	for _, row := range rows[1:] {
		if row[0] == "seq" {
			t.Fatalf("a second header row:\n%s", s)
		}
		n, err := strconv.ParseInt(row[0], 10, 64)
		if err != nil {
			t.Fatalf("row %q: %v", row, err)
		}
		if ua := row[11]; ua != "" && !strings.HasPrefix(ua, "'") {
			t.Fatalf("a formula cell reached the CSV: %q", ua)
		}
		out = append(out, n)
	}
	return out
}
