-- Weekly containment rate per bot: the share of sessions the bot handled alone.
SELECT bot_id,
       date_trunc('week', day)                          AS week,
       sum(n_sessions)                                  AS n_sessions,
       round(sum(n_self_service) / sum(n_sessions), 3) AS containment_rate
FROM daily_containment
GROUP BY ALL
ORDER BY bot_id, week;
