//! What kore-sync keeps out of the warehouse (`[privacy]`, and
//! `messages.store_text`): end-user ids replaced by keyed pseudonyms
//! (HMAC-SHA256), tag values dropped or pseudonymised by tag name, and
//! message content left out. The rules are applied to each record before it
//! is parsed (in `api::wire::privacy`), so the typed columns, `raw`, tags,
//! the Parquet export and the read copy all hold the same protected values.
//!
//! A warehouse records the settings it was written with ([`PrivacyRecord`]):
//! rows written under other settings are never silently mixed with new ones
//! (see [`PrivacyRecord::change_to`]).

use std::collections::BTreeSet;
use std::fmt;

/// The `pseudonymize` entry for every end-user id: sessions' `userId`,
/// messages' `createdBy`/`lmodifiedBy` (unless the bot wrote it) and
/// `channels[].channelUId`, and tags named in [`USER_ID_TAGS`].
pub const USER_ID: &str = "user_id";

/// The prefix of a `pseudonymize` entry naming a tag whose values are
/// pseudonymised (`tag:callerNumber`).
pub const TAG_PREFIX: &str = "tag:";

/// Tag names that hold an end-user id (compared in lower case).
pub const USER_ID_TAGS: [&str; 2] = ["channeluid", "userid"];

/// The shortest key accepted: 32 bytes, as `openssl rand -hex 32` gives 64.
pub const MIN_KEY_BYTES: usize = 32;

/// The text a key's check value is computed over: the check names the key
/// in the warehouse without revealing it.
const KEY_CHECK_INPUT: &[u8] = b"kore-sync privacy key check";

/// The HMAC key; its `Debug` never shows it.
#[derive(Clone)]
pub struct PseudonymKey(aws_lc_rs::hmac::Key);

impl PseudonymKey {
    /// A key from its text (as configured; at least [`MIN_KEY_BYTES`]).
    pub fn new(text: &str) -> Self {
        PseudonymKey(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            text.as_bytes(),
        ))
    }

    /// The first 128 bits of HMAC-SHA256(key, `bytes`), as lower-case hex.
    fn mac_hex(&self, bytes: &[u8]) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.0, bytes);
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

/// The rules a record passes through before it is stored.
#[derive(Clone, Debug)]
pub struct PrivacyRules {
    /// Pseudonymise end-user ids in the records' id fields.
    user_id_fields: bool,
    /// Tag names (lower case) whose values become pseudonyms; holds
    /// [`USER_ID_TAGS`] when `user_id_fields` is on.
    hashed_tags: BTreeSet<String>,
    /// Tag names (lower case) whose values become null; the tag row stays.
    dropped_tags: BTreeSet<String>,
    /// Keep message content (`messages.store_text`).
    store_text: bool,
    /// Present exactly when something is pseudonymised (config refuses
    /// `pseudonymize` without a key).
    key: Option<PseudonymKey>,
    /// The settings as configured, for the warehouse's record.
    record: PrivacyRecord,
}

impl Default for PrivacyRules {
    /// Nothing is changed: every record is stored as received.
    fn default() -> Self {
        PrivacyRules::new(&[], &[], true, None).expect("no pseudonymisation needs no key")
    }
}

impl PrivacyRules {
    /// Rules from checked settings: `pseudonymize` holds [`USER_ID`] or
    /// `tag:NAME` entries. Fails (naming the fix) on an unknown entry, or
    /// when something is to be pseudonymised without a key.
    pub fn new(
        pseudonymize: &[String],
        drop_tags: &[String],
        store_text: bool,
        key: Option<PseudonymKey>,
    ) -> Result<Self, String> {
        let mut user_id_fields = false;
        let mut hashed_tags = BTreeSet::new();
        for entry in pseudonymize {
            if entry == USER_ID {
                user_id_fields = true;
                hashed_tags.extend(USER_ID_TAGS.iter().map(|t| t.to_string()));
            } else if let Some(tag) = entry.strip_prefix(TAG_PREFIX).filter(|t| !t.is_empty()) {
                hashed_tags.insert(tag.to_lowercase());
            } else {
                return Err(format!(
                    "unknown entry {entry:?}; use \"{USER_ID}\" (every end-user id) or \"{TAG_PREFIX}NAME\" (the values of the tag NAME)"
                ));
            }
        }
        let dropped_tags: BTreeSet<String> = drop_tags.iter().map(|t| t.to_lowercase()).collect();
        let pseudonymises = user_id_fields || !hashed_tags.is_empty();
        if pseudonymises && key.is_none() {
            return Err("needs a key: set privacy.key_file (or privacy.key, or put it in $CREDENTIALS_DIRECTORY/privacy_key); \
                 make one with `openssl rand -hex 32`"
                .into());
        }
        let key = key.filter(|_| pseudonymises);
        let mut entries: Vec<String> = pseudonymize.to_vec();
        entries.sort();
        entries.dedup();
        let record = PrivacyRecord {
            pseudonymize: entries,
            drop_tags: dropped_tags.iter().cloned().collect(),
            store_text,
            key_check: key.as_ref().map(|k| k.mac_hex(KEY_CHECK_INPUT)),
        };
        Ok(PrivacyRules {
            user_id_fields,
            hashed_tags,
            dropped_tags,
            store_text,
            key,
            record,
        })
    }

