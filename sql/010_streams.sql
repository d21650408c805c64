-- kore-sync warehouse schema, version 10: streams of more than one resource.
--
-- A stream is (resource, scope, partition): 'sessions' partitioned by
-- containment type, 'messages' (conversation history) by channel. The
-- existing columns stay, so existing queries keep working: for a messages
-- stream, `containment_type` holds its channel. Every existing row is a
-- sessions stream.
CREATE TABLE sync_state_v10 (
    resource         VARCHAR NOT NULL DEFAULT 'sessions',
    bot_id           VARCHAR NOT NULL,
    containment_type VARCHAR NOT NULL,
    watermark        TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    filter           VARCHAR DEFAULT '',
    PRIMARY KEY (resource, bot_id, containment_type)
);
INSERT INTO sync_state_v10 (resource, bot_id, containment_type, watermark, updated_at, filter)
SELECT 'sessions', bot_id, containment_type, watermark, updated_at, filter FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_v10 RENAME TO sync_state;

ALTER TABLE sync_runs ADD COLUMN resource VARCHAR DEFAULT 'sessions';
UPDATE sync_runs SET resource = 'sessions' WHERE resource IS NULL;
