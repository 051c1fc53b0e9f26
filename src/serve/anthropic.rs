//! The Anthropic Messages API encoding (`POST /v1/messages`): the request body, error bodies
//! (`{"type":"error","error":{"type":"rate_limit_error",…}}`; 429, 529 `overloaded_error`,
//! 500 `api_error`), the `anthropic-ratelimit-*` headers (limit, remaining, reset as RFC 3339
//! per axis) and the SSE stream: `message_start`, `content_block_start`, `ping`,
//! `content_block_delta`…, `content_block_stop`, `message_delta` (stop reason and output usage),
//! `message_stop`; a broken stream ends with an `error` event (`overloaded_error`).
//!
//! Usage follows Anthropic's split: `input_tokens` are the uncached prompt tokens,
//! `cache_read_input_tokens` the cache reads. It must not know about the provider model or
//! sockets.

use super::clock::ScaledClock;
use super::protocol::{
    json_object, json_string, optional_u64, text_chars, AnswerInfo, ApiError, Encoding, FieldProblem,
    RequestBody, RequestError,
};
use crate::limiter::Remaining;
use crate::ratelimit_headers::{reported_axis, Field, HEADER_AXES};
use crate::time::Duration;

/// The Anthropic Messages API.
pub struct Anthropic;

impl Anthropic {
    fn usage(answer: &AnswerInfo, output_tokens: u64) -> String {
        format!(
            "{{\"input_tokens\":{},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":{},\"output_tokens\":{}}}",
            answer.input_tokens.saturating_sub(answer.cached_input_tokens),
            answer.cached_input_tokens,
            output_tokens
        )
    }

    fn stop_reason(answer: &AnswerInfo) -> &'static str {
        if answer.truncated {
            "max_tokens"
        } else {
            "end_turn"
        }
    }
}

fn event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

impl Encoding for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn parse(&self, body: &[u8]) -> Result<RequestBody, RequestError> {
        let object = json_object(body)?;
        let model = match object.get("model") {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(RequestError::field("model", FieldProblem::NonEmptyString)),
        };
        let max_tokens = match optional_u64(&object, "max_tokens")? {
            Some(0) => return Err(RequestError::field("max_tokens", FieldProblem::AtLeastOne)),
            Some(n) => n,
            None => return Err(RequestError::field("max_tokens", FieldProblem::Required)),
        };
        let messages = match object.get("messages") {
            Some(m @ serde_json::Value::Array(_)) => m,
            _ => return Err(RequestError::field("messages", FieldProblem::Array)),
        };
        let stream = match object.get("stream") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::field("stream", FieldProblem::Boolean)),
        };
        let system = object.get("system").map_or(0, text_chars);
        Ok(RequestBody {
            model,
            stream,
            max_tokens: Some(max_tokens),
            prompt_chars: system + text_chars(messages),
            include_usage: true,
        })
    }

    fn error(&self, error: ApiError, message: &str) -> (u16, String) {
        let (status, kind) = match error {
            ApiError::InvalidRequest => (400, "invalid_request_error"),
            ApiError::NotFound => (404, "not_found_error"),
            ApiError::MethodNotAllowed => (405, "invalid_request_error"),
            ApiError::RequestTooLarge => (413, "request_too_large"),
            ApiError::RateLimited { .. } => (429, "rate_limit_error"),
            ApiError::Overloaded => (529, "overloaded_error"),
            ApiError::Server => (500, "api_error"),
        };
        (
            status,
            format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":{}}}}}",
                json_string(message)
            ),
        )
    }

    fn rate_limit_headers(&self, state: &Remaining, clock: &ScaledClock) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        let now = std::time::SystemTime::now();
        let reset = |full_in: Duration| rfc3339(now + clock.wall_duration(full_in));
        for names in HEADER_AXES {
            if let Some(a) = reported_axis(state, names.meter) {
                headers.push((names.anthropic_name(Field::Limit), a.limit.to_string()));
                headers.push((names.anthropic_name(Field::Remaining), a.remaining.to_string()));
                headers.push((names.anthropic_name(Field::Reset), reset(a.reset)));
            }
        }
        headers
    }

    fn stream_start(&self, answer: &AnswerInfo) -> String {
        let start = format!(
            "{{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{}}}}}",
            answer.id,
            json_string(&answer.model),
            Anthropic::usage(answer, 1)
        );
        let mut out = event("message_start", &start);
        out.push_str(&event(
            "content_block_start",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        ));
        out.push_str(&event("ping", "{\"type\":\"ping\"}"));
        out
    }

    fn stream_delta(&self, _answer: &AnswerInfo, text: &str) -> String {
        event(
            "content_block_delta",
            &format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                json_string(text)
            ),
        )
    }

    fn stream_end(&self, answer: &AnswerInfo) -> String {
        let mut out = event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
        out.push_str(&event(
            "message_delta",
            &format!(
                "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}",
                Anthropic::stop_reason(answer),
                answer.output_tokens
            ),
        ));
        out.push_str(&event("message_stop", "{\"type\":\"message_stop\"}"));
        out
    }

    fn stream_broken(&self, _answer: &AnswerInfo) -> Option<String> {
        // What Anthropic's streams carry when they fail after they started.
        Some(event(
            "error",
            "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
        ))
    }

    fn message(&self, answer: &AnswerInfo, text: &str) -> String {
        format!(
            "{{\"id\":\"msg_{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\"text\":{}}}],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":{}}}",
            answer.id,
            json_string(&answer.model),
            json_string(text),
            Anthropic::stop_reason(answer),
            Anthropic::usage(answer, answer.output_tokens)
        )
    }
}

/// A wall-clock time as RFC 3339 in UTC, to the second (`2026-01-02T03:04:05Z`).
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC (a leap day in a century leap year).
        assert_eq!(rfc3339(at(951_827_696)), "2000-02-29T12:34:56Z");
        assert_eq!(rfc3339(at(1_767_225_599)), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn requests_without_max_tokens_or_messages_are_refused_by_field() {
        let e = Anthropic.parse(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert!(matches!(e, RequestError::Field { field: "max_tokens", problem: FieldProblem::Required }));
        assert_eq!(e.to_string(), "max_tokens: field required");
        let e = Anthropic.parse(br#"{"model":"m","max_tokens":5}"#).unwrap_err();
        assert_eq!(e.to_string(), "messages: an array is required");
        let e = Anthropic.parse(br#"{"model":"m","max_tokens":-1,"messages":[]}"#).unwrap_err();
        assert_eq!(e.to_string(), "max_tokens: expected a non-negative integer");
        let e = Anthropic.parse(b"[1]").unwrap_err();
        assert_eq!(e.to_string(), "the request body must be a JSON object");
        let e = Anthropic.parse(b"{not json").unwrap_err();
        assert!(e.to_string().starts_with("the request body is not valid JSON: "), "{e}");
        let ok = Anthropic
            .parse(br#"{"model":"m","max_tokens":5,"system":"abcd","messages":[{"role":"user","content":"efgh"}],"stream":true}"#)
            .unwrap();
        assert_eq!((ok.max_tokens, ok.prompt_chars, ok.stream), (Some(5), 8, true));
    }
}
