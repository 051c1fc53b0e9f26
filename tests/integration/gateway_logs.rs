//! Gateway logs as calibration input and as traces, on the hand-written samples of
//! `tests/fixtures/gateway/`: a LiteLLM proxy spend log (`spend.json`, a `/spend/logs` JSON
//! array) and OpenTelemetry GenAI spans (`spans.otlp.jsonl`, OTLP JSON export requests one per
//! line as the Collector's file exporter writes them), against the team's scenario
//! `gateway.toml` (Sonnet by its model name, Haiku by its `api_model`).
//!
//! Both samples give Sonnet five streamed successes with the same uncached prompt (so the TTFT
//! slope is not identifiable and the base is the TTFT itself) whose TTFTs are a geometric
//! progression `m · 2^(k/2)`, k = −2..2, in shuffled order: the lognormal fit's median is their
//! geometric mean `m` and its σ is `(ln 2 / 2) · √((4 + 1 + 0 + 1 + 4) / 5) = 0.49013`; the
//! lognormal wins the KS choice (0.160 against gamma 0.171, normal 0.200, uniform 0.267,
//! exponential 0.359, all scale-free so the same for every `m`).

use crate::support::{sim, stderr};
use routesim::calibrate::gateway_logs::LogSpec;
use routesim::calibrate::{fit_inputs, Calibration, DeploymentFit, FitOptions};
use routesim::dist::DistConfig;
use routesim::scenario::Scenario;
use routesim::trace::import::TraceFormat;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway")
}

fn calibrate(format: TraceFormat, file: &str, map: &[String]) -> Calibration {
    let base = Scenario::load(&fixtures().join("gateway.toml")).expect("the fixture scenario loads");
    let spec = LogSpec { format, path: fixtures().join(file) };
    fit_inputs(&[], &[spec], map, Some(&base), FitOptions::default()).expect("the sample calibrates")
}

fn deployment<'a>(c: &'a Calibration, name: &str) -> &'a DeploymentFit {
    c.deployments.iter().find(|d| d.name == name).unwrap_or_else(|| panic!("{name} fitted"))
}

const SIGMA: f64 = 0.49013;

#[test]
fn a_spend_log_calibrates_ttft_speed_and_errors_by_hand() {
    let c = calibrate(TraceFormat::LitellmSpend, "spend.json", &[]);
    let sonnet = deployment(&c, "anthropic/sonnet");
    let r = &sonnet.report;
    // r-01..r-05 streamed (TTFT = completionStartTime − startTime: 1000, 500, 2000, 707.107,
    // 1414.214 ms), r-06 a 429, r-07 a 529 (error_code wins over the class); r-08 fails with
    // no error information (ignored, reported); r-12 is a proxy cache hit.
    assert_eq!(
        (r.attempts, r.outcomes.success, r.outcomes.rate_limited, r.outcomes.overloaded),
        (7, 5, 1, 1)
    );
    let latency = &sonnet.config.latency;
    assert_eq!(latency.ttft_ms, DistConfig::Lognormal { median: 1000.0, sigma: Some(SIGMA), p90: None });
    assert_eq!(latency.ttft_ms_per_1k_uncached_input, 0.0);
    // 160 tokens over endTime − completionStartTime = 2, 4, 1, 2.828427, 1.414214 s: 80, 40,
    // 160, 56.569, 113.137 tok/s, the same progression around 80.
    assert_eq!(
        latency.output_tokens_per_s,
        DistConfig::Lognormal { median: 80.0, sigma: Some(SIGMA), p90: None }
    );
    // No rate-limit headers: no limits; the one 429 of 7 attempts is rate_limited_rate, the
    // one 529 of the 7 admitted (no limiter to blame) overloaded_rate; their round trips are
    // endTime − startTime.
    assert_eq!((sonnet.config.limits.rpm, sonnet.config.limits.burst), (None, None));
    assert_eq!(sonnet.config.errors.rate_limited_rate, 0.14286);
    assert_eq!(sonnet.config.errors.overloaded_rate, 0.14286);
    assert_eq!(latency.rate_limit_response.as_millis_f64(), 150.0);
    assert_eq!(latency.error_response_ms, DistConfig::Constant { value: 300.0 });
    // Prices and names come from the base scenario.
    assert_eq!(
        (sonnet.config.provider.as_str(), sonnet.config.prices.input_usd_per_mtok),
        ("anthropic", 3.0)
    );
    assert!(
        r.notes.iter().any(|n| n.starts_with("gateway log: limits, burst and retry-after")),
        "{:?}",
        r.notes
    );
    assert!(r.notes.iter().any(|n| n.starts_with("LiteLLM spend log: a row is one proxy request")));
    assert!(r
        .notes
        .iter()
        .any(|n| n.starts_with("gateway log: the base deployment's limits (rpm 50) are not carried over")));

    // Haiku, matched by its api_model: r-09 was not streamed (completionStartTime = endTime,
    // LiteLLM's fallback) and is an "other" outcome; r-10 gives TTFT 400 ms and 100 tokens in
    // 1 s.
    let haiku = deployment(&c, "anthropic/haiku");
    assert_eq!(
        (haiku.report.attempts, haiku.report.outcomes.success, haiku.report.outcomes.other),
        (2, 1, 1)
    );
    assert_eq!(haiku.config.latency.ttft_ms, DistConfig::Constant { value: 400.0 });
    assert_eq!(haiku.config.latency.output_tokens_per_s, DistConfig::Constant { value: 100.0 });

    // The source's notes account for every row: 11 provider calls = 9 attempts + 1 of no
    // deployment + 1 failure of no known status; and the key nobody defined.
    assert_eq!(c.sources[0].attempts, 9);
    let notes = c.sources[0].notes.join("\n");
    for expected in [
        "11 provider calls read, 9 attempts",
        "1 rows of no deployment of the base scenario, ignored (gpt-4o ×1)",
        "1 failed rows of no known status (429, 529, 5xx, 4xx, timeout), ignored (no error given ×1)",
        "1 successes without a first-token time (not streamed)",
        "1 records not provider calls (LiteLLM proxy cache hit (cache_hit = True) ×1)",
        "unknown keys: litellm_trace_id ×1",
    ] {
        assert!(notes.contains(expected), "missing {expected:?} in:\n{notes}");
    }
}

