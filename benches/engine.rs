//! Engine throughput: a large synthetic trace through `fallback` with server-side limiters,
//! latency draws and metrics on. Reports simulated requests per second.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use routesim::engine::{simulate, EngineConfig, Replay};
use routesim::policy::{Backoff, Fallback};
use routesim::provider::{AttemptOptions, Deployment, DeploymentConfig, DeploymentId};
use routesim::rng::SplitMix64;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, Request, TraceError};

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

fn engine(c: &mut Criterion) {
    let deployments = vec![
        deployment("primary", 4_000, 2_000_000, 400_000),
        deployment("secondary", 4_000, 4_000_000, 800_000),
        deployment("tertiary", 10_000, 10_000_000, 2_000_000),
    ];
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
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
