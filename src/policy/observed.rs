//! What a router has observed of each deployment: time to first token, output speed and
//! failures over rolling windows. Routers judge latency and stability on their own
//! observations (OpenRouter: p50 over 5 minutes; failures in the last 30 s), never on the
//! provider model's hidden parameters.
//!
//! Percentiles are read at most once per `refresh` of virtual time per deployment (a real
//! router refreshes its statistics periodically too); the samples' ranks are kept up to date
//! as they arrive and expire ([`SampleWindow`]), so a refresh copies nothing.

use super::window::SampleWindow;
use super::{AttemptOutcome, AttemptReport};
use crate::provider::DeploymentId;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
struct DeploymentWindow {
    samples: SampleWindow,
    /// (when, failed) of every finished attempt within the failure window.
    outcomes: VecDeque<(Instant, bool)>,
    failures_in_window: usize,
    cached_at: Option<Instant>,
    cached_ttft_ms: Option<f64>,
    cached_speed: Option<f64>,
}

/// Rolling per-deployment observations.
#[derive(Clone, Debug)]
pub struct Observed {
    deployments: Vec<DeploymentWindow>,
    /// Window of latency and throughput samples (OpenRouter: 5 minutes).
    pub latency_window: Duration,
    /// Window of failures (OpenRouter: 30 seconds).
    pub failure_window: Duration,
    /// The percentile latency is judged on (0.5 = p50).
    pub latency_quantile: f64,
    /// The percentile of output speed reported (0.5 = p50; 0.1 = the speed 90% of answers reach).
    pub speed_quantile: f64,
    /// How stale a cached percentile may be.
    pub refresh: Duration,
}

impl Observed {
    pub fn new(
        deployments: usize,
        latency_window: Duration,
        failure_window: Duration,
        latency_quantile: f64,
        speed_quantile: f64,
    ) -> Self {
        Observed {
            deployments: vec![DeploymentWindow::default(); deployments],
            latency_window,
            failure_window,
            latency_quantile,
            speed_quantile,
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

    /// Records a finished attempt. Hedge losers (cancelled) count neither as failures nor as
    /// latency samples.
    pub fn record(&mut self, report: &AttemptReport) {
        let now = report.ended_at;
        let failed = match report.outcome {
            AttemptOutcome::Success => false,
            AttemptOutcome::Batched => return,
            AttemptOutcome::Failed(kind) => {
                if kind == crate::provider::FailureKind::Cancelled {
                    return;
                }
                true
            }
        };
        let w = self.window(report.deployment);
        w.outcomes.push_back((now, failed));
        w.failures_in_window += usize::from(failed);
        if let Some(first) = report.first_token_at.filter(|_| !failed) {
            let ttft_ms = first.saturating_since(report.started_at).as_millis_f64();
            let decode_s = now.saturating_since(first).as_secs_f64();
            let speed =
                (decode_s > 0.0 && report.output_tokens > 0).then(|| report.output_tokens as f64 / decode_s);
            w.samples.push(now, ttft_ms, speed);
        }
    }

    fn evict(&mut self, d: DeploymentId, now: Instant) {
        let (latency_window, failure_window) = (self.latency_window, self.failure_window);
        let w = self.window(d);
        w.samples.evict(now, latency_window);
        while let Some(&(at, failed)) = w.outcomes.front() {
            if now.saturating_since(at) <= failure_window {
                break;
            }
            w.outcomes.pop_front();
            w.failures_in_window -= usize::from(failed);
        }
    }

    /// Failures and attempts observed at `d` within the failure window.
    pub fn recent_failures(&mut self, d: DeploymentId, now: Instant) -> (usize, usize) {
        self.evict(d, now);
        let w = self.window(d);
        (w.failures_in_window, w.outcomes.len())
    }

    fn refresh_cache(&mut self, d: DeploymentId, now: Instant) {
        let refresh = self.refresh;
        let (latency_quantile, speed_quantile) = (self.latency_quantile, self.speed_quantile);
        if self.window(d).cached_at.is_some_and(|at| now.saturating_since(at) < refresh) {
            return;
        }
        self.evict(d, now);
        let w = self.window(d);
        w.cached_ttft_ms = w.samples.ttft_quantile_ms(latency_quantile);
        w.cached_speed = w.samples.speed_quantile(speed_quantile);
        w.cached_at = Some(now);
    }

    /// Observed time to first token at the configured quantile, if there are samples.
    pub fn ttft_ms(&mut self, d: DeploymentId, now: Instant) -> Option<f64> {
        self.refresh_cache(d, now);
        self.window(d).cached_ttft_ms
    }

    /// Observed output speed (tokens/s) at `speed_quantile`, if there are samples.
    pub fn output_tokens_per_s(&mut self, d: DeploymentId, now: Instant) -> Option<f64> {
        self.refresh_cache(d, now);
        self.window(d).cached_speed
    }

    /// Observed TTFT at an arbitrary quantile (not cached).
    pub fn ttft_quantile_ms(&mut self, d: DeploymentId, now: Instant, quantile: f64) -> Option<f64> {
        self.evict(d, now);
        self.window(d).samples.ttft_quantile_ms(quantile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::FailureKind;
    use crate::trace::ClassId;

    fn report(d: u16, start_ms: u64, ttft_ms: u64, end_ms: u64, failed: bool) -> AttemptReport {
        AttemptReport {
            request_id: 1,
            class: ClassId::HARD,
            attempt: 1,
            deployment: DeploymentId(d),
            started_at: Instant::from_millis(start_ms),
            ended_at: Instant::from_millis(end_ms),
            first_token_at: (!failed).then(|| Instant::from_millis(start_ms + ttft_ms)),
            outcome: if failed {
                AttemptOutcome::Failed(FailureKind::RateLimited)
            } else {
                AttemptOutcome::Success
            },
            retry_after: None,
            output_tokens: if failed { 0 } else { 100 },
            remaining: None,
        }
    }

    #[test]
    fn latency_is_judged_over_the_rolling_window_and_failures_over_30_s() {
        let mut o = Observed::new(2, Duration::from_mins(5), Duration::from_secs(30), 0.5, 0.5);
        // Three answers: TTFT 1 s, 2 s, 9 s; 100 tokens decoded in 1 s each.
        o.record(&report(0, 0, 1_000, 2_000, false));
        o.record(&report(0, 0, 2_000, 3_000, false));
        o.record(&report(0, 0, 9_000, 10_000, false));
        assert_eq!(o.ttft_ms(DeploymentId(0), Instant::from_millis(10_000)), Some(2_000.0));
        assert_eq!(o.output_tokens_per_s(DeploymentId(0), Instant::from_millis(10_000)), Some(100.0));
        assert_eq!(o.ttft_ms(DeploymentId(1), Instant::from_millis(10_000)), None);
        // Six minutes later every sample has left the 5-minute window.
        assert_eq!(o.ttft_ms(DeploymentId(0), Instant::from_millis(370_000)), None);

        o.record(&report(1, 0, 0, 1_000, true));
        o.record(&report(1, 0, 0, 20_000, true));
        assert_eq!(o.recent_failures(DeploymentId(1), Instant::from_millis(25_000)), (2, 2));
        // At 40 s the failure at 1 s is older than 30 s; the one at 20 s is not.
        assert_eq!(o.recent_failures(DeploymentId(1), Instant::from_millis(40_000)), (1, 1));
    }
}
