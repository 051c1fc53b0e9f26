//! A LiteLLM router: model groups of deployments, a routing strategy, router retries with
//! LiteLLM's backoff, SDK retries inside each router attempt, fallbacks to other groups and
//! LiteLLM's two cooldown modes — modelled on LiteLLM 1.110.2's own code and checked against
//! it case by case by the differential suite in `tests/conformance/` (docs/policies.md has
//! the table). Semantics, with where LiteLLM keeps them (paths in the installed package):
//!
//! - **Candidates** (`router_strategy/*`): a request asks for one model group (`model`, or
//!   `models_by_class`). Cooled deployments, those at `max_parallel_requests` and (with
//!   `enable_tag_filtering`) those whose `tags` do not hold the request's class are removed
//!   before the strategy picks; with `order` set, only the lowest order still available.
//! - **Strategies**: `simple-shuffle` (random by `weight`, else `rpm`, else `tpm`, else
//!   uniform); `least-busy` (fewest in flight, ties to the first in the group: `least_busy.py`
//!   takes `min` over indexes); `usage-based-routing(-v2)`
//!   (`lowest_tpm_rpm_v2.py`: prompt + completion tokens and requests per UTC calendar minute;
//!   a deployment is skipped when `tokens_used + input_tokens > tpm` or
//!   `requests_used + 1 >= rpm`; the least tokens used wins, ties at random);
//!   `latency-based-routing` (`lowest_latency.py`: the mean of the last
//!   `max_latency_list_size` samples of seconds per completion token — time to first token
//!   when streaming — within a `ttl` window; unmeasured deployments count 0; random among
//!   those within `(1 + lowest_latency_buffer) ×` the best); `cost-based-routing`
//!   (`lowest_cost.py`: the least input + output price per token, each from the entry's
//!   `input_cost_per_token` / `output_cost_per_token` when given and not 0, else the scenario
//!   deployment's price, which stands for LiteLLM's cost-map row; ties to the first).
//! - **Cooldowns** (`router_utils/cooldown_handlers.py`). Default mode (no `allowed_fails`,
//!   no `allowed_fails_policy`): successes and failures per deployment are counted in windows
//!   of 60 s opened by their first count (`track_deployment_metrics.py`, an in-memory cache
//!   whose TTL is not extended). A failure cools its deployment when: it is a 429 and the
//!   group has several deployments; or every call of the window failed and there were
//!   ≥ 1,000; or > 50% failed over ≥ 5 calls in a group of several; or the status is not
//!   retryable (401, 404). With `allowed_fails` (or a policy for the error's class): failures
//!   are counted from the first one over `cooldown_time`; the one past the allowance cools —
//!   except a lone deployment (one in its group, no fallbacks) with no policy for the class.
//!   A cooldown lasts the error's `retry-after`, else `cooldown_time`.
//! - **Router retries**: after a failed attempt, up to `num_retries` more in the same group,
//!   each a fresh pick (the deployment that failed included); `retry_policy` overrides the
//!   count by the class of the group's *first* failure. A failure that leaves no deployment
//!   of the group healthy ends the group at once. Otherwise, before each retry and after the
//!   group's last attempt (when `num_retries > 0`), the router sleeps unless a deployment
//!   other than the one that failed is healthy:
//!   `retry-after + U(0, 0.75 s)` if the error said so (≤ 60 s), else
//!   `min(0.5 s · 2ⁿ, 8 s) + U(0, 0.75 s)` (`utils.py: calculate_retry_after`).
//! - **SDK retries**: none. `litellm_params.max_retries` does not multiply attempts behind a
//!   router: `main.py: completion` sets `max_retries = 0` for every call the router makes.
//! - **Fallbacks**: after a group is exhausted (or has nothing healthy), its `fallbacks`
//!   (else `default_fallbacks`) are tried in order, at most `max_fallbacks`, each with its
//!   own retries. When nothing is left the request fails with the last error, or with
//!   `no_deployments_available` — LiteLLM's "No deployments available" — when the last
//!   group had no healthy deployment.
//!
//! *Choice*: cooldown, usage and in-flight state is kept per scenario deployment, shared by
//! the groups that list it; virtual time 0 is the start of a UTC minute.
//!
//! As synchronised gateway replicas ([`super::replicas`]) the router shares what LiteLLM keeps
//! in its Redis-backed caches: cooldowns (the one started last wins, as a `SET` with a TTL
//! does) and the usage-based counters (requests and tokens per deployment and minute, added
//! up). Failure counts (LiteLLM's `failed_calls` is an in-memory cache), in-flight counts,
//! `max_parallel_requests` and latency samples stay each replica's own.
//!
//! It must not know the engine; a `config.yaml` is read by [`config`] at scenario load.

