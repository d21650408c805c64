-- LLM calls with their UTC day and a failure flag (a status code outside
-- 2xx, or a status saying so).
select
    usage_id,
    bot_id,
    user_id,
    started_at,
    ended_at,
    cast(make_timestamp(epoch_us(started_at)) as date) as started_on,
    time_taken_ms,
    status_code,
    status,
    (status_code is not null and (status_code < 200 or status_code >= 300))
        or lower(coalesce(status, '')) in ('failure', 'failed', 'error') as is_failure,
    feature,
    model,
    integration,
    prompt_name,
    channel,
    task_id,
    request_tokens,
    response_tokens
from {{ source('kore', 'llm_usage') }}
