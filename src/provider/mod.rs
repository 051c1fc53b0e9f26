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
//!
//! The schema lives in [`config`], the runtime state of a deployment and the plan of one
//! attempt in [`state`], incident windows in [`incidents`]; this module holds the validated
//! deployment model.

pub mod config;
pub mod fleet;
pub mod incidents;
pub mod state;

pub use config::{
    BatchConfig, CacheWriteTtl, ConfigError, DeploymentConfig, ErrorsConfig, IncidentConfig,
    IncidentEffectConfig, IncidentProcessConfig, IncidentScope, LatencyConfig, LimitsConfig, PricesConfig,
};
pub use fleet::{Fleet, PoolConflict};
pub use incidents::{
    incident_windows, IncidentEffect, IncidentProcess, IncidentWindow, MAX_REPORTED_INCIDENTS,
    MIN_INCIDENT_MEAN_DURATION,
};
pub use state::{Admission, AttemptOptions, AttemptPlan, DeploymentState, FailureKind, PlannedOutcome};

use crate::dist::Dist;
use crate::limiter::{Limit, Limits};
use crate::rng::hash_str;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use config::{dist, non_negative, positive, probability};

/// Dense index of a deployment within a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub u16);

impl DeploymentId {
    pub fn index(self) -> usize {
        usize::from(self.0)
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

/// The batch API of a deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchModel {
    pub completion_ms: Dist,
    pub max_completion: Duration,
    pub max_queue: u64,
    pub max_queue_tokens: Option<u64>,
}

/// Quotas a deployment shares with every deployment naming the same pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PooledLimits {
    pub name: String,
    pub quotas: Vec<Limit>,
}

/// One routable (provider, model) pair, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployment {
    pub name: String,
    /// Stable hash of `name`, part of every random draw's key.
    pub name_hash: u64,
    pub provider: String,
    pub model: String,
    /// The API key's label, if given (see [`DeploymentConfig::credential`]).
    pub credential: Option<String>,
    pub prices: Prices,
    /// The deployment's own server-side limits.
    pub limits: Limits,
    /// The shared limiters it also answers to (a model family's pooled limit, an
    /// organisation's or an API key's quota), by name; see [`fleet`].
    pub pools: Vec<PooledLimits>,
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
    pub mid_stream_error_rate: f64,
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
        let cache_write_5m = non_negative(
            "prices.cache_write_usd_per_mtok",
            p.cache_write_usd_per_mtok.unwrap_or(input * 1.25),
        )?;
        let cache_write_1h = non_negative(
            "prices.cache_write_1h_usd_per_mtok",
            p.cache_write_1h_usd_per_mtok.unwrap_or(input * 2.0),
        )?;
        let cache_write = match p.cache_write_ttl {
            CacheWriteTtl::FiveMinutes => cache_write_5m,
            CacheWriteTtl::OneHour => cache_write_1h,
        };
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
        let built = l.build().map_err(|e| ConfigError::new(format!("limits.{}", e.field), e.message))?;
        let pools = built.pools.into_iter().map(|(name, quotas)| PooledLimits { name, quotas }).collect();
        let limits = built.own;

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
                if !(crate::validate::is_positive(pc.uptime) && pc.uptime < 1.0) {
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
                    provider_wide: pc.scope == IncidentScope::Provider,
                    draws_key: match pc.scope {
                        IncidentScope::Deployment => hash_str(name),
                        IncidentScope::Provider => incidents::provider_draws_key(&c.provider),
                    },
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
                    max_queue_tokens: match b.max_queue_tokens {
                        Some(0) => {
                            return Err(ConfigError::new(
                                "batch.max_queue_tokens",
                                "must be > 0 (omit it for no token limit)",
                            ))
                        }
                        other => other,
                    },
                })
            }
        };

        Ok(Deployment {
            name: name.to_string(),
            name_hash: hash_str(name),
            provider: c.provider.clone(),
            model: c.model.clone(),
            credential: match &c.credential {
                Some(k) if k.trim().is_empty() => {
                    return Err(ConfigError::new(
                        "credential",
                        "must not be empty (omit it for the deployment's own key)",
                    ))
                }
                other => other.clone(),
            },
            prices,
            limits,
            pools,
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
            mid_stream_error_rate: probability(
                "errors.mid_stream_error_rate",
                c.errors.mid_stream_error_rate,
            )?,
            incidents,
            incident_process,
            batch,
        })
    }

    /// Input tokens of `request` as this deployment's ITPM counts them: uncached input
    /// (which includes cache writes), plus cache reads only where the model's flag says so.
    pub fn counted_input_tokens(&self, request: &Request) -> u64 {
        counted_input_tokens(self.cache_reads_count_toward_itpm, request)
    }
}

