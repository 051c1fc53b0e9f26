//! Outcomes of a simulation: counts, latency histograms, per-minute series and cost, per
//! strategy, class and deployment; the conservation check; the serialisable summary.
//!
//! Latencies go into HDR histograms (3 significant digits, microsecond values), so percentiles
//! come from a real histogram in constant memory, not from a sorted copy of every request.
//! Metrics must not know about plotting or the engine loop: the engine calls `record_*`.

use crate::limiter::Axis;
use crate::provider::FailureKind;
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, ClassTable};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The final outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    Succeeded {
        first_token_at: Instant,
        done_at: Instant,
    },
    /// Gave up after a rate-limit refusal. `never_fit`: the last refusal said the request is
    /// larger than a bucket (it could never pass, e.g. `max_tokens` above a 1-second OTPM bucket).
    RateLimited {
        never_fit: bool,
    },
    /// Gave up after another failure (5xx, 529, timeout, expired batch, no route).
    Failed(FailureCause),
    /// Accepted by a batch API; its result arrives at `done_at`.
    Batched {
        done_at: Instant,
    },
}

/// Why a request failed, for the `failed_by_cause` breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureCause {
    Attempt(FailureKind),
    /// The policy gave up before any attempt (nothing qualified).
    NoRoute,
    /// The engine's safety cap on attempts per request was hit (a policy that never gives up).
    AttemptCap,
    /// The policy refused with its own reason (`no_deployments_available`, `max_price`, …).
    Policy(&'static str),
}

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Attempt(kind) => kind.as_str(),
            FailureCause::NoRoute => "no_route",
            FailureCause::AttemptCap => "attempt_cap",
            FailureCause::Policy(reason) => reason,
        }
    }
}

/// Values kept raw before a histogram is built: a class or strategy with few requests costs
/// a few bytes per value instead of an HDR counts array (tens of kilobytes).
const RAW_VALUES_MAX: usize = 512;

/// A latency histogram in microseconds.
///
/// It starts as a short list of raw values and becomes an HDR histogram once more than
/// [`RAW_VALUES_MAX`] values are recorded; queries on the raw list build the same histogram
/// transiently, so every figure is identical to recording into a histogram from the start
/// (HDR counts do not depend on recording order).
#[derive(Clone, Debug, Default)]
pub struct Latency {
    store: LatencyStore,
}

#[derive(Clone, Debug)]
enum LatencyStore {
    /// Values in µs (each ≥ 1), in recording order.
    Raw(Vec<u64>),
    Hdr(Box<Histogram<u64>>),
}

impl Default for LatencyStore {
    fn default() -> Self {
        LatencyStore::Raw(Vec::new())
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits: values within 0.1%.
    Histogram::new(3).expect("3 significant digits is a valid HDR precision")
}

fn record_micros(histogram: &mut Histogram<u64>, micros: u64) {
    // Auto-resizing: `record` grows the range as needed (`saturating_record` would clamp
    // at the current top instead).
    if histogram.record(micros).is_err() {
        histogram.saturating_record(micros);
    }
}

fn histogram_of(values: &[u64]) -> Histogram<u64> {
    let mut histogram = new_histogram();
    for &v in values {
        record_micros(&mut histogram, v);
    }
    histogram
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        // Zero cannot be recorded in a log-bucketed histogram; 1 µs is below any resolution used.
        let micros = d.as_micros().max(1);
        match &mut self.store {
            LatencyStore::Raw(values) if values.len() < RAW_VALUES_MAX => values.push(micros),
            LatencyStore::Raw(values) => {
                let mut histogram = histogram_of(values);
                record_micros(&mut histogram, micros);
                self.store = LatencyStore::Hdr(Box::new(histogram));
            }
            LatencyStore::Hdr(histogram) => record_micros(histogram, micros),
        }
    }

