//! `sim report` and `sim compare`: the gate's verdicts and exit codes on constructed summaries
//! and sweeps, and every plot file produced and non-trivial.

use super::cli::{workdir, TRACE};
use crate::support::sim;
use routesim::metrics::{LatencySummary, OutcomeSummary, StrategySummary};
use serde_json::json;
use std::path::Path;
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A strategy's headline numbers for a constructed summary.
#[derive(Clone, Copy)]
struct Headline {
    request_429_rate: f64,
    interactive_p95_ms: f64,
    cost_usd: f64,
}

const BASE: Headline = Headline { request_429_rate: 0.010, interactive_p95_ms: 2000.0, cost_usd: 100.0 };

/// A `summary.json` of these strategies, written from the library's own summary type (as
/// `sim run` writes it), with the headline numbers set and everything else zero.
fn summary(scenario: &str, seed: u64, strategies: &[(&str, Headline)]) -> String {
    let latency = |p50: f64, p95: f64| LatencySummary { count: 1000, p50, p95, ..Default::default() };
    let list: Vec<StrategySummary> = strategies
        .iter()
        .map(|(name, h)| StrategySummary {
            name: name.to_string(),
            outcome: OutcomeSummary {
                requests: 1000,
                attempt_429_rate: h.request_429_rate * 3.0,
                request_429_rate: h.request_429_rate,
                ttft_ms: latency(900.0, h.interactive_p95_ms * 0.9),
                e2e_ms: latency(3000.0, 5000.0),
                cost_usd: h.cost_usd,
                ..Default::default()
            },
            late_child_starts: 0,
            fallbacks_by_cause: Default::default(),
            retries_by_layer: Default::default(),
            by_class: [(
                "interactive".to_string(),
                OutcomeSummary { ttft_ms: latency(800.0, h.interactive_p95_ms), ..Default::default() },
            )]
            .into(),
            by_deployment: Default::default(),
        })
        .collect();
    serde_json::to_string_pretty(
        &json!({"scenario": scenario, "seed": seed, "trace": "t.csv", "strategies": list}),
    )
    .unwrap()
}

fn gate(baseline: &str, current: &str, extra: &[&str]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.json"), baseline).unwrap();
    std::fs::write(dir.path().join("cur.json"), current).unwrap();
    let mut args = vec!["compare", "base.json", "cur.json"];
    args.extend_from_slice(extra);
    let o = sim(&args, dir.path());
    (dir, o)
}

fn two(a: Headline, b: Headline) -> String {
    summary("s", 1, &[("single", a), ("chain", b)])
}

#[test]
fn identical_runs_pass_with_zero_deltas() {
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, BASE), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("pass: 6 gated values within thresholds"), "{out}");
    assert!(!out.contains("improved") && !out.contains("REGRESSION"), "{out}");
}

#[test]
fn an_improvement_passes_and_is_called_an_improvement() {
    let better = Headline { request_429_rate: 0.0, interactive_p95_ms: 1500.0, cost_usd: 80.0 };
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, better), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let chain_cost = out.lines().find(|l| l.starts_with("chain") && l.contains("cost_usd")).unwrap();
    // 80 vs 100: -20 USD, -20%.
    assert!(chain_cost.contains("-20 (-20.00%)") && chain_cost.ends_with("improved"), "{chain_cost}");
}

