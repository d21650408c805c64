//! A pass: every selected scope concurrently, and within a scope its
//! streams one after another (they share the scope's request budget).

use super::analytics::{analytics_channels, analytics_keys, syncs_analytics};
use super::context::{ScopeApi, SyncContext};
use super::llm::{llm_usage_key, syncs_llm_usage};
use super::messages::{message_keys, syncs_messages};
use super::options::PassOptions;
use super::report::{PassReport, StreamReport};
use super::scopes::{ScopeDone, run_scopes};
use super::stop::Stop;
use super::stream::{StreamRun, run_stream};
use crate::model::StreamKey;
use crate::ops::metrics::PassEnded;
use crate::store::{FinishedRun, StoreError};
use chrono::{DateTime, Utc};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

/// Runs one pass over every selected stream. Stream failures are reported in
/// the result, never returned as `Err`: one failing stream does not stop the
/// others from committing. `Err` means the warehouse itself failed.
#[instrument(skip_all, fields(trigger = opts.trigger.as_str()))]
pub async fn run_pass(
    ctx: &SyncContext,
    opts: &PassOptions,
    cancel: &CancellationToken,
) -> Result<PassReport, StoreError> {
    let started = Instant::now();
    let pass_id = uuid::Uuid::new_v4().to_string();
    let stop = Stop::new(cancel, ctx.settings.pass_deadline);
    // The deadline cancels only this pass's token, never the process's.
    let _deadline = stop.arm_deadline();
    let run = |scope: ScopeApi| {
        let task = ScopeTask {
            ctx: ctx.clone(),
            scope,
            opts: opts.clone(),
            stop: stop.clone(),
            pass_id: pass_id.clone(),
        };
        task.run()
    };
    let scopes = run_scopes(ctx, opts.only_bot.as_deref(), run).await?;
    let mut report = PassReport {
        pass_id: pass_id.clone(),
        streams: scopes.into_iter().flatten().collect(),
    };
    // Names after sessions, so they never take budget a stream needed.
    if !cancel.is_cancelled() && opts.only_bot.is_none() {
        super::names::refresh_bot_names(ctx, cancel).await;
    }
    PassEnded {
        took: started.elapsed(),
    }
    .emit();
    for s in &report.streams {
        s.ended().emit();
    }
    report.streams.sort_by_cached_key(report_order);
    Ok(report)
}

/// Where a stream's line goes in a pass's report: by bot, then sessions,
/// messages, analytics and LLM usage (the order they run in), then by
/// partition.
fn report_order(s: &StreamReport) -> (String, u8, String) {
    let k = &s.key;
    let rank = match k.partition.resource() {
        "sessions" => 0,
        "messages" => 1,
        "analytics" => 2,
        _ => 3,
    };
    (k.bot_id.clone(), rank, k.partition.name().to_owned())
}

/// One scope's part of a pass, owned so it can run as its own task.
struct ScopeTask {
    ctx: SyncContext,
    scope: ScopeApi,
    opts: PassOptions,
    stop: Stop,
    pass_id: String,
}

impl ScopeTask {
    /// Runs the scope's streams in turn. Its budget was loaded with every
    /// request any process sent for this scope in the last hour; the
    /// requests it sends are handed back for the pass to log.
    async fn run(self) -> ScopeDone<Vec<StreamReport>> {
        let api = &self.scope.api;
        let mut reports = Vec::new();
        let filter = self.scope.scope.filter.fingerprint();
        let sessions: Vec<StreamKey> = self
            .ctx
            .settings
            .containment_types
            .iter()
            .map(|&ct| StreamKey::sessions(api.bot_id(), ct, &filter))
            .collect();
        let mut result = self
            .run_streams(sessions.iter().cloned(), None, &[], &mut reports)
            .await;
        // Messages after sessions, so sessions always get the budget first;
        // and never past what the sessions have read (issue 21).
        let messages = self.messages_enabled();
        if result.is_ok() && messages {
            result = match self.message_streams(&sessions).await {
                Ok((keys, read)) => {
                    self.run_streams(keys.into_iter(), read, &[], &mut reports)
                        .await
                }
                Err(e) => Err(e),
            };
        }
        // Analytics last: a bot's sessions and messages come first to its
        // budget.
        if result.is_ok() && syncs_analytics(&self.ctx, &self.scope) {
            let bot_id = api.bot_id();
            result = match analytics_channels(&self.ctx, bot_id).await {
                Ok(channels) => {
                    let keys = analytics_keys(&self.ctx, bot_id);
                    self.run_streams(keys.into_iter(), None, &channels, &mut reports)
                        .await
                }
                Err(e) => Err(e),
            };
        }
        if result.is_ok() && syncs_llm_usage(&self.ctx, &self.scope) {
            let key = llm_usage_key(api.bot_id());
            result = self
                .run_streams(std::iter::once(key), None, &[], &mut reports)
                .await;
        }
        ScopeDone {
            bot_id: api.bot_id().to_owned(),
            requests: api.budget().take_unsaved(),
            // Sessions seen closing are noted for their message streams;
            // without any, nothing will read the notes.
            forget_closed: result.is_ok() && !messages,
            outcome: result.map(|()| reports),
        }
    }

