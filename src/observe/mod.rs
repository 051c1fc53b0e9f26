//! `sim observe`: a scenario's trace replayed in real time through the live router (the same
//! policy and limiter code as `sim run`, on the wall clock) against real HTTP endpoints, every
//! attempt recorded in `attempts.jsonl` ([`crate::attempt_log`]) and the outcomes in the
//! `summary.json`, `timeseries.csv` and `latency.csv` of `sim run` (the same metrics collector
//! and writers), so `sim report` and `sim compare` read observed runs like simulated ones.
//!
//! Owns the options of a run ([`ObserveOptions`]), its errors ([`ObserveError`]), resolving
//! endpoints and API keys against the scenario, and, in submodules: endpoint specs and keys
//! ([`endpoint`]), one attempt over HTTP ([`client`]), the SSE parser ([`sse`]), the rows' id
//! strings ([`ids`]) and the replay loop ([`replay`]). It must not know the modelled provider
//! (an endpoint is any server: `sim serve-provider`, a staging provider, a LiteLLM proxy) nor
//! the policies' insides: they are driven through [`crate::live::LiveRouter`].
//!
//! API keys come only from the environment variables a scenario names (`api_key_env`); they
//! are sent as `x-api-key` (Anthropic) or `authorization: Bearer` (OpenAI), marked sensitive,
//! and never written to a file or a message.

pub mod client;
pub mod endpoint;
pub mod ids;
pub mod replay;
pub mod sse;

use crate::engine::EngineError;
use crate::metrics::ConservationError;
use crate::run::RunResult;
use crate::scenario::Scenario;
use endpoint::{ApiKey, EndpointSpec};
use std::path::PathBuf;

/// Largest `--speed`: beyond it arrivals a millisecond apart in the trace land in the same
/// few microseconds of wall time.
pub const MAX_SPEED: f64 = 10_000.0;

/// Longest attempt whatever the policy's timeouts (the default of `--attempt-timeout`).
pub const DEFAULT_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How to run one observation.
#[derive(Clone, Debug)]
pub struct ObserveOptions {
    /// The scenario's strategy to drive.
    pub strategy: String,
    /// One endpoint per deployment the strategy sends to.
    pub endpoints: Vec<EndpointSpec>,
    /// Arrivals and think times this many times denser than in the trace (on the wall clock).
    pub speed: f64,
    /// The endpoints are a modelled provider served this many times faster than real time
    /// (`serve-provider --time-scale`): the router's clock runs as fast (backoffs, cooldowns,
    /// timeouts keep their meaning in the provider's time) and everything written is on it,
    /// i.e. in the provider's time. 1 against a real provider: times are wall time.
    pub time_scale: f64,
    /// Stop after this much wall time (requests still running are `unfinished`).
    pub duration: Option<std::time::Duration>,
    /// The output directory.
    pub out: PathBuf,
    /// The longest one attempt may take.
    pub attempt_timeout: std::time::Duration,
}

/// Why an observation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A bad option or one the scenario contradicts (exit code 2 at the CLI).
    #[error("{0}")]
    Input(String),
    /// The trace (exit code 2).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An endpoint cannot be used (cannot connect, refused credentials, rejected requests):
    /// the run stopped. Names the deployment; never a key.
    #[error("deployment {deployment:?}: {message}; run stopped (the attempts so far are in {log})")]
    Endpoint { deployment: String, message: String, log: String },
    #[error("{file}: {action}: {source}")]
    Io { file: String, action: &'static str, source: std::io::Error },
    #[error("cannot start the HTTP client: {0}")]
    Runtime(String),
    /// The books do not balance: a bug.
    #[error("conservation violated: {0}")]
    Conservation(ConservationError),
}

impl ObserveError {
    pub fn is_input_error(&self) -> bool {
        match self {
            ObserveError::Input(_) => true,
            ObserveError::Engine(e) => e.is_input_error(),
            _ => false,
        }
    }
}

