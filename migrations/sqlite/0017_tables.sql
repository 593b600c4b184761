-- Tables: lists kept in flowbot's own store. A row is its values as JSON; each value is
-- also kept as a `table_cells` sort key (byte-ordered: BINARY collation) so a grid sorts,
-- filters and pages through any column by an index without a table of its own per user
-- table. Unique columns hold their values in `table_uniques`, whose key refuses a second
-- row with the same value even from two processes at once.
CREATE TABLE data_tables (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    schema     TEXT NOT NULL,
    -- The next row's sequence number: the insertion order, and an automatic row id.
    next_row   INTEGER NOT NULL DEFAULT 1,
    row_count  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE table_rows (
    table_id   TEXT NOT NULL,
    row_id     TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (table_id, row_id)
);

CREATE TABLE table_cells (
    table_id TEXT NOT NULL,
    col      TEXT NOT NULL,
    row_id   TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    PRIMARY KEY (table_id, col, row_id)
);
CREATE INDEX table_cells_order ON table_cells (table_id, col, sort_key, row_id);

CREATE TABLE table_uniques (
    table_id TEXT NOT NULL,
    col      TEXT NOT NULL,
    value    TEXT NOT NULL,
    row_id   TEXT NOT NULL,
    PRIMARY KEY (table_id, col, value)
);

-- What a flow with a table trigger watches (core's `table::Watch` as JSON, with the flow's
-- concurrency key), kept with the flow's versions so a row's change queues its runs in
-- its own transaction.
CREATE TABLE table_watches (
    flow_id    TEXT PRIMARY KEY REFERENCES flows(id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    spec       TEXT NOT NULL
);
CREATE INDEX table_watches_table ON table_watches (table_name);
