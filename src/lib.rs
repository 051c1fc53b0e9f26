//! routesim: a trace-driven simulator for LLM request routing under multi-axis provider limits.
//!
//! The crate is organised one concept per module (see `DESIGN.md`): [`time`] (virtual clock),
//! [`limiter`] (the real, sans-IO rate limiter), [`attempt_log`] (attempts observed over real
//! HTTP), [`calibrate`] (deployments fitted to observed attempts, and their validation),
//! [`dist`] (seeded distributions), [`rng`]
//! (common random numbers), [`trace`] (requests in), [`provider`] (modelled upstreams),
//! [`policy`] (the real, sans-IO routing policies), [`engine`] (the event loop), [`metrics`]
//! (outcomes out), [`scenario`] (configuration), [`provenance`] (which preset figures are
//! sourced, which assumed), [`report`] (writers), [`sweep`] (grids × seeds in parallel),
//! [`progress`] (progress of long commands on stderr) and [`validate`] (the number checks every
//! config validator shares).

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
