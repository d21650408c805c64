-- kore-sync warehouse schema, version 11: conversation messages.
--
-- One row per message (getMessagesV2's `_id`), synced by date window per
-- bot and channel, like sessions. `text` is the `data.text` strings of the
-- message's text components, one per line (NULL when there are none, or when
-- messages.store_text = false: then the content is also removed from
-- `components` and `raw`). A message does not change once written; an
-- active session gains new ones.
CREATE TABLE messages (
    message_id      VARCHAR NOT NULL,
    session_id      VARCHAR,
    bot_id          VARCHAR,
    -- 'incoming' (from the user) or 'outgoing' (from the bot or an agent).
    direction       VARCHAR,
    created_on      TIMESTAMPTZ NOT NULL,
    channel         VARCHAR,
    lang            VARCHAR,
    text            VARCHAR,
    components      JSON,
    raw             JSON NOT NULL,
    first_synced_at TIMESTAMPTZ NOT NULL,
    last_synced_at  TIMESTAMPTZ NOT NULL
    -- Key message_id, kept unique by the commit (see session_tags in 001 for
    -- why no PRIMARY KEY index is declared).
);

-- Like session_tags: `kind` is 'message' (messageTags), 'user', 'session',
-- or the key itself.
CREATE TABLE message_tags (
    message_id VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    ordinal    INTEGER NOT NULL,
    name       VARCHAR,
    value      VARCHAR,
    value_json JSON
);

-- Sessions joined to their messages in order, with the time since the
-- session started.
CREATE VIEW session_messages AS
SELECT
    s.session_id,
    s.bot_id,
    b.name                                                     AS bot_name,
    s.channel,
    s.start_time,
    s.containment_type,
    m.message_id,
    row_number() OVER (PARTITION BY s.session_id ORDER BY m.created_on, m.message_id) AS seq,
    m.created_on,
    (epoch_us(m.created_on) - epoch_us(s.start_time)) / 1e6    AS seconds_since_start,
    m.direction,
    m.text
FROM sessions s
JOIN messages m USING (session_id)
LEFT JOIN bots b ON b.bot_id = s.bot_id
WHERE s.deleted_at IS NULL;

-- One row per session: the conversation as one text, a line per message
-- ("USER: …" for incoming, "BOT: …" for outgoing), in order.
CREATE VIEW transcripts AS
SELECT
    session_id,
    any_value(bot_id)           AS bot_id,
    any_value(bot_name)         AS bot_name,
    any_value(channel)          AS channel,
    any_value(start_time)       AS start_time,
    any_value(containment_type) AS containment_type,
    count(*)                    AS n_messages,
    string_agg(
        CASE WHEN direction = 'incoming' THEN 'USER: ' ELSE 'BOT: ' END || coalesce(text, '[no text]'),
        chr(10) ORDER BY seq
    )                           AS transcript
FROM session_messages
GROUP BY session_id;

-- What analysts look at first: the first thing the user said in each
-- session that dropped off or was handed to an agent.
CREATE VIEW first_user_messages AS
SELECT session_id, bot_id, bot_name, channel, start_time, containment_type,
       created_on AS said_at, text
FROM session_messages
WHERE direction = 'incoming' AND containment_type IN ('dropOff', 'agent')
QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY seq) = 1;
