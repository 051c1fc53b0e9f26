//! Gateway replicas: one strategy run as N copies of its router behind a load balancer, each
//! with its own client-side limits, usage counters and cooldowns, synchronised through a shared
//! store every Δ (`sync`).
//!
//! Without a store (`sync = "none"`, Δ = ∞) every replica pre-checks only its own memory, so a
//! client-side limit admits up to N times what it should (the LiteLLM replica leak reported at
//! 6.6× a 100-TPM limit). With `sync = { every = Δ }`, at every multiple of Δ each replica
//! pushes what it changed since the last sync ([`SharedDelta`]: client-side limiter traffic,
//! LiteLLM cooldowns and usage counters) and pulls every other replica's; between syncs it
//! decides on what it knows, so the replicas together may admit, per sync interval, up to N
//! times what was left at the last one. Δ = 0 is an atomic shared store: every change is seen
//! by every replica before the next decision, and the shared state is one gateway's.
//!
//! The policy is sans-IO and has no timer: the sync of instant k·Δ runs at the first call (a
//! route, hedge, report, release or unpark) at or after k·Δ, before that call is handled, and
//! applies the changes at k·Δ itself. Nothing a replica shares changes between calls, so this
//! is the state a timer firing at k·Δ would leave; instants with no call in between have
//! nothing to exchange. All replicas sync at the same instants; each applies the others'
//! deltas in replica order.
//!
//! It owns the split of requests over replicas, which replica a request's reports go to and
//! when replicas exchange deltas; it must not know what the router inside shares or how.

use super::config::{nested, Catalog, PolicyConfig, PolicyError};
use super::dispatch::Dispatch;
use super::{AttemptReport, Decision, HedgeAttempt, History, Policy, SharedDelta};
use crate::rng::SplitMix64;
use crate::suggest::suggestion;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub sync: SyncConfig,
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

/// How replicas share state, as written: `"none"` (each replica knows only its own traffic:
/// no shared store, Δ = ∞) or `{ every = "1s" }` (a store synchronised every Δ; `"0s"`: an
/// atomic store, every change seen at once). Resolved by [`SyncConfig::every`], whose errors
/// name their path.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum SyncConfig {
    Name(String),
    Table(BTreeMap<String, toml::Value>),
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig::Name("none".to_string())
    }
}

const SYNC_FORMS: &str = "\"none\", or { every = \"1s\" } (\"0s\": perfectly shared)";

impl SyncConfig {
    /// Δ, or `None` without a shared store.
    pub fn every(&self) -> Result<Option<Duration>, PolicyError> {
        let table = match self {
            SyncConfig::Name(name) if name == "none" => return Ok(None),
            SyncConfig::Name(name) => {
                return Err(PolicyError::new(
                    "sync",
                    format!("unknown value {name:?} (expected {SYNC_FORMS})"),
                ))
            }
            SyncConfig::Table(table) => table,
        };
        if let Some(key) = table.keys().find(|k| *k != "every") {
            return Err(PolicyError::new(
                format!("sync.{key}"),
                format!("unknown field{} (every)", suggestion(key, &["every"])),
            ));
        }
        let must_be = |detail: String| {
            PolicyError::new(
                "sync.every",
                format!("must be a duration such as \"1s\" (\"0s\": perfectly shared){detail}"),
            )
        };
        let value = table.get("every").ok_or_else(|| must_be(String::new()))?;
        let text = value.as_str().ok_or_else(|| must_be(format!(", got {value}")))?;
        text.parse::<Duration>().map(Some).map_err(|e| must_be(format!(": {e}")))
    }
}

/// N replicas of a router.
pub struct Replicas {
    replicas: Dispatch,
    split: Split,
    next: usize,
    /// Δ, if replicas share state.
    every: Option<Duration>,
    /// The next sync instant (Δ > 0).
    next_sync: Instant,
}

