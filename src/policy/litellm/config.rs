//! The `litellm` policy's configuration: the schema of a scenario's inline form
//! (`model_list`, `router_settings`) and the import of a LiteLLM proxy `config.yaml` into it.
//!
//! It owns which LiteLLM keys exist and what they mean to routing; it must not know how the
//! router uses them (that is `super`, the router itself).

use super::super::config::Catalog;
use crate::provider::FailureKind;
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `model_list` entry, inline form: a deployment of a model group.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The group this deployment serves (what callers ask for).
    pub model_name: String,
    /// The scenario deployment behind it.
    pub deployment: String,
    /// `model_info.id`: how fallbacks and logs may name this deployment.
    #[serde(default)]
    pub id: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub max_parallel_requests: Option<u32>,
    pub timeout: Option<Duration>,
    /// `litellm_params.max_retries`: the SDK's own retries. Read, and without effect behind a
    /// router: LiteLLM 1.110.2 sets `max_retries = 0` on every call its router makes.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// `litellm_params.order`: lower orders are tried first; higher ones only when every
    /// deployment of a lower order is unavailable.
    #[serde(default)]
    pub order: Option<u32>,
    /// `litellm_params.tags`: with `enable_tag_filtering`, requests whose class is one of these
    /// tags go only to deployments carrying it; `default` marks where untagged requests go.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// LiteLLM's exception classes, as `retry_policy` and `allowed_fails_policy` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorClass {
    BadRequest,
    Authentication,
    Timeout,
    RateLimit,
    ContentPolicyViolation,
    InternalServer,
    ServiceUnavailable,
    BadGateway,
    NotFound,
}

impl ErrorClass {
    /// The class LiteLLM raises for a failure the provider model produces.
    pub fn of(kind: FailureKind) -> ErrorClass {
        match kind {
            FailureKind::RateLimited | FailureKind::ExceedsLimit => ErrorClass::RateLimit,
            FailureKind::Timeout | FailureKind::SlowFirstToken => ErrorClass::Timeout,
            FailureKind::Overloaded => ErrorClass::InternalServer,
            FailureKind::ServerError
            | FailureKind::BatchQueueFull
            | FailureKind::BatchExpired
            | FailureKind::BatchUnsupported
            | FailureKind::Cancelled => ErrorClass::InternalServer,
        }
    }
}

/// Retries per exception class (`retry_policy`); a class not given uses `num_retries`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)] // LiteLLM's own key names, so configs paste in unchanged.
pub struct RetryPolicy {
    pub BadRequestErrorRetries: Option<u32>,
    pub AuthenticationErrorRetries: Option<u32>,
    pub TimeoutErrorRetries: Option<u32>,
    pub RateLimitErrorRetries: Option<u32>,
    pub ContentPolicyViolationErrorRetries: Option<u32>,
    pub InternalServerErrorRetries: Option<u32>,
    pub ServiceUnavailableErrorRetries: Option<u32>,
    pub NotFoundErrorRetries: Option<u32>,
    pub DefaultRetries: Option<u32>,
}

impl RetryPolicy {
    /// Retries allowed after an error of `class`, if the policy sets them.
    pub fn retries(&self, class: ErrorClass) -> Option<u32> {
        let specific = match class {
            ErrorClass::BadRequest => self.BadRequestErrorRetries,
            ErrorClass::Authentication => self.AuthenticationErrorRetries,
            ErrorClass::Timeout => self.TimeoutErrorRetries,
            ErrorClass::RateLimit => self.RateLimitErrorRetries,
            ErrorClass::ContentPolicyViolation => self.ContentPolicyViolationErrorRetries,
            ErrorClass::InternalServer => self.InternalServerErrorRetries,
            ErrorClass::ServiceUnavailable => self.ServiceUnavailableErrorRetries,
            ErrorClass::NotFound => self.NotFoundErrorRetries,
            ErrorClass::BadGateway => None,
        };
        specific.or(self.DefaultRetries)
    }
}

