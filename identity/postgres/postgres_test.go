package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/storetest"
	"github.com/mcpauthz/mcpauthz/internal/testpg"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) identity.Store {
		s, err := Open(context.Background(), testpg.Schema(t), Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenRefusesAnOldSchema(t *testing.T) {
	url := testpg.Schema(t)
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
	url := testpg.Schema(t)
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
