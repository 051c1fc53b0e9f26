//! Routing policies: the real, sans-IO decision code a gateway runs.
//!
//! Owns the [`Policy`] trait and the policies built on it: where an attempt goes, whether to
//! retry, when (backoff honouring `retry-after`), and when to give up. A policy is a pure state
//! machine: every call takes `now`, randomness comes from the injected generator, and nothing
//! here reads a clock, sleeps or spawns. The simulator passes virtual time; a live gateway
//! passes wall time and sleeps until a [`Decision::Wait`] instant itself.
//!
//! It must not know the engine: it sees a request, the request's [`History`] (kept by the
//! [`driver`], the one implementation of the caller's side of the protocol, shared by the
//! simulator and the live adapter) and reports of finished attempts ([`Policy::observe`]).

pub mod adaptive;
pub mod classes;
pub mod config;
pub mod deferral;
pub mod dispatch;
pub mod driver;
pub mod fallback;
pub mod hedge;
pub mod litellm;
pub mod observed;
pub mod openrouter;
pub mod queueing;
pub mod replicas;
pub mod retry_layer;
pub mod rotation;
pub mod rules;
pub mod shared;
pub mod smoothing;
pub mod window;

pub use fallback::{BatchOnly, Fallback};
pub use shared::SharedDelta;

use crate::limiter::Remaining;
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::sync::Arc;

/// What a policy wants done with a request now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Send an attempt to `deployment` now; it is numbered [`History::next_attempt`]. With
    /// `hedge_after`, the caller asks [`Policy::hedge`] if no first token arrived by then, and
    /// runs both attempts: the first answer wins, the other is cancelled.
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

/// The per-request record the [`driver`] keeps for its policy: policies read it, only the
/// driver writes it, so attempt numbers, wait counts and recorded failures mean the same in
/// the simulator and in a live gateway.
///
/// What a policy reads is the request's current *call*: a retry layer above the router (an
/// SDK's `max_retries`, an agent harness, [`retry_layer`]) re-issues the call, and the router
/// then sees a fresh one ([`History::restart_call`]). Attempt numbers and the draw keys run on
/// over the whole request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// When the request entered the system (its latency clock starts here).
    started_at: Instant,
    /// Attempts and waits over the whole request (attempt numbers, draw keys).
    attempts_total: u32,
    waits_total: u32,
    call: CallState,
    /// Calls re-issued by each retry layer, in the order layers first restarted the call.
    restarts: SmallVec<[(Arc<str>, u32); 2]>,
}

/// The part of a request's history its current call sees.
#[derive(Clone, Debug, Default, PartialEq)]
struct CallState {
    attempts: u32,
    waits: u32,
    resumed_after_wait: bool,
    last: Option<AttemptReport>,
    memos: Vec<DeploymentMemo>,
    /// Restarted by a retry layer; the wait before it is the layer's, not the call's.
    fresh: bool,
}

impl History {
    /// A fresh history for a request that entered the system at `started_at`.
    pub fn new(started_at: Instant) -> History {
        History { started_at, ..History::default() }
    }

    /// When the request entered the system (its latency clock starts here).
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Attempts started so far in this call.
    pub fn attempts(&self) -> u32 {
        self.call.attempts
    }

    /// The number the next attempt this request starts will carry (in its
    /// [`AttemptReport::attempt`]): a policy that keys state by attempt uses this.
    pub fn next_attempt(&self) -> u32 {
        self.attempts_total + 1
    }

    /// `Wait` (and `Park`) decisions taken so far in this call (the backoff exponent).
    pub fn waits(&self) -> u32 {
        self.call.waits
    }

    /// Attempts and waits over the whole request, every call included (draw keys).
    pub fn totals(&self) -> (u32, u32) {
        (self.attempts_total, self.waits_total)
    }

    /// True when this call to `route` is the wake-up of a `Wait` or `Park`.
    pub fn resumed_after_wait(&self) -> bool {
        self.call.resumed_after_wait
    }

    /// The last failed attempt of this call (successes end the request, so are never recorded).
    pub fn last(&self) -> Option<&AttemptReport> {
        self.call.last.as_ref()
    }

    pub fn memo(&self, deployment: DeploymentId) -> DeploymentMemo {
        self.call.memos.get(deployment.index()).copied().unwrap_or_default()
    }

    /// Whether `deployment` may be tried at `now` as far as this call knows.
    pub fn available(&self, deployment: DeploymentId, now: Instant) -> bool {
        let memo = self.memo(deployment);
        !memo.never && memo.not_before <= now
    }

    /// An attempt was started (the driver's bookkeeping; public for policy tests that play
    /// the caller's part by hand).
    pub fn started_attempt(&mut self) -> u32 {
        self.call.attempts += 1;
        self.attempts_total += 1;
        self.attempts_total
    }

