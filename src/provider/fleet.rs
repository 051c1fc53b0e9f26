//! The deployments of one run together: each deployment's runtime state and the server-side
//! limiters, a deployment's own and the pools it shares with others (a model family's pooled
//! limit, an organisation's or an API key's quota). An attempt is admitted only if the
//! deployment's own limiter and every pool it answers to admit it, all-or-nothing; a refusal
//! by a pool reports the axis as shared (`shared_input_tokens`).
//!
//! A pool is one limiter, so every deployment naming it must define it identically
//! ([`PoolConflict`] otherwise; the scenario refuses such a file). It must not know about
//! routing or the event loop.

use super::state::{Admission, AttemptOptions, AttemptPlan, DeploymentState, PlannedOutcome};
use super::Deployment;
use crate::limiter::{more_binding, Consumed, Demand, Limits, MultiLimiter, Refusal, Remaining};
use crate::time::Instant;
use crate::trace::Request;
use smallvec::SmallVec;

/// Two deployments define one pool differently.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "pool {pool:?} is defined differently by deployments {first:?} and {second:?}; a pool is one \
     shared limiter, so every deployment naming it must give it the same quotas"
)]
pub struct PoolConflict {
    pub pool: String,
    pub first: String,
    pub second: String,
}

/// Which limiters each deployment answers to: its own first, then its pools'.
#[derive(Clone, Debug)]
struct Membership {
    /// Limits of every limiter: deployments' own (indexed like the deployments), then pools.
    limits: Vec<Limits>,
    /// Whether a limiter is a pool.
    shared: Vec<bool>,
    /// Per deployment, the indices into `limits` it answers to.
    members: Vec<SmallVec<[u32; 2]>>,
}

fn membership(deployments: &[Deployment]) -> Result<Membership, PoolConflict> {
    let mut limits: Vec<Limits> = deployments.iter().map(|d| d.limits.clone()).collect();
    let mut shared = vec![false; deployments.len()];
    // (pool name, limiter index, first definer)
    let mut pools: Vec<(&str, u32, &str)> = Vec::new();
    let mut members = Vec::with_capacity(deployments.len());
    for (i, d) in deployments.iter().enumerate() {
        let mut mine: SmallVec<[u32; 2]> = SmallVec::new();
        mine.push(i as u32);
        for pool in &d.pools {
            let index = match pools.iter().find(|(name, _, _)| *name == pool.name) {
                Some(&(_, index, first)) => {
                    if limits[index as usize].quotas != pool.quotas {
                        return Err(PoolConflict {
                            pool: pool.name.clone(),
                            first: first.to_string(),
                            second: d.name.clone(),
                        });
                    }
                    index
                }
                None => {
                    let index = limits.len() as u32;
                    limits.push(Limits { quotas: pool.quotas.clone(), ..Limits::default() });
                    shared.push(true);
                    pools.push((&pool.name, index, &d.name));
                    index
                }
            };
            mine.push(index);
        }
        members.push(mine);
    }
    Ok(Membership { limits, shared, members })
}

/// Checks that every pool is defined identically by the deployments naming it.
pub fn check_pools(deployments: &[Deployment]) -> Result<(), PoolConflict> {
    membership(deployments).map(|_| ())
}

/// The limiters one deployment answers to, borrowed for one admission or settlement.
pub struct Gate<'a> {
    limiters: &'a mut [MultiLimiter],
    shared: &'a [bool],
    members: &'a [u32],
}

