package extauthz

import (
	"context"
	"encoding/json"
	"math"
	"time"
)

// Credential methods, as input.identity.method names them.
const (
	MethodNone    = "none"
	MethodSession = "session"
	MethodJWT     = "jwt"
	MethodAPIKey  = "api_key"
)

// Identity is the verified caller of a request (input.identity).
type Identity struct {
	Authenticated bool
	Method        string // MethodNone, MethodSession, MethodJWT or MethodAPIKey
	Subject       string
	UserID        string
	Tenant        string
	Tier          string // the tenant's plan: free, pro, enterprise; "" if unknown
	TimeZone      string // the tenant's IANA time zone, whose calendar its quotas follow; "" if unknown
	OrgRole       string
	Roles         []string
	Permissions   []string
	Scopes        []string
	Claims        map[string]any // verified JWT claims, as JSON values
	Session       *SessionInfo
	APIKey        *APIKeyInfo

	// SetCookie is a cookie the verifier asks the client to keep, sent
	// with the response on allow (a signed cache of the session). It is
	// not part of the policy input.
	SetCookie string
}

// AuthTime is when the principal last authenticated, when the credential
// says: the session's auth_time, or a JWT's numeric auth_time claim
// (seconds since the epoch, OIDC Core 1.0 §2).
func (id *Identity) AuthTime() (time.Time, bool) {
	if id.Session != nil && !id.Session.AuthTime.IsZero() {
		return id.Session.AuthTime, true
	}
	if id.Method != MethodJWT {
		return time.Time{}, false
	}
	var secs float64
	switch v := id.Claims["auth_time"].(type) {
	case float64:
		secs = v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, false
		}
		secs = f
	default:
		return time.Time{}, false
	}
	// Beyond ±2^33 s (the year 2242) a claim is nonsense, and the
	// conversion to nanoseconds would overflow.
	if math.IsNaN(secs) || math.Abs(secs) > 1<<33 {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

// SessionInfo describes the session a request was authenticated with.
type SessionInfo struct {
	ID       string
	AuthTime time.Time
}

// APIKeyInfo describes the API key a request was authenticated with.
type APIKeyInfo struct {
	ID           string
	Name         string
	Tier         string
	AllowedTools []string
}

// IsAnonymous reports whether id carries nothing beyond "no credential".
func (id *Identity) IsAnonymous() bool {
	return !id.Authenticated && (id.Method == "" || id.Method == MethodNone) &&
		id.Subject == "" && id.UserID == "" && id.Tenant == "" && id.Tier == "" && id.TimeZone == "" && id.OrgRole == "" &&
		len(id.Roles) == 0 && len(id.Permissions) == 0 && len(id.Scopes) == 0 &&
		len(id.Claims) == 0 && id.Session == nil && id.APIKey == nil
}

// Anonymous is the identity of a request that carries no credential.
var Anonymous = Identity{Method: MethodNone}

// IdentityVerifier establishes who is calling. It returns Anonymous when the
// request carries no credential, and an error wrapping ErrInvalidCredential
// when it carries one that does not verify — never Anonymous in that case.
type IdentityVerifier interface {
	Verify(ctx context.Context, req *Request) (Identity, error)
}

// AnonymousVerifier treats every request as anonymous. It is the verifier
// until credentials are configured.
type AnonymousVerifier struct{}

// Verify returns Anonymous.
func (AnonymousVerifier) Verify(context.Context, *Request) (Identity, error) {
	return Anonymous, nil
}
