//! `sim observe` over loopback HTTP: against `sim serve-provider` (every trace row accounted
//! for, attempts.jsonl agreeing with summary.json, `sim report` and `sim compare` reading the
//! result), against a scripted test server (the key and token headers sent, malformed answers
//! recorded, not fatal), a fake API key never written anywhere, and the exit codes of bad
//! endpoint specs (2) and unreachable endpoints (1).

use super::http_support::{deployment_toml, ServeProcess, IO_TIMEOUT};
use super::support::{sim, stderr};
use routesim::attempt_log::read_attempts;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

const FAKE_KEY: &str = "sk-routesim-test-FAKE-7d1f0c9a";
const KEY_ENV: &str = "ROUTESIM_TEST_FAKE_KEY";

/// `sim` with the fake key in its environment.
fn sim_with_key(args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(dir)
        .env(KEY_ENV, FAKE_KEY)
        .output()
        .expect("sim runs")
}

/// 30 interactive requests 100 ms apart (3 s of trace), 1k input tokens, 10 output tokens.
fn write_trace(dir: &Path, rows: u64) {
    let mut text = String::from("id,arrival_ms,class,input_tokens,cached_input_tokens,output_tokens\n");
    for i in 0..rows {
        let class = if i % 3 == 0 { "hard" } else { "interactive" };
        text.push_str(&format!("req-{i},{},{class},1000,200,10\n", i * 100));
    }
    std::fs::write(dir.join("t.csv"), text).unwrap();
}

fn write_scenario(dir: &Path, deployments: &str, strategy: &str) {
    let text = format!(
        "seed = 9\n[trace]\nfile = \"t.csv\"\nreplay = \"open\"\n{deployments}\n[[strategy]]\nname = \"chain\"\npolicy = {strategy}\n"
    );
    std::fs::write(dir.join("s.toml"), text).unwrap();
}

/// Every file under `dir` holds no `needle`.
fn assert_nowhere(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_nowhere(&path, needle);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(needle), "{} holds the key", path.display());
        }
    }
}

