//! Validation: simulate exactly what was observed and compare.
//!
//! The timeline is the one actually sent: each observed request arrives at its first attempt's
//! `start_ms` with the token counts its records report (class, `max_tokens`, session and
//! deadline from the scenario's trace where it holds the request's id), and is replayed open
//! loop under a scenario's strategy against its deployments, through [`crate::run`]. The
//! simulated attempts are written as an observation would record them ([`observation_of`]),
//! so both sides' figures come from one function over the one record schema ([`figures_of`]):
//! attempt and request 429 rates, attempts per request, TTFT p50/p95 and e2e p95 (quantiles
//! from [`crate::metrics::Latency`]), cost at the deployments' prices, in total and per
//! deployment.
//!
//! It must not know HTTP or the engine's insides.

use super::observed::{limit_headers, status_of, Outcome, RETRY_AFTER};
use super::{read_run, CalibrateError, ObservedRun};
use crate::attempt_log::AttemptRecord;
use crate::engine::Replay;
use crate::metric::{self, Unit};
use crate::metrics::{Latency, StrategyMetrics};
use crate::policy::AttemptReport;
use crate::provider::{Deployment, DeploymentConfig, Prices, Usage};
use crate::ratelimit_headers::reported_axis;
use crate::rng::hash_str;
use crate::scenario::{Scenario, ScenarioError};
use crate::time::{Duration, Instant};
use crate::trace::{ClassId, Request, TraceError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

/// One request as the observation shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRequest {
    /// The trace row's id.
    pub id: String,
    /// The first attempt's start, ms since the run started.
    pub arrival_ms: f64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// The line of the request's first record (for errors).
    pub line: u64,
}

/// The requests of an observed run, in order of arrival (ties: first seen first): tokens from
/// a successful attempt if there is one (its usage is the answer's), else the first attempt.
pub fn requests_of(records: &[(u64, AttemptRecord)]) -> Vec<ObservedRequest> {
    let mut by_id: BTreeMap<&str, (usize, ObservedRequest, bool)> = BTreeMap::new();
    for (order, (line, r)) in records.iter().enumerate() {
        let success = Outcome::of(r) == Outcome::Success;
        let fresh = || ObservedRequest {
            id: r.request_id.clone(),
            arrival_ms: r.start_ms,
            input_tokens: r.input_tokens,
            cached_input_tokens: r.cached_input_tokens,
            output_tokens: r.output_tokens,
            line: *line,
        };
        let entry = by_id.entry(&r.request_id).or_insert_with(|| (order, fresh(), success));
        entry.1.arrival_ms = entry.1.arrival_ms.min(r.start_ms);
        if success && !entry.2 {
            let arrival_ms = entry.1.arrival_ms;
            entry.1 = ObservedRequest { arrival_ms, line: entry.1.line, ..fresh() };
            entry.2 = true;
        }
    }
    let mut requests: Vec<(usize, ObservedRequest)> = by_id.into_values().map(|(o, r, _)| (o, r)).collect();
    requests.sort_by(|a, b| a.1.arrival_ms.total_cmp(&b.1.arrival_ms).then(a.0.cmp(&b.0)));
    requests.into_iter().map(|(_, r)| r).collect()
}

/// What the scenario's trace says of a request beyond its tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TraceFacts {
    class: ClassId,
    max_tokens: u64,
    cache_write_tokens: u64,
    session: Option<u64>,
    deadline: Option<Duration>,
}

