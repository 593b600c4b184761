-- Times are Unix milliseconds; JSON is stored as text; ids are text (UUIDs).

CREATE TABLE flows (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 0,
    webhook_token   TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE flow_versions (
    flow_id    TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    yaml       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE connections (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    app        TEXT NOT NULL,
    -- AES-256-GCM of the settings JSON: nonce then ciphertext.
    secret_box BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Which saved connection fills each connection slot of a flow.
CREATE TABLE flow_connections (
    flow_id       TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    slot          TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections(id),
    PRIMARY KEY (flow_id, slot)
);

-- The inbox: every event that reached a flow, whatever became of it.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    flow_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    headers     TEXT NOT NULL,
    body        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    dedupe_key  TEXT,
    detail      TEXT
);
CREATE INDEX events_flow_received ON events (flow_id, received_at);
CREATE INDEX events_dedupe ON events (flow_id, dedupe_key, received_at) WHERE dedupe_key IS NOT NULL;

CREATE TABLE runs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    flow_id          TEXT NOT NULL,
    flow_version     INTEGER NOT NULL,
    event_id         TEXT,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    concurrency_key  TEXT,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    trigger_value    TEXT NOT NULL,
    error            TEXT,
    error_step       TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
-- Per-key ordering, enforced by the database: one running run per flow and key.
CREATE UNIQUE INDEX runs_one_running_per_key ON runs (flow_id, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_due ON runs (status, next_attempt_at);
CREATE INDEX runs_key_order ON runs (flow_id, concurrency_key, seq)
    WHERE status IN ('queued', 'running');
CREATE INDEX runs_flow_created ON runs (flow_id, created_at);

-- One row per execution of a step; a started row is updated in place when it finishes,
-- so `id` orders rows by when each execution started.
CREATE TABLE step_records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    path       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    record     TEXT NOT NULL,
    written_at INTEGER NOT NULL,
    UNIQUE (run_id, generation, path, attempt)
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- A schedule slot fires once across every worker: the key is the guard.
CREATE TABLE schedule_fires (
    flow_id TEXT NOT NULL,
    slot    INTEGER NOT NULL,
    run_id  TEXT,
    PRIMARY KEY (flow_id, slot)
);

-- Where a polling trigger has read up to; written with the events it produced.
CREATE TABLE trigger_cursors (
    flow_id    TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
