-- Files sent with a form's answer. A file is written chunk by chunk while `pending`, and
-- becomes `attached` in the transaction that stores its answer's event and run; pending
-- files of answers never stored, and files of purged events, are deleted by retention.
CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    flow_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    event_id     TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX files_event ON files (event_id);
CREATE INDEX files_state_created ON files (state, created_at);

CREATE TABLE file_chunks (
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (file_id, seq)
);
