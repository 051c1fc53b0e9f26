//! What a router has observed of each deployment from its own finished attempts: time to
//! first token and output speed at the percentiles it asks for over a rolling 5-minute
//! window, failures in the last 30 s, and (if asked) failure and 429 rates over a longer
//! window. Routers judge latency and stability on their own observations (OpenRouter: p50
//! over 5 minutes, failures in the last 30 s), never on the provider model's hidden
//! parameters. Used by OpenRouter and by hedging.
//!
//! Percentiles are read at most once per second of virtual time per deployment (a real
//! router refreshes its statistics periodically too) from a [`SampleWindow`] that ranks
//! samples as they arrive and expire, so routing stays cheap whatever the traffic rate. It
//! knows nothing of how a router orders deployments.

use super::window::SampleWindow;
use super::{AttemptOutcome, AttemptReport};
use crate::provider::{DeploymentId, FailureKind};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;

/// How an attempt ended, as the rates count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Ok,
    RateLimited,
    Failed,
}

/// Failure and 429 rates over the traffic-shares window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub attempts: usize,
    pub rate_limited: usize,
    /// Failures other than 429s (5xx, 529, timeouts, slow first tokens).
    pub failed: usize,
}

#[derive(Clone, Debug, Default)]
struct DeploymentWindow {
    samples: SampleWindow,
    /// (when, failed) within the outage window.
    recent: VecDeque<(Instant, bool)>,
    recent_failures: usize,
    /// Outcomes within the rates window (kept only when rates are asked for).
    outcomes: VecDeque<(Instant, Ended)>,
    rates: Rates,
    cached_at: Option<Instant>,
    /// TTFT (ms) at each of `ttft_quantiles`; empty when there are no samples.
    ttft_ms: Vec<f64>,
    /// Output speed (tokens/s) at each of `speed_quantiles`; empty when there are no samples.
    speed: Vec<f64>,
}

/// Rolling per-endpoint observations.
#[derive(Clone, Debug)]
pub struct Observed {
    deployments: Vec<DeploymentWindow>,
    sample_window: Duration,
    outage_window: Duration,
    /// `None`: no rates kept (a router that never asks for them pays nothing).
    rates_window: Option<Duration>,
    ttft_quantiles: Vec<f64>,
    speed_quantiles: Vec<f64>,
    refresh: Duration,
}

impl Observed {
    /// `ttft_quantiles` / `speed_quantiles` are the quantiles (0.5 = median) that
    /// [`Observed::ttft_ms`] and [`Observed::output_tokens_per_s`] answer for, by index.
    pub fn new(
        deployments: usize,
        rates_window: Option<Duration>,
        ttft_quantiles: Vec<f64>,
        speed_quantiles: Vec<f64>,
    ) -> Observed {
        Observed {
            deployments: vec![DeploymentWindow::default(); deployments],
            sample_window: Duration::from_mins(5),
            outage_window: Duration::from_secs(30),
            rates_window,
            ttft_quantiles,
            speed_quantiles,
            refresh: Duration::from_secs(1),
        }
    }

    fn window(&mut self, d: DeploymentId) -> &mut DeploymentWindow {
        let i = d.index();
        if self.deployments.len() <= i {
            self.deployments.resize(i + 1, DeploymentWindow::default());
        }
        &mut self.deployments[i]
    }

    /// Records a finished attempt. Batched attempts and hedge losers (cancelled) count for
    /// nothing.
    pub fn record(&mut self, report: &AttemptReport) {
        let ended = match report.outcome {
            AttemptOutcome::Success => Ended::Ok,
            AttemptOutcome::Batched | AttemptOutcome::Failed(FailureKind::Cancelled) => return,
            AttemptOutcome::Failed(FailureKind::RateLimited) => Ended::RateLimited,
            AttemptOutcome::Failed(_) => Ended::Failed,
        };
        let now = report.ended_at;
        let keep_rates = self.rates_window.is_some();
        let w = self.window(report.deployment);
        let failed = ended != Ended::Ok;
        w.recent.push_back((now, failed));
        w.recent_failures += usize::from(failed);
        if keep_rates {
            w.outcomes.push_back((now, ended));
            w.rates.attempts += 1;
            w.rates.rate_limited += usize::from(ended == Ended::RateLimited);
            w.rates.failed += usize::from(ended == Ended::Failed);
        }
        if let Some(first) = report.first_token_at.filter(|_| !failed) {
            let ttft_ms = first.saturating_since(report.started_at).as_millis_f64();
            let decode_s = now.saturating_since(first).as_secs_f64();
            let speed =
                (decode_s > 0.0 && report.output_tokens > 0).then(|| report.output_tokens as f64 / decode_s);
            w.samples.push(now, ttft_ms, speed);
        }
    }

