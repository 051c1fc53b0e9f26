//! Helpers shared by the integration tests: the `sim` binary, deployments from TOML snippets,
//! in-memory traces.

use routesim::engine::{simulate, EngineConfig, Replay};
use routesim::metrics::StrategyMetrics;
use routesim::policy::{Backoff, Fallback, Policy};
use routesim::provider::{AttemptOptions, Deployment, DeploymentConfig, DeploymentId};
use routesim::rng::SplitMix64;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, Request, TraceError};

/// Runs the `sim` binary built for these tests in `dir`.
pub fn sim(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("sim runs")
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A deployment with zero error rates and the given extra TOML (limits, latency overrides).
pub fn deployment(name: &str, extra: &str) -> Deployment {
    let base = r#"
provider = "test"
model = "m"
prices = { input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0, cache_read_usd_per_mtok = 0.3, cache_write_usd_per_mtok = 3.75 }
"#;
    let has_latency = extra.contains("[latency]") || extra.contains("latency =");
    let latency = if has_latency {
        ""
    } else {
        "latency = { ttft_ms = { dist = \"constant\", value = 1000 }, output_tokens_per_s = { dist = \"constant\", value = 100 } }\n"
    };
    let text = format!("{base}{latency}{extra}");
    let config: DeploymentConfig =
        toml::from_str(&text).unwrap_or_else(|e| panic!("bad test deployment: {e}\n{text}"));
    Deployment::from_config(name, &config).unwrap()
}

pub fn request(id: u64, arrival_ms: f64, input: u64, output: u64) -> Request {
    Request {
        id,
        arrival: Instant::ZERO + Duration::from_millis_f64(arrival_ms),
        class: ClassId::INTERACTIVE,
        input_tokens: input,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: output,
        max_tokens: output,
        session: None,
        parent: None,
        think: Duration::ZERO,
        deadline: None,
        line: id + 2,
    }
}

/// Poisson arrivals at `rate_per_s` for `n` requests (exponential gaps from a fixed seed).
pub fn poisson_trace(n: u64, rate_per_s: f64, seed: u64, input: u64, output: u64) -> Vec<Request> {
    let mut rng = SplitMix64::new(seed);
    let mut t_ms = 0.0;
    (0..n)
        .map(|i| {
            t_ms += -rng.next_open01().ln() / rate_per_s * 1000.0;
            request(i + 1, t_ms, input, output)
        })
        .collect()
}

pub fn single(max_attempts: u32) -> Fallback {
    Fallback {
        chain: vec![DeploymentId(0)],
        max_attempts,
        backoff: Backoff::default(),
        options: AttemptOptions::default(),
    }
}

pub fn open_loop(seed: u64) -> EngineConfig {
    EngineConfig { seed, replay: Replay::Open, ..EngineConfig::default() }
}

pub fn run(
    config: &EngineConfig,
    deployments: &[Deployment],
    policy: &mut dyn Policy,
    trace: Vec<Request>,
) -> StrategyMetrics {
    simulate("test", config, deployments, policy, trace.into_iter().map(Ok::<_, TraceError>), "mem.csv")
        .unwrap()
}
