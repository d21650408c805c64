//! `kore-sync rewrite-privacy`: brings every stored row up to stricter
//! privacy settings. The store reads each stored record's `raw` back; this
//! module runs it through the same protection and parsers a pass uses
//! (only the rules the rows were not yet written with, so nothing is
//! pseudonymised twice); the store writes the rows, the new record of
//! settings and a fresh file in one go; then the read copy and the Parquet
//! export are published again from the protected rows.

use super::publish::{Published, publish};
use crate::api::wire::{
    WITHHELD, parse_analytics_or_reject, parse_llm_usage_or_reject, parse_message_or_reject,
    parse_or_reject, protect, protect_analytics, protect_llm_usage,
};
use crate::model::{AnalyticsEvent, AnalyticsType, LlmUsage, Message, Partition, Session};
use crate::privacy::{PrivacyChange, PrivacyRecord, PrivacyRules};
use crate::store::{
    RecordRewrite, RewriteProgress, Rewritten, SessionStore, StoreError, StoredPrivacy,
    WarehouseSettings,
};
use serde_json::value::RawValue;

/// What `rewrite-privacy` did.
#[derive(Debug)]
pub enum RewriteOutcome {
    /// The rows were already written with these settings (or there are
    /// none yet: the settings are recorded for the first pass).
    Unchanged(PrivacyRecord),
    /// An interrupted rewrite was finished: the file written anew, and
    /// published again.
    Finished {
        to: PrivacyRecord,
        published: Published,
    },
    /// Every stored row was rewritten, and published again.
    Rewrote {
        from: PrivacyRecord,
        to: PrivacyRecord,
        rewritten: Rewritten,
        published: Published,
    },
}

/// Stored records read again under the rules the rows still lack.
struct Reprotect {
    rules: PrivacyRules,
}

impl RecordRewrite for Reprotect {
    fn session(&self, raw: &str) -> Result<Session, String> {
        let raw = RawValue::from_string(raw.to_owned()).map_err(|e| e.to_string())?;
        parse_or_reject(raw, None, &self.rules).map_err(|r| r.reason)
    }

    fn message(&self, raw: &str) -> Result<Message, String> {
        let raw = RawValue::from_string(raw.to_owned()).map_err(|e| e.to_string())?;
        parse_message_or_reject(raw, &self.rules).map_err(|r| r.reason)
    }

    fn analytics(&self, kind: AnalyticsType, raw: &str) -> Result<AnalyticsEvent, String> {
        let raw = RawValue::from_string(raw.to_owned()).map_err(|e| e.to_string())?;
        // The bot id is not read again: the stored row keeps its own.
        parse_analytics_or_reject(raw, (kind, ""), &self.rules).map_err(|r| r.reason)
    }

    fn llm_usage(&self, raw: &str) -> Result<LlmUsage, String> {
        let raw = RawValue::from_string(raw.to_owned()).map_err(|e| e.to_string())?;
        parse_llm_usage_or_reject(raw, "", &self.rules).map_err(|r| r.reason)
    }

    fn rejected(&self, partition: &str, raw: &str) -> String {
        // The kind of record, by the stream that rejected it: each kind
        // keeps what people wrote, and their ids, under its own fields.
        let protect = if partition == Partition::LlmUsage.name() {
            protect_llm_usage
        } else if AnalyticsType::parse(partition).is_some() {
            protect_analytics
        } else {
            protect
        };
        protect(&self.rules, raw).unwrap_or_else(|| WITHHELD.to_owned())
    }
}

/// Applies `rules` to everything stored in the warehouse of `settings`, if
/// they are stricter than those its rows were written with (or finishes a
/// rewrite to them that was stopped); refuses (with what to do) if they are
/// looser. `progress` is told after every chunk of rows.
pub async fn rewrite_privacy(
    settings: &WarehouseSettings,
    rules: &PrivacyRules,
    progress: Box<dyn Fn(RewriteProgress) + Send>,
) -> Result<RewriteOutcome, StoreError> {
    let stored = {
        let store = SessionStore::open_async(settings).await?;
        let stored = store.privacy_record().await?;
        if stored.is_none() {
            // Nothing stored yet: the settings are simply recorded.
            store.check_privacy(rules.record()).await?;
        }
        stored
    };
    let Some(StoredPrivacy {
        record: from,
        file_pending,
        rewriting_to,
    }) = stored
    else {
        return Ok(RewriteOutcome::Unchanged(rules.record().clone()));
    };
    let to = rules.record().clone();
    // A rewrite stopped halfway carries on (the store checks that it is to
    // the same settings); `from` still names what the rest was written with.
    match from.change_to(&to) {
        _ if rewriting_to.is_some() => {}
        PrivacyChange::Same if file_pending => {
            // A rewrite was stopped after its rows were committed: finish
            // it by writing the file anew, and publish.
            let s = settings.clone();
            tokio::task::spawn_blocking(move || crate::store::finish_rewrite(&s))
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))??;
            let published = publish_now(settings).await?;
            return Ok(RewriteOutcome::Finished { to, published });
        }
        PrivacyChange::Same => return Ok(RewriteOutcome::Unchanged(to)),
        PrivacyChange::Looser(why) => {
            return Err(StoreError::PrivacyChanged {
                path: settings.path.clone(),
                stored: from.describe(),
                wanted: to.describe(),
                fix: crate::store::looser_fix(&settings.path, &why),
            });
        }
        PrivacyChange::Stricter(_) => {}
    }
    let rewrite = Reprotect {
        rules: rules.beyond(&from),
    };
    let (s, t) = (settings.clone(), to.clone());
    let rewritten = tokio::task::spawn_blocking(move || {
        crate::store::rewrite_privacy(&s, &rewrite, &t, &*progress)
    })
    .await
    .map_err(|e| StoreError::Worker(e.to_string()))??;
    let published = publish_now(settings).await?;
    Ok(RewriteOutcome::Rewrote {
        from,
        to,
        rewritten,
        published,
    })
}

/// Publishes the read copy and the Parquet export at once: they still hold
/// the old values, so `publish_interval` does not apply.
async fn publish_now(settings: &WarehouseSettings) -> Result<Published, StoreError> {
    let store = SessionStore::open_async(settings).await?;
    let now = WarehouseSettings {
        publish_interval: std::time::Duration::ZERO,
        ..settings.clone()
    };
    Ok(publish(&store, &now, &uuid::Uuid::new_v4().to_string()).await)
}
