package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// idClient calls the identity service's HTTP API. It keeps count of the
// writes: the audit log must hold one event for each write that
// succeeded, none for one that failed, and may or may not hold one for a
// write that got no answer.
type idClient struct {
	base string
	http *http.Client

	mu      sync.Mutex
	writes  map[string]*writeCount // by the audit action a write records
	lastErr string
}

type writeCount struct {
	OK      int `json:"ok"`      // answered 2xx
	Failed  int `json:"failed"`  // answered with an error status
	Unknown int `json:"unknown"` // no answer: it may have committed
}

// apiError is an error status from the API.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("identity API: %d %s", e.Status, e.Body) }

func newIDClient(addr string) *idClient {
	return &idClient{
		base:   "http://" + addr,
		http:   &http.Client{Timeout: 10 * time.Second},
		writes: map[string]*writeCount{},
	}
}

// call is one API request. auth is a session token or "" and ip the
// client address the soak, as a trusted proxy, forwards (the API's rate
// limits are per client).
type call struct {
	method, path string
	auth, apiKey string
	ip           string
	in, out      any
}

func (c *idClient) do(ctx context.Context, k call) error {
	var body io.Reader
	if k.in != nil {
		b, err := json.Marshal(k.in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, c.base+k.path, body)
	if err != nil {
		return err
	}
	if k.in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.auth != "" {
		req.Header.Set("Authorization", "Bearer "+k.auth)
	}
	if k.apiKey != "" {
		req.Header.Set("X-Api-Key", k.apiKey)
	}
	if k.ip != "" {
		req.Header.Set("X-Forwarded-For", k.ip)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(data))}
	}
	if k.out != nil {
		return json.Unmarshal(data, k.out)
	}
	return nil
}

// write is a call that records the audit action: it is counted by its
// outcome.
func (c *idClient) write(ctx context.Context, action string, k call) error {
	err := c.do(ctx, k)
	c.count(action, err)
	return err
}

func (c *idClient) count(action string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes[action]
	if w == nil {
		w = &writeCount{}
		c.writes[action] = w
	}
	var ae *apiError
	switch {
	case err == nil:
		w.OK++
	case errors.As(err, &ae):
		w.Failed++
		c.lastErr = err.Error()
	default:
		w.Unknown++
		c.lastErr = err.Error()
	}
}

// counts returns a copy of the write counts.
func (c *idClient) counts() map[string]writeCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]writeCount, len(c.writes))
	for k, v := range c.writes {
		out[k] = *v
	}
	return out
}

// The API's answers the soak reads.
type (
	userOut  struct{ ID string }
	loginOut struct {
		Token   string
		Session struct{ ID string }
	}
	orgOut     struct{ ID string }
	invitedOut struct{ Token string }
	keyOut     struct {
		APIKey struct{ ID string } `json:"api_key"`
		Secret string
	}
	tokenOut struct {
		AccessToken string `json:"access_token"`
	}
	consentsOut struct {
		Required map[string]string
	}
)

type consent struct {
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Granted bool   `json:"granted"`
}

func (c *idClient) signUp(ctx context.Context, u *person, consents []consent) error {
	var out userOut
	err := c.write(ctx, "user.signup", call{method: "POST", path: "/v1/users", ip: u.ip, out: &out,
		in: map[string]any{"email": u.email, "password": u.password, "display_name": u.name, "consents": consents}})
	u.id = out.ID
	return err
}

// login opens a session of u, with orgID as its active organization if
// set.
func (c *idClient) login(ctx context.Context, u *person, orgID string) (*session, error) {
	var out loginOut
	if err := c.write(ctx, "user.login", call{method: "POST", path: "/v1/sessions", ip: u.ip, out: &out,
		in: map[string]string{"email": u.email, "password": u.password}}); err != nil {
		return nil, err
	}
	s := &session{id: out.Session.ID, token: out.Token, user: u}
	if orgID != "" {
		if err := c.setActiveOrg(ctx, s, orgID); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// setActiveOrg changes the session; it is not an audited change.
func (c *idClient) setActiveOrg(ctx context.Context, s *session, orgID string) error {
	return c.do(ctx, call{method: "PUT", path: "/v1/sessions/current/org", auth: s.token, ip: s.user.ip,
		in: map[string]string{"org_id": orgID}})
}

func (c *idClient) createOrg(ctx context.Context, s *session, name string) (string, error) {
	var out orgOut
	err := c.write(ctx, "org.create", call{method: "POST", path: "/v1/orgs", auth: s.token, ip: s.user.ip, out: &out,
		in: map[string]string{"name": name, "time_zone": "UTC"}})
	return out.ID, err
}

func (c *idClient) setTier(ctx context.Context, admin *session, orgID, tier string) error {
	return c.write(ctx, "admin.org_tier", call{method: "PUT", path: "/v1/admin/orgs/" + orgID + "/tier",
		auth: admin.token, ip: admin.user.ip, in: map[string]string{"tier": tier}})
}

// invite adds u to the organization as a member: an invitation and its
// acceptance.
func (c *idClient) invite(ctx context.Context, owner *session, orgID string, u *session) error {
	var out invitedOut
	if err := c.write(ctx, "invitation.create", call{method: "POST", path: "/v1/orgs/" + orgID + "/invitations",
		auth: owner.token, ip: owner.user.ip, out: &out,
		in: map[string]string{"email": u.user.email, "role": "member"}}); err != nil {
		return err
	}
	return c.write(ctx, "invitation.accept", call{method: "POST", path: "/v1/invitations/accept",
		auth: u.token, ip: u.user.ip, in: map[string]string{"token": out.Token}})
}

func (c *idClient) createKey(ctx context.Context, s *session, orgID, name string) (*apiKey, error) {
	var out keyOut
	if err := c.write(ctx, "api_key.create", call{method: "POST", path: "/v1/orgs/" + orgID + "/api-keys",
		auth: s.token, ip: s.user.ip, out: &out,
		in: map[string]any{"name": name, "scopes": []string{"mcp:tools:call", "mcp:tools:list"}}}); err != nil {
		return nil, err
	}
	return &apiKey{id: out.APIKey.ID, secret: out.Secret, orgID: orgID}, nil
}

func (c *idClient) revokeKey(ctx context.Context, s *session, k *apiKey) error {
	return c.write(ctx, "api_key.revoke", call{method: "DELETE", path: "/v1/orgs/" + k.orgID + "/api-keys/" + k.id,
		auth: s.token, ip: s.user.ip})
}

// revokeSession ends victim using another session of the same user.
func (c *idClient) revokeSession(ctx context.Context, by, victim *session) error {
	return c.write(ctx, "session.revoke", call{method: "DELETE", path: "/v1/sessions/" + victim.id,
		auth: by.token, ip: by.user.ip})
}

// token exchanges a session token or an API key for a JWT.
func (c *idClient) token(ctx context.Context, sessionToken, apiKey string) (string, error) {
	var out tokenOut
	err := c.do(ctx, call{method: "POST", path: "/v1/token", auth: sessionToken, apiKey: apiKey, in: struct{}{}, out: &out})
	return out.AccessToken, err
}

func (c *idClient) consents(ctx context.Context) ([]consent, error) {
	var out consentsOut
	if err := c.do(ctx, call{method: "GET", path: "/v1/consents", out: &out}); err != nil {
		return nil, err
	}
	var cs []consent
	for kind, v := range out.Required {
		cs = append(cs, consent{Kind: kind, Version: v, Granted: true})
	}
	return cs, nil
}
