-- kore-sync warehouse schema, version 18: GenAI and LLM usage logs
-- (getLLMUsageLogs).
--
-- One row per logged LLM call. The API gives a record no id: `usage_id` is
-- derived from what identifies the call (see README, "llm_usage"), the same
-- whenever the record is read again. `raw` is the record as received,
-- prompts and answers included unless messages.store_text = false.
CREATE TABLE llm_usage (
    usage_id        VARCHAR NOT NULL,
    bot_id          VARCHAR,
    user_id         VARCHAR,
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ,
    time_taken_ms   BIGINT,
    status_code     INTEGER,
    status          VARCHAR,
    feature         VARCHAR,
    model           VARCHAR,
    integration     VARCHAR,
    prompt_name     VARCHAR,
    channel         VARCHAR,
    task_id         VARCHAR,
    description     VARCHAR,
    request_tokens  BIGINT,
    response_tokens BIGINT,
    raw             JSON NOT NULL USING COMPRESSION zstd,
    first_synced_at TIMESTAMPTZ NOT NULL,
    last_synced_at  TIMESTAMPTZ NOT NULL
    -- Key usage_id, kept unique by the commit (see session_tags in 001).
);

-- Per UTC day, bot, model and feature: calls, failures (a status code
-- outside 2xx, or a status saying so), tokens, and the 95th percentile of
-- the time a call took.
CREATE VIEW daily_llm_usage AS
SELECT
    CAST(make_timestamp(epoch_us(started_at)) AS DATE)  AS day,
    bot_id,
    model,
    feature,
    count(*)                                            AS calls,
    count(*) FILTER (coalesce(status_code NOT BETWEEN 200 AND 299, false)
                     OR lower(coalesce(status, '')) IN ('failure', 'failed', 'error')) AS failures,
    sum(request_tokens)                                 AS request_tokens,
    sum(response_tokens)                                AS response_tokens,
    quantile_cont(time_taken_ms, 0.95)                  AS p95_ms
FROM llm_usage
GROUP BY ALL;
