//! The model of one upstream deployment: a routable (provider, model) pair.
//!
//! Owns prices (input, output, cache read/write, batch discount), server-side limits (built
//! from the same [`crate::limiter`] types a router uses client-side), the latency model (time
//! to first token that grows with uncached input, output speed), error rates (5xx, 529),
//! incident windows (scheduled, or drawn from an on/off process) and the Message-Batches-style
//! async queue. It answers one question: *what happens to this attempt, started now?*
//! It must not know about routing: policies decide where attempts go, the engine moves time.
//!
//! Every random draw is keyed by (seed, request, attempt, deployment, purpose), so two
//! strategies that send the same attempt to the same deployment see the same luck.

use crate::dist::{Dist, DistConfig, DistError};
use crate::limiter::{AccelerationLimit, Axis, Demand, Limits, MultiLimiter, Permit, Remaining, Retry};
use crate::rng::{hash_str, DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};

/// Dense index of a deployment within a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub u16);

impl DeploymentId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration (serde), validated into the domain types below.
// ---------------------------------------------------------------------------------------------

/// A deployment as written in a scenario (after a preset was merged under it).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Upstream account, e.g. `anthropic`, `openai`.
    pub provider: String,
    /// Model served, e.g. `claude-sonnet-4.5`.
    pub model: String,
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
    /// Fraction of the standard price paid through the batch API (0.5 = 50% off).
    #[serde(default = "default_batch_price_factor")]
    pub batch_price_factor: f64,
}

fn default_batch_price_factor() -> f64 {
    0.5
}

/// Server-side limits; every axis optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub rpm: Option<u64>,
    pub itpm: Option<u64>,
    pub otpm: Option<u64>,
    /// Combined input + output tokens per minute (OpenAI's TPM).
    pub tpm: Option<u64>,
    pub max_in_flight: Option<u32>,
    /// Seconds of refill each bucket holds: `60s` holds a full minute, `1s` is strict.
    pub burst: Option<Duration>,
    /// Whether cache reads count toward ITPM (older Anthropic models, marked † in their docs).
    #[serde(default)]
    pub cache_reads_count_toward_itpm: bool,
    pub acceleration: Option<AccelerationLimit>,
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
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { field: field.into(), message: message.into() }
    }
}

fn dist(field: &str, config: &DistConfig) -> Result<Dist, ConfigError> {
    Dist::try_from(config.clone()).map_err(|e: DistError| ConfigError::new(field, e.to_string()))
}

fn probability(field: &str, p: f64) -> Result<f64, ConfigError> {
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(ConfigError::new(field, format!("must be a probability in [0, 1], got {p}")))
    }
}

fn non_negative(field: &str, x: f64) -> Result<f64, ConfigError> {
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(ConfigError::new(field, format!("must be a finite number >= 0, got {x}")))
    }
}

fn positive(field: &str, x: f64) -> Result<f64, ConfigError> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(ConfigError::new(field, format!("must be a finite number > 0, got {x}")))
    }
}

fn positive_limit<T: PartialEq + Default + Copy>(
    field: &str,
    v: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match v {
        Some(x) if x == T::default() => {
            Err(ConfigError::new(field, "must be > 0 (omit the field for no limit)"))
        }
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Domain types.
// ---------------------------------------------------------------------------------------------

/// Prices in USD per token (converted once from per-million figures).
#[derive(Clone, Debug, PartialEq)]
pub struct Prices {
    pub input_usd_per_token: f64,
    pub output_usd_per_token: f64,
    pub cache_read_usd_per_token: f64,
    pub cache_write_usd_per_token: f64,
    pub batch_price_factor: f64,
}

/// Tokens one attempt consumed, as billed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to the cache.
    pub plain_input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// The full prompt of `request` plus `output_tokens` of output.
    pub fn of(request: &Request, output_tokens: u64) -> Usage {
        Usage {
            plain_input_tokens: request.uncached_input_tokens() - request.cache_write_tokens,
            cached_input_tokens: request.cached_input_tokens,
            cache_write_tokens: request.cache_write_tokens,
            output_tokens,
        }
    }
}

impl Prices {
    /// Cost of `usage`; the batch API charges `batch_price_factor` of every price.
    pub fn cost_usd(&self, usage: &Usage, batch: bool) -> f64 {
        let standard = usage.plain_input_tokens as f64 * self.input_usd_per_token
            + usage.cached_input_tokens as f64 * self.cache_read_usd_per_token
            + usage.cache_write_tokens as f64 * self.cache_write_usd_per_token
            + usage.output_tokens as f64 * self.output_usd_per_token;
        if batch {
            standard * self.batch_price_factor
        } else {
            standard
        }
    }
}

/// What an incident changes while it lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentEffect {
    pub server_error_rate: Option<f64>,
    pub overloaded_rate: Option<f64>,
    pub ttft_multiplier: f64,
    pub speed_multiplier: f64,
}

