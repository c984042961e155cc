package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/mcpauthz/mcpauthz/identity"
	"github.com/mcpauthz/mcpauthz/identity/sqlite"
	"github.com/mcpauthz/mcpauthz/identity/token"
)

// The identities of a run: organizations of several tiers and time zones,
// each with an owner, an admin and two members, so the sidecar's caches
// and the limiter see 16 principals in 4 tenants.
var orgPlans = []struct {
	tier identity.Tier
	zone string
}{
	{identity.TierFree, "UTC"},
	{identity.TierPro, "Europe/Paris"},
	{identity.TierEnterprise, "America/New_York"},
	{identity.TierPro, "Asia/Tokyo"},
}

var memberRoles = []identity.Role{identity.RoleOwner, identity.RoleAdmin, identity.RoleMember, identity.RoleMember}

// principals is how many principals a run has.
var principals = len(orgPlans) * len(memberRoles)

// sessionsPerUser is how many sessions each principal has, fewer than
// identity.DefaultConfig().MaxSessions.
const sessionsPerUser = 4

// keyScopes are what every key may do: call tools, which owners, admins
// and members may.
var keyScopes = []string{"mcp:tools:call"}

// principal is a user in the organization it acts in, with its
// credentials.
type principal struct {
	userID, orgID string
	tier          identity.Tier
	apiKey        string
	sessions      []string // session tokens whose active organization is orgID
}

// identities are a run's principals. Request i of a mix acts as principal
// i mod 16.
type identities struct {
	principals []principal
}

// session returns the i-th session of the run, taking each principal's
// first session, then each one's second, and so on: session i belongs to
// principal i mod 16 like request i.
func (ids *identities) session(i int) string {
	n := len(ids.principals)
	i %= n * sessionsPerUser
	return ids.principals[i%n].sessions[i/n]
}

// seedIdentities creates the principals in the store at path through the
// identity service's own code (sign-up, organizations, invitations, API
// keys, logins), before any server opens the store. The HTTP API would do
// the same, but it rate-limits sign-ups and logins per client address to
// a handful, and the run makes 17 users and 65 sessions from one address.
// Without credentials no key or session is made (the keys phase adds its
// own keys).
func seedIdentities(ctx context.Context, path string, auditKey []byte, credentials bool) (*identities, error) {
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	audit, err := identity.NewAuditor(auditKey)
	if err != nil {
		return nil, err
	}
	svc, err := identity.NewService(store, audit, identity.DefaultConfig(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := seeder{svc: svc, meta: identity.Meta{IP: "127.0.0.1", UserAgent: "mcpauthz load"}}
	required, _ := svc.ConsentTerms()
	for kind, v := range required {
		s.consents = append(s.consents, identity.Consent{Kind: kind, Version: v, Granted: true})
	}

	// A platform admin sets the organizations' tiers.
	admin, adminPW, err := s.signUp(ctx, "admin@load.example")
	if err != nil {
		return nil, err
	}
	if _, err := svc.BootstrapAdmin(ctx, admin.Email, s.meta); err != nil {
		return nil, err
	}
	adminLogin, err := svc.Login(ctx, admin.Email, adminPW, s.meta)
	if err != nil {
		return nil, err
	}

	ids := &identities{}
	for o, plan := range orgPlans {
		var org *identity.Org
		for u, role := range memberRoles {
			user, pw, err := s.signUp(ctx, fmt.Sprintf("user%d.%d@load.example", o, u))
			if err != nil {
				return nil, err
			}
			if role == identity.RoleOwner {
				if org, err = svc.CreateOrg(ctx, user.ID, fmt.Sprintf("load %d", o), plan.zone, s.meta); err != nil {
					return nil, fmt.Errorf("organization: %w", err)
				}
				if err := svc.SetOrgTier(ctx, adminLogin.Session, org.ID, plan.tier, s.meta); err != nil {
					return nil, fmt.Errorf("organization tier: %w", err)
				}
			} else {
				_, inv, err := svc.Invite(ctx, org.CreatedBy, org.ID, user.Email, role, s.meta)
				if err != nil {
					return nil, fmt.Errorf("invitation: %w", err)
				}
				if _, err := svc.AcceptInvitation(ctx, user.ID, inv, s.meta); err != nil {
					return nil, fmt.Errorf("invitation: %w", err)
				}
			}
			p := principal{userID: user.ID, orgID: org.ID, tier: plan.tier}
			if credentials {
				if err := s.credentials(ctx, &p, user.Email, pw); err != nil {
					return nil, err
				}
			}
			ids.principals = append(ids.principals, p)
		}
	}
	return ids, nil
}

type seeder struct {
	svc      *identity.Service
	meta     identity.Meta
	consents []identity.Consent
}

// signUp creates a user with a random password and returns both.
func (s *seeder) signUp(ctx context.Context, email string) (*identity.User, string, error) {
	pw := make([]byte, 18)
	rand.Read(pw)
	password := base64.RawURLEncoding.EncodeToString(pw)
	u, err := s.svc.SignUp(ctx, identity.SignUp{Email: email, Password: password, DisplayName: email, Consents: s.consents}, s.meta)
	if err != nil {
		return nil, "", fmt.Errorf("sign-up of %s: %w", email, err)
	}
	return u, password, nil
}

// credentials gives the principal an API key and sessions in its
// organization.
func (s *seeder) credentials(ctx context.Context, p *principal, email, password string) error {
	var err error
	_, p.apiKey, err = s.svc.CreateAPIKey(ctx, p.userID, p.orgID, identity.NewAPIKey{Name: "load", Scopes: keyScopes}, s.meta)
	if err != nil {
		return fmt.Errorf("API key: %w", err)
	}
	for range sessionsPerUser {
		login, err := s.svc.Login(ctx, email, password, s.meta)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if err := s.svc.SetActiveOrg(ctx, login.Session, p.orgID); err != nil {
			return fmt.Errorf("active organization: %w", err)
		}
		p.sessions = append(p.sessions, login.Token)
	}
	return nil
}

// insertKeys writes n API keys of the principals, in turn, straight into
// the store at path in one transaction, and returns their secrets: the
// rows the identity service writes, without its audit events. Through
// the service a key takes a transaction of its own, 0.2–0.3 ms on SQLite
// here (over half a minute for 100,000, more through the HTTP API); in
// one transaction, 17 µs.
func insertKeys(ctx context.Context, path string, ids *identities, n int) ([]string, error) {
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	secrets := make([]string, n)
	now := time.Now()
	err = store.Tx(ctx, func(tx identity.Tx) error {
		for i := range secrets {
			p := ids.principals[i%len(ids.principals)]
			secret, err := token.New(token.KindAPIKey, rand.Reader)
			if err != nil {
				return err
			}
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			d := token.DigestOf(secret)
			k := &identity.APIKey{ID: id.String(), OrgID: p.orgID, CreatedBy: p.userID, Name: fmt.Sprintf("load %d", i),
				TokenDigest: d[:], Hint: token.Hint(secret), Scopes: keyScopes, Tier: p.tier, CreatedAt: now}
			if err := tx.CreateAPIKey(ctx, k); err != nil {
				return err
			}
			secrets[i] = secret
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inserting API keys: %w", err)
	}
	return secrets, nil
}

// writeKey writes a random 32-byte key to path, base64, as the identity
// service and the sidecar read their secrets, and returns it.
func writeKey(path string) ([]byte, error) {
	key := make([]byte, 32)
	rand.Read(key)
	return key, os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}
