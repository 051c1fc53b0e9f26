//! `sim`: the command line of routesim. Parses arguments, calls the library, prints, and sets
//! the exit code: 0 success, 1 runtime failure, 2 bad input (scenario, trace, arguments).

use anyhow::Context;
use clap::{Parser, Subcommand};
use routesim::calibrate::CalibrateError;
use routesim::engine::EngineError;
use routesim::observe::ObserveError;
use routesim::progress::{millions, Progress, ProgressMode, Unit};
use routesim::report::data::ReportError;
use routesim::report::{format_table, write_incidents, write_outputs, RunSummary};
use routesim::run::run_scenario_source;
use routesim::scenario::{Scenario, ScenarioError};
use routesim::serve::ServeError;
use routesim::sweep::results::{choose, describe_row, resolve_metric, Choice, Constraint};
use routesim::sweep::{merge, prepare, run_sweep, Shard, SweepError, SweepOptions};
use routesim::trace::import::{ImportOptions, Mapping, TraceFormat};
use routesim::trace::source::{open_source, GeneratorConfig, TraceSource};
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
        // Help: the formats read without a mapping, from the one list (`TraceFormat::ALL`).
        #[arg(long, default_value = TraceFormat::default().name(), help = format_help("Format of --trace", false))]
        trace_format: String,
        /// Write summary.json and timeseries.csv into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Print summary.json to stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Trace tools.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// List the built-in deployment presets: one line each with its model and which parts are
    /// sourced (with the URL) or assumed.
    Presets,
    /// Plots, report.md and report.html from the output of `sim run --out` or `sim sweep --out`.
    Report {
        /// Results directory (with summary.json, or a sweep's results.csv).
        dir: PathBuf,
        /// Where to write the report [default: DIR/report].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Regression gate: compare two summary.json (or sweep results.csv) files or directories.
    /// Exit 0 within thresholds, 1 on a regression, 2 on bad input.
    Compare {
        /// Baseline summary.json / results.csv, or a directory holding one.
        baseline: PathBuf,
        /// Current summary.json / results.csv, or a directory holding one.
        current: PathBuf,
        /// METRIC=VALUE: the increase allowed, relative (ttft_p95_ms=+10%) or absolute
        /// (request_429_rate=+0.005); overrides the defaults (request_429_rate=+0.005,
        /// interactive.ttft_p95_ms=+10%, cost_usd=+5%). Repeatable.
        #[arg(long = "threshold", value_name = "METRIC=VALUE")]
        thresholds: Vec<String>,
        /// A file of METRIC=VALUE lines (# comments), applied before --threshold flags.
        #[arg(long)]
        threshold_file: Option<PathBuf>,
        /// Also write the comparison as Markdown (for a pull-request comment).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Fail (exit 1) on any change of a gated value, improvements included: for CI, where
        /// a change in behaviour must come with a refreshed baseline.
        #[arg(long)]
        strict: bool,
    },
    /// Run a parameter sweep (grid × replications) in parallel; `sim sweep merge` joins shards.
    Sweep(SweepArgs),
    /// Serve the scenario's modelled provider over HTTP in real time: the Anthropic Messages
    /// API (POST /v1/messages) and the OpenAI Chat Completions API (POST
    /// /v1/chat/completions), one listener per deployment. Prints one JSON line per listener
    /// on stdout ({"deployment","addr","url"}).
    ServeProvider {
        /// Scenario TOML file (its deployments, seed).
        scenario: PathBuf,
        /// NAME=ADDRESS:PORT: serve deployment NAME there (port 0: any free port); repeatable.
        #[arg(long = "deployment", value_name = "NAME=ADDR", required = true)]
        deployments: Vec<String>,
        /// Run the provider this many times faster than real time (latencies, refill,
        /// incidents, retry-after and reset headers).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Stop after this much wall time, e.g. "10m" (default: until killed).
        #[arg(long)]
        duration: Option<String>,
    },
    /// Replay the scenario's trace in real time through the live router (one strategy, the
    /// same policy code as `sim run`) against HTTP endpoints; write attempts.jsonl and the
    /// summary.json, timeseries.csv and latency.csv of `sim run`. Exit 1 when an endpoint
    /// cannot be used (cannot connect, refused key), 2 on bad input.
    Observe {
        /// Scenario TOML file (trace, deployments, strategies; api_key_env per deployment).
        scenario: PathBuf,
        /// The strategy to drive.
        #[arg(long)]
        strategy: String,
        /// DEPLOYMENT=PROTOCOL:URL, PROTOCOL anthropic or openai, URL the base the client
        /// appends /v1/messages or /v1/chat/completions to; one per deployment used.
        #[arg(long = "endpoint", value_name = "DEPLOYMENT=PROTOCOL:URL", required = true)]
        endpoints: Vec<String>,
        /// Arrivals and think times this many times denser than in the trace.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The endpoints are `sim serve-provider --time-scale X`: run the router's clock X
        /// times faster too, and write times on it (the provider's time). Give --speed X as
        /// well to replay the trace at its own pace in the provider's time.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Stop after this much wall time, e.g. "5m" (requests still running: unfinished).
        #[arg(long)]
        duration: Option<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The longest one attempt may take, whatever the policy's timeouts.
        #[arg(long, default_value = "10m")]
        attempt_timeout: String,
    },
    /// Fit deployments from observed attempts (DIR/attempts.jsonl of `sim observe`, or a
    /// gateway's logs with --from-log): TTFT, output speed, error rates, limits and burst;
    /// writes [deployments."…"] tables and prints the goodness of fit.
    Calibrate {
        /// Observed runs (directories holding attempts.jsonl).
        #[arg(required_unless_present = "from_log", conflicts_with = "from_log")]
        dirs: Vec<PathBuf>,
        /// FORMAT:FILE, a gateway's log to fit instead (litellm_spend: LiteLLM proxy spend
        /// logs; otel_genai: OpenTelemetry GenAI spans in OTLP JSON), its rows matched to
        /// --base's deployments; repeatable, each file a run of its own.
        #[arg(long = "from-log", value_name = "FORMAT:FILE", requires = "base")]
        from_log: Vec<String>,
        /// NAME=DEPLOYMENT: the log's rows naming NAME (a model_id, model, model_group or
        /// api_base; a span's model or server.address) are --base's deployment DEPLOYMENT.
        #[arg(long = "deployment-map", value_name = "NAME=DEPLOYMENT", requires = "from_log")]
        deployment_map: Vec<String>,
        /// Output TOML.
        #[arg(short, long)]
        output: PathBuf,
        /// A scenario whose deployments of the same names supply what observation cannot
        /// (provider, model, prices, cache and batch settings).
        #[arg(long)]
        base: Option<PathBuf>,
        /// How far apart (ms) two observed attempts may be while the limiter saw them in the
        /// other order (the client's clock is not the limiter's).
        #[arg(long, default_value_t = routesim::calibrate::deployment::DEFAULT_CLOCK_TOLERANCE_MS)]
        clock_tolerance_ms: f64,
    },
    /// Simulate what was observed (the requests as sent, the strategy, the given deployments)
    /// and compare: 429 rates, attempts per request, TTFT p50/p95, e2e p95, cost, in total and
    /// per deployment. Exit 1 when an error exceeds --max-error.
    Validate {
        /// The observed run (a directory holding attempts.jsonl and summary.json).
        dir: PathBuf,
        /// The scenario observed (strategies, trace, deployments).
        #[arg(long)]
        scenario: PathBuf,
        /// [deployments."…"] tables replacing the scenario's of the same names (`sim calibrate`'s output).
        #[arg(long)]
        deployments: PathBuf,
        /// The strategy to simulate [default: the one DIR/summary.json names].
        #[arg(long)]
        strategy: Option<String>,
        /// Fail (exit 1) when any figure's absolute percentage error exceeds this (10 = 10%).
        #[arg(long, value_name = "PERCENT")]
        max_error: Option<f64>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the simulated attempts (as attempts.jsonl records) here.
        #[arg(long)]
        write_simulated: Option<PathBuf>,
    },
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
    /// Generate a trace: agent sessions (default), a month of agent traffic, or open-loop
    /// clients with their own arrival processes (`generator = "agent" | "month" | "open_loop"`).
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
    /// Convert a public trace or your own log to the routesim CSV.
    Convert {
        #[arg(long, help = format!("Input format: {}", TraceFormat::imported_names()))]
        from: String,
        /// Input file.
        input: PathBuf,
        /// Output CSV.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        import: ImportFlags,
    },
    /// Statistics of a trace: rates, peaks, burstiness, tokens, classes, sessions.
    Stats {
        /// Trace file.
        file: PathBuf,
        #[arg(long, default_value = TraceFormat::default().name(), help = format_help("Format", true))]
        format: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        import: ImportFlags,
    },
}

