// Package testpg gives a test an empty PostgreSQL schema of its own in
// the database at MCPAUTHZ_TEST_POSTGRES_URL, so tests never touch each
// other's tables. Without the variable (a laptop) the test is skipped; CI
// sets it, and an unreachable database fails the test.
package testpg

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// Schema creates a schema for the test, dropped when it ends, and returns
// a connection string that uses it.
func Schema(t testing.TB) string {
	t.Helper()
	url := os.Getenv("MCPAUTHZ_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("MCPAUTHZ_TEST_POSTGRES_URL is not set")
	}
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "mcpauthz_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("creating a test schema (is Postgres reachable?): %v", err)
	}
	t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}
