//! Importing LiteLLM proxy `config.yaml` files: every key modelled, listed as ignored, or
//! refused with a one-line `file:line: key.path: what` error; YAML read as LiteLLM (PyYAML,
//! YAML 1.1) reads it; the example configs shipped inside the LiteLLM package itself.

use crate::support::deployment;
use routesim::policy::config::Catalog;
use routesim::policy::litellm::config::{import_text, parse_yaml, ImportError, ImportedConfig};
use routesim::policy::litellm::RoutingStrategy;
use routesim::provider::Deployment;
use routesim::time::Duration;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Fake deployments named after each `litellm_params.model` of a config, so every entry maps.
fn catalog_for(text: &str) -> Vec<Deployment> {
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(root)) = parse_yaml(text) {
        for item in root.get("model_list").and_then(|l| l.as_seq()).unwrap_or(&[]) {
            if let Some(model) =
                item.get("litellm_params").and_then(|p| p.get("model")).and_then(|m| m.as_str())
            {
                if !names.iter().any(|n| n == model) {
                    names.push(model.to_string());
                }
            }
        }
    }
    names.iter().map(|n| deployment(n, "")).collect()
}

fn import(text: &str) -> Result<ImportedConfig, ImportError> {
    let ds = catalog_for(text);
    import_text(
        text,
        "litellm.yaml",
        &BTreeMap::new(),
        &Catalog { deployments: &ds, base_dir: Path::new("."), files: &Default::default() },
    )
}

fn error(text: &str) -> String {
    import(text).expect_err("expected an import error").to_string()
}

// ------------------------------------------------------------------ the kinds of config

#[test]
fn yaml_1_1_numbers_load_as_litellm_reads_them() {
    // LiteLLM's own azure_config.yaml writes `tpm: 20_000`: an integer to PyYAML.
    let c = import(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: azure/chatgpt-v-2\n      tpm: 20_000\n      rpm: 0x1F\n      timeout: 1_000.5\n      stream_timeout: 0.5\n      max_retries: 4\nrouter_settings:\n  disable_cooldowns: off\n  enable_tag_filtering: yes\n",
    )
    .unwrap();
    let e = &c.model_list[0];
    assert_eq!((e.tpm, e.rpm, e.max_retries), (Some(20_000), Some(31), Some(4)));
    assert_eq!(e.timeout, Some(Duration::from_secs_f64(1000.5)));
    assert!(!c.router_settings.disable_cooldowns);
    assert!(c.router_settings.enable_tag_filtering);
    assert_eq!(c.ignored, ["model_list[*].litellm_params.stream_timeout"]);
}

#[test]
fn bedrock_and_vertex_configs_load_with_their_non_routing_keys_listed() {
    let c = import(
        r#"model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0
      aws_region_name: us-east-1
      aws_session_token: os.environ/AWS_SESSION_TOKEN
      s3_bucket_name: litellm-proxy
      extra_headers: {"anthropic-beta": "x"}
  - model_name: claude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5
      vertex_credentials: os.environ/VERTEX_CREDENTIALS
      vertex_project: p
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"#,
    )
    .unwrap();
    assert_eq!(c.model_list.len(), 2);
    for key in ["aws_session_token", "s3_bucket_name", "extra_headers", "vertex_credentials"] {
        let path = format!("model_list[*].litellm_params.{key}");
        assert!(c.ignored.contains(&path), "{path} not in {:?}", c.ignored);
    }
    assert!(c.ignored.contains(&"general_settings.master_key".to_string()));
}

#[test]
fn rpm_and_tpm_are_read_where_litellm_reads_them() {
    // `lowest_tpm_rpm_v2.py`: deployment.get("rpm"), then litellm_params, then model_info.
    let c = import(
        r#"model_list:
  - model_name: g
    litellm_params: {model: a, rpm: 2, tpm: 20}
    rpm: 1
    model_info: {rpm: 3, tpm: 30, id: first}
  - model_name: g
    litellm_params: {model: b}
    model_info: {rpm: 7, tpm: 70}
  - model_name: g
    litellm_params: {model: c, tpm: 200}
    tpm: 100
"#,
    )
    .unwrap();
    let limits: Vec<_> = c.model_list.iter().map(|e| (e.rpm, e.tpm)).collect();
    assert_eq!(limits, [(Some(1), Some(20)), (Some(7), Some(70)), (None, Some(100))]);
    assert_eq!(c.model_list[0].id.as_deref(), Some("first"));
}

