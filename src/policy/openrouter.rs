//! OpenRouter-style provider routing: a list of models (fallbacks in order, on any error), and
//! per model its endpoints (our deployments serving that model) ordered by the `provider`
//! preferences.
//!
//! Semantics (OpenRouter docs; our choices where they are silent are marked *choice*):
//! - `only` / `ignore` filter endpoints by provider (or deployment) name.
//! - `max_price` (USD per million tokens, `prompt` and `completion`) is hard: endpoints above
//!   it are removed, and if nothing is left the request fails with cause `max_price`.
//! - `order` lists providers to try first, in order; with `allow_fallbacks` (default true) the
//!   other endpoints follow in default order, without it only the listed ones are used.
//! - `sort` = `price` (cheapest first), `throughput` (fastest decode first) or `latency`
//!   (lowest time to first token first); `sort` or `order` turns load balancing off.
//! - Default load balancing (no `sort`, no `order`): endpoints with a significant failure in
//!   the last 30 s go last (*choice*: at least 2 failures and at least 25% of that endpoint's
//!   attempts in the window); the first endpoint is drawn among the stable ones with weight
//!   1/price² (*choice*: price = prompt + completion list price per million tokens), the other
//!   stable ones follow cheapest first, then the unstable ones.
//! - `preferred_max_latency` / `preferred_min_throughput` are soft: endpoints that miss them
//!   move to the end (order otherwise kept). They are judged on the router's own observations
//!   over a rolling 5-minute window at p50 (or the percentile given, e.g. `{ p90 = 3.0 }`).
//!   *Choice*: before an endpoint has been observed, its published figures (the deployment's
//!   median time to first token and mean speed) stand in.
//! - A failed attempt moves to the next endpoint at once (OpenRouter retries other providers
//!   of the same model first, then the next model); after the last one the request gives up.

