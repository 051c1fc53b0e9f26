//! OpenRouter-style provider routing: a list of models (fallbacks in order, on any error), and
//! per model its endpoints (our deployments serving that model), ordered per request by the
//! `provider` preferences. This module owns the ordering; [`config`] owns the options and
//! their errors, [`Observed`](crate::policy::observed::Observed) what the router has observed, [`traffic`] the share arithmetic.
//!
//! Semantics, from OpenRouter's provider-routing pages (sentences quoted in docs/policies.md;
//! our choices where the pages are silent are marked *choice*):
//! - Prices are **effective**: the request's own mix (uncached input, cache reads at the
//!   cache-read price, cache writes, output) priced at the endpoint. Used by the 1/price²
//!   draw, by `sort = "price"`, by `max_price.request` and by the traffic shares.
//! - `only` / `ignore` filter endpoints by provider (or deployment) name. `max_price` is hard:
//!   `prompt` / `completion` cap the list prices per million tokens, `request` caps the
//!   request's effective price; if nothing is left the request fails with cause `max_price`.
//! - `order` lists providers to try first; with `allow_fallbacks` (default true) the others
//!   follow (by `sort` if given, else cheapest first); without it only the listed ones, and
//!   with no `order` only each model's first endpoint (fallback models still follow).
//! - `sort` = `price` | `throughput` | `latency`, or `{ by, partition }`: `partition = "model"`
//!   (default) sorts within each model and keeps fallback models as fallbacks, `"none"` sorts
//!   every endpoint of every model together. `sort` or `order` turns load balancing off.
//! - No `sort`, no `order`: `routing = "price_load_balancing"` (default) puts endpoints with a
//!   significant failure in the last 30 s last (*choice*: ≥ 2 failures and ≥ 25% of their
//!   attempts), draws the first of the stable ones with weight 1/price², and keeps the other
//!   stable ones cheapest first as fallbacks; `routing = "traffic_shares"` gives each endpoint
//!   a share from its adjusted price and speed (competitive edge, exploration, breaker: see
//!   [`traffic`]) and draws every attempt by share from the endpoints left.
//! - `preferred_max_latency` / `preferred_min_throughput` are soft: an endpoint is preferred
//!   only if every cutoff given holds; the others move to the end of the whole list (so a
//!   fallback model that meets them can go before the primary), order otherwise kept. They
//!   are judged on the router's own observations over a rolling 5-minute window; *choice*:
//!   before an endpoint has been observed, its published figures (median TTFT, mean speed)
//!   stand in at every percentile, and a throughput cutoff `pXX` is the speed XX% of answers
//!   reach (the (100 − XX)th percentile of observed speeds).
//! - A failed attempt moves to the next endpoint in the request's list at once; after the last
//!   one the request gives up.

pub mod config;
pub mod traffic;

pub use config::{
    MaxPrice, OpenRouterConfig, OpenRouterError, Partition, Percentile, ProviderPreferences, Routing, Sort,
    SortBy, SortConfig, Threshold, TrafficSharesConfig,
};

use super::config::Catalog;
use super::{AttemptReport, Decision, History, Policy};
use crate::policy::observed::Observed;
use crate::provider::{AttemptOptions, DeploymentId, Prices, Usage};
use crate::rng::SplitMix64;
use crate::suggest::suggestion;
use crate::time::Instant;
use crate::trace::Request;
use config::Resolved;
use std::collections::HashMap;
use traffic::EndpointView;

#[derive(Clone, Copy, Debug)]
struct Endpoint {
    id: DeploymentId,
    /// Position of the first `provider.order` entry naming this endpoint's provider or
    /// deployment, resolved once when the policy is built.
    order_rank: Option<usize>,
    prior_ttft_ms: f64,
    prior_tokens_per_s: f64,
}

/// An endpoint considered for one request, with that request's effective price there.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    endpoint: Endpoint,
    price_usd: f64,
    /// Index of its model in `models`.
    model: usize,
}

/// The OpenRouter-style router.
#[derive(Clone, Debug)]
pub struct OpenRouter {
    /// Per model, its endpoints after `only` / `ignore` / `max_price.prompt|completion`.
    models: Vec<Vec<Endpoint>>,
    /// Every deployment's prices, by deployment index (for effective prices).
    prices: Vec<Prices>,
    prefs: ProviderPreferences,
    resolved: Resolved,
    stats: Observed,
    options: AttemptOptions,
    /// Each request's ordering of endpoints, fixed on its first call, until it is forgotten.
    plans: HashMap<u64, RequestPlan>,
}

