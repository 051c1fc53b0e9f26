//! `sim serve-provider` over loopback HTTP: limits, latency at a time scale, the 529 rule and
//! the wire formats, each checked against numbers worked out by hand from the scenario and
//! parsed with the test's own HTTP client and SSE parser (tests/integration/http_support.rs).

use super::http_support::{
    deployment_toml, deployment_toml_with, messages_body, post, sse_events, token_headers, ServeProcess,
};
use super::support::{sim, stderr};
use std::time::Duration;

fn scenario(dir: &std::path::Path, deployments: &str) {
    let first = deployments.split('"').nth(1).expect("a deployment name");
    let text = format!(
        "seed = 5\n[trace]\nfile = \"t.csv\"\n{deployments}\n[[strategy]]\nname = \"one\"\npolicy = {{ kind = \"single\", deployment = \"{first}\" }}\n"
    );
    std::fs::write(dir.join("s.toml"), text).unwrap();
}

#[test]
fn a_burst_above_the_rpm_bucket_gets_exactly_the_hand_computed_429s() {
    // rpm = 1 with a 6-minute burst: the bucket holds 1 × 360 s / 60 s = 6 requests and refills
    // one per 60 s. Ten requests at once: 6 admitted (remaining 5, 4, …, 0), 4 refused, each
    // told to come back when one request has refilled: 60 s minus the time since the server
    // started, rounded up to whole seconds.
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &deployment_toml("p/m", 50, 1000, "limits = { rpm = 1, burst = \"6m\" }"));
    let server = ServeProcess::start(dir.path(), "s.toml", &["p/m"], &[]);
    let addr = server.addr("p/m");
    let responses: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(move || {
                    post(addr, "/v1/messages", &token_headers(100, 0, 2), &messages_body(true, 10), None)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let since_start = server.spawned_at.elapsed().as_secs_f64();
    let ok: Vec<_> = responses.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        (ok.len(), refused.len()),
        (6, 4),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let mut remaining: Vec<u64> = ok
        .iter()
        .map(|r| r.header("anthropic-ratelimit-requests-remaining").unwrap().parse().unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2, 3, 4, 5]);
    let earliest = (60.0 - since_start).ceil() as u64;
    for r in &refused {
        let retry_after: u64 = r.header("retry-after").expect("retry-after").parse().unwrap();
        assert!((earliest..=60).contains(&retry_after), "retry-after {retry_after}, {since_start:.2} s in");
        assert_eq!(r.header("retry-after-ms"), Some((retry_after * 1000).to_string().as_str()));
        assert_eq!(r.header("anthropic-ratelimit-requests-remaining"), Some("0"));
        assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("1"));
        let body = r.json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
}

#[test]
fn time_to_first_token_over_http_at_time_scale_20_is_the_models_within_40_ms_at_the_median() {
    // TTFT = 2000 ms + 100 ms per 1k uncached input × 10k = 3000 ms of provider time; 40 tokens
    // at 40 tokens/s = 1000 ms more. At --time-scale 20: 150 ms and 200 ms of wall time.
    let dir = tempfile::tempdir().unwrap();
    let prefill = ", ttft_ms_per_1k_uncached_input = 100";
    scenario(dir.path(), &deployment_toml_with("p/m", 2000, 40, prefill, ""));
    let server = ServeProcess::start(dir.path(), "s.toml", &["p/m"], &["--time-scale", "20"]);
    let addr = server.addr("p/m");
    let (model_ttft, model_e2e) = (Duration::from_millis(150), Duration::from_millis(200));
    // Each answer is late by at most `any` (a loaded 2-core machine running other tests can
    // delay one), the median by at most `median`; none is ever early.
    let (any, median) = (Duration::from_millis(200), 40.0);
    let mut errors_ms = Vec::new();
    for _ in 0..4 {
        let r = post(
            addr,
            "/v1/messages",
            &token_headers(12_000, 2_000, 40),
            &messages_body(true, 100),
            Some("event: content_block_delta"),
        );
        assert_eq!(r.status, 200);
        let ttft = r.marker_after.expect("a delta arrived");
        // The headers (and message_start) leave at once; the first delta at the model's TTFT.
        assert!(r.headers_after + Duration::from_millis(50) < ttft, "headers {:?}", r.headers_after);
        // Never early: the server sleeps until the instant.
        assert!(ttft >= model_ttft - Duration::from_millis(2) && ttft <= model_ttft + any, "TTFT {ttft:?}");
        assert!(
            r.done_after >= model_e2e - Duration::from_millis(2) && r.done_after <= model_e2e + any,
            "e2e {:?}",
            r.done_after
        );
        errors_ms.push(ttft.as_secs_f64() * 1e3 - 150.0);

        // The event sequence, by the test's own SSE parser.
        let events = sse_events(&r.body);
        let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap_or("")).collect();
        assert_eq!(&names[..3], ["message_start", "content_block_start", "ping"]);
        assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
        let deltas = &events[3..events.len() - 3];
        assert!(
            !deltas.is_empty() && deltas.iter().all(|e| e.name.as_deref() == Some("content_block_delta"))
        );
        let text: String = deltas
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["delta"]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(text.len(), 40 * 4, "40 tokens of 4 characters");
        let start: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(start["message"]["usage"]["input_tokens"], 10_000, "uncached prompt tokens");
        assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 2_000);
        let delta: serde_json::Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
        assert_eq!(delta["usage"]["output_tokens"], 40);
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    }
    eprintln!("TTFT error at time scale 20 (ms, model 150 ms): {errors_ms:.1?}");
    errors_ms.sort_by(f64::total_cmp);
    let middle = (errors_ms[1] + errors_ms[2]) / 2.0;
    assert!(middle <= median, "median TTFT error {middle:.1} ms: {errors_ms:?}");
}

