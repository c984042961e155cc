// Package storetest is the contract every identity.Store must meet. Run it
// from each implementation's tests, against a fresh, empty store per test.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// Opener returns a fresh, empty, migrated store; it is closed by the suite.
type Opener func(t *testing.T) identity.Store

// Run runs the whole contract.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, identity.Store)
	}{
		{"users", testUsers},
		{"consents", testConsents},
		{"orgs and members", testOrgs},
		{"invitations", testInvitations},
		{"sessions", testSessions},
		{"api keys", testAPIKeys},
		{"signing keys", testSigningKeys},
		{"signing key lock", testSigningKeyLock},
		{"session touches", testTouchSessions},
		{"tenant isolation", testIsolation},
		{"transactions", testTransactions},
		{"audit chain", testAudit},
		{"audit append-only", testAuditAppendOnly},
		{"audit concurrent appends", testAuditConcurrent},
		{"user read for update", testUserForUpdate},
		{"delete cascades", testCascades},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

// t0 is a fixed time with microsecond precision, which every store keeps.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

func user(id, email string) *identity.User {
	return &identity.User{ID: id, Email: email, PasswordHash: "$argon2id$x", Status: identity.UserActive,
		PlatformRoles: []string{}, CreatedAt: t0, UpdatedAt: t0}
}

func org(id, creator string) *identity.Org {
	return &identity.Org{ID: id, Name: "Org " + id, Tier: identity.TierFree, TimeZone: "UTC",
		CreatedBy: creator, CreatedAt: t0, UpdatedAt: t0}
}

func ctx() context.Context { return context.Background() }

// seed creates users u1, u2 and orgs o1 (owner u1), o2 (owner u2).
func seed(t *testing.T, s identity.Store) {
	t.Helper()
	must(t, s.CreateUser(ctx(), user("u1", "one@example.com")))
	must(t, s.CreateUser(ctx(), user("u2", "two@example.com")))
	must(t, s.CreateOrg(ctx(), org("o1", "u1")))
	must(t, s.CreateOrg(ctx(), org("o2", "u2")))
	must(t, s.AddMember(ctx(), &identity.Membership{OrgID: "o1", UserID: "u1", Role: identity.RoleOwner, CreatedAt: t0}))
	must(t, s.AddMember(ctx(), &identity.Membership{OrgID: "o2", UserID: "u2", Role: identity.RoleOwner, CreatedAt: t0}))
}

func testUsers(t *testing.T, s identity.Store) {
	u := user("u1", "ada@example.com")
	u.DisplayName, u.PlatformRoles = "Ada", []string{"admin"}
	must(t, s.CreateUser(ctx(), u))
	wantErr(t, s.CreateUser(ctx(), user("u9", "ada@example.com")), identity.ErrConflict)
	wantErr(t, s.CreateUser(ctx(), user("u1", "other@example.com")), identity.ErrConflict)

	got, err := s.UserByEmail(ctx(), "ada@example.com")
	must(t, err)
	if got.ID != "u1" || got.DisplayName != "Ada" || len(got.PlatformRoles) != 1 || got.PlatformRoles[0] != "admin" ||
		!got.CreatedAt.Equal(t0) || got.Status != identity.UserActive || !got.BannedUntil.IsZero() {
		t.Fatalf("got %+v", got)
	}
	_, err = s.UserByID(ctx(), "nobody")
	wantErr(t, err, identity.ErrNotFound)

	got.Status, got.BanReason, got.BannedUntil = identity.UserBanned, "spam", t0.Add(time.Hour)
	got.FailedLogins, got.LastFailedAt, got.UpdatedAt = 3, t0.Add(time.Minute), t0.Add(time.Minute)
	must(t, s.UpdateUser(ctx(), got))
	again, err := s.UserByID(ctx(), "u1")
	must(t, err)
	if again.Status != identity.UserBanned || again.BanReason != "spam" || !again.BannedUntil.Equal(t0.Add(time.Hour)) ||
		again.FailedLogins != 3 || !again.LastFailedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after update %+v", again)
	}
	wantErr(t, s.UpdateUser(ctx(), user("nobody", "x@example.com")), identity.ErrNotFound)

	// Failures counted from parallel logins are all counted.
	const guesses = 20
	done := make(chan error, guesses)
	for range guesses {
		go func() {
			_, err := s.RecordLoginFailure(ctx(), "u1", t0.Add(2*time.Minute))
			done <- err
		}()
	}
	for range guesses {
		must(t, <-done)
	}
	n, err := s.RecordLoginFailure(ctx(), "u1", t0.Add(3*time.Minute))
	must(t, err)
	if n != 3+guesses+1 {
		t.Fatalf("%d failures counted, want %d", n, 3+guesses+1)
	}
	_, err = s.RecordLoginFailure(ctx(), "nobody", t0)
	wantErr(t, err, identity.ErrNotFound)

	// A success clears the count and upgrades the hash it was given, and
	// writes nothing else: the ban stays.
	must(t, s.RecordLoginSuccess(ctx(), "u1", "$argon2id$x", "$argon2id$y", t0.Add(4*time.Minute)))
	again, err = s.UserByID(ctx(), "u1")
	must(t, err)
	if again.FailedLogins != 0 || !again.LastFailedAt.IsZero() || again.PasswordHash != "$argon2id$y" ||
		!again.UpdatedAt.Equal(t0.Add(4*time.Minute)) || again.Status != identity.UserBanned || again.BanReason != "spam" {
		t.Fatalf("after a login %+v", again)
	}
	// A hash changed since it was verified is not replaced.
	_, err = s.RecordLoginFailure(ctx(), "u1", t0.Add(5*time.Minute))
	must(t, err)
	must(t, s.RecordLoginSuccess(ctx(), "u1", "$argon2id$x", "$argon2id$z", t0.Add(6*time.Minute)))
	again, err = s.UserByID(ctx(), "u1")
	must(t, err)
	if again.FailedLogins != 0 || again.PasswordHash != "$argon2id$y" {
		t.Fatalf("after a login with a stale hash %+v", again)
	}
	wantErr(t, s.RecordLoginSuccess(ctx(), "nobody", "a", "b", t0), identity.ErrNotFound)

	for i := range 5 {
		must(t, s.CreateUser(ctx(), user(fmt.Sprintf("v%d", i), fmt.Sprintf("user%d@corp.example", i))))
	}
	must(t, s.CreateUser(ctx(), user("w1", "100%_sure@example.com")))
	page, err := s.ListUsers(ctx(), "corp", "", 3)
	must(t, err)
	if len(page) != 3 || page[0].ID != "v0" || page[2].ID != "v2" {
		t.Fatalf("first page %v", ids(page))
	}
	page, err = s.ListUsers(ctx(), "corp", page[2].ID, 3)
	must(t, err)
	if len(page) != 2 || page[0].ID != "v3" {
		t.Fatalf("second page %v", ids(page))
	}
	// LIKE wildcards in the query match themselves only.
	page, err = s.ListUsers(ctx(), "%_", "", 10)
	must(t, err)
	if len(page) != 1 || page[0].ID != "w1" {
		t.Fatalf("wildcard search %v", ids(page))
	}
	all, err := s.ListUsers(ctx(), "", "", 100)
	must(t, err)
	if len(all) != 7 {
		t.Fatalf("%d users", len(all))
	}

	must(t, s.DeleteUser(ctx(), "v0"))
	_, err = s.UserByID(ctx(), "v0")
	wantErr(t, err, identity.ErrNotFound)
	wantErr(t, s.DeleteUser(ctx(), "v0"), identity.ErrNotFound)
}

