//! The live adapter: the same policy (and limiter) code the simulator runs, driven through the
//! same [`Driver`] by the wall clock. Proof that the routing code is real: a gateway wraps a [`LiveRouter`] and calls
//! [`LiveRouter::call`] with a function that performs one attempt against a real provider.
//!
//! Thread-safe: one mutex guards the policy and the set of request ids in flight (a second
//! concurrent call with an id already in flight is refused with [`LiveError`]); it is never held
//! while an attempt runs or while a caller sleeps. Time is `std::time::Instant` converted to
//! the library's [`Instant`] (microseconds since the router was created). Parked requests
//! poll every `park_poll` (a live gateway would use a condition variable; polling keeps the
//! adapter small and the policy code unchanged).

use crate::policy::driver::{Driver, Ending, StartAttempt, Step, DEFAULT_MAX_ATTEMPTS_PER_REQUEST};
use crate::policy::{AttemptOutcome, AttemptReport, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId};
use crate::provider::{Deployment, Fleet, PlannedOutcome, PoolConflict};
use crate::time::Instant;
use crate::trace::Request;
use std::collections::HashSet;
use std::sync::Mutex;

/// How a live call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveOutcome {
    /// The last report (a success or a batch acceptance).
    Served(AttemptReport),
    /// The policy gave up; the last attempt's report, if any.
    GaveUp(Option<AttemptReport>),
    /// The policy refused with a reason.
    Rejected(&'static str),
    /// The policy asked for more attempts than the safety cap allows
    /// ([`DEFAULT_MAX_ATTEMPTS_PER_REQUEST`], as in the simulator); the last attempt's report.
    AttemptCap(Option<AttemptReport>),
}

/// Why a live call was not routed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// Another call with the same request id is in flight. Policies key their per-request
    /// state (parking, hedging, cooldown memos) by request id, so two concurrent calls sharing
    /// one would corrupt each other; give each concurrent call its own id.
    #[error("request id {id:#x} is already in flight in another call; concurrent calls need distinct ids")]
    DuplicateRequestId { id: u64 },
}

struct State {
    driver: Driver<Box<dyn Policy>>,
    /// Request ids of the calls in flight.
    in_flight: HashSet<u64>,
    /// Parked requests the policy has released, until their thread notices.
    woken: HashSet<u64>,
}

/// A thread-safe router over wall-clock time.
pub struct LiveRouter {
    state: Mutex<State>,
    epoch: std::time::Instant,
    /// The router's clock runs this many times faster than the wall clock (1 in a gateway;
    /// more against a modelled provider served faster, so backoffs and cooldowns keep their
    /// meaning in the provider's time).
    time_scale: f64,
    /// How often a parked request asks again.
    pub park_poll: std::time::Duration,
}

impl LiveRouter {
    pub fn new(policy: Box<dyn Policy>, seed: u64) -> LiveRouter {
        LiveRouter::with_time_scale(policy, seed, 1.0)
    }

    /// A router whose clock runs `time_scale` times faster than the wall clock (finite, > 0;
    /// anything else is taken as 1).
    pub fn with_time_scale(policy: Box<dyn Policy>, seed: u64, time_scale: f64) -> LiveRouter {
        let time_scale = if crate::validate::is_positive(time_scale) { time_scale } else { 1.0 };
        LiveRouter {
            time_scale,
            state: Mutex::new(State {
                driver: Driver::new(policy, seed, DEFAULT_MAX_ATTEMPTS_PER_REQUEST),
                in_flight: HashSet::new(),
                woken: HashSet::new(),
            }),
            epoch: std::time::Instant::now(),
            park_poll: std::time::Duration::from_millis(2),
        }
    }

    /// Now, on the router's clock.
    pub fn now(&self) -> Instant {
        self.at(std::time::Instant::now())
    }

    /// The router instant of a wall-clock instant (the epoch for an earlier one).
    pub fn at(&self, wall: std::time::Instant) -> Instant {
        let elapsed = wall.saturating_duration_since(self.epoch);
        if self.time_scale == 1.0 {
            return Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        }
        let micros = elapsed.as_micros() as f64 * self.time_scale;
        // `as` saturates: a far-future instant is the end of time, never a wrap.
        Instant::from_micros(micros as u64)
    }

    /// The wall-clock instant of a router instant.
    pub fn wall(&self, at: Instant) -> std::time::Instant {
        self.epoch + self.wall_duration(at.saturating_since(Instant::ZERO))
    }

    /// A span of the router's clock in wall time.
    pub fn wall_duration(&self, d: crate::time::Duration) -> std::time::Duration {
        if self.time_scale == 1.0 {
            return std::time::Duration::from_micros(d.as_micros());
        }
        std::time::Duration::from_secs_f64(d.as_secs_f64() / self.time_scale)
    }

    /// A span of wall time on the router's clock.
    pub fn router_duration(&self, wall: std::time::Duration) -> crate::time::Duration {
        crate::time::Duration::from_secs_f64(wall.as_secs_f64() * self.time_scale)
    }

