//! Window quotas, the two ways a limit is enforced other than a token bucket:
//!
//! - [`FixedWindow`]: at most `amount` units per calendar-like period (`[k·P, (k+1)·P)`,
//!   aligned to `Instant::ZERO` plus an offset), reset to zero at each boundary: a monthly spend
//!   cap that clears at 00:00 UTC on the 1st. A refusal clears only when the period ends, so it
//!   is reported as [`Retry::PeriodEnd`] (a quota, not a transient limit).
//! - [`SlidingWindow`]: at most `amount` units over any trailing `period` (a rolling
//!   "$ per 10 minutes"), kept as an exact log of debits; a refusal retries when enough of the
//!   log has aged out.
//!
//! Both allow debt (a debit past the limit: the request was already served) and refunds (an
//! unused reservation). They must not know what the units are.

use super::Retry;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;

/// A counter reset at every period boundary.
#[derive(Clone, Debug)]
pub struct FixedWindow {
    amount: u64,
    period_us: u64,
    /// Where the first boundary after `Instant::ZERO` falls, in µs into a period: the
    /// simulation may start part-way through a month.
    offset_us: u64,
    /// The latest window seen; never moves backwards.
    window_index: u64,
    used: u64,
}

impl FixedWindow {
    /// `amount` units per `period`; the simulation starts `elapsed_at_start` into the first
    /// period with `used_at_start` units already used (a team mid-month). A zero period is
    /// taken as one microsecond.
    pub fn new(amount: u64, period: Duration, elapsed_at_start: Duration, used_at_start: u64) -> FixedWindow {
        let period_us = period.as_micros().max(1);
        FixedWindow {
            amount,
            period_us,
            offset_us: elapsed_at_start.as_micros() % period_us,
            window_index: 0,
            used: used_at_start,
        }
    }

    fn index_at(&self, now: Instant) -> u64 {
        now.as_micros().saturating_add(self.offset_us) / self.period_us
    }

    /// Units used in the current window at `now` (a backward `now` counts in the latest).
    fn used_at(&self, now: Instant) -> u64 {
        if self.index_at(now) > self.window_index {
            0
        } else {
            self.used
        }
    }

    fn advance(&mut self, now: Instant) {
        let index = self.index_at(now);
        if index > self.window_index {
            self.window_index = index;
            self.used = 0;
        }
    }

    /// The next boundary after `now`.
    fn next_boundary(&self, now: Instant) -> Instant {
        let index = self.index_at(now).max(self.window_index);
        Instant::from_micros((index + 1).saturating_mul(self.period_us).saturating_sub(self.offset_us))
    }

    pub fn check(&self, now: Instant, units: u64) -> Result<(), Retry> {
        if units > self.amount {
            return Err(Retry::Never);
        }
        if self.used_at(now).saturating_add(units) <= self.amount {
            return Ok(());
        }
        Err(Retry::PeriodEnd(self.next_boundary(now)))
    }

    pub fn take_unchecked(&mut self, now: Instant, units: u64) {
        self.advance(now);
        self.used = self.used.saturating_add(units);
    }

    /// A refund after the boundary is lost with the window it belonged to: the new window
    /// started from zero.
    pub fn refund(&mut self, now: Instant, units: u64) {
        self.advance(now);
        self.used = self.used.saturating_sub(units);
    }

    pub fn available(&self, now: Instant) -> u64 {
        self.amount.saturating_sub(self.used_at(now))
    }

    pub fn time_until_full(&self, now: Instant) -> Duration {
        if self.used_at(now) == 0 {
            Duration::ZERO
        } else {
            self.next_boundary(now).saturating_since(now)
        }
    }
}

/// An exact trailing-window sum: every debit is logged with its instant and leaves the sum
/// `period` later. Memory is one entry per debit still inside the window.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    amount: u64,
    period: Duration,
    /// (instant, units) in time order; refunds shrink the newest entries.
    log: VecDeque<(Instant, u64)>,
    /// Sum of `log`'s units.
    sum: u64,
    latest: Instant,
}

