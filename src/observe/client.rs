//! One attempt over real HTTP: the request a trace row becomes (a prompt of about its input
//! tokens, `max_tokens`, streaming on, the `x-routesim-*` token headers, the API key), the
//! response streamed to time its first token, and what it meant ([`Sent`]): the status, error
//! type, `retry-after`, rate-limit headers, usage, and the [`FailureKind`] a policy reacts to.
//!
//! The mapping: 2xx streamed to its end → success; 429 → rate limited (with `retry-after`);
//! 529, or 503 from an OpenAI-style endpoint → overloaded; 408 → timeout; 413 → exceeds limit;
//! other 5xx → server error; a stream broken after its first token (an `error` event, a cut
//! connection, no end event) → mid-stream, before it → server error; the policy's timeouts →
//! timeout / slow first token. Cannot connect, 401/403 and other 4xx are *fatal*: the run stops
//! (a wrong URL or key would otherwise be observed as a provider's behaviour). A malformed
//! response is a failed attempt with `error_type = "invalid_response"`, never a panic.
//!
//! It must not know about policies, the replay or the attempt log.

use super::endpoint::{ApiKey, EndpointSpec, Protocol};
use super::sse::{SseEvent, SseParser};
use crate::provider::FailureKind;
use crate::trace::Request;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Largest error body read (the rest is not needed to know the error's type).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Largest non-streamed answer read.
const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Where one attempt goes.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub endpoint: &'a EndpointSpec,
    pub key: Option<&'a ApiKey>,
    /// The model id sent.
    pub model: &'a str,
}

/// The time limits of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The policy's first-token timeout.
    pub first_token_timeout: Option<Duration>,
    /// The policy's total timeout.
    pub timeout: Option<Duration>,
    /// The longest any attempt may take, whatever the policy says (`--attempt-timeout`).
    pub safety: Duration,
}

/// Token counts a response reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    /// The whole prompt (Anthropic: uncached + cache reads + cache writes).
    pub input_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// What one attempt saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub started: Instant,
    pub first_token: Option<Instant>,
    pub ended: Instant,
    /// The HTTP status; 0 when no response arrived (timeout, transport error).
    pub status: u16,
    /// `None` for a success; the provider's error type, or ours (`timeout`, `stream_broken`,
    /// `invalid_response`, `transport_error`).
    pub error_type: Option<String>,
    pub retry_after: Option<Duration>,
    /// The rate-limit headers as sent (lower-case names).
    pub headers: BTreeMap<String, String>,
    pub usage: ReportedUsage,
    /// Characters of answer text streamed.
    pub streamed_chars: u64,
    pub failure: Option<FailureKind>,
    /// Stops the run: the endpoint cannot be used as configured.
    pub fatal: Option<String>,
    /// The response did not follow its protocol (reported on stderr, once per endpoint).
    pub malformed: Option<String>,
}

impl Sent {
    fn new(started: Instant) -> Sent {
        Sent {
            started,
            first_token: None,
            ended: started,
            status: 0,
            error_type: None,
            retry_after: None,
            headers: BTreeMap::new(),
            usage: ReportedUsage::default(),
            streamed_chars: 0,
            failure: None,
            fatal: None,
            malformed: None,
        }
    }

    fn fail(&mut self, kind: FailureKind, error_type: &str) {
        self.failure = Some(kind);
        if self.error_type.is_none() {
            self.error_type = Some(error_type.to_string());
        }
    }

    /// Output tokens: as reported, else estimated from the text streamed (4 characters each).
    pub fn output_tokens(&self) -> u64 {
        self.usage.output_tokens.unwrap_or_else(|| self.streamed_chars.div_ceil(4))
    }
}

/// The longest prompt sent (a million tokens, the largest context windows): a longer row
/// sends this much text, and `x-routesim-input-tokens` still says its real size.
pub const MAX_PROMPT_TOKENS: u64 = 1_000_000;

/// A prompt of about `tokens` tokens (four characters each, as providers estimate English),
/// at most [`MAX_PROMPT_TOKENS`].
pub fn prompt_text(tokens: u64) -> String {
    " tok".repeat(tokens.clamp(1, MAX_PROMPT_TOKENS) as usize)
}

