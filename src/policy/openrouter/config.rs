//! The `openrouter` policy's options as a scenario writes them, and their validation into the
//! resolved preferences the router runs on.
//!
//! Values whose spelling matters (`sort`, `partition`, percentile names, `routing`) are read as
//! plain strings and checked here rather than by serde, so a mistake is one line naming its
//! path relative to the policy table, e.g.
//! `provider.sort.by: unknown value "fast" (price, throughput, latency)`; the scenario adds the
//! `strategy[2].policy.` prefix. It must not know how endpoints are ordered.

use crate::suggest::suggestion;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bad `openrouter` option: `path: message`, one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct OpenRouterError {
    /// Where the option is, relative to the policy table (`provider.sort.by`).
    pub path: String,
    pub message: String,
}

impl OpenRouterError {
    pub(super) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        OpenRouterError { path: path.into(), message: message.into() }
    }
}

impl From<OpenRouterError> for crate::policy::config::PolicyError {
    fn from(e: OpenRouterError) -> Self {
        crate::policy::config::PolicyError::new(e.path, e.message)
    }
}

/// `unknown value "x"; did you mean "y"? (a, b, c)`.
fn unknown_value(path: &str, value: &str, known: &[&str]) -> OpenRouterError {
    OpenRouterError::new(
        path,
        format!("unknown value {value:?}{} ({})", suggestion(value, known), known.join(", ")),
    )
}

/// A preference threshold: a bare number (judged at p50) or percentile cutoffs
/// `{ p50 = 1.0, p90 = 3.0 }` (every one given must hold).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Threshold {
    AtP50(f64),
    Cutoffs(BTreeMap<String, f64>),
}

/// The percentiles OpenRouter accepts in a cutoff table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Percentile {
    P50,
    P75,
    P90,
    P99,
}

impl Percentile {
    const NAMES: [&'static str; 4] = ["p50", "p75", "p90", "p99"];

    fn parse(name: &str) -> Option<Percentile> {
        Some(match name {
            "p50" => Percentile::P50,
            "p75" => Percentile::P75,
            "p90" => Percentile::P90,
            "p99" => Percentile::P99,
            _ => return None,
        })
    }

    /// 0.5, 0.75, 0.9 or 0.99.
    pub fn fraction(self) -> f64 {
        match self {
            Percentile::P50 => 0.5,
            Percentile::P75 => 0.75,
            Percentile::P90 => 0.9,
            Percentile::P99 => 0.99,
        }
    }
}

impl Threshold {
    /// The cutoffs, in percentile order; errors name the field (and the key).
    pub fn resolve(&self, field: &str) -> Result<Vec<(Percentile, f64)>, OpenRouterError> {
        let cutoffs = match self {
            Threshold::AtP50(v) => vec![(Percentile::P50, *v, field.to_string())],
            Threshold::Cutoffs(map) => {
                if map.is_empty() {
                    return Err(OpenRouterError::new(
                        field,
                        "give a number or at least one percentile cutoff, e.g. { p50 = 1.0, p90 = 3.0 }",
                    ));
                }
                let mut cutoffs = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let path = format!("{field}.{key}");
                    let Some(p) = Percentile::parse(key) else {
                        return Err(OpenRouterError::new(
                            path,
                            format!("unknown percentile ({})", Percentile::NAMES.join(", ")),
                        ));
                    };
                    cutoffs.push((p, *v, path));
                }
                cutoffs
            }
        };
        let mut resolved = Vec::with_capacity(cutoffs.len());
        for (p, v, path) in cutoffs {
            if !crate::validate::is_positive(v) {
                return Err(OpenRouterError::new(path, format!("must be a finite number > 0, got {v}")));
            }
            resolved.push((p, v));
        }
        resolved.sort_by_key(|(p, _)| *p);
        Ok(resolved)
    }
}

/// What `sort` orders endpoints by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// Cheapest first, by the request's effective price.
    Price,
    /// Fastest decode first.
    Throughput,
    /// Lowest time to first token first.
    Latency,
}

/// Whether `sort` keeps model fallbacks in their groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Endpoints are grouped by model before sorting; fallback models remain fallbacks.
    Model,
    /// All endpoints of all models are sorted together.
    None,
}

/// A resolved `sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub by: SortBy,
    pub partition: Partition,
}

/// `sort = "price"` or `sort = { by = "price", partition = "none" }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum SortConfig {
    By(String),
    Table(BTreeMap<String, toml::Value>),
}

const SORT_BY: [&str; 3] = ["price", "throughput", "latency"];
const PARTITIONS: [&str; 2] = ["model", "none"];