/// Failures tolerated per exception class before a cooldown (`allowed_fails_policy`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)] // LiteLLM's own key names.
pub struct AllowedFailsPolicy {
    pub BadRequestErrorAllowedFails: Option<u32>,
    pub AuthenticationErrorAllowedFails: Option<u32>,
    pub TimeoutErrorAllowedFails: Option<u32>,
    pub RateLimitErrorAllowedFails: Option<u32>,
    pub ContentPolicyViolationErrorAllowedFails: Option<u32>,
    pub InternalServerErrorAllowedFails: Option<u32>,
    pub ServiceUnavailableErrorAllowedFails: Option<u32>,
    pub BadGatewayErrorAllowedFails: Option<u32>,
    pub NotFoundErrorAllowedFails: Option<u32>,
}

impl AllowedFailsPolicy {
    pub fn allowed_fails(&self, class: ErrorClass) -> Option<u32> {
        match class {
            ErrorClass::BadRequest => self.BadRequestErrorAllowedFails,
            ErrorClass::Authentication => self.AuthenticationErrorAllowedFails,
            ErrorClass::Timeout => self.TimeoutErrorAllowedFails,
            ErrorClass::RateLimit => self.RateLimitErrorAllowedFails,
            ErrorClass::ContentPolicyViolation => self.ContentPolicyViolationErrorAllowedFails,
            ErrorClass::InternalServer => self.InternalServerErrorAllowedFails,
            ErrorClass::ServiceUnavailable => self.ServiceUnavailableErrorAllowedFails,
            ErrorClass::BadGateway => self.BadGatewayErrorAllowedFails,
            ErrorClass::NotFound => self.NotFoundErrorAllowedFails,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == AllowedFailsPolicy::default()
    }
}

/// `router_settings` (and the routing keys of `litellm_settings`), with LiteLLM's defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    pub routing_strategy: RoutingStrategy,
    /// Router-level retries per model group (LiteLLM's default: 2, so ≤ 3 attempts a group).
    pub num_retries: u32,
    /// `None` is LiteLLM's default cooldown mode (failure rates over a minute); a number
    /// switches to counting failures over `cooldown_time` from the first one.
    pub allowed_fails: Option<u32>,
    pub allowed_fails_policy: AllowedFailsPolicy,
    pub retry_policy: RetryPolicy,
    pub cooldown_time: Duration,
    pub disable_cooldowns: bool,
    /// `[{ group = ["fallback group", …] }, …]`.
    pub fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    /// Groups tried after any group that has no `fallbacks` entry of its own.
    pub default_fallbacks: Vec<String>,
    /// Fallback groups tried at most (LiteLLM's default: 5).
    pub max_fallbacks: u32,
    /// Route by tag: only deployments whose `tags` hold the request's class.
    pub enable_tag_filtering: bool,
    /// Latency-based: pick at random among deployments within `(1 + buffer) ×` the best.
    pub lowest_latency_buffer: f64,
    /// Latency-based: how long latency samples count.
    pub ttl: Duration,
    /// Latency-based: samples kept per deployment.
    pub max_latency_list_size: usize,
    /// Router-wide per-attempt timeout (a deployment's own `timeout` wins).
    pub timeout: Option<Duration>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            routing_strategy: RoutingStrategy::SimpleShuffle,
            num_retries: 2,
            allowed_fails: None,
            allowed_fails_policy: AllowedFailsPolicy::default(),
            retry_policy: RetryPolicy::default(),
            cooldown_time: Duration::from_secs(5),
            disable_cooldowns: false,
            fallbacks: Vec::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: 5,
            enable_tag_filtering: false,
            lowest_latency_buffer: 0.0,
            ttl: Duration::from_mins(60),
            max_latency_list_size: 10,
            timeout: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    #[default]
    SimpleShuffle,
    LeastBusy,
    UsageBasedRouting,
    #[serde(alias = "usage-based-routing-v2")]
    UsageBasedRoutingV2,
    LatencyBasedRouting,
    CostBasedRouting,
}

