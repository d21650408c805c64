-- kore-sync warehouse schema, version 7: the storage format each
-- publication was written in (warehouse.storage_version), so `status` can
-- tell which DuckDB readers open it. NULL for Parquet, and for publications
-- made before this version.
ALTER TABLE publications ADD COLUMN storage_version VARCHAR;
