//! Engine throughput: a large synthetic trace through `fallback` with server-side limiters,
//! latency draws and metrics on. Reports simulated requests per second, and, measured in the
//! same run, a bare binary-heap event loop over the same trace (an arrival and a completion
//! event per request, nothing else): the ratio of the two is printed at the end, so the
//! engine's cost is judged against the floor of any event-driven simulator on this machine.

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use routesim::engine::{simulate, EngineConfig, Replay};
use routesim::policy::{Backoff, Fallback};
use routesim::provider::{AttemptOptions, Deployment, DeploymentConfig, DeploymentId};
use routesim::rng::SplitMix64;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, Request, TraceError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn deployment(name: &str, rpm: u64, itpm: u64, otpm: u64) -> Deployment {
    let text = format!(
        r#"
provider = "bench"
model = "m"
prices = {{ input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }}
limits = {{ rpm = {rpm}, itpm = {itpm}, otpm = {otpm}, burst = "10s" }}
errors = {{ server_error_rate = 0.001, overloaded_rate = 0.002 }}
latency = {{ ttft_ms = {{ dist = "lognormal", median = 1800, sigma = 0.45 }}, ttft_ms_per_1k_uncached_input = 50, output_tokens_per_s = {{ dist = "normal", mean = 63, sd = 12.6 }} }}
"#
    );
    let config: DeploymentConfig = toml::from_str(&text).expect("bench deployment");
    Deployment::from_config(name, &config).expect("valid bench deployment")
}

/// A lazily generated trace (no memory proportional to its length): Poisson arrivals at
/// `rate_per_s`, agent-like token sizes, four classes.
fn synthetic_trace(n: u64, rate_per_s: f64) -> impl Iterator<Item = Result<Request, TraceError>> {
    let mut rng = SplitMix64::new(42);
    let mut t_ms = 0.0;
    (0..n).map(move |i| {
        t_ms += -rng.next_open01().ln() / rate_per_s * 1000.0;
        let input = 2_000 + (rng.next_open01() * 60_000.0) as u64;
        let output = 50 + (rng.next_open01() * 800.0) as u64;
        Ok(Request {
            id: i,
            arrival: Instant::ZERO + Duration::from_millis_f64(t_ms),
            class: ClassId((i % 4) as u16),
            input_tokens: input,
            cached_input_tokens: input * 8 / 10,
            cache_write_tokens: 0,
            output_tokens: output,
            max_tokens: 4096,
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: i + 2,
        })
    })
}

/// The bare loop: every request's arrival and completion (arrival + a latency from its token
/// counts) pass through a binary heap keyed by (time, sequence number). Returns the number of
/// completions, so nothing is optimised away.
fn bare_event_loop(n: u64) -> u64 {
    let mut heap: BinaryHeap<Reverse<(u64, u64, bool)>> = BinaryHeap::new();
    let mut trace = synthetic_trace(n, 150.0).peekable();
    let (mut seq, mut done) = (0u64, 0u64);
    loop {
        let next_event = heap.peek().map(|Reverse((t, _, _))| *t);
        let next_row = trace.peek().map(|r| r.as_ref().map_or(0, |r| r.arrival.as_micros()));
        let row_first = match (next_row, next_event) {
            (Some(row), Some(t)) => row < t,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if row_first {
            let Some(Ok(request)) = trace.next() else { break };
            let row = request.arrival.as_micros();
            seq += 1;
            heap.push(Reverse((row, seq, false)));
            let latency_us = 1_800_000 + request.output_tokens * 16_000;
            seq += 1;
            heap.push(Reverse((row + latency_us, seq, true)));
        } else if let Some(Reverse((_, _, completion))) = heap.pop() {
            done += u64::from(completion);
        } else {
            break;
        }
    }
    done
}

fn run_engine(deployments: &[Deployment], config: &EngineConfig, n: u64) -> u64 {
    let mut policy = Fallback {
        chain: vec![DeploymentId(0), DeploymentId(1), DeploymentId(2)],
        max_attempts: 6,
        backoff: Backoff::default(),
        options: AttemptOptions::default(),
    };
    let metrics = simulate("bench", config, deployments, &mut policy, synthetic_trace(n, 150.0), "synthetic")
        .expect("bench run");
    metrics.total.requests
}

fn bench_deployments() -> Vec<Deployment> {
    vec![
        deployment("primary", 4_000, 2_000_000, 400_000),
        deployment("secondary", 4_000, 4_000_000, 800_000),
        deployment("tertiary", 10_000, 10_000_000, 2_000_000),
    ]
}

/// Times the engine and the bare loop alternately (medians of five each, so machine noise
/// hits both) and prints requests/s and the engine's share of the bare loop's speed.
fn ratio_to_bare_loop() {
    let n = 1_000_000;
    let deployments = bench_deployments();
    let config = EngineConfig { seed: 7, replay: Replay::Open, ..EngineConfig::default() };
    let (mut engine_s, mut bare_s) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = std::time::Instant::now();
        assert_eq!(run_engine(&deployments, &config, n), n);
        engine_s.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        assert_eq!(bare_event_loop(n), n);
        bare_s.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (engine, bare) = (median(&mut engine_s), median(&mut bare_s));
    println!(
        "engine vs bare event loop (1 M requests, medians of 5 alternated runs): engine {:.2} M requests/s, \
         bare loop {:.2} M requests/s, engine = {:.1}% of the bare loop",
        n as f64 / engine / 1e6,
        n as f64 / bare / 1e6,
        100.0 * bare / engine
    );
}

fn engine(c: &mut Criterion) {
    let deployments = bench_deployments();
    let config = EngineConfig { seed: 7, replay: Replay::Open, ..EngineConfig::default() };
    let n = 1_000_000;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    // 150 requests/s: the primary's ITPM binds, so 429s, fallbacks and backoff all happen.
    group.bench_function("fallback_1M_requests", |b| {
        b.iter_batched(
            || Fallback {
                chain: vec![DeploymentId(0), DeploymentId(1), DeploymentId(2)],
                max_attempts: 6,
                backoff: Backoff::default(),
                options: AttemptOptions::default(),
            },
            |mut policy| {
                let metrics = simulate(
                    "bench",
                    &config,
                    &deployments,
                    &mut policy,
                    synthetic_trace(n, 150.0),
                    "synthetic",
                )
                .expect("bench run");
                assert_eq!(metrics.total.requests, n);
                metrics
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("bare_event_loop_1M_requests", |b| b.iter(|| bare_event_loop(n)));
    group.finish();
}

criterion_group!(benches, engine);

fn main() {
    benches();
    ratio_to_bare_loop();
    Criterion::default().configure_from_args().final_summary();
}
