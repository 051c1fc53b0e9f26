//! `rotation`: a chain of deployments (models, or one model behind several API keys) that
//! moves on after a failure and *cools down* what failed for a while, across requests, as
//! agent harnesses and gateways that rotate keys do. What a cooldown covers is the policy's
//! granularity, and it decides who suffers: the failed deployment only, every deployment of
//! its model, or every deployment called with its API key (`credential`), so that a limit hit
//! on one model blocks its siblings on the same key. Requests may start at the head of the
//! chain or at the next entry in turn (key rotation).
//!
//! It owns the cooldowns and the rotation cursor; it must not know the provider's limits (a
//! pool shared by several keys shows only as their 429s) nor the engine.

use super::config::{check_attempts, check_backoff, Catalog, PolicyError};
use super::{AttemptReport, Backoff, Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::{hash_str, SplitMix64};
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What one cooldown covers.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CooldownScope {
    /// The deployment that failed (LiteLLM's granularity).
    #[default]
    Deployment,
    /// Every deployment serving the same model (`model` of the deployment).
    Model,
    /// Every deployment called with the same API key (`credential`; a deployment without one
    /// has a key of its own).
    Credential,
}

/// Where each request starts in the chain.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Always the first entry that is not cooling down.
    #[default]
    First,
    /// The entry after the one the previous request started at (round robin over keys).
    Rotate,
}

/// The `rotation` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    pub chain: Vec<String>,
    /// How long a failure cools its scope down; a 429's `retry-after` if longer.
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
    #[serde(default)]
    pub cooldown_scope: CooldownScope,
    #[serde(default)]
    pub start: Start,
    /// Attempts per request in all.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Wait when everything is cooling down: the earliest end of a cooldown, at least this
    /// backoff.
    #[serde(default)]
    pub backoff: Backoff,
}

fn default_cooldown() -> Duration {
    Duration::from_secs(60)
}
fn default_attempts() -> u32 {
    6
}

/// The chain with cooldowns per scope key.
pub struct Rotation {
    chain: Vec<DeploymentId>,
    /// The cooldown key of each deployment in the catalogue.
    keys: Vec<u64>,
    cooldown: Duration,
    start: Start,
    max_attempts: u32,
    backoff: Backoff,
    cooled_until: HashMap<u64, Instant>,
    /// Where the next request starts (rotation), and where each request in flight started.
    next_start: usize,
    started_at: HashMap<u64, usize>,
}

/// Failures a rotating router cools down for: rate limits, quotas, overloads and server
/// errors (not a request that can never fit, nor the client's own timeouts).
fn cools(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::RateLimited
            | FailureKind::QuotaExhausted
            | FailureKind::Overloaded
            | FailureKind::ServerError
    )
}

impl Rotation {
    pub fn build(config: &RotationConfig, catalog: &Catalog) -> Result<Rotation, PolicyError> {
        if config.chain.is_empty() {
            return Err(PolicyError::new("chain", "must name at least one deployment"));
        }
        check_attempts(config.max_attempts)?;
        check_backoff(&config.backoff)?;
        let chain = config
            .chain
            .iter()
            .enumerate()
            .map(|(i, name)| catalog.id(&format!("chain[{i}]"), name))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = catalog
            .deployments
            .iter()
            .map(|d| match config.cooldown_scope {
                CooldownScope::Deployment => hash_str(&d.name),
                CooldownScope::Model => hash_str(&format!("model\0{}\0{}", d.provider, d.model)),
                CooldownScope::Credential => match &d.credential {
                    Some(key) => hash_str(&format!("credential\0{key}")),
                    None => hash_str(&d.name),
                },
            })
            .collect();
        Ok(Rotation {
            chain,
            keys,
            cooldown: config.cooldown,
            start: config.start,
            max_attempts: config.max_attempts,
            backoff: config.backoff,
            cooled_until: HashMap::new(),
            next_start: 0,
            started_at: HashMap::new(),
        })
    }

    fn cooled_until(&self, d: DeploymentId) -> Option<Instant> {
        self.cooled_until.get(&self.keys[d.index()]).copied()
    }
}

impl Policy for Rotation {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts() >= self.max_attempts {
            return Decision::GiveUp;
        }
        let n = self.chain.len();
        let first = match self.started_at.get(&request.id) {
            Some(&first) => first,
            None => {
                let first = match self.start {
                    Start::First => 0,
                    Start::Rotate => {
                        let first = self.next_start;
                        self.next_start = (self.next_start + 1) % n;
                        first
                    }
                };
                self.started_at.insert(request.id, first);
                first
            }
        };
        let order = (0..n).map(|k| self.chain[(first + k) % n]);
        let usable: Vec<DeploymentId> = order.filter(|d| !history.memo(*d).never).collect();
        if usable.is_empty() {
            return Decision::GiveUp;
        }
        let free_at =
            |d: DeploymentId| self.cooled_until(d).unwrap_or(Instant::ZERO).max(history.memo(d).not_before);
        if let Some(d) = usable.iter().copied().find(|d| free_at(*d) <= now) {
            return Decision::attempt(d, AttemptOptions::default());
        }
        // Everything is cooling down: wait for the first to come back (at least a backoff).
        let earliest = usable.iter().map(|d| free_at(*d)).min().unwrap_or(now);
        let until = earliest.max(now + self.backoff.delay(history.waits(), rng));
        Decision::Wait { until: until.max(now + Duration::from_micros(1)) }
    }

    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if report.failure().is_some_and(cools) {
            let length = report.retry_after.map_or(self.cooldown, |after| after.max(self.cooldown));
            let key = self.keys[report.deployment.index()];
            let until = self.cooled_until.entry(key).or_insert(Instant::ZERO);
            *until = (*until).max(now + length);
        }
    }

    fn forget(&mut self, _now: Instant, request_id: u64) {
        self.started_at.remove(&request_id);
    }
}
