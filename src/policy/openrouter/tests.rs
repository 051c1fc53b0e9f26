//! Unit tests of the OpenRouter policy: each documented behaviour, driven through `route` and
//! `observe` with hand-made observations. Every test quotes the sentence it implements; the
//! expected numbers are worked by hand in the comments (shares: binomial bounds of 6σ).

use super::*;
use crate::policy::AttemptOutcome;
use crate::provider::{Deployment, DeploymentConfig, FailureKind};
use crate::time::Duration;
use crate::trace::ClassId;
use std::path::Path;

/// A deployment of `model` at `provider` with prices ($/M: input, output, cache read) and
/// constant latency (TTFT ms, output tokens/s).
fn endpoint(
    name: &str,
    provider: &str,
    model: &str,
    prices: (f64, f64, f64),
    ttft_ms: f64,
    speed: f64,
) -> Deployment {
    let text = format!(
        "provider = {provider:?}\nmodel = {model:?}\n\
         prices = {{ input_usd_per_mtok = {}, output_usd_per_mtok = {}, cache_read_usd_per_mtok = {} }}\n\
         latency = {{ ttft_ms = {{ dist = \"constant\", value = {ttft_ms} }}, output_tokens_per_s = {{ dist = \"constant\", value = {speed} }} }}\n",
        prices.0, prices.1, prices.2
    );
    let config: DeploymentConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Deployment::from_config(name, &config).unwrap_or_else(|e| panic!("{e}"))
}

fn build(text: &str, deployments: &[Deployment]) -> Result<OpenRouter, OpenRouterError> {
    let config: OpenRouterConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    OpenRouter::build(&config, &Catalog { deployments, base_dir: Path::new("."), files: &Default::default() })
}

fn router(text: &str, deployments: &[Deployment]) -> OpenRouter {
    build(text, deployments).unwrap_or_else(|e| panic!("{e}"))
}

/// `input` prompt tokens of which `cached` are cache reads, and `output` output tokens.
fn request(input: u64, cached: u64, output: u64) -> Request {
    Request {
        id: 1,
        arrival: Instant::ZERO,
        class: ClassId::INTERACTIVE,
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: 0,
        output_tokens: output,
        max_tokens: output,
        session: None,
        parent: None,
        think: Duration::ZERO,
        deadline: None,
        line: 2,
    }
}

/// The order a fresh request would try, drawn with `seed`.
fn plan(p: &mut OpenRouter, r: &Request, now: Instant, seed: u64) -> Vec<u16> {
    p.plan(now, r, &mut SplitMix64::new(seed)).into_iter().map(|d| d.0).collect()
}

/// Feeds a finished attempt at deployment `d` ending at `end_ms`.
fn observe(p: &mut OpenRouter, d: u16, end_ms: u64, outcome: AttemptOutcome, ttft_ms: u64, decode_ms: u64) {
    let ok = outcome == AttemptOutcome::Success;
    let started = end_ms.checked_sub(ttft_ms + decode_ms).expect("the attempt starts at or after 0");
    p.observe(
        Instant::from_millis(end_ms),
        &AttemptReport {
            request_id: 1,
            class: ClassId::INTERACTIVE,
            attempt: 1,
            deployment: DeploymentId(d),
            started_at: Instant::from_millis(started),
            ended_at: Instant::from_millis(end_ms),
            first_token_at: ok.then(|| Instant::from_millis(started + ttft_ms)),
            outcome,
            retry_after: None,
            output_tokens: if ok { 1_000 } else { 0 },
            remaining: None,
        },
    );
}

/// Share of `n` fresh requests (seeds 0..n) whose plan starts with `d`.
fn first_share(p: &mut OpenRouter, r: &Request, now: Instant, d: u16, n: u64) -> f64 {
    (0..n).filter(|seed| plan(p, r, now, *seed)[0] == d).count() as f64 / n as f64
}

/// 6 binomial standard deviations of a share `p` estimated from `n` draws.
fn six_sigma(p: f64, n: u64) -> f64 {
    6.0 * (p * (1.0 - p) / n as f64).sqrt()
}

