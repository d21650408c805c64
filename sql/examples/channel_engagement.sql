-- Sessions, median messages and median duration (seconds) per channel, last 7 days.
SELECT channel,
       count(*)                                                   AS n_sessions,
       median(messages_exchanged)                                 AS median_messages,
       median((epoch_us(end_time) - epoch_us(start_time)) / 1e6)  AS median_duration_s
FROM sessions
WHERE epoch_us(start_time) >= epoch_us(now()) - 604800000000
  AND session_type = 'interactive'
GROUP BY ALL
ORDER BY n_sessions DESC;
