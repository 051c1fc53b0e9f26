//! The replay loop of `sim observe`: trace rows start at their arrival (open loop) or at
//! their parent's end plus think time (closed loop), both divided by `--speed`, each on a
//! thread of its own that routes it through the [`LiveRouter`] (which sleeps through waits
//! and backoff on the wall clock) with attempts sent by [`client::send`]; every attempt is
//! written to `attempts.jsonl` and booked in the [`StrategyMetrics`] `sim run` uses, so the
//! outputs are those of a simulated run.
//!
//! Times are the router's: microseconds of wall time since the run started. The loop stops at
//! the trace's end, at `--duration` or at a fatal endpoint error; what is still running then
//! is `unfinished` (request threads still asleep in a policy's wait are left to end on their
//! own: their attempts are cancelled and no longer recorded). It must not know the protocols'
//! wire formats (that is [`client`]) nor the policies' insides.

use super::client::{self, Sent};
use super::ids::IdNames;
use super::{ObserveError, ObserveOptions, Observed, Target};
use crate::attempt_log::{AttemptLogWriter, AttemptRecord, Observation, ATTEMPTS_FILE, OBSERVATION_FILE};
use crate::engine::{EngineError, Replay};
use crate::limiter::{Axis, AxisRemaining, Remaining};
use crate::live::{LiveOutcome, LiveRouter};
use crate::metrics::{self, FailureCause, RequestOutcome, StrategyMetrics};
use crate::policy::{AttemptOutcome, AttemptReport};
use crate::provider::{AttemptOptions, Deployment, DeploymentId, FailureKind, Usage};
use crate::ratelimit_headers::{Field, HeaderAxis, HEADER_AXES};
use crate::scenario::{Scenario, Strategy};
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

/// The loop looks at the clock at least this often (completions wake it earlier).
const MAX_LOOP_SLEEP: std::time::Duration = std::time::Duration::from_millis(50);

/// Everything the run records, behind one lock.
struct Recorder {
    /// Closed when the run ends: late attempts and outcomes are not recorded.
    open: bool,
    metrics: StrategyMetrics,
    /// Taken (and flushed) when the run ends.
    log: Option<AttemptLogWriter<std::io::BufWriter<std::fs::File>>>,
    log_error: Option<std::io::Error>,
    attempts: u64,
    /// Requests started and not finished, and since when that count holds (Little's L).
    in_system: u64,
    since: Instant,
    /// Deployments whose malformed answers were already reported on stderr.
    warned: HashSet<usize>,
}

impl Recorder {
    fn advance(&mut self, now: Instant) {
        if now > self.since {
            let elapsed = now.saturating_since(self.since).as_micros();
            self.metrics.in_system_area += u128::from(self.in_system) * u128::from(elapsed);
            self.since = now;
        }
        self.metrics.last_event_at = self.metrics.last_event_at.max(now);
    }
}