/// A window `[start, end)` during which an incident's effect applies.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentWindow {
    pub start: Instant,
    pub end: Instant,
    pub effect: IncidentEffect,
}

/// The on/off process incidents are drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentProcess {
    pub uptime: f64,
    pub mean_duration: Duration,
    pub effect: IncidentEffect,
}

/// The batch API of a deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchModel {
    pub completion_ms: Dist,
    pub max_completion: Duration,
    pub max_queue: u64,
}

/// One routable (provider, model) pair, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployment {
    pub name: String,
    /// Stable hash of `name`, part of every random draw's key.
    pub name_hash: u64,
    pub provider: String,
    pub model: String,
    pub prices: Prices,
    pub limits: Limits,
    pub cache_reads_count_toward_itpm: bool,
    pub ttft_ms: Dist,
    pub ttft_ms_per_1k_uncached_input: f64,
    pub output_tokens_per_s: Dist,
    pub error_response_ms: Dist,
    pub rate_limit_response: Duration,
    pub retry_after_granularity: Duration,
    pub server_error_rate: f64,
    pub overloaded_rate: f64,
    pub rate_limited_rate: f64,
    pub rate_limited_retry_after: Option<Duration>,
    pub incidents: Vec<IncidentWindow>,
    pub incident_process: Option<IncidentProcess>,
    pub batch: Option<BatchModel>,
}

fn effect(field: &str, c: &IncidentEffectConfig) -> Result<IncidentEffect, ConfigError> {
    Ok(IncidentEffect {
        server_error_rate: c
            .server_error_rate
            .map(|p| probability(&format!("{field}.server_error_rate"), p))
            .transpose()?,
        overloaded_rate: c
            .overloaded_rate
            .map(|p| probability(&format!("{field}.overloaded_rate"), p))
            .transpose()?,
        ttft_multiplier: positive(&format!("{field}.ttft_multiplier"), c.ttft_multiplier)?,
        speed_multiplier: positive(&format!("{field}.speed_multiplier"), c.speed_multiplier)?,
    })
}

