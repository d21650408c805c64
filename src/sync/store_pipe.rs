//! `StorePipe`: lets a stream read its next pages while the previous chunk
//! or window is being stored, so parsing and DuckDB use both cores.
//!
//! Architecture invariant: at most one store job is in flight, and a job
//! starts only after the previous one finished (`settle` before `start_…`).
//! So a window's chunks land before its commit, windows commit oldest
//! first, and the watermark rule holds as if the jobs ran inline. A failed
//! job surfaces at the next `settle` and ends the stream.

use super::report::{Observer, StreamReport};
use crate::store::{StoreError, WindowCommit};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// What one store job did.
struct StoreJob {
    /// How many windows its commit completes: one or more (consecutive
    /// windows committed together), or none for a chunk of a dense window,
    /// which leaves the watermark where it is.
    n_windows: u32,
    commit: WindowCommit,
    n_rejected: u64,
    took: Duration,
}

#[derive(Default)]
pub(super) struct StorePipe {
    in_flight: Mutex<Option<JoinHandle<Result<StoreJob, StoreError>>>>,
    done: Mutex<Vec<StoreJob>>,
}

impl StorePipe {
    /// Starts storing `n_windows` consecutive windows completely read (its
    /// commit moves the watermark); `n_rejected` records it keeps in
    /// `rejected_records`.
    pub(super) fn start_windows(
        &self,
        (n_windows, n_rejected): (u32, usize),
        commit: impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static,
    ) {
        self.start(n_windows, n_rejected, commit);
    }

    /// Starts storing a chunk of a window still being read.
    pub(super) fn start_chunk(
        &self,
        n_rejected: usize,
        commit: impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static,
    ) {
        self.start(0, n_rejected, commit);
    }

    fn start(
        &self,
        n_windows: u32,
        n_rejected: usize,
        commit: impl Future<Output = Result<WindowCommit, StoreError>> + Send + 'static,
    ) {
        let mut slot = self.in_flight.lock().expect("store pipe lock");
        debug_assert!(
            slot.is_none(),
            "a store job started before the previous one settled"
        );
        *slot = Some(tokio::spawn(async move {
            let started = Instant::now();
            Ok(StoreJob {
                n_windows,
                commit: commit.await?,
                n_rejected: n_rejected as u64,
                took: started.elapsed(),
            })
        }));
    }

    /// Waits for the job in flight, if any.
    pub(super) async fn settle(&self) -> Result<(), StoreError> {
        let handle = self.in_flight.lock().expect("store pipe lock").take();
        if let Some(handle) = handle {
            let job = handle
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))??;
            self.done.lock().expect("store pipe lock").push(job);
        }
        Ok(())
    }

    /// Adds the finished jobs to the stream's report, telling the observer
    /// of each window completed.
    pub(super) fn count(&self, report: &mut StreamReport, observer: Option<&Observer>) {
        let done = std::mem::take(&mut *self.done.lock().expect("store pipe lock"));
        for job in done {
            report.store_time += job.took;
            report.sessions_received += job.commit.n_received as u64;
            report.sessions_written += job.commit.n_written as u64;
            report.records_rejected += job.n_rejected;
            if job.n_windows > 0 {
                report.windows_done += job.n_windows;
                report.watermark = job.commit.watermark;
                if let Some(o) = observer {
                    o.0.advanced(report);
                }
            }
        }
    }
}
