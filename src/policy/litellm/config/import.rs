//! Import of a LiteLLM proxy `config.yaml` into the `litellm` policy's schema, reading each
//! key where LiteLLM 1.110.2 reads it, so no key that changes routing is dropped in silence.
//!
//! Every key is one of three kinds, kept in one table ([`KEYS`]):
//! - **modelled**: read into [`ModelEntry`] / [`RouterSettings`];
//! - **ignored**: does not change which deployment gets a request or when (credentials,
//!   endpoints, regions, logging callbacks, caching, guardrails, the proxy's
//!   `general_settings`…); accepted, and its path is listed once on stderr;
//! - **refused**: changes routing in LiteLLM but routesim does not model it; an error naming
//!   the file, the line and the key path. A refused key whose value leaves LiteLLM's default
//!   in place (`false`, `null`, `0`, empty) changes nothing and is ignored instead.
//!
//! A key the table does not list is **unknown**: accepted and listed on stderr apart from the
//! ignored keys, as "not in routesim's table, assumed not to affect routing" — not as a key
//! known not to. The assumption rests on where LiteLLM sends such keys: unknown
//! `litellm_params` go to the provider call, unknown `router_settings` are dropped by
//! LiteLLM with a warning, unknown `litellm_settings` set a `litellm.*` global that the router
//! does not read (its reads are `router_config.current_dynamic_config`). Unknown
//! `routing_strategy_args` are refused: they are strategy parameters by definition.

use super::yaml::{self, Node, Value};
use super::{AllowedFailsPolicy, ImportedConfig, ModelEntry, RetryPolicy, RouterSettings, RoutingStrategy};
use crate::policy::config::{Catalog, PolicyError};
use crate::time::Duration;
use std::collections::BTreeMap;

/// A `config.yaml` that cannot be imported. Display is one line:
/// `file:line: key.path: what is wrong`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}{}: {}{problem}", .line.map(|l| format!(":{l}")).unwrap_or_default(), if .path.is_empty() { String::new() } else { format!("{}: ", .path) })]
pub struct ImportError {
    pub file: String,
    pub line: Option<usize>,
    /// The key path inside the file, e.g. `model_list[2].litellm_params.tpm` (may be empty).
    pub path: String,
    pub problem: Problem,
}

/// What is wrong, without the path.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Syntax(String),
    #[error("missing")]
    Missing,
    #[error("expected {expected}, got {got}")]
    Expected { expected: &'static str, got: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "changes routing in LiteLLM ({why}) but routesim does not model it; remove it to simulate without it"
    )]
    NotModelled { why: &'static str },
    #[error("{0:?} matches no single scenario deployment; map it with deployment_map = {{ \"{0}\" = \"<deployment>\" }}")]
    NoDeployment(String),
}

impl From<ImportError> for PolicyError {
    /// The policy-level error (`LiteLlm::build` reports `config_file: …`).
    fn from(e: ImportError) -> PolicyError {
        PolicyError::new("config_file", e.to_string())
    }
}

/// Where a key sits in a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Top-level sections.
    Top,
    /// Keys of a `model_list` entry, beside `litellm_params`.
    Entry,
    /// `model_list[i].litellm_params`.
    Params,
    /// `model_list[i].model_info`.
    ModelInfo,
    RouterSettings,
    LitellmSettings,
    /// `router_settings.routing_strategy_args`.
    StrategyArgs,
    GeneralSettings,
}

/// What a key is to routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Modelled,
    Ignored,
    /// Changes routing in LiteLLM; not modelled (why, for the error).
    Refused(&'static str),
    /// Not in the table: accepted, listed apart from the ignored keys.
    Unknown,
}

use Kind::{Ignored, Modelled, Refused, Unknown};

/// Why deployment-level cooldown keys are refused.
const DEPLOYMENT_COOLDOWN: &str = "this deployment's own cooldown rule: with model_info.allowed_fails or allowed_fails_policy its failures are counted apart from the router's (a counter per error class for the policy), against its own thresholds, and a policy naming a 4xx class such as BadRequestError cools it on those too (router_utils/cooldown_handlers.py: _should_cooldown_deployment, _should_cooldown_based_on_deployment_policy, _has_explicit_allowed_fails_policy_for_exception)";
const DEPLOYMENT_COOLDOWN_TIME: &str = "this deployment's own cooldown length, model_info first, then litellm_params, handed to the router core with each of its failures (router_rust/surface/health.py: first_cooldown, report_failure)";
use Section::*;