#[test]
fn tags_order_weight_and_per_deployment_retries_are_modelled() {
    let c = import(
        r#"model_list:
  - model_name: g
    litellm_params: {model: a, tags: ["interactive", "default"], order: 1, weight: 3, max_retries: 2, max_parallel_requests: 10}
    model_info: {id: "team-a-model"}
router_settings:
  enable_tag_filtering: True
"#,
    )
    .unwrap();
    let e = &c.model_list[0];
    assert_eq!(e.tags, ["interactive", "default"]);
    assert_eq!(
        (e.order, e.weight, e.max_retries, e.max_parallel_requests),
        (Some(1), Some(3.0), Some(2), Some(10))
    );
    assert!(c.router_settings.enable_tag_filtering);
}

#[test]
fn retry_and_allowed_fails_policies_default_fallbacks_and_strategy_args_are_modelled() {
    let c = import(
        r#"model_list:
  - model_name: g
    litellm_params: {model: a}
  - model_name: h
    litellm_params: {model: b}
router_settings:
  routing_strategy: latency-based-routing
  routing_strategy_args: {lowest_latency_buffer: 0.5, ttl: 30, max_latency_list_size: 4}
  retry_policy: {RateLimitErrorRetries: 3, TimeoutErrorRetries: 0}
  allowed_fails_policy: {RateLimitErrorAllowedFails: 10, InternalServerErrorAllowedFails: 2}
  cooldown_time: 30
  max_fallbacks: 2
litellm_settings:
  default_fallbacks: ["h"]
  num_retries: 5
  request_timeout: 600
"#,
    )
    .unwrap();
    let s = &c.router_settings;
    assert_eq!(s.routing_strategy, RoutingStrategy::LatencyBasedRouting);
    assert_eq!((s.lowest_latency_buffer, s.ttl, s.max_latency_list_size), (0.5, Duration::from_secs(30), 4));
    assert_eq!(
        (s.retry_policy.RateLimitErrorRetries, s.retry_policy.TimeoutErrorRetries),
        (Some(3), Some(0))
    );
    assert_eq!(s.allowed_fails_policy.RateLimitErrorAllowedFails, Some(10));
    assert_eq!(s.allowed_fails_policy.InternalServerErrorAllowedFails, Some(2));
    assert_eq!(s.allowed_fails, None, "absent allowed_fails is LiteLLM's default cooldown mode");
    assert_eq!((s.cooldown_time, s.max_fallbacks), (Duration::from_secs(30), 2));
    assert_eq!(s.default_fallbacks, ["h"]);
    assert_eq!(s.num_retries, 5, "litellm_settings.num_retries is the router's default");
    assert_eq!(s.timeout, Some(Duration::from_secs(600)));
}

#[test]
fn router_settings_win_over_litellm_settings() {
    // `router_rust/core.py: Resolved.of`: the router's own value, else the process global.
    let c = import(
        "model_list:\n  - model_name: g\n    litellm_params: {model: a}\nrouter_settings:\n  num_retries: 1\n  allowed_fails: 4\n  timeout: 10\nlitellm_settings:\n  num_retries: 7\n  allowed_fails: 9\n  request_timeout: 600\n  routing_strategy: least-busy\n",
    )
    .unwrap();
    let s = &c.router_settings;
    assert_eq!((s.num_retries, s.allowed_fails, s.timeout), (1, Some(4), Some(Duration::from_secs(10))));
    // litellm.routing_strategy is a global the router never reads.
    assert_eq!(s.routing_strategy, RoutingStrategy::SimpleShuffle);
    assert!(c.ignored.contains(&"litellm_settings.routing_strategy".to_string()));
    // litellm_settings.allowed_fails equals litellm.allowed_fails: not "set on the router".
    let c = import("model_list:\n  - model_name: g\n    litellm_params: {model: a}\nlitellm_settings:\n  allowed_fails: 9\n")
        .unwrap();
    assert_eq!(c.router_settings.allowed_fails, None);
}

