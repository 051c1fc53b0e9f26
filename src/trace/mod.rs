//! Traces: the requests that go into a simulation.
//!
//! Owns the trace record ([`Request`], one LLM call), class interning ([`ClassTable`]), the
//! trace span limit ([`check_span`]) and the one error type of trace input and output
//! ([`TraceError`]). The routesim CSV format (documented in `traces/README.md`) is read by
//! [`reader`] ([`TraceReader`]) and written by [`writer`] ([`TraceWriter`]); [`lines`] bounds
//! the lines every reader accepts; [`matching`] holds the token bounds that import and routing
//! rules match on; [`generate`] is the built-in bursty agent-trace generator and [`import`]
//! reads public traces. It must not know about providers, policies or the engine: a trace
//! says what was asked and when, never where it went.
//!
//! Every input problem is a [`TraceError`] whose message names the file, the line, the field
//! and the bad value.

pub mod arrivals;
pub mod generate;
pub mod import;
pub mod lines;
pub mod matching;
pub mod month;
pub mod openloop;
pub mod reader;
pub mod records;
pub mod row;
pub mod shared;
pub mod source;
pub mod stats;
pub mod writer;

pub use lines::MAX_LINE_BYTES;
pub(crate) use lines::{csv_error, read_error, LineIndex, LineTooLong};
pub use reader::{TraceReader, COLUMN_NAMES, REQUIRED_COLUMNS};
pub use row::Row;
pub use writer::{TraceRow, TraceWriter};

use crate::time::{Duration, Instant, MICROS_PER_MS};
use std::collections::HashMap;
use std::fmt;

/// Index of a request class in a [`ClassTable`]. Built-ins are pre-registered in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u16);

impl ClassId {
    /// A human waits: optimise time to first token.
    pub const INTERACTIVE: ClassId = ClassId(0);
    /// Coding, planning, recovery: premium model.
    pub const HARD: ClassId = ClassId(1);
    /// Summaries, classification, backfills: cheapest good-enough model.
    pub const BULK: ClassId = ClassId(2);
    /// Nobody waits: batch API.
    pub const ASYNC: ClassId = ClassId(3);
}

/// The built-in class names, in [`ClassId`] order.
pub const BUILTIN_CLASSES: [&str; 4] = ["interactive", "hard", "bulk", "async"];

/// At most this many distinct classes in one trace (the four built-ins included). A class
/// column holding a tenant or user id is realistic; beyond this, group them with import class
/// rules. A row bringing one more is an input error naming its line.
pub const MAX_CLASSES: usize = 10_000;

/// The longest trace span accepted by default: one year of virtual time from time zero, for
/// `arrival_ms`, `think_ms` and `deadline_ms` alike. Epoch timestamps (a common mistake when
/// converting logs) are far beyond it and are refused with the row's line instead of running
/// a simulation over decades. A scenario raises it with `[trace] max_span`.
pub const DEFAULT_MAX_SPAN: Duration = Duration::from_micros(365 * 24 * crate::time::MICROS_PER_HOUR);

/// Checks one request against the trace span limit: its arrival, think time and deadline must
/// each be at most `max_span`. Errors name the file, the request's line and the field.
pub fn check_span(request: &Request, max_span: Duration, file: &str) -> Result<(), TraceError> {
    let checks = [
        ("arrival_ms", Some(request.arrival.as_micros())),
        ("think_ms", Some(request.think.as_micros())),
        ("deadline_ms", request.deadline.map(Duration::as_micros)),
    ];
    for (field, value) in checks {
        if let Some(micros) = value.filter(|v| *v > max_span.as_micros()) {
            return Err(TraceError::Row {
                file: file.to_string(),
                line: request.line,
                field: Some(field.to_string()),
                message: format!(
                    "{} ms is beyond the maximum trace span of {} ({} ms); times are milliseconds from the \
                     trace start, not epoch timestamps (raise the limit with the scenario's [trace] max_span)",
                    fmt_ms(micros),
                    max_span,
                    fmt_ms(max_span.as_micros())
                ),
            });
        }
    }
    Ok(())
}