/// The JSON body of `request` for `protocol`.
pub fn request_body(protocol: Protocol, model: &str, request: &Request) -> String {
    let messages = serde_json::json!([{ "role": "user", "content": prompt_text(request.input_tokens) }]);
    let max_tokens = request.max_tokens.max(1);
    let body = match protocol {
        Protocol::Anthropic => serde_json::json!({
            "model": model, "max_tokens": max_tokens, "stream": true, "messages": messages,
        }),
        Protocol::OpenAi => serde_json::json!({
            "model": model, "max_tokens": max_tokens, "stream": true,
            "stream_options": { "include_usage": true }, "messages": messages,
        }),
    };
    body.to_string()
}

fn is_rate_limit_header(name: &str) -> bool {
    name.starts_with("anthropic-ratelimit-")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("retry-after")
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds, fractions allowed; an HTTP date
/// is not used).
pub fn retry_after(headers: &BTreeMap<String, String>) -> Option<Duration> {
    let parse = |name: &str, unit_s: f64| {
        headers
            .get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| crate::validate::is_non_negative(*v) && *v < 1e9)
            .map(|v| Duration::from_secs_f64(v * unit_s))
    };
    parse("retry-after-ms", 1e-3).or_else(|| parse("retry-after", 1.0))
}

/// The error type of an error body: Anthropic's `error.type`, OpenAI's `error.code` (else
/// `error.type`); with the message.
fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let error = value.get("error");
    let text = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_str).map(str::to_string);
    let kind = match value.get("type").and_then(serde_json::Value::as_str) {
        Some("error") => text(error.and_then(|e| e.get("type"))),
        _ => text(error.and_then(|e| e.get("code"))).or_else(|| text(error.and_then(|e| e.get("type")))),
    };
    (kind, text(error.and_then(|e| e.get("message"))))
}

/// What to do with a non-2xx status.
fn classify_status(protocol: Protocol, status: u16) -> Result<FailureKind, ()> {
    match status {
        429 => Ok(FailureKind::RateLimited),
        529 => Ok(FailureKind::Overloaded),
        503 if protocol == Protocol::OpenAi => Ok(FailureKind::Overloaded),
        408 => Ok(FailureKind::Timeout),
        413 => Ok(FailureKind::ExceedsLimit),
        500..=599 => Ok(FailureKind::ServerError),
        _ => Err(()),
    }
}

