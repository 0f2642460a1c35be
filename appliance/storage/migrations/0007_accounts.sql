-- Accounts an admin manages: disabled (no login, no refresh, sockets closed), a password to be
-- changed at next login, and soft deletion (the row stays for the messages' sake, renamed so
-- the name is free again).
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
    CHECK (must_change_password IN (0, 1));
ALTER TABLE users ADD COLUMN deleted_at REAL;

-- One row per login (one refresh-token family): what a user sees as their sessions.
CREATE TABLE logins (
    id              INTEGER PRIMARY KEY,
    family_id       TEXT    NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      REAL    NOT NULL,
    last_used_at    REAL    NOT NULL,
    client_address  TEXT    NOT NULL DEFAULT '',
    user_agent      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX logins_user ON logins(user_id, created_at);

-- Invitation links. Only the SHA-256 of the token is stored; `uses` never passes `max_uses`.
CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT    NOT NULL UNIQUE,
    max_uses    INTEGER NOT NULL CHECK (max_uses >= 1),
    uses        INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at  REAL    NOT NULL,
    is_admin    INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    note        TEXT    NOT NULL DEFAULT '',
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  REAL    NOT NULL,
    revoked_at  REAL
);
CREATE INDEX invitations_created ON invitations(created_at);