// A: $3 input, $15 output, $0.30 cache reads. B: $2 input, $15 output, $1.00 cache reads.
// List prices (input + output): A 18, B 17 — B looks cheaper. For 10,000 prompt tokens of
// which 8,000 are cache reads, and 100 output tokens:
//   A: 2,000 × 3e-6 + 8,000 × 0.3e-6 + 100 × 15e-6 = 0.0060 + 0.0024 + 0.0015 = $0.0099
//   B: 2,000 × 2e-6 + 8,000 × 1.0e-6 + 100 × 15e-6 = 0.0040 + 0.0080 + 0.0015 = $0.0135
// Without cache reads: A 0.0300 + 0.0015 = $0.0315, B 0.0200 + 0.0015 = $0.0215.
fn cache_pair() -> Vec<Deployment> {
    vec![
        endpoint("a", "pa", "m", (3.0, 15.0, 0.3), 1_000.0, 100.0),
        endpoint("b", "pb", "m", (2.0, 15.0, 1.0), 1_000.0, 100.0),
    ]
}

/// "Effective price: the price the provider actually charges, reflecting its real cache hit
/// rate and its typical mix of input and output tokens." (openrouter.ai/docs/guides/routing/
/// provider-routing) — here the request's own mix, priced at each endpoint.
#[test]
fn the_effective_price_is_the_requests_own_mix_at_the_endpoints_prices() {
    let ds = cache_pair();
    let cached = request(10_000, 8_000, 100);
    let uncached = request(10_000, 0, 100);
    for (r, a_usd, b_usd) in [(&cached, 0.0099, 0.0135), (&uncached, 0.0315, 0.0215)] {
        assert!((effective_price_usd(r, &ds[0].prices) - a_usd).abs() < 1e-12);
        assert!((effective_price_usd(r, &ds[1].prices) - b_usd).abs() < 1e-12);
    }
    // `sort = "price"` follows the effective price, not the list price.
    let mut p = router("models = [\"m\"]\nprovider = { sort = \"price\" }", &ds);
    assert_eq!(plan(&mut p, &cached, Instant::ZERO, 0), vec![0, 1]);
    assert_eq!(plan(&mut p, &uncached, Instant::ZERO, 0), vec![1, 0]);
}

/// "For the stable providers, look at the lowest-cost candidates and select one weighted by
/// inverse square of the price" (openrouter.ai/docs/guides/routing/provider-selection), with
/// the request's effective price as the price.
#[test]
fn inverse_square_load_balancing_weighs_the_effective_price() {
    let ds = cache_pair();
    let mut p = router("models = [\"m\"]", &ds);
    // P(A first) = (1/0.0099²) / (1/0.0099² + 1/0.0135²) = 0.0135² / (0.0135² + 0.0099²)
    //            = 0.00018225 / 0.00028026 = 0.6503. List prices would give 17² / (17² + 18²) = 0.471.
    let n = 20_000;
    let expected = 0.018225 / 0.028026;
    let share = first_share(&mut p, &request(10_000, 8_000, 100), Instant::ZERO, 0, n);
    assert!((share - expected).abs() < six_sigma(expected, n), "share {share:.4}, expected {expected:.4}");
}

/// MaxPrice: "The object specifying the maximum price you want to pay for this request";
/// `request`: "Maximum price in USD per request" (openrouter.ai/docs/client-sdks/python/
/// components/maxprice). A hard filter: "max_price … fail if nothing qualifies".
#[test]
fn max_price_request_caps_the_effective_price_of_this_request() {
    let ds = cache_pair();
    let cached = request(10_000, 8_000, 100);
    // $0.012 admits A ($0.0099) and not B ($0.0135).
    let mut p = router("models = [\"m\"]\nprovider = { max_price = { request = 0.012 } }", &ds);
    assert_eq!(plan(&mut p, &cached, Instant::ZERO, 0), vec![0]);
    // Without the cache reads neither fits ($0.0315, $0.0215): the request fails `max_price`.
    let mut history = History::new(Instant::ZERO);
    let d = p.route(Instant::ZERO, &request(10_000, 0, 100), &mut history, &mut SplitMix64::new(0));
    assert_eq!(d, Decision::Reject { reason: "max_price" });
}