#[test]
fn a_refused_key_left_at_its_default_changes_nothing_and_is_ignored() {
    let c = import(
        "model_list:\n  - model_name: g\n    litellm_params: {model: a}\nrouter_settings:\n  enable_pre_call_checks: false\n  context_window_fallbacks: []\n",
    )
    .unwrap();
    assert_eq!(
        c.ignored,
        ["router_settings.enable_pre_call_checks", "router_settings.context_window_fallbacks"]
    );
}

#[test]
fn deployments_map_by_model_info_id_before_the_model() {
    let ds = [deployment("anthropic/sonnet", ""), deployment("bedrock/sonnet", "")];
    let text = "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-sonnet-4-5}\n    model_info: {id: a}\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-sonnet-4-5}\n    model_info: {id: b}\n";
    let map: BTreeMap<String, String> = [("a", "anthropic/sonnet"), ("b", "bedrock/sonnet")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let c = import_text(
        text,
        "litellm.yaml",
        &map,
        &Catalog { deployments: &ds, base_dir: Path::new("."), files: &Default::default() },
    )
    .unwrap();
    let deployments: Vec<&str> = c.model_list.iter().map(|e| e.deployment.as_str()).collect();
    assert_eq!(deployments, ["anthropic/sonnet", "bedrock/sonnet"]);
}

// ------------------------------------------------------------------ errors, one line each

#[test]
fn a_bad_number_names_file_line_and_path_once() {
    let e = error("model_list:\n  - model_name: g\n    litellm_params:\n      model: a\n      tpm: lots\n");
    assert_eq!(
        e,
        "litellm.yaml:5: model_list[0].litellm_params.tpm: expected a non-negative integer, got \"lots\""
    );
    let e = error("model_list:\n  - model_name: g\n    litellm_params: {model: a}\nrouter_settings:\n  cooldown_time: [1]\n");
    assert_eq!(e, "litellm.yaml:5: router_settings.cooldown_time: expected a number, got a list");
}

#[test]
fn an_unmodelled_routing_key_is_refused_with_its_line() {
    let e = error(
        "model_list:\n  - model_name: g\n    litellm_params: {model: a}\nlitellm_settings:\n  drop_params: true\n  context_window_fallbacks: [{\"g\": [\"h\"]}]\n",
    );
    assert_eq!(
        e,
        "litellm.yaml:6: litellm_settings.context_window_fallbacks: changes routing in LiteLLM (fallbacks on context-window errors) but routesim does not model it; remove it to simulate without it"
    );
    let e = error("model_list:\n  - model_name: g\n    litellm_params: {model: a}\nrouter_settings:\n  routing_strategy: custom\n");
    assert!(
        e.starts_with(
            "litellm.yaml:5: router_settings.routing_strategy: \"custom\" is not a LiteLLM routing strategy"
        ),
        "{e}"
    );
    let e = error("model_list:\n  - model_name: g\n    litellm_params: {model: a}\nrouter_settings:\n  model_group_alias: {gpt-4: g}\n");
    assert!(
        e.starts_with("litellm.yaml:5: router_settings.model_group_alias: changes routing in LiteLLM"),
        "{e}"
    );
}

#[test]
fn deployment_level_cooldown_and_retry_keys_are_refused_not_called_non_routing() {
    // LiteLLM 1.110.2 routes on each of these per deployment (the reasons name the source);
    // routesim models none, so each is refused with its line. Before, model_info.allowed_fails
    // and allowed_fails_policy fell through to the note of keys "that do not affect routing".
    let cases = [
        (
            "    model_info: {id: x, allowed_fails: 2}\n",
            4,
            "model_info.allowed_fails",
            "this deployment's own cooldown rule",
        ),
        (
            "    model_info:\n      allowed_fails_policy: {RateLimitErrorAllowedFails: 1}\n",
            5,
            "model_info.allowed_fails_policy",
            "this deployment's own cooldown rule",
        ),
        (
            "    model_info: {cooldown_time: 30}\n",
            4,
            "model_info.cooldown_time",
            "this deployment's own cooldown length",
        ),
        (
            "    model_info: {supported_environments: [production]}\n",
            4,
            "model_info.supported_environments",
            "the deployment exists only where LITELLM_ENVIRONMENT",
        ),
        (
            "    model_info: {enforce_supported_endpoints: true}\n",
            4,
            "model_info.enforce_supported_endpoints",
            "a deployment whose supported_endpoints",
        ),
    ];
    for (info, line, path, why) in cases {
        let e = error(&format!("model_list:\n  - model_name: g\n    litellm_params: {{model: a}}\n{info}"));
        let want = format!("litellm.yaml:{line}: model_list[0].{path}: changes routing in LiteLLM ({why}");
        assert!(e.starts_with(&want), "{e}");
    }
    for (key, why) in [
        ("cooldown_time: 30", "this deployment's own cooldown length"),
        ("num_retries: 5", "this deployment's own router retries"),
        ("client_side_timeout: true", "a 408 from the caller's own timeout"),
        (
            "kubernetes_pod_discovery: true",
            "the deployment is expanded into one deployment per discovered pod",
        ),
    ] {
        let name = key.split(':').next().unwrap();
        let e = error(&format!(
            "model_list:\n  - model_name: g\n    litellm_params:\n      model: a\n      {key}\n"
        ));
        assert!(
            e.starts_with(&format!(
                "litellm.yaml:5: model_list[0].litellm_params.{name}: changes routing in LiteLLM ({why}"
            )),
            "{e}"
        );
    }
    // At LiteLLM's default they change nothing: listed as ignored.
    let c = import("model_list:\n  - model_name: g\n    litellm_params: {model: a, client_side_timeout: false}\n    model_info: {enforce_supported_endpoints: false}\n").unwrap();
    assert!(
        c.ignored.contains(&"model_list[*].litellm_params.client_side_timeout".to_string()),
        "{:?}",
        c.ignored
    );
    assert!(c.ignored.contains(&"model_list[*].model_info.enforce_supported_endpoints".to_string()));
}

#[test]
fn keys_not_in_the_table_are_listed_apart_from_the_known_non_routing_ones() {
    let c = import(
        "model_list:\n  - model_name: g\n    litellm_params: {model: a, api_key: k, frobnicate: 3}\n    model_info: {id: x, colour: blue}\nmcp_servers: {}\n",
    )
    .unwrap();
    assert_eq!(c.ignored, ["model_list[*].litellm_params.api_key"]);
    assert_eq!(
        c.unknown,
        ["mcp_servers", "model_list[*].model_info.colour", "model_list[*].litellm_params.frobnicate"]
    );
}

#[test]
fn litellm_params_prices_are_what_cost_based_routing_ranks_by() {
    // `lowest_cost.py`: litellm_params.input_cost_per_token / output_cost_per_token first, else
    // the cost-map row (here the scenario deployment's price, $3 + $15 per Mtok for both).
    let c = import("model_list:\n  - model_name: g\n    litellm_params: {model: a, input_cost_per_token: 0.000002}\n  - model_name: g\n    litellm_params: {model: b}\n").unwrap();
    assert_eq!(c.model_list[0].input_cost_per_token, Some(2e-6));
    assert_eq!(c.model_list[1].input_cost_per_token, None);
    assert!(c.ignored.is_empty() && c.unknown.is_empty(), "{:?} {:?}", c.ignored, c.ignored);
}

#[test]
fn a_missing_model_list_and_a_yaml_syntax_error_are_one_line() {
    assert_eq!(error("router_settings:\n  num_retries: 1\n"), "litellm.yaml:1: model_list: missing");
    assert_eq!(error(""), "litellm.yaml:1: model_list: missing (the file is empty)");
    let e = error("model_list:\n  - model_name: g\n    litellm_params: {model: a\nrouter_settings: {}\n");
    assert!(e.starts_with("litellm.yaml:"), "{e}");
    let line: usize = e["litellm.yaml:".len()..].split(':').next().unwrap().parse().expect("a line number");
    assert!((3..=5).contains(&line), "{e}");
    assert!(!e.contains('\n'));
    let e = error("model_list:\n  - model_name: g\n");
    assert_eq!(e, "litellm.yaml:2: model_list[0].litellm_params: missing");
}

#[test]
fn the_policy_error_is_one_line_without_debug_formatting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: nowhere\n",
    )
    .unwrap();
    let ds = [deployment("a", "")];
    let config: routesim::policy::config::PolicyConfig =
        toml::from_str("kind = \"litellm\"\nconfig_file = \"c.yaml\"").unwrap();
    let files = routesim::policy::config::PolicyFiles::read(&config, dir.path(), &ds);
    let e = config
        .build(&Catalog { deployments: &ds, base_dir: dir.path(), files: &files })
        .err()
        .unwrap()
        .to_string();
    let file = dir.path().join("c.yaml").display().to_string();
    assert!(e.starts_with(&format!("config_file: {file}:4: model_list[0].litellm_params.model: ")), "{e}");
    assert_eq!(e.matches("model_list[0]").count(), 1, "{e}");
}

