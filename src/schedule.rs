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

/// Where the scheduler posts: a pass tick (`sync.interval` or
/// `sync.schedule`), and a verify tick (`sync.verify_schedule`). Each channel
/// holds at most one tick; a tick that finds one waiting is dropped.
pub struct TickSenders {
    pub passes: mpsc::Sender<()>,
    pub verifies: mpsc::Sender<()>,
}

/// What [`drive`] takes ticks from.
pub struct Ticks {
    pub passes: mpsc::Receiver<()>,
    pub verifies: mpsc::Receiver<()>,
}

/// The two channels, each of capacity one.
pub fn channels() -> (TickSenders, Ticks) {
    let (passes, pass_rx) = mpsc::channel(1);
    let (verifies, verify_rx) = mpsc::channel(1);
    (
        TickSenders { passes, verifies },
        Ticks {
            passes: pass_rx,
            verifies: verify_rx,
        },
    )
}

/// What the daemon does at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Pass,
    Verify,
}

/// Starts the scheduler that posts pass ticks on `trigger` and, if given,
/// verify ticks on the cron expression `verify`. Keep the returned scheduler
/// alive (and shut it down) for as long as ticks are wanted.
pub async fn start_ticks(
    trigger: &Trigger,
    verify: Option<&str>,
    senders: TickSenders,
) -> Result<JobScheduler, JobSchedulerError> {
    let sched = JobScheduler::new().await?;
    let post = |tx: mpsc::Sender<()>, what: &'static str| {
        move || {
            let tx = tx.clone();
            async move {
                if tx.try_send(()).is_err() {
                    debug!(tick = what, "tick dropped: one is pending or running");
                }
            }
        }
    };
    let pass = post(senders.passes, "pass");
    let job = match trigger {
        Trigger::Interval(every) => Job::new_repeated_async(*every, move |_, _| Box::pin(pass()))?,
        Trigger::Cron(expr) => Job::new_async(expr.as_str(), move |_, _| Box::pin(pass()))?,
    };
    sched.add(job).await?;
    if let Some(expr) = verify {
        let verify = post(senders.verifies, "verify");
        sched
            .add(Job::new_async(expr, move |_, _| Box::pin(verify()))?)
            .await?;
    }
    sched.start().await?;
    Ok(sched)
}

/// Runs a pass once at start and then the work of each tick, one at a time,
/// until `cancel` fires. Pass ticks that fired while work ran are stale and
/// dropped; a verify tick waits its turn. Returns how many were run.
pub async fn drive<F, Fut>(mut ticks: Ticks, cancel: CancellationToken, mut work: F) -> u64
where
    F: FnMut(Work) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut n = 0;
    let mut next = Work::Pass;
    loop {
        work(next).await;
        n += 1;
        while ticks.passes.try_recv().is_ok() {
            debug!("skipped a pass tick that fired while work was running");
        }
        if cancel.is_cancelled() {
            break;
        }
        match next_tick(&mut ticks, &cancel).await {
            Some(work) => next = work,
            None => break,
        }
    }
    info!(runs = n, "scheduler stopped");
    n
}

/// Waits for the next tick; None once cancelled or when passes can no
/// longer tick. Verify ticks may never come: with no `verify_schedule`
/// their sender is gone from the start, which means "never", not "stop".
async fn next_tick(ticks: &mut Ticks, cancel: &CancellationToken) -> Option<Work> {
    let mut verifies_open = !ticks.verifies.is_closed();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            tick = ticks.verifies.recv(), if verifies_open => match tick {
                Some(()) => return Some(Work::Verify),
                None => verifies_open = false,
            },
            tick = ticks.passes.recv() => return tick.map(|()| Work::Pass),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn a_pass_running_at_the_next_tick_is_not_started_twice() {
        let (senders, ticks) = channels();
        let tx = senders.passes;
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
            tokio::spawn(drive(ticks, cancel.clone(), move |_| {
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

#[cfg(test)]
mod no_verify_schedule {
    use super::*;

    /// The daemon ran one pass and exited (status 0) when
    /// `verify_schedule = ""`: the verify channel, closed from the start,
    /// ended the loop. Passes must go on ticking until cancelled.
    #[tokio::test]
    async fn passes_go_on_when_verify_never_ticks() {
        let (senders, ticks) = channels();
        drop(senders.verifies);
        let passes = senders.passes;
        let cancel = CancellationToken::new();
        let (ran_tx, mut ran) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(ticks, cancel.clone(), move |what| {
            let ran_tx = ran_tx.clone();
            async move {
                ran_tx.send(what).unwrap();
            }
        }));
        // The pass at start, then one per tick.
        assert_eq!(ran.recv().await, Some(Work::Pass));
        for _ in 0..2 {
            passes.send(()).await.unwrap();
            assert_eq!(ran.recv().await, Some(Work::Pass));
        }
        assert!(!driver.is_finished());
        cancel.cancel();
        assert_eq!(driver.await.unwrap(), 3);
    }
}

#[cfg(test)]
mod verify_ticks {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn a_verify_tick_during_a_pass_runs_after_it_and_never_beside_it() {
        let (senders, ticks) = channels();
        let cancel = CancellationToken::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let driver = {
            let (log, started, release) = (log.clone(), started.clone(), release.clone());
            tokio::spawn(drive(ticks, cancel.clone(), move |what| {
                let (log, started, release) = (log.clone(), started.clone(), release.clone());
                async move {
                    log.lock().unwrap().push(format!("start {what:?}"));
                    started.notify_one();
                    release.notified().await;
                    log.lock().unwrap().push(format!("end {what:?}"));
                }
            }))
        };
        // During the first pass a verify tick and a pass tick fire.
        started.notified().await;
        senders.verifies.try_send(()).unwrap();
        senders.passes.try_send(()).unwrap();
        release.notify_one();
        // The verify runs next (the stale pass tick is dropped).
        started.notified().await;
        release.notify_one();
        cancel.cancel();
        assert_eq!(driver.await.unwrap(), 2);
        assert_eq!(
            *log.lock().unwrap(),
            ["start Pass", "end Pass", "start Verify", "end Verify"]
        );
    }
}
