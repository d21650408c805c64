//! Calls that many scopes make at about the same time, answered together.
//! A pass's scopes run concurrently, and a fleet's bots begin their runs,
//! read their watermarks, finish windows and end their runs at once; each
//! call alone is a DuckDB statement (or transaction) costing a millisecond
//! or more, whatever it holds (issue 23). So a call waits in its kind's
//! queue, one caller at a time takes the connection on behalf of all
//! waiting calls of that kind, and they are answered with one statement or
//! transaction.
//!
//! Architecture invariant: every queued call has a taker — the caller who
//! found no taker waiting becomes it — and gets exactly one answer: its
//! own, or, if the batch as a whole fails, its own call's alone
//! (`answer_together`), so a batch never turns one caller's failure into
//! another's.

use super::error::StoreError;
use super::run_rows::{self, FinishedRun};
use super::runs::{self, StoredState};
use super::stream_checks::{ClosedBefore, CountStored, StaleActive};
use super::window_group::WindowQueue;
use crate::model::{ClosedSession, StreamKey};
use chrono::{DateTime, Utc};
use duckdb::Connection;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Where a call's answer goes (its caller awaits it).
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A waiting call and where its answer goes.
pub(super) type Call<Req, Resp> = (Req, Reply<Resp>);

/// One kind of call's queue, shared by a store's clones.
pub(super) struct Batched<Req, Resp>(Arc<Mutex<Waiting<Req, Resp>>>);

struct Waiting<Req, Resp> {
    calls: Vec<Call<Req, Resp>>,
    /// Whether a caller is waiting for the connection to answer them.
    /// Invariant: true whenever `calls` is not empty; at most one taker
    /// waits, so calls that arrive meanwhile join its batch.
    taker: bool,
}

impl<Req, Resp> Clone for Batched<Req, Resp> {
    fn clone(&self) -> Self {
        Batched(self.0.clone())
    }
}

impl<Req, Resp> Default for Batched<Req, Resp> {
    fn default() -> Self {
        Batched(Arc::new(Mutex::new(Waiting {
            calls: Vec::new(),
            taker: false,
        })))
    }
}

impl<Req, Resp> Batched<Req, Resp> {
    /// Queues a call: where its answer will come, and whether the caller
    /// is to take the connection and answer the waiting calls.
    pub(super) fn push(&self, req: Req) -> (oneshot::Receiver<Result<Resp, StoreError>>, bool) {
        let (reply, answer) = oneshot::channel();
        let mut waiting = self.lock();
        waiting.calls.push((req, reply));
        (answer, !std::mem::replace(&mut waiting.taker, true))
    }

    /// Takes the waiting calls; the next call queued needs a new taker.
    pub(super) fn take(&self) -> Vec<Call<Req, Resp>> {
        let mut waiting = self.lock();
        waiting.taker = false;
        std::mem::take(&mut waiting.calls)
    }

