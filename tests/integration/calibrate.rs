//! `sim calibrate` and `sim validate` on synthetic observations: a hidden deployment is
//! simulated (the engine's own machinery, written as `sim observe` writes attempts), then
//! calibration must recover it and validation must accept it and refuse a wrong one.

use crate::support::{sim, stderr};
use routesim::attempt_log::{AttemptLogWriter, ATTEMPTS_FILE};
use routesim::calibrate::validate_run::simulate_observation;
use routesim::dist::DistConfig;
use routesim::provider::DeploymentConfig;
use routesim::report::RunSummary;
use routesim::rng::{hash_str, SplitMix64};
use routesim::scenario::Scenario;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, ClassTable, Request};
use std::fmt::Write as _;
use std::path::Path;

const SONNET: &str = "anthropic/sonnet";
const HAIKU: &str = "anthropic/haiku";

/// The hidden deployments. Sonnet's RPM binds (12 requests/s arrive, 10/s admitted, a bucket
/// of 100); its token axes have room, so only admissions and `remaining` headers bound them.
/// What Sonnet refuses falls back to Haiku, whose ITPM binds (10k tokens/s, a 5 s bucket of
/// 50k tokens, against prompts of 0.5k–20.5k).
const HIDDEN: &str = r#"
[deployments."anthropic/sonnet"]
provider = "anthropic"
model = "claude-sonnet-4.5"
prices = { input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }
limits = { rpm = 600, itpm = 9000000, otpm = 300000, burst = "10s" }
latency = { ttft_ms = { dist = "lognormal", median = 800.0, sigma = 0.3 }, ttft_ms_per_1k_uncached_input = 40.0, output_tokens_per_s = { dist = "normal", mean = 60.0, sd = 10.0 } }
errors = { overloaded_rate = 0.02, server_error_rate = 0.01 }

[deployments."anthropic/haiku"]
provider = "anthropic"
model = "claude-haiku-4.5"
prices = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 5.0 }
limits = { rpm = 6000, itpm = 600000, otpm = 600000, burst = "5s" }
latency = { ttft_ms = { dist = "gamma", shape = 4.0, scale = 100.0 }, ttft_ms_per_1k_uncached_input = 10.0, output_tokens_per_s = { dist = "normal", mean = 90.0, sd = 15.0 } }
"#;

/// The scenario observed; its own deployments (presets) are what `--deployments` replaces.
const SCENARIO: &str = r#"
name = "observed"
seed = 7
[trace]
file = "trace.csv"
replay = "open"
[deployments."anthropic/sonnet"]
preset = "anthropic-tier4-sonnet-4.x"
[deployments."anthropic/haiku"]
preset = "anthropic-tier4-haiku-4.5"
[[strategy]]
name = "chain"
policy = { kind = "fallback", chain = ["anthropic/sonnet", "anthropic/haiku"], max_attempts = 4 }
"#;

const REQUESTS: u64 = 2_400;

/// Poisson arrivals at 12/s (200 s); uncached input uniform in 500..20,500 tokens (a third
/// of the prompts also read 25% from the cache), output 50..400.
fn trace() -> Vec<(String, Request)> {
    let mut rng = SplitMix64::new(11);
    let mut t_ms = 0.0;
    (0..REQUESTS)
        .map(|i| {
            t_ms += -rng.next_open01().ln() / 12.0 * 1000.0;
            let arrival_ms = (t_ms * 1000.0_f64).round() / 1000.0;
            let uncached = 500 + (rng.next_open01() * 20_000.0) as u64;
            let cached = if i % 3 == 0 { uncached / 3 } else { 0 };
            let output = 50 + (rng.next_open01() * 350.0) as u64;
            let id = format!("r{i}");
            let request = Request {
                id: hash_str(&id),
                arrival: Instant::ZERO + Duration::from_millis_f64(arrival_ms),
                class: ClassId::INTERACTIVE,
                input_tokens: uncached + cached,
                cached_input_tokens: cached,
                cache_write_tokens: 0,
                output_tokens: output,
                max_tokens: output,
                session: None,
                parent: None,
                think: Duration::ZERO,
                deadline: None,
                line: i + 2,
            };
            (id, request)
        })
        .collect()
}

