//! The policy schema of `[[strategy]] policy = { kind = … }` and how each kind is built.
//!
//! Every policy kind's options live with the policy (its own `…Config` struct); this module
//! is the tagged union over them and the [`Catalog`] a policy resolves deployment names
//! against. Errors are `path: message` relative to the policy table, e.g.
//! `chain[1]: unknown deployment "anthropic/sonet"; did you mean "anthropic/sonnet"?`.

use super::adaptive::{Adaptive, AdaptiveConfig};
use super::deferral::{Deferral, DeferralConfig};
use super::hedge::{Hedge, HedgeConfig};
use super::litellm::config::{ignored_note, import_text};
use super::litellm::{LiteLlm, LiteLlmConfig};
use super::openrouter::{OpenRouter, OpenRouterConfig};
use super::replicas::{Replicas, ReplicasConfig};
use super::retry_layer::{RetryLayer, RetryLayerConfig};
use super::rotation::{Rotation, RotationConfig};
use super::rules::{Rules, RulesConfig};
use super::smoothing::{ConcurrencyCap, ConcurrencyCapConfig, Smoothing, SmoothingConfig};
use super::{Backoff, BatchOnly, Fallback, Policy};
use crate::provider::{AttemptOptions, Deployment, DeploymentId};
use crate::suggest::suggestion;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A policy configuration that cannot be built: `path: message`, one line, the path relative
/// to the policy table (`chain[1]`, `inner.backoff.max`); the scenario adds its own prefix
/// (`strategy[2].policy.`). The one error type of every policy kind's `build`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

impl PolicyError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError { path: path.into(), message: message.into() }
    }

    /// The same error seen from an enclosing table: `inner` + `backoff.max` → `inner.backoff.max`.
    pub fn within(self, prefix: &str) -> PolicyError {
        PolicyError { path: format!("{prefix}.{}", self.path), message: self.message }
    }
}

/// The files a policy reads (a LiteLLM `config.yaml`), read once when a scenario is loaded,
/// so building a policy does no IO: a policy built for a run is exactly the one that was
/// validated, even if a file changes meanwhile. Also the notes the files leave for the user
/// (keys an import ignored), printed once at scenario load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyFiles {
    /// By resolved path.
    texts: BTreeMap<PathBuf, FileText>,
    notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum FileText {
    Read(String),
    /// Kept to be reported where the build meets the file, with its field path.
    Unreadable {
        reason: String,
    },
}

impl PolicyFiles {
    /// Reads every file `config` (and every policy nested in it) names, relative to `base_dir`.
    /// A file that cannot be read is remembered as such: the build reports it, naming the field.
    pub fn read(config: &PolicyConfig, base_dir: &Path, deployments: &[Deployment]) -> PolicyFiles {
        let mut files = PolicyFiles::default();
        let mut pending = vec![config];
        while let Some(config) = pending.pop() {
            // Depth first in build order, so notes come in the order the policies are built.
            pending.extend(config.nested().into_iter().rev());
            let PolicyConfig::Litellm(litellm) = config else { continue };
            let Some(path) = &litellm.config_file else { continue };
            let resolved = base_dir.join(path);
            let text = files.texts.entry(resolved.clone()).or_insert_with(|| {
                match std::fs::read_to_string(&resolved) {
                    Ok(text) => FileText::Read(text),
                    Err(e) => FileText::Unreadable { reason: e.to_string() },
                }
            });
            let FileText::Read(text) = text else { continue };
            let nothing_read = PolicyFiles::default();
            let catalog = Catalog { deployments, base_dir, files: &nothing_read };
            let file = resolved.display().to_string();
            // An import error is the build's to report; only a clean import leaves notes.
            let Ok(imported) = import_text(text, &file, &litellm.deployment_map, &catalog) else { continue };
            if !imported.ignored.is_empty() || !imported.unknown.is_empty() {
                let note = ignored_note(&file, &imported.ignored, &imported.unknown);
                if !files.notes.contains(&note) {
                    files.notes.push(note);
                }
            }
        }
        files
    }

    /// What the files left for the user, in build order, each once.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// The deployments a policy may route to, and the files it may read.
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a> {
    pub deployments: &'a [Deployment],
    /// Directory of the scenario file (for `config_file = "litellm.yaml"`).
    pub base_dir: &'a Path,
    /// The files read when the scenario was loaded.
    pub files: &'a PolicyFiles,
}

impl<'a> Catalog<'a> {
    /// The text of a file relative to the scenario, as read when the scenario was loaded.
    pub fn read_file(&self, path: &Path) -> Result<&'a str, PolicyError> {
        let resolved = self.resolve_path(path);
        match self.files.texts.get(&resolved) {
            Some(FileText::Read(text)) => Ok(text),
            Some(FileText::Unreadable { reason }) => {
                Err(PolicyError::new(resolved.display().to_string(), format!("cannot read: {reason}")))
            }
            None => Err(PolicyError::new(
                resolved.display().to_string(),
                "was not read with the scenario (policy files are read by PolicyFiles::read)",
            )),
        }
    }

