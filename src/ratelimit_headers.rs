//! The providers' rate-limit header names, per meter: what the served provider
//! ([`crate::serve`]) writes and the observer ([`crate::observe`]) reads back, named once.
//!
//! Anthropic: `anthropic-ratelimit-{requests|input-tokens|output-tokens|tokens}-{limit|remaining|reset}`;
//! OpenAI: `x-ratelimit-{limit|remaining|reset}-{requests|tokens}`. Both report per-minute
//! limits; longer periods and dollars have no standard header. It must not know HTTP.

use crate::limiter::{Axis, AxisRemaining, Meter, Remaining};

/// One meter's headers: its Anthropic infix and, if OpenAI reports it, its OpenAI suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderAxis {
    pub meter: Meter,
    pub anthropic: &'static str,
    pub openai: Option<&'static str>,
}

/// Every meter a rate-limit header reports, in header order.
pub const HEADER_AXES: [HeaderAxis; 4] = [
    HeaderAxis { meter: Meter::Requests, anthropic: "requests", openai: Some("requests") },
    HeaderAxis { meter: Meter::InputTokens, anthropic: "input-tokens", openai: None },
    HeaderAxis { meter: Meter::OutputTokens, anthropic: "output-tokens", openai: None },
    HeaderAxis { meter: Meter::Tokens, anthropic: "tokens", openai: Some("tokens") },
];

/// The per-minute axis on `meter` a provider's headers report: the deployment's own limit,
/// or else the pool it answers to (Anthropic reports a model family's pooled limits as the
/// model's). Longer periods and dollars have no standard header.
pub fn reported_axis(remaining: &Remaining, meter: Meter) -> Option<&AxisRemaining> {
    let per_minute = Axis::per_minute(meter);
    let find = |axis: Axis| remaining.axes.iter().find(|a| a.axis == axis);
    find(per_minute).or_else(|| find(per_minute.shared()))
}

/// A header's field: the limit, what remains, when it is full again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Limit,
    Remaining,
    Reset,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Limit => "limit",
            Field::Remaining => "remaining",
            Field::Reset => "reset",
        }
    }
}

impl HeaderAxis {
    pub fn anthropic_name(&self, field: Field) -> String {
        format!("anthropic-ratelimit-{}-{}", self.anthropic, field.as_str())
    }

    pub fn openai_name(&self, field: Field) -> Option<String> {
        self.openai.map(|suffix| format!("x-ratelimit-{}-{suffix}", field.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_providers_own() {
        assert_eq!(
            HEADER_AXES[1].anthropic_name(Field::Remaining),
            "anthropic-ratelimit-input-tokens-remaining"
        );
        assert_eq!(HEADER_AXES[0].openai_name(Field::Reset).as_deref(), Some("x-ratelimit-reset-requests"));
        assert_eq!(HEADER_AXES[2].openai_name(Field::Limit), None);
    }
}
