//! The acceleration (ramp) limit: how fast usage may grow from one window to the next.
//!
//! It must not know about buckets or providers: [`super::MultiLimiter`] consults it beside its
//! quotas.

use super::{Demand, Retry};
use crate::time::{Duration, Instant};

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
pub(super) struct Ramp {
    limit: AccelerationLimit,
    /// The latest window seen; never moves backwards.
    window_index: u64,
    admitted_units: u64,
    previous_units: u64,
}

impl Ramp {
    pub(super) fn new(limit: AccelerationLimit, now: Instant) -> Self {
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

    pub(super) fn check(&self, now: Instant, demand: Demand) -> Result<(), Retry> {
        let (index, previous_units, admitted_units) = self.counts_at(now);
        let units = self.limit.units(demand);
        if admitted_units == 0 || admitted_units.saturating_add(units) <= self.limit.allowance(previous_units)
        {
            return Ok(());
        }
        let next_window_us = (index + 1).saturating_mul(self.limit.window_us());
        Err(Retry::At(Instant::from_micros(next_window_us)))
    }

    pub(super) fn record(&mut self, now: Instant, demand: Demand) {
        let (index, previous_units, admitted_units) = self.counts_at(now);
        self.window_index = index;
        self.previous_units = previous_units;
        self.admitted_units = admitted_units.saturating_add(self.limit.units(demand));
    }
}