/// Sort partition: "“model” (default) groups endpoints by model before sorting (fallback
/// models remain fallbacks), “none” sorts all endpoints together regardless of model."
/// (openrouter.ai/docs/client-sdks/typescript/models/partition)
#[test]
fn sort_partition_model_keeps_fallback_models_last_and_none_sorts_everything() {
    let ds = [
        endpoint("m1-mid", "p1", "m1", (3.0, 0.0, 0.3), 2_000.0, 50.0),
        endpoint("m1-dear", "p2", "m1", (5.0, 0.0, 0.5), 1_500.0, 80.0),
        endpoint("m2-cheap", "p3", "m2", (1.0, 0.0, 0.1), 500.0, 120.0),
    ];
    let r = request(1_000, 0, 10);
    let models = "models = [\"m1\", \"m2\"]\n";
    let sorted = |sort: &str| {
        plan(&mut router(&format!("{models}provider = {{ sort = {sort} }}"), &ds), &r, Instant::ZERO, 0)
    };
    assert_eq!(sorted("\"price\""), vec![0, 1, 2]);
    assert_eq!(sorted("{ by = \"price\" }"), vec![0, 1, 2]);
    assert_eq!(sorted("{ by = \"price\", partition = \"model\" }"), vec![0, 1, 2]);
    assert_eq!(sorted("{ by = \"price\", partition = \"none\" }"), vec![2, 0, 1]);
    // Latency (TTFT 2.0, 1.5, 0.5 s) and throughput (50, 80, 120 tokens/s).
    assert_eq!(sorted("{ by = \"latency\" }"), vec![1, 0, 2]);
    assert_eq!(sorted("{ by = \"latency\", partition = \"none\" }"), vec![2, 1, 0]);
    assert_eq!(sorted("{ by = \"throughput\", partition = \"none\" }"), vec![2, 1, 0]);
}

/// Feeds ten successful answers with these TTFTs (seconds) at deployment `d`.
fn ttfts(p: &mut OpenRouter, d: u16, seconds: [f64; 10]) {
    for (k, s) in seconds.iter().enumerate() {
        observe(p, d, 10_000 + k as u64, AttemptOutcome::Success, (s * 1000.0) as u64, 1_000);
    }
}

/// "Percentile-based latency cutoffs. All specified cutoffs must be met for an endpoint to be
/// preferred." and "Endpoints above the threshold(s) may still be used, but are deprioritized
/// in routing." (openrouter.ai/docs/client-sdks/python/components/percentilelatencycutoffs,
/// …/preferredmaxlatency)
#[test]
fn every_latency_cutoff_must_hold_and_misses_are_deprioritised_not_dropped() {
    let ds = [
        endpoint("f", "pf", "m", (1.0, 0.0, 0.1), 1_000.0, 100.0),
        endpoint("g", "pg", "m", (2.0, 0.0, 0.2), 1_000.0, 100.0),
        endpoint("h", "ph", "m", (3.0, 0.0, 0.3), 1_000.0, 100.0),
    ];
    let r = request(1_000, 0, 10);
    let now = Instant::from_millis(20_000);
    let with = |cutoffs: &str| {
        let mut p = router(
            &format!(
                "models = [\"m\"]\nprovider = {{ sort = \"price\", preferred_max_latency = {cutoffs} }}"
            ),
            &ds,
        );
        // Nearest rank of ten: p50 is the 5th value, p90 the 9th.
        ttfts(&mut p, 0, [0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0, 3.5, 4.0, 4.5]); // f: p50 0.8, p90 4.0
        ttfts(&mut p, 1, [1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 1.8, 2.0, 2.2]); // g: p50 1.2, p90 2.0
        ttfts(&mut p, 2, [0.5, 0.6, 0.7, 0.8, 0.9, 1.5, 2.0, 2.2, 2.5, 2.8]); // h: p50 0.9, p90 2.5
        plan(&mut p, &r, now, 0)
    };
    // Price order f, g, h. p50 ≤ 1 s: f and h meet it.
    assert_eq!(with("1.0"), vec![0, 2, 1]);
    assert_eq!(with("{ p50 = 1.0 }"), vec![0, 2, 1]);
    // p90 ≤ 3 s: g and h meet it.
    assert_eq!(with("{ p90 = 3.0 }"), vec![1, 2, 0]);
    // Both: only h meets both; f and g follow in price order.
    assert_eq!(with("{ p50 = 1.0, p90 = 3.0 }"), vec![2, 0, 1]);
    // Nothing meets p50 ≤ 0.5 s and p99 ≤ 1 s: the order is kept, nothing is dropped.
    assert_eq!(with("{ p50 = 0.5, p99 = 1.0 }"), vec![0, 1, 2]);
}