func ids(us []identity.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func testConsents(t *testing.T, s identity.Store) {
	must(t, s.CreateUser(ctx(), user("u1", "a@example.com")))
	must(t, s.SetConsents(ctx(), "u1", []identity.Consent{
		{Kind: "terms", Version: "2026-01", Granted: true, At: t0},
		{Kind: "marketing", Version: "1", Granted: false, At: t0},
	}))
	must(t, s.SetConsents(ctx(), "u1", []identity.Consent{{Kind: "terms", Version: "2026-03", Granted: true, At: t0.Add(time.Hour)}}))
	cs, err := s.Consents(ctx(), "u1")
	must(t, err)
	if len(cs) != 2 || cs[0].Kind != "marketing" || cs[0].Granted || cs[1].Version != "2026-03" || !cs[1].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("consents %+v", cs)
	}
}

func testOrgs(t *testing.T, s identity.Store) {
	seed(t, s)
	o, err := s.OrgByID(ctx(), "o1")
	must(t, err)
	if o.Name != "Org o1" || o.Tier != identity.TierFree || o.TimeZone != "UTC" || o.CreatedBy != "u1" {
		t.Fatalf("org %+v", o)
	}
	o.Name, o.Tier, o.TimeZone, o.UpdatedAt = "Renamed", identity.TierPro, "Europe/Paris", t0.Add(time.Hour)
	must(t, s.UpdateOrg(ctx(), o))
	o, err = s.OrgByID(ctx(), "o1")
	must(t, err)
	if o.Name != "Renamed" || o.Tier != identity.TierPro || o.TimeZone != "Europe/Paris" {
		t.Fatalf("after update %+v", o)
	}
	n, err := s.CountOrgsCreatedBy(ctx(), "u1")
	must(t, err)
	if n != 1 {
		t.Fatalf("u1 created %d orgs", n)
	}
	must(t, s.LockOrg(ctx(), "o1"))
	wantErr(t, s.LockOrg(ctx(), "nope"), identity.ErrNotFound)

	wantErr(t, s.AddMember(ctx(), &identity.Membership{OrgID: "o1", UserID: "u1", Role: identity.RoleViewer, CreatedAt: t0}), identity.ErrConflict)
	must(t, s.AddMember(ctx(), &identity.Membership{OrgID: "o1", UserID: "u2", Role: identity.RoleMember, CreatedAt: t0.Add(time.Second)}))
	m, err := s.Membership(ctx(), "o1", "u2")
	must(t, err)
	if m.Role != identity.RoleMember {
		t.Fatalf("membership %+v", m)
	}
	must(t, s.SetMemberRole(ctx(), "o1", "u2", identity.RoleOwner))
	owners, err := s.CountOwners(ctx(), "o1")
	must(t, err)
	if owners != 2 {
		t.Fatalf("%d owners", owners)
	}
	members, err := s.Members(ctx(), "o1")
	must(t, err)
	if len(members) != 2 || members[0].UserID != "u1" || members[1].UserID != "u2" {
		t.Fatalf("members %+v", members)
	}
	mine, err := s.MembershipsOfUser(ctx(), "u2")
	must(t, err)
	if len(mine) != 2 {
		t.Fatalf("u2 is in %d orgs", len(mine))
	}
	must(t, s.RemoveMember(ctx(), "o1", "u2"))
	_, err = s.Membership(ctx(), "o1", "u2")
	wantErr(t, err, identity.ErrNotFound)
	wantErr(t, s.RemoveMember(ctx(), "o1", "u2"), identity.ErrNotFound)
	wantErr(t, s.SetMemberRole(ctx(), "o1", "u2", identity.RoleAdmin), identity.ErrNotFound)

	must(t, s.DeleteOrg(ctx(), "o1"))
	_, err = s.OrgByID(ctx(), "o1")
	wantErr(t, err, identity.ErrNotFound)
	wantErr(t, s.DeleteOrg(ctx(), "o1"), identity.ErrNotFound)
}

