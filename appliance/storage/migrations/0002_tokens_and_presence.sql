-- Refresh tokens, one row per issued token; a family is one login's chain of rotations.
-- Access tokens carry their family id, so revoking a family revokes them too.
CREATE TABLE refresh_tokens (
    jti         TEXT    PRIMARY KEY,
    family_id   TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issued_at   REAL    NOT NULL,
    expires_at  REAL    NOT NULL,
    rotated_at  REAL,
    revoked_at  REAL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at);

-- When a user was last seen online (presence survives restarts as last_seen only).
ALTER TABLE users ADD COLUMN last_seen REAL;