/// The known keys and their kind: the one place the importer's decisions live. Sources are
/// LiteLLM 1.110.2's own code (paths in the installed package).
const KEYS: &[(Section, &str, Kind)] = &[
    // Top level (`proxy_server.py: load_config`).
    (Top, "model_list", Modelled),
    (Top, "router_settings", Modelled),
    (Top, "litellm_settings", Modelled),
    (Top, "general_settings", Modelled), // scanned for the few keys that route
    (Top, "environment_variables", Ignored),
    // Beside litellm_params: `lowest_tpm_rpm_v2.py` reads `deployment.get("rpm")` first.
    (Entry, "model_name", Modelled),
    (Entry, "litellm_params", Modelled),
    (Entry, "model_info", Modelled),
    (Entry, "rpm", Modelled),
    (Entry, "tpm", Modelled),
    (Entry, "itpm", Refused("input-token-per-minute pre-call check, io_token_rate_limit_check.py")),
    (Entry, "otpm", Refused("output-token-per-minute pre-call check, io_token_rate_limit_check.py")),
    // litellm_params (`types/router.py: GenericLiteLLMParams`).
    (Params, "model", Modelled),
    (Params, "rpm", Modelled),
    (Params, "tpm", Modelled),
    (Params, "weight", Modelled),
    (Params, "max_parallel_requests", Modelled),
    (Params, "timeout", Modelled),
    (Params, "max_retries", Modelled),
    (Params, "order", Modelled),
    (Params, "tags", Modelled),
    // `lowest_cost.py`: cost-based routing ranks by these first, else the cost-map row (the
    // scenario deployment's prices stand for that row).
    (Params, "input_cost_per_token", Modelled),
    (Params, "output_cost_per_token", Modelled),
    (Params, "cooldown_time", Refused(DEPLOYMENT_COOLDOWN_TIME)),
    (
        Params,
        "num_retries",
        Refused("this deployment's own router retries: its failures carry num_retries to the retry decision (router_rust/invoke/shaping.py: stamp_deployment_num_retries; core.py: attempt_failure)"),
    ),
    (
        Params,
        "client_side_timeout",
        Refused("a 408 from the caller's own timeout does not count against the deployment (router_utils/cooldown_handlers.py: is_caller_timeout_408)"),
    ),
    (
        Params,
        "kubernetes_pod_discovery",
        Refused("the deployment is expanded into one deployment per discovered pod (router_utils/kubernetes_pod_discovery.py)"),
    ),
    // Only a pass-through call (not simulated) picks by it (`router_rust/core.py: _uses_pass_through`).
    (Params, "use_in_pass_through", Ignored),
    (Params, "itpm", Refused("input-token-per-minute pre-call check")),
    (Params, "otpm", Refused("output-token-per-minute pre-call check")),
    (Params, "tpd", Refused("tokens-per-day limit")),
    (Params, "rpd", Refused("requests-per-day limit")),
    (Params, "priority", Refused("the priority request queue")),
    (Params, "tag_regex", Refused("tag routing by regular expression")),
    (Params, "max_budget", Refused("deployment budget routing, budget_limiter.py")),
    (Params, "budget_duration", Refused("deployment budget routing, budget_limiter.py")),
    (Params, "timeout_by_service_tier", Refused("per-service-tier timeouts")),
    (Params, "adaptive_router_config", Refused("the adaptive router, router_strategy/adaptive_router")),
    (Params, "adaptive_router_default_model", Refused("the adaptive router")),
    (Params, "auto_router_config", Refused("the semantic auto router, router_strategy/auto_router")),
    (Params, "auto_router_config_path", Refused("the semantic auto router")),
    (Params, "auto_router_default_model", Refused("the semantic auto router")),
    (Params, "auto_router_embedding_model", Refused("the semantic auto router")),
    (Params, "complexity_router_config", Refused("the complexity router, router_strategy/complexity_router")),
    (Params, "complexity_router_default_model", Refused("the complexity router")),
    (Params, "quality_router_config", Refused("the quality router, router_strategy/quality_router")),
    (Params, "quality_router_default_model", Refused("the quality router")),
    (Params, "switchyard_router_config", Refused("the switchyard router, router_strategy/switchyard_router")),
    // Only with enable_pre_call_checks (refused itself) does the region filter deployments.
    (Params, "region_name", Ignored),
    // Applies to streaming calls only; routesim applies `timeout` to every attempt.
    (Params, "stream_timeout", Ignored),
    (Params, "api_key", Ignored),
    (Params, "api_base", Ignored),
    (Params, "api_version", Ignored),
    (Params, "organization", Ignored),
    (Params, "custom_llm_provider", Ignored),
    (Params, "aws_access_key_id", Ignored),
    (Params, "aws_secret_access_key", Ignored),
    (Params, "aws_session_token", Ignored),
    (Params, "aws_region_name", Ignored),
    (Params, "s3_bucket_name", Ignored),
    (Params, "vertex_project", Ignored),
    (Params, "vertex_location", Ignored),
    (Params, "vertex_credentials", Ignored),
    (Params, "extra_headers", Ignored),
    (Params, "extra_body", Ignored),
    (Params, "max_tokens", Ignored),
    (Params, "temperature", Ignored),
    (Params, "drop_params", Ignored),
    (Params, "mock_response", Ignored),
    // model_info (`types/router.py: ModelInfo`).
    (ModelInfo, "id", Modelled),
    (ModelInfo, "rpm", Modelled),
    (ModelInfo, "tpm", Modelled),
    (ModelInfo, "itpm", Refused("input-token-per-minute pre-call check")),
    (ModelInfo, "otpm", Refused("output-token-per-minute pre-call check")),
    (ModelInfo, "access_windows", Refused("deployments open only in time windows, access_windows.py")),
    (ModelInfo, "enable_tag_filtering", Refused("per-deployment tag filtering")),
    (ModelInfo, "blocked", Refused("a blocked deployment is not routed to")),
    (ModelInfo, "allowed_fails", Refused(DEPLOYMENT_COOLDOWN)),
    (ModelInfo, "allowed_fails_policy", Refused(DEPLOYMENT_COOLDOWN)),
    (ModelInfo, "cooldown_time", Refused(DEPLOYMENT_COOLDOWN_TIME)),
    (
        ModelInfo,
        "supported_environments",
        Refused("the deployment exists only where LITELLM_ENVIRONMENT is one of them (router_rust/surface/registry.py: model_info_is_active_for_environment)"),
    ),
    (
        ModelInfo,
        "enforce_supported_endpoints",
        Refused("a deployment whose supported_endpoints exclude chat completions is not routed chat requests (router_utils/endpoint_eligibility.py: non_chat_endpoints)"),
    ),
    // Filters only with enforce_supported_endpoints (refused unless false).
    (ModelInfo, "supported_endpoints", Ignored),
    // Requests carry no team in a simulation; a team deployment is then included like any
    // other (`router_rust/surface/registry.py: _core_should_include_deployment`).
    (ModelInfo, "team_id", Ignored),
    (ModelInfo, "team_public_model_name", Ignored),
    (ModelInfo, "mode", Ignored),
    (ModelInfo, "base_model", Ignored),
    (ModelInfo, "supports_vision", Ignored),
    // router_settings (`router_api.py: ROUTER_INIT_ARGS`).
    (RouterSettings, "routing_strategy", Modelled),
    (RouterSettings, "num_retries", Modelled),
    (RouterSettings, "allowed_fails", Modelled),
    (RouterSettings, "allowed_fails_policy", Modelled),
    (RouterSettings, "retry_policy", Modelled),
    (RouterSettings, "cooldown_time", Modelled),
    (RouterSettings, "disable_cooldowns", Modelled),
    (RouterSettings, "fallbacks", Modelled),
    (RouterSettings, "default_fallbacks", Modelled),
    (RouterSettings, "max_fallbacks", Modelled),
    (RouterSettings, "enable_tag_filtering", Modelled),
    (RouterSettings, "routing_strategy_args", Modelled),
    (RouterSettings, "timeout", Modelled),
    (RouterSettings, "context_window_fallbacks", Refused("fallbacks on context-window errors")),
    (RouterSettings, "content_policy_fallbacks", Refused("fallbacks on content-policy errors")),
    (RouterSettings, "model_group_alias", Refused("requests for an alias go to another group")),
    (RouterSettings, "enable_pre_call_checks", Refused("deployments filtered by context window and region")),
    (RouterSettings, "optional_pre_call_checks", Refused("extra pre-call deployment filters")),
    (RouterSettings, "model_group_retry_policy", Refused("retry policies per model group")),
    (RouterSettings, "routing_groups", Refused("a routing strategy per group of models")),
    (RouterSettings, "provider_budget_config", Refused("provider budget routing")),
    (RouterSettings, "default_priority", Refused("the priority request queue")),
    (RouterSettings, "default_max_parallel_requests", Refused("a per-deployment concurrency semaphore")),
    (RouterSettings, "tag_filtering_match_any", Refused("how tags match")),
    (RouterSettings, "tag_routing_prefix", Refused("tags taken from a request prefix")),
    (RouterSettings, "plugins", Refused("routing plugins")),
    (RouterSettings, "retry_after", Refused("a minimum wait before router retries")),
    (RouterSettings, "deployment_affinity_ttl_seconds", Refused("sticky deployment affinity")),
    (RouterSettings, "model_group_affinity_config", Refused("sticky deployment affinity")),
    (RouterSettings, "session_affinity_repin_on_failover", Refused("sticky session affinity")),
    (RouterSettings, "enable_health_check_routing", Refused("deployments skipped by health checks")),
    (RouterSettings, "enable_weighted_failover", Refused("weighted failover")),
    (
        RouterSettings,
        "enable_mid_stream_fallback_continuation",
        Refused("fallback in the middle of a stream"),
    ),
    (RouterSettings, "fallback_on_unsupported_params", Refused("fallbacks on unsupported-parameter errors")),
    (RouterSettings, "stream_timeout", Ignored),
    (RouterSettings, "redis_url", Ignored),
    (RouterSettings, "redis_host", Ignored),
    (RouterSettings, "redis_port", Ignored),
    (RouterSettings, "redis_password", Ignored),
    (RouterSettings, "redis_db", Ignored),
    (RouterSettings, "cache_responses", Ignored),
    (RouterSettings, "cache_kwargs", Ignored),
    (RouterSettings, "caching_groups", Ignored),
    (RouterSettings, "client_ttl", Ignored),
    (RouterSettings, "polling_interval", Ignored),
    (RouterSettings, "default_litellm_params", Ignored),
    (RouterSettings, "set_verbose", Ignored),
    (RouterSettings, "debug_level", Ignored),
    (RouterSettings, "alerting_config", Ignored),
    (RouterSettings, "guardrail_list", Ignored),
    (RouterSettings, "health_check_staleness_threshold", Ignored),
    (RouterSettings, "health_check_ignore_transient_errors", Ignored),
    (RouterSettings, "background_health_check_model_groups", Ignored),
    // litellm_settings: the router reads only the globals of
    // `router_config.current_dynamic_config`; router_settings wins where both are given.
    (LitellmSettings, "num_retries", Modelled),
    (LitellmSettings, "request_timeout", Modelled),
    (LitellmSettings, "fallbacks", Modelled),
    (LitellmSettings, "default_fallbacks", Modelled),
    (LitellmSettings, "max_fallbacks", Modelled),
    // Copied into the router and into `litellm.allowed_fails` alike, so the router does not
    // count it as set (`_is_allowed_fails_set_on_router`): the default cooldown mode stays.
    (LitellmSettings, "allowed_fails", Ignored),
    (LitellmSettings, "context_window_fallbacks", Refused("fallbacks on context-window errors")),
    (LitellmSettings, "content_policy_fallbacks", Refused("fallbacks on content-policy errors")),
    (LitellmSettings, "model_alias_map", Refused("requests for an alias go to another model")),
    (LitellmSettings, "tag_budget_config", Refused("budgets per tag, budget_limiter.py")),
    // `litellm.*` globals the router never reads (its reads are `current_dynamic_config`).
    (LitellmSettings, "routing_strategy", Ignored),
    (LitellmSettings, "cooldown_time", Ignored),
    (LitellmSettings, "cache", Ignored),
    (LitellmSettings, "cache_params", Ignored),
    (LitellmSettings, "callbacks", Ignored),
    (LitellmSettings, "success_callback", Ignored),
    (LitellmSettings, "failure_callback", Ignored),
    (LitellmSettings, "drop_params", Ignored),
    (LitellmSettings, "set_verbose", Ignored),
    // routing_strategy_args (`lowest_latency.py`).
    (StrategyArgs, "lowest_latency_buffer", Modelled),
    (StrategyArgs, "ttl", Modelled),
    (StrategyArgs, "max_latency_list_size", Modelled),
    // general_settings: the proxy's own; these few change what reaches the router.
    (GeneralSettings, "master_key", Ignored),
    (GeneralSettings, "database_url", Ignored),
    (GeneralSettings, "enable_health_check_routing", Refused("deployments skipped by health checks")),
    (GeneralSettings, "global_max_parallel_requests", Refused("a proxy-wide concurrency limit")),
];