/// Feeds ten successful answers of 1,000 tokens at these speeds (tokens/s) at `d`.
fn speeds(p: &mut OpenRouter, d: u16, tokens_per_s: [u64; 10]) {
    for (k, s) in tokens_per_s.iter().enumerate() {
        observe(p, d, 100_000 + k as u64, AttemptOutcome::Success, 500, 1_000_000 / s);
    }
}

/// "Percentile-based throughput cutoffs. All specified cutoffs must be met for an endpoint to
/// be preferred." (openrouter.ai/docs/client-sdks/python/components/percentilethroughputcutoffs)
#[test]
fn every_throughput_cutoff_must_hold() {
    let ds = [
        endpoint("s1", "p1", "m", (1.0, 0.0, 0.1), 1_000.0, 100.0),
        endpoint("s2", "p2", "m", (2.0, 0.0, 0.2), 1_000.0, 100.0),
        endpoint("s3", "p3", "m", (3.0, 0.0, 0.3), 1_000.0, 100.0),
    ];
    let mut p = router(
        "models = [\"m\"]\nprovider = { sort = \"price\", preferred_min_throughput = { p50 = 100, p90 = 50 } }",
        &ds,
    );
    // "p90 ≥ 50": 90% of answers at least 50 tokens/s, i.e. the slowest of ten (nearest rank
    // of the 10th percentile) ≥ 50. p50: the 5th slowest ≥ 100.
    speeds(&mut p, 0, [40, 100, 110, 115, 120, 125, 130, 135, 140, 150]); // p50 120, slowest 40: misses p90
    speeds(&mut p, 1, [60, 70, 80, 85, 90, 125, 130, 135, 140, 150]); // p50 90: misses p50
    speeds(&mut p, 2, [60, 100, 110, 115, 120, 125, 130, 135, 140, 150]); // p50 120, slowest 60: meets both
    assert_eq!(plan(&mut p, &request(1_000, 0, 10), Instant::from_millis(110_000), 0), vec![2, 0, 1]);
}

/// "When using fallback models, this may cause a fallback model to be used instead of the
/// primary model if it meets the threshold." (openrouter.ai/docs/client-sdks/typescript/
/// models/preferredmaxlatency)
#[test]
fn a_fallback_model_that_meets_the_preference_goes_before_the_primary() {
    let ds = [
        endpoint("slow", "p1", "m1", (1.0, 0.0, 0.1), 3_000.0, 100.0),
        endpoint("fast", "p2", "m2", (1.0, 0.0, 0.1), 500.0, 100.0),
    ];
    let r = request(1_000, 0, 10);
    let mut plain = router("models = [\"m1\", \"m2\"]", &ds);
    assert_eq!(plan(&mut plain, &r, Instant::ZERO, 0), vec![0, 1]);
    // Before any observation the published medians stand in: 3 s misses "≤ 2 s", 0.5 s meets it.
    let mut preferring = router("models = [\"m1\", \"m2\"]\nprovider = { preferred_max_latency = 2.0 }", &ds);
    assert_eq!(plan(&mut preferring, &r, Instant::ZERO, 0), vec![1, 0]);
}

