-- Purged run history must give space back. Incremental auto-vacuum can only be chosen
-- before the first table exists: every connection asks for it as it opens (so a new file
-- gets it before the migration log is created), and this first migration records the
-- choice. A file that still lacks it is converted by a VACUUM when the store opens.
PRAGMA auto_vacuum = INCREMENTAL;
