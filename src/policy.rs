//! Routing policies: the real, sans-IO decision code a gateway runs.
//!
//! Owns the [`Policy`] trait and the policies built on it: where an attempt goes, whether to
//! retry, when (backoff honouring `retry-after`), and when to give up. A policy is a pure state
//! machine: every call takes `now`, randomness comes from the injected generator, and nothing
//! here reads a clock, sleeps or spawns. The simulator passes virtual time; a live gateway
//! passes wall time and sleeps until a [`Decision::Wait`] instant itself.
//!
//! It must not know the engine: it sees a request, the request's [`History`] (kept by the
//! caller) and reports of finished attempts ([`Policy::observe`]).

use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use serde::{Deserialize, Serialize};

/// What a policy wants done with a request now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Send an attempt to `deployment` now.
    Attempt { deployment: DeploymentId, options: AttemptOptions },
    /// Ask again at this instant (backoff, waiting out a `retry-after`, queueing).
    Wait { until: Instant },
    /// Stop: the request's outcome follows from its last attempt (rate-limited if that was a
    /// 429, failed otherwise; failed with cause `no_route` if there was no attempt).
    GiveUp,
}

/// How a finished attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Success,
    Batched,
    Failed(FailureKind),
}

/// A finished attempt, as a router observes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptReport {
    pub request_id: u64,
    pub class: ClassId,
    /// 1 for the first attempt of the request.
    pub attempt: u32,
    pub deployment: DeploymentId,
    pub started_at: Instant,
    pub ended_at: Instant,
    pub first_token_at: Option<Instant>,
    pub outcome: AttemptOutcome,
    /// The provider's `retry-after`, if it sent one.
    pub retry_after: Option<Duration>,
    pub output_tokens: u64,
}

impl AttemptReport {
    pub fn failure(&self) -> Option<FailureKind> {
        match self.outcome {
            AttemptOutcome::Failed(kind) => Some(kind),
            _ => None,
        }
    }
}

/// What a request has been through, per deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentMemo {
    pub attempts: u32,
    /// Not before this instant (the provider's `retry-after`).
    pub not_before: Instant,
    /// This deployment can never serve the request (larger than a limit, no batch API).
    pub never: bool,
}

/// The per-request record a caller keeps for its policy; the engine maintains it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Attempts started so far.
    pub attempts: u32,
    /// `Wait` decisions taken so far (the backoff exponent).
    pub waits: u32,
    /// True when this call to `route` is the wake-up of a `Wait`.
    pub resumed_after_wait: bool,
    pub last: Option<AttemptReport>,
    memos: Vec<DeploymentMemo>,
}

impl History {
    pub fn memo(&self, deployment: DeploymentId) -> DeploymentMemo {
        self.memos.get(deployment.index()).copied().unwrap_or_default()
    }

    /// Records a finished attempt: the caller calls this before asking the policy again.
    pub fn record(&mut self, report: AttemptReport) {
        let index = report.deployment.index();
        if self.memos.len() <= index {
            self.memos.resize(index + 1, DeploymentMemo::default());
        }
        let memo = &mut self.memos[index];
        memo.attempts += 1;
        if let Some(retry_after) = report.retry_after {
            memo.not_before = memo.not_before.max(report.ended_at + retry_after);
        }
        if matches!(report.failure(), Some(FailureKind::ExceedsLimit | FailureKind::BatchUnsupported)) {
            memo.never = true;
        }
        self.last = Some(report);
        self.resumed_after_wait = false;
    }

    /// The caller took a `Wait`: count it; the next `route` is a wake-up.
    pub fn waited(&mut self) {
        self.waits += 1;
        self.resumed_after_wait = true;
    }

    /// Whether `deployment` may be tried at `now` as far as this request knows.
    pub fn available(&self, deployment: DeploymentId, now: Instant) -> bool {
        let memo = self.memo(deployment);
        !memo.never && memo.not_before <= now
    }
}

/// A routing policy. One instance routes every request of one strategy; it may keep shared
/// state (cooldowns, observed latencies) across requests.
pub trait Policy: Send {
    /// Decide what to do with `request` now. `rng` is dedicated to this decision (common
    /// random numbers), so the same request at the same point draws the same numbers in every
    /// strategy.
    fn route(&mut self, now: Instant, request: &Request, history: &History, rng: &mut SplitMix64)
        -> Decision;

