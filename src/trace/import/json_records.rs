//! A file of JSON records read one record at a time: the elements of a top-level array
//! (`[{…}, {…}]`, as LiteLLM's `/spend/logs` answers) or a sequence of top-level values
//! (JSONL, or pretty-printed objects one after the other, as OpenTelemetry's file exporter
//! writes OTLP JSON). Each record comes with the line its first byte is on, so an error in it
//! names that line even in a pretty-printed array.
//!
//! Memory is one record: the splitter scans bytes (strings and escapes respected) and keeps
//! only the bytes of the record it is in, at most [`MAX_JSON_RECORD_BYTES`]; a longer record is
//! a row error naming its line, skipped to its end so the next record still reads. A file
//! whose structure is broken (an array that never closes, a missing comma) ends with a fatal
//! error: nothing after it can be located.
//!
//! Also here: [`element_lines`], the lines where the elements of a nested array start inside
//! one record (the spans of an OTLP request). It must not know what the records mean.

use crate::trace::TraceError;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The largest JSON record held (64 MiB): one spend-log row, or one OTLP export request (a
/// batch of spans). A longer record is refused with its line and skipped.
pub const MAX_JSON_RECORD_BYTES: usize = 64 << 20;

/// One record: its first line (1-based) and its bytes.
pub(crate) struct JsonRecord {
    pub line: u64,
    pub bytes: Vec<u8>,
}

/// A record-level problem: the line and the message; `fatal` when reading cannot go on.
pub(crate) struct RecordError {
    pub line: u64,
    pub message: String,
    pub fatal: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing read yet.
    Start,
    /// Inside a top-level array; `first` until its first element was read.
    Array {
        first: bool,
    },
    /// A sequence of top-level values.
    Sequence,
    Done,
}

/// The records of one file, in file order.
pub(crate) struct JsonRecords<R> {
    reader: BufReader<R>,
    name: String,
    /// 1-based line of the next byte.
    line: u64,
    mode: Mode,
    max_record_bytes: usize,
}

impl JsonRecords<File> {
    pub(crate) fn open(path: &Path) -> Result<Self, TraceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Io {
            file: name.clone(),
            action: "cannot open",
            source,
        })?;
        Ok(JsonRecords::new(file, &name))
    }
}

impl<R: Read> JsonRecords<R> {
    pub(crate) fn new(reader: R, name: &str) -> Self {
        JsonRecords {
            reader: BufReader::new(reader),
            name: name.to_string(),
            line: 1,
            mode: Mode::Start,
            max_record_bytes: MAX_JSON_RECORD_BYTES,
        }
    }

    #[cfg(test)]
    fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn peek(&mut self) -> Result<Option<u8>, TraceError> {
        match self.reader.fill_buf() {
            Ok(buf) => Ok(buf.first().copied()),
            Err(source) => Err(crate::trace::read_error(&self.name, source)),
        }
    }

