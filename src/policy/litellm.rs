//! A LiteLLM-style router: model groups of deployments, a routing strategy, retries,
//! fallbacks to other groups and cooldowns — the router most teams start from, with its
//! documented defaults, so its behaviour (and its known pains) can be measured.
//!
//! Semantics (LiteLLM Router docs; where they are silent, our choice is marked *choice*):
//! - A request asks for one model group (`model`, or `models_by_class`). Cooled deployments
//!   and those at `max_parallel_requests` are removed *before* the strategy picks.
//! - `routing_strategy`: `simple-shuffle` (random, weighted by `weight`, else `rpm`, else
//!   `tpm`, else uniform), `least-busy` (fewest in flight from this router), `usage-based-routing`
//!   (skip deployments whose `rpm`/`tpm` this minute would be exceeded; lowest TPM used wins),
//!   `latency-based-routing` (lowest average time to first token within `ttl`; any deployment
//!   within `(1 + lowest_latency_buffer) ×` the best is picked at random; unmeasured ones
//!   first), `cost-based-routing` (cheapest healthy deployment by list price).
//! - Retries: `num_retries` (default 2) per group, so at most `num_retries + 1` attempts per
//!   group. A rate-limit error backs off exponentially (or by `retry-after`) unless another
//!   healthy deployment exists in the group, in which case it retries at once; other errors
//!   retry at once.
//! - Fallbacks: after a group's retries are exhausted (or when it has no healthy deployment),
//!   the groups listed in `fallbacks` for it are tried in order, each with its own retries.
//! - Cooldowns: `allowed_fails` (default 3) failures of a deployment in a minute cool it down
//!   for `cooldown_time` (default 5 s). A 429 in a group of more than one deployment cools it
//!   at once; its `retry-after`, if any, sets the duration. *Choice*: cooldown and in-flight
//!   state is kept per scenario deployment, shared by the groups that list it.
//! - When every deployment of every remaining group is cooled or busy, the request fails with
//!   cause `all_cooled_down` — LiteLLM's "No deployments available" — instead of waiting.
//!
//! Users bring their own config: `config_file = "litellm.yaml"` loads a LiteLLM proxy config
//! (`model_list` with `litellm_params`, `router_settings`), mapping each `litellm_params.model`
//! to a scenario deployment (`deployment_map`, else a deployment of that name, else the one
//! deployment serving that model). Routing-relevant keys we do not model are errors.

use super::config::{check_timeout, Catalog};
use super::{AttemptOutcome, AttemptReport, Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// One `model_list` entry, inline form.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The group this deployment serves (what callers ask for).
    pub model_name: String,
    /// The scenario deployment behind it.
    pub deployment: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub max_parallel_requests: Option<u32>,
    pub timeout: Option<Duration>,
}

/// `router_settings`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    pub routing_strategy: RoutingStrategy,
    pub num_retries: u32,
    pub allowed_fails: u32,
    pub cooldown_time: Duration,
    /// `[{ group = ["fallback group", …] }, …]`.
    pub fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    pub lowest_latency_buffer: f64,
    /// How long latency samples count (latency-based routing).
    pub ttl: Duration,
    /// Router-wide per-attempt timeout (a deployment's own `timeout` wins).
    pub timeout: Option<Duration>,
    /// Backoff on rate limits when no other deployment is healthy.
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            routing_strategy: RoutingStrategy::SimpleShuffle,
            num_retries: 2,
            allowed_fails: 3,
            cooldown_time: Duration::from_secs(5),
            fallbacks: Vec::new(),
            lowest_latency_buffer: 0.0,
            ttl: Duration::from_mins(60),
            timeout: None,
            retry_backoff_initial: Duration::from_millis(500),
            retry_backoff_max: Duration::from_secs(8),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    #[default]
    SimpleShuffle,
    LeastBusy,
    UsageBasedRouting,
    #[serde(alias = "usage-based-routing-v2")]
    UsageBasedRoutingV2,
    LatencyBasedRouting,
    CostBasedRouting,
}