impl SlidingWindow {
    pub fn new(amount: u64, period: Duration) -> SlidingWindow {
        SlidingWindow {
            amount,
            period: period.max(Duration::from_micros(1)),
            log: VecDeque::new(),
            sum: 0,
            latest: Instant::ZERO,
        }
    }

    /// Whether an entry logged at `at` still counts at `now`.
    fn counts(&self, at: Instant, now: Instant) -> bool {
        at + self.period > now.max(self.latest)
    }

    /// Units inside the window at `now`, without dropping anything (read-only).
    fn used_at(&self, now: Instant) -> u64 {
        let expired: u64 = self.log.iter().take_while(|(at, _)| !self.counts(*at, now)).map(|(_, u)| u).sum();
        self.sum - expired
    }

    fn advance(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
        while let Some(&(at, units)) = self.log.front() {
            if self.counts(at, now) {
                break;
            }
            self.sum -= units;
            self.log.pop_front();
        }
    }

    pub fn check(&self, now: Instant, units: u64) -> Result<(), Retry> {
        if units > self.amount {
            return Err(Retry::Never);
        }
        let mut used = self.used_at(now);
        if used.saturating_add(units) <= self.amount {
            return Ok(());
        }
        // Walk the live entries oldest first until enough has aged out.
        for &(at, entry_units) in self.log.iter().filter(|(at, _)| self.counts(*at, now)) {
            used -= entry_units;
            if used.saturating_add(units) <= self.amount {
                return Err(Retry::At(at + self.period));
            }
        }
        // Unreachable with `units <= amount` (an empty window admits it); stay safe.
        Err(Retry::Never)
    }

    pub fn take_unchecked(&mut self, now: Instant, units: u64) {
        self.advance(now);
        if units == 0 {
            return;
        }
        let at = self.latest;
        match self.log.back_mut() {
            Some((last, last_units)) if *last == at => *last_units = last_units.saturating_add(units),
            _ => self.log.push_back((at, units)),
        }
        self.sum = self.sum.saturating_add(units);
    }

    /// Gives back units from the newest entries first (the reservation being refunded is the
    /// latest one taken for it or newer).
    pub fn refund(&mut self, now: Instant, mut units: u64) {
        self.advance(now);
        while units > 0 {
            let Some((_, last_units)) = self.log.back_mut() else { break };
            let taken = units.min(*last_units);
            *last_units -= taken;
            units -= taken;
            self.sum -= taken;
            if *last_units == 0 {
                self.log.pop_back();
            }
        }
    }

    pub fn available(&self, now: Instant) -> u64 {
        self.amount.saturating_sub(self.used_at(now))
    }

