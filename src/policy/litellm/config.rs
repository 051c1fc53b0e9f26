//! The `litellm` policy's configuration: the schema of a scenario's inline form
//! (`model_list`, `router_settings`) and the import of a LiteLLM proxy `config.yaml` into it.
//!
//! It owns which LiteLLM keys exist and what they mean to routing; it must not know how the
//! router uses them (that is `super`, the router itself).

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
    /// `litellm_params.input_cost_per_token` / `output_cost_per_token`, USD: what
    /// cost-based routing ranks by (`lowest_cost.py`); absent or 0, the scenario deployment's
    /// own price for that direction.
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
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
            // A quota 429 (a spend cap) is a RateLimitError to LiteLLM like any other 429.
            FailureKind::RateLimited | FailureKind::ExceedsLimit | FailureKind::QuotaExhausted => {
                ErrorClass::RateLimit
            }
            FailureKind::Timeout | FailureKind::SlowFirstToken => ErrorClass::Timeout,
            FailureKind::Overloaded => ErrorClass::InternalServer,
            FailureKind::ServerError
            | FailureKind::BatchQueueFull
            | FailureKind::BatchExpired
            | FailureKind::BatchUnsupported
            | FailureKind::Cancelled
            | FailureKind::MidStream => ErrorClass::InternalServer,
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
    /// Key paths not in the import's table, accepted and listed apart in that note.
    pub unknown: Vec<String>,
}

mod import;
mod yaml;

pub use import::{ignored_note, import_text, load_yaml, ImportError, Problem};
pub use yaml::{
    parse as parse_yaml, resolve_plain as resolve_yaml_scalar, Node as YamlNode, Value as YamlValue,
};
