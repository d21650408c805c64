-- kore-sync warehouse schema, version 15: the progress of a
-- `rewrite-privacy`. It rewrites the rows in chunks, each its own
-- transaction with this row (one transaction for the whole warehouse needs
-- more memory than DuckDB is given), so a stopped rewrite carries on where
-- it stopped. While the row exists the rows are written partly with the
-- settings in `privacy_settings` and partly with these: no pass runs.
CREATE TABLE privacy_rewrite (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    -- The settings being applied, as in privacy_settings.
    pseudonymize VARCHAR[] NOT NULL,
    drop_tags    VARCHAR[] NOT NULL,
    store_text   BOOLEAN NOT NULL,
    key_check    VARCHAR,
    -- The table being rewritten ('sessions', 'messages', then
    -- 'rejected_records', which the last transaction rewrites whole) and the
    -- greatest key of it rewritten so far ('' for none): rows are rewritten
    -- in key order.
    rewriting    VARCHAR NOT NULL,
    done_through VARCHAR NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL
);