/// What an observation produced.
#[derive(Debug)]
pub struct Observed {
    /// The run's outcomes, as `sim run` reports them (one strategy).
    pub result: RunResult,
    /// Attempts written to `attempts.jsonl`.
    pub attempts: u64,
    /// Wall time of the run.
    pub wall: std::time::Duration,
    /// `--duration` ended the run before the trace did.
    pub stopped_early: bool,
}

/// One deployment's endpoint, resolved against the scenario.
#[derive(Debug)]
pub struct Target {
    pub endpoint: EndpointSpec,
    pub key: Option<ApiKey>,
    /// The model id requests carry (`api_model`, else the deployment's `model`).
    pub model: String,
}

/// Each deployment's target (in scenario order; `None`: no `--endpoint` for it). Errors name
/// the flag or the scenario key, never a key's value.
pub fn resolve_targets(
    scenario: &Scenario,
    endpoints: &[EndpointSpec],
) -> Result<Vec<Option<Target>>, ObserveError> {
    let mut targets: Vec<Option<Target>> = scenario.deployments.iter().map(|_| None).collect();
    for endpoint in endpoints {
        let Some(index) = scenario.deployments.iter().position(|d| d.name == endpoint.deployment) else {
            let names = scenario.deployment_names();
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(ObserveError::Input(format!(
                "--endpoint: unknown deployment {:?}{} (the scenario has {})",
                endpoint.deployment,
                crate::suggest::suggestion(&endpoint.deployment, &known),
                known.join(", ")
            )));
        };
        if targets[index].is_some() {
            return Err(ObserveError::Input(format!(
                "--endpoint: deployment {:?} is given twice (one endpoint per deployment)",
                endpoint.deployment
            )));
        }
        let api = scenario.apis.get(index).cloned().unwrap_or_default();
        let key = match &api.key_env {
            None => None,
            Some(name) => Some(ApiKey::from_env(name).map_err(|m| {
                ObserveError::Input(format!(
                    "{}: deployments.{:?}.{}: {m}",
                    scenario.file.display(),
                    endpoint.deployment,
                    crate::scenario::API_KEY_ENV_KEY
                ))
            })?),
        };
        let model = api.model.unwrap_or_else(|| scenario.deployments[index].model.clone());
        targets[index] = Some(Target { endpoint: endpoint.clone(), key, model });
    }
    if endpoints.is_empty() {
        return Err(ObserveError::Input("give at least one --endpoint DEPLOYMENT=PROTOCOL:URL".into()));
    }
    Ok(targets)
}

/// Checks `--speed`: finite, > 0, at most [`MAX_SPEED`].
pub fn check_speed(speed: f64) -> Result<f64, ObserveError> {
    if crate::validate::is_positive(speed) && speed <= MAX_SPEED {
        Ok(speed)
    } else {
        Err(ObserveError::Input(format!("--speed: must be a number > 0 and <= {MAX_SPEED}, got {speed}")))
    }
}

/// Runs one observation and writes `attempts.jsonl`, `summary.json`, `timeseries.csv` and
/// `latency.csv` into `options.out`.
pub fn observe(scenario: &Scenario, options: &ObserveOptions) -> Result<Observed, ObserveError> {
    let strategy = scenario.strategies.iter().find(|s| s.name == options.strategy).ok_or_else(|| {
        let names: Vec<&str> = scenario.strategies.iter().map(|s| s.name.as_str()).collect();
        ObserveError::Input(format!(
            "--strategy: unknown strategy {:?}{} (the scenario has {})",
            options.strategy,
            crate::suggest::suggestion(&options.strategy, &names),
            names.join(", ")
        ))
    })?;
    let speed = check_speed(options.speed)?;
    crate::serve::check_time_scale(options.time_scale)
        .map_err(|m| ObserveError::Input(format!("--time-scale: {m}")))?;
    if options.attempt_timeout.is_zero() {
        return Err(ObserveError::Input("--attempt-timeout: must be > 0".into()));
    }
    let targets = resolve_targets(scenario, &options.endpoints)?;
    replay::run(scenario, strategy, targets, speed, options)
}