fn sort_by(path: &str, value: &str) -> Result<SortBy, OpenRouterError> {
    match value {
        "price" => Ok(SortBy::Price),
        "throughput" => Ok(SortBy::Throughput),
        "latency" => Ok(SortBy::Latency),
        other => Err(unknown_value(path, other, &SORT_BY)),
    }
}

fn string<'a>(path: &str, value: &'a toml::Value) -> Result<&'a str, OpenRouterError> {
    value.as_str().ok_or_else(|| OpenRouterError::new(path, format!("expected a string, got {value}")))
}

impl SortConfig {
    /// Resolves the sort; `field` is its path (`provider.sort`).
    pub fn resolve(&self, field: &str) -> Result<Sort, OpenRouterError> {
        match self {
            SortConfig::By(by) => Ok(Sort { by: sort_by(field, by)?, partition: Partition::Model }),
            SortConfig::Table(table) => {
                let mut by = None;
                let mut partition = Partition::Model;
                for (key, value) in table {
                    let path = format!("{field}.{key}");
                    match key.as_str() {
                        "by" => by = Some(sort_by(&path, string(&path, value)?)?),
                        "partition" => {
                            partition = match string(&path, value)? {
                                "model" => Partition::Model,
                                "none" => Partition::None,
                                other => return Err(unknown_value(&path, other, &PARTITIONS)),
                            }
                        }
                        other => {
                            return Err(OpenRouterError::new(
                                path,
                                format!(
                                    "unknown field{} (by, partition)",
                                    suggestion(other, &["by", "partition"])
                                ),
                            ))
                        }
                    }
                }
                let by = by.ok_or_else(|| {
                    OpenRouterError::new(format!("{field}.by"), format!("missing ({})", SORT_BY.join(", ")))
                })?;
                Ok(Sort { by, partition })
            }
        }
    }
}

/// `max_price`: `prompt` and `completion` in USD per million tokens (list prices), `request`
/// in USD for the whole request at the endpoint's prices (its effective price).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    pub prompt: Option<f64>,
    pub completion: Option<f64>,
    pub request: Option<f64>,
}

