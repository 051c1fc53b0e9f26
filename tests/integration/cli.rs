//! The `sim` binary: exit codes and one-line errors naming file, line and field.

use crate::support::{sim, stderr};
use std::path::PathBuf;
use std::process::Output;

pub const TRACE: &str = "id,arrival_ms,class,input_tokens,output_tokens,cached_input_tokens,parent,think_ms
a,0,interactive,20000,200,15000,,
b,10,hard,40000,300,30000,a,1000
c,2000,bulk,5000,500,0,,
d,2500,async,8000,800,0,,
";

pub const SCENARIO: &str = r#"
name = "tiny"
seed = 3
[trace]
file = "trace.csv"
[deployments."anthropic/sonnet"]
preset = "anthropic-tier1-sonnet-4.x"
[deployments."anthropic/haiku"]
preset = "anthropic-tier1-haiku-4.5"
[[strategy]]
name = "single"
policy = { kind = "single", deployment = "anthropic/sonnet" }
[[strategy]]
name = "chain"
policy = { kind = "fallback", chain = ["anthropic/sonnet", "anthropic/haiku"] }
"#;

pub fn workdir(scenario: &str, trace: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.toml"), scenario).unwrap();
    std::fs::write(dir.path().join("trace.csv"), trace).unwrap();
    dir
}