impl Replicas {
    pub fn build(config: &ReplicasConfig, catalog: &Catalog) -> Result<Replicas, PolicyError> {
        if config.count == 0 || config.count > MAX_REPLICAS {
            return Err(PolicyError::new("count", format!("must be between 1 and {MAX_REPLICAS}")));
        }
        let every = config.sync.every()?;
        if every.is_some() && contains_replicas(&config.inner) {
            return Err(PolicyError::new(
                "sync.every",
                "must not be set when the router nests another `replicas` \
                 (nested replicas keep their state to themselves)",
            ));
        }
        let replicas = (0..config.count)
            .map(|_| nested("inner", config.inner.build(catalog)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut replicas = Dispatch::new(replicas);
        if every.is_some() {
            replicas.start_sharing();
        }
        Ok(Replicas {
            replicas,
            split: config.split,
            next: 0,
            every,
            next_sync: Instant::ZERO + every.unwrap_or_default(),
        })
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

    /// Runs the sync that falls due at `now` (Δ > 0), before the call at `now` is handled.
    fn sync_due(&mut self, now: Instant) {
        let Some(every) = self.every.filter(|every| !every.is_zero()) else { return };
        if now < self.next_sync {
            return;
        }
        let at = self.next_sync;
        let n = self.replicas.len();
        let deltas: Vec<SharedDelta> = (0..n).map(|i| self.replicas.policy_mut(i).export_shared()).collect();
        for (from, delta) in deltas.iter().enumerate() {
            if delta.is_empty() {
                continue;
            }
            for to in (0..n).filter(|to| *to != from) {
                self.replicas.policy_mut(to).import_shared(at, delta);
            }
        }
        // The next multiple of Δ after `now`: the instants in between saw no call.
        let every_us = every.as_micros();
        self.next_sync =
            Instant::from_micros((now.as_micros() / every_us).saturating_add(1).saturating_mul(every_us));
    }

    /// Δ = 0: what `replica` just changed at `now` reaches every other replica at once.
    fn sync_now(&mut self, now: Instant, replica: Option<usize>) {
        let (Some(every), Some(from)) = (self.every, replica) else { return };
        if !every.is_zero() {
            return;
        }
        let delta = self.replicas.policy_mut(from).export_shared();
        if delta.is_empty() {
            return;
        }
        for to in (0..self.replicas.len()).filter(|to| *to != from) {
            self.replicas.policy_mut(to).import_shared(now, &delta);
        }
    }
}

/// Whether `config` is or nests a `replicas` policy.
fn contains_replicas(config: &PolicyConfig) -> bool {
    matches!(config, PolicyConfig::Replicas(_)) || config.nested().into_iter().any(contains_replicas)
}

impl Policy for Replicas {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        self.sync_due(now);
        let replica = match self.replicas.owner_of(request) {
            Some(replica) => replica,
            None => self.pick(request),
        };
        let decision = self.replicas.route(replica, now, request, history, rng);
        self.sync_now(now, Some(replica));
        decision
    }

    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        self.sync_due(now);
        let hedge = self.replicas.hedge(now, request, history, rng);
        self.sync_now(now, self.replicas.owner_of(request));
        hedge
    }

    /// A report reaches only the replica that sent the attempt: the others hear of it only
    /// through what that replica shares.
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        self.sync_due(now);
        self.replicas.observe(now, report);
        self.sync_now(now, self.replicas.owner_of_id(report.request_id));
    }