/// The class, `max_tokens`, cache writes, session and deadline of every observed request the
/// scenario's trace holds (joined by id: policies route on them); a note instead when the
/// trace cannot be read.
fn trace_facts(scenario: &Scenario, ids: &BTreeSet<u64>) -> (HashMap<u64, TraceFacts>, Option<String>) {
    let mut facts = HashMap::new();
    let stream =
        match crate::trace::source::open_source_within(&scenario.trace.source, scenario.trace.max_span) {
            Ok(stream) => stream,
            Err(e) => return (facts, Some(format!("the scenario's trace was not read ({e})"))),
        };
    for row in stream {
        match row {
            Ok(r) if ids.contains(&r.id) => {
                facts.insert(
                    r.id,
                    TraceFacts {
                        class: r.class,
                        max_tokens: r.max_tokens,
                        cache_write_tokens: r.cache_write_tokens,
                        session: r.session,
                        deadline: r.deadline,
                    },
                );
                if facts.len() == ids.len() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return (facts, Some(format!("the scenario's trace was read only in part ({e})"))),
        }
    }
    (facts, None)
}

/// A simulated run written as an observation.
pub struct SimulatedRun {
    pub metrics: StrategyMetrics,
    pub records: Vec<AttemptRecord>,
    /// (trace id, request) as simulated, in order of arrival.
    pub requests: Vec<(String, Request)>,
    pub notes: Vec<String>,
}

/// The trace requests of an observation (ids hashed as the trace reader hashes them, so the
/// same request draws the same numbers as in a run of the trace).
fn to_requests(observed: &[ObservedRequest], facts: &HashMap<u64, TraceFacts>) -> Vec<(String, Request)> {
    observed
        .iter()
        .map(|o| {
            let id = hash_str(&o.id);
            let fact = facts.get(&id);
            let cache_write_tokens =
                fact.map_or(0, |f| f.cache_write_tokens.min(o.input_tokens - o.cached_input_tokens));
            let request = Request {
                id,
                arrival: Instant::ZERO + Duration::from_millis_f64(o.arrival_ms),
                class: fact.map_or(ClassId::INTERACTIVE, |f| f.class),
                input_tokens: o.input_tokens,
                cached_input_tokens: o.cached_input_tokens,
                cache_write_tokens,
                output_tokens: o.output_tokens,
                max_tokens: fact.map_or(o.output_tokens, |f| f.max_tokens).max(o.output_tokens),
                session: fact.and_then(|f| f.session),
                // The observed timeline already holds every parent's wait: open loop.
                parent: None,
                think: Duration::ZERO,
                deadline: fact.and_then(|f| f.deadline),
                line: o.line,
            };
            (o.id.clone(), request)
        })
        .collect()
}

/// Simulates `requests` (an observed timeline) under `strategy` of `scenario`, open loop, with
/// the scenario's seed (or `seed`), and writes the attempts as an observation would.
pub fn simulate_observation(
    scenario: &Scenario,
    strategy: &str,
    requests: &[(String, Request)],
    seed: Option<u64>,
    trace_name: &str,
) -> Result<SimulatedRun, CalibrateError> {
    let Some(strategy) = scenario.strategies.iter().find(|s| s.name == strategy) else {
        let names: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
        return Err(CalibrateError::Usage(format!(
            "strategy \"{strategy}\" is not in {}{} (it has: {})",
            scenario.file.display(),
            crate::suggest::suggestion(strategy, &names),
            names.join(", ")
        )));
    };
    let mut config = scenario.engine_config();
    config.replay = Replay::Open;
    config.horizon = None;
    if let Some(seed) = seed {
        config.seed = seed;
    }
    let trace = requests.iter().map(|(_, r)| Ok::<_, TraceError>(r.clone()));
    let (metrics, reports) =
        crate::run::run_strategy_reporting(scenario, strategy, &config, trace, trace_name)?;
    let records = observation_of(&reports, requests, &scenario.deployments);
    Ok(SimulatedRun { metrics, records, requests: requests.to_vec(), notes: Vec::new() })
}

/// Simulated attempts as `sim observe` records real ones: the status and error type of each
/// outcome ([`status_of`]), ms times, each deployment's limits and the remaining capacity at
/// the attempt's end as `anthropic-ratelimit-*` headers, and the request's token counts where
/// an answer carried no usage. Batch submissions, which HTTP observation never shows, are left
/// out.
pub fn observation_of(
    reports: &[AttemptReport],
    requests: &[(String, Request)],
    deployments: &[Deployment],
) -> Vec<AttemptRecord> {
    let by_id: HashMap<u64, (&str, &Request)> =
        requests.iter().map(|(s, r)| (r.id, (s.as_str(), r))).collect();
    let ms = |t: Instant| t.as_micros() as f64 / 1000.0;
    reports
        .iter()
        .filter_map(|report| {
            let (status, error_type) = status_of(report.outcome)?;
            let (id, request) = by_id.get(&report.request_id)?;
            let deployment = deployments.get(report.deployment.index())?;
            let mut headers = BTreeMap::new();
            for header in limit_headers().iter().filter(|h| h.limit.starts_with("anthropic-")) {
                let reported = report.remaining.as_deref().and_then(|r| reported_axis(r, header.axis));
                let limit = reported.map(|a| a.limit).or_else(|| deployment.limits.per_minute(header.axis));
                if let Some(limit) = limit {
                    headers.insert(header.limit.clone(), limit.to_string());
                    if let Some(a) = reported {
                        headers.insert(header.remaining.clone(), a.remaining.to_string());
                    }
                }
            }
            let retry_after_s = report.retry_after.map(Duration::as_secs_f64);
            if let Some(s) = retry_after_s {
                headers.insert(RETRY_AFTER.to_string(), format!("{s}"));
            }
            let output_tokens = if report.first_token_at.is_some() || report.output_tokens > 0 {
                report.output_tokens
            } else {
                request.output_tokens
            };
            Some(AttemptRecord {
                request_id: id.to_string(),
                deployment: deployment.name.clone(),
                attempt: report.attempt,
                start_ms: ms(report.started_at),
                first_token_ms: report.first_token_at.map(ms),
                end_ms: ms(report.ended_at),
                status,
                error_type: error_type.map(str::to_string),
                retry_after_s,
                headers,
                input_tokens: request.input_tokens,
                cached_input_tokens: request.cached_input_tokens,
                output_tokens,
            })
        })
        .collect()
}

/// The figures compared, of all requests or of one deployment's attempts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub attempts: u64,
    pub requests: u64,
    /// Share of attempts answered 429.
    pub attempt_429_rate: f64,
    /// Share of requests that finally failed on a 429 (all requests only).
    pub request_429_rate: Option<f64>,
    /// Attempts per request (per deployment: per request that tried it).
    pub attempts_per_request: f64,
    /// All requests: from arrival to the winning attempt's first token / last byte. Per
    /// deployment: each successful attempt's own.
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub e2e_p95_ms: Option<f64>,
    /// Tokens of every attempt that streamed, at the deployment's prices (cache writes are not
    /// observed, so not billed here on either side).
    pub cost_usd: f64,
}

