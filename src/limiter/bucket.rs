//! Token buckets with continuous refill: a [`Quota`] of `amount` units per `period` whose
//! bucket holds `burst` worth of refill, and the [`TokenBucket`] that enforces it exactly.
//!
//! It must not know what the units are (requests, tokens, dollars): [`super::Meter`] decides
//! what a request costs.
//!
//! Bucket arithmetic is exact: a level is kept in *scaled units*, `period` in microseconds per
//! unit, so refilling `amount` units per period over `elapsed_us` adds exactly
//! `amount × elapsed_us` scaled units with no rounding, and a retry instant is the exact first
//! microsecond at which a request passes. For a per-minute quota a unit is 60 000 000 scaled
//! units (the microseconds in a minute).

use super::Retry;
use crate::time::{Duration, Instant};

/// A rate of `amount` units per `period` with a bucket holding `burst` worth of refill.
///
/// ```
/// use routesim::limiter::{Quota, TokenBucket};
/// use routesim::time::{Duration, Instant};
///
/// // "60 requests per minute, as one per second": the bucket holds one second of refill.
/// let quota = Quota::per_minute(60).with_burst(Duration::from_secs(1));
/// assert_eq!(quota.capacity_units(), 1);
///
/// let mut bucket = TokenBucket::new(quota, Instant::ZERO);
/// assert!(bucket.try_take(Instant::ZERO, 1).is_ok());
/// assert!(bucket.try_take(Instant::ZERO, 1).is_err());
/// assert!(bucket.try_take(Instant::from_millis(1_000), 1).is_ok());
///
/// // "10 000 requests per day" (OpenAI's RPD): the full day's worth may be spent at once,
/// // and one request comes back every 8.64 s.
/// let daily = Quota::per(10_000, Duration::from_secs(86_400));
/// let mut bucket = TokenBucket::new(daily, Instant::ZERO);
/// assert!(bucket.try_take(Instant::ZERO, 10_000).is_ok());
/// assert!(bucket.try_take(Instant::from_millis(8_639), 1).is_err());
/// assert!(bucket.try_take(Instant::from_millis(8_640), 1).is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Units refilled per `period`.
    pub amount: u64,
    /// The period the amount is stated for (a minute for RPM, a day for RPD); never zero.
    pub period: Duration,
    /// How much refill the full bucket holds.
    pub burst: Duration,
}

impl Quota {
    /// `amount` units per `period`; the bucket holds a full period of refill (a per-minute
    /// limit lets a client spend a whole minute's worth at once). A zero period is taken as
    /// one microsecond.
    pub fn per(amount: u64, period: Duration) -> Quota {
        let period = period.max(Duration::from_micros(1));
        Quota { amount, period, burst: period }
    }

    /// `limit` units per minute with a full minute of burst (Anthropic and OpenAI publish
    /// per-minute limits).
    pub fn per_minute(limit: u64) -> Quota {
        Quota::per(limit, Duration::from_mins(1))
    }

    /// The same rate with a bucket holding `burst` of refill (1 s turns "60 RPM" into "one per
    /// second").
    pub fn with_burst(self, burst: Duration) -> Quota {
        Quota { burst, ..self }
    }

    /// Whole units the full bucket holds: `floor(amount × burst / period)`. A request larger
    /// than this never passes.
    pub fn capacity_units(&self) -> u64 {
        let scaled = self.amount as u128 * self.burst.as_micros() as u128;
        u64::try_from(scaled / self.scaled_per_unit() as u128).unwrap_or(u64::MAX)
    }

    /// Scaled units per unit: the period in microseconds.
    fn scaled_per_unit(&self) -> i128 {
        self.period.as_micros().max(1) as i128
    }

    /// The full bucket in scaled units (`amount × burst_us`), saturating far beyond any limit.
    fn capacity_scaled(&self) -> i128 {
        (self.amount as i128).saturating_mul(self.burst.as_micros() as i128)
    }
}