impl Deployment {
    /// Validates a configuration; errors name the field inside the deployment.
    pub fn from_config(name: &str, c: &DeploymentConfig) -> Result<Deployment, ConfigError> {
        let p = &c.prices;
        let input = non_negative("prices.input_usd_per_mtok", p.input_usd_per_mtok)?;
        let output = non_negative("prices.output_usd_per_mtok", p.output_usd_per_mtok)?;
        let cache_read =
            non_negative("prices.cache_read_usd_per_mtok", p.cache_read_usd_per_mtok.unwrap_or(input * 0.1))?;
        let cache_write = non_negative(
            "prices.cache_write_usd_per_mtok",
            p.cache_write_usd_per_mtok.unwrap_or(input * 1.25),
        )?;
        let batch_price_factor = probability("prices.batch_price_factor", p.batch_price_factor)?;
        let per_token = 1e-6;
        let prices = Prices {
            input_usd_per_token: input * per_token,
            output_usd_per_token: output * per_token,
            cache_read_usd_per_token: cache_read * per_token,
            cache_write_usd_per_token: cache_write * per_token,
            batch_price_factor,
        };

        let l = &c.limits;
        let burst = l.burst.unwrap_or(Duration::from_secs(60));
        if burst.is_zero() {
            return Err(ConfigError::new(
                "limits.burst",
                "must be > 0 (e.g. \"1s\" for strict, \"60s\" for a full minute)",
            ));
        }
        if let Some(acc) = &l.acceleration {
            if acc.window.is_zero() {
                return Err(ConfigError::new("limits.acceleration.window", "must be > 0"));
            }
            if !(acc.max_growth.is_finite() && acc.max_growth >= 1.0) {
                return Err(ConfigError::new(
                    "limits.acceleration.max_growth",
                    format!("must be a finite number >= 1, got {}", acc.max_growth),
                ));
            }
            if acc.floor_per_window == 0 {
                return Err(ConfigError::new("limits.acceleration.floor_per_window", "must be > 0"));
            }
        }
        let limits = Limits {
            rpm: positive_limit("limits.rpm", l.rpm)?,
            itpm: positive_limit("limits.itpm", l.itpm)?,
            otpm: positive_limit("limits.otpm", l.otpm)?,
            tpm: positive_limit("limits.tpm", l.tpm)?,
            max_in_flight: positive_limit("limits.max_in_flight", l.max_in_flight)?,
            burst,
            acceleration: l.acceleration,
        };

        let lat = &c.latency;
        if lat.rate_limit_response.is_zero() {
            return Err(ConfigError::new(
                "latency.rate_limit_response",
                "must be > 0: a 429 takes a round trip",
            ));
        }
        if lat.retry_after_granularity.is_zero() {
            return Err(ConfigError::new("latency.retry_after_granularity", "must be > 0 (e.g. \"1s\")"));
        }

        let mut incidents = Vec::with_capacity(c.incidents.len());
        for (i, w) in c.incidents.iter().enumerate() {
            let field = format!("incidents[{i}]");
            if w.duration.is_zero() {
                return Err(ConfigError::new(format!("{field}.duration"), "must be > 0"));
            }
            let start = Instant::ZERO + w.start;
            incidents.push(IncidentWindow {
                start,
                end: start + w.duration,
                effect: effect(&format!("{field}.effect"), &w.effect)?,
            });
        }
        incidents.sort_by_key(|w| w.start);
        let incident_process = match &c.incident_process {
            None => None,
            Some(pc) => {
                if !(pc.uptime.is_finite() && pc.uptime > 0.0 && pc.uptime < 1.0) {
                    return Err(ConfigError::new(
                        "incident_process.uptime",
                        format!("must be strictly between 0 and 1, got {}", pc.uptime),
                    ));
                }
                if pc.mean_duration < MIN_INCIDENT_MEAN_DURATION {
                    return Err(ConfigError::new(
                        "incident_process.mean_duration",
                        format!("must be at least {MIN_INCIDENT_MEAN_DURATION}, got {}", pc.mean_duration),
                    ));
                }
                Some(IncidentProcess {
                    uptime: pc.uptime,
                    mean_duration: pc.mean_duration,
                    effect: effect("incident_process.effect", &pc.effect)?,
                })
            }
        };
        let batch = match &c.batch {
            None => None,
            Some(b) => {
                if b.max_queue == 0 {
                    return Err(ConfigError::new("batch.max_queue", "must be > 0"));
                }
                Some(BatchModel {
                    completion_ms: dist("batch.completion_ms", &b.completion_ms)?,
                    max_completion: b.max_completion,
                    max_queue: b.max_queue,
                })
            }
        };

        Ok(Deployment {
            name: name.to_string(),
            name_hash: hash_str(name),
            provider: c.provider.clone(),
            model: c.model.clone(),
            prices,
            limits,
            cache_reads_count_toward_itpm: l.cache_reads_count_toward_itpm,
            ttft_ms: dist("latency.ttft_ms", &lat.ttft_ms)?,
            ttft_ms_per_1k_uncached_input: non_negative(
                "latency.ttft_ms_per_1k_uncached_input",
                lat.ttft_ms_per_1k_uncached_input,
            )?,
            output_tokens_per_s: dist("latency.output_tokens_per_s", &lat.output_tokens_per_s)?,
            error_response_ms: dist("latency.error_response_ms", &lat.error_response_ms)?,
            rate_limit_response: lat.rate_limit_response,
            retry_after_granularity: lat.retry_after_granularity,
            server_error_rate: probability("errors.server_error_rate", c.errors.server_error_rate)?,
            overloaded_rate: probability("errors.overloaded_rate", c.errors.overloaded_rate)?,
            rate_limited_rate: probability("errors.rate_limited_rate", c.errors.rate_limited_rate)?,
            rate_limited_retry_after: c.errors.rate_limited_retry_after,
            incidents,
            incident_process,
            batch,
        })
    }