/// What the request threads share.
struct Shared {
    deployments: Arc<[Deployment]>,
    targets: Vec<Option<Target>>,
    client: reqwest::Client,
    runtime: Arc<tokio::runtime::Runtime>,
    cancel: tokio::sync::watch::Sender<bool>,
    safety: std::time::Duration,
    /// The router, for its clock: its time zero on the wall clock and how much faster than
    /// the wall clock it runs (`--time-scale`).
    router: Arc<LiveRouter>,
    recorder: Mutex<Recorder>,
    /// The first fatal endpoint error: (deployment, message).
    fatal: Mutex<Option<(String, String)>>,
    /// A row the router refused (its id is already in flight): (line).
    duplicate: Mutex<Option<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking request thread must not stop the others from recording.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn from_std(d: std::time::Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The remaining-capacity headers of a response, as a policy reads them.
fn remaining_of(headers: &BTreeMap<String, String>) -> Remaining {
    let get = |names: &[&str]| {
        names.iter().find_map(|n| headers.get(*n).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    let field = |names: &HeaderAxis, field: Field| {
        let mut candidates = vec![names.anthropic_name(field)];
        candidates.extend(names.openai_name(field));
        get(&candidates.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let axes = HEADER_AXES
        .iter()
        .filter_map(|names| {
            let remaining = field(names, Field::Remaining)?;
            Some(AxisRemaining {
                axis: Axis::per_minute(names.meter),
                limit: field(names, Field::Limit).unwrap_or(0),
                remaining,
                // Reset headers are instants or durations by provider; a policy reads the
                // remaining counts only.
                reset: Duration::ZERO,
            })
        })
        .collect();
    Remaining { axes, in_flight: 0 }
}

/// The per-call memory of the attempt closure: the previous attempt, for fallback counts.
#[derive(Default)]
struct CallMemo {
    previous: Option<(DeploymentId, Option<FailureKind>)>,
}

impl Shared {
    fn at(&self, t: std::time::Instant) -> Instant {
        self.router.at(t)
    }

    fn set_fatal(&self, deployment: &str, message: String) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some((deployment.to_string(), message));
        }
    }

    fn is_open(&self) -> bool {
        lock(&self.recorder).open
    }

    /// A report for an attempt that was not sent (the run is over, no endpoint, batch).
    fn unsent(
        &self,
        router: &LiveRouter,
        request: &Request,
        deployment: DeploymentId,
        number: u32,
        kind: FailureKind,
    ) -> AttemptReport {
        let now = router.now();
        AttemptReport {
            request_id: request.id,
            class: request.class,
            attempt: number,
            deployment,
            started_at: now,
            ended_at: now,
            first_token_at: None,
            outcome: AttemptOutcome::Failed(kind),
            retry_after: None,
            output_tokens: 0,
            remaining: None,
        }
    }

    /// Attempt `number` of `request` at `deployment`: sent, recorded, reported to the router.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        router: &LiveRouter,
        request: &Request,
        id_name: &str,
        deployment: DeploymentId,
        options: AttemptOptions,
        number: u32,
        memo: &mut CallMemo,
    ) -> AttemptReport {
        let d = deployment.index();
        let name = self.deployments.get(d).map_or("?", |dep| dep.name.as_str());
        if !self.is_open() {
            return self.unsent(router, request, deployment, number, FailureKind::Cancelled);
        }
        let Some(target) = self.targets.get(d).and_then(Option::as_ref) else {
            self.set_fatal(
                name,
                "the strategy sent an attempt there but it has no --endpoint (give one per deployment the strategy uses)"
                    .into(),
            );
            return self.unsent(router, request, deployment, number, FailureKind::Cancelled);
        };
        if let Some((previous, Some(kind))) = memo.previous {
            if previous != deployment {
                let mut recorder = lock(&self.recorder);
                if recorder.open {
                    recorder.metrics.record_fallback(kind);
                }
            }
        }
        if options.batch {
            // The batch APIs are not spoken over HTTP here: the attempt fails at once, as at a
            // deployment without one, and the policy moves on.
            let report = self.unsent(router, request, deployment, number, FailureKind::BatchUnsupported);
            self.book_metrics(request, d, &report, None, true);
            memo.previous = Some((deployment, report.failure()));
            return report;
        }
        let limits = client::Limits {
            first_token_timeout: options.first_token_timeout.map(|d| self.router.wall_duration(d)),
            timeout: options.timeout.map(|d| self.router.wall_duration(d)),
            safety: self.safety,
        };
        let sent = self.runtime.block_on(client::send(
            &self.client,
            client::Target { endpoint: &target.endpoint, key: target.key.as_ref(), model: &target.model },
            request,
            limits,
            self.cancel.subscribe(),
        ));
        if let Some(message) = &sent.fatal {
            self.set_fatal(name, message.clone());
        }
        let report = AttemptReport {
            request_id: request.id,
            class: request.class,
            attempt: number,
            deployment,
            started_at: self.at(sent.started),
            ended_at: self.at(sent.ended),
            first_token_at: sent.first_token.map(|t| self.at(t)),
            outcome: sent.failure.map_or(AttemptOutcome::Success, AttemptOutcome::Failed),
            retry_after: sent.retry_after.map(|d| self.router.router_duration(d)),
            output_tokens: sent.output_tokens(),
            remaining: Some(Box::new(remaining_of(&sent.headers))),
        };
        if sent.failure != Some(FailureKind::Cancelled) {
            self.record(request, id_name, d, name, &report, &sent);
        }
        memo.previous = Some((deployment, report.failure()));
        report
    }

    /// Books an attempt in the metrics; `sent` gives the reported usage.
    fn book_metrics(
        &self,
        request: &Request,
        d: usize,
        report: &AttemptReport,
        sent: Option<&Sent>,
        batch: bool,
    ) {
        let usage = sent.map(|s| s.usage).unwrap_or_default();
        let input_tokens = usage.input_tokens.unwrap_or(request.input_tokens);
        let cached_input_tokens =
            usage.cached_input_tokens.unwrap_or(request.cached_input_tokens).min(input_tokens);
        // Billed like the model bills: a served answer, and an admitted attempt cut off or
        // broken (its prompt and what streamed); refusals and errors cost nothing.
        let billed = matches!(
            report.failure(),
            None | Some(FailureKind::Timeout | FailureKind::SlowFirstToken | FailureKind::MidStream)
        ) && sent.is_some_and(|s| s.status != 0 || s.first_token.is_some());
        let cost_usd = match self.deployments.get(d) {
            Some(deployment) if billed => {
                let cache_write_tokens = request.cache_write_tokens.min(input_tokens - cached_input_tokens);
                let usage = Usage {
                    plain_input_tokens: input_tokens - cached_input_tokens - cache_write_tokens,
                    cached_input_tokens,
                    cache_write_tokens,
                    output_tokens: report.output_tokens,
                };
                deployment.prices.cost_usd(&usage, false)
            }
            _ => 0.0,
        };
        let mut recorder = lock(&self.recorder);
        if !recorder.open {
            return;
        }
        recorder.advance(report.ended_at);
        recorder.metrics.record_attempt(&metrics::AttemptRecord {
            class: request.class,
            deployment: u16::try_from(d).unwrap_or(u16::MAX),
            started_at: report.started_at,
            ended_at: report.ended_at,
            failure: report.failure(),
            axis: None,
            batch,
            input_tokens,
            cached_input_tokens,
            output_tokens: report.output_tokens,
            cost_usd,
        });
    }

    /// Writes an attempt to the log and books it.
    fn record(
        &self,
        request: &Request,
        id_name: &str,
        d: usize,
        name: &str,
        report: &AttemptReport,
        sent: &Sent,
    ) {
        let input_tokens = sent.usage.input_tokens.unwrap_or(request.input_tokens);
        let line = AttemptRecord {
            request_id: id_name.to_string(),
            deployment: name.to_string(),
            attempt: report.attempt,
            start_ms: report.started_at.as_millis_f64(),
            first_token_ms: report.first_token_at.map(Instant::as_millis_f64),
            end_ms: report.ended_at.as_millis_f64(),
            status: sent.status,
            error_type: sent.error_type.clone(),
            retry_after_s: report.retry_after.map(Duration::as_secs_f64),
            headers: sent.headers.clone(),
            input_tokens,
            cached_input_tokens: sent
                .usage
                .cached_input_tokens
                .unwrap_or(request.cached_input_tokens)
                .min(input_tokens),
            output_tokens: report.output_tokens,
        };
        {
            let mut recorder = lock(&self.recorder);
            if !recorder.open {
                return;
            }
            if let Some(message) = &sent.malformed {
                if recorder.warned.insert(d) {
                    eprintln!(
                        "warning: deployment {name:?}: a malformed answer ({message}); recorded as a failed attempt, further ones silently"
                    );
                }
            }
            recorder.attempts += 1;
            // Flushed line by line: a long run's log can be followed while it runs, and a
            // killed run keeps what it observed.
            let written = recorder.log.as_mut().map(|log| log.write(&line).and_then(|()| log.flush()));
            if let Some(Err(e)) = written {
                recorder.log_error.get_or_insert(e);
            }
        }
        self.book_metrics(request, d, report, Some(sent), false);
    }

    fn started(&self, now: Instant) {
        let mut recorder = lock(&self.recorder);
        if recorder.open {
            recorder.advance(now);
            recorder.in_system += 1;
        }
    }

    fn finished(&self, request: &Request, started_at: Instant, now: Instant, outcome: &LiveOutcome) {
        let outcome = match outcome {
            LiveOutcome::Served(report) => match report.outcome {
                AttemptOutcome::Batched => RequestOutcome::Batched { done_at: report.ended_at },
                _ => RequestOutcome::Succeeded {
                    first_token_at: report.first_token_at.unwrap_or(report.ended_at),
                    done_at: report.ended_at,
                },
            },
            LiveOutcome::GaveUp(last) => match last.as_ref().and_then(AttemptReport::failure) {
                Some(FailureKind::RateLimited) => RequestOutcome::RateLimited { never_fit: false },
                Some(FailureKind::ExceedsLimit) => RequestOutcome::RateLimited { never_fit: true },
                Some(kind) => RequestOutcome::Failed(FailureCause::Attempt(kind)),
                None => RequestOutcome::Failed(FailureCause::NoRoute),
            },
            LiveOutcome::Rejected(reason) => RequestOutcome::Failed(FailureCause::Policy(reason)),
            LiveOutcome::AttemptCap(_) => RequestOutcome::Failed(FailureCause::AttemptCap),
        };
        let mut recorder = lock(&self.recorder);
        if recorder.open {
            recorder.advance(now);
            recorder.in_system = recorder.in_system.saturating_sub(1);
            recorder.metrics.record_outcome(request.class, started_at, outcome);
        }
    }
}

/// A request due to start: (start, tie-break, row).
struct Due {
    at: Instant,
    seq: u64,
    request: Request,
    id_name: String,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: the earliest start on top of the max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A trace time on the wall clock at `speed`.
fn scaled(d: Duration, speed: f64) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() / speed)
}

/// Runs the observation (options already checked by [`super::observe`]).
pub fn run(
    scenario: &Scenario,
    strategy: &Strategy,
    targets: Vec<Option<Target>>,
    speed: f64,
    options: &ObserveOptions,
) -> Result<Observed, ObserveError> {
    let time_scale = options.time_scale;
    let out = &options.out;
    let io = |file: &std::path::Path, action: &'static str| {
        let file = file.display().to_string();
        move |source| ObserveError::Io { file, action, source }
    };
    std::fs::create_dir_all(out).map_err(io(out, "cannot create the output directory"))?;
    let log_path = out.join(ATTEMPTS_FILE);
    let log_file = std::fs::File::create(&log_path).map_err(io(&log_path, "cannot create"))?;
    let source = &scenario.trace.source;
    let mut stream = crate::trace::source::open_source_limited(
        source,
        scenario.trace.max_span,
        scenario.max_classes(),
        scenario.strategies.len(),
    )
    .map_err(|e| ObserveError::Engine(EngineError::Trace(e)))?;
    let mut ids = IdNames::open(source);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("observe-http")
        .enable_all()
        .build()
        .map_err(|e| ObserveError::Runtime(e.to_string()))?;
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| ObserveError::Runtime(e.to_string()))?;
    let (cancel, _) = tokio::sync::watch::channel(false);

