-- People in the loop. A run waiting for people is `waiting`: no worker holds it, and it
-- holds back the later runs of its key as a running one does.
DROP INDEX runs_key_order;
CREATE INDEX runs_key_order ON runs (flow_id, concurrency_key, seq)
    WHERE status IN ('queued', 'running', 'waiting');

-- One request per execution of an approval or task step (`round` is the step record's
-- attempt); `spec` is what the step asked, as the runner rendered it.
CREATE TABLE requests (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    flow_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    round       BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    needed      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    outcome     TEXT,
    deadline_at BIGINT,
    escalated   BIGINT NOT NULL DEFAULT 0,
    notified_at BIGINT,
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    UNIQUE (run_id, generation, path, round)
);
CREATE INDEX requests_status_deadline ON requests (status, deadline_at);
CREATE INDEX requests_run ON requests (run_id);

-- Who is asked: a member by user name, or an outsider by (lower-case) email.
CREATE TABLE request_people (
    request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    member     TEXT,
    email      TEXT,
    escalated  BIGINT NOT NULL DEFAULT 0,
    UNIQUE (request_id, member),
    UNIQUE (request_id, email)
);
CREATE INDEX request_people_member ON request_people (member);

-- What each person decided; one decision per person and request.
CREATE TABLE request_decisions (
    id         BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    decider    TEXT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT NOT NULL,
    answers    TEXT,
    at         BIGINT NOT NULL,
    UNIQUE (request_id, decider)
);

-- An outsider's link: only the token's SHA-256 is kept; it expires and is taken once.
CREATE TABLE request_links (
    token_hash TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
