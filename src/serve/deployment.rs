//! One served deployment: the provider model's state ([`DeploymentState`], the same the
//! simulator uses) driven at virtual instants of a [`ScaledClock`], what an HTTP request is
//! answered ([`ServedDeployment::start`]), and the settlement of an admitted attempt when its
//! answer ends or its client hangs up ([`Pending`]).
//!
//! One rule is added on top of the model: **a 529 consumes no rate limit**. The model admits
//! an attempt before it draws a 5xx/529, so an overloaded answer would hold an RPM token and
//! its input tokens; a real 529 is the API refusing work before any of it is counted. So each
//! request is first put to a *probe* copy of the deployment without limits (same incidents,
//! same draws: they are keyed by seed, request, attempt and deployment, not by the limiter):
//! if the probe answers 529, so does the server, without touching the real state; otherwise
//! the real state decides (the same draw cannot be a 529 there). A consequence: an attempt
//! that would be both refused by a limit and overloaded is answered 529, not 429.
//!
//! It must not know about HTTP or about a protocol's encoding.

use super::clock::ScaledClock;
use super::reply::{Answer, Ask, ErrorAnswer, RateLimitState};
use crate::limiter::Limits;
use crate::provider::{
    AttemptOptions, AttemptPlan, Deployment, DeploymentState, FailureKind, PlannedOutcome,
};
use crate::trace::{ClassId, Request};
use std::sync::{Arc, Mutex, MutexGuard};

struct Inner {
    state: DeploymentState,
    probe: DeploymentState,
    /// The id of the next request: the key of its draws (requests are numbered as they come).
    next_request: u64,
}

/// A deployment served in real time (scaled).
pub struct ServedDeployment {
    deployment: Deployment,
    /// The same deployment without limits: whether an attempt is overloaded, before admission.
    probe_deployment: Deployment,
    seed: u64,
    clock: ScaledClock,
    inner: Mutex<Inner>,
}

/// What a request is answered, decided when it arrives.
pub struct Started {
    /// The request as the model saw it (its id keys the draws).
    pub request: Request,
    pub answer: Answer,
    /// What the rate-limit headers say.
    pub rate_limits: RateLimitState,
    /// The admission to settle when the answer ends (none for a 429 or a 529).
    pub pending: Pending,
}

/// An admitted attempt still holding its server-side admission (a concurrency slot, an
/// output reservation). [`Pending::finish`] settles it when the answer ends; dropped before
/// (the client hung up, the connection broke), it is cancelled at that instant and billed for
/// what streamed, like a cancelled attempt in the simulator. Either way exactly once.
pub struct Pending {
    served: Arc<ServedDeployment>,
    settle: Option<(Request, AttemptPlan)>,
}

impl ServedDeployment {
    pub fn new(deployment: Deployment, seed: u64, clock: ScaledClock) -> ServedDeployment {
        let probe_deployment = Deployment {
            limits: Limits { burst: deployment.limits.burst, ..Limits::default() },
            ..deployment.clone()
        };
        let inner = Inner {
            state: DeploymentState::new(&deployment, seed),
            probe: DeploymentState::new(&probe_deployment, seed),
            next_request: 1,
        };
        ServedDeployment { deployment, probe_deployment, seed, clock, inner: Mutex::new(inner) }
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn clock(&self) -> &ScaledClock {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every unlock point leaves the state consistent: a panicked handler must not stop
        // the others.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn rate_limits(&self, state: &DeploymentState, now: crate::time::Instant) -> RateLimitState {
        RateLimitState::new(&self.deployment.limits, state.headers(now), state.remaining(now))
    }

    /// Decides the fate of a request arriving now.
    pub fn start(self: &Arc<Self>, ask: Ask) -> Started {
        let mut inner = self.lock();
        // Read inside the lock, so the model sees its instants in order.
        let now = self.clock.now();
        let id = inner.next_request;
        inner.next_request += 1;
        let request = Request {
            id,
            arrival: now,
            class: ClassId::INTERACTIVE,
            input_tokens: ask.input_tokens,
            cached_input_tokens: ask.cached_input_tokens,
            cache_write_tokens: 0,
            output_tokens: ask.output_tokens,
            max_tokens: ask.max_tokens,
            session: None,
            parent: None,
            think: crate::time::Duration::ZERO,
            deadline: None,
            line: 0,
        };
        let options = AttemptOptions::default();
        let probe = inner.probe.start_attempt(&self.probe_deployment, self.seed, &request, 1, now, options);
        if let PlannedOutcome::Failed { kind: FailureKind::Overloaded, .. } = probe.outcome {
            let at = probe.ends_at;
            inner.probe.finish(now, probe.outcome, probe.permit, 0, false);
            let rate_limits = self.rate_limits(&inner.state, now);
            return Started {
                request,
                answer: Answer::Error { at, error: ErrorAnswer::Overloaded },
                rate_limits,
                pending: Pending { served: Arc::clone(self), settle: None },
            };
        }
        inner.probe.finish(now, probe.outcome, probe.permit, probe.output_tokens, false);
        let plan = inner.state.start_attempt(&self.deployment, self.seed, &request, 1, now, options);
        let answer = Answer::of(&plan);
        let rate_limits = self.rate_limits(&inner.state, now);
        let settle = plan.permit.is_some().then_some((request.clone(), plan));
        Started { request, answer, rate_limits, pending: Pending { served: Arc::clone(self), settle } }
    }

    /// Requests admitted and not yet settled.
    pub fn in_flight(&self) -> u32 {
        self.lock().state.in_flight()
    }
}

impl Pending {
    /// The answer ended as planned: settle the admission to the output produced.
    pub fn finish(mut self) {
        if let Some((_, plan)) = self.settle.take() {
            let served = &self.served;
            let mut inner = served.lock();
            let now = served.clock.now();
            inner.state.finish(now, plan.outcome, plan.permit, plan.output_tokens, false);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((request, plan)) = self.settle.take() {
            let served = &self.served;
            let mut inner = served.lock();
            let now = served.clock.now();
            // The client is gone: bill and settle what streamed until now.
            let _ = inner.state.cancel(&served.deployment, &request, plan, now);
        }
    }
}
