package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection

	"github.com/mcpauthz/mcpauthz/identity/postgres"
	"github.com/mcpauthz/mcpauthz/internal/testpg"
)

// runCmd runs mcpauthz with args and environ.
func runCmd(t *testing.T, environ []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, environ, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMigrate(t *testing.T) {
	type step struct {
		code   int
		stdout string
	}
	tests := []struct {
		name    string
		store   func(t *testing.T) string
		steps   []step
		wantErr string // on stderr, for a failing first step
		hidden  string // must not appear in any output
	}{
		{name: "ok/new sqlite file", store: func(t *testing.T) string { return filepath.Join(t.TempDir(), "id.db") },
			steps: []step{{0, "created, schema at version 1"}, {0, "schema up to date (version 1)"}}},
		{name: "ok/empty sqlite file", store: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "id.db")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, steps: []step{{0, "migrated from version 0 to 1"}, {0, "schema up to date (version 1)"}}},
		{name: "ok/postgres", store: func(t *testing.T) string { return testpg.Schema(t) },
			steps: []step{{0, "migrated from version 0 to 1"}, {0, "schema up to date (version 1)"}}},
		{name: "fail/sqlite directory missing", store: func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "id.db") },
			steps: []step{{1, ""}}, wantErr: "identity store"},
		{name: "fail/postgres unreachable", store: func(*testing.T) string { return "postgres://mcpauthz:hunter2@127.0.0.1:1/identity" },
			steps: []step{{1, ""}}, wantErr: "connecting to postgres", hidden: "hunter2"},
		{name: "fail/unsupported store", store: func(*testing.T) string { return "mysql://root:hunter2@db/identity" },
			steps: []step{{1, ""}}, wantErr: "identity.store", hidden: "hunter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store(t)
			for i, s := range tt.steps {
				code, stdout, stderr := runCmd(t, nil, "migrate", "-store", store)
				if code != s.code || !strings.Contains(stdout, s.stdout) {
					t.Fatalf("run %d: exit %d, want %d\nstdout: %s\nstderr: %s", i+1, code, s.code, stdout, stderr)
				}
				if tt.wantErr != "" && !strings.Contains(stderr, tt.wantErr) {
					t.Fatalf("stderr %q, want %q", stderr, tt.wantErr)
				}
				if tt.hidden != "" && strings.Contains(stdout+stderr, tt.hidden) {
					t.Fatalf("output shows %q:\n%s%s", tt.hidden, stdout, stderr)
				}
			}
			if tt.steps[0].code != 0 {
				return
			}
			// The store opens as the services will open it.
			cfg := identityDefaults()
			cfg.Store = store
			s, err := openIdentityStore(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		})
	}
}

// TestPostgresNeedsMigrate checks that opening an unmigrated Postgres
// store fails with postgres.ErrNotMigrated, naming the command that fixes
// it, and works after `mcpauthz migrate`.
func TestPostgresNeedsMigrate(t *testing.T) {
	store := testpg.Schema(t)
	cfg := identityDefaults()
	cfg.Store = store
	_, err := openIdentityStore(context.Background(), cfg)
	if !errors.Is(err, postgres.ErrNotMigrated) || !strings.Contains(err.Error(), "mcpauthz migrate") {
		t.Fatalf("got %v, want ErrNotMigrated", err)
	}
	if strings.Contains(err.Error(), "search_path") {
		t.Fatalf("the error shows the URL's parameters: %v", err)
	}
	if code, _, stderr := runCmd(t, []string{"MCPAUTHZ_IDENTITY_STORE=" + store}, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	s, err := openIdentityStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestMigrateUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "ok/help", args: []string{"migrate", "-h"}, code: 0, stderr: "-store"},
		{name: "fail/stray argument", args: []string{"migrate", "now"}, code: 2, stderr: `unexpected argument "now"`},
		{name: "fail/unknown flag", args: []string{"migrate", "-force"}, code: 2, stderr: "flag provided but not defined"},
		{name: "fail/invalid configuration", args: []string{"migrate", "-store", ""}, code: 1, stderr: "identity.store: must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tt.code, stderr, tt.stderr)
			}
		})
	}
}
