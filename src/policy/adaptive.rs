//! Adaptive concurrency per deployment (AIMD): each deployment gets a concurrency limit that
//! grows additively while answers succeed (+`increase` per limit's worth of successes, i.e.
//! about +`increase` per round trip) and shrinks multiplicatively on a 429, or when the
//! provider's rate-limit headers say less than `headroom` of a token or request budget remains.
//! Attempts over the limit wait in a per-deployment priority queue (interactive first) until
//! a slot frees. The limit is the router's own estimate of what the provider can take; no
//! configuration of the provider's limits is needed.

use super::classes::{class_ranks, default_priority, rank_of};
use super::config::{nested, Catalog, PolicyConfig};
use super::queueing::{held_or_new_attempt, Pending, SlotGate};
use super::{AttemptOutcome, AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::limiter::Axis;
use crate::policy::config::PolicyError;
use crate::provider::{DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::HashMap;

/// The `adaptive` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    pub inner: Box<PolicyConfig>,
    #[serde(default = "default_initial")]
    pub initial_limit: f64,
    #[serde(default = "one")]
    pub min_limit: f64,
    #[serde(default = "default_max")]
    pub max_limit: f64,
    /// Additive increase per round trip.
    #[serde(default = "one")]
    pub increase: f64,
    /// Multiplicative decrease on a 429 (0.5 halves the limit).
    #[serde(default = "default_decrease")]
    pub decrease: f64,
    /// Shrink when the headers report less than this fraction of a budget remaining.
    #[serde(default = "default_headroom")]
    pub headroom: f64,
    /// After a decrease, further decreases wait this long (one reaction per congestion event).
    #[serde(default = "default_hold")]
    pub decrease_hold: Duration,
    #[serde(default = "default_max_wait")]
    pub max_wait: Duration,
    #[serde(default = "default_priority")]
    pub priority: Vec<String>,
}

fn default_initial() -> f64 {
    16.0
}
fn one() -> f64 {
    1.0
}
fn default_max() -> f64 {
    1000.0
}
fn default_decrease() -> f64 {
    0.5
}
fn default_headroom() -> f64 {
    0.05
}
fn default_hold() -> Duration {
    Duration::from_secs(1)
}
fn default_max_wait() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Debug)]
struct Window {
    limit: f64,
    gate: SlotGate,
    last_decrease: Option<Instant>,
    /// Full budget seen in headers per axis (the largest remaining value), to judge headroom.
    seen_max: SmallVec<[(Axis, u64); 4]>,
}

pub struct Adaptive {
    inner: Box<dyn Policy>,
    config: AdaptiveConfig,
    windows: Vec<Window>,
    pending: HashMap<u64, Pending>,
    admitted: HashMap<(u64, u32), DeploymentId>,
    ranks: Vec<u8>,
    to_wake: Vec<u64>,
}

impl Adaptive {
    pub fn build(config: &AdaptiveConfig, catalog: &Catalog) -> Result<Adaptive, PolicyError> {
        let c = config;
        if !(c.min_limit >= 1.0
            && c.min_limit <= c.initial_limit
            && c.initial_limit <= c.max_limit
            && c.max_limit.is_finite())
        {
            return Err(PolicyError::new(
                "initial_limit",
                "need 1 <= min_limit <= initial_limit <= max_limit (finite)",
            ));
        }
        if !(c.decrease > 0.0 && c.decrease < 1.0) {
            return Err(PolicyError::new("decrease", format!("must be in (0, 1), got {}", c.decrease)));
        }
        if !crate::validate::is_positive(c.increase) {
            return Err(PolicyError::new("increase", format!("must be > 0, got {}", c.increase)));
        }
        super::config::check_fraction("headroom", c.headroom)?;
        Ok(Adaptive {
            inner: nested("inner", c.inner.build(catalog))?,
            windows: vec![
                Window {
                    limit: c.initial_limit,
                    gate: SlotGate::default(),
                    last_decrease: None,
                    seen_max: SmallVec::new()
                };
                catalog.deployments.len()
            ],
            config: c.clone(),
            pending: HashMap::new(),
            admitted: HashMap::new(),
            ranks: class_ranks("priority", &c.priority)?,
            to_wake: Vec::new(),
        })
    }