fn kind(section: Section, key: &str) -> Kind {
    match KEYS.iter().find(|(s, k, _)| *s == section && *k == key) {
        Some((_, _, kind)) => *kind,
        None if section == StrategyArgs => Refused("a routing strategy argument"),
        None => Unknown,
    }
}

/// The keys routesim models in a section.
#[cfg(test)]
fn modelled(section: Section) -> Vec<&'static str> {
    KEYS.iter().filter(|(s, _, k)| *s == section && *k == Modelled).map(|(_, k, _)| *k).collect()
}

/// Reading state: the file name for errors and the ignored and unknown paths seen so far.
struct Reader {
    file: String,
    ignored: Vec<String>,
    unknown: Vec<String>,
}

impl Reader {
    fn error(&self, line: usize, path: impl Into<String>, problem: Problem) -> ImportError {
        ImportError { file: self.file.clone(), line: Some(line), path: path.into(), problem }
    }

    fn expected(&self, node: &Node, path: &str, expected: &'static str) -> ImportError {
        self.error(node.line, path, Problem::Expected { expected, got: node.to_string() })
    }

    /// Records an ignored key; entries of `model_list` are listed once as `model_list[*]…`.
    fn ignore(&mut self, path: &str) {
        let general = generalise(path);
        if !self.ignored.contains(&general) {
            self.ignored.push(general);
        }
    }

