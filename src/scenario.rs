//! Scenarios: the TOML a user writes, its defaults and presets, and validation with errors
//! that name the path (`strategy[1].policy.chain[0]: unknown deployment "anthropic/sonet"`).
//!
//! Configuration is read in two steps: serde structs with `deny_unknown_fields` (typos are
//! errors, with the line) → validated domain types ([`Scenario`], [`Deployment`],
//! [`PolicySpec`]). Deployments may start from a built-in preset (`presets/providers.toml`,
//! the figures of PROVIDERS.md) and override any field; a preset's provenance (`sources`,
//! `assumed`: see [`crate::provenance`]) is removed before the merge and never reaches a run,
//! and [`preset_list`] reads it for `sim presets`. It must not know the engine loop: it
//! produces an [`EngineConfig`] and builds fresh [`Policy`] values for each run.

use crate::engine::{EngineConfig, Replay};
use crate::policy::config::{Catalog, PolicyConfig, PolicyError, PolicyFiles};
use crate::policy::Policy;
use crate::provenance::{self, PresetInfo, Provenance, ProvenanceError};
use crate::provider::{Deployment, DeploymentConfig};
use crate::suggest::suggestion;
use crate::time::{Duration, Instant};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in presets, compiled in so a scenario works from any directory.
pub const PRESETS_TOML: &str = include_str!("../presets/providers.toml");

/// At most this many (class, strategy) pairs in one run: each strategy keeps metrics per class
/// (a few hundred bytes each while running, about 4 KB each in `latency.csv` and
/// `summary.json`), so the distinct classes a trace may bring are at most this divided by the
/// number of strategies (and [`crate::trace::MAX_CLASSES`]): 10,000 for up to 5 strategies,
/// 8,333 for 6, 50 for 1,000. The row that brings one class too many is an input error naming
/// its line. At the limit a run with `--out` takes about 140 MB and writes about 210 MB.
pub const MAX_CLASS_STRATEGY_PAIRS: usize = 50_000;

/// At most this many `[[strategy]]` tables in one scenario: each runs the whole trace and
/// keeps its metrics until the table is printed. Use a sweep for more variants.
pub const MAX_STRATEGIES: usize = 1_000;

/// Largest `simulation.max_attempts_per_request`: the engine's safety cap itself is bounded,
/// so a policy whose every attempt fails cannot run a request for billions of attempts.
pub const MAX_ATTEMPTS_PER_REQUEST: u32 = 10_000;