/// One request in an attempt log: its first start, its last end with that attempt's outcome,
/// and the winning success's (first token, end).
struct RequestSeen(f64, (f64, Outcome), Option<(f64, f64)>);

/// A figure read off [`Figures`].
type Getter = fn(&Figures) -> Option<f64>;

/// The figures of an attempt log in total and per deployment, arrivals taken from `arrivals_ms`
/// (by request id; the first attempt's start if absent) and prices by deployment name
/// (unpriced deployments cost nothing).
pub fn figures_of(
    records: &[AttemptRecord],
    arrivals_ms: &HashMap<&str, f64>,
    prices: &HashMap<&str, &Prices>,
) -> (Figures, BTreeMap<String, Figures>) {
    #[derive(Default)]
    struct Acc {
        attempts: u64,
        refused: u64,
        requests: BTreeSet<String>,
        ttft: Latency,
        e2e: Latency,
        cost_usd: f64,
    }
    let mut total = Acc::default();
    let mut by_deployment: BTreeMap<String, Acc> = BTreeMap::new();
    let mut requests: BTreeMap<&str, RequestSeen> = BTreeMap::new();
    let duration = |ms: f64| Duration::from_millis_f64(ms.max(0.0));
    for r in records {
        let outcome = Outcome::of(r);
        let d = by_deployment.entry(r.deployment.clone()).or_default();
        for acc in [&mut total, d] {
            acc.attempts += 1;
            acc.refused += u64::from(outcome == Outcome::RateLimited);
            acc.requests.insert(r.request_id.clone());
        }
        let d = by_deployment.get_mut(&r.deployment).expect("inserted above");
        if r.first_token_ms.is_some() {
            let price = prices.get(r.deployment.as_str());
            let usage = Usage {
                plain_input_tokens: r.input_tokens - r.cached_input_tokens,
                cached_input_tokens: r.cached_input_tokens,
                cache_write_tokens: 0,
                output_tokens: r.output_tokens,
            };
            let cost = price.map_or(0.0, |p| p.cost_usd(&usage, false));
            d.cost_usd += cost;
            total.cost_usd += cost;
        }
        if let (Outcome::Success, Some(first)) = (outcome, r.first_token_ms) {
            d.ttft.record(duration(first - r.start_ms));
            d.e2e.record(duration(r.end_ms - r.start_ms));
        }
        let entry =
            requests.entry(&r.request_id).or_insert(RequestSeen(r.start_ms, (r.end_ms, outcome), None));
        entry.0 = entry.0.min(r.start_ms);
        if r.end_ms >= entry.1 .0 {
            entry.1 = (r.end_ms, outcome);
        }
        if let (Outcome::Success, Some(first)) = (outcome, r.first_token_ms) {
            // The winner is the success that ended first (a hedge's loser is cancelled).
            if entry.2.is_none_or(|(_, end)| r.end_ms < end) {
                entry.2 = Some((first, r.end_ms));
            }
        }
    }
    let mut rate_limited = 0;
    for (id, RequestSeen(first_start, (_, last_outcome), success)) in &requests {
        let arrival = arrivals_ms.get(id).copied().unwrap_or(*first_start);
        match success {
            Some((first, end)) => {
                total.ttft.record(duration(first - arrival));
                total.e2e.record(duration(end - arrival));
            }
            None => rate_limited += u64::from(*last_outcome == Outcome::RateLimited),
        }
    }
    let finish = |acc: &Acc, requests: u64| {
        let rate = |k: u64, n: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let quantile = |l: &Latency, q: f64| (l.count() > 0).then(|| l.quantile_ms(q));
        Figures {
            attempts: acc.attempts,
            requests,
            attempt_429_rate: rate(acc.refused, acc.attempts),
            request_429_rate: None,
            attempts_per_request: rate(acc.attempts, requests),
            ttft_p50_ms: quantile(&acc.ttft, 0.5),
            ttft_p95_ms: quantile(&acc.ttft, 0.95),
            e2e_p95_ms: quantile(&acc.e2e, 0.95),
            cost_usd: acc.cost_usd,
        }
    };
    let n = requests.len() as u64;
    let mut all = finish(&total, n);
    all.request_429_rate = Some(if n == 0 { 0.0 } else { rate_limited as f64 / n as f64 });
    let per = by_deployment
        .iter()
        .map(|(name, acc)| (name.clone(), finish(acc, acc.requests.len() as u64)))
        .collect();
    (all, per)
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The catalogue's figure: its name labels the row, its unit formats the values.
    pub metric: metric::Figure,
    pub observed: Option<f64>,
    pub simulated: Option<f64>,
    /// |simulated − observed| / |observed| in percent: 0 when both are 0, infinite when only
    /// the observed is 0; `None` when either side has no value (nothing succeeded).
    pub error_pct: Option<f64>,
}