/// The `litellm` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LiteLlmConfig {
    /// A LiteLLM proxy `config.yaml` (relative to the scenario); replaces `model_list` and
    /// `router_settings`.
    pub config_file: Option<std::path::PathBuf>,
    /// `litellm_params.model` → scenario deployment, for `config_file`.
    #[serde(default)]
    pub deployment_map: BTreeMap<String, String>,
    #[serde(default)]
    pub model_list: Vec<ModelEntry>,
    #[serde(default)]
    pub router_settings: RouterSettings,
    /// The group every request asks for (default: the first group listed).
    pub model: Option<String>,
    /// Per-class group overrides, e.g. `{ interactive = "fast", bulk = "cheap" }`.
    #[serde(default)]
    pub models_by_class: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct Entry {
    deployment: DeploymentId,
    rpm: Option<u64>,
    tpm: Option<u64>,
    weight: Option<f64>,
    max_parallel: Option<u32>,
    timeout: Option<Duration>,
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    entries: Vec<Entry>,
    /// Groups to try after this one, by index.
    fallbacks: Vec<usize>,
}

/// What the router tracks per deployment.
#[derive(Clone, Debug, Default)]
struct DeploymentState {
    in_flight: u32,
    minute: u64,
    requests_this_minute: u64,
    tokens_this_minute: u64,
    fails_this_minute: u32,
    cooled_until: Instant,
    /// (when, time to first token in ms) within `ttl`.
    latencies: VecDeque<(Instant, f64)>,
    latency_sum_ms: f64,
}

impl DeploymentState {
    fn roll_minute(&mut self, now: Instant) {
        let minute = now.minute_index();
        if minute != self.minute {
            self.minute = minute;
            self.requests_this_minute = 0;
            self.tokens_this_minute = 0;
            self.fails_this_minute = 0;
        }
    }
}

/// The LiteLLM-style router.
#[derive(Clone, Debug)]
pub struct LiteLlm {
    groups: Vec<Group>,
    settings: RouterSettings,
    default_group: usize,
    group_by_class: BTreeMap<String, usize>,
    class_names: Vec<String>,
    states: Vec<DeploymentState>,
    prices_per_token: Vec<f64>,
}

impl LiteLlm {
    pub fn build(config: &LiteLlmConfig, catalog: &Catalog) -> Result<LiteLlm, String> {
        let (entries, settings) = match &config.config_file {
            Some(path) => {
                if !config.model_list.is_empty() {
                    return Err("model_list: give either config_file or model_list, not both".into());
                }
                load_yaml(path, &config.deployment_map, catalog)?
            }
            None => {
                let mut entries = Vec::new();
                for (i, e) in config.model_list.iter().enumerate() {
                    let id = catalog.id(&format!("model_list[{i}].deployment"), &e.deployment)?;
                    entries.push((e.model_name.clone(), entry(id, e, &format!("model_list[{i}]"))?));
                }
                (entries, config.router_settings.clone())
            }
        };
        if entries.is_empty() {
            return Err("model_list: at least one deployment is required".into());
        }
        if !(settings.lowest_latency_buffer.is_finite() && settings.lowest_latency_buffer >= 0.0) {
            return Err("router_settings.lowest_latency_buffer: must be a finite number >= 0".into());
        }
        if settings.cooldown_time.is_zero() {
            return Err("router_settings.cooldown_time: must be > 0".into());
        }
        check_timeout("router_settings.timeout", &settings.timeout)?;
        let mut groups: Vec<Group> = Vec::new();
        for (name, e) in entries {
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => g.entries.push(e),
                None => groups.push(Group { name, entries: vec![e], fallbacks: Vec::new() }),
            }
        }
        let find = |field: &str, name: &str, groups: &[Group]| -> Result<usize, String> {
            groups.iter().position(|g| g.name == name).ok_or_else(|| {
                let known: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                format!("{field}: unknown model group {name:?} (known: {})", known.join(", "))
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
                .map(|d| d.prices.input_usd_per_token + d.prices.output_usd_per_token)
                .collect(),
        })
    }

