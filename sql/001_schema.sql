-- kore-sync warehouse schema, version 1: the tables the sync writes.
-- Timestamps are TIMESTAMPTZ holding UTC instants; the API's times are GMT.

-- One row per session, as last read from getSessions.
-- session_id is unique, kept so by the sync's one-transaction replace; it is
-- not declared PRIMARY KEY because DuckDB holds key indexes in memory, which
-- grew with history (a million-session backfill ran out of memory).
CREATE TABLE sessions (
    session_id         VARCHAR NOT NULL,
    bot_id             VARCHAR,
    channel            VARCHAR,
    user_id            VARCHAR,
    start_time         TIMESTAMPTZ NOT NULL,
    end_time           TIMESTAMPTZ,
    session_lang       VARCHAR[],
    session_type       VARCHAR,
    -- From the record; if the record lacks it, from the stream that fetched it.
    containment_type   VARCHAR,
    is_developer       BOOLEAN,
    session_status     VARCHAR,
    messages_exchanged INTEGER,
    tasks_executed     INTEGER,
    -- The record exactly as received: fields the API adds later are never lost.
    raw                JSON NOT NULL,
    first_synced_at    TIMESTAMPTZ NOT NULL,
    -- When a pass last stored a changed version of this record (an unchanged
    -- re-read writes nothing).
    last_synced_at     TIMESTAMPTZ NOT NULL
);

-- One row per element of every array under a session's `tags` object.
-- Upserting a session replaces all of its rows here.
CREATE TABLE session_tags (
    session_id VARCHAR NOT NULL,
    -- 'user' (tags.userTags), 'session' (tags.sessionTags), or the key itself (e.g. 'altText').
    kind       VARCHAR NOT NULL,
    -- Position within its array: the same name may appear twice.
    ordinal    INTEGER NOT NULL,
    name       VARCHAR,
    -- Strings as is; numbers, booleans, objects, arrays as JSON text; JSON null as NULL.
    value      VARCHAR,
    -- The value exactly as received.
    value_json JSON
    -- Key (session_id, kind, ordinal). Not declared: DuckDB keeps every
    -- PRIMARY KEY index in memory and checks it row by row, which made tag
    -- writes the slowest part of a backfill. The key holds by construction:
    -- a session's tags are deleted and re-inserted together, in the same
    -- transaction, from one parsed record (tests check it).
);

-- One watermark per stream (bot x containment type; bot_id '*' is the account scope).
-- Every session that started before `watermark` has been read at least once.
CREATE TABLE sync_state (
    bot_id           VARCHAR NOT NULL,
    containment_type VARCHAR NOT NULL,
    watermark        TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bot_id, containment_type)
);

CREATE SEQUENCE sync_runs_seq;

-- One row per pass and stream.
CREATE TABLE sync_runs (
    run_id            BIGINT PRIMARY KEY DEFAULT nextval('sync_runs_seq'),
    pass_id           VARCHAR NOT NULL,
    bot_id            VARCHAR NOT NULL,
    containment_type  VARCHAR NOT NULL,
    -- 'schedule', 'manual' or 'backfill'.
    trigger           VARCHAR NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    -- 'running' while under way; then 'succeeded', 'failed', 'interrupted'
    -- (shutdown or pass deadline), 'budget_spent' (the hourly request budget
    -- ran out; the next pass continues), or 'abandoned' (the process died;
    -- set when the warehouse is next opened).
    outcome           VARCHAR NOT NULL,
    windows_planned   INTEGER NOT NULL DEFAULT 0,
    windows_done      INTEGER NOT NULL DEFAULT 0,
    requests          INTEGER NOT NULL DEFAULT 0,
    retries           INTEGER NOT NULL DEFAULT 0,
    rate_limited      INTEGER NOT NULL DEFAULT 0,
    sessions_upserted INTEGER NOT NULL DEFAULT 0,
    sessions_deleted  INTEGER NOT NULL DEFAULT 0,
    records_rejected  INTEGER NOT NULL DEFAULT 0,
    watermark_after   TIMESTAMPTZ,
    error             VARCHAR
);

-- Records that could not be stored as sessions (no sessionId, an unparseable
-- start_time, a wrong type in a typed column), kept so nothing received is
-- lost. A record identical to one already here is not added again.
CREATE TABLE rejected_records (
    bot_id           VARCHAR NOT NULL,
    containment_type VARCHAR NOT NULL,
    session_id       VARCHAR,
    reason           VARCHAR NOT NULL,
    raw              VARCHAR NOT NULL,
    rejected_at      TIMESTAMPTZ NOT NULL
);
