package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mcpauthz/mcpauthz/identity/token"
)

// runKeygen is `mcpauthz keygen`: a signing key for the upstream identity
// token (credentials.upstream_token.key_file), and its public JWK set for
// the upstreams that verify the token.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", string(token.ES256), "signing `algorithm`: ES256, EdDSA or RS256")
	valid := fs.Duration("valid", 365*24*time.Hour, "how long the key signs")
	out := fs.String("o", "", "private key `file` to write (mode 0600, not overwritten)")
	jwks := fs.String("jwks", "", "public JWK set `file` to write for the upstreams")
	if err := parseCommand(fs, args, stderr); err != nil {
		return err
	}
	if *out == "" || *jwks == "" {
		fmt.Fprintln(stderr, "keygen: -o and -jwks are required")
		return errUsage
	}
	if *valid <= 0 {
		fmt.Fprintln(stderr, "keygen: -valid must be positive")
		return errUsage
	}
	now := time.Now().UTC().Truncate(time.Second)
	key, err := token.GenerateKey(token.Alg(*alg), rand.Reader, now)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	key.NotAfter = now.Add(*valid)
	private, err := token.MarshalPrivate(key)
	if err != nil {
		return err
	}
	set, err := token.NewKeySet(key)
	if err != nil {
		return err
	}
	public, err := set.JWKS()
	if err != nil {
		return err
	}
	if err := writeNew(*out, private, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*jwks, public, 0o644); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stdout, "key %s (%s), signs until %s\n  private: %s\n  public:  %s\n", key.ID, key.Alg,
		key.NotAfter.Format(time.RFC3339), *out, *jwks)
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keygen: %s exists; a key is not overwritten", path)
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
