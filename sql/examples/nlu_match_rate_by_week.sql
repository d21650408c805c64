-- How well each bot understands its users, week by week: utterances, the
-- share whose intent was found, and how many went unhandled.
SELECT date_trunc('week', day)                         AS week,
       n.bot_id,
       b.name                                          AS bot_name,
       sum(utterances)                                 AS utterances,
       round(sum(intents_found) / sum(utterances), 3)  AS match_rate,
       sum(unhandled)                                  AS unhandled
FROM daily_nlu n
LEFT JOIN bots b USING (bot_id)
GROUP BY ALL
ORDER BY week DESC, n.bot_id;
