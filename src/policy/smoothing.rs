//! Client-side smoothing: queue locally instead of stampeding a provider.
//!
//! [`Smoothing`] runs the *same* limiter code the provider model enforces, client-side, one
//! per deployment: an attempt the inner policy wants to send waits in a local queue until the
//! local limiter admits it — by class priority (interactive before hard before bulk before
//! async), first come first served within a class — and fails with cause `queue_timeout` after
//! `max_wait`. [`ConcurrencyCap`] is the simplest fix users try: a global cap on attempts in
//! flight, with the same priority queue.
//!
//! The inner policy decides *where*; these wrappers decide *when*. A queued request keeps the
//! target the inner policy chose, so the inner policy is asked once per attempt.
//!
//! Run as synchronised gateway replicas ([`super::replicas`]), smoothing shares its limiters'
//! traffic (every admission and settlement, so the axes and the in-flight count) and keeps its
//! queues; a concurrency cap is each replica's own (a process's connection limit).

use super::classes::{class_ranks, default_priority, rank_of};
use super::config::{nested, Catalog, PolicyConfig};
use super::queueing::{held_or_new_attempt, Pending, SlotGate, WaitQueue};
use super::shared::LimiterChange;
use super::{AttemptOutcome, AttemptReport, Decision, HedgeAttempt, History, Policy, SharedDelta};
use crate::limiter::config::LimitsConfig;
use crate::limiter::{Consumed, Demand, Limit, Limits, MultiLimiter, Permit, Quota, Refusal, Retry};
use crate::policy::config::PolicyError;
use crate::provider::{counted_input_tokens, DeploymentId, Prices, Usage};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

fn default_max_wait() -> Duration {
    Duration::from_secs(60)
}

/// The `smoothing` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmoothingConfig {
    /// The policy that decides where each attempt goes.
    pub inner: Box<PolicyConfig>,
    /// Client-side limits per deployment name.
    #[serde(default)]
    pub limits: BTreeMap<String, LimitsConfig>,
    /// For deployments without explicit `limits`: this fraction of the provider's own limits
    /// (e.g. 0.9 keeps 10% headroom). Omit to leave them unsmoothed.
    pub limits_fraction: Option<f64>,
    /// Longest a request waits in the local queue before failing with `queue_timeout`.
    #[serde(default = "default_max_wait")]
    pub max_wait: Duration,
    /// Class priority, first served first.
    #[serde(default = "default_priority")]
    pub priority: Vec<String>,
}

/// Client-side limits as written: the deployment schema's `limits` table, without what only a
/// provider has (how it counts cache reads, the acceleration rule, pools shared between
/// deployments), which is refused rather than ignored.
fn client_limits(field: &str, config: &LimitsConfig) -> Result<Limits, PolicyError> {
    let built = config.build().map_err(|e| PolicyError::new(format!("{field}.{}", e.field), e.message))?;
    let provider_only = [
        ("cache_reads_count_toward_itpm", config.cache_reads_count_toward_itpm),
        ("acceleration", config.acceleration.is_some()),
        ("quotas[].pool", !built.pools.is_empty()),
    ];
    if let Some((key, _)) = provider_only.iter().find(|(_, set)| *set) {
        return Err(PolicyError::new(
            format!("{field}.{key}"),
            "is a provider-side setting; client-side limits take rpm, itpm, otpm, tpm, max_in_flight, burst and quotas without pools",
        ));
    }
    Ok(built.own)
}

/// `fraction` of a deployment's own limits (at least one unit each), with the same periods and
/// refill rules; the acceleration rule and pools stay the provider's.
fn fraction_of(limits: &Limits, fraction: f64) -> Limits {
    let scale = |amount: u64| ((amount as f64 * fraction).floor() as u64).max(1);
    Limits {
        quotas: limits
            .quotas
            .iter()
            .map(|l| Limit { quota: Quota { amount: scale(l.quota.amount), ..l.quota }, ..*l })
            .collect(),
        max_in_flight: limits.max_in_flight.map(|m| ((f64::from(m) * fraction).floor() as u32).max(1)),
        acceleration: None,
    }
}

/// Client-side smoothing with a local limiter per deployment.
pub struct Smoothing {
    inner: Box<dyn Policy>,
    limiters: Vec<Option<MultiLimiter>>,
    counted_input: Vec<bool>,
    queues: Vec<WaitQueue>,
    pending: HashMap<u64, Pending>,
    parked: HashMap<u64, DeploymentId>,
    /// Local admissions by (request, attempt), with the prompt's billable usage.
    permits: HashMap<(u64, u32), (DeploymentId, Permit, Usage)>,
    /// Each deployment's prices, to charge client-side spend limits.
    prices: Vec<Prices>,
    ranks: Vec<u8>,
    max_wait: Duration,
    to_wake: Vec<u64>,
    /// Limiter traffic not yet exported, once replicas share it ([`Policy::start_sharing`]).
    shared: Option<Vec<LimiterChange>>,
}