pub mod config;

pub use config::{
    AllowedFailsPolicy, ErrorClass, ImportedConfig, LiteLlmConfig, ModelEntry, RetryPolicy, RouterSettings,
    RoutingStrategy,
};

use super::config::{check_timeout, Catalog};
use super::shared::CooldownStarted;
use super::{AttemptOutcome, AttemptReport, Decision, History, Policy, SharedDelta};
use crate::policy::config::PolicyError;
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// LiteLLM's retry sleep (`constants.py`: `INITIAL_RETRY_DELAY`, `MAX_RETRY_DELAY`, `JITTER`).
const INITIAL_RETRY_DELAY_S: f64 = 0.5;
const MAX_RETRY_DELAY_S: f64 = 8.0;
const RETRY_JITTER_S: f64 = 0.75;
/// A `retry-after` longer than this is ignored by the retry sleep (`calculate_retry_after`).
const MAX_HONOURED_RETRY_AFTER_S: f64 = 60.0;
/// Default-mode cooldown thresholds (`constants.py`).
const FAILURE_THRESHOLD_PERCENT: f64 = 0.5;
const FAILURE_THRESHOLD_MINIMUM_REQUESTS: u64 = 5;
const SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD: u64 = 1000;
/// The success/failure counters' window (`track_deployment_metrics.py`: `ttl=60`).
const HEALTH_WINDOW: Duration = Duration::from_secs(60);
/// The threshold when only an `allowed_fails_policy` is given and it omits the class.
const DEFAULT_ALLOWED_FAILS: u32 = 3;
/// The sample a timeout adds to latency-based routing's list (`lowest_latency.py`), seconds.
const TIMEOUT_LATENCY_PENALTY_S: f64 = 1000.0;

#[derive(Clone, Debug)]
struct Entry {
    deployment: DeploymentId,
    rpm: Option<u64>,
    tpm: Option<u64>,
    weight: Option<f64>,
    max_parallel: Option<u32>,
    timeout: Option<Duration>,
    order: Option<u32>,
    tags: Vec<String>,
    /// `litellm_params` prices per token (input, output), when given and not 0.
    cost_per_token: (Option<f64>, Option<f64>),
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    entries: Vec<Entry>,
    /// Groups to try after this one, by index (its own `fallbacks`, else `default_fallbacks`).
    fallbacks: Vec<usize>,
}

/// A count in a window opened by its first increment, as LiteLLM's in-memory cache keeps
/// a key with a TTL: later increments do not extend it.
#[derive(Clone, Copy, Debug, Default)]
struct WindowCount {
    count: u64,
    expires_at: Instant,
}

impl WindowCount {
    fn get(&self, now: Instant) -> u64 {
        if now < self.expires_at {
            self.count
        } else {
            0
        }
    }

    fn increment(&mut self, now: Instant, window: Duration) -> u64 {
        if now >= self.expires_at {
            *self = WindowCount { count: 0, expires_at: now + window };
        }
        self.count += 1;
        self.count
    }
}

/// What the router tracks per deployment.
#[derive(Clone, Debug, Default)]
struct DeploymentState {
    in_flight: u32,
    /// UTC calendar minute of the usage counters (usage-based routing).
    minute: u64,
    requests_this_minute: u64,
    tokens_this_minute: u64,
    /// Default cooldown mode: successes and failures in their 60 s windows.
    successes: WindowCount,
    fails: WindowCount,
    /// `allowed_fails` mode: failures over `cooldown_time` from the first one.
    allowed_fails: WindowCount,
    cooled_until: Instant,
    /// When the cooldown in `cooled_until` was started (the one started last wins).
    cooled_at: Instant,
    cooldown_episodes: u64,
    /// Latency samples (when, value in seconds), newest last, at most `max_latency_list_size`.
    latencies: VecDeque<(Instant, f64)>,
    ttfts: VecDeque<(Instant, f64)>,
}

impl DeploymentState {
    fn roll_minute(&mut self, now: Instant) {
        let minute = now.minute_index();
        if minute != self.minute {
            self.minute = minute;
            self.requests_this_minute = 0;
            self.tokens_this_minute = 0;
        }
    }
}

/// Where a request is in the router's loop.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// Pick a deployment in the current group (first attempt, a router retry, a fallback).
    Pick,
    /// An attempt is out.
    InFlight,
    /// The router slept after a group's last attempt; next is the next group.
    FallBack,
    /// The router slept after the last group's last attempt; the error goes to the caller.
    GiveUp,
}

