//! The real, sans-IO rate limiter.
//!
//! A limit is data: a [`Limit`] is a [`Meter`] (what a request costs: requests, input, output
//! or total tokens, dollars) with a [`Quota`] (amount per period, any period from a second to a
//! month) and a [`Refill`] rule (a continuous token bucket, a fixed window that resets at each
//! period boundary, or an exact sliding window). The multi-axis limiter ([`MultiLimiter`])
//! enforces any set of them together with a concurrency cap and the acceleration (ramp) limit
//! ([`AccelerationLimit`]), all-or-nothing, and says *which axis* refused and *when to come
//! back* ([`Refusal`]); output and dollars are reserved or charged at admission ([`Permit`]) and
//! settled at completion ([`Consumed`]). Another holder's admissions and settlements (a gateway
//! replica's, learnt through a shared store) are recorded without a permit
//! ([`MultiLimiter::record_admission`], [`MultiLimiter::record_settlement`]).
//!
//! Every call takes `now` ([`Instant`], integer microseconds) as an argument: nothing here reads
//! a clock, sleeps or spawns. The simulator passes virtual time, the provider model builds its
//! server-side enforcement from these types (a deployment's own limits and pools shared by
//! several deployments are each a [`MultiLimiter`]), routing policies use them client-side, and
//! a live gateway passes wall time converted to an [`Instant`]. A `now` earlier than one seen
//! before (a clock step backwards) is tolerated: it refills nothing and never panics.
//!
//! It must not know about providers or policies. Buckets live in [`bucket`], window quotas in
//! [`windows`], the ramp in [`ramp`], the written schema in [`config`].

pub mod bucket;
pub mod config;
pub mod ramp;
pub mod windows;

pub use bucket::{Quota, TokenBucket};
pub use ramp::{AccelerationLimit, AccelerationUnit};

use crate::time::{Duration, Instant, MICROS_PER_HOUR};
use ramp::Ramp;
use smallvec::SmallVec;
use std::fmt;
use std::str::FromStr;
use windows::{FixedWindow, SlidingWindow};

/// What a limit counts, and so what a request costs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    /// One per request.
    Requests,
    /// Input tokens as the limiter's owner counts them (cache reads may or may not count).
    InputTokens,
    /// Output tokens, reserved from `max_tokens` at admission and settled to the actual output.
    OutputTokens,
    /// Input + output tokens (OpenAI's TPM): input and the output reserve at admission.
    Tokens,
    /// Dollars spent, in micro-dollars: nothing is known at admission (the price depends on the
    /// output), so admission needs some budget left and completion charges the actual cost.
    SpendUsd,
}

/// Every meter, in report order.
pub const METERS: [Meter; 5] =
    [Meter::Requests, Meter::InputTokens, Meter::OutputTokens, Meter::Tokens, Meter::SpendUsd];

/// Micro-dollars per dollar: the unit of [`Meter::SpendUsd`].
pub const MICRO_USD_PER_USD: f64 = 1e6;

impl Meter {
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::Requests => "requests",
            Meter::InputTokens => "input_tokens",
            Meter::OutputTokens => "output_tokens",
            Meter::Tokens => "tokens",
            Meter::SpendUsd => "spend_usd",
        }
    }

    /// Whether the meter counts tokens (input, output or both).
    pub fn is_token_count(self) -> bool {
        matches!(self, Meter::InputTokens | Meter::OutputTokens | Meter::Tokens)
    }

    /// Units taken at admission.
    fn admission_units(self, demand: Demand) -> u64 {
        match self {
            Meter::Requests => 1,
            Meter::InputTokens => demand.input_tokens,
            Meter::OutputTokens => demand.output_reserve_tokens,
            Meter::Tokens => demand.input_tokens.saturating_add(demand.output_reserve_tokens),
            Meter::SpendUsd => 0,
        }
    }

    /// Units that must be available to admit: what admission takes, except that a spend
    /// limit needs one micro-dollar left (a cap reached refuses, one not reached admits).
    fn admission_check_units(self, demand: Demand) -> u64 {
        match self {
            Meter::SpendUsd => 1,
            _ => self.admission_units(demand),
        }
    }

    /// What completion changes, given what admission reserved and what was consumed.
    fn settlement(self, demand: Demand, consumed: Consumed) -> Settlement {
        let reserved = demand.output_reserve_tokens;
        match self {
            Meter::Requests | Meter::InputTokens => Settlement::Nothing,
            Meter::OutputTokens | Meter::Tokens if consumed.output_tokens <= reserved => {
                Settlement::Refund(reserved - consumed.output_tokens)
            }
            Meter::OutputTokens | Meter::Tokens => Settlement::Debit(consumed.output_tokens - reserved),
            Meter::SpendUsd => Settlement::Debit(consumed.spend_micro_usd),
        }
    }
}