    pub fn count(&self) -> u64 {
        match &self.store {
            LatencyStore::Raw(values) => values.len() as u64,
            LatencyStore::Hdr(histogram) => histogram.len(),
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        match &other.store {
            LatencyStore::Raw(values) => {
                for &micros in values {
                    self.record(Duration::from_micros(micros));
                }
            }
            LatencyStore::Hdr(theirs) => {
                let mut mine = match std::mem::take(&mut self.store) {
                    LatencyStore::Raw(values) => histogram_of(&values),
                    LatencyStore::Hdr(histogram) => *histogram,
                };
                // Auto-resizing histograms never fail to add.
                let _ = mine.add(&**theirs);
                self.store = LatencyStore::Hdr(Box::new(mine));
            }
        }
    }

    /// Runs `f` on the histogram of the values (built transiently while they are few); `None`
    /// when no value was recorded.
    fn with_histogram<T>(&self, f: impl FnOnce(&Histogram<u64>) -> T) -> Option<T> {
        match &self.store {
            LatencyStore::Raw(values) if values.is_empty() => None,
            LatencyStore::Raw(values) => Some(f(&histogram_of(values))),
            LatencyStore::Hdr(histogram) if histogram.is_empty() => None,
            LatencyStore::Hdr(histogram) => Some(f(histogram)),
        }
    }

    /// Quantile `q` in milliseconds (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.with_histogram(|h| h.value_at_quantile(q) as f64 / 1000.0).unwrap_or(0.0)
    }

    /// Quantiles `qs` (each in 0..=1) in milliseconds, rounded to 3 decimals (empty when no
    /// value was recorded): the points of a CDF for plotting.
    pub fn quantiles_ms(&self, qs: &[f64]) -> Vec<f64> {
        self.with_histogram(|h| {
            if qs.windows(2).all(|w| w[0] <= w[1]) {
                // One pass over the buckets for all of them (the same values as one
                // `value_at_quantile` each, which rescans the buckets every time: 80% of the
                // time of writing latency.csv for thousands of classes).
                h.value_at_quantiles(qs.iter().copied()).map(|v| round3(v as f64 / 1000.0)).collect()
            } else {
                qs.iter().map(|q| round3(h.value_at_quantile(*q) as f64 / 1000.0)).collect()
            }
        })
        .unwrap_or_default()
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: f64| round3(micros / 1000.0);
        self.with_histogram(|h| LatencySummary {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50) as f64),
            p90: ms(h.value_at_quantile(0.90) as f64),
            p95: ms(h.value_at_quantile(0.95) as f64),
            p99: ms(h.value_at_quantile(0.99) as f64),
            max: ms(h.max() as f64),
            mean: ms(h.mean()),
        })
        .unwrap_or_default()
    }
}