    /// Runs `keys` in turn; stops at the first warehouse failure.
    /// `sessions_read` bounds message streams, and analytics streams name
    /// `channels` (see `StreamRun`).
    async fn run_streams(
        &self,
        keys: impl Iterator<Item = StreamKey>,
        sessions_read: Option<DateTime<Utc>>,
        channels: &[String],
        reports: &mut Vec<StreamReport>,
    ) -> Result<(), StoreError> {
        // The group's runs begin in one statement and end in another; should
        // the warehouse fail before a stream's turn, its row stays `running`
        // and the next open marks it abandoned, as for a crash.
        let keys: Vec<StreamKey> = keys.collect();
        let store = &self.ctx.store;
        let trigger = self.opts.trigger.as_str();
        let run_ids = store.begin_runs(&self.pass_id, &keys, trigger).await?;
        // Each stream alone changes its own row, so the group's rows read
        // now are what each would read at its turn.
        let states = store.stream_states(keys.clone()).await?;
        let now = Utc::now();
        let mut finished = Vec::with_capacity(keys.len());
        let mut result = Ok(());
        for ((key, run_id), stored) in keys.into_iter().zip(run_ids).zip(states) {
            let run = StreamRun {
                ctx: &self.ctx,
                scope: &self.scope,
                key,
                opts: &self.opts,
                stop: &self.stop,
                sessions_read,
                stored,
                channels,
                now,
            };
            match run_stream(run).await {
                Ok(report) => {
                    finished.push(FinishedRun {
                        run_id,
                        record: report.run_record(),
                        finished_at: Utc::now(),
                    });
                    reports.push(report);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Those that ended are recorded even when a later one failed.
        let recorded = store.finish_runs(finished).await;
        result.and(recorded)
    }

    /// Whether this scope's messages are synced (see `syncs_messages`).
    fn messages_enabled(&self) -> bool {
        syncs_messages(&self.ctx, &self.scope)
    }

    /// One messages stream per channel: those the bot's stored sessions use
    /// (the API reads `rtm` alone unless told a channel) and the configured
    /// ones; and how far the bot's session streams (`sessions`) have read:
    /// the lowest of their watermarks under their current filter, None while
    /// any has none.
    async fn message_streams(
        &self,
        sessions: &[StreamKey],
    ) -> Result<(Vec<StreamKey>, Option<DateTime<Utc>>), StoreError> {
        let mut read: Option<DateTime<Utc>> = None;
        let states = self.ctx.store.stream_states(sessions.to_vec()).await?;
        for (n, (key, (watermark, filter))) in sessions.iter().zip(states).enumerate() {
            // As the stream itself reads it: a watermark reached under
            // another filter counts as absent.
            let watermark = watermark.filter(|_| filter.as_deref().is_none_or(|f| f == key.filter));
            read = match (n, watermark) {
                (0, w) => w,
                (_, Some(w)) => read.map(|r| r.min(w)),
                (_, None) => None,
            };
        }
        let keys = message_keys(&self.ctx, &self.scope.scope.bot_id).await?;
        Ok((keys, read))
    }
}