    /// Records a key the table does not list, the same way.
    fn unknown(&mut self, path: &str) {
        let general = generalise(path);
        if !self.unknown.contains(&general) {
            self.unknown.push(general);
        }
    }

    /// The kind of `key`, with refusals turned into errors (unless the value is inert).
    fn classify(
        &mut self,
        section: Section,
        key: &Node,
        value: &Node,
        path: &str,
    ) -> Result<bool, ImportError> {
        match kind(section, &key.key_text()) {
            Modelled => Ok(true),
            Ignored => {
                self.ignore(path);
                Ok(false)
            }
            Unknown => {
                self.unknown(path);
                Ok(false)
            }
            Refused(_) if value.is_inert() => {
                self.ignore(path);
                Ok(false)
            }
            Refused(why) => Err(self.error(key.line, path, Problem::NotModelled { why })),
        }
    }

    fn map<'n>(&self, node: &'n Node, path: &str) -> Result<&'n [(Node, Node)], ImportError> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            Value::Null => Ok(&[]),
            _ => Err(self.expected(node, path, "a mapping")),
        }
    }

    fn string(&self, node: &Node, path: &str) -> Result<String, ImportError> {
        node.as_str().map(str::to_string).ok_or_else(|| self.expected(node, path, "a string"))
    }

    fn uint(&self, node: &Node, path: &str) -> Result<u64, ImportError> {
        let value = match node.value {
            Value::Int(i) => u64::try_from(i).ok(),
            // pydantic's int accepts an integral float (100.0).
            Value::Float(f) if f.fract() == 0.0 && (0.0..1e18).contains(&f) => Some(f as u64),
            _ => None,
        };
        value.ok_or_else(|| self.expected(node, path, "a non-negative integer"))
    }

    fn u32(&self, node: &Node, path: &str) -> Result<u32, ImportError> {
        let v = self.uint(node, path)?;
        u32::try_from(v)
            .map_err(|_| self.error(node.line, path, Problem::Invalid(format!("{v} is too large"))))
    }

    fn number(&self, node: &Node, path: &str) -> Result<f64, ImportError> {
        match node.value {
            Value::Int(i) => Ok(i as f64),
            Value::Float(f) if f.is_finite() => Ok(f),
            _ => Err(self.expected(node, path, "a number")),
        }
    }

    fn seconds(&self, node: &Node, path: &str) -> Result<Duration, ImportError> {
        let s = self.number(node, path)?;
        if s < 0.0 {
            return Err(self.expected(node, path, "a number of seconds >= 0"));
        }
        Ok(Duration::from_secs_f64(s))
    }

    fn boolean(&self, node: &Node, path: &str) -> Result<bool, ImportError> {
        match node.value {
            Value::Bool(b) => Ok(b),
            _ => Err(self.expected(node, path, "true or false")),
        }
    }

    fn strings(&self, node: &Node, path: &str) -> Result<Vec<String>, ImportError> {
        let items = node.as_seq().ok_or_else(|| self.expected(node, path, "a list of strings"))?;
        items.iter().enumerate().map(|(i, item)| self.string(item, &format!("{path}[{i}]"))).collect()
    }

    /// `[{group: [fallback groups]}, …]`.
    fn fallbacks(&self, node: &Node, path: &str) -> Result<Vec<BTreeMap<String, Vec<String>>>, ImportError> {
        let items =
            node.as_seq().ok_or_else(|| self.expected(node, path, "a list of {group: [fallback groups]}"))?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let entries = item
                .as_map()
                .ok_or_else(|| self.expected(item, &item_path, "a mapping {group: [fallback groups]}"))?;
            let mut map = BTreeMap::new();
            for (k, v) in entries {
                let key = k.key_text();
                map.insert(key.clone(), self.strings(v, &format!("{item_path}.{key}"))?);
            }
            out.push(map);
        }
        Ok(out)
    }
}