// ------------------------------------------------------------------ the bundled scenario

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_bundled_proxy_scenario_runs_and_notes_ignored_keys_once() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", "scenarios/litellm-proxy.toml"])
        .current_dir(repo_root())
        .output()
        .expect("sim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with(
            "note: scenarios/litellm-proxy.yaml: ignored LiteLLM keys that do not affect routing: "
        ),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains("model_list[*].litellm_params.api_key"), "{}", notes[0]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("litellm-proxy"), "{stdout}");

    // What the import made of it.
    let scenario =
        routesim::scenario::Scenario::load(&repo_root().join("scenarios/litellm-proxy.toml")).unwrap();
    let text = std::fs::read_to_string(repo_root().join("scenarios/litellm-proxy.yaml")).unwrap();
    let map: BTreeMap<String, String> = [
        ("sonnet-anthropic", "anthropic/sonnet"),
        ("sonnet-bedrock", "bedrock/sonnet"),
        ("gpt-5-openai", "openai/gpt-5"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let c = import_text(
        &text,
        "litellm-proxy.yaml",
        &map,
        &Catalog { deployments: &scenario.deployments, base_dir: Path::new("."), files: &Default::default() },
    )
    .unwrap();
    let limits: Vec<_> = c.model_list.iter().map(|e| (e.deployment.as_str(), e.rpm, e.tpm)).collect();
    assert_eq!(
        limits,
        [
            ("anthropic/sonnet", Some(4000), Some(2_000_000)),
            ("bedrock/sonnet", Some(2000), Some(800_000)),
            ("openai/gpt-5", None, None)
        ]
    );
    assert_eq!(c.router_settings.default_fallbacks, ["gpt"]);
    assert_eq!(c.router_settings.retry_policy.RateLimitErrorRetries, Some(3));
    assert_eq!(c.router_settings.allowed_fails_policy.RateLimitErrorAllowedFails, Some(10));
}

// ------------------------------------------------------------------ LiteLLM's own configs

/// The installed LiteLLM package: `ROUTESIM_LITELLM_PKG`, else the conformance virtualenv,
/// else the peer one (both under `target/`, made by `tests/conformance/setup.sh`).
fn litellm_package() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ROUTESIM_LITELLM_PKG") {
        return Some(PathBuf::from(dir));
    }
    // Whatever Python minor version made the virtualenv: lib/python3.*/site-packages.
    ["target/conformance-venv", "target/peer-venv"].iter().find_map(|venv| {
        let lib = repo_root().join(venv).join("lib");
        std::fs::read_dir(lib)
            .ok()?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path().join("site-packages/litellm"))
            .find(|p| p.is_dir())
    })
}

