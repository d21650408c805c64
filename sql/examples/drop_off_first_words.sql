-- What users said first in sessions that dropped off or went to an agent,
-- per bot: the most common first messages over the last 30 days.
SELECT bot_name,
       containment_type,
       lower(trim(text))  AS first_message,
       count(*)           AS n_sessions
FROM first_user_messages
WHERE epoch_us(said_at) >= epoch_us(now()) - 30 * 86400000000
  AND text IS NOT NULL
GROUP BY ALL
ORDER BY n_sessions DESC
LIMIT 20;
