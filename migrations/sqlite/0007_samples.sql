-- Sample obtained values for the editor: the trigger's (step_id `trigger`) from a captured
-- or entered event, and each step's output from its latest test.
CREATE TABLE flow_samples (
    flow_id    TEXT NOT NULL,
    step_id    TEXT NOT NULL,
    sample     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flow_id, step_id)
);
