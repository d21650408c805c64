//! Operations: what an operator (and systemd, and Prometheus) sees of a
//! running daemon. `metrics` holds the process's Prometheus metrics,
//! `health` the last pass of every stream and the HTTP server for
//! `/healthz`, `/metrics`, the status page and `/status.json`; `board` is
//! what the status page shows, `page` and `charts` draw it; `notify` speaks
//! the sd_notify protocol.

pub mod board;
pub mod charts;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod page;
