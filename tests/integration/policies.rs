//! The policy library on the virtual clock: each policy's documented behaviour, with
//! hand-computed or statistically bounded expectations.

use crate::support::*;
use routesim::metrics::{FailureCause, StrategyMetrics};
use routesim::policy::config::{Catalog, PolicyConfig, PolicyFiles};
use routesim::policy::Policy;
use routesim::provider::{Deployment, FailureKind};
use routesim::time::Duration;
use routesim::trace::{ClassId, Request};
use std::path::Path;

fn policy(text: &str, deployments: &[Deployment]) -> Box<dyn Policy> {
    policy_in(text, deployments, Path::new("."))
}

fn policy_in(text: &str, deployments: &[Deployment], dir: &Path) -> Box<dyn Policy> {
    let config: PolicyConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let files = PolicyFiles::read(&config, dir, deployments);
    config.build(&Catalog { deployments, base_dir: dir, files: &files }).unwrap_or_else(|e| panic!("{e}"))
}

fn build_error(text: &str, deployments: &[Deployment]) -> String {
    let config: PolicyConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config
        .build(&Catalog { deployments, base_dir: Path::new("."), files: &Default::default() })
        .err()
        .expect("expected a build error")
        .to_string()
}

fn simulate(p: &mut Box<dyn Policy>, deployments: &[Deployment], trace: Vec<Request>) -> StrategyMetrics {
    run(&open_loop(1), deployments, p.as_mut(), trace)
}

/// A deployment serving model `model` at `input_price` $/M input tokens (output free).
fn priced(name: &str, provider: &str, model: &str, input_price: f64, extra: &str) -> Deployment {
    let mut d = deployment(name, extra);
    d.provider = provider.into();
    d.model = model.into();
    d.prices.input_usd_per_token = input_price * 1e-6;
    d.prices.output_usd_per_token = 0.0;
    d
}

fn every(n: u64, gap_ms: f64) -> Vec<Request> {
    (0..n).map(|i| request(i + 1, i as f64 * gap_ms, 1_000, 10)).collect()
}

fn served(m: &StrategyMetrics, d: usize) -> u64 {
    m.by_deployment[d].successes
}

fn cause(m: &StrategyMetrics, c: FailureCause) -> u64 {
    m.total.failed_by_cause.get(&c).copied().unwrap_or(0)
}

// ------------------------------------------------------------------ OpenRouter

/// "For the stable providers, look at the lowest-cost candidates and select one weighted by
/// inverse square of the price." (openrouter.ai/docs/guides/routing/provider-selection)
#[test]
fn openrouter_default_load_balancing_weights_by_inverse_square_price() {
    let ds =
        [priced("a", "pa", "m", 1.0, ""), priced("b", "pb", "m", 2.0, ""), priced("c", "pc", "m", 3.0, "")];
    let mut p = policy(
        r#"kind = "openrouter"
models = ["m"]"#,
        &ds,
    );
    let n = 20_000;
    let m = simulate(&mut p, &ds, every(n, 50.0));
    // Weights 1, 1/4, 1/9 → shares 36/49, 9/49, 4/49; binomial σ ≤ 0.0035, allow 5σ.
    for (d, expected) in [(0, 36.0 / 49.0), (1, 9.0 / 49.0), (2, 4.0 / 49.0)] {
        let share = served(&m, d) as f64 / n as f64;
        assert!(
            (share - expected).abs() < 0.0175,
            "deployment {d}: share {share:.4}, expected {expected:.4}"
        );
    }
}

/// "Prioritize providers that have not seen significant outages in the last 30 seconds." and
/// "Use the remaining providers as fallbacks." (openrouter.ai/docs/guides/routing/
/// provider-selection). *Ours*: a significant outage is ≥ 2 failures and ≥ 25% of the
/// endpoint's attempts in the last 30 s.
#[test]
fn openrouter_avoids_an_endpoint_that_failed_in_the_last_30_seconds() {
    let ds = [
        priced("a", "pa", "m", 1.0, ""),
        priced("b", "pb", "m", 2.0, "[errors]\noverloaded_rate = 1.0\n"),
        priced("c", "pc", "m", 3.0, ""),
    ];
    let mut p = policy(
        r#"kind = "openrouter"
models = ["m"]"#,
        &ds,
    );
    // 10 requests/s for 600 s. Were b never avoided it would be drawn first 18% of the time
    // (~1,100 attempts). Avoided, it is rediscovered about once per 30 s window, failing about
    // twice each time: ~40 attempts; 100 leaves room for requests routed before a failure lands.
    let m = simulate(&mut p, &ds, every(6_000, 100.0));
    assert_eq!(m.total.succeeded, 6_000, "every request falls back to a healthy endpoint");
    assert!(m.by_deployment[1].attempts < 100, "b attempts {}", m.by_deployment[1].attempts);
    assert_eq!(
        m.fallbacks_by_cause.get(&FailureKind::Overloaded).copied(),
        Some(m.by_deployment[1].attempts)
    );
}

