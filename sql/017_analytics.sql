-- kore-sync warehouse schema, version 17: NLU analytics (getAnalytics).
--
-- One row per (type, event_id): the request type the record was listed
-- under (successintent, failintent, successtask, failtask, performance,
-- unhandledutterance) and its `_id`, synced by date window on `timestamp`
-- per bot and type, like sessions. A field the record lacks is NULL.
-- `utterance` (and the NLAnalysis inputs in `raw`) are what the user wrote:
-- messages.store_text = false removes them, as it removes message text.
CREATE TABLE analytics_events (
    type             VARCHAR NOT NULL,
    event_id         VARCHAR NOT NULL,
    bot_id           VARCHAR,
    session_id       VARCHAR,
    message_id       VARCHAR,
    event_time       TIMESTAMPTZ NOT NULL,
    channel          VARCHAR,
    language         VARCHAR,
    user_id          VARCHAR,
    channel_uid      VARCHAR,
    utterance        VARCHAR,
    intent           VARCHAR,
    task_id          VARCHAR,
    task_name        VARCHAR,
    is_ambiguous     BOOLEAN,
    node_name        VARCHAR,
    node_type        VARCHAR,
    status           VARCHAR,
    status_code      VARCHAR,
    response_time_ms BIGINT,
    raw              JSON NOT NULL USING COMPRESSION zstd,
    first_synced_at  TIMESTAMPTZ NOT NULL,
    last_synced_at   TIMESTAMPTZ NOT NULL
    -- Key (type, event_id), kept unique by the commit (see session_tags in
    -- 001 for why no PRIMARY KEY index is declared).
);

-- An event's `customTags`, like session_tags: `kind` is 'user', 'session'
-- or 'message' (userTags, sessionTags, messageTags), or the key itself.
CREATE TABLE analytics_event_tags (
    type       VARCHAR NOT NULL,
    event_id   VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    ordinal    INTEGER NOT NULL,
    name       VARCHAR,
    value      VARCHAR,
    value_json JSON
);

-- Per day (UTC) and bot: what users said and whether the bot understood.
-- An utterance is counted once however many NLU types list it (by its
-- message id, else the event's own id): `utterances` are those listed as
-- intent found, not found or unhandled; `match_rate` is the share found.
CREATE VIEW daily_nlu AS
SELECT
    CAST(make_timestamp(epoch_us(event_time)) AS DATE)                        AS day,
    bot_id,
    count(DISTINCT coalesce(message_id, event_id))                            AS utterances,
    count(DISTINCT coalesce(message_id, event_id)) FILTER (type = 'successintent')      AS intents_found,
    count(DISTINCT coalesce(message_id, event_id)) FILTER (type = 'failintent')         AS intents_not_found,
    count(DISTINCT coalesce(message_id, event_id)) FILTER (type = 'unhandledutterance') AS unhandled,
    round(
        count(DISTINCT coalesce(message_id, event_id)) FILTER (type = 'successintent')
        / nullif(count(DISTINCT coalesce(message_id, event_id)), 0),
        4
    )                                                                         AS match_rate
FROM analytics_events
WHERE type IN ('successintent', 'failintent', 'unhandledutterance')
GROUP BY ALL;

-- What users say that the bot does not understand, most frequent first:
-- the utterance lower-cased with its spaces collapsed, per bot.
CREATE VIEW top_unhandled_utterances AS
SELECT
    bot_id,
    lower(trim(regexp_replace(utterance, '\s+', ' ', 'g'))) AS utterance,
    count(*)                                                 AS times,
    max(event_time)                                          AS last_seen
FROM analytics_events
WHERE type = 'unhandledutterance' AND utterance IS NOT NULL
GROUP BY ALL
ORDER BY times DESC, last_seen DESC;

-- Per bot and task: how often it completed and how often it failed.
CREATE VIEW failing_tasks AS
SELECT
    bot_id,
    task_id,
    any_value(task_name)                               AS task_name,
    count(*) FILTER (type = 'successtask')             AS successes,
    count(*) FILTER (type = 'failtask')                AS failures,
    round(count(*) FILTER (type = 'failtask') / count(*), 4) AS failure_rate
FROM analytics_events
WHERE type IN ('successtask', 'failtask')
GROUP BY bot_id, task_id
ORDER BY failures DESC, failure_rate DESC;

-- Per bot and dialog node: calls and response times (performance logs).
CREATE VIEW slow_nodes AS
SELECT
    bot_id,
    node_name,
    any_value(node_type)                                   AS node_type,
    count(*)                                               AS calls,
    count(*) FILTER (status_code IS NOT NULL AND status_code NOT LIKE '2%') AS failed_calls,
    quantile_cont(response_time_ms, 0.5)                   AS p50_ms,
    quantile_cont(response_time_ms, 0.95)                  AS p95_ms
FROM analytics_events
WHERE type = 'performance'
GROUP BY bot_id, node_name
ORDER BY p95_ms DESC NULLS LAST;