    /// The group sequence for a request: its group, then that group's fallbacks in order.
    fn group_sequence(&self, request: &Request) -> Vec<usize> {
        let first = self
            .class_names
            .get(usize::from(request.class.0))
            .and_then(|c| self.group_by_class.get(c))
            .copied()
            .unwrap_or(self.default_group);
        let mut sequence = vec![first];
        for f in &self.groups[first].fallbacks {
            if !sequence.contains(f) {
                sequence.push(*f);
            }
        }
        sequence
    }

    fn healthy(&mut self, group: usize, now: Instant, request: &Request) -> Vec<usize> {
        let usage_based = matches!(
            self.settings.routing_strategy,
            RoutingStrategy::UsageBasedRouting | RoutingStrategy::UsageBasedRoutingV2
        );
        let tokens = request.input_tokens + request.max_tokens;
        let mut healthy = Vec::new();
        for (i, e) in self.groups[group].entries.iter().enumerate() {
            let s = &mut self.states[e.deployment.index()];
            s.roll_minute(now);
            if s.cooled_until > now || e.max_parallel.is_some_and(|m| s.in_flight >= m) {
                continue;
            }
            if usage_based
                && (e.rpm.is_some_and(|rpm| s.requests_this_minute + 1 > rpm)
                    || e.tpm.is_some_and(|tpm| s.tokens_this_minute + tokens > tpm))
            {
                continue;
            }
            healthy.push(i);
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
                let least = healthy.iter().map(|i| state(*i).in_flight).min().unwrap_or(0);
                let ties: Vec<usize> =
                    healthy.iter().copied().filter(|i| state(*i).in_flight == least).collect();
                random_among(&ties, rng)
            }
            RoutingStrategy::UsageBasedRouting | RoutingStrategy::UsageBasedRoutingV2 => {
                let least = healthy.iter().map(|i| state(*i).tokens_this_minute).min().unwrap_or(0);
                let ties: Vec<usize> =
                    healthy.iter().copied().filter(|i| state(*i).tokens_this_minute == least).collect();
                random_among(&ties, rng)
            }
            RoutingStrategy::LatencyBasedRouting => {
                let ttl = self.settings.ttl;
                let averages: Vec<Option<f64>> = healthy
                    .iter()
                    .map(|i| {
                        let s = &mut self.states[entries[*i].deployment.index()];
                        while s.latencies.front().is_some_and(|(at, _)| now.saturating_since(*at) > ttl) {
                            let (_, ms) = s.latencies.pop_front().expect("checked non-empty");
                            s.latency_sum_ms -= ms;
                        }
                        (!s.latencies.is_empty()).then(|| s.latency_sum_ms / s.latencies.len() as f64)
                    })
                    .collect();
                // Unmeasured deployments are tried first, as LiteLLM does.
                let unmeasured: Vec<usize> =
                    healthy.iter().zip(&averages).filter(|(_, a)| a.is_none()).map(|(i, _)| *i).collect();
                if !unmeasured.is_empty() {
                    return random_among(&unmeasured, rng);
                }
                let best = averages.iter().flatten().copied().fold(f64::INFINITY, f64::min);
                let limit = best * (1.0 + self.settings.lowest_latency_buffer);
                let near: Vec<usize> = healthy
                    .iter()
                    .zip(&averages)
                    .filter(|(_, a)| a.is_some_and(|ms| ms <= limit))
                    .map(|(i, _)| *i)
                    .collect();
                random_among(&near, rng)
            }
            RoutingStrategy::CostBasedRouting => {
                let price = |i: usize| self.prices_per_token[entries[i].deployment.index()];
                let cheapest = healthy.iter().map(|i| price(*i)).fold(f64::INFINITY, f64::min);
                let ties: Vec<usize> = healthy.iter().copied().filter(|i| price(*i) <= cheapest).collect();
                random_among(&ties, rng)
            }
        }
    }

    fn groups_containing(&self, d: DeploymentId) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(move |g| g.entries.iter().any(|e| e.deployment == d))
    }
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
    /// `history.plan` holds the attempts made in the current group (one entry each) and
    /// `history.cursor` the position in the group sequence.
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let sequence = self.group_sequence(request);
        let retries_per_group = self.settings.num_retries + 1;
        // A rate-limited retry in the same group waits unless another deployment is healthy.
        let last_rate_limited =
            history.last.as_ref().and_then(AttemptReport::failure).is_some_and(FailureKind::is_rate_limit);
        // Why the last group was left: its retries ran out, or nothing in it was healthy.
        let mut left_because_unhealthy = false;
        while history.cursor < sequence.len() {
            let group = sequence[history.cursor];
            if history.plan.len() as u32 >= retries_per_group {
                history.cursor += 1;
                history.plan.clear();
                left_because_unhealthy = false;
                continue;
            }
            let healthy = self.healthy(group, now, request);
            if healthy.is_empty() {
                // "No deployments available": fall back to the next group, if any.
                history.cursor += 1;
                history.plan.clear();
                left_because_unhealthy = true;
                continue;
            }
            let retrying_here =
                !history.plan.is_empty() && history.last.is_some() && !history.resumed_after_wait;
            if retrying_here && last_rate_limited {
                let last_deployment = history.last.as_ref().map(|l| l.deployment);
                let other_healthy = healthy
                    .iter()
                    .any(|i| Some(self.groups[group].entries[*i].deployment) != last_deployment);
                if !other_healthy {
                    let n = history.plan.len() as u32 - 1;
                    let exponential = Duration::from_millis_f64(
                        (self.settings.retry_backoff_initial.as_millis_f64() * 2f64.powi(n as i32))
                            .min(self.settings.retry_backoff_max.as_millis_f64())
                            * (1.0 - 0.25 * rng.next_open01()),
                    );
                    let wait = history.last.as_ref().and_then(|l| l.retry_after).unwrap_or(exponential);
                    return Decision::Wait { until: now + wait.max(Duration::from_micros(1)) };
                }
            }
            let chosen = self.pick(group, &healthy, now, rng);
            let e = &self.groups[group].entries[chosen];
            let (deployment, timeout) = (e.deployment, e.timeout.or(self.settings.timeout));
            let s = &mut self.states[deployment.index()];
            s.in_flight += 1;
            s.requests_this_minute += 1;
            history.plan.push(deployment);
            return Decision::attempt(deployment, AttemptOptions { timeout, ..AttemptOptions::default() });
        }
        if left_because_unhealthy {
            // Every remaining deployment was cooled down or busy: LiteLLM fails the call.
            return Decision::Reject { reason: "all_cooled_down" };
        }
        Decision::GiveUp
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        let multi_deployment_group = self.groups_containing(report.deployment).any(|g| g.entries.len() > 1);
        let (allowed_fails, cooldown_time) = (self.settings.allowed_fails, self.settings.cooldown_time);
        let s = &mut self.states[report.deployment.index()];
        s.in_flight = s.in_flight.saturating_sub(1);
        s.roll_minute(now);
        match report.outcome {
            AttemptOutcome::Success => {
                if let Some(first) = report.first_token_at {
                    let ms = first.saturating_since(report.started_at).as_millis_f64();
                    s.latencies.push_back((now, ms));
                    s.latency_sum_ms += ms;
                }
                // TPM usage counts the tokens of answered calls, as LiteLLM's usage tracking does.
                s.tokens_this_minute += report.output_tokens;
            }
            AttemptOutcome::Batched | AttemptOutcome::Failed(FailureKind::Cancelled) => {}
            AttemptOutcome::Failed(kind) => {
                s.fails_this_minute += 1;
                let immediate = kind == FailureKind::RateLimited && multi_deployment_group;
                if immediate || s.fails_this_minute > allowed_fails {
                    let duration =
                        if immediate { report.retry_after.unwrap_or(cooldown_time) } else { cooldown_time };
                    s.cooled_until = s.cooled_until.max(now + duration);
                }
            }
        }
    }
}

