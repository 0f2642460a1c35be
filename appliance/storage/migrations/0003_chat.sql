-- Chat rooms: a direct room is unique per pair of users (direct_key "<low id>:<high id>").
CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('direct', 'group')),
    name        TEXT,
    direct_key  TEXT    UNIQUE,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  REAL    NOT NULL,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

-- Members with their role and read position (the highest message id they have read).
CREATE TABLE room_members (
    room_id       INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT    NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    joined_at     REAL    NOT NULL,
    last_read_id  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members(user_id, room_id);

-- Messages. (room_id, sender_id, client_msg_id) makes a resend idempotent.
CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    room_id        INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    sender_id      INTEGER NOT NULL REFERENCES users(id),
    client_msg_id  TEXT    NOT NULL,
    text           TEXT    NOT NULL,
    created_at     REAL    NOT NULL,
    edited_at      REAL,
    deleted_at     REAL,
    UNIQUE (room_id, sender_id, client_msg_id)
);
CREATE INDEX messages_room ON messages(room_id, id);
