//! Traces: the requests that go into a simulation.
//!
//! Owns the trace record ([`Request`], one LLM call), class interning ([`ClassTable`]), the
//! streaming reader and writer of the routesim CSV format ([`TraceReader`], [`TraceWriter`],
//! documented in `traces/README.md`) and, in [`gen`], the built-in bursty agent-trace
//! generator. It must not know about providers, policies or the engine: a trace says what was
//! asked and when, never where it went.
//!
//! The reader is streaming: it parses one byte record at a time into a reused buffer, so its
//! memory does not grow with the file, and it allocates per row only when it meets a new class.
//! Every input problem is a [`TraceError`] whose message names the file, the line, the field
//! and the bad value.

pub mod arrivals;
pub mod gen;
pub mod import;
pub mod month;
pub mod openloop;
pub mod records;
pub mod shared;
pub mod source;
pub mod stats;

use crate::rng::hash_str;
use crate::time::{Duration, Instant, MICROS_PER_MS};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

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
        for name in BUILTIN_CLASSES {
            table.intern(name);
        }
        table
    }

    /// The id of `name`, registering it if it is new.
    ///
    /// # Panics
    /// If the table already holds 65,536 classes (ids are `u16`).
    pub fn intern(&mut self, name: &str) -> ClassId {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id =
            u16::try_from(self.names.len()).map(ClassId).expect("more than 65536 distinct request classes");
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
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
        }
    }
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(field) => format!("field \"{field}\": "),
        None => String::new(),
    }
}

/// The columns of the format, in the order the writer emits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Id,
    ArrivalMs,
    Class,
    InputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    OutputTokens,
    MaxTokens,
    Session,
    Parent,
    ThinkMs,
    DeadlineMs,
}

const N_COLUMNS: usize = 12;

const ALL_COLUMNS: [Column; N_COLUMNS] = [
    Column::Id,
    Column::ArrivalMs,
    Column::Class,
    Column::InputTokens,
    Column::CachedInputTokens,
    Column::CacheWriteTokens,
    Column::OutputTokens,
    Column::MaxTokens,
    Column::Session,
    Column::Parent,
    Column::ThinkMs,
    Column::DeadlineMs,
];

/// Every column name of the routesim CSV, in the order [`TraceWriter`] writes them.
pub const COLUMN_NAMES: [&str; N_COLUMNS] = [
    "id",
    "arrival_ms",
    "class",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "max_tokens",
    "session",
    "parent",
    "think_ms",
    "deadline_ms",
];

/// The columns a file must have.
pub const REQUIRED_COLUMNS: [&str; 5] = ["id", "arrival_ms", "class", "input_tokens", "output_tokens"];

impl Column {
    fn name(self) -> &'static str {
        COLUMN_NAMES[self as usize]
    }
    fn required(self) -> bool {
        REQUIRED_COLUMNS.contains(&self.name())
    }
}

/// A row problem before the file name is attached.
struct RowError {
    field: Option<&'static str>,
    message: String,
}

impl RowError {
    fn field(column: Column, message: String) -> Self {
        RowError { field: Some(column.name()), message }
    }
}

/// Streaming reader of the routesim CSV. Yields one [`Request`] per data row; after the first
/// error it yields that error and then `None`.
///
/// ```
/// use routesim::trace::{ClassId, TraceReader};
/// let csv = "id,arrival_ms,class,input_tokens,output_tokens\nr1,0,hard,1000,20\n";
/// let mut reader = TraceReader::from_reader(csv.as_bytes(), "example.csv").unwrap();
/// let request = reader.next().unwrap().unwrap();
/// assert_eq!(request.class, ClassId::HARD);
/// assert_eq!(request.max_tokens, 20);
/// assert!(reader.next().is_none());
/// ```
pub struct TraceReader<R: Read> {
    records: records::Records<R>,
    name: String,
    classes: ClassTable,
    /// For each column, its field index in the file, if present.
    index: [Option<usize>; N_COLUMNS],
    n_fields: usize,
    /// Arrival of the previous row, in µs.
    prev_arrival: Option<u64>,
    /// The file's size, when known (progress).
    size_bytes: Option<u64>,
    done: bool,
}