    fn forget(&mut self, now: Instant, request_id: u64) {
        self.sync_due(now);
        let owner = self.replicas.owner_of_id(request_id);
        self.replicas.forget(now, request_id);
        self.sync_now(now, owner);
    }

    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        self.sync_due(now);
        self.replicas.unpark(now, woken);
    }

    fn wants_rate_limit_headers(&self) -> bool {
        self.replicas.wants_rate_limit_headers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::shared::UsageAdded;
    use crate::provider::DeploymentId;
    use crate::trace::ClassId;
    use std::sync::{Arc, Mutex};

    /// (receiving replica, instant applied, the sender's changes as (sender, routed at in ms)).
    type Log = Arc<Mutex<Vec<(u16, u64, Vec<(u16, u64)>)>>>;

    /// A router that shares one change per request it routes (tagged with its replica number
    /// and the instant) and logs every delta it imports.
    struct Probe {
        tag: u16,
        pending: SharedDelta,
        sharing: bool,
        log: Log,
    }

    impl Policy for Probe {
        fn route(&mut self, now: Instant, _: &Request, _: &mut History, _: &mut SplitMix64) -> Decision {
            if self.sharing {
                let minute = now.as_micros() / 1_000;
                let change =
                    UsageAdded { deployment: DeploymentId(self.tag), minute, requests: 1, tokens: 0 };
                self.pending.usage.push(change);
            }
            Decision::GiveUp
        }
        fn start_sharing(&mut self) {
            self.sharing = true;
        }
        fn export_shared(&mut self) -> SharedDelta {
            std::mem::take(&mut self.pending)
        }
        fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
            let changes = delta.usage.iter().map(|u| (u.deployment.0, u.minute)).collect();
            self.log.lock().unwrap().push((self.tag, at.as_micros() / 1_000, changes));
        }
    }

    fn probes(count: u16, every: Option<Duration>) -> (Replicas, Log) {
        let log = Log::default();
        let policies = (0..count)
            .map(|tag| {
                let probe = Probe { tag, pending: SharedDelta::default(), sharing: false, log: log.clone() };
                Box::new(probe) as Box<dyn Policy>
            })
            .collect();
        let mut replicas = Dispatch::new(policies);
        if every.is_some() {
            replicas.start_sharing();
        }
        let next_sync = Instant::ZERO + every.unwrap_or_default();
        (Replicas { replicas, split: Split::RoundRobin, next: 0, every, next_sync }, log)
    }

    fn route_at(replicas: &mut Replicas, id: u64, ms: u64) {
        let request = Request {
            id,
            arrival: Instant::from_millis(ms),
            class: ClassId::INTERACTIVE,
            input_tokens: 1,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 1,
            max_tokens: 1,
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: 2,
        };
        let mut history = History::new(request.arrival);
        replicas.route(request.arrival, &request, &mut history, &mut SplitMix64::new(id));
    }

    #[test]
    fn a_sync_runs_at_the_first_call_at_or_after_each_multiple_of_delta_and_applies_there() {
        let (mut replicas, log) = probes(2, Some(Duration::from_secs(10)));
        // Replica 0 routes at 3 s, replica 1 at 12 s: the call at 12 s first runs the sync of
        // 10 s (replica 0's change reaches replica 1, applied at 10 s), then routes.
        route_at(&mut replicas, 1, 3_000);
        assert!(log.lock().unwrap().is_empty(), "no sync before 10 s");
        route_at(&mut replicas, 2, 12_000);
        assert_eq!(*log.lock().unwrap(), vec![(1, 10_000, vec![(0, 3_000)])]);
        // Nothing until 47 s: the syncs of 20, 30 s saw no call (nothing to exchange); the call
        // at 47 s runs the one of 20 s (replica 1's change of 12 s, applied at 20 s), and the
        // next is at 50 s, so a call at 49.9 s runs none.
        route_at(&mut replicas, 3, 47_000);
        route_at(&mut replicas, 4, 49_900);
        route_at(&mut replicas, 5, 50_000);
        assert_eq!(
            *log.lock().unwrap(),
            vec![
                (1, 10_000, vec![(0, 3_000)]),
                (0, 20_000, vec![(1, 12_000)]),
                (1, 50_000, vec![(0, 47_000)]),
                (0, 50_000, vec![(1, 49_900)]),
            ]
        );
    }

    #[test]
    fn delta_zero_shares_each_change_at_its_instant_and_none_shares_nothing() {
        let (mut replicas, log) = probes(3, Some(Duration::ZERO));
        route_at(&mut replicas, 1, 1_000);
        route_at(&mut replicas, 2, 1_000);
        let expected = vec![
            (1, 1_000, vec![(0, 1_000)]),
            (2, 1_000, vec![(0, 1_000)]),
            (0, 1_000, vec![(1, 1_000)]),
            (2, 1_000, vec![(1, 1_000)]),
        ];
        assert_eq!(*log.lock().unwrap(), expected);
        let (mut alone, log) = probes(3, None);
        for (id, ms) in [(1, 0), (2, 10_000), (3, 3_600_000)] {
            route_at(&mut alone, id, ms);
        }
        assert!(log.lock().unwrap().is_empty(), "sync = \"none\" never exchanges (nor records)");
    }
}
