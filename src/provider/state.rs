//! One deployment during one simulation: its server-side limiter, incident timeline and batch
//! queue ([`DeploymentState`]), and the fate of one attempt decided when it starts
//! ([`AttemptPlan`], [`PlannedOutcome`], [`FailureKind`]).
//!
//! It must not know about routing or the event loop: the engine asks what happens to an
//! attempt started now and tells it when the attempt ends.

use super::fleet::Gate;
use super::incidents::IncidentTimeline;
use super::{Deployment, Usage};
use crate::limiter::{Axis, Consumed, Demand, Permit, Retry};
use crate::rng::{DrawKey, Purpose, SplitMix64};
use crate::time::{Duration, Instant};
use crate::trace::Request;
use serde::Serialize;
use smallvec::SmallVec;

/// How an attempt is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttemptOptions {
    /// Cancel the attempt if it has not finished this long after it started.
    pub timeout: Option<Duration>,
    /// Cancel the attempt if no first token arrived this long after it started.
    pub first_token_timeout: Option<Duration>,
    /// Submit to the async batch API instead of the synchronous one.
    pub batch: bool,
}

/// Why an attempt did not produce an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 429: a limit refused the attempt.
    RateLimited,
    /// The request can never pass a limit (larger than a bucket): retrying is pointless.
    ExceedsLimit,
    /// 500-class server error.
    ServerError,
    /// 529 overloaded.
    Overloaded,
    /// The attempt ran past its total timeout and was cancelled.
    Timeout,
    /// No first token within the first-token timeout; cancelled.
    SlowFirstToken,
    /// The batch queue was full.
    BatchQueueFull,
    /// The batch result did not arrive within the batch window; expired unbilled.
    BatchExpired,
    /// The deployment has no batch API.
    BatchUnsupported,
    /// Cancelled by the client because another attempt of the same request answered first
    /// (hedging); billed for what it consumed.
    Cancelled,
    /// The stream broke after the first token; billed for what streamed.
    MidStream,
    /// 429 from a quota that clears only when its period ends (a monthly spend cap:
    /// Anthropic's `enforced_spend_limit_reached`): no `retry-after`, not retryable.
    QuotaExhausted,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate_limited",
            FailureKind::ExceedsLimit => "exceeds_limit",
            FailureKind::ServerError => "server_error",
            FailureKind::Overloaded => "overloaded",
            FailureKind::Timeout => "timeout",
            FailureKind::SlowFirstToken => "slow_first_token",
            FailureKind::BatchQueueFull => "batch_queue_full",
            FailureKind::BatchExpired => "batch_expired",
            FailureKind::BatchUnsupported => "batch_unsupported",
            FailureKind::Cancelled => "cancelled",
            FailureKind::MidStream => "mid_stream",
            FailureKind::QuotaExhausted => "quota_exhausted",
        }
    }

    /// Whether the failure is a rate limit (counts toward the 429 rates).
    pub fn is_rate_limit(self) -> bool {
        matches!(self, FailureKind::RateLimited | FailureKind::ExceedsLimit | FailureKind::QuotaExhausted)
    }

    /// Whether retrying the same deployment cannot help within the call: the request exceeds
    /// a limit's capacity, or a quota will not clear before its period ends.
    pub fn never_passes_here(self) -> bool {
        matches!(self, FailureKind::ExceedsLimit | FailureKind::QuotaExhausted)
    }
}

/// The fate of one attempt, decided when it starts (all randomness is drawn up front).
#[derive(Debug, PartialEq)]
pub struct AttemptPlan {
    /// When the attempt's outcome is known to the client.
    pub ends_at: Instant,
    /// When the first token arrived, if it did.
    pub first_token_at: Option<Instant>,
    pub outcome: PlannedOutcome,
    /// Output tokens produced (and billed) by the time the attempt ended.
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Server-side admission, returned to [`super::Fleet::finish`] when the attempt ends.
    pub permit: Option<Admission>,
    /// Decode speed drawn for this attempt (tokens/s), to bill a cancellation honestly.
    pub output_tokens_per_s: f64,
    /// Prompt tokens this batch submission holds in the batch queue until it ends (0 for a
    /// synchronous attempt or a refused submission).
    pub batch_queued_tokens: u64,
}