/// `model_list[3].litellm_params.api_key` → `model_list[*].litellm_params.api_key`.
fn generalise(path: &str) -> String {
    match path.strip_prefix("model_list[") {
        Some(rest) => match rest.find(']') {
            Some(end) => format!("model_list[*]{}", &rest[end + 1..]),
            None => path.to_string(),
        },
        None => path.to_string(),
    }
}

/// The `routing_strategy` names LiteLLM accepts (`routing_groups.py`), and ours.
fn strategy(name: &str) -> Result<RoutingStrategy, &'static str> {
    Ok(match name {
        "simple-shuffle" => RoutingStrategy::SimpleShuffle,
        "least-busy" => RoutingStrategy::LeastBusy,
        "usage-based-routing" => RoutingStrategy::UsageBasedRouting,
        "usage-based-routing-v2" => RoutingStrategy::UsageBasedRoutingV2,
        "latency-based-routing" => RoutingStrategy::LatencyBasedRouting,
        "cost-based-routing" => RoutingStrategy::CostBasedRouting,
        "lar1" => return Err("the lar1 routing strategy"),
        "provider-budget-routing" => return Err("provider budget routing"),
        _ => return Err(""),
    })
}

/// Settings given in `litellm_settings` that the router falls back to.
#[derive(Default)]
struct ProcessDefaults {
    num_retries: Option<u32>,
    request_timeout: Option<Duration>,
    fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    default_fallbacks: Vec<String>,
    max_fallbacks: Option<u32>,
}