    /// Whether records pass through unchanged (no rule is on).
    pub fn is_identity(&self) -> bool {
        !self.user_id_fields
            && self.hashed_tags.is_empty()
            && self.dropped_tags.is_empty()
            && self.store_text
    }

    pub fn user_id_fields(&self) -> bool {
        self.user_id_fields
    }

    pub fn store_text(&self) -> bool {
        self.store_text
    }

    /// Whether the values of the tag `name` become null.
    pub fn drops_tag(&self, name: &str) -> bool {
        self.dropped_tags.contains(&name.to_lowercase())
    }

    /// Whether the values of the tag `name` become pseudonyms.
    pub fn hashes_tag(&self, name: &str) -> bool {
        self.hashed_tags.contains(&name.to_lowercase())
    }

    /// The pseudonym of `value`: `pz-` and 32 hex digits of its keyed hash,
    /// the same for the same value under the same key, so the person still
    /// joins across tables and passes. Without a key (never the case when a
    /// rule asks for pseudonyms) the value is withheld entirely.
    pub fn pseudonym(&self, value: &str) -> String {
        match &self.key {
            Some(key) => format!("pz-{}", key.mac_hex(value.as_bytes())),
            None => "pz-withheld".into(),
        }
    }

    /// The settings to record in the warehouse.
    pub fn record(&self) -> &PrivacyRecord {
        &self.record
    }

    /// The rules that bring rows written under `old` up to these: only what
    /// `old` did not already do, so nothing is pseudonymised twice. Dropping
    /// and removing content are idempotent and stay.
    pub fn beyond(&self, old: &PrivacyRecord) -> PrivacyRules {
        let before =
            PrivacyRules::new(&old.pseudonymize, &[], true, self.key.clone()).unwrap_or_default();
        let mut delta = self.clone();
        delta.user_id_fields = self.user_id_fields && !before.user_id_fields;
        delta.hashed_tags = self
            .hashed_tags
            .difference(&before.hashed_tags)
            .cloned()
            .collect();
        delta
    }
}

/// The privacy settings a warehouse's rows were written with (lists
/// sorted; tag names in lower case). `key_check` names the key by a keyed
/// hash of a fixed text: it tells keys apart without revealing them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyRecord {
    pub pseudonymize: Vec<String>,
    pub drop_tags: Vec<String>,
    pub store_text: bool,
    pub key_check: Option<String>,
}

impl Default for PrivacyRecord {
    fn default() -> Self {
        PrivacyRecord {
            pseudonymize: Vec::new(),
            drop_tags: Vec::new(),
            store_text: true,
            key_check: None,
        }
    }
}

/// How new settings relate to the ones a warehouse was written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivacyChange {
    Same,
    /// The new settings only add protection: `kore-sync rewrite-privacy`
    /// can apply them to every stored row. Holds what they add.
    Stricter(Vec<String>),
    /// The stored rows cannot be brought to the new settings (what was
    /// pseudonymised or dropped cannot be read back): only a fresh
    /// warehouse can. Holds why.
    Looser(Vec<String>),
}

impl PrivacyRecord {
    /// Compares these (stored) settings with `new` ones.
    pub fn change_to(&self, new: &PrivacyRecord) -> PrivacyChange {
        if self == new {
            return PrivacyChange::Same;
        }
        let mut looser = Vec::new();
        let mut stricter = Vec::new();
        let keys_differ =
            self.key_check.is_some() && new.key_check.is_some() && self.key_check != new.key_check;
        if keys_differ {
            looser.push("the pseudonymisation key changed: ids stored as pseudonyms of the old key cannot be re-keyed".into());
        }
        for p in self
            .pseudonymize
            .iter()
            .filter(|p| !new.pseudonymize.contains(p))
        {
            looser.push(format!("pseudonymize no longer lists {p:?}: stored pseudonyms cannot be turned back into ids"));
        }
        for t in self.drop_tags.iter().filter(|t| !new.drop_tags.contains(t)) {
            looser.push(format!(
                "drop_tags no longer lists {t:?}: its stored values were never kept"
            ));
        }
        if !self.store_text && new.store_text {
            looser.push(
                "messages.store_text is now true: stored messages were kept without their content"
                    .into(),
            );
        }
        for p in new
            .pseudonymize
            .iter()
            .filter(|p| !self.pseudonymize.contains(p))
        {
            stricter.push(format!("pseudonymize {p:?}"));
        }
        for t in new.drop_tags.iter().filter(|t| !self.drop_tags.contains(t)) {
            stricter.push(format!("drop tag {t:?}"));
        }
        if self.store_text && !new.store_text {
            stricter.push("remove message content (messages.store_text = false)".into());
        }
        if !looser.is_empty() {
            PrivacyChange::Looser(looser)
        } else {
            PrivacyChange::Stricter(stricter)
        }
    }

