//! Same scenario and seed → byte-identical outputs, whatever the thread count.

use crate::cli::{repo_root, workdir, SCENARIO, TRACE};
use routesim::report::RunSummary;
use routesim::run::run_scenario;
use routesim::scenario::Scenario;

fn summary_json(scenario: &Scenario, threads: usize) -> String {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| RunSummary::of(&run_scenario(scenario, None, None).unwrap()).to_json())
}

#[test]
fn bundled_scenario_is_byte_identical_across_runs_and_thread_counts() {
    let scenario = Scenario::load(&repo_root().join("scenarios/seed-story.toml")).unwrap();
    let one = summary_json(&scenario, 1);
    assert_eq!(one, summary_json(&scenario, 2));
    assert_eq!(one, summary_json(&scenario, 1));
    let summary: serde_json::Value = serde_json::from_str(&one).unwrap();
    for s in summary["strategies"].as_array().unwrap() {
        let n = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(
            n("requests"),
            n("succeeded") + n("rate_limited") + n("failed") + n("batched") + n("unfinished")
        );
        for (_, c) in s["by_class"].as_object().unwrap() {
            let n = |k: &str| c[k].as_u64().unwrap();
            assert_eq!(
                n("requests"),
                n("succeeded") + n("rate_limited") + n("failed") + n("batched") + n("unfinished")
            );
        }
    }
}

/// The seed decides the random draws (latencies, errors, jitter) and nothing else: the same
/// seed gives the same bytes, a scenario's `seed` and `--seed` are the same seed, and another
/// seed moves latencies while every count the trace alone fixes stays put.
#[test]
fn the_seed_decides_the_draws_and_nothing_else() {
    let dir = workdir(SCENARIO, TRACE);
    let scenario = Scenario::load(&dir.path().join("scenario.toml")).unwrap();
    let run = |seed: Option<u64>| RunSummary::of(&run_scenario(&scenario, None, seed).unwrap()).to_json();
    let json = |text: &str| -> serde_json::Value { serde_json::from_str(text).unwrap() };
    let (file_seed, one, one_again, two) = (run(None), run(Some(1)), run(Some(1)), run(Some(2)));
    assert_eq!(one, one_again, "same seed, same bytes");
    assert_eq!(file_seed, run(Some(3)), "the scenario's seed = 3 is --seed 3");
    let (one, two) = (json(&one), json(&two));
    assert_eq!((one["seed"].as_u64(), two["seed"].as_u64()), (Some(1), Some(2)));
    let (a, b) = (one["strategies"].as_array().unwrap(), two["strategies"].as_array().unwrap());
    assert_eq!(a.len(), 2);
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["requests"], b["requests"], "the trace fixes the requests");
        for (class, counts) in a["by_class"].as_object().unwrap() {
            assert_eq!(counts["requests"], b["by_class"][class]["requests"], "{class}");
        }
        // First-token latencies are drawn, so the two seeds' distributions differ.
        assert_ne!(a["ttft_ms"], b["ttft_ms"], "{}: ttft does not depend on the seed", a["name"]);
    }
}

/// Synchronised gateway replicas (issue 12) are as deterministic as everything else: the same
/// scenario gives the same bytes run to run and on one or two threads, every request is
/// accounted for, and sharing the client-side limits every second leaks fewer 429s than
/// sharing nothing.
#[test]
fn synchronised_replicas_are_byte_identical_and_conserve_requests() {
    let scenario = crate::cli::SCENARIO
        .replace(
            "[trace]\nfile = \"trace.csv\"",
            "[trace]\ngenerate = { generator = \"agent\", seed = 4, duration = \"10m\", session_rate_per_min = 1.5 }",
        )
        .replace(
            "[[strategy]]\nname = \"single\"",
            r#"[[strategy]]
name = "replicas-alone"
policy = { kind = "replicas", count = 4, inner = { kind = "smoothing", limits_fraction = 0.9, max_wait = "20s", inner = { kind = "fallback", chain = ["anthropic/sonnet", "anthropic/haiku"] } } }
[[strategy]]
name = "replicas-1s"
policy = { kind = "replicas", count = 4, sync = { every = "1s" }, inner = { kind = "smoothing", limits_fraction = 0.9, max_wait = "20s", inner = { kind = "fallback", chain = ["anthropic/sonnet", "anthropic/haiku"] } } }
[[strategy]]
name = "litellm-replicas-0s"
policy = { kind = "replicas", count = 3, split = "session", sync = { every = "0s" }, inner = { kind = "litellm", model_list = [{ model_name = "g", deployment = "anthropic/sonnet", rpm = 40 }, { model_name = "g", deployment = "anthropic/haiku", rpm = 40 }], router_settings = { routing_strategy = "usage-based-routing-v2", num_retries = 2 } } }
[[strategy]]
name = "single""#,
        );
    let dir = workdir(&scenario, TRACE);
    let scenario = Scenario::load(&dir.path().join("scenario.toml")).unwrap();
    let one = summary_json(&scenario, 1);
    assert_eq!(one, summary_json(&scenario, 2));
    assert_eq!(one, summary_json(&scenario, 1));
    let summary: serde_json::Value = serde_json::from_str(&one).unwrap();
    let strategies = summary["strategies"].as_array().unwrap();
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    for s in strategies {
        assert!(n(s, "requests") > 100, "{}", s["name"]);
        assert_eq!(
            n(s, "requests"),
            n(s, "succeeded") + n(s, "rate_limited") + n(s, "failed") + n(s, "batched") + n(s, "unfinished"),
            "{}",
            s["name"]
        );
    }
    let attempts_429 = |name: &str| {
        let s = strategies.iter().find(|s| s["name"] == name).unwrap();
        s["attempts_429"].as_u64().unwrap()
    };
    assert!(attempts_429("replicas-1s") < attempts_429("replicas-alone"), "{one}");
}
