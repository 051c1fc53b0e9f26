//! LiteLLM proxy spend logs: the rows of the proxy's `LiteLLM_SpendLogs` table (one per
//! request the proxy logged, `litellm/proxy/schema.prisma`) as exported in JSON, a top-level
//! array (the `/spend/logs` answer) or JSONL, read one row at a time ([`SpendLogReader`]).
//!
//! A row becomes a [`SpendRow`]: times (`startTime`, `endTime`, `completionStartTime`), token
//! counts (`prompt_tokens`, `completion_tokens`; cache reads and writes from the row's
//! `metadata.usage_object`, else `metadata.additional_usage_values`), the model names
//! (`model`, `model_group`, `model_id`, `api_base`), the outcome (`status`, else
//! `metadata.status`; `metadata.error_information`), and for the trace a session
//! (`session_id`) and a label for class rules. What is read depends on the [`Purpose`]: a
//! trace needs no end time, an attempt log no session. Every top-level key of a row is used,
//! reported as ignored (a column of the schema this purpose does not need) or reported as
//! unknown (not a column of the schema); `metadata` is read at the paths above and its other
//! contents (free-form) are not reported. A proxy cache hit (`cache_hit` true) never reached a
//! provider: it is counted and skipped.
//!
//! [`SpendSource`] is the trace importer over it (the pipeline in [`super`] does order,
//! window and classes); `crate::calibrate::gateway_logs` turns rows into observed attempts.
//! It must not know about the pipeline's options, the engine or calibration.

use super::fields::{field_error, json_count, json_datetime, json_text, FieldError};
use super::json_records::{json_error_message, JsonRecords};
use super::{KeyTally, RawRow, RawSource};
use crate::trace::TraceError;
use serde_json::{Map, Value};
use std::fs::File;
use std::path::Path;

/// Every column of `LiteLLM_SpendLogs` in LiteLLM's `schema.prisma`.
pub const SCHEMA_COLUMNS: &[&str] = &[
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "request_duration_ms",
    "completionStartTime",
    "model",
    "model_id",
    "model_group",
    "custom_llm_provider",
    "api_base",
    "user",
    "metadata",
    "cache_hit",
    "cache_key",
    "request_tags",
    "team_id",
    "organization_id",
    "end_user",
    "requester_ip_address",
    "messages",
    "response",
    "session_id",
    "status",
    "mcp_namespaced_tool_name",
    "agent_id",
    "proxy_server_request",
];

/// The columns a trace import uses.
pub const TRACE_COLUMNS: &[&str] = &[
    "startTime",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "model",
    "model_group",
    "call_type",
    "team_id",
    "user",
    "end_user",
    "request_tags",
    "session_id",
    "status",
    "cache_hit",
];

/// The columns the conversion to observed attempts uses.
pub const ATTEMPT_COLUMNS: &[&str] = &[
    "request_id",
    "startTime",
    "endTime",
    "completionStartTime",
    "prompt_tokens",
    "completion_tokens",
    "metadata",
    "model",
    "model_id",
    "model_group",
    "api_base",
    "status",
    "cache_hit",
];

/// The parts of the label the class rules' `label` regex sees, in order, as `key=value`.
const LABEL_COLUMNS: [&str; 5] = ["call_type", "team_id", "user", "end_user", "request_tags"];

/// What the rows are read for: which columns are used (the others are reported as ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A trace of requests (`sim trace convert`, a scenario's `[trace]`).
    Trace,
    /// Observed attempts for `sim calibrate --from-log` (`crate::calibrate::gateway_logs`).
    Attempts,
}

