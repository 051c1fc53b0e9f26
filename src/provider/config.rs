//! The deployment schema as written in a scenario (serde, `deny_unknown_fields`), its
//! defaults, and [`ConfigError`], the error of validating it into a [`super::Deployment`],
//! with the checkers that name the offending field.
//!
//! It must not know about the runtime state of a deployment or about routing.

use crate::dist::{Dist, DistConfig, DistError};
pub use crate::limiter::config::LimitsConfig;
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// A deployment as written in a scenario (after a preset was merged under it).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Upstream account, e.g. `anthropic`, `openai`.
    pub provider: String,
    /// Model served, e.g. `claude-sonnet-4.5`.
    pub model: String,
    /// The API key this deployment is called with, as a label (`"team-key-1"`): deployments
    /// naming the same one share a key, which a router may cool down as one
    /// (`rotation`'s `cooldown_scope = "credential"`). A key's own quota is a pool of the same
    /// name. Not the key itself (observe reads that from `api_key_env`).
    #[serde(default)]
    pub credential: Option<String>,
    pub prices: PricesConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    pub latency: LatencyConfig,
    #[serde(default)]
    pub errors: ErrorsConfig,
    /// Scheduled incident windows.
    #[serde(default)]
    pub incidents: Vec<IncidentConfig>,
    /// Incidents drawn from an on/off process.
    #[serde(default)]
    pub incident_process: Option<IncidentProcessConfig>,
    /// The async batch API, if this deployment offers one.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

/// Prices in USD per million tokens.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricesConfig {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// Defaults to 0.1 × input (Anthropic and OpenAI's usual cache-read discount).
    #[serde(default)]
    pub cache_read_usd_per_mtok: Option<f64>,
    /// Defaults to 1.25 × input (Anthropic's 5-minute cache write).
    #[serde(default)]
    pub cache_write_usd_per_mtok: Option<f64>,
    /// A 1-hour cache write; defaults to 2 × input (Anthropic's price for `ttl = "1h"`).
    #[serde(default)]
    pub cache_write_1h_usd_per_mtok: Option<f64>,
    /// The cache lifetime the client asks for on this deployment (`cache_control.ttl`), which
    /// picks the price of every cache write: `"5m"` (default) or `"1h"`.
    #[serde(default)]
    pub cache_write_ttl: CacheWriteTtl,
    /// Fraction of the standard price paid through the batch API (0.5 = 50% off).
    #[serde(default = "default_batch_price_factor")]
    pub batch_price_factor: f64,
}

/// How long a prompt-cache write lives, as the client requests it. The trace says how many
/// tokens are written; the lifetime only decides their price.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum CacheWriteTtl {
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

fn default_batch_price_factor() -> f64 {
    0.5
}

/// Latency model. All times in milliseconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Time to first token for a short prompt.
    pub ttft_ms: DistConfig,
    /// Extra time to first token per 1,000 uncached input tokens (prefill).
    #[serde(default)]
    pub ttft_ms_per_1k_uncached_input: f64,
    /// Output (decode) speed.
    pub output_tokens_per_s: DistConfig,
    /// How long a 5xx/529 answer takes.
    #[serde(default = "default_error_response")]
    pub error_response_ms: DistConfig,
    /// Round trip of a 429 answer: small but never zero.
    #[serde(default = "default_rate_limit_response")]
    pub rate_limit_response: Duration,
    /// Granularity of the `retry-after` header (Anthropic sends whole seconds).
    #[serde(default = "default_retry_after_granularity")]
    pub retry_after_granularity: Duration,
}

fn default_error_response() -> DistConfig {
    DistConfig::Constant { value: 500.0 }
}
fn default_rate_limit_response() -> Duration {
    Duration::from_millis(150)
}
fn default_retry_after_granularity() -> Duration {
    Duration::from_secs(1)
}

