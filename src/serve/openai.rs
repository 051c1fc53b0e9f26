//! The OpenAI Chat Completions encoding (`POST /v1/chat/completions`): the request body,
//! error bodies (`{"error":{"message","type","param","code"}}`; 429 `rate_limit_exceeded`,
//! 503 for an overloaded server, 500), the `x-ratelimit-*` headers (requests from RPM, tokens
//! from TPM; resets as durations like `6m0s`) and the stream of `chat.completion.chunk`
//! `data:` lines ending with `data: [DONE]`, with a usage chunk when the client asked for it
//! (`stream_options.include_usage`). A broken stream is cut without `[DONE]`.
//!
//! Usage follows OpenAI's split: `prompt_tokens` include the cached ones
//! (`prompt_tokens_details.cached_tokens`). It must not know about the provider model or
//! sockets.

use super::clock::ScaledClock;
use super::protocol::{
    json_object, json_string, optional_u64, text_chars, AnswerInfo, ApiError, Encoding, FieldProblem,
    RequestBody, RequestError,
};
use crate::limiter::Axis;
use crate::limiter::Remaining;
use crate::ratelimit_headers::{reported_axis, Field, HEADER_AXES};

/// The OpenAI Chat Completions API.
pub struct OpenAi;

impl OpenAi {
    fn usage(answer: &AnswerInfo) -> String {
        format!(
            "{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{}}}}}",
            answer.input_tokens,
            answer.output_tokens,
            answer.input_tokens.saturating_add(answer.output_tokens),
            answer.cached_input_tokens
        )
    }

    fn chunk(answer: &AnswerInfo, choices: &str, usage: Option<&str>) -> String {
        let usage = usage.map(|u| format!(",\"usage\":{u}")).unwrap_or_default();
        format!(
            "data: {{\"id\":\"chatcmpl-{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"choices\":[{choices}]{usage}}}\n\n",
            answer.id,
            answer.created_s,
            json_string(&answer.model)
        )
    }

    fn finish_reason(answer: &AnswerInfo) -> &'static str {
        if answer.truncated {
            "length"
        } else {
            "stop"
        }
    }
}

impl Encoding for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn parse(&self, body: &[u8]) -> Result<RequestBody, RequestError> {
        let object = json_object(body)?;
        let model = match object.get("model") {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(RequestError::field("model", FieldProblem::NonEmptyString)),
        };
        let messages = match object.get("messages") {
            Some(m @ serde_json::Value::Array(_)) => m,
            _ => return Err(RequestError::field("messages", FieldProblem::Array)),
        };
        let max_tokens = match optional_u64(&object, "max_completion_tokens")? {
            Some(n) => Some(n),
            None => optional_u64(&object, "max_tokens")?,
        };
        if max_tokens == Some(0) {
            return Err(RequestError::field("max_tokens", FieldProblem::AtLeastOne));
        }
        let stream = match object.get("stream") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::field("stream", FieldProblem::Boolean)),
        };
        let include_usage = object
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok(RequestBody { model, stream, max_tokens, prompt_chars: text_chars(messages), include_usage })
    }

    fn error(&self, error: ApiError, message: &str) -> (u16, String) {
        let (status, kind, code) = match error {
            ApiError::InvalidRequest => (400, "invalid_request_error", "null"),
            ApiError::NotFound => (404, "invalid_request_error", "\"unknown_url\""),
            ApiError::MethodNotAllowed => (405, "invalid_request_error", "null"),
            ApiError::RequestTooLarge => (413, "invalid_request_error", "\"request_too_large\""),
            ApiError::RateLimited { axis } => {
                let kind = match axis.and_then(Axis::meter) {
                    Some(meter) if meter.is_token_count() => "tokens",
                    _ => "requests",
                };
                (429, kind, "\"rate_limit_exceeded\"")
            }
            ApiError::Overloaded => (503, "server_error", "\"overloaded\""),
            ApiError::Server => (500, "server_error", "null"),
        };
        (
            status,
            format!(
                "{{\"error\":{{\"message\":{},\"type\":\"{kind}\",\"param\":null,\"code\":{code}}}}}",
                json_string(message)
            ),
        )
    }

    fn rate_limit_headers(&self, state: &Remaining, clock: &ScaledClock) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        for names in HEADER_AXES {
            let (Some(limit), Some(remaining), Some(reset)) = (
                names.openai_name(Field::Limit),
                names.openai_name(Field::Remaining),
                names.openai_name(Field::Reset),
            ) else {
                continue;
            };
            if let Some(a) = reported_axis(state, names.meter) {
                headers.push((limit, a.limit.to_string()));
                headers.push((remaining, a.remaining.to_string()));
                headers.push((reset, go_duration(clock.wall_duration(a.reset))));
            }
        }
        headers
    }

    fn stream_start(&self, answer: &AnswerInfo) -> String {
        OpenAi::chunk(
            answer,
            "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}",
            None,
        )
    }

    fn stream_delta(&self, answer: &AnswerInfo, text: &str) -> String {
        OpenAi::chunk(
            answer,
            &format!(
                "{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}",
                json_string(text)
            ),
            None,
        )
    }

    fn stream_end(&self, answer: &AnswerInfo) -> String {
        let mut out = OpenAi::chunk(
            answer,
            &format!(
                "{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{}\"}}",
                OpenAi::finish_reason(answer)
            ),
            None,
        );
        if answer.include_usage {
            out.push_str(&OpenAi::chunk(answer, "", Some(&OpenAi::usage(answer))));
        }
        out.push_str("data: [DONE]\n\n");
        out
    }

    fn stream_broken(&self, _answer: &AnswerInfo) -> Option<String> {
        None
    }

    fn message(&self, answer: &AnswerInfo, text: &str) -> String {
        format!(
            "{{\"id\":\"chatcmpl-{}\",\"object\":\"chat.completion\",\"created\":{},\"model\":{},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{}}},\"finish_reason\":\"{}\"}}],\"usage\":{}}}",
            answer.id,
            answer.created_s,
            json_string(&answer.model),
            json_string(text),
            OpenAi::finish_reason(answer),
            OpenAi::usage(answer)
        )
    }
}

/// A duration as OpenAI's reset headers write it (Go's format): `20ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let s_ms = ms % 60_000;
    let s = if s_ms.is_multiple_of(1_000) {
        format!("{}s", s_ms / 1_000)
    } else {
        format!("{}", s_ms as f64 / 1_000.0).trim_end_matches('0').to_string() + "s"
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations_are_written_like_openai() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(go_duration(ms(20)), "20ms");
        assert_eq!(go_duration(ms(1_000)), "1s");
        assert_eq!(go_duration(ms(1_500)), "1.5s");
        assert_eq!(go_duration(ms(360_000)), "6m0s");
        assert_eq!(go_duration(ms(3_723_000)), "1h2m3s");
    }

    #[test]
    fn max_completion_tokens_wins_and_usage_is_opt_in() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"abcdefgh"}],"max_tokens":9,"max_completion_tokens":7,"stream":true,"stream_options":{"include_usage":true}}"#;
        let parsed = OpenAi.parse(body).unwrap();
        assert_eq!((parsed.max_tokens, parsed.prompt_chars, parsed.include_usage), (Some(7), 8, true));
        let parsed = OpenAi.parse(br#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!((parsed.max_tokens, parsed.stream, parsed.include_usage), (None, false, false));
    }
}
