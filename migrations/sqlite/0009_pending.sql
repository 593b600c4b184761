-- State that must survive a hop between servers behind a load balancer: OAuth connects
-- under way (the PKCE verifier sealed like connection settings) and "test trigger"
-- captures. flows.capture_until lets ingress see, from the row it reads anyway, whether
-- anyone waits for a capture.
CREATE TABLE oauth_pending (
    state         TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    verifier_box  BLOB NOT NULL,
    key_id        TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE TABLE trigger_captures (
    id         TEXT PRIMARY KEY,
    flow_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sample     TEXT
);
CREATE INDEX trigger_captures_flow ON trigger_captures (flow_id);
ALTER TABLE flows ADD COLUMN capture_until BIGINT NOT NULL DEFAULT 0;
