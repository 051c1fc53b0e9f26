//! The CSV import sources: the Azure LLM inference traces (2023 and 2024), BurstGPT and a
//! mapped CSV, each a [`CsvLayout`] of header names read by one [`CsvSource`] into raw rows.
//!
//! It must not know about the pipeline after the raw row (order, jitter, window, rate, classes).

use super::fields::{parse_count, parse_time, FieldError};
use super::{Mapping, RawRow, RawSource, TimeUnit, TraceFormat};
use crate::trace::{LineIndex, TraceError};
use std::fs::File;
use std::path::Path;

/// Which header names hold what, for a CSV source.
pub(super) struct CsvLayout {
    format: TraceFormat,
    time: String,
    time_unit: TimeUnit,
    input: String,
    output: String,
    cached: Option<String>,
    model: Option<String>,
    label: Option<String>,
    class: Option<String>,
    session: Option<String>,
    /// BurstGPT: zero output tokens mark a failed request.
    zero_output_is_failure: bool,
}

impl CsvLayout {
    pub(super) fn azure() -> Self {
        CsvLayout {
            format: TraceFormat::Azure,
            time: "TIMESTAMP".into(),
            time_unit: TimeUnit::Datetime,
            input: "ContextTokens".into(),
            output: "GeneratedTokens".into(),
            cached: None,
            model: None,
            label: None,
            class: None,
            session: None,
            zero_output_is_failure: false,
        }
    }

    pub(super) fn burstgpt() -> Self {
        CsvLayout {
            format: TraceFormat::Burstgpt,
            time: "Timestamp".into(),
            time_unit: TimeUnit::S,
            input: "Request tokens".into(),
            output: "Response tokens".into(),
            cached: None,
            model: Some("Model".into()),
            label: Some("Log Type".into()),
            class: None,
            // Optional: used when the file has it.
            session: Some("Session ID".into()),
            zero_output_is_failure: true,
        }
    }

    pub(super) fn mapped(m: &Mapping) -> Self {
        CsvLayout {
            format: TraceFormat::Mapped,
            time: m.time.clone(),
            time_unit: m.time_unit,
            input: m.input_tokens.clone(),
            output: m.output_tokens.clone(),
            cached: m.cached_input_tokens.clone(),
            model: m.model.clone(),
            label: m.label.clone(),
            class: m.class.clone(),
            session: m.session.clone(),
            zero_output_is_failure: false,
        }
    }
}

/// A list of names for an error message, cut after 200 characters (a 10 MB header must not
/// become a 10 MB error line).
fn elide_list(list: &str) -> String {
    const MAX_CHARS: usize = 200;
    let list = &list.escape_debug().to_string();
    match list.char_indices().nth(MAX_CHARS) {
        None => list.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &list[..cut], list.len()),
    }
}

pub(super) struct CsvSource {
    csv: csv::Reader<LineIndex<File>>,
    name: String,
    layout: CsvLayout,
    n_fields: usize,
    time: usize,
    input: usize,
    output: usize,
    cached: Option<usize>,
    model: Option<usize>,
    label: Option<usize>,
    class: Option<usize>,
    session: Option<usize>,
    record: csv::StringRecord,
}

impl CsvSource {
    pub(super) fn open(path: &Path, layout: CsvLayout) -> Result<CsvSource, TraceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Io {
            file: name.clone(),
            action: "cannot open",
            source,
        })?;
        let mut csv =
            csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(LineIndex::new(file));
        let header = csv.headers().map_err(|e| crate::trace::csv_error(&name, e, "cannot read"))?.clone();
        let find =
            |column: &str| header.iter().position(|h| h.trim().trim_start_matches('\u{feff}') == column);
        let required = |column: &String| {
            find(column).ok_or_else(|| TraceError::Header {
                file: name.clone(),
                message: format!(
                    "missing column {column:?} of the {} format (found: {})",
                    layout.format.name(),
                    elide_list(&header.iter().collect::<Vec<_>>().join(", "))
                ),
            })
        };
        // Optional columns of a built-in layout may be absent; a mapping's must exist.
        let optional = |column: &Option<String>, must_exist: bool| -> Result<Option<usize>, TraceError> {
            match column {
                None => Ok(None),
                Some(c) if must_exist => required(c).map(Some),
                Some(c) => Ok(find(c)),
            }
        };
        let strict = layout.format == TraceFormat::Mapped;
        Ok(CsvSource {
            time: required(&layout.time)?,
            input: required(&layout.input)?,
            output: required(&layout.output)?,
            cached: optional(&layout.cached, strict)?,
            model: optional(&layout.model, strict)?,
            label: optional(&layout.label, strict)?,
            class: optional(&layout.class, strict)?,
            session: optional(&layout.session, strict)?,
            n_fields: header.len(),
            csv,
            name,
            layout,
            record: csv::StringRecord::new(),
        })
    }

    fn parse(&self) -> Result<RawRow, FieldError> {
        let r = &self.record;
        if r.len() != self.n_fields {
            return Err(FieldError {
                field: String::new(),
                message: format!("expected {} fields as in the header, found {}", self.n_fields, r.len()),
            });
        }
        let get = |i: usize| r.get(i).unwrap_or("");
        let text = |i: Option<usize>| i.map(get).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let l = &self.layout;
        let output_tokens = parse_count(&l.output, get(self.output))?;
        Ok(RawRow {
            time_us: parse_time(&l.time, get(self.time), l.time_unit)?,
            line: 0,
            input_tokens: parse_count(&l.input, get(self.input))?,
            output_tokens,
            cached_input_tokens: match (self.cached, &l.cached) {
                (Some(i), Some(field)) if !get(i).trim().is_empty() => parse_count(field, get(i))?,
                _ => 0,
            },
            model: text(self.model),
            label: text(self.label),
            class: text(self.class),
            session: text(self.session),
            failed: l.zero_output_is_failure && output_tokens == 0,
            ..RawRow::default()
        })
    }
}

impl RawSource for CsvSource {
    fn next_raw(&mut self) -> Option<Result<RawRow, TraceError>> {
        match self.csv.read_record(&mut self.record) {
            Ok(false) => None,
            Err(e) => Some(Err(if e.is_io_error() {
                crate::trace::csv_error(&self.name, e, "cannot read")
            } else {
                let line = e.position().map_or(0, |p| p.line());
                TraceError::Row { file: self.name.clone(), line, field: None, message: e.to_string() }
            })),
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map_or(0, |p| self.csv.get_mut().line_at(p.byte()).unwrap_or(p.line()));
                Some(self.parse().map(|row| RawRow { line, ..row }).map_err(|e| TraceError::Row {
                    file: self.name.clone(),
                    line,
                    field: (!e.field.is_empty()).then_some(e.field),
                    message: e.message,
                }))
            }
        }
    }

    fn time_field(&self) -> &str {
        &self.layout.time
    }
}