/// "If you have sort or order set in your provider preferences, load balancing will be
/// disabled." (openrouter.ai/docs/guides/routing/provider-selection); the preference:
/// "Endpoints above the threshold(s) may still be used, but are deprioritized in routing."
/// (openrouter.ai/docs/client-sdks/typescript/models/preferredmaxlatency); `order`: "your
/// custom providers in "order"" are tried first (openrouter.ai/docs/sdks/go/api-reference/
/// models/providerpreferences, AllowFallbacks); `only`: "List of provider slugs to allow."
/// (openrouter.ai/docs/client-sdks/typescript/models/batchproviderpreferences).
#[test]
fn openrouter_sorts_and_soft_preferences_move_slow_endpoints_last() {
    let slow_cheap = priced("slow", "ps", "m", 1.0, "[latency]\nttft_ms = { dist = \"constant\", value = 3000 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let fast_dear = priced("fast", "pf", "m", 5.0, "");
    let ds = [slow_cheap, fast_dear];
    let by_price = simulate(
        &mut policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { sort = \"price\" }", &ds),
        &ds,
        every(200, 500.0),
    );
    assert_eq!(served(&by_price, 0), 200);
    let by_latency = simulate(
        &mut policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { sort = \"latency\" }", &ds),
        &ds,
        every(200, 500.0),
    );
    assert_eq!(served(&by_latency, 1), 200);
    // Price first, but the cheap endpoint misses "p50 TTFT ≤ 2 s" and goes to the end.
    let preferred = simulate(
        &mut policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { sort = \"price\", preferred_max_latency = 2.0 }", &ds),
        &ds,
        every(200, 500.0),
    );
    assert_eq!(served(&preferred, 1), 200);
    // `order` pins the provider; `only` filters.
    let ordered = simulate(
        &mut policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { order = [\"ps\"] }", &ds),
        &ds,
        every(50, 500.0),
    );
    assert_eq!(served(&ordered, 0), 50);
    let only = simulate(
        &mut policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { only = [\"pf\"] }", &ds),
        &ds,
        every(50, 500.0),
    );
    assert_eq!(served(&only, 1), 50);
}

/// `max_price.prompt`: "Maximum price in USD per million prompt tokens"
/// (openrouter.ai/docs/client-sdks/python/components/maxprice), a hard filter (*ours*: the
/// request fails with cause `max_price` when nothing is left); model fallbacks: "If the first
/// model returns an error, OpenRouter will automatically try the next model in the list."
/// (openrouter.ai/docs/guides/routing, Model Fallbacks).
#[test]
fn openrouter_max_price_is_hard_and_model_fallbacks_follow_in_order() {
    let ds = [
        priced("dear", "p1", "m1", 10.0, "[errors]\noverloaded_rate = 1.0\n"),
        priced("ok", "p2", "m2", 1.0, ""),
    ];
    let mut capped =
        policy("kind = \"openrouter\"\nmodels = [\"m1\"]\nprovider = { max_price = { prompt = 5.0 } }", &ds);
    let m = simulate(&mut capped, &ds, every(10, 100.0));
    assert_eq!(cause(&m, FailureCause::Policy("max_price")), 10);
    assert_eq!(m.total.attempts, 0);
    let mut fallbacks = policy("kind = \"openrouter\"\nmodels = [\"m1\", \"m2\"]", &ds);
    let m = simulate(&mut fallbacks, &ds, every(10, 100.0));
    assert_eq!(m.total.succeeded, 10);
    assert_eq!(m.total.attempts, 20);
    assert_eq!(served(&m, 1), 10);
    assert!(build_error("kind = \"openrouter\"\nmodels = [\"m3\"]", &ds)
        .starts_with("models[0]: no deployment serves model \"m3\""));
}

/// "Effective price: the price the provider actually charges, reflecting its real cache hit
/// rate and its typical mix of input and output tokens." (openrouter.ai/docs/guides/routing/
/// provider-routing). Through the engine: a cache-heavy request goes to the endpoint that is
/// cheaper for it, though dearer by list price, and is billed that effective price.
#[test]
fn openrouter_sort_by_price_uses_the_requests_cache_adjusted_price() {
    // A: $3 input / $15 output / $0.30 cache reads (list 18). B: $2 / $15 / $1.00 (list 17).
    let a = deployment("a", "");
    let mut b = deployment("b", "");
    b.provider = "pb".into();
    b.prices.input_usd_per_token = 2e-6;
    b.prices.cache_read_usd_per_token = 1e-6;
    let ds = [a, b];
    // 10,000 prompt tokens, 8,000 of them cache reads, 100 output tokens:
    //   A: 2,000 × 3e-6 + 8,000 × 0.3e-6 + 100 × 15e-6 = $0.0099; B: … = $0.0135.
    let trace: Vec<Request> = (0..100)
        .map(|i| Request { cached_input_tokens: 8_000, ..request(i + 1, i as f64 * 500.0, 10_000, 100) })
        .collect();
    let mut p = policy("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { sort = \"price\" }", &ds);
    let m = simulate(&mut p, &ds, trace);
    assert_eq!(served(&m, 0), 100);
    assert!((m.total.cost_usd - 100.0 * 0.0099).abs() < 1e-9, "cost {}", m.total.cost_usd);
}

/// "Exploration: past the edge, your share drops off fast. Every endpoint still gets a small
/// amount of traffic no matter what, so routing can see when it improves."
/// (openrouter.ai/docs/guides/providers/traffic-routing). Through the engine.
#[test]
fn openrouter_traffic_shares_keep_exploring_an_endpoint_past_the_edge() {
    // Same latency (observed equal: constant 1 s TTFT, 100 tokens/s); prices $1 and $3 per M
    // input. Score ratio 3 > edge 1.5: the dear endpoint gets only its exploration share,
    // 5% / 2 = 2.5% of first attempts; binomial σ = √(0.025 × 0.975 / 10,000) = 0.00156, 6σ.
    let ds = [priced("cheap", "pa", "m", 1.0, ""), priced("dear", "pb", "m", 3.0, "")];
    let mut p = policy("kind = \"openrouter\"\nmodels = [\"m\"]\nrouting = \"traffic_shares\"", &ds);
    let n = 10_000;
    let m = simulate(&mut p, &ds, every(n, 50.0));
    assert_eq!(m.total.succeeded, n);
    let share = served(&m, 1) as f64 / n as f64;
    assert!((share - 0.025).abs() < 6.0 * 0.00156, "dear share {share:.4}");
}

/// "false: use only the primary/custom provider, and return the upstream error if it's
/// unavailable." (`allow_fallbacks`, openrouter.ai/docs/sdks/go/api-reference/models/
/// providerpreferences). Model fallbacks are their own feature ("If the first model returns
/// an error, OpenRouter will automatically try the next model in the list.",
/// openrouter.ai/docs/guides/routing) and stay.
#[test]
fn openrouter_allow_fallbacks_false_keeps_only_the_primary_provider() {
    // Model m: a (provider pa, $1/M input, every answer a 529) and b (pb, $2, healthy);
    // model m2: c (pc, $1, healthy). Ten requests, one a second.
    let ds = [
        priced("a", "pa", "m", 1.0, "[errors]\noverloaded_rate = 1.0\n"),
        priced("b", "pb", "m", 2.0, ""),
        priced("c", "pc", "m2", 1.0, ""),
    ];
    let run = |text: &str| simulate(&mut policy(text, &ds), &ds, every(10, 1_000.0));
    // order = ["pa"]: with fallbacks, a fails and b (the next provider) answers: 20 attempts,
    // 10 on b. Without, only a is tried and its error is returned: 10 attempts, 10 failed.
    let with = run("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { order = [\"pa\"] }");
    assert_eq!((with.total.attempts, served(&with, 1), with.total.failed), (20, 10, 0));
    let without = run(
        "kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = { order = [\"pa\"], allow_fallbacks = false }",
    );
    assert_eq!(
        (without.total.attempts, without.by_deployment[1].attempts, without.total.failed),
        (10, 0, 10)
    );
    assert_eq!(cause(&without, FailureCause::Attempt(FailureKind::Overloaded)), 10);
    // No order, sort by price, fallback model m2. With fallbacks each request tries a ($1),
    // then b ($2), which answers: a 10, b 10, c 0. Without, m keeps only its primary a; the
    // next *model* follows: a 10, b 0, c 10, every request served by c.
    let sorted = "kind = \"openrouter\"\nmodels = [\"m\", \"m2\"]\nprovider = { sort = \"price\"";
    let with = run(&format!("{sorted} }}"));
    let attempts = |m: &StrategyMetrics| (0..3).map(|d| m.by_deployment[d].attempts).collect::<Vec<_>>();
    assert_eq!((attempts(&with), served(&with, 1)), (vec![10, 10, 0], 10));
    let without = run(&format!("{sorted}, allow_fallbacks = false }}"));
    assert_eq!((attempts(&without), served(&without, 2)), (vec![10, 0, 10], 10));
}

/// `ignore`: "List of provider slugs to ignore." (openrouter.ai/docs/sdks/go/api-reference/
/// models/providerpreferences). The rest is routed as if the ignored endpoints did not exist.
#[test]
fn openrouter_ignore_drops_providers_and_the_rest_balance_among_themselves() {
    let ds =
        [priced("a", "pa", "m", 1.0, ""), priced("b", "pb", "m", 2.0, ""), priced("c", "pc", "m", 3.0, "")];
    let run = |provider: &str, n: u64| {
        let text = format!("kind = \"openrouter\"\nmodels = [\"m\"]\nprovider = {{ {provider} }}");
        simulate(&mut policy(&text, &ds), &ds, every(n, 50.0))
    };
    // Sorted by price without the cheapest: all 100 on b.
    let m = run("ignore = [\"pa\"], sort = \"price\"", 100);
    assert_eq!((served(&m, 0), served(&m, 1), served(&m, 2)), (0, 100, 0));
    // Default load balancing over b and c: weights 1/2² and 1/3², shares 9/13 = 0.6923 and
    // 4/13 = 0.3077; over 10,000 requests σ = √(0.6923 × 0.3077 / 10,000) = 0.0046, 5σ.
    let n = 10_000;
    let m = run("ignore = [\"pa\"]", n);
    assert_eq!(m.by_deployment[0].attempts, 0);
    let share_b = served(&m, 1) as f64 / n as f64;
    assert!((share_b - 9.0 / 13.0).abs() < 5.0 * 0.0046, "b share {share_b:.4}");
    assert_eq!(served(&m, 1) + served(&m, 2), n);
    // A deployment name works as well as a provider; ignoring every endpoint leaves none:
    // each request fails with cause no_endpoint (ours) and nothing is sent.
    let m = run("ignore = [\"pa\", \"b\", \"pc\"]", 10);
    assert_eq!((m.total.attempts, cause(&m, FailureCause::Policy("no_endpoint"))), (0, 10));
}

/// Bad `openrouter` options are one line naming their path in the scenario (*ours*: the pages
/// describe the options, not routesim's errors).
#[test]
fn openrouter_option_errors_name_the_scenario_path() {
    let scenario = |policy: &str| {
        routesim::scenario::Scenario::parse(
            &format!(
                "[trace]\nfile = \"t.csv\"\n[deployments.a]\npreset = \"anthropic-tier4-sonnet-4.x\"\n\
                 [[strategy]]\nname = \"x\"\npolicy = {policy}\n"
            ),
            Path::new("s.toml"),
            Path::new("."),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert_eq!(
        scenario("{ kind = \"openrouter\", models = [\"claude-sonnet-4.5\"], provider = { sort = { by = \"fast\" } } }"),
        "s.toml:7: strategy[0].policy.provider.sort.by: unknown value \"fast\" (price, throughput, latency)"
    );
    assert_eq!(
        scenario("{ kind = \"openrouter\", models = [\"claude-sonnet-4.5\"], provider = { preferred_min_throughput = { p50 = 50, p95 = 20 } } }"),
        "s.toml:7: strategy[0].policy.provider.preferred_min_throughput.p95: unknown percentile (p50, p75, p90, p99)"
    );
}

// ------------------------------------------------------------------ LiteLLM

#[test]
fn litellm_allowed_fails_cools_only_a_deployment_with_somewhere_else_to_go() {
    // A deployment answering 500 after 0.5 s; a request every second; no retries.
    let ds = [deployment("a", "[errors]\nserver_error_rate = 1.0\n"), deployment("b", "")];
    // Alone in its group with no fallbacks, LiteLLM never cools it in allowed_fails mode
    // (`_should_cooldown_deployment`: lone deployment, no policy for the class).
    let mut lone = policy(
        r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a" }]
router_settings = { num_retries = 0, allowed_fails = 3, cooldown_time = "5s" }"#,
        &ds,
    );
    let m = simulate(&mut lone, &ds, every(10, 1_000.0));
    assert_eq!(m.by_deployment[0].attempts, 10);
    assert_eq!(cause(&m, FailureCause::Attempt(FailureKind::ServerError)), 10);
    // With a fallback group it is not lone: failures seen at 0.5, 1.5, 2.5 s are allowed
    // (counted in a 5 s window from the first), the 4th (3.5 s) cools a until 8.5 s, so
    // requests at 4..8 s go straight to the fallback; at 9 s the window has expired, a is
    // tried again and fails once more. Every request ends on b.
    let mut with_fallback = policy(
        r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a" }, { model_name = "h", deployment = "b" }]
router_settings = { num_retries = 0, allowed_fails = 3, cooldown_time = "5s", fallbacks = [{ g = ["h"] }] }"#,
        &ds,
    );
    let m = simulate(&mut with_fallback, &ds, every(10, 1_000.0));
    assert_eq!(m.by_deployment[0].attempts, 5);
    assert_eq!(served(&m, 1), 10);
    assert_eq!(m.total.succeeded, 10);
}

#[test]
fn litellm_retries_never_exceed_num_retries_per_group_then_falls_back() {
    let ds = [deployment("a", "[errors]\noverloaded_rate = 1.0\n"), deployment("b", "")];
    let mut alone = policy(
        r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a" }]
router_settings = { num_retries = 2, allowed_fails = 1000 }"#,
        &ds,
    );
    let m = simulate(&mut alone, &ds, every(20, 1_000.0));
    assert_eq!(m.total.attempts, 60, "num_retries = 2: three attempts per request");
    assert_eq!(m.total.failed, 20);
    let mut with_fallback = policy(
        r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a" }, { model_name = "backup", deployment = "b" }]
router_settings = { num_retries = 2, allowed_fails = 1000, fallbacks = [{ g = ["backup"] }] }"#,
        &ds,
    );
    let m = simulate(&mut with_fallback, &ds, every(20, 1_000.0));
    assert_eq!(m.total.succeeded, 20);
    assert_eq!(m.total.attempts, 80, "three on the group, then one on the fallback");
}

#[test]
fn litellm_a_429_in_a_multi_deployment_group_cools_at_once_for_retry_after() {
    // a holds one request per second; b takes the rest. Weight 0 on b: shuffle never picks it
    // while a is healthy.
    let ds = [deployment("a", "[limits]\nrpm = 60\nburst = \"1s\"\n"), deployment("b", "")];
    let mut p = policy(
        r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a", weight = 1.0 }, { model_name = "g", deployment = "b", weight = 0.0 }]"#,
        &ds,
    );
    let mut trace: Vec<Request> = (0..3).map(|i| request(i + 1, 0.0, 10, 10)).collect();
    trace.push(request(4, 500.0, 10, 10));
    trace.push(request(5, 1_200.0, 10, 10));
    let m = simulate(&mut p, &ds, trace);
    // Requests 2 and 3 hit a's empty bucket (429 at 0.15 s, retry-after 1 s): a is cooled until
    // 1.15 s, so their retries and request 4 go to b; request 5 (1.2 s) finds a healthy again.
    assert_eq!(m.by_deployment[0].attempts_429, 2);
    assert_eq!(served(&m, 0), 2);
    assert_eq!(served(&m, 1), 3);
}

#[test]
fn litellm_cost_based_routing_ranks_by_litellm_params_prices_before_the_deployments() {
    // `lowest_cost.py`: a deployment's `litellm_params.input_cost_per_token` (if truthy), else
    // its cost-map row — here the scenario deployment's price — plus the same for output.
    // cheap lists $1/Mtok input and dear $3 (output free); dear's config price of $0.5/Mtok
    // makes it the cheaper: 10 of 10 requests go to dear. A price of 0 is not truthy: the
    // scenario's prices decide again, 10 of 10 on cheap.
    let ds = [priced("cheap", "p", "m", 1.0, ""), priced("dear", "p", "m", 3.0, "")];
    let text = |dear_price: &str| {
        format!(
            "kind = \"litellm\"\nmodel_list = [{{ model_name = \"g\", deployment = \"cheap\" }}, {{ model_name = \"g\", deployment = \"dear\", input_cost_per_token = {dear_price} }}]\nrouter_settings = {{ routing_strategy = \"cost-based-routing\" }}"
        )
    };
    let m = simulate(&mut policy(&text("0.5e-6"), &ds), &ds, every(10, 1_000.0));
    assert_eq!((served(&m, 0), served(&m, 1)), (0, 10));
    let m = simulate(&mut policy(&text("0.0"), &ds), &ds, every(10, 1_000.0));
    assert_eq!((served(&m, 0), served(&m, 1)), (10, 0));
}

#[test]
fn litellm_least_busy_breaks_ties_to_the_first_deployment_of_the_group() {
    // `router_strategy/least_busy.py` (LiteLLM 1.110.2): `_least_busy_index` is
    // `min(range(len(counts)), key=lambda index: counts[index])`, so among deployments with
    // equally few calls in flight the first of the group wins; nothing is drawn at random.
    // Both deployments answer in 150 ms + 10 tokens at 100 tok/s = 250 ms.
    let lat = "latency = { ttft_ms = { dist = \"constant\", value = 150 }, output_tokens_per_s = { dist = \"constant\", value = 100 } }\n";
    let ds = [deployment("a", lat), deployment("b", lat)];
    let text = r#"kind = "litellm"
model_list = [{ model_name = "g", deployment = "a" }, { model_name = "g", deployment = "b" }]
router_settings = { routing_strategy = "least-busy" }"#;
    // Idle: a request every second finds both at 0 in flight; every one goes to a (random
    // ties would split them, and give 10 : 0 once in 512 runs).
    let m = simulate(&mut policy(text, &ds), &ds, every(10, 1_000.0));
    assert_eq!((served(&m, 0), served(&m, 1)), (10, 0));
    // A request every 100 ms, 250 ms each. By hand (in flight a/b when each arrives):
    // r1 0 ms 0/0 → a; r2 100 ms 1/0 → b; r3 200 ms 1/1 → a; r4 300 ms (r1 ended at 250)
    // 1/1 → a; r5 400 ms 2/0 (r2 ended at 350) → b; then every 300 ms the same b, a, a
    // (r6 500 ms 1/1 → a, r7 600 ms 1/1 → a, r8 700 ms 2/0 → b, ...). Over 31 requests:
    // r1..r4 give a 3, b 1; r5..r31 are 9 cycles of (b, a, a): a 18, b 9. So a 21, b 10.
    let m = simulate(&mut policy(text, &ds), &ds, every(31, 100.0));
    assert_eq!((served(&m, 0), served(&m, 1)), (21, 10));
    assert_eq!(m.total.attempts, 31, "no failures, no retries");
}

#[test]
fn litellm_routing_strategies_behave_as_documented() {
    let cheap = priced("cheap", "p", "m", 1.0, "");
    let dear = priced("dear", "p", "m", 3.0, "[latency]\nttft_ms = { dist = \"constant\", value = 100 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let ds = [cheap, dear];
    let group = r#"model_list = [{ model_name = "g", deployment = "cheap", rpm = 10 }, { model_name = "g", deployment = "dear", rpm = 10 }]"#;
    let run_with = |strategy: &str, trace: Vec<Request>| {
        let text =
            format!("kind = \"litellm\"\n{group}\nrouter_settings = {{ routing_strategy = \"{strategy}\" }}");
        simulate(&mut policy(&text, &ds), &ds, trace)
    };
    // Cost: the cheapest while its rpm (10, counted per UTC minute at the call's start)
    // lasts: 30 requests a minute for 3 minutes, then 10: 10 + 10 + 10 + 10 on cheap.
    let cost = run_with("cost-based-routing", every(100, 2_000.0));
    assert_eq!(served(&cost, 0), 40, "cheapest healthy deployment within its rpm");
    // Latency: an unmeasured deployment counts 0 s, so the first two requests go one to
    // each; from then on dear (0.02 s per output token vs 0.11 s) wins: 9 of 10 on dear,
    // whichever the first draw picked. (10 requests stay within dear's rpm of 10.)
    let latency = run_with("latency-based-routing", every(10, 2_000.0));
    assert_eq!((served(&latency, 0), served(&latency, 1)), (1, 9));
    // Usage-based: 30 requests in one minute, rpm 10 each; `rpm_used + 1 >= rpm` skips, so
    // 9 a minute pass on each: 18 served, 12 find nothing available.
    let usage = run_with("usage-based-routing", every(30, 100.0));
    assert_eq!((served(&usage, 0), served(&usage, 1)), (9, 9));
    assert_eq!(cause(&usage, FailureCause::Policy("no_deployments_available")), 12);
    // Shuffle by rpm 10 : 10 → even split (2,000 requests: σ of a share is 0.011, allow 5σ).
    let shuffle = run_with("simple-shuffle", every(2_000, 30.0));
    let share = served(&shuffle, 0) as f64 / 2_000.0;
    assert!((share - 0.5).abs() < 0.056, "simple-shuffle: share {share}");
    // Least-busy: dear answers in 0.2 s, cheap in 1.1 s, so cheap has more in flight and gets
    // fewer requests. At one request per 30 ms cheap holds ~1.1/0.03 × its share in flight;
    // balance needs share_cheap × 1.1 ≈ share_dear × 0.2, i.e. share_cheap ≈ 0.15.
    let least = run_with("least-busy", every(2_000, 30.0));
    let share = served(&least, 0) as f64 / 2_000.0;
    assert!((share - 0.154).abs() < 0.05, "least-busy: share {share}");
}

#[test]
fn litellm_loads_a_proxy_config_yaml_and_rejects_unsupported_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ds = [
        priced("anthropic/sonnet", "anthropic", "claude-sonnet-4.5", 3.0, ""),
        priced("openai/gpt-5", "openai", "gpt-5", 1.25, ""),
    ];
    std::fs::write(
        dir.path().join("litellm.yaml"),
        r#"model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_key: os.environ/ANTHROPIC_API_KEY
      rpm: 100
  - model_name: gpt
    litellm_params:
      model: openai/gpt-5
      timeout: 30
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 1
  cooldown_time: 10
  fallbacks: [{"claude": ["gpt"]}]
"#,
    )
    .unwrap();
    let mut p = policy_in(
        r#"kind = "litellm"
config_file = "litellm.yaml"
model = "claude""#,
        &ds,
        dir.path(),
    );
    let m = run(&open_loop(1), &ds, p.as_mut(), every(10, 1_000.0));
    assert_eq!(served(&m, 0), 10, "the claude group maps to anthropic/sonnet by model name");

    std::fs::write(
        dir.path().join("bad.yaml"),
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/gpt-5\n      priority: 3\n",
    )
    .unwrap();
    let config: PolicyConfig = toml::from_str("kind = \"litellm\"\nconfig_file = \"bad.yaml\"").unwrap();
    let files = PolicyFiles::read(&config, dir.path(), &ds);
    let err = config.build(&Catalog { deployments: &ds, base_dir: dir.path(), files: &files }).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "config_file: {}:5: model_list[0].litellm_params.priority: changes routing in LiteLLM (the priority request queue) but routesim does not model it; remove it to simulate without it",
            dir.path().join("bad.yaml").display()
        )
    );
}

// ------------------------------------------------------------------ rules, batch

#[test]
fn class_rules_send_each_bucket_to_its_sub_policy() {
    let ds = [
        deployment("fast", ""),
        deployment("premium", ""),
        deployment("cheap", "[batch]\ncompletion_ms = { dist = \"constant\", value = 600000 }\n"),
    ];
    let mut p = policy(
        r#"kind = "rules"
default = { kind = "single", deployment = "cheap" }
[[rules]]
match = { class = ["interactive"] }
policy = { kind = "single", deployment = "fast" }
[[rules]]
match = { class = ["hard"], min_input_tokens = 500 }
policy = { kind = "fallback", chain = ["premium", "fast"] }
[[rules]]
match = { class = ["async"] }
policy = { kind = "batch", deployment = "cheap" }"#,
        &ds,
    );
    let classes = [ClassId::INTERACTIVE, ClassId::HARD, ClassId::BULK, ClassId::ASYNC];
    let trace: Vec<Request> = (0..40)
        .map(|i| Request { class: classes[i as usize % 4], ..request(i + 1, i as f64 * 100.0, 1_000, 10) })
        .collect();
    let m = simulate(&mut p, &ds, trace);
    assert_eq!((served(&m, 0), served(&m, 1), served(&m, 2)), (10, 10, 10));
    assert_eq!(m.by_deployment[2].batch_accepted, 10);
    assert_eq!(m.total.batched, 10);
    assert_eq!(m.by_class[3].batch_completion.count(), 10);
    assert_eq!(m.by_class[3].ttft.count(), 0, "batch results stay out of interactive latency");
    assert!(build_error("kind = \"rules\"\ndefault = { kind = \"single\", deployment = \"fast\" }\n[[rules]]\nmatch = { class = [\"interactve\"] }\npolicy = { kind = \"single\", deployment = \"fast\" }", &ds)
        .starts_with("rules[0].match.class[0]: unknown class \"interactve\""));
}

// ------------------------------------------------------------------ smoothing and caps

#[test]
fn smoothing_queues_instead_of_stampeding_and_serves_interactive_first() {
    let ds = [deployment("a", "[limits]\nrpm = 60\nburst = \"1s\"\n")];
    // 5 bulk requests at t = 0, then 5 interactive at t = 1 ms.
    let trace: Vec<Request> = (0..10)
        .map(|i| {
            let class = if i < 5 { ClassId::BULK } else { ClassId::INTERACTIVE };
            Request { class, ..request(i + 1, if i < 5 { 0.0 } else { 1.0 }, 10, 0) }
        })
        .collect();
    let unsmoothed = simulate(
        &mut policy("kind = \"single\"\ndeployment = \"a\"\nmax_attempts = 1", &ds),
        &ds,
        trace.clone(),
    );
    assert_eq!(unsmoothed.total.rate_limited, 9);
    let mut smooth = policy(
        r#"kind = "smoothing"
inner = { kind = "single", deployment = "a", max_attempts = 1 }
limits = { a = { rpm = 60, burst = "1s" } }"#,
        &ds,
    );
    let m = simulate(&mut smooth, &ds, trace);
    assert_eq!(m.total.attempts_429, 0);
    assert_eq!(m.total.succeeded, 10);
    // One token per second: bulk #1 at 0 s, then the five interactive at 1..5 s, then bulk at
    // 6..9 s; TTFT is 1 s after sending.
    let interactive = m.by_class[0].ttft.summary();
    let bulk = m.by_class[2].ttft.summary();
    assert!((interactive.max - 5_999.0).abs() < 10.0, "interactive max {}", interactive.max);
    assert!((bulk.max - 10_000.0).abs() < 10.0, "bulk max {}", bulk.max);

    let mut bounded = policy(
        r#"kind = "smoothing"
inner = { kind = "single", deployment = "a", max_attempts = 1 }
limits = { a = { rpm = 60, burst = "1s" } }
max_wait = "3500ms""#,
        &ds,
    );
    let trace: Vec<Request> = (0..10).map(|i| request(i + 1, 0.0, 10, 0)).collect();
    let m = simulate(&mut bounded, &ds, trace);
    // Sent at 0, 1, 2, 3 s; the rest would wait past 3.5 s.
    assert_eq!(m.total.succeeded, 4);
    assert_eq!(cause(&m, FailureCause::Policy("queue_timeout")), 6);
}

#[test]
fn a_global_concurrency_cap_runs_requests_in_waves() {
    let ds = [deployment("a", "")];
    let mut p = policy(
        "kind = \"concurrency_cap\"\nmax_in_flight = 2\ninner = { kind = \"single\", deployment = \"a\" }",
        &ds,
    );
    // Six requests of exactly 2 s at t = 0 through 2 slots: e2e 2, 2, 4, 4, 6, 6 s.
    let trace: Vec<Request> = (0..6).map(|i| request(i + 1, 0.0, 10, 100)).collect();
    let m = simulate(&mut p, &ds, trace);
    let e2e = m.total.e2e.summary();
    assert!((e2e.max - 6_000.0).abs() < 7.0 && (e2e.mean - 4_000.0).abs() < 5.0, "{e2e:?}");
}

/// Fan-out (issue 12): an agent session fans out 6 parallel sub-agent calls of exactly 2 s
/// at t = 0 while a second session sends 2 and a session-less request 1. Capped at 2 per
/// session, the fan-out runs in waves (e2e 2, 2, 4, 4, 6, 6 s) and nobody else waits
/// (2, 2 and 2 s): mean 30/9 s, max 6 s. Capped at 2 for all, the 9 run in five waves
/// (2, 2, 4, 4, 6, 6, 8, 8, 10 s): mean 50/9 s, max 10 s.
#[test]
fn a_per_session_cap_spaces_one_agents_fan_out_and_no_one_else() {
    let ds = [deployment("a", "")];
    let mut trace: Vec<Request> = (0..6).map(|i| request(i + 1, 0.0, 10, 100)).collect();
    trace.extend((6..8).map(|i| request(i + 1, 0.0, 10, 100)));
    trace.push(request(9, 0.0, 10, 100));
    for r in &mut trace[..6] {
        r.session = Some(1_001);
    }
    for r in &mut trace[6..8] {
        r.session = Some(1_002);
    }
    let cap = |per: &str| {
        format!("kind = \"concurrency_cap\"\nmax_in_flight = 2\nper = \"{per}\"\ninner = {{ kind = \"single\", deployment = \"a\" }}")
    };
    let per_session = simulate(&mut policy(&cap("session"), &ds), &ds, trace.clone());
    let e2e = per_session.total.e2e.summary();
    let expected_mean_ms = (2.0 + 2.0 + 4.0 + 4.0 + 6.0 + 6.0 + 2.0 + 2.0 + 2.0) / 9.0 * 1000.0;
    assert!((e2e.max - 6_000.0).abs() < 7.0 && (e2e.mean - expected_mean_ms).abs() < 5.0, "{e2e:?}");
    assert_eq!(per_session.total.succeeded, 9);
    let global = simulate(&mut policy(&cap("all"), &ds), &ds, trace);
    let e2e = global.total.e2e.summary();
    let expected_mean_ms = (2.0 + 2.0 + 4.0 + 4.0 + 6.0 + 6.0 + 8.0 + 8.0 + 10.0) / 9.0 * 1000.0;
    assert!((e2e.max - 10_000.0).abs() < 12.0 && (e2e.mean - expected_mean_ms).abs() < 8.0, "{e2e:?}");
    let refused = toml::from_str::<PolicyConfig>(&cap("agent")).unwrap_err().to_string();
    assert!(refused.contains("unknown variant `agent`, expected `all` or `session`"), "{refused}");
}

/// Stacked retries (issue 12): one request to a deployment that always answers 500, through
/// a router that tries twice (`single`, max_attempts = 2). An SDK layer with max_retries = 2
/// re-issues the call twice: 3 × 2 = 6 attempts. A harness layer with 2 more on top: 3 × 3 × 2
/// = 18. A request no limit can pass (exceeds_limit) is not retried by any layer: 1 attempt.
#[test]
fn retry_layers_multiply_the_routers_attempts() {
    let ds = [
        deployment("a", "[errors]\nserver_error_rate = 1.0\n"),
        deployment("small", "[limits]\nitpm = 100\n"),
    ];
    let router = r#"kind = "single"
deployment = "a"
max_attempts = 2
backoff = { initial = "10ms", max = "10ms" }"#;
    let sdk = format!(
        "kind = \"retry_layer\"\nlayer = \"sdk\"\nmax_retries = 2\nbackoff = {{ initial = \"100ms\", max = \"100ms\" }}\n[inner]\n{router}"
    );
    let harness = format!(
        "kind = \"retry_layer\"\nlayer = \"harness\"\nmax_retries = 2\nbackoff = {{ initial = \"1s\", max = \"1s\" }}\n[inner]\nkind = \"retry_layer\"\nlayer = \"sdk\"\nmax_retries = 2\nbackoff = {{ initial = \"100ms\", max = \"100ms\" }}\n[inner.inner]\n{router}"
    );
    let run_one = |text: &str| {
        let m = simulate(&mut policy(text, &ds), &ds, vec![request(1, 0.0, 10, 10)]);
        assert_eq!(m.total.failed, 1, "{text}");
        assert_eq!(cause(&m, FailureCause::Attempt(routesim::provider::FailureKind::ServerError)), 1);
        m
    };
    assert_eq!(run_one(router).total.attempts, 2);
    let one_layer = run_one(&sdk);
    assert_eq!(one_layer.total.attempts, 6);
    assert_eq!(one_layer.retries_by_layer, [("sdk".to_string(), 2)].into());
    let stacked = run_one(&harness);
    assert_eq!(stacked.total.attempts, 18);
    // The harness re-issues 2 rounds; in each of its 3 rounds the SDK re-issues 2 calls.
    assert_eq!(stacked.retries_by_layer, [("harness".to_string(), 2), ("sdk".to_string(), 6)].into());
    // The waits add up too: each call backs off 10 ms between its attempts, the SDK 100 ms
    // between calls, the harness 1 s between its rounds (jitter takes up to 25% off each):
    // 9 × 10 ms + 6 × 100 ms + 2 × 1 s = 2.69 s at most, 2.0175 s at least, plus the errors'
    // own response times.
    let last_ms = stacked.last_event_at.saturating_since(routesim::time::Instant::ZERO).as_millis_f64();
    assert!(last_ms > 2_017.5, "{last_ms}");
    let oversized = "kind = \"retry_layer\"\nmax_retries = 5\ninner = { kind = \"single\", deployment = \"small\", max_attempts = 3 }";
    let m = simulate(&mut policy(oversized, &ds), &ds, vec![request(1, 0.0, 1_000, 10)]);
    assert_eq!((m.total.attempts, m.total.rate_limited), (1, 1), "exceeds_limit is final at every layer");
}

/// Broken streams (issue 12): a deployment whose every stream breaks after its first token.
/// The SDKs do not retry an error inside a stream that already started: an SDK layer with
/// 2 retries over a one-attempt router makes 1 attempt. A harness that restarts the turn
/// (`retry_mid_stream = true`) makes 3. A layer name that cannot be a metric is refused.
#[test]
fn a_broken_stream_is_not_retried_by_an_sdk_layer_unless_it_says_so() {
    let ds = [deployment("a", "[errors]\nmid_stream_error_rate = 1.0\n")];
    let layer = |extra: &str| {
        format!("kind = \"retry_layer\"\nmax_retries = 2\n{extra}\ninner = {{ kind = \"single\", deployment = \"a\", max_attempts = 1 }}")
    };
    let sdk = simulate(&mut policy(&layer(""), &ds), &ds, vec![request(1, 0.0, 10, 100)]);
    assert_eq!((sdk.total.attempts, sdk.total.failed), (1, 1));
    assert!(sdk.retries_by_layer.is_empty());
    let harness =
        simulate(&mut policy(&layer("retry_mid_stream = true"), &ds), &ds, vec![request(1, 0.0, 10, 100)]);
    assert_eq!((harness.total.attempts, harness.total.failed), (3, 1));
    assert_eq!(harness.retries_by_layer, [("retry_layer".to_string(), 2)].into());
    assert!(build_error(&layer("layer = \"my sdk\""), &ds).starts_with("layer: must be a non-empty name"));
}

/// A deployment of `model` called with the API key `credential`.
fn keyed(name: &str, model: &str, credential: &str, extra: &str) -> routesim::provider::Deployment {
    let mut d = deployment(name, &format!("credential = \"{credential}\"\n{extra}"));
    d.model = model.to_string();
    d
}

/// Cooldown granularity (issue 12). Opus on key a has one request a minute; Sonnet on key a
/// and Opus on key b are free. r1 at 0 s takes Opus@a's request, r2 at 1 s is refused there
/// (429) and the failure is cooled down for 60 s; r3 at 2 s follows. What the cooldown covers
/// decides where r2 and r3 go:
/// - chain [opus@a, opus@b, sonnet@a]: per deployment → Opus@b (twice); per model (Opus on
///   both keys cooled) → Sonnet@a (twice);
/// - chain [opus@a, sonnet@a, opus@b]: per deployment → Sonnet@a; per key (key a cooled:
///   Sonnet@a too, with capacity to spare) → Opus@b.
#[test]
fn the_cooldown_scope_decides_whether_a_limit_on_one_model_blocks_its_siblings() {
    let ds = [
        keyed("opus@a", "opus", "key-a", "[limits]\nrpm = 1\n"),
        keyed("sonnet@a", "sonnet", "key-a", ""),
        keyed("opus@b", "opus", "key-b", ""),
    ];
    let trace = every(3, 1_000.0);
    let run = |chain: &str, scope: &str| {
        let text =
            format!("kind = \"rotation\"\nchain = {chain}\ncooldown_scope = \"{scope}\"\ncooldown = \"60s\"");
        let m = simulate(&mut policy(&text, &ds), &ds, trace.clone());
        assert_eq!((m.total.succeeded, m.total.attempts, m.total.attempts_429), (3, 4, 1), "{chain} {scope}");
        (served(&m, 0), served(&m, 1), served(&m, 2))
    };
    let opus_first = r#"["opus@a", "opus@b", "sonnet@a"]"#;
    assert_eq!(run(opus_first, "deployment"), (1, 0, 2));
    assert_eq!(run(opus_first, "model"), (1, 2, 0));
    let key_a_first = r#"["opus@a", "sonnet@a", "opus@b"]"#;
    assert_eq!(run(key_a_first, "deployment"), (1, 2, 0));
    assert_eq!(run(key_a_first, "credential"), (1, 0, 2));
    assert!(build_error("kind = \"rotation\"\nchain = []", &ds).starts_with("chain: must name at least one"));
    let unknown =
        toml::from_str::<PolicyConfig>("kind = \"rotation\"\nchain = [\"opus@a\"]\ncooldown_scope = \"key\"");
    assert!(unknown.unwrap_err().to_string().contains("expected one of `deployment`, `model`, `credential`"));
}

/// Key rotation among keys that share one quota (issue 12): Opus on keys a and b, requests at
/// 0 s and 1 s, each request starting at the next key. With a limit of 1 a minute per key, r1
/// takes a and r2 takes b: 2 attempts. With one pooled limit of 1 a minute for both keys
/// (an organisation's per-model quota), r2 is refused at b (retry-after 59 s), then at a
/// (rotation moves on: the key, not the quota, is what cooled), waits for the cooldowns
/// (61.15 s) and passes at b: 4 attempts, 2 of them 429 (`shared_requests`). Cooling the model
/// instead stops after the first refusal: 3 attempts.
#[test]
fn rotating_keys_that_share_one_quota_buys_no_capacity_only_429s() {
    let own = "[limits]\nrpm = 1\n";
    let pooled =
        "[limits]\nquotas = [{ meter = \"requests\", amount = 1, period = \"1m\", pool = \"org/opus\" }]\n";
    let run = |limits: &str, scope: &str| {
        let ds = [keyed("opus@a", "opus", "key-a", limits), keyed("opus@b", "opus", "key-b", limits)];
        let text = format!(
            "kind = \"rotation\"\nchain = [\"opus@a\", \"opus@b\"]\nstart = \"rotate\"\ncooldown_scope = \"{scope}\"\ncooldown = \"60s\""
        );
        simulate(&mut policy(&text, &ds), &ds, every(2, 1_000.0))
    };
    let separate = run(own, "credential");
    assert_eq!((separate.total.succeeded, separate.total.attempts, separate.total.attempts_429), (2, 2, 0));
    let shared = run(pooled, "credential");
    assert_eq!((shared.total.succeeded, shared.total.attempts, shared.total.attempts_429), (2, 4, 2));
    let axis: routesim::limiter::Axis = "shared_requests".parse().unwrap();
    assert_eq!(shared.by_deployment[0].attempts_429_by_axis.get(&axis), Some(&1));
    assert_eq!(shared.by_deployment[1].attempts_429_by_axis.get(&axis), Some(&1));
    // r2 arrived at 1 s and was served at b from 61.15 s: its first token 1 s later, 61.15 s
    // after its arrival.
    let e2e_max_ms = shared.total.ttft.summary().max;
    assert!((e2e_max_ms - 61_150.0).abs() < 70.0, "{e2e_max_ms}");
    let by_model = run(pooled, "model");
    assert_eq!((by_model.total.attempts, by_model.total.attempts_429), (3, 1));
}

/// Gateway replicas without a shared store (issue 12): each replica's client-side limiter
/// admits its own share, so N replicas admit N × the limit. The provider allows 20 requests a
/// minute (a bucket of 20); the client-side smoothing limit is the same 20. 60 requests at
/// t = 0: one gateway admits 20 and queues 40 for the refill (no 429); three round-robin
/// replicas admit 20 each, and the provider refuses exactly 60 − 20 = 40. Synchronised at once
/// (`sync = { every = "0s" }`, an atomic shared store) every admission is seen by every replica
/// before the next decision: the three share one bucket of 20 and queue the other 40, as one
/// gateway does (no 429, all 60 served).
#[test]
fn replicas_without_a_shared_store_admit_n_times_the_client_limit() {
    let ds = [deployment("a", "[limits]\nrpm = 20\n")];
    let smoothing = r#"kind = "smoothing"
limits = { a = { rpm = 20 } }
max_wait = "10m"
inner = { kind = "single", deployment = "a", max_attempts = 1 }"#;
    let burst: Vec<Request> = (0..60).map(|i| request(i + 1, 0.0, 10, 10)).collect();
    let one = simulate(&mut policy(smoothing, &ds), &ds, burst.clone());
    assert_eq!((one.total.succeeded, one.total.attempts_429), (60, 0));
    let replicas = |count: u32, sync: &str| {
        format!("kind = \"replicas\"\ncount = {count}\nsync = {sync}\n[inner]\n{smoothing}")
    };
    let three = simulate(&mut policy(&replicas(3, "\"none\""), &ds), &ds, burst.clone());
    assert_eq!((three.total.attempts_429, three.total.rate_limited, three.total.succeeded), (40, 40, 20));
    let single_replica = simulate(&mut policy(&replicas(1, "\"none\""), &ds), &ds, burst.clone());
    assert_eq!(single_replica.total.attempts_429, 0, "one replica is one gateway");
    let shared = simulate(&mut policy(&replicas(3, "{ every = \"0s\" }"), &ds), &ds, burst);
    assert_eq!((shared.total.attempts_429, shared.total.succeeded), (0, 60), "Δ = 0 is one gateway");
    shared.check_conservation().unwrap();
    assert!(build_error(
        "kind = \"replicas\"\ncount = 0\ninner = { kind = \"single\", deployment = \"a\" }",
        &ds
    )
    .starts_with("count: must be between 1 and 1000"));
}

/// Replicas synchronised every Δ (issue 12): between two syncs each replica spends what was
/// left at the last one as if it were alone, so N replicas may admit N × that. Provider and
/// client limits are 20 a minute (buckets of 20, one request back every 3 s); a request the
/// client refuses fails at once (`max_wait` 1 ms: `queue_timeout`). 15 requests at t = 0 (5 per
/// replica, round robin: all pass, the provider keeps 5), then 30 at t = 11 s (10 per
/// replica), when the provider has 5 + 11/3 = 8.67, so it serves 8 of what is sent.
/// - Δ = ∞: a replica knows only its own 5: 15 + 11/3 = 18.67 left, it sends all 10: 30 sent,
///   22 answered 429.
/// - Δ = 10 s: the sync at 10 s (run by the first call after it, the arrival at 11 s) brings
///   each replica the other 10 admissions: 20 − 15 + 10/3 = 8.33 left at 10 s, 8.67 at 11 s, so
///   each sends 8 and refuses 2: 24 sent, 16 = (3 − 1) × 8 answered 429, 6 queue timeouts.
/// - Δ = 0: one shared bucket: 8 sent, 22 queue timeouts, no 429 — the same as one replica.
///
/// Each way 15 + 8 = 23 are served and all 45 are accounted for.
#[test]
fn replicas_synchronised_every_delta_overshoot_by_what_each_spends_between_syncs() {
    let ds = [deployment("a", "[limits]\nrpm = 20\n")];
    let replicas = |count: u32, sync: &str| {
        format!(
            "kind = \"replicas\"\ncount = {count}\nsync = {sync}\n[inner]\nkind = \"smoothing\"\n\
             limits = {{ a = {{ rpm = 20 }} }}\nmax_wait = \"1ms\"\n\
             inner = {{ kind = \"single\", deployment = \"a\", max_attempts = 1 }}"
        )
    };
    let mut trace: Vec<Request> = (0..15).map(|i| request(i + 1, 0.0, 10, 10)).collect();
    trace.extend((15..45).map(|i| request(i + 1, 11_000.0, 10, 10)));
    let outcome = |text: String| {
        let m = simulate(&mut policy(&text, &ds), &ds, trace.clone());
        m.check_conservation().unwrap();
        let timeouts = cause(&m, FailureCause::Policy("queue_timeout"));
        (m.total.succeeded, m.total.attempts, m.total.attempts_429, m.total.rate_limited, timeouts)
    };
    assert_eq!(outcome(replicas(3, "\"none\"")), (23, 45, 22, 22, 0), "Δ = ∞");
    assert_eq!(outcome(replicas(3, "{ every = \"10s\" }")), (23, 39, 16, 16, 6), "Δ = 10 s");
    assert_eq!(outcome(replicas(3, "{ every = \"0s\" }")), (23, 23, 0, 0, 22), "Δ = 0");
    assert_eq!(outcome(replicas(1, "\"none\"")), (23, 23, 0, 0, 22), "one replica");
    // A sync only after both waves (Δ = 20 s) changes nothing: Δ = ∞ as far as this trace goes.
    assert_eq!(outcome(replicas(3, "{ every = \"20s\" }")), (23, 45, 22, 22, 0), "Δ = 20 s");
}

/// Synchronised replicas share LiteLLM's cooldowns (issue 12): one started in a replica is
/// honoured by another only after the next sync. `a` answers every attempt with a 429 (an
/// injected one without `retry-after`, after 0.5 s: `a` cools for `cooldown_time`, 60 s); `b`
/// is healthy but has weight 0, so a replica picks it only while `a` cools there. One router
/// retry. Sticky sessions: session 0's request at t = 0 goes to replica 0 (429 at 0.5 s, `a`
/// cooled there until 60.5 s, the retry served by `b`); session 1's 4 requests at t = 5 s go to
/// replica 1 and session 2's 4 at t = 12 s to replica 2, each burst leaving before its first
/// answer.
/// - Δ = ∞: replicas 1 and 2 learn only from their own 429s: 1 + 4 + 4 = 9 answered 429,
///   9 + 9 = 18 attempts.
/// - Δ = 10 s: replica 1's burst comes before the first sync and goes to `a` (4 × 429); the
///   sync at 10 s, run by the burst at 12 s, brings replica 2 the cooldowns of replicas 0 and 1,
///   and its burst goes straight to `b`: 5 × 429, 14 attempts.
/// - Δ = 0: only the first request ever meets `a`: 1 × 429, 10 attempts.
///
/// All 9 are served each time.
#[test]
fn a_litellm_cooldown_reaches_the_other_replicas_at_the_next_sync() {
    let ds = [deployment("a", "[errors]\nrate_limited_rate = 1.0\n"), deployment("b", "")];
    let replicas = |sync: &str| {
        format!(
            "kind = \"replicas\"\ncount = 3\nsplit = \"session\"\nsync = {sync}\n[inner]\nkind = \"litellm\"\n\
             model_list = [{{ model_name = \"g\", deployment = \"a\", weight = 1.0 }}, \
             {{ model_name = \"g\", deployment = \"b\", weight = 0.0 }}]\n\
             router_settings = {{ num_retries = 1, cooldown_time = \"60s\" }}"
        )
    };
    let in_session =
        |id: u64, at_ms: f64, session: u64| Request { session: Some(session), ..request(id, at_ms, 10, 10) };
    let mut trace = vec![in_session(1, 0.0, 0)];
    trace.extend((2..=5).map(|id| in_session(id, 5_000.0, 1)));
    trace.extend((6..=9).map(|id| in_session(id, 12_000.0, 2)));
    let outcome = |text: String| {
        let m = simulate(&mut policy(&text, &ds), &ds, trace.clone());
        m.check_conservation().unwrap();
        (m.total.succeeded, m.total.attempts, m.by_deployment[0].attempts_429)
    };
    assert_eq!(outcome(replicas("\"none\"")), (9, 18, 9), "Δ = ∞");
    assert_eq!(outcome(replicas("{ every = \"10s\" }")), (9, 14, 5), "Δ = 10 s");
    assert_eq!(outcome(replicas("{ every = \"0s\" }")), (9, 10, 1), "Δ = 0");
}

/// Every wrapper passes the shared state of the policy it wraps (issue 12): the burst of
/// `replicas_without_a_shared_store_admit_n_times_the_client_limit` (60 requests at t = 0,
/// provider and client limits 20 a minute) through each wrapper around the smoothing, behind
/// three replicas: 40 provider 429s without a store, none and all 60 served with Δ = 0.
#[test]
fn every_wrapper_passes_shared_state_through() {
    let ds = [deployment("a", "[limits]\nrpm = 20\n"), deployment("b", "")];
    let smoothing = r#"{ kind = "smoothing", limits = { a = { rpm = 20 } }, max_wait = "10m", inner = { kind = "single", deployment = "a", max_attempts = 1 } }"#;
    let wrappers = [
        format!("kind = \"concurrency_cap\"\nmax_in_flight = 1000\ninner = {smoothing}"),
        format!("kind = \"adaptive\"\ninitial_limit = 100.0\ninner = {smoothing}"),
        format!("kind = \"deferral\"\nbusy_in_flight = 10\ninner = {smoothing}"),
        format!("kind = \"hedge\"\nhedge_to = [\"a\"]\ninner = {smoothing}"),
        format!("kind = \"retry_layer\"\nmax_retries = 0\ninner = {smoothing}"),
        // The smoothing is the second rule's: the delta reaches the same rule in every replica.
        format!(
            "kind = \"rules\"\nrules = [{{ match = {{ class = [\"bulk\"] }}, policy = {{ kind = \"single\", deployment = \"b\" }} }}, \
             {{ match = {{ class = [\"interactive\"] }}, policy = {smoothing} }}]\ndefault = {{ kind = \"single\", deployment = \"b\" }}"
        ),
    ];
    let burst: Vec<Request> = (0..60).map(|i| request(i + 1, 0.0, 10, 10)).collect();
    for wrapper in wrappers {
        let replicas = |sync: &str| {
            let inner: String = wrapper.lines().map(|l| format!("{l}\n")).collect();
            format!("kind = \"replicas\"\ncount = 3\nsync = {sync}\n[inner]\n{inner}")
        };
        let alone = simulate(&mut policy(&replicas("\"none\""), &ds), &ds, burst.clone());
        let shared = simulate(&mut policy(&replicas("{ every = \"0s\" }"), &ds), &ds, burst.clone());
        assert_eq!(alone.total.attempts_429, 40, "{wrapper}");
        assert_eq!((shared.total.attempts_429, shared.total.succeeded), (0, 60), "{wrapper}");
    }
}

/// Synchronised replicas share LiteLLM's usage counters (issue 12): usage-based routing skips
/// a deployment once `requests_used + 1 >= rpm`, so `a` (rpm 5) takes 4 calls a minute; the
/// rest fall back to group `h` (`b`). Round robin over 3 replicas: 3 requests at t = 0 (one per
/// replica, all on `a`), then 9 at t = 20 s (3 per replica), all in minute 0.
/// - Δ = ∞: each replica has counted 1 and sends 3 more: `a` takes all 12.
/// - Δ = 10 s: the sync at 10 s brings each replica the other 2: with 3 used, each sends 1
///   more to `a` (4 used, full) and 2 to `b`: `a` 6, `b` 6.
/// - Δ = 0: one counter: `a` takes 1 more, `b` 8: `a` 4, as one gateway.
#[test]
fn litellm_usage_counters_are_summed_at_each_sync() {
    let ds = [deployment("a", ""), deployment("b", "")];
    let replicas = |sync: &str| {
        format!(
            "kind = \"replicas\"\ncount = 3\nsync = {sync}\n[inner]\nkind = \"litellm\"\n\
             model_list = [{{ model_name = \"g\", deployment = \"a\", rpm = 5 }}, {{ model_name = \"h\", deployment = \"b\" }}]\n\
             router_settings = {{ routing_strategy = \"usage-based-routing-v2\", fallbacks = [{{ g = [\"h\"] }}] }}"
        )
    };
    let mut trace: Vec<Request> = (0..3).map(|i| request(i + 1, 0.0, 10, 10)).collect();
    trace.extend((3..12).map(|i| request(i + 1, 20_000.0, 10, 10)));
    let served_by = |sync: &str| {
        let m = simulate(&mut policy(&replicas(sync), &ds), &ds, trace.clone());
        m.check_conservation().unwrap();
        (served(&m, 0), served(&m, 1))
    };
    assert_eq!(served_by("\"none\""), (12, 0), "Δ = ∞");
    assert_eq!(served_by("{ every = \"10s\" }"), (6, 6), "Δ = 10 s");
    assert_eq!(served_by("{ every = \"0s\" }"), (4, 8), "Δ = 0");
}

/// `sync` options: a duration or `"none"`; errors name their path in the scenario.
#[test]
fn replicas_sync_errors_name_their_path() {
    let ds = [deployment("a", "")];
    assert_eq!(
        build_error(
            "kind = \"replicas\"\ncount = 2\nsync = { every = \"1s\" }\n\
             inner = { kind = \"replicas\", count = 2, inner = { kind = \"single\", deployment = \"a\" } }",
            &ds
        ),
        "sync.every: must not be set when the router nests another `replicas` (nested replicas keep their state to themselves)"
    );
    let scenario = |policy: &str| {
        routesim::scenario::Scenario::parse(
            &format!(
                "[trace]\nfile = \"t.csv\"\n[deployments.a]\npreset = \"anthropic-tier4-sonnet-4.x\"\n\
                 [[strategy]]\nname = \"x\"\npolicy = {policy}\n"
            ),
            Path::new("s.toml"),
            Path::new("."),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let inner = "inner = { kind = \"single\", deployment = \"a\" }";
    let must_be = "s.toml:7: strategy[0].policy.sync.every: must be a duration such as \"1s\" (\"0s\": perfectly shared)";
    for (sync, expected) in [
        ("{ every = \"soon\" }", format!("{must_be}: invalid duration \"soon\": missing number (expected a number with a unit, e.g. \"250ms\", \"1.5s\", \"5m\", \"24h\")")),
        ("{ every = 5 }", format!("{must_be}, got 5")),
        ("{}", must_be.to_string()),
        ("{ evry = \"1s\" }", "s.toml:7: strategy[0].policy.sync.evry: unknown field; did you mean \"every\"? (every)".to_string()),
        ("\"sometimes\"", "s.toml:7: strategy[0].policy.sync: unknown value \"sometimes\" (expected \"none\", or { every = \"1s\" } (\"0s\": perfectly shared))".to_string()),
    ] {
        let error = scenario(&format!("{{ kind = \"replicas\", count = 2, sync = {sync}, {inner} }}"));
        assert_eq!(error, expected, "{sync}");
    }
    assert_eq!(
        scenario(&format!("{{ kind = \"replicas\", count = 2, sync = {{ every = \"250ms\" }}, {inner} }}")),
        ""
    );
}

/// A quota that clears only at its period's end (issue 12): a $0.02 monthly spend cap, and
/// requests of 1,000 input + 10 output tokens at $3 / $15 per M = $0.00315 each, 5 s apart
/// (each done in 1.1 s). Admission needs budget left: spent 0, 0.00315, … , 0.0189 < 0.02, so
/// 7 pass and the last 3 are refused as quota_exhausted with no retry-after. No layer retries
/// them: an SDK layer (3 retries) over a router (3 attempts) still makes 1 attempt each (10 in
/// all); a fallback chain sends each refused request on to the spare (7 + 2 × 3 = 13).
#[test]
fn a_spend_cap_is_a_quota_no_layer_retries_and_a_fallback_takes_over() {
    let ds = [
        deployment("capped", "[limits]\nquotas = [{ meter = \"spend_usd\", amount = 0.02, period = \"30d\", refill = \"fixed\" }]\n"),
        deployment("spare", ""),
    ];
    let trace = every(10, 5_000.0);
    let layered = "kind = \"retry_layer\"\nmax_retries = 3\ninner = { kind = \"single\", deployment = \"capped\", max_attempts = 3 }";
    let m = simulate(&mut policy(layered, &ds), &ds, trace.clone());
    assert_eq!((m.total.succeeded, m.total.failed, m.total.attempts), (7, 3, 10));
    assert_eq!(cause(&m, FailureCause::Attempt(routesim::provider::FailureKind::QuotaExhausted)), 3);
    let by_axis = &m.by_deployment[0].attempts_429_by_axis;
    assert_eq!(by_axis.get(&"spend_usd_per_30d".parse().unwrap()), Some(&3), "{by_axis:?}");
    assert!((m.by_deployment[0].cost_usd - 7.0 * 0.00315).abs() < 1e-9);
    let fallback = "kind = \"fallback\"\nchain = [\"capped\", \"spare\"]";
    let m = simulate(&mut policy(fallback, &ds), &ds, trace);
    assert_eq!((m.total.succeeded, m.total.attempts), (10, 13));
    assert_eq!(m.by_deployment[1].successes, 3);
}

// ------------------------------------------------------------------ beyond the peers

#[test]
fn hedging_wins_with_the_faster_answer_and_bills_the_loser_honestly() {
    let slow = deployment("slow", "[latency]\nttft_ms = { dist = \"constant\", value = 5000 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let fast = deployment("fast", "");
    let ds = [slow, fast];
    let mut p = policy(
        r#"kind = "hedge"
inner = { kind = "single", deployment = "slow" }
hedge_to = ["fast"]
min_delay = "1s"
max_hedge_fraction = 1.0"#,
        &ds,
    );
    let m = simulate(&mut p, &ds, vec![request(1, 0.0, 1_000_000, 100)]);
    // Hedge at 1 s; fast's first token at 2 s wins; slow (no token yet) is cancelled at 2 s and
    // billed for the prompt only; fast finishes at 3 s.
    assert_eq!(m.total.succeeded, 1);
    assert!((m.total.ttft.summary().max - 2_000.0).abs() < 3.0);
    assert_eq!(m.total.attempts, 2);
    assert!((m.by_deployment[0].cost_usd - 3.0).abs() < 1e-9, "slow billed for 1M prompt tokens at $3/M");
    assert!((m.total.cost_usd - (6.0 + 100.0 * 15e-6)).abs() < 1e-9);
    assert_eq!(m.last_event_at, routesim::time::Instant::from_millis(3_000));
}

/// Hedges are their own question (`Policy::hedge`): every wrapper must pass it to its inner
/// policy and gate the answer like an attempt, without queueing it. Two requests 1 ms apart,
/// slow first tokens at 5 s, hedges at 1 s to a deployment answering in 1 s: a hedged
/// request's first token comes at 2 s, an unhedged one's at 5 s.
#[test]
fn every_wrapper_passes_hedges_through_and_gates_them_without_queueing() {
    let slow = deployment("slow", "[latency]\nttft_ms = { dist = \"constant\", value = 5000 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let fast = deployment("fast", "");
    let ds = [slow, fast];
    let hedge = r#"{ kind = "hedge", inner = { kind = "single", deployment = "slow" }, hedge_to = ["fast"], min_delay = "1s", max_hedge_fraction = 1.0 }"#;
    let cases = [
        // Two slots held by the first attempts: no hedge; one more slot: the first hedge only.
        (format!("kind = \"concurrency_cap\"\nmax_in_flight = 2\ninner = {hedge}"), 0),
        (format!("kind = \"concurrency_cap\"\nmax_in_flight = 3\ninner = {hedge}"), 1),
        (format!("kind = \"concurrency_cap\"\nmax_in_flight = 4\ninner = {hedge}"), 2),
        // Adaptive limits are per deployment: the hedges' target has slots of its own.
        (format!("kind = \"adaptive\"\ninitial_limit = 2.0\ninner = {hedge}"), 2),
        (format!("kind = \"deferral\"\nclasses = [\"async\"]\nbusy_in_flight = 10\ninner = {hedge}"), 2),
        // One local token at `fast`: the first hedge takes it, the second is refused.
        (format!("kind = \"smoothing\"\nlimits = {{ fast = {{ rpm = 1 }} }}\ninner = {hedge}"), 1),
        (format!("kind = \"smoothing\"\nlimits = {{ fast = {{ rpm = 100 }} }}\ninner = {hedge}"), 2),
        (format!("kind = \"rules\"\nrules = [{{ match = {{ class = [\"interactive\"] }}, policy = {hedge} }}]\ndefault = {{ kind = \"single\", deployment = \"slow\" }}"), 2),
    ];
    for (text, hedges) in cases {
        let m = simulate(
            &mut policy(&text, &ds),
            &ds,
            vec![request(1, 0.0, 1_000, 100), request(2, 1.0, 1_000, 100)],
        );
        assert_eq!(m.total.succeeded, 2, "{text}");
        assert_eq!(m.by_deployment[1].attempts, hedges, "{text}");
        assert_eq!(m.total.attempts, 2 + hedges, "{text}");
        let ttft = m.total.ttft.summary();
        let mean_ms = (hedges as f64 * 2_000.0 + (2 - hedges) as f64 * 5_000.0) / 2.0;
        assert!((ttft.mean - mean_ms).abs() < 3.0, "{text}: {ttft:?}");
    }
}

#[test]
fn hedging_cuts_the_tail_within_its_budget() {
    let tail = deployment("tail", "[latency]\nttft_ms = { dist = \"lognormal\", median = 800, sigma = 1.0 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let steady = deployment("steady", "[latency]\nttft_ms = { dist = \"constant\", value = 900 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n");
    let ds = [tail, steady];
    let trace = poisson_trace(5_000, 5.0, 2, 100, 50);
    let plain = simulate(&mut policy("kind = \"single\"\ndeployment = \"tail\"", &ds), &ds, trace.clone());
    let hedged = simulate(
        &mut policy(
            "kind = \"hedge\"\ninner = { kind = \"single\", deployment = \"tail\" }\nhedge_to = [\"steady\"]\nmin_delay = \"500ms\"\nmax_hedge_fraction = 0.2",
            &ds,
        ),
        &ds,
        trace,
    );
    let (p99_plain, p99_hedged) = (plain.total.ttft.quantile_ms(0.99), hedged.total.ttft.quantile_ms(0.99));
    // Without hedging p99 ≈ 800·e^(2.326) ≈ 8.2 s; hedged at ~p90 (≈ 2.9 s) the steady
    // deployment answers 0.9 s later: p99 ≈ 3.8 s.
    assert!(p99_hedged < 0.6 * p99_plain, "p99 {p99_hedged} vs {p99_plain}");
    // About 10% of requests pass the p90 delay; the 20% budget is a hard cap.
    let hedges = hedged.by_deployment[1].attempts as f64;
    assert!(hedges <= 0.2 * 5_000.0 + 1.0 && hedges > 0.05 * 5_000.0, "hedges: {hedges}");
}

#[test]
fn adaptive_concurrency_learns_a_hidden_concurrency_limit() {
    // The provider silently allows 4 in flight; requests take ~1 s; 8 arrive per second.
    let ds = [deployment("a", "[limits]\nmax_in_flight = 4\n[latency]\nttft_ms = { dist = \"exponential\", mean = 500 }\noutput_tokens_per_s = { dist = \"constant\", value = 100 }\n")];
    let trace = poisson_trace(4_000, 8.0, 5, 10, 50);
    let naive = simulate(
        &mut policy("kind = \"single\"\ndeployment = \"a\"\nmax_attempts = 10", &ds),
        &ds,
        trace.clone(),
    );
    let adaptive = simulate(
        &mut policy("kind = \"adaptive\"\ninner = { kind = \"single\", deployment = \"a\", max_attempts = 10 }\nmax_wait = \"10m\"", &ds),
        &ds,
        trace,
    );
    let rate = |m: &StrategyMetrics| m.total.attempts_429 as f64 / m.total.attempts as f64;
    assert!(rate(&adaptive) < rate(&naive) / 3.0, "429 share {} vs {}", rate(&adaptive), rate(&naive));
    assert_eq!(adaptive.total.succeeded + adaptive.total.rate_limited + adaptive.total.failed, 4_000);
}

#[test]
fn deferral_holds_async_work_until_the_system_is_quiet() {
    let ds = [deployment("a", "")];
    let mut p = policy(
        r#"kind = "deferral"
inner = { kind = "single", deployment = "a" }
busy_in_flight = 0
recheck = "30s"
slack = "30m""#,
        &ds,
    );
    // A 100 s interactive call from t = 0 (1 s to first token, 9,900 tokens at 100/s), and an
    // async job at t = 1 s with a 1 h deadline.
    let long = request(1, 0.0, 10, 9_900);
    let job = Request {
        class: ClassId::ASYNC,
        deadline: Some(Duration::from_mins(60)),
        ..request(2, 1_000.0, 10, 0)
    };
    let m = simulate(&mut p, &ds, vec![long, job]);
    // Busy until 100 s; rechecks at 31, 61, 91, 121 s: the job starts at 121 s, first token 122 s.
    assert!(
        (m.by_class[3].ttft.summary().max - 121_000.0).abs() < 130.0,
        "{:?}",
        m.by_class[3].ttft.summary()
    );
    assert_eq!(m.total.succeeded, 2);
}

#[test]
fn a_litellm_config_file_is_read_once_when_the_scenario_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("litellm.yaml"),
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: a\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        r#"
[trace]
file = "t.csv"
[deployments.a]
preset = "anthropic-tier4-haiku-4.5"
[[strategy]]
name = "proxy"
policy = { kind = "litellm", config_file = "litellm.yaml" }
"#,
    )
    .unwrap();
    let scenario = routesim::scenario::Scenario::load(&dir.path().join("s.toml")).unwrap();
    // Runs build fresh policies later (one per strategy and run); the file is gone by then.
    std::fs::remove_file(dir.path().join("litellm.yaml")).unwrap();
    let mut p = scenario.strategies[0].policy.build();
    let m = run(&open_loop(1), &scenario.deployments, p.as_mut(), every(5, 1_000.0));
    assert_eq!(m.total.succeeded, 5);
}