// Three endpoints of one model for the traffic shares, all at $1/M input, nothing else billed,
// except C at $3/M. The request: 1,000 input tokens, 50 output tokens.
//   A: TTFT 1.0 s, 100 tokens/s → wait 1.0 + 50/100 = 1.5 s; price $0.001 → score 0.0015
//   B: TTFT 1.5 s, 100 tokens/s → wait 2.0 s;                price $0.001 → score 0.0020
//   C: TTFT 1.0 s, 100 tokens/s → wait 1.5 s;                price $0.003 → score 0.0045
// Ratios to the best: A 1, B 4/3, C 3. Edge 1.5: A and B competitive with weights 1 and
// (3/4)² = 0.5625; C past the edge. Exploration 5% spread over three: 1/60 each.
//   share A = 0.95 × 1/1.5625 + 1/60      = 0.608 + 0.016667 = 0.624667
//   share B = 0.95 × 0.5625/1.5625 + 1/60 = 0.342 + 0.016667 = 0.358667
//   share C = 1/60                                            = 0.016667
fn traffic_trio() -> Vec<Deployment> {
    vec![
        endpoint("a", "pa", "m", (1.0, 0.0, 0.1), 1_000.0, 100.0),
        endpoint("b", "pb", "m", (1.0, 0.0, 0.1), 1_500.0, 100.0),
        endpoint("c", "pc", "m", (3.0, 0.0, 0.3), 1_000.0, 100.0),
    ]
}

/// "Each request picks an endpoint at random, weighted by these shares." and "Exploration:
/// past the edge, your share drops off fast. Every endpoint still gets a small amount of
/// traffic no matter what, so routing can see when it improves."
/// (openrouter.ai/docs/guides/providers/traffic-routing)
#[test]
fn traffic_shares_follow_adjusted_price_and_speed_with_exploration() {
    let ds = traffic_trio();
    let mut p = router("models = [\"m\"]\nrouting = \"traffic_shares\"", &ds);
    let r = request(1_000, 0, 50);
    let n = 30_000;
    let plans: Vec<Vec<u16>> = (0..n).map(|seed| plan(&mut p, &r, Instant::ZERO, seed)).collect();
    for (d, expected) in [(0u16, 0.608 + 1.0 / 60.0), (1, 0.342 + 1.0 / 60.0), (2, 1.0 / 60.0)] {
        let share = plans.iter().filter(|plan| plan[0] == d).count() as f64 / n as f64;
        assert!(
            (share - expected).abs() < six_sigma(expected, n),
            "endpoint {d}: share {share:.4}, expected {expected:.4}"
        );
    }
}

/// "If it fails, the retry is picked the same way from the endpoints that are left."
/// (openrouter.ai/docs/guides/providers/traffic-routing)
#[test]
fn a_retry_is_drawn_by_share_from_the_endpoints_left() {
    let ds = traffic_trio();
    let mut p = router("models = [\"m\"]\nrouting = \"traffic_shares\"", &ds);
    let r = request(1_000, 0, 50);
    // After A: B with 0.358667 / (0.358667 + 0.016667) = 0.955595, C with 0.044405.
    let n = 40_000;
    let after_a: Vec<Vec<u16>> =
        (0..n).map(|seed| plan(&mut p, &r, Instant::ZERO, seed)).filter(|plan| plan[0] == 0).collect();
    let m = after_a.len() as u64;
    let expected = 0.358_667 / (0.358_667 + 0.016_667);
    let share = after_a.iter().filter(|plan| plan[1] == 1).count() as f64 / m as f64;
    assert!(
        (share - expected).abs() < six_sigma(expected, m),
        "B second: {share:.4}, expected {expected:.4}"
    );
    assert!(after_a.iter().all(|plan| plan.len() == 3), "every endpoint stays a fallback");

    // Through `route`: a failed first attempt moves to the plan's next endpoint at once.
    let mut history = History::new(Instant::ZERO);
    let mut rng = SplitMix64::new(3);
    let Decision::Attempt { deployment: first, .. } = p.route(Instant::ZERO, &r, &mut history, &mut rng)
    else {
        panic!("expected an attempt");
    };
    let order = p.plans[&r.id].order.clone();
    assert_eq!(first, order[0]);
    history.started_attempt();
    history.record(AttemptReport {
        request_id: 1,
        class: ClassId::INTERACTIVE,
        attempt: 1,
        deployment: first,
        started_at: Instant::ZERO,
        ended_at: Instant::from_millis(100),
        first_token_at: None,
        outcome: AttemptOutcome::Failed(FailureKind::Overloaded),
        retry_after: None,
        output_tokens: 0,
        remaining: None,
    });
    let next = p.route(Instant::from_millis(100), &r, &mut history, &mut rng);
    assert_eq!(next, Decision::attempt(order[1], p.options));
    p.forget(Instant::from_millis(100), r.id);
    assert!(p.plans.is_empty(), "a forgotten request's plan is released");
}

