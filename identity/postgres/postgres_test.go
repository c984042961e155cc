package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/storetest"
)

// testURL returns the test database, or skips: CI sets it and fails if
// the database is unreachable.
func testURL(t *testing.T) string {
	url := os.Getenv("MCPAUTHZ_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("MCPAUTHZ_TEST_POSTGRES_URL is not set")
	}
	return url
}

// freshSchema creates an empty schema for one test and returns a
// connection string that uses it.
func freshSchema(t *testing.T, url string) string {
	t.Helper()
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

func TestContract(t *testing.T) {
	url := testURL(t)
	storetest.Run(t, func(t *testing.T) identity.Store {
		s, err := Open(context.Background(), freshSchema(t, url), Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenRefusesAnOldSchema(t *testing.T) {
	url := freshSchema(t, testURL(t))
	_, err := Open(context.Background(), url, Options{})
	if !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("got %v, want ErrNotMigrated", err)
	}
	s, err := Open(context.Background(), url, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatalf("after migrating: %v", err)
	}
	s.Close()
}

func TestPoolOptions(t *testing.T) {
	url := freshSchema(t, testURL(t))
	for _, c := range []struct {
		opts Options
		want int
	}{{Options{Migrate: true}, 4}, {Options{Migrate: true, MaxConns: 2}, 2}, {Options{Migrate: true, MaxConns: 16}, 16}} {
		s, err := Open(context.Background(), url, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.DB().Stats().MaxOpenConnections; got != c.want {
			t.Errorf("MaxConns %d: pool of %d, want %d", c.opts.MaxConns, got, c.want)
		}
		s.Close()
	}
}

func TestConnectionStringErrorsHideThePassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://user:s3cret-pw@[bad", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("err %v", err)
	}
}
