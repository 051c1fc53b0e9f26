//! `sim sweep`: byte-identical results across thread counts, resume after interruption,
//! shards + merge equal one run, override validation, confidence intervals recomputed from the
//! point files, Pareto flags checked against an independent dominance test.

use crate::support::sim;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sim_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sim"));
    command.args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("sim runs")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
}

/// 240 requests over four minutes (60 RPM, ~27k input tokens per minute), open loop, two
/// classes: near tier-1 limits at ×1, well over them at ×3 or with 30 RPM.
fn trace() -> String {
    let mut text = String::from("id,arrival_ms,class,input_tokens,output_tokens\n");
    for i in 0..240u64 {
        let class = if i % 3 == 0 { "bulk" } else { "interactive" };
        text += &format!("r{i},{},{class},{},{}\n", i * 1000, 200 + (i * 37) % 500, 20 + (i * 13) % 60);
    }
    text
}

const SCENARIO: &str = r#"
seed = 11
[trace]
file = "trace.csv"
replay = "open"
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

const SWEEP: &str = r#"
scenario = "scenario.toml"
replications = 3
[axes]
trace.rate_multiplier = [1, 3]
deployments."anthropic/sonnet".limits.rpm = [30, 120]
strategy = ["single", "chain"]
"#;

fn workdir(sweep: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.toml"), SCENARIO).unwrap();
    std::fs::write(dir.path().join("trace.csv"), trace()).unwrap();
    std::fs::write(dir.path().join("sweep.toml"), sweep).unwrap();
    dir
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

#[test]
fn results_are_byte_identical_for_one_and_two_threads() {
    let dir = workdir(SWEEP);
    for (threads, out) in [("1", "t1"), ("2", "t2")] {
        ok(&sim(&["sweep", "sweep.toml", "--out", out, "--threads", threads, "--quiet"], dir.path()));
    }
    let one = read(dir.path().join("t1/results.csv"));
    assert_eq!(one, read(dir.path().join("t2/results.csv")));
    let (header, rows) = csv_rows(&one);
    assert_eq!(rows.len(), 8, "2 multipliers × 2 rpm × 2 strategies");
    assert_eq!(
        &header[..6],
        [
            "point",
            "trace.rate_multiplier",
            r#"deployments."anthropic/sonnet".limits.rpm"#,
            "strategy",
            "replications",
            "request_429_rate_mean"
        ]
    );
    // Point order: the last axis varies fastest.
    let coordinates: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str())).collect();
    assert_eq!(coordinates[..3], [("1", "30", "single"), ("1", "30", "chain"), ("1", "120", "single")]);
    // The squeeze is real: at 30 RPM and 3× traffic the single deployment refuses attempts.
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let attempt_429 = |row: &Vec<String>| row[col("attempt_429_rate_mean")].parse::<f64>().unwrap();
    assert!(attempt_429(&rows[4]) > attempt_429(&rows[6]), "rpm 30 refuses more than rpm 120 at ×3");
}