impl TraceReader<std::fs::File> {
    /// Opens a trace file and reads its header. Errors name the path.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
            file: name.clone(),
            action: "cannot open",
            source,
        })?;
        let size_bytes = file.metadata().ok().map(|m| m.len());
        Ok(TraceReader { size_bytes, ..Self::from_reader(file, &name)? })
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads the header from `reader`; `name` is used in error messages.
    pub fn from_reader(reader: R, name: &str) -> Result<Self, TraceError> {
        let mut records = records::Records::new(reader);
        records.next_record().map_err(|source| read_error(name, source))?;
        let index = parse_header(records.iter())
            .map_err(|message| TraceError::Header { file: name.to_string(), message })?;
        Ok(TraceReader {
            n_fields: records.len(),
            records,
            name: name.to_string(),
            classes: ClassTable::new(),
            index,
            prev_arrival: None,
            size_bytes: None,
            done: false,
        })
    }

    /// Bytes parsed so far and the file's size, when the reader was opened on a file.
    pub fn bytes_read(&self) -> Option<(u64, u64)> {
        self.size_bytes.map(|size| (self.records.position(), size))
    }

    /// The classes met so far (plus the built-ins and any pre-registered ones).
    pub fn classes(&self) -> &ClassTable {
        &self.classes
    }

    /// The class table, once reading is over.
    pub fn into_classes(self) -> ClassTable {
        self.classes
    }

    /// Pre-registers classes, so that class ids are stable across readers of different
    /// files: pass the table of a previous reader. Call it before reading rows; classes this
    /// reader already met keep their names and are added to `classes` if missing.
    pub fn with_classes(mut self, mut classes: ClassTable) -> Self {
        for (_, name) in self.classes.iter() {
            classes.intern(name);
        }
        self.classes = classes;
        self
    }

    fn read_row(&mut self) -> Result<Option<Request>, TraceError> {
        let more = self.records.next_record().map_err(|source| read_error(&self.name, source))?;
        if !more {
            return Ok(None);
        }
        let line = self.records.line();
        let parsed = parse_record(
            &self.records,
            &self.index,
            self.n_fields,
            &mut self.classes,
            self.prev_arrival,
            line,
        );
        match parsed {
            Ok(request) => {
                self.prev_arrival = Some(request.arrival.as_micros());
                Ok(Some(request))
            }
            Err(e) => Err(TraceError::Row {
                file: self.name.clone(),
                line,
                field: e.field.map(str::to_string),
                message: e.message,
            }),
        }
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Result<Request, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_row() {
            Ok(Some(request)) => Some(Ok(request)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A pass-through reader that remembers where each non-blank line starts, so that a record
/// gets the line of its first byte even after blank lines or multi-line quoted fields. It keeps
/// only the lines csv has buffered but not yet returned, so memory stays bounded.
struct LineIndex<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Newlines read so far.
    newlines: u64,
    at_line_start: bool,
    /// The last byte read was a CR (an LF right after it ends no further line).
    after_cr: bool,
    /// (byte offset, 1-based line) of the first byte of each non-blank line not yet passed.
    starts: VecDeque<(u64, u64)>,
    /// Bytes of the current line read so far (bounded by [`MAX_LINE_BYTES`]).
    line_bytes: u64,
}

/// Longest line a trace or import reader accepts, in bytes (1 MiB): a longer line (a runaway
/// quoted field, a file that is not line-oriented) is an input error naming its line, so no
/// line can make a reader buffer without bound.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// The I/O error a [`LineIndex`] returns for a line longer than [`MAX_LINE_BYTES`]; turned into
/// a [`TraceError::Row`] naming the line by [`read_error`].
#[derive(Debug, thiserror::Error)]
#[error("line longer than the maximum of {MAX_LINE_BYTES} bytes (1 MiB)")]
pub(crate) struct LineTooLong {
    pub line: u64,
}

/// A read error of a trace or import reader as a [`TraceError`]: an over-long line names its
/// line; other errors are I/O errors of `file`.
pub(crate) fn read_error(file: &str, source: std::io::Error) -> TraceError {
    if let Some(too_long) = source.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
        return TraceError::Row {
            file: file.to_string(),
            line: too_long.line,
            field: None,
            message: too_long.to_string(),
        };
    }
    TraceError::Io { file: file.to_string(), action: "cannot read", source }
}

impl<R> LineIndex<R> {
    fn new(inner: R) -> Self {
        LineIndex {
            inner,
            offset: 0,
            newlines: 0,
            at_line_start: true,
            after_cr: false,
            starts: VecDeque::new(),
            line_bytes: 0,
        }
    }

    /// The line of the first non-blank line starting at or after `byte`; forgets earlier lines.
    fn line_at(&mut self, byte: u64) -> Option<u64> {
        while self.starts.front().is_some_and(|&(start, _)| start < byte) {
            self.starts.pop_front();
        }
        self.starts.front().map(|&(_, line)| line)
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        // A line ends at LF, CR or CRLF (as csv reads it): CR-only files (old spreadsheets)
        // get the same line numbers as LF and CRLF ones.
        let mut i = 0;
        while i < n {
            let byte = bytes[i];
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                i += 1; // the LF of a CRLF: the line was already counted at its CR
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                self.newlines += 1;
                self.line_bytes = 0;
                self.at_line_start = true;
                self.after_cr = byte == b'\r';
                i += 1;
                continue;
            }
            if self.at_line_start {
                self.starts.push_back((self.offset + i as u64, self.newlines + 1));
                self.at_line_start = false;
            }
            let run = bytes[i..].iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(n - i);
            self.line_bytes += run as u64;
            if self.line_bytes > MAX_LINE_BYTES {
                let line = self.newlines + 1;
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LineTooLong { line }));
            }
            i += run;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// A csv reading error as a [`TraceError`] (see [`read_error`]).
pub(crate) fn csv_error(file: &str, error: csv::Error, action: &'static str) -> TraceError {
    if let csv::ErrorKind::Io(io) = error.kind() {
        if let Some(too_long) = io.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
            return TraceError::Row {
                file: file.to_string(),
                line: too_long.line,
                field: None,
                message: too_long.to_string(),
            };
        }
    }
    TraceError::Io { file: file.to_string(), action, source: error.into() }
}