/// "429s: rate-limited requests which have to fall back" count against an endpoint's adjusted
/// price, and "Breaker. If a degradation signal like reliability, quality or 429s is far worse
/// than your peers’, routing pauses your traffic until it recovers."
/// (openrouter.ai/docs/guides/providers/traffic-routing)
#[test]
fn rate_limits_lower_a_share_and_the_breaker_pauses_a_failing_endpoint() {
    let ds = [
        endpoint("a", "pa", "m", (1.0, 0.0, 0.1), 1_000.0, 100.0),
        endpoint("b", "pb", "m", (1.0, 0.0, 0.1), 1_000.0, 100.0),
    ];
    let r = request(1_000, 0, 100);
    let mut p = router("models = [\"m\"]\nrouting = \"traffic_shares\"", &ds);
    // A: 15 answers as published (TTFT 1 s, 1,000 tokens in 10 s = 100 tokens/s) and five 429s
    // in the window: good share 0.75, adjusted price $0.001 / 0.75. B: unobserved, $0.001.
    // Waits equal (1 + 100/100 = 2 s): ratio A/B = 4/3, weights B 1, A 0.5625; exploration
    // 2.5% each: share A = 0.95 × 0.5625 / 1.5625 + 0.025 = 0.367.
    for k in 0..15 {
        observe(&mut p, 0, 20_000 + k, AttemptOutcome::Success, 1_000, 10_000);
    }
    for k in 0..5 {
        observe(&mut p, 0, 21_000 + k, AttemptOutcome::Failed(FailureKind::RateLimited), 0, 0);
    }
    let n = 20_000;
    let now = Instant::from_millis(60_000);
    let share = first_share(&mut p, &r, now, 0, n);
    assert!((share - 0.367).abs() < six_sigma(0.367, n), "A share {share:.4}, expected 0.367");

    // Eleven more 429s: 16 of 31 attempts bad (0.516), B's rate 0: a gap ≥ 0.5 pauses A. It
    // gets no first attempts and stays the last fallback.
    for k in 0..11 {
        observe(&mut p, 0, 22_000 + k, AttemptOutcome::Failed(FailureKind::RateLimited), 0, 0);
    }
    assert!((0..200).all(|seed| plan(&mut p, &r, now, seed) == vec![1, 0]));
    // "until it recovers": five minutes after the failures they have left the window.
    let later = Instant::from_millis(22_010 + 300_001);
    assert!(first_share(&mut p, &r, later, 0, 2_000) > 0.3);
}

/// Errors name the option's path, one line.
#[test]
fn bad_options_are_one_line_errors_naming_the_path() {
    let ds = cache_pair();
    let error = |text: &str| build(text, &ds).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        error("models = [\"m\"]\nprovider = { sort = { by = \"fast\" } }"),
        "provider.sort.by: unknown value \"fast\" (price, throughput, latency)"
    );
    assert_eq!(
        error("models = [\"m\"]\nprovider = { preferred_max_latency = { p50 = 1.0, p95 = 3.0 } }"),
        "provider.preferred_max_latency.p95: unknown percentile (p50, p75, p90, p99)"
    );
    assert_eq!(
        error("models = [\"m\"]\nprovider = { order = [\"zzz\"] }"),
        "provider.order[0]: unknown provider \"zzz\"; did you mean \"pa\"? (providers: pa, pb)"
    );
    assert!(error("models = [\"n\"]").starts_with("models[0]: no deployment serves model \"n\""));
    assert_eq!(error("models = []"), "models: list at least one model");
    let as_policy_error: crate::policy::config::PolicyError = OpenRouterError::new("a.b", "c").into();
    assert_eq!((as_policy_error.path.as_str(), as_policy_error.to_string()), ("a.b", "a.b: c".to_string()));
}
