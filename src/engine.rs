//! The discrete-event engine: moves requests between the trace, a policy and the modelled
//! deployments on a virtual clock.
//!
//! One binary heap of events keyed by (time, sequence number), so ties resolve in insertion
//! order and every run is the same. The trace is read incrementally: memory grows with the
//! requests in flight, not with the trace's length (closed-loop replay additionally keeps a
//! 16-byte record per request id so children can find their parents).
//!
//! Replay modes:
//! - **open loop**: every request starts at its `arrival_ms`;
//! - **closed loop**: a request with a `parent` starts when its parent finishes (whatever the
//!   outcome: a failed parent still releases its children, so no work is silently lost) plus
//!   `think_ms`; requests without a parent start at `arrival_ms`. Rows are read up to
//!   `lookahead` ahead of the clock; a child whose row is read after its start instant starts
//!   late and is counted in `late_child_starts`.
//!
//! The engine knows the [`Policy`] trait, not policy internals: it keeps each request's
//! [`History`], asks the policy what to do, runs attempts against [`DeploymentState`]s, and
//! reports outcomes to [`StrategyMetrics`].

use crate::metrics::{AttemptRecord, FailureCause, RequestOutcome, StrategyMetrics};
use crate::policy::{AttemptOutcome, AttemptReport, Decision, History, Policy};
use crate::provider::AttemptOptions;
use crate::provider::{AttemptPlan, Deployment, DeploymentId, DeploymentState, FailureKind, PlannedOutcome};
use crate::rng::{DrawKey, Purpose};
use crate::time::{Duration, Instant};
use crate::trace::{Request, TraceError};
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 1,
            replay: Replay::Closed,
            lookahead: Duration::from_mins(10),
            horizon: None,
            max_attempts_per_request: 1_000,
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
                | EngineError::UnknownParent { .. }
                | EngineError::SelfParent { .. }
                | EngineError::DuplicateId { .. }
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

/// An event for the request in `slot`; `serial` tells a request from a later occupant of the
/// same slot, so events of finished requests are recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    slot: u32,
    serial: u32,
    kind: EventKind,
}

/// Set in a key's sequence half for requests entering the system: they sort after every
/// other event of the same microsecond (sequences stay far below 2^63).
const START_AFTER_TIES: u64 = 1 << 63;

/// An event with its key: time in the high 64 bits, insertion sequence in the low 64, so
/// ordering is one integer comparison (the heap is the engine's hottest structure).
#[derive(Debug)]
struct Scheduled {
    key: u128,
    event: Event,
}