impl MaxPrice {
    fn check(&self, field: &str) -> Result<(), OpenRouterError> {
        for (key, v) in [("prompt", self.prompt), ("completion", self.completion), ("request", self.request)]
        {
            if let Some(v) = v {
                if !crate::validate::is_non_negative(v) {
                    return Err(OpenRouterError::new(
                        format!("{field}.{key}"),
                        format!("must be a finite number >= 0, got {v}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The `provider` preferences object.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderPreferences {
    #[serde(default)]
    pub order: Vec<String>,
    #[serde(default = "yes")]
    pub allow_fallbacks: bool,
    #[serde(default)]
    pub only: Vec<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
    pub sort: Option<SortConfig>,
    /// Seconds to first token.
    pub preferred_max_latency: Option<Threshold>,
    /// Output tokens per second.
    pub preferred_min_throughput: Option<Threshold>,
    pub max_price: Option<MaxPrice>,
}

fn yes() -> bool {
    true
}

impl Default for ProviderPreferences {
    fn default() -> Self {
        ProviderPreferences {
            order: Vec::new(),
            allow_fallbacks: true,
            only: Vec::new(),
            ignore: Vec::new(),
            sort: None,
            preferred_max_latency: None,
            preferred_min_throughput: None,
            max_price: None,
        }
    }
}

/// How endpoints share a model's traffic when neither `sort` nor `order` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// The documented price-based load balancing: 1/price² among providers without a
    /// significant outage in the last 30 s.
    PriceLoadBalancing,
    /// The documented traffic routing: shares from adjusted price and speed, exploration,
    /// a breaker, retries drawn the same way.
    TrafficShares,
}

const ROUTINGS: [&str; 2] = ["price_load_balancing", "traffic_shares"];

/// Parameters of `routing = "traffic_shares"`. OpenRouter publishes the inputs, not the
/// formula: every number here is ours (see docs/policies.md).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficSharesConfig {
    /// Competitive edge: endpoints whose score is within this factor of the best share the
    /// competitive traffic (weight 1/ratio²); the others get exploration traffic only.
    #[serde(default = "default_edge")]
    pub edge: f64,
    /// Fraction of traffic spread evenly over every endpoint that is not paused.
    #[serde(default = "default_exploration")]
    pub exploration: f64,
    /// Window over which failure and 429 rates are measured.
    #[serde(default = "default_rate_window")]
    pub window: Duration,
    /// Attempts an endpoint needs in the window before its rates count (before: treated as
    /// reliable).
    #[serde(default = "default_min_attempts")]
    pub min_attempts: u32,
    /// Breaker: an endpoint whose failure + 429 rate exceeds the best peer's by at least this
    /// much is paused (tried only after every other endpoint of the model).
    #[serde(default = "default_breaker_gap")]
    pub breaker_gap: f64,
    /// How much the expected wait (TTFT + decode time of the request's output) weighs against
    /// price: score = adjusted price × seconds^time_exponent (0 = price only).
    #[serde(default = "default_time_exponent")]
    pub time_exponent: f64,
}

fn default_edge() -> f64 {
    1.5
}
fn default_exploration() -> f64 {
    0.05
}
fn default_rate_window() -> Duration {
    Duration::from_mins(5)
}
fn default_min_attempts() -> u32 {
    10
}
fn default_breaker_gap() -> f64 {
    0.5
}
fn default_time_exponent() -> f64 {
    1.0
}

impl Default for TrafficSharesConfig {
    fn default() -> Self {
        TrafficSharesConfig {
            edge: default_edge(),
            exploration: default_exploration(),
            window: default_rate_window(),
            min_attempts: default_min_attempts(),
            breaker_gap: default_breaker_gap(),
            time_exponent: default_time_exponent(),
        }
    }
}

impl TrafficSharesConfig {
    fn check(&self, field: &str) -> Result<(), OpenRouterError> {
        let at = |key: &str| format!("{field}.{key}");
        if !(self.edge.is_finite() && self.edge >= 1.0) {
            return Err(OpenRouterError::new(at("edge"), format!("must be >= 1, got {}", self.edge)));
        }
        if !(self.exploration.is_finite() && (0.0..1.0).contains(&self.exploration)) {
            return Err(OpenRouterError::new(
                at("exploration"),
                format!("must be in [0, 1), got {}", self.exploration),
            ));
        }
        if self.window.is_zero() {
            return Err(OpenRouterError::new(at("window"), "must be > 0"));
        }
        if !(crate::validate::is_positive(self.breaker_gap) && self.breaker_gap <= 1.0) {
            return Err(OpenRouterError::new(
                at("breaker_gap"),
                format!("must be in (0, 1], got {}", self.breaker_gap),
            ));
        }
        if !crate::validate::is_non_negative(self.time_exponent) {
            return Err(OpenRouterError::new(
                at("time_exponent"),
                format!("must be >= 0, got {}", self.time_exponent),
            ));
        }
        Ok(())
    }
}

/// The `openrouter` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpenRouterConfig {
    /// Model names (a deployment's `model`) in fallback order.
    pub models: Vec<String>,
    #[serde(default)]
    pub provider: ProviderPreferences,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// `price_load_balancing` (default) or `traffic_shares`: how endpoints share traffic when
    /// neither `provider.sort` nor `provider.order` is set.
    pub routing: Option<String>,
    /// Parameters of `routing = "traffic_shares"`.
    pub traffic_shares: Option<TrafficSharesConfig>,
}

/// The options after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub sort: Option<Sort>,
    /// (percentile, max seconds to first token), every one must hold.
    pub max_latency: Vec<(Percentile, f64)>,
    /// (percentile, min output tokens/s), every one must hold.
    pub min_throughput: Vec<(Percentile, f64)>,
    pub routing: Routing,
    pub traffic: TrafficSharesConfig,
}

impl OpenRouterConfig {
    /// Checks every option that is not a deployment or model name.
    pub fn resolve(&self) -> Result<Resolved, OpenRouterError> {
        if self.models.is_empty() {
            return Err(OpenRouterError::new("models", "list at least one model"));
        }
        if self.timeout.is_some_and(Duration::is_zero) {
            return Err(OpenRouterError::new("timeout", "must be > 0 (omit for none)"));
        }
        let p = &self.provider;
        let sort = p.sort.as_ref().map(|s| s.resolve("provider.sort")).transpose()?;
        let max_latency = p
            .preferred_max_latency
            .as_ref()
            .map(|t| t.resolve("provider.preferred_max_latency"))
            .transpose()?
            .unwrap_or_default();
        let min_throughput = p
            .preferred_min_throughput
            .as_ref()
            .map(|t| t.resolve("provider.preferred_min_throughput"))
            .transpose()?
            .unwrap_or_default();
        if let Some(max) = &p.max_price {
            max.check("provider.max_price")?;
        }
        let routing = match self.routing.as_deref() {
            None | Some("price_load_balancing") => Routing::PriceLoadBalancing,
            Some("traffic_shares") => Routing::TrafficShares,
            Some(other) => return Err(unknown_value("routing", other, &ROUTINGS)),
        };
        let traffic = self.traffic_shares.clone().unwrap_or_default();
        traffic.check("traffic_shares")?;
        if self.traffic_shares.is_some() && routing != Routing::TrafficShares {
            return Err(OpenRouterError::new(
                "traffic_shares",
                "only used with routing = \"traffic_shares\"",
            ));
        }
        Ok(Resolved { sort, max_latency, min_throughput, routing, traffic })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cutoffs(pairs: &[(&str, f64)]) -> Threshold {
        Threshold::Cutoffs(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    #[test]
    fn thresholds_take_a_bare_number_as_p50_or_several_cutoffs() {
        assert_eq!(Threshold::AtP50(3.0).resolve("x"), Ok(vec![(Percentile::P50, 3.0)]));
        assert_eq!(
            cutoffs(&[("p90", 3.0), ("p50", 1.0)]).resolve("x"),
            Ok(vec![(Percentile::P50, 1.0), (Percentile::P90, 3.0)])
        );
        assert_eq!(
            cutoffs(&[("p42", 2.5)]).resolve("provider.preferred_max_latency").unwrap_err().to_string(),
            "provider.preferred_max_latency.p42: unknown percentile (p50, p75, p90, p99)"
        );
        assert_eq!(
            cutoffs(&[("p50", 1.0), ("p90", -1.0)])
                .resolve("provider.preferred_min_throughput")
                .unwrap_err()
                .to_string(),
            "provider.preferred_min_throughput.p90: must be a finite number > 0, got -1"
        );
        assert!(cutoffs(&[]).resolve("x").unwrap_err().message.starts_with("give a number"));
        assert!(Threshold::AtP50(-1.0).resolve("x").is_err());
    }

    #[test]
    fn sort_takes_the_string_or_the_table_form_with_path_named_errors() {
        let table = |text: &str| -> SortConfig {
            #[derive(Deserialize)]
            struct Wrap {
                sort: SortConfig,
            }
            toml::from_str::<Wrap>(text).expect("valid toml").sort
        };
        assert_eq!(
            SortConfig::By("latency".into()).resolve("provider.sort"),
            Ok(Sort { by: SortBy::Latency, partition: Partition::Model })
        );
        assert_eq!(
            table("sort = { by = \"price\", partition = \"none\" }").resolve("provider.sort"),
            Ok(Sort { by: SortBy::Price, partition: Partition::None })
        );
        assert_eq!(
            table("sort = { by = \"throughput\" }").resolve("provider.sort"),
            Ok(Sort { by: SortBy::Throughput, partition: Partition::Model })
        );
        let error = |s: SortConfig| s.resolve("provider.sort").unwrap_err().to_string();
        assert_eq!(
            error(table("sort = { by = \"fast\" }")),
            "provider.sort.by: unknown value \"fast\" (price, throughput, latency)"
        );
        assert_eq!(
            error(SortConfig::By("prise".into())),
            "provider.sort: unknown value \"prise\"; did you mean \"price\"? (price, throughput, latency)"
        );
        assert_eq!(
            error(table("sort = { by = \"price\", partition = \"models\" }")),
            "provider.sort.partition: unknown value \"models\"; did you mean \"model\"? (model, none)"
        );
        assert_eq!(
            error(table("sort = { partition = \"none\" }")),
            "provider.sort.by: missing (price, throughput, latency)"
        );
        assert_eq!(error(table("sort = { by = 3 }")), "provider.sort.by: expected a string, got 3");
        assert!(error(table("sort = { by = \"price\", order = \"x\" }"))
            .starts_with("provider.sort.order: unknown field"));
    }

    #[test]
    fn routing_and_its_parameters_are_checked() {
        let config = |extra: &str| -> OpenRouterConfig {
            toml::from_str(&format!("models = [\"m\"]\n{extra}")).expect("valid toml")
        };
        assert_eq!(config("").resolve().map(|r| r.routing), Ok(Routing::PriceLoadBalancing));
        assert_eq!(
            config("routing = \"traffic_shares\"").resolve().map(|r| r.routing),
            Ok(Routing::TrafficShares)
        );
        assert_eq!(
            config("routing = \"traffic\"").resolve().unwrap_err().to_string(),
            "routing: unknown value \"traffic\" (price_load_balancing, traffic_shares)"
        );
        assert_eq!(
            config("routing = \"traffic_shares\"\ntraffic_shares = { exploration = 1.5 }")
                .resolve()
                .unwrap_err()
                .to_string(),
            "traffic_shares.exploration: must be in [0, 1), got 1.5"
        );
        assert_eq!(
            config("traffic_shares = { edge = 2.0 }").resolve().unwrap_err().to_string(),
            "traffic_shares: only used with routing = \"traffic_shares\""
        );
        assert_eq!(
            config("provider = { max_price = { request = -1.0 } }").resolve().unwrap_err().to_string(),
            "provider.max_price.request: must be a finite number >= 0, got -1"
        );
    }
}
