//! OpenTelemetry GenAI spans in OTLP JSON: export requests (`{"resourceSpans": [{"resource",
//! "scopeSpans": [{"scope", "spans": [...]}]}]}`), one per line as the Collector's file exporter
//! writes them, or pretty-printed one after the other, or as a JSON array of them.
//!
//! A span is one call to a model when its `gen_ai.operation.name` is `chat`, `text_completion`
//! or `generate_content` (or, for instrumentations older than that attribute, when it has a
//! `gen_ai.request.model` and a usage count); every other span (agents, tools, embeddings,
//! HTTP) is counted by operation in [`KeyTally::not_calls`] and skipped. Of an inference span
//! the reader uses the times (`startTimeUnixNano`, `endTimeUnixNano`), the ids (`traceId`,
//! `spanId`, `parentSpanId`), `status.code` and the GenAI semantic conventions' attributes
//! ([`TRACE_ATTRIBUTES`], [`ATTEMPT_ATTRIBUTES`]); every other key and attribute is reported as
//! ignored (OTLP's own keys, any attribute) or unknown (a key OTLP does not define), counted.
//! Attribute values are `{"stringValue"}`, `{"intValue"}` (a JSON string or number),
//! `{"doubleValue"}` or `{"boolValue"}`.
//!
//! OTLP does not order spans by time (a batch holds whatever ended), so the reader holds the
//! file's inference spans, at most [`MAX_SPANS`], and sorts them by start (ties in file order):
//! the one importer whose memory grows with the file. A file with more is an error naming the
//! first span beyond the limit. Errors name the line where the span's object starts.
//!
//! [`OtelSource`] is the trace importer over it; `crate::calibrate::gateway_logs` turns spans
//! into observed attempts. It must not know about the pipeline's options, the engine or
//! calibration.

use super::fields::{field_error, parse_count, FieldError};
use super::json_records::{element_lines, json_error_message, JsonRecords};
use super::{KeyTally, RawRow, RawSource, SpanLink};
use crate::rng::hash_str;
use crate::trace::TraceError;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// The most GenAI inference spans one file may hold (each about 200 bytes in memory, so some
/// 200 MB at the limit). Split a larger export by time.
pub const MAX_SPANS: usize = 1_000_000;

/// The `gen_ai.operation.name` values of a call to a model.
pub const INFERENCE_OPERATIONS: [&str; 3] = ["chat", "text_completion", "generate_content"];

/// The attributes a trace import uses.
pub const TRACE_ATTRIBUTES: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.conversation.id",
    "error.type",
];

/// The attributes the conversion to observed attempts uses.
pub const ATTEMPT_ATTRIBUTES: &[&str] = &[
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.system",
    "server.address",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.response.time_to_first_chunk",
    "http.response.status_code",
    "error.type",
];

// The keys of OTLP's JSON encoding (opentelemetry-proto, `trace/v1/trace.proto`).
const REQUEST_KEYS: &[&str] = &["resourceSpans"];
const RESOURCE_SPANS_KEYS: &[&str] = &["resource", "scopeSpans", "schemaUrl"];
const RESOURCE_KEYS: &[&str] = &["attributes", "droppedAttributesCount", "entityRefs"];
const SCOPE_SPANS_KEYS: &[&str] = &["scope", "spans", "schemaUrl"];
const SPAN_KEYS: &[&str] = &[
    "traceId",
    "spanId",
    "traceState",
    "parentSpanId",
    "flags",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "droppedAttributesCount",
    "events",
    "droppedEventsCount",
    "links",
    "droppedLinksCount",
    "status",
];
const SPAN_USED: &[&str] =
    &["traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano", "attributes", "status"];

/// What the spans are read for: which attributes are used (the others are reported).
pub use super::litellm_spend::Purpose;

