//! The real, sans-IO rate limiter.
//!
//! Owns token buckets with continuous refill ([`TokenBucket`]), the multi-axis limiter
//! ([`MultiLimiter`]: RPM, ITPM, OTPM, combined TPM and concurrency) that says *which axis*
//! refused and *when to come back*, the acceleration (ramp) limit ([`AccelerationLimit`]), and
//! the OTPM/TPM reservation at admission ([`Permit`]) with settlement at completion.
//!
//! Every call takes `now` ([`Instant`], integer microseconds) as an argument: nothing here reads
//! a clock, sleeps or spawns. The simulator passes virtual time, the provider model builds its
//! server-side enforcement from these types, routing policies use them client-side, and a live
//! gateway passes wall time converted to an [`Instant`]. A `now` earlier than one seen before (a
//! clock step backwards) is tolerated: it refills nothing and never panics.
//!
//! It must not know about providers or policies.
//!
//! Bucket arithmetic is exact: a level is kept in *scaled units*, 60 000 000 per token (the
//! microseconds in a minute), so refilling `limit_per_min` tokens per minute over `elapsed_us`
//! adds exactly `limit_per_min × elapsed_us` scaled units with no rounding, and a retry instant is
//! the exact first microsecond at which a request passes.

use crate::time::{Duration, Instant, MICROS_PER_MIN};
use std::fmt;

/// Scaled units per token: one token is worth one minute of microseconds, so a rate in tokens per
/// minute times an elapsed time in microseconds is directly a number of scaled units.
const SCALED_PER_TOKEN: i128 = MICROS_PER_MIN as i128;

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// Requests per minute (RPM).
    Requests,
    /// Input tokens per minute (ITPM).
    InputTokens,
    /// Output tokens per minute (OTPM), reserved from `max_tokens` at admission.
    OutputTokens,
    /// Combined input + output tokens per minute (TPM, OpenAI style).
    Tokens,
    /// Requests in flight at once.
    Concurrency,
    /// The acceleration (ramp) limit on sharp increases of usage.
    Acceleration,
}

impl Axis {
    /// The short name used in headers, logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Requests => "rpm",
            Axis::InputTokens => "itpm",
            Axis::OutputTokens => "otpm",
            Axis::Tokens => "tpm",
            Axis::Concurrency => "concurrency",
            Axis::Acceleration => "acceleration",
        }
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a refused request could pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Earliest instant at which the same request passes if nothing else changes.
    At(Instant),
    /// Never: the request is larger than the bucket's capacity. Must not be retried.
    Never,
    /// Only after an in-flight request completes (concurrency limit); no time is known.
    WhenSlotFrees,
}

impl Retry {
    /// The instant to come back at, if one is known.
    pub fn instant(self) -> Option<Instant> {
        match self {
            Retry::At(at) => Some(at),
            Retry::Never | Retry::WhenSlotFrees => None,
        }
    }
}

/// Why a request was refused: the axis that refused and when it could pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub axis: Axis,
    pub retry: Retry,
}

impl Refusal {
    /// The wait from `now` until the retry instant (a `retry-after` header), if one is known.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.retry.instant().map(|at| at.saturating_since(now))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry {
            Retry::At(at) => write!(f, "{} limit reached; retry at {at}", self.axis),
            Retry::Never => write!(f, "request exceeds the {} capacity; never passes", self.axis),
            Retry::WhenSlotFrees => {
                write!(f, "{} limit reached; retry when a request completes", self.axis)
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// A rate of `limit_per_min` units per minute with a bucket holding `burst` worth of refill.
///
/// ```
/// use routesim::limiter::{Quota, TokenBucket};
/// use routesim::time::{Duration, Instant};
///
/// // "60 requests per minute, as one per second": the bucket holds one second of refill.
/// let quota = Quota::per_minute(60).with_burst(Duration::from_secs(1));
/// assert_eq!(quota.capacity_tokens(), 1);
///
/// let mut bucket = TokenBucket::new(quota, Instant::ZERO);
/// assert!(bucket.try_take(Instant::ZERO, 1).is_ok());
/// assert!(bucket.try_take(Instant::ZERO, 1).is_err());
/// assert!(bucket.try_take(Instant::from_millis(1_000), 1).is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit_per_min: u64,
    pub burst: Duration,
}

impl Quota {
    /// `limit` units per minute; the bucket holds a full minute of refill (Anthropic and OpenAI
    /// publish per-minute limits, so a client may spend a whole minute's worth at once).
    pub fn per_minute(limit: u64) -> Quota {
        Quota { limit_per_min: limit, burst: Duration::from_mins(1) }
    }

    /// The same rate with a bucket holding `burst` of refill (1 s turns "60 RPM" into "one per
    /// second").
    pub fn with_burst(self, burst: Duration) -> Quota {
        Quota { burst, ..self }
    }

    /// Whole units the full bucket holds: `floor(limit × burst_s / 60)`. A request larger than
    /// this never passes.
    pub fn capacity_tokens(&self) -> u64 {
        let scaled = self.limit_per_min as u128 * self.burst.as_micros() as u128;
        u64::try_from(scaled / MICROS_PER_MIN as u128).unwrap_or(u64::MAX)
    }