fn entry(id: DeploymentId, e: &ModelEntry, field: &str) -> Result<Entry, String> {
    if e.weight.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
        return Err(format!("{field}.weight: must be a finite number >= 0"));
    }
    if e.rpm == Some(0) || e.tpm == Some(0) || e.max_parallel_requests == Some(0) {
        return Err(format!("{field}: rpm, tpm and max_parallel_requests must be > 0 when given"));
    }
    check_timeout(&format!("{field}.timeout"), &e.timeout)?;
    Ok(Entry {
        deployment: id,
        rpm: e.rpm,
        tpm: e.tpm,
        weight: e.weight,
        max_parallel: e.max_parallel_requests,
        timeout: e.timeout,
    })
}

/// Keys of a LiteLLM config that only concern connections, secrets or infrastructure: they do
/// not change routing, so they are accepted and ignored.
const IGNORED_PARAMS: &[&str] = &[
    "api_key",
    "api_base",
    "api_version",
    "organization",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_region_name",
    "vertex_project",
    "vertex_location",
    "custom_llm_provider",
    "input_cost_per_token",
    "output_cost_per_token",
    "max_tokens",
    "temperature",
    "stream_timeout",
    "max_retries",
    "model_info",
    "tags",
    "region_name",
    "drop_params",
];
const IGNORED_ROUTER_SETTINGS: &[&str] = &[
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
    "enable_pre_call_checks",
    "cache_responses",
    "set_verbose",
    "debug_level",
    "model_group_alias",
    "retry_policy",
    "allowed_fails_policy",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "enable_tag_filtering",
    "default_litellm_params",
];