/// Import options on the command line (a TOML `--options` file gives all of them).
#[derive(clap::Args)]
struct ImportFlags {
    /// TOML file with import options (start, duration, rate_multiplier, classes, mapping, …).
    #[arg(long)]
    options: Option<PathBuf>,
    /// TOML file with a column mapping (format mapped).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Skip this much of the trace from its first row, e.g. "10m".
    #[arg(long)]
    start: Option<String>,
    /// Keep this much after --start, e.g. "1h".
    #[arg(long)]
    duration: Option<String>,
    /// Multiply the arrival rate (2 = twice as fast).
    #[arg(long)]
    rate_multiplier: Option<f64>,
    /// Seed of the jitter that spreads tied timestamps.
    #[arg(long)]
    seed: Option<u64>,
    /// Skip up to N bad rows (counted and reported).
    #[arg(long)]
    skip_bad: Option<u64>,
    /// Class of every row no rule matches.
    #[arg(long)]
    default_class: Option<String>,
}

impl ImportFlags {
    /// The import options for `format`, validated: an invalid option read from `--options`
    /// names that file and the option's line (`opts.toml:7: classes[3].class: …`).
    fn options(&self, format: TraceFormat) -> anyhow::Result<ImportOptions> {
        let read = |path: &PathBuf, what: &str| -> anyhow::Result<String> {
            std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("{}: cannot read {what}: {e}", path.display())).into())
        };
        let toml_err = |path: &PathBuf, e: toml::de::Error| {
            UsageError(format!("{}: {}", path.display(), e.message().replace('\n', " ").trim()))
        };
        let mut options_text = None;
        let mut options = match &self.options {
            None => ImportOptions::default(),
            Some(path) => {
                let text = read(path, "import options")?;
                let options = toml::from_str(&text).map_err(|e| toml_err(path, e))?;
                options_text = Some((path, text));
                options
            }
        };
        if let Some(path) = &self.mapping {
            let mapping: Mapping = toml::from_str(&read(path, "mapping")?).map_err(|e| toml_err(path, e))?;
            options.mapping = Some(mapping);
        }
        let duration =
            |flag: &str, text: &str| text.parse().map_err(|e| UsageError(format!("--{flag}: {e}")));
        if let Some(start) = &self.start {
            options.start = duration("start", start)?;
        }
        if let Some(d) = &self.duration {
            options.duration = Some(duration("duration", d)?);
        }
        if let Some(m) = self.rate_multiplier {
            options.rate_multiplier = m;
        }
        if let Some(seed) = self.seed {
            options.seed = seed;
        }
        if let Some(n) = self.skip_bad {
            options.skip_bad = n;
        }
        if let Some(class) = &self.default_class {
            options.default_class = class.clone();
        }
        if format != TraceFormat::Routesim {
            if let Err(error) = options.validate(format) {
                return Err(match (error, options_text) {
                    (TraceError::Import { field, message }, Some((path, text))) => {
                        let at = routesim::toml_lines::line_of_path(&text, &field)
                            .map_or(String::new(), |line| format!(":{line}"));
                        UsageError(format!("{}{at}: {field}: {message}", path.display())).into()
                    }
                    (error, _) => error.into(),
                });
            }
        }
        Ok(options)
    }
}