    /// Input tokens of `request` as this deployment's ITPM counts them: uncached input
    /// (which includes cache writes), plus cache reads only where the model's flag says so.
    pub fn counted_input_tokens(&self, request: &Request) -> u64 {
        if self.cache_reads_count_toward_itpm {
            request.input_tokens
        } else {
            request.uncached_input_tokens()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime: one deployment's state during one simulation.
// ---------------------------------------------------------------------------------------------

/// How an attempt is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttemptOptions {
    /// Cancel the attempt if it has not finished this long after it started.
    pub timeout: Option<Duration>,
    /// Cancel the attempt if no first token arrived this long after it started.
    pub first_token_timeout: Option<Duration>,
    /// Submit to the async batch API instead of the synchronous one.
    pub batch: bool,
}

/// Why an attempt did not produce an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 429: a limit refused the attempt.
    RateLimited,
    /// The request can never pass a limit (larger than a bucket): retrying is pointless.
    ExceedsLimit,
    /// 500-class server error.
    ServerError,
    /// 529 overloaded.
    Overloaded,
    /// The attempt ran past its total timeout and was cancelled.
    Timeout,
    /// No first token within the first-token timeout; cancelled.
    SlowFirstToken,
    /// The batch queue was full.
    BatchQueueFull,
    /// The batch result did not arrive within the batch window; expired unbilled.
    BatchExpired,
    /// The deployment has no batch API.
    BatchUnsupported,
    /// Cancelled by the client because another attempt of the same request answered first
    /// (hedging); billed for what it consumed.
    Cancelled,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate_limited",
            FailureKind::ExceedsLimit => "exceeds_limit",
            FailureKind::ServerError => "server_error",
            FailureKind::Overloaded => "overloaded",
            FailureKind::Timeout => "timeout",
            FailureKind::SlowFirstToken => "slow_first_token",
            FailureKind::BatchQueueFull => "batch_queue_full",
            FailureKind::BatchExpired => "batch_expired",
            FailureKind::BatchUnsupported => "batch_unsupported",
            FailureKind::Cancelled => "cancelled",
        }
    }

    /// Whether the failure is a rate limit (counts toward the 429 rates).
    pub fn is_rate_limit(self) -> bool {
        matches!(self, FailureKind::RateLimited | FailureKind::ExceedsLimit)
    }
}

/// The fate of one attempt, decided when it starts (all randomness is drawn up front).
#[derive(Debug, PartialEq)]
pub struct AttemptPlan {
    /// When the attempt's outcome is known to the client.
    pub ends_at: Instant,
    /// When the first token arrived, if it did.
    pub first_token_at: Option<Instant>,
    pub outcome: PlannedOutcome,
    /// Output tokens produced (and billed) by the time the attempt ended.
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Server-side admission, returned to [`DeploymentState::finish`] when the attempt ends.
    pub permit: Option<Permit>,
    /// Decode speed drawn for this attempt (tokens/s), to bill a cancellation honestly.
    pub output_tokens_per_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlannedOutcome {
    Success,
    /// Accepted by the batch API; the result arrives at `ends_at`.
    Batched,
    Failed {
        kind: FailureKind,
        /// For rate limits: the limit that refused.
        axis: Option<Axis>,
        /// The `retry-after` the provider sent, if any.
        retry_after: Option<Duration>,
    },
}

/// One deployment during one simulation: its server-side limiter, incident timeline and
/// batch queue.
#[derive(Debug)]
pub struct DeploymentState {
    limiter: MultiLimiter,
    incidents: IncidentTimeline,
    batch_queued: u64,
}

impl DeploymentState {
    pub fn new(deployment: &Deployment, seed: u64) -> DeploymentState {
        DeploymentState {
            limiter: MultiLimiter::new(&deployment.limits, Instant::ZERO),
            incidents: IncidentTimeline::new(deployment, seed),
            batch_queued: 0,
        }
    }

    /// What the deployment's rate-limit headers would say now.
    pub fn remaining(&self, now: Instant) -> Remaining {
        self.limiter.remaining(now)
    }

    pub fn in_flight(&self) -> u32 {
        self.limiter.in_flight()
    }

    /// Requests waiting in the batch queue.
    pub fn batch_queued(&self) -> u64 {
        self.batch_queued
    }

