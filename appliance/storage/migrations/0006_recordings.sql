-- Call recordings. The web service picks the id (and so the object key) when a participant
-- starts recording; the row is 'processing' until the recorder's upload is checked against the
-- store ('ready'), or 'failed'. Participants are the call's caller and callee.
CREATE TABLE recordings (
    id              TEXT    PRIMARY KEY,
    call_id         TEXT    NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    started_by      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    object_key      TEXT    NOT NULL UNIQUE,
    content_type    TEXT,
    size            INTEGER CHECK (size IS NULL OR size >= 0),
    duration        REAL    CHECK (duration IS NULL OR duration >= 0),
    started_at      REAL,
    ended_at        REAL,
    created_at      REAL    NOT NULL,
    failure_reason  TEXT
);
CREATE INDEX recordings_call ON recordings(call_id);
CREATE INDEX recordings_created ON recordings(status, created_at);
