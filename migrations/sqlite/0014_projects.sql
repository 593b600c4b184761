-- Projects (Yoom's プロジェクト): flows and connections belong to one; a connection is
-- private to its project unless shared with named others; a member may have a role of
-- their own in a project (otherwise their workspace role applies). Everything that exists
-- goes into the default project.
CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
INSERT INTO projects (id, name, created_at) VALUES ('default', 'Default', 0);
ALTER TABLE flows ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE connections ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX flows_project ON flows (project_id);
CREATE TABLE connection_shares (
    connection_id TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    PRIMARY KEY (connection_id, project_id)
);
CREATE TABLE project_members (
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
