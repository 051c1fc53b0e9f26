//! Running a scenario: every strategy of it over its trace, each on an engine of its own.
//!
//! Owns the orchestration both `sim run` and `sim sweep` use: building each strategy's fresh
//! policy, one engine run per strategy ([`run_strategy`]), sharing one read of the trace
//! between strategies running in parallel, and the [`RunResult`] the report writes. It must
//! not know the event loop's insides (that is [`crate::engine`]) nor how results are written
//! (that is [`crate::report`]).

use crate::engine::{simulate, EngineConfig, EngineError, Replay};
use crate::metrics::StrategyMetrics;
use crate::policy::{AttemptReport, Decision, HedgeAttempt, History, Policy};
use crate::rng::SplitMix64;
use crate::scenario::{Scenario, Strategy};
use crate::time::Instant;
use crate::trace::source::TraceSource;
use crate::trace::{shared, Request, TraceError};

/// One strategy of `scenario` over `trace`: a fresh policy (policies keep state), one engine.
pub fn run_strategy<I>(
    scenario: &Scenario,
    strategy: &Strategy,
    config: &EngineConfig,
    trace: I,
    trace_name: &str,
) -> Result<StrategyMetrics, EngineError>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    let mut policy = strategy.policy.build();
    simulate(&strategy.name, config, &scenario.deployments, policy.as_mut(), trace, trace_name)
}

/// [`run_strategy`], also returning every finished attempt as the policy observed it, in the
/// order the attempts ended, each with the provider's rate-limit headers: what an observation
/// of the same run over HTTP records (`sim validate` compares the two). The policy itself sees
/// the headers only if it asks for them, so its decisions are those of [`run_strategy`].
pub fn run_strategy_reporting<I>(
    scenario: &Scenario,
    strategy: &Strategy,
    config: &EngineConfig,
    trace: I,
    trace_name: &str,
) -> Result<(StrategyMetrics, Vec<AttemptReport>), EngineError>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    let mut policy = Reporting { inner: strategy.policy.build(), reports: Vec::new() };
    let metrics = simulate(&strategy.name, config, &scenario.deployments, &mut policy, trace, trace_name)?;
    Ok((metrics, policy.reports))
}

/// A policy that keeps a copy of every report it passes on.
struct Reporting {
    inner: Box<dyn Policy>,
    reports: Vec<AttemptReport>,
}

impl Policy for Reporting {
    fn route(
        &mut self,
        now: Instant,
        request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        self.inner.route(now, request, history, rng)
    }
    fn hedge(
        &mut self,
        now: Instant,
        request: &Request,
        history: &History,
        rng: &mut SplitMix64,
    ) -> Option<HedgeAttempt> {
        self.inner.hedge(now, request, history, rng)
    }
    fn observe(&mut self, now: Instant, report: &AttemptReport) {
        if self.inner.wants_rate_limit_headers() {
            self.inner.observe(now, report);
        } else {
            // As in a plain run, where the engine reads no headers for such a policy.
            self.inner.observe(now, &AttemptReport { remaining: None, ..report.clone() });
        }
        self.reports.push(report.clone());
    }
    fn forget(&mut self, now: Instant, request_id: u64) {
        self.inner.forget(now, request_id)
    }
    fn unpark(&mut self, now: Instant, woken: &mut Vec<u64>) {
        self.inner.unpark(now, woken)
    }
    fn wants_rate_limit_headers(&self) -> bool {
        true
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
    scenario: &Scenario,
    trace_override: Option<&std::path::Path>,
    seed_override: Option<u64>,
) -> Result<RunResult, EngineError> {
    let source = trace_override.map(TraceSource::routesim);
    run_scenario_source(scenario, source.as_ref(), seed_override, &mut |_| {})
}

/// [`run_scenario`] with the trace replaced by any [`TraceSource`]
/// (an imported public trace, a generator); `progress` is told how far the shared read of the
/// trace has got, chunk by chunk (the strategies follow a few chunks behind at most).
pub fn run_scenario_source(
    scenario: &Scenario,
    source_override: Option<&TraceSource>,
    seed_override: Option<u64>,
    progress: &mut dyn FnMut(shared::PassProgress),
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
        let stream = crate::trace::source::open_source_limited(
            source,
            scenario.trace.max_span,
            scenario.max_classes(),
            scenario.strategies.len(),
        )?;
        let (feeder, streams) = shared::split(stream, group.len());
        let mut pass_rows = 0;
        let mut report = |read: shared::PassProgress| {
            pass_rows = read.rows;
            progress(shared::PassProgress {
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
                    scope.spawn(move || run_strategy(scenario, strategy, config, stream, trace_name))
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
    let end = end.unwrap_or_else(|| shared::PassEnd { classes: Default::default(), report: None });
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
