-- App files added from the web UI (an imported OpenAPI document, a pasted app file): every
-- flowbot process loads them at start, and picks up new ones while it runs.
CREATE TABLE app_files (
    id         TEXT PRIMARY KEY,
    yaml       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
