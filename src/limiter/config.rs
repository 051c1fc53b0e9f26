//! The `limits` table as written in a scenario or a preset (serde, `deny_unknown_fields`) and its
//! validation into [`Limits`]: the per-minute shorthands everybody knows (`rpm`, `itpm`,
//! `otpm`, `tpm` with one `burst`) and a list of general `quotas` (any meter, amount, period,
//! refill rule), any of which may belong to a named `pool` shared by every holder naming it.
//!
//! The same schema serves server-side limits (a deployment) and client-side ones (a router's
//! smoothing). It must not know who holds the limits: pools are returned by name and the owner
//! decides what sharing means.
//!
//! ```toml
//! [deployments."openai/gpt-4.1".limits]
//! rpm = 500
//! tpm = 30_000
//! quotas = [
//!   { meter = "requests", amount = 10_000, period = "1d" },                 # RPD
//!   { meter = "spend_usd", amount = 500, period = "30d", refill = "fixed" },  # monthly cap
//! ]
//! ```

use super::{AccelerationLimit, Limit, Limits, Meter, Quota, Refill, MICRO_USD_PER_USD};
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// Limits as written; every axis optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests, input, output and combined tokens per minute.
    pub rpm: Option<u64>,
    pub itpm: Option<u64>,
    pub otpm: Option<u64>,
    /// Combined input + output tokens per minute (OpenAI's TPM).
    pub tpm: Option<u64>,
    pub max_in_flight: Option<u32>,
    /// Refill each per-minute bucket holds: `60s` holds a full minute, `1s` is strict.
    pub burst: Option<Duration>,
    /// Whether cache reads count toward ITPM (older Anthropic models, marked † in their docs).
    /// How input is *counted*, not a limit: the holder of the limits applies it.
    #[serde(default)]
    pub cache_reads_count_toward_itpm: bool,
    pub acceleration: Option<AccelerationLimit>,
    /// Limits over other periods or meters, and pooled limits.
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
}

/// One general limit as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub meter: Meter,
    /// Units per period: requests, tokens, or dollars for `spend_usd`.
    pub amount: f64,
    pub period: Duration,
    #[serde(default)]
    pub refill: RefillKind,
    /// Continuous only: the refill the full bucket holds (default: the whole period).
    pub burst: Option<Duration>,
    /// Fixed only: how far into its first period the simulation starts (default 0).
    pub elapsed_at_start: Option<Duration>,
    /// Fixed only: the amount already used in the first period (default 0).
    pub used_at_start: Option<f64>,
    /// Shared with every holder naming the same pool (a model family's pooled limit, an
    /// organisation's or an API key's quota).
    pub pool: Option<String>,
}

/// How a quota refills, as written.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefillKind {
    #[default]
    Continuous,
    Fixed,
    Sliding,
}

/// A limits table that does not make sense; `field` is the path inside the `limits` table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LimitsError {
    pub field: String,
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> LimitsError {
    LimitsError { field: field.into(), message: message.into() }
}

/// The validated limits: the holder's own, and those of each pool it belongs to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuiltLimits {
    pub own: Limits,
    /// (pool name, its limits), in the order pools first appear in `quotas`.
    pub pools: Vec<(String, Vec<Limit>)>,
}

/// The per-minute shorthands with their meters, in check order.
const PER_MINUTE_KEYS: [(&str, Meter); 4] = [
    ("rpm", Meter::Requests),
    ("itpm", Meter::InputTokens),
    ("otpm", Meter::OutputTokens),
    ("tpm", Meter::Tokens),
];

impl LimitsConfig {
    fn per_minute_value(&self, key: &str) -> Option<u64> {
        match key {
            "rpm" => self.rpm,
            "itpm" => self.itpm,
            "otpm" => self.otpm,
            _ => self.tpm,
        }
    }

