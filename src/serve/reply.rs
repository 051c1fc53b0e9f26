//! The one mapping from the provider model's decision about an attempt ([`AttemptPlan`]) to
//! what the HTTP answer says, whatever the protocol: an error (429 with its `retry-after`,
//! 529, 5xx) sent at an instant, or a streamed answer with its first-token and end instants;
//! plus the text streamed.
//!
//! Everything here is on the provider's virtual clock; the protocol modules
//! ([`super::anthropic`], [`super::openai`]) encode an [`Answer`] in their wire format and
//! convert instants to wall time. It must not know about HTTP or about a protocol.

use crate::limiter::Axis;
use crate::provider::{AttemptPlan, FailureKind, PlannedOutcome};
use crate::time::{Duration, Instant};

/// What a client asked for, in the token counts the model charges (the plan is made for a
/// [`crate::trace::Request`] built from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The whole prompt, cache reads included.
    pub input_tokens: u64,
    /// Prompt tokens read from the cache (<= `input_tokens`).
    pub cached_input_tokens: u64,
    /// The answer's length (<= `max_tokens`).
    pub output_tokens: u64,
    /// The output reservation (`max_tokens`).
    pub max_tokens: u64,
}

/// An error answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAnswer {
    /// A 429. `never`: the request is larger than a bucket and can never pass (no
    /// `retry-after`); `quota`: a quota exhausted until its period ends (a spend cap: no
    /// `retry-after`).
    RateLimited { retry_after: Option<Duration>, axis: Option<Axis>, never: bool, quota: bool },
    /// 529 `overloaded_error` (OpenAI: 503).
    Overloaded,
    /// 500.
    ServerError,
}

/// The answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An error response, sent at `at`.
    Error { at: Instant, error: ErrorAnswer },
    /// A 200: the first token at `first_token_at`, `output_tokens` tokens by `ends_at`. With
    /// `broken`, the stream breaks at `ends_at` after those tokens (no end-of-message event).
    Stream { first_token_at: Instant, ends_at: Instant, output_tokens: u64, broken: bool },
}

impl Answer {
    /// The answer of `plan` for `ask`. Outcomes a server never plans (client timeouts, batch
    /// and cancellation: the server passes no timeouts and no batch flag) are answered as 500s
    /// rather than trusted.
    pub fn of(plan: &AttemptPlan) -> Answer {
        let error = |error| Answer::Error { at: plan.ends_at, error };
        match plan.outcome {
            PlannedOutcome::Success => match plan.first_token_at {
                Some(first_token_at) => Answer::Stream {
                    first_token_at,
                    ends_at: plan.ends_at,
                    output_tokens: plan.output_tokens,
                    broken: false,
                },
                None => error(ErrorAnswer::ServerError),
            },
            PlannedOutcome::Failed { kind: FailureKind::MidStream, .. } => match plan.first_token_at {
                // The model breaks a stream after its first token: at least that one streams.
                Some(first_token_at) => Answer::Stream {
                    first_token_at,
                    ends_at: plan.ends_at,
                    output_tokens: plan.output_tokens.max(1),
                    broken: true,
                },
                None => error(ErrorAnswer::ServerError),
            },
            PlannedOutcome::Failed { kind: FailureKind::RateLimited, axis, retry_after } => {
                error(ErrorAnswer::RateLimited { retry_after, axis, never: false, quota: false })
            }
            PlannedOutcome::Failed { kind: FailureKind::ExceedsLimit, axis, .. } => {
                error(ErrorAnswer::RateLimited { retry_after: None, axis, never: true, quota: false })
            }
            PlannedOutcome::Failed { kind: FailureKind::QuotaExhausted, axis, .. } => {
                error(ErrorAnswer::RateLimited { retry_after: None, axis, never: false, quota: true })
            }
            PlannedOutcome::Failed { kind: FailureKind::Overloaded, .. } => error(ErrorAnswer::Overloaded),
            PlannedOutcome::Failed { .. } | PlannedOutcome::Batched => error(ErrorAnswer::ServerError),
        }
    }

    /// When the answer is complete (the error sent, the stream ended or broken).
    pub fn ends_at(&self) -> Instant {
        match *self {
            Answer::Error { at, .. } => at,
            Answer::Stream { ends_at, .. } => ends_at,
        }
    }
}

/// The streamed text: token `k` (from 0) is one of a few four-character words, so a client
/// that estimates tokens as characters / 4 counts exactly what was streamed.
pub fn token_text(k: u64) -> &'static str {
    const WORDS: [&str; 8] = [" the", " and", " for", " you", " can", " not", " all", " any"];
    WORDS[(k % WORDS.len() as u64) as usize]
}

/// The text of tokens `from..to`.
pub fn tokens_text(from: u64, to: u64) -> String {
    (from..to).map(token_text).collect()
}

/// When token `k` (from 0) of `n` streams: the first at `first`, the last at `end`, evenly
/// in between (the model's constant decode speed).
pub fn token_at(k: u64, n: u64, first: Instant, end: Instant) -> Instant {
    if n <= 1 || k == 0 {
        return first;
    }
    let span = end.saturating_since(first).as_micros();
    let offset = u128::from(span) * u128::from(k.min(n - 1)) / u128::from(n - 1);
    first + Duration::from_micros(offset as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_four_characters_and_spread_from_first_to_last() {
        assert!((0..20).all(|k| token_text(k).len() == 4));
        assert_eq!(tokens_text(0, 3), " the and for");
        let (first, end) = (Instant::from_millis(100), Instant::from_millis(1_100));
        assert_eq!(token_at(0, 11, first, end), first);
        assert_eq!(token_at(5, 11, first, end), Instant::from_millis(600));
        assert_eq!(token_at(10, 11, first, end), end);
        assert_eq!(token_at(0, 1, first, end), first);
    }
}
