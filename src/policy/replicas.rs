//! Gateway replicas: one strategy run as N copies of its router behind a load balancer, each
//! with its own client-side limits, usage counters and cooldowns. Without a shared store
//! every replica pre-checks only its own memory, so a client-side limit admits up to N times
//! what it should (the LiteLLM replica leak reported at 6.6× a 100-TPM limit).
//!
//! It owns the split of requests over replicas and which replica a request's reports go to;
//! it must not know what the router inside does. Synchronising replicas through a store
//! every Δ needs each policy's state to merge and is not modelled yet: `sync = "none"` is
//! Δ = ∞, and a perfectly shared store (Δ = 0) is one replica.

use super::config::{nested, Catalog, PolicyConfig, PolicyError};
use super::dispatch::Dispatch;
use super::{AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::rng::SplitMix64;
use crate::time::Instant;
use crate::trace::Request;
use serde::{Deserialize, Serialize};

/// Most replicas of one strategy.
pub const MAX_REPLICAS: u32 = 1_000;

/// The `replicas` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplicasConfig {
    /// The router every replica runs (built once per replica).
    pub inner: Box<PolicyConfig>,
    /// Gateway replicas.
    pub count: u32,
    #[serde(default)]
    pub split: Split,
    #[serde(default)]
    pub sync: Sync,
}

/// How the load balancer spreads requests over replicas.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// In the order requests first reach the gateway.
    #[default]
    RoundRobin,
    /// Sticky by session (requests without one go round robin).
    Session,
}

/// How replicas share state.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sync {
    /// Each replica knows only its own traffic (no shared store: Δ = ∞).
    #[default]
    None,
}

/// N replicas of a router.
pub struct Replicas {
    replicas: Dispatch,
    split: Split,
    next: usize,
}

impl Replicas {
    pub fn build(config: &ReplicasConfig, catalog: &Catalog) -> Result<Replicas, PolicyError> {
        if config.count == 0 || config.count > MAX_REPLICAS {
            return Err(PolicyError::new("count", format!("must be between 1 and {MAX_REPLICAS}")));
        }
        let replicas = (0..config.count)
            .map(|_| nested("inner", config.inner.build(catalog)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Replicas { replicas: Dispatch::new(replicas), split: config.split, next: 0 })
    }

    /// The replica the load balancer sends a new request to.
    fn pick(&mut self, request: &Request) -> usize {
        let n = self.replicas.len();
        match (self.split, request.session) {
            (Split::Session, Some(session)) => (session % n as u64) as usize,
            _ => {
                let replica = self.next;
                self.next = (self.next + 1) % n;
                replica
            }
        }
    }
}

impl Policy for Replicas {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let replica = match self.replicas.owner_of(request) {
            Some(replica) => replica,
            None => self.pick(request),
        };
        self.replicas.route(replica, now, request, history, rng)
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        self.replicas.hedge(now, request, history, rng)
    }

    /// A report reaches only the replica that sent the attempt: the others never hear of it.
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        self.replicas.observe(now, report);
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.replicas.forget(now, request_id);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        self.replicas.unpark(now, woken);
    }

    fn wants_rate_limit_headers(&self) -> bool {
        self.replicas.wants_rate_limit_headers()
    }
}