/// The time `amount` per period takes to refill `deficit_scaled` units, rounded up to whole
/// microseconds so that the refill is complete at the end of it.
fn refill_time(deficit_scaled: i128, amount: u64) -> Duration {
    debug_assert!(deficit_scaled > 0 && amount > 0);
    let amount = amount as i128;
    let wait_us = deficit_scaled / amount + i128::from(deficit_scaled % amount != 0);
    Duration::from_micros(u64::try_from(wait_us).unwrap_or(u64::MAX))
}

/// A token bucket refilling continuously at `quota.amount` per `quota.period`, holding at
/// most `quota.capacity_units()`, starting full. The level may go negative (debt) only through
/// [`TokenBucket::take_unchecked`], which settlement uses when a request used more than it
/// reserved; nothing passes until the debt is refilled.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    quota: Quota,
    scaled_per_unit: i128,
    capacity_scaled: i128,
    /// The level at `updated_at`, in scaled units; negative = debt.
    level_scaled: i128,
    /// The latest instant the level was brought up to; never moves backwards, so a clock step
    /// backwards and forwards again cannot refill the same interval twice.
    updated_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(quota: Quota, now: Instant) -> Self {
        let capacity_scaled = quota.capacity_scaled();
        TokenBucket {
            quota,
            scaled_per_unit: quota.scaled_per_unit(),
            capacity_scaled,
            level_scaled: capacity_scaled,
            updated_at: now,
        }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn scaled(&self, units: u64) -> i128 {
        units as i128 * self.scaled_per_unit
    }

    /// The level at `now`: a pure function of `now`, treating an earlier `now` as no time elapsed.
    fn level_at(&self, now: Instant) -> i128 {
        let elapsed_us = now.saturating_since(self.updated_at).as_micros();
        let refill_scaled = (self.quota.amount as i128).saturating_mul(elapsed_us as i128);
        self.level_scaled.saturating_add(refill_scaled).min(self.capacity_scaled)
    }

    fn advance(&mut self, now: Instant) {
        self.level_scaled = self.level_at(now);
        self.updated_at = self.updated_at.max(now);
    }

    /// Whole units available at `now` (rounded down; 0 when in debt).
    pub fn available(&self, now: Instant) -> u64 {
        let units = self.level_at(now).max(0) / self.scaled_per_unit;
        u64::try_from(units).unwrap_or(u64::MAX)
    }

    /// Whether `units` could be taken at `now`, without taking them.
    ///
    /// `Err(Retry::Never)` when `units` exceeds the capacity (or the rate is zero): waiting will
    /// not help. `Err(Retry::At(t))` otherwise, `t` being the earliest instant at which the same
    /// call passes if nothing else changes.
    pub fn check(&self, now: Instant, units: u64) -> Result<(), Retry> {
        let cost_scaled = self.scaled(units);
        if self.quota.amount == 0 || cost_scaled > self.capacity_scaled {
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
        let wait = refill_time(cost_scaled - level_scaled, self.quota.amount);
        Err(Retry::At(refill_from + wait))
    }

    /// Takes `units` if [`TokenBucket::check`] passes; otherwise leaves the level unchanged.
    pub fn try_take(&mut self, now: Instant, units: u64) -> Result<(), Retry> {
        self.check(now, units)?;
        self.take_unchecked(now, units);
        Ok(())
    }

    /// Debits `units` even into debt: settlement uses it when a request produced more output
    /// than it reserved, because the tokens were consumed whether or not the bucket had them.
    pub fn take_unchecked(&mut self, now: Instant, units: u64) {
        self.advance(now);
        self.level_scaled = self.level_scaled.saturating_sub(self.scaled(units));
    }

    /// Credits `units` back (an unused reservation), capped at capacity.
    pub fn refund(&mut self, now: Instant, units: u64) {
        self.advance(now);
        self.level_scaled = self.level_scaled.saturating_add(self.scaled(units)).min(self.capacity_scaled);
    }

    /// The time until the bucket is full again if nothing is taken (a `reset` header).
    /// `Duration::MAX` for a zero-rate bucket in debt, which never refills.
    pub fn time_until_full(&self, now: Instant) -> Duration {
        let missing_scaled = self.capacity_scaled - self.level_at(now);
        if missing_scaled <= 0 {
            return Duration::ZERO;
        }
        if self.quota.amount == 0 {
            return Duration::MAX;
        }
        // Measured from `now`, so a backward `now` also waits out the gap to the last update.
        self.updated_at.saturating_since(now) + refill_time(missing_scaled, self.quota.amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_MIN;
    use proptest::prelude::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn capacity_is_limit_times_burst_over_a_minute() {
        // 60 RPM × 1 s / 60 s = 1 token; 4000 × 60 s / 60 s = 4000; 30 × 1 s / 60 s = 0.5 → 0.
        assert_eq!(Quota::per_minute(60).with_burst(Duration::from_secs(1)).capacity_units(), 1);
        assert_eq!(Quota::per_minute(4_000).capacity_units(), 4_000);
        assert_eq!(Quota::per_minute(30).with_burst(Duration::from_secs(1)).capacity_units(), 0);
        assert_eq!(Quota::per_minute(7).burst, Duration::from_secs(60));
    }

    #[test]
    fn a_daily_quota_with_an_hour_of_burst_holds_a_24th_and_refills_per_day() {
        // 2.4 M tokens per day, one hour of burst: 100 000 at once, then 100 000 per hour,
        // i.e. one token every 36 ms.
        let quota = Quota::per(2_400_000, Duration::from_secs(86_400)).with_burst(Duration::from_secs(3_600));
        assert_eq!(quota.capacity_units(), 100_000);
        let mut bucket = TokenBucket::new(quota, Instant::ZERO);
        assert_eq!(bucket.try_take(Instant::ZERO, 100_000), Ok(()));
        assert_eq!(bucket.check(Instant::ZERO, 1), Err(Retry::At(at_ms(36))));
        assert_eq!(bucket.available(Instant::from_millis(3_600_000)), 100_000);
        assert_eq!(bucket.time_until_full(Instant::from_millis(1_800_000)), Duration::from_secs(1_800));
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

    proptest! {
        /// A bucket never admits more than its capacity plus its refill over the elapsed time,
        /// even when the clock steps backwards.
        #[test]
        fn bucket_never_admits_more_than_capacity_plus_refill(
            amount in 0u64..20_000,
            burst_ms in 0u64..120_000,
            steps in prop::collection::vec((-2_000i64..5_000, 0u64..500), 1..200),
        ) {
            let quota = Quota::per_minute(amount).with_burst(Duration::from_millis(burst_ms));
            let mut bucket = TokenBucket::new(quota, Instant::ZERO);
            let (mut now_ms, mut latest_ms, mut admitted_tokens) = (0i64, 0i64, 0u128);
            for (step_ms, tokens) in steps {
                now_ms = (now_ms + step_ms).max(0);
                latest_ms = latest_ms.max(now_ms);
                if bucket.try_take(at_ms(now_ms as u64), tokens).is_ok() {
                    admitted_tokens += tokens as u128;
                }
                let bound_scaled = amount as u128 * (burst_ms as u128 + latest_ms as u128) * 1_000;
                prop_assert!(admitted_tokens * MICROS_PER_MIN as u128 <= bound_scaled);
            }
        }

        /// After a refusal `At(t)`, nothing else changing, the same take passes at t and not a
        /// microsecond earlier.
        #[test]
        fn bucket_retry_instant_is_exact(
            // Small buckets against sizes up to 500 so that refusals are common.
            amount in 1u64..3_000,
            burst_ms in 1u64..20_000,
            ops in prop::collection::vec((0u64..5_000, 0u64..500, 0u8..3), 0..50),
            query_tokens in 0u64..500,
        ) {
            let quota = Quota::per_minute(amount).with_burst(Duration::from_millis(burst_ms));
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
                Err(Retry::Never) => prop_assert!(query_tokens > quota.capacity_units()),
                Err(other @ (Retry::WhenSlotFrees | Retry::PeriodEnd(_))) => {
                    prop_assert!(false, "a bucket never answers {other:?}")
                }
            }
        }
    }
}
