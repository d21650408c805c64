//! The sync engine. A pass (`pass`, asked for by `options`, stopped by
//! `stop`) runs every scope concurrently and each scope's streams in turn; a stream (`stream`) plans its windows (`plan`,
//! pure), pages them (`fetch`, `accumulator`) and commits them in order
//! (`store_pipe`) through a [`Resource`] — today sessions, the one place
//! that knows which API call and which store commit a record needs.
//! `refresh` reads sessions by id; `reconcile` compares stored history
//! with the API's counts behind the watermark, and `verify` does so over a
//! whole range; `publish` serves readers after a pass.
//!
//! `sync` takes its settings as values (`context`); it never reads the
//! configuration, which sits above it.

mod accumulator;
mod analytics;
mod analytics_check;
pub mod bare;
pub mod context;
mod fetch;
mod llm;
mod llm_check;
mod messages;
pub mod names;
pub mod options;
pub mod orphans;
pub mod pass;
pub mod plan;
pub mod privacy;
pub mod publish;
pub mod reconcile;
pub mod refresh;
mod report;
pub mod resource;
mod scopes;
mod stop;
mod store_pipe;
mod stream;
pub mod verify;
mod verify_messages;

pub use context::{
    AnalyticsSettings, MESSAGES_PAGE, MessagesSettings, Scope, ScopeApi, SyncContext, SyncSettings,
    SyncSetup, build_scopes,
};
pub use fetch::{CHUNK_SESSIONS, FetchError};
pub use options::{PASS_BUDGET_PATIENCE, PassOptions, PassTrigger};
pub use pass::run_pass;
pub use refresh::{FetchByIdRequest, Refreshed, fetch_by_id};
pub use report::{Observer, PassObserver, PassReport, StreamReport};
pub use resource::Resource;
pub use stream::HOLD_RECORDS;
pub use verify::{VerifyOptions, VerifyReport, VerifyRow, verify};
