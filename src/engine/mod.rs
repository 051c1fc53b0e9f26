//! The discrete-event engine: moves requests between the trace, a policy and the modelled
//! deployments on a virtual clock.
//!
//! Events wait in one [`queue::EventQueue`] (earliest first, a fixed tie rule), so every run
//! is the same; requests in the system live in [`slots::Slots`], whose serials make events of
//! finished requests stale. The trace is read incrementally: memory grows with the requests
//! in flight, not with the trace's length (closed-loop replay additionally keeps a 16-byte
//! record per request id so children can find their parents). Running a scenario's strategies
//! over the engine is [`crate::run`]'s job.
//!
//! Replay modes:
//! - **open loop**: every request starts at its `arrival_ms`;
//! - **closed loop**: a request with a `parent` starts when its parent finishes (whatever the
//!   outcome: a failed parent still releases its children, so no work is silently lost) plus
//!   `think_ms`; requests without a parent start at `arrival_ms`. Rows are read up to
//!   `lookahead` ahead of the clock; a child whose row is read after its start instant starts
//!   late and is counted in `late_child_starts`.
//!
//! The engine knows the [`Policy`] protocol only through its [`Driver`] (shared with the live
//! adapter): it keeps each request's [`History`] for the driver, schedules what the driver's
//! [`Step`]s ask for, runs attempts against the [`Fleet`] of deployments, and reports outcomes to
//! [`StrategyMetrics`].

pub mod queue;
pub mod slots;

use crate::metrics::{AttemptRecord, FailureCause, RequestOutcome, StrategyMetrics};
use crate::policy::driver::{Driver, Ending, StartAttempt, Step};
use crate::policy::{AttemptOutcome, AttemptReport, History, Policy};
use crate::provider::{AttemptPlan, Deployment, DeploymentId, FailureKind, Fleet, PlannedOutcome};
use crate::time::{Duration, Instant};
use crate::trace::{Request, TraceError};
use queue::{EventQueue, Tie};
use slots::{SlotRef, Slots};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// How arrivals are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// Every request starts at its `arrival_ms`; `parent` is ignored.
    Open,
    /// Children start at their parent's completion + `think_ms`.
    #[default]
    Closed,
}

/// Engine settings for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub seed: u64,
    pub replay: Replay,
    /// Closed loop: how far ahead of the clock trace rows are read.
    pub lookahead: Duration,
    /// Stop the clock here; requests still in the system are `unfinished`.
    pub horizon: Option<Instant>,
    /// Safety cap on attempts per request, against a policy that never gives up.
    pub max_attempts_per_request: u32,
    /// Closed loop: at most this many rows read (each keeps its id for parent links and the
    /// duplicate check until the run ends); one more is an input error naming its line.
    pub max_closed_loop_rows: u64,
}

/// The default of [`EngineConfig::max_closed_loop_rows`] (`[simulation] max_closed_loop_rows`):
/// closed-loop replay keeps one entry per row read, about 20–50 bytes a row per strategy
/// running, because any later row may name any earlier one as its parent. Ten million rows
/// (a month of the seed story's traffic is 7.5 M) is a few hundred MB per strategy; a
/// generator configured for a year of traffic is refused at the row that passes it instead of
/// growing without bound.
pub const DEFAULT_MAX_CLOSED_LOOP_ROWS: u64 = 10_000_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 1,
            replay: Replay::Closed,
            lookahead: Duration::from_mins(10),
            horizon: None,
            max_attempts_per_request: crate::policy::driver::DEFAULT_MAX_ATTEMPTS_PER_REQUEST,
            max_closed_loop_rows: DEFAULT_MAX_CLOSED_LOOP_ROWS,
        }
    }
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad trace input (exit code 2 at the CLI).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A child row names a parent id that did not appear earlier in the trace.
    #[error("{file}:{line}: field \"parent\": unknown parent id (a parent must appear on an earlier row)")]
    UnknownParent { file: String, line: u64 },
    /// Closed loop: a row names itself as its parent (it could never start).
    #[error("{file}:{line}: field \"parent\": names the row's own id (a request cannot be its own parent)")]
    SelfParent { file: String, line: u64 },
    /// Closed loop: two rows share an id, so parent links would be ambiguous.
    #[error("{file}:{line}: field \"id\": duplicate id (ids must be unique for closed-loop replay)")]
    DuplicateId { file: String, line: u64 },
    /// Closed loop: more rows than [`EngineConfig::max_closed_loop_rows`].
    #[error(
        "{file}:{line}: closed-loop replay keeps the id of every row it has read (any later row may name it as \
         parent): more than {max} rows ([simulation] max_closed_loop_rows raises it, at about 20-50 bytes a row \
         per strategy; open-loop replay keeps none)"
    )]
    ClosedLoopRows { file: String, line: u64, max: u64 },
    /// Two deployments define one pool differently (bad input; a scenario refuses it first).
    #[error(transparent)]
    Pool(#[from] crate::provider::PoolConflict),
    /// The books do not balance: a bug, never bad input.
    #[error("conservation violated: {0}")]
    Conservation(crate::metrics::ConservationError),
}

