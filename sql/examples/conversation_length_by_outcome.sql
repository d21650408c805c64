-- How long conversations run before they are contained, dropped or handed
-- to an agent: messages per session and seconds to the last message.
SELECT containment_type,
       count(DISTINCT session_id)              AS n_sessions,
       median(n_messages)                      AS median_messages,
       median(last_message_s)                  AS median_seconds_to_last_message
FROM (
    SELECT session_id, containment_type,
           count(*)                  AS n_messages,
           max(seconds_since_start)  AS last_message_s
    FROM session_messages
    GROUP BY ALL
)
GROUP BY ALL
ORDER BY n_sessions DESC;