    fn evict(&mut self, d: DeploymentId, now: Instant) {
        let (samples, outage, rates) = (self.sample_window, self.outage_window, self.rates_window);
        let w = self.window(d);
        w.samples.evict(now, samples);
        while let Some(&(at, failed)) = w.recent.front() {
            if now.saturating_since(at) <= outage {
                break;
            }
            w.recent.pop_front();
            w.recent_failures -= usize::from(failed);
        }
        while let Some(&(at, ended)) = w.outcomes.front() {
            if rates.is_some_and(|window| now.saturating_since(at) <= window) {
                break;
            }
            w.outcomes.pop_front();
            w.rates.attempts -= 1;
            w.rates.rate_limited -= usize::from(ended == Ended::RateLimited);
            w.rates.failed -= usize::from(ended == Ended::Failed);
        }
    }

    /// (failures, attempts) at `d` in the last 30 s.
    pub fn recent_failures(&mut self, d: DeploymentId, now: Instant) -> (usize, usize) {
        self.evict(d, now);
        let w = self.window(d);
        (w.recent_failures, w.recent.len())
    }

    /// Failure and 429 counts at `d` over the rates window (all zero without one).
    pub fn rates(&mut self, d: DeploymentId, now: Instant) -> Rates {
        self.evict(d, now);
        self.window(d).rates
    }

    fn refresh_cache(&mut self, d: DeploymentId, now: Instant) {
        if self.window(d).cached_at.is_some_and(|at| now.saturating_since(at) < self.refresh) {
            return;
        }
        self.evict(d, now);
        let i = d.index();
        let w = &mut self.deployments[i];
        w.ttft_ms.clear();
        w.ttft_ms.extend(self.ttft_quantiles.iter().filter_map(|q| w.samples.ttft_quantile_ms(*q)));
        w.speed.clear();
        w.speed.extend(self.speed_quantiles.iter().filter_map(|q| w.samples.speed_quantile(*q)));
        w.cached_at = Some(now);
    }

    /// Observed TTFT (ms) at `ttft_quantiles[i]`, if there are samples.
    pub fn ttft_ms(&mut self, d: DeploymentId, now: Instant, i: usize) -> Option<f64> {
        self.refresh_cache(d, now);
        self.window(d).ttft_ms.get(i).copied()
    }