    fn bump(&mut self) -> Result<Option<u8>, TraceError> {
        let byte = self.peek()?;
        if let Some(b) = byte {
            self.reader.consume(1);
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(byte)
    }

    /// Skips whitespace (and a UTF-8 byte-order mark at the very start); the next byte.
    fn skip_whitespace(&mut self) -> Result<Option<u8>, TraceError> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump()?;
                }
                Some(0xEF) if self.mode == Mode::Start && self.line == 1 => {
                    // A BOM is three bytes EF BB BF; anything else is left to the parser.
                    let buf = self.reader.fill_buf().map_err(|e| crate::trace::read_error(&self.name, e))?;
                    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                        self.reader.consume(3);
                    } else {
                        return Ok(Some(0xEF));
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// Reads one value starting at the next byte (not whitespace), keeping at most the
    /// record limit of its bytes. Returns the bytes, or `None` when it was longer.
    fn read_value(&mut self, start_line: u64) -> Result<Result<Vec<u8>, RecordError>, TraceError> {
        let mut bytes = Vec::new();
        let mut too_long = false;
        let mut keep = |bytes: &mut Vec<u8>, b: u8, max: usize| {
            if bytes.len() < max {
                bytes.push(b);
            } else {
                too_long = true;
            }
        };
        let max = self.max_record_bytes;
        let unterminated = |line: u64| RecordError {
            line,
            message: "unterminated JSON value (the file ends inside it)".into(),
            fatal: true,
        };
        match self.peek()? {
            Some(b'{' | b'[') => {
                let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
                loop {
                    let Some(b) = self.bump()? else { return Ok(Err(unterminated(start_line))) };
                    keep(&mut bytes, b, max);
                    if in_string {
                        match (escaped, b) {
                            (true, _) => escaped = false,
                            (false, b'\\') => escaped = true,
                            (false, b'"') => in_string = false,
                            _ => {}
                        }
                        continue;
                    }
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(b'"') => {
                self.bump()?;
                keep(&mut bytes, b'"', max);
                let mut escaped = false;
                loop {
                    let Some(b) = self.bump()? else { return Ok(Err(unterminated(start_line))) };
                    keep(&mut bytes, b, max);
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => break,
                        _ => {}
                    }
                }
            }
            _ => {
                // A scalar: up to the next delimiter, which stays unread.
                while let Some(b) = self.peek()? {
                    if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b'[' | b'{') {
                        break;
                    }
                    self.bump()?;
                    keep(&mut bytes, b, max);
                }
                if bytes.is_empty() {
                    // A stray `,`, `]` or `}` where a value should be.
                    let b = self.bump()?.unwrap_or(b' ');
                    return Ok(Err(RecordError {
                        line: start_line,
                        message: format!("expected a JSON value, found {:?}", char::from(b)),
                        fatal: true,
                    }));
                }
            }
        }
        if too_long {
            return Ok(Err(RecordError {
                line: start_line,
                message: format!(
                    "JSON record longer than the maximum of {} bytes ({} MiB)",
                    self.max_record_bytes,
                    self.max_record_bytes >> 20
                ),
                fatal: false,
            }));
        }
        Ok(Ok(bytes))
    }

    /// The next record, a record error, or `None` at the end of the file.
    pub(crate) fn next_record(&mut self) -> Option<Result<Result<JsonRecord, RecordError>, TraceError>> {
        let result = self.advance();
        match &result {
            Err(_) | Ok(Some(Err(RecordError { fatal: true, .. }))) => self.mode = Mode::Done,
            _ => {}
        }
        result.transpose()
    }

    fn advance(&mut self) -> Result<Option<Result<JsonRecord, RecordError>>, TraceError> {
        loop {
            match self.mode {
                Mode::Done => return Ok(None),
                Mode::Start => match self.skip_whitespace()? {
                    None => {
                        self.mode = Mode::Done;
                        return Ok(None);
                    }
                    Some(b'[') => {
                        self.bump()?;
                        self.mode = Mode::Array { first: true };
                    }
                    Some(_) => self.mode = Mode::Sequence,
                },
                Mode::Sequence => {
                    let Some(_) = self.skip_whitespace()? else {
                        self.mode = Mode::Done;
                        return Ok(None);
                    };
                    let line = self.line;
                    return Ok(Some(self.read_value(line)?.map(|bytes| JsonRecord { line, bytes })));
                }
                Mode::Array { first } => {
                    let fatal = |line: u64, message: String| {
                        Ok(Some(Err(RecordError { line, message, fatal: true })))
                    };
                    match self.skip_whitespace()? {
                        None => {
                            return fatal(
                                self.line,
                                "unterminated JSON array (the file ends inside it)".into(),
                            )
                        }
                        Some(b']') => {
                            self.bump()?;
                            self.mode = Mode::Done;
                            return match self.skip_whitespace()? {
                                None => Ok(None),
                                Some(b) => fatal(
                                    self.line,
                                    format!(
                                        "unexpected {:?} after the end of the top-level JSON array",
                                        char::from(b)
                                    ),
                                ),
                            };
                        }
                        Some(b',') if !first => {
                            self.bump()?;
                            match self.skip_whitespace()? {
                                None => {
                                    return fatal(
                                        self.line,
                                        "unterminated JSON array (the file ends inside it)".into(),
                                    )
                                }
                                Some(b']') => {
                                    return fatal(
                                        self.line,
                                        "trailing comma before the end of the array".into(),
                                    )
                                }
                                Some(_) => {}
                            }
                        }
                        Some(b) if !first => {
                            return fatal(
                                self.line,
                                format!(
                                    "expected ',' or ']' between array elements, found {:?}",
                                    char::from(b)
                                ),
                            )
                        }
                        Some(_) => {}
                    }
                    self.mode = Mode::Array { first: false };
                    let line = self.line;
                    return Ok(Some(self.read_value(line)?.map(|bytes| JsonRecord { line, bytes })));
                }
            }
        }
    }
}

/// A serde_json error inside a record as a message with the file's line: serde counts lines
/// from the record's first byte.
pub(crate) fn json_error_message(record_line: u64, error: &serde_json::Error) -> (u64, String) {
    let line = record_line + error.line().saturating_sub(1) as u64;
    let text = error.to_string();
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    (line, format!("invalid JSON (line {line}, column {}): {text}", error.column()))
}

/// The line each element of the arrays at `path` starts on, in document order, inside one
/// well-formed record that starts on `first_line`. `path` names object keys down the tree:
/// `["resourceSpans", "scopeSpans", "spans"]` finds `resourceSpans[*].scopeSpans[*].spans[*]`.
/// Malformed input gives what was found so far (callers compare the count with what they
/// parsed and fall back to the record's line).
pub(crate) fn element_lines(bytes: &[u8], first_line: u64, path: &[&str]) -> Vec<u64> {
    let mut scanner = Scanner { bytes, pos: 0, line: first_line };
    let mut out = Vec::new();
    scanner.collect(path, &mut out, 0);
    out
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u64,
}

/// Deeper nesting than this is not followed (serde_json itself refuses beyond 128).
const MAX_SCAN_DEPTH: usize = 128;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// A string at the cursor (opening quote included); its raw bytes between the quotes.
    fn string(&mut self) -> &[u8] {
        self.bump();
        let start = self.pos;
        let mut escaped = false;
        while let Some(b) = self.bump() {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => return &self.bytes[start..self.pos - 1],
                _ => {}
            }
        }
        &self.bytes[start..]
    }

    fn skip_value(&mut self, depth: usize) {
        self.whitespace();
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(b'{') => {
                self.bump();
                loop {
                    self.whitespace();
                    match self.peek() {
                        Some(b'}') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(b'"') => {
                            self.string();
                            self.whitespace();
                            if self.peek() == Some(b':') {
                                self.bump();
                            }
                            if depth >= MAX_SCAN_DEPTH {
                                return;
                            }
                            self.skip_value(depth + 1);
                        }
                        Some(_) => return,
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                loop {
                    self.whitespace();
                    match self.peek() {
                        Some(b']') | None => {
                            self.bump();
                            return;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        Some(_) => {
                            if depth >= MAX_SCAN_DEPTH {
                                return;
                            }
                            let before = self.pos;
                            self.skip_value(depth + 1);
                            if self.pos == before {
                                return;
                            }
                        }
                    }
                }
            }
            Some(_) => {
                while let Some(b) = self.peek() {
                    if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}') {
                        break;
                    }
                    self.bump();
                }
            }
            None => {}
        }
    }

    /// The value at the cursor is an object; follow `path[0]` into its array.
    fn collect(&mut self, path: &[&str], out: &mut Vec<u64>, depth: usize) {
        self.whitespace();
        let Some((key, rest)) = path.split_first() else {
            self.skip_value(depth);
            return;
        };
        if self.peek() != Some(b'{') || depth >= MAX_SCAN_DEPTH {
            self.skip_value(depth);
            return;
        }
        self.bump();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b'}') | None => {
                    self.bump();
                    return;
                }
                Some(b',') => {
                    self.bump();
                }
                Some(b'"') => {
                    let matched = self.string() == key.as_bytes();
                    self.whitespace();
                    if self.peek() == Some(b':') {
                        self.bump();
                    }
                    self.whitespace();
                    if matched && self.peek() == Some(b'[') {
                        self.elements(rest, out, depth + 1);
                    } else {
                        self.skip_value(depth + 1);
                    }
                }
                Some(_) => return,
            }
        }
    }

    /// The value at the cursor is an array on the path: record or descend into each element.
    fn elements(&mut self, rest: &[&str], out: &mut Vec<u64>, depth: usize) {
        self.bump();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b']') | None => {
                    self.bump();
                    return;
                }
                Some(b',') => {
                    self.bump();
                }
                Some(_) => {
                    let before = self.pos;
                    if rest.is_empty() {
                        out.push(self.line);
                        self.skip_value(depth + 1);
                    } else {
                        self.collect(rest, out, depth + 1);
                    }
                    if self.pos == before {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as (line, text), or its error as (line, message, fatal).
    type Item = Result<(u64, String), (u64, String, bool)>;

    fn records(text: &str) -> Vec<Item> {
        records_limited(text, MAX_JSON_RECORD_BYTES)
    }

    fn records_limited(text: &str, max: usize) -> Vec<Item> {
        let mut r = JsonRecords::new(text.as_bytes(), "t.json").with_max_record_bytes(max);
        let mut out = Vec::new();
        while let Some(item) = r.next_record() {
            out.push(match item.expect("no I/O error") {
                Ok(rec) => Ok((rec.line, String::from_utf8(rec.bytes).unwrap())),
                Err(e) => Err((e.line, e.message, e.fatal)),
            });
        }
        out
    }

    #[test]
    fn array_elements_come_with_the_line_they_start_on() {
        let text = "[\n  {\"a\": 1,\n   \"s\": \"x]}\\\"\"},\n\n  {\"b\": [2, {\"c\": 3}]}\n]\n";
        assert_eq!(
            records(text),
            vec![
                Ok((2, "{\"a\": 1,\n   \"s\": \"x]}\\\"\"}".into())),
                Ok((5, "{\"b\": [2, {\"c\": 3}]}".into()))
            ]
        );
        assert!(records("[]").is_empty());
        assert!(records("\u{feff}  [ ]  \n").is_empty());
    }

    #[test]
    fn jsonl_and_concatenated_pretty_values_are_a_sequence() {
        let text = "{\"a\": 1}\n\n{\"b\":\n 2}\n{\"c\": 3} {\"d\": 4}\n";
        let lines: Vec<u64> = records(text).into_iter().map(|r| r.unwrap().0).collect();
        assert_eq!(lines, vec![1, 3, 5, 5]);
    }

    #[test]
    fn broken_structure_is_fatal_and_names_the_line() {
        assert_eq!(
            records("[{\"a\": 1}\n{\"b\": 2}]"),
            vec![
                Ok((1, "{\"a\": 1}".into())),
                Err((2, "expected ',' or ']' between array elements, found '{'".into(), true))
            ]
        );
        assert_eq!(
            records("[{\"a\": 1},\n]").last().unwrap(),
            &Err((2, "trailing comma before the end of the array".into(), true))
        );
        assert_eq!(
            records("[{\"a\": 1}\n").last().unwrap(),
            &Err((2, "unterminated JSON array (the file ends inside it)".into(), true))
        );
        assert_eq!(
            records("\n{\"a\": \"open}\n").last().unwrap(),
            &Err((2, "unterminated JSON value (the file ends inside it)".into(), true))
        );
        assert_eq!(
            records("[{\"a\": 1}] x").last().unwrap(),
            &Err((1, "unexpected 'x' after the end of the top-level JSON array".into(), true))
        );
    }

    #[test]
    fn an_over_long_record_is_skipped_and_the_next_one_reads() {
        let got = records_limited("[{\"a\": \"0123456789\"},\n {\"b\": 1}]", 12);
        assert_eq!(got[0], Err((1, "JSON record longer than the maximum of 12 bytes (0 MiB)".into(), false)));
        assert_eq!(got[1], Ok((2, "{\"b\": 1}".into())));
    }

    #[test]
    fn element_lines_follow_the_nested_path() {
        let text = "{\"resourceSpans\": [\n {\"resource\": {\"spans\": [1]},\n  \"scopeSpans\": [{\"spans\": [\n   {\"x\": \"]\"},\n   {\"y\": 2}]},\n  {\"spans\": []}]},\n {\"scopeSpans\": [{\"scope\": {}, \"spans\": [{\"z\": 3}\n ]}]}]}";
        assert_eq!(
            element_lines(text.as_bytes(), 10, &["resourceSpans", "scopeSpans", "spans"]),
            vec![13, 14, 16]
        );
        assert!(element_lines(b"{\"other\": []}", 1, &["resourceSpans", "scopeSpans", "spans"]).is_empty());
    }

    #[test]
    fn json_errors_count_lines_from_the_record() {
        let error = serde_json::from_str::<serde_json::Value>("{\"a\": 1,\n \"b\": }").unwrap_err();
        let (line, message) = json_error_message(7, &error);
        assert_eq!(line, 8);
        assert!(message.starts_with("invalid JSON (line 8, column 7): expected value"), "{message}");
    }
}
