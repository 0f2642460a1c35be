-- Uploaded files. The server picks object_key; a row is 'pending' from the upload request until
-- the client's notification is checked against the stored object, then 'complete'.
CREATE TABLE media (
    id            TEXT    PRIMARY KEY,
    room_id       INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    uploader_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    object_key    TEXT    NOT NULL UNIQUE,
    filename      TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'complete')),
    created_at    REAL    NOT NULL,
    expires_at    REAL    NOT NULL
);
CREATE INDEX media_pending ON media(status, expires_at);

-- A chat message may carry one file.
ALTER TABLE messages ADD COLUMN media_id TEXT REFERENCES media(id);