    /// Observed output speed (tokens/s) at `speed_quantiles[i]`, if there are samples.
    pub fn output_tokens_per_s(&mut self, d: DeploymentId, now: Instant, i: usize) -> Option<f64> {
        self.refresh_cache(d, now);
        self.window(d).speed.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ClassId;

    fn report(d: u16, start_ms: u64, ttft_ms: u64, end_ms: u64, outcome: AttemptOutcome) -> AttemptReport {
        let ok = outcome == AttemptOutcome::Success;
        AttemptReport {
            request_id: 1,
            class: ClassId::HARD,
            attempt: 1,
            deployment: DeploymentId(d),
            started_at: Instant::from_millis(start_ms),
            ended_at: Instant::from_millis(end_ms),
            first_token_at: ok.then(|| Instant::from_millis(start_ms + ttft_ms)),
            outcome,
            retry_after: None,
            output_tokens: if ok { 100 } else { 0 },
            remaining: None,
        }
    }

    #[test]
    fn several_percentiles_at_once_and_rates_by_kind() {
        let mut s = Observed::new(1, Some(Duration::from_secs(60)), vec![0.5, 0.9], vec![0.5, 0.1]);
        // TTFTs 1..=10 s; 100 tokens decoded in 1..=10 s (speeds 100, 50, …, 10 tokens/s).
        for k in 1..=10u64 {
            s.record(&report(0, 0, k * 1_000, k * 2_000, AttemptOutcome::Success));
        }
        let now = Instant::from_millis(20_000);
        let d = DeploymentId(0);
        // Nearest rank: p50 of 10 values is the 5th, p90 the 9th.
        assert_eq!(s.ttft_ms(d, now, 0), Some(5_000.0));
        assert_eq!(s.ttft_ms(d, now, 1), Some(9_000.0));
        // Speeds 100/k: the median is the 5th smallest (100/6 ≈ 16.7), the 10th percentile
        // the smallest (10).
        assert_eq!(s.output_tokens_per_s(d, now, 1), Some(10.0));
        assert!((s.output_tokens_per_s(d, now, 0).unwrap_or(0.0) - 100.0 / 6.0).abs() < 1e-9);

        s.record(&report(0, 20_000, 0, 21_000, AttemptOutcome::Failed(FailureKind::RateLimited)));
        s.record(&report(0, 20_000, 0, 22_000, AttemptOutcome::Failed(FailureKind::Overloaded)));
        s.record(&report(0, 20_000, 0, 22_000, AttemptOutcome::Failed(FailureKind::Cancelled)));
        assert_eq!(
            s.rates(d, Instant::from_millis(25_000)),
            Rates { attempts: 12, rate_limited: 1, failed: 1 }
        );
        assert_eq!(s.recent_failures(d, Instant::from_millis(25_000)), (2, 12));
        // At 81.5 s the last success (20 s) and the 429 (21 s) have left the 60 s window, the
        // 529 (22 s) has not; at 53 s nothing is left in the 30 s window.
        assert_eq!(s.recent_failures(d, Instant::from_millis(53_000)), (0, 0));
        assert_eq!(
            s.rates(d, Instant::from_millis(81_500)),
            Rates { attempts: 1, rate_limited: 0, failed: 1 }
        );
    }

    #[test]
    fn latency_is_judged_over_the_rolling_window_and_failures_over_30_s() {
        let mut o = Observed::new(2, None, vec![0.5], vec![0.5]);
        // Three answers: TTFT 1 s, 2 s, 9 s; 100 tokens decoded in 1 s each.
        o.record(&report(0, 0, 1_000, 2_000, AttemptOutcome::Success));
        o.record(&report(0, 0, 2_000, 3_000, AttemptOutcome::Success));
        o.record(&report(0, 0, 9_000, 10_000, AttemptOutcome::Success));
        assert_eq!(o.ttft_ms(DeploymentId(0), Instant::from_millis(10_000), 0), Some(2_000.0));
        assert_eq!(o.output_tokens_per_s(DeploymentId(0), Instant::from_millis(10_000), 0), Some(100.0));
        assert_eq!(o.ttft_ms(DeploymentId(1), Instant::from_millis(10_000), 0), None);
        // Six minutes later every sample has left the 5-minute window.
        assert_eq!(o.ttft_ms(DeploymentId(0), Instant::from_millis(370_000), 0), None);

        o.record(&report(1, 0, 0, 1_000, AttemptOutcome::Failed(FailureKind::RateLimited)));
        o.record(&report(1, 0, 0, 20_000, AttemptOutcome::Failed(FailureKind::RateLimited)));
        assert_eq!(o.recent_failures(DeploymentId(1), Instant::from_millis(25_000)), (2, 2));
        // At 40 s the failure at 1 s is older than 30 s; the one at 20 s is not.
        assert_eq!(o.recent_failures(DeploymentId(1), Instant::from_millis(40_000)), (1, 1));
        // Without a rates window no rates are kept.
        assert_eq!(o.rates(DeploymentId(1), Instant::from_millis(25_000)), Rates::default());
    }
}