func testInvitations(t *testing.T, s identity.Store) {
	seed(t, s)
	inv := &identity.Invitation{ID: "i1", OrgID: "o1", Email: "new@example.com", Role: identity.RoleMember,
		TokenDigest: digest("inv-1"), InvitedBy: "u1", CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
	must(t, s.CreateInvitation(ctx(), inv))
	dup := *inv
	dup.ID = "i2"
	wantErr(t, s.CreateInvitation(ctx(), &dup), identity.ErrConflict)
	got, err := s.InvitationByDigest(ctx(), digest("inv-1"))
	must(t, err)
	if got.ID != "i1" || got.Role != identity.RoleMember || !got.ExpiresAt.Equal(t0.Add(48*time.Hour)) || !got.AcceptedAt.IsZero() {
		t.Fatalf("invitation %+v", got)
	}
	_, err = s.InvitationByDigest(ctx(), digest("other"))
	wantErr(t, err, identity.ErrNotFound)
	must(t, s.CloseInvitation(ctx(), "o1", "i1", t0.Add(time.Hour), time.Time{}))
	// Closing twice fails: an invitation is used once.
	wantErr(t, s.CloseInvitation(ctx(), "o1", "i1", time.Time{}, t0.Add(2*time.Hour)), identity.ErrNotFound)
	list, err := s.Invitations(ctx(), "o1")
	must(t, err)
	if len(list) != 1 || !list[0].AcceptedAt.Equal(t0.Add(time.Hour)) || !list[0].RevokedAt.IsZero() {
		t.Fatalf("invitations %+v", list)
	}
}

func session(id, userID string, created time.Time) *identity.Session {
	return &identity.Session{ID: id, UserID: userID, TokenDigest: digest("s-" + id), AuthTime: created,
		CreatedAt: created, LastSeenAt: created, IdleExpires: created.Add(time.Hour),
		ExpiresAt: created.Add(24 * time.Hour), IP: "10.0.0.1", UserAgent: "test"}
}

func testSessions(t *testing.T, s identity.Store) {
	seed(t, s)
	for i, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
		must(t, s.CreateSession(ctx(), session(fmt.Sprintf("s%d", i), "u1", at)))
	}
	got, err := s.SessionByDigest(ctx(), digest("s-s1"))
	must(t, err)
	if got.ID != "s1" || got.IP != "10.0.0.1" || !got.IdleExpires.Equal(t0.Add(time.Minute+time.Hour)) {
		t.Fatalf("session %+v", got)
	}
	got.ActiveOrgID, got.AuthTime, got.LastSeenAt = "o1", t0.Add(10*time.Minute), t0.Add(10*time.Minute)
	must(t, s.UpdateSession(ctx(), got))
	got, err = s.Session(ctx(), "u1", "s1")
	must(t, err)
	if got.ActiveOrgID != "o1" || !got.AuthTime.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("after update %+v", got)
	}

	stale, err := s.SessionByDigest(ctx(), digest("s-s0"))
	must(t, err)
	must(t, s.RevokeSession(ctx(), "u1", "s0", t0.Add(5*time.Minute)))
	wantErr(t, s.RevokeSession(ctx(), "u1", "s0", t0.Add(6*time.Minute)), identity.ErrNotFound)
	// A copy read before the revocation cannot write it away.
	stale.LastSeenAt = t0.Add(6 * time.Minute)
	wantErr(t, s.UpdateSession(ctx(), stale), identity.ErrNotFound)
	if got, err := s.Session(ctx(), "u1", "s0"); err != nil || !got.RevokedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after a stale update %+v %v", got, err)
	}
	active, err := s.SessionsOfUser(ctx(), "u1", t0.Add(5*time.Minute))
	must(t, err)
	if len(active) != 2 || active[0].ID != "s1" || active[1].ID != "s2" {
		t.Fatalf("active %+v", active)
	}
	// Past the idle expiry of s1 (last seen updated only in UpdateSession's
	// fields) nothing is active.
	active, err = s.SessionsOfUser(ctx(), "u1", t0.Add(25*time.Hour))
	must(t, err)
	if len(active) != 0 {
		t.Fatalf("%d sessions active after expiry", len(active))
	}

	revoked, err := s.RevokeSessionsOfUser(ctx(), "u1", t0.Add(time.Hour))
	must(t, err)
	wantRevoked(t, revoked, map[string]string{"s1": "s-s1", "s2": "s-s2"}) // s0 was revoked already
	n, err := s.DeleteExpiredSessions(ctx(), t0.Add(2*time.Hour), 2)
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d, want the batch of 2", n)
	}
	n, err = s.DeleteExpiredSessions(ctx(), t0.Add(2*time.Hour), 2)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d, want the remaining 1", n)
	}
}

