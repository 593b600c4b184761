-- Purged run history must give space back: incremental auto-vacuum has to be chosen before
-- the tables exist, and VACUUM applies it even to a file whose first table (the migration
-- log) is already there. Runs outside a transaction.
PRAGMA auto_vacuum = INCREMENTAL;
VACUUM;
