-- kore-sync warehouse schema, version 4: the read side.

-- When the read copy and the Parquet export were last published.
CREATE TABLE publications (
    kind         VARCHAR PRIMARY KEY,   -- 'read_copy' or 'parquet'
    target       VARCHAR NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    n_sessions   BIGINT NOT NULL
);

-- UTC days whose sessions changed since the Parquet export last ran; each is
-- one partition to rewrite. Filled in the same transaction as the change.
CREATE TABLE parquet_dirty_days (
    day DATE PRIMARY KEY
);

-- Sessions with their UTC day and duration, for BI tools that should not
-- need to know the raw columns.
CREATE VIEW sessions_enriched AS
SELECT
    session_id,
    bot_id,
    channel,
    user_id,
    CAST(make_timestamp(epoch_us(start_time)) AS DATE)           AS day,
    start_time,
    end_time,
    (epoch_us(end_time) - epoch_us(start_time)) / 1e6            AS duration_s,
    session_lang,
    session_type,
    containment_type,
    is_developer,
    session_status,
    messages_exchanged,
    tasks_executed
FROM sessions;

-- Per UTC day, bot, channel and containment type: sessions, median messages,
-- and the containment rate of that day, bot and channel (the share handled
-- by the bot alone), repeated on each containment type's row.
CREATE VIEW daily_overview AS
WITH per_type AS (
    SELECT day, bot_id, channel, containment_type,
           count(*)                    AS n_sessions,
           median(messages_exchanged)  AS median_messages,
           median(duration_s)          AS median_duration_s
    FROM sessions_enriched
    GROUP BY ALL
)
SELECT
    day, bot_id, channel, containment_type, n_sessions, median_messages, median_duration_s,
    round(
        sum(n_sessions) FILTER (WHERE containment_type = 'selfService') OVER w
        / sum(n_sessions) OVER w,
        4
    ) AS containment_rate
FROM per_type
WINDOW w AS (PARTITION BY day, bot_id, channel);

-- One row per session and one column per common tag name; kore-sync
-- rewrites this view after each pass for the 20 most common names.
CREATE VIEW tags_wide AS
SELECT DISTINCT session_id FROM session_tags;
