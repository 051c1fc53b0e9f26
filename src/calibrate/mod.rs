//! Calibration and validation: the last two steps of the fidelity loop (`serve-provider` →
//! `observe` → **calibrate** → **validate**, DESIGN.md §8).
//!
//! [`fit_dir`] reads observed runs (each a directory with [`ATTEMPTS_FILE`]), [`fit_inputs`]
//! those or a gateway's logs ([`gateway_logs`]), and fits every deployment seen in them
//! ([`deployment::fit_deployment`]): a [`Calibration`] whose
//! [`Calibration::to_toml`] is `[deployments."…"]` tables in the scenario schema and whose
//! [`Calibration::report`] is the goodness of fit. [`validate_run`] simulates what was observed
//! with a scenario's strategy and such deployments and compares the two.
//!
//! Submodules: [`fit`] (pure statistics), [`bucket`] (bucket capacities from admissions and
//! refusals), [`observed`] (what a record's status and headers mean), [`gateway_logs`] (a
//! gateway's logs as observed attempts), [`deployment`] (one deployment's fit), [`validate_run`] (the simulation of an observation and the comparison).
//! This module owns the errors and the file side. It must not know HTTP or the engine's insides:
//! simulation goes through [`crate::run`].

pub mod bucket;
pub mod deployment;
pub mod fit;
pub mod gateway_logs;
pub mod observed;
pub mod validate_run;

pub use deployment::{DeploymentFit, FitOptions, FitReport};

use crate::attempt_log::{read_attempts_numbered, AttemptLogError, AttemptRecord, ATTEMPTS_FILE};
use crate::dist::DistConfig;
use crate::engine::EngineError;
use crate::provider::{Deployment, DeploymentConfig};
use crate::scenario::{Scenario, ScenarioError};
use crate::trace::TraceError;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why calibration or validation could not be done. Display is one line naming the file (and
/// line and field where there is one).
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("{dir}: not a directory (an observed run's output, holding {ATTEMPTS_FILE})")]
    NotADirectory { dir: String },
    #[error(transparent)]
    Log(#[from] AttemptLogError),
    /// A gateway log's row or file (`file:line: field "…": …`).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A gateway log that gives nothing to fit.
    #[error("{file}: {message}")]
    GatewayLog { file: String, message: String },
    #[error("{file}: no attempts (nothing to fit)")]
    Empty { file: String },
    #[error("{file}:{line}: field \"headers.{}\": {source}", .source.header)]
    Header { file: String, line: u64, source: observed::HeaderNumberError },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The deployments file of `sim validate` (a TOML error, or a table the schema refuses).
    #[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Deployments { file: String, line: Option<usize>, message: String },
    /// The observed run's `summary.json` (strategy name) is unreadable or says nothing usable.
    #[error("{file}: {message}")]
    Summary { file: String, message: String },
    /// An argument that does not fit the input (an unknown strategy).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A fitted deployment the schema refuses: a bug of calibration, not bad input.
    #[error("calibrated deployment \"{name}\" is invalid: {message}")]
    Internal { name: String, message: String },
}

impl CalibrateError {
    /// Whether the error is the user's input (exit 2) rather than a failure of the run (exit 1).
    pub fn is_input_error(&self) -> bool {
        match self {
            CalibrateError::Engine(e) => e.is_input_error(),
            CalibrateError::Internal { .. } => false,
            _ => true,
        }
    }
}

/// One observed run: its attempt log's name and records with their lines.
#[derive(Clone, Debug)]
pub struct ObservedRun {
    pub file: String,
    pub records: Vec<(u64, AttemptRecord)>,
}

/// Reads `DIR/attempts.jsonl`; a missing directory, a missing file, a malformed line (named
/// `file:line: field …`) or an empty log is an error.
pub fn read_run(dir: &Path) -> Result<ObservedRun, CalibrateError> {
    if !dir.is_dir() {
        return Err(CalibrateError::NotADirectory { dir: dir.display().to_string() });
    }
    let path = dir.join(ATTEMPTS_FILE);
    let records = read_attempts_numbered(&path)?;
    let file = path.display().to_string();
    if records.is_empty() {
        return Err(CalibrateError::Empty { file });
    }
    Ok(ObservedRun { file, records })
}

/// Every deployment observed in `dirs`, fitted with the default options and no base.
pub fn fit_dir(dirs: &[PathBuf]) -> Result<Calibration, CalibrateError> {
    fit_dirs(dirs, None, FitOptions::default())
}