impl Scheduled {
    fn time(&self) -> Instant {
        Instant::from_micros((self.key >> 64) as u64)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
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
    serial: u32,
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

/// Closed-loop bookkeeping: which ids exist, which finished when, who waits for whom.
#[derive(Default)]
struct Family {
    /// `None` = still in the system; `Some(t)` = finished at `t`.
    finished_at: IdMap<Option<Instant>>,
    waiting_children: IdMap<Vec<Request>>,
}

/// Runs one strategy over one trace.
pub struct Engine<'a> {
    config: &'a EngineConfig,
    deployments: &'a [Deployment],
    states: Vec<DeploymentState>,
    policy: &'a mut dyn Policy,
    metrics: StrategyMetrics,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    now: Instant,
    slots: Vec<Option<Active>>,
    free_slots: Vec<u32>,
    next_serial: u32,
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
        states: deployments.iter().map(|d| DeploymentState::new(d, config.seed)).collect(),
        policy,
        metrics: StrategyMetrics::new(name, 4, deployments.len()),
        heap: BinaryHeap::new(),
        seq: 0,
        now: Instant::ZERO,
        slots: Vec::new(),
        free_slots: Vec::new(),
        next_serial: 0,
        family: Family::default(),
        trace_name: trace_name.to_string(),
        in_system: 0,
        parked: IdMap::default(),
        woken: Vec::new(),
        headers: false,
    };
    engine.headers = engine.policy.wants_rate_limit_headers();
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
            let next_event = self.heap.peek().map(Scheduled::time);
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
                    let scheduled = self.heap.pop().expect("peeked");
                    // Leftovers (a cancelled hedge's end, a wake-up that was overtaken) do not
                    // move the clock: the run ends at its last real event.
                    if !self.is_stale(scheduled.event) {
                        self.advance_clock(scheduled.time());
                        self.handle(scheduled.event);
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
        for slot in self.slots.iter().flatten() {
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
        let serial = self.slots[slot as usize].as_ref().expect("scheduling for a live slot").serial;
        self.seq += 1;
        // The tie rule: at one microsecond, a request entering the system (a trace row's or a
        // child's start) comes after every other event (completions first), whatever was
        // scheduled first; otherwise insertion order.
        let entering = if matches!(kind, EventKind::Start) { START_AFTER_TIES } else { 0 };
        let key = (u128::from(time.as_micros()) << 64) | u128::from(entering | self.seq);
        self.heap.push(Scheduled { key, event: Event { slot, serial, kind } });
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
            self.handle(Event { slot, serial: self.next_serial, kind: EventKind::Start });
            return Ok(());
        }
        if self.family.finished_at.insert(request.id, None).is_some() {
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
            Some(parent) => match self.family.finished_at.get(&parent) {
                None => {
                    return Err(EngineError::UnknownParent {
                        file: self.trace_name.clone(),
                        line: request.line,
                    });
                }
                Some(None) => self.family.waiting_children.entry(parent).or_default().push(request),
                Some(Some(parent_done)) => {
                    let due = *parent_done + request.think;
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
        self.next_serial = self.next_serial.wrapping_add(1);
        let active = Active {
            request,
            serial: self.next_serial,
            history: History::new(arrival),
            live: SmallVec::new(),
            wake_token: 0,
            parked: false,
        };
        match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(active);
                slot
            }
            None => {
                self.slots.push(Some(active));
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion requests in flight")
            }
        }
    }

    fn active(&mut self, slot: u32) -> &mut Active {
        self.slots[slot as usize].as_mut().expect("events only refer to live slots")
    }

    /// An event for a request that already finished, an attempt that was cancelled, or a
    /// wake-up that a newer wait replaced.
    fn is_stale(&self, event: Event) -> bool {
        let Some(active) = self.slots[event.slot as usize].as_ref().filter(|a| a.serial == event.serial)
        else {
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
        let slot = event.slot;
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
                self.active(slot).history.waited();
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
        let seed = self.config.seed;
        let active = self.slots[slot as usize].as_mut().expect("events only refer to live slots");
        let mut rng = DrawKey {
            seed,
            request: active.request.id,
            attempt: active.history.attempts | (active.history.waits << 16),
            deployment: u64::from(active.history.hedging),
            purpose: Purpose::Policy,
        }
        .rng();
        let decision = self.policy.route(now, &active.request, &mut active.history, &mut rng);
        match decision {
            Decision::Attempt { deployment, options, hedge_after } => {
                if active.history.attempts >= self.config.max_attempts_per_request {
                    if active.live.is_empty() {
                        self.finish(slot, RequestOutcome::Failed(FailureCause::AttemptCap));
                    }
                    return;
                }
                self.start_attempt(slot, deployment, options, hedge_after);
            }
            _ if active.history.hedging => {} // anything but an attempt means "no hedge"
            Decision::Wait { until } => {
                active.wake_token += 1;
                let token = active.wake_token;
                let until = until.max(now + Duration::from_micros(1));
                self.schedule(until, slot, EventKind::Wake { token });
            }
            Decision::Park { until } => {
                active.wake_token += 1;
                active.parked = true;
                let token = active.wake_token;
                let id = active.request.id;
                self.parked.insert(id, slot);
                if let Some(until) = until {
                    self.schedule(until.max(now + Duration::from_micros(1)), slot, EventKind::Wake { token });
                }
            }
            Decision::GiveUp => {
                let outcome = match active.history.last.as_ref().and_then(AttemptReport::failure) {
                    Some(FailureKind::RateLimited) => RequestOutcome::RateLimited { never_fit: false },
                    // A 429 that no retry can pass is still a rate-limit failure for the user.
                    Some(FailureKind::ExceedsLimit) => RequestOutcome::RateLimited { never_fit: true },
                    Some(kind) => RequestOutcome::Failed(FailureCause::Attempt(kind)),
                    None => RequestOutcome::Failed(FailureCause::NoRoute),
                };
                self.finish(slot, outcome);
            }
            Decision::Reject { reason } => {
                self.finish(slot, RequestOutcome::Failed(FailureCause::Policy(reason)))
            }
        }
    }

    fn start_attempt(
        &mut self,
        slot: u32,
        deployment: DeploymentId,
        options: AttemptOptions,
        hedge_after: Option<Duration>,
    ) {
        let now = self.now;
        let seed = self.config.seed;
        let active = self.slots[slot as usize].as_mut().expect("events only refer to live slots");
        // A fallback fired: the previous attempt failed and this one goes elsewhere.
        if let Some(last) = &active.history.last {
            if let (Some(kind), false) =
                (last.failure(), last.deployment == deployment || active.history.hedging)
            {
                self.metrics.record_fallback(kind);
            }
        }
        active.history.attempts += 1;
        let number = active.history.attempts;
        let d = deployment.index();
        let plan =
            self.states[d].start_attempt(&self.deployments[d], seed, &active.request, number, now, options);
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
            let firsts: Vec<(u32, Instant)> = self.slots[slot as usize]
                .as_ref()
                .expect("live slot")
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
        let active = self.active(slot);
        let waiting = active.live.iter().any(|a| {
            a.number == attempt && a.plan.first_token_at.is_none_or(|t| t > now) && a.plan.ends_at > now
        });
        if !waiting || active.live.len() > 1 {
            return;
        }
        active.history.hedging = true;
        self.route(slot);
        if let Some(active) = self.slots[slot as usize].as_mut() {
            active.history.hedging = false;
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
                PlannedOutcome::Success | PlannedOutcome::Failed { kind: FailureKind::Timeout, .. }
            )
        {
            return;
        }
        self.cancel_others(slot, attempt);
    }

    fn cancel_others(&mut self, slot: u32, keep: u32) {
        let now = self.now;
        let active = self.slots[slot as usize].as_mut().expect("live slot");
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
            let active = self.slots[slot as usize].as_mut().expect("live slot");
            let d = loser.deployment.index();
            let (output_tokens, cost_usd) =
                self.states[d].cancel(&self.deployments[d], &active.request, loser.plan, now);
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
                remaining: self.headers.then(|| Box::new(self.states[d].headers(now))),
            };
            self.policy.observe(now, &report);
        }
    }