    /// Starts attempt number `attempt` of `request` at `now` and decides its fate.
    pub fn start_attempt(
        &mut self,
        deployment: &Deployment,
        seed: u64,
        request: &Request,
        attempt: u32,
        now: Instant,
        options: AttemptOptions,
    ) -> AttemptPlan {
        let key = |purpose| DrawKey {
            seed,
            request: request.id,
            attempt,
            deployment: deployment.name_hash,
            purpose,
        };
        if options.batch {
            return self.submit_batch(deployment, request, now, key(Purpose::BatchCompletion).rng());
        }

        let demand = Demand {
            input_tokens: deployment.counted_input_tokens(request),
            output_reserve_tokens: request.max_tokens,
        };
        let permit = match self.limiter.try_admit(now, demand) {
            Ok(permit) => permit,
            Err(refusal) => {
                let (kind, retry_after) = match refusal.retry {
                    Retry::Never => (FailureKind::ExceedsLimit, None),
                    Retry::At(at) => (
                        FailureKind::RateLimited,
                        Some(round_up(at.saturating_since(now), deployment.retry_after_granularity)),
                    ),
                    Retry::WhenSlotFrees => (FailureKind::RateLimited, None),
                };
                return AttemptPlan {
                    ends_at: now + deployment.rate_limit_response,
                    first_token_at: None,
                    outcome: PlannedOutcome::Failed { kind, axis: Some(refusal.axis), retry_after },
                    output_tokens: 0,
                    cost_usd: 0.0,
                    permit: None,
                    output_tokens_per_s: 0.0,
                };
            }
        };

        let effect = self.incidents.effect_at(deployment, now).cloned();
        let (server_error_rate, overloaded_rate, ttft_multiplier, speed_multiplier) = match &effect {
            None => (deployment.server_error_rate, deployment.overloaded_rate, 1.0, 1.0),
            Some(e) => (
                e.server_error_rate.unwrap_or(deployment.server_error_rate),
                e.overloaded_rate.unwrap_or(deployment.overloaded_rate),
                e.ttft_multiplier,
                e.speed_multiplier,
            ),
        };

        // One uniform decides the error class so that raising one rate never reshuffles which
        // attempts hit the other (common random numbers across scenarios).
        let u = key(Purpose::Error).rng().next_open01();
        let error = if u < overloaded_rate {
            Some(FailureKind::Overloaded)
        } else if u < overloaded_rate + server_error_rate {
            Some(FailureKind::ServerError)
        } else if u < overloaded_rate + server_error_rate + deployment.rate_limited_rate {
            Some(FailureKind::RateLimited)
        } else {
            None
        };
        if let Some(kind) = error {
            let retry_after =
                if kind == FailureKind::RateLimited { deployment.rate_limited_retry_after } else { None };
            let response = Duration::from_millis_f64(
                deployment.error_response_ms.sample(&mut key(Purpose::ErrorLatency).rng()),
            );
            return AttemptPlan {
                ends_at: now + response.max(Duration::from_micros(1)),
                first_token_at: None,
                outcome: PlannedOutcome::Failed { kind, axis: None, retry_after },
                output_tokens: 0,
                cost_usd: 0.0,
                permit: Some(permit),
                output_tokens_per_s: 0.0,
            };
        }

        let prefill_ms =
            deployment.ttft_ms_per_1k_uncached_input * request.uncached_input_tokens() as f64 / 1000.0;
        let ttft_ms =
            (deployment.ttft_ms.sample(&mut key(Purpose::FirstToken).rng()) + prefill_ms) * ttft_multiplier;
        // A speed of zero would mean an endless answer; one token per second is the floor.
        let speed = (deployment.output_tokens_per_s.sample(&mut key(Purpose::OutputSpeed).rng())
            * speed_multiplier)
            .max(1.0);
        let ttft = Duration::from_millis_f64(ttft_ms).max(Duration::from_micros(1));
        let decode = Duration::from_secs_f64(request.output_tokens as f64 / speed);
        let first_token_at = now + ttft;
        let done_at = first_token_at + decode;

        if let Some(limit) = options.first_token_timeout {
            if ttft > limit {
                // Cancelled before any output: the provider still read the prompt, so it bills
                // the input (honest accounting of cancelled work).
                let cost = deployment.prices.cost_usd(&Usage::of(request, 0), false);
                return AttemptPlan {
                    ends_at: now + limit,
                    first_token_at: None,
                    outcome: PlannedOutcome::Failed {
                        kind: FailureKind::SlowFirstToken,
                        axis: None,
                        retry_after: None,
                    },
                    output_tokens: 0,
                    cost_usd: cost,
                    permit: Some(permit),
                    output_tokens_per_s: speed,
                };
            }
        }
        if let Some(limit) = options.timeout {
            let deadline = now + limit;
            if done_at > deadline {
                let (first_token_at, produced) = if first_token_at < deadline {
                    let streamed = deadline.saturating_since(first_token_at).as_secs_f64() * speed;
                    (Some(first_token_at), (streamed.floor() as u64).min(request.output_tokens))
                } else {
                    (None, 0)
                };
                let cost = deployment.prices.cost_usd(&Usage::of(request, produced), false);
                return AttemptPlan {
                    ends_at: deadline,
                    first_token_at,
                    outcome: PlannedOutcome::Failed {
                        kind: FailureKind::Timeout,
                        axis: None,
                        retry_after: None,
                    },
                    output_tokens: produced,
                    cost_usd: cost,
                    permit: Some(permit),
                    output_tokens_per_s: speed,
                };
            }
        }

        AttemptPlan {
            ends_at: done_at,
            first_token_at: Some(first_token_at),
            outcome: PlannedOutcome::Success,
            output_tokens: request.output_tokens,
            cost_usd: deployment.prices.cost_usd(&Usage::of(request, request.output_tokens), false),
            permit: Some(permit),
            output_tokens_per_s: speed,
        }
    }