/// Imports a LiteLLM proxy `config.yaml` (relative to the scenario, read with it) into the inline form,
/// mapping each `litellm_params.model` (or `model_info.id`) to a scenario deployment: through
/// `map`, else a deployment of that name, else the one deployment serving that model.
pub fn load_yaml(
    path: &std::path::Path,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<ImportedConfig, ImportError> {
    let file = catalog.resolve_path(path).display().to_string();
    let text = catalog.read_file(path).map_err(|e| ImportError {
        file: file.clone(),
        line: None,
        path: String::new(),
        problem: Problem::Read(e.message),
    })?;
    // The keys it ignored were noted when the file was read (`PolicyFiles::read`).
    import_text(text, &file, map, catalog)
}

/// The one-line note listing the ignored keys and, apart, the unknown ones (the first ten
/// of each, then a count).
pub fn ignored_note(file: &str, ignored: &[String], unknown: &[String]) -> String {
    const SHOWN: usize = 10;
    let list = |keys: &[String]| {
        let mut list = keys.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if keys.len() > SHOWN {
            list.push_str(&format!(" and {} more", keys.len() - SHOWN));
        }
        list
    };
    let mut parts = Vec::new();
    if !ignored.is_empty() {
        parts.push(format!("ignored LiteLLM keys that do not affect routing: {}", list(ignored)));
    }
    if !unknown.is_empty() {
        parts.push(format!(
            "keys not in routesim's table, assumed not to affect routing (check them): {}",
            list(unknown)
        ));
    }
    format!("{file}: {}", parts.join("; "))
}

/// [`load_yaml`] on text already read; `file` names it in errors.
pub fn import_text(
    text: &str,
    file: &str,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<ImportedConfig, ImportError> {
    let mut r = Reader { file: file.to_string(), ignored: Vec::new(), unknown: Vec::new() };
    let root = yaml::parse(text)
        .map_err(|e| r.error(e.line, "", Problem::Syntax(e.message)))?
        .ok_or_else(|| r.error(1, "model_list", Problem::Invalid("missing (the file is empty)".into())))?;
    let top = root.as_map().ok_or_else(|| r.expected(&root, "", "a mapping at the top of the file"))?;
    for (key, value) in top {
        let name = key.key_text();
        if !r.classify(Top, key, value, &name)? {
            continue;
        }
        if name == "general_settings" {
            for (k, v) in r.map(value, &name)? {
                let p = format!("general_settings.{}", k.key_text());
                r.classify(GeneralSettings, k, v, &p)?;
            }
        }
    }

    let list_node =
        root.get("model_list").ok_or_else(|| r.error(root.line, "model_list", Problem::Missing))?;
    let list =
        list_node.as_seq().ok_or_else(|| r.expected(list_node, "model_list", "a list of deployments"))?;
    if list.is_empty() {
        return Err(r.error(list_node.line, "model_list", Problem::Invalid("is empty".into())));
    }
    let mut model_list = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        model_list.push(entry(&mut r, item, &format!("model_list[{i}]"), map, catalog)?);
    }

    let mut process = ProcessDefaults::default();
    if let Some(section) = root.get("litellm_settings") {
        for (key, value) in r.map(section, "litellm_settings")? {
            let name = key.key_text();
            let p = format!("litellm_settings.{name}");
            if !r.classify(LitellmSettings, key, value, &p)? {
                continue;
            }
            match name.as_str() {
                "num_retries" => process.num_retries = opt(value, |v| r.u32(v, &p))?,
                "request_timeout" => process.request_timeout = opt(value, |v| r.seconds(v, &p))?,
                "fallbacks" => process.fallbacks = opt(value, |v| r.fallbacks(v, &p))?.unwrap_or_default(),
                "default_fallbacks" => {
                    process.default_fallbacks = opt(value, |v| r.strings(v, &p))?.unwrap_or_default()
                }
                "max_fallbacks" => process.max_fallbacks = opt(value, |v| r.u32(v, &p))?,
                _ => unreachable_key(&name),
            }
        }
    }

    let mut settings = RouterSettings::default();
    let (mut num_retries, mut max_fallbacks, mut timeout) = (None, None, None);
    let (mut fallbacks, mut default_fallbacks) = (Vec::new(), Vec::new());
    if let Some(section) = root.get("router_settings") {
        for (key, value) in r.map(section, "router_settings")? {
            let name = key.key_text();
            let p = format!("router_settings.{name}");
            if !r.classify(RouterSettings, key, value, &p)? {
                continue;
            }
            match name.as_str() {
                "routing_strategy" => {
                    if value.value != Value::Null {
                        let s = r.string(value, &p)?;
                        settings.routing_strategy = strategy(&s).map_err(|why| {
                            if why.is_empty() {
                                r.error(
                                    value.line,
                                    &p,
                                    Problem::Invalid(format!(
                                        "{value} is not a LiteLLM routing strategy (LiteLLM refuses it; known: simple-shuffle, least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, cost-based-routing, lar1, provider-budget-routing)"
                                    )),
                                )
                            } else {
                                r.error(value.line, &p, Problem::NotModelled { why })
                            }
                        })?;
                    }
                }
                "num_retries" => num_retries = opt(value, |v| r.u32(v, &p))?,
                "allowed_fails" => settings.allowed_fails = opt(value, |v| r.u32(v, &p))?,
                "allowed_fails_policy" => {
                    settings.allowed_fails_policy = allowed_fails_policy(&r, value, &p)?;
                }
                "retry_policy" => settings.retry_policy = retry_policy(&r, value, &p)?,
                "cooldown_time" => {
                    if let Some(t) = opt(value, |v| r.seconds(v, &p))? {
                        settings.cooldown_time = t;
                    }
                }
                "disable_cooldowns" => {
                    settings.disable_cooldowns = opt(value, |v| r.boolean(v, &p))?.unwrap_or(false)
                }
                "fallbacks" => fallbacks = opt(value, |v| r.fallbacks(v, &p))?.unwrap_or_default(),
                "default_fallbacks" => {
                    default_fallbacks = opt(value, |v| r.strings(v, &p))?.unwrap_or_default()
                }
                "max_fallbacks" => max_fallbacks = opt(value, |v| r.u32(v, &p))?,
                "enable_tag_filtering" => {
                    settings.enable_tag_filtering = opt(value, |v| r.boolean(v, &p))?.unwrap_or(false)
                }
                "routing_strategy_args" => strategy_args(&mut r, value, &p, &mut settings)?,
                "timeout" => timeout = opt(value, |v| r.seconds(v, &p))?,
                _ => unreachable_key(&name),
            }
        }
    }
    // `router_rust/core.py: Resolved.of`: the router's own value, else the process global.
    settings.num_retries = num_retries.or(process.num_retries).unwrap_or(settings.num_retries);
    settings.max_fallbacks = max_fallbacks.or(process.max_fallbacks).unwrap_or(settings.max_fallbacks);
    settings.timeout = timeout.or(process.request_timeout);
    settings.fallbacks = if fallbacks.is_empty() { process.fallbacks } else { fallbacks };
    settings.default_fallbacks =
        if default_fallbacks.is_empty() { process.default_fallbacks } else { default_fallbacks };
    Ok(ImportedConfig { model_list, router_settings: settings, ignored: r.ignored, unknown: r.unknown })
}

/// A key the table calls modelled that a handler does not read: a bug in this file. It is
/// unreachable because each handler matches every modelled key of its section (tests check).
fn unreachable_key(name: &str) {
    debug_assert!(false, "modelled key {name} has no handler");
}

/// `null` leaves a setting at its default.
fn opt<T>(node: &Node, read: impl FnOnce(&Node) -> Result<T, ImportError>) -> Result<Option<T>, ImportError> {
    if node.value == Value::Null {
        Ok(None)
    } else {
        read(node).map(Some)
    }
}

fn strategy_args(
    r: &mut Reader,
    node: &Node,
    path: &str,
    settings: &mut RouterSettings,
) -> Result<(), ImportError> {
    let entries = r.map(node, path)?.to_vec();
    for (key, value) in &entries {
        let name = key.key_text();
        let p = format!("{path}.{name}");
        if !r.classify(StrategyArgs, key, value, &p)? {
            continue;
        }
        match name.as_str() {
            "lowest_latency_buffer" => {
                let b = r.number(value, &p)?;
                if b < 0.0 {
                    return Err(r.expected(value, &p, "a number >= 0"));
                }
                settings.lowest_latency_buffer = b;
            }
            "ttl" => settings.ttl = r.seconds(value, &p)?,
            "max_latency_list_size" => {
                let n = r.uint(value, &p)?;
                settings.max_latency_list_size = usize::try_from(n)
                    .map_err(|_| r.error(value.line, &p, Problem::Invalid(format!("{n} is too large"))))?;
            }
            _ => unreachable_key(&name),
        }
    }
    Ok(())
}

/// Reads `{XErrorRetries: n, …}` into the struct by LiteLLM's own key names.
fn retry_policy(r: &Reader, node: &Node, path: &str) -> Result<RetryPolicy, ImportError> {
    let mut policy = RetryPolicy::default();
    for (key, value) in r.map(node, path)? {
        let name = key.key_text();
        let p = format!("{path}.{name}");
        let n = opt(value, |v| r.u32(v, &p))?;
        let slot = match name.as_str() {
            "BadRequestErrorRetries" => &mut policy.BadRequestErrorRetries,
            "AuthenticationErrorRetries" => &mut policy.AuthenticationErrorRetries,
            "TimeoutErrorRetries" => &mut policy.TimeoutErrorRetries,
            "RateLimitErrorRetries" => &mut policy.RateLimitErrorRetries,
            "ContentPolicyViolationErrorRetries" => &mut policy.ContentPolicyViolationErrorRetries,
            "InternalServerErrorRetries" => &mut policy.InternalServerErrorRetries,
            "ServiceUnavailableErrorRetries" => &mut policy.ServiceUnavailableErrorRetries,
            "NotFoundErrorRetries" => &mut policy.NotFoundErrorRetries,
            "DefaultRetries" => &mut policy.DefaultRetries,
            _ => {
                return Err(r.error(
                    key.line,
                    p,
                    Problem::Invalid("not a retry_policy key (LiteLLM's RetryPolicy: BadRequestErrorRetries, AuthenticationErrorRetries, TimeoutErrorRetries, RateLimitErrorRetries, ContentPolicyViolationErrorRetries, InternalServerErrorRetries, ServiceUnavailableErrorRetries, NotFoundErrorRetries, DefaultRetries)".into()),
                ))
            }
        };
        *slot = n;
    }
    Ok(policy)
}

fn allowed_fails_policy(r: &Reader, node: &Node, path: &str) -> Result<AllowedFailsPolicy, ImportError> {
    let mut policy = AllowedFailsPolicy::default();
    for (key, value) in r.map(node, path)? {
        let name = key.key_text();
        let p = format!("{path}.{name}");
        let n = opt(value, |v| r.u32(v, &p))?;
        let slot = match name.as_str() {
            "BadRequestErrorAllowedFails" => &mut policy.BadRequestErrorAllowedFails,
            "AuthenticationErrorAllowedFails" => &mut policy.AuthenticationErrorAllowedFails,
            "TimeoutErrorAllowedFails" => &mut policy.TimeoutErrorAllowedFails,
            "RateLimitErrorAllowedFails" => &mut policy.RateLimitErrorAllowedFails,
            "ContentPolicyViolationErrorAllowedFails" => &mut policy.ContentPolicyViolationErrorAllowedFails,
            "InternalServerErrorAllowedFails" => &mut policy.InternalServerErrorAllowedFails,
            "ServiceUnavailableErrorAllowedFails" => &mut policy.ServiceUnavailableErrorAllowedFails,
            "BadGatewayErrorAllowedFails" => &mut policy.BadGatewayErrorAllowedFails,
            "NotFoundErrorAllowedFails" => &mut policy.NotFoundErrorAllowedFails,
            _ => {
                return Err(r.error(
                    key.line,
                    p,
                    Problem::Invalid("not an allowed_fails_policy key (LiteLLM's AllowedFailsPolicy: BadRequestErrorAllowedFails, AuthenticationErrorAllowedFails, TimeoutErrorAllowedFails, RateLimitErrorAllowedFails, ContentPolicyViolationErrorAllowedFails, InternalServerErrorAllowedFails, ServiceUnavailableErrorAllowedFails, BadGatewayErrorAllowedFails, NotFoundErrorAllowedFails)".into()),
                ))
            }
        };
        *slot = n;
    }
    Ok(policy)
}

/// One `model_list` entry.
fn entry(
    r: &mut Reader,
    item: &Node,
    field: &str,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<ModelEntry, ImportError> {
    let entries = item
        .as_map()
        .ok_or_else(|| r.expected(item, field, "a mapping with model_name and litellm_params"))?;
    let model_name_node = item
        .get("model_name")
        .ok_or_else(|| r.error(item.line, format!("{field}.model_name"), Problem::Missing))?;
    let model_name = r.string(model_name_node, &format!("{field}.model_name"))?;
    let params_path = format!("{field}.litellm_params");
    let params_node =
        item.get("litellm_params").ok_or_else(|| r.error(item.line, &params_path, Problem::Missing))?;
    let params = params_node.as_map().ok_or_else(|| r.expected(params_node, &params_path, "a mapping"))?;
    let model_path = format!("{params_path}.model");
    let model_node = item
        .get("litellm_params")
        .and_then(|p| p.get("model"))
        .ok_or_else(|| r.error(params_node.line, &model_path, Problem::Missing))?;
    let model = r.string(model_node, &model_path)?;
    if model.starts_with("auto_router/") {
        return Err(r.error(
            model_node.line,
            model_path,
            Problem::NotModelled { why: "an auto_router/ deployment picks among other groups itself" },
        ));
    }
    let mut e = ModelEntry { model_name, ..ModelEntry::default() };
    // rpm/tpm: beside litellm_params, then in it, then in model_info (lowest_tpm_rpm_v2.py).
    let (mut entry_limits, mut param_limits, mut info_limits) = ((None, None), (None, None), (None, None));

    for (key, value) in entries {
        let name = key.key_text();
        let p = format!("{field}.{name}");
        if !r.classify(Entry, key, value, &p)? {
            continue;
        }
        match name.as_str() {
            "rpm" => entry_limits.0 = opt(value, |v| r.uint(v, &p))?,
            "tpm" => entry_limits.1 = opt(value, |v| r.uint(v, &p))?,
            "model_info" => {
                for (k, v) in r.map(value, &p)?.to_vec() {
                    let n = k.key_text();
                    let kp = format!("{p}.{n}");
                    if !r.classify(ModelInfo, &k, &v, &kp)? {
                        continue;
                    }
                    match n.as_str() {
                        "id" => {
                            e.id = match &v.value {
                                Value::Str(s) => Some(s.clone()),
                                Value::Int(i) => Some(i.to_string()),
                                Value::Null => None,
                                _ => return Err(r.expected(&v, &kp, "a string")),
                            }
                        }
                        "rpm" => info_limits.0 = opt(&v, |v| r.uint(v, &kp))?,
                        "tpm" => info_limits.1 = opt(&v, |v| r.uint(v, &kp))?,
                        _ => unreachable_key(&n),
                    }
                }
            }
            "model_name" | "litellm_params" => {}
            _ => unreachable_key(&name),
        }
    }
    for (key, value) in params {
        let name = key.key_text();
        let p = format!("{params_path}.{name}");
        if !r.classify(Params, key, value, &p)? {
            continue;
        }
        match name.as_str() {
            "model" => {}
            "rpm" => param_limits.0 = opt(value, |v| r.uint(v, &p))?,
            "tpm" => param_limits.1 = opt(value, |v| r.uint(v, &p))?,
            "weight" => e.weight = opt(value, |v| r.number(v, &p))?,
            "max_parallel_requests" => e.max_parallel_requests = opt(value, |v| r.u32(v, &p))?,
            "timeout" => e.timeout = opt(value, |v| r.seconds(v, &p))?,
            "max_retries" => e.max_retries = opt(value, |v| r.u32(v, &p))?,
            "order" => e.order = opt(value, |v| r.u32(v, &p))?,
            "tags" => e.tags = opt(value, |v| r.strings(v, &p))?.unwrap_or_default(),
            "input_cost_per_token" => e.input_cost_per_token = opt(value, |v| r.number(v, &p))?,
            "output_cost_per_token" => e.output_cost_per_token = opt(value, |v| r.number(v, &p))?,
            _ => unreachable_key(&name),
        }
    }
    e.rpm = entry_limits.0.or(param_limits.0).or(info_limits.0);
    e.tpm = entry_limits.1.or(param_limits.1).or(info_limits.1);
    e.deployment = deployment_for(r, &model, e.id.as_deref(), model_node, &model_path, map, catalog)?;
    Ok(e)
}

/// The scenario deployment behind an entry: `deployment_map` by `model_info.id`, then by
/// `litellm_params.model`; a deployment named like either; the one deployment serving the
/// model (the part after the provider prefix).
fn deployment_for(
    r: &Reader,
    model: &str,
    id: Option<&str>,
    model_node: &Node,
    model_path: &str,
    map: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> Result<String, ImportError> {
    let mapped = id.and_then(|id| map.get(id)).or_else(|| map.get(model));
    let name = match mapped {
        Some(d) => d.clone(),
        None => {
            let by_id = id.and_then(|id| catalog.deployments.iter().find(|d| d.name == id));
            match by_id.or_else(|| crate::provider::deployment_for_model(catalog.deployments, model)) {
                Some(d) => d.name.clone(),
                None => {
                    return Err(r.error(
                        model_node.line,
                        model_path,
                        Problem::NoDeployment(model.to_string()),
                    ))
                }
            }
        }
    };
    catalog
        .id("deployment_map", &name)
        .map_err(|m| r.error(model_node.line, model_path, Problem::Invalid(m.to_string())))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modelled_key_is_handled_and_the_table_has_no_duplicates() {
        for (i, (s, k, _)) in KEYS.iter().enumerate() {
            assert!(!KEYS[..i].iter().any(|(s2, k2, _)| s2 == s && k2 == k), "{k} listed twice in {s:?}");
        }
        assert!(modelled(Params).contains(&"tags"));
    }

    #[test]
    fn model_list_indexes_are_generalised() {
        assert_eq!(
            generalise("model_list[12].litellm_params.api_key"),
            "model_list[*].litellm_params.api_key"
        );
        assert_eq!(generalise("general_settings.master_key"), "general_settings.master_key");
    }

    #[test]
    fn the_note_elides_after_ten() {
        let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
        let note = ignored_note("c.yaml", &keys, &[]);
        assert!(note.starts_with("c.yaml: ignored LiteLLM keys that do not affect routing: k0, k1"));
        assert!(note.ends_with("k9 and 2 more"), "{note}");
        let unknown = ["x.y".to_string()];
        assert_eq!(
            ignored_note("c.yaml", &keys[..1], &unknown),
            "c.yaml: ignored LiteLLM keys that do not affect routing: k0; keys not in routesim's table, assumed not to affect routing (check them): x.y"
        );
        assert_eq!(
            ignored_note("c.yaml", &[], &unknown),
            "c.yaml: keys not in routesim's table, assumed not to affect routing (check them): x.y"
        );
    }
}