    /// The full bucket in scaled units (`limit × burst_us`), saturating far beyond any real limit.
    fn capacity_scaled(&self) -> i128 {
        (self.limit_per_min as i128).saturating_mul(self.burst.as_micros() as i128)
    }
}

fn scaled(tokens: u64) -> i128 {
    tokens as i128 * SCALED_PER_TOKEN
}

/// The time `limit_per_min` takes to refill `deficit_scaled` units, rounded up to whole
/// microseconds so that the refill is complete at the end of it.
fn refill_time(deficit_scaled: i128, limit_per_min: u64) -> Duration {
    debug_assert!(deficit_scaled > 0 && limit_per_min > 0);
    let limit = limit_per_min as i128;
    let wait_us = deficit_scaled / limit + i128::from(deficit_scaled % limit != 0);
    Duration::from_micros(u64::try_from(wait_us).unwrap_or(u64::MAX))
}

/// A token bucket refilling continuously at `quota.limit_per_min`, holding at most
/// `quota.capacity_tokens()`, starting full. The level may go negative (debt) only through
/// [`TokenBucket::take_unchecked`], which settlement uses when a request used more than it
/// reserved; nothing passes until the debt is refilled.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    quota: Quota,
    capacity_scaled: i128,
    /// The level at `updated_at`, in scaled units (60 000 000 per token); negative = debt.
    level_scaled: i128,
    /// The latest instant the level was brought up to; never moves backwards, so a clock step
    /// backwards and forwards again cannot refill the same interval twice.
    updated_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(quota: Quota, now: Instant) -> Self {
        let capacity_scaled = quota.capacity_scaled();
        TokenBucket { quota, capacity_scaled, level_scaled: capacity_scaled, updated_at: now }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The level at `now`: a pure function of `now`, treating an earlier `now` as no time elapsed.
    fn level_at(&self, now: Instant) -> i128 {
        let elapsed_us = now.saturating_since(self.updated_at).as_micros();
        let refill_scaled = (self.quota.limit_per_min as i128).saturating_mul(elapsed_us as i128);
        self.level_scaled.saturating_add(refill_scaled).min(self.capacity_scaled)
    }

    fn advance(&mut self, now: Instant) {
        self.level_scaled = self.level_at(now);
        self.updated_at = self.updated_at.max(now);
    }

    /// Whole tokens available at `now` (rounded down; 0 when in debt).
    pub fn available(&self, now: Instant) -> u64 {
        let tokens = self.level_at(now).max(0) / SCALED_PER_TOKEN;
        u64::try_from(tokens).unwrap_or(u64::MAX)
    }

    /// Whether `tokens` could be taken at `now`, without taking them.
    ///
    /// `Err(Retry::Never)` when `tokens` exceeds the capacity (or the rate is zero): waiting will
    /// not help. `Err(Retry::At(t))` otherwise, `t` being the earliest instant at which the same
    /// call passes if nothing else changes.
    pub fn check(&self, now: Instant, tokens: u64) -> Result<(), Retry> {
        let cost_scaled = scaled(tokens);
        if self.quota.limit_per_min == 0 || cost_scaled > self.capacity_scaled {
            return Err(Retry::Never);
        }
        let level_scaled = self.level_at(now);
        if level_scaled >= cost_scaled {
            return Ok(());
        }
        // Refill is linear from the later of `now` and the last update (a backward `now` refills
        // nothing until the clock is past the last update again). The cap cannot bite before the
        // cost is reached because the cost is at most the capacity.
        let refill_from = self.updated_at.max(now);
        let wait = refill_time(cost_scaled - level_scaled, self.quota.limit_per_min);
        Err(Retry::At(refill_from + wait))
    }

    /// Takes `tokens` if [`TokenBucket::check`] passes; otherwise leaves the level unchanged.
    pub fn try_take(&mut self, now: Instant, tokens: u64) -> Result<(), Retry> {
        self.check(now, tokens)?;
        self.take_unchecked(now, tokens);
        Ok(())
    }

    /// Debits `tokens` even into debt: settlement uses it when a request produced more output
    /// than it reserved, because the tokens were consumed whether or not the bucket had them.
    pub fn take_unchecked(&mut self, now: Instant, tokens: u64) {
        self.advance(now);
        self.level_scaled = self.level_scaled.saturating_sub(scaled(tokens));
    }

    /// Credits `tokens` back (an unused reservation), capped at capacity.
    pub fn refund(&mut self, now: Instant, tokens: u64) {
        self.advance(now);
        self.level_scaled = self.level_scaled.saturating_add(scaled(tokens)).min(self.capacity_scaled);
    }

    /// The time until the bucket is full again if nothing is taken (a `reset` header).
    /// `Duration::MAX` for a zero-rate bucket in debt, which never refills.
    pub fn time_until_full(&self, now: Instant) -> Duration {
        let missing_scaled = self.capacity_scaled - self.level_at(now);
        if missing_scaled <= 0 {
            return Duration::ZERO;
        }
        if self.quota.limit_per_min == 0 {
            return Duration::MAX;
        }
        // Measured from `now`, so a backward `now` also waits out the gap to the last update.
        self.updated_at.saturating_since(now) + refill_time(missing_scaled, self.quota.limit_per_min)
    }
}

/// The acceleration (ramp) limit. Anthropic publishes no rule; this is our documented,
/// parameterised model: time is cut into fixed windows of length `window` aligned to
/// `Instant::ZERO`. In window k the admitted units may not exceed
/// `allowance(k) = max(floor_per_window, floor(max_growth × admitted(k-1)))`.
/// The first admission in a window (while nothing has been admitted in it) always passes, so a
/// request bigger than the floor cannot livelock. A refusal retries at the start of window k+1.
/// Units are requests or counted input tokens.
///
/// A zero `window` is treated as one microsecond.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccelerationLimit {
    pub window: Duration,
    pub max_growth: f64,
    pub floor_per_window: u64,
    #[serde(default)]
    pub unit: AccelerationUnit,
}

/// What the acceleration limit counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelerationUnit {
    #[default]
    Requests,
    InputTokens,
}

