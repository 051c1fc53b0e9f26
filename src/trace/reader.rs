//! The streaming reader of the routesim CSV format (documented in `traces/README.md`): the
//! column set, header parsing, record parsing and the field parsers (token counts,
//! milliseconds, UTF-8 text).
//!
//! The reader is streaming: it parses one byte record at a time into a reused buffer, so its
//! memory does not grow with the file, and it allocates per row only when it meets a new class.
//! It must not know about the writer's formatting, the generators or the importers.

use super::records;
use super::{elide, fmt_ms, read_error, ClassTable, Request, TraceError};
use crate::rng::hash_str;
use crate::time::{Duration, Instant, MICROS_PER_MS};
use std::io::Read;
use std::path::Path;

/// The columns of the format, in the order the writer emits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
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

pub(crate) const N_COLUMNS: usize = 12;

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

/// Every column name of the routesim CSV, in the order [`TraceWriter`](super::TraceWriter) writes them.
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
pub(crate) struct RowError {
    pub(crate) field: Option<&'static str>,
    pub(crate) message: String,
}

impl RowError {
    pub(crate) fn field(column: Column, message: String) -> Self {
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
            .map_err(|e| TraceError::Header { file: name.to_string(), message: e.to_string() })?;
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

    /// Whether the header has a `parent` column (rows may link to earlier rows).
    pub fn has_parent_column(&self) -> bool {
        self.index[Column::Parent as usize].is_some()
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
    /// reader already met keep their names and are added to `classes` if missing (refused
    /// if that would pass [`super::MAX_CLASSES`]).
    pub fn with_classes(mut self, mut classes: ClassTable) -> Result<Self, super::TooManyClasses> {
        for (_, name) in self.classes.iter() {
            classes.intern(name)?;
        }
        self.classes = classes;
        Ok(self)
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

/// A header row the reader refuses; the file is attached as [`TraceError::Header`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum HeaderError {
    /// `name` is the column as written, already quoted and elided for the message.
    #[error("unknown column {name} (known columns: {})", COLUMN_NAMES.join(", "))]
    UnknownColumn { name: String },
    #[error("column {name} appears twice")]
    Duplicate { name: String },
    #[error("empty file: a header row is required (columns: {})", COLUMN_NAMES.join(", "))]
    Empty,
    #[error(
        "missing required column{} {} (required: {})",
        if .missing.len() > 1 { "s" } else { "" },
        .missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
        REQUIRED_COLUMNS.join(", ")
    )]
    Missing { missing: Vec<&'static str> },
}

fn parse_header<'a>(
    header: impl Iterator<Item = &'a [u8]>,
) -> Result<[Option<usize>; N_COLUMNS], HeaderError> {
    let mut index = [None; N_COLUMNS];
    let mut empty = true;
    for (i, raw) in header.enumerate() {
        empty = false;
        let name = String::from_utf8_lossy(raw.trim_ascii());
        let Some(column) = ALL_COLUMNS.iter().find(|c| c.name() == name) else {
            return Err(HeaderError::UnknownColumn { name: elide(&name) });
        };
        if index[*column as usize].replace(i).is_some() {
            return Err(HeaderError::Duplicate { name: elide(&name) });
        }
    }
    if empty {
        return Err(HeaderError::Empty);
    }
    let missing: Vec<&'static str> = ALL_COLUMNS
        .iter()
        .filter(|c| c.required() && index[**c as usize].is_none())
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        return Err(HeaderError::Missing { missing });
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
    let class = classes.intern(class_name).map_err(|full| {
        RowError::field(Column::Class, format!("{full}, at {}; map them to fewer classes", elide(class_name)))
    })?;

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
    if !crate::validate::is_non_negative(ms) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{ClassId, BUILTIN_CLASSES, MAX_CLASSES};

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
    fn the_readme_examples_parse() {
        let readme = include_str!("../../traces/README.md");
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
}