/// One spend-log row, as far as routesim uses it. Fields a [`Purpose`] does not read are
/// `None` (or empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpendRow {
    /// The line the row starts on.
    pub line: u64,
    /// `request_id` (attempts only).
    pub request_id: String,
    /// `startTime`, µs since the epoch.
    pub start_us: i64,
    /// `endTime` (attempts only).
    pub end_us: Option<i64>,
    /// `completionStartTime`: the first token (attempts only; LiteLLM writes `endTime` here
    /// for a call that was not streamed).
    pub completion_start_us: Option<i64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache (included in `prompt_tokens`).
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    pub model: Option<String>,
    pub model_group: Option<String>,
    /// `model_id` (attempts only).
    pub model_id: Option<String>,
    /// `api_base` (attempts only).
    pub api_base: Option<String>,
    /// `call_type=… team_id=… user=… end_user=… request_tags=…`, the parts the row has
    /// (trace only).
    pub label: Option<String>,
    /// `session_id` (trace only).
    pub session: Option<String>,
    /// `status` (or `metadata.status`) is `failure`.
    pub failed: bool,
    /// `metadata.error_information.error_code` (attempts only), e.g. `429`.
    pub error_code: Option<String>,
    /// `metadata.error_information.error_class` (attempts only), e.g. `RateLimitError`.
    pub error_class: Option<String>,
}

/// The rows of one spend-log export, in file order; proxy cache hits are counted in
/// [`KeyTally::not_calls`] and skipped.
pub struct SpendLogReader {
    records: JsonRecords<File>,
    purpose: Purpose,
    keys: KeyTally,
    fatal: bool,
}

impl SpendLogReader {
    pub fn open(path: &Path, purpose: Purpose) -> Result<SpendLogReader, TraceError> {
        Ok(SpendLogReader {
            records: JsonRecords::open(path)?,
            purpose,
            keys: KeyTally::default(),
            fatal: false,
        })
    }

    /// The file's name, as errors give it.
    pub fn name(&self) -> &str {
        self.records.name()
    }

    /// The keys seen so far and the rows that were not provider calls.
    pub fn keys(&self) -> &KeyTally {
        &self.keys
    }

    /// Whether the last error ended the file (broken JSON structure).
    pub fn fatal(&self) -> bool {
        self.fatal
    }

    fn row_error(&self, line: u64, e: FieldError) -> TraceError {
        TraceError::Row {
            file: self.name().to_string(),
            line,
            field: (!e.field.is_empty()).then_some(e.field),
            message: e.message,
        }
    }