#[test]
fn run_prints_a_table_and_writes_outputs() {
    let dir = workdir(SCENARIO, TRACE);
    let o = sim(&["run", "scenario.toml", "--out", "out"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains("single") && table.contains("chain") && table.contains("429 req"), "{table}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap()).unwrap();
    let strategies = summary["strategies"].as_array().unwrap();
    assert_eq!(strategies.len(), 2);
    for s in strategies {
        assert_eq!(s["requests"], 4);
        for key in [
            "succeeded",
            "rate_limited",
            "failed",
            "batched",
            "unfinished",
            "attempts",
            "attempts_429",
            "attempt_429_rate",
            "request_429_rate",
            "cost_usd",
        ] {
            assert!(s.get(key).is_some(), "summary lacks {key}");
        }
        for p in ["p50", "p90", "p95", "p99", "max", "mean"] {
            assert!(s["ttft_ms"].get(p).is_some() && s["e2e_ms"].get(p).is_some());
        }
        assert_eq!(s["by_class"].as_object().unwrap().len(), 4);
        assert!(s["by_deployment"]["anthropic/sonnet"]["load_share"].is_number());
    }
    let series = std::fs::read_to_string(dir.path().join("out/timeseries.csv")).unwrap();
    assert!(series.starts_with(
        "strategy,minute,deployment,attempts,attempts_429,successes,input_tokens,output_tokens\n"
    ));
    assert!(series.lines().count() > 1);
}

#[test]
fn json_flag_prints_the_summary_and_seed_flag_overrides() {
    let dir = workdir(SCENARIO, TRACE);
    let o = sim(&["run", "scenario.toml", "--json", "--seed", "99"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["seed"], 99);
}

#[test]
fn trace_flag_replays_another_trace() {
    let dir = workdir(SCENARIO, TRACE);
    std::fs::write(
        dir.path().join("other.csv"),
        "id,arrival_ms,class,input_tokens,output_tokens\nx,0,hard,10,1\n",
    )
    .unwrap();
    let o = sim(&["run", "scenario.toml", "--trace", "other.csv", "--json"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["strategies"][0]["requests"], 1);
}

fn assert_input_error(o: &Output, expected: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code for {expected:?}; stderr: {err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_exits_2_with_file_line_and_field() {
    let cases: Vec<(String, String, &str)> = vec![
        (
            SCENARIO.into(),
            TRACE.replace("c,2000,bulk,5000", "c,2000,bulk,5x00"),
            "trace.csv:4: field \"input_tokens\"",
        ),
        (
            SCENARIO.into(),
            TRACE.replace("c,2000,bulk,5000,500", "c,2000,bulk,5000,-5"),
            "trace.csv:4: field \"output_tokens\"",
        ),
        (SCENARIO.into(), TRACE.replace("d,2500", "d,1500"), "trace.csv:5: field \"arrival_ms\""),
        (SCENARIO.into(), TRACE.replace("d,2500", "d,NaN"), "trace.csv:5: field \"arrival_ms\""),
        (
            SCENARIO.into(),
            TRACE.replace("a,1000", "zz,1000"),
            "trace.csv:3: field \"parent\": unknown parent id",
        ),
        (
            SCENARIO.replace("seed = 3", "seed = 3\nsede = 4"),
            TRACE.into(),
            "scenario.toml:4: unknown field `sede`",
        ),
        (
            SCENARIO.replace(
                r#"chain = ["anthropic/sonnet", "anthropic/haiku"]"#,
                r#"chain = ["anthropic/sonnet", "anthropic/haiku4"]"#,
            ),
            TRACE.into(),
            r#"strategy[1].policy.chain[1]: unknown deployment "anthropic/haiku4""#,
        ),
        (SCENARIO.replace("trace.csv", "missing.csv"), TRACE.into(), "missing.csv"),
        (
            SCENARIO.replace(
                "preset = \"anthropic-tier1-haiku-4.5\"",
                "preset = \"anthropic-tier1-haiku-4.5\"\nlimits.quotas = [{ meter = \"requests\", amount = 10, period = \"1d\" }, { meter = \"tokens\", amount = 2.5, period = \"1d\" }]",
            ),
            TRACE.into(),
            r#"scenario.toml:10: deployments."anthropic/haiku".limits.quotas[1].amount: the amount of tokens must be a whole number, got 2.5"#,
        ),
        (
            // Start-tier Sonnet and Build-tier Opus name one organisation with two spend caps.
            SCENARIO
                .replace("anthropic-tier1-sonnet-4.x", "anthropic-start-sonnet-4.x")
                .replace("anthropic-tier1-haiku-4.5", "anthropic-build-opus-4.5"),
            TRACE.into(),
            r#"scenario.toml:6: deployments."anthropic/sonnet".limits.quotas: pool "anthropic/organisation" is defined differently by deployments "anthropic/haiku" and "anthropic/sonnet""#,
        ),
    ];
    for (scenario, trace, expected) in cases {
        let dir = workdir(&scenario, &trace);
        assert_input_error(&sim(&["run", "scenario.toml"], dir.path()), expected);
    }
    let dir = tempfile::tempdir().unwrap();
    assert_input_error(&sim(&["run", "nowhere.toml"], dir.path()), "nowhere.toml: cannot read scenario");
}

#[test]
fn trace_gen_writes_a_trace_that_runs() {
    let dir = workdir(SCENARIO, TRACE);
    let o = sim(&["trace", "gen", "--seed", "5", "--duration", "10m", "-o", "gen.csv"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sim(&["run", "scenario.toml", "--trace", "gen.csv", "--json"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = std::fs::read_to_string(dir.path().join("gen.csv")).unwrap().lines().count() as u64 - 1;
    assert_eq!(summary["strategies"][0]["requests"], rows);
    let bad = sim(&["trace", "gen", "--duration", "ten minutes", "-o", "x.csv"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn presets_lists_each_preset_with_its_model_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim(&["presets"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"))
            .to_string()
    };
    // A sourced part with its URL and an assumed part, on the preset's one line.
    let opus41 = line("anthropic-tier1-opus-4.1");
    assert!(opus41.contains("model=anthropic-opus-41"), "{opus41}");
    assert!(opus41.contains("prices <https://platform.claude.com/docs/en/about-claude/pricing>"), "{opus41}");
    assert!(opus41.contains("limits <https://"), "{opus41}");
    let assumed = opus41.split("assumed: ").nth(1).unwrap_or_default();
    assert!(assumed.split(", ").any(|p| p == "limits.burst"), "{opus41}");
    // Opus 4.5 latency has no source: assumed as a whole.
    let opus45 = line("anthropic-tier4-opus-4.5");
    assert!(
        opus45.split("assumed: ").nth(1).unwrap_or_default().split(", ").any(|p| p == "latency"),
        "{opus45}"
    );
    // The kept seed-story presets are still listed; every line starts with a preset name.
    line("anthropic-tier4-opus-4.x");
    assert!(stdout.lines().all(|l| l.contains("  model=")), "{stdout}");
}

/// A reader that stops early (`sim presets | head -1`) ends the command quietly, not with a
/// panic inside println!.
#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("presets")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sim starts");
    drop(child.stdout.take()); // the reader goes away before the first line
    let out = child.wait_with_output().expect("sim ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
}

/// The story README tells of `scenarios/first-token.toml` (issue 12), held to its numbers'
/// shape: the stacked retries make p95 first token about 23 s and 3.8 attempts per request;
/// dropping the harness layer gives up sooner (more than twice the losses); smoothing stops
/// the storm (under 1.2 attempts per request, under 5% of attempts 429); routing interactive
/// turns to Haiku takes them out of it (interactive p95 under 3 s) and leaves the rest as is.
#[test]
fn the_first_token_scenario_tells_the_readmes_story() {
    let out = sim(&["run", "scenarios/first-token.toml", "--json"], &repo_root());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strategy = |name: &str| {
        summary["strategies"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
    };
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let lost = |s: &serde_json::Value| f(&s["rate_limited"]) + f(&s["failed"]);
    let as_is = strategy("as-is");
    let p95_s = f(&as_is["ttft_ms"]["p95"]) / 1000.0;
    assert!((20.0..27.0).contains(&p95_s), "as-is p95 first token {p95_s} s");
    assert!(f(&as_is["attempts_per_request"]) > 3.5);
    assert!(f(&as_is["retries_by_layer"]["harness"]) > 0.0 && f(&as_is["retries_by_layer"]["sdk"]) > 0.0);
    let sdk_only = strategy("sdk-retries-only");
    assert!(f(&sdk_only["ttft_ms"]["p95"]) < 10_000.0 && lost(&sdk_only) > 2.0 * lost(&as_is));
    let smooth = strategy("smooth");
    assert!(f(&smooth["attempts_per_request"]) < 1.2 && f(&smooth["attempt_429_rate"]) < 0.05);
    let haiku = strategy("interactive-to-haiku");
    assert!(f(&haiku["by_class"]["interactive"]["ttft_ms"]["p95"]) < 3_000.0);
    assert!(f(&haiku["by_class"]["hard"]["ttft_ms"]["p95"]) > 20_000.0);
}