#[test]
fn a_529_during_an_incident_consumes_no_rate_limit() {
    // Both deployments hold 10 requests. "storm" is in an incident answering every request
    // 529: its remaining count stays 10. "calm" has none: 9, 8, 7.
    let dir = tempfile::tempdir().unwrap();
    let limits = "limits = { rpm = 10, itpm = 100000, burst = \"60s\" }";
    let storm = deployment_toml(
        "storm",
        50,
        1000,
        &format!("{limits}\n[[deployments.\"storm\".incidents]]\nstart = \"0s\"\nduration = \"1h\"\neffect = {{ overloaded_rate = 1.0 }}"),
    );
    let calm = deployment_toml("calm", 50, 1000, limits);
    scenario(dir.path(), &format!("{storm}{calm}"));
    let server = ServeProcess::start(dir.path(), "s.toml", &["storm", "calm"], &[]);
    for (deployment, expected_status, expected_remaining) in
        [("storm", 529, [10, 10, 10]), ("calm", 200, [9, 8, 7])]
    {
        for expected in expected_remaining {
            let r = post(
                server.addr(deployment),
                "/v1/messages",
                &token_headers(5_000, 0, 3),
                &messages_body(false, 10),
                None,
            );
            assert_eq!(r.status, expected_status, "{deployment}");
            let remaining = r.header("anthropic-ratelimit-requests-remaining").unwrap();
            assert_eq!(remaining, expected.to_string(), "{deployment}");
            let input_remaining: u64 =
                r.header("anthropic-ratelimit-input-tokens-remaining").unwrap().parse().unwrap();
            let body = r.json();
            if expected_status == 529 {
                assert_eq!(input_remaining, 100_000, "no input tokens charged");
                assert_eq!(body["error"]["type"], "overloaded_error");
                assert!(body.get("usage").is_none(), "nothing billed");
            } else {
                assert_eq!(body["usage"]["output_tokens"], 3);
                assert_eq!(body["content"][0]["text"].as_str().map(str::len), Some(12));
            }
        }
    }
}

#[test]
fn openai_streams_chunks_with_usage_and_bad_requests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    scenario(
        dir.path(),
        &deployment_toml("gpt", 20, 1000, "limits = { rpm = 100, tpm = 100000, burst = \"60s\" }"),
    );
    let server = ServeProcess::start(dir.path(), "s.toml", &["gpt"], &["--time-scale", "10"]);
    let addr = server.addr("gpt");
    let body = serde_json::json!({
        "model": "gpt-x", "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 50,
        "messages": [{"role": "user", "content": "a".repeat(400)}],
    })
    .to_string();
    // No input header: the prompt's 400 characters are estimated as 100 tokens.
    let headers = vec![("x-routesim-output-tokens", "7".to_string())];
    let r = post(addr, "/v1/chat/completions", &headers, &body, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("100"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("99"));
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("100000"));
    let events = sse_events(&r.body);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|c| c["delta"]["content"].as_str()).map(str::to_string))
        .collect();
    assert_eq!(text.len(), 28);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(100), Some(7)));
    assert!(chunks.iter().any(|c| c["choices"].get(0).is_some_and(|c| c["finish_reason"] == "stop")));

    // Non-streaming: one JSON body with usage.
    let whole =
        serde_json::json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let r = post(addr, "/v1/chat/completions", &headers, &whole, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["usage"]["completion_tokens"], 7);

    for (path, headers, body, status, says) in [
        ("/v1/chat/completions", vec![], "{not json".to_string(), 400, "not valid JSON"),
        (
            "/v1/messages",
            token_headers(10, 20, 1),
            messages_body(true, 5),
            400,
            "x-routesim-cached-input-tokens",
        ),
        (
            "/v1/messages",
            vec![("x-routesim-output-tokens", "many".to_string())],
            messages_body(true, 5),
            400,
            "x-routesim-output-tokens",
        ),
        ("/v2/other", vec![], "{}".to_string(), 404, "not found"),
    ] {
        let r = post(addr, path, &headers, &body, None);
        assert_eq!(r.status, status, "{path} {body}");
        assert!(String::from_utf8_lossy(&r.body).contains(says), "{}", String::from_utf8_lossy(&r.body));
    }
}

#[test]
fn bad_listener_specs_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &deployment_toml("p/m", 20, 1000, ""));
    for (args, says) in [
        (vec!["--deployment", "p/m"], "--deployment \"p/m\": expected NAME=ADDRESS:PORT"),
        (
            vec!["--deployment", "p/n=127.0.0.1:0"],
            "--deployment: unknown deployment \"p/n\"; did you mean \"p/m\"?",
        ),
        (vec!["--deployment", "p/m=localhost"], "is not an IP address and port"),
        (vec!["--deployment", "p/m=127.0.0.1:0", "--time-scale", "0"], "--time-scale: must be a number > 0"),
        (vec!["--deployment", "p/m=127.0.0.1:0", "--deployment", "p/m=127.0.0.1:0"], "given twice"),
    ] {
        let mut full = vec!["serve-provider", "s.toml"];
        full.extend(args.iter().copied());
        let out = sim(&full, dir.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{args:?}: {err}");
    }
}