/// Tables with at most this many classes are searched linearly (faster than hashing).
const LINEAR_LOOKUP_MAX: usize = 8;

/// Interns class names. [`ClassTable::new`] registers `interactive`, `hard`, `bulk`, `async`
/// as ids 0..3; other names get the next free id when first met.
#[derive(Clone, Debug)]
pub struct ClassTable {
    names: Vec<String>,
    index: HashMap<String, ClassId>,
}

impl ClassTable {
    /// A table holding the four built-in classes.
    pub fn new() -> Self {
        let mut table = ClassTable { names: Vec::new(), index: HashMap::new() };
        for (i, name) in BUILTIN_CLASSES.iter().enumerate() {
            table.names.push(name.to_string());
            table.index.insert(name.to_string(), ClassId(i as u16));
        }
        table
    }

    /// The id of `name`, registering it if it is new. A new name beyond [`MAX_CLASSES`] (the
    /// built-ins included) is refused; the caller turns that into an input error naming its
    /// file, line and field.
    pub fn intern(&mut self, name: &str) -> Result<ClassId, TooManyClasses> {
        if let Some(id) = self.get(name) {
            return Ok(id);
        }
        if !self.has_room() {
            return Err(TooManyClasses);
        }
        // MAX_CLASSES is below 65,536, so every id fits its u16.
        let id = u16::try_from(self.names.len()).map(ClassId).map_err(|_| TooManyClasses)?;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        Ok(id)
    }

    /// The id of `name`, if registered.
    pub fn get(&self, name: &str) -> Option<ClassId> {
        if self.names.len() <= LINEAR_LOOKUP_MAX {
            self.names.iter().position(|known| known == name).map(|i| ClassId(i as u16))
        } else {
            self.index.get(name).copied()
        }
    }

    /// The name of a registered class.
    ///
    /// # Panics
    /// If `id` was not issued by this table.
    pub fn name(&self, id: ClassId) -> &str {
        &self.names[usize::from(id.0)]
    }

    /// Number of registered classes (at least the four built-ins).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false for a table made by [`ClassTable::new`]; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All classes in id order.
    pub fn iter(&self) -> impl Iterator<Item = (ClassId, &str)> {
        self.names.iter().enumerate().map(|(i, name)| (ClassId(i as u16), name.as_str()))
    }

    /// Whether another class can still be registered (fewer than [`MAX_CLASSES`]).
    pub fn has_room(&self) -> bool {
        self.names.len() < MAX_CLASSES
    }
}

/// A [`ClassTable`] is full: one more distinct class would pass [`MAX_CLASSES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many distinct classes (at most {MAX_CLASSES})")]
pub struct TooManyClasses;

impl Default for ClassTable {
    fn default() -> Self {
        Self::new()
    }
}

/// One LLM call of a trace. Token counts are `u64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Stable hash of the trace's `id` string ([`crate::rng::hash_str`]); used as key for
    /// random draws and parent links.
    pub id: u64,
    /// Arrival time from the file (`arrival_ms`, may be fractional; converted to µs). In
    /// closed-loop replay a child's start is decided by its parent instead.
    pub arrival: Instant,
    pub class: ClassId,
    /// Total prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (<= `input_tokens`).
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the cache (<= `input_tokens - cached_input_tokens`).
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    /// Output reservation (`max_tokens`); >= `output_tokens`. Default = `output_tokens`.
    pub max_tokens: u64,
    /// Hash of the session string, if any.
    pub session: Option<u64>,
    /// Hash of the parent's id string, if any.
    pub parent: Option<u64>,
    /// Tool/think time between the parent's completion and this call's start (closed loop).
    pub think: Duration,
    /// Deadline relative to arrival, if any.
    pub deadline: Option<Duration>,
    /// 1-based line in the source file (the header is line 1), for error messages.
    pub line: u64,
}