    fn parse(&mut self, line: u64, bytes: &[u8]) -> Result<Option<SpendRow>, FieldError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| field_error("", json_error_message(line, &e).1))?;
        let Some(row) = value.as_object() else {
            return Err(field_error("", "expected a JSON object (one LiteLLM_SpendLogs row)".into()));
        };
        let used = match self.purpose {
            Purpose::Trace => TRACE_COLUMNS,
            Purpose::Attempts => ATTEMPT_COLUMNS,
        };
        for key in row.keys() {
            self.keys.key(key, used, SCHEMA_COLUMNS);
        }
        let get = |key: &str| row.get(key).filter(|v| !v.is_null());
        let required = |key: &str| get(key).ok_or_else(|| field_error(key, "missing".into()));
        let text = |key: &str| get(key).map_or(Ok(None), |v| json_text(key, v));
        if let Some(v) = get("cache_hit") {
            if cache_hit(v)? {
                self.keys.not_calls.add("LiteLLM proxy cache hit (cache_hit = True)");
                return Ok(None);
            }
        }
        let start_us = json_datetime("startTime", required("startTime")?)?;
        let prompt_tokens = json_count("prompt_tokens", required("prompt_tokens")?)?;
        let completion_tokens = json_count("completion_tokens", required("completion_tokens")?)?;
        let metadata = metadata(get("metadata"))?;
        let (cached_tokens, cache_write_tokens) = cache_tokens(metadata.as_ref(), prompt_tokens)?;
        let failed = match get("status") {
            Some(v) => status_failed("status", v)?,
            None => match metadata.as_ref().and_then(|m| m.get("status")).filter(|v| !v.is_null()) {
                Some(v) => status_failed("metadata.status", v)?,
                None => false,
            },
        };
        let mut spend = SpendRow {
            line,
            start_us,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            cache_write_tokens,
            model: text("model")?,
            model_group: text("model_group")?,
            failed,
            ..SpendRow::default()
        };
        match self.purpose {
            Purpose::Trace => {
                let mut parts = Vec::new();
                for key in LABEL_COLUMNS {
                    let part = match get(key) {
                        Some(v) if key == "request_tags" => tags(v)?,
                        Some(v) => json_text(key, v)?,
                        None => None,
                    };
                    if let Some(part) = part {
                        parts.push(format!("{key}={part}"));
                    }
                }
                spend.label = (!parts.is_empty()).then(|| parts.join(" "));
                spend.session = text("session_id")?;
            }
            Purpose::Attempts => {
                spend.request_id =
                    text("request_id")?.ok_or_else(|| field_error("request_id", "missing".into()))?;
                let end_us = json_datetime("endTime", required("endTime")?)?;
                if end_us < start_us {
                    return Err(field_error("endTime", "is before startTime".into()));
                }
                spend.end_us = Some(end_us);
                spend.completion_start_us = get("completionStartTime")
                    .map(|v| json_datetime("completionStartTime", v))
                    .transpose()?;
                if let Some(first) = spend.completion_start_us {
                    if first < start_us || first > end_us {
                        return Err(field_error(
                            "completionStartTime",
                            "is outside [startTime, endTime]".into(),
                        ));
                    }
                }
                spend.model_id = text("model_id")?;
                spend.api_base = text("api_base")?;
                if let Some(info) =
                    metadata.as_ref().and_then(|m| m.get("error_information")).and_then(Value::as_object)
                {
                    let info_text =
                        |key: &str, field: &str| info.get(key).map_or(Ok(None), |v| json_text(field, v));
                    spend.error_code = info_text("error_code", "metadata.error_information.error_code")?;
                    spend.error_class = info_text("error_class", "metadata.error_information.error_class")?;
                }
            }
        }
        Ok(Some(spend))
    }
}

impl Iterator for SpendLogReader {
    type Item = Result<SpendRow, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = match self.records.next_record()? {
                Err(io) => {
                    self.fatal = true;
                    return Some(Err(io));
                }
                Ok(Err(e)) => {
                    self.fatal = e.fatal;
                    return Some(Err(self.row_error(e.line, field_error("", e.message))));
                }
                Ok(Ok(record)) => record,
            };
            self.fatal = false;
            match self.parse(record.line, &record.bytes) {
                Ok(Some(row)) => return Some(Ok(row)),
                Ok(None) => continue,
                Err(e) => return Some(Err(self.row_error(record.line, e))),
            }
        }
    }
}

/// `cache_hit` as LiteLLM writes it (`str(bool)`: `"True"`, `"False"`; empty when unknown).
fn cache_hit(value: &Value) -> Result<bool, FieldError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" | "none" => Ok(false),
            _ => Err(field_error(
                "cache_hit",
                format!("expected True or False, got {}", crate::trace::elide(s)),
            )),
        },
        other => Err(field_error("cache_hit", format!("expected True or False, got {other}"))),
    }
}

fn status_failed(field: &str, value: &Value) -> Result<bool, FieldError> {
    match value.as_str().map(str::trim) {
        Some("success") | Some("") => Ok(false),
        Some("failure") => Ok(true),
        _ => Err(field_error(
            field,
            format!("expected \"success\" or \"failure\", got {}", crate::trace::elide(&value.to_string())),
        )),
    }
}

/// `metadata`: an object, or the JSON text of one (the table stores it as JSON text).
fn metadata(value: Option<&Value>) -> Result<Option<Map<String, Value>>, FieldError> {
    match value {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(field_error("metadata", "expected a JSON object".into())),
            Err(e) => Err(field_error("metadata", format!("a string that is not JSON: {e}"))),
        },
        Some(other) => Err(field_error(
            "metadata",
            format!("expected a JSON object, got {}", crate::trace::elide(&other.to_string())),
        )),
    }
}