    /// Validates into limits; errors name the field inside the table (`rpm`, `quotas[1].amount`).
    pub fn build(&self) -> Result<BuiltLimits, LimitsError> {
        let burst = self.burst.unwrap_or(Duration::from_mins(1));
        if burst.is_zero() {
            return Err(error("burst", "must be > 0 (e.g. \"1s\" for strict, \"60s\" for a full minute)"));
        }
        let mut own = Limits {
            max_in_flight: self.max_in_flight,
            acceleration: self.acceleration,
            ..Limits::default()
        };
        if self.max_in_flight == Some(0) {
            return Err(error("max_in_flight", "must be > 0 (omit the field for no limit)"));
        }
        for (key, meter) in PER_MINUTE_KEYS {
            match self.per_minute_value(key) {
                Some(0) => return Err(error(key, "must be > 0 (omit the field for no limit)")),
                Some(amount) => own.quotas.push(Limit::per_minute(meter, amount, burst)),
                None => {}
            }
        }
        if let Some(acc) = &self.acceleration {
            if acc.window.is_zero() {
                return Err(error("acceleration.window", "must be > 0"));
            }
            if !(acc.max_growth.is_finite() && acc.max_growth >= 1.0) {
                return Err(error(
                    "acceleration.max_growth",
                    format!("must be a finite number >= 1, got {}", acc.max_growth),
                ));
            }
            if acc.floor_per_window == 0 {
                return Err(error("acceleration.floor_per_window", "must be > 0"));
            }
        }
        let mut pools: Vec<(String, Vec<Limit>)> = Vec::new();
        for (i, q) in self.quotas.iter().enumerate() {
            let limit = q.build(&format!("quotas[{i}]"))?;
            match &q.pool {
                None => own.quotas.push(limit),
                Some(name) if name.trim().is_empty() => {
                    return Err(error(format!("quotas[{i}].pool"), "must not be empty"))
                }
                Some(name) => match pools.iter_mut().find(|(n, _)| n == name) {
                    Some((_, limits)) => limits.push(limit),
                    None => pools.push((name.clone(), vec![limit])),
                },
            }
        }
        Ok(BuiltLimits { own, pools })
    }
}

impl QuotaConfig {
    /// `amount` in the meter's units: whole numbers for counts, micro-dollars for spend.
    fn units(&self, field: &str, value: f64, what: &str) -> Result<u64, LimitsError> {
        if !crate::validate::is_non_negative(value) {
            return Err(error(field, format!("{what} must be a finite number >= 0, got {value}")));
        }
        let units = match self.meter {
            Meter::SpendUsd => (value * MICRO_USD_PER_USD).round(),
            _ if value.fract() != 0.0 => {
                return Err(error(
                    field,
                    format!("{what} of {} must be a whole number, got {value}", self.meter),
                ))
            }
            _ => value,
        };
        if units > u64::MAX as f64 {
            return Err(error(field, format!("{what} is too large")));
        }
        Ok(units as u64)
    }