/// `LEAD: routesim (default), azure, …`: a format flag's help, from [`TraceFormat::ALL`]
/// (without the formats that need a mapping unless the command takes one).
fn format_help(lead: &str, with_mapping: bool) -> String {
    let formats = TraceFormat::ALL.into_iter().filter(|f| with_mapping || !f.needs_mapping());
    format!("{lead}: {}", TraceFormat::list(formats))
}

fn parse_format(flag: &str, name: &str) -> Result<TraceFormat, UsageError> {
    TraceFormat::parse(name).map_err(|m| UsageError(format!("{flag}: {m}")))
}

/// An error in what the user gave us (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `sim validate`: the simulation is further from the observation than allowed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("validation failed: {0}")]
struct ValidationFailed(String);

/// The gate found regressions (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("regression: {0}")]
struct GateFailed(String);

fn main() -> ExitCode {
    // `sim presets | head` closes stdout early: end like other command-line tools (killed by
    // SIGPIPE, no output) instead of panicking inside println!. Rust sets SIGPIPE to ignored.
    // SAFETY: restoring a signal's default disposition before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The error contract's single line: the error, then each cause not already spelled out by
/// the text so far (typed errors embed their source, e.g. the OS text), newlines folded and a
/// runaway message cut in the middle.
fn one_line(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    let text =
        text.split(['\n', '\r']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    const MAX_CHARS: usize = 2_000;
    match text.char_indices().nth(MAX_CHARS) {
        None => text,
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// Notes from loading a scenario (e.g. ignored LiteLLM keys), once each, on stderr.
/// `sim run`'s simulation, with progress of the shared trace read on stderr: the share of the
/// file read (a generator or import: rows only), rows and rows/s.
fn run_with_progress(
    scenario: &Scenario,
    source: Option<&TraceSource>,
    seed: Option<u64>,
    mode: ProgressMode,
) -> Result<routesim::run::RunResult, EngineError> {
    let mut progress: Option<Progress> = None;
    let strategies = scenario.strategies.len();
    let result = run_scenario_source(scenario, source, seed, &mut |read| {
        let p = progress.get_or_insert_with(|| match read.bytes {
            Some((_, size)) => Progress::new(mode, "run", Unit::Bytes, Some(size)),
            None => Progress::new(mode, "run", Unit::Count("rows"), None),
        });
        let rate = read.rows as f64 / p.elapsed_s().max(1e-3);
        let message = format!(
            "{} rows × {strategies} strategies, {} rows/s",
            millions(read.rows as f64),
            millions(rate)
        );
        match read.bytes {
            Some((bytes, _)) => p.set(bytes, message),
            None => p.set(read.rows, format!("{} strategies, {} rows/s", strategies, millions(rate))),
        }
    });
    if let Some(p) = &progress {
        p.finish(None);
    }
    result
}

fn print_notes(scenario: &Scenario) {
    for note in scenario.notes() {
        eprintln!("note: {note}");
    }
}

fn exit_code(error: &anyhow::Error) -> u8 {
    let input = error.chain().any(|cause| {
        cause.is::<ScenarioError>()
            || cause.is::<TraceError>()
            || cause.is::<UsageError>()
            || cause.downcast_ref::<ReportError>().is_some_and(ReportError::is_input_error)
            || cause.downcast_ref::<SweepError>().is_some_and(SweepError::is_input_error)
            || cause.downcast_ref::<EngineError>().is_some_and(EngineError::is_input_error)
            || cause.downcast_ref::<ServeError>().is_some_and(ServeError::is_input_error)
            || cause.downcast_ref::<ObserveError>().is_some_and(ObserveError::is_input_error)
            || cause.downcast_ref::<CalibrateError>().is_some_and(CalibrateError::is_input_error)
    });
    if input {
        2
    } else {
        1
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { scenario, trace, trace_format, out, seed, json, quiet } => {
            let scenario = Scenario::load(&scenario)?;
            print_notes(&scenario);
            let format = parse_format("--trace-format", &trace_format)?;
            let source =
                trace.map(|path| TraceSource::File { path, format, options: ImportOptions::default() });
            let result =
                run_with_progress(&scenario, source.as_ref(), seed, ProgressMode::for_stderr(quiet))?;
            if let Some(report) = &result.import_report {
                eprintln!("import: {}", report.summary());
            }
            let summary = RunSummary::of(&result);
            if let Some(dir) = &out {
                write_outputs(&result, dir)
                    .and_then(|()| write_incidents(&result, &scenario.deployments, dir))
                    .with_context(|| format!("cannot write results to {}", dir.display()))?;
            }
            if json {
                print!("{}", summary.to_json());
            } else {
                println!("scenario {} · seed {} · trace {}", summary.scenario, summary.seed, summary.trace);
                print!("{}", format_table(&summary));
                if let Some(dir) = &out {
                    println!(
                        "\nwrote {}/summary.json, timeseries.csv, latency.csv and incidents.csv",
                        dir.display()
                    );
                }
            }
            Ok(())
        }
        Command::Trace { command: TraceCommand::Gen { config, seed, duration, output } } => {
            let (mut gen_config, base_dir) = match &config {
                None => (GeneratorConfig::Agent(Default::default()), PathBuf::from(".")),
                Some(path) => (
                    GeneratorConfig::load(path)?,
                    path.parent().map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf),
                ),
            };
            if let Some(seed) = seed {
                gen_config.set_seed(seed);
            }
            if let Some(duration) = &duration {
                gen_config
                    .set_duration(duration.parse().map_err(|e| UsageError(format!("--duration: {e}")))?);
            }
            // Every setting, and the span against the default trace span limit, before writing;
            // errors name the config file and the key's line.
            if let Err(error) = gen_config.check(&base_dir, routesim::trace::DEFAULT_MAX_SPAN) {
                return Err(match (&error, &duration, &config) {
                    (TraceError::Config { field, message }, Some(_), _)
                        if field == "days" || field == "duration" =>
                    {
                        UsageError(format!("--duration: {message}")).into()
                    }
                    (_, _, Some(path)) => routesim::trace::source::locate(path, error).into(),
                    _ => error.into(),
                });
            }
            let file = std::fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut writer =
                TraceWriter::new(std::io::BufWriter::new(file))?.with_name(&output.display().to_string());
            let summary = gen_config.write(&base_dir, &mut writer).map_err(|e| match &config {
                Some(path) => routesim::trace::source::locate(path, e),
                None => e,
            })?;
            writer.finish()?.into_inner().map_err(|e| e.into_error())?;
            eprintln!(
                "wrote {}: {} requests, {} sessions over {:.0} min; {}; {:.3} G input tokens ({:.1}% cached), {:.3} G output",
                output.display(),
                summary.requests,
                summary.sessions,
                summary.duration_ms as f64 / 60_000.0,
                summary.by_class.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", "),
                summary.input_tokens as f64 / 1e9,
                100.0 * summary.cached_input_tokens as f64 / summary.input_tokens.max(1) as f64,
                summary.output_tokens as f64 / 1e9,
            );
            Ok(())
        }
        Command::Report { dir, out } => {
            let out = out.unwrap_or_else(|| dir.join("report"));
            let files = routesim::report::markdown::write_report(&dir, &out)?;
            for plot in &files.plots {
                println!("wrote {} and {}", plot.png.display(), plot.svg.display());
            }
            println!("wrote {} and {}", files.markdown.display(), files.html.display());
            Ok(())
        }
        Command::Compare { baseline, current, thresholds, threshold_file, markdown, strict } => {
            use routesim::report::compare::{
                compare_paths, merge_thresholds, parse_threshold, parse_threshold_file,
            };
            let mut overrides = Vec::new();
            if let Some(path) = &threshold_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    UsageError(format!("{}: cannot read threshold file: {e}", path.display()))
                })?;
                overrides.extend(parse_threshold_file(&text, path)?);
            }
            for spec in &thresholds {
                overrides.push(parse_threshold(spec)?);
            }
            let comparison = compare_paths(&baseline, &current, &merge_thresholds(overrides))?;
            print!("{}", comparison.to_text());
            if let Some(path) = &markdown {
                std::fs::write(path, comparison.to_markdown())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let regressions = comparison.regression_lines();
            let changed = comparison.changed();
            if !regressions.is_empty() {
                Err(anyhow::Error::new(GateFailed(regressions.join("; "))))
            } else if strict && !changed.is_empty() {
                let names: Vec<String> =
                    changed.iter().map(|r| format!("{} {}", r.subject, r.metric)).collect();
                Err(anyhow::Error::new(GateFailed(format!(
                    "--strict: {} changed without a regression ({}); if intended, refresh the baseline in the same commit",
                    names.len(),
                    names.join(", ")
                ))))
            } else {
                Ok(())
            }
        }
        Command::Trace { command: TraceCommand::Convert { from, input, output, import } } => {
            let format = parse_format("--from", &from)?;
            if format == TraceFormat::Routesim {
                return Err(UsageError(format!(
                    "--from: give the input's format ({})",
                    TraceFormat::imported_names()
                ))
                .into());
            }
            let options = import.options(format)?;
            let file = std::fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut writer =
                TraceWriter::new(std::io::BufWriter::new(file))?.with_name(&output.display().to_string());
            let report = routesim::trace::source::convert(&input, format, &options, &mut writer)?;
            writer.finish()?.into_inner().map_err(|e| e.into_error())?;
            eprintln!("wrote {}: {}", output.display(), report.summary());
            Ok(())
        }
        Command::Trace { command: TraceCommand::Stats { file, format, json, import } } => {
            let format = parse_format("--format", &format)?;
            let options = import.options(format)?;
            let source = TraceSource::File { path: file.clone(), format, options };
            // Parent links are checked as closed-loop replay checks them (ids unique, parents
            // on earlier rows): a cycle or a dangling parent is an input error, not a statistic.
            let stream = routesim::trace::source::check_parent_links(open_source(&source)?, &source.name());
            let mut report = None;
            let stats = routesim::trace::stats::compute(stream, |s| {
                report = s.report();
                s.classes()
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", stats.to_text(&source.name()));
            }
            if let Some(report) = report {
                eprintln!("import: {}", report.summary());
            }
            Ok(())
        }
        Command::Sweep(args) => run_sweep_command(args),
        Command::ServeProvider { scenario, deployments, time_scale, seed, duration } => {
            serve_provider(&scenario, &deployments, time_scale, seed, duration.as_deref())
        }
        Command::Observe {
            scenario,
            strategy,
            endpoints,
            speed,
            time_scale,
            duration,
            out,
            attempt_timeout,
        } => {
            let scenario = Scenario::load(&scenario)?;
            print_notes(&scenario);
            let endpoints = endpoints
                .iter()
                .map(|spec| {
                    routesim::observe::endpoint::EndpointSpec::parse(spec)
                        .map_err(|m| UsageError(format!("--endpoint {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options = routesim::observe::ObserveOptions {
                strategy,
                endpoints,
                speed,
                time_scale,
                duration: duration.map(|d| parse_wall_duration("--duration", &d)).transpose()?,
                out: out.clone(),
                attempt_timeout: parse_wall_duration("--attempt-timeout", &attempt_timeout)?,
            };
            let observed = routesim::observe::observe(&scenario, &options)?;
            let summary = RunSummary::of(&observed.result);
            println!(
                "observed scenario {} · strategy {} · trace {} · {:.1} s wall{}",
                summary.scenario,
                options.strategy,
                summary.trace,
                observed.wall.as_secs_f64(),
                if observed.stopped_early { " (stopped by --duration)" } else { "" }
            );
            print!("{}", format_table(&summary));
            println!(
                "\nwrote {}/attempts.jsonl ({} attempts), summary.json, timeseries.csv and latency.csv",
                out.display(),
                observed.attempts
            );
            Ok(())
        }
        Command::Calibrate { dirs, from_log, deployment_map, output, base, clock_tolerance_ms } => {
            if !routesim::validate::is_non_negative(clock_tolerance_ms) {
                return Err(UsageError(format!(
                    "--clock-tolerance-ms: expected a number >= 0, got {clock_tolerance_ms}"
                ))
                .into());
            }
            let base = base.as_deref().map(Scenario::load).transpose()?;
            let options = routesim::calibrate::FitOptions { clock_tolerance_ms };
            let logs = from_log
                .iter()
                .map(|spec| routesim::calibrate::gateway_logs::LogSpec::parse(spec))
                .collect::<Result<Vec<_>, _>>()?;
            let calibration =
                routesim::calibrate::fit_inputs(&dirs, &logs, &deployment_map, base.as_ref(), options)?;
            std::fs::write(&output, calibration.to_toml())
                .with_context(|| format!("cannot write {}", output.display()))?;
            print!("{}", calibration.report());
            println!("\nwrote {}: {} deployments", output.display(), calibration.deployments.len());
            Ok(())
        }
        Command::Validate { dir, scenario, deployments, strategy, max_error, seed, write_simulated } => {
            if let Some(m) = max_error.filter(|m| !routesim::validate::is_non_negative(*m)) {
                return Err(UsageError(format!("--max-error: expected a percentage >= 0, got {m}")).into());
            }
            let (validation, simulated) = routesim::calibrate::validate_run::validate_dir(
                &dir,
                &scenario,
                &deployments,
                strategy.as_deref(),
                seed,
            )?;
            if let Some(path) = &write_simulated {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let mut writer = routesim::attempt_log::AttemptLogWriter::new(std::io::BufWriter::new(file));
                for record in &simulated.records {
                    writer.write(record).with_context(|| format!("cannot write {}", path.display()))?;
                }
                std::io::Write::flush(&mut writer.into_inner())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            print!("{}", validation.to_text());
            match max_error {
                Some(max) => {
                    let exceeding = validation.exceeding(max);
                    if exceeding.is_empty() {
                        println!("within {max}% on every figure");
                        Ok(())
                    } else {
                        Err(anyhow::Error::new(ValidationFailed(exceeding.join("; "))))
                    }
                }
                None => Ok(()),
            }
        }
        Command::Presets => {
            for preset in routesim::scenario::preset_list()? {
                println!("{preset}");
            }
            Ok(())
        }
    }
}

/// The deployment of `scenario` named `name`, or a usage error for `flag` with a suggestion.
fn scenario_deployment<'a>(
    scenario: &'a Scenario,
    flag: &str,
    name: &str,
) -> Result<&'a routesim::provider::Deployment, UsageError> {
    scenario.deployments.iter().find(|d| d.name == name).ok_or_else(|| {
        let names = scenario.deployment_names();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        UsageError(format!(
            "{flag}: unknown deployment {name:?}{} (the scenario has {})",
            routesim::suggest::suggestion(name, &known),
            known.join(", ")
        ))
    })
}

fn parse_wall_duration(flag: &str, text: &str) -> Result<std::time::Duration, UsageError> {
    let d: routesim::time::Duration = text.parse().map_err(|e| UsageError(format!("{flag}: {e}")))?;
    Ok(std::time::Duration::from_micros(d.as_micros()))
}

fn serve_provider(
    scenario_path: &std::path::Path,
    specs: &[String],
    time_scale: f64,
    seed: Option<u64>,
    duration: Option<&str>,
) -> anyhow::Result<()> {
    let scenario = Scenario::load(scenario_path)?;
    let duration = duration.map(|d| parse_wall_duration("--duration", d)).transpose()?;
    let mut listeners = Vec::with_capacity(specs.len());
    for spec in specs {
        let (name, addr) =
            routesim::serve::parse_listen_spec(spec).map_err(|m| UsageError(format!("--deployment {m}")))?;
        let deployment = scenario_deployment(&scenario, "--deployment", &name)?;
        if listeners.iter().any(|(d, _): &(routesim::provider::Deployment, _)| d.name == name) {
            return Err(UsageError(format!(
                "--deployment: {name:?} is given twice (one listener per deployment)"
            ))
            .into());
        }
        listeners.push((deployment.clone(), addr));
    }
    let server = routesim::serve::Server::start(listeners, seed.unwrap_or(scenario.seed), time_scale)?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for bound in server.bound() {
            writeln!(out, "{}", bound.to_json_line())?;
        }
        out.flush()?;
    }
    server.run_for(duration);
    Ok(())
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
    print_notes(&plan.base);
    let shard = match &args.shard {
        Some(text) => Some(Shard::parse(text)?),
        None => Shard::from_env(|name| std::env::var(name).ok(), args.shard_count)?,
    };
    let progress = ProgressMode::for_stderr(args.quiet);
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
    for line in &outcome.recomputed {
        eprintln!("note: {line}");
    }
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
        "wrote {}: {} rows ({} points × strategies), {} on the Pareto front (cost, interactive TTFT p95, request 429 rate, share of requests lost)",
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