// wantRevoked checks that got holds exactly the ids in want, each with the
// digest of its token.
func wantRevoked(t *testing.T, got []identity.Revoked, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d revoked, want %d: %v", len(got), len(want), got)
	}
	for _, r := range got {
		tok, ok := want[r.ID]
		if !ok || !bytes.Equal(r.Digest, digest(tok)) {
			t.Fatalf("revoked %s with digest %x; want ids and digests of %v", r.ID, r.Digest, want)
		}
	}
}

func key(id, org, by, token string) *identity.APIKey {
	return &identity.APIKey{ID: id, OrgID: org, CreatedBy: by, Name: "key " + id, TokenDigest: digest(token),
		Hint: "mcpk_…" + id, Scopes: []string{"mcp:tools:call"}, AllowedTools: []string{"echo"}, Tier: identity.TierPro,
		IPAllowlist: []string{"10.0.0.0/8"}, CreatedAt: t0}
}

func testAPIKeys(t *testing.T, s identity.Store) {
	seed(t, s)
	must(t, s.CreateAPIKey(ctx(), key("k1", "o1", "u1", "tok1")))
	must(t, s.CreateAPIKey(ctx(), key("k2", "o1", "u1", "tok2")))
	must(t, s.CreateAPIKey(ctx(), key("k3", "o2", "u1", "tok3")))
	wantErr(t, s.CreateAPIKey(ctx(), key("k4", "o1", "u1", "tok1")), identity.ErrConflict)

	k, err := s.APIKeyByDigest(ctx(), digest("tok1"))
	must(t, err)
	if k.ID != "k1" || k.Tier != identity.TierPro || len(k.Scopes) != 1 || k.AllowedTools[0] != "echo" ||
		k.IPAllowlist[0] != "10.0.0.0/8" || !k.ExpiresAt.IsZero() || !k.Usable(t0) {
		t.Fatalf("key %+v", k)
	}
	keys, err := s.APIKeys(ctx(), "o1")
	must(t, err)
	// With their digests: deleting an organization drops its keys from
	// caches by them.
	if len(keys) != 2 || !bytes.Equal(keys[0].TokenDigest, digest("tok1")) || !bytes.Equal(keys[1].TokenDigest, digest("tok2")) {
		t.Fatalf("o1 has keys %+v", keys)
	}
	keys, err = s.APIKeysOfUser(ctx(), "u1")
	must(t, err)
	if len(keys) != 3 || keys[0].ID != "k1" || keys[2].OrgID != "o2" {
		t.Fatalf("u1 created %+v", keys)
	}
	keys, err = s.APIKeysOfUser(ctx(), "u2")
	must(t, err)
	if len(keys) != 0 {
		t.Fatalf("u2 created %+v", keys)
	}

	must(t, s.ReplaceAPIKey(ctx(), "o1", "k1", "k2", t0.Add(time.Hour)))
	wantErr(t, s.ReplaceAPIKey(ctx(), "o1", "k1", "k2", t0.Add(time.Hour)), identity.ErrNotFound)
	k, err = s.APIKey(ctx(), "o1", "k1")
	must(t, err)
	if !k.Usable(t0.Add(30*time.Minute)) || k.Usable(t0.Add(2*time.Hour)) {
		t.Fatalf("rotated key validity %+v", k)
	}

	must(t, s.RevokeAPIKey(ctx(), "o1", "k2", t0))
	wantErr(t, s.RevokeAPIKey(ctx(), "o1", "k2", t0), identity.ErrNotFound)
	revoked, err := s.RevokeAPIKeysOfUser(ctx(), "u1", t0)
	must(t, err)
	wantRevoked(t, revoked, map[string]string{"k1": "tok1", "k3": "tok3"}) // k2 was revoked already

	deleted, err := s.DeleteAPIKeysOfUser(ctx(), "u2")
	must(t, err)
	if len(deleted) != 0 {
		t.Fatalf("deleted %v of a user with no keys", deleted)
	}
	must(t, s.TouchAPIKeys(ctx(), map[string]time.Time{"k1": t0.Add(time.Hour), "k3": t0.Add(time.Minute)}))
	must(t, s.TouchAPIKeys(ctx(), map[string]time.Time{"k1": t0.Add(time.Minute)})) // never moves back
	k, err = s.APIKey(ctx(), "o1", "k1")
	must(t, err)
	if !k.LastUsedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last used %v", k.LastUsedAt)
	}
	deleted, err = s.DeleteAPIKeysOfUser(ctx(), "u1")
	must(t, err)
	wantRevoked(t, deleted, map[string]string{"k1": "tok1", "k2": "tok2", "k3": "tok3"})
	keys, err = s.APIKeys(ctx(), "o1")
	must(t, err)
	if len(keys) != 0 {
		t.Fatalf("%d keys remain", len(keys))
	}
}