/// [`fit_dir`] with a base scenario, whose deployments of the same names supply what
/// observation cannot (prices, provider and model, flags), and options.
pub fn fit_dirs(
    dirs: &[PathBuf],
    base: Option<&Scenario>,
    options: FitOptions,
) -> Result<Calibration, CalibrateError> {
    let runs = dirs.iter().map(|d| read_run(d)).collect::<Result<Vec<_>, _>>()?;
    // The tolerance is wall-clock jitter; a log on a faster provider's clock magnifies it.
    let mut time_scale: f64 = 1.0;
    for dir in dirs {
        time_scale = time_scale.max(crate::attempt_log::read_observation(dir)?.time_scale);
    }
    let options = FitOptions { clock_tolerance_ms: options.clock_tolerance_ms * time_scale };
    fit_runs(&runs, base.map(|s| &s.deployments[..]).unwrap_or(&[]), options)
}

/// Fits the observed runs in `dirs` or the gateway logs in `logs` (not both: a log has no
/// rate-limit headers, and its rows would enter the bucket replay of the observed runs). A log
/// needs `base`, whose deployments its rows are matched to (`map` first, see
/// [`gateway_logs::DeploymentMap`]); each log is a run of its own, and every deployment fitted
/// from one says in its notes what a log cannot give.
pub fn fit_inputs(
    dirs: &[PathBuf],
    logs: &[gateway_logs::LogSpec],
    map: &[String],
    base: Option<&Scenario>,
    options: FitOptions,
) -> Result<Calibration, CalibrateError> {
    if logs.is_empty() {
        if !map.is_empty() {
            return Err(CalibrateError::Usage("--deployment-map applies to --from-log only".into()));
        }
        return fit_dirs(dirs, base, options);
    }
    if !dirs.is_empty() {
        return Err(CalibrateError::Usage(
            "give observed directories or --from-log logs, not both (a log has no rate-limit headers to replay with the observed runs)".into(),
        ));
    }
    let Some(base) = base else {
        return Err(CalibrateError::Usage(
            "--from-log needs --base SCENARIO: the log's rows are matched to its deployments".into(),
        ));
    };
    let map = gateway_logs::DeploymentMap::parse(map, &base.deployments)?;
    let read =
        logs.iter().map(|log| gateway_logs::read_log(log, base, &map)).collect::<Result<Vec<_>, _>>()?;
    let runs: Vec<ObservedRun> = read.iter().map(|l| l.run.clone()).collect();
    let mut calibration = fit_runs(&runs, &base.deployments, options)?;
    for (source, log) in calibration.sources.iter_mut().zip(&read) {
        source.notes = log.report.notes();
    }
    let spend = |name: &str| {
        logs.iter().zip(&read).any(|(spec, log)| {
            spec.format == crate::trace::import::TraceFormat::LitellmSpend
                && log.run.records.iter().any(|(_, r)| r.deployment == name)
        })
    };
    for d in &mut calibration.deployments {
        d.report.notes.push(gateway_logs::LOG_NOTE.to_string());
        if let Some(limits) =
            base.deployments.iter().find(|b| b.name == d.name).and_then(gateway_logs::base_limits)
        {
            d.report.notes.push(format!(
                "gateway log: the base deployment's limits ({limits}) are not carried over; add them back to the table to model another load"
            ));
        }
        if spend(&d.name) {
            d.report.notes.push(gateway_logs::SPEND_LOG_NOTE.to_string());
        }
    }
    Ok(calibration)
}

/// Fits every deployment of `runs` (records already read): the pure core of [`fit_dirs`].
/// A deployment of `base` with the same name supplies what observation cannot.
pub fn fit_runs(
    runs: &[ObservedRun],
    base: &[Deployment],
    options: FitOptions,
) -> Result<Calibration, CalibrateError> {
    // The output reserve of each request, per run (ids are per run).
    let reserves: Vec<HashMap<&str, u64>> = runs
        .iter()
        .map(|run| {
            let mut reserve: HashMap<&str, u64> = HashMap::new();
            for (_, r) in &run.records {
                let entry = reserve.entry(r.request_id.as_str()).or_default();
                *entry = (*entry).max(r.output_tokens);
            }
            reserve
        })
        .collect();
    let mut names: Vec<&str> =
        runs.iter().flat_map(|r| r.records.iter().map(|(_, a)| a.deployment.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    let mut deployments = Vec::with_capacity(names.len());
    for name in names {
        let per_run: Vec<deployment::RunAttempts<'_>> = runs
            .iter()
            .zip(&reserves)
            .map(|(run, reserve_tokens)| deployment::RunAttempts {
                file: &run.file,
                records: run
                    .records
                    .iter()
                    .filter(|(_, r)| r.deployment == name)
                    .map(|(l, r)| (*l, r))
                    .collect(),
                reserve_tokens,
            })
            .collect();
        let base = base.iter().find(|d| d.name == name);
        let fitted = deployment::fit_deployment(name, &per_run, base, options)?;
        // The tables must load as the scenario loader loads them: a failure here is a bug.
        if let Err(e) = Deployment::from_config(name, &fitted.config) {
            return Err(CalibrateError::Internal { name: name.to_string(), message: e.to_string() });
        }
        deployments.push(fitted);
    }
    let sources = runs
        .iter()
        .map(|r| Source { file: r.file.clone(), attempts: r.records.len() as u64, notes: Vec::new() })
        .collect();
    Ok(Calibration { sources, deployments })
}

/// An attempt log calibration read.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Source {
    pub file: String,
    pub attempts: u64,
    /// What reading it left out or could not use (a gateway log's report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Every observed deployment, fitted, sorted by name.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Calibration {
    pub sources: Vec<Source>,
    pub deployments: Vec<DeploymentFit>,
}

#[derive(serde::Serialize)]
struct DeploymentsFile<'a> {
    deployments: BTreeMap<&'a str, &'a DeploymentConfig>,
}