/// What each config shipped in LiteLLM 1.110.2's package must do: `Ok` with what the import
/// must have read, or the error's start. Paths relative to the package.
/// A config's expected outcome: checks on what it loads into, or the start of its error.
type Outcome = Result<fn(&ImportedConfig), &'static str>;

fn expected_outcomes() -> Vec<(&'static str, Outcome)> {
    fn loads(_: &ImportedConfig) {}
    vec![
        ("proxy/dev_config.yaml", Ok(|c| {
            assert!(c.ignored.contains(&"model_list[*].litellm_params.vertex_credentials".to_string()));
            assert!(c.unknown.contains(&"sandbox_tools".to_string()));
        })),
        ("proxy/model_config.yaml", Ok(loads)),
        ("proxy/proxy_config.yaml", Ok(|c| assert!(c.unknown.contains(&"mcp_servers".to_string())))),
        ("proxy/wildcard_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/_health_check_test_config.yaml", Ok(loads)),
        (
            "proxy/example_config_yaml/adaptive_router_example.yaml",
            Err(":20: model_list[0].litellm_params.model: changes routing in LiteLLM (an auto_router/ deployment"),
        ),
        ("proxy/example_config_yaml/agentcore_websearch_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/aliases_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/azure_config.yaml", Ok(|c| {
            let tpm: Vec<_> = c.model_list.iter().map(|e| e.tpm).collect();
            assert_eq!(tpm, [Some(20_000), Some(100_000)], "YAML 1.1: 20_000 is an integer");
            assert!(c.model_list.iter().all(|e| e.max_retries == Some(4) && e.timeout == Some(Duration::from_secs(5))));
        })),
        ("proxy/example_config_yaml/bing_grounding_websearch_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/code_interpreter_interception_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/disable_schema_update.yaml", Ok(loads)),
        ("proxy/example_config_yaml/enterprise_config.yaml", Ok(|c| {
            assert_eq!(c.model_list[0].tags, ["teamA"]);
            assert_eq!(c.model_list[0].id.as_deref(), Some("team-a-model"));
            assert!(c.router_settings.enable_tag_filtering);
        })),
        ("proxy/example_config_yaml/langfuse_config.yaml", Err(":2: model_list[0].litellm_params: missing")),
        ("proxy/example_config_yaml/load_balancer.yaml", Ok(|c| {
            let limits: Vec<_> = c.model_list.iter().map(|e| (e.rpm, e.tpm)).collect();
            assert_eq!(limits[..2], [(Some(3), Some(20000)), (Some(3), Some(20000))], "rpm/tpm beside litellm_params");
        })),
        ("proxy/example_config_yaml/multi_instance_simple_config.yaml", Ok(loads)),
        (
            "proxy/example_config_yaml/oai_misc_config.yaml",
            Err(": litellm_settings.context_window_fallbacks: changes routing in LiteLLM (fallbacks on context-window errors)"),
        ),
        ("proxy/example_config_yaml/opentelemetry_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/otel_test_config.yaml", Ok(|c| {
            assert_eq!(c.model_list[0].tags, ["teamA"]);
            assert_eq!(c.model_list[1].id.as_deref(), Some("team-b-model"));
            assert!(c.router_settings.enable_tag_filtering);
        })),
        ("proxy/example_config_yaml/pass_through_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/reject_clientside_metadata_tags_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/simple_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/spend_tracking_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/store_model_db_config.yaml", Ok(loads)),
        ("proxy/example_config_yaml/test_pipeline_config.yaml", Ok(|c| assert!(c.unknown.contains(&"guardrails".to_string())))),
        ("proxy/example_config_yaml/tool_permission_example.yaml", Ok(loads)),
        ("proxy/example_config_yaml/websearch_interception_config.yaml", Ok(loads)),
        ("proxy/guardrails/guardrail_hooks/generic_guardrail_api/example_config.yaml", Ok(loads)),
        ("proxy/guardrails/guardrail_hooks/ibm_guardrails/example_config.yaml", Err(":5: model_list: missing")),
        ("proxy/guardrails/guardrail_hooks/llm_shield_proxy/example_config.yaml", Ok(loads)),
    ]
}

