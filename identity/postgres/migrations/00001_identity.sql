-- +goose Up
CREATE TABLE users (
    id              text PRIMARY KEY,
    email           text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    platform_roles  jsonb NOT NULL DEFAULT '[]',
    status          text NOT NULL DEFAULT 'active',
    ban_reason      text NOT NULL DEFAULT '',
    banned_until    timestamptz,
    failed_logins   integer NOT NULL DEFAULT 0,
    last_failed_at  timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE consents (
    user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind     text NOT NULL,
    version  text NOT NULL,
    granted  boolean NOT NULL,
    at       timestamptz NOT NULL,
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE orgs (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    tier        text NOT NULL,
    time_zone   text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orgs_created_by ON orgs (created_by);

CREATE TABLE memberships (
    org_id      text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE invitations (
    id            text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email         text NOT NULL,
    role          text NOT NULL,
    token_digest  bytea NOT NULL UNIQUE,
    invited_by    text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX invitations_org ON invitations (org_id);

CREATE TABLE sessions (
    id               text PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest     bytea NOT NULL UNIQUE,
    active_org_id    text NOT NULL DEFAULT '',
    auth_time        timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    idle_expires_at  timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    ip               text NOT NULL DEFAULT '',
    user_agent       text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_by    text NOT NULL,
    name          text NOT NULL,
    token_digest  bytea NOT NULL UNIQUE,
    hint          text NOT NULL,
    scopes        jsonb NOT NULL DEFAULT '[]',
    allowed_tools jsonb NOT NULL DEFAULT '[]',
    tier          text NOT NULL,
    ip_allowlist  jsonb NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    replaced_by   text NOT NULL DEFAULT '',
    grace_until   timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id);
CREATE INDEX api_keys_created_by ON api_keys (created_by);

CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    alg         text NOT NULL,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL
);

CREATE TABLE audit_events (
    seq            bigint PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    at             timestamptz NOT NULL,
    action         text NOT NULL,
    org_id         text NOT NULL DEFAULT '',
    actor_id       text NOT NULL DEFAULT '',
    actor_ref      text NOT NULL DEFAULT '',
    target_type    text NOT NULL DEFAULT '',
    target_id      text NOT NULL DEFAULT '',
    target_ref     text NOT NULL DEFAULT '',
    ip             text NOT NULL DEFAULT '',
    user_agent     text NOT NULL DEFAULT '',
    details        jsonb NOT NULL DEFAULT '{}',
    pii_digest     bytea NOT NULL,
    pii_erased_at  timestamptz,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq);
CREATE INDEX audit_events_target ON audit_events (target_id);

-- The chain's head: one row, locked by every append.
CREATE TABLE audit_head (
    id    integer PRIMARY KEY CHECK (id = 1),
    seq   bigint NOT NULL,
    hash  bytea NOT NULL
);
-- The chain starts from 32 zero bytes.
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Audit events are append-only: no deletes or truncation, and updates
-- only erase personal data (GDPR), which the chain does not cover.
-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'audit events are append-only';
    END IF;
    IF (NEW.seq, NEW.id, NEW.at, NEW.action, NEW.org_id, NEW.actor_ref, NEW.target_type, NEW.target_ref,
        NEW.details, NEW.pii_digest, NEW.prev_hash, NEW.hash)
       IS DISTINCT FROM
       (OLD.seq, OLD.id, OLD.at, OLD.action, OLD.org_id, OLD.actor_ref, OLD.target_type, OLD.target_ref,
        OLD.details, OLD.pii_digest, OLD.prev_hash, OLD.hash)
       OR (NEW.actor_id <> OLD.actor_id AND NEW.actor_id <> '')
       OR (NEW.target_id <> OLD.target_id AND NEW.target_id <> '')
       OR (NEW.ip <> OLD.ip AND NEW.ip <> '')
       OR (NEW.user_agent <> OLD.user_agent AND NEW.user_agent <> '') THEN
        RAISE EXCEPTION 'audit events are append-only: only personal data may be erased';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only;
DROP TABLE audit_head;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE orgs;
DROP TABLE consents;
DROP TABLE users;