    /// Resolves a deployment name; the error names `field` and suggests a close name.
    pub fn id(&self, field: &str, name: &str) -> Result<DeploymentId, PolicyError> {
        self.deployments.iter().position(|d| d.name == name).map(|i| DeploymentId(i as u16)).ok_or_else(
            || {
                let known: Vec<&str> = self.deployments.iter().map(|d| d.name.as_str()).collect();
                PolicyError::new(
                    field,
                    format!(
                        "unknown deployment {name:?}{} (known: {})",
                        suggestion(name, &known),
                        known.join(", ")
                    ),
                )
            },
        )
    }

    pub fn deployment(&self, id: DeploymentId) -> &Deployment {
        &self.deployments[id.index()]
    }

    pub fn all_ids(&self) -> Vec<DeploymentId> {
        (0..self.deployments.len()).map(|i| DeploymentId(i as u16)).collect()
    }

    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// A routing policy as written in `[[strategy]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Everything to one deployment, with the SDK's retry loop (2 retries, 0.5 s → 8 s).
    Single {
        deployment: String,
        #[serde(default = "default_single_attempts")]
        max_attempts: u32,
        #[serde(default)]
        backoff: Backoff,
        timeout: Option<Duration>,
        first_token_timeout: Option<Duration>,
    },
    /// An ordered chain: on any failure move on; back off after a full round.
    Fallback {
        chain: Vec<String>,
        #[serde(default = "default_fallback_attempts")]
        max_attempts: u32,
        #[serde(default)]
        backoff: Backoff,
        timeout: Option<Duration>,
        first_token_timeout: Option<Duration>,
    },
    /// Everything to one deployment's batch API.
    Batch {
        deployment: String,
        #[serde(default = "default_fallback_attempts")]
        max_attempts: u32,
        #[serde(default)]
        backoff: Backoff,
    },
    /// LiteLLM's Router: model groups, routing strategies, retries, fallbacks, cooldowns.
    Litellm(LiteLlmConfig),
    /// OpenRouter's provider preferences and default price-weighted load balancing.
    Openrouter(OpenRouterConfig),
    /// Class rules: match on class, token sizes, deadline → a sub-policy.
    Rules(RulesConfig),
    /// Client-side smoothing: a local limiter per deployment that queues instead of stampeding.
    Smoothing(SmoothingConfig),
    /// A global cap on requests in flight (the simplest fix users try).
    ConcurrencyCap(ConcurrencyCapConfig),
    /// Hedged requests: a second attempt after a delay; the first answer wins.
    Hedge(HedgeConfig),
    /// Adaptive concurrency per deployment (AIMD on 429s and remaining-capacity headers).
    Adaptive(AdaptiveConfig),
    /// Deadline-aware scheduling: hold work with slack until quiet periods.
    Deferral(DeferralConfig),
    /// A retry layer above the router (an SDK's `max_retries`, an agent harness).
    RetryLayer(RetryLayerConfig),
    /// The router run as N gateway replicas, each with its own state.
    Replicas(ReplicasConfig),
    /// A chain that cools down what failed (per deployment, model or API key) and may rotate
    /// where requests start.
    Rotation(RotationConfig),
}

fn default_single_attempts() -> u32 {
    3
}
fn default_fallback_attempts() -> u32 {
    6
}

/// Longest retry backoff a policy may configure: a client that waits longer than a day
/// between attempts has given up; longer values would only push events years out.
pub const MAX_BACKOFF: crate::time::Duration = crate::time::Duration::from_mins(24 * 60);

/// Checks shared by the retrying policies.
pub fn check_backoff(b: &Backoff) -> Result<(), PolicyError> {
    if !(b.multiplier.is_finite() && b.multiplier >= 1.0) {
        return Err(PolicyError::new("backoff.multiplier", format!("must be >= 1, got {}", b.multiplier)));
    }
    if !crate::validate::is_probability(b.jitter) {
        return Err(PolicyError::new("backoff.jitter", format!("must be in [0, 1], got {}", b.jitter)));
    }
    if b.max < b.initial {
        return Err(PolicyError::new(
            "backoff.max",
            format!("{} is shorter than backoff.initial {}", b.max, b.initial),
        ));
    }
    if b.max > MAX_BACKOFF {
        return Err(PolicyError::new(
            "backoff.max",
            format!("{} is above the maximum of {MAX_BACKOFF}", b.max),
        ));
    }
    Ok(())
}

pub fn check_attempts(n: u32) -> Result<(), PolicyError> {
    if n == 0 {
        Err(PolicyError::new("max_attempts", "must be >= 1"))
    } else {
        Ok(())
    }
}

/// A timeout option must be positive when given.
pub fn check_timeout(field: &str, t: &Option<Duration>) -> Result<(), PolicyError> {
    if t.is_some_and(Duration::is_zero) {
        return Err(PolicyError::new(field, "must be > 0 (omit for none)"));
    }
    Ok(())
}