impl Calibration {
    /// The calibrated deployments by name.
    pub fn configs(&self) -> BTreeMap<String, DeploymentConfig> {
        self.deployments.iter().map(|d| (d.name.clone(), d.config.clone())).collect()
    }

    /// `[deployments."…"]` tables in the scenario schema, after a comment block with the
    /// goodness of fit: the same input gives the same bytes.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("# Calibrated by `sim calibrate` from observed attempts. Paste these tables into a\n");
        out.push_str("# scenario, or pass the file to `sim validate --deployments`.\n#\n");
        for line in self.report().lines() {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
        out.push('\n');
        let file = DeploymentsFile {
            deployments: self.deployments.iter().map(|d| (d.name.as_str(), &d.config)).collect(),
        };
        out.push_str(&toml::to_string(&file).unwrap_or_else(|e| format!("# cannot serialise: {e}\n")));
        out
    }

    /// The goodness of fit, one block per deployment: sample sizes, the chosen family and its
    /// KS distance (with the 5% critical value and the other families'), the TTFT slope with
    /// its 95% interval, the limits and the burst with its interval, error rates with Wilson
    /// intervals, and notes.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let sources: Vec<String> =
            self.sources.iter().map(|s| format!("{} ({} attempts)", s.file, s.attempts)).collect();
        let _ = writeln!(out, "sources: {}", sources.join(", "));
        for source in &self.sources {
            for note in &source.notes {
                let _ = writeln!(out, "  note: {}: {note}", source.file);
            }
        }
        for d in &self.deployments {
            out.push('\n');
            write_report(&mut out, d);
        }
        out
    }
}

/// A distribution in one line: `lognormal median 812.3 sigma 0.40123`.
pub fn describe_dist(config: &DistConfig) -> String {
    let number = |x: f64| format!("{}", fit::round_significant(x, fit::SIGNIFICANT_DIGITS));
    let some = |name: &str, x: &Option<f64>| x.map(|v| format!(" {name} {}", number(v))).unwrap_or_default();
    let parameters = match config {
        DistConfig::Constant { value } => format!(" {}", number(*value)),
        DistConfig::Uniform { min, max } => format!(" min {} max {}", number(*min), number(*max)),
        DistConfig::Exponential { mean } => format!(" mean {}", number(*mean)),
        DistConfig::Lognormal { median, sigma, p90 } => {
            format!(" median {}{}{}", number(*median), some("sigma", sigma), some("p90", p90))
        }
        DistConfig::Normal { mean, sd } => format!(" mean {} sd {}", number(*mean), number(*sd)),
        DistConfig::Gamma { shape, scale, mean, cv } => {
            format!(
                "{}{}{}{}",
                some("shape", shape),
                some("scale", scale),
                some("mean", mean),
                some("cv", cv)
            )
        }
        DistConfig::Empirical { values } => format!(" ({} values)", values.len()),
    };
    format!("{}{parameters}", config.name())
}

fn write_dist_fit(out: &mut String, label: &str, fit: &fit::DistFit) {
    let others: Vec<String> = fit
        .candidates
        .iter()
        .filter(|c| c.config != fit.chosen.config)
        .map(|c| format!("{} {:.4}", c.config.name(), c.ks_distance))
        .collect();
    let _ = write!(
        out,
        "  {label:<22}{}  n {}  KS {:.4} (5% critical {:.4})",
        describe_dist(&fit.chosen.config),
        fit.n,
        fit.chosen.ks_distance,
        fit.ks_critical_95()
    );
    if !others.is_empty() {
        let _ = write!(out, "; others: {}", others.join(", "));
    }
    out.push('\n');
}

fn percent(p: &fit::Proportion) -> String {
    format!("{:.3}% [{:.3}%, {:.3}%] ({} of {})", 100.0 * p.rate, 100.0 * p.low, 100.0 * p.high, p.k, p.n)
}

fn seconds(s: f64) -> String {
    format!("{s:.3} s")
}