impl Gate<'_> {
    /// The most binding refusal among the limiters, or `Ok` if all admit.
    pub fn check(&self, now: Instant, demand: Demand) -> Result<(), Refusal> {
        let mut refusal = None;
        for &m in self.members {
            if let Err(r) = self.limiters[m as usize].check(now, demand) {
                let axis = if self.shared[m as usize] { r.axis.shared() } else { r.axis };
                refusal = Some(more_binding(refusal, Refusal { axis, ..r }));
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// Admits on every limiter; only after [`Gate::check`] passed at `now`.
    pub fn admit_checked(&mut self, now: Instant, demand: Demand) -> Admission {
        let permits =
            self.members.iter().map(|&m| self.limiters[m as usize].admit_checked(now, demand)).collect();
        Admission { permits }
    }

    /// [`MultiLimiter::check_spend`] on every limiter: the most binding spend refusal.
    pub fn check_spend(&self, now: Instant) -> Result<(), Refusal> {
        let mut refusal = None;
        for &m in self.members {
            if let Err(r) = self.limiters[m as usize].check_spend(now) {
                let axis = if self.shared[m as usize] { r.axis.shared() } else { r.axis };
                refusal = Some(more_binding(refusal, Refusal { axis, ..r }));
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// [`MultiLimiter::debit_spend`] on every limiter.
    pub fn debit_spend(&mut self, now: Instant, spend_micro_usd: u64) {
        for &m in self.members {
            self.limiters[m as usize].debit_spend(now, spend_micro_usd);
        }
    }

    /// Settles an admission on every limiter it holds.
    pub fn settle(&mut self, now: Instant, admission: Admission, consumed: Consumed) {
        for (&m, permit) in self.members.iter().zip(admission.permits) {
            self.limiters[m as usize].settle(now, permit, consumed);
        }
    }
}

/// Every deployment of a run with the limiters they answer to.
#[derive(Debug)]
pub struct Fleet {
    states: Vec<DeploymentState>,
    limiters: Vec<MultiLimiter>,
    shared: Vec<bool>,
    members: Vec<SmallVec<[u32; 2]>>,
}

impl Fleet {
    /// Full limiters, empty batch queues, incident timelines drawn from `seed`.
    pub fn new(deployments: &[Deployment], seed: u64) -> Result<Fleet, PoolConflict> {
        let m = membership(deployments)?;
        Ok(Fleet {
            states: deployments.iter().map(|d| DeploymentState::new(d, seed)).collect(),
            limiters: m.limits.iter().map(|l| MultiLimiter::new(l, Instant::ZERO)).collect(),
            shared: m.shared,
            members: m.members,
        })
    }

    fn gate(&mut self, d: usize) -> (&mut DeploymentState, Gate<'_>) {
        let gate = Gate { limiters: &mut self.limiters, shared: &self.shared, members: &self.members[d] };
        (&mut self.states[d], gate)
    }

    /// Starts attempt number `attempt` of `request` at deployment `d` (= `deployment`) at
    /// `now` and decides its fate.
    #[allow(clippy::too_many_arguments)]
    pub fn start_attempt(
        &mut self,
        deployment: &Deployment,
        d: usize,
        seed: u64,
        request: &Request,
        attempt: u32,
        now: Instant,
        options: AttemptOptions,
    ) -> AttemptPlan {
        let (state, mut gate) = self.gate(d);
        state.start_attempt(&mut gate, deployment, seed, request, attempt, now, options)
    }

    /// Cancels an in-flight attempt at `now`; returns (output tokens billed, cost).
    pub fn cancel(
        &mut self,
        deployment: &Deployment,
        d: usize,
        request: &Request,
        plan: AttemptPlan,
        now: Instant,
    ) -> (u64, f64) {
        let (state, mut gate) = self.gate(d);
        state.cancel(&mut gate, deployment, request, plan, now)
    }

    /// Ends an attempt planned by [`Fleet::start_attempt`] (see [`DeploymentState::finish`]);
    /// `batch_queued_tokens` is the plan's for a batch submission, `None` otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        d: usize,
        now: Instant,
        outcome: PlannedOutcome,
        admission: Option<Admission>,
        output_tokens: u64,
        cost_usd: f64,
        batch_queued_tokens: Option<u64>,
    ) {
        let (state, mut gate) = self.gate(d);
        state.finish(
            &mut gate,
            now,
            outcome,
            admission,
            Consumed::new(output_tokens, cost_usd),
            batch_queued_tokens,
        );
    }

    /// Remaining capacity of every limiter deployment `d` answers to (pools' axes shared).
    pub fn remaining(&self, d: usize, now: Instant) -> Remaining {
        let mut remaining = Remaining { in_flight: self.limiters[d].in_flight(), ..Remaining::default() };
        for &m in &self.members[d] {
            let r = self.limiters[m as usize].remaining(now);
            let shared = self.shared[m as usize];
            remaining.axes.extend(r.axes.into_iter().map(|mut a| {
                if shared {
                    a.axis = a.axis.shared();
                }
                a
            }));
        }
        remaining
    }

    /// What deployment `d`'s rate-limit headers say now: [`Fleet::remaining`] with token
    /// counts rounded to the nearest 1,000, as Anthropic reports them.
    pub fn headers(&self, d: usize, now: Instant) -> Remaining {
        let mut remaining = self.remaining(d, now);
        for a in &mut remaining.axes {
            if a.axis.meter().is_some_and(|m| m.is_token_count()) {
                a.remaining = (a.remaining + 500) / 1000 * 1000;
            }
        }
        remaining
    }

    /// Requests admitted at deployment `d` and not yet finished.
    pub fn in_flight(&self, d: usize) -> u32 {
        self.limiters[d].in_flight()
    }

    /// Requests waiting in deployment `d`'s batch queue.
    pub fn batch_queued(&self, d: usize) -> u64 {
        self.states[d].batch_queued()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Axis;
    use crate::provider::tests::{config, request};
    use crate::provider::{AttemptOptions, FailureKind};
    use crate::time::Duration;

    fn deployment(name: &str, limits: &str) -> Deployment {
        Deployment::from_config(name, &config(&format!("limits = {limits}"))).unwrap()
    }

    /// Runs one attempt at `d` from start to end; returns its outcome.
    fn run_one(fleet: &mut Fleet, deployments: &[Deployment], d: usize, now: Instant) -> PlannedOutcome {
        let r = request(1_000, 0, 0, 100);
        let plan = fleet.start_attempt(&deployments[d], d, 1, &r, 1, now, AttemptOptions::default());
        let outcome = plan.outcome;
        fleet.finish(d, plan.ends_at, outcome, plan.permit, plan.output_tokens, plan.cost_usd, None);
        outcome
    }

    const POOL: &str =
        r#"{ rpm = 100, quotas = [{ meter = "requests", amount = 3, period = "1m", pool = "opus-4" }] }"#;

    #[test]
    fn a_pooled_family_limit_is_shared_by_every_deployment_naming_it() {
        let deployments = [
            deployment("a/opus-4.5", POOL),
            deployment("a/opus-4.6", POOL),
            deployment("a/other", "{ rpm = 100 }"),
        ];
        let mut fleet = Fleet::new(&deployments, 1).unwrap();
        // 3 per minute for the family: 4.5, 4.6, 4.5 pass, 4.6 is refused by the pool.
        for d in [0, 1, 0] {
            assert_eq!(run_one(&mut fleet, &deployments, d, Instant::ZERO), PlannedOutcome::Success);
        }
        let refused = run_one(&mut fleet, &deployments, 1, Instant::ZERO);
        // One request refills in 60 s / 3 = 20 s.
        assert_eq!(
            refused,
            PlannedOutcome::Failed {
                kind: FailureKind::RateLimited,
                axis: Some(Axis::REQUESTS.shared()),
                retry_after: Some(Duration::from_secs(20))
            }
        );
        // The other model is not in the pool; each deployment's own RPM saw only its attempts.
        assert_eq!(run_one(&mut fleet, &deployments, 2, Instant::ZERO), PlannedOutcome::Success);
        let headers = fleet.remaining(1, Instant::ZERO);
        assert_eq!(headers.of(Axis::REQUESTS), Some(99));
        assert_eq!(headers.of(Axis::REQUESTS.shared()), Some(0));
        assert_eq!(fleet.remaining(0, Instant::ZERO).of(Axis::REQUESTS), Some(98));
    }

    #[test]
    fn a_pool_defined_two_ways_is_refused() {
        let other = r#"{ quotas = [{ meter = "requests", amount = 4, period = "1m", pool = "opus-4" }] }"#;
        let deployments = [deployment("a/opus-4.5", POOL), deployment("a/opus-4.6", other)];
        let e = Fleet::new(&deployments, 1).unwrap_err();
        assert_eq!(
            (e.pool.as_str(), e.first.as_str(), e.second.as_str()),
            ("opus-4", "a/opus-4.5", "a/opus-4.6")
        );
        assert!(check_pools(&deployments[..1]).is_ok());
    }

    #[test]
    fn a_monthly_spend_cap_admits_until_reached_then_answers_quota_exhausted_without_retry_after() {
        // Each attempt: 1000 input × $3/M + 100 output × $15/M = $0.0045. Cap $0.01: the first
        // three are admitted (spent 0, 0.0045, 0.009 < 0.01), the fourth is refused.
        let cap =
            r#"{ quotas = [{ meter = "spend_usd", amount = 0.01, period = "30d", refill = "fixed" }] }"#;
        let deployments = [deployment("a/opus", cap)];
        let mut fleet = Fleet::new(&deployments, 1).unwrap();
        for i in 0..3 {
            let at = Instant::from_millis(i * 10_000);
            assert_eq!(run_one(&mut fleet, &deployments, 0, at), PlannedOutcome::Success);
        }
        let refused = run_one(&mut fleet, &deployments, 0, Instant::from_millis(40_000));
        assert_eq!(
            refused,
            PlannedOutcome::Failed {
                kind: FailureKind::QuotaExhausted,
                axis: Some("spend_usd_per_30d".parse().unwrap()),
                retry_after: None
            }
        );
        let month = Instant::ZERO + Duration::from_secs(30 * 86_400);
        assert_eq!(run_one(&mut fleet, &deployments, 0, month), PlannedOutcome::Success);
    }

    #[test]
    fn a_529_consumes_no_quota_and_a_500_does() {
        let failing = |errors: &str| {
            Deployment::from_config(
                "a/m",
                &config(&format!("limits = {{ rpm = 1 }}\nerrors = {{ {errors} }}")),
            )
            .unwrap()
        };
        let fail = |kind| PlannedOutcome::Failed { kind, axis: None, retry_after: None };
        // Overloaded every time: three 529s at once, and the one-request bucket is still full.
        let overloaded = [failing("overloaded_rate = 1.0")];
        let mut fleet = Fleet::new(&overloaded, 1).unwrap();
        for _ in 0..3 {
            assert_eq!(run_one(&mut fleet, &overloaded, 0, Instant::ZERO), fail(FailureKind::Overloaded));
        }
        assert_eq!(fleet.remaining(0, Instant::ZERO).of(Axis::REQUESTS), Some(1));
        // A 500 was admitted and served badly: it took the request, so the next is a 429.
        let broken = [failing("server_error_rate = 1.0")];
        let mut fleet = Fleet::new(&broken, 1).unwrap();
        assert_eq!(run_one(&mut fleet, &broken, 0, Instant::ZERO), fail(FailureKind::ServerError));
        assert!(matches!(
            run_one(&mut fleet, &broken, 0, Instant::ZERO),
            PlannedOutcome::Failed { kind: FailureKind::RateLimited, .. }
        ));
    }
}