/// Rounds to 3 decimals so JSON output is stable and readable.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The share of requests lost for any reason, rounded like every rate of a summary; `None`
/// for no requests. The one definition, used by `summary.json` and by every reader (through
/// [`crate::metric`], for summaries written before it was a field).
pub fn failed_rate(requests: u64, rate_limited: u64, failed: u64) -> Option<f64> {
    (requests > 0).then(|| round6((rate_limited + failed) as f64 / requests as f64))
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Latency percentiles in milliseconds (HDR values: within 0.1%).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of values recorded.
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Counts and latencies of a set of requests (a strategy or one class of it).
#[derive(Clone, Debug, Default)]
pub struct RequestMetrics {
    pub requests: u64,
    pub succeeded: u64,
    pub rate_limited: u64,
    /// Of `rate_limited`: requests larger than a bucket, which no retry could ever pass.
    pub rate_limited_never_fit: u64,
    pub failed: u64,
    pub batched: u64,
    pub unfinished: u64,
    pub attempts: u64,
    pub attempts_429: u64,
    pub cost_usd: f64,
    pub failed_by_cause: BTreeMap<FailureCause, u64>,
    /// Time to first token, from arrival (queueing, retries and backoff included).
    pub ttft: Latency,
    /// End to end, from arrival to the last token.
    pub e2e: Latency,
    /// Batch submissions: from arrival to the batch result (never mixed into `ttft`/`e2e`).
    pub batch_completion: Latency,
}

impl RequestMetrics {
    fn record_outcome(&mut self, arrival: Instant, outcome: RequestOutcome) {
        match outcome {
            RequestOutcome::Succeeded { first_token_at, done_at } => {
                self.succeeded += 1;
                self.ttft.record(first_token_at.saturating_since(arrival));
                self.e2e.record(done_at.saturating_since(arrival));
            }
            RequestOutcome::RateLimited { never_fit } => {
                self.rate_limited += 1;
                self.rate_limited_never_fit += u64::from(never_fit);
            }
            RequestOutcome::Failed(cause) => {
                self.failed += 1;
                *self.failed_by_cause.entry(cause).or_insert(0) += 1;
            }
            RequestOutcome::Batched { done_at } => {
                self.batched += 1;
                self.batch_completion.record(done_at.saturating_since(arrival));
            }
        }
    }

    /// `requests = succeeded + rate_limited + failed + batched + unfinished`.
    pub fn is_conserved(&self) -> bool {
        self.requests == self.succeeded + self.rate_limited + self.failed + self.batched + self.unfinished
    }

    pub fn summary(&self) -> OutcomeSummary {
        let rate = |n: u64, d: u64| if d == 0 { 0.0 } else { round6(n as f64 / d as f64) };
        OutcomeSummary {
            requests: self.requests,
            succeeded: self.succeeded,
            rate_limited: self.rate_limited,
            rate_limited_never_fit: self.rate_limited_never_fit,
            failed: self.failed,
            batched: self.batched,
            unfinished: self.unfinished,
            attempts: self.attempts,
            attempts_429: self.attempts_429,
            attempt_429_rate: rate(self.attempts_429, self.attempts),
            request_429_rate: rate(self.rate_limited, self.requests),
            failed_rate: failed_rate(self.requests, self.rate_limited, self.failed).unwrap_or(0.0),
            attempts_per_request: rate(self.attempts, self.requests),
            failed_by_cause: self.failed_by_cause.iter().map(|(c, n)| (c.as_str().to_string(), *n)).collect(),
            ttft_ms: self.ttft.summary(),
            e2e_ms: self.e2e.summary(),
            batch_completion_ms: self.batch_completion.summary(),
            cost_usd: round6(self.cost_usd),
            cost_per_1k_requests_usd: if self.requests == 0 {
                0.0
            } else {
                round6(self.cost_usd * 1000.0 / self.requests as f64)
            },
        }
    }
}

/// What happened at one deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentMetrics {
    pub attempts: u64,
    pub attempts_429: u64,
    /// Attempts answered successfully (synchronous).
    pub successes: u64,
    pub batch_accepted: u64,
    pub server_errors: u64,
    pub overloaded: u64,
    pub timeouts: u64,
    /// 429s by the limit that refused (`rpm`, `itpm`, `otpm`, `tpm`, `concurrency`,
    /// `acceleration`): which limit binds.
    pub attempts_429_by_axis: BTreeMap<Axis, u64>,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// One minute of one deployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MinuteCounts {
    pub attempts: u64,
    pub attempts_429: u64,
    pub successes: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

fn minute_mut(series: &mut BTreeMap<u64, MinuteCounts>, at: Instant) -> &mut MinuteCounts {
    series.entry(at.minute_index()).or_default()
}

/// Everything measured for one strategy.
#[derive(Clone, Debug)]
pub struct StrategyMetrics {
    pub name: String,
    pub total: RequestMetrics,
    /// Indexed by `ClassId`.
    pub by_class: Vec<RequestMetrics>,
    /// Indexed by `DeploymentId`.
    pub by_deployment: Vec<DeploymentMetrics>,
    /// Per deployment (outer index), per minute since the start (key). Sparse: memory grows
    /// with the minutes that saw an attempt start or end (at most two per attempt), never with
    /// the time values themselves, so a far-future instant costs one entry.
    pub per_minute: Vec<BTreeMap<u64, MinuteCounts>>,
    /// Fallbacks fired: a failed attempt followed by an attempt at another deployment, by
    /// the failure that caused it.
    pub fallbacks_by_cause: BTreeMap<FailureKind, u64>,
    /// Calls re-issued by each retry layer above the router (`retry_layer`'s `layer` name):
    /// the amplification per layer.
    pub retries_by_layer: BTreeMap<String, u64>,
    /// Closed-loop children that started later than their parent allowed because their row was
    /// read after that instant (the trace lookahead was too short). Zero in a faithful replay.
    pub late_child_starts: u64,
    /// Integral over time of the number of requests in the system (arrived, not finished), in
    /// request·µs; with `last_event_at` it gives the time-average in-system count (Little's L).
    pub in_system_area: u128,
    /// Instant of the last event processed.
    pub last_event_at: Instant,
}

/// The attempt-level facts the engine reports, whatever the outcome.
#[derive(Clone, Copy, Debug)]
pub struct AttemptRecord {
    pub class: ClassId,
    pub deployment: u16,
    pub started_at: Instant,
    pub ended_at: Instant,
    pub failure: Option<FailureKind>,
    /// For rate limits: the limit that refused.
    pub axis: Option<Axis>,
    pub batch: bool,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Request counts that do not balance (`requests != succeeded + rate_limited + failed +
/// batched + unfinished`) for one strategy, or for one of its classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imbalance {
    pub strategy: String,
    /// The class index, or `None` for the strategy's total.
    pub class: Option<usize>,
    pub requests: u64,
    pub succeeded: u64,
    pub rate_limited: u64,
    pub failed: u64,
    pub batched: u64,
    pub unfinished: u64,
}

impl std::fmt::Display for Imbalance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strategy {}", self.strategy)?;
        if let Some(class) = self.class {
            write!(f, " class #{class}")?;
        }
        write!(
            f,
            ": requests {} != succeeded {} + rate_limited {} + failed {} + batched {} + unfinished {}",
            self.requests, self.succeeded, self.rate_limited, self.failed, self.batched, self.unfinished
        )
    }
}