use super::config::Catalog;
use super::observed::Observed;
use super::{AttemptReport, Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A preference threshold: a bare number (judged at p50) or `{ p90 = 3.0 }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Threshold {
    AtP50(f64),
    AtPercentile(BTreeMap<String, f64>),
}

impl Threshold {
    /// (quantile, value); the error names the field.
    fn resolve(&self, field: &str) -> Result<(f64, f64), String> {
        let (q, v) = match self {
            Threshold::AtP50(v) => (0.5, *v),
            Threshold::AtPercentile(map) => {
                let [(key, v)] = map.iter().collect::<Vec<_>>()[..] else {
                    return Err(format!("{field}: give one percentile, e.g. {{ p90 = 3.0 }}"));
                };
                let q = match key.as_str() {
                    "p50" => 0.5,
                    "p75" => 0.75,
                    "p90" => 0.9,
                    "p99" => 0.99,
                    other => {
                        return Err(format!("{field}: unknown percentile {other:?} (p50, p75, p90, p99)"))
                    }
                };
                (q, *v)
            }
        };
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{field}: must be a finite number > 0, got {v}"));
        }
        Ok((q, v))
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    Price,
    Throughput,
    Latency,
}

/// `max_price`, USD per million tokens.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    pub prompt: Option<f64>,
    pub completion: Option<f64>,
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
    pub sort: Option<Sort>,
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
}

#[derive(Clone, Copy, Debug)]
struct Endpoint {
    id: DeploymentId,
    /// Position of the first `provider.order` entry naming this endpoint's provider or
    /// deployment, resolved once when the policy is built.
    order_rank: Option<usize>,
    price_per_mtok: f64,
    prior_ttft_ms: f64,
    prior_tokens_per_s: f64,
}

/// The OpenRouter-style router.
#[derive(Clone, Debug)]
pub struct OpenRouter {
    /// Per model, its endpoints after `only`/`ignore`/`max_price`.
    models: Vec<Vec<Endpoint>>,
    prefs: ProviderPreferences,
    latency_pref: Option<(f64, f64)>,
    throughput_pref: Option<(f64, f64)>,
    observed: Observed,
    options: AttemptOptions,
}

impl OpenRouter {
    pub fn build(config: &OpenRouterConfig, catalog: &Catalog) -> Result<OpenRouter, String> {
        if config.models.is_empty() {
            return Err("models: list at least one model".into());
        }
        let p = &config.provider;
        let latency_pref = p
            .preferred_max_latency
            .as_ref()
            .map(|t| t.resolve("provider.preferred_max_latency"))
            .transpose()?;
        let throughput_pref = p
            .preferred_min_throughput
            .as_ref()
            .map(|t| t.resolve("provider.preferred_min_throughput"))
            .transpose()?;
        let known_providers: Vec<&str> = catalog.deployments.iter().map(|d| d.provider.as_str()).collect();
        for (field, names) in [("order", &p.order), ("only", &p.only), ("ignore", &p.ignore)] {
            for (i, name) in names.iter().enumerate() {
                if !catalog.deployments.iter().any(|d| &d.provider == name || &d.name == name) {
                    return Err(format!(
                        "provider.{field}[{i}]: unknown provider {name:?}{} (providers: {})",
                        crate::suggest::suggestion(name, &known_providers),
                        known_providers.join(", ")
                    ));
                }
            }
        }
        let matches = |list: &[String], e: &crate::provider::Deployment| {
            list.iter().any(|n| n == &e.provider || n == &e.name)
        };
        let mut models = Vec::new();
        for (i, model) in config.models.iter().enumerate() {
            let serving: Vec<_> =
                catalog.deployments.iter().enumerate().filter(|(_, d)| &d.model == model).collect();
            if serving.is_empty() {
                let known: Vec<&str> = catalog.deployments.iter().map(|d| d.model.as_str()).collect();
                return Err(format!(
                    "models[{i}]: no deployment serves model {model:?}{} (models: {})",
                    crate::suggest::suggestion(model, &known),
                    known.join(", ")
                ));
            }
            let endpoints = serving
                .into_iter()
                .filter(|(_, d)| (p.only.is_empty() || matches(&p.only, d)) && !matches(&p.ignore, d))
                .filter(|(_, d)| {
                    p.max_price.as_ref().is_none_or(|max| {
                        max.prompt.is_none_or(|m| d.prices.input_usd_per_token * 1e6 <= m + 1e-9)
                            && max.completion.is_none_or(|m| d.prices.output_usd_per_token * 1e6 <= m + 1e-9)
                    })
                })
                .map(|(index, d)| Endpoint {
                    id: DeploymentId(index as u16),
                    order_rank: p.order.iter().position(|n| n == &d.provider || n == &d.name),
                    price_per_mtok: (d.prices.input_usd_per_token + d.prices.output_usd_per_token) * 1e6,
                    prior_ttft_ms: d.ttft_ms.median(),
                    prior_tokens_per_s: d.output_tokens_per_s.mean(),
                })
                .collect();
            models.push(endpoints);
        }
        let latency_quantile = latency_pref.map(|(q, _)| q).unwrap_or(0.5);
        // "p90 throughput ≥ x" means 90% of answers decode at least that fast: the 10th
        // percentile of observed speeds.
        let speed_quantile = throughput_pref.map(|(q, _)| 1.0 - q).unwrap_or(0.5);
        Ok(OpenRouter {
            models,
            prefs: p.clone(),
            latency_pref,
            throughput_pref,
            observed: Observed::new(
                catalog.deployments.len(),
                Duration::from_mins(5),
                Duration::from_secs(30),
                latency_quantile,
                speed_quantile,
            ),
            options: AttemptOptions { timeout: config.timeout, ..AttemptOptions::default() },
        })
    }

    fn ttft_ms(&mut self, e: &Endpoint, now: Instant) -> f64 {
        self.observed.ttft_ms(e.id, now).unwrap_or(e.prior_ttft_ms)
    }

    fn tokens_per_s(&mut self, e: &Endpoint, now: Instant) -> f64 {
        self.observed.output_tokens_per_s(e.id, now).unwrap_or(e.prior_tokens_per_s)
    }

    fn unstable(&mut self, e: &Endpoint, now: Instant) -> bool {
        let (failures, attempts) = self.observed.recent_failures(e.id, now);
        failures >= 2 && failures * 4 >= attempts
    }

    /// The endpoints of one model, in the order they will be tried.
    fn order_model(&mut self, endpoints: &[Endpoint], now: Instant, rng: &mut SplitMix64) -> Vec<Endpoint> {
        let by_price =
            |list: &mut Vec<Endpoint>| list.sort_by(|a, b| a.price_per_mtok.total_cmp(&b.price_per_mtok));
        let mut ordered: Vec<Endpoint> = if !self.prefs.order.is_empty() {
            let mut listed: Vec<Endpoint> =
                endpoints.iter().filter(|e| e.order_rank.is_some()).copied().collect();
            listed.sort_by_key(|e| e.order_rank);
            if self.prefs.allow_fallbacks {
                let mut rest: Vec<Endpoint> =
                    endpoints.iter().filter(|e| e.order_rank.is_none()).copied().collect();
                by_price(&mut rest);
                listed.extend(rest);
            }
            listed
        } else if let Some(sort) = self.prefs.sort {
            let mut list = endpoints.to_vec();
            match sort {
                Sort::Price => by_price(&mut list),
                Sort::Latency => {
                    let keys: Vec<f64> = list.iter().map(|e| self.ttft_ms(e, now)).collect();
                    sort_by_keys(&mut list, &keys, false);
                }
                Sort::Throughput => {
                    let keys: Vec<f64> = list.iter().map(|e| self.tokens_per_s(e, now)).collect();
                    sort_by_keys(&mut list, &keys, true);
                }
            }
            list
        } else {
            let (mut stable, mut unstable): (Vec<Endpoint>, Vec<Endpoint>) = (Vec::new(), Vec::new());
            for e in endpoints {
                if self.unstable(e, now) {
                    unstable.push(*e);
                } else {
                    stable.push(*e);
                }
            }
            by_price(&mut stable);
            by_price(&mut unstable);
            if stable.len() > 1 {
                let weights: Vec<f64> =
                    stable.iter().map(|e| 1.0 / (e.price_per_mtok.max(1e-9)).powi(2)).collect();
                let total: f64 = weights.iter().sum();
                let mut target = rng.next_open01() * total;
                let mut first = stable.len() - 1;
                for (i, w) in weights.iter().enumerate() {
                    if target < *w {
                        first = i;
                        break;
                    }
                    target -= w;
                }
                let chosen = stable.remove(first);
                stable.insert(0, chosen);
            }
            stable.extend(unstable);
            stable
        };
        if !self.prefs.allow_fallbacks && self.prefs.order.is_empty() {
            ordered.truncate(1);
        }
        // Soft preferences: endpoints that miss them move to the end, order otherwise kept.
        if self.latency_pref.is_some() || self.throughput_pref.is_some() {
            let mut meets = Vec::new();
            let mut misses = Vec::new();
            for e in ordered {
                let latency_ok =
                    self.latency_pref.is_none_or(|(_, max_s)| self.ttft_ms(&e, now) <= max_s * 1000.0);
                let throughput_ok =
                    self.throughput_pref.is_none_or(|(_, min)| self.tokens_per_s(&e, now) >= min);
                if latency_ok && throughput_ok {
                    meets.push(e);
                } else {
                    misses.push(e);
                }
            }
            meets.extend(misses);
            ordered = meets;
        }
        ordered
    }
}

/// Sorts `list` by `keys` (ascending, or descending when `descending`), stable.
fn sort_by_keys(list: &mut Vec<Endpoint>, keys: &[f64], descending: bool) {
    let mut indexed: Vec<(f64, Endpoint)> = keys.iter().copied().zip(list.drain(..)).collect();
    indexed.sort_by(|a, b| if descending { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) });
    list.extend(indexed.into_iter().map(|(_, e)| e));
}

impl Policy for OpenRouter {
    fn route(
        &mut self,
        now: Instant,
        _request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts == 0 && history.plan.is_empty() {
            for m in 0..self.models.len() {
                // Taken out and put back: ordering reads the router's own observations (&mut self).
                let endpoints = std::mem::take(&mut self.models[m]);
                let ordered = self.order_model(&endpoints, now, rng);
                history.plan.extend(ordered.iter().map(|e| e.id));
                self.models[m] = endpoints;
            }
            if history.plan.is_empty() {
                return Decision::Reject {
                    reason: if self.prefs.max_price.is_some() { "max_price" } else { "no_endpoint" },
                };
            }
        } else if history.last.is_some() && !history.resumed_after_wait {
            history.cursor += 1;
        }
        // Skip endpoints the request learned can never serve it.
        while history.cursor < history.plan.len() && history.memo(history.plan[history.cursor]).never {
            history.cursor += 1;
        }
        match history.plan.get(history.cursor) {
            Some(d) => Decision::attempt(*d, self.options),
            None => Decision::GiveUp,
        }
    }

    fn observe(&mut self, _now: Instant, report: &AttemptReport) {
        self.observed.record(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_bare_numbers_as_p50_and_tables_as_a_percentile() {
        assert_eq!(Threshold::AtP50(3.0).resolve("x"), Ok((0.5, 3.0)));
        let p90 = Threshold::AtPercentile(BTreeMap::from([("p90".to_string(), 2.5)]));
        assert_eq!(p90.resolve("x"), Ok((0.9, 2.5)));
        let bad = Threshold::AtPercentile(BTreeMap::from([("p42".to_string(), 2.5)]));
        assert!(bad
            .resolve("provider.preferred_max_latency")
            .unwrap_err()
            .starts_with("provider.preferred_max_latency: unknown percentile"));
        assert!(Threshold::AtP50(-1.0).resolve("x").is_err());
    }
}