    /// Learn from a finished attempt (cooldowns, latency statistics, limiter settlement).
    fn observe(&mut self, _now: Instant, _report: &AttemptReport) {}
}

/// Exponential backoff with jitter, as the Anthropic/OpenAI SDKs do it:
/// `min(initial × multiplier^n, max) × (1 − jitter × u)`, u uniform in (0, 1).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "default_initial_backoff")]
    pub initial: Duration,
    #[serde(default = "default_max_backoff")]
    pub max: Duration,
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Fraction of the delay that is randomised away (0 = none, 1 = full jitter).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_initial_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(8)
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_jitter() -> f64 {
    0.25
}

impl Default for Backoff {
    /// The SDK defaults: 0.5 s initial, 8 s max, doubling, 25% jitter.
    fn default() -> Self {
        Backoff {
            initial: default_initial_backoff(),
            max: default_max_backoff(),
            multiplier: default_multiplier(),
            jitter: default_jitter(),
        }
    }
}

impl Backoff {
    /// The delay before retry round `n` (0-based).
    pub fn delay(&self, n: u32, rng: &mut SplitMix64) -> Duration {
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let base_ms =
            (self.initial.as_millis_f64() * self.multiplier.powi(exponent)).min(self.max.as_millis_f64());
        let jitter = 1.0 - self.jitter * rng.next_open01();
        Duration::from_millis_f64(base_ms * jitter)
    }
}

/// An ordered chain of deployments. On any failure it moves on to the next deployment at
/// once; when the chain is exhausted it backs off (exponentially, with jitter) and starts a
/// new round from the first deployment that is available. It never retries a deployment
/// before that deployment's `retry-after`, skips deployments that can never serve the request,
/// and gives up after `max_attempts` attempts in total.
///
/// `single` is a chain of one: the SDK's own retry loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Fallback {
    pub chain: Vec<DeploymentId>,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub options: AttemptOptions,
}

impl Fallback {
    fn attempt(&self, deployment: DeploymentId) -> Decision {
        Decision::Attempt { deployment, options: self.options }
    }
}

impl Policy for Fallback {
    fn route(
        &mut self,
        now: Instant,
        _request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts >= self.max_attempts {
            return Decision::GiveUp;
        }
        let usable = |d: &DeploymentId| !history.memo(*d).never;
        let Some(earliest_usable) =
            self.chain.iter().filter(|d| usable(d)).map(|d| history.memo(*d).not_before).min()
        else {
            return Decision::GiveUp;
        };
        let start_of_round = history.attempts == 0 || history.resumed_after_wait;
        let next_position = match (&history.last, start_of_round) {
            (Some(last), false) => self.chain.iter().position(|d| *d == last.deployment).map_or(0, |p| p + 1),
            _ => 0,
        };
        if let Some(d) =
            self.chain[next_position.min(self.chain.len())..].iter().find(|d| history.available(**d, now))
        {
            return self.attempt(*d);
        }
        let until = if start_of_round {
            // Woke up but everything is still behind its retry-after: wait for the first one.
            earliest_usable
        } else {
            (now + self.backoff.delay(history.waits, rng)).max(earliest_usable)
        };
        Decision::Wait { until: until.max(now + Duration::from_micros(1)) }
    }
}