    /// Fails every waiting call with `e` (their taker could not get the
    /// connection).
    pub(super) fn fail_waiting(&self, e: &StoreError) {
        for (_, reply) in self.take() {
            let _ = reply.send(Err(StoreError::Worker(e.to_string())));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<Req, Resp>> {
        // A queue poisoned by a panic still holds whole entries.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Answers `calls` with one run of `run` over all their requests (which
/// returns one answer per request, in order); if that fails, each call
/// gets the answer of a run over its own request alone.
pub(super) fn answer_together<Req, Resp>(
    calls: Vec<Call<Req, Resp>>,
    mut run: impl FnMut(&[&Req]) -> Result<Vec<Resp>, StoreError>,
) {
    let reqs: Vec<&Req> = calls.iter().map(|(req, _)| req).collect();
    let outcome = run(&reqs);
    // A caller that stopped waiting has nothing to be told.
    match outcome {
        Ok(answers) => {
            for ((_, reply), answer) in calls.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) if calls.len() == 1 => {
            if let Some((_, reply)) = calls.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::debug!(n_calls = calls.len(), error = %e,
                "a batch of calls failed: answering each alone");
            for (req, reply) in calls {
                let alone = run(&[&req]).and_then(|mut answers| {
                    answers.pop().ok_or(StoreError::Unexpected {
                        doing: "answering a call",
                        detail: "no answer returned".into(),
                    })
                });
                let _ = reply.send(alone);
            }
        }
    }
}

/// The calls batched, one queue each.
#[derive(Clone, Default)]
pub(super) struct Queues {
    pub windows: WindowQueue,
    /// Runs begun → their run ids.
    pub begins: Batched<BeginRuns, Vec<i64>>,
    /// Runs ended.
    pub finishes: Batched<Vec<FinishedRun>, ()>,
    /// Streams' stored states.
    pub states: Batched<Vec<StreamKey>, Vec<StoredState>>,
    /// Streams' counts within a window.
    pub counts: Batched<CountStored, (u64, u64)>,
    /// Streams' sessions stored as active before a time.
    pub stale: Batched<StaleActive, Vec<String>>,
    /// Message streams' sessions seen closing.
    pub closed: Batched<ClosedBefore, Vec<ClosedSession>>,
    /// Bots' channels (of their stored sessions).
    pub channels: Batched<String, Vec<String>>,
}

/// Streams whose runs begin, with their pass and trigger.
pub(super) struct BeginRuns {
    pub pass_id: String,
    pub keys: Vec<StreamKey>,
    pub trigger: String,
}

/// Answers waiting `begin_runs` calls: one statement per pass and trigger
/// (in practice one), each call its own ids.
pub(super) fn begin_runs(
    conn: &mut Connection,
    calls: Vec<Call<BeginRuns, Vec<i64>>>,
    now: DateTime<Utc>,
) {
    answer_together(calls, |reqs| {
        let mut ids: Vec<Vec<i64>> = vec![Vec::new(); reqs.len()];
        let mut done = vec![false; reqs.len()];
        for i in 0..reqs.len() {
            if done[i] {
                continue;
            }
            let (pass_id, trigger) = (&reqs[i].pass_id, &reqs[i].trigger);
            let same: Vec<usize> = (i..reqs.len())
                .filter(|&j| reqs[j].pass_id == *pass_id && reqs[j].trigger == *trigger)
                .collect();
            let keys: Vec<StreamKey> = same.iter().flat_map(|&j| reqs[j].keys.clone()).collect();
            let mut all = run_rows::begin_runs(conn, pass_id, &keys, trigger, now)?.into_iter();
            for j in same {
                ids[j] = all.by_ref().take(reqs[j].keys.len()).collect();
                done[j] = true;
            }
        }
        Ok(ids)
    });
}

/// Answers waiting `finish_runs` calls with one statement.
pub(super) fn finish_runs(conn: &mut Connection, calls: Vec<Call<Vec<FinishedRun>, ()>>) {
    answer_together(calls, |reqs| {
        let runs: Vec<FinishedRun> = reqs.iter().flat_map(|r| r.iter().cloned()).collect();
        run_rows::finish_runs(conn, &runs)?;
        Ok(vec![(); reqs.len()])
    });
}

/// Answers waiting `stream_states` calls with one read.
pub(super) fn stream_states(
    conn: &mut Connection,
    calls: Vec<Call<Vec<StreamKey>, Vec<StoredState>>>,
) {
    answer_together(calls, |reqs| {
        let keys: Vec<StreamKey> = reqs.iter().flat_map(|r| r.iter().cloned()).collect();
        let mut all = runs::stream_states(conn, &keys)?.into_iter();
        Ok(reqs
            .iter()
            .map(|r| all.by_ref().take(r.len()).collect())
            .collect())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_taker_at_a_time_and_each_call_answered_once() {
        let queue: Batched<u32, u32> = Batched::default();
        let (mut a, a_takes) = queue.push(1);
        let (mut b, b_takes) = queue.push(2);
        assert!(
            a_takes && !b_takes,
            "the first caller takes, the second waits"
        );
        answer_together(queue.take(), |reqs| {
            Ok(reqs.iter().map(|r| *r * 10).collect())
        });
        assert_eq!(a.try_recv().unwrap().unwrap(), 10);
        assert_eq!(b.try_recv().unwrap().unwrap(), 20);
        let (_c, c_takes) = queue.push(3);
        assert!(c_takes, "after a take, the next caller takes again");
    }

    #[test]
    fn a_failed_batch_answers_each_call_alone() {
        let queue: Batched<u32, u32> = Batched::default();
        let (mut good, _) = queue.push(1);
        let (mut bad, _) = queue.push(13);
        answer_together(queue.take(), |reqs| {
            if reqs.iter().any(|r| **r == 13) {
                return Err(StoreError::Worker("13 refused".into()));
            }
            Ok(reqs.iter().map(|r| *r + 1).collect())
        });
        assert_eq!(good.try_recv().unwrap().unwrap(), 2);
        assert!(bad.try_recv().unwrap().is_err());
    }

    #[test]
    fn a_taker_that_cannot_get_the_connection_fails_the_waiting_calls() {
        let queue: Batched<u32, u32> = Batched::default();
        let (mut a, _) = queue.push(1);
        let (mut b, _) = queue.push(2);
        queue.fail_waiting(&StoreError::Worker("gone".into()));
        assert!(a.try_recv().unwrap().is_err() && b.try_recv().unwrap().is_err());
        assert!(queue.push(3).1, "the queue takes callers again");
    }
}
