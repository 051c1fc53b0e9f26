//! Requests spread over sub-policies: the first sub-policy a request is given keeps it, and
//! everything about the request (hedges, reports, its release) goes to that one. Shared by
//! `rules` (a sub-policy per rule) and `replicas` (a copy of the router per gateway replica).
//!
//! It owns the request → sub-policy map; it must not know how a sub-policy is chosen.

use super::{AttemptReport, Decision, HedgeAttempt, History, Policy, SharedDelta};
use crate::rng::SplitMix64;
use crate::time::Instant;
use crate::trace::Request;
use std::collections::HashMap;

/// Sub-policies and which one owns each request in flight.
pub struct Dispatch {
    policies: Vec<Box<dyn Policy>>,
    owner: HashMap<u64, usize>,
}

impl Dispatch {
    pub fn new(policies: Vec<Box<dyn Policy>>) -> Dispatch {
        Dispatch { policies, owner: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The sub-policy that owns `request`, if it was routed and not yet forgotten.
    pub fn owner_of(&self, request: &Request) -> Option<usize> {
        self.owner_of_id(request.id)
    }

    /// The sub-policy that owns the request `request_id`, if it was routed and not yet forgotten.
    pub fn owner_of_id(&self, request_id: u64) -> Option<usize> {
        self.owner.get(&request_id).copied()
    }

    /// Sub-policy `index` itself.
    pub fn policy_mut(&mut self, index: usize) -> &mut dyn Policy {
        self.policies[index].as_mut()
    }

    /// Routes `request` with its owner, or, on its first call, with `pick`, which then owns it.
    pub fn route(
        &mut self,
        pick: usize,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        let owner = *self.owner.entry(request.id).or_insert(pick);
        self.policies[owner].route(now, request, history, rng)
    }

    pub fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        let owner = self.owner_of(request)?;
        self.policies[owner].hedge(now, request, history, rng)
    }

    /// A report reaches only the sub-policy that sent the attempt.
    pub fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some(&owner) = self.owner.get(&report.request_id) {
            self.policies[owner].observe(now, report);
        }
    }

    pub fn forget(&mut self, now: Instant, request_id: u64) {
        if let Some(owner) = self.owner.remove(&request_id) {
            self.policies[owner].forget(now, request_id);
        }
    }

    pub fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        for policy in &mut self.policies {
            policy.unpark(now, woken);
        }
    }

    pub fn wants_rate_limit_headers(&self) -> bool {
        self.policies.iter().any(|p| p.wants_rate_limit_headers())
    }

    pub fn start_sharing(&mut self) {
        for policy in &mut self.policies {
            policy.start_sharing();
        }
    }

    /// Every sub-policy's delta, in order (empty if none changed).
    pub fn export_shared(&mut self) -> SharedDelta {
        let inner: Vec<SharedDelta> = self.policies.iter_mut().map(|p| p.export_shared()).collect();
        if inner.iter().all(SharedDelta::is_empty) {
            return SharedDelta::default();
        }
        SharedDelta::of_inner(inner)
    }

    /// Each sub-policy takes the child delta at its own position.
    pub fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
        for (i, policy) in self.policies.iter_mut().enumerate() {
            let child = delta.child(i);
            if !child.is_empty() {
                policy.import_shared(at, child);
            }
        }
    }
}