impl AccelerationLimit {
    fn window_us(&self) -> u64 {
        self.window.as_micros().max(1)
    }

    fn units(&self, demand: Demand) -> u64 {
        match self.unit {
            AccelerationUnit::Requests => 1,
            AccelerationUnit::InputTokens => demand.input_tokens,
        }
    }

    /// Units window k may admit given `previous_units` admitted in window k-1.
    fn allowance(&self, previous_units: u64) -> u64 {
        // `as` saturates: a negative or NaN growth gives 0, so the floor applies.
        let grown = (self.max_growth * previous_units as f64).floor() as u64;
        grown.max(self.floor_per_window)
    }
}

/// Admitted units in the current and previous acceleration windows.
#[derive(Clone, Debug)]
struct Ramp {
    limit: AccelerationLimit,
    /// The latest window seen; never moves backwards.
    window_index: u64,
    admitted_units: u64,
    previous_units: u64,
}

impl Ramp {
    fn new(limit: AccelerationLimit, now: Instant) -> Self {
        Ramp {
            limit,
            window_index: now.as_micros() / limit.window_us(),
            admitted_units: 0,
            previous_units: 0,
        }
    }

    /// (window index, units admitted in the previous window, units admitted in this window) at
    /// `now`. A `now` in an earlier window (clock step backwards) counts in the latest window.
    fn counts_at(&self, now: Instant) -> (u64, u64, u64) {
        let index = now.as_micros() / self.limit.window_us();
        if index <= self.window_index {
            (self.window_index, self.previous_units, self.admitted_units)
        } else if index == self.window_index + 1 {
            (index, self.admitted_units, 0)
        } else {
            // Whole windows passed with no admissions: the sustained rate fell to zero.
            (index, 0, 0)
        }
    }

    fn check(&self, now: Instant, demand: Demand) -> Result<(), Retry> {
        let (index, previous_units, admitted_units) = self.counts_at(now);
        let units = self.limit.units(demand);
        if admitted_units == 0 || admitted_units.saturating_add(units) <= self.limit.allowance(previous_units)
        {
            return Ok(());
        }
        let next_window_us = (index + 1).saturating_mul(self.limit.window_us());
        Err(Retry::At(Instant::from_micros(next_window_us)))
    }

    fn record(&mut self, now: Instant, demand: Demand) {
        let (index, previous_units, admitted_units) = self.counts_at(now);
        self.window_index = index;
        self.previous_units = previous_units;
        self.admitted_units = admitted_units.saturating_add(self.limit.units(demand));
    }
}

/// The limits of one multi-axis limiter; `None` = axis not limited.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub itpm: Option<u64>,
    pub otpm: Option<u64>,
    /// Combined tokens per minute (OpenAI style): input + output reservation.
    pub tpm: Option<u64>,
    pub max_in_flight: Option<u32>,
    /// Seconds of refill each bucket holds (60 s = a full minute; 1 s = "60 RPM as 1 per second").
    pub burst: Duration,
    pub acceleration: Option<AccelerationLimit>,
}

impl Default for Limits {
    /// Nothing limited, and a full minute of burst, so that `Limits { rpm: Some(50),
    /// ..Default::default() }` means "50 per minute" rather than a zero-capacity bucket.
    fn default() -> Self {
        Limits {
            rpm: None,
            itpm: None,
            otpm: None,
            tpm: None,
            max_in_flight: None,
            burst: Duration::from_mins(1),
            acceleration: None,
        }
    }
}

/// What one request asks of a limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Demand {
    /// Input tokens as this limiter counts them for ITPM/TPM (the caller decides whether cache
    /// reads count).
    pub input_tokens: u64,
    /// Output tokens reserved at admission (the request's max_tokens).
    pub output_reserve_tokens: u64,
}

impl Demand {
    /// What the combined TPM axis is charged at admission.
    fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_reserve_tokens)
    }
}

/// Proof of admission; must be given back to [`MultiLimiter::settle`] exactly once (it is not
/// `Clone`, so it cannot be settled twice).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be settled, or its concurrency slot and reservation leak"]
pub struct Permit {
    demand: Demand,
}

impl Permit {
    /// The amounts reserved at admission.
    pub fn demand(&self) -> Demand {
        self.demand
    }
}

/// Remaining capacity per axis, as a provider's rate-limit headers report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Remaining {
    pub requests: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tokens: Option<u64>,
    pub in_flight: u32,
}

/// Keeps the refusal a caller should act on: `Never` over anything (retrying is pointless),
/// otherwise the latest `At` (retrying then passes every axis if nothing else changed); on a tie
/// the first seen, so the answer is deterministic.
fn more_binding(current: Option<Refusal>, candidate: Refusal) -> Refusal {
    let Some(current) = current else {
        return candidate;
    };
    match (current.retry, candidate.retry) {
        (Retry::Never, _) => current,
        (_, Retry::Never) => candidate,
        (Retry::At(current_at), Retry::At(candidate_at)) if candidate_at > current_at => candidate,
        (Retry::WhenSlotFrees, Retry::At(_)) => candidate,
        _ => current,
    }
}

/// RPM, ITPM, OTPM, TPM, concurrency and acceleration limits taken together, all-or-nothing.
#[derive(Clone, Debug)]
pub struct MultiLimiter {
    limits: Limits,
    requests: Option<TokenBucket>,
    input_tokens: Option<TokenBucket>,
    output_tokens: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    ramp: Option<Ramp>,
    in_flight: u32,
}

