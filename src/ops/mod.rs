//! Operations: what an operator (and systemd, and Prometheus) sees of a
//! running daemon. `metrics` holds the process's Prometheus metrics,
//! `health` the last pass of every stream and the HTTP server for
//! `/healthz` and `/metrics`, `notify` the sd_notify protocol.

pub mod health;
pub mod metrics;
pub mod notify;