fn parse_header<'a>(header: impl Iterator<Item = &'a [u8]>) -> Result<[Option<usize>; N_COLUMNS], String> {
    let mut index = [None; N_COLUMNS];
    let mut empty = true;
    for (i, raw) in header.enumerate() {
        empty = false;
        let name = String::from_utf8_lossy(raw.trim_ascii());
        let Some(column) = ALL_COLUMNS.iter().find(|c| c.name() == name) else {
            return Err(format!(
                "unknown column {} (known columns: {})",
                elide(&name),
                COLUMN_NAMES.join(", ")
            ));
        };
        if index[*column as usize].replace(i).is_some() {
            return Err(format!("column {} appears twice", elide(&name)));
        }
    }
    if empty {
        return Err(format!("empty file: a header row is required (columns: {})", COLUMN_NAMES.join(", ")));
    }
    let missing: Vec<&str> = ALL_COLUMNS
        .iter()
        .filter(|c| c.required() && index[**c as usize].is_none())
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        let plural = if missing.len() > 1 { "s" } else { "" };
        return Err(format!(
            "missing required column{plural} {} (required: {})",
            missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
            REQUIRED_COLUMNS.join(", ")
        ));
    }
    Ok(index)
}

/// Parses one data row. Allocates only on error or for a new class.
fn parse_record<R: Read>(
    record: &records::Records<R>,
    index: &[Option<usize>; N_COLUMNS],
    n_fields: usize,
    classes: &mut ClassTable,
    prev_arrival: Option<u64>,
    line: u64,
) -> Result<Request, RowError> {
    if record.len() != n_fields {
        return Err(RowError {
            field: None,
            message: format!("expected {n_fields} fields as in the header, found {}", record.len()),
        });
    }
    // Empty slice for an absent optional column: "use the default".
    let get = |column: Column| -> &[u8] {
        index[column as usize].and_then(|i| record.get(i)).map_or(&[][..], <[u8]>::trim_ascii)
    };
    let required = |column: Column| -> Result<&[u8], RowError> {
        let value = get(column);
        if value.is_empty() {
            Err(RowError::field(column, "required value is empty".to_string()))
        } else {
            Ok(value)
        }
    };
    let id = hash_str(text(Column::Id, required(Column::Id)?)?);

    let arrival_text = required(Column::ArrivalMs)?;
    let arrival = parse_ms(Column::ArrivalMs, arrival_text)?;
    if let Some(prev) = prev_arrival {
        if arrival < prev {
            return Err(RowError::field(
                Column::ArrivalMs,
                format!(
                    "{} is earlier than the previous row's {}; the trace must be sorted by arrival",
                    fmt_ms(arrival),
                    fmt_ms(prev)
                ),
            ));
        }
    }

    let class_name = text(Column::Class, required(Column::Class)?)?;
    let class = match classes.get(class_name) {
        Some(id) => id,
        None if classes.has_room() => classes.intern(class_name),
        None => {
            return Err(RowError::field(
                Column::Class,
                format!(
                    "too many distinct classes (at most {MAX_CLASSES}), at {}; map them to fewer classes",
                    elide(class_name)
                ),
            ))
        }
    };

    let input_tokens = parse_tokens(Column::InputTokens, required(Column::InputTokens)?)?;
    let output_tokens = parse_tokens(Column::OutputTokens, required(Column::OutputTokens)?)?;
    let cached_input_tokens =
        optional(get(Column::CachedInputTokens), |v| parse_tokens(Column::CachedInputTokens, v))?
            .unwrap_or(0);
    if cached_input_tokens > input_tokens {
        return Err(RowError::field(
            Column::CachedInputTokens,
            format!("{cached_input_tokens} exceeds input_tokens {input_tokens}"),
        ));
    }
    let cache_write_tokens =
        optional(get(Column::CacheWriteTokens), |v| parse_tokens(Column::CacheWriteTokens, v))?.unwrap_or(0);
    let uncached = input_tokens - cached_input_tokens;
    if cache_write_tokens > uncached {
        return Err(RowError::field(
            Column::CacheWriteTokens,
            format!(
                "{cache_write_tokens} exceeds the uncached input \
                 (input_tokens - cached_input_tokens = {uncached})"
            ),
        ));
    }
    let max_tokens =
        optional(get(Column::MaxTokens), |v| parse_tokens(Column::MaxTokens, v))?.unwrap_or(output_tokens);
    if max_tokens < output_tokens {
        return Err(RowError::field(
            Column::MaxTokens,
            format!("{max_tokens} is less than output_tokens {output_tokens}"),
        ));
    }

    let session = optional(get(Column::Session), |v| Ok(hash_str(text(Column::Session, v)?)))?;
    let parent_text = get(Column::Parent);
    if !parent_text.is_empty() && parent_text == get(Column::Id) {
        return Err(RowError::field(
            Column::Parent,
            "names the row's own id (a request cannot be its own parent)".to_string(),
        ));
    }
    let parent = optional(parent_text, |v| Ok(hash_str(text(Column::Parent, v)?)))?;
    let think = optional(get(Column::ThinkMs), |v| parse_ms(Column::ThinkMs, v))?.unwrap_or(0);
    let deadline = optional(get(Column::DeadlineMs), |v| parse_ms(Column::DeadlineMs, v))?;

    Ok(Request {
        id,
        arrival: Instant::from_micros(arrival),
        class,
        input_tokens,
        cached_input_tokens,
        cache_write_tokens,
        output_tokens,
        max_tokens,
        session,
        parent,
        think: Duration::from_micros(think),
        deadline: deadline.map(Duration::from_micros),
        line,
    })
}

