//! How one model's traffic is split between its endpoints: the documented price-based load
//! balancing (first pick weighted 1/price²) and the traffic shares (adjusted price and speed
//! → a competitive edge, exploration, a breaker; every attempt drawn by share from the
//! endpoints left). Pure arithmetic on numbers the router has already gathered; it must not
//! know observations, requests or configuration files.

use super::config::TrafficSharesConfig;
use crate::policy::observed::Rates;
use crate::rng::SplitMix64;

/// Index drawn with probability `weights[i] / Σ weights` (weights ≥ 0, at least one > 0).
fn draw(weights: &[f64], rng: &mut SplitMix64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.next_open01() * total;
    let mut last_positive = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w <= 0.0 {
            continue;
        }
        if target < *w {
            return i;
        }
        target -= w;
        last_positive = i;
    }
    last_positive
}

/// Which of `prices_usd` (one request at each stable endpoint) goes first: drawn with weight
/// 1/price². Prices are compared relative to the cheapest, so tiny per-request prices do not
/// overflow; a free endpoint wins over any priced one.
pub fn inverse_square_first(prices_usd: &[f64], rng: &mut SplitMix64) -> usize {
    let cheapest = prices_usd.iter().copied().fold(f64::INFINITY, f64::min);
    let weights: Vec<f64> = prices_usd
        .iter()
        .map(|p| if cheapest > 0.0 { (cheapest / p).powi(2) } else { f64::from(u8::from(*p <= 0.0)) })
        .collect();
    draw(&weights, rng)
}

/// What the router knows of one endpoint for one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndpointView {
    /// The request priced at this endpoint (its effective price).
    pub price_usd: f64,
    /// Median time to first token.
    pub ttft_s: f64,
    /// Median output speed.
    pub output_tokens_per_s: f64,
    pub rates: Rates,
}

/// Share of attempts that failed (429s included) over the window, 0 before `min_attempts`.
fn bad_rate(rates: &Rates, config: &TrafficSharesConfig) -> f64 {
    if rates.attempts == 0 || rates.attempts < config.min_attempts as usize {
        0.0
    } else {
        (rates.failed + rates.rate_limited) as f64 / rates.attempts as f64
    }
}

/// Lower is better: the adjusted price (the effective price per good answer, i.e. divided by
/// the share of attempts that neither failed nor hit a 429) times the expected wait for the
/// request's output (TTFT + output tokens / speed) to the power `time_exponent`.
pub fn score(view: &EndpointView, output_tokens: u64, config: &TrafficSharesConfig) -> f64 {
    let good = (1.0 - bad_rate(&view.rates, config)).max(0.01);
    let adjusted_price_usd = view.price_usd / good;
    let decode_s =
        if view.output_tokens_per_s > 0.0 { output_tokens as f64 / view.output_tokens_per_s } else { 0.0 };
    let wait_s = (view.ttft_s + decode_s).max(1e-3);
    adjusted_price_usd * wait_s.powf(config.time_exponent)
}

/// The breaker: endpoints whose failure + 429 rate is at least `breaker_gap` above the best
/// peer's. The best endpoint is never paused.
pub fn paused(rates: &[Rates], config: &TrafficSharesConfig) -> Vec<bool> {
    let bad: Vec<f64> = rates.iter().map(|r| bad_rate(r, config)).collect();
    let best = bad.iter().copied().fold(f64::INFINITY, f64::min);
    bad.iter().map(|b| b - best >= config.breaker_gap).collect()
}

/// Each endpoint's share of first attempts. Competitive endpoints (score within `edge` of
/// the best) split `1 − exploration` with weight 1/ratio²; `exploration` is spread evenly over
/// every endpoint that is not paused; paused endpoints get nothing.
pub fn shares(scores: &[f64], paused: &[bool], config: &TrafficSharesConfig) -> Vec<f64> {
    let active = paused.iter().filter(|p| !**p).count();
    if active == 0 {
        return vec![0.0; scores.len()];
    }
    let best = scores.iter().zip(paused).filter(|(_, p)| !**p).map(|(s, _)| *s).fold(f64::INFINITY, f64::min);
    let competitive: Vec<f64> = scores
        .iter()
        .zip(paused)
        .map(|(s, p)| {
            if *p {
                0.0
            } else if best <= 0.0 {
                f64::from(u8::from(*s <= 0.0))
            } else {
                let ratio = s / best;
                if ratio <= config.edge * (1.0 + 1e-12) {
                    1.0 / (ratio * ratio)
                } else {
                    0.0
                }
            }
        })
        .collect();
    let total: f64 = competitive.iter().sum();
    let even = config.exploration / active as f64;
    competitive
        .iter()
        .zip(paused)
        .map(|(w, p)| if *p { 0.0 } else { (1.0 - config.exploration) * w / total + even })
        .collect()
}