/// The router's own record of one request.
#[derive(Clone, Debug)]
struct RequestState {
    /// Groups to try in order: the request's group, then its fallbacks.
    sequence: Vec<usize>,
    /// Position in `sequence`.
    group_pos: usize,
    /// Router attempts made in the current group.
    router_attempts: u32,
    /// Retries the current group gets: fixed by its first failure's class (`retry_policy`).
    group_retries: Option<u32>,
    step: Step,
    /// Prompt tokens, for usage counting when an answer arrives.
    input_tokens: u64,
}

/// The LiteLLM router.
#[derive(Clone, Debug)]
pub struct LiteLlm {
    groups: Vec<Group>,
    settings: RouterSettings,
    default_group: usize,
    group_by_class: BTreeMap<String, usize>,
    class_names: Vec<String>,
    states: Vec<DeploymentState>,
    /// Per scenario deployment: (input, output) USD per token, the cost-map row's stand-in.
    prices_per_token: Vec<(f64, f64)>,
    requests: HashMap<u64, RequestState>,
    /// Whether latency samples are time to first token (the requests stream).
    streaming: bool,
    /// Cooldowns started and usage counted, not yet exported, once replicas share them
    /// ([`Policy::start_sharing`]).
    shared: Option<SharedDelta>,
}

impl LiteLlm {
    pub fn build(config: &LiteLlmConfig, catalog: &Catalog) -> Result<LiteLlm, PolicyError> {
        let (model_list, settings) = match &config.config_file {
            Some(path) => {
                if !config.model_list.is_empty() {
                    return Err(PolicyError::new(
                        "model_list",
                        "give either config_file or model_list, not both",
                    ));
                }
                let imported = config::load_yaml(path, &config.deployment_map, catalog)?;
                (imported.model_list, imported.router_settings)
            }
            None => (config.model_list.clone(), config.router_settings.clone()),
        };
        if model_list.is_empty() {
            return Err(PolicyError::new("model_list", "at least one deployment is required"));
        }
        if !crate::validate::is_non_negative(settings.lowest_latency_buffer) {
            return Err(PolicyError::new(
                "router_settings.lowest_latency_buffer",
                "must be a finite number >= 0",
            ));
        }
        if settings.cooldown_time.is_zero() {
            return Err(PolicyError::new("router_settings.cooldown_time", "must be > 0"));
        }
        if settings.max_latency_list_size == 0 {
            return Err(PolicyError::new("router_settings.max_latency_list_size", "must be > 0"));
        }
        check_timeout("router_settings.timeout", &settings.timeout)?;
        let mut groups: Vec<Group> = Vec::new();
        for (i, e) in model_list.iter().enumerate() {
            let field = format!("model_list[{i}]");
            let id = catalog.id(&format!("{field}.deployment"), &e.deployment)?;
            let entry = entry(id, e, &field)?;
            match groups.iter_mut().find(|g| g.name == e.model_name) {
                Some(g) => g.entries.push(entry),
                None => groups.push(Group {
                    name: e.model_name.clone(),
                    entries: vec![entry],
                    fallbacks: Vec::new(),
                }),
            }
        }
        let find = |field: &str, name: &str, groups: &[Group]| -> Result<usize, PolicyError> {
            groups.iter().position(|g| g.name == name).ok_or_else(|| {
                let known: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                PolicyError::new(field, format!("unknown model group {name:?} (known: {})", known.join(", ")))
            })
        };
        for (i, map) in settings.fallbacks.iter().enumerate() {
            for (from, to) in map {
                let from_index = find(&format!("router_settings.fallbacks[{i}]"), from, &groups)?;
                for target in to {
                    let target_index =
                        find(&format!("router_settings.fallbacks[{i}].{from}"), target, &groups)?;
                    groups[from_index].fallbacks.push(target_index);
                }
            }
        }
        let mut default_fallbacks = Vec::new();
        for (i, target) in settings.default_fallbacks.iter().enumerate() {
            default_fallbacks.push(find(
                &format!("router_settings.default_fallbacks[{i}]"),
                target,
                &groups,
            )?);
        }
        for (index, group) in groups.iter_mut().enumerate() {
            if group.fallbacks.is_empty() {
                group.fallbacks = default_fallbacks.iter().copied().filter(|f| *f != index).collect();
            }
        }
        let default_group = match &config.model {
            Some(m) => find("model", m, &groups)?,
            None => 0,
        };
        let mut group_by_class = BTreeMap::new();
        for (class, group) in &config.models_by_class {
            group_by_class.insert(class.clone(), find(&format!("models_by_class.{class}"), group, &groups)?);
        }
        Ok(LiteLlm {
            groups,
            settings,
            default_group,
            group_by_class,
            class_names: crate::trace::BUILTIN_CLASSES.iter().map(|s| s.to_string()).collect(),
            states: vec![DeploymentState::default(); catalog.deployments.len()],
            prices_per_token: catalog
                .deployments
                .iter()
                .map(|d| (d.prices.input_usd_per_token, d.prices.output_usd_per_token))
                .collect(),
            requests: HashMap::new(),
            streaming: config.stream,
            shared: None,
        })
    }

