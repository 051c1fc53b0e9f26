//! Parameter sweeps: a grid of scenario overrides × replications, run in parallel with rayon,
//! resumable, shardable across a cluster's array jobs, merged into one `results.csv`.
//!
//! The trace is read once and shared read-only by every run; each (point, replication) draws
//! from a seed derived from the sweep seed and the point's coordinates ([`Plan::seed_for`]).
//! Every finished point is written to its own file at once, so an interrupted sweep resumes
//! where it stopped, and `results.csv` is assembled from those files in point order: the same
//! bytes whatever the thread count, completion order, interruption or sharding.
//!
//! Submodules: [`plan`] (the sweep file, axes, overrides), [`stats`] (confidence intervals,
//! Pareto), [`results`] (files on disk, the CSV, the objective search); progress is
//! [`crate::progress`]'s. This
//! module must not know about plotting or terminals beyond the progress mode it is given.

pub mod plan;
pub mod results;
pub mod stats;

use crate::engine::EngineError;
use crate::metric::Metric;
use crate::progress::{Progress, ProgressMode, Unit};
use crate::scenario::ScenarioError;
use crate::trace::{ClassTable, Request, TraceError};
use plan::{scale_request, Plan, Point};
use rayon::prelude::*;
use results::{Manifest, PointRecord, Row, RunRecord};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use plan::Combine;

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Bad sweep file, override, argument or results directory (exit code 2).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl SweepError {
    pub fn io(path: &Path, source: std::io::Error) -> SweepError {
        SweepError::Io { path: path.display().to_string(), source }
    }

    /// Whether the error is the user's input (exit 2) rather than a failure of the run (exit 1).
    pub fn is_input_error(&self) -> bool {
        match self {
            SweepError::Input(_) | SweepError::Scenario(_) | SweepError::Trace(_) => true,
            SweepError::Engine(e) => e.is_input_error(),
            SweepError::Io { .. } => false,
        }
    }
}

/// A deterministic slice of the points: those with `index % count == index_of_shard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::Input(format!("--shard {text:?}: expected I/N with 0 <= I < N, e.g. 0/4"));
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The shard a batch scheduler assigned through the environment: Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), or a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, of `count`, which Kubernetes does not
    /// export). `get` reads a variable (the process environment in the CLI).
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> Result<Option<Shard>, SweepError> {
        let number = |name: &str| -> Result<Option<usize>, SweepError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        SweepError::Input(format!("{name}={v:?}: expected a non-negative integer"))
                    })
                })
                .transpose()
        };
        let check = |index: usize, count: usize, source: &str| {
            if count == 0 || index >= count {
                Err(SweepError::Input(format!("{source}: shard {index} of {count} is out of range")))
            } else {
                Ok(Some(Shard { index, count }))
            }
        };
        if let (Some(id), Some(total)) = (number("SLURM_ARRAY_TASK_ID")?, number("SLURM_ARRAY_TASK_COUNT")?) {
            let first = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(first).ok_or_else(|| {
                SweepError::Input(format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {first}"))
            })?;
            return check(index, count.unwrap_or(total), "SLURM_ARRAY_TASK_ID");
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = count.ok_or_else(|| {
                SweepError::Input(
                    "JOB_COMPLETION_INDEX is set: pass --shard-count N (the Job's completions)".into(),
                )
            })?;
            return check(index, count, "JOB_COMPLETION_INDEX");
        }
        Ok(None)
    }
}

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub out: PathBuf,
    /// Worker threads (default: rayon's, one per core).
    pub threads: Option<usize>,
    pub shard: Option<Shard>,
    pub progress: ProgressMode,
}

/// What a sweep did.
#[derive(Debug)]
pub struct SweepOutcome {
    pub manifest: Manifest,
    pub points_total: usize,
    /// Points of this shard (all points when not sharded).
    pub points_in_shard: usize,
    pub points_run: usize,
    /// Points of this shard already on disk, skipped.
    pub points_skipped: usize,
    /// `results.csv` and its rows, when every point of the sweep is on disk.
    pub results: Option<(PathBuf, Vec<Row>)>,
    /// Point files found damaged or edited (and recomputed), one line each for stderr.
    pub recomputed: Vec<String>,
}

/// A sweep ready to run: the trace read once and the manifest (metric names) known.
pub struct Prepared {
    trace: SharedTrace,
    pub manifest: Manifest,
}

/// Reads the trace and names the metrics, before any simulation.
pub fn prepare(plan: &Plan) -> Result<Prepared, SweepError> {
    let trace = load_trace(&plan.base)?;
    check_stretch(plan, &trace)?;
    let manifest = manifest(plan, &trace);
    Ok(Prepared { trace, manifest })
}

