//! The observed-attempt log: one JSON line per attempt sent over real HTTP (`attempts.jsonl`),
//! written by `sim observe` and read by `sim calibrate` and `sim validate`.
//!
//! It owns the record's schema ([`AttemptRecord`]), its checks, the line-numbered reader
//! ([`read_attempts`]) and the writer ([`AttemptLogWriter`]). Times are milliseconds since the
//! observed run started (fractional), as wall time: a provider cannot be sped up, so nothing
//! here is virtual. It must not know about HTTP, policies or fitting.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// The file name inside an observed run's output directory.
pub const ATTEMPTS_FILE: &str = "attempts.jsonl";

/// How the run was observed, beside the log (`observation.json`).
pub const OBSERVATION_FILE: &str = "observation.json";

/// How an observed run's clock relates to the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// The endpoints were a modelled provider served this many times faster than real time
    /// and the log's times are on the provider's clock (`sim observe --time-scale`): one
    /// millisecond of wall-clock jitter is this many in the log. 1 against a real provider.
    pub time_scale: f64,
    /// Arrivals were this many times denser than the trace on the wall clock (`--speed`).
    pub speed: f64,
}

impl Default for Observation {
    fn default() -> Self {
        Observation { time_scale: 1.0, speed: 1.0 }
    }
}

/// Reads `dir/observation.json`; a directory without one was observed in wall time (the
/// defaults). A malformed file is an error naming it.
pub fn read_observation(dir: &Path) -> Result<Observation, AttemptLogError> {
    let path = dir.join(OBSERVATION_FILE);
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Observation::default()),
        Err(source) => return Err(AttemptLogError::Io { file, action: "cannot read", source }),
    };
    let observation: Observation = serde_json::from_str(&text).map_err(|e| AttemptLogError::Malformed {
        file: file.clone(),
        line: e.line() as u64,
        message: e.to_string(),
    })?;
    for (field, value) in [("time_scale", observation.time_scale), ("speed", observation.speed)] {
        if !crate::validate::is_positive(value) {
            return Err(AttemptLogError::Field {
                file,
                line: 1,
                field,
                message: format!("must be a number > 0, got {value}"),
            });
        }
    }
    Ok(observation)
}

/// One attempt as observed on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptRecord {
    /// The trace row's `id`, as written in the trace.
    pub request_id: String,
    /// The scenario's deployment name the attempt went to.
    pub deployment: String,
    /// 1-based attempt number within the request (hedges and retries count).
    pub attempt: u32,
    /// When the request was sent, ms since the run started.
    pub start_ms: f64,
    /// When the first content token arrived; `None` if none did.
    pub first_token_ms: Option<f64>,
    /// When the response ended (last byte, or the error response), ms since the run started.
    pub end_ms: f64,
    /// The HTTP status (200 for a stream that broke after it started).
    pub status: u16,
    /// `None`, or the provider's error type (`rate_limit_error`, `overloaded_error`, …).
    pub error_type: Option<String>,
    /// The `retry-after` header in seconds, if sent.
    pub retry_after_s: Option<f64>,
    /// Every rate-limit header as sent (lower-case names), `anthropic-ratelimit-*`,
    /// `x-ratelimit-*` and `retry-after`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// As the response's usage reports them (the row's counts when the response had none).
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

impl AttemptRecord {
    /// A success: status 2xx, no error type.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status) && self.error_type.is_none()
    }

    /// Time to first token, ms, if a token arrived.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_token_ms.map(|t| t - self.start_ms)
    }

    /// The first inconsistency, as (field, message).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let finite_non_negative = |field: &'static str, x: f64| {
            if crate::validate::is_non_negative(x) {
                Ok(())
            } else {
                Err((field, format!("expected a finite number >= 0, got {x}")))
            }
        };
        finite_non_negative("start_ms", self.start_ms)?;
        finite_non_negative("end_ms", self.end_ms)?;
        if self.end_ms < self.start_ms {
            return Err(("end_ms", format!("{} is before start_ms {}", self.end_ms, self.start_ms)));
        }
        if let Some(first) = self.first_token_ms {
            finite_non_negative("first_token_ms", first)?;
            if first < self.start_ms || first > self.end_ms {
                return Err((
                    "first_token_ms",
                    format!("{first} is outside [start_ms, end_ms] = [{}, {}]", self.start_ms, self.end_ms),
                ));
            }
        }
        if let Some(after) = self.retry_after_s {
            finite_non_negative("retry_after_s", after)?;
        }
        if self.attempt == 0 {
            return Err(("attempt", "attempt numbers start at 1".into()));
        }
        if self.request_id.is_empty() {
            return Err(("request_id", "must not be empty".into()));
        }
        if self.deployment.is_empty() {
            return Err(("deployment", "must not be empty".into()));
        }
        if self.cached_input_tokens > self.input_tokens {
            return Err((
                "cached_input_tokens",
                format!("{} exceeds input_tokens {}", self.cached_input_tokens, self.input_tokens),
            ));
        }
        Ok(())
    }
}

