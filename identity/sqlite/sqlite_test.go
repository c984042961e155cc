package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) identity.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "identity.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.CreateUser(ctx, &identity.User{ID: "u1", Email: "a@example.com", Status: identity.UserActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path) // migrations run again, as a no-op
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UserByID(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
}
