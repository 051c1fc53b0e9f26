//! Integration tests, compiled as one binary: one module per behaviour.

mod behaviour;
mod cli;
mod determinism;
mod report;
mod support;
mod validation;
