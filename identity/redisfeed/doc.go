// Package redisfeed is the identity service's side of what sidecars read
// from Redis: a write-through cache of sessions and API keys, looked up by
// the SHA-256 digest of their token, and the revocation events published on
// Redis pub/sub. It owns the wire contract below, and the code to read it
// back (Feed.Session, Feed.APIKey, DecodeSession, DecodeAPIKey,
// DecodeEvent), so that both services use the same.
//
// # Keys
//
// With the prefix P ("mcpauthz" by default, WithPrefix), and <hex> the
// lower-case hex of the 32-byte SHA-256 digest of the token:
//
//	P:session:<hex>     a session, by the digest of its cookie token
//	P:apikey:<hex>      an API key, by the digest of its secret
//	P:identity:events   the pub/sub channel of revocation events
//
// The token itself is never stored, in the key or in the value.
//
// # Records
//
// A record is a JSON object with "v": 1 (Version). Times are RFC 3339 in
// UTC; a zero time is left out. A session:
//
//	{"v":1,"id":"…","user_id":"…","active_org_id":"…",
//	 "auth_time":"…","created_at":"…","idle_expires_at":"…","expires_at":"…"}
//
// active_org_id is left out when the session has none. An API key:
//
//	{"v":1,"id":"…","org_id":"…","created_by":"…","name":"…",
//	 "scopes":["…"],"allowed_tools":["…"],"tier":"free|pro|enterprise",
//	 "ip_allowlist":["10.0.0.0/8"],"expires_at":"…",
//	 "replaced_by":"…","grace_until":"…"}
//
// The lists are always present ([] when empty: an empty allowlist allows
// any address, as identity.APIKey.AllowsIP says); expires_at is left out for
// a key that never expires, replaced_by and grace_until for a key not
// rotated. A rotated key stays valid until grace_until.
//
// Either kind of key may instead hold the tombstone {"v":1,"revoked":true}:
// the token was revoked or deleted and must be refused, without asking the
// SQL store. A revoked token never becomes valid again, so a put never
// replaces a tombstone (a put racing a revocation cannot bring the record
// back).
//
// Readers decode strictly: another version, an unknown field or a missing
// required field is ErrBadRecord, which a reader treats as a backend error
// (it asks the SQL store), never as a valid credential. A change to the
// format bumps Version.
//
// A record present is not a decision: readers still check expiry, idle
// expiry, grace, the IP allowlist and the rest, as identity.Session.Active
// and identity.APIKey.Usable do. A key absent (ErrMiss) means "ask the SQL
// store", not "unknown".
//
// # Expiry
//
// Each record expires when it can no longer be valid: a session at its
// absolute expiry, an API key at its expiry or, once rotated, at the end of
// its grace, whichever comes first. No record lives longer than the maximum
// TTL (10 minutes by default, WithMaxTTL) after it was written, keys that
// never expire included: a drop lost while Redis was unreachable leaves a
// stale record usable for at most that long, and a reader that finds
// nothing falls back to the SQL store. Sidecars write back what they read
// from the store (the same put, which never replaces a tombstone), so the
// records of credentials in use are renewed. Tombstones live for the
// maximum TTL too: after it, readers ask the store, which knows.
//
// Redis calls are bounded by a short timeout (WithTimeout), which only a
// client with ContextTimeoutEnabled honours: New refuses any other.
//
// # Events
//
// identity.Event as JSON, published on P:identity:events:
//
//	{"kind":"sessions.revoked","user_id":"…","org_id":"…",
//	 "session_ids":["…"],"key_ids":["…"]}
//
// Empty fields are left out. Events name sessions and keys by id, never by
// token or digest. The identity service drops records before it publishes
// the events about them, so a sidecar that evicts its memory on an event
// does not read the revoked record back from Redis.
//
// Every command touches a single key, so the layout works on Redis Cluster
// without hash tags.
package redisfeed