impl EngineError {
    /// Whether the error is the user's input (exit 2) rather than a failure of the run (exit 1).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            EngineError::Trace(_)
                | EngineError::Pool(_)
                | EngineError::UnknownParent { .. }
                | EngineError::SelfParent { .. }
                | EngineError::DuplicateId { .. }
                | EngineError::ClosedLoopRows { .. }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventKind {
    /// The request enters the system.
    Start,
    /// A `Wait` or `Park` ends; stale if the token no longer matches.
    Wake { token: u32 },
    /// An attempt's outcome reaches the client; stale if the attempt was cancelled.
    AttemptEnd { attempt: u32 },
    /// Hedging: ask the policy for a second attempt if this one has no first token yet.
    Hedge { attempt: u32 },
    /// Hedging: this attempt's first token arrives; the other attempts are cancelled.
    FirstToken { attempt: u32 },
}

/// An event for the request at `at`; events of a request that finished are stale (see
/// [`slots`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    at: SlotRef,
    kind: EventKind,
}

struct LiveAttempt {
    deployment: DeploymentId,
    number: u32,
    started_at: Instant,
    batch: bool,
    plan: AttemptPlan,
}

struct Active {
    request: Request,
    history: History,
    /// Attempts in flight (more than one only while hedging; inline, so no allocation).
    live: SmallVec<[LiveAttempt; 1]>,
    /// Current wake token: a new `Wait`/`Park` invalidates older wake-ups.
    wake_token: u32,
    /// The request is parked and waits for `Policy::unpark`.
    parked: bool,
}

/// Request ids are already well-mixed 64-bit hashes: hashing them again is wasted work.
#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A [`Family::finished_at`] value: not finished yet.
const IN_SYSTEM: u64 = u64::MAX;

/// Closed-loop bookkeeping: which ids exist, which finished when, who waits for whom.
#[derive(Default)]
struct Family {
    /// Every id read: [`IN_SYSTEM`] while the request is in the system, then the microsecond
    /// it finished (16 bytes an entry).
    finished_at: IdMap<u64>,
    waiting_children: IdMap<Vec<Request>>,
}

/// Runs one strategy over one trace.
pub struct Engine<'a> {
    config: &'a EngineConfig,
    deployments: &'a [Deployment],
    fleet: Fleet,
    driver: Driver<&'a mut dyn Policy>,
    metrics: StrategyMetrics,
    queue: EventQueue<Event>,
    now: Instant,
    slots: Slots<Active>,
    family: Family,
    trace_name: String,
    /// Requests started and not yet finished.
    in_system: u64,
    /// Parked requests by id, for `Policy::unpark`.
    parked: IdMap<u32>,
    woken: Vec<u64>,
    /// Whether attempt reports carry rate-limit headers (only if the policy reads them).
    headers: bool,
}

/// Simulates `trace` under `policy` against `deployments` and returns the strategy's metrics.
/// `trace_name` is used in error messages (the file name).
pub fn simulate<I>(
    name: &str,
    config: &EngineConfig,
    deployments: &[Deployment],
    policy: &mut dyn Policy,
    trace: I,
    trace_name: &str,
) -> Result<StrategyMetrics, EngineError>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    let mut engine = Engine {
        config,
        deployments,
        fleet: Fleet::new(deployments, config.seed)?,
        driver: Driver::new(policy, config.seed, config.max_attempts_per_request),
        metrics: StrategyMetrics::new(name, 4, deployments.len()),
        queue: EventQueue::default(),
        now: Instant::ZERO,
        slots: Slots::default(),
        family: Family::default(),
        trace_name: trace_name.to_string(),
        in_system: 0,
        parked: IdMap::default(),
        woken: Vec::new(),
        headers: false,
    };
    engine.headers = engine.driver.wants_rate_limit_headers();
    engine.run(trace)?;
    Ok(engine.metrics)
}

