//! Trace importers, generators and `sim trace stats` end to end through the `sim` binary:
//! the shared public samples convert and run, direct import equals convert-then-replay, bad
//! rows exit 2 naming file, line and field (or are skipped and counted), and the month-scale
//! generator reproduces the seed story's totals.

use super::cli::{repo_root, workdir, SCENARIO, TRACE};
use crate::support::{sim, stderr};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A shared public trace (`../shared/traces` from the repo root). The tests reading them are
/// ignored by default (the files are outside the repo); `.ci/run` runs them (`--ignored`)
/// when `../shared/traces` is there and says so when it is not.
///
/// # Panics
/// If it is absent: the test was asked for explicitly, so a silent skip would lie.
fn shared(relative: &str) -> PathBuf {
    let path = repo_root().join("../shared/traces").join(relative);
    assert!(path.exists(), "{} is absent (the shared public traces)", path.display());
    path
}

/// The run summary with the trace name removed (it names the file or the generator).
fn summary_without_trace(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_object_mut().unwrap().remove("trace");
    v
}

fn open_loop_scenario(trace_section: &str) -> String {
    SCENARIO.replace("[trace]\nfile = \"trace.csv\"", &format!("[trace]\nreplay = \"open\"\n{trace_section}"))
}

#[test]
#[ignore = "needs ../shared/traces (public Azure 2023 and Mooncake samples); .ci/run runs it"]
fn shared_traces_azure_and_mooncake_samples_convert_and_run_and_direct_import_matches() {
    let samples = [
        ("azure-2023/AzureLLMInferenceTrace_code.csv", "azure"),
        ("azure-2023/AzureLLMInferenceTrace_conv.csv", "azure"),
        ("mooncake/conversation_trace.jsonl", "mooncake"),
    ];
    for (relative, format) in samples {
        let path = shared(relative);
        let dir = workdir(SCENARIO, TRACE);
        let input = path.to_str().unwrap();
        // Ten minutes of each, to keep the test fast.
        let o = sim(
            &["trace", "convert", "--from", format, input, "-o", "conv.csv", "--duration", "10m"],
            dir.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("imported"), "{}", stderr(&o));
        let converted_rows =
            std::fs::read_to_string(dir.path().join("conv.csv")).unwrap().lines().count() as u64 - 1;
        assert!(converted_rows > 500, "{relative}: {converted_rows} rows in 10 minutes");

        let scenario = open_loop_scenario(&format!(
            "file = {input:?}\nformat = \"{format}\"\n[trace.import]\nduration = \"10m\"\n"
        ));
        std::fs::write(dir.path().join("direct.toml"), scenario).unwrap();
        let direct = sim(&["run", "direct.toml", "--json"], dir.path());
        let direct = summary_without_trace(&direct);
        assert_eq!(direct["strategies"][0]["requests"], converted_rows, "{relative}");
        std::fs::write(dir.path().join("open.toml"), open_loop_scenario("file = \"trace.csv\"\n")).unwrap();
        let replayed =
            summary_without_trace(&sim(&["run", "open.toml", "--trace", "conv.csv", "--json"], dir.path()));
        assert_eq!(direct, replayed, "{relative}: direct import and convert-then-replay differ");
    }
}