#[test]
fn observe_against_serve_provider_accounts_for_every_row_and_reports_like_sim_run() {
    // primary holds 6 requests (rpm 6, one refill per 10 s of provider time = 1 s of wall at
    // time scale 10): the first requests pass, later ones get 429s and fall back to backup.
    let dir = tempfile::tempdir().unwrap();
    let rows = 30;
    write_trace(dir.path(), rows);
    let primary = deployment_toml(
        "primary",
        400,
        200,
        "api_key_env = \"ROUTESIM_TEST_FAKE_KEY\"\nlimits = { rpm = 6, burst = \"60s\" }",
    );
    let backup = deployment_toml(
        "backup",
        600,
        200,
        "api_key_env = \"ROUTESIM_TEST_FAKE_KEY\"\napi_model = \"gpt-test\"",
    );
    write_scenario(
        dir.path(),
        &format!("{primary}{backup}"),
        "{ kind = \"fallback\", chain = [\"primary\", \"backup\"], max_attempts = 3 }",
    );
    let server = ServeProcess::start(dir.path(), "s.toml", &["primary", "backup"], &["--time-scale", "10"]);
    let primary_endpoint = format!("primary=anthropic:{}", server.url("primary"));
    let backup_endpoint = format!("backup=openai:{}/", server.url("backup"));
    let started = std::time::Instant::now();
    let out = sim_with_key(
        &[
            "observe",
            "s.toml",
            "--strategy",
            "chain",
            "--endpoint",
            &primary_endpoint,
            "--endpoint",
            &backup_endpoint,
            "--speed",
            "3",
            "--duration",
            "30s",
            "--out",
            "obs",
        ],
        dir.path(),
    );
    let took = started.elapsed();
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    // 3 s of trace at speed 3 is 1 s of arrivals; answers take 40-60 ms of wall each.
    assert!(took.as_secs_f64() < 15.0, "took {took:?}");

    let attempts = read_attempts(&dir.path().join("obs/attempts.jsonl")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("obs/summary.json")).unwrap()).unwrap();
    let s = &summary["strategies"][0];
    assert_eq!(s["name"], "chain");
    // Every row is a request, and every request is in the log, attempts numbered from 1.
    assert_eq!(s["requests"], rows);
    let ids: BTreeSet<&str> = attempts.iter().map(|a| a.request_id.as_str()).collect();
    let expected: BTreeSet<String> = (0..rows).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect());
    let mut by_request: BTreeMap<&str, Vec<&routesim::attempt_log::AttemptRecord>> = BTreeMap::new();
    for a in &attempts {
        by_request.entry(a.request_id.as_str()).or_default().push(a);
    }
    let mut served = 0;
    for (id, tries) in &by_request {
        let mut numbers: Vec<u32> = tries.iter().map(|a| a.attempt).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=tries.len() as u32).collect::<Vec<_>>(), "{id}");
        // The fallback chain: 429s at primary, then backup; the last attempt is the outcome.
        let last = tries.iter().max_by_key(|a| a.attempt).unwrap();
        served += u64::from(last.is_success());
        for a in tries.iter() {
            assert!(matches!(a.status, 200 | 429), "{a:?}");
            if a.status == 429 {
                assert_eq!(a.deployment, "primary");
                assert_eq!(a.error_type.as_deref(), Some("rate_limit_error"));
                assert!(a.retry_after_s.is_some_and(|s| s > 0.0 && s <= 1.0), "{a:?}");
            } else {
                assert!(a.ttft_ms().is_some_and(|t| t >= 40.0), "TTFT of at least 400 ms / 10: {a:?}");
                assert_eq!(
                    (a.input_tokens, a.cached_input_tokens, a.output_tokens),
                    (1000, 200, 10),
                    "{a:?}"
                );
            }
        }
    }
    let n_429 = attempts.iter().filter(|a| a.status == 429).count() as u64;
    assert!(n_429 >= 1, "primary's bucket must refuse some of 30 requests in a second");
    assert_eq!(s["attempts"], attempts.len() as u64);
    assert_eq!(s["attempts_429"], n_429);
    assert_eq!(s["succeeded"], served);
    assert_eq!(
        s["succeeded"].as_u64().unwrap()
            + s["rate_limited"].as_u64().unwrap()
            + s["failed"].as_u64().unwrap(),
        rows
    );
    assert_eq!(s["unfinished"], 0);
    // The rate-limit headers are recorded as sent.
    let primary_ok = attempts.iter().find(|a| a.deployment == "primary" && a.status == 200).unwrap();
    assert_eq!(primary_ok.headers.get("anthropic-ratelimit-requests-limit").map(String::as_str), Some("6"));
    assert!(stdout.contains("wrote obs/attempts.jsonl"), "{stdout}");

    // sim report and sim compare read an observed run like a simulated one.
    let report = sim(&["report", "obs"], dir.path());
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let compare = sim(&["compare", "obs", "obs"], dir.path());
    assert_eq!(compare.status.code(), Some(0), "{}", stderr(&compare));

    // The key was in the environment of the run; it is in no file, nor in what sim printed.
    assert_nowhere(&dir.path().join("obs"), FAKE_KEY);
    assert!(!stdout.contains(FAKE_KEY) && !err.contains(FAKE_KEY));
}

/// A one-shot scripted HTTP server: accepts `answers.len()` connections in turn, records each
/// request's head, answers with the given raw bytes and closes. Ends by itself after 20 s.
fn scripted_server(answers: Vec<Vec<u8>>) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        let mut heads = Vec::new();
        for answer in answers {
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(_) => return heads,
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut raw = Vec::new();
            let mut buf = [0u8; 65536];
            // Read the head and the body (content-length).
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length {
                        heads.push(text[..end].to_string());
                        break;
                    }
                }
            }
            let _ = stream.write_all(&answer);
        }
        heads
    });
    (addr, handle)
}

