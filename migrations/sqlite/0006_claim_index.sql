-- Claims walk the queued runs oldest first and stop at their limit, whatever the length of
-- the history kept in the same table.
CREATE INDEX runs_status_seq ON runs (status, seq);