impl Engine<'_> {
    fn run<I>(&mut self, mut trace: I) -> Result<(), EngineError>
    where
        I: Iterator<Item = Result<Request, TraceError>>,
    {
        let horizon = self.config.horizon.unwrap_or(Instant::FAR_FUTURE);
        let mut next_row = trace.next().transpose()?;
        loop {
            let next_event = self.queue.next_time();
            if let Some(row) = &next_row {
                let read_now = match (self.config.replay, next_event) {
                    (_, None) => true,
                    // Ties: what is already scheduled for the row's microsecond (an attempt
                    // completing: its slot and OTPM refund) is handled before the new row.
                    (Replay::Open, Some(t)) => row.arrival < t,
                    (Replay::Closed, Some(t)) => row.arrival <= t + self.config.lookahead,
                };
                if read_now && row.arrival <= horizon {
                    let row = next_row.take().expect("checked just above");
                    self.admit_row(row)?;
                    next_row = trace.next().transpose()?;
                    continue;
                }
            }
            match next_event {
                Some(t) if t <= horizon => {
                    let (at, event) = self.queue.pop().expect("peeked");
                    // Leftovers (a cancelled hedge's end, a wake-up that was overtaken) do not
                    // move the clock: the run ends at its last real event.
                    if !self.is_stale(event) {
                        self.advance_clock(at);
                        self.handle(event);
                    }
                }
                _ => break,
            }
        }
        // Past the horizon (or the end): whatever is left is unfinished, and rows never read
        // are still counted, so every request of the trace is accounted for.
        while let Some(row) = next_row {
            self.metrics.record_arrival(row.class);
            self.metrics.record_unfinished(row.class);
            next_row = trace.next().transpose()?;
        }
        for slot in self.slots.values() {
            self.metrics.record_unfinished(slot.request.class);
        }
        for children in self.family.waiting_children.values() {
            for child in children {
                self.metrics.record_unfinished(child.class);
            }
        }
        self.metrics.check_conservation().map_err(EngineError::Conservation)
    }

    fn advance_clock(&mut self, to: Instant) {
        let elapsed = to.saturating_since(self.now).as_micros();
        self.metrics.in_system_area += u128::from(self.in_system) * u128::from(elapsed);
        self.now = to;
        self.metrics.last_event_at = to;
    }

    fn schedule(&mut self, time: Instant, slot: u32, kind: EventKind) {
        let at = self.slots.occupant(slot);
        // The tie rule: at one microsecond, a request entering the system (a trace row's or a
        // child's start) comes after every other event (completions first), whatever was
        // scheduled first; otherwise scheduling order.
        let tie = if matches!(kind, EventKind::Start) { Tie::AfterOthers } else { Tie::InOrder };
        self.queue.push(time, tie, Event { at, kind });
    }

    fn admit_row(&mut self, request: Request) -> Result<(), EngineError> {
        self.metrics.record_arrival(request.class);
        if self.config.replay == Replay::Open {
            // Open loop reads a row only when it is the earliest thing that happens next, so it
            // starts at once, without a round trip through the heap. A row that ties with
            // events at the same instant comes after them (the tie rule in `schedule`).
            let start = request.arrival;
            let slot = self.allocate(request, start);
            self.advance_clock(start.max(self.now));
            self.handle(Event { at: self.slots.occupant(slot), kind: EventKind::Start });
            return Ok(());
        }
        if self.family.finished_at.len() as u64 >= self.config.max_closed_loop_rows
            && !self.family.finished_at.contains_key(&request.id)
        {
            return Err(EngineError::ClosedLoopRows {
                file: self.trace_name.clone(),
                line: request.line,
                max: self.config.max_closed_loop_rows,
            });
        }
        if self.family.finished_at.insert(request.id, IN_SYSTEM).is_some() {
            // A repeated id would make parent links ambiguous.
            return Err(EngineError::DuplicateId { file: self.trace_name.clone(), line: request.line });
        }
        if request.parent == Some(request.id) {
            // Parents must come on earlier rows and ids are unique, so a self-parent is the
            // only cycle a trace can hold: without this check it would wait forever.
            return Err(EngineError::SelfParent { file: self.trace_name.clone(), line: request.line });
        }
        match request.parent {
            None => {
                let start = request.arrival;
                let slot = self.allocate(request, start);
                self.schedule(start, slot, EventKind::Start);
            }
            Some(parent) => match self.family.finished_at.get(&parent).copied() {
                None => {
                    return Err(EngineError::UnknownParent {
                        file: self.trace_name.clone(),
                        line: request.line,
                    });
                }
                Some(IN_SYSTEM) => self.family.waiting_children.entry(parent).or_default().push(request),
                Some(parent_done) => {
                    let due = Instant::from_micros(parent_done) + request.think;
                    if due < self.now {
                        self.metrics.late_child_starts += 1;
                    }
                    let start = due.max(self.now);
                    let slot = self.allocate(request, start);
                    self.schedule(start, slot, EventKind::Start);
                }
            },
        }
        Ok(())
    }

    fn allocate(&mut self, request: Request, arrival: Instant) -> u32 {
        let active = Active {
            request,
            history: History::new(arrival),
            live: SmallVec::new(),
            wake_token: 0,
            parked: false,
        };
        self.slots.insert(active).slot
    }

    fn active(&mut self, slot: u32) -> &mut Active {
        self.slots.live(slot)
    }

    /// An event for a request that already finished, an attempt that was cancelled, or a
    /// wake-up that a newer wait replaced.
    fn is_stale(&self, event: Event) -> bool {
        let Some(active) = self.slots.get(event.at) else {
            return true;
        };
        match event.kind {
            EventKind::Start => false,
            EventKind::Wake { token } => token != active.wake_token,
            EventKind::AttemptEnd { attempt }
            | EventKind::Hedge { attempt }
            | EventKind::FirstToken { attempt } => !active.live.iter().any(|a| a.number == attempt),
        }
    }

    fn handle(&mut self, event: Event) {
        let slot = event.at.slot;
        match event.kind {
            EventKind::Start => {
                self.in_system += 1;
                self.route(slot);
            }
            EventKind::Wake { .. } => {
                // A stale token never gets here (`is_stale`).
                let active = self.active(slot);
                if active.parked {
                    active.parked = false;
                    let id = active.request.id;
                    self.parked.remove(&id);
                }
                let active = self.slots.live(slot);
                self.driver.waited(&mut active.history);
                self.route(slot);
            }
            EventKind::AttemptEnd { attempt } => self.end_attempt(slot, attempt),
            EventKind::Hedge { attempt } => self.hedge(slot, attempt),
            EventKind::FirstToken { attempt } => self.first_token(slot, attempt),
        }
        // Whatever happened may have freed a slot or a queue place for a parked request.
        self.wake_parked();
    }

    fn route(&mut self, slot: u32) {
        let now = self.now;
        let active = self.slots.live(slot);
        match self.driver.route(now, &active.request, &mut active.history) {
            Step::Attempt(attempt) => {
                if let Some(kind) = attempt.fallback_from {
                    self.metrics.record_fallback(kind);
                }
                self.start_attempt(slot, attempt);
            }
            Step::Wait { until } => {
                active.wake_token += 1;
                let token = active.wake_token;
                let until = until.max(now + Duration::from_micros(1));
                self.schedule(until, slot, EventKind::Wake { token });
            }
            Step::Park { until } => {
                active.wake_token += 1;
                active.parked = true;
                let token = active.wake_token;
                let id = active.request.id;
                self.parked.insert(id, slot);
                if let Some(until) = until {
                    self.schedule(until.max(now + Duration::from_micros(1)), slot, EventKind::Wake { token });
                }
            }
            Step::Done(ending) => {
                let outcome = match ending {
                    Ending::GaveUp { last_failure } => match last_failure {
                        Some(FailureKind::RateLimited) => RequestOutcome::RateLimited { never_fit: false },
                        // A 429 that no retry can pass is still a rate-limit failure for the user.
                        Some(FailureKind::ExceedsLimit) => RequestOutcome::RateLimited { never_fit: true },
                        Some(kind) => RequestOutcome::Failed(FailureCause::Attempt(kind)),
                        None => RequestOutcome::Failed(FailureCause::NoRoute),
                    },
                    Ending::Rejected { reason } => RequestOutcome::Failed(FailureCause::Policy(reason)),
                    Ending::AttemptCap => RequestOutcome::Failed(FailureCause::AttemptCap),
                };
                self.finish(slot, outcome);
            }
        }
    }

    fn start_attempt(&mut self, slot: u32, attempt: StartAttempt) {
        let StartAttempt { number, deployment, options, hedge_after, .. } = attempt;
        let now = self.now;
        let seed = self.config.seed;
        let active = self.slots.live(slot);
        let d = deployment.index();
        let plan =
            self.fleet.start_attempt(&self.deployments[d], d, seed, &active.request, number, now, options);
        let ends_at = plan.ends_at.max(now + Duration::from_micros(1));
        let hedging = !active.live.is_empty();
        active.live.push(LiveAttempt { deployment, number, started_at: now, batch: options.batch, plan });
        self.schedule(ends_at, slot, EventKind::AttemptEnd { attempt: number });
        if let Some(delay) = hedge_after.filter(|_| !options.batch) {
            self.schedule(
                now + delay.max(Duration::from_micros(1)),
                slot,
                EventKind::Hedge { attempt: number },
            );
        }
        if hedging {
            // Two attempts race: whoever streams a first token first wins.
            let firsts: Vec<(u32, Instant)> = self
                .slots
                .live(slot)
                .live
                .iter()
                .filter_map(|a| a.plan.first_token_at.map(|t| (a.number, t)))
                .collect();
            for (attempt, at) in firsts {
                if at > now {
                    self.schedule(at, slot, EventKind::FirstToken { attempt });
                }
            }
        }
    }

    /// The hedge timer of `attempt` fired: if it is still waiting for its first token, ask the
    /// policy for a second attempt.
    fn hedge(&mut self, slot: u32, attempt: u32) {
        let now = self.now;
        let active = self.slots.live(slot);
        let waiting = active.live.iter().any(|a| {
            a.number == attempt && a.plan.first_token_at.is_none_or(|t| t > now) && a.plan.ends_at > now
        });
        if !waiting || active.live.len() > 1 {
            return;
        }
        if let Some(hedge) = self.driver.hedge(now, &active.request, &mut active.history) {
            self.start_attempt(slot, hedge);
        }
    }

    /// `attempt` streams its first token: every other attempt of the request is cancelled.
    fn first_token(&mut self, slot: u32, attempt: u32) {
        let now = self.now;
        let active = self.active(slot);
        let Some(winner) = active.live.iter().find(|a| a.number == attempt) else {
            return; // already ended or cancelled
        };
        if winner.plan.first_token_at != Some(now)
            || !matches!(
                winner.plan.outcome,
                PlannedOutcome::Success
                    | PlannedOutcome::Failed { kind: FailureKind::Timeout | FailureKind::MidStream, .. }
            )
        {
            return;
        }
        self.cancel_others(slot, attempt);
    }

    fn cancel_others(&mut self, slot: u32, keep: u32) {
        let now = self.now;
        let active = self.slots.live(slot);
        if active.live.iter().all(|a| a.number == keep) {
            return; // the usual case: no other attempt in flight
        }
        let mut losers = Vec::new();
        let mut i = 0;
        while i < active.live.len() {
            if active.live[i].number == keep {
                i += 1;
            } else {
                losers.push(active.live.swap_remove(i));
            }
        }
        for loser in losers {
            let active = self.slots.live(slot);
            let d = loser.deployment.index();
            let (output_tokens, cost_usd) =
                self.fleet.cancel(&self.deployments[d], d, &active.request, loser.plan, now);
            let request = &active.request;
            self.metrics.record_attempt(&AttemptRecord {
                class: request.class,
                deployment: loser.deployment.0,
                started_at: loser.started_at,
                ended_at: now,
                failure: Some(FailureKind::Cancelled),
                axis: None,
                batch: loser.batch,
                input_tokens: request.input_tokens,
                cached_input_tokens: request.cached_input_tokens,
                output_tokens,
                cost_usd,
            });
            let report = AttemptReport {
                request_id: request.id,
                class: request.class,
                attempt: loser.number,
                deployment: loser.deployment,
                started_at: loser.started_at,
                ended_at: now,
                first_token_at: None,
                outcome: AttemptOutcome::Failed(FailureKind::Cancelled),
                retry_after: None,
                output_tokens,
                remaining: self.headers.then(|| Box::new(self.fleet.headers(d, now))),
            };
            self.driver.cancelled(now, &report);
        }
    }

    fn end_attempt(&mut self, slot: u32, attempt: u32) {
        let now = self.now;
        let active = self.slots.live(slot);
        let Some(position) = active.live.iter().position(|a| a.number == attempt) else {
            return; // cancelled earlier by a hedge winner
        };
        let live = active.live.swap_remove(position);
        let LiveAttempt { deployment, number, started_at, batch, plan } = live;
        let AttemptPlan {
            first_token_at, outcome, output_tokens, cost_usd, permit, batch_queued_tokens, ..
        } = plan;
        let d = deployment.index();
        self.fleet.finish(
            d,
            now,
            outcome,
            permit,
            output_tokens,
            cost_usd,
            batch.then_some(batch_queued_tokens),
        );
        let (failure, axis, retry_after) = match outcome {
            PlannedOutcome::Failed { kind, axis, retry_after } => (Some(kind), axis, retry_after),
            _ => (None, None, None),
        };
        let request = &active.request;
        self.metrics.record_attempt(&AttemptRecord {
            class: request.class,
            deployment: deployment.0,
            started_at,
            ended_at: now,
            failure,
            axis,
            batch,
            input_tokens: request.input_tokens,
            cached_input_tokens: request.cached_input_tokens,
            output_tokens,
            cost_usd,
        });
        let report = AttemptReport {
            request_id: request.id,
            class: request.class,
            attempt: number,
            deployment,
            started_at,
            ended_at: now,
            first_token_at,
            outcome: match outcome {
                PlannedOutcome::Success => AttemptOutcome::Success,
                PlannedOutcome::Batched => AttemptOutcome::Batched,
                PlannedOutcome::Failed { kind, .. } => AttemptOutcome::Failed(kind),
            },
            retry_after,
            output_tokens,
            remaining: (self.headers && !batch).then(|| Box::new(self.fleet.headers(d, now))),
        };
        let active = self.slots.live(slot);
        self.driver.ended(now, &mut active.history, report);
        match outcome {
            PlannedOutcome::Success => {
                self.cancel_others(slot, number);
                let first_token_at = first_token_at.unwrap_or(now);
                self.finish(slot, RequestOutcome::Succeeded { first_token_at, done_at: now });
            }
            PlannedOutcome::Batched => {
                self.cancel_others(slot, number);
                self.finish(slot, RequestOutcome::Batched { done_at: now });
            }
            PlannedOutcome::Failed { .. } => {
                if self.active(slot).live.is_empty() {
                    self.route(slot);
                }
            }
        }
    }

    fn finish(&mut self, slot: u32, outcome: RequestOutcome) {
        let active = self.slots.remove(slot);
        debug_assert!(active.live.is_empty(), "a request finishes with no attempt in flight");
        self.in_system -= 1;
        if active.parked {
            self.parked.remove(&active.request.id);
        }
        self.metrics.record_outcome(active.request.class, active.history.started_at(), outcome);
        for (layer, calls) in active.history.restarts() {
            *self.metrics.retries_by_layer.entry(layer.to_string()).or_insert(0) += u64::from(*calls);
        }
        self.driver.forget(self.now, active.request.id);
        if self.config.replay == Replay::Closed {
            let id = active.request.id;
            self.family.finished_at.insert(id, self.now.as_micros());
            if let Some(children) = self.family.waiting_children.remove(&id) {
                for child in children {
                    let start = self.now + child.think;
                    let child_slot = self.allocate(child, start);
                    self.schedule(start, child_slot, EventKind::Start);
                }
            }
        }
    }

    /// Asks the policy which parked requests may proceed and wakes them now.
    fn wake_parked(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let mut woken = std::mem::take(&mut self.woken);
        self.driver.unpark(self.now, &mut woken);
        for id in woken.drain(..) {
            if let Some(slot) = self.parked.remove(&id) {
                let active = self.active(slot);
                active.parked = false;
                active.wake_token += 1;
                let token = active.wake_token;
                self.schedule(self.now, slot, EventKind::Wake { token });
            }
        }
        self.woken = woken;
    }
}