/// The absolute percentage error of `simulated` against `observed`.
pub fn error_pct(observed: f64, simulated: f64) -> f64 {
    if observed == simulated {
        0.0
    } else if observed == 0.0 {
        f64::INFINITY
    } else {
        100.0 * (simulated - observed).abs() / observed.abs()
    }
}

fn compare(observed: &Figures, simulated: &Figures) -> Vec<Comparison> {
    use metric::{Figure, Latency, Stat};
    let rows: [(Figure, Getter); 7] = [
        (Figure::Attempt429Rate, |f| Some(f.attempt_429_rate)),
        (Figure::Request429Rate, |f| f.request_429_rate),
        (Figure::AttemptsPerRequest, |f| Some(f.attempts_per_request)),
        (Figure::Latency(Latency::Ttft, Stat::P50), |f| f.ttft_p50_ms),
        (Figure::Latency(Latency::Ttft, Stat::P95), |f| f.ttft_p95_ms),
        (Figure::Latency(Latency::E2e, Stat::P95), |f| f.e2e_p95_ms),
        (Figure::CostUsd, |f| Some(f.cost_usd)),
    ];
    rows.iter()
        .filter(|(_, get)| get(observed).is_some() || get(simulated).is_some())
        .map(|(metric, get)| {
            let (o, s) = (get(observed), get(simulated));
            let error_pct = match (o, s) {
                (Some(o), Some(s)) => Some(error_pct(o, s)),
                _ => None,
            };
            Comparison { metric: *metric, observed: o, simulated: s, error_pct }
        })
        .collect()
}

/// Sim vs observed, in total (`subject` "all requests") and per deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    pub strategy: String,
    pub requests: u64,
    /// (subject, attempts observed, attempts simulated, figures).
    pub rows: Vec<(String, u64, u64, Vec<Comparison>)>,
    pub notes: Vec<String>,
}

/// The subject of the total row.
pub const ALL_REQUESTS: &str = "all requests";

impl Validation {
    /// The largest error of any figure (`None` if nothing could be compared).
    pub fn max_error_pct(&self) -> Option<f64> {
        self.rows.iter().flat_map(|(_, _, _, c)| c.iter().filter_map(|c| c.error_pct)).reduce(f64::max)
    }

