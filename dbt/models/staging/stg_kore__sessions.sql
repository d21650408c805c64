-- Sessions as analysts use them: one row per live session (those kept
-- after the API dropped them, sync.deletes = "keep", are left out), with
-- the UTC day and the duration computed once.
select
    session_id,
    bot_id,
    channel,
    user_id,
    start_time as started_at,
    end_time as ended_at,
    cast(make_timestamp(epoch_us(start_time)) as date) as started_on,
    case when end_time is not null
         then (epoch_us(end_time) - epoch_us(start_time)) / 1e6 end as duration_seconds,
    session_lang as languages,
    session_type,
    session_type = 'interactive' as is_interactive,
    containment_type,
    coalesce(is_developer, false) as is_developer,
    session_status,
    session_status = 'active' as is_active,
    messages_exchanged as n_messages_exchanged,
    tasks_executed as n_tasks_executed,
    first_synced_at,
    last_synced_at
from {{ source('kore', 'sessions') }}
where deleted_at is null