    fn submit_batch(
        &mut self,
        deployment: &Deployment,
        request: &Request,
        now: Instant,
        mut rng: SplitMix64,
    ) -> AttemptPlan {
        let failed = |kind| AttemptPlan {
            ends_at: now + deployment.rate_limit_response,
            first_token_at: None,
            outcome: PlannedOutcome::Failed { kind, axis: None, retry_after: None },
            output_tokens: 0,
            cost_usd: 0.0,
            permit: None,
            output_tokens_per_s: 0.0,
        };
        let Some(batch) = &deployment.batch else {
            return failed(FailureKind::BatchUnsupported);
        };
        if self.batch_queued >= batch.max_queue {
            return failed(FailureKind::BatchQueueFull);
        }
        self.batch_queued += 1;
        let completion =
            Duration::from_millis_f64(batch.completion_ms.sample(&mut rng)).max(Duration::from_micros(1));
        if completion > batch.max_completion {
            // Unprocessed requests expire unbilled when the window closes.
            return AttemptPlan {
                ends_at: now + batch.max_completion,
                first_token_at: None,
                outcome: PlannedOutcome::Failed {
                    kind: FailureKind::BatchExpired,
                    axis: None,
                    retry_after: None,
                },
                output_tokens: 0,
                cost_usd: 0.0,
                permit: None,
                output_tokens_per_s: 0.0,
            };
        }
        AttemptPlan {
            ends_at: now + completion,
            first_token_at: None,
            outcome: PlannedOutcome::Batched,
            output_tokens: request.output_tokens,
            cost_usd: deployment.prices.cost_usd(&Usage::of(request, request.output_tokens), true),
            permit: None,
            output_tokens_per_s: 0.0,
        }
    }

    /// Cancels an in-flight attempt at `now` (the client hung up: another attempt won). The
    /// provider bills the prompt if it was admitted and the output streamed so far, and the
    /// limiter is settled to that output. Returns (output tokens billed, cost).
    pub fn cancel(
        &mut self,
        deployment: &Deployment,
        request: &Request,
        plan: AttemptPlan,
        now: Instant,
    ) -> (u64, f64) {
        let AttemptPlan { first_token_at, outcome, permit, output_tokens_per_s, .. } = plan;
        let admitted = permit.is_some()
            && !matches!(
                outcome,
                PlannedOutcome::Failed { kind: FailureKind::ServerError | FailureKind::Overloaded, .. }
            );
        let streamed = match first_token_at {
            Some(first) if first < now => {
                let tokens = (now.saturating_since(first).as_secs_f64() * output_tokens_per_s).floor() as u64;
                tokens.min(request.output_tokens)
            }
            _ => 0,
        };
        let output = if admitted { streamed } else { 0 };
        if let Some(permit) = permit {
            self.limiter.settle(now, permit, output);
        }
        let cost =
            if admitted { deployment.prices.cost_usd(&Usage::of(request, output), false) } else { 0.0 };
        (output, cost)
    }

    /// What the deployment's rate-limit headers say now: remaining per axis, token counts
    /// rounded to the nearest 1,000 as Anthropic reports them.
    pub fn headers(&self, now: Instant) -> Remaining {
        let round = |v: Option<u64>| v.map(|t| (t + 500) / 1000 * 1000);
        let r = self.limiter.remaining(now);
        Remaining {
            input_tokens: round(r.input_tokens),
            output_tokens: round(r.output_tokens),
            tokens: round(r.tokens),
            ..r
        }
    }