enum Settlement {
    Nothing,
    Refund(u64),
    Debit(u64),
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which limit refused: a quota (its meter, its period, and whether it is shared by several
/// callers, as a pooled family limit is), the concurrency cap, or the acceleration limit.
///
/// Written as a label: the meter alone for a caller's own per-minute limit (`input_tokens`,
/// the names reports have always used), `{meter}_per_{period}` for other periods
/// (`requests_per_1d`, `spend_usd_per_30d`, `spend_usd_per_10m`), prefixed `shared_` for a
/// shared one; `concurrency`, `acceleration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    Quota {
        meter: Meter,
        period: Duration,
        shared: bool,
    },
    /// Requests in flight at once.
    Concurrency,
    /// The acceleration (ramp) limit on sharp increases of usage.
    Acceleration,
}

impl Axis {
    /// A caller's own per-minute limit on `meter` (RPM, ITPM, OTPM, TPM).
    pub const fn per_minute(meter: Meter) -> Axis {
        Axis::Quota { meter, period: Duration::from_mins(1), shared: false }
    }
    pub const REQUESTS: Axis = Axis::per_minute(Meter::Requests);
    pub const INPUT_TOKENS: Axis = Axis::per_minute(Meter::InputTokens);
    pub const OUTPUT_TOKENS: Axis = Axis::per_minute(Meter::OutputTokens);
    pub const TOKENS: Axis = Axis::per_minute(Meter::Tokens);

    /// The meter a quota axis counts.
    pub fn meter(self) -> Option<Meter> {
        match self {
            Axis::Quota { meter, .. } => Some(meter),
            Axis::Concurrency | Axis::Acceleration => None,
        }
    }

    /// The same axis on a limiter shared by several callers.
    pub fn shared(self) -> Axis {
        match self {
            Axis::Quota { meter, period, .. } => Axis::Quota { meter, period, shared: true },
            other => other,
        }
    }
}

/// A period as a label: whole days as `d`, otherwise the duration's own form (`10m`, `1h`).
fn period_label(period: Duration) -> String {
    let day_us = 24 * MICROS_PER_HOUR;
    let us = period.as_micros();
    if us >= day_us && us.is_multiple_of(day_us) {
        format!("{}d", us / day_us)
    } else {
        period.to_string()
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Axis::Quota { meter, period, shared } => {
                if shared {
                    f.write_str("shared_")?;
                }
                f.write_str(meter.as_str())?;
                if period != Duration::from_mins(1) {
                    write!(f, "_per_{}", period_label(period))?;
                }
                Ok(())
            }
            Axis::Concurrency => f.write_str("concurrency"),
            Axis::Acceleration => f.write_str("acceleration"),
        }
    }
}

/// A label that names no axis.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown limit axis {0:?} (expected e.g. \"requests\", \"tokens_per_1d\", \"shared_spend_usd_per_30d\", \"concurrency\")")]
pub struct UnknownAxis(pub String);

impl FromStr for Axis {
    type Err = UnknownAxis;
    fn from_str(label: &str) -> Result<Axis, UnknownAxis> {
        match label {
            "concurrency" => return Ok(Axis::Concurrency),
            "acceleration" => return Ok(Axis::Acceleration),
            _ => {}
        }
        let unknown = || UnknownAxis(label.to_string());
        let (shared, rest) = match label.strip_prefix("shared_") {
            Some(rest) => (true, rest),
            None => (false, label),
        };
        let (meter_name, period) = match rest.split_once("_per_") {
            Some((meter, period)) => (meter, period.parse::<Duration>().map_err(|_| unknown())?),
            None => (rest, Duration::from_mins(1)),
        };
        let meter = METERS.into_iter().find(|m| m.as_str() == meter_name).ok_or_else(unknown)?;
        Ok(Axis::Quota { meter, period, shared })
    }
}

impl serde::Serialize for Axis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Axis {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Axis, D::Error> {
        let label = String::deserialize(deserializer)?;
        label.parse().map_err(serde::de::Error::custom)
    }
}

/// When a refused request could pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Earliest instant at which the same request passes if nothing else changes.
    At(Instant),
    /// Not before the quota's period ends (a fixed window: a monthly spend cap clears at the
    /// month's end). A quota exhausted, not a transient limit: a provider sends no
    /// `retry-after` and a client must not retry it.
    PeriodEnd(Instant),
    /// Never: the request is larger than the bucket's capacity. Must not be retried.
    Never,
    /// Only after an in-flight request completes (concurrency limit); no time is known.
    WhenSlotFrees,
}