    /// Cooldown episodes per deployment so far (a deployment going from healthy to cooled).
    pub fn cooldown_episodes(&self) -> Vec<u64> {
        self.states.iter().map(|s| s.cooldown_episodes).collect()
    }

    /// Per deployment, when its latest cooldown ends (`Instant::ZERO` if it was never cooled).
    pub fn cooled_until(&self) -> Vec<Instant> {
        self.states.iter().map(|s| s.cooled_until).collect()
    }

    fn class_name(&self, request: &Request) -> Option<&str> {
        self.class_names.get(usize::from(request.class.0)).map(String::as_str)
    }

    /// The group sequence for a request: its group, then that group's fallbacks in order.
    fn group_sequence(&self, request: &Request) -> Vec<usize> {
        let first = self
            .class_name(request)
            .and_then(|c| self.group_by_class.get(c))
            .copied()
            .unwrap_or(self.default_group);
        let mut sequence = vec![first];
        for f in &self.groups[first].fallbacks {
            if sequence.len() > self.settings.max_fallbacks as usize {
                break;
            }
            if !sequence.contains(f) {
                sequence.push(*f);
            }
        }
        sequence
    }

    /// Entries of `group` that may take `request` now, by index.
    fn healthy(&mut self, group: usize, now: Instant, request: &Request) -> Vec<usize> {
        let strategy = self.settings.routing_strategy;
        let class = self.class_names.get(usize::from(request.class.0)).cloned();
        let tag_filtering = self.settings.enable_tag_filtering;
        let mut healthy = Vec::new();
        for (i, e) in self.groups[group].entries.iter().enumerate() {
            let s = &mut self.states[e.deployment.index()];
            s.roll_minute(now);
            if s.cooled_until > now || e.max_parallel.is_some_and(|m| s.in_flight >= m) {
                continue;
            }
            let tokens_over = e.tpm.is_some_and(|tpm| s.tokens_this_minute + request.input_tokens > tpm);
            let full = match strategy {
                // `lowest_tpm_rpm_v2.py`: `rpm_used + 1 >= rpm` (so rpm − 1 a minute pass).
                RoutingStrategy::UsageBasedRouting | RoutingStrategy::UsageBasedRoutingV2 => {
                    tokens_over || e.rpm.is_some_and(|rpm| s.requests_this_minute + 1 >= rpm)
                }
                // `lowest_latency.py`, `lowest_cost.py`: `rpm_used + 1 > rpm`.
                RoutingStrategy::LatencyBasedRouting | RoutingStrategy::CostBasedRouting => {
                    tokens_over || e.rpm.is_some_and(|rpm| s.requests_this_minute + 1 > rpm)
                }
                RoutingStrategy::SimpleShuffle | RoutingStrategy::LeastBusy => false,
            };
            if full {
                continue;
            }
            if tag_filtering && !tags_match(&e.tags, class.as_deref()) {
                continue;
            }
            healthy.push(i);
        }
        // `order`: only the lowest order still available (unordered entries count as order 1).
        let entries = &self.groups[group].entries;
        if entries.iter().any(|e| e.order.is_some()) {
            if let Some(lowest) = healthy.iter().map(|i| entries[*i].order.unwrap_or(1)).min() {
                healthy.retain(|i| entries[*i].order.unwrap_or(1) == lowest);
            }
        }
        healthy
    }