    let router = Arc::new(LiveRouter::with_time_scale(strategy.policy.build(), scenario.seed, time_scale));
    // Arrivals and think times on the router's clock: `speed` times denser than the trace on
    // the wall clock, which runs `time_scale` times slower than the router's.
    let speed = speed / time_scale;
    let shared = Arc::new(Shared {
        deployments: scenario.deployments.clone(),
        targets,
        client,
        runtime: Arc::new(runtime),
        cancel,
        safety: options.attempt_timeout,
        router: Arc::clone(&router),
        recorder: Mutex::new(Recorder {
            open: true,
            metrics: StrategyMetrics::new(&strategy.name, 4, scenario.deployments.len()),
            log: Some(AttemptLogWriter::new(std::io::BufWriter::new(log_file))),
            log_error: None,
            attempts: 0,
            in_system: 0,
            since: Instant::ZERO,
            warned: HashSet::new(),
        }),
        fatal: Mutex::new(None),
        duplicate: Mutex::new(None),
    });

    let trace_name = source.name();
    let replay = scenario.trace.replay;
    let lookahead = scaled(scenario.trace.lookahead, speed);
    let deadline = options.duration.map(|d| Instant::ZERO + router.router_duration(d));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Instant)>();
    let mut due: BinaryHeap<Due> = BinaryHeap::new();
    let mut seq = 0u64;
    // Closed loop: which ids exist and when they finished; children waiting for a parent.
    let mut finished_at: HashMap<u64, Option<Instant>> = HashMap::new();
    let mut waiting: HashMap<u64, Vec<(Request, String)>> = HashMap::new();
    let mut in_flight = 0u64;
    let mut next_row = stream.next().transpose().map_err(EngineError::Trace)?;
    let mut stopped_early = false;
    let wall_start = std::time::Instant::now();
    let mut received: Option<(u64, Instant)> = None;

    loop {
        let now = router.now();
        if lock(&shared.fatal).is_some() || lock(&shared.duplicate).is_some() {
            break;
        }
        if deadline.is_some_and(|d| now >= d) {
            stopped_early = next_row.is_some() || !due.is_empty() || in_flight > 0;
            break;
        }
        for (id, at) in received.take().into_iter().chain(done_rx.try_iter()) {
            in_flight = in_flight.saturating_sub(1);
            if replay == Replay::Closed {
                finished_at.insert(id, Some(at));
                for (child, id_name) in waiting.remove(&id).unwrap_or_default() {
                    seq += 1;
                    let at = at + scaled(child.think, speed);
                    due.push(Due { at, seq, request: child, id_name });
                }
            }
        }
        while let Some(row) = &next_row {
            let arrival = Instant::ZERO + scaled(row.arrival.saturating_since(Instant::ZERO), speed);
            let read_now = match replay {
                Replay::Open => arrival <= now,
                Replay::Closed => arrival <= now + lookahead,
            };
            if !read_now {
                break;
            }
            let Some(request) = next_row.take() else { break };
            let id_name = ids.next_for(request.id);
            {
                let mut recorder = lock(&shared.recorder);
                recorder.metrics.record_arrival(request.class);
            }
            seq += 1;
            match (replay, request.parent) {
                (Replay::Open, _) => due.push(Due { at: arrival, seq, request, id_name }),
                (Replay::Closed, parent) => {
                    let line = request.line;
                    if finished_at.insert(request.id, None).is_some() {
                        return Err(EngineError::DuplicateId { file: trace_name.clone(), line }.into());
                    }
                    match parent {
                        None => due.push(Due { at: arrival, seq, request, id_name }),
                        Some(p) if p == request.id => {
                            return Err(EngineError::SelfParent { file: trace_name.clone(), line }.into());
                        }
                        Some(p) => match finished_at.get(&p) {
                            None => {
                                return Err(
                                    EngineError::UnknownParent { file: trace_name.clone(), line }.into()
                                )
                            }
                            Some(None) => waiting.entry(p).or_default().push((request, id_name)),
                            Some(Some(done)) => {
                                let at = (*done + scaled(request.think, speed)).max(now);
                                due.push(Due { at, seq, request, id_name });
                            }
                        },
                    }
                }
            }
            next_row = stream.next().transpose().map_err(EngineError::Trace)?;
        }
        while due.peek().is_some_and(|d| d.at <= now) {
            let Some(Due { request, id_name, .. }) = due.pop() else { break };
            let (shared, router, done_tx) = (Arc::clone(&shared), Arc::clone(&router), done_tx.clone());
            let spawned = std::thread::Builder::new().name("observe-request".into()).spawn(move || {
                let started_at = router.now();
                shared.started(started_at);
                let mut memo = CallMemo::default();
                let outcome = router.call(&request, |deployment, options, number| {
                    shared.attempt(&router, &request, &id_name, deployment, options, number, &mut memo)
                });
                let now = router.now();
                match outcome {
                    Ok(outcome) => shared.finished(&request, started_at, now, &outcome),
                    Err(_) => {
                        let mut duplicate = lock(&shared.duplicate);
                        duplicate.get_or_insert(request.line);
                    }
                }
                let _ = done_tx.send((request.id, now));
            });
            if let Err(e) = spawned {
                return Err(ObserveError::Runtime(format!("cannot start a request thread: {e}")));
            }
            in_flight += 1;
        }
        if next_row.is_none() && due.is_empty() && in_flight == 0 {
            break;
        }
        // Sleep until the next start, the next row, the deadline or a completion.
        let mut wake = now + from_std(MAX_LOOP_SLEEP);
        if let Some(d) = due.peek() {
            wake = wake.min(d.at);
        }
        if let Some(row) = &next_row {
            let arrival = Instant::ZERO + scaled(row.arrival.saturating_since(Instant::ZERO), speed);
            let read_at = match replay {
                Replay::Open => arrival,
                Replay::Closed => {
                    Instant::from_micros(arrival.as_micros().saturating_sub(lookahead.as_micros()))
                }
            };
            wake = wake.min(read_at);
        }
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        let sleep = router.wall(wake).saturating_duration_since(std::time::Instant::now());
        // A completion wakes the loop early; it is handled at the top like the others.
        received = done_rx.recv_timeout(sleep).ok();
    }

    // Close the books: nothing recorded after this instant.
    let end = router.now();
    let _ = shared.cancel.send(true);
    let fatal = lock(&shared.fatal).take();
    let duplicate = lock(&shared.duplicate).take();
    let (mut metrics, attempts, log_error, log) = {
        let mut recorder = lock(&shared.recorder);
        recorder.open = false;
        recorder.advance(end);
        let metrics = recorder.metrics.clone();
        let attempts = recorder.attempts;
        let log_error = recorder.log_error.take();
        let flushed = match recorder.log.take() {
            Some(log) => log.into_inner().flush(),
            None => Ok(()),
        };
        (metrics, attempts, log_error, flushed)
    };
    if let Some(e) = log_error.or(log.err()) {
        return Err(ObserveError::Io {
            file: log_path.display().to_string(),
            action: "cannot write",
            source: e,
        });
    }
    if let Some((deployment, message)) = fatal {
        return Err(ObserveError::Endpoint { deployment, message, log: log_path.display().to_string() });
    }
    if let Some(line) = duplicate {
        return Err(EngineError::DuplicateId { file: trace_name, line }.into());
    }
    // Rows never read still count, as in a simulation cut at its horizon.
    if stopped_early {
        while let Some(row) = next_row {
            metrics.record_arrival(row.class);
            next_row = stream.next().transpose().map_err(EngineError::Trace)?;
        }
    }
    // Whatever arrived and has no outcome is unfinished (in flight, waiting, due).
    let mut open_by_class = Vec::new();
    for (index, m) in metrics.by_class.iter().enumerate() {
        let closed = m.succeeded + m.rate_limited + m.failed + m.batched + m.unfinished;
        open_by_class.push((index, m.requests.saturating_sub(closed)));
    }
    for (index, open) in open_by_class {
        let class = ClassId(u16::try_from(index).unwrap_or(u16::MAX));
        for _ in 0..open {
            metrics.record_unfinished(class);
        }
    }
    metrics.check_conservation().map_err(ObserveError::Conservation)?;
    let result = crate::run::RunResult {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        trace_path: std::path::PathBuf::from(trace_name),
        classes: stream.classes(),
        deployment_names: scenario.deployment_names(),
        strategies: vec![metrics],
        import_report: stream.report(),
    };
    crate::report::write_outputs(&result, out).map_err(io(out, "cannot write the results"))?;
    let observation = Observation { time_scale, speed: speed * time_scale };
    let observation_path = out.join(OBSERVATION_FILE);
    let text = serde_json::to_string_pretty(&observation).unwrap_or_default() + "\n";
    std::fs::write(&observation_path, text).map_err(io(&observation_path, "cannot write"))?;
    Ok(Observed { result, attempts, wall: wall_start.elapsed(), stopped_early })
}