#[test]
#[ignore = "needs the LiteLLM package: tests/conformance/setup.sh"]
fn the_configs_inside_the_litellm_package_load_or_are_refused_as_expected() {
    let package = litellm_package().expect("the LiteLLM package (ROUTESIM_LITELLM_PKG or target/*-venv)");
    let expected = expected_outcomes();
    // Every proxy config the package ships is in the table (guardrail content-filter data
    // files are not proxy configs).
    let mut shipped: Vec<String> = Vec::new();
    for dir in ["proxy", "proxy/example_config_yaml"] {
        for entry in std::fs::read_dir(package.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") {
                shipped.push(format!("{dir}/{name}"));
            }
        }
    }
    for path in &shipped {
        assert!(
            expected.iter().any(|(p, _)| p == path),
            "{path} ships in the package but has no expected outcome"
        );
    }
    for (path, outcome) in expected {
        let text = std::fs::read_to_string(package.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let ds = catalog_for(&text);
        let result = import_text(
            &text,
            path,
            &BTreeMap::new(),
            &Catalog { deployments: &ds, base_dir: Path::new("."), files: &Default::default() },
        );
        match (outcome, result) {
            (Ok(check), Ok(imported)) => {
                assert!(!imported.model_list.is_empty(), "{path}");
                check(&imported);
                println!(
                    "loads    {path} ({} deployments, {} keys ignored, {} unknown)",
                    imported.model_list.len(),
                    imported.ignored.len(),
                    imported.unknown.len()
                );
            }
            (Err(start), Err(e)) => {
                let message = e.to_string();
                assert!(message.starts_with(path), "{message}");
                assert!(
                    message[path.len()..].starts_with(start) || message.contains(start),
                    "{path}: {message}"
                );
                assert!(!message.contains('\n'), "{message}");
                println!("refused  {message}");
            }
            (Ok(_), Err(e)) => panic!("{path} should load: {e}"),
            (Err(start), Ok(_)) => panic!("{path} should be refused with …{start}"),
        }
    }
}