#[test]
#[ignore = "needs ../shared/traces (public Azure 2023 samples); .ci/run runs it"]
fn shared_traces_stats_report_the_azure_code_trace_as_on_off_and_conv_as_near_poisson() {
    let (code, conv) = (
        shared("azure-2023/AzureLLMInferenceTrace_code.csv"),
        shared("azure-2023/AzureLLMInferenceTrace_conv.csv"),
    );
    let stats = |path: &Path| -> serde_json::Value {
        let o =
            sim(&["trace", "stats", "--format", "azure", "--json", path.to_str().unwrap()], Path::new("."));
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let code = stats(&code);
    // Counted independently: the sample has 8,819 data rows (8,820 lines with the header).
    assert_eq!(code["requests"], 8_819);
    assert!(code["idle_seconds_share"].as_f64().unwrap() > 0.5, "{code}");
    assert!(code["dispersion_1s"].as_f64().unwrap() > 5.0, "{code}");
    assert!(code["interarrival_cv"].as_f64().unwrap() > 5.0, "{code}");
    let conv = stats(&conv);
    assert_eq!(conv["requests"], 19_366);
    assert!(conv["dispersion_1s"].as_f64().unwrap() < 2.0, "{conv}");
    assert!(conv["idle_seconds_share"].as_f64().unwrap() < 0.05, "{conv}");
    let text = sim(
        &[
            "trace",
            "stats",
            "--format",
            "azure",
            shared("azure-2023/AzureLLMInferenceTrace_code.csv").to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("on/off bursty"));
}

#[test]
fn bad_import_rows_exit_2_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,100,1\n2023-11-16 18:17:04.0,1o0,1\n2023-11-16 18:17:05.0,300,3\n",
    )
    .unwrap();
    let o = sim(&["trace", "convert", "--from", "azure", "a.csv", "-o", "out.csv"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        r#"error: a.csv:3: field "ContextTokens": expected a non-negative integer, got "1o0""#
    );
    let o = sim(
        &["trace", "convert", "--from", "azure", "a.csv", "-o", "out.csv", "--skip-bad", "1"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 rows read, 2 imported"), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 bad rows skipped (first: a.csv:3:"), "{}", stderr(&o));
    let o = sim(&["trace", "convert", "--from", "parquet", "a.csv", "-o", "out.csv"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown trace format \"parquet\""), "{}", stderr(&o));
    let o = sim(&["trace", "stats", "--format", "mooncake", "missing.jsonl"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.jsonl: cannot open"), "{}", stderr(&o));
}

#[test]
fn scenario_generators_match_their_written_traces() {
    let generator = r#"generator = "open_loop"
seed = 11
duration = "20m"
[[clients]]
name = "chat"
count = 5
process = { kind = "gamma", rate_per_s = 0.2, cv = 3.0 }
input_tokens = { dist = "lognormal", median = 3000, sigma = 0.8 }
output_tokens = { dist = "zipf", exponent = 1.2, min = 16, max = 2000 }
cached_fraction = 0.5
[[clients]]
name = "tools"
class = "hard"
process = { kind = "hawkes", base_rate_per_s = 0.2, branching_ratio = 0.6, mean_delay = "3s" }
input_tokens = { dist = "constant", value = 20000 }
output_tokens = { dist = "constant", value = 300 }
"#;
    let dir = workdir(SCENARIO, TRACE);
    std::fs::write(dir.path().join("gen.toml"), generator).unwrap();
    let o = sim(&["trace", "gen", "--config", "gen.toml", "-o", "gen.csv"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("g.toml"), open_loop_scenario("generator = \"gen.toml\"\n")).unwrap();
    let direct = summary_without_trace(&sim(&["run", "g.toml", "--json"], dir.path()));
    std::fs::write(dir.path().join("open.toml"), open_loop_scenario("file = \"trace.csv\"\n")).unwrap();
    let replayed =
        summary_without_trace(&sim(&["run", "open.toml", "--trace", "gen.csv", "--json"], dir.path()));
    assert_eq!(direct, replayed);
    // Expected 20 min × (5 × 0.2 + 0.2 / (1 − 0.6)) /s = 1,800 requests; the Hawkes part alone
    // has Var ≈ μT/(1−n)³ = 3,750 and the Gamma part ≈ cv²·1,200 = 10,800: SE ≈ 121, 5 SE ≈ 600.
    let rows = direct["strategies"][0]["requests"].as_f64().unwrap();
    assert!((rows - 1_800.0).abs() < 600.0, "{rows}");

    // An inline agent generator runs closed loop and a bad generator key is a scenario error.
    let inline = SCENARIO.replace(
        "[trace]\nfile = \"trace.csv\"",
        "[trace]\ngenerate = { generator = \"agent\", seed = 4, duration = \"5m\" }",
    );
    std::fs::write(dir.path().join("inline.toml"), inline).unwrap();
    let o = sim(&["run", "inline.toml", "--json"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = SCENARIO.replace(
        "[trace]\nfile = \"trace.csv\"",
        "[trace]\ngenerate = { generator = \"agent\", sessions = 4 }",
    );
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let o = sim(&["run", "bad.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The scenario's line and the key path of the unknown key.
    assert!(
        stderr(&o).starts_with("error: bad.toml:5: trace.generate.sessions: unknown field `sessions`"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "7.6 M rows: run in release builds (cargo test --release, as .ci/run does)"
)]
fn month_generator_reproduces_the_seed_story_totals() {
    use routesim::trace::source::GeneratorConfig;
    let config = GeneratorConfig::load(&repo_root().join("traces/seed-month.gen.toml")).unwrap();
    let (mut requests, mut tokens, mut cached, mut input, mut max_arrival) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last = 0;
    for row in config.rows(&repo_root()).unwrap() {
        let row = row.unwrap();
        assert!(row.arrival_us / 1_000 >= last, "rows in order");
        last = row.arrival_us / 1_000;
        requests += 1;
        tokens += row.input_tokens + row.output_tokens;
        input += row.input_tokens;
        cached += row.cached_input_tokens;
        max_arrival = max_arrival.max(row.arrival_us);
    }
    // The seed story (PROVIDERS.md): 7.6 M requests and 603 B tokens in a month; "within a few
    // percent" is taken as 3%. Cached share: published ≈ 86%.
    assert!((requests as f64 / 7.6e6 - 1.0).abs() < 0.03, "{requests} requests");
    assert!((tokens as f64 / 603e9 - 1.0).abs() < 0.03, "{tokens} tokens");
    assert!(
        (cached as f64 / input as f64 - 0.86).abs() < 0.02,
        "cached share {}",
        cached as f64 / input as f64
    );
    assert!(max_arrival < 30 * 86_400 * 1_000_000);
}

#[test]
fn bad_import_options_are_scenario_errors_naming_the_key() {
    let dir = workdir(SCENARIO, TRACE);
    let cases = [
        ("format = \"parquet\"\n", "trace.format: unknown trace format \"parquet\""),
        (
            "format = \"burstgpt\"\n[trace.import]\nclasses = [{ class = \"hard\", model = \"gpt-(4\" }]\n",
            "trace.import.classes[0].model: regex parse error",
        ),
        (
            "format = \"azure\"\n[trace.import]\nrate_multiplier = -2.0\n",
            "trace.import.rate_multiplier: must be a finite number > 0, got -2",
        ),
        ("format = \"mapped\"\n", "trace.import.mapping: format \"mapped\" needs a mapping"),
        ("[trace.import]\nstart = \"1m\"\n", "trace.import: import options apply to formats"),
    ];
    for (extra, expected) in cases {
        let scenario = SCENARIO
            .replace("[trace]\nfile = \"trace.csv\"", &format!("[trace]\nfile = \"trace.csv\"\n{extra}"));
        std::fs::write(dir.path().join("bad.toml"), scenario).unwrap();
        let o = sim(&["run", "bad.toml"], dir.path());
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        // The line of the key path (or of the deepest part of it the file writes) comes first.
        let got = stderr(&o);
        let rest = got.strip_prefix("error: bad.toml:").unwrap_or("");
        let (line, rest) = rest.split_once(": ").unwrap_or(("", ""));
        assert!(
            line.parse::<u32>().is_ok() && rest.starts_with(expected),
            "got {}\nexpected {expected}",
            stderr(&o)
        );
    }
}
