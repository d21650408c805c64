-- kore-sync warehouse schema, version 5: stream filters.
-- The API filters (sessionType, userId, tags) a stream's watermark was
-- reached with; empty for none. A watermark stored under another filter does
-- not count for the stream (it is read again from sync.start).
ALTER TABLE sync_state ADD COLUMN filter VARCHAR DEFAULT '';
ALTER TABLE sync_runs ADD COLUMN filter VARCHAR DEFAULT '';
