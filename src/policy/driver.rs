//! The caller's side of the [`Policy`] protocol, written once: the simulator's engine and the
//! live adapter both drive their policy through a [`Driver`].
//!
//! Owns what a caller must do between a policy's decisions: the [`History`] bookkeeping
//! (attempt numbers, waits, recorded failures), the common-random-numbers key of every
//! decision, the safety cap on attempts, hedges ([`Driver::hedge`]) and what each
//! [`Decision`] means for the caller ([`Step`]). It must not know where time comes from
//! (virtual or wall clock), how an attempt is run, or metrics: the caller runs attempts,
//! keeps the clock and books the outcome.

use super::{AttemptReport, Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId, FailureKind};
use crate::rng::{DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, Instant};
use crate::trace::Request;

/// What the caller does next with a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Start this attempt now.
    Attempt(StartAttempt),
    /// Ask again at `until` (call [`Driver::waited`] first).
    Wait { until: Instant },
    /// Ask again when [`Policy::unpark`] names the request, or at `until` (call
    /// [`Driver::waited`] first).
    Park { until: Option<Instant> },
    /// The request is over; no attempt of it is started again.
    Done(Ending),
}

/// An attempt the caller starts: its number is already counted in the request's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StartAttempt {
    /// 1 for the request's first attempt; what its [`AttemptReport::attempt`] must carry.
    pub number: u32,
    pub deployment: DeploymentId,
    pub options: AttemptOptions,
    /// Ask [`Driver::hedge`] if this attempt has no first token by then.
    pub hedge_after: Option<Duration>,
    /// The request's previous attempt failed with this kind at another deployment: this
    /// attempt is a fallback.
    pub fallback_from: Option<FailureKind>,
}

/// How a request ended without a served attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The policy gave up; the outcome follows from the last attempt's failure (`None`: no
    /// attempt was made).
    GaveUp { last_failure: Option<FailureKind> },
    /// The policy refused with a reason of its own.
    Rejected { reason: &'static str },
    /// The policy asked for more attempts than the cap allows.
    AttemptCap,
}

/// The safety cap on attempts per request unless a scenario sets its own: far above any
/// real retry budget, so it stops only a policy that would never give up.
pub const DEFAULT_MAX_ATTEMPTS_PER_REQUEST: u32 = 1_000;

/// Drives one policy for every request of a caller.
pub struct Driver<P> {
    policy: P,
    seed: u64,
    max_attempts_per_request: u32,
}

/// The deployment half of a decision's draw key: route and hedge calls at the same point of a
/// request draw different numbers.
const ROUTE_DRAWS: u64 = 0;
const HEDGE_DRAWS: u64 = 1;

impl<P: Policy> Driver<P> {
    /// `max_attempts_per_request` is a safety cap against a policy that never gives up.
    pub fn new(policy: P, seed: u64, max_attempts_per_request: u32) -> Driver<P> {
        Driver { policy, seed, max_attempts_per_request }
    }

    /// The generator of a decision: keyed by the request and how far it has got (attempts
    /// started, waits taken), so the same request at the same point draws the same numbers in
    /// every strategy and every caller (common random numbers).
    fn rng(&self, request: &Request, history: &History, draws: u64) -> SplitMix64 {
        DrawKey {
            seed: self.seed,
            request: request.id,
            attempt: {
                let (attempts, waits) = history.totals();
                attempts | (waits << 16)
            },
            deployment: draws,
            purpose: Purpose::Policy,
        }
        .rng()
    }

    /// Asks the policy what to do with `request` now.
    pub fn route(&mut self, now: Instant, request: &Request, history: &mut History) -> Step {
        let mut rng = self.rng(request, history, ROUTE_DRAWS);
        match self.policy.route(now, request, history, &mut rng) {
            Decision::Attempt { deployment, options, hedge_after } => {
                if history.attempts() >= self.max_attempts_per_request {
                    return Step::Done(Ending::AttemptCap);
                }
                let fallback_from = history
                    .last()
                    .filter(|last| last.deployment != deployment)
                    .and_then(AttemptReport::failure);
                let number = history.started_attempt();
                Step::Attempt(StartAttempt { number, deployment, options, hedge_after, fallback_from })
            }
            Decision::Wait { until } => Step::Wait { until },
            Decision::Park { until } => Step::Park { until },
            Decision::GiveUp => {
                Step::Done(Ending::GaveUp { last_failure: history.last().and_then(AttemptReport::failure) })
            }
            Decision::Reject { reason } => Step::Done(Ending::Rejected { reason }),
        }
    }

    /// The hedge timer of the request's attempt in flight fired with no first token: asks the
    /// policy for a second attempt (`None`: no hedge, the first attempt runs on alone).
    pub fn hedge(&mut self, now: Instant, request: &Request, history: &mut History) -> Option<StartAttempt> {
        let mut rng = self.rng(request, history, HEDGE_DRAWS);
        let hedge = self.policy.hedge(now, request, history, &mut rng)?;
        if history.attempts() >= self.max_attempts_per_request {
            return None;
        }
        let number = history.started_attempt();
        Some(StartAttempt {
            number,
            deployment: hedge.deployment,
            options: hedge.options,
            hedge_after: None,
            fallback_from: None,
        })
    }

    /// The caller took a [`Step::Wait`] or [`Step::Park`] and is about to ask again.
    pub fn waited(&mut self, history: &mut History) {
        history.waited();
    }

    /// An attempt ended: the policy learns from it and, if it failed, the request's history
    /// records it before the policy is asked again.
    pub fn ended(&mut self, now: Instant, history: &mut History, report: AttemptReport) {
        self.policy.observe(now, &report);
        if report.failure().is_some() {
            history.record(report);
        }
    }

    /// An attempt was cancelled because another attempt of the request won: the policy
    /// learns of it (to release what it held), the request's history does not (it is over).
    pub fn cancelled(&mut self, now: Instant, report: &AttemptReport) {
        self.policy.observe(now, report);
    }

    /// The request is over for the caller: the policy releases what it holds for it.
    pub fn forget(&mut self, now: Instant, request_id: u64) {
        self.policy.forget(now, request_id);
    }

    /// Parked requests that may proceed now, appended to `woken`.
    pub fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        self.policy.unpark(now, woken);
    }

    /// Whether attempt reports should carry the provider's rate-limit headers.
    pub fn wants_rate_limit_headers(&self) -> bool {
        self.policy.wants_rate_limit_headers()
    }
}