/// One GenAI inference span, as far as routesim uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenAiSpan {
    /// The line the span's object starts on.
    pub line: u64,
    /// `startTimeUnixNano` in µs.
    pub start_us: i64,
    /// `endTimeUnixNano` in µs.
    pub end_us: i64,
    /// Hash of `traceId` and `spanId`.
    pub key: u64,
    /// Hash of `traceId` and `parentSpanId`, if the span has a parent.
    pub parent: Option<u64>,
    /// `spanId` as written (attempts only).
    pub span_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `gen_ai.usage.cache_read.input_tokens` (included in the input).
    pub cached_tokens: u64,
    /// `gen_ai.usage.cache_creation.input_tokens` (trace only).
    pub cache_write_tokens: u64,
    /// `gen_ai.request.max_tokens` (trace only).
    pub max_tokens: Option<u64>,
    pub request_model: Option<Arc<str>>,
    pub response_model: Option<Arc<str>>,
    /// `gen_ai.provider.name`, else the older `gen_ai.system` (attempts only).
    pub provider: Option<Arc<str>>,
    /// `server.address` (attempts only).
    pub server_address: Option<Arc<str>>,
    /// The resource's `service.name` (trace only).
    pub service: Option<Arc<str>>,
    /// `gen_ai.conversation.id` (trace only).
    pub conversation: Option<String>,
    /// `status.code` is ERROR, or `error.type` is set.
    pub failed: bool,
    pub error_type: Option<String>,
    /// `http.response.status_code` (attempts only).
    pub http_status: Option<u16>,
    /// `gen_ai.response.time_to_first_chunk` in µs (attempts only).
    pub ttft_us: Option<u64>,
}

/// Every inference span of a file, sorted by start, with what could not be read.
pub struct SpanFile {
    pub spans: Vec<GenAiSpan>,
    /// Bad spans and records, in file order; the last may be `fatal`.
    pub errors: Vec<TraceError>,
    /// The last error ended the reading (broken structure, the span limit).
    pub fatal: bool,
    pub keys: KeyTally,
}

/// Reads every inference span of `path`, stopping once more than `skip_budget` errors were
/// seen (the next is the import's error) or at a fatal one.
pub fn read_spans(path: &Path, purpose: Purpose, skip_budget: u64) -> Result<SpanFile, TraceError> {
    let records = JsonRecords::open(path)?;
    Ok(SpanReader::new(purpose).read(records, skip_budget))
}

/// Strings many spans share (model, provider and service names) are held once.
#[derive(Default)]
struct Interner {
    names: HashMap<String, Arc<str>>,
}

impl Interner {
    fn get(&mut self, name: String) -> Arc<str> {
        if let Some(shared) = self.names.get(&name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name.as_str());
        self.names.insert(name, shared.clone());
        shared
    }
}

struct SpanReader {
    purpose: Purpose,
    keys: KeyTally,
    interner: Interner,
}

