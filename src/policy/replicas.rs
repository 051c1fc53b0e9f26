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
use super::{AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::rng::SplitMix64;
use crate::time::Instant;
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
    replicas: Vec<Box<dyn Policy>>,
    split: Split,
    next: usize,
    /// The replica of every request routed and not yet forgotten.
    owner: HashMap<u64, usize>,
}

impl Replicas {
    pub fn build(config: &ReplicasConfig, catalog: &Catalog) -> Result<Replicas, PolicyError> {
        if config.count == 0 || config.count > MAX_REPLICAS {
            return Err(PolicyError::new("count", format!("must be between 1 and {MAX_REPLICAS}")));
        }
        let replicas = (0..config.count)
            .map(|_| nested("inner", config.inner.build(catalog)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Replicas { replicas, split: config.split, next: 0, owner: HashMap::new() })
    }

    fn replica_of(&mut self, request: &Request) -> usize {
        if let Some(&replica) = self.owner.get(&request.id) {
            return replica;
        }
        let n = self.replicas.len();
        let replica = match (self.split, request.session) {
            (Split::Session, Some(session)) => (session % n as u64) as usize,
            _ => {
                let replica = self.next;
                self.next = (self.next + 1) % n;
                replica
            }
        };
        self.owner.insert(request.id, replica);
        replica
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
        let replica = self.replica_of(request);
        self.replicas[replica].route(now, request, history, rng)
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let replica = *self.owner.get(&request.id)?;
        self.replicas[replica].hedge(now, request, history, rng)
    }

    /// A report reaches only the replica that sent the attempt: the others never hear of it.
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some(&replica) = self.owner.get(&report.request_id) {
            self.replicas[replica].observe(now, report);
        }
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        if let Some(replica) = self.owner.remove(&request_id) {
            self.replicas[replica].forget(now, request_id);
        }
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        for replica in &mut self.replicas {
            replica.unpark(now, woken);
        }
    }

    fn wants_rate_limit_headers(&self) -> bool {
        self.replicas.iter().any(|r| r.wants_rate_limit_headers())
    }
}
