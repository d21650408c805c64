-- kore-sync warehouse schema, version 13: sessions whose messages must be
-- read again by session id. A session stored as active gains messages when
-- it closes, dated within its life; if it started before its message
-- stream's lookback, the date windows never read those again. The session
-- commit that sees it close notes it here (in its transaction); the channel's
-- message stream reads its messages by id and removes the row.
CREATE TABLE message_rereads (
    session_id VARCHAR NOT NULL PRIMARY KEY,
    bot_id     VARCHAR,
    channel    VARCHAR,
    start_time TIMESTAMPTZ NOT NULL,
    end_time   TIMESTAMPTZ,
    noted_at   TIMESTAMPTZ NOT NULL
);
