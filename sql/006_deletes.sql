-- kore-sync warehouse schema, version 6: sessions the API no longer has.
--
-- With sync.deletes = "keep", a session the API reports gone (an id lookup's
-- invalidSessions) stays, with the time kore-sync learned it was gone; with
-- "delete" (the default) it is removed with its tags. The analyst views
-- leave kept-but-gone sessions out; the sessions table shows them.
ALTER TABLE sessions ADD COLUMN deleted_at TIMESTAMPTZ;

-- Sessions marked gone (deletes = "keep") per run, beside sessions_deleted
-- (removed, deletes = "delete"). From this version on, sync_runs.trigger may
-- also be 'verify' (kore-sync verify, or the daemon's sync.verify_schedule).
ALTER TABLE sync_runs ADD COLUMN sessions_marked_deleted INTEGER DEFAULT 0;

CREATE OR REPLACE VIEW daily_sessions AS
SELECT
    CAST(make_timestamp(epoch_us(start_time)) AS DATE) AS day,
    bot_id,
    channel,
    containment_type,
    count(*)                                            AS n_sessions,
    count(*) FILTER (WHERE session_type = 'interactive') AS n_interactive,
    sum(messages_exchanged)                             AS n_messages
FROM sessions
WHERE deleted_at IS NULL
GROUP BY ALL;

CREATE OR REPLACE VIEW daily_containment AS
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
WHERE deleted_at IS NULL
GROUP BY ALL;

CREATE OR REPLACE VIEW tags_long AS
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
JOIN sessions s USING (session_id)
WHERE s.deleted_at IS NULL;

CREATE OR REPLACE VIEW sessions_enriched AS
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
FROM sessions
WHERE deleted_at IS NULL;
