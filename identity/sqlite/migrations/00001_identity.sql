-- +goose Up
-- Times are INTEGER Unix microseconds (UTC); NULL is "never". JSON is TEXT.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    display_name    TEXT NOT NULL DEFAULT '',
    platform_roles  TEXT NOT NULL DEFAULT '[]',
    status          TEXT NOT NULL DEFAULT 'active',
    ban_reason      TEXT NOT NULL DEFAULT '',
    banned_until    INTEGER,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    last_failed_at  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE consents (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    version  TEXT NOT NULL,
    granted  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
) STRICT;

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    tier        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX orgs_created_by ON orgs (created_by);

CREATE TABLE memberships (
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE invitations (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_digest  BLOB NOT NULL UNIQUE,
    invited_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    accepted_at   INTEGER,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX invitations_org ON invitations (org_id);

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest     BLOB NOT NULL UNIQUE,
    active_org_id    TEXT NOT NULL DEFAULT '',
    auth_time        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    idle_expires_at  INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    ip               TEXT NOT NULL DEFAULT '',
    user_agent       TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_digest  BLOB NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '[]',
    allowed_tools TEXT NOT NULL DEFAULT '[]',
    tier          TEXT NOT NULL,
    ip_allowlist  TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    replaced_by   TEXT NOT NULL DEFAULT '',
    grace_until   INTEGER
) STRICT;
CREATE INDEX api_keys_org ON api_keys (org_id);
CREATE INDEX api_keys_created_by ON api_keys (created_by);

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             INTEGER NOT NULL,
    action         TEXT NOT NULL,
    org_id         TEXT NOT NULL DEFAULT '',
    actor_id       TEXT NOT NULL DEFAULT '',
    actor_ref      TEXT NOT NULL DEFAULT '',
    target_type    TEXT NOT NULL DEFAULT '',
    target_id      TEXT NOT NULL DEFAULT '',
    target_ref     TEXT NOT NULL DEFAULT '',
    ip             TEXT NOT NULL DEFAULT '',
    user_agent     TEXT NOT NULL DEFAULT '',
    details        TEXT NOT NULL DEFAULT '{}',
    pii_digest     BLOB NOT NULL,
    pii_erased_at  INTEGER,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL
) STRICT;
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_id);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB NOT NULL
) STRICT;
-- The chain starts from 32 zero bytes.
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Audit events are append-only: no deletes, and updates only erase
-- personal data (GDPR), which the chain does not cover.
-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_events_erase_only BEFORE UPDATE ON audit_events
WHEN NEW.seq IS NOT OLD.seq OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.action IS NOT OLD.action
  OR NEW.org_id IS NOT OLD.org_id OR NEW.actor_ref IS NOT OLD.actor_ref OR NEW.target_type IS NOT OLD.target_type
  OR NEW.target_ref IS NOT OLD.target_ref OR NEW.details IS NOT OLD.details OR NEW.pii_digest IS NOT OLD.pii_digest
  OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.hash IS NOT OLD.hash
  OR (NEW.actor_id <> OLD.actor_id AND NEW.actor_id <> '')
  OR (NEW.target_id <> OLD.target_id AND NEW.target_id <> '')
  OR (NEW.ip <> OLD.ip AND NEW.ip <> '')
  OR (NEW.user_agent <> OLD.user_agent AND NEW.user_agent <> '')
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only: only personal data may be erased');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_events_erase_only;
DROP TRIGGER audit_events_no_delete;
DROP TABLE audit_head;
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE orgs;
DROP TABLE consents;
DROP TABLE users;