/// Sends every request to one deployment's batch API; retries with backoff if the batch
/// queue is full; gives up when the deployment has no batch API.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOnly {
    pub deployment: DeploymentId,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Policy for BatchOnly {
    fn route(
        &mut self,
        now: Instant,
        _request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts >= self.max_attempts || history.memo(self.deployment).never {
            return Decision::GiveUp;
        }
        if history.attempts == 0 || history.resumed_after_wait {
            return Decision::Attempt {
                deployment: self.deployment,
                options: AttemptOptions { batch: true, ..AttemptOptions::default() },
            };
        }
        Decision::Wait { until: now + self.backoff.delay(history.waits, rng).max(Duration::from_micros(1)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ClassId;

    fn request() -> Request {
        Request {
            id: 1,
            arrival: Instant::ZERO,
            class: ClassId::INTERACTIVE,
            input_tokens: 100,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 10,
            max_tokens: 10,
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: 2,
        }
    }

    fn failed(
        d: u16,
        attempt: u32,
        at_ms: u64,
        kind: FailureKind,
        retry_after: Option<Duration>,
    ) -> AttemptReport {
        AttemptReport {
            request_id: 1,
            class: ClassId::INTERACTIVE,
            attempt,
            deployment: DeploymentId(d),
            started_at: Instant::from_millis(at_ms),
            ended_at: Instant::from_millis(at_ms),
            first_token_at: None,
            outcome: AttemptOutcome::Failed(kind),
            retry_after,
            output_tokens: 0,
        }
    }

    fn chain(ids: &[u16], max_attempts: u32) -> Fallback {
        Fallback {
            chain: ids.iter().map(|i| DeploymentId(*i)).collect(),
            max_attempts,
            backoff: Backoff { jitter: 0.0, ..Backoff::default() },
            options: AttemptOptions::default(),
        }
    }

    fn target(d: Decision) -> Option<u16> {
        match d {
            Decision::Attempt { deployment, .. } => Some(deployment.0),
            _ => None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff { jitter: 0.0, ..Backoff::default() };
        let mut rng = SplitMix64::new(1);
        let delays: Vec<u64> = (0..7).map(|n| b.delay(n, &mut rng).as_micros() / 1000).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 8000, 8000, 8000]);
        let jittered = Backoff::default();
        for n in 0..200 {
            let d = jittered.delay(3, &mut SplitMix64::new(n)).as_millis_f64();
            assert!((3000.0..=4000.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn fallback_walks_the_chain_then_backs_off_honouring_retry_after() {
        let mut p = chain(&[0, 1], 10);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        let now = Instant::ZERO;
        assert_eq!(target(p.route(now, &r, &h, &mut rng)), Some(0));
        h.attempts = 1;
        h.record(failed(0, 1, 0, FailureKind::RateLimited, Some(Duration::from_secs(3))));
        // Deployment 1 has not refused: move on at once.
        assert_eq!(target(p.route(now, &r, &h, &mut rng)), Some(1));
        h.attempts = 2;
        h.record(failed(1, 2, 0, FailureKind::Overloaded, None));
        // Chain exhausted: back off 500 ms; deployment 1 is free by then, so no need to wait 3 s.
        assert_eq!(p.route(now, &r, &h, &mut rng), Decision::Wait { until: Instant::from_millis(500) });
        h.waited();
        // New round at 500 ms: deployment 0 is behind its retry-after (3 s), deployment 1 is free.
        assert_eq!(target(p.route(Instant::from_millis(500), &r, &h, &mut rng)), Some(1));
    }

    #[test]
    fn single_waits_out_retry_after_longer_than_backoff_and_respects_max_attempts() {
        let mut p = chain(&[0], 3);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        h.attempts = 1;
        h.record(failed(0, 1, 0, FailureKind::RateLimited, Some(Duration::from_secs(2))));
        assert_eq!(
            p.route(Instant::ZERO, &r, &h, &mut rng),
            Decision::Wait { until: Instant::from_millis(2000) }
        );
        h.waited();
        assert_eq!(target(p.route(Instant::from_millis(2000), &r, &h, &mut rng)), Some(0));
        h.attempts = 3;
        assert_eq!(p.route(Instant::from_millis(2000), &r, &h, &mut rng), Decision::GiveUp);
    }

    #[test]
    fn a_deployment_that_can_never_serve_is_skipped_and_all_never_gives_up() {
        let mut p = chain(&[0, 1], 10);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        h.attempts = 1;
        h.record(failed(0, 1, 0, FailureKind::ExceedsLimit, None));
        assert_eq!(target(p.route(Instant::ZERO, &r, &h, &mut rng)), Some(1));
        h.attempts = 2;
        h.record(failed(1, 2, 0, FailureKind::ServerError, None));
        let wait = p.route(Instant::ZERO, &r, &h, &mut rng);
        h.waited();
        let Decision::Wait { until } = wait else { panic!("expected a wait, got {wait:?}") };
        // After the wait the next round skips deployment 0 for good.
        assert_eq!(target(p.route(until, &r, &h, &mut rng)), Some(1));
        h.attempts = 3;
        h.record(failed(1, 3, 600, FailureKind::ExceedsLimit, None));
        assert_eq!(p.route(until, &r, &h, &mut rng), Decision::GiveUp);
    }
}
