//! Integration tests, compiled as one binary: one module per behaviour.

mod behaviour;
mod cli;
mod determinism;
mod support;
mod sweep;
mod validation;