    fn end_attempt(&mut self, slot: u32, attempt: u32) {
        let now = self.now;
        let active = self.slots[slot as usize].as_mut().expect("events only refer to live slots");
        let Some(position) = active.live.iter().position(|a| a.number == attempt) else {
            return; // cancelled earlier by a hedge winner
        };
        let live = active.live.swap_remove(position);
        let LiveAttempt { deployment, number, started_at, batch, plan } = live;
        let AttemptPlan { first_token_at, outcome, output_tokens, cost_usd, permit, .. } = plan;
        let d = deployment.index();
        self.states[d].finish(now, outcome, permit, output_tokens, batch);
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
            remaining: (self.headers && !batch).then(|| Box::new(self.states[d].headers(now))),
        };
        self.policy.observe(now, &report);
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
                let active = self.active(slot);
                active.history.record(report);
                if active.live.is_empty() {
                    self.route(slot);
                }
            }
        }
    }

    fn finish(&mut self, slot: u32, outcome: RequestOutcome) {
        let active = self.slots[slot as usize].take().expect("finishing a live slot");
        debug_assert!(active.live.is_empty(), "a request finishes with no attempt in flight");
        self.free_slots.push(slot);
        self.in_system -= 1;
        if active.parked {
            self.parked.remove(&active.request.id);
        }
        self.metrics.record_outcome(active.request.class, active.history.started_at, outcome);
        self.policy.forget(self.now, active.request.id);
        if self.config.replay == Replay::Closed {
            let id = active.request.id;
            self.family.finished_at.insert(id, Some(self.now));
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
        self.policy.unpark(self.now, &mut woken);
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

/// The result of running every strategy of a scenario on one trace.
#[derive(Debug)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub trace_path: std::path::PathBuf,
    pub classes: crate::trace::ClassTable,
    pub deployment_names: Vec<String>,
    pub strategies: Vec<StrategyMetrics>,
    /// What the import read and skipped, when the trace was imported.
    pub import_report: Option<crate::trace::import::ImportReport>,
}

/// Runs every strategy of `scenario` on its trace (or `trace_override`), in parallel: the trace
/// is read once (closed loop: once per group of as many strategies as worker threads, to bound
/// the closed-loop state held at once) and each strategy's engine, on a thread of its own,
/// replays every row of it and draws its own numbers, so the result does not depend on the
/// thread count.
pub fn run_scenario(
    scenario: &crate::scenario::Scenario,
    trace_override: Option<&std::path::Path>,
    seed_override: Option<u64>,
) -> Result<RunResult, EngineError> {
    let source = trace_override.map(crate::trace::source::TraceSource::routesim);
    run_scenario_source(scenario, source.as_ref(), seed_override, &mut |_| {})
}

/// [`run_scenario`] with the trace replaced by any [`crate::trace::source::TraceSource`]
/// (an imported public trace, a generator); `progress` is told how far the shared read of the
/// trace has got, chunk by chunk (the strategies follow a few chunks behind at most).
pub fn run_scenario_source(
    scenario: &crate::scenario::Scenario,
    source_override: Option<&crate::trace::source::TraceSource>,
    seed_override: Option<u64>,
    progress: &mut dyn FnMut(crate::trace::shared::PassProgress),
) -> Result<RunResult, EngineError> {
    let source = source_override.unwrap_or(&scenario.trace.source);
    let trace_path = std::path::PathBuf::from(source.name());
    let mut config = scenario.engine_config();
    if let Some(seed) = seed_override {
        config.seed = seed;
    }
    let trace_name = source.name();
    // Open loop: every strategy on one shared read. Closed loop keeps state per request for
    // the whole replay in every engine, so as many strategies run at once as there are worker
    // threads (as when each strategy read on its own), each group on one shared read.
    let group_size = match config.replay {
        Replay::Closed => rayon::current_num_threads().max(1),
        Replay::Open => scenario.strategies.len().max(1),
    };
    let passes = scenario.strategies.len().div_ceil(group_size) as u64;
    let mut strategies = Vec::with_capacity(scenario.strategies.len());
    let mut end = None;
    let mut rows_before = 0;
    for (pass, group) in scenario.strategies.chunks(group_size).enumerate() {
        let stream = crate::trace::source::open_source_within(source, scenario.trace.max_span)?;
        let (feeder, streams) = crate::trace::shared::split(stream, group.len());
        let mut pass_rows = 0;
        let mut report = |read: crate::trace::shared::PassProgress| {
            pass_rows = read.rows;
            progress(crate::trace::shared::PassProgress {
                rows: rows_before + read.rows,
                bytes: read.bytes.map(|(bytes, size)| (pass as u64 * size + bytes, passes * size)),
            });
        };
        let (results, pass_end) = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .zip(streams)
                .map(|(strategy, stream)| {
                    let (config, trace_name) = (&config, &trace_name);
                    scope.spawn(move || {
                        let mut policy = strategy.policy.build();
                        simulate(
                            &strategy.name,
                            config,
                            &scenario.deployments,
                            policy.as_mut(),
                            stream,
                            trace_name,
                        )
                    })
                })
                .collect();
            let pass_end = feeder.run(&mut report);
            let results: Vec<Result<StrategyMetrics, EngineError>> = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect();
            (results, pass_end)
        });
        rows_before += pass_rows;
        for result in results {
            strategies.push(result?);
        }
        end = Some(pass_end);
    }
    let end =
        end.unwrap_or_else(|| crate::trace::shared::PassEnd { classes: Default::default(), report: None });
    Ok(RunResult {
        scenario: scenario.name.clone(),
        seed: config.seed,
        trace_path,
        classes: end.classes,
        deployment_names: scenario.deployment_names(),
        strategies,
        import_report: end.report,
    })
}