/// A `trace.rate_multiplier` below 1 stretches the trace: it must still fit the trace span
/// limit (`[trace] max_span`), or a tiny multiplier would push events years out.
fn check_stretch(plan: &Plan, trace: &SharedTrace) -> Result<(), SweepError> {
    let max_span = plan.base.trace.max_span;
    let longest =
        trace.requests.iter().map(|r| r.arrival.as_micros().max(r.think.as_micros())).max().unwrap_or(0);
    let mut seen = Vec::new();
    for point in plan.points() {
        let m = plan.setup(&point)?.rate_multiplier;
        if seen.contains(&m.to_bits()) {
            continue;
        }
        seen.push(m.to_bits());
        let stretched_us = longest as f64 / m;
        if stretched_us > max_span.as_micros() as f64 {
            let text = std::fs::read_to_string(&plan.file).unwrap_or_default();
            let at = crate::toml_lines::line_of_path(&text, "axes.trace.rate_multiplier")
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            return Err(SweepError::Input(format!(
                "{}{at}: axes.trace.rate_multiplier: {m} stretches the trace to {:.0} ms, beyond the trace span limit of {max_span} ([trace] max_span of the scenario)",
                plan.file.display(),
                stretched_us / 1000.0
            )));
        }
    }
    Ok(())
}

/// The trace, read once.
struct SharedTrace {
    requests: Vec<Request>,
    classes: ClassTable,
    name: String,
}

/// Runs the points of `plan` (this shard's, not yet on disk) and assembles `results.csv` when
/// the sweep is complete.
pub fn run_sweep(
    plan: &Plan,
    prepared: Prepared,
    options: &SweepOptions,
) -> Result<SweepOutcome, SweepError> {
    let Prepared { trace, manifest } = prepared;
    std::fs::create_dir_all(options.out.join("points")).map_err(|e| SweepError::io(&options.out, e))?;
    manifest.write_or_check(&options.out)?;

    let in_shard: Vec<usize> =
        (0..plan.point_count()).filter(|i| options.shard.is_none_or(|s| i % s.count == s.index)).collect();
    // A killed run may have left temporary files; a point file that does not check out is
    // recomputed (and said so), never trusted.
    results::remove_temporary_files(&options.out)?;
    let mut todo = Vec::new();
    let mut recomputed = Vec::new();
    for &i in &in_shard {
        match results::PointRecord::read(&options.out, i, &manifest)? {
            results::PointFile::Valid(_) => {}
            results::PointFile::Missing => todo.push(i),
            results::PointFile::Damaged(why) => {
                recomputed.push(format!(
                    "{}: {why}; recomputing it",
                    results::point_path(&options.out, i).display()
                ));
                todo.push(i);
            }
        }
    }
    let strategies_per_point = |i: usize| plan.setup(&plan.point(i)).map(|s| s.strategies.len());
    let mut total_runs = 0;
    for &i in &todo {
        total_runs += strategies_per_point(i)? * plan.replications as usize;
    }
    let skipped = in_shard.len() - todo.len();
    if options.progress != ProgressMode::Quiet && skipped > 0 {
        eprintln!("sweep: {skipped} points already done, {} to run", todo.len());
    }
    let progress = Progress::new(options.progress, "sweep", Unit::Count("runs"), Some(total_runs as u64));
    progress.set_message(format!("0/{} points", todo.len()));
    let points_done = AtomicU64::new(0);

    let metrics = results::parse_metrics(&manifest, &options.out)?;
    let work = || -> Result<(), SweepError> {
        todo.par_iter().try_for_each(|&index| {
            let record = run_point(plan, &plan.point(index), &trace, &manifest, &metrics, &progress)?;
            record.write(&options.out)?;
            let points = points_done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.set_message(format!("{points}/{} points", todo.len()));
            Ok(())
        })
    };
    match options.threads {
        None => work()?,
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| SweepError::Input(format!("--threads {threads}: {e}")))?
            .install(work)?,
    }
    if !todo.is_empty() {
        progress.finish(Some(format!(
            "sweep: {} runs of {} points in {:.1}s",
            total_runs,
            todo.len(),
            progress.elapsed_s()
        )));
    }

    let complete = (0..plan.point_count()).all(|i| results::point_path(&options.out, i).exists());
    let results = if complete {
        let rows = results::assemble(&manifest, std::slice::from_ref(&options.out))?;
        let path = options.out.join("results.csv");
        results::write_atomically(&path, &results::csv_bytes(&manifest, &rows))?;
        Some((path, rows))
    } else {
        None
    };
    Ok(SweepOutcome {
        manifest,
        points_total: plan.point_count(),
        points_in_shard: in_shard.len(),
        points_run: todo.len(),
        points_skipped: in_shard.len() - todo.len(),
        results,
        recomputed,
    })
}