impl Request {
    /// Prompt tokens not read from the cache.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_input_tokens)
    }
}

/// A trace input or output problem. `Display` is one line naming the file, the line and the
/// field, e.g. `traces/x.csv:12: field "input_tokens": expected a non-negative integer, got "-5"`
/// or `traces/x.csv: cannot open: No such file or directory (os error 2)`.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened, read or written.
    #[error("{file}: {action}: {source}")]
    Io {
        file: String,
        /// What failed: `cannot open`, `cannot read`, `cannot write`.
        action: &'static str,
        source: std::io::Error,
    },
    /// The header row is missing or names unknown, duplicate or too few columns.
    #[error("{file}:1: {message}")]
    Header { file: String, message: String },
    /// A data row is invalid.
    #[error("{file}:{line}: {}{message}", field_prefix(.field))]
    Row { file: String, line: u64, field: Option<String>, message: String },
    /// A generator configuration value is invalid.
    #[error("trace generator: {field}: {message}")]
    Config { field: String, message: String },
    /// A generator configuration file is invalid: its file, the line of the key when known
    /// (`g.toml:4: backfill_size: …`), or a syntax error (`g.toml:4: expected …`, no field).
    #[error("{file}{}: {}{message}", line_suffix(.line), key_prefix(.field))]
    Generator { file: String, line: Option<usize>, field: String, message: String },
    /// An import option (format, window, rate, class rules, mapping) is invalid.
    #[error("trace import: {field}: {message}")]
    Import { field: String, message: String },
}

/// An equal error (same variant, fields and message), for handing one read error to every
/// consumer of a shared pass; an I/O source error is copied as its kind and message.
impl Clone for TraceError {
    fn clone(&self) -> Self {
        match self {
            TraceError::Io { file, action, source } => TraceError::Io {
                file: file.clone(),
                action,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            TraceError::Header { file, message } => {
                TraceError::Header { file: file.clone(), message: message.clone() }
            }
            TraceError::Row { file, line, field, message } => TraceError::Row {
                file: file.clone(),
                line: *line,
                field: field.clone(),
                message: message.clone(),
            },
            TraceError::Config { field, message } => {
                TraceError::Config { field: field.clone(), message: message.clone() }
            }
            TraceError::Import { field, message } => {
                TraceError::Import { field: field.clone(), message: message.clone() }
            }
            TraceError::Generator { file, line, field, message } => TraceError::Generator {
                file: file.clone(),
                line: *line,
                field: field.clone(),
                message: message.clone(),
            },
        }
    }
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map_or(String::new(), |l| format!(":{l}"))
}

fn key_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(field) => format!("field \"{field}\": "),
        None => String::new(),
    }
}

/// At most this many characters of an input value are echoed in an error.
const SHOWN_MAX_CHARS: usize = 60;

/// A value quoted for an error message, elided past [`SHOWN_MAX_CHARS`] characters so a huge
/// field never becomes a huge error line.
pub fn elide(value: &str) -> String {
    match value.char_indices().nth(SHOWN_MAX_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => {
            format!("{:?}… ({} bytes)", &value[..cut], value.len())
        }
    }
}