/// The `litellm` policy's options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LiteLlmConfig {
    /// A LiteLLM proxy `config.yaml` (relative to the scenario); replaces `model_list` and
    /// `router_settings`.
    pub config_file: Option<std::path::PathBuf>,
    /// `litellm_params.model` → scenario deployment, for `config_file`.
    #[serde(default)]
    pub deployment_map: BTreeMap<String, String>,
    #[serde(default)]
    pub model_list: Vec<ModelEntry>,
    #[serde(default)]
    pub router_settings: RouterSettings,
    /// The group every request asks for (default: the first group listed).
    pub model: Option<String>,
    /// Per-class group overrides, e.g. `{ interactive = "fast", bulk = "cheap" }`.
    #[serde(default)]
    pub models_by_class: BTreeMap<String, String>,
    /// Whether clients stream: latency-based routing then ranks by time to first token.
    #[serde(default)]
    pub stream: bool,
}

/// A `config.yaml` read into the inline form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportedConfig {
    pub model_list: Vec<ModelEntry>,
    pub router_settings: RouterSettings,
    /// Key paths accepted but ignored (connections, secrets, logging), for one note on stderr.
    pub ignored: Vec<String>,
}

/// Keys of a LiteLLM config that only concern connections, secrets or infrastructure: they do
/// not change routing, so they are accepted and ignored.
const IGNORED_PARAMS: &[&str] = &[
    "api_key",
    "api_base",
    "api_version",
    "organization",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_region_name",
    "vertex_project",
    "vertex_location",
    "custom_llm_provider",
    "input_cost_per_token",
    "output_cost_per_token",
    "max_tokens",
    "temperature",
    "stream_timeout",
    "model_info",
    "region_name",
    "drop_params",
];
const IGNORED_ROUTER_SETTINGS: &[&str] = &[
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
    "enable_pre_call_checks",
    "cache_responses",
    "set_verbose",
    "debug_level",
    "model_group_alias",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "default_litellm_params",
];

fn yaml_u64(v: &serde_yaml::Value, field: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{field}: expected a non-negative integer, got {v:?}"))
}

fn yaml_f64(v: &serde_yaml::Value, field: &str) -> Result<f64, String> {
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{field}: expected a number, got {v:?}"))
}

