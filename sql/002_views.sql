-- kore-sync warehouse schema, version 2: views for analysts and BI tools.
-- Days are UTC calendar days, computed from epoch microseconds so the result
-- does not depend on the reading client's TimeZone setting.

-- Sessions per UTC day, bot, channel and containment type.
CREATE VIEW daily_sessions AS
SELECT
    CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS day,
    bot_id,
    channel,
    containment_type,
    count(*)                                            AS n_sessions,
    count(*) FILTER (WHERE session_type = 'interactive') AS n_interactive,
    sum(messages_exchanged)                             AS n_messages
FROM sessions
GROUP BY ALL;

-- Containment per UTC day and bot: the share of sessions the bot handled on
-- its own (selfService) among all sessions with a known outcome.
CREATE VIEW daily_containment AS
SELECT
    CAST(make_timestamp(epoch_us(start_time)) AS DATE)        AS day,
    bot_id,
    count(*)                                                  AS n_sessions,
    count(*) FILTER (WHERE containment_type = 'selfService')  AS n_self_service,
    count(*) FILTER (WHERE containment_type = 'dropOff')      AS n_drop_off,
    count(*) FILTER (WHERE containment_type = 'agent')        AS n_agent,
    round(
        count(*) FILTER (WHERE containment_type = 'selfService')
        / nullif(count(*) FILTER (WHERE containment_type IN ('selfService', 'dropOff', 'agent')), 0),
        4
    )                                                         AS containment_rate
FROM sessions
GROUP BY ALL;

-- Tags in long form with their session's context: one row per tag, ready to
-- pivot (PIVOT tags_long ON name USING first(value) GROUP BY session_id).
CREATE VIEW tags_long AS
SELECT
    t.session_id,
    s.bot_id,
    s.start_time,
    s.channel,
    s.containment_type,
    t.kind,
    t.ordinal,
    t.name,
    t.value,
    t.value_json
FROM session_tags t
JOIN sessions s USING (session_id);
