//! routesim: a trace-driven simulator for LLM request routing under multi-axis provider limits.
//!
//! The crate is organised one concept per module; README.md's Layout section maps every file
//! and gives the import order (no cycles). Leaves: [`time`] (virtual clock), [`rng`] (common
//! random numbers), [`validate`] (the shared number checks), [`suggest`] ("did you mean"),
//! [`toml_lines`] (TOML line numbers), [`progress`] (progress on stderr). Then [`provenance`]
//! (which preset figures are sourced, which assumed), [`dist`] (seeded distributions),
//! [`limiter`] (the real, sans-IO rate limiter), [`ratelimit_headers`] (the providers' header
//! names), [`attempt_log`] (attempts observed over real HTTP), [`trace`] (requests in),
//! [`provider`] (modelled upstreams), [`policy`] (the real, sans-IO routing policies and their
//! driver), [`metrics`] (outcomes out), [`metric`] (the metric catalogue), [`engine`] (the
//! event loop), [`scenario`] (configuration), [`run`] (a scenario's strategies run),
//! [`sweep`] (grids × seeds in parallel), [`report`] (writers, plots, the gate),
//! [`calibrate`] (deployments fitted to observed attempts, and their validation), [`live`]
//! (the policies on the wall clock), [`serve`] (the modelled provider over HTTP) and
//! [`observe`] (a strategy replayed against real endpoints).

pub mod attempt_log;
pub mod calibrate;
pub mod dist;
pub mod engine;
pub mod limiter;
pub mod live;
pub mod metric;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod progress;
pub mod provenance;
pub mod provider;
pub mod ratelimit_headers;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod suggest;
pub mod sweep;
pub mod time;
pub mod toml_lines;
pub mod trace;
pub mod validate;
