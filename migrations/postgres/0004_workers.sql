-- Which worker concluded each run: shows how work spread over a cluster.
ALTER TABLE runs ADD COLUMN finished_by TEXT;

-- Workers report in while they run; those seen recently are alive.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- Where a long job (a backfill) has got to, so an interrupted one resumes there.
CREATE TABLE job_progress (
    name       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