fn write_trace(dir: &Path, requests: &[(String, Request)]) {
    let mut csv = String::from("id,arrival_ms,class,input_tokens,cached_input_tokens,output_tokens\n");
    for (id, r) in requests {
        let _ = writeln!(
            csv,
            "{id},{},interactive,{},{},{}",
            r.arrival.as_micros() as f64 / 1000.0,
            r.input_tokens,
            r.cached_input_tokens,
            r.output_tokens
        );
    }
    std::fs::write(dir.join("trace.csv"), csv).unwrap();
}

/// A work directory with the scenario, its trace, the hidden deployment and an observation of
/// it (seed 7) in `obs/`: attempts.jsonl and summary.json as `sim observe` writes them.
fn observed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let requests = trace();
    write_trace(dir.path(), &requests);
    std::fs::write(dir.path().join("scenario.toml"), SCENARIO).unwrap();
    std::fs::write(dir.path().join("hidden.toml"), HIDDEN).unwrap();
    let hidden_scenario = with_deployments(SCENARIO, HIDDEN);
    let scenario = Scenario::parse(&hidden_scenario, Path::new("hidden-scenario.toml"), dir.path()).unwrap();
    let run = simulate_observation(&scenario, "chain", &requests, Some(7), "trace.csv").unwrap();
    let obs = dir.path().join("obs");
    std::fs::create_dir(&obs).unwrap();
    let mut writer = AttemptLogWriter::new(Vec::new());
    for record in &run.records {
        writer.write(record).unwrap();
    }
    std::fs::write(obs.join(ATTEMPTS_FILE), writer.into_inner()).unwrap();
    let summary = RunSummary {
        scenario: "observed".into(),
        seed: 7,
        trace: "trace.csv".into(),
        strategies: vec![run.metrics.summary(&ClassTable::new(), &scenario.deployment_names())],
    };
    std::fs::write(obs.join("summary.json"), summary.to_json()).unwrap();
    dir
}

/// The scenario text with its deployments table replaced by `deployments`.
fn with_deployments(scenario: &str, deployments: &str) -> String {
    let start = scenario.find("[deployments.").unwrap();
    let end = scenario.find("[[strategy]]").unwrap();
    format!("{}{}\n{}", &scenario[..start], deployments, &scenario[end..])
}