/// Why an attempt log could not be read or written; names the file and the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum AttemptLogError {
    #[error("{file}: {action}: {source}")]
    Io { file: String, action: &'static str, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Malformed { file: String, line: u64, message: String },
    #[error("{file}:{line}: field \"{field}\": {message}")]
    Field { file: String, line: u64, field: &'static str, message: String },
}

/// Reads every record of `path`; blank lines are skipped, anything else must be a record.
pub fn read_attempts(path: &Path) -> Result<Vec<AttemptRecord>, AttemptLogError> {
    Ok(read_attempts_numbered(path)?.into_iter().map(|(_, record)| record).collect())
}

/// [`read_attempts`] with each record's 1-based line, so that later checks of a record's
/// contents (a header that does not parse) can name `file:line` too.
pub fn read_attempts_numbered(path: &Path) -> Result<Vec<(u64, AttemptRecord)>, AttemptLogError> {
    let file_name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| AttemptLogError::Io {
        file: file_name.clone(),
        action: "cannot open",
        source,
    })?;
    parse_attempts_numbered(std::io::BufReader::new(file), &file_name)
}

/// Reads records from `input`; `file_name` is used in errors only.
pub fn parse_attempts(input: impl BufRead, file_name: &str) -> Result<Vec<AttemptRecord>, AttemptLogError> {
    Ok(parse_attempts_numbered(input, file_name)?.into_iter().map(|(_, record)| record).collect())
}

/// [`parse_attempts`] with each record's 1-based line.
pub fn parse_attempts_numbered(
    input: impl BufRead,
    file_name: &str,
) -> Result<Vec<(u64, AttemptRecord)>, AttemptLogError> {
    let mut records = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_number = index as u64 + 1;
        let line = line.map_err(|source| AttemptLogError::Io {
            file: format!("{file_name}:{line_number}"),
            action: "cannot read",
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        // The path of a value of the wrong type names its field (`field "start_ms": invalid
        // type…`), which serde_json's own message does not.
        let record: AttemptRecord = serde_path_to_error::deserialize(
            &mut serde_json::Deserializer::from_str(&line),
        )
        .map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let message =
                if path.is_empty() || path == "." { message } else { format!("field \"{path}\": {message}") };
            AttemptLogError::Malformed { file: file_name.to_string(), line: line_number, message }
        })?;
        record.check().map_err(|(field, message)| AttemptLogError::Field {
            file: file_name.to_string(),
            line: line_number,
            field,
            message,
        })?;
        records.push((line_number, record));
    }
    Ok(records)
}

/// Writes records one JSON line each, in the order given.
pub struct AttemptLogWriter<W: Write> {
    out: W,
}

impl<W: Write> AttemptLogWriter<W> {
    pub fn new(out: W) -> AttemptLogWriter<W> {
        AttemptLogWriter { out }
    }

    pub fn write(&mut self, record: &AttemptRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    /// Flushes what was written to the underlying writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AttemptRecord {
        AttemptRecord {
            request_id: "r1".into(),
            deployment: "anthropic/sonnet".into(),
            attempt: 1,
            start_ms: 10.5,
            first_token_ms: Some(410.25),
            end_ms: 1_200.0,
            status: 200,
            error_type: None,
            retry_after_s: None,
            headers: BTreeMap::from([("anthropic-ratelimit-requests-remaining".into(), "49".into())]),
            input_tokens: 1_000,
            cached_input_tokens: 200,
            output_tokens: 300,
        }
    }

    #[test]
    fn a_written_log_reads_back_identically() {
        let mut failed = record();
        failed.attempt = 2;
        failed.status = 429;
        failed.error_type = Some("rate_limit_error".into());
        failed.first_token_ms = None;
        failed.retry_after_s = Some(3.0);
        let mut writer = AttemptLogWriter::new(Vec::new());
        writer.write(&record()).unwrap();
        writer.write(&failed).unwrap();
        let bytes = writer.into_inner();
        let back = parse_attempts(&bytes[..], "attempts.jsonl").unwrap();
        assert_eq!(back, vec![record(), failed.clone()]);
        assert!(back[0].is_success() && !back[1].is_success());
        assert_eq!(back[0].ttft_ms(), Some(399.75));
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let good = serde_json::to_string(&record()).unwrap();
        let mut bad = record();
        bad.first_token_ms = Some(5.0);
        let bad = serde_json::to_string(&bad).unwrap();
        let text = format!("{good}\n\n{bad}\n");
        let error = parse_attempts(text.as_bytes(), "run/attempts.jsonl").unwrap_err().to_string();
        assert!(error.starts_with("run/attempts.jsonl:3: field \"first_token_ms\""), "{error}");

        let error = parse_attempts("{\"request_id\": 1}\n".as_bytes(), "a.jsonl").unwrap_err().to_string();
        assert!(error.starts_with("a.jsonl:1: "), "{error}");
        let wrong_type = good.replacen("\"start_ms\":10.5", "\"start_ms\":\"soon\"", 1);
        let error = parse_attempts(format!("{good}\n{wrong_type}\n").as_bytes(), "a.jsonl").unwrap_err();
        assert!(error.to_string().starts_with("a.jsonl:2: field \"start_ms\": invalid type"), "{error}");
        let numbered = parse_attempts_numbered(format!("\n{good}\n").as_bytes(), "a.jsonl").unwrap();
        assert_eq!(numbered, vec![(2, record())]);
        let unknown = good.replacen("{", "{\"extra\":1,", 1);
        let error = parse_attempts(unknown.as_bytes(), "a.jsonl").unwrap_err().to_string();
        assert!(error.contains("unknown field `extra`"), "{error}");
    }
}
