//! Which of a batch's sessions are stored exactly as given, found with one
//! read. Most commits of an incremental pass re-read what is stored already
//! (the lookback's span, the head window of a quiet bot): for those the
//! whole cost of the commit used to be staging and comparing in SQL, about
//! ten statements however few the sessions, and DuckDB spends about half a
//! millisecond on any statement (issue 23). Reading the stored versions in
//! the batch's span and comparing them here costs one.
//!
//! The comparison is the upsert's own (`upsert::find_changed`): the stored
//! `raw` text, the containment type and the deleted mark. A session this
//! read does not find is simply not known to be unchanged: it goes to the
//! upsert, which decides by id as always, so a read narrowed by start time
//! and bot can only make more work, never a wrong answer.

use super::error::{QueryContext, StoreError};
use super::sql::{lit, ts};
use crate::model::Session;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// What the read found of a batch's sessions.
#[derive(Debug, Default)]
pub(super) struct Stored {
    /// The start time stored for each of the batch's ids found stored
    /// live or marked, in microseconds.
    starts: HashMap<String, i64>,
    /// Ids stored exactly as given, live.
    unchanged: HashSet<String>,
}

impl Stored {
    /// Whether `s` is stored exactly as given (nothing to write).
    pub(super) fn is_unchanged(&self, s: &Session) -> bool {
        self.unchanged.contains(&s.session_id)
    }

    /// Whether `s` is stored with a start within `[lo, hi]`.
    pub(super) fn starts_within(&self, s: &Session, lo: DateTime<Utc>, hi: DateTime<Utc>) -> bool {
        self.starts
            .get(&s.session_id)
            .is_some_and(|&t| t >= lo.timestamp_micros() && t <= hi.timestamp_micros())
    }
}

/// Reads the stored versions of `sessions` whose start lies within the
/// batch's starts (bounded by id and, when the batch has one, by bot, so
/// zone maps skip the rest of the history and of the fleet) and compares
/// each with the version given. Holds no stored `raw` beyond the row being
/// compared.
pub(super) fn stored_versions(
    tx: &duckdb::Transaction<'_>,
    sessions: &[&Session],
) -> Result<Stored, StoreError> {
    const DOING: &str = "comparing sessions with their stored versions";
    let (Some(lo), Some(hi)) = (
        sessions.iter().map(|s| s.start_time).min(),
        sessions.iter().map(|s| s.start_time).max(),
    ) else {
        return Ok(Stored::default());
    };
    let lo_id = sessions.iter().map(|s| s.session_id.as_str()).min();
    let hi_id = sessions.iter().map(|s| s.session_id.as_str()).max();
    let mut sql = format!(
        "SELECT session_id, CAST(raw AS VARCHAR), containment_type, deleted_at IS NULL,
                epoch_us(start_time)
         FROM sessions
         WHERE start_time BETWEEN CAST({} AS TIMESTAMPTZ) AND CAST({} AS TIMESTAMPTZ)
           AND session_id BETWEEN {} AND {}",
        lit(&ts(lo)),
        lit(&ts(hi)),
        lit(lo_id.unwrap_or_default()),
        lit(hi_id.unwrap_or_default()),
    );
    let bots: HashSet<Option<&str>> = sessions.iter().map(|s| s.bot_id.as_deref()).collect();
    if let [Some(bot)] = bots.into_iter().collect::<Vec<_>>()[..] {
        sql.push_str(&format!(" AND bot_id = {}", lit(bot)));
    }
    let given: HashMap<&str, &Session> = sessions
        .iter()
        .map(|s| (s.session_id.as_str(), *s))
        .collect();
    let mut found = Stored::default();
    let mut stmt = tx.prepare(&sql).doing(DOING)?;
    let mut rows = stmt.query([]).doing(DOING)?;
    while let Some(row) = rows.next().doing(DOING)? {
        let id = row.get_ref(0).doing(DOING)?;
        let Some(s) = given.get(id.as_str().map_err(duckdb::Error::from).doing(DOING)?) else {
            continue;
        };
        let raw = row.get_ref(1).doing(DOING)?;
        let containment: Option<String> = row.get(2).doing(DOING)?;
        let live: bool = row.get(3).doing(DOING)?;
        found
            .starts
            .insert(s.session_id.clone(), row.get(4).doing(DOING)?);
        let same = raw.as_str().map_err(duckdb::Error::from).doing(DOING)? == s.raw
            && containment == s.containment_type
            && live;
        if same {
            found.unchanged.insert(s.session_id.clone());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, ContainmentType, Deletes, StreamKey};
    use crate::store::commit::{Gone, commit_refresh};

    fn session(id: &str, minute: i64, raw: &str) -> Session {
        let mut s = crate::store::commit::tests::session(id, raw);
        s.bot_id = Some("st-a".into());
        s.start_time = DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap();
        s.containment_type = Some("agent".into());
        s
    }

    /// Issue 23: the one read finds exactly the sessions the upsert would
    /// leave alone — same `raw`, same containment type, not marked gone —
    /// and nothing it does not hold is taken as unchanged.
    #[test]
    fn issue_23_only_sessions_stored_exactly_as_given_are_unchanged() {
        let (_dir, mut conn) = crate::store::connection::tests::warehouse();
        let key = StreamKey::sessions("st-a", ContainmentType::Agent, "");
        let noted = crate::store::noted_days::NotedDays::default();
        let stored = vec![
            session("s1", 0, r#"{"a":1}"#),
            session("s2", 1, r#"{"a":2}"#),
            session("s3", 2, r#"{"a":3}"#),
            session("s4", 3, r#"{"a":4}"#),
        ];
        let batch = Batch {
            records: stored.clone(),
            rejected: Vec::new(),
        };
        commit_refresh((&mut conn, &noted), &key, &batch, &Gone::none(), Utc::now()).unwrap();
        let gone = Gone {
            ids: vec!["s4".into()],
            mode: Deletes::Keep,
        };
        commit_refresh(
            (&mut conn, &noted),
            &key,
            &Batch::default(),
            &gone,
            Utc::now(),
        )
        .unwrap();

        let mut moved = session("s3", 2, r#"{"a":3}"#);
        moved.containment_type = Some("selfService".into());
        let given = [
            session("s1", 0, r#"{"a":1}"#),  // as stored
            session("s2", 1, r#"{"a":22}"#), // its record changed
            moved,                           // its containment type changed
            session("s4", 3, r#"{"a":4}"#),  // marked gone, listed again
            session("s5", 4, r#"{"a":5}"#),  // new
        ];
        let refs: Vec<&Session> = given.iter().collect();
        let tx = conn.transaction().unwrap();
        let found = stored_versions(&tx, &refs).unwrap();
        let unchanged: Vec<&str> = given
            .iter()
            .filter(|s| found.is_unchanged(s))
            .map(|s| s.session_id.as_str())
            .collect();
        assert_eq!(unchanged, ["s1"]);
        // Every stored one is known with its start; the new one is not.
        let (lo, hi) = (given[0].start_time, given[4].start_time);
        let known: Vec<&str> = given
            .iter()
            .filter(|s| found.starts_within(s, lo, hi))
            .map(|s| s.session_id.as_str())
            .collect();
        assert_eq!(known, ["s1", "s2", "s3", "s4"]);
        assert!(!found.starts_within(&given[0], given[1].start_time, hi));
    }
}
