package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgconnConfig parses a connection string.
func pgconnConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// The string may hold a password: report the reason, not the input.
		reason := "it cannot be parsed"
		if inner := errors.Unwrap(err); inner != nil {
			reason = inner.Error()
		}
		return nil, fmt.Errorf("postgres connection string: %s", reason)
	}
	return cfg, nil
}