/// Sends one attempt of `request` and reads its answer. `cancelled` becomes true when the run
/// is over: the attempt then ends at once (as [`FailureKind::Cancelled`]).
pub async fn send(
    client: &reqwest::Client,
    target: Target<'_>,
    request: &Request,
    limits: Limits,
    mut cancelled: tokio::sync::watch::Receiver<bool>,
) -> Sent {
    let started = Instant::now();
    let mut sent = Sent::new(started);
    let total_deadline = started + limits.timeout.map_or(limits.safety, |t| t.min(limits.safety));
    let first_deadline = limits.first_token_timeout.map(|t| started + t);
    let deadline = |first_seen: bool| match first_deadline {
        Some(first) if !first_seen => first.min(total_deadline),
        _ => total_deadline,
    };
    // Which limit ran out at `at`.
    let timed_out = |sent: &mut Sent, first_seen: bool| {
        let first_token_limit = !first_seen && first_deadline.is_some_and(|f| f <= total_deadline);
        if first_token_limit {
            sent.fail(FailureKind::SlowFirstToken, "slow_first_token");
        } else {
            sent.fail(FailureKind::Timeout, "timeout");
        }
    };

    let mut builder = client
        .post(target.endpoint.request_url())
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("x-routesim-input-tokens", request.input_tokens.to_string())
        .header("x-routesim-cached-input-tokens", request.cached_input_tokens.to_string())
        .header("x-routesim-output-tokens", request.output_tokens.to_string());
    let protocol = target.endpoint.protocol;
    if protocol == Protocol::Anthropic {
        builder = builder.header("anthropic-version", "2023-06-01");
    }
    if let Some(key) = target.key {
        let (name, bearer) = match protocol {
            Protocol::Anthropic => ("x-api-key", false),
            Protocol::OpenAi => ("authorization", true),
        };
        match key.header_value(bearer) {
            Ok(value) => builder = builder.header(name, value),
            Err(e) => {
                sent.fatal = Some(e.to_string());
                sent.fail(FailureKind::ServerError, "invalid_api_key");
                return sent;
            }
        }
    }
    let builder = builder.body(request_body(protocol, target.model, request));

    let response = tokio::select! {
        r = builder.send() => r,
        () = tokio::time::sleep_until(deadline(false).into()) => {
            timed_out(&mut sent, false);
            sent.ended = Instant::now();
            return sent;
        }
        _ = cancelled.wait_for(|c| *c) => {
            sent.fail(FailureKind::Cancelled, "cancelled");
            sent.ended = Instant::now();
            return sent;
        }
    };
    let mut response = match response {
        Ok(response) => response,
        Err(e) => {
            sent.ended = Instant::now();
            if e.is_connect() {
                sent.fatal =
                    Some(format!("cannot connect to {}: {}", target.endpoint.request_url(), error_chain(&e)));
                sent.fail(FailureKind::ServerError, "connect_error");
            } else if e.is_timeout() {
                timed_out(&mut sent, false);
            } else {
                sent.malformed = Some(error_chain(&e));
                sent.fail(FailureKind::ServerError, "transport_error");
            }
            return sent;
        }
    };
    sent.status = response.status().as_u16();
    for (name, value) in response.headers() {
        let name = name.as_str().to_ascii_lowercase();
        if is_rate_limit_header(&name) {
            if let Ok(value) = value.to_str() {
                sent.headers.insert(name, value.to_string());
            }
        }
    }
    sent.retry_after = retry_after(&sent.headers);

    if !response.status().is_success() {
        let mut body = Vec::new();
        let _ =
            read_body(&mut response, &mut body, MAX_ERROR_BODY_BYTES, deadline(false), &mut cancelled).await;
        sent.ended = Instant::now();
        let (kind, message) = error_of(&body);
        sent.error_type = kind.clone();
        match classify_status(protocol, sent.status) {
            Ok(failure) => {
                let fallback = match failure {
                    FailureKind::RateLimited => "rate_limit_error",
                    FailureKind::Overloaded => "overloaded_error",
                    FailureKind::Timeout => "timeout",
                    FailureKind::ExceedsLimit => "request_too_large",
                    _ => "api_error",
                };
                sent.fail(failure, fallback);
            }
            Err(()) => {
                let message = message.map(|m| m.chars().take(300).collect::<String>()).unwrap_or_default();
                let message = target.key.map_or(message.clone(), |k| k.redact(&message));
                let hint = if matches!(sent.status, 401 | 403) {
                    " (check the scenario's api_key_env for this deployment)"
                } else {
                    ""
                };
                sent.fatal = Some(format!(
                    "{} answered {} {}{}{hint}",
                    target.endpoint.request_url(),
                    sent.status,
                    kind.as_deref().unwrap_or("(no error type)"),
                    if message.is_empty() { String::new() } else { format!(": {message}") }
                ));
                sent.fail(FailureKind::ServerError, "client_error");
            }
        }
        return sent;
    }

    let streamed = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    if streamed {
        read_stream(&mut sent, &mut response, protocol, &deadline, &timed_out, &mut cancelled).await;
    } else {
        // An endpoint that ignores `stream: true` answers whole: its first token is the answer.
        let mut body = Vec::new();
        match read_body(&mut response, &mut body, MAX_JSON_BODY_BYTES, deadline(false), &mut cancelled).await
        {
            BodyRead::Done => {
                sent.ended = Instant::now();
                if let Err(e) = read_whole_answer(&mut sent, protocol, &body) {
                    sent.malformed = Some(e.to_string());
                    sent.fail(FailureKind::ServerError, "invalid_response");
                } else {
                    sent.first_token = Some(sent.ended);
                }
            }
            BodyRead::TimedOut => timed_out(&mut sent, false),
            BodyRead::Cancelled => sent.fail(FailureKind::Cancelled, "cancelled"),
            BodyRead::Broken(message) => {
                sent.malformed = Some(message);
                sent.fail(FailureKind::ServerError, "stream_broken");
            }
        }
    }
    sent.ended = Instant::now();
    sent
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

enum BodyRead {
    Done,
    TimedOut,
    Cancelled,
    Broken(String),
}

/// Reads the body into `out`, keeping at most `max` bytes (the rest is drained), until
/// `deadline`.
async fn read_body(
    response: &mut reqwest::Response,
    out: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
    cancelled: &mut tokio::sync::watch::Receiver<bool>,
) -> BodyRead {
    loop {
        let chunk = tokio::select! {
            c = response.chunk() => c,
            () = tokio::time::sleep_until(deadline.into()) => return BodyRead::TimedOut,
            _ = cancelled.wait_for(|c| *c) => return BodyRead::Cancelled,
        };
        match chunk {
            Ok(Some(bytes)) => {
                let room = max.saturating_sub(out.len());
                out.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok(None) => return BodyRead::Done,
            Err(e) => return BodyRead::Broken(error_chain(&e)),
        }
    }
}

/// Reads an SSE answer to its end, timing the first token.
async fn read_stream(
    sent: &mut Sent,
    response: &mut reqwest::Response,
    protocol: Protocol,
    deadline: &impl Fn(bool) -> Instant,
    timed_out: &impl Fn(&mut Sent, bool),
    cancelled: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = response.chunk() => c,
            () = tokio::time::sleep_until(deadline(sent.first_token.is_some()).into()) => {
                timed_out(sent, sent.first_token.is_some());
                return;
            }
            _ = cancelled.wait_for(|c| *c) => {
                sent.fail(FailureKind::Cancelled, "cancelled");
                return;
            }
        };
        let arrived = Instant::now();
        let bytes = match chunk {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                // The stream ended without its end event.
                broken(sent, "stream_broken");
                return;
            }
            Err(_) => {
                broken(sent, "stream_broken");
                return;
            }
        };
        if let Err(e) = parser.push(&bytes, &mut events) {
            sent.malformed = Some(e.to_string());
            broken(sent, "invalid_response");
            return;
        }
        for event in events.drain(..) {
            match read_event(sent, protocol, &event, arrived) {
                Ok(Flow::More) => {}
                Ok(Flow::Done) => return,
                Err(e) => {
                    sent.malformed = Some(e.to_string());
                    broken(sent, "invalid_response");
                    return;
                }
            }
        }
    }
}