/// A scenario that cannot be used. Display is one line: file, then line or path, then what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ScenarioError {
    pub file: String,
    pub line: Option<usize>,
    /// Includes the path inside the scenario, e.g. `strategy[1].policy.chain[0]: unknown …`.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// The file as written.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    description: Option<String>,
    /// Seed of every random draw; same seed, same bytes out.
    #[serde(default = "default_seed")]
    seed: u64,
    trace: TraceSection,
    #[serde(default)]
    simulation: SimulationSection,
    /// Deployment name → fields (optionally `preset = "…"` plus overrides).
    deployments: BTreeMap<String, toml::Table>,
    strategy: Vec<StrategyConfig>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceSection {
    /// Path of the trace, relative to the scenario file.
    file: Option<PathBuf>,
    /// Format of `file` (`crate::trace::import::TraceFormat`); default routesim.
    format: Option<String>,
    /// Import options (`crate::trace::import::ImportOptions`) for a public trace or log.
    import: Option<crate::trace::import::ImportOptions>,
    /// An inline generator config (`generator = "agent" | "month" | "open_loop"`, …).
    generate: Option<toml::Table>,
    /// A generator config file, relative to the scenario file.
    generator: Option<PathBuf>,
    #[serde(default)]
    replay: Replay,
    lookahead: Option<Duration>,
    /// Longest trace span accepted (default one year, [`crate::trace::DEFAULT_MAX_SPAN`]).
    max_span: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulationSection {
    /// Stop the clock here (requests still in the system are reported `unfinished`).
    horizon: Option<Duration>,
    /// Safety cap on attempts per request.
    max_attempts_per_request: Option<u32>,
    /// Closed loop: at most this many trace rows (default
    /// [`crate::engine::DEFAULT_MAX_CLOSED_LOOP_ROWS`]).
    max_closed_loop_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyConfig {
    name: String,
    policy: PolicyConfig,
}

// ---------------------------------------------------------------------------------------------
// Validated types.
// ---------------------------------------------------------------------------------------------

/// A validated policy configuration with what it needs to build fresh [`Policy`] values
/// (every run gets its own: policies keep state).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySpec {
    pub config: PolicyConfig,
    deployments: Arc<[Deployment]>,
    base_dir: PathBuf,
    /// The files the policy reads, read when it was validated (see [`PolicyFiles`]).
    files: Arc<PolicyFiles>,
    /// Notes its validation left for the user (e.g. LiteLLM keys an import ignored).
    pub notes: Vec<String>,
}

impl PolicySpec {
    /// Validates `config` against the deployments (by building it once).
    pub fn new(
        config: PolicyConfig,
        deployments: Arc<[Deployment]>,
        base_dir: &Path,
    ) -> Result<PolicySpec, PolicyError> {
        let files = PolicyFiles::read(&config, base_dir, &deployments);
        config.build(&Catalog { deployments: &deployments, base_dir, files: &files })?;
        Ok(PolicySpec {
            config,
            deployments,
            base_dir: base_dir.to_path_buf(),
            notes: files.notes().to_vec(),
            files: Arc::new(files),
        })
    }

    /// A fresh policy. The same configuration over the same deployments and the same file
    /// texts as at validation, so it builds as it did then.
    pub fn build(&self) -> Box<dyn Policy> {
        self.config
            .build(&Catalog { deployments: &self.deployments, base_dir: &self.base_dir, files: &self.files })
            .expect("validated when the scenario was loaded, from the same inputs")
    }
}

/// One strategy compared in a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    pub name: String,
    pub policy: PolicySpec,
}

/// Where the requests come from.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSpec {
    /// The trace file, or the generator's name, for messages and summaries.
    pub path: PathBuf,
    /// Where the requests come from (file in some format, or a generator).
    pub source: crate::trace::source::TraceSource,
    pub replay: Replay,
    pub lookahead: Duration,
    /// Rows with an arrival, think time or deadline beyond this are input errors.
    pub max_span: Duration,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub trace: TraceSpec,
    pub horizon: Option<Duration>,
    pub max_attempts_per_request: u32,
    /// Closed loop: at most this many trace rows (`[simulation] max_closed_loop_rows`).
    pub max_closed_loop_rows: u64,
    pub deployments: Arc<[Deployment]>,
    /// How `sim observe` reaches each deployment's real API, in `deployments` order.
    pub apis: Vec<DeploymentApi>,
    pub strategies: Vec<Strategy>,
}

/// The keys of a deployment that only `sim observe` reads (a simulation ignores them): where
/// its API key comes from and the model id its API expects. Written beside the deployment's
/// model fields; never taken from a preset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentApi {
    /// `api_key_env`: the name of the environment variable holding the API key. The key itself
    /// never appears in a scenario, an output file or a message.
    pub key_env: Option<String>,
    /// `api_model`: the model id sent in requests when the API's differs from `model` (e.g.
    /// `claude-sonnet-4-5` for `model = "claude-sonnet-4.5"`).
    pub model: Option<String>,
}

/// The scenario key naming a deployment's API-key environment variable.
pub const API_KEY_ENV_KEY: &str = "api_key_env";
/// The scenario key of a deployment's API model id.
pub const API_MODEL_KEY: &str = "api_model";

