//! `single`, `fallback` and `batch`: the baseline policies. An ordered chain of deployments
//! with the SDK's retry loop (exponential backoff with jitter honouring `retry-after`), and
//! the batch API as a destination.

use super::{Backoff, Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;

/// An ordered chain of deployments. On any failure it moves on to the next deployment at
/// once; when the chain is exhausted it backs off (exponentially, with jitter) and starts a
/// new round from the first deployment that is available. It never retries a deployment
/// before that deployment's `retry-after`, skips deployments that can never serve the request,
/// and gives up after `max_attempts` attempts in total.
///
/// `single` is a chain of one: the SDK's own retry loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Fallback {
    pub chain: Vec<DeploymentId>,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub options: AttemptOptions,
}

impl Fallback {
    fn attempt(&self, deployment: DeploymentId) -> Decision {
        Decision::attempt(deployment, self.options)
    }
}

impl Policy for Fallback {
    fn route(
        &mut self,
        now: Instant,
        _request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts() >= self.max_attempts {
            return Decision::GiveUp;
        }
        let usable = |d: &DeploymentId| !history.memo(*d).never;
        let Some(earliest_usable) =
            self.chain.iter().filter(|d| usable(d)).map(|d| history.memo(*d).not_before).min()
        else {
            return Decision::GiveUp;
        };
        let start_of_round = history.attempts() == 0 || history.resumed_after_wait();
        let next_position = match (history.last(), start_of_round) {
            (Some(last), false) => self.chain.iter().position(|d| *d == last.deployment).map_or(0, |p| p + 1),
            _ => 0,
        };
        if let Some(d) =
            self.chain[next_position.min(self.chain.len())..].iter().find(|d| history.available(**d, now))
        {
            return self.attempt(*d);
        }
        let until = if start_of_round {
            // Woke up but everything is still behind its retry-after: wait for the first one.
            earliest_usable
        } else {
            (now + self.backoff.delay(history.waits(), rng)).max(earliest_usable)
        };
        Decision::Wait { until: until.max(now + Duration::from_micros(1)) }
    }
}

