//! The served deployments: the provider model's state ([`Fleet`], the same the simulator uses:
//! each deployment's limits and the pools deployments share) driven at virtual instants of a
//! [`ScaledClock`], what an HTTP request to one deployment is answered
//! ([`ServedDeployment::start`]), and the settlement of an admitted attempt when its answer ends
//! or its client hangs up ([`Pending`]). A 529 consumes no rate limit, as in the model.
//!
//! It must not know about HTTP or about a protocol's encoding.

use super::clock::ScaledClock;
use super::reply::{Answer, Ask};
use crate::limiter::Remaining;
use crate::provider::{AttemptOptions, AttemptPlan, Deployment, Fleet, PoolConflict};
use crate::trace::{ClassId, Request};
use std::sync::{Arc, Mutex, MutexGuard};

struct State {
    fleet: Fleet,
    /// Per deployment, the id of its next request: the key of its draws (requests are
    /// numbered as they come).
    next_request: Vec<u64>,
}

/// Every deployment one server serves, sharing one model state (pools span deployments).
pub struct ServedFleet {
    deployments: Vec<Deployment>,
    seed: u64,
    clock: ScaledClock,
    state: Mutex<State>,
}

/// One deployment of a [`ServedFleet`].
pub struct ServedDeployment {
    fleet: Arc<ServedFleet>,
    index: usize,
}

/// What a request is answered, decided when it arrives.
pub struct Started {
    /// The request as the model saw it (its id keys the draws).
    pub request: Request,
    pub answer: Answer,
    /// What the rate-limit headers say: per limited axis its limit, remaining (token counts
    /// rounded to the nearest 1,000, as Anthropic reports) and time until full.
    pub rate_limits: Remaining,
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

impl ServedFleet {
    pub fn new(
        deployments: Vec<Deployment>,
        seed: u64,
        clock: ScaledClock,
    ) -> Result<Arc<ServedFleet>, PoolConflict> {
        let fleet = Fleet::new(&deployments, seed)?;
        let next_request = vec![1; deployments.len()];
        Ok(Arc::new(ServedFleet {
            deployments,
            seed,
            clock,
            state: Mutex::new(State { fleet, next_request }),
        }))
    }

    /// Deployment `index` (in the order given to [`ServedFleet::new`]).
    pub fn deployment(self: &Arc<Self>, index: usize) -> Arc<ServedDeployment> {
        Arc::new(ServedDeployment { fleet: Arc::clone(self), index })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every unlock point leaves the state consistent: a panicked handler must not stop
        // the others.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ServedDeployment {
    pub fn deployment(&self) -> &Deployment {
        &self.fleet.deployments[self.index]
    }

    pub fn clock(&self) -> &ScaledClock {
        &self.fleet.clock
    }

    /// Decides the fate of a request arriving now.
    pub fn start(self: &Arc<Self>, ask: Ask) -> Started {
        let served = &self.fleet;
        let d = self.index;
        let mut state = served.lock();
        // Read inside the lock, so the model sees its instants in order.
        let now = served.clock.now();
        let id = state.next_request[d];
        state.next_request[d] += 1;
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
        let deployment = &served.deployments[d];
        let plan = state.fleet.start_attempt(
            deployment,
            d,
            served.seed,
            &request,
            1,
            now,
            AttemptOptions::default(),
        );
        let answer = Answer::of(&plan);
        let rate_limits = state.fleet.headers(d, now);
        // Nothing admitted (a 429, a 529): nothing to settle.
        let settle = plan.permit.is_some().then(|| (request.clone(), plan));
        Started { request, answer, rate_limits, pending: Pending { served: Arc::clone(self), settle } }
    }

    /// Requests admitted and not yet settled.
    pub fn in_flight(&self) -> u32 {
        self.fleet.lock().fleet.in_flight(self.index)
    }
}

impl Pending {
    /// The answer ended as planned: settle the admission to the output produced.
    pub fn finish(mut self) {
        if let Some((_, plan)) = self.settle.take() {
            let served = &self.served.fleet;
            let mut state = served.lock();
            let now = served.clock.now();
            state.fleet.finish(
                self.served.index,
                now,
                plan.outcome,
                plan.permit,
                plan.output_tokens,
                plan.cost_usd,
                None,
            );
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some((request, plan)) = self.settle.take() {
            let served = &self.served.fleet;
            let mut state = served.lock();
            let now = served.clock.now();
            let d = self.served.index;
            // The client is gone: bill and settle what streamed until now.
            let _ = state.fleet.cancel(&served.deployments[d], d, &request, plan, now);
        }
    }
}
