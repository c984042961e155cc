package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/identity/redisfeed"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// TestIdentityCommand runs `mcpauthz identity` configured from the
// environment, signs up and in over HTTP and, with Redis, finds the
// session written through and its revocation after logout.
func TestIdentityCommand(t *testing.T) {
	redisURL := os.Getenv("MCPAUTHZ_TEST_REDIS_URL")
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	env := []string{
		"MCPAUTHZ_IDENTITY_STORE=" + filepath.Join(t.TempDir(), "id.db"),
		"MCPAUTHZ_IDENTITY_AUDIT_KEY=" + key,
		"MCPAUTHZ_IDENTITY_KEK=" + key,
		"MCPAUTHZ_IDENTITY_TOKENS_ISSUER=https://id.example.com",
		"MCPAUTHZ_IDENTITY_TOKENS_AUDIENCE=https://mcp.example.com/mcp",
		"MCPAUTHZ_IDENTITY_REDIS=" + redisURL,
		"MCPAUTHZ_IDENTITY_ADMIN_ADDR=127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"identity", "-addr", "127.0.0.1:0"}, env, io.Discard, stderr) }()
	defer func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("identity exited with %d: %s", c, stderr.String())
		}
	}()
	addrRE := regexp.MustCompile(`"msg":"mcpauthz identity serving".*"addr":"([^"]+)"`)
	var api string
	for deadline := time.Now().Add(10 * time.Second); api == ""; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			api = "http://" + m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving: %s", stderr.String())
		}
	}
	if c, body := post(t, api+"/v1/users", http.Header{}, `{"email":"ada@example.com","password":"correct horse battery staple",
		"consents":[{"kind":"privacy_policy","version":"2026-01","granted":true},{"kind":"terms","version":"2026-01","granted":true}]}`); c != 201 {
		t.Fatalf("sign-up: %d %v", c, body)
	}
	c, body := post(t, api+"/v1/sessions", http.Header{}, `{"email":"ada@example.com","password":"correct horse battery staple"}`)
	if c != 201 {
		t.Fatalf("login: %d %v", c, body)
	}
	tok := body["token"].(string)
	if strings.Contains(stderr.String(), tok) {
		t.Fatal("the session token reached the log")
	}
	if redisURL == "" {
		t.Log("MCPAUTHZ_TEST_REDIS_URL unset: the write-through is not checked")
		return
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	d := token.DigestOf(tok)
	rkey := redisfeed.SessionKey(redisfeed.DefaultPrefix, d[:])
	rec, err := rdb.Get(context.Background(), rkey).Bytes()
	if err != nil {
		t.Fatalf("the session is not in Redis: %v", err)
	}
	if _, err := redisfeed.DecodeSession(rec); err != nil {
		t.Fatalf("the session record: %v", err)
	}
	req, _ := http.NewRequest("DELETE", api+"/v1/sessions/current", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	rec, _ = rdb.Get(context.Background(), rkey).Bytes()
	if _, err := redisfeed.DecodeSession(rec); !errors.Is(err, redisfeed.ErrRevoked) {
		t.Fatalf("after logout the Redis record is %q (%v), want a revocation", rec, err)
	}
}

// TestIdentityTLS: with identity.tls the API answers over TLS only.
func TestIdentityTLS(t *testing.T) {
	pki := newPKI(t)
	key := bytes.Repeat([]byte{4}, 32)
	c := Defaults().Identity
	c.Addr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Store = filepath.Join(t.TempDir(), "id.db")
	c.AuditKey, c.KEK = Secret(key), Secret(key)
	c.Tokens.Issuer, c.Tokens.Audience = "https://id.example.com", "https://mcp.example.com/mcp"
	c.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}
	cfg := Defaults()
	cfg.Identity = c
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := buildIdentity(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.caPool}}}
	res, err := client.Get("https://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("over TLS: %d", res.StatusCode)
	}
	if res, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("the API answered in plain HTTP")
		}
	}
}