/// The one `{"<kind>Value": …}` entry of an attribute value.
fn any_value(value: &Value) -> Option<(&str, &Value)> {
    value.as_object()?.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// An attribute value as text (strings as they are, numbers and booleans as written).
fn any_value_text(value: &Value) -> Option<String> {
    let (kind, inner) = any_value(value)?;
    match (kind, inner) {
        ("stringValue", Value::String(s)) => Some(s.clone()),
        ("intValue" | "doubleValue", Value::String(s)) => Some(s.clone()),
        (_, Value::Null) => None,
        (_, other) => Some(other.to_string()),
    }
}

/// An attribute value as a count: `intValue` (string or number), a whole `doubleValue`, or a
/// numeric `stringValue`.
fn any_value_count(key: &str, value: &Value) -> Result<u64, FieldError> {
    match any_value(value) {
        Some(("intValue" | "doubleValue" | "stringValue", Value::String(s))) => parse_count(key, s),
        Some(("intValue" | "doubleValue", Value::Number(n))) => parse_count(key, &n.to_string()),
        _ => Err(field_error(
            key,
            format!("expected an intValue, got {}", crate::trace::elide(&value.to_string())),
        )),
    }
}

/// An attribute value as a number of seconds (`doubleValue` or `intValue`).
fn any_value_seconds(key: &str, value: &Value) -> Result<f64, FieldError> {
    let number = match any_value(value) {
        Some(("doubleValue" | "intValue" | "stringValue", Value::String(s))) => s.trim().parse::<f64>().ok(),
        Some(("doubleValue" | "intValue", Value::Number(n))) => n.as_f64(),
        _ => None,
    };
    number.filter(|s| s.is_finite() && *s >= 0.0).ok_or_else(|| {
        field_error(
            key,
            format!(
                "expected a doubleValue of seconds >= 0, got {}",
                crate::trace::elide(&value.to_string())
            ),
        )
    })
}

/// A `*UnixNano` time: a JSON string of digits (the protobuf JSON mapping of a 64-bit
/// integer) or a number.
fn unix_nanos(field: &str, value: Option<&Value>) -> Result<u64, FieldError> {
    match value {
        None | Some(Value::Null) => Err(field_error(field, "missing".into())),
        Some(Value::String(s)) => parse_count(field, s),
        Some(Value::Number(n)) => parse_count(field, &n.to_string()),
        Some(other) => Err(field_error(
            field,
            format!("expected nanoseconds since the epoch, got {}", crate::trace::elide(&other.to_string())),
        )),
    }
}

/// `attributes` as a key → value map (first occurrence wins); entries that are not
/// `{key, value}` objects are an error naming the list.
fn attributes<'a>(owner: &str, value: Option<&'a Value>) -> Result<Vec<(&'a str, &'a Value)>, FieldError> {
    let field = format!("{owner}attributes");
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Some(list) = value.as_array() else {
        return Err(field_error(&field, "expected a list of {\"key\", \"value\"} objects".into()));
    };
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(list.len());
    for entry in list {
        let key = entry.get("key").and_then(Value::as_str);
        let (Some(key), Some(v)) = (key, entry.get("value")) else {
            return Err(field_error(
                &field,
                format!("expected {{\"key\", \"value\"}}, got {}", crate::trace::elide(&entry.to_string())),
            ));
        };
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, v));
        }
    }
    Ok(out)
}

impl SpanReader {
    fn new(purpose: Purpose) -> SpanReader {
        SpanReader { purpose, keys: KeyTally::default(), interner: Interner::default() }
    }