/// A probability-like option in [0, 1].
pub fn check_fraction(field: &str, x: f64) -> Result<(), PolicyError> {
    if crate::validate::is_probability(x) {
        Ok(())
    } else {
        Err(PolicyError::new(field, format!("must be in [0, 1], got {x}")))
    }
}

/// Prefixes an inner error with the field it came from (`policy.` + `rules[0].…`).
pub fn nested(
    prefix: &str,
    result: Result<Box<dyn Policy>, PolicyError>,
) -> Result<Box<dyn Policy>, PolicyError> {
    result.map_err(|e| e.within(prefix))
}

impl PolicyConfig {
    /// The policies nested in this one, in the order `build` builds them.
    pub fn nested(&self) -> Vec<&PolicyConfig> {
        match self {
            PolicyConfig::Single { .. }
            | PolicyConfig::Fallback { .. }
            | PolicyConfig::Batch { .. }
            | PolicyConfig::Litellm(_)
            | PolicyConfig::Openrouter(_)
            | PolicyConfig::Rotation(_) => Vec::new(),
            PolicyConfig::Rules(c) => {
                c.rules.iter().map(|r| r.policy.as_ref()).chain([c.default.as_ref()]).collect()
            }
            PolicyConfig::Smoothing(c) => vec![&c.inner],
            PolicyConfig::ConcurrencyCap(c) => vec![&c.inner],
            PolicyConfig::Hedge(c) => vec![&c.inner],
            PolicyConfig::Adaptive(c) => vec![&c.inner],
            PolicyConfig::Deferral(c) => vec![&c.inner],
            PolicyConfig::RetryLayer(c) => vec![&c.inner],
            PolicyConfig::Replicas(c) => vec![&c.inner],
        }
    }

    /// Builds a fresh policy. Every run gets its own (policies keep state).
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Policy>, PolicyError> {
        Ok(match self {
            PolicyConfig::Single { deployment, max_attempts, backoff, timeout, first_token_timeout } => {
                check_attempts(*max_attempts)?;
                check_backoff(backoff)?;
                check_timeout("timeout", timeout)?;
                check_timeout("first_token_timeout", first_token_timeout)?;
                Box::new(Fallback {
                    chain: vec![catalog.id("deployment", deployment)?],
                    max_attempts: *max_attempts,
                    backoff: *backoff,
                    options: AttemptOptions {
                        timeout: *timeout,
                        first_token_timeout: *first_token_timeout,
                        batch: false,
                    },
                })
            }
            PolicyConfig::Fallback { chain, max_attempts, backoff, timeout, first_token_timeout } => {
                if chain.is_empty() {
                    return Err(PolicyError::new("chain", "must name at least one deployment"));
                }
                check_attempts(*max_attempts)?;
                check_backoff(backoff)?;
                check_timeout("timeout", timeout)?;
                check_timeout("first_token_timeout", first_token_timeout)?;
                let mut ids = Vec::with_capacity(chain.len());
                for (j, name) in chain.iter().enumerate() {
                    let id = catalog.id(&format!("chain[{j}]"), name)?;
                    if ids.contains(&id) {
                        return Err(PolicyError::new(
                            format!("chain[{j}]"),
                            format!("{name:?} appears twice in the chain"),
                        ));
                    }
                    ids.push(id);
                }
                Box::new(Fallback {
                    chain: ids,
                    max_attempts: *max_attempts,
                    backoff: *backoff,
                    options: AttemptOptions {
                        timeout: *timeout,
                        first_token_timeout: *first_token_timeout,
                        batch: false,
                    },
                })
            }
            PolicyConfig::Batch { deployment, max_attempts, backoff } => {
                check_attempts(*max_attempts)?;
                check_backoff(backoff)?;
                let id = catalog.id("deployment", deployment)?;
                if catalog.deployment(id).batch.is_none() {
                    return Err(PolicyError::new(
                        "deployment",
                        format!("{deployment:?} has no batch API (add a `batch` section)"),
                    ));
                }
                Box::new(BatchOnly { deployment: id, max_attempts: *max_attempts, backoff: *backoff })
            }
            PolicyConfig::Litellm(c) => Box::new(LiteLlm::build(c, catalog)?),
            PolicyConfig::Openrouter(c) => Box::new(OpenRouter::build(c, catalog)?),
            PolicyConfig::Rules(c) => Box::new(Rules::build(c, catalog)?),
            PolicyConfig::Smoothing(c) => Box::new(Smoothing::build(c, catalog)?),
            PolicyConfig::ConcurrencyCap(c) => Box::new(ConcurrencyCap::build(c, catalog)?),
            PolicyConfig::Hedge(c) => Box::new(Hedge::build(c, catalog)?),
            PolicyConfig::Adaptive(c) => Box::new(Adaptive::build(c, catalog)?),
            PolicyConfig::Deferral(c) => Box::new(Deferral::build(c, catalog)?),
            PolicyConfig::RetryLayer(c) => Box::new(RetryLayer::build(c, catalog)?),
            PolicyConfig::Replicas(c) => Box::new(Replicas::build(c, catalog)?),
            PolicyConfig::Rotation(c) => Box::new(Rotation::build(c, catalog)?),
        })
    }
}
