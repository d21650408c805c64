-- One row per live session with stored messages: the transcript, USER: and
-- BOT: lines in order.
select
    m.session_id,
    any_value(s.bot_id) as bot_id,
    any_value(s.containment_type) as containment_type,
    min(m.sent_at) as first_message_at,
    max(m.sent_at) as last_message_at,
    count(*) as n_messages,
    string_agg(
        case when m.is_from_user then 'USER: ' else 'BOT: ' end
            || coalesce(m.message_text, ''),
        chr(10) order by m.message_seq
    ) as transcript
from {{ ref('stg_kore__messages') }} m
join {{ ref('stg_kore__sessions') }} s on s.session_id = m.session_id
group by m.session_id