    fn read(mut self, mut records: JsonRecords<File>, skip_budget: u64) -> SpanFile {
        let name = records.name().to_string();
        let row_error = |line: u64, e: FieldError| TraceError::Row {
            file: name.clone(),
            line,
            field: (!e.field.is_empty()).then_some(e.field),
            message: e.message,
        };
        let mut spans = Vec::new();
        let mut errors = Vec::new();
        let mut fatal = false;
        while let Some(item) = records.next_record() {
            match item {
                Err(io) => {
                    errors.push(io);
                    fatal = true;
                }
                Ok(Err(e)) => {
                    fatal = e.fatal;
                    errors.push(row_error(e.line, field_error("", e.message)));
                }
                Ok(Ok(record)) => {
                    let value = match serde_json::from_slice::<Value>(&record.bytes) {
                        Ok(v) => v,
                        Err(e) => {
                            errors.push(row_error(
                                record.line,
                                field_error("", json_error_message(record.line, &e).1),
                            ));
                            continue;
                        }
                    };
                    // A JSON array of export requests reads like a sequence of them.
                    let requests: Vec<&Value> = match &value {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    let lines =
                        element_lines(&record.bytes, record.line, &["resourceSpans", "scopeSpans", "spans"]);
                    let mut span_index = 0;
                    for request in requests {
                        let outcome = self.request(request, record.line, &lines, &mut span_index, &mut spans);
                        for (line, e) in outcome.errors {
                            errors.push(row_error(line, e));
                        }
                        if let Some(line) = outcome.over_limit {
                            errors.push(row_error(
                                line,
                                field_error(
                                    "",
                                    format!(
                                        "more than {MAX_SPANS} GenAI inference spans: the OTLP importer sorts spans in memory and holds at most {MAX_SPANS}; split the file by time"
                                    ),
                                ),
                            ));
                            fatal = true;
                            break;
                        }
                    }
                }
            }
            if fatal || errors.len() as u64 > skip_budget {
                break;
            }
        }
        // Sorted by start; a stable sort keeps file order among equal starts.
        spans.sort_by_key(|s: &GenAiSpan| s.start_us);
        SpanFile { spans, errors, fatal, keys: self.keys }
    }

    /// Every span of one export request.
    fn request(
        &mut self,
        request: &Value,
        record_line: u64,
        lines: &[u64],
        span_index: &mut usize,
        spans: &mut Vec<GenAiSpan>,
    ) -> RequestOutcome {
        let mut outcome = RequestOutcome::default();
        let Some(request) = request.as_object() else {
            outcome.errors.push((
                record_line,
                field_error("", "expected an OTLP export request object ({\"resourceSpans\": […]})".into()),
            ));
            return outcome;
        };
        self.tally_keys(request, "", REQUEST_KEYS, REQUEST_KEYS);
        fn list(v: Option<&Value>) -> &[Value] {
            v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
        }
        for resource_spans in list(request.get("resourceSpans")) {
            let Some(resource_spans) = resource_spans.as_object() else { continue };
            self.tally_keys(
                resource_spans,
                "resourceSpans.",
                &["resource", "scopeSpans"],
                RESOURCE_SPANS_KEYS,
            );
            let mut service = None;
            if let Some(resource) = resource_spans.get("resource").and_then(Value::as_object) {
                self.tally_keys(resource, "resource.", &["attributes"], RESOURCE_KEYS);
                match attributes("resource.", resource.get("attributes")) {
                    Ok(attrs) => {
                        for (key, value) in attrs {
                            if key == "service.name" && self.purpose == Purpose::Trace {
                                service = any_value_text(value).map(|s| self.interner.get(s));
                            } else {
                                self.keys.ignored.add(&format!("resource.{key}"));
                            }
                        }
                    }
                    Err(e) => outcome.errors.push((record_line, e)),
                }
            }
            for scope_spans in list(resource_spans.get("scopeSpans")) {
                let Some(scope_spans) = scope_spans.as_object() else { continue };
                self.tally_keys(scope_spans, "scopeSpans.", &["spans"], SCOPE_SPANS_KEYS);
                for span in list(scope_spans.get("spans")) {
                    // The span's own line when the scan found every span, else the record's.
                    let line = lines.get(*span_index).copied().unwrap_or(record_line);
                    *span_index += 1;
                    match self.span(span, line, &service) {
                        Ok(Some(parsed)) => {
                            if spans.len() >= MAX_SPANS {
                                outcome.over_limit = Some(line);
                                return outcome;
                            }
                            spans.push(parsed);
                        }
                        Ok(None) => {}
                        Err(e) => outcome.errors.push((line, e)),
                    }
                }
            }
        }
        outcome
    }

    fn tally_keys(&mut self, object: &Map<String, Value>, prefix: &str, used: &[&str], known: &[&str]) {
        for key in object.keys() {
            if used.contains(&key.as_str()) {
                continue;
            }
            let name = format!("{prefix}{key}");
            if known.contains(&key.as_str()) {
                self.keys.ignored.add(&name);
            } else {
                self.keys.unknown.add(&name);
            }
        }
    }

    /// One span: `None` when it is not an inference (counted).
    fn span(
        &mut self,
        span: &Value,
        line: u64,
        service: &Option<Arc<str>>,
    ) -> Result<Option<GenAiSpan>, FieldError> {
        let Some(span) = span.as_object() else {
            return Err(field_error("", "expected a span object".into()));
        };
        let attrs = attributes("", span.get("attributes"))?;
        let attr = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let text = |key: &str| attr(key).and_then(any_value_text).filter(|s| !s.trim().is_empty());
        let count = |key: &str| attr(key).map(|v| any_value_count(key, v)).transpose();
        let has_usage = [
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
        ]
        .iter()
        .any(|k| attr(k).is_some());
        match text("gen_ai.operation.name") {
            Some(op) if INFERENCE_OPERATIONS.contains(&op.as_str()) => {}
            Some(op) => {
                self.keys.not_calls.add(&format!("span with gen_ai.operation.name = {op}"));
                return Ok(None);
            }
            None if attr("gen_ai.request.model").is_some() && has_usage => {}
            None => {
                self.keys.not_calls.add("span without gen_ai.operation.name");
                return Ok(None);
            }
        }
        let input = match count("gen_ai.usage.input_tokens")? {
            Some(n) => Some(n),
            None => count("gen_ai.usage.prompt_tokens")?,
        };
        let output = match count("gen_ai.usage.output_tokens")? {
            Some(n) => Some(n),
            None => count("gen_ai.usage.completion_tokens")?,
        };
        self.tally_keys(span, "span.", SPAN_USED, SPAN_KEYS);
        let used = match self.purpose {
            Purpose::Trace => TRACE_ATTRIBUTES,
            Purpose::Attempts => ATTEMPT_ATTRIBUTES,
        };
        for (key, _) in &attrs {
            if !used.contains(key) {
                self.keys.ignored.add(key);
            }
        }
        let start_ns = unix_nanos("startTimeUnixNano", span.get("startTimeUnixNano"))?;
        let end_ns = unix_nanos("endTimeUnixNano", span.get("endTimeUnixNano"))?;
        if end_ns < start_ns {
            return Err(field_error("endTimeUnixNano", "is before startTimeUnixNano".into()));
        }
        if start_ns > i64::MAX as u64 {
            return Err(field_error("startTimeUnixNano", "is beyond the year 2262".into()));
        }
        let id = |field: &str| -> Result<Option<&str>, FieldError> {
            match span.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok((!s.trim().is_empty()).then_some(s.as_str())),
                Some(other) => Err(field_error(
                    field,
                    format!("expected a hex id string, got {}", crate::trace::elide(&other.to_string())),
                )),
            }
        };
        let trace_id = id("traceId")?.unwrap_or("");
        let span_id = id("spanId")?.unwrap_or("");
        let parent = id("parentSpanId")?.map(|p| hash_str(&format!("{trace_id}/{p}")));
        let status_error = match span.get("status").and_then(|s| s.get("code")) {
            Some(Value::Number(n)) => n.as_u64() == Some(2),
            Some(Value::String(s)) => s == "STATUS_CODE_ERROR" || s == "2",
            _ => false,
        };
        let error_type = text("error.type");
        let failed = status_error || error_type.is_some();
        let missing = |field: &str| {
            field_error(field, "missing (a successful inference span must report its usage)".into())
        };
        let input_tokens = match input {
            Some(n) => n,
            None if failed => 0,
            None => return Err(missing("gen_ai.usage.input_tokens")),
        };
        let output_tokens = match output {
            Some(n) => n,
            None if failed => 0,
            None => return Err(missing("gen_ai.usage.output_tokens")),
        };
        let cached_tokens = count("gen_ai.usage.cache_read.input_tokens")?.unwrap_or(0);
        if cached_tokens > input_tokens {
            return Err(field_error(
                "gen_ai.usage.cache_read.input_tokens",
                format!("{cached_tokens} exceeds the input tokens {input_tokens}"),
            ));
        }
        let request_model = text("gen_ai.request.model").map(|s| self.interner.get(s));
        let response_model = text("gen_ai.response.model").map(|s| self.interner.get(s));
        let mut parsed = GenAiSpan {
            line,
            start_us: (start_ns / 1_000) as i64,
            end_us: (end_ns / 1_000) as i64,
            key: hash_str(&format!("{trace_id}/{span_id}")),
            parent,
            input_tokens,
            output_tokens,
            cached_tokens,
            request_model,
            response_model,
            failed,
            error_type,
            ..GenAiSpan::default()
        };
        match self.purpose {
            Purpose::Trace => {
                parsed.cache_write_tokens = count("gen_ai.usage.cache_creation.input_tokens")?.unwrap_or(0);
                parsed.max_tokens = count("gen_ai.request.max_tokens")?;
                parsed.conversation = text("gen_ai.conversation.id");
                parsed.service = service.clone();
            }
            Purpose::Attempts => {
                parsed.span_id = span_id.to_string();
                let provider = text("gen_ai.provider.name").or_else(|| text("gen_ai.system"));
                parsed.provider = provider.map(|s| self.interner.get(s));
                parsed.server_address = text("server.address").map(|s| self.interner.get(s));
                parsed.http_status = match count("http.response.status_code")? {
                    Some(code) if (100..=599).contains(&code) => Some(code as u16),
                    Some(code) => {
                        return Err(field_error(
                            "http.response.status_code",
                            format!("{code} is not an HTTP status"),
                        ))
                    }
                    None => None,
                };
                if let Some(v) = attr("gen_ai.response.time_to_first_chunk") {
                    let ttft_us =
                        (any_value_seconds("gen_ai.response.time_to_first_chunk", v)? * 1e6).round() as u64;
                    if ttft_us > end_ns.saturating_sub(start_ns) / 1_000 + 1 {
                        return Err(field_error(
                            "gen_ai.response.time_to_first_chunk",
                            "is longer than the span".into(),
                        ));
                    }
                    parsed.ttft_us = Some(ttft_us);
                }
            }
        }
        Ok(Some(parsed))
    }
}

