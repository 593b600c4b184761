-- Retention asks, for each event it would delete, whether a run still points at it; without
-- this index each of those questions reads the whole run history.
CREATE INDEX runs_event ON runs (event_id);