    /// The figures whose error exceeds `max_pct`, one line each.
    pub fn exceeding(&self, max_pct: f64) -> Vec<String> {
        self.rows
            .iter()
            .flat_map(|(subject, _, _, comparisons)| {
                comparisons.iter().filter(move |c| c.error_pct.is_some_and(|e| e > max_pct)).map(move |c| {
                    format!(
                        "{subject} {}: observed {}, simulated {} ({} error, allowed {max_pct}%)",
                        c.metric.name(),
                        value(c.metric, c.observed),
                        value(c.metric, c.simulated),
                        error_text(c.error_pct)
                    )
                })
            })
            .collect()
    }

    /// The table: one block per subject, one line per figure: observed, simulated, error.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "strategy {} · {} requests observed", self.strategy, self.requests);
        let _ =
            writeln!(out, "{:<28}{:>14}{:>14}{:>10}", "subject / figure", "observed", "simulated", "error");
        for (subject, observed, simulated, comparisons) in &self.rows {
            let _ = writeln!(out, "{subject} (attempts: {observed} observed, {simulated} simulated)");
            for c in comparisons {
                let _ = writeln!(
                    out,
                    "  {:<26}{:>14}{:>14}{:>10}",
                    c.metric.name(),
                    value(c.metric, c.observed),
                    value(c.metric, c.simulated),
                    error_text(c.error_pct)
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn value(metric: metric::Figure, v: Option<f64>) -> String {
    match (v, metric.unit()) {
        (None, _) => "-".into(),
        (Some(v), Unit::Share) => format!("{:.3}%", 100.0 * v),
        (Some(v), Unit::Milliseconds) => format!("{v:.0}"),
        (Some(v), Unit::Usd) => format!("{v:.4}"),
        (Some(v), Unit::Count) => format!("{v:.3}"),
    }
}

fn error_text(e: Option<f64>) -> String {
    match e {
        None => "-".into(),
        Some(e) if e.is_infinite() => "∞".into(),
        Some(e) => format!("{e:.1}%"),
    }
}

/// Compares an observation with its simulation: the total row and one per deployment seen on
/// either side, sorted by name.
pub fn validate(
    strategy: &str,
    observed: &[AttemptRecord],
    simulated: &SimulatedRun,
    deployments: &[Deployment],
) -> Validation {
    let prices: HashMap<&str, &Prices> = deployments.iter().map(|d| (d.name.as_str(), &d.prices)).collect();
    let arrivals: HashMap<&str, f64> = simulated
        .requests
        .iter()
        .map(|(id, r)| (id.as_str(), r.arrival.as_micros() as f64 / 1000.0))
        .collect();
    let (obs_all, obs_per) = figures_of(observed, &arrivals, &prices);
    let (sim_all, sim_per) = figures_of(&simulated.records, &arrivals, &prices);
    let mut rows =
        vec![(ALL_REQUESTS.to_string(), obs_all.attempts, sim_all.attempts, compare(&obs_all, &sim_all))];
    let names: BTreeSet<&String> = obs_per.keys().chain(sim_per.keys()).collect();
    let mut notes = simulated.notes.clone();
    for name in names {
        let empty = Figures::default();
        let (o, s) = (obs_per.get(name).unwrap_or(&empty), sim_per.get(name).unwrap_or(&empty));
        rows.push((name.clone(), o.attempts, s.attempts, compare(o, s)));
        if !prices.contains_key(name.as_str()) {
            notes.push(format!("deployment \"{name}\" is not in the scenario: its cost is 0 on both sides"));
        }
    }
    Validation { strategy: strategy.to_string(), requests: obs_all.requests, rows, notes }
}

/// The deployments file of `sim validate`: `[deployments."…"]` tables, each checked against
/// the schema on its own so that an error names this file, its line and the field.
pub fn read_deployments(path: &Path) -> Result<toml::Table, CalibrateError> {
    let file = path.display().to_string();
    let fail = |line: Option<usize>, message: String| CalibrateError::Deployments {
        file: file.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(None, format!("cannot read: {e}")))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, message) = crate::toml_lines::syntax_error(&text, &e);
        fail(line, message)
    })?;
    for key in table.keys() {
        if key != "deployments" {
            return Err(fail(
                crate::toml_lines::line_of_path(&text, key),
                format!("{key}: unexpected key (the file holds [deployments.\"…\"] tables only)"),
            ));
        }
    }
    let Some(toml::Value::Table(deployments)) = table.remove("deployments") else {
        return Err(fail(None, "no [deployments.\"…\"] table".into()));
    };
    for (name, value) in &deployments {
        let path = format!("deployments.{name:?}");
        let config: DeploymentConfig = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().message().replace('\n', " ").trim().to_string();
            let key = if field.is_empty() || field == "." { path.clone() } else { format!("{path}.{field}") };
            fail(crate::toml_lines::line_of_path(&text, &key), format!("{key}: {message}"))
        })?;
        Deployment::from_config(name, &config).map_err(|e| {
            let key = format!("{path}.{}", e.field);
            fail(crate::toml_lines::line_of_path(&text, &key), format!("{key}: {}", e.message))
        })?;
    }
    Ok(deployments)
}

