-- kore-sync warehouse schema, version 8: publishing that costs what changed.

-- What the Parquet export holds: one row per partition written to a target
-- (a directory or an object store URL), its rows and the pass that wrote
-- it. The export writes `_kore_sync/manifest.json` from these rows.
CREATE TABLE lake_partitions (
    target     VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    day        DATE NOT NULL,
    n_rows     BIGINT NOT NULL,
    -- The pass that wrote it (NULL: `kore-sync export`).
    pass_id    VARCHAR,
    written_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (target, table_name, day)
);

-- What the data looked like when the read copy was written (row counts and
-- the latest change): a pass that changed nothing leaves the copy alone.
ALTER TABLE publications ADD COLUMN data_fingerprint VARCHAR;
