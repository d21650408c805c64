-- One row per live session: its bot's name, duration, outcome flags, what
-- the user said first, and how many turns each side took (from the
-- stored messages; 0 when messages are not synced).
with turns as (
    select
        session_id,
        count(*) filter (where is_from_user) as n_user_turns,
        count(*) filter (where not is_from_user) as n_bot_turns,
        arg_min(message_text, message_seq) filter (
            where is_from_user and message_text is not null
        ) as first_user_message
    from {{ ref('stg_kore__messages') }}
    group by session_id
)
select
    s.session_id,
    s.bot_id,
    b.bot_name,
    s.channel,
    s.user_id,
    s.started_at,
    s.ended_at,
    s.started_on,
    s.duration_seconds,
    s.containment_type,
    s.containment_type = 'selfService' as is_self_service,
    s.containment_type = 'dropOff' as is_drop_off,
    s.containment_type = 'agent' as is_agent_handoff,
    s.is_active,
    s.is_interactive,
    s.is_developer,
    t.first_user_message,
    coalesce(t.n_user_turns, 0) as n_user_turns,
    coalesce(t.n_bot_turns, 0) as n_bot_turns
from {{ ref('stg_kore__sessions') }} s
left join {{ ref('stg_kore__bots') }} b on b.bot_id = s.bot_id
left join turns t on t.session_id = s.session_id