/// Cache reads and writes from `metadata.usage_object` (the response's usage, OpenAI shape
/// with Anthropic's extras), else `metadata.additional_usage_values` (older rows): reads are
/// `prompt_tokens_details.cached_tokens`, else `cache_read_input_tokens`; writes are
/// `cache_creation_input_tokens`. Reads beyond the prompt are an error.
fn cache_tokens(metadata: Option<&Map<String, Value>>, prompt_tokens: u64) -> Result<(u64, u64), FieldError> {
    let Some(metadata) = metadata else { return Ok((0, 0)) };
    let mut read = None;
    let mut write = None;
    for section in ["usage_object", "additional_usage_values"] {
        let Some(usage) = metadata.get(section).and_then(Value::as_object) else { continue };
        let count = |value: Option<&Value>, path: &str| {
            value
                .filter(|v| !v.is_null())
                .map(|v| json_count(&format!("metadata.{section}.{path}"), v))
                .transpose()
        };
        if read.is_none() {
            let details = usage.get("prompt_tokens_details").and_then(Value::as_object);
            read = match count(
                details.and_then(|d| d.get("cached_tokens")),
                "prompt_tokens_details.cached_tokens",
            )? {
                Some(n) => Some((n, format!("metadata.{section}.prompt_tokens_details.cached_tokens"))),
                None => count(usage.get("cache_read_input_tokens"), "cache_read_input_tokens")?
                    .map(|n| (n, format!("metadata.{section}.cache_read_input_tokens"))),
            };
        }
        if write.is_none() {
            write = count(usage.get("cache_creation_input_tokens"), "cache_creation_input_tokens")?;
        }
    }
    let (read, field) = read.unwrap_or((0, String::new()));
    if read > prompt_tokens {
        return Err(field_error(&field, format!("{read} exceeds prompt_tokens {prompt_tokens}")));
    }
    Ok((read, write.unwrap_or(0)))
}

/// `request_tags`: an array of strings, or the JSON text of one, joined by commas.
fn tags(value: &Value) -> Result<Option<String>, FieldError> {
    let list = match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            _ => return json_text("request_tags", value),
        },
        Value::Array(items) => items.clone(),
        other => return json_text("request_tags", other),
    };
    let names: Vec<String> = list
        .iter()
        .map(|v| json_text("request_tags", v))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok((!names.is_empty()).then(|| names.join(",")))
}

/// The trace importer over a spend log: a row's `startTime` is its arrival, the rules see
/// `model_group` (else `model`) and the label.
pub(super) struct SpendSource {
    reader: SpendLogReader,
}

impl SpendSource {
    pub(super) fn open(path: &Path) -> Result<SpendSource, TraceError> {
        Ok(SpendSource { reader: SpendLogReader::open(path, Purpose::Trace)? })
    }
}

impl RawSource for SpendSource {
    fn next_raw(&mut self) -> Option<Result<RawRow, TraceError>> {
        self.reader.next().map(|row| {
            row.map(|r| RawRow {
                time_us: r.start_us,
                line: r.line,
                input_tokens: r.prompt_tokens,
                output_tokens: r.completion_tokens,
                cached_input_tokens: r.cached_tokens,
                cache_write_tokens: r.cache_write_tokens,
                model: r.model_group.or(r.model),
                label: r.label,
                session: r.session,
                failed: r.failed,
                ..RawRow::default()
            })
        })
    }

    fn time_field(&self) -> &str {
        "startTime"
    }

    fn keys(&self) -> Option<&KeyTally> {
        Some(self.reader.keys())
    }

    fn fatal(&self) -> bool {
        self.reader.fatal()
    }
}