impl DeploymentApi {
    /// Removes the API keys from a deployment table and checks them; errors name the key
    /// inside the deployment. The value of `api_key_env` is never echoed: a user who put the
    /// key itself there must not see it printed.
    fn take(table: &mut toml::Table) -> Result<DeploymentApi, DeploymentTableError> {
        let fail = |field: &str, message: &str| DeploymentTableError {
            field: Some(field.to_string()),
            message: message.to_string(),
        };
        let key_env = match table.remove(API_KEY_ENV_KEY) {
            None => None,
            Some(toml::Value::String(name)) if is_env_var_name(&name) => Some(name),
            Some(_) => {
                return Err(fail(
                    API_KEY_ENV_KEY,
                    "must be the name of an environment variable (ASCII letters, digits and _, not \
                     starting with a digit); the key itself never goes in a scenario",
                ))
            }
        };
        let model = match table.remove(API_MODEL_KEY) {
            None => None,
            Some(toml::Value::String(model))
                if !model.trim().is_empty() && !model.chars().any(char::is_control) =>
            {
                Some(model)
            }
            Some(_) => {
                return Err(fail(API_MODEL_KEY, "must be a non-empty string without control characters"))
            }
        };
        Ok(DeploymentApi { key_env, model })
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the portable environment variable names.
fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read scenario: {e}"),
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Scenario::parse(&text, path, base_dir)
    }

