//! What an observed attempt says, read off its [`AttemptRecord`]: which outcome its HTTP
//! status and error type mean ([`Outcome`]), and the rate-limit headers (`*-limit`,
//! `*-remaining`) per limiter axis ([`limit_headers`]). The one place both directions live:
//! reading an observation ([`Outcome::of`]) and writing a simulated one ([`status_of`]).
//!
//! It must not know about fitting or simulation.

use crate::attempt_log::AttemptRecord;
use crate::limiter::Meter;
use crate::policy::AttemptOutcome;
use crate::provider::FailureKind;
use crate::ratelimit_headers::{Field, HEADER_AXES};

/// What happened to an observed attempt, as far as a deployment model is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 2xx with a first token and no error.
    Success,
    /// The stream broke after the first token (2xx status, an error type, a first token).
    MidStream,
    /// 429 (`rate_limit_error`).
    RateLimited,
    /// 529 (`overloaded_error`) before any token.
    Overloaded,
    /// Another 5xx before any token.
    ServerError,
    /// The client gave up on the attempt (its own timeout, a hedge that lost): status 499, as
    /// proxies log a request the client closed, or one of the client-side error types.
    Cancelled,
    /// Anything else (4xx other than 429, a 2xx without a first token such as a batch
    /// submission): no part of the latency or error model.
    Other,
}

/// Status of an attempt the client cancelled (nginx's "client closed request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// Error types of attempts the client ended itself; they say nothing about the provider.
const CLIENT_ERROR_TYPES: [&str; 3] = ["timeout", "slow_first_token", "cancelled"];

impl Outcome {
    pub fn of(record: &AttemptRecord) -> Outcome {
        let error = record.error_type.as_deref();
        let streamed = record.first_token_ms.is_some();
        if record.status == STATUS_CLIENT_CLOSED || error.is_some_and(|e| CLIENT_ERROR_TYPES.contains(&e)) {
            return Outcome::Cancelled;
        }
        match (record.status, error) {
            (429, _) | (_, Some("rate_limit_error")) => Outcome::RateLimited,
            (200..=299, None) if streamed => Outcome::Success,
            (200..=299, Some(_)) if streamed => Outcome::MidStream,
            (529, _) => Outcome::Overloaded,
            (_, Some("overloaded_error")) if !streamed => Outcome::Overloaded,
            (500..=599, _) => Outcome::ServerError,
            _ => Outcome::Other,
        }
    }

    /// Whether the attempt took quota at the provider's limiter: everything but a 429, a 529
    /// (the provider's overload turns a request away before any of it is counted, in the
    /// model and in the served provider) and other 4xx answers (a 2xx without a first token,
    /// an empty answer, was admitted too).
    pub fn admitted(record: &AttemptRecord) -> bool {
        match Outcome::of(record) {
            Outcome::RateLimited | Outcome::Overloaded => false,
            Outcome::Other => (200..300).contains(&record.status),
            _ => true,
        }
    }
}

/// The HTTP status and error type an attempt with this outcome is observed with: what a
/// simulated observation writes, and what [`Outcome::of`] reads back (`None` for outcomes
/// an HTTP observation never shows, batch submissions).
pub fn status_of(outcome: AttemptOutcome) -> Option<(u16, Option<&'static str>)> {
    Some(match outcome {
        AttemptOutcome::Success => (200, None),
        AttemptOutcome::Batched => return None,
        AttemptOutcome::Failed(kind) => match kind {
            FailureKind::RateLimited | FailureKind::ExceedsLimit | FailureKind::QuotaExhausted => {
                (429, Some("rate_limit_error"))
            }
            FailureKind::Overloaded => (529, Some("overloaded_error")),
            FailureKind::ServerError => (500, Some("api_error")),
            // Anthropic ends a broken stream with an `overloaded_error` event after a 200.
            FailureKind::MidStream => (200, Some("overloaded_error")),
            FailureKind::Timeout | FailureKind::SlowFirstToken | FailureKind::Cancelled => {
                (STATUS_CLIENT_CLOSED, Some(kind.as_str()))
            }
            FailureKind::BatchQueueFull | FailureKind::BatchExpired | FailureKind::BatchUnsupported => {
                return None
            }
        },
    })
}

/// One per-minute limiter axis as a pair of rate-limit headers reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitHeader {
    /// The axis, by what it counts (all header axes are per minute).
    pub axis: Meter,
    /// The header with the axis's per-minute limit.
    pub limit: String,
    /// The header with what is left of it.
    pub remaining: String,
    /// How far `remaining` may be from the true level: Anthropic rounds token counts to the
    /// nearest 1,000, so the level is at least `remaining − 500`.
    pub rounding_tokens: f64,
}