    /// One line for messages and `status`.
    pub fn describe(&self) -> String {
        format!(
            "pseudonymize = {:?}, drop_tags = {:?}, messages.store_text = {}",
            self.pseudonymize, self.drop_tags, self.store_text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Option<PseudonymKey> {
        Some(PseudonymKey::new(k))
    }

    fn rules(p: &[&str], d: &[&str], store_text: bool) -> PrivacyRules {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
        PrivacyRules::new(&p, &d, store_text, key(&"k".repeat(32))).unwrap()
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_do_not_show_the_value() {
        let a = rules(&["user_id"], &[], true);
        let p = a.pseudonym("alice@example.com");
        assert_eq!(p, a.pseudonym("alice@example.com"));
        assert_ne!(p, a.pseudonym("bob@example.com"));
        assert!(p.starts_with("pz-") && p.len() == 35, "{p}");
        assert!(!p.contains("alice"));
        let other =
            PrivacyRules::new(&["user_id".into()], &[], true, key(&"x".repeat(32))).unwrap();
        assert_ne!(p, other.pseudonym("alice@example.com"));
        assert_ne!(a.record().key_check, other.record().key_check);
        assert!(!format!("{a:?}").contains(&"k".repeat(32)));
    }

    #[test]
    fn pseudonymising_without_a_key_or_an_unknown_entry_is_refused() {
        let e = PrivacyRules::new(&["user_id".into()], &[], true, None).unwrap_err();
        assert!(e.contains("key_file") && e.contains("openssl rand"), "{e}");
        let e = PrivacyRules::new(&["email".into()], &[], true, key("k")).unwrap_err();
        assert!(e.contains("\"email\"") && e.contains("tag:NAME"), "{e}");
        // Dropping needs no key.
        assert!(PrivacyRules::new(&[], &["callerNumber".into()], true, None).is_ok());
    }

    #[test]
    fn tag_names_match_in_any_case_and_user_id_covers_id_tags() {
        let r = rules(&["user_id", "tag:Email"], &["callerNumber"], true);
        assert!(r.drops_tag("CALLERNUMBER") && r.drops_tag("callerNumber"));
        assert!(r.hashes_tag("channelUId") && r.hashes_tag("email"));
        assert!(!r.hashes_tag("city"));
        assert!(!r.is_identity());
        assert!(PrivacyRules::default().is_identity());
    }

    #[test]
    fn only_stricter_settings_can_be_applied_to_stored_rows() {
        let none = PrivacyRecord::default();
        let strict = rules(&["user_id"], &["callerNumber"], false);
        assert_eq!(none.change_to(&none), PrivacyChange::Same);
        let PrivacyChange::Stricter(added) = none.change_to(strict.record()) else {
            panic!()
        };
        assert_eq!(added.len(), 3, "{added:?}");
        let PrivacyChange::Looser(why) = strict.record().change_to(&none) else {
            panic!()
        };
        assert_eq!(why.len(), 3, "{why:?}");
        let rekeyed = PrivacyRules::new(
            &["user_id".into()],
            &["callercumber".into()],
            false,
            key(&"z".repeat(32)),
        )
        .unwrap();
        assert!(
            matches!(strict.record().change_to(rekeyed.record()), PrivacyChange::Looser(w) if w[0].contains("key changed"))
        );
    }

    #[test]
    fn the_rules_beyond_old_settings_never_pseudonymise_twice() {
        let old = rules(&["user_id"], &[], true);
        let new = rules(&["user_id", "tag:email"], &["callerNumber"], true);
        let delta = new.beyond(old.record());
        assert!(!delta.user_id_fields());
        assert!(!delta.hashes_tag("channelUId"));
        assert!(delta.hashes_tag("email") && delta.drops_tag("callerNumber"));
        let from_nothing = new.beyond(&PrivacyRecord::default());
        assert!(from_nothing.user_id_fields() && from_nothing.hashes_tag("channelUId"));
    }
}