    pub fn time_until_full(&self, now: Instant) -> Duration {
        match self.log.iter().rev().find(|(at, _)| self.counts(*at, now)) {
            Some(&(newest, _)) => (newest + self.period).saturating_since(now),
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at_s(s: u64) -> Instant {
        Instant::from_millis(s * 1_000)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_fixed_window_refuses_until_the_boundary_and_then_starts_from_zero() {
        // $500 a month as micro-dollars over a 30-day month; 10 days in, $450 already spent.
        let month = Duration::from_secs(30 * 86_400);
        let mut cap = FixedWindow::new(500_000_000, month, Duration::from_secs(10 * 86_400), 450_000_000);
        assert_eq!(cap.available(Instant::ZERO), 50_000_000);
        assert_eq!(cap.check(Instant::ZERO, 50_000_000), Ok(()));
        cap.take_unchecked(at_s(60), 80_000_000); // served past the cap: debt
        assert_eq!(cap.available(at_s(61)), 0);
        // The month ends 20 days after the start.
        let boundary = Instant::ZERO + Duration::from_secs(20 * 86_400);
        assert_eq!(cap.check(at_s(61), 1), Err(Retry::PeriodEnd(boundary)));
        assert_eq!(cap.time_until_full(at_s(61)), boundary.saturating_since(at_s(61)));
        assert_eq!(cap.check(boundary, 1), Ok(()));
        assert_eq!(cap.available(boundary), 500_000_000);
        assert_eq!(cap.check(boundary, 500_000_001), Err(Retry::Never));
    }

    #[test]
    fn a_fixed_window_ignores_a_backward_clock_and_loses_refunds_across_the_boundary() {
        let mut daily = FixedWindow::new(10, DAY, Duration::ZERO, 0);
        daily.take_unchecked(Instant::ZERO, 10);
        daily.take_unchecked(Instant::ZERO + DAY, 4); // the next day
                                                      // Stepping back into day 0 counts in day 1.
        assert_eq!(daily.available(Instant::ZERO), 6);
        daily.refund(Instant::ZERO + DAY, 10);
        assert_eq!(daily.available(Instant::ZERO + DAY), 10);
    }

    #[test]
    fn a_sliding_window_retries_when_enough_has_aged_out() {
        // $10 per 10 minutes in cents: 400 at 0 s, 300 at 60 s, 300 at 120 s.
        let ten_minutes = Duration::from_secs(600);
        let mut window = SlidingWindow::new(1_000, ten_minutes);
        for (s, units) in [(0, 400), (60, 300), (120, 300)] {
            assert_eq!(window.check(at_s(s), units), Ok(()));
            window.take_unchecked(at_s(s), units);
        }
        assert_eq!(window.available(at_s(300)), 0);
        // 500 more needs the 0 s and 60 s entries gone: at 660 s; 100 needs only the first.
        assert_eq!(window.check(at_s(300), 500), Err(Retry::At(at_s(660))));
        assert_eq!(window.check(at_s(300), 100), Err(Retry::At(at_s(600))));
        assert_eq!(window.check(at_s(599), 100), Err(Retry::At(at_s(600))));
        assert_eq!(window.check(at_s(600), 400), Ok(()));
        assert_eq!(window.time_until_full(at_s(300)), Duration::from_secs(420));
        window.refund(at_s(300), 350); // takes 300 from the 120 s entry, 50 from the 60 s one
        assert_eq!(window.available(at_s(300)), 350);
        assert_eq!(window.check(at_s(600), 750), Ok(()));
        assert_eq!(window.check(at_s(300), 1_001), Err(Retry::Never));
    }

    proptest! {
        /// Against a brute-force reference: the sliding window admits exactly when the debits of
        /// the trailing period plus the request fit, and a retry instant is the first at which
        /// the same request passes.
        #[test]
        fn sliding_window_matches_a_brute_force_sum(
            amount in 1u64..2_000,
            period_s in 1u64..100,
            ops in prop::collection::vec((0u64..40, 0u64..800), 1..60),
        ) {
            let period = Duration::from_secs(period_s);
            let mut window = SlidingWindow::new(amount, period);
            let mut debits: Vec<(Instant, u64)> = Vec::new();
            let mut now = Instant::ZERO;
            for (step_s, units) in ops {
                now += Duration::from_secs(step_s);
                let in_window = |t: Instant, debits: &[(Instant, u64)]| -> u64 {
                    debits.iter().filter(|(at, _)| *at + period > t).map(|(_, u)| u).sum()
                };
                let fits = in_window(now, &debits) + units <= amount;
                match window.check(now, units) {
                    Ok(()) => {
                        prop_assert!(fits);
                        window.take_unchecked(now, units);
                        debits.push((now, units));
                    }
                    Err(Retry::At(retry_at)) => {
                        prop_assert!(!fits && retry_at > now);
                        prop_assert!(in_window(retry_at, &debits) + units <= amount);
                        let before = Instant::from_micros(retry_at.as_micros() - 1);
                        prop_assert!(in_window(before, &debits) + units > amount);
                    }
                    Err(Retry::Never) => prop_assert!(units > amount),
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
                prop_assert_eq!(window.available(now), amount.saturating_sub(in_window(now, &debits)));
            }
        }
    }
}