fn yaml_u64(v: &serde_yaml::Value, field: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{field}: expected a non-negative integer, got {v:?}"))
}

fn yaml_f64(v: &serde_yaml::Value, field: &str) -> Result<f64, String> {
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{field}: expected a number, got {v:?}"))
}

/// Seconds as LiteLLM writes them (a number), or one of our duration strings.
fn yaml_seconds(v: &serde_yaml::Value, field: &str) -> Result<Duration, String> {
    if let Some(text) = v.as_str() {
        return text.parse().map_err(|e| format!("{field}: {e}"));
    }
    let s = yaml_f64(v, field)?;
    if s < 0.0 {
        return Err(format!("{field}: must be >= 0, got {s}"));
    }
    Ok(Duration::from_secs_f64(s))
}

type Loaded = (Vec<(String, Entry)>, RouterSettings);

/// Reads a LiteLLM proxy `config.yaml`. Errors name the file and the key path.
fn load_yaml(
    path: &std::path::Path,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<Loaded, String> {
    let file = catalog.resolve_path(path).display().to_string();
    let text = catalog.read_file(path).map_err(|e| format!("config_file: {e}"))?;
    let root: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
        format!("config_file: {file}{line}: {e}")
    })?;
    let err = |field: String, message: String| format!("config_file: {file}: {field}: {message}");
    let list = root
        .get("model_list")
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| err("model_list".into(), "missing or not a list".into()))?;
    let mut entries = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("model_list[{i}]");
        let model_name = item
            .get("model_name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err(format!("{field}.model_name"), "missing".into()))?;
        let params = item
            .get("litellm_params")
            .and_then(|v| v.as_mapping())
            .ok_or_else(|| err(format!("{field}.litellm_params"), "missing".into()))?;
        let model = params
            .get("model")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err(format!("{field}.litellm_params.model"), "missing".into()))?;
        let deployment_name = match map.get(model) {
            Some(d) => d.clone(),
            None => {
                let by_name = catalog.deployments.iter().find(|d| d.name == model);
                let tail = model.rsplit('/').next().unwrap_or(model);
                let by_model: Vec<_> =
                    catalog.deployments.iter().filter(|d| d.model == tail || d.model == model).collect();
                match (by_name, by_model.as_slice()) {
                    (Some(d), _) => d.name.clone(),
                    (None, [d]) => d.name.clone(),
                    _ => {
                        return Err(err(
                            format!("{field}.litellm_params.model"),
                            format!("{model:?} matches no single scenario deployment; map it with deployment_map = {{ {model:?} = \"<deployment>\" }}"),
                        ))
                    }
                }
            }
        };
        let id = catalog
            .id(&format!("deployment_map.{model:?}"), &deployment_name)
            .map_err(|e| err(field.clone(), e))?;
        let mut e = ModelEntry {
            model_name: model_name.to_string(),
            deployment: deployment_name,
            rpm: None,
            tpm: None,
            weight: None,
            max_parallel_requests: None,
            timeout: None,
        };
        for (key, value) in params {
            let key = key.as_str().unwrap_or_default();
            let f = format!("{field}.litellm_params.{key}");
            match key {
                "model" => {}
                "rpm" => e.rpm = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))?),
                "tpm" => e.tpm = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))?),
                "weight" => e.weight = Some(yaml_f64(value, &f).map_err(|m| err(f.clone(), m))?),
                "max_parallel_requests" => {
                    e.max_parallel_requests = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))? as u32)
                }
                "timeout" => e.timeout = Some(yaml_seconds(value, &f).map_err(|m| err(f.clone(), m))?),
                k if IGNORED_PARAMS.contains(&k) => {}
                other => {
                    return Err(err(f, format!("unsupported key {other:?} (routing keys we model: model, rpm, tpm, weight, max_parallel_requests, timeout)")))
                }
            }
        }
        entries.push((e.model_name.clone(), entry(id, &e, &field).map_err(|m| err(field.clone(), m))?));
    }
    let mut settings = RouterSettings::default();
    // LiteLLM accepts router options both under router_settings and litellm_settings.
    for section in ["litellm_settings", "router_settings"] {
        let Some(map) = root.get(section).and_then(|v| v.as_mapping()) else { continue };
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            let f = format!("{section}.{key}");
            let wrap = |m: String| err(f.clone(), m);
            match key {
                "routing_strategy" => {
                    let name = value.as_str().unwrap_or_default();
                    settings.routing_strategy = serde_yaml::from_value(serde_yaml::Value::String(name.into()))
                        .map_err(|_| wrap(format!("unsupported routing strategy {name:?} (simple-shuffle, least-busy, usage-based-routing, latency-based-routing, cost-based-routing)")))?;
                }
                "num_retries" => settings.num_retries = yaml_u64(value, &f).map_err(wrap)? as u32,
                "allowed_fails" => settings.allowed_fails = yaml_u64(value, &f).map_err(wrap)? as u32,
                "cooldown_time" => settings.cooldown_time = yaml_seconds(value, &f).map_err(wrap)?,
                "timeout" | "request_timeout" => {
                    settings.timeout = Some(yaml_seconds(value, &f).map_err(wrap)?)
                }
                "fallbacks" => {
                    settings.fallbacks = serde_yaml::from_value(value.clone())
                        .map_err(|e| wrap(format!("expected a list of {{group: [fallback groups]}}: {e}")))?
                }
                "routing_strategy_args" => {
                    if let Some(args) = value.as_mapping() {
                        for (k, v) in args {
                            match k.as_str().unwrap_or_default() {
                                "lowest_latency_buffer" => {
                                    settings.lowest_latency_buffer = yaml_f64(v, &f).map_err(wrap)?
                                }
                                "ttl" => settings.ttl = yaml_seconds(v, &f).map_err(wrap)?,
                                other => {
                                    return Err(wrap(format!(
                                        "unsupported routing_strategy_args key {other:?}"
                                    )))
                                }
                            }
                        }
                    }
                }
                k if IGNORED_ROUTER_SETTINGS.contains(&k) => {}
                other if section == "litellm_settings" => {
                    // litellm_settings holds much that is not routing (callbacks, logging…).
                    let _ = other;
                }
                other => return Err(wrap(format!("unsupported router setting {other:?}"))),
            }
        }
    }
    Ok((entries, settings))
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
        let mut s = DeploymentState { requests_this_minute: 5, fails_this_minute: 3, ..Default::default() };
        s.roll_minute(Instant::from_millis(59_000));
        assert_eq!(s.requests_this_minute, 5);
        s.roll_minute(Instant::from_millis(60_000));
        assert_eq!((s.requests_this_minute, s.fails_this_minute), (0, 0));
    }
}
