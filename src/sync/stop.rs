//! The pass's stop signal: shutdown (the process-wide token) or the pass
//! deadline, whichever comes first. Every stream of the pass watches it.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The pass's stop signal: shutdown (the process-wide token) or the pass
/// deadline, whichever comes first.
#[derive(Clone)]
pub(super) struct Stop {
    /// Cancelled on shutdown or at the deadline: what the pass's work watches.
    pub(super) token: CancellationToken,
    shutdown: CancellationToken,
    deadline: Duration,
}

impl Stop {
    pub(super) fn new(shutdown: &CancellationToken, deadline: Duration) -> Self {
        Stop {
            token: shutdown.child_token(),
            shutdown: shutdown.clone(),
            deadline,
        }
    }

    /// Cancels this pass's token when the deadline passes, unless the
    /// returned guard is dropped first (the pass ended).
    pub(super) fn arm_deadline(&self) -> AbortOnDrop {
        let (token, deadline) = (self.token.clone(), self.deadline);
        AbortOnDrop(
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                token.cancel();
            })
            .abort_handle(),
        )
    }

    /// Why the pass stopped, for the stream's report.
    pub(super) fn reason(&self) -> String {
        format!(
            "{}; the next pass continues from the watermark",
            self.cause()
        )
    }

    /// What stopped the pass: shutdown, or the deadline.
    pub(super) fn cause(&self) -> String {
        if self.shutdown.is_cancelled() {
            "shutdown requested".to_owned()
        } else {
            format!(
                "the pass deadline ({}) was reached",
                humantime::format_duration(self.deadline)
            )
        }
    }
}

/// Aborts a helper task when the pass that spawned it ends, however it ends.
pub(super) struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
