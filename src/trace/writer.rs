//! The writer of the routesim CSV format: one [`TraceRow`] per line, the full column set,
//! checked against the reader's rules so that whatever it writes reads back.
//!
//! It must not know how rows are produced (generators, importers) or how they are read.

use super::reader::{Column, RowError, COLUMN_NAMES, N_COLUMNS};
use super::{csv_error, TraceError};
use std::io::Write;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::hash_str;
    use crate::time::{Duration, Instant};
    use crate::trace::fmt_ms;
    use crate::trace::{ClassTable, Request, TraceReader};

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
                class: classes.intern(r.class).unwrap(),
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