/// A stream that ended badly: mid-stream after a first token, a server error before.
fn broken(sent: &mut Sent, error_type: &str) {
    if sent.first_token.is_some() {
        sent.fail(FailureKind::MidStream, error_type);
    } else {
        sent.fail(FailureKind::ServerError, error_type);
    }
}

enum Flow {
    More,
    Done,
}

/// An answer the client cannot read (recorded as the attempt's `malformed`). The quoted data
/// is elided to its first 120 characters.
#[derive(Debug, thiserror::Error)]
enum MalformedAnswer {
    #[error("an event's data is not JSON ({source}): {}", elide(.data))]
    EventNotJson { source: serde_json::Error, data: String },
    #[error("an event without a type: {}", elide(.data))]
    EventWithoutType { data: String },
    #[error("the answer is not JSON: {0}")]
    AnswerNotJson(serde_json::Error),
    /// `field` is the JSON path the answer lacks (`usage`, `usage.input_tokens`).
    #[error("the answer has no {field}")]
    Missing { field: &'static str },
}

fn u64_at(value: &serde_json::Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(value, |v, key| v.get(key)).and_then(serde_json::Value::as_u64)
}

/// One SSE event of an answer.
fn read_event(
    sent: &mut Sent,
    protocol: Protocol,
    event: &SseEvent,
    arrived: Instant,
) -> Result<Flow, MalformedAnswer> {
    if protocol == Protocol::OpenAi && event.data.trim() == "[DONE]" {
        return Ok(Flow::Done);
    }
    let data: serde_json::Value = serde_json::from_str(&event.data)
        .map_err(|source| MalformedAnswer::EventNotJson { source, data: event.data.clone() })?;
    match protocol {
        Protocol::Anthropic => match data.get("type").and_then(serde_json::Value::as_str) {
            Some("message_start") => {
                let usage = |key: &str| u64_at(&data, &["message", "usage", key]);
                if let Some(uncached) = usage("input_tokens") {
                    let cached = usage("cache_read_input_tokens").unwrap_or(0);
                    let written = usage("cache_creation_input_tokens").unwrap_or(0);
                    sent.usage.input_tokens = Some(uncached + cached + written);
                    sent.usage.cached_input_tokens = Some(cached);
                }
            }
            Some("content_block_delta") => {
                sent.first_token.get_or_insert(arrived);
                let text = data.get("delta").and_then(|d| d.get("text")).and_then(serde_json::Value::as_str);
                sent.streamed_chars += text.map_or(0, |t| t.chars().count() as u64);
            }
            Some("message_delta") => {
                if let Some(output) = u64_at(&data, &["usage", "output_tokens"]) {
                    sent.usage.output_tokens = Some(output);
                }
            }
            Some("message_stop") => return Ok(Flow::Done),
            Some("error") => {
                let kind = data.get("error").and_then(|e| e.get("type")).and_then(serde_json::Value::as_str);
                sent.error_type = Some(kind.unwrap_or("error").to_string());
                if sent.first_token.is_some() {
                    sent.fail(FailureKind::MidStream, "error");
                } else if kind == Some("overloaded_error") {
                    sent.fail(FailureKind::Overloaded, "overloaded_error");
                } else {
                    sent.fail(FailureKind::ServerError, "api_error");
                }
                return Ok(Flow::Done);
            }
            Some(_) => {} // content_block_start/stop, ping
            None => return Err(MalformedAnswer::EventWithoutType { data: event.data.clone() }),
        },
        Protocol::OpenAi => {
            if let Some(error) = data.get("error") {
                let kind = error
                    .get("code")
                    .and_then(serde_json::Value::as_str)
                    .or_else(|| error.get("type").and_then(serde_json::Value::as_str));
                sent.error_type = Some(kind.unwrap_or("error").to_string());
                broken(sent, "error");
                return Ok(Flow::Done);
            }
            let content = data
                .get("choices")
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("delta"))
                .and_then(|d| d.get("content"))
                .and_then(serde_json::Value::as_str);
            if let Some(text) = content.filter(|t| !t.is_empty()) {
                sent.first_token.get_or_insert(arrived);
                sent.streamed_chars += text.chars().count() as u64;
            }
            if let Some(usage) = data.get("usage").filter(|u| u.is_object()) {
                sent.usage.input_tokens = u64_at(usage, &["prompt_tokens"]);
                sent.usage.cached_input_tokens = u64_at(usage, &["prompt_tokens_details", "cached_tokens"]);
                sent.usage.output_tokens = u64_at(usage, &["completion_tokens"]);
            }
        }
    }
    Ok(Flow::More)
}