    fn pick(&mut self, group: usize, healthy: &[usize], now: Instant, rng: &mut SplitMix64) -> usize {
        let entries = &self.groups[group].entries;
        let state = |i: usize| &self.states[entries[i].deployment.index()];
        let random_among = |candidates: &[usize], rng: &mut SplitMix64| -> usize {
            candidates[(rng.next_open01() * candidates.len() as f64) as usize % candidates.len()]
        };
        match self.settings.routing_strategy {
            RoutingStrategy::SimpleShuffle => {
                // Weight, else rpm, else tpm, else uniform — chosen for the whole group.
                let weights: Vec<f64> = if entries.iter().any(|e| e.weight.is_some()) {
                    healthy.iter().map(|i| entries[*i].weight.unwrap_or(0.0)).collect()
                } else if entries.iter().any(|e| e.rpm.is_some()) {
                    healthy.iter().map(|i| entries[*i].rpm.unwrap_or(0) as f64).collect()
                } else if entries.iter().any(|e| e.tpm.is_some()) {
                    healthy.iter().map(|i| entries[*i].tpm.unwrap_or(0) as f64).collect()
                } else {
                    vec![1.0; healthy.len()]
                };
                weighted_choice(healthy, &weights, rng)
            }
            RoutingStrategy::LeastBusy => {
                // `least_busy.py: _least_busy_index` is `min` over the candidates' indexes: ties go
                // to the first in the group's order, no random draw (`min_by_key` keeps the first
                // minimum too). Picks are counted in flight from `send`, as LiteLLM counts a pick
                // reserved and not yet started.
                *healthy.iter().min_by_key(|i| state(**i).in_flight).expect("non-empty candidates")
            }
            RoutingStrategy::UsageBasedRouting | RoutingStrategy::UsageBasedRoutingV2 => {
                let least = healthy.iter().map(|i| state(*i).tokens_this_minute).min().unwrap_or(0);
                let ties: Vec<usize> =
                    healthy.iter().copied().filter(|i| state(*i).tokens_this_minute == least).collect();
                random_among(&ties, rng)
            }
            RoutingStrategy::LatencyBasedRouting => {
                let (ttl, streaming) = (self.settings.ttl, self.streaming);
                let means: Vec<f64> = healthy
                    .iter()
                    .map(|i| {
                        let s = &mut self.states[entries[*i].deployment.index()];
                        for samples in [&mut s.latencies, &mut s.ttfts] {
                            while samples.front().is_some_and(|(at, _)| now.saturating_since(*at) >= ttl) {
                                samples.pop_front();
                            }
                        }
                        let samples = if streaming && !s.ttfts.is_empty() { &s.ttfts } else { &s.latencies };
                        if samples.is_empty() {
                            0.0
                        } else {
                            samples.iter().map(|(_, v)| v).sum::<f64>() / samples.len() as f64
                        }
                    })
                    .collect();
                let best = means.iter().copied().fold(f64::INFINITY, f64::min);
                let limit = best + self.settings.lowest_latency_buffer * best;
                let near: Vec<usize> =
                    healthy.iter().zip(&means).filter(|(_, m)| **m <= limit).map(|(i, _)| *i).collect();
                random_among(&near, rng)
            }
            RoutingStrategy::CostBasedRouting => {
                // `lowest_cost.py`: `litellm_params.input_cost_per_token` (if truthy) else the
                // cost-map row's, plus the same for output; the scenario deployment's prices
                // stand for the row.
                let price = |i: usize| {
                    let e = &entries[i];
                    let (input, output) = self.prices_per_token[e.deployment.index()];
                    e.cost_per_token.0.unwrap_or(input) + e.cost_per_token.1.unwrap_or(output)
                };
                // A stable sort by price: ties keep the group's order.
                let cheapest = healthy.iter().map(|i| price(*i)).fold(f64::INFINITY, f64::min);
                *healthy.iter().find(|i| price(**i) <= cheapest).expect("non-empty candidates")
            }
        }
    }

    fn is_lone(&self, group: usize) -> bool {
        self.groups[group].entries.len() == 1 && self.groups[group].fallbacks.is_empty()
    }

    /// LiteLLM's retry sleep before a router retry (or a fallback) when nothing else is
    /// healthy: `calculate_retry_after`.
    fn retry_sleep(
        &self,
        retries_done: u32,
        retry_after: Option<Duration>,
        rng: &mut SplitMix64,
    ) -> Duration {
        let jitter_s = RETRY_JITTER_S * rng.next_open01();
        let seconds = match retry_after.map(Duration::as_secs_f64) {
            // LiteLLM reads the header as whole seconds; 0 or more than 60 s is ignored.
            Some(s) if (1.0..=MAX_HONOURED_RETRY_AFTER_S).contains(&s) => s.floor() + jitter_s,
            _ => {
                let exponent = i32::try_from(retries_done).unwrap_or(i32::MAX);
                (INITIAL_RETRY_DELAY_S * 2f64.powi(exponent)).min(MAX_RETRY_DELAY_S) + jitter_s
            }
        };
        Duration::from_secs_f64(seconds)
    }

    /// Sends an attempt to `entry` of `group` and records it as in flight.
    fn send(&mut self, state: &mut RequestState, group: usize, entry: usize) -> Decision {
        let e = &self.groups[group].entries[entry];
        let (deployment, timeout) = (e.deployment, e.timeout.or(self.settings.timeout));
        let s = &mut self.states[deployment.index()];
        s.in_flight += 1;
        // `async_pre_call_check`: a request counts toward rpm when its call starts.
        s.requests_this_minute += 1;
        if let Some(shared) = &mut self.shared {
            shared.add_usage(deployment, s.minute, 1, 0);
        }
        state.step = Step::InFlight;
        Decision::attempt(deployment, AttemptOptions { timeout, ..AttemptOptions::default() })
    }

