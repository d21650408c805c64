//! `SessionStore`'s bookkeeping: the stored watermarks read, runs begun
//! and finished, and the request log read and written. A fleet's streams
//! ask these at about the same moment, so each joins the calls of its kind
//! waiting then and they are answered with one statement (see `batched`);
//! the request log is read and written once a pass.

use super::batched::{self, BeginRuns};
use super::error::StoreError;
use super::run_rows::FinishedRun;
use super::runs::{self, PassLog, StoredState};
use super::{RunRecord, SessionStore};
use crate::model::StreamKey;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

impl SessionStore {
    /// The stored watermark and the filter it was reached with (None: no
    /// watermark yet). Read with the other scopes' reads waiting at the
    /// same moment (`verify` asks for each stream's as it reaches it).
    pub async fn watermark_with_filter(
        &self,
        key: &StreamKey,
    ) -> Result<(Option<DateTime<Utc>>, Option<String>), StoreError> {
        let mut states = self.stream_states(vec![key.clone()]).await?;
        states.pop().ok_or(StoreError::Unexpected {
            doing: "reading a watermark",
            detail: "no state returned".into(),
        })
    }

    /// The stored watermark and filter of each of `keys`, in their order,
    /// in one read (see `runs::stream_states`).
    pub async fn stream_states(
        &self,
        keys: Vec<StreamKey>,
    ) -> Result<Vec<StoredState>, StoreError> {
        self.batched(&self.queues.states, keys, |c, _, calls| {
            batched::stream_states(c, calls);
        })
        .await
    }

    /// Records the stored watermark under the stream's current filter.
    pub async fn adopt_filter(&self, key: &StreamKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |c| runs::adopt_filter(c, &key)).await
    }

    /// Records the start of one run; its id.
    pub async fn begin_run(
        &self,
        pass_id: &str,
        key: &StreamKey,
        trigger: &str,
    ) -> Result<i64, StoreError> {
        // With the other scopes' beginnings waiting at the same moment.
        let ids = self
            .begin_runs(pass_id, std::slice::from_ref(key), trigger)
            .await?;
        ids.into_iter().next().ok_or(StoreError::Unexpected {
            doing: "recording a run's start",
            detail: "no run id returned".into(),
        })
    }

    /// Records the start of `keys`' runs at once; their ids in that order.
    pub async fn begin_runs(
        &self,
        pass_id: &str,
        keys: &[StreamKey],
        trigger: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let req = BeginRuns {
            pass_id: pass_id.to_owned(),
            keys: keys.to_vec(),
            trigger: trigger.to_owned(),
        };
        self.batched(&self.queues.begins, req, |c, _, calls| {
            batched::begin_runs(c, calls, Utc::now());
        })
        .await
    }

    /// Records the end of one run, now.
    pub async fn finish_run(&self, run_id: i64, record: RunRecord) -> Result<(), StoreError> {
        let run = FinishedRun {
            run_id,
            record,
            finished_at: Utc::now(),
        };
        self.finish_runs(vec![run]).await
    }

    /// Records the end of several runs at once, each with its own time.
    pub async fn finish_runs(&self, runs: Vec<FinishedRun>) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        self.batched(&self.queues.finishes, runs, |c, _, calls| {
            batched::finish_runs(c, calls);
        })
        .await
    }

    /// Requests sent for each of `scopes` (bot ids, or `*`) in the last
    /// hour, by any process on this warehouse, in one read.
    pub async fn request_histories(
        &self,
        scopes: Vec<String>,
    ) -> Result<HashMap<String, Vec<DateTime<Utc>>>, StoreError> {
        self.with(move |c| runs::request_histories(c, &scopes, Utc::now()))
            .await
    }

    /// Writes what a pass leaves in the bookkeeping (see [`PassLog`]) in
    /// one transaction.
    pub async fn record_pass(&self, log: PassLog) -> Result<(), StoreError> {
        self.with(move |c| runs::record_pass(c, &log, Utc::now()))
            .await
    }
}
