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

#[test]
fn a_different_seed_changes_the_numbers() {
    let dir = workdir(SCENARIO, TRACE);
    let scenario = Scenario::load(&dir.path().join("scenario.toml")).unwrap();
    let a = RunSummary::of(&run_scenario(&scenario, None, Some(1)).unwrap()).to_json();
    let b = RunSummary::of(&run_scenario(&scenario, None, Some(2)).unwrap()).to_json();
    assert_ne!(a, b);
}