    /// Router-level failure bookkeeping: counters, and whether the deployment cools.
    fn on_router_failure(&mut self, now: Instant, group: usize, report: &AttemptReport, kind: FailureKind) {
        let class = ErrorClass::of(kind);
        let status = status_of(kind);
        let several = self.groups[group].entries.len() > 1;
        let lone = self.is_lone(group);
        let (cooldown_time, allowed_fails) = (self.settings.cooldown_time, self.settings.allowed_fails);
        let policy_fails = self.settings.allowed_fails_policy.allowed_fails(class);
        let legacy_mode = allowed_fails.is_some() || !self.settings.allowed_fails_policy.is_empty();
        let disabled = self.settings.disable_cooldowns;
        let s = &mut self.states[report.deployment.index()];
        s.fails.increment(now, HEALTH_WINDOW);
        // `_is_cooldown_required`: 429, 401/404/408 and 5xx run the cooldown logic; other 4xx
        // do not (unless a policy names the class).
        let required =
            matches!(status, 429 | 401 | 402 | 404 | 408) || status >= 500 || policy_fails.is_some();
        if disabled || !required {
            return;
        }
        let cool = if !legacy_mode {
            let fails = s.fails.get(now);
            let total = fails + s.successes.get(now);
            let percent = if total > 0 { fails as f64 / total as f64 } else { 0.0 };
            (status == 429 && several)
                || (percent == 1.0 && total >= SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD)
                || (percent > FAILURE_THRESHOLD_PERCENT
                    && total >= FAILURE_THRESHOLD_MINIMUM_REQUESTS
                    && several)
                || !status_is_retryable(status)
        } else if lone && policy_fails.is_none() {
            false
        } else {
            // One counter per deployment for every class (`deployment:<id>:allowed_fails`).
            let allowance = policy_fails.or(allowed_fails).unwrap_or(DEFAULT_ALLOWED_FAILS);
            s.allowed_fails.increment(now, cooldown_time) > u64::from(allowance)
        };
        if cool {
            let duration = report.retry_after.filter(|d| !d.is_zero()).unwrap_or(cooldown_time);
            if s.cooled_until <= now {
                s.cooldown_episodes += 1;
            }
            s.cooled_until = now + duration;
            s.cooled_at = now;
            if let Some(shared) = &mut self.shared {
                let (deployment, until) = (report.deployment, s.cooled_until);
                shared.cooldowns.push(CooldownStarted { deployment, at: now, until });
            }
        }
    }
}

/// The HTTP status LiteLLM sees for a failure of the provider model.
fn status_of(kind: FailureKind) -> u16 {
    match kind {
        FailureKind::RateLimited | FailureKind::ExceedsLimit | FailureKind::QuotaExhausted => 429,
        FailureKind::Timeout | FailureKind::SlowFirstToken => 408,
        FailureKind::Overloaded => 529,
        _ => 500,
    }
}

/// `litellm.utils.should_retry`: 408, 409, 429 and 5xx are retryable.
fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// Tag filtering: a request's class must be one of the deployment's tags; requests of a class
/// no deployment carries go to deployments tagged `default`.
fn tags_match(tags: &[String], class: Option<&str>) -> bool {
    tags.iter().any(|t| Some(t.as_str()) == class || t == "default")
}

/// Weighted random choice; all-zero weights fall back to uniform.
fn weighted_choice(candidates: &[usize], weights: &[f64], rng: &mut SplitMix64) -> usize {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return candidates[(rng.next_open01() * candidates.len() as f64) as usize % candidates.len()];
    }
    let mut target = rng.next_open01() * total;
    for (c, w) in candidates.iter().zip(weights) {
        if target < *w {
            return *c;
        }
        target -= w;
    }
    *candidates.last().expect("non-empty candidates")
}

