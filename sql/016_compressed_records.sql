-- kore-sync warehouse schema, version 16: the records' JSON (sessions'
-- `raw`, messages' `raw` and `components`) compressed with zstd.
--
-- Left to choose, DuckDB compressed these long JSON strings with FSST,
-- which cost more CPU at every checkpoint than everything else a message
-- backfill did in DuckDB and kept files 2.3 times larger (issue 23:
-- BENCHMARKS.md, "Engine cost"). The compression of a column is fixed when
-- its table is created, so both tables are made again with the same
-- columns, in the same order, and their rows copied (DuckDB 1.4 and later
-- read such files). Views name the tables, not their storage, and bind
-- again to the new ones. The space the old rows held is reused by later
-- writes; the file does not shrink.
CREATE TABLE sessions_zstd (
    session_id         VARCHAR NOT NULL,
    bot_id             VARCHAR,
    channel            VARCHAR,
    user_id            VARCHAR,
    start_time         TIMESTAMPTZ NOT NULL,
    end_time           TIMESTAMPTZ,
    session_lang       VARCHAR[],
    session_type       VARCHAR,
    containment_type   VARCHAR,
    is_developer       BOOLEAN,
    session_status     VARCHAR,
    messages_exchanged INTEGER,
    tasks_executed     INTEGER,
    raw                JSON NOT NULL USING COMPRESSION zstd,
    first_synced_at    TIMESTAMPTZ NOT NULL,
    last_synced_at     TIMESTAMPTZ NOT NULL,
    deleted_at         TIMESTAMPTZ
);
INSERT INTO sessions_zstd SELECT * FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_zstd RENAME TO sessions;

CREATE TABLE messages_zstd (
    message_id      VARCHAR NOT NULL,
    session_id      VARCHAR,
    bot_id          VARCHAR,
    direction       VARCHAR,
    created_on      TIMESTAMPTZ NOT NULL,
    channel         VARCHAR,
    lang            VARCHAR,
    text            VARCHAR,
    components      JSON USING COMPRESSION zstd,
    raw             JSON NOT NULL USING COMPRESSION zstd,
    first_synced_at TIMESTAMPTZ NOT NULL,
    last_synced_at  TIMESTAMPTZ NOT NULL
);
INSERT INTO messages_zstd SELECT * FROM messages;
DROP TABLE messages;
ALTER TABLE messages_zstd RENAME TO messages;