#[test]
fn otel_spans_calibrate_ttft_and_speed_by_hand() {
    let c = calibrate(TraceFormat::OtelGenai, "spans.otlp.jsonl", &[]);
    let sonnet = deployment(&c, "anthropic/sonnet");
    // gen_ai.response.time_to_first_chunk 0.5, 0.25, 1.0, 0.353553, 0.707107 s: the
    // progression around 500 ms; 60 output tokens in the 1 s after each first chunk. The 429
    // span (http.response.status_code) and one without a time to first chunk complete the 7.
    let r = &sonnet.report;
    assert_eq!((r.attempts, r.outcomes.success, r.outcomes.rate_limited, r.outcomes.other), (7, 5, 1, 1));
    assert_eq!(
        sonnet.config.latency.ttft_ms,
        DistConfig::Lognormal { median: 500.0, sigma: Some(SIGMA), p90: None }
    );
    assert_eq!(sonnet.config.latency.output_tokens_per_s, DistConfig::Constant { value: 60.0 });
    assert_eq!(sonnet.config.errors.rate_limited_rate, 0.14286);
    // Haiku by its api_model through the older gen_ai.system: 300 ms, 50 tokens in 0.5 s.
    let haiku = deployment(&c, "anthropic/haiku");
    assert_eq!(haiku.config.latency.ttft_ms, DistConfig::Constant { value: 300.0 });
    assert_eq!(haiku.config.latency.output_tokens_per_s, DistConfig::Constant { value: 100.0 });
    let notes = c.sources[0].notes.join("\n");
    for expected in [
        "9 provider calls read, 8 attempts",
        "1 rows of no deployment of the base scenario, ignored (gpt-4o ×1)",
        "1 records not provider calls (span with gen_ai.operation.name = embeddings ×1)",
    ] {
        assert!(notes.contains(expected), "missing {expected:?} in:\n{notes}");
    }
    // A map makes the unmatched model a deployment.
    let mapped = calibrate(TraceFormat::OtelGenai, "spans.otlp.jsonl", &["gpt-4o=anthropic/haiku".into()]);
    assert_eq!(deployment(&mapped, "anthropic/haiku").report.attempts, 2);
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn sim_calibrate_from_log_writes_tables_and_says_what_a_log_cannot_fit() {
    let dir = scratch();
    let out = dir.path().join("calibrated.toml");
    let spend = format!("litellm_spend:{}", fixtures().join("spend.json").display());
    let base = fixtures().join("gateway.toml");
    let o = sim(
        &["calibrate", "--from-log", &spend, "--base", base.to_str().unwrap(), "-o", out.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("ignored (gpt-4o ×1); map them with --deployment-map NAME=DEPLOYMENT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: gateway log: limits, burst and retry-after are not in a gateway log"),
        "{stdout}"
    );
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ttft = &table["deployments"]["anthropic/sonnet"]["latency"]["ttft_ms"];
    assert_eq!((ttft["dist"].as_str(), ttft["median"].as_float()), (Some("lognormal"), Some(1000.0)));

    // Without --base there is nothing to match rows to; observed directories and logs do not
    // mix; a bad format or map names itself. All exit 2.
    for (args, expected) in [
        (vec!["calibrate", "--from-log", spend.as_str(), "-o", "x.toml"], "--base"),
        (
            vec![
                "calibrate",
                "obs",
                "--from-log",
                spend.as_str(),
                "--base",
                base.to_str().unwrap(),
                "-o",
                "x.toml",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "calibrate",
                "--from-log",
                "splunk:x.json",
                "--base",
                base.to_str().unwrap(),
                "-o",
                "x.toml",
            ],
            "unknown log format \"splunk\" (known: litellm_spend, otel_genai)",
        ),
        (
            vec![
                "calibrate",
                "--from-log",
                spend.as_str(),
                "--deployment-map",
                "gpt-4o=openai/gpt-4o",
                "--base",
                base.to_str().unwrap(),
                "-o",
                "x.toml",
            ],
            "no deployment \"openai/gpt-4o\" in the base scenario (known: anthropic/haiku, anthropic/sonnet)",
        ),
    ] {
        let o = sim(&args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_malformed_row_is_one_line_naming_file_line_and_field_with_exit_2() {
    let dir = scratch();
    let bad = dir.path().join("spend.json");
    let text = std::fs::read_to_string(fixtures().join("spend.json")).unwrap();
    let broken = text.replacen(
        "\"request_id\": \"r-04\", \"call_type\": \"acompletion\", \"spend\": 0.0027, \"prompt_tokens\": 1200, \"completion_tokens\": 160",
        "\"request_id\": \"r-04\", \"call_type\": \"acompletion\", \"spend\": 0.0027, \"prompt_tokens\": 1200, \"completion_tokens\": \"lots\"",
        1,
    );
    assert_ne!(text, broken);
    std::fs::write(&bad, broken).unwrap();
    let expected = format!(
        "error: {}:9: field \"completion_tokens\": expected a non-negative integer, got \"lots\"\n",
        bad.display()
    );
    let base = fixtures().join("gateway.toml");
    let from_log = format!("litellm_spend:{}", bad.display());
    let csv = dir.path().join("t.csv");
    for args in [
        vec!["calibrate", "--from-log", from_log.as_str(), "--base", base.to_str().unwrap(), "-o", "c.toml"],
        vec![
            "trace",
            "convert",
            "--from",
            "litellm_spend",
            bad.to_str().unwrap(),
            "-o",
            csv.to_str().unwrap(),
        ],
    ] {
        let o = sim(&args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), expected, "{args:?}");
    }
}

#[test]
fn both_logs_convert_to_traces_and_report_their_keys() {
    let dir = scratch();
    // The OTLP sample as a trace: 9 inference spans from 0 to 60 s, the embeddings call left
    // out and said.
    let csv = dir.path().join("spans.csv");
    let spans = fixtures().join("spans.otlp.jsonl");
    let o = sim(
        &["trace", "convert", "--from", "otel_genai", spans.to_str().unwrap(), "-o", csv.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("9 rows read, 9 imported; 1 failed requests (0 dropped); 1 records not provider calls (span with gen_ai.operation.name = embeddings ×1)"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 10, "{text}");
    // Each line: id, arrival_ms, class, input, cached, cache writes, output, max_tokens, …
    assert!(rows[1].starts_with("r0,0,interactive,800,200,0,60,60,"), "{}", rows[1]);
    assert!(rows[9].starts_with("r8,60000,interactive,300,0,0,50,50,"), "{}", rows[9]);

    // The spend log as a trace: 11 provider calls from 0 to 90 s, sessions kept; the
    // scenario whose trace it is runs.
    let csv = dir.path().join("spend.csv");
    let spend = fixtures().join("spend.json");
    let o = sim(
        &[
            "trace",
            "convert",
            "--from",
            "litellm_spend",
            spend.to_str().unwrap(),
            "-o",
            csv.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown keys: litellm_trace_id ×1"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 12, "{text}");
    assert!(rows[1].starts_with("r0,0,interactive,1200,1000,0,160,160,s-1"), "{}", rows[1]);
    assert!(rows[11].starts_with("r10,90000,interactive,500,0,0,50,50,"), "{}", rows[11]);
    let o = sim(&["run", fixtures().join("gateway.toml").to_str().unwrap(), "--quiet"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
}