impl Policy for LiteLlm {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let mut state = match self.requests.remove(&request.id) {
            Some(state) => state,
            None => RequestState {
                sequence: self.group_sequence(request),
                group_pos: 0,
                router_attempts: 0,
                group_retries: None,
                step: Step::Pick,
                input_tokens: request.input_tokens,
            },
        };
        let decision = self.advance(now, request, history, &mut state, rng);
        self.requests.insert(request.id, state);
        decision
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        let max_list = self.settings.max_latency_list_size;
        let Some(state) = self.requests.get(&report.request_id) else { return };
        let (group, input_tokens) = (state.sequence[state.group_pos], state.input_tokens);
        let s = &mut self.states[report.deployment.index()];
        s.in_flight = s.in_flight.saturating_sub(1);
        s.roll_minute(now);
        match report.outcome {
            AttemptOutcome::Success => {
                s.successes.increment(now, HEALTH_WINDOW);
                // Tokens count when the answer is logged: its `total_tokens` (prompt +
                // completion), in the minute it ends.
                s.tokens_this_minute += input_tokens + report.output_tokens;
                if let Some(shared) = &mut self.shared {
                    shared.add_usage(report.deployment, s.minute, 0, input_tokens + report.output_tokens);
                }
                let seconds = report.ended_at.saturating_since(report.started_at).as_secs_f64();
                let per_token =
                    if report.output_tokens > 0 { seconds / report.output_tokens as f64 } else { seconds };
                push_bounded(&mut s.latencies, (now, per_token), max_list);
                if let Some(first) = report.first_token_at {
                    let ttft = first.saturating_since(report.started_at).as_secs_f64();
                    push_bounded(&mut s.ttfts, (now, ttft), max_list);
                }
            }
            AttemptOutcome::Batched | AttemptOutcome::Failed(FailureKind::Cancelled) => {}
            AttemptOutcome::Failed(kind) => {
                if matches!(kind, FailureKind::Timeout | FailureKind::SlowFirstToken) {
                    push_bounded(&mut s.latencies, (now, TIMEOUT_LATENCY_PENALTY_S), max_list);
                }
                self.on_router_failure(now, group, report, kind);
            }
        }
    }

    fn forget(&mut self, _now: Instant, request_id: u64) {
        self.requests.remove(&request_id);
    }

    fn start_sharing(&mut self) {
        self.shared.get_or_insert_with(SharedDelta::default);
    }

    fn export_shared(&mut self) -> SharedDelta {
        self.shared.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Another replica's cooldowns replace this one's when started later (an imported
    /// cooldown does not count as an episode here); its usage adds to the counters of the
    /// same minute, and usage of a minute already over is dropped.
    fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
        for c in &delta.cooldowns {
            let s = &mut self.states[c.deployment.index()];
            if c.at >= s.cooled_at {
                s.cooled_until = c.until;
                s.cooled_at = c.at;
            }
        }
        for u in &delta.usage {
            let s = &mut self.states[u.deployment.index()];
            s.roll_minute(at);
            if s.minute == u.minute {
                s.requests_this_minute += u.requests;
                s.tokens_this_minute += u.tokens;
            }
        }
    }
}

impl LiteLlm {
    /// One step of LiteLLM's loop for a request: after a failed attempt, decide between a
    /// retry in the group, a fallback and giving up, with the sleep LiteLLM takes; otherwise
    /// pick a deployment.
    fn advance(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        state: &mut RequestState,
        rng: &mut SplitMix64,
    ) -> Decision {
        loop {
            match state.step {
                Step::InFlight => {
                    let Some(last) = history.last() else { return Decision::GiveUp };
                    let Some(kind) = last.failure() else { return Decision::GiveUp };
                    let group = state.sequence[state.group_pos];
                    state.router_attempts += 1;
                    let class = ErrorClass::of(kind);
                    let (policy, num_retries) = (&self.settings.retry_policy, self.settings.num_retries);
                    let retries = *state
                        .group_retries
                        .get_or_insert_with(|| policy.retries(class).unwrap_or(num_retries));
                    let has_next_group = state.group_pos + 1 < state.sequence.len();
                    let after_group = if has_next_group { Step::FallBack } else { Step::GiveUp };
                    let healthy = self.healthy(group, now, request);
                    if healthy.is_empty() || retries == 0 || !status_is_retryable(status_of(kind)) {
                        // Nothing left to retry on (every deployment cooled), or no retries:
                        // the error leaves the group at once, without a sleep.
                        state.step = after_group;
                        continue;
                    }
                    let more_here = state.router_attempts <= retries;
                    state.step = if more_here { Step::Pick } else { after_group };
                    // `_time_to_sleep_before_retry`: no sleep when another deployment of the
                    // group is healthy; otherwise `calculate_retry_after`, also after the
                    // group's last attempt.
                    let entries = &self.groups[group].entries;
                    let another_healthy = healthy.iter().any(|i| entries[*i].deployment != last.deployment);
                    if !another_healthy {
                        let wait = self.retry_sleep(state.router_attempts - 1, last.retry_after, rng);
                        return Decision::Wait { until: now + wait.max(Duration::from_micros(1)) };
                    }
                }
                Step::FallBack => {
                    state.group_pos += 1;
                    state.router_attempts = 0;
                    state.group_retries = None;
                    state.step = Step::Pick;
                }
                Step::GiveUp => return Decision::GiveUp,
                Step::Pick => {
                    let group = state.sequence[state.group_pos];
                    let healthy = self.healthy(group, now, request);
                    if healthy.is_empty() {
                        // "No deployments available": the next group, if any.
                        if state.group_pos + 1 < state.sequence.len() {
                            state.step = Step::FallBack;
                            continue;
                        }
                        return Decision::Reject { reason: NO_DEPLOYMENTS_AVAILABLE };
                    }
                    let chosen = self.pick(group, &healthy, now, rng);
                    return self.send(state, group, chosen);
                }
            }
        }
    }
}

