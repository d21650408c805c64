-- What to train next: per bot, the utterances the bot did not understand
-- most often over the last 30 days, with the last time each was seen.
SELECT bot_id,
       lower(trim(regexp_replace(utterance, '\s+', ' ', 'g'))) AS utterance,
       count(*)                                                AS times,
       max(event_time)                                         AS last_seen
FROM analytics_events
WHERE type IN ('unhandledutterance', 'failintent')
  AND utterance IS NOT NULL
  AND epoch_us(event_time) >= epoch_us(now()) - 30 * 86400000000
GROUP BY ALL
ORDER BY times DESC, last_seen DESC
LIMIT 25;