    /// Validates scenario text; `file` is used in errors, `base_dir` resolves the trace path.
    pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let file_name = file.display().to_string();
        let raw: ScenarioFile = toml::from_str(text).map_err(|e| {
            let (line, message) = crate::toml_lines::syntax_error(text, &e);
            ScenarioError { file: file_name.clone(), line, message }
        })?;
        // Validation names the key path; the text gives its line.
        Scenario::validate(raw, file, base_dir).map_err(|mut e| {
            if e.line.is_none() {
                e.line = crate::toml_lines::line_of_message(text, &e.message);
            }
            e
        })
    }

    /// Validates an already-parsed scenario table (e.g. one a sweep has edited): same checks
    /// as [`Scenario::parse`], with errors naming the path instead of a line.
    pub fn from_value(table: toml::Table, file: &Path, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let raw: ScenarioFile = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().message().replace('\n', " ").trim().to_string();
            let message = if path == "." || path.is_empty() { message } else { format!("{path}: {message}") };
            ScenarioError { file: file.display().to_string(), line: None, message }
        })?;
        Scenario::validate(raw, file, base_dir)
    }

    fn validate(raw: ScenarioFile, file: &Path, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let file_name = file.display().to_string();
        let fail = |message: String| ScenarioError { file: file_name.clone(), line: None, message };
        let presets = presets();
        if raw.deployments.is_empty() {
            return Err(fail("deployments: at least one deployment is required".into()));
        }
        let mut deployments = Vec::with_capacity(raw.deployments.len());
        let mut apis = Vec::with_capacity(raw.deployments.len());
        for (name, table) in &raw.deployments {
            let path = format!("deployments.{}", quote_key(name));
            // Names are echoed in tables and errors: no line breaks or other control characters.
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(fail(format!(
                    "{path}: a deployment name must be non-empty, without control characters"
                )));
            }
            let mut table = table.clone();
            apis.push(DeploymentApi::take(&mut table).map_err(|m| fail(format!("{path}{m}")))?);
            let config = resolve_deployment(&table, &presets).map_err(|m| fail(format!("{path}{m}")))?;
            let deployment =
                Deployment::from_config(name, &config).map_err(|e| fail(format!("{path}.{e}")))?;
            deployments.push(deployment);
        }
        if deployments.len() > usize::from(u16::MAX) {
            return Err(fail("deployments: too many (at most 65535)".into()));
        }
        crate::provider::incidents::check_provider_wide(&deployments)
            .map_err(|(index, e)| fail(format!("deployments.{}.{e}", quote_key(&deployments[index].name))))?;
        crate::provider::fleet::check_pools(&deployments)
            .map_err(|e| fail(format!("deployments.{}.limits.quotas: {e}", quote_key(&e.second))))?;
        let deployments: Arc<[Deployment]> = deployments.into();

        if raw.strategy.is_empty() {
            return Err(fail("strategy: at least one [[strategy]] is required".into()));
        }
        if raw.strategy.len() > MAX_STRATEGIES {
            return Err(fail(format!(
                "strategy: {} strategies, at most {MAX_STRATEGIES} in one scenario (a sweep explores more variants)",
                raw.strategy.len()
            )));
        }
        let mut strategies: Vec<Strategy> = Vec::with_capacity(raw.strategy.len());
        for (i, s) in raw.strategy.iter().enumerate() {
            let path = format!("strategy[{i}]");
            if s.name.trim().is_empty() {
                return Err(fail(format!("{path}.name: must not be empty")));
            }
            if s.name.chars().any(char::is_control) {
                return Err(fail(format!("{path}.name: {:?} contains a control character", s.name)));
            }
            if strategies.iter().any(|other| other.name == s.name) {
                return Err(fail(format!("{path}.name: duplicate strategy name {:?}", s.name)));
            }
            let policy = PolicySpec::new(s.policy.clone(), deployments.clone(), base_dir)
                .map_err(|m| fail(format!("{path}.policy.{m}")))?;
            strategies.push(Strategy { name: s.name.clone(), policy });
        }

        let lookahead = raw.trace.lookahead.unwrap_or(Duration::from_mins(10));
        if lookahead.is_zero() && raw.trace.replay == Replay::Closed {
            return Err(fail("trace.lookahead: must be > 0 for closed-loop replay".into()));
        }
        let max_span = raw.trace.max_span.unwrap_or(crate::trace::DEFAULT_MAX_SPAN);
        if max_span.is_zero() {
            return Err(fail("trace.max_span: must be > 0".into()));
        }
        let source = crate::trace::source::SourceSection {
            file: raw.trace.file.clone(),
            format: raw.trace.format.clone(),
            import: raw.trace.import.clone(),
            generate: raw.trace.generate.clone(),
            generator: raw.trace.generator.clone(),
        }
        .resolve(base_dir, max_span)
        .map_err(|e| fail(e.to_string()))?;
        let max_attempts_per_request = raw
            .simulation
            .max_attempts_per_request
            .unwrap_or(crate::policy::driver::DEFAULT_MAX_ATTEMPTS_PER_REQUEST);
        if max_attempts_per_request == 0 {
            return Err(fail("simulation.max_attempts_per_request: must be > 0".into()));
        }
        if max_attempts_per_request > MAX_ATTEMPTS_PER_REQUEST {
            return Err(fail(format!(
                "simulation.max_attempts_per_request: {max_attempts_per_request} is above the maximum of {MAX_ATTEMPTS_PER_REQUEST}"
            )));
        }
        let max_closed_loop_rows =
            raw.simulation.max_closed_loop_rows.unwrap_or(crate::engine::DEFAULT_MAX_CLOSED_LOOP_ROWS);
        if max_closed_loop_rows == 0 {
            return Err(fail("simulation.max_closed_loop_rows: must be > 0".into()));
        }
        Ok(Scenario {
            file: file.to_path_buf(),
            name: raw.name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "scenario".into())
            }),
            description: raw.description,
            seed: raw.seed,
            trace: TraceSpec {
                path: PathBuf::from(source.name()),
                source,
                replay: raw.trace.replay,
                lookahead,
                max_span,
            },
            horizon: raw.simulation.horizon,
            max_attempts_per_request,
            max_closed_loop_rows,
            deployments,
            apis,
            strategies,
        })
    }

    /// The distinct classes (built-ins included) a trace may bring to this scenario:
    /// [`MAX_CLASS_STRATEGY_PAIRS`] shared among its strategies, at most
    /// [`crate::trace::MAX_CLASSES`].
    pub fn max_classes(&self) -> usize {
        (MAX_CLASS_STRATEGY_PAIRS / self.strategies.len().max(1)).min(crate::trace::MAX_CLASSES)
    }

    /// Engine settings for this scenario (seed overridable from the command line).
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            seed: self.seed,
            replay: self.trace.replay,
            lookahead: self.trace.lookahead,
            horizon: self.horizon.map(|h| Instant::ZERO + h),
            max_attempts_per_request: self.max_attempts_per_request,
            max_closed_loop_rows: self.max_closed_loop_rows,
        }
    }

    /// Notes for the user from validating the strategies (e.g. LiteLLM keys an import
    /// ignored), each once, in strategy order; the CLI prints them on stderr.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = Vec::new();
        for note in self.strategies.iter().flat_map(|s| &s.policy.notes) {
            if !notes.contains(note) {
                notes.push(note.clone());
            }
        }
        notes
    }

    pub fn deployment_names(&self) -> Vec<String> {
        self.deployments.iter().map(|d| d.name.clone()).collect()
    }
}