#[test]
fn observe_sends_key_and_token_headers_and_records_malformed_answers_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), 2);
    let answers = vec![
        // A stream whose event data is not JSON.
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\nevent: message_start\ndata: {not json\n\n".to_vec(),
        // Not HTTP at all.
        b"garbage garbage\r\n\r\n".to_vec(),
    ];
    let (addr, server) = scripted_server(answers);
    let deployment = deployment_toml("only", 10, 100, "api_key_env = \"ROUTESIM_TEST_FAKE_KEY\"");
    write_scenario(dir.path(), &deployment, "{ kind = \"single\", deployment = \"only\", max_attempts = 1 }");
    let endpoint = format!("only=anthropic:http://{addr}");
    let out = sim_with_key(
        &[
            "observe",
            "s.toml",
            "--strategy",
            "chain",
            "--endpoint",
            &endpoint,
            "--speed",
            "10",
            "--out",
            "obs",
        ],
        dir.path(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: deployment \"only\": a malformed answer"), "{err}");
    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 2);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("post /v1/messages http/1.1"), "{head}");
    assert!(
        head.contains(&format!("x-api-key: {}", FAKE_KEY.to_ascii_lowercase())),
        "the key is sent: {head}"
    );
    assert!(head.contains("anthropic-version: 2023-06-01"));
    for header in [
        "x-routesim-input-tokens: 1000",
        "x-routesim-cached-input-tokens: 200",
        "x-routesim-output-tokens: 10",
    ] {
        assert!(head.contains(header), "{header}: {head}");
    }
    let attempts = read_attempts(&dir.path().join("obs/attempts.jsonl")).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].error_type.as_deref(), Some("invalid_response"));
    assert_eq!(attempts[0].status, 200);
    assert_eq!(attempts[1].error_type.as_deref(), Some("transport_error"));
    let summary = std::fs::read_to_string(dir.path().join("obs/summary.json")).unwrap();
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(
        (s["strategies"][0]["requests"].as_u64(), s["strategies"][0]["failed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_nowhere(&dir.path().join("obs"), FAKE_KEY);
    assert!(!err.contains(FAKE_KEY));
}

#[test]
fn bad_endpoints_exit_2_and_an_unreachable_one_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), 3);
    let deployment = deployment_toml("only", 10, 100, "api_key_env = \"ROUTESIM_TEST_FAKE_KEY\"");
    write_scenario(dir.path(), &deployment, "{ kind = \"single\", deployment = \"only\" }");
    let run = |endpoint: &str, strategy: &str, with_key: bool| {
        let args = [
            "observe",
            "s.toml",
            "--strategy",
            strategy,
            "--endpoint",
            endpoint,
            "--out",
            "obs",
            "--duration",
            "20s",
        ];
        if with_key {
            sim_with_key(&args, dir.path())
        } else {
            sim(&args, dir.path())
        }
    };
    for (endpoint, strategy, with_key, says) in [
        ("only", "chain", true, "--endpoint \"only\": expected DEPLOYMENT=PROTOCOL:URL"),
        ("only=grpc:http://127.0.0.1:1", "chain", true, "unknown protocol \"grpc\""),
        ("only=anthropic:127.0.0.1:1", "chain", true, "http:// or https://"),
        (
            "onyl=anthropic:http://127.0.0.1:1",
            "chain",
            true,
            "--endpoint: unknown deployment \"onyl\"; did you mean \"only\"?",
        ),
        (
            "only=anthropic:http://127.0.0.1:1",
            "chian",
            true,
            "--strategy: unknown strategy \"chian\"; did you mean \"chain\"?",
        ),
        (
            "only=anthropic:http://127.0.0.1:1",
            "chain",
            false,
            "api_key_env: environment variable ROUTESIM_TEST_FAKE_KEY is not set",
        ),
    ] {
        let out = run(endpoint, strategy, with_key);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{endpoint}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{endpoint}: {err}");
    }
    // A port nobody listens on: a closed listener's.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run(&format!("only=anthropic:http://127.0.0.1:{port}"), "chain", true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("deployment \"only\": cannot connect to http://127.0.0.1:") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!err.contains(FAKE_KEY));
    assert_nowhere(&dir.path().join("obs"), FAKE_KEY);
}