/// Recomputes mean and CI of cost for every row from the point files: mean ± t·s/√n with
/// t_{0.975, 2} = 4.302653 (n = 3).
#[test]
fn confidence_intervals_match_the_point_files_and_pareto_flags_match_dominance() {
    let dir = workdir(SWEEP);
    ok(&sim(&["sweep", "sweep.toml", "--out", "out", "--quiet"], dir.path()));
    let (header, rows) = csv_rows(&read(dir.path().join("out/results.csv")));
    let manifest: serde_json::Value = serde_json::from_str(&read(dir.path().join("out/sweep.json"))).unwrap();
    let metrics: Vec<&str> =
        manifest["metrics"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let cost = metrics.iter().position(|m| *m == "cost_usd").unwrap();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for row in &rows {
        let point: usize = row[0].parse().unwrap();
        let record: serde_json::Value =
            serde_json::from_str(&read(dir.path().join(format!("out/points/{point:06}.json")))).unwrap();
        let values: Vec<f64> = record["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["strategy"] == row[3].as_str())
            .map(|r| r["values"][cost].as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), 3);
        let seeds: std::collections::BTreeSet<u64> =
            record["runs"].as_array().unwrap().iter().map(|r| r["seed"].as_u64().unwrap()).collect();
        assert_eq!(seeds.len(), 3, "one seed per replication, shared by the point's strategy");
        let mean = values.iter().sum::<f64>() / 3.0;
        let s = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let half = 4.302653 * s / 3f64.sqrt();
        let got = |name: &str| row[col(name)].parse::<f64>().unwrap();
        assert!((got("cost_usd_mean") - mean).abs() < 1e-6);
        assert!((got("cost_usd_ci95_lo") - (mean - half)).abs() < 2e-6);
        assert!((got("cost_usd_ci95_hi") - (mean + half)).abs() < 2e-6);
    }
    // Pareto on (cost, interactive TTFT p95, request 429 rate), all minimised.
    let objectives: Vec<[f64; 3]> = rows
        .iter()
        .map(|r| {
            let f = |name: &str| r[col(name)].parse::<f64>().unwrap_or(f64::INFINITY);
            [f("cost_usd_mean"), f("interactive.ttft_p95_ms_mean"), f("request_429_rate_mean")]
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let dominated = objectives
            .iter()
            .any(|q| (0..3).all(|k| q[k] <= objectives[i][k]) && (0..3).any(|k| q[k] < objectives[i][k]));
        assert_eq!(row[col("pareto")], (!dominated).to_string(), "row {i}");
    }
    assert!(rows.iter().any(|r| r[col("pareto")] == "true"));
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_results() {
    let dir = workdir(SWEEP);
    ok(&sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path()));
    let full = read(dir.path().join("full/results.csv"));

    // Interruption after some points: a shard's worth of points on disk, no results.csv.
    let o = sim(&["sweep", "sweep.toml", "--out", "resumed", "--shard", "1/3", "--quiet"], dir.path());
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("shard done"));
    assert!(!dir.path().join("resumed/results.csv").exists());
    // A temporary file left by a killed writer is ignored.
    std::fs::write(dir.path().join("resumed/points/.000000.json.999.tmp"), "{ half a poi").unwrap();
    let o = sim(&["sweep", "sweep.toml", "--out", "resumed"], dir.path());
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 points already done, 5 to run"));
    assert_eq!(read(dir.path().join("resumed/results.csv")), full);

    // Points lost (deleted) are recomputed to the same bytes.
    for index in [0, 5, 7] {
        std::fs::remove_file(dir.path().join(format!("resumed/points/{index:06}.json"))).unwrap();
    }
    std::fs::remove_file(dir.path().join("resumed/results.csv")).unwrap();
    ok(&sim(&["sweep", "sweep.toml", "--out", "resumed", "--quiet", "--threads", "1"], dir.path()));
    assert_eq!(read(dir.path().join("resumed/results.csv")), full);

    // Another sweep refuses to write into these results.
    std::fs::write(dir.path().join("other.toml"), SWEEP.replace("replications = 3", "replications = 2"))
        .unwrap();
    let o = sim(&["sweep", "other.toml", "--out", "resumed", "--quiet"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds results of another sweep"));
}

#[test]
fn a_damaged_or_edited_point_file_is_recomputed_and_said_so() {
    let dir = workdir(SWEEP);
    ok(&sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path()));
    let full = read(dir.path().join("full/results.csv"));
    let point = |i: usize| dir.path().join(format!("full/points/{i:06}.json"));
    // Damaged: cut in the middle. Edited: one value changed, still valid JSON.
    let text = read(point(2));
    std::fs::write(point(2), &text[..text.len() / 2]).unwrap();
    let text = read(point(4));
    let edited = text.replacen("\"values\":[0", "\"values\":[1", 1);
    assert_ne!(edited, text, "the edit must change the file");
    serde_json::from_str::<serde_json::Value>(&edited).expect("the edited file is still JSON");
    std::fs::write(point(4), edited).unwrap();
    std::fs::write(dir.path().join("full/points/.000001.json.4242.tmp"), "{ half").unwrap();

    // Merging trusts nothing damaged: exit 2 naming the file.
    let o = sim(&["sweep", "merge", "full", "-o", "merged.csv"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("000002.json: unreadable"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    std::fs::remove_file(dir.path().join("full/results.csv")).unwrap();
    let o = sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path());
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("000002.json: unreadable") && err.contains("recomputing it"), "{err}");
    assert!(err.contains("000004.json: content does not match its checksum"), "{err}");
    assert_eq!(read(dir.path().join("full/results.csv")), full, "recomputed to the same bytes");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("full/points"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files survived the resume: {leftovers:?}");
    // A clean resume says nothing.
    let o = sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path());
    ok(&o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("recomputing"));
}

/// A real kill at an arbitrary moment (as soon as the first point is on disk): every point
/// file left is whole, and rerunning finishes with the bytes of an uninterrupted run.
#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let dir = workdir(&SWEEP.replace("replications = 3", "replications = 12"));
    ok(&sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path()));
    let full = read(dir.path().join("full/results.csv"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["sweep", "sweep.toml", "--out", "killed", "--threads", "1", "--quiet"])
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let first_point = dir.path().join("killed/points/000000.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !first_point.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for entry in std::fs::read_dir(dir.path().join("killed/points")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = read(path.clone());
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    ok(&sim(&["sweep", "sweep.toml", "--out", "killed", "--quiet"], dir.path()));
    assert_eq!(read(dir.path().join("killed/results.csv")), full);
}

#[test]
fn shard_processes_and_merge_equal_one_run() {
    let dir = workdir(SWEEP);
    ok(&sim(&["sweep", "sweep.toml", "--out", "full", "--quiet"], dir.path()));
    let full = read(dir.path().join("full/results.csv"));
    // Three shard processes at once, as an array job would run them: two by flag, one by the
    // Slurm environment (task ids 1..=3, so the third task is shard 2).
    let spawn = |args: Vec<String>, env: Vec<(&'static str, &'static str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sim"));
        command.args(&args).current_dir(dir.path());
        for (k, v) in env {
            command.env(k, v);
        }
        command.spawn().expect("sim starts")
    };
    let base = |out: &str| -> Vec<String> {
        ["sweep", "sweep.toml", "--out", out, "--quiet"].iter().map(|s| s.to_string()).collect()
    };
    let mut children = vec![
        spawn([base("s0"), vec!["--shard".into(), "0/3".into()]].concat(), vec![]),
        spawn([base("s1"), vec!["--shard".into(), "1/3".into()]].concat(), vec![]),
        spawn(
            base("s2"),
            vec![
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
    ];
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let points = |d: &str| std::fs::read_dir(dir.path().join(d).join("points")).unwrap().count();
    assert_eq!((points("s0"), points("s1"), points("s2")), (3, 3, 2), "indices 0,3,6 / 1,4,7 / 2,5");

    let missing = sim(&["sweep", "merge", "s0", "s1", "-o", "merged.csv"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("2 of 8 points are missing (e.g. 2, 5)"));

    ok(&sim(&["sweep", "merge", "s0", "s1", "s2", "-o", "merged.csv"], dir.path()));
    assert_eq!(read(dir.path().join("merged.csv")), full);

    // Kubernetes Indexed Job: the index comes from the environment, the count from a flag.
    let o = sim_env(
        &["sweep", "sweep.toml", "--out", "k", "--shard-count", "4", "--quiet"],
        dir.path(),
        &[("JOB_COMPLETION_INDEX", "3")],
    );
    ok(&o);
    assert_eq!(points("k"), 2, "indices 3 and 7");
}

#[test]
fn zipped_axes_take_their_values_together() {
    let dir = workdir(&SWEEP.replace("replications = 3", "replications = 2\ncombine = \"zip\""));
    ok(&sim(&["sweep", "sweep.toml", "--out", "out", "--quiet"], dir.path()));
    let (_, rows) = csv_rows(&read(dir.path().join("out/results.csv")));
    let coordinates: Vec<[&str; 4]> =
        rows.iter().map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()]).collect();
    assert_eq!(coordinates, [["0", "1", "30", "single"], ["1", "3", "120", "chain"]]);
}

#[test]
fn adding_an_axis_value_leaves_other_points_unchanged() {
    let dir = workdir(SWEEP);
    ok(&sim(&["sweep", "sweep.toml", "--out", "a", "--quiet"], dir.path()));
    std::fs::write(dir.path().join("wider.toml"), SWEEP.replace("[30, 120]", "[30, 60, 120]")).unwrap();
    ok(&sim(&["sweep", "wider.toml", "--out", "b", "--quiet"], dir.path()));
    let strip_index = |text: String| -> Vec<Vec<String>> {
        csv_rows(&text).1.into_iter().map(|r| r[1..].to_vec()).collect()
    };
    let narrow = strip_index(read(dir.path().join("a/results.csv")));
    let wide = strip_index(read(dir.path().join("b/results.csv")));
    assert_eq!(wide.len(), 12);
    let without_pareto = |r: &Vec<String>| r[..r.len() - 1].to_vec();
    for row in &narrow {
        assert!(
            wide.iter().any(|w| without_pareto(w) == without_pareto(row)),
            "row {row:?} changed when rpm 60 was added"
        );
    }
}

fn assert_input_error(o: &Output, expected: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "exit code for {expected:?}; stderr: {err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err:?}");
}

#[test]
fn bad_overrides_are_rejected_before_any_work_naming_the_path() {
    let cases = [
        (
            SWEEP.replace("limits.rpm = [30, 120]", "limits.rpn = [30, 120]"),
            r#"deployments."anthropic/sonnet".limits.rpn: unknown field `rpn`"#,
        ),
        (
            SWEEP.replace("limits.rpm = [30, 120]", r#"limits.rpm = [30, "many"]"#),
            r#"deployments."anthropic/sonnet".limits.rpm: invalid type: string "many""#,
        ),
        (
            SWEEP.replace(r#""anthropic/sonnet".limits"#, r#""anthropic/sonet".limits"#),
            r#"unknown deployment "anthropic/sonet""#,
        ),
        (
            SWEEP.replace("trace.rate_multiplier = [1, 3]", r#"trace.rate_multiplier = [1, "x"]"#),
            "axes.trace.rate_multiplier: expected a number > 0",
        ),
        (
            SWEEP.replace("trace.rate_multiplier = [1, 3]", "limits.burst_s = [10, -1]"),
            "axes.limits.burst_s: expected a number of seconds > 0, got -1",
        ),
        (
            SWEEP.replace(r#"strategy = ["single", "chain"]"#, r#"strategy = ["single", "chian"]"#),
            r#"axes.strategy: unknown strategy "chian""#,
        ),
        (
            SWEEP.replace("trace.rate_multiplier = [1, 3]", "simulation.horizont = [1]"),
            "simulation.horizont: unknown field `horizont`",
        ),
        (SWEEP.replace("trace.rate_multiplier = [1, 3]", "seed = [1, 2]"), "axes.seed: cannot be swept"),
        (
            SWEEP.replace("replications = 3", "replications = 3\nreplicatoins = 2"),
            "unknown field `replicatoins`",
        ),
    ];
    // The line of the sweep file each error points at: the axis that set the refused value
    // (SWEEP's axes are on lines 5, 6 and 7), or the misspelt key.
    let lines = [6, 6, 6, 5, 5, 7, 5, 5, 4];
    for ((sweep, expected), line) in cases.into_iter().zip(lines) {
        let dir = workdir(&sweep);
        let o = sim(&["sweep", "sweep.toml", "--out", "out"], dir.path());
        assert_input_error(&o, expected);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("sweep.toml:{line}: ")), "line {line} for {expected:?}: {err}");
        assert!(!dir.path().join("out").exists(), "no work started for {expected:?}");
    }
    // A value refused only by the scenario's own checks points at its axis too, and names the
    // point and the scenario key it set.
    let dir = workdir(&SWEEP.replace("limits.rpm = [30, 120]", "limits.rpm = [30, 0]"));
    let o = sim(&["sweep", "sweep.toml", "--out", "out"], dir.path());
    assert_input_error(
        &o,
        r#"sweep.toml:6: point 2 (trace.rate_multiplier=1, deployments."anthropic/sonnet".limits.rpm=0, strategy=single): "#,
    );
    assert_input_error(&o, r#"scenario.toml: deployments."anthropic/sonnet".limits.rpm: must be > 0"#);
    let dir = workdir(SWEEP);
    assert_input_error(
        &sim(
            &["sweep", "sweep.toml", "--out", "out", "--objective", "cost", "--constraint", "p95 < 3"],
            dir.path(),
        ),
        r#"unknown metric "p95""#,
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn objective_prints_the_best_feasible_point_or_the_closest_infeasible() {
    let dir = workdir(SWEEP);
    let o = sim(
        &[
            "sweep",
            "sweep.toml",
            "--out",
            "out",
            "--quiet",
            "--objective",
            "cost",
            "--constraint",
            "failed_rate <= 0.5",
        ],
        dir.path(),
    );
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(stdout.contains("best feasible (min cost_usd): point "), "{stdout}");
    let o = sim(
        &[
            "sweep",
            "sweep.toml",
            "--out",
            "out",
            "--quiet",
            "--objective",
            "cost",
            "--constraint",
            "cost_usd < 0",
        ],
        dir.path(),
    );
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(stdout.contains("NO FEASIBLE POINT; closest infeasible (violates cost_usd < 0"), "{stdout}");
}

/// A sweep reads its base scenario's trace from any source, not only routesim CSVs: here an
/// Azure-format file, imported once and shared by every point.
#[test]
fn a_sweep_over_an_imported_trace_runs_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..40)
        .map(|i| format!("2023-11-16 18:{:02}:{:02}.0000000,{},{}\n", i / 60, i % 60, 1000 + i * 10, 50))
        .collect();
    std::fs::write(dir.path().join("azure.csv"), format!("TIMESTAMP,ContextTokens,GeneratedTokens\n{rows}"))
        .unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        r#"
seed = 3
[trace]
file = "azure.csv"
format = "azure"
replay = "open"
[deployments.a]
preset = "anthropic-tier1-sonnet-4.x"
[[strategy]]
name = "single"
policy = { kind = "single", deployment = "a" }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sweep.toml"),
        "scenario = \"s.toml\"\nreplications = 2\n[axes]\ntrace.rate_multiplier = [1, 4]\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["sweep", "sweep.toml", "--out", "out", "--quiet"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = std::fs::read_to_string(dir.path().join("out/results.csv")).unwrap();
    assert_eq!(results.lines().count(), 3, "a header and two points:\n{results}");
    // The imported requests really went through: the 40 calls arrive 1 s apart on a 50 RPM
    // tier-1 deployment, so at ×4 (4 calls a second) some are answered 429, at ×1 fewer.
    let header: Vec<&str> = results.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "attempt_429_rate_mean").unwrap();
    let rate = |line: usize| {
        results.lines().nth(line).unwrap().split(',').nth(column).unwrap().parse::<f64>().unwrap()
    };
    assert!(rate(2) > rate(1), "×4 {} vs ×1 {}\n{results}", rate(2), rate(1));
}