impl AttemptPlan {
    /// A failure answered without output and billed nothing: a 429 or a refused batch
    /// submission (`permit` is `None`), or a 5xx/529 after admission (`permit` is the admission).
    pub fn failure(
        kind: FailureKind,
        ends_at: Instant,
        axis: Option<Axis>,
        retry_after: Option<Duration>,
        permit: Option<Admission>,
    ) -> AttemptPlan {
        AttemptPlan {
            ends_at,
            first_token_at: None,
            outcome: PlannedOutcome::Failed { kind, axis, retry_after },
            output_tokens: 0,
            cost_usd: 0.0,
            permit,
            output_tokens_per_s: 0.0,
            batch_queued_tokens: 0,
        }
    }

    /// An admitted attempt cut off by a client timeout (`kind` is [`FailureKind::Timeout`] or
    /// [`FailureKind::SlowFirstToken`]), billed for the `output_tokens` streamed before `ends_at`.
    pub fn cut_off(
        kind: FailureKind,
        ends_at: Instant,
        first_token_at: Option<Instant>,
        output_tokens: u64,
        cost_usd: f64,
        permit: Admission,
        output_tokens_per_s: f64,
    ) -> AttemptPlan {
        AttemptPlan {
            ends_at,
            first_token_at,
            outcome: PlannedOutcome::Failed { kind, axis: None, retry_after: None },
            output_tokens,
            cost_usd,
            permit: Some(permit),
            output_tokens_per_s,
            batch_queued_tokens: 0,
        }
    }

    /// A synchronous answer: first token at `first_token_at`, the whole output by `ends_at`.
    pub fn success(
        ends_at: Instant,
        first_token_at: Instant,
        output_tokens: u64,
        cost_usd: f64,
        permit: Admission,
        output_tokens_per_s: f64,
    ) -> AttemptPlan {
        AttemptPlan {
            ends_at,
            first_token_at: Some(first_token_at),
            outcome: PlannedOutcome::Success,
            output_tokens,
            cost_usd,
            permit: Some(permit),
            output_tokens_per_s,
            batch_queued_tokens: 0,
        }
    }

