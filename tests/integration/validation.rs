//! The engine against queueing theory: if these drift, the simulator is wrong.

use crate::support::*;

/// Erlang's loss formula by the stable recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)).
fn erlang_b(servers: u32, offered_load: f64) -> f64 {
    (1..=servers).fold(1.0, |b, k| offered_load * b / (f64::from(k) + offered_load * b))
}

#[test]
fn erlang_b_reference_values() {
    // Tabulated: B(1, 1) = 0.5; B(10, 10) = 0.2146; B(5, 2) = 0.0367.
    assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-12);
    assert!((erlang_b(10, 10.0) - 0.2146).abs() < 5e-5);
    assert!((erlang_b(5, 2.0) - 0.0367).abs() < 5e-5);
}

/// A concurrency-capped deployment with Poisson arrivals and no retries is an M/G/c/c loss
/// system: it rejects the Erlang-B fraction whatever the service-time distribution.
#[test]
fn concurrency_cap_rejects_the_erlang_b_fraction_for_any_latency_distribution() {
    let latencies = [
        ("constant", r#"{ dist = "constant", value = 1000 }"#),
        ("exponential", r#"{ dist = "exponential", mean = 1000 }"#),
        // Lognormal with median m and sigma s has mean m·exp(s²/2): 1000 ms mean needs m = 1000/exp(0.32).
        ("lognormal", r#"{ dist = "lognormal", median = 726.149, sigma = 0.8 }"#),
    ];
    let servers = 10;
    let arrivals_per_s = 10.0; // offered load a = λ × mean service = 10 × 1 s = 10 Erlangs
    let expected = erlang_b(servers, arrivals_per_s * 1.0);
    let n = 100_000;
    for (name, ttft) in latencies {
        let d = deployment(
            "capped",
            &format!(
                "[limits]\nmax_in_flight = {servers}\n[latency]\nttft_ms = {ttft}\noutput_tokens_per_s = {{ dist = \"constant\", value = 100 }}\n"
            ),
        );
        // Zero output tokens: the service time is exactly the time to first token.
        let trace = poisson_trace(n, arrivals_per_s, 11, 10, 0);
        let m = run(&open_loop(5), &[d], &mut single(1), trace);
        let rejected = m.total.attempts_429 as f64 / m.total.attempts as f64;
        eprintln!("Erlang B, {name} service: simulated {rejected:.4}, formula {expected:.4}");
        // Binomial standard error is sqrt(p(1-p)/n) = 0.0013; blocking events are positively
        // correlated, so allow about 5 standard errors.
        assert!(
            (rejected - expected).abs() < 0.0065,
            "{name}: rejected {rejected:.4}, Erlang B {expected:.4}"
        );
        assert_eq!(m.total.attempts, n, "no retries");
        assert_eq!(m.total.rate_limited, m.total.attempts_429);
    }
}

/// A token bucket under constant overload admits exactly its rate in the long run:
/// admitted ≤ capacity + rate × elapsed, and ≥ rate × elapsed − 1.
#[test]
fn token_bucket_under_overload_admits_exactly_its_rate() {
    for (burst, capacity) in [("1s", 10.0), ("60s", 600.0)] {
        let d = deployment("bucketed", &format!("[limits]\nrpm = 600\nburst = \"{burst}\"\n"));
        // 20 requests per second, twice the 10/s refill, for 600 s.
        let trace: Vec<_> = (0..12_000).map(|i| request(i + 1, i as f64 * 50.0, 10, 1)).collect();
        let elapsed_s = 11_999.0 * 0.05;
        let m = run(&open_loop(1), &[d], &mut single(1), trace);
        let admitted = (m.total.attempts - m.total.attempts_429) as f64;
        let rate_per_s = 10.0;
        eprintln!(
            "token bucket, burst {burst}: admitted {admitted}, rate × elapsed {}, + capacity {}",
            rate_per_s * elapsed_s,
            capacity + rate_per_s * elapsed_s
        );
        assert!(admitted <= capacity + rate_per_s * elapsed_s, "burst {burst}: admitted {admitted}");
        assert!(admitted >= rate_per_s * elapsed_s - 1.0, "burst {burst}: admitted {admitted}");
    }
}

/// Little's law, L = λW: the time-average number of requests in the system equals the
/// arrival rate times the mean time a request spends in it. Checked with retries and backoff
/// in the sojourn (a tight RPM limit) as well as without limits.
#[test]
fn littles_law_holds_for_requests_in_the_system() {
    let cases = [
        ("unlimited", String::new(), 1),
        ("rate-limited with retries", "[limits]\nrpm = 215\nburst = \"5s\"\n".to_string(), 50),
    ];
    for (name, limits, max_attempts) in cases {
        let latency = "[latency]\nttft_ms = { dist = \"lognormal\", median = 1000, sigma = 0.5 }\noutput_tokens_per_s = { dist = \"normal\", mean = 60, sd = 12 }\n";
        let d = deployment("d", &format!("{limits}{latency}"));
        let n = 20_000;
        let trace = poisson_trace(n, 3.5, 3, 100, 120);
        let m = run(&open_loop(9), &[d], &mut single(max_attempts), trace);
        assert_eq!(m.total.succeeded, n, "{name}: every request must finish for W to be complete");
        let span_s = m.last_event_at.as_micros() as f64 / 1e6;
        let arrival_rate = n as f64 / span_s;
        let mean_sojourn_s = m.total.e2e.summary().mean / 1000.0;
        let little = arrival_rate * mean_sojourn_s;
        let measured = m.mean_in_system();
        eprintln!("Little's law, {name}: L measured {measured:.4}, λW {little:.4}");
        // The histogram mean is within 0.1%; everything else is exact.
        assert!((measured - little).abs() / little < 0.003, "{name}: L = {measured:.4}, λW = {little:.4}");
        if max_attempts > 1 {
            assert!(
                m.total.attempts_429 * 100 > m.total.attempts,
                "{name}: the limit must bind (>1% of attempts refused) for the case to mean anything"
            );
        }
    }
}
