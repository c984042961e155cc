-- +goose Up
-- One row per quota counter: the count of one quota key in one period.
CREATE TABLE quota_usage (
    key         text        NOT NULL,
    period_id   text        NOT NULL,
    used        bigint      NOT NULL CHECK (used >= 0),
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, period_id)
);

-- Load and Prune look rows up by expiry.
CREATE INDEX quota_usage_expires_at ON quota_usage (expires_at);

-- +goose Down
DROP TABLE quota_usage;
