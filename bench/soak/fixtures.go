package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/postgres"
)

// The population the load is made of.
const (
	numOrgs       = 8
	usersPerOrg   = 3 // an owner and two members, one session each
	keysPerOrg    = 3
	victimSession = 4 // second sessions of members, revoked mid-run
	victimKeys    = 4 // extra keys, revoked mid-run
)

type person struct {
	name, email, password, ip, id string
}

type session struct {
	id, token string
	user      *person
	orgID     string
}

type apiKey struct {
	id, secret, orgID string
}

type org struct {
	id       string
	owner    *session
	sessions []*session // owner's first
	keys     []*apiKey
}

// fixture is what the soak created through the identity API.
type fixture struct {
	admin *session
	orgs  []*org
	// Credentials revoked mid-run, each with the session that revokes it.
	victimSessions []*session
	revokers       []*session
	victimKeys     []*apiKey
	victimKeyOrgs  []*org
}

func newPerson(role string, i int) *person {
	pw := make([]byte, 18)
	rand.Read(pw)
	return &person{
		name:     fmt.Sprintf("Soak %s %d", role, i),
		email:    fmt.Sprintf("%s-%d@soak.example.com", role, i),
		password: base64.RawURLEncoding.EncodeToString(pw),
		// The API's rate limits are per client (and per /24): each person
		// comes from an address of its own.
		ip: fmt.Sprintf("10.77.%d.%d", i/200, i%200+1),
	}
}

// bootstrapAdmin makes the user a platform admin on the operator's
// authority, as an operator does with the identity store itself
// (identity.Service.BootstrapAdmin); it is audited like any change.
func bootstrapAdmin(ctx context.Context, storeURL string, auditKey []byte, email string) error {
	store, err := postgres.Open(ctx, storeURL, postgres.Options{MaxConns: 1})
	if err != nil {
		return err
	}
	defer store.Close()
	audit, err := identity.NewAuditor(auditKey)
	if err != nil {
		return err
	}
	svc, err := identity.NewService(store, audit, identity.DefaultConfig(), rand.Reader)
	if err != nil {
		return err
	}
	_, err = svc.BootstrapAdmin(ctx, email, identity.Meta{IP: "127.0.0.1", UserAgent: "mcpauthz-soak"})
	return err
}

// setup creates the organizations (enterprise tier, so limits leave room
// for the load), their members' sessions and their API keys, and the
// credentials to revoke later.
func setup(ctx context.Context, c *idClient, st *stack) (*fixture, error) {
	consents, err := c.consents(ctx)
	if err != nil {
		return nil, fmt.Errorf("consents: %w", err)
	}
	n := 0
	signUp := func(role string) (*person, error) {
		n++
		p := newPerson(role, n)
		return p, c.signUp(ctx, p, consents)
	}
	f := &fixture{}
	adminUser, err := signUp("admin")
	if err != nil {
		return nil, fmt.Errorf("sign-up: %w", err)
	}
	err = bootstrapAdmin(ctx, st.pg.url("mcpauthz"), st.auditKey, adminUser.email)
	c.count("admin.bootstrap", err)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping the platform admin: %w", err)
	}
	if f.admin, err = c.login(ctx, adminUser, ""); err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	for i := range numOrgs {
		o := &org{}
		owner, err := signUp("owner")
		if err != nil {
			return nil, err
		}
		if o.owner, err = c.login(ctx, owner, ""); err != nil {
			return nil, err
		}
		if o.id, err = c.createOrg(ctx, o.owner, fmt.Sprintf("soak-%d", i)); err != nil {
			return nil, err
		}
		if err := c.setActiveOrg(ctx, o.owner, o.id); err != nil {
			return nil, err
		}
		o.owner.orgID = o.id
		// Keys take their organization's tier when they are made.
		if err := c.setTier(ctx, f.admin, o.id, "enterprise"); err != nil {
			return nil, fmt.Errorf("tier: %w", err)
		}
		o.sessions = append(o.sessions, o.owner)
		for range usersPerOrg - 1 {
			u, err := signUp("member")
			if err != nil {
				return nil, err
			}
			s, err := c.login(ctx, u, "")
			if err != nil {
				return nil, err
			}
			if err := c.invite(ctx, o.owner, o.id, s); err != nil {
				return nil, fmt.Errorf("invitation: %w", err)
			}
			if err := c.setActiveOrg(ctx, s, o.id); err != nil {
				return nil, err
			}
			s.orgID = o.id
			o.sessions = append(o.sessions, s)
		}
		for k := range keysPerOrg {
			key, err := c.createKey(ctx, o.owner, o.id, fmt.Sprintf("soak-%d-%d", i, k))
			if err != nil {
				return nil, fmt.Errorf("API key: %w", err)
			}
			o.keys = append(o.keys, key)
		}
		f.orgs = append(f.orgs, o)
	}
	for i := range victimSession {
		member := f.orgs[i%numOrgs].sessions[1]
		s, err := c.login(ctx, member.user, member.orgID)
		if err != nil {
			return nil, err
		}
		s.orgID = member.orgID
		f.victimSessions, f.revokers = append(f.victimSessions, s), append(f.revokers, member)
	}
	for i := range victimKeys {
		o := f.orgs[(numOrgs-1-i)%numOrgs]
		key, err := c.createKey(ctx, o.owner, o.id, fmt.Sprintf("soak-victim-%d", i))
		if err != nil {
			return nil, err
		}
		f.victimKeys, f.victimKeyOrgs = append(f.victimKeys, key), append(f.victimKeyOrgs, o)
	}
	return f, nil
}

// churn writes to the identity service all along, whatever fails: it
// creates an API key in the first organization and revokes it, one write
// a second, so the audit log is compared with writes made under every
// fault.
func churn(ctx context.Context, c *idClient, f *fixture, stop <-chan struct{}) {
	o := f.orgs[0]
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var made *apiKey
	for n := 1; ; n++ {
		if _, ok := next(ctx, stop, tick); !ok {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if made == nil {
			made, _ = c.createKey(wctx, o.owner, o.id, fmt.Sprintf("churn-%d", n))
		} else {
			err := c.revokeKey(wctx, o.owner, made)
			// A refusal other than a server error means the key is gone
			// (an earlier attempt went through unanswered).
			var ae *apiError
			if err == nil || errors.As(err, &ae) && ae.Status < 500 {
				made = nil
			}
		}
		cancel()
	}
}