    /// How many times faster than the wall clock the router's clock runs.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another caller must not wedge the gateway: the state is still consistent
        // at every unlock point, so a poisoned lock is recovered.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Routes `request` to completion. `attempt` performs one attempt at a deployment (it may
    /// block for as long as the provider takes) and returns its report.
    ///
    /// # Errors
    /// [`LiveError::DuplicateRequestId`] at once, without routing, if another call with the
    /// same `request.id` is in flight.
    pub fn call<F>(&self, request: &Request, mut attempt: F) -> Result<LiveOutcome, LiveError>
    where
        F: FnMut(DeploymentId, AttemptOptions, u32) -> AttemptReport,
    {
        let started_at = self.now();
        if !self.lock().in_flight.insert(request.id) {
            return Err(LiveError::DuplicateRequestId { id: request.id });
        }
        // The history is this call's own: no other call can reach it.
        let mut history = History::new(started_at);
        let outcome = loop {
            let step = self.lock().driver.route(self.now(), request, &mut history);
            match step {
                Step::Attempt(StartAttempt { number, deployment, options, .. }) => {
                    // Hedging needs concurrent attempts: the live adapter runs the first only.
                    let report = attempt(deployment, options, number);
                    let served = report.failure().is_none().then(|| report.clone());
                    self.lock().driver.ended(self.now(), &mut history, report);
                    if let Some(report) = served {
                        break LiveOutcome::Served(report);
                    }
                }
                Step::Wait { until } => {
                    sleep_until(self.wall(until));
                    self.lock().driver.waited(&mut history);
                }
                Step::Park { until } => {
                    // Poll until the policy would let us go, or until the deadline.
                    let deadline = until.map(|u| self.wall(u));
                    loop {
                        std::thread::sleep(self.park_poll);
                        let mut state = self.lock();
                        let mut released = Vec::new();
                        state.driver.unpark(self.now(), &mut released);
                        state.woken.extend(released);
                        if state.woken.remove(&request.id)
                            || deadline.is_some_and(|d| std::time::Instant::now() >= d)
                        {
                            break;
                        }
                    }
                    self.lock().driver.waited(&mut history);
                }
                Step::Done(Ending::GaveUp { .. }) => break LiveOutcome::GaveUp(history.last().cloned()),
                Step::Done(Ending::Rejected { reason }) => break LiveOutcome::Rejected(reason),
                Step::Done(Ending::AttemptCap) => break LiveOutcome::AttemptCap(history.last().cloned()),
            }
        };
        let mut state = self.lock();
        let now = self.now();
        state.driver.forget(now, request.id);
        state.woken.remove(&request.id);
        state.in_flight.remove(&request.id);
        Ok(outcome)
    }
}

fn sleep_until(at: std::time::Instant) {
    let now = std::time::Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// The provider model served in real time: each attempt is decided by the same [`Fleet`] the
/// simulator uses, then the caller's thread sleeps for as long as the
/// modelled answer takes. For examples, tests and dry runs of a gateway without a provider.
pub struct ModelledProvider {
    deployments: Vec<Deployment>,
    fleet: Mutex<Fleet>,
    seed: u64,
}

impl ModelledProvider {
    pub fn new(deployments: Vec<Deployment>, seed: u64) -> Result<ModelledProvider, PoolConflict> {
        let fleet = Fleet::new(&deployments, seed)?;
        Ok(ModelledProvider { deployments, fleet: Mutex::new(fleet), seed })
    }

    /// Runs attempt `number` of `request` at `deployment`, on `router`'s clock, blocking until
    /// the modelled answer arrives.
    pub fn attempt(
        &self,
        router: &LiveRouter,
        request: &Request,
        deployment: DeploymentId,
        options: AttemptOptions,
        number: u32,
    ) -> AttemptReport {
        let d = deployment.index();
        let started_at = router.now();
        let plan = {
            let mut fleet = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
            fleet.start_attempt(&self.deployments[d], d, self.seed, request, number, started_at, options)
        };
        sleep_until(router.wall(plan.ends_at));
        let ended_at = router.now();
        let (outcome, retry_after) = match plan.outcome {
            PlannedOutcome::Success => (AttemptOutcome::Success, None),
            PlannedOutcome::Batched => (AttemptOutcome::Batched, None),
            PlannedOutcome::Failed { kind, retry_after, .. } => (AttemptOutcome::Failed(kind), retry_after),
        };
        let mut fleet = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        fleet.finish(
            d,
            ended_at,
            plan.outcome,
            plan.permit,
            plan.output_tokens,
            plan.cost_usd,
            options.batch.then_some(plan.batch_queued_tokens),
        );
        AttemptReport {
            request_id: request.id,
            class: request.class,
            attempt: number,
            deployment,
            started_at,
            ended_at,
            first_token_at: plan.first_token_at,
            outcome,
            retry_after,
            output_tokens: plan.output_tokens,
            remaining: Some(Box::new(fleet.headers(d, ended_at))),
        }
    }
}
