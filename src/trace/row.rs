//! One owned trace row on a microsecond clock: what the generators and the importers produce
//! before a row becomes a [`Request`] or a line of the routesim CSV.
//!
//! Owns the one rule that makes a trace replay the same from memory and from its CSV: times
//! are truncated to whole milliseconds and ids, sessions and parents are hashed exactly as
//! the reader does. It must not know where rows come from.

use super::{ClassId, Request, TraceRow};
use crate::rng::hash_str;
use crate::time::{Duration, Instant, MICROS_PER_MS};

/// One row. [`Row::to_request`] and the CSV written from [`Row::trace_row`] read back as the
/// same [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub arrival_us: u64,
    /// Production order: the tie-break of a sort by arrival.
    pub seq: u64,
    pub id: String,
    pub class: ClassId,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub max_tokens: u64,
    pub session: Option<String>,
    pub parent: Option<String>,
    pub think_us: u64,
    pub deadline_ms: Option<u64>,
}

impl Row {
    /// The row as the CSV writer takes it, its class written as `class_name`.
    pub fn trace_row<'a>(&'a self, class_name: &'a str) -> TraceRow<'a> {
        TraceRow {
            id: &self.id,
            arrival_ms: self.arrival_us / MICROS_PER_MS,
            class: class_name,
            input_tokens: self.input_tokens,
            cached_input_tokens: self.cached_input_tokens,
            cache_write_tokens: self.cache_write_tokens,
            output_tokens: self.output_tokens,
            max_tokens: self.max_tokens,
            session: self.session.as_deref(),
            parent: self.parent.as_deref(),
            think_ms: self.think_us / MICROS_PER_MS,
            deadline_ms: self.deadline_ms,
        }
    }

    /// The request the engine replays: what reading this row back from CSV line `line` gives.
    pub fn to_request(&self, line: u64) -> Request {
        Request {
            id: hash_str(&self.id),
            arrival: Instant::from_millis(self.arrival_us / MICROS_PER_MS),
            class: self.class,
            input_tokens: self.input_tokens,
            cached_input_tokens: self.cached_input_tokens,
            cache_write_tokens: self.cache_write_tokens,
            output_tokens: self.output_tokens,
            max_tokens: self.max_tokens,
            session: self.session.as_deref().map(hash_str),
            parent: self.parent.as_deref().map(hash_str),
            think: Duration::from_millis(self.think_us / MICROS_PER_MS),
            deadline: self.deadline_ms.map(Duration::from_millis),
            line,
        }
    }
}