impl Smoothing {
    pub fn build(config: &SmoothingConfig, catalog: &Catalog) -> Result<Smoothing, PolicyError> {
        let inner = nested("inner", config.inner.build(catalog))?;
        if config.max_wait.is_zero() {
            return Err(PolicyError::new("max_wait", "must be > 0"));
        }
        let mut limiters: Vec<Option<MultiLimiter>> = vec![None; catalog.deployments.len()];
        for (name, l) in &config.limits {
            let field = format!("limits.{name:?}");
            let id = catalog.id(&field, name)?;
            limiters[id.index()] = Some(MultiLimiter::new(&client_limits(&field, l)?, Instant::ZERO));
        }
        if let Some(fraction) = config.limits_fraction {
            if !(crate::validate::is_positive(fraction) && fraction <= 1.0) {
                return Err(PolicyError::new(
                    "limits_fraction",
                    format!("must be in (0, 1], got {fraction}"),
                ));
            }
            for (i, d) in catalog.deployments.iter().enumerate() {
                if limiters[i].is_none() {
                    limiters[i] = Some(MultiLimiter::new(&fraction_of(&d.limits, fraction), Instant::ZERO));
                }
            }
        }
        Ok(Smoothing {
            inner,
            counted_input: catalog.deployments.iter().map(|d| d.cache_reads_count_toward_itpm).collect(),
            prices: catalog.deployments.iter().map(|d| d.prices.clone()).collect(),
            queues: vec![WaitQueue::default(); limiters.len()],
            limiters,
            pending: HashMap::new(),
            parked: HashMap::new(),
            permits: HashMap::new(),
            ranks: class_ranks("priority", &config.priority)?,
            max_wait: config.max_wait,
            to_wake: Vec::new(),
            shared: None,
        })
    }

    /// Records a change for the other replicas, if they share this one's limiters.
    fn share(&mut self, change: LimiterChange) {
        if let Some(changes) = &mut self.shared {
            changes.push(change);
        }
    }

    /// What `request` asks of `d`'s local limiter: input counted as the deployment counts it.
    fn demand(&self, d: DeploymentId, request: &Request) -> Demand {
        Demand {
            input_tokens: counted_input_tokens(self.counted_input[d.index()], request),
            output_reserve_tokens: request.max_tokens,
        }
    }

    fn wake_head(&mut self, d: DeploymentId) {
        if let Some(head) = self.queues[d.index()].head() {
            if self.parked.contains_key(&head) {
                self.to_wake.push(head);
            }
        }
    }

    fn leave_queue(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            self.queues[p.deployment.index()].remove(id);
            self.parked.remove(&id);
            self.wake_head(p.deployment);
        }
    }
}

impl Policy for Smoothing {
    fn inner(&mut self) -> Option<&mut dyn Policy> {
        Some(self.inner.as_mut())
    }

