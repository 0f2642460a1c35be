-- One row per call attempt: who, what media, when it rang, was answered and ended, and why.
CREATE TABLE calls (
    id           TEXT    PRIMARY KEY,
    caller_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    callee_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    audio        INTEGER NOT NULL CHECK (audio IN (0, 1)),
    video        INTEGER NOT NULL CHECK (video IN (0, 1)),
    started_at   REAL    NOT NULL,
    answered_at  REAL,
    ended_at     REAL,
    end_reason   TEXT
);
CREATE INDEX calls_caller ON calls(caller_id, started_at);
CREATE INDEX calls_callee ON calls(callee_id, started_at);
