//! Integration tests, compiled as one binary: one module per behaviour.

mod behaviour;
mod calibrate;
mod cli;
mod conformance;
mod determinism;
mod litellm_import;
mod live;
mod policies;
mod report;
mod resources;
mod support;
mod sweep;
mod traces;
mod validation;
