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

pub mod adaptive;
pub mod classes;
pub mod config;
pub mod deferral;
pub mod fallback;
pub mod hedge;
pub mod litellm;
pub mod observed;
pub mod openrouter;
pub mod queueing;
pub mod rules;
pub mod smoothing;
pub mod window;

pub use fallback::{BatchOnly, Fallback};

use crate::limiter::Remaining;
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use serde::{Deserialize, Serialize};

/// What a policy wants done with a request now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Send an attempt to `deployment` now. With `hedge_after`, the caller asks the policy
    /// again (with [`History::hedging`] set) if no first token arrived by then, and runs both
    /// attempts: the first answer wins, the other is cancelled.
    Attempt { deployment: DeploymentId, options: AttemptOptions, hedge_after: Option<Duration> },
    /// Ask again at this instant (backoff, waiting out a `retry-after`, queueing for a token).
    Wait { until: Instant },
    /// Ask again when [`Policy::unpark`] names this request (a slot freed), or at `until`.
    Park { until: Option<Instant> },
    /// Stop: the request's outcome follows from its last attempt (rate-limited if that was a
    /// 429, failed otherwise; failed with cause `no_route` if there was no attempt).
    GiveUp,
    /// Stop with a policy's own reason (e.g. `no_deployments_available`, `max_price`, `queue_timeout`):
    /// the request fails with that cause.
    Reject { reason: &'static str },
}

impl Decision {
    /// A plain attempt without hedging.
    pub fn attempt(deployment: DeploymentId, options: AttemptOptions) -> Decision {
        Decision::Attempt { deployment, options, hedge_after: None }
    }
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
    /// What the provider's rate-limit headers said when the attempt ended (remaining
    /// requests/tokens per axis; tokens rounded to the nearest 1,000 as Anthropic does).
    pub remaining: Option<Box<Remaining>>,
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

/// The per-request record a caller keeps for its policy; the engine maintains it, except
/// `plan` and `cursor`, which belong to the policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// When the request entered the system (its latency clock starts here).
    pub started_at: Instant,
    /// Attempts started so far.
    pub attempts: u32,
    /// True when this call to `route` asks for a hedge (a second attempt while the first
    /// has not answered). Any decision other than `Attempt` means "no hedge".
    pub hedging: bool,
    /// The policy's own per-request ordering of deployments (computed on the first call).
    pub plan: Vec<DeploymentId>,
    /// The policy's own position in `plan`.
    pub cursor: usize,
    /// `Wait` decisions taken so far (the backoff exponent).
    pub waits: u32,
    /// True when this call to `route` is the wake-up of a `Wait`.
    pub resumed_after_wait: bool,
    pub last: Option<AttemptReport>,
    memos: Vec<DeploymentMemo>,
}

impl History {
    /// A fresh history for a request that entered the system at `started_at`.
    pub fn new(started_at: Instant) -> History {
        History { started_at, ..History::default() }
    }

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
    /// strategy. The policy may keep its own per-request ordering in `history.plan`.
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision;

    /// Learn from a finished attempt (cooldowns, latency statistics, limiter settlement).
    fn observe(&mut self, _now: Instant, _report: &AttemptReport) {}

    /// A request the policy routed will not come back (finished, or gave up elsewhere):
    /// release anything held for it (queue places, client-side permits).
    fn forget(&mut self, _now: Instant, _request_id: u64) {}

    /// Parked requests that may proceed now, appended to `woken` (ids). The caller asks after
    /// every `observe` and `forget`; the default parks nothing.
    fn unpark(&mut self, _now: Instant, _woken: &mut Vec<u64>) {}

    /// Whether reports should carry the provider's rate-limit headers
    /// ([`AttemptReport::remaining`]). Reading them costs time in the simulator's hot loop, so
    /// only policies that use them ask.
    fn wants_rate_limit_headers(&self) -> bool {
        false
    }
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        (**self).route(now, request, history, rng)
    }
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        (**self).observe(now, report)
    }
    fn forget(&mut self, now: Instant, request_id: u64) {
        (**self).forget(now, request_id)
    }
    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        (**self).unpark(now, woken)
    }
    fn wants_rate_limit_headers(&self) -> bool {
        (**self).wants_rate_limit_headers()
    }
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
