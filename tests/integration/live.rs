//! The live adapter runs the same policy and limiter code on the wall clock: admission counts
//! per deployment agree with the simulator's on the same inputs.

use routesim::engine::{simulate, EngineConfig, Replay};
use routesim::live::{LiveError, LiveOutcome, LiveRouter, ModelledProvider};
use routesim::scenario::Scenario;
use routesim::time::{Duration, Instant};
use routesim::trace::{ClassId, Request, TraceError};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const SCENARIO: &str = r#"
seed = 11
[trace]
file = "unused.csv"
[deployments.primary]
provider = "t"
model = "m"
prices = { input_usd_per_mtok = 3.0, output_usd_per_mtok = 15.0 }
limits = { rpm = 600, burst = "1s" }
latency = { ttft_ms = { dist = "constant", value = 30 }, output_tokens_per_s = { dist = "constant", value = 2000 }, rate_limit_response = "20ms" }
[deployments.backup]
provider = "t"
model = "m"
prices = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 5.0 }
latency = { ttft_ms = { dist = "constant", value = 60 }, output_tokens_per_s = { dist = "constant", value = 2000 }, rate_limit_response = "20ms" }
[[strategy]]
name = "fallback"
policy = { kind = "fallback", chain = ["primary", "backup"], max_attempts = 3 }
"#;

fn trace() -> Vec<Request> {
    (0..150u64)
        .map(|i| Request {
            id: i,
            arrival: Instant::ZERO + Duration::from_millis(i * 10),
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
        })
        .collect()
}

#[test]
fn live_router_and_simulator_admit_the_same_counts_per_deployment() {
    let scenario = Scenario::parse(SCENARIO, Path::new("live.toml"), Path::new(".")).unwrap();

    // Simulated.
    let config = EngineConfig { seed: scenario.seed, replay: Replay::Open, ..EngineConfig::default() };
    let mut policy = scenario.strategies[0].policy.build();
    let simulated = simulate(
        "sim",
        &config,
        &scenario.deployments,
        policy.as_mut(),
        trace().into_iter().map(Ok::<_, TraceError>),
        "mem",
    )
    .unwrap();

    // Live: 150 calls at 100/s on real threads, about 1.6 s of wall time.
    let router = LiveRouter::new(scenario.strategies[0].policy.build(), scenario.seed);
    let provider = ModelledProvider::new(scenario.deployments.to_vec(), scenario.seed).unwrap();
    let served: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|scope| {
        for request in trace() {
            let (router, provider, served) = (&router, &provider, &served);
            scope.spawn(move || {
                let wait = router.wall(request.arrival).saturating_duration_since(std::time::Instant::now());
                std::thread::sleep(wait);
                if let Ok(LiveOutcome::Served(report)) =
                    router.call(&request, |d, options, n| provider.attempt(router, &request, d, options, n))
                {
                    served[report.deployment.index()].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let live: Vec<u64> = served.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let sim: Vec<u64> = simulated.by_deployment.iter().map(|d| d.successes).collect();
    eprintln!("served per deployment: simulated {sim:?}, live {live:?}");
    // The primary admits its 10-token bucket plus 10/s over ~1.5 s: 24 in the simulator. Live
    // threads start a few ms late, which shifts at most a few admissions: allow ±4.
    assert_eq!(sim[0] + sim[1], 150);
    assert_eq!(live[0] + live[1], 150, "every live call is served");
    let primary = scenario.deployments.iter().position(|d| d.name == "primary").unwrap();
    assert_eq!(sim[primary], 24, "10 + 10/s × 1.49 s, floored");
    assert!(
        sim[primary].abs_diff(live[primary]) <= 4,
        "primary: simulated {}, live {}",
        sim[primary],
        live[primary]
    );
}

/// Many threads share a few request ids: a call whose id is already in flight gets
/// `DuplicateRequestId` at once (no panic, no attempt made); every other call is served, and
/// the router holds no leftover state afterwards (each id routes again).
#[test]
fn concurrent_calls_with_duplicate_ids_get_an_error_never_a_panic() {
    let scenario = Scenario::parse(SCENARIO, Path::new("live.toml"), Path::new(".")).unwrap();
    let router = LiveRouter::new(scenario.strategies[0].policy.build(), scenario.seed);
    const THREADS: usize = 48;
    const IDS: u64 = 6;
    let request = |id: u64| Request { id, ..trace()[0].clone() };
    // Each attempt holds its call open for 30 ms, so calls started together overlap.
    let attempt = |router: &LiveRouter, r: &Request, d, n| {
        let started_at = router.now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        routesim::policy::AttemptReport {
            request_id: r.id,
            class: r.class,
            attempt: n,
            deployment: d,
            started_at,
            ended_at: router.now(),
            first_token_at: Some(router.now()),
            outcome: routesim::policy::AttemptOutcome::Success,
            retry_after: None,
            output_tokens: r.output_tokens,
            remaining: None,
        }
    };
    let attempts = AtomicU64::new(0);
    for round in 0..5 {
        let barrier = std::sync::Barrier::new(THREADS);
        let results: Vec<(u64, Result<LiveOutcome, LiveError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (router, barrier, attempts) = (&router, &barrier, &attempts);
                    scope.spawn(move || {
                        let r = request(t as u64 % IDS);
                        barrier.wait();
                        let result = router.call(&r, |d, _options, n| {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            attempt(router, &r, d, n)
                        });
                        (r.id, result)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a live call panicked")).collect()
        });
        let served = results.iter().filter(|(_, r)| matches!(r, Ok(LiveOutcome::Served(_)))).count();
        let duplicates: Vec<u64> = results
            .iter()
            .filter_map(|(id, r)| match r {
                Err(LiveError::DuplicateRequestId { id: dup }) => {
                    assert_eq!(dup, id);
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        assert_eq!(served + duplicates.len(), THREADS, "round {round}: every call served or refused");
        assert!(served >= IDS as usize, "round {round}: each id is served at least once ({served})");
        assert!(!duplicates.is_empty(), "round {round}: 8 threads per id started together overlap");
        // Refused calls made no attempt: one attempt per served call.
        assert_eq!(attempts.swap(0, Ordering::Relaxed), served as u64, "round {round}");
    }
    for id in 0..IDS {
        let r = request(id);
        let outcome = router.call(&r, |d, _options, n| attempt(&router, &r, d, n));
        assert!(matches!(outcome, Ok(LiveOutcome::Served(_))), "id {id} after the stress: {outcome:?}");
    }
}