/// One request's endpoints in the order they are tried, and how far it has got.
#[derive(Clone, Debug, Default)]
struct RequestPlan {
    order: Vec<DeploymentId>,
    cursor: usize,
}

/// The request priced at `prices`: uncached input, cache reads, cache writes and output at
/// their own prices (what the provider would bill, batch discount aside).
pub fn effective_price_usd(request: &Request, prices: &Prices) -> f64 {
    prices.cost_usd(&Usage::of(request, request.output_tokens), false)
}

fn matches(list: &[String], d: &crate::provider::Deployment) -> bool {
    list.iter().any(|n| n == &d.provider || n == &d.name)
}

impl OpenRouter {
    pub fn build(config: &OpenRouterConfig, catalog: &Catalog) -> Result<OpenRouter, OpenRouterError> {
        let resolved = config.resolve()?;
        let p = &config.provider;
        let known_providers: Vec<&str> = catalog.deployments.iter().map(|d| d.provider.as_str()).collect();
        for (field, names) in [("order", &p.order), ("only", &p.only), ("ignore", &p.ignore)] {
            for (i, name) in names.iter().enumerate() {
                if !catalog.deployments.iter().any(|d| &d.provider == name || &d.name == name) {
                    return Err(OpenRouterError::new(
                        format!("provider.{field}[{i}]"),
                        format!(
                            "unknown provider {name:?}{} (providers: {})",
                            suggestion(name, &known_providers),
                            known_providers.join(", ")
                        ),
                    ));
                }
            }
        }
        let max = p.max_price.clone().unwrap_or_default();
        let mut models = Vec::new();
        for (i, model) in config.models.iter().enumerate() {
            let serving: Vec<_> =
                catalog.deployments.iter().enumerate().filter(|(_, d)| &d.model == model).collect();
            if serving.is_empty() {
                let known: Vec<&str> = catalog.deployments.iter().map(|d| d.model.as_str()).collect();
                return Err(OpenRouterError::new(
                    format!("models[{i}]"),
                    format!(
                        "no deployment serves model {model:?}{} (models: {})",
                        suggestion(model, &known),
                        known.join(", ")
                    ),
                ));
            }
            let endpoints = serving
                .into_iter()
                .filter(|(_, d)| (p.only.is_empty() || matches(&p.only, d)) && !matches(&p.ignore, d))
                .filter(|(_, d)| {
                    max.prompt.is_none_or(|m| d.prices.input_usd_per_token * 1e6 <= m + 1e-9)
                        && max.completion.is_none_or(|m| d.prices.output_usd_per_token * 1e6 <= m + 1e-9)
                })
                .map(|(index, d)| Endpoint {
                    id: DeploymentId(index as u16),
                    order_rank: p.order.iter().position(|n| n == &d.provider || n == &d.name),
                    prior_ttft_ms: d.ttft_ms.median(),
                    prior_tokens_per_s: d.output_tokens_per_s.mean(),
                })
                .collect();
            models.push(endpoints);
        }
        // Index 0 of each list is the median (sorting, scores); then one per cutoff.
        let ttft_quantiles =
            std::iter::once(0.5).chain(resolved.max_latency.iter().map(|(q, _)| q.fraction())).collect();
        // "p90 throughput ≥ x": 90% of answers decode at least that fast, the 10th percentile.
        let speed_quantiles = std::iter::once(0.5)
            .chain(resolved.min_throughput.iter().map(|(q, _)| 1.0 - q.fraction()))
            .collect();
        Ok(OpenRouter {
            models,
            prices: catalog.deployments.iter().map(|d| d.prices.clone()).collect(),
            prefs: p.clone(),
            stats: Observed::new(
                catalog.deployments.len(),
                Some(resolved.traffic.window),
                ttft_quantiles,
                speed_quantiles,
            ),
            resolved,
            options: AttemptOptions { timeout: config.timeout, ..AttemptOptions::default() },
            plans: HashMap::new(),
        })
    }