/// `scenario` with its deployments of the same names replaced by `deployments` (others added),
/// loaded and validated by the scenario loader.
pub fn scenario_with(scenario: &Path, deployments: toml::Table) -> Result<Scenario, CalibrateError> {
    let file = scenario.display().to_string();
    let text = std::fs::read_to_string(scenario).map_err(|e| ScenarioError {
        file: file.clone(),
        line: None,
        message: format!("cannot read scenario: {e}"),
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, message) = crate::toml_lines::syntax_error(&text, &e);
        ScenarioError { file: file.clone(), line, message }
    })?;
    let entry = table.entry("deployments").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(existing) = entry.as_table_mut() else {
        return Err(
            ScenarioError { file, line: None, message: "deployments: expected a table".into() }.into()
        );
    };
    for (name, value) in deployments {
        existing.insert(name, value);
    }
    let base_dir = scenario.parent().unwrap_or(Path::new("."));
    Ok(Scenario::from_value(table, scenario, base_dir)?)
}

/// The strategy an observed run used, from its `summary.json` (as `sim run --out` and
/// `sim observe` write it): its only strategy. Only the names are read, so a summary with
/// other or fewer figures still names its strategy.
pub fn observed_strategy(dir: &Path) -> Result<String, CalibrateError> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Strategies {
        strategies: Vec<Named>,
    }
    let path = dir.join("summary.json");
    let file = path.display().to_string();
    let fail = |message: String| CalibrateError::Summary { file: file.clone(), message };
    let text =
        std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read: {e} (give --strategy)")))?;
    let summary: Strategies = serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        CalibrateError::Summary { file: format!("{file}:{}", e.line()), message }
    })?;
    match &summary.strategies[..] {
        [one] => Ok(one.name.clone()),
        [] => Err(fail("no strategy (give --strategy)".into())),
        many => Err(fail(format!(
            "{} strategies ({}): give --strategy",
            many.len(),
            many.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// What `sim validate` does: read the observation in `dir`, load `scenario` with the
/// deployments of `deployments` in place of its own of the same names, simulate the observed
/// timeline under `strategy` (or the one `dir/summary.json` names) and compare.
pub fn validate_dir(
    dir: &Path,
    scenario: &Path,
    deployments: &Path,
    strategy: Option<&str>,
    seed: Option<u64>,
) -> Result<(Validation, SimulatedRun), CalibrateError> {
    let run: ObservedRun = read_run(dir)?;
    let scenario = scenario_with(scenario, read_deployments(deployments)?)?;
    let strategy = match strategy {
        Some(s) => s.to_string(),
        None => observed_strategy(dir)?,
    };
    let observed = requests_of(&run.records);
    let ids: BTreeSet<u64> = observed.iter().map(|o| hash_str(&o.id)).collect();
    let (facts, note) = trace_facts(&scenario, &ids);
    let requests = to_requests(&observed, &facts);
    let mut simulated = simulate_observation(&scenario, &strategy, &requests, seed, &run.file)?;
    simulated.notes.extend(note);
    if facts.len() < ids.len() {
        simulated.notes.push(format!(
            "{} of {} requests are not in the scenario's trace: class interactive, max_tokens = output",
            ids.len() - facts.len(),
            ids.len()
        ));
    }
    let records: Vec<AttemptRecord> = run.records.into_iter().map(|(_, r)| r).collect();
    let validation = validate(&strategy, &records, &simulated, &scenario.deployments);
    Ok((validation, simulated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pct_is_relative_and_honest_about_zero() {
        assert_eq!(error_pct(100.0, 110.0), 10.0);
        assert_eq!(error_pct(0.0, 0.0), 0.0);
        assert_eq!(error_pct(0.0, 0.01), f64::INFINITY);
        assert_eq!(error_pct(0.5, 0.25), 50.0);
    }
}