/// The failure cause of a request LiteLLM answers with "No deployments available".
pub const NO_DEPLOYMENTS_AVAILABLE: &str = "no_deployments_available";

fn push_bounded(samples: &mut VecDeque<(Instant, f64)>, sample: (Instant, f64), max: usize) {
    if samples.len() >= max {
        samples.pop_front();
    }
    samples.push_back(sample);
}

fn entry(id: DeploymentId, e: &ModelEntry, field: &str) -> Result<Entry, PolicyError> {
    if e.weight.is_some_and(|w| !crate::validate::is_non_negative(w)) {
        return Err(PolicyError::new(format!("{field}.weight"), "must be a finite number >= 0"));
    }
    if e.rpm == Some(0) || e.tpm == Some(0) || e.max_parallel_requests == Some(0) {
        return Err(PolicyError::new(field, "rpm, tpm and max_parallel_requests must be > 0 when given"));
    }
    check_timeout(&format!("{field}.timeout"), &e.timeout)?;
    for (name, cost) in
        [("input_cost_per_token", e.input_cost_per_token), ("output_cost_per_token", e.output_cost_per_token)]
    {
        if cost.is_some_and(|c| !crate::validate::is_non_negative(c)) {
            return Err(PolicyError::new(format!("{field}.{name}"), "must be a finite number >= 0"));
        }
    }
    let truthy = |c: Option<f64>| c.filter(|c| *c > 0.0);
    Ok(Entry {
        deployment: id,
        rpm: e.rpm,
        tpm: e.tpm,
        weight: e.weight,
        max_parallel: e.max_parallel_requests,
        timeout: e.timeout,
        order: e.order,
        tags: e.tags.clone(),
        cost_per_token: (truthy(e.input_cost_per_token), truthy(e.output_cost_per_token)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_follows_the_weights() {
        // Weights 1 : 3 over 40,000 draws: share of the second is 0.75 ± 6 × sqrt(0.75 × 0.25 / n).
        let n = 40_000;
        let mut second = 0;
        for i in 0..n {
            if weighted_choice(&[0, 1], &[1.0, 3.0], &mut SplitMix64::new(i)) == 1 {
                second += 1;
            }
        }
        let share = second as f64 / n as f64;
        assert!((share - 0.75).abs() < 6.0 * (0.75f64 * 0.25 / n as f64).sqrt(), "{share}");
        assert_eq!(
            weighted_choice(&[4, 5], &[0.0, 0.0], &mut SplitMix64::new(1)) / 4,
            1,
            "all-zero is uniform"
        );
    }

    #[test]
    fn minute_counters_reset_at_the_minute() {
        let mut s = DeploymentState { requests_this_minute: 5, tokens_this_minute: 3, ..Default::default() };
        s.roll_minute(Instant::from_millis(59_000));
        assert_eq!(s.requests_this_minute, 5);
        s.roll_minute(Instant::from_millis(60_000));
        assert_eq!((s.requests_this_minute, s.tokens_this_minute), (0, 0));
    }

    #[test]
    fn window_counts_are_not_extended_by_later_increments() {
        // LiteLLM's in-memory cache keeps a key's first TTL: counts at 0 s, 30 s and 59 s
        // share one window; the window opened at 0 s is gone at 60 s, and a new one opens.
        let window = Duration::from_secs(60);
        let mut w = WindowCount::default();
        assert_eq!(w.increment(Instant::from_millis(0), window), 1);
        assert_eq!(w.increment(Instant::from_millis(30_000), window), 2);
        assert_eq!(w.increment(Instant::from_millis(59_999), window), 3);
        assert_eq!(w.get(Instant::from_millis(60_000)), 0);
        assert_eq!(w.increment(Instant::from_millis(60_000), window), 1);
        assert_eq!(w.get(Instant::from_millis(119_999)), 1);
    }
}
