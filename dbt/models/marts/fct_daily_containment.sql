-- Per UTC day and bot: sessions by outcome and the containment rate (the
-- share handled without a person: self-service over all).
select
    started_on as day,
    bot_id,
    any_value(bot_name) as bot_name,
    count(*) as n_sessions,
    count(*) filter (where is_self_service) as n_self_service,
    count(*) filter (where is_drop_off) as n_drop_off,
    count(*) filter (where is_agent_handoff) as n_agent,
    round(count(*) filter (where is_self_service) / count(*), 4) as containment_rate
from {{ ref('fct_sessions') }}
group by started_on, bot_id