    fn inner_ref(&self) -> Option<&dyn Policy> {
        Some(self.inner.as_ref())
    }

    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let id = request.id;
        self.parked.remove(&id);
        let pending =
            match held_or_new_attempt(&self.pending, self.inner.as_mut(), now, request, history, rng, true) {
                Ok(p) => p,
                Err(decision) => return decision,
            };
        let d = pending.deployment;
        let attempt =
            Decision::Attempt { deployment: d, options: pending.options, hedge_after: pending.hedge_after };
        let demand = self.demand(d, request);
        let Some(limiter) = self.limiters[d.index()].as_mut() else {
            return attempt;
        };
        let deadline = pending.queued_at + self.max_wait;
        let queue = &mut self.queues[d.index()];
        let my_turn = queue.head().is_none_or(|head| head == id);
        if my_turn {
            match limiter.try_admit(now, demand) {
                Ok(permit) => {
                    self.permits.insert((id, history.next_attempt()), (d, permit, Usage::of(request, 0)));
                    self.share(LimiterChange::Admitted { deployment: d, demand });
                    self.leave_queue(id);
                    return attempt;
                }
                Err(refusal) if refusal.retry == Retry::Never => {
                    // Larger than the local bucket: smoothing cannot help; let the provider answer.
                    self.leave_queue(id);
                    return attempt;
                }
                Err(Refusal { retry: Retry::PeriodEnd(_), .. }) => {
                    // The local budget for the period is spent: waiting cannot help this call.
                    self.leave_queue(id);
                    return Decision::Reject { reason: "client_quota_exhausted" };
                }
                Err(refusal) => {
                    if now >= deadline {
                        self.leave_queue(id);
                        return Decision::Reject { reason: "queue_timeout" };
                    }
                    self.pending.insert(id, pending);
                    self.queues[d.index()].push(id, rank_of(&self.ranks, request.class));
                    if let Retry::At(t) = refusal.retry {
                        return Decision::Wait { until: t.min(deadline) };
                    }
                    self.parked.insert(id, d);
                    return Decision::Park { until: Some(deadline) };
                }
            }
        }
        if now >= deadline {
            self.leave_queue(id);
            return Decision::Reject { reason: "queue_timeout" };
        }
        // Someone with higher priority (or earlier) is ahead: wait to be woken.
        self.pending.insert(id, pending);
        queue.push(id, rank_of(&self.ranks, request.class));
        self.parked.insert(id, d);
        Decision::Park { until: Some(deadline) }
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let hedge = self.inner.hedge(now, request, history, rng)?;
        let d = hedge.deployment;
        let demand = self.demand(d, request);
        let Some(limiter) = self.limiters[d.index()].as_mut() else {
            return Some(hedge);
        };
        // A hedge must not wait: it takes a local token now, ahead of the queue, or does not go.
        match limiter.try_admit(now, demand) {
            Ok(permit) => {
                self.permits.insert((request.id, history.next_attempt()), (d, permit, Usage::of(request, 0)));
                self.share(LimiterChange::Admitted { deployment: d, demand });
                self.leave_queue(request.id);
                Some(hedge)
            }
            Err(refusal) if refusal.retry == Retry::Never => {
                self.leave_queue(request.id);
                Some(hedge)
            }
            Err(_) => None,
        }
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some((d, permit, usage)) = self.permits.remove(&(report.request_id, report.attempt)) {
            if let Some(limiter) = self.limiters[d.index()].as_mut() {
                // What the provider bills: the prompt unless it refused before reading it.
                let billed = match report.outcome {
                    AttemptOutcome::Failed(kind) if kind.is_rate_limit() => Usage::default(),
                    _ => Usage { output_tokens: report.output_tokens, ..usage },
                };
                let cost_usd = self.prices[d.index()].cost_usd(&billed, false);
                let (demand, consumed) = (permit.demand(), Consumed::new(report.output_tokens, cost_usd));
                limiter.settle(now, permit, consumed);
                self.share(LimiterChange::Settled { deployment: d, demand, consumed });
            }
            self.wake_head(d);
        }
        self.inner.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.leave_queue(request_id);
        self.inner.forget(now, request_id);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        woken.append(&mut self.to_wake);
        self.inner.unpark(now, woken);
    }

    fn start_sharing(&mut self) {
        self.shared.get_or_insert_with(Vec::new);
        self.inner.start_sharing();
    }

    fn export_shared(&mut self) -> SharedDelta {
        let limiter = self.shared.as_mut().map(std::mem::take).unwrap_or_default();
        let inner = self.inner.export_shared();
        if limiter.is_empty() && inner.is_empty() {
            return SharedDelta::default();
        }
        SharedDelta { limiter, ..SharedDelta::wrapping(inner) }
    }

    /// Another replica's admissions and settlements are recorded on the same deployments'
    /// limiters at `at` (taken without a permit, so nothing here is admitted by them); a
    /// settlement may free room, so the head of that deployment's queue is woken.
    fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
        for change in &delta.limiter {
            match *change {
                LimiterChange::Admitted { deployment, demand } => {
                    if let Some(limiter) = self.limiters[deployment.index()].as_mut() {
                        limiter.record_admission(at, demand);
                    }
                }
                LimiterChange::Settled { deployment, demand, consumed } => {
                    if let Some(limiter) = self.limiters[deployment.index()].as_mut() {
                        limiter.record_settlement(at, demand, consumed);
                    }
                    self.wake_head(deployment);
                }
            }
        }
        self.inner.import_shared(at, delta.child(0));
    }
}

/// The `concurrency_cap` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyCapConfig {
    pub inner: Box<PolicyConfig>,
    /// Attempts in flight at once, across all deployments, per [`CapScope`].
    pub max_in_flight: u32,
    /// What the cap counts: every attempt (`"all"`, the default), or each agent session's own
    /// (`"session"`: the cap coding agents put on parallel sub-agents; requests without a
    /// session are each their own).
    #[serde(default)]
    pub per: CapScope,
    #[serde(default = "default_max_wait")]
    pub max_wait: Duration,
    #[serde(default = "default_priority")]
    pub priority: Vec<String>,
}

/// What a concurrency cap counts.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    #[default]
    All,
    Session,
}

/// The attempts one cap counts together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum CapGroup {
    All,
    Session(u64),
    /// A request without a session, under a per-session cap.
    Alone(u64),
}