#[test]
fn a_regression_beyond_the_default_threshold_fails_and_is_named() {
    // Cost +6% (default allows +5%); 429 rate +0.6 pp (default allows +0.5 pp).
    let worse = Headline { request_429_rate: 0.016, interactive_p95_ms: 2000.0, cost_usd: 106.0 };
    let (dir, o) = gate(&two(BASE, BASE), &two(BASE, worse), &["--markdown", "gate.md"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("chain cost_usd: 100 -> 106 (+6 (+6.00%), allowed +5%)"), "{err}");
    assert!(err.contains("chain request_429_rate"), "{err}");
    assert!(!err.contains("single "), "only the changed strategy is named: {err}");
    assert!(text(&o.stdout).contains("FAIL: 2 regressions of 6 gated values"));
    let md = std::fs::read_to_string(dir.path().join("gate.md")).unwrap();
    assert!(md.contains("| chain | cost_usd | 100 | 106 |") && md.contains("**REGRESSION**"), "{md}");
}

#[test]
fn a_change_within_the_threshold_passes() {
    // Cost +4% < 5%, interactive p95 +9.9% < 10%, 429 rate +0.4 pp < 0.5 pp.
    let slightly = Headline { request_429_rate: 0.014, interactive_p95_ms: 2198.0, cost_usd: 104.0 };
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, slightly), &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    // The same change under tighter user thresholds fails, on exactly the tightened metrics.
    let (_d, o) = gate(
        &two(BASE, BASE),
        &two(BASE, slightly),
        &["--threshold", "cost_usd=+3%", "--threshold", "interactive_ttft_p95_ms=+200"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("chain cost_usd") && !err.contains("interactive.ttft_p95_ms"), "{err}");
}

#[test]
fn a_threshold_file_sets_thresholds_and_flags_override_it() {
    let slightly = Headline { request_429_rate: 0.010, interactive_p95_ms: 2000.0, cost_usd: 102.0 };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), two(BASE, BASE)).unwrap();
    std::fs::write(dir.path().join("c.json"), two(BASE, slightly)).unwrap();
    std::fs::write(dir.path().join("gate.txt"), "# strict on cost\ncost_usd = +1%\n").unwrap();
    let o = sim(&["compare", "b.json", "c.json", "--threshold-file", "gate.txt"], dir.path());
    assert_eq!(o.status.code(), Some(1), "+2% > +1%: {}", text(&o.stdout));
    let o = sim(
        &["compare", "b.json", "c.json", "--threshold-file", "gate.txt", "--threshold", "cost_usd=+2%"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "the flag wins: {}", text(&o.stdout));
}

fn assert_bad_input(o: &Output, expected: &[&str]) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn bad_input_exits_2_and_says_which() {
    let (_d, o) = gate(&two(BASE, BASE), &summary("s", 1, &[("single", BASE)]), &[]);
    assert_bad_input(&o, &["mismatched strategies", "missing from current cur.json: chain"]);
    let (_d, o) =
        gate(&two(BASE, BASE), &summary("s", 1, &[("single", BASE), ("chain", BASE), ("new", BASE)]), &[]);
    assert_bad_input(&o, &["not in baseline base.json: new"]);
    let (_d, o) = gate(&two(BASE, BASE), &summary("other", 1, &[("single", BASE), ("chain", BASE)]), &[]);
    assert_bad_input(&o, &["mismatched scenarios", "\"s\"", "\"other\""]);
    let (_d, o) = gate(&two(BASE, BASE), &summary("s", 2, &[("single", BASE), ("chain", BASE)]), &[]);
    assert_bad_input(&o, &["mismatched seeds"]);
    let (_d, o) = gate(&two(BASE, BASE), "{not json", &[]);
    assert_bad_input(&o, &["cur.json", "not valid JSON"]);
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, BASE), &["--threshold", "cost_usd=five"]);
    assert_bad_input(&o, &["threshold \"cost_usd=five\""]);
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, BASE), &["--threshold", "no_such_metric=+1%"]);
    assert_bad_input(&o, &["unknown metric \"no_such_metric\""]);
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, BASE), &["--threshold", "by_deployment.x.cost_usd=+1%"]);
    assert_bad_input(&o, &["metric \"by_deployment.x.cost_usd\" not found"]);
    let (_d, o) = gate(
        &two(BASE, BASE),
        &two(BASE, BASE).replacen("\"cost_usd\": 100.0", "\"cost_usd\": \"lots\"", 1),
        &[],
    );
    assert_bad_input(&o, &["cur.json:", "invalid type: string \"lots\""]);
    let dir = tempfile::tempdir().unwrap();
    let o = sim(&["compare", "missing.json", "also-missing.json"], dir.path());
    assert_bad_input(&o, &["missing.json: cannot read"]);
}