impl Retry {
    /// The instant to come back at, if one is known and worth telling a client (a quota that
    /// clears only at its period's end is not).
    pub fn instant(self) -> Option<Instant> {
        match self {
            Retry::At(at) => Some(at),
            Retry::PeriodEnd(_) | Retry::Never | Retry::WhenSlotFrees => None,
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
            Retry::PeriodEnd(at) => write!(f, "{} quota exhausted until its period ends at {at}", self.axis),
            Retry::Never => write!(f, "request exceeds the {} capacity; never passes", self.axis),
            Retry::WhenSlotFrees => {
                write!(f, "{} limit reached; retry when a request completes", self.axis)
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// How a quota is enforced over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refill {
    /// A token bucket refilling continuously, holding `quota.burst` of refill (Anthropic's and
    /// OpenAI's per-minute and per-day limits).
    Continuous,
    /// At most `quota.amount` per period, reset at each boundary; the simulation starts
    /// `elapsed_at_start` into the first period with `used_at_start` already used.
    Fixed { elapsed_at_start: Duration, used_at_start: u64 },
    /// At most `quota.amount` over any trailing `quota.period`.
    Sliding,
}

/// One limit: what it counts, how much per period, and how it refills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub meter: Meter,
    pub quota: Quota,
    pub refill: Refill,
}

impl Limit {
    /// `amount` of `meter` per minute, continuous, the bucket holding `burst` of refill.
    pub fn per_minute(meter: Meter, amount: u64, burst: Duration) -> Limit {
        Limit { meter, quota: Quota::per_minute(amount).with_burst(burst), refill: Refill::Continuous }
    }

    /// The axis a refusal of this limit reports (never shared: the owner of a shared limiter
    /// marks it, see [`Axis::shared`]).
    pub fn axis(&self) -> Axis {
        Axis::Quota { meter: self.meter, period: self.quota.period, shared: false }
    }
}

/// The limits one multi-axis limiter enforces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Checked in this order; among several refusing, the most binding is reported, the first
    /// on a tie.
    pub quotas: Vec<Limit>,
    pub max_in_flight: Option<u32>,
    pub acceleration: Option<AccelerationLimit>,
}

impl Limits {
    /// Adds a limit (builder style).
    pub fn with(mut self, limit: Limit) -> Limits {
        self.quotas.push(limit);
        self
    }

    /// The amount of the caller's own continuous per-minute limit on `meter` (RPM, ITPM, OTPM,
    /// TPM), if there is one.
    pub fn per_minute(&self, meter: Meter) -> Option<u64> {
        self.quotas
            .iter()
            .find(|l| l.axis() == Axis::per_minute(meter) && l.refill == Refill::Continuous)
            .map(|l| l.quota.amount)
    }

    /// Whether nothing is limited.
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty() && self.max_in_flight.is_none() && self.acceleration.is_none()
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

/// What one admitted request consumed, known at completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Consumed {
    pub output_tokens: u64,
    /// The price of the attempt in micro-dollars ([`MICRO_USD_PER_USD`]).
    pub spend_micro_usd: u64,
}

impl Consumed {
    /// `output_tokens` produced at a cost of `cost_usd` (rounded to the micro-dollar).
    pub fn new(output_tokens: u64, cost_usd: f64) -> Consumed {
        // `as` saturates: a negative or NaN cost (never produced by a validated price) is 0.
        Consumed { output_tokens, spend_micro_usd: (cost_usd * MICRO_USD_PER_USD).round() as u64 }
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

/// One axis as a provider's rate-limit headers report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisRemaining {
    pub axis: Axis,
    /// The quota's amount per period (the `*-limit` header).
    pub limit: u64,
    /// Whole units left now (the `*-remaining` header).
    pub remaining: u64,
    /// Until the axis is full again if nothing is taken (the `*-reset` header).
    pub reset: Duration,
}

/// Remaining capacity per limited axis, in the limiter's order, and the requests in flight.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Remaining {
    pub axes: SmallVec<[AxisRemaining; 4]>,
    pub in_flight: u32,
}

impl Remaining {
    /// Units left on `axis`, if it is limited.
    pub fn of(&self, axis: Axis) -> Option<u64> {
        self.axes.iter().find(|a| a.axis == axis).map(|a| a.remaining)
    }
}

/// Keeps the refusal a caller should act on: `Never` over anything (retrying is pointless),
/// then a period's end (a quota exhausted: the first such axis, at the latest instant any
/// refusing axis allows), otherwise the latest `At` (retrying then passes every axis if nothing
/// else changed); on a tie the first seen, so the answer is deterministic.
pub fn more_binding(current: Option<Refusal>, candidate: Refusal) -> Refusal {
    let Some(current) = current else {
        return candidate;
    };
    match (current.retry, candidate.retry) {
        (Retry::Never, _) => current,
        (_, Retry::Never) => candidate,
        // A quota exhausted stays the answer, at the latest instant any axis allows.
        (Retry::PeriodEnd(a) | Retry::At(a), Retry::PeriodEnd(b)) | (Retry::PeriodEnd(a), Retry::At(b)) => {
            let axis =
                if matches!(current.retry, Retry::PeriodEnd(_)) { current.axis } else { candidate.axis };
            Refusal { axis, retry: Retry::PeriodEnd(a.max(b)) }
        }
        (Retry::PeriodEnd(_), Retry::WhenSlotFrees) => current,
        (Retry::WhenSlotFrees, Retry::PeriodEnd(_)) => candidate,
        (Retry::At(current_at), Retry::At(candidate_at)) if candidate_at > current_at => candidate,
        (Retry::WhenSlotFrees, Retry::At(_)) => candidate,
        _ => current,
    }
}

/// The state enforcing one [`Limit`].
#[derive(Clone, Debug)]
enum Enforcer {
    Bucket(TokenBucket),
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
}

impl Enforcer {
    fn new(limit: &Limit, now: Instant) -> Enforcer {
        let q = limit.quota;
        match limit.refill {
            Refill::Continuous => Enforcer::Bucket(TokenBucket::new(q, now)),
            Refill::Fixed { elapsed_at_start, used_at_start } => {
                Enforcer::Fixed(FixedWindow::new(q.amount, q.period, elapsed_at_start, used_at_start))
            }
            Refill::Sliding => Enforcer::Sliding(SlidingWindow::new(q.amount, q.period)),
        }
    }