/// The books of a run do not balance (a bug, never bad input): every [`Imbalance`] found,
/// shown joined by `; `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .imbalances.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConservationError {
    pub imbalances: Vec<Imbalance>,
}

impl StrategyMetrics {
    pub fn new(name: &str, classes: usize, deployments: usize) -> Self {
        StrategyMetrics {
            name: name.to_string(),
            total: RequestMetrics::default(),
            by_class: vec![RequestMetrics::default(); classes],
            by_deployment: vec![DeploymentMetrics::default(); deployments],
            per_minute: vec![BTreeMap::new(); deployments],
            fallbacks_by_cause: BTreeMap::new(),
            retries_by_layer: BTreeMap::new(),
            late_child_starts: 0,
            in_system_area: 0,
            last_event_at: Instant::ZERO,
        }
    }

    /// Time-average number of requests in the system over the run (Little's L).
    pub fn mean_in_system(&self) -> f64 {
        let span = self.last_event_at.as_micros();
        if span == 0 {
            0.0
        } else {
            self.in_system_area as f64 / span as f64
        }
    }

    fn class_mut(&mut self, class: ClassId) -> &mut RequestMetrics {
        let index = usize::from(class.0);
        if self.by_class.len() <= index {
            self.by_class.resize(index + 1, RequestMetrics::default());
        }
        &mut self.by_class[index]
    }

    /// A request entered the system (counted once, whatever happens to it).
    pub fn record_arrival(&mut self, class: ClassId) {
        self.total.requests += 1;
        self.class_mut(class).requests += 1;
    }

