//! The live adapter in action: the same fallback policy and limiter code the simulator runs,
//! routing real-time calls from several threads to a modelled provider served in real time.
//!
//!     cargo run --release --example live_router
//!
//! A gateway would replace `ModelledProvider::attempt` with an HTTP call and keep the rest.

use routesim::live::{LiveOutcome, LiveRouter, ModelledProvider};
use routesim::scenario::Scenario;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, Request};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const SCENARIO: &str = r#"
seed = 7
[trace]
file = "unused.csv"
# A small, fast pair so the demo runs in about two seconds: "primary" admits 10 requests a
# second (a 1-second bucket), "backup" has no limit.
[deployments.primary]
provider = "demo"
model = "m"
prices = { input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }
limits = { rpm = 600, burst = "1s" }
latency = { ttft_ms = { dist = "constant", value = 30 }, output_tokens_per_s = { dist = "constant", value = 2000 }, rate_limit_response = "20ms" }
[deployments.backup]
provider = "demo"
model = "m"
prices = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 5.0 }
latency = { ttft_ms = { dist = "constant", value = 60 }, output_tokens_per_s = { dist = "constant", value = 2000 }, rate_limit_response = "20ms" }
[[strategy]]
name = "fallback"
policy = { kind = "fallback", chain = ["primary", "backup"], max_attempts = 3 }
"#;

fn main() {
    let scenario = Scenario::parse(SCENARIO, Path::new("live_router.toml"), Path::new("."))
        .expect("valid demo scenario");
    let router = LiveRouter::new(scenario.strategies[0].policy.build(), scenario.seed);
    let provider =
        ModelledProvider::new(scenario.deployments.to_vec(), scenario.seed).expect("one definition per pool");
    let served: Vec<AtomicU64> = (0..scenario.deployments.len()).map(|_| AtomicU64::new(0)).collect();
    let start = std::time::Instant::now();
    // 150 calls at 100 per second from their own threads.
    std::thread::scope(|scope| {
        for i in 0..150u64 {
            let (router, provider, served) = (&router, &provider, &served);
            scope.spawn(move || {
                let arrival = Duration::from_millis(i * 10);
                std::thread::sleep(std::time::Duration::from_micros(arrival.as_micros()));
                let request = Request {
                    id: i,
                    arrival: Instant::ZERO + arrival,
                    class: ClassId::INTERACTIVE,
                    input_tokens: 2_000,
                    cached_input_tokens: 0,
                    cache_write_tokens: 0,
                    output_tokens: 100,
                    max_tokens: 100,
                    session: None,
                    parent: None,
                    think: Duration::ZERO,
                    deadline: None,
                    line: i + 2,
                };
                let outcome =
                    router.call(&request, |d, options, n| provider.attempt(router, &request, d, options, n));
                if let Ok(LiveOutcome::Served(report)) = outcome {
                    served[report.deployment.index()].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    println!("routed 150 live calls in {:.2} s", start.elapsed().as_secs_f64());
    for (d, count) in scenario.deployments.iter().zip(&served) {
        println!("  {:<8} served {}", d.name, count.load(Ordering::Relaxed));
    }
}