fn write_report(out: &mut String, d: &DeploymentFit) {
    let r = &d.report;
    let o = &r.outcomes;
    let _ = writeln!(
        out,
        "deployment \"{}\": {} attempts of {} requests: {} ok, {} 429, {} 529, {} 5xx, {} broken streams, {} cancelled, {} other",
        d.name, r.attempts, r.requests, o.success, o.rate_limited, o.overloaded, o.server_error, o.mid_stream, o.cancelled, o.other
    );
    match &r.ttft {
        Some(t) => {
            write_dist_fit(out, "ttft base (ms)", &t.base);
            match &t.regression {
                Some(reg) => {
                    let _ = writeln!(
                        out,
                        "  {:<22}{} ms per 1k uncached input (least squares {:.4} ± {:.4} at 95%, intercept {:.1} ms, n {})",
                        "ttft slope",
                        t.slope_ms_per_1k,
                        reg.slope,
                        fit::Z_95 * reg.slope_se,
                        reg.intercept,
                        reg.n
                    );
                }
                None => {
                    let _ = writeln!(out, "  {:<22}{} (not identifiable)", "ttft slope", t.slope_ms_per_1k);
                }
            }
        }
        None => {
            let _ = writeln!(out, "  {:<22}no first token observed", "ttft");
        }
    }
    match &r.output_speed {
        Some(s) => write_dist_fit(out, "output speed (tok/s)", s),
        None => {
            let _ = writeln!(out, "  {:<22}no completed stream observed", "output speed");
        }
    }
    if let Some(e) = &r.error_response {
        write_dist_fit(out, "error response (ms)", e);
    }
    if let Some((median_ms, n)) = r.rate_limit_response_ms {
        let _ = writeln!(out, "  {:<22}median {median_ms:.1} ms, n {n}", "429 response");
    }
    if let Some(g) = r.retry_after_granularity {
        let _ = writeln!(out, "  {:<22}{g}", "retry-after unit");
    }
    let _ = writeln!(out, "  {:<22}{}", "529 rate", percent(&r.overloaded));
    let _ = writeln!(out, "  {:<22}{}", "5xx rate", percent(&r.server_error));
    let _ = writeln!(out, "  {:<22}{}", "broken streams", percent(&r.mid_stream));
    if let Some(p) = &r.rate_limited {
        let _ = writeln!(out, "  {:<22}{} (no limit headers: rate_limited_rate)", "429 rate", percent(p));
    }
    for axis in &r.axes {
        let (low, high) = axis.burst_s();
        let high = high.map_or_else(|| "unbounded".to_string(), seconds);
        let _ = writeln!(
            out,
            "  {:<22}{} per min ({}, {} headers); bucket {:.1}..{} {} = {}..{} of refill; {} admissions, {} 429s attributed",
            format!("limit {}", axis.axis),
            axis.limit_per_min,
            axis.header,
            axis.values_seen.iter().map(|(_, n)| n).sum::<u64>(),
            axis.capacity.low_tokens,
            axis.capacity.high_tokens.map_or_else(|| "∞".to_string(), |h| format!("{h:.1}")),
            if axis.axis == crate::limiter::Meter::Requests { "requests" } else { "tokens" },
            seconds(low),
            high,
            axis.capacity.takes,
            axis.refusals_attributed,
        );
    }
    match &r.burst {
        Some(b) => {
            let high = b.high_s.map_or_else(|| "unbounded".to_string(), seconds);
            let _ = writeln!(
                out,
                "  {:<22}{} (interval {} .. {}{})",
                "burst",
                seconds(b.estimate_s),
                seconds(b.low_s),
                high,
                if b.consistent { "" } else { "; INCONSISTENT" }
            );
        }
        None => {
            let _ = writeln!(out, "  {:<22}no limit headers", "limits");
        }
    }
    for note in &r.notes {
        let _ = writeln!(out, "  note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distribution_is_described_by_its_family_and_parameters() {
        let cases = [
            (DistConfig::Constant { value: 5.0 }, "constant 5"),
            (DistConfig::Uniform { min: 1.0, max: 3.0 }, "uniform min 1 max 3"),
            (DistConfig::Exponential { mean: 100.0 }, "exponential mean 100"),
            (
                DistConfig::Lognormal { median: 812.3, sigma: Some(0.4), p90: None },
                "lognormal median 812.3 sigma 0.4",
            ),
            (DistConfig::Normal { mean: 10.0, sd: 2.0 }, "normal mean 10 sd 2"),
            (
                DistConfig::Gamma { shape: None, scale: None, mean: Some(100.0), cv: Some(1.5) },
                "gamma mean 100 cv 1.5",
            ),
            (DistConfig::Empirical { values: vec![1.0, 2.0, 3.0] }, "empirical (3 values)"),
        ];
        for (config, text) in cases {
            assert_eq!(describe_dist(&config), text);
        }
    }
}