    /// A request reached its final outcome.
    pub fn record_outcome(&mut self, class: ClassId, arrival: Instant, outcome: RequestOutcome) {
        self.total.record_outcome(arrival, outcome);
        self.class_mut(class).record_outcome(arrival, outcome);
    }

    /// A fallback fired after a failure of `kind`.
    pub fn record_fallback(&mut self, kind: FailureKind) {
        *self.fallbacks_by_cause.entry(kind).or_insert(0) += 1;
    }

    /// A request was still in the system when the simulation stopped.
    pub fn record_unfinished(&mut self, class: ClassId) {
        self.total.unfinished += 1;
        self.class_mut(class).unfinished += 1;
    }

    /// An attempt finished (its outcome known to the client).
    pub fn record_attempt(&mut self, a: &AttemptRecord) {
        let is_429 = a.failure.is_some_and(FailureKind::is_rate_limit);
        for m in [
            &mut self.total,
            self.by_class.get_mut(usize::from(a.class.0)).expect("class registered at arrival"),
        ] {
            m.attempts += 1;
            m.attempts_429 += u64::from(is_429);
            m.cost_usd += a.cost_usd;
        }
        let d = &mut self.by_deployment[usize::from(a.deployment)];
        d.attempts += 1;
        d.attempts_429 += u64::from(is_429);
        let served = a.failure.is_none();
        if served && a.batch {
            d.batch_accepted += 1;
        } else if served {
            d.successes += 1;
        }
        if let (true, Some(axis)) = (is_429, a.axis) {
            *d.attempts_429_by_axis.entry(axis).or_insert(0) += 1;
        }
        match a.failure {
            Some(FailureKind::ServerError) => d.server_errors += 1,
            Some(FailureKind::Overloaded) => d.overloaded += 1,
            Some(FailureKind::Timeout | FailureKind::SlowFirstToken) => d.timeouts += 1,
            _ => {}
        }
        let consumed = !is_429
            && !matches!(
                a.failure,
                Some(FailureKind::BatchQueueFull | FailureKind::BatchUnsupported | FailureKind::BatchExpired)
            );
        let (input, cached) = if consumed { (a.input_tokens, a.cached_input_tokens) } else { (0, 0) };
        d.input_tokens += input;
        d.cached_input_tokens += cached;
        d.output_tokens += a.output_tokens;
        d.cost_usd += a.cost_usd;

        let series = &mut self.per_minute[usize::from(a.deployment)];
        let start_minute = minute_mut(series, a.started_at);
        start_minute.attempts += 1;
        start_minute.attempts_429 += u64::from(is_429);
        start_minute.input_tokens += input;
        let end_minute = minute_mut(series, a.ended_at);
        end_minute.successes += u64::from(served);
        end_minute.output_tokens += a.output_tokens;
    }

    /// Non-empty minutes as (minute, deployment index, counts), by minute then deployment.
    pub fn minute_rows(&self) -> Vec<(u64, usize, &MinuteCounts)> {
        let mut rows: Vec<(u64, usize, &MinuteCounts)> = self
            .per_minute
            .iter()
            .enumerate()
            .flat_map(|(deployment, series)| {
                series
                    .iter()
                    .filter(|(_, c)| **c != MinuteCounts::default())
                    .map(move |(minute, c)| (*minute, deployment, c))
            })
            .collect();
        rows.sort_unstable_by_key(|&(minute, deployment, _)| (minute, deployment));
        rows
    }