    /// Records a failed attempt before the policy is asked again (the driver's bookkeeping).
    pub fn record(&mut self, report: AttemptReport) {
        let memos = &mut self.call.memos;
        let index = report.deployment.index();
        if memos.len() <= index {
            memos.resize(index + 1, DeploymentMemo::default());
        }
        let memo = &mut memos[index];
        memo.attempts += 1;
        if let Some(retry_after) = report.retry_after {
            memo.not_before = memo.not_before.max(report.ended_at + retry_after);
        }
        if report.failure().is_some_and(|k| k.never_passes_here() || k == FailureKind::BatchUnsupported) {
            memo.never = true;
        }
        self.call.last = Some(report);
        self.call.resumed_after_wait = false;
    }

    /// A `Wait` or `Park` ended: count it; the next `route` is a wake-up (the driver's
    /// bookkeeping). The wait before a restarted call is the retry layer's: the new call
    /// starts as a first call does.
    pub fn waited(&mut self) {
        self.waits_total += 1;
        if std::mem::take(&mut self.call.fresh) {
            return;
        }
        self.call.waits += 1;
        self.call.resumed_after_wait = true;
    }

    /// A retry layer re-issues the call: what the router sees starts afresh (attempts, waits,
    /// failures, per-deployment memos); attempt numbers and draws run on.
    pub fn restart_call(&mut self, layer: &Arc<str>) {
        self.call = CallState { fresh: true, ..CallState::default() };
        match self.restarts.iter_mut().find(|(name, _)| name == layer) {
            Some((_, n)) => *n += 1,
            None => self.restarts.push((layer.clone(), 1)),
        }
    }

    /// Calls re-issued so far, per retry layer (empty without layers).
    pub fn restarts(&self) -> &[(Arc<str>, u32)] {
        &self.restarts
    }
}

/// Where a hedge goes: a second attempt started while the first has no first token yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeAttempt {
    pub deployment: DeploymentId,
    pub options: AttemptOptions,
}

/// A routing policy. One instance routes every request of one strategy; it may keep shared
/// state (cooldowns, observed latencies) across requests.
pub trait Policy: Send {
    /// Decide what to do with `request` now. `rng` is dedicated to this decision (common
    /// random numbers), so the same request at the same point draws the same numbers in every
    /// strategy. Per-request state of its own (an ordering, a held attempt) the policy keeps
    /// keyed by request id and releases in [`Policy::forget`].
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision;

    /// A hedge: the attempt `history.attempts()` (started with `hedge_after`) has no first
    /// token yet; start a second one now, or `None` for no hedge. The hedge is numbered
    /// [`History::next_attempt`]. Policies that never set `hedge_after` keep the default;
    /// wrappers pass the question to their inner policy and may refuse its answer.
    fn hedge(
        &mut self,
        _now: Instant,
        _request: &Request,
        _history: &History,
        _rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        None
    }

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

    /// Gateway replicas synchronised through a store ([`replicas`]): from now on, record the
    /// shareable changes [`Policy::export_shared`] drains. Never called otherwise, so a policy
    /// outside synchronised replicas records nothing. Wrappers pass it to their inner policies.
    fn start_sharing(&mut self) {}

    /// The shareable changes made since the last export ([`SharedDelta`]: client-side limiter
    /// traffic, LiteLLM cooldowns and usage counters), drained. Policies with nothing to share
    /// keep the default; wrappers put their inner policies' deltas in [`SharedDelta::inner`].
    fn export_shared(&mut self) -> SharedDelta {
        SharedDelta::default()
    }

    /// Applies another copy's delta at `at` (not before any instant this copy has seen): its
    /// limiter traffic is recorded without permits, its cooldowns and usage merged. Importing
    /// records nothing for export. Wrappers pass each [`SharedDelta::child`] to the inner
    /// policy at the same position.
    fn import_shared(&mut self, _at: Instant, _delta: &SharedDelta) {}
}

/// A policy behind a pointer is the policy: `Box<dyn Policy>` (what a build returns) and
/// `&mut dyn Policy` (what the engine borrows) both drive it.
macro_rules! forward_policy {
    ($($pointer:ty),*) => {$(
        impl<P: Policy + ?Sized> Policy for $pointer {
            fn route(
                &mut self,
                now: Instant,
                request: &Request,
                history: &mut History,
                rng: &mut SplitMix64,
            ) -> Decision {
                (**self).route(now, request, history, rng)
            }
            fn hedge(
                &mut self,
                now: Instant,
                request: &Request,
                history: &History,
                rng: &mut SplitMix64,
            ) -> Option<HedgeAttempt> {
                (**self).hedge(now, request, history, rng)
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
            fn start_sharing(&mut self) {
                (**self).start_sharing()
            }
            fn export_shared(&mut self) -> SharedDelta {
                (**self).export_shared()
            }
            fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
                (**self).import_shared(at, delta)
            }
        }
    )*};
}
forward_policy!(Box<P>, &mut P);

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