/// A cap on attempts in flight: global, or per agent session (fan-out).
pub struct ConcurrencyCap {
    inner: Box<dyn Policy>,
    max_in_flight: u32,
    per: CapScope,
    /// One gate per group with attempts in flight or waiting (per session: released when idle).
    gates: HashMap<CapGroup, SlotGate>,
    /// Per session: the group of every request routed and not yet forgotten (a global cap
    /// has one group and keeps no map).
    group_of: HashMap<u64, CapGroup>,
    admitted: HashMap<(u64, u32), CapGroup>,
    pending: HashMap<u64, Pending>,
    ranks: Vec<u8>,
    max_wait: Duration,
    to_wake: Vec<u64>,
}

impl ConcurrencyCap {
    pub fn build(config: &ConcurrencyCapConfig, catalog: &Catalog) -> Result<ConcurrencyCap, PolicyError> {
        if config.max_in_flight == 0 {
            return Err(PolicyError::new("max_in_flight", "must be > 0"));
        }
        if config.max_wait.is_zero() {
            return Err(PolicyError::new("max_wait", "must be > 0"));
        }
        Ok(ConcurrencyCap {
            inner: nested("inner", config.inner.build(catalog))?,
            max_in_flight: config.max_in_flight,
            per: config.per,
            gates: HashMap::new(),
            group_of: HashMap::new(),
            admitted: HashMap::new(),
            pending: HashMap::new(),
            ranks: class_ranks("priority", &config.priority)?,
            max_wait: config.max_wait,
            to_wake: Vec::new(),
        })
    }

    fn group(&mut self, request: &Request) -> CapGroup {
        let group = match (self.per, request.session) {
            (CapScope::All, _) => return CapGroup::All,
            (CapScope::Session, Some(session)) => CapGroup::Session(session),
            (CapScope::Session, None) => CapGroup::Alone(request.id),
        };
        self.group_of.insert(request.id, group);
        group
    }

    /// The waiters of `group` that may take its free slots; an idle group's gate is dropped.
    fn wake_heads(&mut self, group: CapGroup) {
        if let Some(gate) = self.gates.get(&group) {
            self.to_wake.extend(gate.wakeable(self.max_in_flight));
            if gate.in_flight == 0 && gate.queue.is_empty() {
                self.gates.remove(&group);
            }
        }
    }
}

impl Policy for ConcurrencyCap {
    fn inner(&mut self) -> Option<&mut dyn Policy> {
        Some(self.inner.as_mut())
    }

    fn inner_ref(&self) -> Option<&dyn Policy> {
        Some(self.inner.as_ref())
    }

    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let id = request.id;
        let pending =
            match held_or_new_attempt(&self.pending, self.inner.as_mut(), now, request, history, rng, true) {
                Ok(p) => p,
                Err(decision) => return decision,
            };
        let group = self.group(request);
        let gate = self.gates.entry(group).or_default();
        if gate.try_enter(id, self.max_in_flight, false) {
            self.admitted.insert((id, history.next_attempt()), group);
            self.pending.remove(&id);
            return pending.attempt();
        }
        let deadline = pending.queued_at + self.max_wait;
        if now >= deadline {
            self.pending.remove(&id);
            gate.queue.remove(id);
            self.wake_heads(group);
            return Decision::Reject { reason: "queue_timeout" };
        }
        self.pending.insert(id, pending);
        gate.queue.push(id, rank_of(&self.ranks, request.class));
        Decision::Park { until: Some(deadline) }
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let hedge = self.inner.hedge(now, request, history, rng)?;
        let group = self.group(request);
        // A hedge must not wait: it takes a free slot now, ahead of the queue, or does not go.
        if !self.gates.entry(group).or_default().try_enter(request.id, self.max_in_flight, true) {
            return None;
        }
        self.admitted.insert((request.id, history.next_attempt()), group);
        self.pending.remove(&request.id);
        Some(hedge)
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some(group) = self.admitted.remove(&(report.request_id, report.attempt)) {
            if let Some(gate) = self.gates.get_mut(&group) {
                gate.leave();
            }
            self.wake_heads(group);
        }
        self.inner.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        let group = match self.per {
            CapScope::All => Some(CapGroup::All),
            CapScope::Session => self.group_of.remove(&request_id),
        };
        if let Some(group) = group {
            if let Some(gate) = self.gates.get_mut(&group) {
                if self.pending.remove(&request_id).is_some() {
                    gate.queue.remove(request_id);
                }
                if gate.in_flight == 0 && gate.queue.is_empty() {
                    self.gates.remove(&group);
                }
            }
        }
        self.pending.remove(&request_id);
        self.inner.forget(now, request_id);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        woken.append(&mut self.to_wake);
        self.inner.unpark(now, woken);
    }
}
