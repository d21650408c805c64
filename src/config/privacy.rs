//! `[privacy]` checked into [`PrivacyRules`]: what to pseudonymise, which
//! tags to drop, and the key — inline, in a file, or systemd's
//! `$CREDENTIALS_DIRECTORY/privacy_key`. Pseudonymising without a key, or
//! with a short one, is refused: kore-sync never starts storing ids it was
//! told to hide.

use super::collector::Collector;
use super::credentials::read_secret_file;
use super::raw::RawPrivacy;
use crate::privacy::{MIN_KEY_BYTES, PrivacyRules, PseudonymKey};
use crate::sync::Scope;

/// The file systemd's `LoadCredential=privacy_key:…` provides.
const CREDENTIAL_NAME: &str = "privacy_key";

/// Checks `[privacy]`; `store_text` is `messages.store_text`.
pub(super) fn privacy(
    raw: &RawPrivacy,
    store_text: bool,
    p: &mut Collector,
    warnings: &mut Vec<String>,
) -> Option<PrivacyRules> {
    let pseudonymize = raw.pseudonymize.clone().unwrap_or_default();
    let drop_tags = raw.drop_tags.clone().unwrap_or_default();
    if let Some(bad) = drop_tags.iter().find(|t| t.trim().is_empty()) {
        return p.push(
            "privacy.drop_tags",
            format!("{bad:?} is not a tag name; list names such as \"callerNumber\""),
        );
    }
    let key = if pseudonymize.is_empty() {
        None
    } else {
        Some(key(raw, p, warnings)?)
    };
    PrivacyRules::new(&pseudonymize, &drop_tags, store_text, key)
        .map_err(|e| p.push::<()>("privacy.pseudonymize", e))
        .ok()
}

/// The key text from `privacy.key`, `privacy.key_file` or the systemd
/// credential, at least [`MIN_KEY_BYTES`] long.
fn key(raw: &RawPrivacy, p: &mut Collector, warnings: &mut Vec<String>) -> Option<PseudonymKey> {
    let what = "the privacy key (e.g. the output of `openssl rand -hex 32`)";
    let text = match (&raw.key, &raw.key_file) {
        (Some(_), Some(_)) => {
            return p.push(
                "privacy.key_file",
                "is set together with privacy.key; keep only one".into(),
            );
        }
        (Some(k), None) => k.trim().to_owned(),
        (None, Some(file)) => read_secret_file(("privacy.key_file", what), file, p, warnings)?
            .expose()
            .to_owned(),
        (None, None) => {
            let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
                .map(|d| std::path::Path::new(&d).join(CREDENTIAL_NAME))
                .filter(|f| f.exists());
            let Some(file) = credential else {
                return p.push(
                    "privacy.pseudonymize",
                    "needs a key: set privacy.key_file (or privacy.key, or put it in $CREDENTIALS_DIRECTORY/privacy_key); \
                     make one with `openssl rand -hex 32`"
                        .into(),
                );
            };
            let file = file.display().to_string();
            read_secret_file(
                ("$CREDENTIALS_DIRECTORY/privacy_key", what),
                &file,
                p,
                warnings,
            )?
            .expose()
            .to_owned()
        }
    };
    if text.len() < MIN_KEY_BYTES {
        return p.push(
            "privacy.key",
            format!(
                "is {} bytes; use at least {MIN_KEY_BYTES} random bytes, e.g. `openssl rand -hex 32`",
                text.len()
            ),
        );
    }
    Some(PseudonymKey::new(&text))
}

/// A stream's filter is stored with its watermark: a `user_id` filter would
/// put the very id `pseudonymize = ["user_id"]` keeps out into the
/// warehouse, so the two are refused together.
pub(super) fn no_user_filters(rules: &PrivacyRules, scopes: &[Scope], p: &mut Collector) {
    debug_assert!(rules.user_id_fields());
    for scope in scopes.iter().filter(|s| s.filter.user_id.is_some()) {
        let key = if scope.bot_id == crate::model::ACCOUNT_BOT_ID {
            "account.user_id".to_owned()
        } else {
            format!("bots.{}.user_id", scope.bot_id)
        };
        p.push::<()>(
            &key,
            "names an end user, and a stream's filter is stored with its watermark, while \
             privacy.pseudonymize = [\"user_id\"] keeps end-user ids out of the warehouse; remove one of the two"
                .into(),
        );
    }
}
