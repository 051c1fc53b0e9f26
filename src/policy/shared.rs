//! What gateway replicas synchronise through a shared store: the changes one copy of a router
//! made to its shareable state since it last told the store ([`SharedDelta`]), drained with
//! [`Policy::export_shared`](super::Policy::export_shared) and applied to the other copies
//! with [`Policy::import_shared`](super::Policy::import_shared).
//!
//! Shared: client-side limiter traffic (`smoothing`: every admission and settlement, in order,
//! so a copy replays another's debits and refunds without creating a permit), LiteLLM
//! cooldowns (the latest started wins, as a store's `SET` with a TTL does) and LiteLLM usage
//! counters (requests and tokens per deployment and UTC minute, added as `INCRBY` adds).
//! Everything else a policy knows stays with its copy (queues, in-flight gates, observed
//! latencies, failure counts, AIMD limits, hedge budgets).
//!
//! A delta is a tree shaped like the policy that made it: a policy's own changes, then one
//! child per nested policy in the order it holds them (a wrapper's inner, a rule set's rules
//! then its default), so copies built from one configuration apply each part to the same
//! component. It owns the shape of the exchange; it must not know when replicas synchronise
//! (that is [`replicas`](super::replicas)).

use crate::limiter::{Consumed, Demand};
use crate::provider::DeploymentId;
use crate::time::Instant;

/// One change to a client-side limiter, as its copy made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimiterChange {
    /// An attempt to `deployment` was admitted with `demand`.
    Admitted { deployment: DeploymentId, demand: Demand },
    /// An admission of `demand` to `deployment` was settled with what it consumed.
    Settled { deployment: DeploymentId, demand: Demand, consumed: Consumed },
}

/// A cooldown a copy started: `deployment` is not picked before `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooldownStarted {
    pub deployment: DeploymentId,
    /// When it was started (the latest started cooldown wins).
    pub at: Instant,
    pub until: Instant,
}

/// Usage counted by a copy for one deployment in one UTC calendar minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageAdded {
    pub deployment: DeploymentId,
    /// The minute's index since virtual time 0 ([`Instant::minute_index`]).
    pub minute: u64,
    pub requests: u64,
    pub tokens: u64,
}

/// The shareable changes one copy of a policy made since its last export.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedDelta {
    /// Client-side limiter traffic, in the order it happened.
    pub limiter: Vec<LimiterChange>,
    /// Cooldowns started, in the order they were started.
    pub cooldowns: Vec<CooldownStarted>,
    /// Usage added, one entry per (deployment, minute).
    pub usage: Vec<UsageAdded>,
    /// The deltas of the nested policies, in the order the policy holds them.
    pub inner: Vec<SharedDelta>,
}

impl SharedDelta {
    /// A delta of nested policies only (a wrapper with no shareable state of its own).
    pub fn of_inner(inner: Vec<SharedDelta>) -> SharedDelta {
        SharedDelta { inner, ..SharedDelta::default() }
    }

    /// A wrapper's delta around its one inner policy's (empty if that is empty: no allocation
    /// when nothing changed).
    pub fn wrapping(inner: SharedDelta) -> SharedDelta {
        if inner.is_empty() {
            SharedDelta::default()
        } else {
            SharedDelta::of_inner(vec![inner])
        }
    }

    /// Whether nothing changed, nested policies included.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
            && self.cooldowns.is_empty()
            && self.usage.is_empty()
            && self.inner.iter().all(SharedDelta::is_empty)
    }

    /// The nested delta at `index` (an empty one if the exporting copy had none there).
    pub fn child(&self, index: usize) -> &SharedDelta {
        const EMPTY: &SharedDelta =
            &SharedDelta { limiter: Vec::new(), cooldowns: Vec::new(), usage: Vec::new(), inner: Vec::new() };
        self.inner.get(index).unwrap_or(EMPTY)
    }

    /// Counts `requests` and `tokens` for `deployment` in `minute`, adding to an entry for the
    /// same deployment and minute if there is one.
    pub fn add_usage(&mut self, deployment: DeploymentId, minute: u64, requests: u64, tokens: u64) {
        match self.usage.iter_mut().find(|u| u.deployment == deployment && u.minute == minute) {
            Some(u) => {
                u.requests += requests;
                u.tokens += tokens;
            }
            None => self.usage.push(UsageAdded { deployment, minute, requests, tokens }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_one_deployment_and_minute_adds_up_and_emptiness_looks_inside() {
        let (a, b) = (DeploymentId(0), DeploymentId(1));
        let mut delta = SharedDelta::default();
        assert!(delta.is_empty());
        delta.add_usage(a, 0, 1, 0);
        delta.add_usage(a, 0, 0, 120);
        delta.add_usage(a, 1, 1, 0);
        delta.add_usage(b, 0, 1, 0);
        assert_eq!(
            delta.usage,
            vec![
                UsageAdded { deployment: a, minute: 0, requests: 1, tokens: 120 },
                UsageAdded { deployment: a, minute: 1, requests: 1, tokens: 0 },
                UsageAdded { deployment: b, minute: 0, requests: 1, tokens: 0 },
            ]
        );
        let wrapper = SharedDelta::of_inner(vec![SharedDelta::default(), delta.clone()]);
        assert!(!wrapper.is_empty(), "a nested change is a change");
        assert_eq!(wrapper.child(1), &delta);
        assert!(wrapper.child(7).is_empty());
        assert!(SharedDelta::of_inner(vec![SharedDelta::default()]).is_empty());
        assert_eq!(SharedDelta::wrapping(SharedDelta::default()), SharedDelta::default());
        assert_eq!(SharedDelta::wrapping(delta.clone()).child(0), &delta);
    }
}
