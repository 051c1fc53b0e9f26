//! `sim`: the command line of routesim. Parses arguments, calls the library, prints, and sets
//! the exit code: 0 success, 1 runtime failure, 2 bad input (scenario, trace, arguments).

use anyhow::Context;
use clap::{Parser, Subcommand};
use routesim::engine::{run_scenario, EngineError};
use routesim::report::{format_table, write_outputs, RunSummary};
use routesim::scenario::{Scenario, ScenarioError};
use routesim::sweep::progress::ProgressMode;
use routesim::sweep::results::{choose, describe_row, resolve_metric, Choice, Constraint};
use routesim::sweep::{merge, prepare, run_sweep, Shard, SweepError, SweepOptions};
use routesim::trace::gen::{generate_agent_trace, AgentTraceConfig};
use routesim::trace::{TraceError, TraceWriter};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sim",
    version,
    about = "Trace-driven simulator for LLM request routing under provider rate limits"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a scenario's trace under each of its strategies and compare them.
    Run {
        /// Scenario TOML file.
        scenario: PathBuf,
        /// Replay this trace instead of the scenario's.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write summary.json and timeseries.csv into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print summary.json to stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Trace tools.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// List the built-in deployment presets.
    Presets,
    /// Run a parameter sweep (grid × replications) in parallel; `sim sweep merge` joins shards.
    Sweep(SweepArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct SweepArgs {
    #[command(subcommand)]
    command: Option<SweepCommand>,
    /// Sweep TOML file.
    #[arg(required = true)]
    sweep: Option<PathBuf>,
    /// Results directory (point files, sweep.json, results.csv); rerunning resumes it.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Run only points with index % N == I (default: from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N")]
    shard_count: Option<usize>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Print the point minimising this metric (e.g. `cost`) among those meeting every --constraint.
    #[arg(long)]
    objective: Option<String>,
    /// `METRIC <= NUMBER` (or <, >=, >), e.g. 'interactive.ttft_p95_ms <= 3000'; repeatable.
    #[arg(long)]
    constraint: Vec<String>,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Join the results directories of shards into one results.csv.
    Merge {
        /// Results directories (one per shard).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output CSV.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Generate a bursty agent trace (sessions, tool calls, bulk and async jobs).
    Gen {
        /// Generator configuration (TOML); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Length of the trace, e.g. "1h".
        #[arg(long)]
        duration: Option<String>,
        /// Output CSV.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// An error in what the user gave us (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}

fn exit_code(error: &anyhow::Error) -> u8 {
    let input = error.chain().any(|cause| {
        cause.is::<ScenarioError>()
            || cause.is::<TraceError>()
            || cause.is::<UsageError>()
            || cause.downcast_ref::<SweepError>().is_some_and(SweepError::is_input_error)
            || cause.downcast_ref::<EngineError>().is_some_and(EngineError::is_input_error)
    });
    if input {
        2
    } else {
        1
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { scenario, trace, out, seed, json } => {
            let scenario = Scenario::load(&scenario)?;
            let result = run_scenario(&scenario, trace.as_deref(), seed)?;
            let summary = RunSummary::of(&result);
            if let Some(dir) = &out {
                write_outputs(&result, dir)
                    .with_context(|| format!("cannot write results to {}", dir.display()))?;
            }
            if json {
                print!("{}", summary.to_json());
            } else {
                println!("scenario {} · seed {} · trace {}", summary.scenario, summary.seed, summary.trace);
                print!("{}", format_table(&summary));
                if let Some(dir) = &out {
                    println!("\nwrote {}/summary.json and timeseries.csv", dir.display());
                }
            }
            Ok(())
        }
        Command::Trace { command: TraceCommand::Gen { config, seed, duration, output } } => {
            let mut gen_config = match &config {
                None => AgentTraceConfig::default(),
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        UsageError(format!("{}: cannot read generator config: {e}", path.display()))
                    })?;
                    toml::from_str(&text)
                        .map_err(|e| UsageError(format!("{}: {}", path.display(), e.message())))?
                }
            };
            if let Some(seed) = seed {
                gen_config.seed = seed;
            }
            if let Some(duration) = duration {
                gen_config.duration = duration.parse().map_err(|e| UsageError(format!("--duration: {e}")))?;
            }
            let file = std::fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut writer = TraceWriter::new(std::io::BufWriter::new(file))?;
            let summary = generate_agent_trace(&gen_config, &mut writer)?;
            writer.finish()?.into_inner().map_err(|e| e.into_error())?;
            eprintln!(
                "wrote {}: {} requests, {} sessions over {:.0} min; {}",
                output.display(),
                summary.requests,
                summary.sessions,
                summary.duration_ms as f64 / 60_000.0,
                summary.by_class.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
        Command::Sweep(args) => run_sweep_command(args),
        Command::Presets => {
            for name in routesim::scenario::preset_names() {
                println!("{name}");
            }
            Ok(())
        }
    }
}

fn run_sweep_command(args: SweepArgs) -> anyhow::Result<()> {
    if let Some(SweepCommand::Merge { dirs, output }) = args.command {
        let (manifest, rows) = merge(&dirs, &output)?;
        println!("wrote {}: {} rows from {} points", output.display(), rows.len(), manifest.points);
        return Ok(());
    }
    let (Some(sweep), Some(out)) = (args.sweep, args.out) else {
        return Err(UsageError("sim sweep: give SWEEP.toml and --out DIR".into()).into());
    };
    let plan = routesim::sweep::plan::Plan::load(&sweep)?;
    let shard = match &args.shard {
        Some(text) => Some(Shard::parse(text)?),
        None => Shard::from_env(|name| std::env::var(name).ok(), args.shard_count)?,
    };
    let progress = if args.quiet {
        ProgressMode::Quiet
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines
    };
    let options = SweepOptions { out: out.clone(), threads: args.threads, shard, progress };
    // Metric names depend on the trace's classes: check the objective before any work.
    let prepared = prepare(&plan)?;
    let metrics = prepared.manifest.metrics.clone();
    let objective = args.objective.as_deref().map(|o| resolve_metric(o, &metrics)).transpose()?;
    let constraints =
        args.constraint.iter().map(|c| Constraint::parse(c, &metrics)).collect::<Result<Vec<_>, _>>()?;
    if objective.is_none() && !constraints.is_empty() {
        return Err(UsageError("--constraint needs --objective (the metric to minimise)".into()).into());
    }
    let outcome = run_sweep(&plan, prepared, &options)?;
    let metrics = &outcome.manifest.metrics;
    let Some((path, rows)) = outcome.results else {
        println!(
            "shard done: {} of {} points on disk in {} ({} run now); run `sim sweep merge` over the shard directories",
            outcome.points_in_shard,
            outcome.points_total,
            out.display(),
            outcome.points_run
        );
        return Ok(());
    };
    let on_front = rows.iter().filter(|r| r.pareto).count();
    println!(
        "wrote {}: {} rows ({} points × strategies), {} on the Pareto front (cost, interactive TTFT p95, request 429 rate)",
        path.display(),
        rows.len(),
        outcome.points_total,
        on_front
    );
    if let Some(objective) = objective {
        match choose(&rows, metrics, objective, &constraints) {
            Some(Choice::Best(i)) => {
                println!(
                    "best feasible (min {}): {}",
                    metrics[objective],
                    describe_row(&outcome.manifest, &rows[i])
                )
            }
            Some(Choice::ClosestInfeasible { row, violated }) => println!(
                "NO FEASIBLE POINT; closest infeasible (violates {}): {}",
                violated.join(", "),
                describe_row(&outcome.manifest, &rows[row])
            ),
            None => println!("no rows"),
        }
    }
    Ok(())
}