    /// Checks conservation for the strategy and every class.
    pub fn check_conservation(&self) -> Result<(), ConservationError> {
        let imbalance = |class: Option<usize>, m: &RequestMetrics| Imbalance {
            strategy: self.name.clone(),
            class,
            requests: m.requests,
            succeeded: m.succeeded,
            rate_limited: m.rate_limited,
            failed: m.failed,
            batched: m.batched,
            unfinished: m.unfinished,
        };
        let mut imbalances = Vec::new();
        if !self.total.is_conserved() {
            imbalances.push(imbalance(None, &self.total));
        }
        for (i, c) in self.by_class.iter().enumerate() {
            if !c.is_conserved() {
                imbalances.push(imbalance(Some(i), c));
            }
        }
        if imbalances.is_empty() {
            Ok(())
        } else {
            Err(ConservationError { imbalances })
        }
    }

    /// The serialisable summary of this strategy.
    pub fn summary(&self, classes: &ClassTable, deployment_names: &[String]) -> StrategySummary {
        let total_successes: u64 = self.by_deployment.iter().map(|d| d.successes + d.batch_accepted).sum();
        let by_class = classes
            .iter()
            .filter_map(|(id, name)| {
                let m = self.by_class.get(usize::from(id.0))?;
                (m.requests > 0).then(|| (name.to_string(), m.summary()))
            })
            .collect();
        let by_deployment = deployment_names
            .iter()
            .zip(&self.by_deployment)
            .map(|(name, d)| {
                let served = d.successes + d.batch_accepted;
                let share =
                    if total_successes == 0 { 0.0 } else { round6(served as f64 / total_successes as f64) };
                (
                    name.clone(),
                    DeploymentSummary {
                        load_share: share,
                        metrics: DeploymentMetrics { cost_usd: round6(d.cost_usd), ..d.clone() },
                    },
                )
            })
            .collect();
        StrategySummary {
            name: self.name.clone(),
            outcome: self.total.summary(),
            late_child_starts: self.late_child_starts,
            fallbacks_by_cause: self
                .fallbacks_by_cause
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            retries_by_layer: self.retries_by_layer.clone(),
            by_class,
            by_deployment,
        }
    }
}

/// Counts, rates, latencies and cost of a set of requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeSummary {
    pub requests: u64,
    pub succeeded: u64,
    /// Finally failed because of rate limits.
    pub rate_limited: u64,
    /// Of `rate_limited`: larger than a bucket (could never pass; a configuration problem).
    pub rate_limited_never_fit: u64,
    /// Finally failed for another reason (see `failed_by_cause`).
    pub failed: u64,
    /// Accepted by a batch API (completion times in `batch_completion_ms`).
    pub batched: u64,
    /// Still in the system when the simulation stopped.
    pub unfinished: u64,
    pub attempts: u64,
    /// Attempts answered 429 (including requests larger than a limit).
    pub attempts_429: u64,
    /// Share of attempts answered 429.
    pub attempt_429_rate: f64,
    /// Share of requests that finally failed because of rate limits.
    pub request_429_rate: f64,
    /// Share of requests lost for any reason (`rate_limited + failed`; [`failed_rate`]).
    /// Absent from summaries written before it existed: readers use the counts.
    #[serde(default)]
    pub failed_rate: f64,
    /// Retry amplification.
    pub attempts_per_request: f64,
    pub failed_by_cause: BTreeMap<String, u64>,
    /// Time to first token from arrival, successful requests.
    pub ttft_ms: LatencySummary,
    /// Arrival to last token, successful requests.
    pub e2e_ms: LatencySummary,
    /// Arrival to batch result, batched requests.
    pub batch_completion_ms: LatencySummary,
    pub cost_usd: f64,
    pub cost_per_1k_requests_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    /// Share of all served attempts (synchronous successes and batch acceptances).
    pub load_share: f64,
    #[serde(flatten)]
    pub metrics: DeploymentMetrics,
}

