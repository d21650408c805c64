-- kore-sync warehouse schema, version 12: the privacy settings the rows were
-- written with ([privacy] and messages.store_text), so that rows written
-- under other settings are never silently mixed with new ones. One row.
-- key_check names the pseudonymisation key by a keyed hash of a fixed text;
-- it tells keys apart without revealing them.
CREATE TABLE privacy_settings (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    pseudonymize VARCHAR[] NOT NULL,
    drop_tags    VARCHAR[] NOT NULL,
    store_text   BOOLEAN NOT NULL,
    key_check    VARCHAR,
    recorded_at  TIMESTAMPTZ NOT NULL
);

-- A warehouse written before this version holds rows stored as received:
-- record that, so a configuration asking for more protection is not applied
-- to new rows only. An empty warehouse records its settings on first use.
INSERT INTO privacy_settings
SELECT 1, [], [], true, NULL, now()
WHERE EXISTS (SELECT 1 FROM sessions) OR EXISTS (SELECT 1 FROM messages);