    fn build(&self, field: &str) -> Result<Limit, LimitsError> {
        let amount = self.units(&format!("{field}.amount"), self.amount, "the amount")?;
        if amount == 0 {
            return Err(error(format!("{field}.amount"), "must be > 0 (omit the quota for no limit)"));
        }
        if self.period.is_zero() {
            return Err(error(format!("{field}.period"), "must be > 0 (e.g. \"1d\", \"10m\", \"30d\")"));
        }
        let only = |key: &str, set: bool, kind: &str| {
            if set {
                Err(error(format!("{field}.{key}"), format!("applies only to refill = \"{kind}\"")))
            } else {
                Ok(())
            }
        };
        let quota = Quota::per(amount, self.period);
        let (quota, refill) = match self.refill {
            RefillKind::Continuous => {
                only("elapsed_at_start", self.elapsed_at_start.is_some(), "fixed")?;
                only("used_at_start", self.used_at_start.is_some(), "fixed")?;
                let burst = self.burst.unwrap_or(self.period);
                if burst.is_zero() {
                    return Err(error(format!("{field}.burst"), "must be > 0"));
                }
                (quota.with_burst(burst), Refill::Continuous)
            }
            RefillKind::Fixed => {
                only("burst", self.burst.is_some(), "continuous")?;
                let elapsed_at_start = self.elapsed_at_start.unwrap_or(Duration::ZERO);
                if elapsed_at_start >= self.period {
                    return Err(error(
                        format!("{field}.elapsed_at_start"),
                        format!("must be shorter than the period {}", self.period),
                    ));
                }
                let used_at_start = self.units(
                    &format!("{field}.used_at_start"),
                    self.used_at_start.unwrap_or(0.0),
                    "the amount used",
                )?;
                (quota, Refill::Fixed { elapsed_at_start, used_at_start })
            }
            RefillKind::Sliding => {
                only("burst", self.burst.is_some(), "continuous")?;
                only("elapsed_at_start", self.elapsed_at_start.is_some(), "fixed")?;
                only("used_at_start", self.used_at_start.is_some(), "fixed")?;
                (quota, Refill::Sliding)
            }
        };
        Ok(Limit { meter: self.meter, quota, refill })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> LimitsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn shorthands_and_quotas_build_in_order_with_pools_apart() {
        let built = parse(
            r#"
rpm = 50
otpm = 8000
burst = "10s"
quotas = [
  { meter = "requests", amount = 10000, period = "1d" },
  { meter = "spend_usd", amount = 500.5, period = "30d", refill = "fixed", elapsed_at_start = "10d", used_at_start = 100 },
  { meter = "input_tokens", amount = 2000000, period = "1m", pool = "opus-4" },
  { meter = "spend_usd", amount = 10, period = "10m", refill = "sliding", pool = "opus-4" },
]
"#,
        )
        .build()
        .unwrap();
        let ten_s = Duration::from_secs(10);
        assert_eq!(
            built.own.quotas,
            vec![
                Limit::per_minute(Meter::Requests, 50, ten_s),
                Limit::per_minute(Meter::OutputTokens, 8_000, ten_s),
                Limit {
                    meter: Meter::Requests,
                    quota: Quota::per(10_000, Duration::from_secs(86_400)),
                    refill: Refill::Continuous
                },
                Limit {
                    meter: Meter::SpendUsd,
                    quota: Quota::per(500_500_000, Duration::from_secs(30 * 86_400)),
                    refill: Refill::Fixed {
                        elapsed_at_start: Duration::from_secs(10 * 86_400),
                        used_at_start: 100_000_000
                    },
                },
            ]
        );
        assert_eq!(built.pools.len(), 1);
        let (name, pooled) = &built.pools[0];
        assert_eq!(name, "opus-4");
        assert_eq!(pooled[0], Limit::per_minute(Meter::InputTokens, 2_000_000, Duration::from_mins(1)));
        assert_eq!(pooled[1].refill, Refill::Sliding);
        assert_eq!(built.own.per_minute(Meter::Requests), Some(50));
        assert_eq!(built.own.per_minute(Meter::Tokens), None);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |text: &str| parse(text).build().unwrap_err().to_string();
        assert_eq!(bad("rpm = 0"), "rpm: must be > 0 (omit the field for no limit)");
        assert!(bad("burst = \"0s\"").starts_with("burst: must be > 0"));
        let quota = |q: &str| bad(&format!("quotas = [{{ {q} }}]"));
        assert!(quota("meter = \"requests\", amount = 1.5, period = \"1d\"")
            .starts_with("quotas[0].amount: the amount of requests must be a whole number"));
        assert!(quota("meter = \"requests\", amount = -1, period = \"1d\"")
            .starts_with("quotas[0].amount: the amount must be"));
        assert!(quota("meter = \"tokens\", amount = nan, period = \"1d\"").starts_with("quotas[0].amount"));
        assert!(quota("meter = \"tokens\", amount = 0, period = \"1d\"")
            .starts_with("quotas[0].amount: must be > 0"));
        assert!(quota("meter = \"tokens\", amount = 5, period = \"0s\"")
            .starts_with("quotas[0].period: must be > 0"));
        assert_eq!(
            quota("meter = \"tokens\", amount = 5, period = \"1d\", refill = \"fixed\", burst = \"1h\""),
            "quotas[0].burst: applies only to refill = \"continuous\""
        );
        assert_eq!(
            quota("meter = \"tokens\", amount = 5, period = \"1d\", used_at_start = 2"),
            "quotas[0].used_at_start: applies only to refill = \"fixed\""
        );
        assert!(quota(
            "meter = \"tokens\", amount = 5, period = \"1d\", refill = \"fixed\", elapsed_at_start = \"1d\""
        )
        .starts_with("quotas[0].elapsed_at_start: must be shorter than the period"));
        assert_eq!(
            quota("meter = \"tokens\", amount = 5, period = \"1d\", pool = \" \""),
            "quotas[0].pool: must not be empty"
        );
        assert!(toml::from_str::<LimitsConfig>(
            "quotas = [{ meter = \"dollars\", amount = 1, period = \"1d\" }]"
        )
        .is_err());
        assert!(toml::from_str::<LimitsConfig>(
            "quotas = [{ meter = \"tokens\", amount = 1, period = \"1d\", perod = 1 }]"
        )
        .is_err());
    }
}
