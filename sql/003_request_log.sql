-- kore-sync warehouse schema, version 3: the API request log.
-- Every request kore-sync sent in the last hour, per scope (bot id, or '*'),
-- so that the rolling request budget holds across processes: a backfill run
-- between the daemon's passes counts against the same hourly budget.
-- Rows older than an hour are pruned at the end of each pass.
CREATE TABLE api_requests (
    scope        VARCHAR NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL
);