/// A text field (ids, classes, sessions) must be UTF-8.
fn text(column: Column, value: &[u8]) -> Result<&str, RowError> {
    std::str::from_utf8(value).map_err(|_| RowError::field(column, "not valid UTF-8".to_string()))
}

/// `None` for an empty field, else the parsed value.
fn optional<T>(
    value: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<T, RowError>,
) -> Result<Option<T>, RowError> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

fn shown(value: &[u8]) -> String {
    elide(&String::from_utf8_lossy(value))
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

/// A token count: ASCII digits only.
fn parse_tokens(column: Column, value: &[u8]) -> Result<u64, RowError> {
    let bad = || RowError::field(column, format!("expected a non-negative integer, got {}", shown(value)));
    let mut n: u64 = 0;
    for &byte in value {
        if !byte.is_ascii_digit() {
            return Err(bad());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(byte - b'0')))
            .ok_or_else(|| RowError::field(column, format!("{} is too large", shown(value))))?;
    }
    if value.is_empty() {
        return Err(bad());
    }
    Ok(n)
}

/// Milliseconds as a non-negative finite decimal, returned in µs (rounded to the nearest).
/// Plain `digits[.digits]` is parsed exactly; other forms (`1e3`) go through `f64`.
fn parse_ms(column: Column, value: &[u8]) -> Result<u64, RowError> {
    let bad = || {
        RowError::field(
            column,
            format!("expected a non-negative finite number of milliseconds, got {}", shown(value)),
        )
    };
    let too_large = || RowError::field(column, format!("{} is too large", shown(value)));
    if let Some(micros) = parse_ms_exact(value) {
        return micros.ok_or_else(too_large);
    }
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    if text.starts_with('-') {
        return Err(bad());
    }
    let ms: f64 = text.parse().map_err(|_| bad())?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(bad());
    }
    let micros = (ms * MICROS_PER_MS as f64).round();
    if micros >= u64::MAX as f64 {
        return Err(too_large());
    }
    Ok(micros as u64)
}

/// Fast exact path for `digits[.digits]`: `None` if the text has another form,
/// `Some(None)` on overflow.
fn parse_ms_exact(value: &[u8]) -> Option<Option<u64>> {
    let (int_part, frac_part) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &[][..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return None;
    }
    let mut ms: u64 = 0;
    for &b in int_part {
        match ms.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
            Some(v) => ms = v,
            None => return Some(None),
        }
    }
    // Three fractional digits are µs; the fourth rounds (half up).
    let mut frac: u64 = 0;
    for i in 0..3 {
        frac = frac * 10 + frac_part.get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    if frac_part.get(3).is_some_and(|&b| b >= b'5') {
        frac += 1;
    }
    Some(ms.checked_mul(MICROS_PER_MS).and_then(|v| v.checked_add(frac)))
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

/// One row for [`TraceWriter`]; string fields are borrowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRow<'a> {
    pub id: &'a str,
    pub arrival_ms: u64,
    pub class: &'a str,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub max_tokens: u64,
    pub session: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub think_ms: u64,
    pub deadline_ms: Option<u64>,
}

/// Writer of the routesim CSV: the full column set, header first. It checks each row against
/// the reader's rules, so whatever it writes reads back.
pub struct TraceWriter<W: Write> {
    csv: csv::Writer<W>,
    name: String,
    /// Line of the next row (the header is line 1).
    line: u64,
    prev_arrival_ms: Option<u64>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header to `w`.
    pub fn new(w: W) -> Result<Self, TraceError> {
        let mut csv = csv::WriterBuilder::new().from_writer(w);
        let name = "trace output".to_string();
        csv.write_record(COLUMN_NAMES).map_err(|e| csv_error(&name, e, "cannot write"))?;
        Ok(TraceWriter { csv, name, line: 2, prev_arrival_ms: None })
    }