/// `anthropic/sonnet` → `"anthropic/sonnet"` (TOML needs quotes for such keys).
fn quote_key(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// The preset file, parsed once per scenario load.
struct Presets {
    models: toml::Table,
    presets: toml::Table,
}

/// The preset file as written, provenance included.
fn raw_presets() -> Presets {
    let mut table: toml::Table = PRESETS_TOML.parse().expect("presets/providers.toml is valid TOML (tested)");
    let take = |t: &mut toml::Table, key: &str| match t.remove(key) {
        Some(toml::Value::Table(inner)) => inner,
        _ => toml::Table::new(),
    };
    Presets { models: take(&mut table, "models"), presets: take(&mut table, "presets") }
}

/// The preset file as a simulation sees it: provenance removed from every model and preset.
fn presets() -> Presets {
    let mut p = raw_presets();
    for (_, value) in p.models.iter_mut().chain(p.presets.iter_mut()) {
        if let toml::Value::Table(table) = value {
            provenance::strip(table);
        }
    }
    p
}

/// Every built-in preset with its model and provenance (its model's plus its own), for
/// `sim presets`. Fails on provenance that names an unknown part, a non-URL source, or a part
/// both sourced and assumed.
pub fn preset_list() -> Result<Vec<PresetInfo>, ProvenanceError> {
    let raw = raw_presets();
    let mut models = BTreeMap::new();
    for (name, value) in &raw.models {
        let mut table = value.as_table().cloned().unwrap_or_default();
        models.insert(name.clone(), Provenance::take(&mut table, &format!("models.{}", quote_key(name)))?);
    }
    raw.presets
        .iter()
        .map(|(name, value)| {
            let path = format!("presets.{}", quote_key(name));
            let mut table = value.as_table().cloned().unwrap_or_default();
            let own = Provenance::take(&mut table, &path)?;
            let model = table.get("model").and_then(toml::Value::as_str).unwrap_or_default().to_string();
            let provenance = match models.get(&model) {
                Some(base) => base.clone().with(own, &path)?,
                None => own,
            };
            Ok(PresetInfo { name: name.clone(), model, provenance })
        })
        .collect()
}

/// Recursively lays `overlay` over `base`: tables merge, everything else replaces.
fn merge(base: &mut toml::Table, overlay: &toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            // A distribution written with another form (`dist = "constant"` over a lognormal
            // preset) replaces the preset's: merging would mix their fields.
            (Some(toml::Value::Table(b)), toml::Value::Table(o))
                if o.get(DIST_TAG).is_some_and(|d| b.get(DIST_TAG) != Some(d)) =>
            {
                base.insert(key.clone(), value.clone());
            }
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The tag of a distribution table (`{ dist = "lognormal", … }`).
const DIST_TAG: &str = "dist";

/// A deployment table that does not resolve to a [`DeploymentConfig`] (an unknown preset, a
/// field of the wrong type). Shown as the suffix after the deployment's path:
/// `.limits.rpm: invalid type…`, or `: message` for the table itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .field.as_ref().map(|f| format!(".{f}")).unwrap_or_default())]
pub struct DeploymentTableError {
    /// The path inside the deployment (`preset`, `limits.rpm`), `None` for the table itself.
    pub field: Option<String>,
    pub message: String,
}

/// Preset (if any) + overrides → a typed deployment config. Errors name the path inside the
/// deployment.
fn resolve_deployment(
    table: &toml::Table,
    presets: &Presets,
) -> Result<DeploymentConfig, DeploymentTableError> {
    let preset_error = |message: String| DeploymentTableError { field: Some("preset".into()), message };
    let mut merged = toml::Table::new();
    let mut overrides = table.clone();
    if let Some(preset) = overrides.remove("preset") {
        let Some(name) = preset.as_str() else {
            return Err(preset_error("must be a string".into()));
        };
        let Some(toml::Value::Table(preset_table)) = presets.presets.get(name) else {
            let known: Vec<&str> = presets.presets.keys().map(String::as_str).collect();
            return Err(preset_error(format!(
                "unknown preset {name:?}{} (known: {})",
                suggestion(name, &known),
                known.join(", ")
            )));
        };
        let mut preset_table = preset_table.clone();
        if let Some(toml::Value::String(model)) = preset_table.remove("model") {
            if let Some(toml::Value::Table(model_table)) = presets.models.get(&model) {
                merge(&mut merged, model_table);
            }
        }
        merge(&mut merged, &preset_table);
    }
    merge(&mut merged, &overrides);
    serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().message().replace('\n', " ").trim().to_string();
        let field = if path == "." || path.is_empty() { None } else { Some(path) };
        DeploymentTableError { field, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Meter;

    const MINIMAL: &str = r#"
seed = 7
[trace]
file = "t.csv"
[deployments."anthropic/sonnet"]
preset = "anthropic-tier4-sonnet-4.x"
limits.burst = "10s"
[deployments."openai/gpt-5"]
preset = "openai-tier4-gpt-5"
[[strategy]]
name = "one"
policy = { kind = "single", deployment = "anthropic/sonnet" }
[[strategy]]
name = "chain"
policy = { kind = "fallback", chain = ["anthropic/sonnet", "openai/gpt-5"] }
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("s.toml"), Path::new("dir"))
    }

    #[test]
    fn every_builtin_preset_resolves_to_a_valid_deployment() {
        let p = presets();
        assert!(p.presets.len() >= 15);
        for name in p.presets.keys() {
            let mut table = toml::Table::new();
            table.insert("preset".into(), toml::Value::String(name.clone()));
            let config = resolve_deployment(&table, &p).unwrap_or_else(|e| panic!("{name}{e}"));
            Deployment::from_config(name, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_preset_provenance_names_only_known_parts() {
        let list = preset_list().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.len(), presets().presets.len());
        for info in &list {
            assert!(
                presets().models.contains_key(&info.model),
                "{}: unknown model {:?}",
                info.name,
                info.model
            );
            let quotas = presets().presets[&info.name]
                .get("limits")
                .and_then(|l| l.get("quotas"))
                .and_then(|q| q.as_array())
                .map_or(0, Vec::len);
            for part in info.provenance.sources.keys().chain(&info.provenance.assumed) {
                assert!(provenance::is_known_part(part), "{}: {part}", info.name);
                if let Some(index) = part.strip_prefix("limits.quotas[").and_then(|r| r.strip_suffix(']')) {
                    assert!(
                        index.parse::<usize>().unwrap() < quotas,
                        "{}: {part} past the quotas",
                        info.name
                    );
                }
            }
        }
        let opus41 = list.iter().find(|i| i.name == "anthropic-tier1-opus-4.1").unwrap();
        assert!(opus41.provenance.sources.contains_key("prices"), "{opus41}");
        assert!(opus41.provenance.sources.contains_key("limits"), "{opus41}");
        assert!(!opus41.provenance.assumed.is_empty(), "{opus41}");
    }

    #[test]
    fn every_known_part_is_a_deployment_section_or_field() {
        // A field with a value of the wrong type is refused as `invalid type`, not as
        // `unknown field`: so each dotted part names a real field of the schema.
        for part in provenance::KNOWN_PARTS {
            let (section, field) = part.split_once('.').unwrap_or((part, ""));
            let mut inner = toml::Table::new();
            if !field.is_empty() {
                inner.insert(field.to_string(), toml::Value::Array(vec![]));
            }
            let mut table = toml::Table::new();
            table.insert(section.to_string(), toml::Value::Table(inner));
            let e = resolve_deployment(&table, &presets()).unwrap_err().to_string();
            assert!(!e.contains("unknown field"), "{part}: {e}");
        }
    }

    #[test]
    fn provenance_never_reaches_a_deployment() {
        // The loader strips it: the same preset with and without provenance resolves alike.
        let p = presets();
        assert!(p.models.values().chain(p.presets.values()).all(|v| {
            let t = v.as_table().unwrap();
            !t.contains_key(provenance::SOURCES_KEY) && !t.contains_key(provenance::ASSUMED_KEY)
        }));
        // A scenario may not write provenance into a deployment: it is not a deployment field.
        let e = parse(&MINIMAL.replace("limits.burst = \"10s\"", "assumed = [\"latency\"]")).unwrap_err();
        assert!(e.to_string().contains("unknown field `assumed`"), "{e}");
    }

    #[test]
    fn preset_figures_come_through_and_overrides_win() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.trace.path, Path::new("dir/t.csv"));
        let sonnet = &s.deployments[0];
        assert_eq!(sonnet.name, "anthropic/sonnet");
        assert_eq!(sonnet.limits.per_minute(Meter::Requests), Some(4000));
        assert_eq!(sonnet.limits.per_minute(Meter::InputTokens), Some(2_000_000));
        assert_eq!(sonnet.limits.per_minute(Meter::OutputTokens), Some(400_000));
        assert!(
            sonnet.limits.quotas.iter().all(|l| l.quota.burst == Duration::from_secs(10)),
            "override wins"
        );
        assert!((sonnet.prices.input_usd_per_token - 3e-6).abs() < 1e-15);
        assert!(!sonnet.cache_reads_count_toward_itpm);
        assert_eq!(s.deployments[1].limits.per_minute(Meter::Tokens), Some(4_000_000));
        assert_eq!(s.strategies.len(), 2);
        assert!(
            matches!(&s.strategies[1].policy.config, PolicyConfig::Fallback { chain, .. } if chain.len() == 2)
        );
    }

    #[test]
    fn a_preset_distribution_can_be_replaced_by_another_form() {
        let text = MINIMAL.replace(
            "limits.burst = \"10s\"",
            "limits.burst = \"10s\"\nlatency.ttft_ms = { dist = \"constant\", value = 500 }",
        );
        let s = parse(&text).unwrap();
        let shown = format!("{:?}", s.deployments[0].ttft_ms);
        assert!(shown.contains("Constant { value: 500.0 }"), "{shown}");
        // The same form still merges field by field: only sigma changes.
        let text = MINIMAL.replace("limits.burst = \"10s\"", "latency.ttft_ms.sigma = 0.9");
        let s = parse(&text).unwrap();
        let shown = format!("{:?}", s.deployments[0].ttft_ms);
        assert!(shown.contains("0.9") && shown.to_lowercase().contains("lognormal"), "{shown}");
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        let text = MINIMAL.replace("[deployments.\"openai/gpt-5\"]", "[deployments.\"openai/\\ngpt-5\"]");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("without control characters") && !e.contains('\n'), "{e}");
        let e = parse(&MINIMAL.replace("name = \"one\"", "name = \"o\\rne\"")).unwrap_err().to_string();
        assert!(e.contains("strategy[0].name") && !e.contains('\r'), "{e}");
    }

    #[test]
    fn validation_errors_carry_the_line_of_their_key_path() {
        let text = MINIMAL.replace("limits.burst = \"10s\"", "limits.burst = \"10s\"\nlimits.rpm = 0");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.to_string().starts_with("s.toml:8: deployments.\"anthropic/sonnet\".limits.rpm"), "{e}");
        // A bare CR gives a real message with its line.
        let e = parse("seed = 1\nname = \"x\"\r[trace]\n").unwrap_err().to_string();
        assert_eq!(e, "s.toml:2: bare carriage return (CR) as a line ending: TOML lines end with LF or CRLF");
    }

    #[test]
    fn errors_name_the_path() {
        let bad_chain = MINIMAL.replace(
            r#"chain = ["anthropic/sonnet", "openai/gpt-5"]"#,
            r#"chain = ["openai/gpt-5", "anthropic/sonet"]"#,
        );
        let e = parse(&bad_chain).unwrap_err().to_string();
        // The key path's line comes from the text (line 15: the chain).
        assert!(e.starts_with(r#"s.toml:15: strategy[1].policy.chain[1]: unknown deployment "anthropic/sonet"; did you mean "anthropic/sonnet"?"#), "{e}");

        let bad_preset = MINIMAL.replace("anthropic-tier4-sonnet-4.x", "anthropic-tier9-sonnet-4.x");
        let e = parse(&bad_preset).unwrap_err().to_string();
        assert!(
            e.contains(
                r#"deployments."anthropic/sonnet".preset: unknown preset "anthropic-tier9-sonnet-4.x""#
            ),
            "{e}"
        );

        let bad_type = MINIMAL.replace(r#"limits.burst = "10s""#, r#"limits.rpm = "many""#);
        let e = parse(&bad_type).unwrap_err().to_string();
        assert!(e.contains(r#"deployments."anthropic/sonnet".limits.rpm: invalid type"#), "{e}");

        let unknown_field = MINIMAL.replace(r#"limits.burst = "10s""#, "limits.rpn = 5");
        let e = parse(&unknown_field).unwrap_err().to_string();
        assert!(e.contains(r#"deployments."anthropic/sonnet".limits.rpn: unknown field `rpn`"#), "{e}");

        let zero = MINIMAL.replace(r#"limits.burst = "10s""#, "limits.rpm = 0");
        let e = parse(&zero).unwrap_err().to_string();
        assert!(e.contains(r#"deployments."anthropic/sonnet".limits.rpm: must be > 0"#), "{e}");

        let negative_price = MINIMAL.replace(r#"limits.burst = "10s""#, "prices.input_usd_per_mtok = -1.0");
        let e = parse(&negative_price).unwrap_err().to_string();
        assert!(e.contains("prices.input_usd_per_mtok: must be a finite number >= 0, got -1"), "{e}");

        let nan = MINIMAL.replace(r#"limits.burst = "10s""#, "errors.overloaded_rate = nan");
        let e = parse(&nan).unwrap_err().to_string();
        assert!(e.contains("errors.overloaded_rate: must be a probability in [0, 1], got NaN"), "{e}");
    }

    #[test]
    fn api_keys_are_named_by_environment_variable_and_never_echoed() {
        let text = MINIMAL.replace(
            "limits.burst = \"10s\"",
            "limits.burst = \"10s\"\napi_key_env = \"ANTHROPIC_API_KEY\"\napi_model = \"claude-sonnet-4-5\"",
        );
        let s = parse(&text).unwrap();
        let expected = DeploymentApi {
            key_env: Some("ANTHROPIC_API_KEY".into()),
            model: Some("claude-sonnet-4-5".into()),
        };
        assert_eq!(s.apis, vec![expected, DeploymentApi::default()]);
        assert_eq!(s.deployments[0], parse(MINIMAL).unwrap().deployments[0], "a simulation ignores them");
        // A key pasted where its variable's name belongs is refused without being shown.
        let text = MINIMAL.replace("limits.burst = \"10s\"", "api_key_env = \"sk-ant-api03-secret\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(7), "the line of the key: {e}");
        let e = e.to_string();
        assert!(
            e.contains(
                "deployments.\"anthropic/sonnet\".api_key_env: must be the name of an environment variable"
            ),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        let e = parse(&MINIMAL.replace("limits.burst = \"10s\"", "api_model = 3")).unwrap_err().to_string();
        assert!(e.contains("api_model: must be a non-empty string"), "{e}");
    }

    #[test]
    fn top_level_typos_are_reported_with_their_line() {
        let typo = MINIMAL.replace("seed = 7", "seed = 7\nsede = 8");
        let e = parse(&typo).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `sede`"), "{e}");
        let policy_typo = MINIMAL
            .replace(r#"kind = "single", deployment"#, r#"kind = "single", max_atempts = 2, deployment"#);
        let e = parse(&policy_typo).unwrap_err();
        assert!(e.message.contains("unknown field `max_atempts`"), "{e}");
        assert!(e.line.is_some());
        let bad_duration = MINIMAL.replace(r#"limits.burst = "10s""#, r#"limits.burst = "10 parsecs""#);
        let e = parse(&bad_duration).unwrap_err().to_string();
        assert!(e.contains("limits.burst: invalid duration"), "{e}");
    }

    #[test]
    fn from_value_validates_like_parse_and_names_paths() {
        let table: toml::Table = MINIMAL.parse().unwrap();
        let from_table = Scenario::from_value(table, Path::new("s.toml"), Path::new("dir")).unwrap();
        assert_eq!(from_table, parse(MINIMAL).unwrap());
        let mut table: toml::Table = MINIMAL.parse().unwrap();
        table["trace"].as_table_mut().unwrap().insert("replay".into(), toml::Value::Integer(3));
        let e = Scenario::from_value(table, Path::new("s.toml"), Path::new("dir")).unwrap_err().to_string();
        assert!(e.starts_with("s.toml: trace.replay: invalid type"), "{e}");
    }
}