/// Joins the point files of several results directories (shards) into `output`; the bytes
/// equal those of an unsharded run.
pub fn merge(dirs: &[PathBuf], output: &Path) -> Result<(Manifest, Vec<Row>), SweepError> {
    let mut manifest: Option<Manifest> = None;
    for dir in dirs {
        let found = Manifest::read(dir)?.ok_or_else(|| {
            SweepError::Input(format!("{}: no sweep.json (not a sweep results directory)", dir.display()))
        })?;
        match &manifest {
            Some(m) if *m != found => {
                return Err(SweepError::Input(format!(
                    "{}: results of another sweep (fingerprint {} vs {})",
                    dir.display(),
                    found.fingerprint,
                    m.fingerprint
                )))
            }
            _ => manifest = Some(found),
        }
    }
    let manifest = manifest.ok_or_else(|| SweepError::Input("merge: name at least one directory".into()))?;
    let rows = results::assemble(&manifest, dirs)?;
    results::write_atomically(output, &results::csv_bytes(&manifest, &rows))?;
    Ok((manifest, rows))
}

/// Reads the base scenario's trace once, from whatever source it names (a routesim CSV, an
/// imported public trace, a generator), for every point to share.
fn load_trace(base: &crate::scenario::Scenario) -> Result<SharedTrace, SweepError> {
    let spec = &base.trace;
    let mut stream = crate::trace::source::open_source_limited(
        &spec.source,
        spec.max_span,
        base.max_classes(),
        base.strategies.len(),
    )?;
    let requests = stream.by_ref().collect::<Result<Vec<Request>, TraceError>>()?;
    Ok(SharedTrace { requests, classes: stream.classes(), name: spec.path.display().to_string() })
}

fn manifest(plan: &Plan, trace: &SharedTrace) -> Manifest {
    let mut classes: Vec<String> = trace
        .classes
        .iter()
        .filter(|(id, _)| trace.requests.iter().any(|r| r.class == *id))
        .map(|(_, name)| name.to_string())
        .collect();
    classes.sort();
    Manifest {
        fingerprint: plan.fingerprint.clone(),
        points: plan.point_count(),
        replications: plan.replications,
        axes: plan.axes.iter().map(|a| a.name.clone()).collect(),
        metrics: results::metric_names(&classes),
    }
}

/// Every (strategy, replication) run of one point, in parallel; the record lists them by
/// strategy then replication whatever order they finished in.
fn run_point(
    plan: &Plan,
    point: &Point,
    trace: &SharedTrace,
    manifest: &Manifest,
    metrics: &[Metric],
    progress: &Progress,
) -> Result<PointRecord, SweepError> {
    let setup = plan.setup(point)?;
    let scenario = &setup.scenario;
    let deployment_names = scenario.deployment_names();
    let jobs: Vec<(usize, u32)> =
        setup.strategies.iter().flat_map(|&s| (0..plan.replications).map(move |r| (s, r))).collect();
    let runs = jobs
        .par_iter()
        .map(|&(strategy_index, replication)| {
            let strategy = &scenario.strategies[strategy_index];
            let seed = plan.seed_for(point, replication);
            let mut config = scenario.engine_config();
            config.seed = seed;
            let requests = trace.requests.iter().map(|r| Ok(scale_request(r.clone(), setup.rate_multiplier)));
            let run = crate::run::run_strategy(scenario, strategy, &config, requests, &trace.name)?;
            let summary = run.summary(&trace.classes, &deployment_names);
            progress.add(1);
            Ok(RunRecord {
                strategy: strategy.name.clone(),
                replication,
                seed,
                values: results::metric_values(&summary, metrics)
                    .into_iter()
                    .map(|v| (!v.is_nan()).then_some(v))
                    .collect(),
            })
        })
        .collect::<Result<Vec<RunRecord>, SweepError>>()?;
    Ok(PointRecord {
        fingerprint: manifest.fingerprint.clone(),
        index: point.index,
        coordinates: plan.coordinates(point),
        runs,
        checksum: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_come_from_flags_or_the_scheduler_environment() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(Shard::from_env(slurm, None).unwrap(), Some(Shard { index: 2, count: 4 }));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(Shard::from_env(k8s, Some(3)).unwrap(), Some(Shard { index: 2, count: 3 }));
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "2")]), None).is_err(), "needs a count");
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "3")]), Some(3)).is_err());
        assert_eq!(Shard::from_env(env(&[]), None).unwrap(), None);
    }
}
