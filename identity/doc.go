// Package identity is the identity service's domain: users, organizations
// and memberships, sessions, API keys, signing keys and the audit log, and
// the narrow store interfaces it needs (Store). identity/postgres and
// identity/sqlite implement the store on identity/sqlstore; identity/token
// owns token formats and JWT keys, identity/password password hashing and
// policy.
package identity