/// Every header pair read, Anthropic's first (the names a simulated observation writes), from
/// the one table of names ([`crate::ratelimit_headers`]). `anthropic-ratelimit-tokens-*` is
/// taken as the combined axis (TPM) as routesim's modelled provider reports it; Anthropic's own
/// API reports there the most restrictive of input and output, which the caller recognises as
/// a limit equal to ITPM's or OTPM's.
pub fn limit_headers() -> Vec<LimitHeader> {
    let anthropic = HEADER_AXES.iter().map(|h| LimitHeader {
        axis: h.meter,
        limit: h.anthropic_name(Field::Limit),
        remaining: h.anthropic_name(Field::Remaining),
        rounding_tokens: if h.meter.is_token_count() { 500.0 } else { 0.0 },
    });
    let openai = HEADER_AXES.iter().filter_map(|h| {
        Some(LimitHeader {
            axis: h.meter,
            limit: h.openai_name(Field::Limit)?,
            remaining: h.openai_name(Field::Remaining)?,
            rounding_tokens: 0.0,
        })
    });
    anthropic.chain(openai).collect()
}

/// The `retry-after` header's name.
pub const RETRY_AFTER: &str = "retry-after";

/// A recorded header whose value is not a number `>= 0`; `Display` is the message after the
/// header's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a number >= 0, got {value:?}")]
pub struct HeaderNumberError {
    /// The header's name, as recorded.
    pub header: String,
    pub value: String,
}

/// A header's value as a non-negative number: `Ok(None)` if absent, `Err` if it does not
/// parse.
pub fn header_number(record: &AttemptRecord, name: &str) -> Result<Option<f64>, HeaderNumberError> {
    let Some(text) = record.headers.get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<f64>() {
        Ok(x) if crate::validate::is_non_negative(x) => Ok(Some(x)),
        _ => Err(HeaderNumberError { header: name.to_string(), value: text.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(status: u16, error_type: Option<&str>, first_token_ms: Option<f64>) -> AttemptRecord {
        AttemptRecord {
            request_id: "r".into(),
            deployment: "d".into(),
            attempt: 1,
            start_ms: 0.0,
            first_token_ms,
            end_ms: 10.0,
            status,
            error_type: error_type.map(str::to_string),
            retry_after_s: None,
            headers: BTreeMap::new(),
            input_tokens: 10,
            cached_input_tokens: 0,
            output_tokens: 5,
        }
    }

    #[test]
    fn every_simulated_outcome_reads_back_as_itself() {
        let cases = [
            (AttemptOutcome::Success, Some(1.0), Outcome::Success),
            (AttemptOutcome::Failed(FailureKind::RateLimited), None, Outcome::RateLimited),
            (AttemptOutcome::Failed(FailureKind::ExceedsLimit), None, Outcome::RateLimited),
            (AttemptOutcome::Failed(FailureKind::Overloaded), None, Outcome::Overloaded),
            (AttemptOutcome::Failed(FailureKind::ServerError), None, Outcome::ServerError),
            (AttemptOutcome::Failed(FailureKind::MidStream), Some(1.0), Outcome::MidStream),
            (AttemptOutcome::Failed(FailureKind::Timeout), Some(1.0), Outcome::Cancelled),
            (AttemptOutcome::Failed(FailureKind::SlowFirstToken), None, Outcome::Cancelled),
            (AttemptOutcome::Failed(FailureKind::Cancelled), None, Outcome::Cancelled),
        ];
        for (outcome, first_token, expected) in cases {
            let (status, error) = status_of(outcome).unwrap();
            assert_eq!(Outcome::of(&record(status, error, first_token)), expected, "{outcome:?}");
        }
        assert_eq!(status_of(AttemptOutcome::Batched), None);
        // What real providers send reads the same way.
        assert_eq!(Outcome::of(&record(200, None, None)), Outcome::Other);
        assert_eq!(Outcome::of(&record(503, None, None)), Outcome::ServerError);
        assert_eq!(Outcome::of(&record(400, Some("invalid_request_error"), None)), Outcome::Other);
        assert!(Outcome::admitted(&record(200, None, None)) && !Outcome::admitted(&record(400, None, None)));
        assert!(!Outcome::admitted(&record(429, Some("rate_limit_error"), None)));
    }

    #[test]
    fn headers_parse_as_numbers_or_say_why_not() {
        let mut r = record(200, None, Some(1.0));
        r.headers.insert("anthropic-ratelimit-requests-limit".into(), "4000".into());
        r.headers.insert("retry-after".into(), "soon".into());
        assert_eq!(header_number(&r, "anthropic-ratelimit-requests-limit"), Ok(Some(4000.0)));
        assert_eq!(header_number(&r, "x-ratelimit-limit-requests"), Ok(None));
        let e = header_number(&r, "retry-after").unwrap_err();
        assert_eq!(e, HeaderNumberError { header: "retry-after".into(), value: "soon".into() });
        assert_eq!(e.to_string(), "expected a number >= 0, got \"soon\"");
    }
}
