-- One row per bot: its name and the span and size of its history.
select
    b.bot_id,
    b.bot_name,
    b.bot_status,
    b.default_language,
    count(s.session_id) as n_sessions,
    min(s.started_at) as first_session_at,
    max(s.started_at) as last_session_at
from {{ ref('stg_kore__bots') }} b
left join {{ ref('stg_kore__sessions') }} s on s.bot_id = b.bot_id
group by all