    /// Ends an attempt planned by [`Self::start_attempt`]: settles the server-side limiter to
    /// the output actually produced and frees the batch slot.
    pub fn finish(
        &mut self,
        now: Instant,
        plan_outcome: PlannedOutcome,
        permit: Option<Permit>,
        output_tokens: u64,
        was_batch: bool,
    ) {
        if let Some(permit) = permit {
            self.limiter.settle(now, permit, output_tokens);
        }
        if was_batch
            && !matches!(
                plan_outcome,
                PlannedOutcome::Failed {
                    kind: FailureKind::BatchQueueFull | FailureKind::BatchUnsupported,
                    ..
                }
            )
        {
            self.batch_queued = self.batch_queued.saturating_sub(1);
        }
    }
}

fn round_up(d: Duration, granularity: Duration) -> Duration {
    let g = granularity.as_micros().max(1);
    Duration::from_micros(d.as_micros().div_ceil(g).saturating_mul(g))
}

/// Incident windows of one deployment: the scheduled ones plus those drawn lazily, in time
/// order, from its on/off process (so no horizon has to be known in advance).
#[derive(Debug)]
struct IncidentTimeline {
    /// Drawn windows not yet passed (passed ones are dropped, so memory stays bounded by the
    /// windows that overlap the present, however long the run).
    drawn: std::collections::VecDeque<IncidentWindow>,
    /// End of the last drawn window (or the start of time), from which the next "up" period runs.
    drawn_until: Instant,
    rng: SplitMix64,
    /// Index of the first scheduled/drawn window that may still matter (time only moves forward
    /// for a deployment's attempts, so earlier windows are never looked at again).
    cursor_scheduled: usize,
}

impl IncidentTimeline {
    fn new(deployment: &Deployment, seed: u64) -> Self {
        IncidentTimeline {
            drawn: std::collections::VecDeque::new(),
            drawn_until: Instant::ZERO,
            rng: DrawKey {
                seed,
                request: 0,
                attempt: 0,
                deployment: deployment.name_hash,
                purpose: Purpose::Incidents,
            }
            .rng(),
            cursor_scheduled: 0,
        }
    }

    /// The next window of the on/off process: an exponential "up" period, then an
    /// exponential "down" period (the incident).
    fn draw_next(&mut self, process: &IncidentProcess) -> IncidentWindow {
        let mean_down_s = process.mean_duration.as_secs_f64();
        let mean_up_s = mean_down_s * process.uptime / (1.0 - process.uptime);
        let up = Duration::from_secs_f64(-mean_up_s * self.rng.next_open01().ln());
        let down =
            Duration::from_secs_f64(-mean_down_s * self.rng.next_open01().ln()).max(Duration::from_micros(1));
        let start = self.drawn_until + up;
        let end = start + down;
        self.drawn_until = end;
        IncidentWindow { start, end, effect: process.effect.clone() }
    }

    fn effect_at<'a>(&'a mut self, deployment: &'a Deployment, now: Instant) -> Option<&'a IncidentEffect> {
        while self.cursor_scheduled < deployment.incidents.len()
            && deployment.incidents[self.cursor_scheduled].end <= now
        {
            self.cursor_scheduled += 1;
        }
        if let Some(process) = &deployment.incident_process {
            while self.drawn_until <= now {
                let window = self.draw_next(process);
                self.drawn.push_back(window);
            }
            while self.drawn.front().is_some_and(|w| w.end <= now) {
                self.drawn.pop_front();
            }
        }
        let scheduled = deployment.incidents[self.cursor_scheduled..]
            .iter()
            .take_while(|w| w.start <= now)
            .find(|w| now < w.end);
        if let Some(w) = scheduled {
            return Some(&w.effect);
        }
        self.drawn.iter().take_while(|w| w.start <= now).find(|w| now < w.end).map(|w| &w.effect)
    }
}

/// Drawn and scheduled incident windows of a deployment up to `until`, for reports.
pub fn incident_windows(deployment: &Deployment, seed: u64, until: Instant) -> Vec<(Instant, Instant)> {
    let mut timeline = IncidentTimeline::new(deployment, seed);
    let mut windows: Vec<(Instant, Instant)> =
        deployment.incidents.iter().filter(|w| w.start < until).map(|w| (w.start, w.end)).collect();
    if let Some(process) = &deployment.incident_process {
        while windows.len() < MAX_REPORTED_INCIDENTS {
            let w = timeline.draw_next(process);
            if w.start >= until {
                break;
            }
            windows.push((w.start, w.end));
        }
    }
    windows.sort();
    windows.truncate(MAX_REPORTED_INCIDENTS);
    windows
}

/// At most this many incident windows per deployment are listed for reports
/// (`incidents.csv`); the simulation itself draws as many as the run needs.
pub const MAX_REPORTED_INCIDENTS: usize = 100_000;

/// Shortest `incident_process.mean_duration` accepted: shorter incidents would be drawn by the
/// million per simulated hour (real incidents last minutes to hours).
pub const MIN_INCIDENT_MEAN_DURATION: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ClassId;