/// One strategy in `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategySummary {
    pub name: String,
    #[serde(flatten)]
    pub outcome: OutcomeSummary,
    /// Closed-loop children that started late (trace lookahead too short); 0 when faithful.
    pub late_child_starts: u64,
    /// Fallbacks fired (a failed attempt followed by one at another deployment), by cause.
    pub fallbacks_by_cause: BTreeMap<String, u64>,
    /// Calls re-issued by each retry layer (absent when the strategy has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retries_by_layer: BTreeMap<String, u64>,
    pub by_class: BTreeMap<String, OutcomeSummary>,
    pub by_deployment: BTreeMap<String, DeploymentSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_match_a_sorted_reference_within_hdr_precision() {
        let mut latency = Latency::default();
        let values_ms: Vec<u64> = (1..=10_000).collect();
        for v in &values_ms {
            latency.record(Duration::from_millis(*v));
        }
        let s = latency.summary();
        for (got, exact) in
            [(s.p50, 5000.0), (s.p90, 9000.0), (s.p95, 9500.0), (s.p99, 9900.0), (s.max, 10_000.0)]
        {
            assert!((got - exact).abs() / exact < 0.001 + 1e-9, "{got} vs {exact}");
        }
        assert!((s.mean - 5000.5).abs() / 5000.5 < 0.001);
        assert_eq!(s.count, 10_000);
    }

    /// Every figure of a `Latency` equals that of a histogram recorded directly (the old
    /// representation), for sizes on both sides of the raw-value threshold and after merges.
    #[test]
    fn raw_and_histogram_latencies_give_identical_figures() {
        let value = |i: u64| (i.wrapping_mul(2_654_435_761) % 50_000_000) + 1; // 1 µs .. 50 s
        let direct = |values: &[u64]| {
            let mut h = new_histogram();
            for &v in values {
                record_micros(&mut h, v);
            }
            h
        };
        let qs = [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0];
        for n in [1usize, 7, RAW_VALUES_MAX - 1, RAW_VALUES_MAX, RAW_VALUES_MAX + 1, 5_000] {
            let values: Vec<u64> = (0..n as u64).map(value).collect();
            let mut latency = Latency::default();
            for &v in &values {
                latency.record(Duration::from_micros(v));
            }
            let h = direct(&values);
            assert_eq!(latency.count(), n as u64);
            let s = latency.summary();
            assert_eq!(s.p99, round3(h.value_at_quantile(0.99) as f64 / 1000.0), "n={n}");
            assert_eq!(s.max, round3(h.max() as f64 / 1000.0), "n={n}");
            assert_eq!(s.mean, round3(h.mean() / 1000.0), "n={n}");
            let expected: Vec<f64> =
                qs.iter().map(|q| round3(h.value_at_quantile(*q) as f64 / 1000.0)).collect();
            assert_eq!(latency.quantiles_ms(&qs), expected, "n={n}");
            // Merges in every representation pair equal one histogram of all the values.
            for m in [3usize, RAW_VALUES_MAX + 10] {
                let more: Vec<u64> = (0..m as u64).map(|i| value(i + 99_991)).collect();
                let mut other = Latency::default();
                for &v in &more {
                    other.record(Duration::from_micros(v));
                }
                let mut merged = latency.clone();
                merged.merge(&other);
                let all: Vec<u64> = values.iter().chain(&more).copied().collect();
                let h = direct(&all);
                let expected: Vec<f64> =
                    qs.iter().map(|q| round3(h.value_at_quantile(*q) as f64 / 1000.0)).collect();
                assert_eq!(merged.quantiles_ms(&qs), expected, "n={n} m={m}");
                assert_eq!(merged.count(), (n + m) as u64);
            }
        }
        assert_eq!(Latency::default().summary(), LatencySummary::default());
        assert!(Latency::default().quantiles_ms(&qs).is_empty());
    }

    #[test]
    fn per_minute_series_are_sparse_and_rows_come_by_minute_then_deployment() {
        let mut m = StrategyMetrics::new("s", 4, 2);
        m.record_arrival(ClassId::HARD);
        let attempt = |deployment: u16, start_min: u64, end_min: u64| AttemptRecord {
            class: ClassId::HARD,
            deployment,
            started_at: Instant::from_millis(start_min * 60_000),
            ended_at: Instant::from_millis(end_min * 60_000 + 5),
            failure: None,
            axis: None,
            batch: false,
            input_tokens: 10,
            cached_input_tokens: 0,
            output_tokens: 2,
            cost_usd: 0.0,
        };
        // An attempt ending a billion minutes out costs one entry, not a billion.
        let far = 1_000_000_000;
        m.record_attempt(&attempt(1, 3, far));
        m.record_attempt(&attempt(0, 3, 4));
        m.record_attempt(&attempt(1, 0, 0));
        assert_eq!(m.per_minute.iter().map(BTreeMap::len).sum::<usize>(), 5);
        let rows: Vec<(u64, usize, u64, u64)> =
            m.minute_rows().iter().map(|(min, d, c)| (*min, *d, c.attempts, c.successes)).collect();
        assert_eq!(rows, vec![(0, 1, 1, 1), (3, 0, 1, 0), (3, 1, 1, 0), (4, 0, 0, 1), (far, 1, 0, 1)]);
    }

    #[test]
    fn outcomes_are_conserved_and_rates_computed_from_the_right_denominators() {
        let mut m = StrategyMetrics::new("s", 4, 1);
        let t = Instant::ZERO;
        for _ in 0..10 {
            m.record_arrival(ClassId::INTERACTIVE);
        }
        m.record_arrival(ClassId::BULK);
        for _ in 0..6 {
            m.record_outcome(
                ClassId::INTERACTIVE,
                t,
                RequestOutcome::Succeeded {
                    first_token_at: Instant::from_millis(5),
                    done_at: Instant::from_millis(9),
                },
            );
        }
        m.record_outcome(ClassId::INTERACTIVE, t, RequestOutcome::RateLimited { never_fit: false });
        m.record_outcome(
            ClassId::INTERACTIVE,
            t,
            RequestOutcome::Failed(FailureCause::Attempt(FailureKind::Overloaded)),
        );
        m.record_outcome(
            ClassId::INTERACTIVE,
            t,
            RequestOutcome::Batched { done_at: Instant::from_millis(60_000) },
        );
        m.record_unfinished(ClassId::INTERACTIVE);
        let error = m.check_conservation().expect_err("the bulk request has no outcome yet");
        assert_eq!(error.imbalances.len(), 2, "{error}");
        assert!(error.to_string().contains("; strategy "), "{error}");
        assert!(
            error.to_string().ends_with(
                " class #2: requests 1 != succeeded 0 + rate_limited 0 + failed 0 + batched 0 + unfinished 0"
            ),
            "{error}"
        );
        m.record_outcome(ClassId::BULK, t, RequestOutcome::RateLimited { never_fit: false });
        m.check_conservation().unwrap();
        for i in 0..20u64 {
            m.record_attempt(&AttemptRecord {
                class: ClassId::INTERACTIVE,
                deployment: 0,
                started_at: t,
                ended_at: t,
                failure: (i < 5).then_some(FailureKind::RateLimited),
                axis: (i < 5).then_some(Axis::INPUT_TOKENS),
                batch: false,
                input_tokens: 10,
                cached_input_tokens: 0,
                output_tokens: 1,
                cost_usd: 0.5,
            });
        }
        let s = m.total.summary();
        assert_eq!(s.attempt_429_rate, 0.25); // 5 of 20 attempts
        assert_eq!(s.request_429_rate, round6(2.0 / 11.0)); // 2 of 11 requests
        assert_eq!(s.cost_usd, 10.0);
        assert_eq!(s.ttft_ms.count, 6);
        assert_eq!(s.batch_completion_ms.count, 1);
        assert_eq!(m.by_deployment[0].input_tokens, 150, "429s consume no tokens");
        assert_eq!(m.by_deployment[0].attempts_429_by_axis.get(&Axis::INPUT_TOKENS), Some(&5));
    }
}
