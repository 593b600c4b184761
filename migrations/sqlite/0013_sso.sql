-- Single sign-on: a member signed in through the company's identity provider is linked to
-- its stable subject identifier; a sign-in under way keeps its PKCE verifier (sealed) and
-- nonce until the callback, on whichever server it lands; TOTP second factors are kept
-- sealed, their recovery codes only as hashes.
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject);
-- The email is known to be the member's (from their invitation, an admin, the command line
-- or the identity provider), not typed by themselves: only such an email links a first
-- sign-in through the identity provider to an existing member.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_box BLOB;
ALTER TABLE users ADD COLUMN totp_key_id TEXT;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN recovery_hashes TEXT NOT NULL DEFAULT '[]';
-- The last time step a code was taken at: a code works once.
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sso_pending (
    state        TEXT PRIMARY KEY,
    verifier_box BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    nonce        TEXT NOT NULL,
    return_to    TEXT NOT NULL,
    invitation   TEXT,
    -- The SHA-256 of a value in the starting browser's cookie: the callback must come back
    -- to that browser (no one else's sign-in can be forced on it).
    browser      TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