/// Sends every request to one deployment's batch API; retries with backoff if the batch
/// queue is full; gives up when the deployment has no batch API.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOnly {
    pub deployment: DeploymentId,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Policy for BatchOnly {
    fn route(
        &mut self,
        now: Instant,
        _request: &Request,
        history: &mut History,
        rng: &mut SplitMix64,
    ) -> Decision {
        if history.attempts() >= self.max_attempts || history.memo(self.deployment).never {
            return Decision::GiveUp;
        }
        if history.attempts() == 0 || history.resumed_after_wait() {
            return Decision::attempt(
                self.deployment,
                AttemptOptions { batch: true, ..AttemptOptions::default() },
            );
        }
        Decision::Wait { until: now + self.backoff.delay(history.waits(), rng).max(Duration::from_micros(1)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AttemptOutcome, AttemptReport};
    use crate::provider::FailureKind;
    use crate::trace::ClassId;

    fn request() -> Request {
        Request {
            id: 1,
            arrival: Instant::ZERO,
            class: ClassId::INTERACTIVE,
            input_tokens: 100,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 10,
            max_tokens: 10,
            session: None,
            parent: None,
            think: Duration::ZERO,
            deadline: None,
            line: 2,
        }
    }

    fn failed(
        d: u16,
        attempt: u32,
        at_ms: u64,
        kind: FailureKind,
        retry_after: Option<Duration>,
    ) -> AttemptReport {
        AttemptReport {
            request_id: 1,
            class: ClassId::INTERACTIVE,
            attempt,
            deployment: DeploymentId(d),
            started_at: Instant::from_millis(at_ms),
            ended_at: Instant::from_millis(at_ms),
            first_token_at: None,
            outcome: AttemptOutcome::Failed(kind),
            retry_after,
            output_tokens: 0,
            remaining: None,
        }
    }

    fn chain(ids: &[u16], max_attempts: u32) -> Fallback {
        Fallback {
            chain: ids.iter().map(|i| DeploymentId(*i)).collect(),
            max_attempts,
            backoff: Backoff { jitter: 0.0, ..Backoff::default() },
            options: AttemptOptions::default(),
        }
    }

    /// Plays the caller's part: attempts started so far become `n`.
    fn started_until(h: &mut History, n: u32) {
        while h.attempts() < n {
            h.started_attempt();
        }
    }

    fn target(d: Decision) -> Option<u16> {
        match d {
            Decision::Attempt { deployment, .. } => Some(deployment.0),
            _ => None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff { jitter: 0.0, ..Backoff::default() };
        let mut rng = SplitMix64::new(1);
        let delays: Vec<u64> = (0..7).map(|n| b.delay(n, &mut rng).as_micros() / 1000).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 8000, 8000, 8000]);
        let jittered = Backoff::default();
        for n in 0..200 {
            let d = jittered.delay(3, &mut SplitMix64::new(n)).as_millis_f64();
            assert!((3000.0..=4000.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn fallback_walks_the_chain_then_backs_off_honouring_retry_after() {
        let mut p = chain(&[0, 1], 10);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        let now = Instant::ZERO;
        assert_eq!(target(p.route(now, &r, &mut h, &mut rng)), Some(0));
        started_until(&mut h, 1);
        h.record(failed(0, 1, 0, FailureKind::RateLimited, Some(Duration::from_secs(3))));
        // Deployment 1 has not refused: move on at once.
        assert_eq!(target(p.route(now, &r, &mut h, &mut rng)), Some(1));
        started_until(&mut h, 2);
        h.record(failed(1, 2, 0, FailureKind::Overloaded, None));
        // Chain exhausted: back off 500 ms; deployment 1 is free by then, so no need to wait 3 s.
        assert_eq!(p.route(now, &r, &mut h, &mut rng), Decision::Wait { until: Instant::from_millis(500) });
        h.waited();
        // New round at 500 ms: deployment 0 is behind its retry-after (3 s), deployment 1 is free.
        assert_eq!(target(p.route(Instant::from_millis(500), &r, &mut h, &mut rng)), Some(1));
    }

    #[test]
    fn single_waits_out_retry_after_longer_than_backoff_and_respects_max_attempts() {
        let mut p = chain(&[0], 3);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        started_until(&mut h, 1);
        h.record(failed(0, 1, 0, FailureKind::RateLimited, Some(Duration::from_secs(2))));
        assert_eq!(
            p.route(Instant::ZERO, &r, &mut h, &mut rng),
            Decision::Wait { until: Instant::from_millis(2000) }
        );
        h.waited();
        assert_eq!(target(p.route(Instant::from_millis(2000), &r, &mut h, &mut rng)), Some(0));
        started_until(&mut h, 3);
        assert_eq!(p.route(Instant::from_millis(2000), &r, &mut h, &mut rng), Decision::GiveUp);
    }

    #[test]
    fn a_deployment_that_can_never_serve_is_skipped_and_all_never_gives_up() {
        let mut p = chain(&[0, 1], 10);
        let mut h = History::default();
        let r = request();
        let mut rng = SplitMix64::new(3);
        started_until(&mut h, 1);
        h.record(failed(0, 1, 0, FailureKind::ExceedsLimit, None));
        assert_eq!(target(p.route(Instant::ZERO, &r, &mut h, &mut rng)), Some(1));
        started_until(&mut h, 2);
        h.record(failed(1, 2, 0, FailureKind::ServerError, None));
        let wait = p.route(Instant::ZERO, &r, &mut h, &mut rng);
        h.waited();
        let Decision::Wait { until } = wait else { panic!("expected a wait, got {wait:?}") };
        // After the wait the next round skips deployment 0 for good.
        assert_eq!(target(p.route(until, &r, &mut h, &mut rng)), Some(1));
        started_until(&mut h, 3);
        h.record(failed(1, 3, 600, FailureKind::ExceedsLimit, None));
        assert_eq!(p.route(until, &r, &mut h, &mut rng), Decision::GiveUp);
    }
}