    /// Names the output (a path) in error messages.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Writes one row, after checking it as the reader would.
    pub fn write(&mut self, row: &TraceRow) -> Result<(), TraceError> {
        self.check(row).map_err(|e| TraceError::Row {
            file: self.name.clone(),
            line: self.line,
            field: e.field.map(str::to_string),
            message: e.message,
        })?;
        let mut bufs = [[0u8; 20]; 8];
        let [b0, b1, b2, b3, b4, b5, b6, b7] = &mut bufs;
        let fields: [&[u8]; N_COLUMNS] = [
            row.id.as_bytes(),
            fmt_u64(row.arrival_ms, b0),
            row.class.as_bytes(),
            fmt_u64(row.input_tokens, b1),
            fmt_u64(row.cached_input_tokens, b2),
            fmt_u64(row.cache_write_tokens, b3),
            fmt_u64(row.output_tokens, b4),
            fmt_u64(row.max_tokens, b5),
            row.session.unwrap_or("").as_bytes(),
            row.parent.unwrap_or("").as_bytes(),
            fmt_u64(row.think_ms, b6),
            match row.deadline_ms {
                Some(ms) => fmt_u64(ms, b7),
                None => b"",
            },
        ];
        self.csv.write_record(fields).map_err(|e| csv_error(&self.name, e, "cannot write"))?;
        self.line += 1;
        self.prev_arrival_ms = Some(row.arrival_ms);
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> Result<W, TraceError> {
        let name = self.name;
        self.csv.into_inner().map_err(|e| TraceError::Io {
            file: name,
            action: "cannot write",
            source: e.into_error(),
        })
    }

    fn check(&self, row: &TraceRow) -> Result<(), RowError> {
        let empty = |column: Column| RowError::field(column, "required value is empty".into());
        if row.id.trim().is_empty() {
            return Err(empty(Column::Id));
        }
        if row.class.trim().is_empty() {
            return Err(empty(Column::Class));
        }
        if let Some(prev) = self.prev_arrival_ms {
            if row.arrival_ms < prev {
                return Err(RowError::field(
                    Column::ArrivalMs,
                    format!(
                        "{} is earlier than the previous row's {prev}; the trace must be sorted by arrival",
                        row.arrival_ms
                    ),
                ));
            }
        }
        if row.cached_input_tokens > row.input_tokens {
            return Err(RowError::field(
                Column::CachedInputTokens,
                format!("{} exceeds input_tokens {}", row.cached_input_tokens, row.input_tokens),
            ));
        }
        if row.cache_write_tokens > row.input_tokens - row.cached_input_tokens {
            return Err(RowError::field(
                Column::CacheWriteTokens,
                format!("{} exceeds the uncached input", row.cache_write_tokens),
            ));
        }
        if row.max_tokens < row.output_tokens {
            return Err(RowError::field(
                Column::MaxTokens,
                format!("{} is less than output_tokens {}", row.max_tokens, row.output_tokens),
            ));
        }
        Ok(())
    }
}

/// Decimal digits of `value` in `buf`, without allocating.
fn fmt_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[start..]
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "class#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "traces/x.csv";

    fn read_all(csv: &str) -> Result<Vec<Request>, TraceError> {
        TraceReader::from_reader(csv.as_bytes(), NAME)?.collect()
    }

    fn error_of(csv: &str) -> String {
        match read_all(csv) {
            Ok(rows) => panic!("expected an error, read {} rows", rows.len()),
            Err(e) => e.to_string(),
        }
    }

    const MINIMAL: &str = "id,arrival_ms,class,input_tokens,output_tokens\n";

    #[test]
    fn cr_lf_and_crlf_endings_give_the_same_line_numbers() {
        // Row 4 (the third data row) is bad; a blank line before it moves it to line 5.
        for ending in ["\n", "\r", "\r\n"] {
            let rows = [
                "id,arrival_ms,class,input_tokens,output_tokens",
                "a,0,hard,1,1",
                "b,1,hard,1,1",
                "c,2,hard,x,1",
            ];
            let text = rows.join(ending) + ending;
            assert!(
                error_of(&text).starts_with("traces/x.csv:4: field \"input_tokens\""),
                "{ending:?}: {}",
                error_of(&text)
            );
            let with_blank = [rows[0], rows[1], rows[2], "", rows[3]].join(ending) + ending;
            assert!(
                error_of(&with_blank).starts_with("traces/x.csv:5:"),
                "{ending:?}: {}",
                error_of(&with_blank)
            );
            let good: Vec<u64> =
                read_all(&(rows[..3].join(ending) + ending)).unwrap().iter().map(|r| r.line).collect();
            assert_eq!(good, vec![2, 3], "{ending:?}");
        }
    }

    #[test]
    fn a_row_that_is_its_own_parent_is_an_input_error_naming_its_line() {
        let header = "id,arrival_ms,class,input_tokens,output_tokens,session,parent\n";
        let e = error_of(&format!("{header}p,0,hard,1,1,s,\nc,1,hard,1,1,s,c\n"));
        assert_eq!(
            e,
            "traces/x.csv:3: field \"parent\": names the row's own id (a request cannot be its own parent)"
        );
    }

    #[test]
    fn more_classes_than_the_limit_is_an_input_error_at_the_first_row_over_it() {
        let mut csv = MINIMAL.to_string();
        // The four built-ins count: the (MAX_CLASSES - 4 + 1)-th new class is one too many.
        for i in 0..=(MAX_CLASSES - BUILTIN_CLASSES.len()) {
            csv.push_str(&format!("r{i},{i},tenant-{i},1,1\n"));
        }
        let over = MAX_CLASSES - BUILTIN_CLASSES.len();
        let e = error_of(&csv);
        assert!(
            e.starts_with(&format!(
                "traces/x.csv:{}: field \"class\": too many distinct classes (at most {MAX_CLASSES})",
                over + 2
            )),
            "{e}"
        );
    }

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
    fn long_values_are_elided_in_errors() {
        let huge = "9".repeat(1_000_000) + "x";
        let e = error_of(&format!("{MINIMAL}r1,0,hard,{huge},1\n"));
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(e.contains("… (1000001 bytes)"), "{e}");
        assert_eq!(elide("short"), "\"short\"");
    }