/// The order a request tries the endpoints in: each attempt drawn by share from the endpoints
/// left; endpoints with no share (paused, or past the edge without exploration) follow,
/// best score first.
pub fn order(scores: &[f64], shares: &[f64], rng: &mut SplitMix64) -> Vec<usize> {
    let mut left: Vec<usize> = (0..scores.len()).filter(|i| shares[*i] > 0.0).collect();
    let mut plan = Vec::with_capacity(scores.len());
    while !left.is_empty() {
        let weights: Vec<f64> = left.iter().map(|i| shares[*i]).collect();
        plan.push(left.remove(draw(&weights, rng)));
    }
    let mut rest: Vec<usize> = (0..scores.len()).filter(|i| shares[*i] <= 0.0).collect();
    rest.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    plan.extend(rest);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrafficSharesConfig {
        TrafficSharesConfig::default()
    }

    fn rates(attempts: usize, failed: usize, rate_limited: usize) -> Rates {
        Rates { attempts, failed, rate_limited }
    }

    #[test]
    fn competitive_endpoints_split_by_inverse_square_ratio_and_everyone_explores() {
        // Scores 1, 1.2, 3 with edge 1.5 and exploration 5%: the first two are competitive
        // with weights 1 and 1/1.44; the third is past the edge.
        let s = shares(&[1.0, 1.2, 3.0], &[false, false, false], &config());
        let w1 = 1.0 / 1.44;
        let expected = [0.95 / (1.0 + w1) + 0.05 / 3.0, 0.95 * w1 / (1.0 + w1) + 0.05 / 3.0, 0.05 / 3.0];
        for (got, want) in s.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{s:?}");
        }
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // A paused endpoint gets nothing, not even exploration.
        let s = shares(&[1.0, 1.0], &[false, true], &config());
        assert_eq!(s, vec![1.0, 0.0]);
    }

    #[test]
    fn adjusted_price_counts_failures_429s_and_the_wait() {
        let c = config();
        let view =
            EndpointView { price_usd: 0.01, ttft_s: 1.5, output_tokens_per_s: 100.0, rates: rates(20, 3, 2) };
        // 5 of 20 attempts bad → 0.01 / 0.75; wait 1.5 s + 50 tokens / 100 tokens/s = 2 s.
        assert!((score(&view, 50, &c) - 0.01 / 0.75 * 2.0).abs() < 1e-15);
        // Below min_attempts (10) the rates do not count yet.
        let young = EndpointView { rates: rates(5, 5, 0), ..view };
        assert!((score(&young, 50, &c) - 0.02).abs() < 1e-15);
        // time_exponent 0: price only.
        let price_only = TrafficSharesConfig { time_exponent: 0.0, ..c };
        assert!((score(&view, 50, &price_only) - 0.01 / 0.75).abs() < 1e-15);
    }

    #[test]
    fn the_breaker_pauses_only_endpoints_far_worse_than_the_best_peer() {
        let c = config();
        assert_eq!(
            paused(&[rates(20, 1, 0), rates(20, 8, 4), rates(20, 10, 0), rates(5, 5, 0)], &c),
            // bad rates 0.05, 0.6, 0.5, 0 (too few attempts) → gaps vs best 0: 0.05, 0.6, 0.5, 0.
            vec![false, true, true, false]
        );
        // Everyone equally bad: nobody is far worse than its peers.
        assert_eq!(paused(&[rates(20, 20, 0), rates(20, 20, 0)], &c), vec![false, false]);
    }

    #[test]
    fn an_order_draws_without_replacement_and_keeps_zero_shares_last() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..100 {
            let plan = order(&[2.0, 1.0, 9.0, 3.0], &[0.5, 0.5, 0.0, 0.0], &mut rng);
            assert_eq!(plan.len(), 4);
            assert_eq!(&plan[2..], &[3, 2], "no-share endpoints follow, best score first");
            assert!(plan[..2].contains(&0) && plan[..2].contains(&1));
        }
        let mut rng = SplitMix64::new(1);
        assert_eq!(inverse_square_first(&[0.0, 1.0], &mut rng), 0);
    }
}