fn calibrated(dir: &Path, name: &str) -> DeploymentConfig {
    let text = std::fs::read_to_string(dir.join("cal.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table["deployments"][name].clone().try_into().unwrap()
}

fn within(got: f64, expected: f64, relative: f64) -> bool {
    (got / expected - 1.0).abs() <= relative
}

#[test]
fn calibrate_recovers_the_hidden_deployments() {
    let dir = observed();
    let o = sim(&["calibrate", "obs", "-o", "cal.toml", "--base", "scenario.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let report = String::from_utf8(o.stdout).unwrap();
    let (sonnet, haiku) = (calibrated(dir.path(), SONNET), calibrated(dir.path(), HAIKU));
    // Limits from the headers: exactly.
    let limits = |c: &DeploymentConfig| (c.limits.rpm, c.limits.itpm, c.limits.otpm, c.limits.tpm);
    assert_eq!(limits(&sonnet), (Some(600), Some(9_000_000), Some(300_000), None));
    assert_eq!(limits(&haiku), (Some(6_000), Some(600_000), Some(600_000), None));
    // The library's report: each burst interval holds the hidden value and is narrow. Sonnet's
    // RPM bucket of 100 requests is pinned to about one request by its admissions and 429s;
    // Haiku's ITPM bucket of 50k tokens by its admissions and the 429s attributed to it, its
    // RPM bucket's `remaining` at idle (500) giving the lower end.
    let calibration =
        routesim::calibrate::fit_dirs(&[dir.path().join("obs")], None, Default::default()).unwrap();
    let fit = |name: &str| calibration.deployments.iter().find(|d| d.name == name).unwrap();
    for (name, hidden_s) in [(SONNET, 10.0), (HAIKU, 5.0)] {
        let burst = fit(name).report.burst.clone().unwrap();
        let high = burst.high_s.unwrap();
        assert!(
            burst.low_s <= hidden_s && high >= hidden_s && burst.consistent,
            "{name}: {burst:?}\n{report}"
        );
        assert!(high - burst.low_s < 0.01 * hidden_s, "{name}: {burst:?}");
        assert!(within(burst.estimate_s, hidden_s, 0.005), "{name}: {burst:?}");
        assert_eq!(fit(name).report.unexplained_429, 0, "{report}");
    }
    let itpm =
        fit(HAIKU).report.axes.iter().find(|a| a.axis == routesim::limiter::Meter::InputTokens).unwrap();
    assert_eq!(itpm.refusals_attributed, fit(HAIKU).report.outcomes.rate_limited, "{report}");
    assert!(within(sonnet.limits.burst.unwrap().as_secs_f64(), 10.0, 0.005), "{report}");
    // Sonnet's TTFT base: lognormal, median within 3% (its SE is about 1.25 σ/√n ≈ 0.8% with
    // n ≈ 2,100 successes, plus the slope's error), σ within 10%.
    let DistConfig::Lognormal { median, sigma: Some(sigma), .. } = sonnet.latency.ttft_ms else {
        panic!("ttft {:?}\n{report}", sonnet.latency.ttft_ms)
    };
    assert!(
        within(median, 800.0, 0.03) && within(sigma, 0.3, 0.1),
        "median {median} sigma {sigma}\n{report}"
    );
    // Slope: SE ≈ 270 ms / (5.8k·√n) ≈ 1 ms per 1k; 10% of 40 is 4 SE.
    let slope = sonnet.latency.ttft_ms_per_1k_uncached_input;
    assert!(within(slope, 40.0, 0.1), "slope {slope}\n{report}");
    // Haiku saw only Sonnet's overflow (about 250 successes): its TTFT median within 10% of
    // the hidden gamma's (367 ms, shape 4 scale 100), whichever family won.
    let ttft = routesim::dist::Dist::try_from(haiku.latency.ttft_ms.clone()).unwrap();
    assert!(within(ttft.median(), 367.2, 0.1), "haiku ttft {:?}\n{report}", haiku.latency.ttft_ms);
    // Output speed: the means within 4 standard errors, whatever family won: Sonnet's SE is
    // about 0.2 tok/s (2% allowed), Haiku's about 1.1 tok/s from ~230 successes (5%).
    for (c, mean, tolerance) in [(&sonnet, 60.0, 0.02), (&haiku, 90.0, 0.05)] {
        let speed = routesim::dist::Dist::try_from(c.latency.output_tokens_per_s.clone()).unwrap();
        assert!(within(speed.mean(), mean, tolerance), "speed {:?}\n{report}", c.latency.output_tokens_per_s);
    }
    // Error rates near the hidden ones (n ≈ 2,100 admitted attempts: the SE of 2% is 0.3
    // points; allow 4 SE), none invented for Haiku; the 429 round trip and retry-after unit.
    assert!((sonnet.errors.overloaded_rate - 0.02).abs() < 4.0 * 0.003, "{:?}", sonnet.errors);
    assert!((sonnet.errors.server_error_rate - 0.01).abs() < 4.0 * 0.0022, "{:?}", sonnet.errors);
    assert_eq!((haiku.errors.overloaded_rate, haiku.errors.server_error_rate), (0.0, 0.0));
    assert_eq!(sonnet.errors.rate_limited_rate, 0.0);
    assert_eq!(sonnet.latency.rate_limit_response, Duration::from_millis(150));
    assert_eq!(sonnet.latency.retry_after_granularity, Duration::from_secs(1));
    assert!(report.contains("KS ") && report.contains("5% critical") && report.contains("burst"), "{report}");
    // The base supplied names and prices; the tables load with the scenario loader.
    assert_eq!((sonnet.provider.as_str(), sonnet.prices.input_usd_per_mtok), ("anthropic", 3.0));
    let text = std::fs::read_to_string(dir.path().join("cal.toml")).unwrap();
    let tables = text.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    Scenario::parse(&with_deployments(SCENARIO, &tables), Path::new("s.toml"), dir.path()).unwrap();
    // Same input, same bytes.
    let again = sim(&["calibrate", "obs", "-o", "cal2.toml", "--base", "scenario.toml"], dir.path());
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(text, std::fs::read_to_string(dir.path().join("cal2.toml")).unwrap());
}

fn validate(dir: &Path, deployments: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["validate", "obs", "--scenario", "scenario.toml", "--deployments", deployments];
    args.extend_from_slice(extra);
    sim(&args, dir)
}

#[test]
fn validate_accepts_the_hidden_and_calibrated_deployments_and_refuses_a_wrong_one() {
    let dir = observed();
    // The hidden deployment with the observation's own seed reproduces it exactly: the
    // timeline, tokens and strategy are the ones observed.
    let o = validate(dir.path(), "hidden.toml", &["--seed", "7", "--max-error", "0"]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    // Another seed (other latency and error draws): within 10% on every figure.
    let o = validate(dir.path(), "hidden.toml", &["--seed", "99", "--max-error", "10"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}\n{table}", stderr(&o));
    assert!(
        table.contains("all requests")
            && table.contains(SONNET)
            && table.contains(HAIKU)
            && table.contains("ttft_p95_ms"),
        "{table}"
    );
    // The calibrated deployment, with the strategy named by obs/summary.json: within 10%.
    let c = sim(&["calibrate", "obs", "-o", "cal.toml", "--base", "scenario.toml"], dir.path());
    assert!(c.status.success(), "{}", stderr(&c));
    let o = validate(dir.path(), "cal.toml", &["--seed", "99", "--max-error", "10"]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    // Half the RPM and twice the TTFT: far off, exit 1 naming the figures.
    let wrong = HIDDEN.replace("rpm = 600,", "rpm = 300,").replace("median = 800.0", "median = 1600.0");
    std::fs::write(dir.path().join("wrong.toml"), wrong).unwrap();
    let o = validate(dir.path(), "wrong.toml", &["--max-error", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let e = stderr(&o);
    assert!(
        e.contains("validation failed") && e.contains("ttft_p50_ms") && e.contains("attempt_429_rate"),
        "{e}"
    );
}

#[test]
fn bad_input_is_one_line_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let o = sim(&["calibrate", "nowhere", "-o", "cal.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: nowhere: not a directory (an observed run's output, holding attempts.jsonl)"
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let o = sim(&["calibrate", "empty", "-o", "cal.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: empty/attempts.jsonl: cannot open: "), "{}", stderr(&o));

    let good = r#"{"request_id":"r1","deployment":"a/b","attempt":1,"start_ms":0.0,"first_token_ms":10.0,"end_ms":20.0,"status":200,"error_type":null,"retry_after_s":null,"headers":{},"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}"#;
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let bad_type = good.replace("\"start_ms\":0.0", "\"start_ms\":\"zero\"");
    std::fs::write(run.join(ATTEMPTS_FILE), format!("{good}\n{bad_type}\n")).unwrap();
    let o = sim(&["calibrate", "run", "-o", "cal.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: run/attempts.jsonl:2: field \"start_ms\": invalid type")
            && e.lines().count() == 1,
        "{e}"
    );
    let bad_header = good.replace("\"headers\":{}", "\"headers\":{\"x-ratelimit-limit-requests\":\"many\"}");
    std::fs::write(run.join(ATTEMPTS_FILE), format!("{good}\n\n{bad_header}\n")).unwrap();
    let o = sim(&["calibrate", "run", "-o", "cal.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: run/attempts.jsonl:3: field \"headers.x-ratelimit-limit-requests\": expected a number >= 0, got \"many\""
    );

    // Validate: no summary.json and no --strategy; an unknown strategy; a bad deployments file.
    std::fs::write(run.join(ATTEMPTS_FILE), format!("{good}\n")).unwrap();
    std::fs::write(dir.path().join("scenario.toml"), SCENARIO.replace("anthropic/sonnet", "a/b")).unwrap();
    std::fs::write(
        dir.path().join("trace.csv"),
        "id,arrival_ms,class,input_tokens,output_tokens\nr1,0,interactive,10,5\n",
    )
    .unwrap();
    let o = sim(&["calibrate", "run", "-o", "cal.toml"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let args = |extra: &[&str]| {
        let mut a = vec!["validate", "run", "--scenario", "scenario.toml", "--deployments", "cal.toml"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run_sim = |extra: &[&str]| {
        let a = args(extra);
        sim(&a.iter().map(String::as_str).collect::<Vec<_>>(), dir.path())
    };
    let o = run_sim(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: run/summary.json: cannot read"), "{}", stderr(&o));
    let o = run_sim(&["--strategy", "chian"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("strategy \"chian\" is not in scenario.toml; did you mean \"chain\"?"),
        "{}",
        stderr(&o)
    );
    let o = run_sim(&["--strategy", "chain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("bad.toml"), "[deployments.\"a/b\"]\nprovider = \"a\"\nmodel = \"b\"\nprices = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 1.0 }\nlatency = { ttft_ms = { dist = \"constant\", value = 5 }, output_tokens_per_s = { dist = \"constant\", value = 5 } }\nlimits = { rpm = 0 }\n").unwrap();
    let o = sim(
        &[
            "validate",
            "run",
            "--scenario",
            "scenario.toml",
            "--deployments",
            "bad.toml",
            "--strategy",
            "chain",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: bad.toml:6: deployments.\"a/b\".limits.rpm: must be > 0 (omit the field for no limit)"
    );
}

/// The figures validation computes from an attempt log are the engine's own metrics when the
/// log is a simulation's: the same attempts, 429 rates, latency quantiles (from arrival, one
/// HDR histogram) and cost.
#[test]
fn figures_of_a_simulated_log_are_the_engines_metrics() {
    use routesim::calibrate::validate_run::figures_of;
    let dir = tempfile::tempdir().unwrap();
    let requests = trace();
    write_trace(dir.path(), &requests);
    let scenario =
        Scenario::parse(&with_deployments(SCENARIO, HIDDEN), Path::new("s.toml"), dir.path()).unwrap();
    let run = simulate_observation(&scenario, "chain", &requests, Some(3), "trace.csv").unwrap();
    let arrivals =
        requests.iter().map(|(id, r)| (id.as_str(), r.arrival.as_micros() as f64 / 1000.0)).collect();
    let prices = scenario.deployments.iter().map(|d| (d.name.as_str(), &d.prices)).collect();
    let (all, per) = figures_of(&run.records, &arrivals, &prices);
    let engine = run.metrics.summary(&ClassTable::new(), &scenario.deployment_names());
    let o = &engine.outcome;
    assert_eq!((all.requests, all.attempts), (o.requests, o.attempts));
    assert!((all.attempt_429_rate - o.attempt_429_rate).abs() < 1e-6, "{all:?} vs {o:?}");
    assert!((all.request_429_rate.unwrap() - o.request_429_rate).abs() < 1e-6);
    assert!((all.attempts_per_request - o.attempts_per_request).abs() < 1e-6);
    assert_eq!(
        (all.ttft_p50_ms, all.ttft_p95_ms, all.e2e_p95_ms),
        (Some(o.ttft_ms.p50), Some(o.ttft_ms.p95), Some(o.e2e_ms.p95))
    );
    assert!((all.cost_usd / o.cost_usd - 1.0).abs() < 1e-6, "{} vs {}", all.cost_usd, o.cost_usd);
    for (name, d) in &engine.by_deployment {
        let f = &per[name];
        assert_eq!(f.attempts, d.metrics.attempts, "{name}");
        assert!(
            (f.attempt_429_rate - d.metrics.attempts_429 as f64 / d.metrics.attempts as f64).abs() < 1e-12
        );
        assert!((f.cost_usd / d.metrics.cost_usd - 1.0).abs() < 1e-6, "{name}");
    }
}

/// Observed times are the client's: each attempt is stamped up to 3 ms before the limiter saw
/// it. Within the default clock tolerance (5 ms) the burst intervals still hold the hidden
/// values, stay narrow, and every 429 is still explained.
#[test]
fn calibration_holds_under_client_clock_jitter() {
    use routesim::calibrate::{fit_runs, read_run, FitOptions};
    let dir = observed();
    let mut run = read_run(&dir.path().join("obs")).unwrap();
    let mut rng = SplitMix64::new(5);
    for (_, r) in &mut run.records {
        r.start_ms = (r.start_ms - 3.0 * rng.next_open01()).max(0.0);
    }
    let calibration = fit_runs(&[run], &[], FitOptions::default()).unwrap();
    for (name, hidden_s) in [(SONNET, 10.0), (HAIKU, 5.0)] {
        let fit = calibration.deployments.iter().find(|d| d.name == name).unwrap();
        let burst = fit.report.burst.clone().unwrap();
        let high = burst.high_s.unwrap();
        assert!(burst.consistent && burst.low_s <= hidden_s && high >= hidden_s, "{name}: {burst:?}");
        assert!(high - burst.low_s < 0.01 * hidden_s, "{name}: {burst:?}");
        assert_eq!(fit.report.unexplained_429, 0, "{name}");
    }
}