    #[test]
    fn defaults_are_applied_to_every_optional_field() {
        let rows = read_all(&format!("{MINIMAL}r1,1500,hard,1000,20\n")).unwrap();
        assert_eq!(
            rows,
            vec![Request {
                id: hash_str("r1"),
                arrival: Instant::from_millis(1_500),
                class: ClassId::HARD,
                input_tokens: 1_000,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                output_tokens: 20,
                max_tokens: 20,
                session: None,
                parent: None,
                think: Duration::ZERO,
                deadline: None,
                line: 2,
            }]
        );
        assert_eq!(rows[0].uncached_input_tokens(), 1_000);
    }

    #[test]
    fn every_column_is_parsed_and_empty_optionals_default() {
        let csv = "\
id,arrival_ms,class,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,max_tokens,session,parent,think_ms,deadline_ms
a,0,interactive,9000,8000,500,100,4096,s1,,0,
b, 2500.25 ,hard,9500,8600,,200,,s1,a,3000.5,86400000
";
        let rows = read_all(csv).unwrap();
        assert_eq!(rows.len(), 2);
        let b = &rows[1];
        assert_eq!(b.id, hash_str("b"));
        assert_eq!(b.arrival, Instant::from_micros(2_500_250));
        assert_eq!(b.class, ClassId::HARD);
        assert_eq!((b.input_tokens, b.cached_input_tokens, b.cache_write_tokens), (9_500, 8_600, 0));
        assert_eq!((b.output_tokens, b.max_tokens), (200, 200));
        assert_eq!(b.session, Some(hash_str("s1")));
        assert_eq!(b.parent, Some(hash_str("a")));
        assert_eq!(b.think, Duration::from_micros(3_000_500));
        assert_eq!(b.deadline, Some(Duration::from_secs(86_400)));
        assert_eq!(b.line, 3);
        assert_eq!(b.uncached_input_tokens(), 900);
        let a = &rows[0];
        assert_eq!((a.cache_write_tokens, a.max_tokens, a.parent, a.deadline), (500, 4096, None, None));
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let csv = "output_tokens,class,session,input_tokens,arrival_ms,id\n7,bulk,x,70,12,q\n";
        let rows = read_all(csv).unwrap();
        assert_eq!(rows[0].id, hash_str("q"));
        assert_eq!(rows[0].arrival, Instant::from_millis(12));
        assert_eq!(rows[0].class, ClassId::BULK);
        assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (70, 7));
        assert_eq!(rows[0].session, Some(hash_str("x")));
    }

    #[test]
    fn fractional_and_exponent_arrivals_are_exact_to_the_microsecond() {
        let csv = format!("{MINIMAL}a,0.0005,hard,1,1\nb,1234.5,hard,1,1\nc,1234.5678,hard,1,1\nd,1e4,hard,1,1\ne,1.5e4,hard,1,1\n");
        let arrivals: Vec<u64> = read_all(&csv).unwrap().iter().map(|r| r.arrival.as_micros()).collect();
        assert_eq!(arrivals, vec![1, 1_234_500, 1_234_568, 10_000_000, 15_000_000]);
    }

    #[test]
    fn each_bad_value_names_line_field_and_value() {
        let cases = [
            (
                "r,0,hard,12x,5",
                r#"traces/x.csv:2: field "input_tokens": expected a non-negative integer, got "12x""#,
            ),
            (
                "r,0,hard,-5,5",
                r#"traces/x.csv:2: field "input_tokens": expected a non-negative integer, got "-5""#,
            ),
            (
                "r,0,hard,5,1.5",
                r#"traces/x.csv:2: field "output_tokens": expected a non-negative integer, got "1.5""#,
            ),
            (
                "r,NaN,hard,5,5",
                r#"traces/x.csv:2: field "arrival_ms": expected a non-negative finite number of milliseconds, got "NaN""#,
            ),
            (
                "r,inf,hard,5,5",
                r#"traces/x.csv:2: field "arrival_ms": expected a non-negative finite number of milliseconds, got "inf""#,
            ),
            (
                "r,-1,hard,5,5",
                r#"traces/x.csv:2: field "arrival_ms": expected a non-negative finite number of milliseconds, got "-1""#,
            ),
            ("r,0,,5,5", r#"traces/x.csv:2: field "class": required value is empty"#),
            (",0,hard,5,5", r#"traces/x.csv:2: field "id": required value is empty"#),
            ("r,0,hard,5", "traces/x.csv:2: expected 5 fields as in the header, found 4"),
            ("r,0,hard,5,5,6", "traces/x.csv:2: expected 5 fields as in the header, found 6"),
            (
                "r,0,hard,99999999999999999999,5",
                r#"traces/x.csv:2: field "input_tokens": "99999999999999999999" is too large"#,
            ),
        ];
        for (row, expected) in cases {
            assert_eq!(error_of(&format!("{MINIMAL}{row}\n")), expected, "row {row}");
        }
    }

    #[test]
    fn cross_field_rules_are_checked() {
        let header = "id,arrival_ms,class,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,max_tokens,think_ms,deadline_ms\n";
        let good = "ok,0,hard,100,50,50,10,10,0,\n";
        let cases = [
            (
                "r,1,hard,100,101,0,10,10,0,",
                r#"traces/x.csv:3: field "cached_input_tokens": 101 exceeds input_tokens 100"#,
            ),
            (
                "r,1,hard,100,60,41,10,10,0,",
                r#"traces/x.csv:3: field "cache_write_tokens": 41 exceeds the uncached input (input_tokens - cached_input_tokens = 40)"#,
            ),
            (
                "r,1,hard,100,0,0,10,9,0,",
                r#"traces/x.csv:3: field "max_tokens": 9 is less than output_tokens 10"#,
            ),
            (
                "r,1,hard,100,0,0,10,10,-3,",
                r#"traces/x.csv:3: field "think_ms": expected a non-negative finite number of milliseconds, got "-3""#,
            ),
            (
                "r,1,hard,100,0,0,10,10,0,nan",
                r#"traces/x.csv:3: field "deadline_ms": expected a non-negative finite number of milliseconds, got "nan""#,
            ),
        ];
        for (row, expected) in cases {
            assert_eq!(error_of(&format!("{header}{good}{row}\n")), expected, "row {row}");
        }
    }

    #[test]
    fn unsorted_arrival_is_refused_with_both_values() {
        let csv = format!("{MINIMAL}a,1000,hard,1,1\nb,1300,hard,1,1\nc,1200,hard,1,1\n");
        assert_eq!(
            error_of(&csv),
            r#"traces/x.csv:4: field "arrival_ms": 1200 is earlier than the previous row's 1300; the trace must be sorted by arrival"#
        );
        // Equal arrivals are fine.
        assert_eq!(read_all(&format!("{MINIMAL}a,5,hard,1,1\nb,5,hard,1,1\n")).unwrap().len(), 2);
    }

    #[test]
    fn line_numbers_count_blank_lines_and_the_header() {
        let csv = format!("{MINIMAL}a,1,hard,1,1\n\n\nb,2,hard,x,1\n");
        let err = error_of(&csv);
        assert!(err.starts_with("traces/x.csv:5: field \"input_tokens\""), "{err}");
        // A quoted field spanning lines, CRLF endings and a BOM.
        let csv = format!(
            "\u{feff}{}a,1,\"multi\r\nline\",1,1\r\n\r\nb,2,hard,1,1\r\nc,3,hard,1,1",
            MINIMAL.replace('\n', "\r\n")
        );
        let lines: Vec<u64> = read_all(&csv).unwrap().iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 5, 6]);
        // Lines stay right across csv's internal buffer refills.
        let mut csv = MINIMAL.to_string();
        for i in 0..5_000 {
            csv.push_str(&format!("r{i},{i},hard,1,1\n"));
            if i % 7 == 0 {
                csv.push('\n');
            }
        }
        let rows = read_all(&csv).unwrap();
        let text_lines: Vec<&str> = csv.lines().collect();
        for row in rows {
            let line = text_lines[row.line as usize - 1];
            assert_eq!(hash_str(line.split(',').next().unwrap()), row.id, "line {}", row.line);
        }
    }

    #[test]
    fn header_problems_are_reported() {
        assert_eq!(
            error_of("id,arrival_ms,class,input_tokens\nr,0,hard,5\n"),
            r#"traces/x.csv:1: missing required column "output_tokens" (required: id, arrival_ms, class, input_tokens, output_tokens)"#
        );
        assert_eq!(
            error_of("id,arrival_ms,class,input_tokens,output_tokens,cached_tokens\n"),
            r#"traces/x.csv:1: unknown column "cached_tokens" (known columns: id, arrival_ms, class, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, max_tokens, session, parent, think_ms, deadline_ms)"#
        );
        assert_eq!(
            error_of("id,arrival_ms,class,input_tokens,output_tokens,id\n"),
            r#"traces/x.csv:1: column "id" appears twice"#
        );
        assert!(error_of("").starts_with("traces/x.csv:1: empty file"));
        // A header alone is a valid empty trace; a UTF-8 BOM is ignored.
        assert!(read_all(MINIMAL).unwrap().is_empty());
        assert_eq!(read_all(&format!("\u{feff}{MINIMAL}r,0,hard,1,1\n")).unwrap().len(), 1);
    }

    #[test]
    fn reading_stops_after_the_first_error() {
        let csv = format!("{MINIMAL}a,1,hard,1,1\nb,1,hard,x,1\nc,2,hard,1,1\n");
        let mut reader = TraceReader::from_reader(csv.as_bytes(), NAME).unwrap();
        assert!(reader.next().unwrap().is_ok());
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
        assert!(reader.next().is_none());
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = TraceReader::open(&path).err().unwrap().to_string();
        assert!(err.starts_with(&format!("{}: cannot open: ", path.display())), "{err}");
    }

    #[test]
    fn writer_output_reads_back_equal() {
        let rows = [
            TraceRow {
                id: "s1-t0-c0",
                arrival_ms: 10,
                class: "interactive",
                input_tokens: 8_000,
                cached_input_tokens: 6_000,
                cache_write_tokens: 2_000,
                output_tokens: 90,
                max_tokens: 8_192,
                session: Some("s1"),
                parent: None,
                think_ms: 0,
                deadline_ms: None,
            },
            TraceRow {
                id: "odd,\"id\"",
                arrival_ms: 4_000,
                class: "tenant-x",
                input_tokens: 9_000,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                output_tokens: 0,
                max_tokens: 0,
                session: None,
                parent: Some("s1-t0-c0"),
                think_ms: 1_500,
                deadline_ms: Some(86_400_000),
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut writer = TraceWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
        for row in &rows {
            writer.write(row).unwrap();
        }
        writer.finish().unwrap();

        let reader = TraceReader::open(&path).unwrap();
        let read: Vec<Request> = reader.collect::<Result<_, _>>().unwrap();
        let mut classes = ClassTable::new();
        let expected: Vec<Request> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Request {
                id: hash_str(r.id),
                arrival: Instant::from_millis(r.arrival_ms),
                class: classes.intern(r.class),
                input_tokens: r.input_tokens,
                cached_input_tokens: r.cached_input_tokens,
                cache_write_tokens: r.cache_write_tokens,
                output_tokens: r.output_tokens,
                max_tokens: r.max_tokens,
                session: r.session.map(hash_str),
                parent: r.parent.map(hash_str),
                think: Duration::from_millis(r.think_ms),
                deadline: r.deadline_ms.map(Duration::from_millis),
                line: i as u64 + 2,
            })
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn writer_refuses_rows_the_reader_would_refuse() {
        let mut writer = TraceWriter::new(Vec::new()).unwrap().with_name("out.csv");
        let row = TraceRow {
            id: "a",
            arrival_ms: 5,
            class: "hard",
            input_tokens: 10,
            cached_input_tokens: 11,
            cache_write_tokens: 0,
            output_tokens: 1,
            max_tokens: 1,
            session: None,
            parent: None,
            think_ms: 0,
            deadline_ms: None,
        };
        assert_eq!(
            writer.write(&row).unwrap_err().to_string(),
            r#"out.csv:2: field "cached_input_tokens": 11 exceeds input_tokens 10"#
        );
        writer.write(&TraceRow { cached_input_tokens: 0, ..row.clone() }).unwrap();
        let err = writer.write(&TraceRow { arrival_ms: 4, cached_input_tokens: 0, ..row }).unwrap_err();
        assert!(err.to_string().starts_with(r#"out.csv:3: field "arrival_ms": 4 is earlier"#), "{err}");
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
        let reader = TraceReader::from_reader(second.as_bytes(), "two.csv").unwrap().with_classes(table);
        let mut reader = reader;
        let ids: Vec<ClassId> = reader.by_ref().map(|r| r.unwrap().class).collect();
        assert_eq!(ids, vec![ClassId(5), ClassId(6), ClassId(4), ClassId::BULK]);
        let names: Vec<&str> = reader.classes().iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["interactive", "hard", "bulk", "async", "tenant-a", "tenant-b", "tenant-c"]);
    }

    #[test]
    fn class_lookup_switches_to_hashing_without_changing_ids() {
        let mut table = ClassTable::new();
        let ids: Vec<ClassId> = (0..20).map(|i| table.intern(&format!("c{i}"))).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(table.get(&format!("c{i}")), Some(*id));
            assert_eq!(table.intern(&format!("c{i}")), *id);
        }
        assert_eq!(table.get("hard"), Some(ClassId::HARD));
        assert_eq!(table.get("nope"), None);
    }

    #[test]
    fn the_readme_examples_parse() {
        let readme = include_str!("../traces/README.md");
        let blocks: Vec<&str> =
            readme.split("```csv\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
        assert_eq!(blocks.len(), 2);
        let rows = read_all(blocks[0]).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].parent, Some(rows[0].id));
        assert_eq!(rows[1].think, Duration::from_millis(2_650));
        assert_eq!(rows[2].arrival, Instant::from_micros(9_120_500));
        assert_eq!(rows[3].deadline, Some(Duration::from_secs(86_400)));
        assert_eq!(read_all(blocks[1]).unwrap().len(), 1);
    }

    #[test]
    fn u64_formatting_matches_display() {
        let mut buf = [0u8; 20];
        for v in [0, 7, 10, 12_345, u64::MAX] {
            assert_eq!(fmt_u64(v, &mut buf), v.to_string().as_bytes());
        }
        assert_eq!(fmt_ms(1_234_500), "1234.5");
        assert_eq!(fmt_ms(1_200_000), "1200");
        assert_eq!(fmt_ms(7), "0.007");
    }
}