func testSigningKeys(t *testing.T, s identity.Store) {
	must(t, s.SaveSigningKey(ctx(), &identity.StoredSigningKey{ID: "kid1", Alg: "ES256", Sealed: []byte{1, 2, 3}, CreatedAt: t0, NotAfter: t0.Add(time.Hour)}))
	must(t, s.SaveSigningKey(ctx(), &identity.StoredSigningKey{ID: "kid2", Alg: "EdDSA", Sealed: []byte{4}, CreatedAt: t0.Add(time.Minute), NotAfter: t0.Add(2 * time.Hour)}))
	wantErr(t, s.SaveSigningKey(ctx(), &identity.StoredSigningKey{ID: "kid1", Alg: "ES256", Sealed: []byte{9}, CreatedAt: t0, NotAfter: t0}), identity.ErrConflict)
	ks, err := s.SigningKeys(ctx())
	must(t, err)
	if len(ks) != 2 || ks[0].ID != "kid1" || string(ks[0].Sealed) != "\x01\x02\x03" || !ks[1].NotAfter.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("keys %+v", ks)
	}
	must(t, s.DeleteSigningKey(ctx(), "kid1"))
	wantErr(t, s.DeleteSigningKey(ctx(), "kid1"), identity.ErrNotFound)
}

// testSigningKeyLock: rotations that each add a key when they find none
// take turns under the lock, so exactly one key is added.
func testSigningKeyLock(t *testing.T, s identity.Store) {
	const racers = 4
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for i := range racers {
		wg.Go(func() {
			errs <- s.Tx(ctx(), func(tx identity.Tx) error {
				if err := tx.LockSigningKeys(ctx()); err != nil {
					return err
				}
				ks, err := tx.SigningKeys(ctx())
				if err != nil || len(ks) > 0 {
					return err
				}
				time.Sleep(20 * time.Millisecond) // widen the race the lock closes
				return tx.SaveSigningKey(ctx(), &identity.StoredSigningKey{ID: fmt.Sprintf("kid%d", i), Alg: "ES256",
					Sealed: []byte{1}, CreatedAt: t0, NotAfter: t0.Add(time.Hour)})
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	ks, err := s.SigningKeys(ctx())
	must(t, err)
	if len(ks) != 1 {
		t.Fatalf("%d keys added by racing rotations, want 1", len(ks))
	}
}

// testIsolation: an organization's rows cannot be read or changed through
// another organization, nor a user's sessions through another user.
func testIsolation(t *testing.T, s identity.Store) {
	seed(t, s)
	must(t, s.CreateAPIKey(ctx(), key("k1", "o1", "u1", "tok1")))
	must(t, s.CreateInvitation(ctx(), &identity.Invitation{ID: "i1", OrgID: "o1", Email: "x@example.com", Role: identity.RoleAdmin,
		TokenDigest: digest("inv"), InvitedBy: "u1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	must(t, s.CreateSession(ctx(), session("s1", "u1", t0)))

	cases := []struct {
		name string
		err  error
	}{
		{"read another org's key", func() error { _, err := s.APIKey(ctx(), "o2", "k1"); return err }()},
		{"revoke another org's key", s.RevokeAPIKey(ctx(), "o2", "k1", t0)},
		{"rotate another org's key", s.ReplaceAPIKey(ctx(), "o2", "k1", "kx", t0)},
		{"change a role in another org", s.SetMemberRole(ctx(), "o2", "u1", identity.RoleViewer)},
		{"remove a member of another org", s.RemoveMember(ctx(), "o2", "u1")},
		{"read a membership of another org", func() error { _, err := s.Membership(ctx(), "o2", "u1"); return err }()},
		{"close another org's invitation", s.CloseInvitation(ctx(), "o2", "i1", t0, time.Time{})},
		{"read another user's session", func() error { _, err := s.Session(ctx(), "u2", "s1"); return err }()},
		{"revoke another user's session", s.RevokeSession(ctx(), "u2", "s1", t0)},
	}
	for _, c := range cases {
		if !errors.Is(c.err, identity.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", c.name, c.err)
		}
	}
	if keys, err := s.APIKeys(ctx(), "o2"); err != nil || len(keys) != 0 {
		t.Errorf("o2 lists %d keys (%v)", len(keys), err)
	}
	if invs, err := s.Invitations(ctx(), "o2"); err != nil || len(invs) != 0 {
		t.Errorf("o2 lists %d invitations (%v)", len(invs), err)
	}
	if ms, err := s.Members(ctx(), "o2"); err != nil || len(ms) != 1 || ms[0].UserID != "u2" {
		t.Errorf("o2 members %+v (%v)", ms, err)
	}
	// Nothing changed.
	k, err := s.APIKey(ctx(), "o1", "k1")
	must(t, err)
	if !k.RevokedAt.IsZero() || k.ReplacedBy != "" {
		t.Errorf("o1's key changed through o2: %+v", k)
	}
	m, err := s.Membership(ctx(), "o1", "u1")
	must(t, err)
	if m.Role != identity.RoleOwner {
		t.Errorf("role changed through o2: %+v", m)
	}
	sess, err := s.Session(ctx(), "u1", "s1")
	must(t, err)
	if !sess.RevokedAt.IsZero() {
		t.Error("session revoked through another user")
	}
}

func testTransactions(t *testing.T, s identity.Store) {
	boom := errors.New("boom")
	err := s.Tx(ctx(), func(tx identity.Tx) error {
		must(t, tx.CreateUser(ctx(), user("u1", "a@example.com")))
		must(t, tx.AppendAudit(ctx(), &identity.AuditEvent{ID: "e1", At: t0, Action: "user.signup", PIIDigest: []byte{0}}, link))
		return boom
	})
	wantErr(t, err, boom)
	_, err = s.UserByID(ctx(), "u1")
	wantErr(t, err, identity.ErrNotFound)
	evs, err := s.AuditEvents(ctx(), identity.AuditFilter{})
	must(t, err)
	if len(evs) != 0 {
		t.Fatalf("a rolled-back audit event is visible: %+v", evs)
	}
	// The head rolled back too: the next event is number 1.
	must(t, s.Tx(ctx(), func(tx identity.Tx) error {
		if err := tx.CreateUser(ctx(), user("u1", "a@example.com")); err != nil {
			return err
		}
		return tx.AppendAudit(ctx(), &identity.AuditEvent{ID: "e1", At: t0, Action: "user.signup", PIIDigest: []byte{0}}, link)
	}))
	evs, err = s.AuditEvents(ctx(), identity.AuditFilter{})
	must(t, err)
	if len(evs) != 1 || evs[0].Seq != 1 || string(evs[0].PrevHash) != string(identity.Genesis) {
		t.Fatalf("events %+v", evs)
	}
	// Errors inside a transaction are the store's errors.
	err = s.Tx(ctx(), func(tx identity.Tx) error {
		return tx.CreateUser(ctx(), user("u2", "a@example.com"))
	})
	wantErr(t, err, identity.ErrConflict)
}

// link is a stand-in for the service's chain function: it must depend on
// the previous hash and the event.
func link(e *identity.AuditEvent) []byte {
	h := sha256.New()
	h.Write(e.PrevHash)
	fmt.Fprintf(h, "%d|%s|%s|%s", e.Seq, e.ID, e.Action, e.OrgID)
	return h.Sum(nil)
}

func testAudit(t *testing.T, s identity.Store) {
	for i, e := range []identity.AuditEvent{
		{ID: "e1", At: t0, Action: "user.signup", ActorID: "u1", ActorRef: "r1", IP: "10.0.0.1", UserAgent: "ua"},
		{ID: "e2", At: t0.Add(time.Minute), Action: "org.create", OrgID: "o1", ActorID: "u1", ActorRef: "r1", Details: map[string]any{"tier": "free"}},
		{ID: "e3", At: t0.Add(2 * time.Minute), Action: "member.role", OrgID: "o1", ActorID: "u1", TargetType: "user", TargetID: "u2", TargetRef: "r2", IP: "10.0.0.1"},
		{ID: "e4", At: t0.Add(3 * time.Minute), Action: "org.create", OrgID: "o2", ActorID: "u2", ActorRef: "r2", IP: "10.0.0.2"},
	} {
		e.PIIDigest = []byte{byte(i)}
		must(t, s.AppendAudit(ctx(), &e, link))
		if e.Seq != int64(i+1) || len(e.Hash) == 0 {
			t.Fatalf("appended %+v", e)
		}
	}
	evs, err := s.AuditEvents(ctx(), identity.AuditFilter{})
	must(t, err)
	if len(evs) != 4 {
		t.Fatalf("%d events", len(evs))
	}
	for i, e := range evs {
		if i > 0 && string(e.PrevHash) != string(evs[i-1].Hash) {
			t.Fatalf("event %d does not link to %d", e.Seq, evs[i-1].Seq)
		}
		if string(link(&e)) != string(e.Hash) {
			t.Fatalf("event %d hash does not match its content", e.Seq)
		}
	}
	if evs[1].Details["tier"] != "free" || evs[2].TargetID != "u2" || !evs[3].At.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("events %+v", evs)
	}

	filters := []struct {
		f    identity.AuditFilter
		want []int64
	}{
		{identity.AuditFilter{OrgID: "o1"}, []int64{2, 3}},
		{identity.AuditFilter{ActorID: "u2"}, []int64{4}},
		{identity.AuditFilter{Action: "org.create"}, []int64{2, 4}},
		{identity.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int64{2, 3}},
		{identity.AuditFilter{AfterSeq: 2, Limit: 1}, []int64{3}},
	}
	for _, c := range filters {
		got, err := s.AuditEvents(ctx(), c.f)
		must(t, err)
		var seqs []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(c.want) {
			t.Errorf("filter %+v: %v, want %v", c.f, seqs, c.want)
		}
	}

	n, err := s.EraseAuditPII(ctx(), "u2", t0.Add(time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("erased %d events, want 2", n)
	}
	evs, err = s.AuditEvents(ctx(), identity.AuditFilter{})
	must(t, err)
	if evs[2].TargetID != "" || evs[2].ActorID != "u1" || evs[2].IP != "10.0.0.1" || evs[2].PIIErasedAt.IsZero() {
		t.Fatalf("erased target event %+v", evs[2])
	}
	if evs[3].ActorID != "" || evs[3].IP != "" || evs[3].ActorRef != "r2" {
		t.Fatalf("erased actor event %+v", evs[3])
	}
	for i, e := range evs {
		if i > 0 && string(e.PrevHash) != string(evs[i-1].Hash) || string(link(&e)) != string(e.Hash) {
			t.Fatalf("the chain no longer verifies after erasure at %d", e.Seq)
		}
	}
}

// testAuditAppendOnly: the database refuses to rewrite or delete audit
// events, except to erase personal data.
func testAuditAppendOnly(t *testing.T, s identity.Store) {
	must(t, s.AppendAudit(ctx(), &identity.AuditEvent{ID: "e1", At: t0, Action: "user.signup", ActorID: "u1", PIIDigest: []byte{1}}, link))
	raw, ok := s.(interface {
		Exec(ctx context.Context, query string, args ...any) error
	})
	if !ok {
		t.Skip("the store offers no raw statements to attack itself with")
	}
	for _, stmt := range []string{
		`UPDATE audit_events SET action = 'user.delete'`,
		`UPDATE audit_events SET hash = prev_hash`,
		`UPDATE audit_events SET actor_id = 'u9'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
	} {
		if err := raw.Exec(ctx(), stmt); err == nil {
			t.Errorf("%s: accepted", stmt)
		}
	}
	if err := raw.Exec(ctx(), `UPDATE audit_events SET actor_id = '', ip = ''`); err != nil {
		t.Errorf("erasing personal data was refused: %v", err)
	}
}

// testAuditConcurrent appends from several writers at once, half of them
// in transactions of their own and half on the store itself.
func testAuditConcurrent(t *testing.T, s identity.Store) {
	const writers, each = 4, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				e := &identity.AuditEvent{ID: fmt.Sprintf("w%d-%d", w, i), At: t0, Action: "x", PIIDigest: []byte{0}}
				var err error
				if w%2 == 0 {
					err = s.Tx(ctx(), func(tx identity.Tx) error { return tx.AppendAudit(ctx(), e, link) })
				} else {
					err = s.AppendAudit(ctx(), e, link)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		must(t, <-errs)
	}
	evs, err := s.AuditEvents(ctx(), identity.AuditFilter{Limit: writers * each})
	must(t, err)
	if len(evs) != writers*each {
		t.Fatalf("%d events, want %d", len(evs), writers*each)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i, e.Seq)
		}
		if i > 0 && string(e.PrevHash) != string(evs[i-1].Hash) {
			t.Fatalf("the chain forked at %d", e.Seq)
		}
	}
}

// testUserForUpdate: read-modify-write changes of one user, made at once
// in transactions that read it with UserForUpdate, lose nothing.
func testUserForUpdate(t *testing.T, s identity.Store) {
	must(t, s.CreateUser(ctx(), user("u1", "one@example.com")))
	_, err := s.UserForUpdate(ctx(), "nobody")
	wantErr(t, err, identity.ErrNotFound)
	const writers, each = 4, 10
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				err := s.Tx(ctx(), func(tx identity.Tx) error {
					u, err := tx.UserForUpdate(ctx(), "u1")
					if err != nil {
						return err
					}
					u.PlatformRoles = append(u.PlatformRoles, fmt.Sprintf("w%d-%d", w, i))
					return tx.UpdateUser(ctx(), u)
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		must(t, <-errs)
	}
	u, err := s.UserByID(ctx(), "u1")
	must(t, err)
	if len(u.PlatformRoles) != writers*each {
		t.Fatalf("%d of %d changes kept", len(u.PlatformRoles), writers*each)
	}
}

func testCascades(t *testing.T, s identity.Store) {
	seed(t, s)
	must(t, s.AddMember(ctx(), &identity.Membership{OrgID: "o2", UserID: "u1", Role: identity.RoleMember, CreatedAt: t0}))
	must(t, s.CreateSession(ctx(), session("s1", "u1", t0)))
	must(t, s.SetConsents(ctx(), "u1", []identity.Consent{{Kind: "terms", Version: "1", Granted: true, At: t0}}))
	must(t, s.CreateAPIKey(ctx(), key("k1", "o1", "u1", "tok1")))
	must(t, s.CreateInvitation(ctx(), &identity.Invitation{ID: "i1", OrgID: "o1", Email: "x@example.com", Role: identity.RoleMember,
		TokenDigest: digest("inv"), InvitedBy: "u1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))

	must(t, s.DeleteOrg(ctx(), "o1"))
	if _, err := s.APIKeyByDigest(ctx(), digest("tok1")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("a deleted org's key remains: %v", err)
	}
	if _, err := s.InvitationByDigest(ctx(), digest("inv")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("a deleted org's invitation remains: %v", err)
	}

	must(t, s.DeleteUser(ctx(), "u1"))
	if _, err := s.SessionByDigest(ctx(), digest("s-s1")); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("a deleted user's session remains: %v", err)
	}
	if ms, err := s.MembershipsOfUser(ctx(), "u1"); err != nil || len(ms) != 0 {
		t.Errorf("a deleted user's memberships remain: %v %v", ms, err)
	}
	if cs, err := s.Consents(ctx(), "u1"); err != nil || len(cs) != 0 {
		t.Errorf("a deleted user's consents remain: %v %v", cs, err)
	}
}

// testTouchSessions: a use moves a live session's last use and idle expiry
// forward, never back, never past its absolute expiry, and never revives
// a revoked or idle-expired session.
func testTouchSessions(t *testing.T, s identity.Store) {
	seed(t, s)
	for _, id := range []string{"live", "revoked", "idle", "ending"} {
		must(t, s.CreateSession(ctx(), session(id, "u1", t0))) // idle until t0+1h, ends t0+24h
	}
	must(t, s.RevokeSession(ctx(), "u1", "revoked", t0.Add(time.Minute)))
	must(t, s.TouchSessions(ctx(), map[string]time.Time{
		"live": t0.Add(30 * time.Minute), "revoked": t0.Add(30 * time.Minute), "idle": t0.Add(2 * time.Hour),
	}, time.Hour))
	ending := t0.Add(50 * time.Minute)
	must(t, s.TouchSessions(ctx(), map[string]time.Time{"ending": ending}, 48*time.Hour))              // capped at t0+24h
	must(t, s.TouchSessions(ctx(), map[string]time.Time{"live": t0.Add(10 * time.Minute)}, time.Hour)) // older: ignored
	for _, c := range []struct {
		id             string
		seen, idleTill time.Time
	}{
		{"live", t0.Add(30 * time.Minute), t0.Add(90 * time.Minute)},
		{"idle", t0, t0.Add(time.Hour)},
		{"ending", ending, t0.Add(24 * time.Hour)},
	} {
		got, err := s.Session(ctx(), "u1", c.id)
		must(t, err)
		if !got.LastSeenAt.Equal(c.seen) || !got.IdleExpires.Equal(c.idleTill) {
			t.Errorf("%s: seen %v idle till %v, want %v %v", c.id, got.LastSeenAt, got.IdleExpires, c.seen, c.idleTill)
		}
	}
	if got, err := s.Session(ctx(), "u1", "revoked"); err != nil || !got.LastSeenAt.Equal(t0) {
		t.Errorf("a revoked session was touched: %v %v", got, err)
	}
}