/// Policy files are read when the scenario is loaded, never by a build: a file changed or
/// removed after loading changes nothing; a file named twice is read and noted once, notes
/// come in the order the policies are built; an unreadable file is a load error naming the
/// field.
#[test]
fn policy_files_are_read_once_with_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |extra: &str| {
        format!("model_list:\n  - model_name: g\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5\n      {extra}: x\n")
    };
    std::fs::write(dir.path().join("a.yaml"), yaml("api_key")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), yaml("api_base")).unwrap();
    let litellm = |file: &str| {
        format!("{{ kind = \"litellm\", config_file = \"{file}\", deployment_map = {{ \"anthropic/claude-sonnet-4-5\" = \"a\" }} }}")
    };
    let scenario = |rules: &str| {
        format!(
            "name = \"files\"\n[trace]\nfile = \"trace.csv\"\n[deployments.a]\npreset = \"anthropic-tier1-sonnet-4.x\"\n[[strategy]]\nname = \"s\"\npolicy = {{ kind = \"rules\", default = {}, rules = [{rules}] }}\n",
            litellm("a.yaml")
        )
    };
    let rules = format!(
        "{{ match = {{ class = [\"hard\"] }}, policy = {} }}, {{ match = {{ class = [\"bulk\"] }}, policy = {} }}",
        litellm("b.yaml"),
        litellm("a.yaml")
    );
    std::fs::write(dir.path().join("s.toml"), scenario(&rules)).unwrap();
    std::fs::write(dir.path().join("trace.csv"), "id,arrival_ms,class,input_tokens,output_tokens\n").unwrap();
    let loaded = routesim::scenario::Scenario::load(&dir.path().join("s.toml")).unwrap();
    let notes = &loaded.strategies[0].policy.notes;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("b.yaml") && notes[0].contains("api_base"), "rules first: {notes:?}");
    assert!(notes[1].contains("a.yaml") && notes[1].contains("api_key"), "then the default: {notes:?}");
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), "not: [a litellm config").unwrap();
    let _fresh = loaded.strategies[0].policy.build(); // would panic if it read the files again

    std::fs::write(dir.path().join("b.yaml"), yaml("api_base")).unwrap();
    let e = routesim::scenario::Scenario::load(&dir.path().join("s.toml")).err().unwrap().to_string();
    let missing = dir.path().join("a.yaml").display().to_string();
    assert!(e.contains("strategy[0].policy.rules[1].policy.config_file: ") && e.contains(&missing), "{e}");
    assert!(e.contains("cannot read"), "{e}");
}