    /// Observed TTFT (ms) at the `i`-th tracked quantile (0 = median), else the prior.
    fn ttft_ms(stats: &mut Observed, e: &Endpoint, now: Instant, i: usize) -> f64 {
        stats.ttft_ms(e.id, now, i).unwrap_or(e.prior_ttft_ms)
    }

    /// Observed output speed at the `i`-th tracked quantile (0 = median), else the prior.
    fn tokens_per_s(stats: &mut Observed, e: &Endpoint, now: Instant, i: usize) -> f64 {
        stats.output_tokens_per_s(e.id, now, i).unwrap_or(e.prior_tokens_per_s)
    }

    /// Sorts `list` by `by` (stable: ties keep their order).
    fn sort(stats: &mut Observed, list: &mut Vec<Candidate>, by: SortBy, now: Instant) {
        let keys: Vec<f64> = list
            .iter()
            .map(|c| match by {
                SortBy::Price => c.price_usd,
                SortBy::Latency => Self::ttft_ms(stats, &c.endpoint, now, 0),
                // Fastest first.
                SortBy::Throughput => -Self::tokens_per_s(stats, &c.endpoint, now, 0),
            })
            .collect();
        let mut keyed: Vec<(f64, Candidate)> = keys.into_iter().zip(list.drain(..)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        list.extend(keyed.into_iter().map(|(_, c)| c));
    }

    /// The documented default: stable endpoints first (first one drawn 1/price², the others
    /// cheapest first), then those with a significant failure in the last 30 s.
    fn price_load_balancing(
        stats: &mut Observed,
        group: Vec<Candidate>,
        now: Instant,
        rng: &mut SplitMix64,
    ) -> Vec<Candidate> {
        let (mut stable, mut unstable): (Vec<Candidate>, Vec<Candidate>) = group.into_iter().partition(|c| {
            let (failures, attempts) = stats.recent_failures(c.endpoint.id, now);
            !(failures >= 2 && failures * 4 >= attempts)
        });
        Self::sort(stats, &mut stable, SortBy::Price, now);
        Self::sort(stats, &mut unstable, SortBy::Price, now);
        if stable.len() > 1 {
            let prices: Vec<f64> = stable.iter().map(|c| c.price_usd).collect();
            let first = traffic::inverse_square_first(&prices, rng);
            let chosen = stable.remove(first);
            stable.insert(0, chosen);
        }
        stable.extend(unstable);
        stable
    }

    /// The traffic shares: every attempt drawn by share from the endpoints left, paused
    /// endpoints last.
    fn traffic_shares(
        stats: &mut Observed,
        config: &TrafficSharesConfig,
        group: Vec<Candidate>,
        request: &Request,
        now: Instant,
        rng: &mut SplitMix64,
    ) -> Vec<Candidate> {
        let views: Vec<EndpointView> = group
            .iter()
            .map(|c| EndpointView {
                price_usd: c.price_usd,
                ttft_s: Self::ttft_ms(stats, &c.endpoint, now, 0) / 1000.0,
                output_tokens_per_s: Self::tokens_per_s(stats, &c.endpoint, now, 0),
                rates: stats.rates(c.endpoint.id, now),
            })
            .collect();
        let scores: Vec<f64> =
            views.iter().map(|v| traffic::score(v, request.output_tokens, config)).collect();
        let rates: Vec<_> = views.iter().map(|v| v.rates).collect();
        let paused = traffic::paused(&rates, config);
        let shares = traffic::shares(&scores, &paused, config);
        traffic::order(&scores, &shares, rng).into_iter().map(|i| group[i]).collect()
    }

    /// Whether `e` meets every latency and throughput cutoff.
    fn preferred(&mut self, e: &Endpoint, now: Instant) -> bool {
        let latency_ok = self
            .resolved
            .max_latency
            .iter()
            .enumerate()
            .all(|(k, (_, max_s))| Self::ttft_ms(&mut self.stats, e, now, k + 1) <= max_s * 1000.0);
        latency_ok
            && self
                .resolved
                .min_throughput
                .iter()
                .enumerate()
                .all(|(k, (_, min))| Self::tokens_per_s(&mut self.stats, e, now, k + 1) >= *min)
    }

    /// The endpoints `request` will try, in order (empty: nothing qualifies).
    fn plan(&mut self, now: Instant, request: &Request, rng: &mut SplitMix64) -> Vec<DeploymentId> {
        let max_request_usd = self.prefs.max_price.as_ref().and_then(|m| m.request);
        let groups: Vec<Vec<Candidate>> = self
            .models
            .iter()
            .enumerate()
            .map(|(model, endpoints)| {
                endpoints
                    .iter()
                    .map(|e| Candidate {
                        endpoint: *e,
                        price_usd: effective_price_usd(request, &self.prices[e.id.index()]),
                        model,
                    })
                    .filter(|c| max_request_usd.is_none_or(|m| c.price_usd <= m * (1.0 + 1e-9)))
                    .collect()
            })
            .collect();
        let stats = &mut self.stats;
        let mut ordered: Vec<Candidate> = Vec::new();
        if !self.prefs.order.is_empty() {
            for group in groups {
                let (mut listed, mut rest): (Vec<Candidate>, Vec<Candidate>) =
                    group.into_iter().partition(|c| c.endpoint.order_rank.is_some());
                listed.sort_by_key(|c| c.endpoint.order_rank);
                ordered.extend(listed);
                if self.prefs.allow_fallbacks {
                    Self::sort(stats, &mut rest, self.resolved.sort.map_or(SortBy::Price, |s| s.by), now);
                    ordered.extend(rest);
                }
            }
        } else if let Some(sort) = self.resolved.sort {
            match sort.partition {
                Partition::Model => {
                    for mut group in groups {
                        Self::sort(stats, &mut group, sort.by, now);
                        ordered.extend(group);
                    }
                }
                Partition::None => {
                    ordered = groups.into_iter().flatten().collect();
                    Self::sort(stats, &mut ordered, sort.by, now);
                }
            }
        } else {
            for group in groups {
                ordered.extend(match self.resolved.routing {
                    Routing::PriceLoadBalancing => Self::price_load_balancing(stats, group, now, rng),
                    Routing::TrafficShares => {
                        Self::traffic_shares(stats, &self.resolved.traffic, group, request, now, rng)
                    }
                });
            }
        }
        if !self.prefs.allow_fallbacks && self.prefs.order.is_empty() {
            // "false: use only the primary/custom provider": per model, only the endpoint that
            // came first. Fallback *models* stay (`models` is its own feature: "If the first
            // model returns an error, OpenRouter will automatically try the next model").
            let mut seen = Vec::new();
            ordered.retain(|c| {
                let first = !seen.contains(&c.model);
                seen.push(c.model);
                first
            });
        }
        // Soft preferences over the whole list: endpoints that miss a cutoff move to the end.
        if !self.resolved.max_latency.is_empty() || !self.resolved.min_throughput.is_empty() {
            let (meets, misses): (Vec<Candidate>, Vec<Candidate>) =
                ordered.into_iter().partition(|c| self.preferred(&c.endpoint, now));
            ordered = meets;
            ordered.extend(misses);
        }
        ordered.into_iter().map(|c| c.endpoint.id).collect()
    }
}

impl Policy for OpenRouter {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let id = request.id;
        if let Some(plan) = self.plans.get_mut(&id) {
            if history.last().is_some() && !history.resumed_after_wait() {
                plan.cursor += 1;
            }
        } else {
            let order = self.plan(now, request, rng);
            if order.is_empty() {
                return Decision::Reject {
                    reason: if self.prefs.max_price.is_some() { "max_price" } else { "no_endpoint" },
                };
            }
            self.plans.insert(id, RequestPlan { order, cursor: 0 });
        }
        let plan = self.plans.get_mut(&id).expect("inserted just above");
        // Skip endpoints the request learned can never serve it.
        while plan.cursor < plan.order.len() && history.memo(plan.order[plan.cursor]).never {
            plan.cursor += 1;
        }
        match plan.order.get(plan.cursor) {
            Some(d) => Decision::attempt(*d, self.options),
            None => Decision::GiveUp,
        }
    }

    fn observe(&mut self, _now: Instant, report: &AttemptReport) {
        self.stats.record(report);
    }

    fn forget(&mut self, _now: Instant, request_id: u64) {
        self.plans.remove(&request_id);
    }
}

#[cfg(test)]
mod tests;
