//! The daemon loop behind `kore-sync run`: a pass at start, then one per tick
//! of the configured interval or cron schedule (tokio-cron-scheduler), until
//! the shutdown token is cancelled.
//!
//! Architecture invariant: passes never overlap. Ticks only post to a channel
//! of capacity one; a single loop takes them one at a time, and ticks that
//! arrived while a pass was running are dropped, not queued.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// When `run` starts a pass (`sync.interval` or `sync.schedule`).
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Interval(Duration),
    /// A cron expression with seconds, as tokio-cron-scheduler reads it.
    Cron(String),
}

/// Starts the scheduler that posts a tick on `trigger`. Keep the returned
/// scheduler alive (and shut it down) for as long as ticks are wanted.
pub async fn start_ticks(
    trigger: &Trigger,
    ticks: mpsc::Sender<()>,
) -> Result<JobScheduler, JobSchedulerError> {
    let sched = JobScheduler::new().await?;
    let post = move || {
        let ticks = ticks.clone();
        async move {
            if ticks.try_send(()).is_err() {
                debug!("tick dropped: a pass is pending or running");
            }
        }
    };
    let job = match trigger {
        Trigger::Interval(every) => Job::new_repeated_async(*every, move |_, _| Box::pin(post()))?,
        Trigger::Cron(expr) => Job::new_async(expr.as_str(), move |_, _| Box::pin(post()))?,
    };
    sched.add(job).await?;
    sched.start().await?;
    Ok(sched)
}

/// Runs `pass` once at start and then once per tick, one at a time, until
/// `cancel` fires. Returns the number of passes run.
pub async fn drive<F, Fut>(
    mut ticks: mpsc::Receiver<()>,
    cancel: CancellationToken,
    mut pass: F,
) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut n = 0;
    loop {
        pass().await;
        n += 1;
        // Ticks that fired while the pass ran are stale: drop them.
        while ticks.try_recv().is_ok() {
            debug!("skipped a tick that fired while the pass was running");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            tick = ticks.recv() => if tick.is_none() { break },
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    info!(passes = n, "scheduler stopped");
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn a_pass_running_at_the_next_tick_is_not_started_twice() {
        let (tx, rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let running = Arc::new(AtomicU32::new(0));
        let max_running = Arc::new(AtomicU32::new(0));
        let started = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let driver = {
            let (running, max_running, started, release) = (
                running.clone(),
                max_running.clone(),
                started.clone(),
                release.clone(),
            );
            tokio::spawn(drive(rx, cancel.clone(), move || {
                let (running, max_running, started, release) = (
                    running.clone(),
                    max_running.clone(),
                    started.clone(),
                    release.clone(),
                );
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    started.notify_one();
                    release.notified().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }))
        };
        // The first pass is running; three ticks fire meanwhile.
        started.notified().await;
        for _ in 0..3 {
            let _ = tx.try_send(());
        }
        release.notify_one();
        // Wait until the loop has dropped the stale tick (the channel is empty
        // again), then fire a fresh one: exactly one more pass must start.
        while tx.capacity() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(running.load(Ordering::SeqCst), 0);
        tx.send(()).await.unwrap();
        started.notified().await;
        release.notify_one();
        cancel.cancel();
        let passes = driver.await.unwrap();
        assert_eq!(passes, 2);
        assert_eq!(max_running.load(Ordering::SeqCst), 1);
    }
}