impl MultiLimiter {
    /// A limiter with full buckets and nothing in flight.
    pub fn new(limits: &Limits, now: Instant) -> Self {
        let bucket = |limit: Option<u64>| {
            limit.map(|l| TokenBucket::new(Quota::per_minute(l).with_burst(limits.burst), now))
        };
        MultiLimiter {
            limits: limits.clone(),
            requests: bucket(limits.rpm),
            input_tokens: bucket(limits.itpm),
            output_tokens: bucket(limits.otpm),
            tokens: bucket(limits.tpm),
            ramp: limits.acceleration.map(|a| Ramp::new(a, now)),
            in_flight: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The bucket enforcing `axis`, if that axis is a limited bucket axis (for `reset` headers).
    pub fn bucket(&self, axis: Axis) -> Option<&TokenBucket> {
        match axis {
            Axis::Requests => self.requests.as_ref(),
            Axis::InputTokens => self.input_tokens.as_ref(),
            Axis::OutputTokens => self.output_tokens.as_ref(),
            Axis::Tokens => self.tokens.as_ref(),
            Axis::Concurrency | Axis::Acceleration => None,
        }
    }

    /// Each limited bucket with what `demand` costs it.
    fn bucket_costs(&self, demand: Demand) -> [(Axis, Option<&TokenBucket>, u64); 4] {
        [
            (Axis::Requests, self.requests.as_ref(), 1),
            (Axis::InputTokens, self.input_tokens.as_ref(), demand.input_tokens),
            (Axis::OutputTokens, self.output_tokens.as_ref(), demand.output_reserve_tokens),
            (Axis::Tokens, self.tokens.as_ref(), demand.total_tokens()),
        ]
    }

    /// Read-only version of [`MultiLimiter::try_admit`] (same answer, no state change).
    pub fn check(&self, now: Instant, demand: Demand) -> Result<(), Refusal> {
        let mut refusal = None;
        for (axis, bucket, cost_tokens) in self.bucket_costs(demand) {
            if let Some(Err(retry)) = bucket.map(|b| b.check(now, cost_tokens)) {
                refusal = Some(more_binding(refusal, Refusal { axis, retry }));
            }
        }
        if let Some(Err(retry)) = self.ramp.as_ref().map(|r| r.check(now, demand)) {
            let axis = Axis::Acceleration;
            refusal = Some(more_binding(refusal, Refusal { axis, retry }));
        }
        // Concurrency has no time to offer, so it is reported only when it is the sole reason:
        // a caller told `At(t)` retries at t, and may then meet the concurrency limit.
        if refusal.is_none() && self.limits.max_in_flight.is_some_and(|max| self.in_flight >= max) {
            refusal = Some(Refusal { axis: Axis::Concurrency, retry: Retry::WhenSlotFrees });
        }
        refusal.map_or(Ok(()), Err)
    }

    /// All-or-nothing: every axis is checked first, nothing is debited unless all pass. On
    /// success the request's input, output reservation and concurrency slot are held by the
    /// returned [`Permit`] until [`MultiLimiter::settle`].
    pub fn try_admit(&mut self, now: Instant, demand: Demand) -> Result<Permit, Refusal> {
        self.check(now, demand)?;
        let costs = [
            (&mut self.requests, 1),
            (&mut self.input_tokens, demand.input_tokens),
            (&mut self.output_tokens, demand.output_reserve_tokens),
            (&mut self.tokens, demand.total_tokens()),
        ];
        for (bucket, cost_tokens) in costs {
            if let Some(bucket) = bucket {
                let taken = bucket.try_take(now, cost_tokens);
                debug_assert!(taken.is_ok(), "check passed, so the take must too");
            }
        }
        if let Some(ramp) = &mut self.ramp {
            ramp.record(now, demand);
        }
        self.in_flight = self.in_flight.saturating_add(1);
        Ok(Permit { demand })
    }

    /// Completion (success, error or cancellation): OTPM/TPM settled from the reserve to
    /// `actual_output_tokens` (the unused reserve refunded, capped at capacity, or the excess
    /// debited into debt), and the concurrency slot released.
    pub fn settle(&mut self, now: Instant, permit: Permit, actual_output_tokens: u64) {
        let reserved_tokens = permit.demand.output_reserve_tokens;
        for bucket in [&mut self.output_tokens, &mut self.tokens].into_iter().flatten() {
            if actual_output_tokens <= reserved_tokens {
                bucket.refund(now, reserved_tokens - actual_output_tokens);
            } else {
                bucket.take_unchecked(now, actual_output_tokens - reserved_tokens);
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Requests admitted and not yet settled.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Whole units left per limited axis at `now`.
    pub fn remaining(&self, now: Instant) -> Remaining {
        let available = |bucket: &Option<TokenBucket>| bucket.as_ref().map(|b| b.available(now));
        Remaining {
            requests: available(&self.requests),
            input_tokens: available(&self.input_tokens),
            output_tokens: available(&self.output_tokens),
            tokens: available(&self.tokens),
            in_flight: self.in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn demand(input_tokens: u64, output_reserve_tokens: u64) -> Demand {
        Demand { input_tokens, output_reserve_tokens }
    }

    #[test]
    fn capacity_is_limit_times_burst_over_a_minute() {
        // 60 RPM × 1 s / 60 s = 1 token; 4000 × 60 s / 60 s = 4000; 30 × 1 s / 60 s = 0.5 → 0.
        assert_eq!(Quota::per_minute(60).with_burst(Duration::from_secs(1)).capacity_tokens(), 1);
        assert_eq!(Quota::per_minute(4_000).capacity_tokens(), 4_000);
        assert_eq!(Quota::per_minute(30).with_burst(Duration::from_secs(1)).capacity_tokens(), 0);
        assert_eq!(Quota::per_minute(7).burst, Duration::from_secs(60));
    }

    #[test]
    fn one_per_second_bucket_refuses_the_second_request_for_one_second() {
        let quota = Quota::per_minute(60).with_burst(Duration::from_secs(1));
        let mut bucket = TokenBucket::new(quota, Instant::ZERO);
        assert_eq!(bucket.try_take(Instant::ZERO, 1), Ok(()));
        // Empty; 60 per minute refills one token in 60 s / 60 = 1 s.
        assert_eq!(bucket.try_take(Instant::ZERO, 1), Err(Retry::At(at_ms(1_000))));
        assert_eq!(bucket.check(at_ms(999), 1), Err(Retry::At(at_ms(1_000))));
        assert_eq!(bucket.try_take(at_ms(1_000), 1), Ok(()));
    }

    #[test]
    fn full_minute_bucket_admits_its_capacity_then_waits_one_token_of_refill() {
        let mut bucket = TokenBucket::new(Quota::per_minute(4_000), Instant::ZERO);
        for _ in 0..4_000 {
            assert_eq!(bucket.try_take(Instant::ZERO, 1), Ok(()));
        }
        // One token at 4000 per minute takes 60 000 ms / 4000 = 15 ms.
        assert_eq!(bucket.try_take(Instant::ZERO, 1), Err(Retry::At(at_ms(15))));
        assert_eq!(bucket.check(Instant::from_micros(14_999), 1), Err(Retry::At(at_ms(15))));
        assert_eq!(bucket.try_take(at_ms(15), 1), Ok(()));
    }

    #[test]
    fn refill_is_continuous_and_capped_at_capacity() {
        let mut bucket = TokenBucket::new(Quota::per_minute(120), Instant::ZERO);
        assert_eq!(bucket.try_take(Instant::ZERO, 120), Ok(()));
        assert_eq!(bucket.available(Instant::ZERO), 0);
        // 120 per minute over 30 s = 60 tokens; over 0.5 s = 1 token; over 0.49 s = 0.98 → 0.
        assert_eq!(bucket.available(at_ms(30_000)), 60);
        assert_eq!(bucket.available(at_ms(500)), 1);
        assert_eq!(bucket.available(at_ms(490)), 0);
        assert_eq!(bucket.time_until_full(at_ms(30_000)), Duration::from_secs(30));
        // Ten minutes would refill 1200 but the bucket holds 120.
        assert_eq!(bucket.available(at_ms(600_000)), 120);
        assert_eq!(bucket.time_until_full(at_ms(600_000)), Duration::ZERO);
        bucket.refund(at_ms(600_000), 50);
        assert_eq!(bucket.available(at_ms(600_000)), 120);
    }

    #[test]
    fn larger_than_capacity_is_never_not_later() {
        let quota = Quota::per_minute(60).with_burst(Duration::from_secs(1));
        let mut bucket = TokenBucket::new(quota, Instant::ZERO);
        // Capacity 1: two tokens can never fit, even in a full bucket...
        assert_eq!(bucket.check(Instant::ZERO, 2), Err(Retry::Never));
        // ...while one token, once the bucket is empty, is only "not now".
        assert_eq!(bucket.try_take(Instant::ZERO, 1), Ok(()));
        assert_eq!(bucket.check(Instant::ZERO, 1), Err(Retry::At(at_ms(1_000))));
        assert_eq!(bucket.check(at_ms(3_600_000), 2), Err(Retry::Never));

        let itpm = TokenBucket::new(Quota::per_minute(1_000), Instant::ZERO);
        assert_eq!(itpm.check(Instant::ZERO, 1_001), Err(Retry::Never));
        assert_eq!(itpm.check(Instant::ZERO, 1_000), Ok(()));

        let zero_rate = TokenBucket::new(Quota::per_minute(0), Instant::ZERO);
        assert_eq!(zero_rate.check(Instant::ZERO, 0), Err(Retry::Never));
        assert_eq!(zero_rate.check(Instant::ZERO, 1), Err(Retry::Never));
    }

    #[test]
    fn backward_clock_neither_panics_nor_refills_twice() {
        let mut bucket = TokenBucket::new(Quota::per_minute(60), Instant::ZERO);
        assert_eq!(bucket.try_take(at_ms(10_000), 60), Ok(()));
        // The clock steps back 5 s: no refill, and the retry is counted from the last update
        // (10 s + 1 s for one token at 60 per minute), not from the earlier `now`.
        assert_eq!(bucket.available(at_ms(5_000)), 0);
        assert_eq!(bucket.check(at_ms(5_000), 1), Err(Retry::At(at_ms(11_000))));
        assert_eq!(bucket.time_until_full(at_ms(5_000)), Duration::from_secs(65));
        bucket.refund(at_ms(5_000), 0);
        bucket.take_unchecked(at_ms(5_000), 0);
        // Back at 10 s the interval 5 s..10 s must not count as refill.
        assert_eq!(bucket.available(at_ms(10_000)), 0);
        assert_eq!(bucket.available(at_ms(11_000)), 1);
        assert_eq!(bucket.try_take(at_ms(11_000), 1), Ok(()));
    }

    #[test]
    fn debt_blocks_until_repaid() {
        let mut bucket = TokenBucket::new(Quota::per_minute(600), Instant::ZERO);
        bucket.take_unchecked(Instant::ZERO, 900);
        // Level 600 - 900 = -300 tokens; 600 per minute = 10 per second.
        assert_eq!(bucket.available(Instant::ZERO), 0);
        // One token needs 301 tokens of refill: 30.1 s.
        assert_eq!(bucket.check(Instant::ZERO, 1), Err(Retry::At(at_ms(30_100))));
        assert_eq!(bucket.available(at_ms(30_000)), 0);
        assert_eq!(bucket.available(at_ms(30_100)), 1);
        // Full again after 900 tokens of refill: 90 s.
        assert_eq!(bucket.time_until_full(Instant::ZERO), Duration::from_secs(90));
    }

    #[test]
    fn axis_names_are_the_header_names() {
        assert_eq!(Axis::Requests.to_string(), "rpm");
        assert_eq!(Axis::InputTokens.as_str(), "itpm");
        assert_eq!(Axis::OutputTokens.as_str(), "otpm");
        assert_eq!(Axis::Tokens.as_str(), "tpm");
        assert_eq!(Axis::Concurrency.as_str(), "concurrency");
        assert_eq!(Axis::Acceleration.as_str(), "acceleration");
        let refusal = Refusal { axis: Axis::Requests, retry: Retry::At(at_ms(1_500)) };
        assert_eq!(refusal.retry_after(at_ms(1_000)), Some(Duration::from_millis(500)));
        assert_eq!(refusal.to_string(), "rpm limit reached; retry at t+1500ms");
    }

    #[test]
    fn default_limits_limit_nothing_with_a_minute_of_burst() {
        let limits = Limits::default();
        assert_eq!(limits.burst, Duration::from_secs(60));
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..1_000 {
            let _held = limiter.try_admit(Instant::ZERO, demand(1_000_000, 1_000_000)).unwrap();
        }
        assert_eq!(limiter.in_flight(), 1_000);
        assert_eq!(limiter.remaining(Instant::ZERO), Remaining { in_flight: 1_000, ..Remaining::default() });
    }

    #[test]
    fn refused_axis_consumes_nothing_on_the_other_axes() {
        let limits = Limits { rpm: Some(10), itpm: Some(1_000), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let _first = limiter.try_admit(Instant::ZERO, demand(900, 0)).unwrap();
        // ITPM has 100 left; 500 more needs 400 tokens at 1000 per minute = 24 s.
        let refusal = limiter.try_admit(Instant::ZERO, demand(500, 0)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::InputTokens, retry: Retry::At(at_ms(24_000)) });
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(remaining.requests, Some(9), "the refused request took no RPM token");
        assert_eq!(remaining.input_tokens, Some(100));
        assert_eq!(limiter.in_flight(), 1);
    }

    #[test]
    fn the_latest_retry_among_refusing_axes_is_reported() {
        let limits = Limits { rpm: Some(60), itpm: Some(6_000), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..60 {
            let _held = limiter.try_admit(Instant::ZERO, demand(100, 0)).unwrap();
        }
        // Both empty. RPM needs 1 request at 60 per minute = 1 s; ITPM needs 200 tokens at 6000
        // per minute = 2 s, or 50 tokens = 0.5 s.
        let big = demand(200, 0);
        let small = demand(50, 0);
        let refusal = limiter.check(Instant::ZERO, big).unwrap_err();
        assert_eq!(refusal.axis, Axis::InputTokens);
        assert_eq!(refusal.retry, Retry::At(at_ms(2_000)));
        let refusal = limiter.check(Instant::ZERO, small).unwrap_err();
        assert_eq!(refusal.axis, Axis::Requests);
        assert_eq!(refusal.retry, Retry::At(at_ms(1_000)));
        // Retrying at the reported instant passes both axes.
        assert!(limiter.clone().try_admit(at_ms(1_000), small).is_ok());
        assert!(limiter.try_admit(at_ms(2_000), big).is_ok());
    }

    #[test]
    fn never_wins_over_a_later_retry() {
        let limits = Limits { rpm: Some(60), otpm: Some(1_000), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..60 {
            let _held = limiter.try_admit(Instant::ZERO, demand(0, 0)).unwrap();
        }
        let refusal = limiter.check(Instant::ZERO, demand(0, 1_001)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::OutputTokens, retry: Retry::Never });
    }

    #[test]
    fn output_reservation_is_settled_to_the_actual_output() {
        let limits = Limits { otpm: Some(6_000), tpm: Some(10_000), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(3_000, 1_000)).unwrap();
        assert_eq!(permit.demand(), demand(3_000, 1_000));
        // OTPM 6000 - 1000 reserved; TPM 10 000 - (3000 + 1000).
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!((remaining.output_tokens, remaining.tokens), (Some(5_000), Some(6_000)));
        // Only 200 produced: the unused 800 comes back on both output-counting axes.
        limiter.settle(Instant::ZERO, permit, 200);
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!((remaining.output_tokens, remaining.tokens), (Some(5_800), Some(6_800)));
        assert_eq!(limiter.in_flight(), 0);

        // 1500 produced against a 1000 reserve: 500 more is debited.
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 1_000)).unwrap();
        limiter.settle(Instant::ZERO, permit, 1_500);
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!((remaining.output_tokens, remaining.tokens), (Some(4_300), Some(5_300)));
    }

    #[test]
    fn refund_after_refill_is_capped_at_capacity() {
        let limits = Limits { otpm: Some(6_000), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 1_000)).unwrap();
        // 30 s at 100 per second refills 3000 > the 1000 missing, so the bucket is already full
        // and the 800 refund must not push it past 6000.
        limiter.settle(at_ms(30_000), permit, 200);
        assert_eq!(limiter.remaining(at_ms(30_000)).output_tokens, Some(6_000));
    }

    #[test]
    fn output_beyond_the_reserve_puts_the_bucket_in_debt_and_delays_the_next_request() {
        let limits = Limits { otpm: Some(600), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 600)).unwrap();
        limiter.settle(Instant::ZERO, permit, 1_500);
        // Level 600 - 600 - 900 = -900. Reserving 100 needs 1000 tokens of refill at 600 per
        // minute: 1000 / 600 min = 100 s.
        assert_eq!(limiter.remaining(Instant::ZERO).output_tokens, Some(0));
        let refusal = limiter.check(Instant::ZERO, demand(0, 100)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::OutputTokens, retry: Retry::At(at_ms(100_000)) });
        assert!(limiter.check(at_ms(99_999), demand(0, 100)).is_err());
        assert!(limiter.try_admit(at_ms(100_000), demand(0, 100)).is_ok());
    }

    #[test]
    fn concurrency_refuses_until_a_slot_frees() {
        let limits = Limits { max_in_flight: Some(2), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let first = limiter.try_admit(Instant::ZERO, Demand::default()).unwrap();
        let _second = limiter.try_admit(Instant::ZERO, Demand::default()).unwrap();
        let refusal = limiter.try_admit(Instant::ZERO, Demand::default()).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::Concurrency, retry: Retry::WhenSlotFrees });
        assert_eq!(refusal.retry_after(Instant::ZERO), None);
        // Waiting does not help; a completion does.
        assert!(limiter.check(at_ms(3_600_000), Demand::default()).is_err());
        limiter.settle(at_ms(5), first, 0);
        assert_eq!(limiter.in_flight(), 1);
        assert!(limiter.try_admit(at_ms(5), Demand::default()).is_ok());
    }

    #[test]
    fn a_bucket_refusal_is_reported_before_concurrency() {
        let limits = Limits { rpm: Some(1), max_in_flight: Some(1), ..Limits::default() };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let _held = limiter.try_admit(Instant::ZERO, Demand::default()).unwrap();
        let refusal = limiter.check(Instant::ZERO, Demand::default()).unwrap_err();
        assert_eq!(refusal.axis, Axis::Requests);
        assert_eq!(refusal.retry, Retry::At(at_ms(60_000)));
    }

    fn ramp_limits(unit: AccelerationUnit) -> Limits {
        Limits {
            acceleration: Some(AccelerationLimit {
                window: Duration::from_secs(60),
                max_growth: 2.0,
                floor_per_window: 10,
                unit,
            }),
            ..Limits::default()
        }
    }

    /// Admits requests at `now` until refused; returns how many passed and the refusal.
    fn admit_until_refused(limiter: &mut MultiLimiter, now: Instant) -> (u64, Refusal) {
        let mut admitted = 0;
        loop {
            match limiter.try_admit(now, Demand::default()) {
                Ok(permit) => {
                    limiter.settle(now, permit, 0);
                    admitted += 1;
                }
                Err(refusal) => return (admitted, refusal),
            }
        }
    }

    #[test]
    fn acceleration_lets_usage_grow_by_the_factor_per_window() {
        let mut limiter = MultiLimiter::new(&ramp_limits(AccelerationUnit::Requests), Instant::ZERO);
        let refused_until = |ms| Refusal { axis: Axis::Acceleration, retry: Retry::At(at_ms(ms)) };
        // Window 0 (0-60 s): nothing before, allowance = max(10, 2 × 0) = 10.
        assert_eq!(admit_until_refused(&mut limiter, at_ms(1_000)), (10, refused_until(60_000)));
        // Window 1 (60-120 s): allowance = max(10, 2 × 10) = 20.
        assert_eq!(admit_until_refused(&mut limiter, at_ms(60_000)), (20, refused_until(120_000)));
        // Window 2 (120-180 s): allowance = max(10, 2 × 20) = 40.
        assert_eq!(admit_until_refused(&mut limiter, at_ms(179_999)), (40, refused_until(180_000)));
        // Window 3 admits only 15 of its 80: window 4 may grow to 2 × 15 = 30.
        for _ in 0..15 {
            let permit = limiter.try_admit(at_ms(200_000), Demand::default()).unwrap();
            limiter.settle(at_ms(200_000), permit, 0);
        }
        assert_eq!(admit_until_refused(&mut limiter, at_ms(240_000)), (30, refused_until(300_000)));
        // Window 5 idle: window 6 is back to the floor.
        assert_eq!(admit_until_refused(&mut limiter, at_ms(360_000)), (10, refused_until(420_000)));
    }

    #[test]
    fn the_first_admission_in_a_window_always_passes() {
        let mut limiter = MultiLimiter::new(&ramp_limits(AccelerationUnit::InputTokens), Instant::ZERO);
        // 500 input tokens exceed the floor of 10 but nothing was admitted yet in window 0.
        let permit = limiter.try_admit(Instant::ZERO, demand(500, 0)).unwrap();
        limiter.settle(Instant::ZERO, permit, 0);
        let refusal = limiter.check(at_ms(59_999), demand(1, 0)).unwrap_err();
        assert_eq!(refusal.axis, Axis::Acceleration);
        assert_eq!(refusal.retry, Retry::At(at_ms(60_000)));
        // Window 1: allowance = max(10, 2 × 500) = 1000 tokens.
        let permit = limiter.try_admit(at_ms(60_000), demand(600, 0)).unwrap();
        limiter.settle(at_ms(60_000), permit, 0);
        let permit = limiter.try_admit(at_ms(60_000), demand(400, 0)).unwrap();
        limiter.settle(at_ms(60_000), permit, 0);
        assert!(limiter.check(at_ms(60_000), demand(1, 0)).is_err());
    }

    #[test]
    fn acceleration_ignores_a_backward_clock() {
        let mut limiter = MultiLimiter::new(&ramp_limits(AccelerationUnit::Requests), Instant::ZERO);
        admit_until_refused(&mut limiter, at_ms(61_000));
        // Stepping back into window 0 still counts in window 1, which is full.
        let refusal = limiter.check(at_ms(1_000), Demand::default()).unwrap_err();
        assert_eq!(refusal.retry, Retry::At(at_ms(120_000)));
    }

    proptest! {
        /// A bucket never admits more than its capacity plus its refill over the elapsed time,
        /// even when the clock steps backwards.
        #[test]
        fn bucket_never_admits_more_than_capacity_plus_refill(
            limit_per_min in 0u64..20_000,
            burst_ms in 0u64..120_000,
            steps in prop::collection::vec((-2_000i64..5_000, 0u64..500), 1..200),
        ) {
            let quota = Quota::per_minute(limit_per_min).with_burst(Duration::from_millis(burst_ms));
            let mut bucket = TokenBucket::new(quota, Instant::ZERO);
            let (mut now_ms, mut latest_ms, mut admitted_tokens) = (0i64, 0i64, 0u128);
            for (step_ms, tokens) in steps {
                now_ms = (now_ms + step_ms).max(0);
                latest_ms = latest_ms.max(now_ms);
                if bucket.try_take(at_ms(now_ms as u64), tokens).is_ok() {
                    admitted_tokens += tokens as u128;
                }
                let bound_scaled = limit_per_min as u128 * (burst_ms as u128 + latest_ms as u128) * 1_000;
                prop_assert!(admitted_tokens * MICROS_PER_MIN as u128 <= bound_scaled);
            }
        }

        /// After a refusal `At(t)`, nothing else changing, the same take passes at t and not a
        /// microsecond earlier.
        #[test]
        fn bucket_retry_instant_is_exact(
            // Small buckets against sizes up to 500 so that refusals are common.
            limit_per_min in 1u64..3_000,
            burst_ms in 1u64..20_000,
            ops in prop::collection::vec((0u64..5_000, 0u64..500, 0u8..3), 0..50),
            query_tokens in 0u64..500,
        ) {
            let quota = Quota::per_minute(limit_per_min).with_burst(Duration::from_millis(burst_ms));
            let mut bucket = TokenBucket::new(quota, Instant::ZERO);
            let mut now = Instant::ZERO;
            for (step_ms, tokens, kind) in ops {
                now += Duration::from_millis(step_ms);
                match kind {
                    0 => { let _ = bucket.try_take(now, tokens); }
                    1 => bucket.take_unchecked(now, tokens),
                    _ => bucket.refund(now, tokens),
                }
            }
            match bucket.check(now, query_tokens) {
                Ok(()) => prop_assert!(bucket.clone().try_take(now, query_tokens).is_ok()),
                Err(Retry::At(retry_at)) => {
                    prop_assert!(retry_at > now);
                    let before = Instant::from_micros(retry_at.as_micros() - 1);
                    prop_assert!(bucket.check(before, query_tokens).is_err());
                    prop_assert!(bucket.try_take(retry_at, query_tokens).is_ok());
                }
                Err(Retry::Never) => prop_assert!(query_tokens > quota.capacity_tokens()),
                Err(Retry::WhenSlotFrees) => prop_assert!(false, "a bucket has no slots"),
            }
        }

        /// MultiLimiter without a concurrency limit: a refusal `At(t)` means `try_admit` at t
        /// passes; `check` always agrees with `try_admit`; `Never` stays never.
        #[test]
        fn multi_limiter_retry_at_passes(
            rpm in prop::option::of(1u64..200),
            itpm in prop::option::of(1u64..10_000),
            otpm in prop::option::of(1u64..10_000),
            tpm in prop::option::of(1u64..20_000),
            burst_s in 1u64..120,
            ramp in prop::option::of((1u64..120, 1.0f64..4.0, 1u64..50, any::<bool>())),
            ops in prop::collection::vec(
                (0u64..5_000, 0u64..3_000, 0u64..3_000, prop::option::of(0u64..4_000)),
                1..80,
            ),
        ) {
            let limits = Limits {
                rpm, itpm, otpm, tpm,
                max_in_flight: None,
                burst: Duration::from_secs(burst_s),
                acceleration: ramp.map(|(window_s, max_growth, floor_per_window, by_tokens)| {
                    AccelerationLimit {
                        window: Duration::from_secs(window_s),
                        max_growth,
                        floor_per_window,
                        unit: if by_tokens { AccelerationUnit::InputTokens } else { AccelerationUnit::Requests },
                    }
                }),
            };
            let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
            let mut permits = std::collections::VecDeque::new();
            let mut now = Instant::ZERO;
            for (step_ms, input_tokens, output_reserve_tokens, settle_actual) in ops {
                now += Duration::from_millis(step_ms);
                if let (Some(actual), Some(permit)) = (settle_actual, permits.pop_front()) {
                    limiter.settle(now, permit, actual);
                }
                let asked = demand(input_tokens, output_reserve_tokens);
                let checked = limiter.check(now, asked);
                let before = limiter.clone();
                match limiter.try_admit(now, asked) {
                    Ok(permit) => {
                        prop_assert_eq!(checked, Ok(()));
                        permits.push_back(permit);
                    }
                    Err(refusal) => {
                        prop_assert_eq!(checked, Err(refusal));
                        prop_assert_eq!(limiter.remaining(now), before.remaining(now));
                        match refusal.retry {
                            Retry::At(retry_at) => {
                                prop_assert!(retry_at > now);
                                prop_assert!(limiter.clone().try_admit(retry_at, asked).is_ok());
                            }
                            Retry::Never => {
                                let much_later = now + Duration::from_mins(60);
                                prop_assert_eq!(limiter.check(much_later, asked), Err(refusal));
                            }
                            Retry::WhenSlotFrees => prop_assert!(false, "no concurrency limit set"),
                        }
                    }
                }
            }
        }
    }
}
