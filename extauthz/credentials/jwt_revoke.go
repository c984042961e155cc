package credentials

import (
	"sync"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// jwtRevKey is what revocations are matched against: never the token.
type jwtRevKey struct {
	sub, user, tenant, jti, sid string
	iat                         time.Time
}

// jwtRevSubject is a revoked subject (tenant ""), a subject in one tenant,
// or a whole tenant (sub "").
type jwtRevSubject struct{ sub, tenant string }

type jwtRevAt struct{ at, until time.Time }

// jwtRevocations holds revocations until every token they refuse has
// expired.
type jwtRevocations struct {
	mu       sync.RWMutex
	subjects map[jwtRevSubject]jwtRevAt
	ids      map[string]time.Time // "jti:…" and "sid:…" (OIDC session id), until
	sweepAt  int
}

// check returns errJWTRevoked if a revocation refuses the token.
func (r *jwtRevocations) check(k *jwtRevKey, now time.Time) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.subjects) == 0 && len(r.ids) == 0 {
		return nil
	}
	for _, id := range [...]string{"jti:" + k.jti, "sid:" + k.sid} {
		if len(id) == 4 {
			continue
		}
		if until, ok := r.ids[id]; ok && now.Before(until) {
			return jwtInvalid(errJWTRevoked, "%s", id[:3])
		}
	}
	for _, s := range [...]jwtRevSubject{{k.sub, ""}, {k.user, ""}, {k.sub, k.tenant}, {k.user, k.tenant}, {"", k.tenant}} {
		if s == (jwtRevSubject{}) {
			continue
		}
		if e, ok := r.subjects[s]; ok && now.Before(e.until) && !k.iat.After(e.at) {
			return jwtInvalid(errJWTRevoked, "subject")
		}
	}
	return nil
}

func (r *jwtRevocations) addSubject(s jwtRevSubject, at, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subjects == nil {
		r.subjects = map[jwtRevSubject]jwtRevAt{}
	}
	if e, ok := r.subjects[s]; ok && now.Before(e.until) {
		at, until = jwtMaxTime(at, e.at), jwtMaxTime(until, e.until)
	}
	r.subjects[s] = jwtRevAt{at: at, until: until}
	r.sweep(now)
}

// addID revokes a "jti:…" or "sid:…" until until.
func (r *jwtRevocations) addID(id string, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]time.Time{}
	}
	r.ids[id] = jwtMaxTime(until, r.ids[id])
	r.sweep(now)
}

// sweep drops expired revocations once the maps have doubled since the
// last sweep, so memory stays proportional to the live ones.
func (r *jwtRevocations) sweep(now time.Time) {
	if len(r.subjects)+len(r.ids) < r.sweepAt {
		return
	}
	for k, e := range r.subjects {
		if !now.Before(e.until) {
			delete(r.subjects, k)
		}
	}
	for k, until := range r.ids {
		if !now.Before(until) {
			delete(r.ids, k)
		}
	}
	r.sweepAt = max(1024, 2*(len(r.subjects)+len(r.ids)))
}

func jwtMinTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func jwtMaxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// keep is how long a revocation made at at must be kept: until every
// token it refuses (iat ≤ at, so exp ≤ at + MaxTokenLifetime) has expired,
// leeway included.
func (v *JWTVerifier) keep(at time.Time) time.Time {
	return at.Add(v.cfg.MaxTokenLifetime + v.maxLeeway)
}

// RevokeSubject refuses the tokens of subject sub (the mapped subject or
// user id: for the identity service, a user id, or "key:<id>" for an API
// key) issued at or before at, by iat — cached ones included. Used when a
// user is banned or deleted.
func (v *JWTVerifier) RevokeSubject(sub string, at time.Time) {
	v.RevokeMember(sub, "", at)
}

// RevokeMember refuses the tokens of subject sub for tenant issued at or
// before at: a member removed from an organization or whose role changed.
// An empty tenant revokes the subject in every tenant; an empty sub, every
// token of the tenant.
func (v *JWTVerifier) RevokeMember(sub, tenant string, at time.Time) {
	if sub == "" && tenant == "" {
		return
	}
	now := v.now()
	if until := v.keep(at); now.Before(until) {
		v.revoked.addSubject(jwtRevSubject{sub, tenant}, at, until, now)
	}
}

// RevokeJTI refuses the token with jti until until (its exp), or for
// MaxTokenLifetime when until is zero or later than that.
func (v *JWTVerifier) RevokeJTI(jti string, until time.Time) {
	if jti == "" {
		return
	}
	now := v.now()
	limit := v.keep(now)
	if until.IsZero() || until.After(limit) {
		until = limit
	}
	if now.Before(until) {
		v.revoked.addID("jti:"+jti, until, now)
	}
}

// RevokeSession refuses the tokens carrying the session id sid (the
// identity service's "sid" claim): a logged-out session's tokens stop with
// it.
func (v *JWTVerifier) RevokeSession(sid string) {
	if sid == "" {
		return
	}
	now := v.now()
	v.revoked.addID("sid:"+sid, v.keep(now), now)
}

// Evict applies an identity service revocation event: a banned or deleted
// user's tokens, the tokens of API keys it names ("key:<id>"), a removed
// or changed member's tokens for that organization, every token of a
// deleted organization — all issued up to now plus the largest leeway, so
// a token from an issuer whose clock runs ahead is not missed — and the
// tokens of the sessions it names, unless the event only says they changed
// (another active organization, a new authentication time): those
// sessions go on, and so do their tokens.
func (v *JWTVerifier) Evict(ev identity.Event) {
	if ev.Kind != identity.EventSessionChanged {
		for _, sid := range ev.SessionIDs {
			v.RevokeSession(sid)
		}
	}
	at := v.now().Add(v.maxLeeway)
	switch ev.Kind {
	case identity.EventUserBanned, identity.EventUserDeleted:
		v.RevokeSubject(ev.UserID, at)
	case identity.EventMemberRemoved, identity.EventMemberChanged:
		if ev.UserID != "" && ev.OrgID != "" {
			v.RevokeMember(ev.UserID, ev.OrgID, at)
		}
	case identity.EventOrgDeleted:
		v.RevokeMember("", ev.OrgID, at)
	}
	for _, id := range ev.KeyIDs {
		v.RevokeSubject("key:"+id, at)
	}
}

// Purge forgets every cached verification (revocations are kept): the
// next use of each token checks its signature again.
func (v *JWTVerifier) Purge() { v.cache.Purge() }