    fn config(extra: &str) -> DeploymentConfig {
        toml::from_str(&format!(
            "provider = \"p\"\nmodel = \"m\"\nprices = {{ input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }}\n\
             latency = {{ ttft_ms = {{ dist = \"constant\", value = 1000 }}, output_tokens_per_s = {{ dist = \"constant\", value = 50 }}, ttft_ms_per_1k_uncached_input = 100 }}\n{extra}"
        ))
        .unwrap()
    }

    fn request(input: u64, cached: u64, cache_write: u64, output: u64) -> Request {
        Request {
            id: 9,
            arrival: Instant::ZERO,
            class: ClassId::HARD,
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_tokens: cache_write,
            output_tokens: output,
            max_tokens: output.max(1),
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: 2,
        }
    }

    #[test]
    fn cost_splits_plain_cached_and_cache_write_input() {
        let d = Deployment::from_config("p/m", &config("")).unwrap();
        // 100k prompt: 80k cache reads at $0.30/M (default 0.1×), 5k cache writes at $3.75/M
        // (default 1.25×), 15k plain at $3/M; 1k output at $15/M.
        let usage = Usage::of(&request(100_000, 80_000, 5_000, 1_000), 1_000);
        assert_eq!(usage.plain_input_tokens, 15_000);
        let expected = 15_000.0 * 3e-6 + 80_000.0 * 0.3e-6 + 5_000.0 * 3.75e-6 + 1_000.0 * 15e-6;
        assert!((d.prices.cost_usd(&usage, false) - expected).abs() < 1e-12);
        assert!((d.prices.cost_usd(&usage, true) - expected * 0.5).abs() < 1e-12);
    }

    #[test]
    fn cache_reads_count_toward_itpm_only_where_flagged() {
        let r = request(100_000, 80_000, 5_000, 10);
        let modern = Deployment::from_config("a", &config("")).unwrap();
        assert_eq!(modern.counted_input_tokens(&r), 20_000, "uncached input, cache writes included");
        let older =
            Deployment::from_config("b", &config("limits = { cache_reads_count_toward_itpm = true }"))
                .unwrap();
        assert_eq!(older.counted_input_tokens(&r), 100_000);
    }

    #[test]
    fn ttft_grows_with_uncached_input_and_429_carries_rounded_retry_after() {
        let d = Deployment::from_config("p/m", &config("limits = { rpm = 60, burst = \"1s\" }")).unwrap();
        let mut state = DeploymentState::new(&d, 1);
        // 1 s base + 100 ms per 1k uncached tokens × 20k uncached = 3 s; 100 tokens at 50/s = 2 s.
        let r = request(100_000, 80_000, 0, 100);
        let plan = state.start_attempt(&d, 1, &r, 1, Instant::ZERO, AttemptOptions::default());
        assert_eq!(plan.first_token_at, Some(Instant::from_millis(3_000)));
        assert_eq!(plan.ends_at, Instant::from_millis(5_000));
        assert_eq!(plan.outcome, PlannedOutcome::Success);
        // The bucket (1 request per second) is empty: 429 after the 150 ms round trip, and the
        // limiter's 300 ms wait is sent as a whole second, as Anthropic's header does.
        let refused = state.start_attempt(&d, 1, &r, 1, Instant::from_millis(700), AttemptOptions::default());
        assert_eq!(refused.ends_at, Instant::from_millis(850));
        assert_eq!(
            refused.outcome,
            PlannedOutcome::Failed {
                kind: FailureKind::RateLimited,
                axis: Some(Axis::Requests),
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(refused.cost_usd, 0.0);
        state.finish(plan.ends_at, plan.outcome, plan.permit, plan.output_tokens, false);
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |extra: &str| Deployment::from_config("x", &config(extra)).unwrap_err().to_string();
        assert_eq!(
            bad("errors = { overloaded_rate = 1.5 }"),
            "errors.overloaded_rate: must be a probability in [0, 1], got 1.5"
        );
        assert_eq!(bad("limits = { burst = \"0s\" }").split(':').next(), Some("limits.burst"));
        assert!(bad("incident_process = { uptime = 1.0, mean_duration = \"1h\", effect = {} }")
            .starts_with("incident_process.uptime"));
        assert!(bad("[[incidents]]\nstart = \"1m\"\nduration = \"0s\"\neffect = {}")
            .starts_with("incidents[0].duration"));
        assert!(bad(
            "limits = { acceleration = { window = \"60s\", max_growth = 0.5, floor_per_window = 5 } }"
        )
        .starts_with("limits.acceleration.max_growth"));
    }
}