#[test]
fn http_failures_map_to_the_failure_kinds_the_policy_falls_back_on() {
    // Each request walks the chain: a stream broken after its first token by an error event
    // (Anthropic) and by a cut connection (OpenAI), both mid_stream; a 503 from an overloaded
    // OpenAI-style endpoint (overloaded); a 500 (server_error); then a success.
    let dir = tempfile::tempdir().unwrap();
    write_trace(dir.path(), 4);
    let chain = [
        ("broken", "anthropic", "errors = { mid_stream_error_rate = 1.0 }"),
        ("cut", "openai", "errors = { mid_stream_error_rate = 1.0 }"),
        ("storm", "openai", "errors = { overloaded_rate = 1.0 }"),
        ("failing", "anthropic", "errors = { server_error_rate = 1.0 }"),
        ("good", "openai", ""),
    ];
    let deployments: String =
        chain.iter().map(|(name, _, extra)| deployment_toml(name, 100, 100, extra)).collect();
    let names: Vec<&str> = chain.iter().map(|(name, ..)| *name).collect();
    let policy = format!(
        "{{ kind = \"fallback\", chain = [{}], max_attempts = 5 }}",
        names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
    );
    write_scenario(dir.path(), &deployments, &policy);
    let server = ServeProcess::start(dir.path(), "s.toml", &names, &["--time-scale", "10"]);
    let mut args = vec!["observe".to_string(), "s.toml".into(), "--strategy".into(), "chain".into()];
    for (name, protocol, _) in &chain {
        args.push("--endpoint".into());
        args.push(format!("{name}={protocol}:{}", server.url(name)));
    }
    args.extend(["--speed", "10", "--out", "obs"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sim(&args, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let attempts = read_attempts(&dir.path().join("obs/attempts.jsonl")).unwrap();
    assert_eq!(attempts.len(), 4 * chain.len());
    for a in &attempts {
        let (status, error_type, first_token) = match a.deployment.as_str() {
            "broken" => (200, Some("overloaded_error"), true),
            "cut" => (200, Some("stream_broken"), true),
            "storm" => (503, Some("overloaded"), false),
            "failing" => (500, Some("api_error"), false),
            _ => (200, None, true),
        };
        let seen = (a.status, a.error_type.as_deref(), a.first_token_ms.is_some());
        assert_eq!(seen, (status, error_type, first_token), "{a:?}");
        assert_eq!(a.attempt, names.iter().position(|n| *n == a.deployment).unwrap() as u32 + 1, "{a:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("obs/summary.json")).unwrap()).unwrap();
    let s = &summary["strategies"][0];
    assert_eq!((s["requests"].as_u64(), s["succeeded"].as_u64()), (Some(4), Some(4)));
    let fallbacks = &s["fallbacks_by_cause"];
    for (kind, count) in [("mid_stream", 8), ("overloaded", 4), ("server_error", 4)] {
        assert_eq!(fallbacks[kind], count, "{kind}: {fallbacks}");
    }
}

#[test]
fn closed_loop_children_wait_for_their_parents_and_duration_stops_the_run() {
    // a → b (think 400 ms) → c (think 400 ms); d arrives at 60 s, after --duration 3s: it is
    // counted, unfinished.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "id,arrival_ms,class,input_tokens,output_tokens,parent,think_ms\na,0,hard,100,5,,\nb,0,hard,100,5,a,400\nc,0,hard,100,5,b,400\nd,60000,hard,100,5,,\n",
    )
    .unwrap();
    let text = format!(
        "seed = 9\n[trace]\nfile = \"t.csv\"\n{}\n[[strategy]]\nname = \"one\"\npolicy = {{ kind = \"single\", deployment = \"only\" }}\n",
        deployment_toml("only", 100, 100, "")
    );
    std::fs::write(dir.path().join("s.toml"), text).unwrap();
    let server = ServeProcess::start(dir.path(), "s.toml", &["only"], &[]);
    let endpoint = format!("only=anthropic:{}", server.url("only"));
    let started = std::time::Instant::now();
    let out = sim(
        &[
            "observe",
            "s.toml",
            "--strategy",
            "one",
            "--endpoint",
            &endpoint,
            "--duration",
            "3s",
            "--out",
            "obs",
        ],
        dir.path(),
    );
    let took = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout.contains("(stopped by --duration)"), "{stdout}");
    assert!((3.0..10.0).contains(&took), "took {took} s");
    let attempts = read_attempts(&dir.path().join("obs/attempts.jsonl")).unwrap();
    let by_id: BTreeMap<&str, &routesim::attempt_log::AttemptRecord> =
        attempts.iter().map(|a| (a.request_id.as_str(), a)).collect();
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
    // Each answer takes 100 ms + 5 tokens at 100/s = 150 ms; a child starts 400 ms after.
    for (parent, child) in [("a", "b"), ("b", "c")] {
        let gap = by_id[child].start_ms - by_id[parent].end_ms;
        // Never early; late by the replay loop's and the thread's start (slack for a loaded machine).
        assert!((399.0..=700.0).contains(&gap), "{parent} → {child}: {gap} ms");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("obs/summary.json")).unwrap()).unwrap();
    let s = &summary["strategies"][0];
    assert_eq!(
        (s["requests"].as_u64(), s["succeeded"].as_u64(), s["unfinished"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
}