/// A whole (non-streamed) answer's usage and text.
fn read_whole_answer(sent: &mut Sent, protocol: Protocol, body: &[u8]) -> Result<(), MalformedAnswer> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(MalformedAnswer::AnswerNotJson)?;
    match protocol {
        Protocol::Anthropic => {
            let usage = |key: &str| u64_at(&value, &["usage", key]);
            let uncached =
                usage("input_tokens").ok_or(MalformedAnswer::Missing { field: "usage.input_tokens" })?;
            let cached = usage("cache_read_input_tokens").unwrap_or(0);
            sent.usage.input_tokens =
                Some(uncached + cached + usage("cache_creation_input_tokens").unwrap_or(0));
            sent.usage.cached_input_tokens = Some(cached);
            sent.usage.output_tokens = usage("output_tokens");
            let blocks = value.get("content").and_then(serde_json::Value::as_array);
            sent.streamed_chars = blocks.map_or(0, |b| {
                b.iter()
                    .filter_map(|b| b.get("text").and_then(serde_json::Value::as_str))
                    .map(|t| t.chars().count() as u64)
                    .sum()
            });
        }
        Protocol::OpenAi => {
            let usage = value.get("usage").ok_or(MalformedAnswer::Missing { field: "usage" })?;
            sent.usage.input_tokens = u64_at(usage, &["prompt_tokens"]);
            sent.usage.cached_input_tokens = u64_at(usage, &["prompt_tokens_details", "cached_tokens"]);
            sent.usage.output_tokens = u64_at(usage, &["completion_tokens"]);
            let text = value
                .get("choices")
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("message"))
                .and_then(|m| m.get("content"))
                .and_then(serde_json::Value::as_str);
            sent.streamed_chars = text.map_or(0, |t| t.chars().count() as u64);
        }
    }
    Ok(())
}

fn elide(text: &str) -> String {
    match text.char_indices().nth(120) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds_and_accepts_fractions() {
        let headers =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(retry_after(&headers(&[("retry-after", "3")])), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(&[("retry-after", "0.25")])), Some(Duration::from_millis(250)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1"), ("retry-after-ms", "400")])),
            Some(Duration::from_millis(400))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
    }

    #[test]
    fn error_types_come_from_either_protocol_s_body() {
        let anthropic = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        assert_eq!(error_of(anthropic), (Some("rate_limit_error".into()), Some("slow down".into())));
        let openai =
            br#"{"error":{"message":"m","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(error_of(openai).0.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(error_of(b"<html>"), (None, None));
        assert_eq!(classify_status(Protocol::OpenAi, 503), Ok(FailureKind::Overloaded));
        assert_eq!(classify_status(Protocol::Anthropic, 503), Ok(FailureKind::ServerError));
        assert_eq!(classify_status(Protocol::Anthropic, 401), Err(()));
    }
}
