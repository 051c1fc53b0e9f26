//! Integration tests, compiled as one binary: one module per behaviour.

mod behaviour;
mod calibrate;
mod cli;
mod conformance;
mod determinism;
mod gateway_logs;
mod http_support;
mod litellm_import;
mod live;
mod observe;
mod observe_loop;
mod policies;
mod report;
mod resources;
mod serve_provider;
mod support;
mod sweep;
mod traces;
mod validation;
