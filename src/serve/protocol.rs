//! What every protocol encoding provides ([`Encoding`]) and what they share: the request body
//! as the server needs it ([`RequestBody`]) and why one is refused ([`RequestError`], the 400's
//! message), protocol-neutral API errors ([`ApiError`]), the facts of one answer an encoding
//! writes out ([`AnswerInfo`]), and the prompt-size estimate.
//!
//! It must not know about the provider model or about sockets: the HTTP layer
//! ([`super::http`]) decides, an [`Encoding`] only writes bytes.

use super::clock::ScaledClock;
use crate::limiter::{Axis, Remaining};

/// The parts of a request body the server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBody {
    pub model: String,
    pub stream: bool,
    /// `max_tokens` (OpenAI: also `max_completion_tokens`), if given.
    pub max_tokens: Option<u64>,
    /// Characters of prompt text (system and messages), for the token estimate.
    pub prompt_chars: u64,
    /// OpenAI `stream_options.include_usage`: a last chunk carries the usage.
    pub include_usage: bool,
}

/// Prompt tokens estimated from characters (about four per token in English text) when the
/// client does not say with `x-routesim-input-tokens`. At least one.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4).max(1)
}

/// An API error, whatever the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    InvalidRequest,
    NotFound,
    MethodNotAllowed,
    RequestTooLarge,
    RateLimited { axis: Option<Axis> },
    Overloaded,
    Server,
}

/// The facts of one answer that an encoding writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerInfo {
    /// The response id (`msg_…`, `chatcmpl-…` suffix).
    pub id: String,
    /// The model as the client named it.
    pub model: String,
    /// The whole prompt, cache reads included.
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    /// Output tokens of the whole answer (or streamed before a break).
    pub output_tokens: u64,
    /// The answer stopped at `max_tokens`.
    pub truncated: bool,
    /// Seconds since the Unix epoch when the answer was created (OpenAI's `created`).
    pub created_s: u64,
    pub include_usage: bool,
}

/// One protocol's wire format.
pub trait Encoding: Send + Sync {
    /// The protocol's name in messages.
    fn name(&self) -> &'static str;
    /// Parses a request body; the error's `Display` is the message of the 400.
    fn parse(&self, body: &[u8]) -> Result<RequestBody, RequestError>;
    /// The status and JSON body of an error.
    fn error(&self, error: ApiError, message: &str) -> (u16, String);
    /// The rate-limit headers of a response (`retry-after` is the HTTP layer's).
    fn rate_limit_headers(&self, state: &Remaining, clock: &ScaledClock) -> Vec<(String, String)>;
    /// The events sent with the response headers, before the first token.
    fn stream_start(&self, answer: &AnswerInfo) -> String;
    /// One event carrying `text`.
    fn stream_delta(&self, answer: &AnswerInfo, text: &str) -> String;
    /// The events that end a complete answer.
    fn stream_end(&self, answer: &AnswerInfo) -> String;
    /// What a broken stream sends before the connection ends (`None`: it is just cut).
    fn stream_broken(&self, answer: &AnswerInfo) -> Option<String>;
    /// A whole non-streamed answer.
    fn message(&self, answer: &AnswerInfo, text: &str) -> String;
}

/// Counts the characters of every string under `text` and string `content` keys, recursively
/// (plain string contents, content blocks, nested tool results).
pub fn text_chars(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Array(items) => items.iter().map(text_chars).sum(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, v)| match v {
                serde_json::Value::String(s) if key == "text" || key == "content" => s.chars().count() as u64,
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => text_chars(v),
                _ => 0,
            })
            .sum(),
        serde_json::Value::String(s) => s.chars().count() as u64,
        _ => 0,
    }
}

/// Why a request was refused with a 400 before reaching the model: its `Display` is the
/// message of the error body (`field: problem`, or one about the whole body).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A body field or a request header (`x-routesim-input-tokens`) the server refuses.
    #[error("{field}: {problem}")]
    Field { field: &'static str, problem: FieldProblem },
}

impl RequestError {
    pub fn field(field: &'static str, problem: FieldProblem) -> RequestError {
        RequestError::Field { field, problem }
    }
}

/// What is wrong with one field of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("field required")]
    Required,
    #[error("a non-empty string is required")]
    NonEmptyString,
    #[error("an array is required")]
    Array,
    #[error("expected a boolean")]
    Boolean,
    #[error("expected a non-negative integer")]
    NonNegativeInteger,
    #[error("must be >= 1")]
    AtLeastOne,
}

/// A field of a JSON object as a non-negative integer, if present; `Err` names the field.
pub fn optional_u64(
    object: &serde_json::Map<String, serde_json::Value>,
    key: &'static str,
) -> Result<Option<u64>, RequestError> {
    match object.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(RequestError::field(key, FieldProblem::NonNegativeInteger)),
    }
}

/// The request body as a JSON object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, RequestError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::NotAnObject),
        Err(e) => Err(RequestError::NotJson(e)),
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_characters_are_counted_in_strings_and_blocks() {
        let v: serde_json::Value = serde_json::json!([
            {"role": "user", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "efgh"}, {"type": "image"}]},
        ]);
        assert_eq!(text_chars(&v), 8);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
        assert_eq!(estimate_tokens(0), 1);
    }
}