/// Seconds as LiteLLM writes them (a number), or one of our duration strings.
fn yaml_seconds(v: &serde_yaml::Value, field: &str) -> Result<Duration, String> {
    if let Some(text) = v.as_str() {
        return text.parse().map_err(|e| format!("{field}: {e}"));
    }
    let s = yaml_f64(v, field)?;
    if s < 0.0 {
        return Err(format!("{field}: must be >= 0, got {s}"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Reads a LiteLLM proxy `config.yaml`. Errors name the file and the key path.
pub fn load_yaml(
    path: &std::path::Path,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<ImportedConfig, String> {
    let file = catalog.resolve_path(path).display().to_string();
    let text = catalog.read_file(path).map_err(|e| format!("config_file: {e}"))?;
    let root: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
        format!("config_file: {file}{line}: {e}")
    })?;
    let err = |field: String, message: String| format!("config_file: {file}: {field}: {message}");
    let list = root
        .get("model_list")
        .and_then(|v| v.as_sequence())
        .ok_or_else(|| err("model_list".into(), "missing or not a list".into()))?;
    let mut entries = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("model_list[{i}]");
        let model_name = item
            .get("model_name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err(format!("{field}.model_name"), "missing".into()))?;
        let params = item
            .get("litellm_params")
            .and_then(|v| v.as_mapping())
            .ok_or_else(|| err(format!("{field}.litellm_params"), "missing".into()))?;
        let model = params
            .get("model")
            .and_then(|v| v.as_str())
            .ok_or_else(|| err(format!("{field}.litellm_params.model"), "missing".into()))?;
        let deployment_name = match map.get(model) {
            Some(d) => d.clone(),
            None => {
                let by_name = catalog.deployments.iter().find(|d| d.name == model);
                let tail = model.rsplit('/').next().unwrap_or(model);
                let by_model: Vec<_> =
                    catalog.deployments.iter().filter(|d| d.model == tail || d.model == model).collect();
                match (by_name, by_model.as_slice()) {
                    (Some(d), _) => d.name.clone(),
                    (None, [d]) => d.name.clone(),
                    _ => {
                        return Err(err(
                            format!("{field}.litellm_params.model"),
                            format!("{model:?} matches no single scenario deployment; map it with deployment_map = {{ {model:?} = \"<deployment>\" }}"),
                        ))
                    }
                }
            }
        };
        catalog
            .id(&format!("deployment_map.{model:?}"), &deployment_name)
            .map_err(|e| err(field.clone(), e))?;
        let mut e = ModelEntry {
            model_name: model_name.to_string(),
            deployment: deployment_name,
            ..ModelEntry::default()
        };
        for (key, value) in params {
            let key = key.as_str().unwrap_or_default();
            let f = format!("{field}.litellm_params.{key}");
            match key {
                "model" => {}
                "rpm" => e.rpm = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))?),
                "tpm" => e.tpm = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))?),
                "weight" => e.weight = Some(yaml_f64(value, &f).map_err(|m| err(f.clone(), m))?),
                "max_parallel_requests" => {
                    e.max_parallel_requests = Some(yaml_u64(value, &f).map_err(|m| err(f.clone(), m))? as u32)
                }
                "timeout" => e.timeout = Some(yaml_seconds(value, &f).map_err(|m| err(f.clone(), m))?),
                k if IGNORED_PARAMS.contains(&k) => {}
                other => {
                    return Err(err(f, format!("unsupported key {other:?} (routing keys we model: model, rpm, tpm, weight, max_parallel_requests, timeout)")))
                }
            }
        }
        entries.push(e);
    }
    let mut settings = RouterSettings::default();
    // LiteLLM accepts router options both under router_settings and litellm_settings.
    for section in ["litellm_settings", "router_settings"] {
        let Some(map) = root.get(section).and_then(|v| v.as_mapping()) else { continue };
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            let f = format!("{section}.{key}");
            let wrap = |m: String| err(f.clone(), m);
            match key {
                "routing_strategy" => {
                    let name = value.as_str().unwrap_or_default();
                    settings.routing_strategy = serde_yaml::from_value(serde_yaml::Value::String(name.into()))
                        .map_err(|_| wrap(format!("unsupported routing strategy {name:?} (simple-shuffle, least-busy, usage-based-routing, latency-based-routing, cost-based-routing)")))?;
                }
                "num_retries" => settings.num_retries = yaml_u64(value, &f).map_err(wrap)? as u32,
                "allowed_fails" => settings.allowed_fails = Some(yaml_u64(value, &f).map_err(wrap)? as u32),
                "cooldown_time" => settings.cooldown_time = yaml_seconds(value, &f).map_err(wrap)?,
                "timeout" | "request_timeout" => {
                    settings.timeout = Some(yaml_seconds(value, &f).map_err(wrap)?)
                }
                "fallbacks" => {
                    settings.fallbacks = serde_yaml::from_value(value.clone())
                        .map_err(|e| wrap(format!("expected a list of {{group: [fallback groups]}}: {e}")))?
                }
                "routing_strategy_args" => {
                    if let Some(args) = value.as_mapping() {
                        for (k, v) in args {
                            match k.as_str().unwrap_or_default() {
                                "lowest_latency_buffer" => {
                                    settings.lowest_latency_buffer = yaml_f64(v, &f).map_err(wrap)?
                                }
                                "ttl" => settings.ttl = yaml_seconds(v, &f).map_err(wrap)?,
                                other => {
                                    return Err(wrap(format!(
                                        "unsupported routing_strategy_args key {other:?}"
                                    )))
                                }
                            }
                        }
                    }
                }
                k if IGNORED_ROUTER_SETTINGS.contains(&k) => {}
                other if section == "litellm_settings" => {
                    // litellm_settings holds much that is not routing (callbacks, logging…).
                    let _ = other;
                }
                other => return Err(wrap(format!("unsupported router setting {other:?}"))),
            }
        }
    }
    Ok(ImportedConfig { model_list: entries, router_settings: settings, ignored: Vec::new() })
}
