-- kore-sync warehouse schema, version 9: bot names.
--
-- One row per bot: from the Admin Console's bot list when [account]
-- credentials are configured (source 'api'), else from the optional `name`
-- of each [[bots]] table (source 'config'). `raw` is the API's record
-- WITHOUT `jwtApps` (the bot's apps with their client secrets), which
-- kore-sync drops while parsing and never stores.
CREATE TABLE bots (
    bot_id           VARCHAR PRIMARY KEY,
    name             VARCHAR,
    description      VARCHAR,
    status           VARCHAR,
    default_language VARCHAR,
    created_on       VARCHAR,
    raw              JSON,
    source           VARCHAR NOT NULL,
    synced_at        TIMESTAMPTZ NOT NULL
);

-- The analyst views gain the bot's name beside its id.
CREATE OR REPLACE VIEW daily_sessions AS
SELECT
    CAST(make_timestamp(epoch_us(s.start_time)) AS DATE) AS day,
    s.bot_id,
    b.name                                                AS bot_name,
    s.channel,
    s.containment_type,
    count(*)                                              AS n_sessions,
    count(*) FILTER (WHERE s.session_type = 'interactive') AS n_interactive,
    sum(s.messages_exchanged)                             AS n_messages
FROM sessions s
LEFT JOIN bots b USING (bot_id)
WHERE s.deleted_at IS NULL
GROUP BY ALL;

CREATE OR REPLACE VIEW daily_containment AS
SELECT
    CAST(make_timestamp(epoch_us(s.start_time)) AS DATE)        AS day,
    s.bot_id,
    b.name                                                      AS bot_name,
    count(*)                                                    AS n_sessions,
    count(*) FILTER (WHERE s.containment_type = 'selfService')  AS n_self_service,
    count(*) FILTER (WHERE s.containment_type = 'dropOff')      AS n_drop_off,
    count(*) FILTER (WHERE s.containment_type = 'agent')        AS n_agent,
    round(
        count(*) FILTER (WHERE s.containment_type = 'selfService')
        / nullif(count(*) FILTER (WHERE s.containment_type IN ('selfService', 'dropOff', 'agent')), 0),
        4
    )                                                           AS containment_rate
FROM sessions s
LEFT JOIN bots b USING (bot_id)
WHERE s.deleted_at IS NULL
GROUP BY ALL;

CREATE OR REPLACE VIEW sessions_enriched AS
SELECT
    s.session_id,
    s.bot_id,
    b.name                                                       AS bot_name,
    s.channel,
    s.user_id,
    CAST(make_timestamp(epoch_us(s.start_time)) AS DATE)         AS day,
    s.start_time,
    s.end_time,
    (epoch_us(s.end_time) - epoch_us(s.start_time)) / 1e6        AS duration_s,
    s.session_lang,
    s.session_type,
    s.containment_type,
    s.is_developer,
    s.session_status,
    s.messages_exchanged,
    s.tasks_executed
FROM sessions s
LEFT JOIN bots b USING (bot_id)
WHERE s.deleted_at IS NULL;
