-- NLU analytics events with their UTC day; the payload (raw) is left in
-- the source.
select
    type as event_type,
    event_id,
    bot_id,
    session_id,
    message_id,
    event_time,
    cast(make_timestamp(epoch_us(event_time)) as date) as event_on,
    channel,
    language,
    user_id,
    utterance,
    intent,
    task_id,
    task_name,
    is_ambiguous,
    node_name,
    node_type,
    status,
    status_code,
    response_time_ms
from {{ source('kore', 'analytics_events') }}