    fn check(&self, now: Instant, units: u64) -> Result<(), Retry> {
        match self {
            Enforcer::Bucket(b) => b.check(now, units),
            Enforcer::Fixed(w) => w.check(now, units),
            Enforcer::Sliding(w) => w.check(now, units),
        }
    }

    fn take_unchecked(&mut self, now: Instant, units: u64) {
        match self {
            Enforcer::Bucket(b) => b.take_unchecked(now, units),
            Enforcer::Fixed(w) => w.take_unchecked(now, units),
            Enforcer::Sliding(w) => w.take_unchecked(now, units),
        }
    }

    fn refund(&mut self, now: Instant, units: u64) {
        match self {
            Enforcer::Bucket(b) => b.refund(now, units),
            Enforcer::Fixed(w) => w.refund(now, units),
            Enforcer::Sliding(w) => w.refund(now, units),
        }
    }

    fn available(&self, now: Instant) -> u64 {
        match self {
            Enforcer::Bucket(b) => b.available(now),
            Enforcer::Fixed(w) => w.available(now),
            Enforcer::Sliding(w) => w.available(now),
        }
    }

    fn time_until_full(&self, now: Instant) -> Duration {
        match self {
            Enforcer::Bucket(b) => b.time_until_full(now),
            Enforcer::Fixed(w) => w.time_until_full(now),
            Enforcer::Sliding(w) => w.time_until_full(now),
        }
    }
}

#[derive(Clone, Debug)]
struct Enforced {
    limit: Limit,
    enforcer: Enforcer,
}

/// Any set of quotas, a concurrency cap and an acceleration limit taken together,
/// all-or-nothing.
#[derive(Clone, Debug)]
pub struct MultiLimiter {
    limits: Limits,
    quotas: Vec<Enforced>,
    ramp: Option<Ramp>,
    in_flight: u32,
}

impl MultiLimiter {
    /// A limiter with full quotas and nothing in flight.
    pub fn new(limits: &Limits, now: Instant) -> Self {
        MultiLimiter {
            limits: limits.clone(),
            quotas: limits
                .quotas
                .iter()
                .map(|l| Enforced { limit: *l, enforcer: Enforcer::new(l, now) })
                .collect(),
            ramp: limits.acceleration.map(|a| Ramp::new(a, now)),
            in_flight: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Read-only version of [`MultiLimiter::try_admit`] (same answer, no state change).
    pub fn check(&self, now: Instant, demand: Demand) -> Result<(), Refusal> {
        let mut refusal = None;
        for q in &self.quotas {
            if let Err(retry) = q.enforcer.check(now, q.limit.meter.admission_check_units(demand)) {
                refusal = Some(more_binding(refusal, Refusal { axis: q.limit.axis(), retry }));
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
        Ok(self.admit_checked(now, demand))
    }

    /// Admits `demand` that [`MultiLimiter::check`] has just passed at `now`, with nothing
    /// changed in between (a caller checking several limiters before admitting on all of them).
    pub fn admit_checked(&mut self, now: Instant, demand: Demand) -> Permit {
        debug_assert!(self.check(now, demand).is_ok(), "admit_checked after a failed check");
        self.record_admission(now, demand);
        Permit { demand }
    }

    /// Completion (success, error or cancellation): output-counting axes settled from the
    /// reserve to the output consumed (the unused reserve refunded, capped at capacity, or the
    /// excess debited into debt), spend charged, and the concurrency slot released.
    pub fn settle(&mut self, now: Instant, permit: Permit, consumed: Consumed) {
        self.record_settlement(now, permit.demand, consumed);
    }

    /// Takes what admitting `demand` takes (every quota's units, the ramp's count, a
    /// concurrency slot) without checking and without a [`Permit`]: an admission made by
    /// another holder of the same limits (a gateway replica, learnt through a shared store).
    /// Quotas may go into debt; nothing is ever refused.
    pub fn record_admission(&mut self, now: Instant, demand: Demand) {
        for q in &mut self.quotas {
            q.enforcer.take_unchecked(now, q.limit.meter.admission_units(demand));
        }
        if let Some(ramp) = &mut self.ramp {
            ramp.record(now, demand);
        }
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// Settles an admission of `demand` recorded with [`MultiLimiter::record_admission`],
    /// exactly as [`MultiLimiter::settle`] settles a permit.
    pub fn record_settlement(&mut self, now: Instant, demand: Demand, consumed: Consumed) {
        for q in &mut self.quotas {
            match q.limit.meter.settlement(demand, consumed) {
                Settlement::Nothing => {}
                Settlement::Refund(units) => q.enforcer.refund(now, units),
                Settlement::Debit(units) => q.enforcer.take_unchecked(now, units),
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Checks only the spend limits (a cap reached refuses): a batch submission answers to the
    /// organisation's spend caps but not to the per-minute limits, which count synchronous
    /// traffic only.
    pub fn check_spend(&self, now: Instant) -> Result<(), Refusal> {
        let mut refusal = None;
        for q in self.quotas.iter().filter(|q| q.limit.meter == Meter::SpendUsd) {
            if let Err(retry) = q.enforcer.check(now, 1) {
                refusal = Some(more_binding(refusal, Refusal { axis: q.limit.axis(), retry }));
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// Charges `spend_micro_usd` to the spend limits alone (a batch result billed), into debt
    /// if need be: the work is done, so the bill stands.
    pub fn debit_spend(&mut self, now: Instant, spend_micro_usd: u64) {
        for q in self.quotas.iter_mut().filter(|q| q.limit.meter == Meter::SpendUsd) {
            q.enforcer.take_unchecked(now, spend_micro_usd);
        }
    }

    /// Requests admitted and not yet settled.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Whole units left per limited axis at `now`, with each axis's limit and reset.
    pub fn remaining(&self, now: Instant) -> Remaining {
        Remaining {
            axes: self
                .quotas
                .iter()
                .map(|q| AxisRemaining {
                    axis: q.limit.axis(),
                    limit: q.limit.quota.amount,
                    remaining: q.enforcer.available(now),
                    reset: q.enforcer.time_until_full(now),
                })
                .collect(),
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

    fn output(output_tokens: u64) -> Consumed {
        Consumed { output_tokens, spend_micro_usd: 0 }
    }

    /// Per-minute limits with a full minute of burst.
    fn per_minute(limits: &[(Meter, u64)]) -> Limits {
        limits.iter().fold(Limits::default(), |l, &(meter, amount)| {
            l.with(Limit::per_minute(meter, amount, Duration::from_mins(1)))
        })
    }

    #[test]
    fn axis_labels_are_the_report_names_and_parse_back() {
        let day = Duration::from_secs(86_400);
        let cases = [
            (Axis::REQUESTS, "requests"),
            (Axis::INPUT_TOKENS, "input_tokens"),
            (Axis::OUTPUT_TOKENS, "output_tokens"),
            (Axis::TOKENS, "tokens"),
            (Axis::Quota { meter: Meter::Requests, period: day, shared: false }, "requests_per_1d"),
            (
                Axis::Quota {
                    meter: Meter::SpendUsd,
                    period: Duration::from_secs(30 * 86_400),
                    shared: true,
                },
                "shared_spend_usd_per_30d",
            ),
            (
                Axis::Quota { meter: Meter::SpendUsd, period: Duration::from_mins(10), shared: false },
                "spend_usd_per_10m",
            ),
            (Axis::INPUT_TOKENS.shared(), "shared_input_tokens"),
            (Axis::Concurrency, "concurrency"),
            (Axis::Acceleration, "acceleration"),
        ];
        for (axis, label) in cases {
            assert_eq!(axis.to_string(), label);
            assert_eq!(label.parse::<Axis>(), Ok(axis), "{label}");
            assert_eq!(serde_json::to_string(&axis).unwrap(), format!("\"{label}\""));
        }
        assert!("requests_per_fortnight".parse::<Axis>().is_err());
        assert!("dollars".parse::<Axis>().is_err());
        let refusal = Refusal { axis: Axis::REQUESTS, retry: Retry::At(at_ms(1_500)) };
        assert_eq!(refusal.retry_after(at_ms(1_000)), Some(Duration::from_millis(500)));
        assert_eq!(refusal.to_string(), "requests limit reached; retry at t+1500ms");
        let quota = Refusal { axis: cases[5].0, retry: Retry::PeriodEnd(at_ms(1_500)) };
        assert_eq!(quota.retry_after(at_ms(1_000)), None, "a quota exhausted sends no retry-after");
    }

    #[test]
    fn default_limits_limit_nothing() {
        let limits = Limits::default();
        assert!(limits.is_empty());
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..1_000 {
            let _held = limiter.try_admit(Instant::ZERO, demand(1_000_000, 1_000_000)).unwrap();
        }
        assert_eq!(limiter.in_flight(), 1_000);
        assert_eq!(limiter.remaining(Instant::ZERO), Remaining { in_flight: 1_000, ..Remaining::default() });
    }

    #[test]
    fn a_spend_cap_admits_until_reached_charges_at_completion_and_reports_its_period_end() {
        // $1 per 30-day month, fixed: admission needs budget left, completion charges the cost.
        let month = Duration::from_secs(30 * 86_400);
        let cap = Limit {
            meter: Meter::SpendUsd,
            quota: Quota::per(1_000_000, month),
            refill: Refill::Fixed { elapsed_at_start: Duration::ZERO, used_at_start: 0 },
        };
        let mut limiter = MultiLimiter::new(&Limits::default().with(cap), Instant::ZERO);
        let first = limiter.try_admit(Instant::ZERO, demand(1_000, 100)).unwrap();
        let second = limiter.try_admit(Instant::ZERO, demand(1_000, 100)).unwrap();
        limiter.settle(at_ms(1_000), first, Consumed::new(100, 0.60));
        assert_eq!(limiter.remaining(at_ms(1_000)).axes[0].remaining, 400_000);
        // The second was admitted before the cap was reached: it is charged in full (overshoot).
        limiter.settle(at_ms(2_000), second, Consumed::new(100, 0.60));
        assert_eq!(limiter.remaining(at_ms(2_000)).axes[0].remaining, 0);
        let refusal = limiter.check(at_ms(2_000), demand(1, 1)).unwrap_err();
        assert_eq!(refusal.axis.to_string(), "spend_usd_per_30d");
        assert_eq!(refusal.retry, Retry::PeriodEnd(Instant::ZERO + month));
        assert!(limiter.try_admit(Instant::ZERO + month, demand(1, 1)).is_ok());
    }

    #[test]
    fn a_period_end_outranks_a_transient_wait_and_never_outranks_both() {
        let month = Duration::from_secs(30 * 86_400);
        let limits = per_minute(&[(Meter::Requests, 1), (Meter::OutputTokens, 100)]).with(Limit {
            meter: Meter::Requests,
            quota: Quota::per(1, month),
            refill: Refill::Fixed { elapsed_at_start: Duration::ZERO, used_at_start: 0 },
        });
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let _held = limiter.try_admit(Instant::ZERO, demand(0, 0)).unwrap();
        let refusal = limiter.check(Instant::ZERO, demand(0, 0)).unwrap_err();
        assert_eq!(refusal.retry, Retry::PeriodEnd(Instant::ZERO + month));
        assert_eq!(limiter.check(Instant::ZERO, demand(0, 101)).unwrap_err().retry, Retry::Never);
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(remaining.axes.len(), 3);
        assert_eq!((remaining.axes[2].limit, remaining.axes[2].remaining), (1, 0));
        assert_eq!(remaining.axes[0].reset, Duration::from_secs(60));
    }

    #[test]
    fn refused_axis_consumes_nothing_on_the_other_axes() {
        let limits = per_minute(&[(Meter::Requests, 10), (Meter::InputTokens, 1_000)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let _first = limiter.try_admit(Instant::ZERO, demand(900, 0)).unwrap();
        // ITPM has 100 left; 500 more needs 400 tokens at 1000 per minute = 24 s.
        let refusal = limiter.try_admit(Instant::ZERO, demand(500, 0)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::INPUT_TOKENS, retry: Retry::At(at_ms(24_000)) });
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(remaining.of(Axis::REQUESTS), Some(9), "the refused request took no RPM token");
        assert_eq!(remaining.of(Axis::INPUT_TOKENS), Some(100));
        assert_eq!(limiter.in_flight(), 1);
    }

    #[test]
    fn the_latest_retry_among_refusing_axes_is_reported() {
        let limits = per_minute(&[(Meter::Requests, 60), (Meter::InputTokens, 6_000)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..60 {
            let _held = limiter.try_admit(Instant::ZERO, demand(100, 0)).unwrap();
        }
        // Both empty. RPM needs 1 request at 60 per minute = 1 s; ITPM needs 200 tokens at 6000
        // per minute = 2 s, or 50 tokens = 0.5 s.
        let big = demand(200, 0);
        let small = demand(50, 0);
        let refusal = limiter.check(Instant::ZERO, big).unwrap_err();
        assert_eq!(refusal.axis, Axis::INPUT_TOKENS);
        assert_eq!(refusal.retry, Retry::At(at_ms(2_000)));
        let refusal = limiter.check(Instant::ZERO, small).unwrap_err();
        assert_eq!(refusal.axis, Axis::REQUESTS);
        assert_eq!(refusal.retry, Retry::At(at_ms(1_000)));
        // Retrying at the reported instant passes both axes.
        assert!(limiter.clone().try_admit(at_ms(1_000), small).is_ok());
        assert!(limiter.try_admit(at_ms(2_000), big).is_ok());
    }

    #[test]
    fn never_wins_over_a_later_retry() {
        let limits = per_minute(&[(Meter::Requests, 60), (Meter::OutputTokens, 1_000)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        for _ in 0..60 {
            let _held = limiter.try_admit(Instant::ZERO, demand(0, 0)).unwrap();
        }
        let refusal = limiter.check(Instant::ZERO, demand(0, 1_001)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::OUTPUT_TOKENS, retry: Retry::Never });
    }

    #[test]
    fn output_reservation_is_settled_to_the_actual_output() {
        let limits = per_minute(&[(Meter::OutputTokens, 6_000), (Meter::Tokens, 10_000)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(3_000, 1_000)).unwrap();
        assert_eq!(permit.demand(), demand(3_000, 1_000));
        // OTPM 6000 - 1000 reserved; TPM 10 000 - (3000 + 1000).
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(
            (remaining.of(Axis::OUTPUT_TOKENS), remaining.of(Axis::TOKENS)),
            (Some(5_000), Some(6_000))
        );
        // Only 200 produced: the unused 800 comes back on both output-counting axes.
        limiter.settle(Instant::ZERO, permit, output(200));
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(
            (remaining.of(Axis::OUTPUT_TOKENS), remaining.of(Axis::TOKENS)),
            (Some(5_800), Some(6_800))
        );
        assert_eq!(limiter.in_flight(), 0);

        // 1500 produced against a 1000 reserve: 500 more is debited.
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 1_000)).unwrap();
        limiter.settle(Instant::ZERO, permit, output(1_500));
        let remaining = limiter.remaining(Instant::ZERO);
        assert_eq!(
            (remaining.of(Axis::OUTPUT_TOKENS), remaining.of(Axis::TOKENS)),
            (Some(4_300), Some(5_300))
        );
    }

    #[test]
    fn refund_after_refill_is_capped_at_capacity() {
        let limits = per_minute(&[(Meter::OutputTokens, 6_000)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 1_000)).unwrap();
        // 30 s at 100 per second refills 3000 > the 1000 missing, so the bucket is already full
        // and the 800 refund must not push it past 6000.
        limiter.settle(at_ms(30_000), permit, output(200));
        assert_eq!(limiter.remaining(at_ms(30_000)).of(Axis::OUTPUT_TOKENS), Some(6_000));
    }

    #[test]
    fn output_beyond_the_reserve_puts_the_bucket_in_debt_and_delays_the_next_request() {
        let limits = per_minute(&[(Meter::OutputTokens, 600)]);
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let permit = limiter.try_admit(Instant::ZERO, demand(0, 600)).unwrap();
        limiter.settle(Instant::ZERO, permit, output(1_500));
        // Level 600 - 600 - 900 = -900. Reserving 100 needs 1000 tokens of refill at 600 per
        // minute: 1000 / 600 min = 100 s.
        assert_eq!(limiter.remaining(Instant::ZERO).of(Axis::OUTPUT_TOKENS), Some(0));
        let refusal = limiter.check(Instant::ZERO, demand(0, 100)).unwrap_err();
        assert_eq!(refusal, Refusal { axis: Axis::OUTPUT_TOKENS, retry: Retry::At(at_ms(100_000)) });
        assert!(limiter.check(at_ms(99_999), demand(0, 100)).is_err());
        assert!(limiter.try_admit(at_ms(100_000), demand(0, 100)).is_ok());
    }

    #[test]
    fn recorded_admissions_and_settlements_replay_another_holders_traffic() {
        // A gateway replica learns of another replica's traffic through a shared store: the
        // same admissions and settlements, recorded at the same instants, leave its limiter
        // exactly where the other's is.
        let limits = Limits {
            max_in_flight: Some(2),
            ..per_minute(&[(Meter::Requests, 3), (Meter::OutputTokens, 1_000)])
        };
        let mut own = MultiLimiter::new(&limits, Instant::ZERO);
        let mut mirror = MultiLimiter::new(&limits, Instant::ZERO);
        let first = own.try_admit(Instant::ZERO, demand(0, 600)).unwrap();
        mirror.record_admission(Instant::ZERO, demand(0, 600));
        let second = own.try_admit(at_ms(1_000), demand(0, 300)).unwrap();
        mirror.record_admission(at_ms(1_000), demand(0, 300));
        // RPM 3 - 1 + 0.05 (1 s of refill) - 1 = 1.05; OTPM 1000 - 600 + 16.7 - 300 = 116.7.
        let remaining = mirror.remaining(at_ms(1_000));
        assert_eq!(remaining, own.remaining(at_ms(1_000)));
        assert_eq!((remaining.of(Axis::REQUESTS), remaining.of(Axis::OUTPUT_TOKENS)), (Some(1), Some(116)));
        assert_eq!(mirror.in_flight(), 2);
        let full = Refusal { axis: Axis::Concurrency, retry: Retry::WhenSlotFrees };
        assert_eq!(mirror.check(at_ms(1_000), demand(0, 1)), Err(full));
        // The first produced 100 of its 600: 500 come back on both, and a slot frees.
        own.settle(at_ms(2_000), first, output(100));
        mirror.record_settlement(at_ms(2_000), demand(0, 600), output(100));
        assert_eq!(mirror.remaining(at_ms(2_000)), own.remaining(at_ms(2_000)));
        assert_eq!(mirror.remaining(at_ms(2_000)).of(Axis::OUTPUT_TOKENS), Some(633));
        // Recording never refuses: an admission beyond the limits puts the mirror in debt
        // (OTPM 633.3 - 1000), and its own next request waits for the refill.
        mirror.record_admission(at_ms(2_000), demand(0, 1_000));
        assert_eq!(mirror.remaining(at_ms(2_000)).of(Axis::OUTPUT_TOKENS), Some(0));
        assert_eq!(mirror.in_flight(), 2);
        assert_eq!(mirror.check(at_ms(2_000), demand(0, 1)).unwrap_err().axis, Axis::OUTPUT_TOKENS);
        own.settle(at_ms(3_000), second, output(300));
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
        limiter.settle(at_ms(5), first, output(0));
        assert_eq!(limiter.in_flight(), 1);
        assert!(limiter.try_admit(at_ms(5), Demand::default()).is_ok());
    }

    #[test]
    fn a_bucket_refusal_is_reported_before_concurrency() {
        let limits = Limits { max_in_flight: Some(1), ..per_minute(&[(Meter::Requests, 1)]) };
        let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
        let _held = limiter.try_admit(Instant::ZERO, Demand::default()).unwrap();
        let refusal = limiter.check(Instant::ZERO, Demand::default()).unwrap_err();
        assert_eq!(refusal.axis, Axis::REQUESTS);
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
                    limiter.settle(now, permit, output(0));
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
            limiter.settle(at_ms(200_000), permit, output(0));
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
        limiter.settle(Instant::ZERO, permit, output(0));
        let refusal = limiter.check(at_ms(59_999), demand(1, 0)).unwrap_err();
        assert_eq!(refusal.axis, Axis::Acceleration);
        assert_eq!(refusal.retry, Retry::At(at_ms(60_000)));
        // Window 1: allowance = max(10, 2 × 500) = 1000 tokens.
        let permit = limiter.try_admit(at_ms(60_000), demand(600, 0)).unwrap();
        limiter.settle(at_ms(60_000), permit, output(0));
        let permit = limiter.try_admit(at_ms(60_000), demand(400, 0)).unwrap();
        limiter.settle(at_ms(60_000), permit, output(0));
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
        /// passes; `check` always agrees with `try_admit`; `Never` stays never.
        #[test]
        fn multi_limiter_retry_at_passes(
            rpm in prop::option::of(1u64..200),
            itpm in prop::option::of(1u64..10_000),
            otpm in prop::option::of(1u64..10_000),
            tpm in prop::option::of(1u64..20_000),
            burst_s in 1u64..120,
            ramp in prop::option::of((1u64..120, 1.0f64..4.0, 1u64..50, any::<bool>())),
            // (meter index, amount, period in s, refill kind): daily, fixed and sliding quotas.
            windowed in prop::collection::vec((0usize..5, 1u64..20_000, 1u64..600, 0u8..3), 0..3),
            ops in prop::collection::vec(
                (0u64..5_000, 0u64..3_000, 0u64..3_000, prop::option::of(0u64..4_000)),
                1..80,
            ),
        ) {
            let burst = Duration::from_secs(burst_s);
            let mut limits = Limits { acceleration: ramp.map(|(window_s, max_growth, floor_per_window, by_tokens)| {
                    AccelerationLimit {
                        window: Duration::from_secs(window_s),
                        max_growth,
                        floor_per_window,
                        unit: if by_tokens { AccelerationUnit::InputTokens } else { AccelerationUnit::Requests },
                    }
                }),
                ..Limits::default()
            };
            for (meter, amount) in [(Meter::Requests, rpm), (Meter::InputTokens, itpm), (Meter::OutputTokens, otpm), (Meter::Tokens, tpm)] {
                if let Some(amount) = amount {
                    limits = limits.with(Limit::per_minute(meter, amount, burst));
                }
            }
            for (meter, amount, period_s, kind) in windowed {
                let quota = Quota::per(amount, Duration::from_secs(period_s));
                let refill = match kind {
                    0 => Refill::Continuous,
                    1 => Refill::Fixed { elapsed_at_start: Duration::from_secs(period_s / 2), used_at_start: amount / 3 },
                    _ => Refill::Sliding,
                };
                limits = limits.with(Limit { meter: METERS[meter], quota, refill });
            }
            let mut limiter = MultiLimiter::new(&limits, Instant::ZERO);
            let mut permits = std::collections::VecDeque::new();
            let mut now = Instant::ZERO;
            for (step_ms, input_tokens, output_reserve_tokens, settle_actual) in ops {
                now += Duration::from_millis(step_ms);
                if let (Some(actual), Some(permit)) = (settle_actual, permits.pop_front()) {
                    limiter.settle(now, permit, Consumed { output_tokens: actual, spend_micro_usd: actual * 7 });
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
                            Retry::PeriodEnd(retry_at) => {
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