/// Base error rates, per admitted attempt.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorsConfig {
    /// 500 `api_error` and similar.
    #[serde(default)]
    pub server_error_rate: f64,
    /// 529 `overloaded_error`: global overload, not a rate limit.
    #[serde(default)]
    pub overloaded_rate: f64,
    /// 429s answered although the organisation's limits admit the attempt (shared capacity,
    /// a gateway in front, a test double that always says 429).
    #[serde(default)]
    pub rate_limited_rate: f64,
    /// The `retry-after` such a 429 carries (none if absent).
    #[serde(default)]
    pub rate_limited_retry_after: Option<Duration>,
    /// Answers whose stream breaks after the first token (an `overloaded_error` or a dropped
    /// connection mid-stream), at a uniform point of the output; billed for what streamed.
    #[serde(default)]
    pub mid_stream_error_rate: f64,
}

/// What an incident does while it lasts. Rates replace the base rates; multipliers stretch.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncidentEffectConfig {
    #[serde(default)]
    pub server_error_rate: Option<f64>,
    #[serde(default)]
    pub overloaded_rate: Option<f64>,
    /// Multiplies time to first token (3 = three times slower).
    #[serde(default = "one")]
    pub ttft_multiplier: f64,
    /// Multiplies output speed (0.5 = half as fast).
    #[serde(default = "one")]
    pub speed_multiplier: f64,
}

fn one() -> f64 {
    1.0
}

/// A scheduled incident window, from the start of the simulation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    pub start: Duration,
    pub duration: Duration,
    pub effect: IncidentEffectConfig,
}

/// Incidents drawn from an alternating on/off process with exponential durations.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncidentProcessConfig {
    /// Long-run fraction of time without an incident, e.g. 0.999.
    pub uptime: f64,
    /// Mean length of an incident, e.g. "75m".
    pub mean_duration: Duration,
    pub effect: IncidentEffectConfig,
    /// `"deployment"` (default): this deployment's own incidents. `"provider"`: the provider's
    /// incidents (a 529 storm is API-wide): every deployment of the provider with a
    /// provider-scoped process has its incidents in the same windows.
    #[serde(default)]
    pub scope: IncidentScope,
}

/// Whose incidents an incident process draws.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IncidentScope {
    #[default]
    Deployment,
    Provider,
}

/// The async batch API (Anthropic Message Batches, OpenAI Batch).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Time from submission to result, in milliseconds.
    pub completion_ms: DistConfig,
    /// Results not ready by then expire unbilled (24 h for both providers).
    #[serde(default = "default_batch_max_completion")]
    pub max_completion: Duration,
    /// Requests that may wait in the queue at once.
    #[serde(default = "default_batch_max_queue")]
    pub max_queue: u64,
    /// Prompt tokens that may wait in the queue at once (OpenAI's batch queue limit, counted
    /// in enqueued input tokens per model); none by default.
    #[serde(default)]
    pub max_queue_tokens: Option<u64>,
}

fn default_batch_max_completion() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_batch_max_queue() -> u64 {
    100_000
}

/// A deployment configuration that does not make sense; `field` is the path inside it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(super) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { field: field.into(), message: message.into() }
    }
}

pub(super) fn dist(field: &str, config: &DistConfig) -> Result<Dist, ConfigError> {
    Dist::try_from(config.clone()).map_err(|e: DistError| ConfigError::new(field, e.to_string()))
}

pub(super) fn probability(field: &str, p: f64) -> Result<f64, ConfigError> {
    if crate::validate::is_probability(p) {
        Ok(p)
    } else {
        Err(ConfigError::new(field, format!("must be a probability in [0, 1], got {p}")))
    }
}

pub(super) fn non_negative(field: &str, x: f64) -> Result<f64, ConfigError> {
    if crate::validate::is_non_negative(x) {
        Ok(x)
    } else {
        Err(ConfigError::new(field, format!("must be a finite number >= 0, got {x}")))
    }
}

pub(super) fn positive(field: &str, x: f64) -> Result<f64, ConfigError> {
    if crate::validate::is_positive(x) {
        Ok(x)
    } else {
        Err(ConfigError::new(field, format!("must be a finite number > 0, got {x}")))
    }
}