/// µs shown as milliseconds, without trailing zeros: `1200000` → `1200`, `1234500` → `1234.5`.
fn fmt_ms(micros: u64) -> String {
    let whole = micros / MICROS_PER_MS;
    let frac = micros % MICROS_PER_MS;
    if frac == 0 {
        whole.to_string()
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "class#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "id,arrival_ms,class,input_tokens,output_tokens\n";

    #[test]
    fn times_beyond_the_span_limit_are_refused_with_line_and_field() {
        let request = |arrival_ms: u64, think_ms: u64, deadline_ms: Option<u64>| Request {
            id: 1,
            arrival: Instant::from_millis(arrival_ms),
            class: ClassId::HARD,
            input_tokens: 1,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 1,
            max_tokens: 1,
            session: None,
            parent: None,
            think: Duration::from_millis(think_ms),
            deadline: deadline_ms.map(Duration::from_millis),
            line: 7,
        };
        let hour = Duration::from_mins(60);
        assert!(check_span(&request(3_600_000, 3_600_000, Some(3_600_000)), hour, "t.csv").is_ok());
        for (r, field) in [
            (request(3_600_001, 0, None), "arrival_ms"),
            (request(0, 3_600_001, None), "think_ms"),
            (request(0, 0, Some(3_600_001)), "deadline_ms"),
        ] {
            let e = check_span(&r, hour, "t.csv").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "t.csv:7: field \"{field}\": 3600001 ms is beyond the maximum trace span of 1h"
                )),
                "{e}"
            );
        }
        // Epoch milliseconds are far beyond the default year.
        assert!(check_span(&request(1_733_000_000_000, 0, None), DEFAULT_MAX_SPAN, "t.csv").is_err());
        assert!(check_span(&request(364 * 86_400_000, 0, None), DEFAULT_MAX_SPAN, "t.csv").is_ok());
    }

    #[test]
    fn class_interning_is_stable_across_readers() {
        let mut table = ClassTable::new();
        assert_eq!(table.len(), 4);
        assert!(!table.is_empty());
        for (i, name) in BUILTIN_CLASSES.iter().enumerate() {
            assert_eq!(table.get(name), Some(ClassId(i as u16)));
        }
        assert_eq!(table.name(ClassId::ASYNC), "async");
        let first = format!("{MINIMAL}a,0,tenant-a,1,1\nb,0,tenant-b,1,1\n");
        let mut reader = TraceReader::from_reader(first.as_bytes(), "one.csv").unwrap();
        let ids: Vec<ClassId> = reader.by_ref().map(|r| r.unwrap().class).collect();
        assert_eq!(ids, vec![ClassId(4), ClassId(5)]);
        table = reader.into_classes();

        // The second file meets the classes in the other order, and a new one.
        let second = format!("{MINIMAL}a,0,tenant-b,1,1\nb,0,tenant-c,1,1\nc,0,tenant-a,1,1\nd,0,bulk,1,1\n");
        let reader =
            TraceReader::from_reader(second.as_bytes(), "two.csv").unwrap().with_classes(table).unwrap();
        let mut reader = reader;
        let ids: Vec<ClassId> = reader.by_ref().map(|r| r.unwrap().class).collect();
        assert_eq!(ids, vec![ClassId(5), ClassId(6), ClassId(4), ClassId::BULK]);
        let names: Vec<&str> = reader.classes().iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["interactive", "hard", "bulk", "async", "tenant-a", "tenant-b", "tenant-c"]);
    }

    #[test]
    fn class_lookup_switches_to_hashing_without_changing_ids() {
        let mut table = ClassTable::new();
        let ids: Vec<ClassId> = (0..20).map(|i| table.intern(&format!("c{i}")).unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(table.get(&format!("c{i}")), Some(*id));
            assert_eq!(table.intern(&format!("c{i}")), Ok(*id));
        }
        assert_eq!(table.get("hard"), Some(ClassId::HARD));
        assert_eq!(table.get("nope"), None);
    }

    #[test]
    fn interning_past_the_class_limit_is_an_error_not_a_panic() {
        let mut table = ClassTable::new();
        for i in BUILTIN_CLASSES.len()..MAX_CLASSES {
            table.intern(&format!("c{i}")).unwrap();
        }
        assert_eq!(table.len(), MAX_CLASSES);
        assert!(!table.has_room());
        assert_eq!(table.intern("one-more"), Err(TooManyClasses));
        // Known names still resolve; the table is unchanged.
        assert_eq!(table.intern("c4"), Ok(ClassId(4)));
        assert_eq!(table.intern("async"), Ok(ClassId::ASYNC));
        assert_eq!(table.len(), MAX_CLASSES);
        // Far past the u16 range as well: still an error.
        for i in 0..70_000 {
            assert!(table.intern(&format!("x{i}")).is_err());
        }
    }
}