/// The rule of [`Deployment::counted_input_tokens`], for a client-side limiter that mirrors a
/// deployment's counting without holding the deployment.
pub fn counted_input_tokens(cache_reads_count_toward_itpm: bool, request: &Request) -> u64 {
    if cache_reads_count_toward_itpm {
        request.input_tokens
    } else {
        request.uncached_input_tokens()
    }
}

/// The deployment a gateway's model name stands for: the one named `name`, else the one
/// deployment serving the model `name` or its part after the last `/`
/// (`anthropic/claude-sonnet-4.5` → `claude-sonnet-4.5`); `None` when none or several do.
/// The one rule by which a LiteLLM `config.yaml` entry and a gateway log's row find their
/// scenario deployment.
pub fn deployment_for_model<'a>(deployments: &'a [Deployment], name: &str) -> Option<&'a Deployment> {
    if let Some(d) = deployments.iter().find(|d| d.name == name) {
        return Some(d);
    }
    let tail = name.rsplit('/').next().unwrap_or(name);
    let mut serving = deployments.iter().filter(|d| d.model == tail || d.model == name);
    match (serving.next(), serving.next()) {
        (Some(d), None) => Some(d),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::ClassId;

    /// A deployment config with constant latency and `extra` TOML (shared by the provider tests).
    pub(crate) fn config(extra: &str) -> DeploymentConfig {
        toml::from_str(&format!(
            "provider = \"p\"\nmodel = \"m\"\nprices = {{ input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }}\n\
             latency = {{ ttft_ms = {{ dist = \"constant\", value = 1000 }}, output_tokens_per_s = {{ dist = \"constant\", value = 50 }}, ttft_ms_per_1k_uncached_input = 100 }}\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn a_model_name_finds_the_deployment_named_so_or_the_one_serving_it() {
        let with_model = |name: &str, model: &str| {
            let mut c = config("");
            c.model = model.to_string();
            Deployment::from_config(name, &c).unwrap()
        };
        let deployments = [
            with_model("anthropic/sonnet", "claude-sonnet-4-5"),
            with_model("bedrock/haiku", "claude-haiku-4-5"),
            with_model("anthropic/haiku", "claude-haiku-4-5"),
        ];
        let find = |name: &str| deployment_for_model(&deployments, name).map(|d| d.name.as_str());
        assert_eq!(find("anthropic/haiku"), Some("anthropic/haiku"));
        assert_eq!(find("claude-sonnet-4-5"), Some("anthropic/sonnet"));
        assert_eq!(find("anthropic/claude-sonnet-4-5"), Some("anthropic/sonnet"));
        // Two deployments serve Haiku: the model alone names neither.
        assert_eq!(find("claude-haiku-4-5"), None);
        assert_eq!(find("gpt-4o"), None);
    }

    pub(crate) fn request(input: u64, cached: u64, cache_write: u64, output: u64) -> Request {
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

    /// Anthropic bills a 1-hour cache write at 2× input ($6/M on a $3/M model) against 1.25×
    /// for the default 5 minutes; the client's `ttl` picks which one every write pays.
    #[test]
    fn a_one_hour_cache_lifetime_bills_writes_at_twice_the_input_price() {
        let usage = Usage::of(&request(100_000, 80_000, 5_000, 1_000), 1_000);
        let rest = 15_000.0 * 3e-6 + 80_000.0 * 0.3e-6 + 1_000.0 * 15e-6;
        let mut c = config("");
        c.prices.cache_write_ttl = CacheWriteTtl::OneHour;
        let hour = Deployment::from_config("p/m", &c).unwrap();
        assert!((hour.prices.cost_usd(&usage, false) - (rest + 5_000.0 * 6e-6)).abs() < 1e-12);
        c.prices.cache_write_1h_usd_per_mtok = Some(7.0);
        let priced = Deployment::from_config("p/m", &c).unwrap();
        assert!((priced.prices.cost_usd(&usage, false) - (rest + 5_000.0 * 7e-6)).abs() < 1e-12);
        c.prices.cache_write_1h_usd_per_mtok = Some(-1.0);
        let err = Deployment::from_config("p/m", &c).unwrap_err();
        assert_eq!(err.field, "prices.cache_write_1h_usd_per_mtok");
        let parsed: Result<DeploymentConfig, _> = toml::from_str(
            "provider = \"p\"\nmodel = \"m\"\nprices = { input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0, cache_write_ttl = \"2h\" }\n\
             latency = { ttft_ms = { dist = \"constant\", value = 1000 }, output_tokens_per_s = { dist = \"constant\", value = 50 } }\n",
        );
        let message = parsed.unwrap_err().to_string();
        assert!(message.contains("unknown variant `2h`, expected `5m` or `1h`"), "{message}");
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
