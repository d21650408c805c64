-- kore-sync warehouse schema, version 14: whether the warehouse file still
-- has to be written anew after `rewrite-privacy` rewrote its rows. The
-- rewrite commits its rows with this set; the new file is written with it
-- cleared. A file left with it set (the rewrite was killed in between) may
-- hold the old values in its free pages: no pass runs until
-- `rewrite-privacy` finishes the job.
ALTER TABLE privacy_settings ADD COLUMN file_pending BOOLEAN DEFAULT false;
