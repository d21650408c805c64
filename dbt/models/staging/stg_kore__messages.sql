-- Messages of live sessions, with who spoke as a flag and their order in
-- the session computed once.
select
    m.message_id,
    m.session_id,
    m.bot_id,
    m.direction,
    m.direction = 'incoming' as is_from_user,
    m.created_on as sent_at,
    row_number() over (
        partition by m.session_id order by m.created_on, m.message_id
    ) as message_seq,
    m.channel,
    m.lang as language,
    m.text as message_text,
    m.first_synced_at,
    m.last_synced_at
from {{ source('kore', 'messages') }} m
where exists (
    select 1 from {{ source('kore', 'sessions') }} s
    where s.session_id = m.session_id and s.deleted_at is null
)