    fn decrease(&mut self, d: DeploymentId, now: Instant) {
        let (factor, floor, hold) = (self.config.decrease, self.config.min_limit, self.config.decrease_hold);
        let w = &mut self.windows[d.index()];
        if w.last_decrease.is_some_and(|at| now.saturating_since(at) < hold) {
            return;
        }
        w.limit = (w.limit * factor).max(floor);
        w.last_decrease = Some(now);
    }

    fn wake(&mut self, d: DeploymentId) {
        let w = &self.windows[d.index()];
        self.to_wake.extend(w.gate.wakeable(w.limit.floor() as u32));
    }
}

impl Policy for Adaptive {
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
        // Batch submissions do not hold a connection: only synchronous attempts are limited.
        let pending = match held_or_new_attempt(
            &self.pending,
            self.inner.as_mut(),
            now,
            request,
            history,
            rng,
            false,
        ) {
            Ok(p) => p,
            Err(decision) => return decision,
        };
        let d = pending.deployment;
        let w = &mut self.windows[d.index()];
        if w.gate.try_enter(id, w.limit.floor() as u32, false) {
            self.pending.remove(&id);
            self.admitted.insert((id, history.next_attempt()), d);
            return Decision::Attempt {
                deployment: d,
                options: pending.options,
                hedge_after: pending.hedge_after,
            };
        }
        let deadline = pending.queued_at + self.config.max_wait;
        if now >= deadline {
            w.gate.queue.remove(id);
            self.pending.remove(&id);
            self.wake(d);
            return Decision::Reject { reason: "queue_timeout" };
        }
        w.gate.queue.push(id, rank_of(&self.ranks, request.class));
        self.pending.insert(id, pending);
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
        if hedge.options.batch {
            return Some(hedge); // batch submissions hold no connection
        }
        let id = request.id;
        let d = hedge.deployment;
        let w = &mut self.windows[d.index()];
        // A hedge must not wait: it takes a free slot now, ahead of the queue, or does not go.
        if !w.gate.try_enter(id, w.limit.floor() as u32, true) {
            return None;
        }
        self.pending.remove(&id);
        self.admitted.insert((id, history.next_attempt()), d);
        Some(hedge)
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some(d) = self.admitted.remove(&(report.request_id, report.attempt)) {
            let (increase, max, headroom) =
                (self.config.increase, self.config.max_limit, self.config.headroom);
            let w = &mut self.windows[d.index()];
            w.gate.leave();
            let mut squeeze = false;
            if let Some(r) = report.remaining.as_deref() {
                for a in &r.axes {
                    let seen = match w.seen_max.iter_mut().find(|(axis, _)| *axis == a.axis) {
                        Some((_, seen)) => seen,
                        None => {
                            w.seen_max.push((a.axis, 0));
                            &mut w.seen_max.last_mut().expect("just pushed").1
                        }
                    };
                    *seen = (*seen).max(a.remaining);
                    squeeze |= *seen > 0 && (a.remaining as f64) < headroom * *seen as f64;
                }
            }
            match report.outcome {
                AttemptOutcome::Failed(FailureKind::RateLimited) => self.decrease(d, now),
                AttemptOutcome::Success if squeeze => self.decrease(d, now),
                AttemptOutcome::Success => {
                    let w = &mut self.windows[d.index()];
                    w.limit = (w.limit + increase / w.limit).min(max);
                }
                _ => {}
            }
            self.wake(d);
        }
        self.inner.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        if let Some(p) = self.pending.remove(&request_id) {
            self.windows[p.deployment.index()].gate.queue.remove(request_id);
        }
        self.inner.forget(now, request_id);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        woken.append(&mut self.to_wake);
        self.inner.unpark(now, woken);
    }

    fn wants_rate_limit_headers(&self) -> bool {
        true
    }
}
