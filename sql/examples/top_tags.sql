-- The most common tag values among sessions handed to an agent.
SELECT name, value, count(*) AS n_sessions
FROM tags_long
WHERE containment_type = 'agent' AND value IS NOT NULL
GROUP BY ALL
ORDER BY n_sessions DESC, name, value
LIMIT 20;
