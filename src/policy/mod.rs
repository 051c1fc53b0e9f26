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

    /// The one policy this policy wraps, if it wraps one: every method below that a wrapper
    /// does not write itself forwards to it (hedges, reports, sharing), so a new protocol
    /// method is written once, here, and only wrappers that change it override it. Leaves,
    /// and policies over several children (`rules`, `replicas`), keep `None` and write their
    /// own.
    fn inner(&mut self) -> Option<&mut dyn Policy> {
        None
    }

    /// [`Policy::inner`], borrowed shared (for [`Policy::wants_rate_limit_headers`]).
    fn inner_ref(&self) -> Option<&dyn Policy> {
        None
    }

    /// A hedge: the attempt `history.attempts()` (started with `hedge_after`) has no first
    /// token yet; start a second one now, or `None` for no hedge. The hedge is numbered
    /// [`History::next_attempt`]. By default the inner policy's answer (none without one);
    /// wrappers that gate hedges pass the question on and may refuse its answer.
    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        self.inner()?.hedge(now, request, history, rng)
    }

    /// Learn from a finished attempt (cooldowns, latency statistics, limiter settlement).
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if let Some(inner) = self.inner() {
            inner.observe(now, report);
        }
    }

    /// A request the policy routed will not come back (finished, or gave up elsewhere):
    /// release anything held for it (queue places, client-side permits).
    fn forget(&mut self, now: Instant, request_id: u64) {
        if let Some(inner) = self.inner() {
            inner.forget(now, request_id);
        }
    }

    /// Parked requests that may proceed now, appended to `woken` (ids). The caller asks after
    /// every `observe` and `forget`; the default parks nothing of its own.
    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        if let Some(inner) = self.inner() {
            inner.unpark(now, woken);
        }
    }

    /// Whether reports should carry the provider's rate-limit headers
    /// ([`AttemptReport::remaining`]). Reading them costs time in the simulator's hot loop, so
    /// only policies that use them ask (a wrapper asks if its inner policy does).
    fn wants_rate_limit_headers(&self) -> bool {
        self.inner_ref().is_some_and(|inner| inner.wants_rate_limit_headers())
    }

    /// Gateway replicas synchronised through a store ([`replicas`]): from now on, record the
    /// shareable changes [`Policy::export_shared`] drains. Never called otherwise, so a policy
    /// outside synchronised replicas records nothing. Wrappers pass it to their inner policies.
    fn start_sharing(&mut self) {
        if let Some(inner) = self.inner() {
            inner.start_sharing();
        }
    }

    /// The shareable changes made since the last export ([`SharedDelta`]: client-side limiter
    /// traffic, LiteLLM cooldowns and usage counters), drained. Policies with nothing to share
    /// keep the default; wrappers put their inner policies' deltas in [`SharedDelta::inner`].
    fn export_shared(&mut self) -> SharedDelta {
        self.inner().map_or_else(SharedDelta::default, |inner| SharedDelta::wrapping(inner.export_shared()))
    }

    /// Applies another copy's delta at `at` (not before any instant this copy has seen): its
    /// limiter traffic is recorded without permits, its cooldowns and usage merged. Importing
    /// records nothing for export. Wrappers pass each [`SharedDelta::child`] to the inner
    /// policy at the same position.
    fn import_shared(&mut self, at: Instant, delta: &SharedDelta) {
        if let Some(inner) = self.inner() {
            inner.import_shared(at, delta.child(0));
        }
    }
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
            fn inner(&mut self) -> Option<&mut dyn Policy> {
                (**self).inner()
            }
            fn inner_ref(&self) -> Option<&dyn Policy> {
                (**self).inner_ref()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every call it gets; hedges, wakes, wants headers and shares one usage entry.
    struct Probe(Arc<Mutex<Vec<&'static str>>>);

    impl Probe {
        fn delta() -> SharedDelta {
            let mut delta = SharedDelta::default();
            delta.add_usage(DeploymentId(0), 1, 2, 3);
            delta
        }
        fn call(&self, name: &'static str) {
            self.0.lock().unwrap().push(name);
        }
    }

    impl Policy for Probe {
        fn route(&mut self, _: Instant, _: &Request, _: &mut History, _: &mut SplitMix64) -> Decision {
            self.call("route");
            Decision::Reject { reason: "probe" }
        }
        fn hedge(
            &mut self,
            _: Instant,
            _: &Request,
            _: &History,
            _: &mut SplitMix64,
        ) -> Option<HedgeAttempt> {
            self.call("hedge");
            Some(HedgeAttempt { deployment: DeploymentId(1), options: AttemptOptions::default() })
        }
        fn observe(&mut self, _: Instant, _: &AttemptReport) {
            self.call("observe");
        }
        fn forget(&mut self, _: Instant, _: u64) {
            self.call("forget");
        }
        fn unpark(&mut self, _: Instant, woken: &mut Vec<u64>) {
            self.call("unpark");
            woken.push(7);
        }
        fn wants_rate_limit_headers(&self) -> bool {
            true
        }
        fn start_sharing(&mut self) {
            self.call("start_sharing");
        }
        fn export_shared(&mut self) -> SharedDelta {
            self.call("export_shared");
            Probe::delta()
        }
        fn import_shared(&mut self, _: Instant, delta: &SharedDelta) {
            assert_eq!(*delta, Probe::delta(), "the wrapper passes its child delta");
            self.call("import_shared");
        }
    }

    /// A wrapper that writes only `route` and names its inner policy.
    struct Wrapper(Box<dyn Policy>);

    impl Policy for Wrapper {
        fn inner(&mut self) -> Option<&mut dyn Policy> {
            Some(self.0.as_mut())
        }
        fn inner_ref(&self) -> Option<&dyn Policy> {
            Some(self.0.as_ref())
        }
        fn route(&mut self, now: Instant, r: &Request, h: &mut History, rng: &mut SplitMix64) -> Decision {
            self.0.route(now, r, h, rng)
        }
    }

    /// A leaf that writes only `route`.
    struct Leaf;

    impl Policy for Leaf {
        fn route(&mut self, _: Instant, _: &Request, _: &mut History, _: &mut SplitMix64) -> Decision {
            Decision::Reject { reason: "leaf" }
        }
    }

    fn request() -> Request {
        Request {
            id: 1,
            arrival: Instant::ZERO,
            class: ClassId::INTERACTIVE,
            input_tokens: 10,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 1,
            max_tokens: 1,
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: 2,
        }
    }

    fn report() -> AttemptReport {
        AttemptReport {
            request_id: 1,
            class: ClassId::INTERACTIVE,
            attempt: 1,
            deployment: DeploymentId(0),
            started_at: Instant::ZERO,
            ended_at: Instant::ZERO,
            first_token_at: None,
            outcome: AttemptOutcome::Success,
            retry_after: None,
            output_tokens: 1,
            remaining: None,
        }
    }

    #[test]
    fn a_wrapper_that_names_its_inner_policy_forwards_every_method_it_does_not_write() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut wrapper = Wrapper(Box::new(Probe(calls.clone())));
        let (now, request, history) = (Instant::ZERO, request(), History::new(Instant::ZERO));
        let mut rng = SplitMix64::new(1);
        assert!(wrapper.hedge(now, &request, &history, &mut rng).is_some());
        wrapper.observe(now, &report());
        wrapper.forget(now, 1);
        let mut woken = Vec::new();
        wrapper.unpark(now, &mut woken);
        assert_eq!(woken, [7]);
        assert!(wrapper.wants_rate_limit_headers());
        wrapper.start_sharing();
        let exported = wrapper.export_shared();
        assert_eq!(
            exported,
            SharedDelta::wrapping(Probe::delta()),
            "the inner delta is the wrapper's child 0"
        );
        wrapper.import_shared(now, &exported);
        assert_eq!(
            *calls.lock().unwrap(),
            ["hedge", "observe", "forget", "unpark", "start_sharing", "export_shared", "import_shared"]
        );
    }

    #[test]
    fn a_policy_without_an_inner_one_keeps_the_neutral_defaults() {
        let mut leaf = Leaf;
        let (now, request, history) = (Instant::ZERO, request(), History::new(Instant::ZERO));
        assert_eq!(leaf.hedge(now, &request, &history, &mut SplitMix64::new(1)), None);
        let mut woken = Vec::new();
        leaf.unpark(now, &mut woken);
        assert!(woken.is_empty() && !leaf.wants_rate_limit_headers());
        assert!(leaf.export_shared().is_empty());
    }
}