#[derive(Default)]
struct RequestOutcome {
    errors: Vec<(u64, FieldError)>,
    /// The line of the first span beyond [`MAX_SPANS`].
    over_limit: Option<u64>,
}

/// The trace importer over OTLP spans: each inference span is a request at its start; a span
/// whose parent span is an imported inference that ended before it started is its closed-loop
/// child (the gap its think time).
pub(super) struct OtelSource {
    records: Option<JsonRecords<File>>,
    skip_budget: u64,
    errors: VecDeque<TraceError>,
    /// The last queued error is fatal.
    last_fatal: bool,
    spans: std::vec::IntoIter<GenAiSpan>,
    parents: HashSet<u64>,
    keys: KeyTally,
    fatal: bool,
}

impl OtelSource {
    pub(super) fn open(path: &Path, skip_budget: u64) -> Result<OtelSource, TraceError> {
        Ok(OtelSource {
            records: Some(JsonRecords::open(path)?),
            skip_budget,
            errors: VecDeque::new(),
            last_fatal: false,
            spans: Vec::new().into_iter(),
            parents: HashSet::new(),
            keys: KeyTally::default(),
            fatal: false,
        })
    }

    fn load(&mut self) {
        let Some(records) = self.records.take() else { return };
        let file = SpanReader::new(Purpose::Trace).read(records, self.skip_budget);
        self.parents = file.spans.iter().filter_map(|s| s.parent).collect();
        self.errors = file.errors.into();
        self.last_fatal = file.fatal;
        self.keys = file.keys;
        self.spans = file.spans.into_iter();
    }
}

impl RawSource for OtelSource {
    fn next_raw(&mut self) -> Option<Result<RawRow, TraceError>> {
        self.load();
        if let Some(error) = self.errors.pop_front() {
            self.fatal = self.errors.is_empty() && self.last_fatal;
            return Some(Err(error));
        }
        self.fatal = false;
        let span = self.spans.next()?;
        let is_parent = self.parents.contains(&span.key);
        Some(Ok(RawRow {
            time_us: span.start_us,
            line: span.line,
            input_tokens: span.input_tokens,
            output_tokens: span.output_tokens,
            cached_input_tokens: span.cached_tokens,
            cache_write_tokens: span.cache_write_tokens,
            max_tokens: span.max_tokens,
            model: span.request_model.or(span.response_model).map(|m| m.to_string()),
            label: span.service.map(|s| s.to_string()),
            session: span.conversation,
            failed: span.failed,
            link: Some(SpanLink { key: span.key, parent: span.parent, end_us: span.end_us, is_parent }),
            class: None,
        }))
    }

    fn time_field(&self) -> &str {
        "startTimeUnixNano"
    }

    fn keys(&self) -> Option<&KeyTally> {
        Some(&self.keys)
    }

    fn fatal(&self) -> bool {
        self.fatal
    }
}