const SWEEP_BASE: &str = "point,strategy,itpm,request_429_rate_mean,request_429_rate_ci95_lo,request_429_rate_ci95_hi,interactive_ttft_p95_ms_mean,interactive_ttft_p95_ms_ci95_lo,interactive_ttft_p95_ms_ci95_hi,cost_usd_mean,cost_usd_ci95_lo,cost_usd_ci95_hi,pareto
0,single,1000000,0.012,0.009,0.015,11800,11000,12600,414,410,418,false
0,chain,1000000,0.001,0.0,0.002,10100,9700,10500,402,399,405,true
1,single,2000000,0.0021,0.0015,0.0027,9600,9300,9900,411,408,414,false
1,chain,2000000,0.0,0.0,0.0,9300,9050,9550,396,393,399,true
2,single,4000000,0.0002,0.0,0.0005,8500,8300,8700,410,407,413,true
2,chain,4000000,0.0,0.0,0.0,8800,8600,9000,394,391,397,true
";

#[test]
fn sweeps_are_compared_point_by_point() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("base")).unwrap();
    std::fs::create_dir_all(dir.path().join("cur")).unwrap();
    std::fs::write(dir.path().join("base/results.csv"), SWEEP_BASE).unwrap();
    std::fs::write(dir.path().join("cur/results.csv"), SWEEP_BASE).unwrap();
    let o = sim(&["compare", "base", "cur"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Point 1's chain costs 396 -> 420 (+6.1%): a regression named by its point.
    std::fs::write(
        dir.path().join("cur/results.csv"),
        SWEEP_BASE.replace("9300,9050,9550,396,", "9300,9050,9550,420,"),
    )
    .unwrap();
    let o = sim(&["compare", "base", "cur"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("point=1, strategy=chain, itpm=2000000 cost_usd"),
        "{}",
        text(&o.stderr)
    );
    // A point missing from the current sweep is bad input.
    let without_last: String = SWEEP_BASE.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("cur/results.csv"), without_last).unwrap();
    let o = sim(&["compare", "base", "cur"], dir.path());
    assert_bad_input(&o, &["mismatched sweep points", "[point=2, strategy=chain, itpm=4000000]"]);
    // A run summary cannot be compared with a sweep.
    std::fs::write(dir.path().join("s.json"), two(BASE, BASE)).unwrap();
    let o = sim(&["compare", "s.json", "base"], dir.path());
    assert_bad_input(&o, &["one is a run summary, the other a sweep"]);
}

/// Each plot exists as a real PNG of some size and an SVG that carries its title.
fn assert_plots(out: &Path, expected: &[(&str, &str)]) {
    for (stem, title) in expected {
        let png =
            std::fs::read(out.join(format!("{stem}.png"))).unwrap_or_else(|e| panic!("{stem}.png: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{stem}.png is a PNG");
        // A blank or near-blank 1000x600 picture compresses to a few kB; ours carry text and data.
        assert!(png.len() > 20_000, "{stem}.png is only {} bytes", png.len());
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains(title), "{stem}.svg lacks its title {title:?}");
        assert!(svg.len() > 5_000, "{stem}.svg is only {} bytes", svg.len());
    }
}

#[test]
fn report_of_a_run_writes_every_plot_and_self_contained_documents() {
    let scenario = super::cli::SCENARIO.replace(
        "[deployments.\"anthropic/haiku\"]",
        "[[deployments.\"anthropic/sonnet\".incidents]]\nstart = \"1s\"\nduration = \"10s\"\neffect = { overloaded_rate = 0.5 }\n[deployments.\"anthropic/haiku\"]",
    );
    let dir = workdir(&scenario, TRACE);
    let o = sim(&["run", "scenario.toml", "--out", "out"], dir.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.path().join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("incidents.csv")).unwrap(),
        "deployment,start_s,end_s\nanthropic/sonnet,1,11\n"
    );
    // latency.csv: a non-decreasing CDF per (strategy, class), agreeing with summary.json's p95.
    let latency = std::fs::read_to_string(out.join("latency.csv")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let mut last: Option<(String, f64)> = None;
    let mut p95_rows = 0;
    for line in latency.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (key, q, ms) =
            (format!("{},{}", f[0], f[1]), f[2].parse::<f64>().unwrap(), f[3].parse::<f64>().unwrap());
        if let Some((k, prev)) = &last {
            if *k == key {
                assert!(ms >= *prev, "CDF decreases at {line}");
            }
        }
        if q == 0.95 && f[1] == "all" {
            let strategy =
                summary["strategies"].as_array().unwrap().iter().find(|s| s["name"] == f[0]).unwrap();
            assert_eq!(ms, strategy["ttft_ms"]["p95"].as_f64().unwrap());
            p95_rows += 1;
        }
        last = Some((key, ms));
    }
    assert_eq!(p95_rows, 2, "one p95 row per strategy");

    let o = sim(&["report", "out"], dir.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = out.join("report");
    assert_plots(
        &report,
        &[
            ("ttft_cdf", "Time to first token by class"),
            ("rate_limits_over_time", "Attempts answered 429 per minute"),
            ("load_distribution", "Load distribution"),
            ("cost_vs_latency", "Cost vs interactive first-token latency"),
        ],
    );
    let svg = std::fs::read_to_string(report.join("rate_limits_over_time.svg")).unwrap();
    assert!(svg.contains("incident: anthropic/sonnet"), "incident windows are in the legend");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| single |") && md.contains("| chain |"), "{md}");
    assert!(md.contains("![Time to first token by class (CDF)](ttft_cdf.png)"), "{md}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 4);
    assert_eq!(html.matches("src=\"").count(), 4, "no image is loaded from elsewhere");
}

#[test]
fn report_of_a_sweep_plots_each_metric_against_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("results.csv"), SWEEP_BASE).unwrap();
    let o = sim(&["report", ".", "--out", "rep"], dir.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rep = dir.path().join("rep");
    assert_plots(
        &rep,
        &[
            ("sweep_request_429_rate", "request_429_rate vs itpm"),
            ("sweep_interactive_ttft_p95_ms", "interactive.ttft_p95_ms vs itpm"),
            ("sweep_cost_usd", "cost_usd vs itpm"),
            ("cost_vs_latency", "Cost vs interactive first-token latency"),
        ],
    );
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        md.contains("| 1 | chain | 2000000 | 0.0 [0.0, 0.0] | 9300 [9050, 9550] | 396 [393, 399] |"),
        "{md}"
    );
}

#[test]
fn report_of_a_directory_without_results_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let o = sim(&["report", "."], dir.path());
    assert_bad_input(&o, &["neither summary.json", "nor results.csv"]);
    std::fs::write(dir.path().join("results.csv"), "point,strategy,cost_usd_mean\n0,a,zero\n").unwrap();
    let o = sim(&["report", "."], dir.path());
    assert_bad_input(&o, &["results.csv:2: field \"cost_usd_mean\": expected a finite number, got \"zero\""]);
}

#[test]
fn strict_mode_fails_on_any_change_of_a_gated_value() {
    let better = Headline { cost_usd: 99.0, ..BASE };
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, better), &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "an improvement without a refreshed baseline fails");
    assert!(
        text(&o.stderr).contains("--strict: 1 changed without a regression (chain cost_usd)"),
        "{}",
        text(&o.stderr)
    );
    let (_d, o) = gate(&two(BASE, BASE), &two(BASE, BASE), &["--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}