    /// Accepted by the batch API; the result (`output_tokens`, billed `cost_usd`) arrives at
    /// `ends_at`.
    pub fn batched(ends_at: Instant, output_tokens: u64, cost_usd: f64) -> AttemptPlan {
        AttemptPlan {
            ends_at,
            first_token_at: None,
            outcome: PlannedOutcome::Batched,
            output_tokens,
            cost_usd,
            permit: None,
            output_tokens_per_s: 0.0,
            batch_queued_tokens: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlannedOutcome {
    Success,
    /// Accepted by the batch API; the result arrives at `ends_at`.
    Batched,
    Failed {
        kind: FailureKind,
        /// For rate limits: the limit that refused.
        axis: Option<Axis>,
        /// The `retry-after` the provider sent, if any.
        retry_after: Option<Duration>,
    },
}

/// Server-side admission of one attempt: a permit from every limiter the deployment answers
/// to (its own first, then its pools'), settled together when the attempt ends.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an admission must be settled, or its reservations and concurrency slots leak"]
pub struct Admission {
    pub(super) permits: SmallVec<[Permit; 2]>,
}

/// One deployment during one simulation: its incident timeline and batch queue. Its limiters
/// live in the [`super::Fleet`], because pools are shared between deployments.
#[derive(Debug)]
pub struct DeploymentState {
    incidents: IncidentTimeline,
    batch_queued: u64,
    /// Prompt tokens of the submissions in the batch queue (OpenAI counts its queue in them).
    batch_queued_tokens: u64,
}

impl DeploymentState {
    pub fn new(deployment: &Deployment, seed: u64) -> DeploymentState {
        DeploymentState {
            incidents: IncidentTimeline::new(deployment, seed),
            batch_queued: 0,
            batch_queued_tokens: 0,
        }
    }

    /// Requests waiting in the batch queue.
    pub fn batch_queued(&self) -> u64 {
        self.batch_queued
    }

    /// Starts attempt number `attempt` of `request` at `now` and decides its fate; `gate` is
    /// the deployment's limiters.
    #[allow(clippy::too_many_arguments)]
    pub fn start_attempt(
        &mut self,
        gate: &mut Gate<'_>,
        deployment: &Deployment,
        seed: u64,
        request: &Request,
        attempt: u32,
        now: Instant,
        options: AttemptOptions,
    ) -> AttemptPlan {
        let key = |purpose| DrawKey {
            seed,
            request: request.id,
            attempt,
            deployment: deployment.name_hash,
            purpose,
        };
        if options.batch {
            return self.submit_batch(gate, deployment, request, now, key(Purpose::BatchCompletion).rng());
        }

        let demand = Demand {
            input_tokens: deployment.counted_input_tokens(request),
            output_reserve_tokens: request.max_tokens,
        };
        if let Err(refusal) = gate.check(now, demand) {
            let (kind, retry_after) = match refusal.retry {
                Retry::Never => (FailureKind::ExceedsLimit, None),
                Retry::At(at) => (
                    FailureKind::RateLimited,
                    Some(round_up(at.saturating_since(now), deployment.retry_after_granularity)),
                ),
                Retry::WhenSlotFrees => (FailureKind::RateLimited, None),
                Retry::PeriodEnd(_) => (FailureKind::QuotaExhausted, None),
            };
            return AttemptPlan::failure(
                kind,
                now + deployment.rate_limit_response,
                Some(refusal.axis),
                retry_after,
                None,
            );
        }

        let effect = self.incidents.effect_at(deployment, now).cloned();
        let (server_error_rate, overloaded_rate, ttft_multiplier, speed_multiplier) = match &effect {
            None => (deployment.server_error_rate, deployment.overloaded_rate, 1.0, 1.0),
            Some(e) => (
                e.server_error_rate.unwrap_or(deployment.server_error_rate),
                e.overloaded_rate.unwrap_or(deployment.overloaded_rate),
                e.ttft_multiplier,
                e.speed_multiplier,
            ),
        };

        // One uniform decides the error class so that raising one rate never reshuffles which
        // attempts hit the other (common random numbers across scenarios).
        let u = key(Purpose::Error).rng().next_open01();
        let error = if u < overloaded_rate {
            Some(FailureKind::Overloaded)
        } else if u < overloaded_rate + server_error_rate {
            Some(FailureKind::ServerError)
        } else if u < overloaded_rate + server_error_rate + deployment.rate_limited_rate {
            Some(FailureKind::RateLimited)
        } else {
            None
        };
        if let Some(kind) = error {
            let retry_after =
                if kind == FailureKind::RateLimited { deployment.rate_limited_retry_after } else { None };
            let response = Duration::from_millis_f64(
                deployment.error_response_ms.sample(&mut key(Purpose::ErrorLatency).rng()),
            );
            // A 529 (the provider's overload, API-wide) and an injected 429 turn the request
            // away before any work: they consume no quota and hold no slot. A 500 failed while
            // being served: it keeps its admission.
            let permit = (kind == FailureKind::ServerError).then(|| gate.admit_checked(now, demand));
            return AttemptPlan::failure(
                kind,
                now + response.max(Duration::from_micros(1)),
                None,
                retry_after,
                permit,
            );
        }
        let permit = gate.admit_checked(now, demand);

        let prefill_ms =
            deployment.ttft_ms_per_1k_uncached_input * request.uncached_input_tokens() as f64 / 1000.0;
        let ttft_ms =
            (deployment.ttft_ms.sample(&mut key(Purpose::FirstToken).rng()) + prefill_ms) * ttft_multiplier;
        // A speed of zero would mean an endless answer; one token per second is the floor.
        let speed = (deployment.output_tokens_per_s.sample(&mut key(Purpose::OutputSpeed).rng())
            * speed_multiplier)
            .max(1.0);
        let ttft = Duration::from_millis_f64(ttft_ms).max(Duration::from_micros(1));
        let decode = Duration::from_secs_f64(request.output_tokens as f64 / speed);
        let first_token_at = now + ttft;
        let done_at = first_token_at + decode;

        if let Some(limit) = options.first_token_timeout {
            if ttft > limit {
                // Cancelled before any output: the provider still read the prompt, so it bills
                // the input (honest accounting of cancelled work).
                let cost = deployment.prices.cost_usd(&Usage::of(request, 0), false);
                return AttemptPlan::cut_off(
                    FailureKind::SlowFirstToken,
                    now + limit,
                    None,
                    0,
                    cost,
                    permit,
                    speed,
                );
            }
        }
        // A stream that breaks does so at a uniform point of the output, with its own draws (so
        // a rate of zero changes no other draw).
        let broken_at = (deployment.mid_stream_error_rate > 0.0)
            .then(|| {
                let mut rng = key(Purpose::MidStream).rng();
                (rng.next_open01() < deployment.mid_stream_error_rate).then(|| rng.next_open01())
            })
            .flatten()
            .map(|at| first_token_at + Duration::from_secs_f64(decode.as_secs_f64() * at));
        if let Some(limit) = options.timeout {
            let deadline = now + limit;
            if done_at > deadline && broken_at.is_none_or(|at| at > deadline) {
                let (first_token_at, produced) = if first_token_at < deadline {
                    let streamed = deadline.saturating_since(first_token_at).as_secs_f64() * speed;
                    (Some(first_token_at), (streamed.floor() as u64).min(request.output_tokens))
                } else {
                    (None, 0)
                };
                let cost = deployment.prices.cost_usd(&Usage::of(request, produced), false);
                return AttemptPlan::cut_off(
                    FailureKind::Timeout,
                    deadline,
                    first_token_at,
                    produced,
                    cost,
                    permit,
                    speed,
                );
            }
        }

        if let Some(at) = broken_at {
            let streamed = at.saturating_since(first_token_at).as_secs_f64() * speed;
            let produced = (streamed.floor() as u64).min(request.output_tokens);
            let cost = deployment.prices.cost_usd(&Usage::of(request, produced), false);
            return AttemptPlan::cut_off(
                FailureKind::MidStream,
                at.max(first_token_at + Duration::from_micros(1)),
                Some(first_token_at),
                produced,
                cost,
                permit,
                speed,
            );
        }

        AttemptPlan::success(
            done_at,
            first_token_at,
            request.output_tokens,
            deployment.prices.cost_usd(&Usage::of(request, request.output_tokens), false),
            permit,
            speed,
        )
    }

    fn submit_batch(
        &mut self,
        gate: &Gate<'_>,
        deployment: &Deployment,
        request: &Request,
        now: Instant,
        mut rng: SplitMix64,
    ) -> AttemptPlan {
        let failed =
            |kind| AttemptPlan::failure(kind, now + deployment.rate_limit_response, None, None, None);
        let Some(batch) = &deployment.batch else {
            return failed(FailureKind::BatchUnsupported);
        };
        // Spend caps count batch usage like any other (the per-minute limits do not): a cap
        // reached refuses the submission until its period ends.
        if let Err(refusal) = gate.check_spend(now) {
            return AttemptPlan::failure(
                FailureKind::QuotaExhausted,
                now + deployment.rate_limit_response,
                Some(refusal.axis),
                None,
                None,
            );
        }
        let queued_tokens = request.input_tokens;
        let tokens_full = batch
            .max_queue_tokens
            .is_some_and(|max| self.batch_queued_tokens.saturating_add(queued_tokens) > max);
        if self.batch_queued >= batch.max_queue || tokens_full {
            return failed(FailureKind::BatchQueueFull);
        }
        self.batch_queued += 1;
        self.batch_queued_tokens += queued_tokens;
        let completion =
            Duration::from_millis_f64(batch.completion_ms.sample(&mut rng)).max(Duration::from_micros(1));
        if completion > batch.max_completion {
            // Unprocessed requests expire unbilled when the window closes.
            let expired =
                AttemptPlan::failure(FailureKind::BatchExpired, now + batch.max_completion, None, None, None);
            return AttemptPlan { batch_queued_tokens: queued_tokens, ..expired };
        }
        let batched = AttemptPlan::batched(
            now + completion,
            request.output_tokens,
            deployment.prices.cost_usd(&Usage::of(request, request.output_tokens), true),
        );
        AttemptPlan { batch_queued_tokens: queued_tokens, ..batched }
    }

    /// Cancels an in-flight attempt at `now` (the client hung up: another attempt won). The
    /// provider bills the prompt if it was admitted and the output streamed so far, and the
    /// limiter is settled to that output. Returns (output tokens billed, cost).
    pub fn cancel(
        &mut self,
        gate: &mut Gate<'_>,
        deployment: &Deployment,
        request: &Request,
        plan: AttemptPlan,
        now: Instant,
    ) -> (u64, f64) {
        let AttemptPlan { first_token_at, outcome, permit, output_tokens_per_s, .. } = plan;
        let admitted = permit.is_some()
            && !matches!(
                outcome,
                PlannedOutcome::Failed { kind: FailureKind::ServerError | FailureKind::Overloaded, .. }
            );
        let streamed = match first_token_at {
            Some(first) if first < now => {
                let tokens = (now.saturating_since(first).as_secs_f64() * output_tokens_per_s).floor() as u64;
                tokens.min(request.output_tokens)
            }
            _ => 0,
        };
        let output = if admitted { streamed } else { 0 };
        let cost =
            if admitted { deployment.prices.cost_usd(&Usage::of(request, output), false) } else { 0.0 };
        if let Some(permit) = permit {
            gate.settle(now, permit, Consumed::new(output, cost));
        }
        (output, cost)
    }

    /// Ends an attempt planned by [`Self::start_attempt`]: settles the server-side limiters to
    /// what the attempt consumed and frees the batch slot.
    pub fn finish(
        &mut self,
        gate: &mut Gate<'_>,
        now: Instant,
        plan_outcome: PlannedOutcome,
        permit: Option<Admission>,
        consumed: Consumed,
        batch_queued_tokens: Option<u64>,
    ) {
        if let Some(permit) = permit {
            gate.settle(now, permit, consumed);
        }
        if let Some(tokens) = batch_queued_tokens {
            // A submission refused at the door never entered the queue.
            let refused = matches!(
                plan_outcome,
                PlannedOutcome::Failed {
                    kind: FailureKind::BatchQueueFull
                        | FailureKind::BatchUnsupported
                        | FailureKind::QuotaExhausted,
                    ..
                }
            );
            if !refused {
                self.batch_queued = self.batch_queued.saturating_sub(1);
                self.batch_queued_tokens = self.batch_queued_tokens.saturating_sub(tokens);
                // The batch's bill reaches the spend caps when its results do (expired: $0).
                gate.debit_spend(now, consumed.spend_micro_usd);
            }
        }
    }
}

fn round_up(d: Duration, granularity: Duration) -> Duration {
    let g = granularity.as_micros().max(1);
    Duration::from_micros(d.as_micros().div_ceil(g).saturating_mul(g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::tests::{config, request};
    use crate::provider::Fleet;

    #[test]
    fn ttft_grows_with_uncached_input_and_429_carries_rounded_retry_after() {
        let d = Deployment::from_config("p/m", &config("limits = { rpm = 60, burst = \"1s\" }")).unwrap();
        let mut fleet = Fleet::new(std::slice::from_ref(&d), 1).unwrap();
        // 1 s base + 100 ms per 1k uncached tokens × 20k uncached = 3 s; 100 tokens at 50/s = 2 s.
        let r = request(100_000, 80_000, 0, 100);
        let plan = fleet.start_attempt(&d, 0, 1, &r, 1, Instant::ZERO, AttemptOptions::default());
        assert_eq!(plan.first_token_at, Some(Instant::from_millis(3_000)));
        assert_eq!(plan.ends_at, Instant::from_millis(5_000));
        assert_eq!(plan.outcome, PlannedOutcome::Success);
        // The bucket (1 request per second) is empty: 429 after the 150 ms round trip, and the
        // limiter's 300 ms wait is sent as a whole second, as Anthropic's header does.
        let refused =
            fleet.start_attempt(&d, 0, 1, &r, 1, Instant::from_millis(700), AttemptOptions::default());
        assert_eq!(refused.ends_at, Instant::from_millis(850));
        assert_eq!(
            refused.outcome,
            PlannedOutcome::Failed {
                kind: FailureKind::RateLimited,
                axis: Some(Axis::REQUESTS),
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(refused.cost_usd, 0.0);
        fleet.finish(0, plan.ends_at, plan.outcome, plan.permit, plan.output_tokens, plan.cost_usd, None);
        assert_eq!(fleet.in_flight(0), 0);
    }
}
