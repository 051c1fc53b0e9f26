//! How large a token bucket can be, given what one axis of a limiter was observed to do: a
//! replay of the bucket (continuous refill at the known limit, capped at a candidate capacity,
//! as [`crate::limiter::TokenBucket`] does) over the attempts it admitted and refused, and the
//! interval of capacities consistent with all of them.
//!
//! The level of a bucket under a fixed sequence of takes and refunds never falls when the
//! capacity grows, so each observation bounds the capacity on one side: an admission needs
//! `level >= cost` (a lower bound), a refusal `level < cost` (an upper bound), a `retry-after`
//! of `r` rounded up to a granularity `g` says the wait `(cost − level) / rate` lay in
//! `(r − g, r]` (both), and a `remaining` header is a level the bucket held (a lower bound).
//! The bounds are found by bisection.
//!
//! Observed times are the client's, not the limiter's. With a clock tolerance τ, two events
//! recorded less than τ apart may have happened in the other order, and any time may be off
//! by τ. The replay runs in recorded order; each check then allows the level to have been
//! higher (for a lower bound) or lower (for an upper bound) by the refill of 2τ plus every
//! take and refund within τ whose order relative to it may be wrong. That slack is local: time
//! errors do not accumulate along the replay (a full bucket resynchronises, and between full
//! moments the level is linear in what was taken), so the true capacity stays inside the
//! interval while the interval stays narrow. Events at one instant keep the engine's order:
//! settlements, then refusals, then takes; with τ = 0 the replay is exact.
//!
//! It must not know about attempt records or headers: the caller turns those into
//! [`BucketEvent`]s on one axis.

use serde::Serialize;

/// One thing that happened to one axis's bucket, at a time in ms since the run started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BucketEvent {
    /// An admitted attempt took `tokens` (1 for requests; counted input; the output
    /// reservation): the level was at least that.
    Take { at_ms: f64, tokens: f64 },
    /// Settlement gave back an unused reservation (capped at capacity).
    Refund { at_ms: f64, tokens: f64 },
    /// Settlement charged output beyond the reservation (the level may go into debt).
    Debit { at_ms: f64, tokens: f64 },
    /// An attempt this axis refused, wanting `tokens`; with the `retry-after` it carried and
    /// the granularity that header is rounded up to.
    Refused { at_ms: f64, tokens: f64, retry_after_ms: Option<f64>, granularity_ms: f64 },
}

impl BucketEvent {
    fn at_ms(&self) -> f64 {
        match *self {
            BucketEvent::Take { at_ms, .. }
            | BucketEvent::Refund { at_ms, .. }
            | BucketEvent::Debit { at_ms, .. }
            | BucketEvent::Refused { at_ms, .. } => at_ms,
        }
    }

    /// Order within one instant, as the engine's tie rule has it: settlements of attempts
    /// ending now come before attempts starting now. A refusal's lower-bound checks see the
    /// level before this instant's takes and its upper-bound checks the level after them, so
    /// whatever order the takes of one instant really had, both bounds stay sound.
    fn phase(&self) -> u8 {
        match self {
            BucketEvent::Refund { .. } | BucketEvent::Debit { .. } => 0,
            BucketEvent::Refused { .. } => 1,
            BucketEvent::Take { .. } => 2,
        }
    }

    /// What the event removes from the level (takes and debits) and what it gives back.
    fn flows(&self) -> (f64, f64) {
        match *self {
            BucketEvent::Take { tokens, .. } | BucketEvent::Debit { tokens, .. } => (tokens, 0.0),
            BucketEvent::Refund { tokens, .. } => (0.0, tokens),
            BucketEvent::Refused { .. } => (0.0, 0.0),
        }
    }
}

/// The capacities (in tokens) one axis's observations allow: `low <= capacity <= high`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CapacityBounds {
    /// The smallest capacity that admits every admitted attempt (and holds every `remaining`
    /// level seen, and every `retry-after`'s lower bound).
    pub low_tokens: f64,
    /// The largest capacity that refuses every refusal attributed to this axis; `None` when
    /// nothing bounds it from above (no refusal on this axis).
    pub high_tokens: Option<f64>,
    pub takes: usize,
    pub refusals: usize,
}

impl CapacityBounds {
    /// Whether some capacity satisfies every observation.
    pub fn is_consistent(&self) -> bool {
        self.high_tokens.is_none_or(|high| high >= self.low_tokens)
    }

    /// Both bounds of two runs' observations of the same bucket (each run starts full).
    pub fn intersect(self, other: CapacityBounds) -> CapacityBounds {
        let high_tokens = match (self.high_tokens, other.high_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        CapacityBounds {
            low_tokens: self.low_tokens.max(other.low_tokens),
            high_tokens,
            takes: self.takes + other.takes,
            refusals: self.refusals + other.refusals,
        }
    }
}

/// One axis's bucket over one observed run, starting full at time 0.
#[derive(Clone, Debug)]
pub struct AxisReplay {
    /// Refill rate, tokens per ms.
    rate_per_ms: f64,
    /// Events in replay order (time, then phase, then as given), and their times.
    events: Vec<BucketEvent>,
    times_ms: Vec<f64>,
    /// Prefix sums over events of what they remove and give back (index i: events before i).
    removed: Vec<f64>,
    returned: Vec<f64>,
    /// τ (see the module doc).
    tolerance_ms: f64,
    /// [`AxisReplay::slack`] at each event's time (it does not depend on the capacity).
    slack_at_event: Vec<(f64, f64)>,
}

/// The relative precision the bisection stops at: far below one token for any real bucket.
const RELATIVE_PRECISION: f64 = 1e-10;

/// The largest capacity ever tried (tokens): beyond any real limit × burst.
const MAX_CAPACITY_TOKENS: f64 = 1e18;

/// Slack of every comparison for float rounding (sums of many token counts).
fn epsilon(tokens: f64) -> f64 {
    1e-9 + tokens.abs() * 1e-12
}

impl AxisReplay {
    /// A replay of a bucket refilling `limit_per_min` tokens per minute, whose observed times
    /// may be off by up to `clock_tolerance_ms`.
    pub fn new(limit_per_min: u64, mut events: Vec<BucketEvent>, clock_tolerance_ms: f64) -> AxisReplay {
        events.sort_by(|a, b| a.at_ms().total_cmp(&b.at_ms()).then(a.phase().cmp(&b.phase())));
        let times_ms: Vec<f64> = events.iter().map(BucketEvent::at_ms).collect();
        let (mut removed, mut returned) = (vec![0.0], vec![0.0]);
        for e in &events {
            let (out, back) = e.flows();
            removed.push(removed.last().copied().unwrap_or(0.0) + out);
            returned.push(returned.last().copied().unwrap_or(0.0) + back);
        }
        let mut replay = AxisReplay {
            rate_per_ms: limit_per_min as f64 / 60_000.0,
            events,
            times_ms,
            removed,
            returned,
            tolerance_ms: clock_tolerance_ms.max(0.0),
            slack_at_event: Vec::new(),
        };
        replay.slack_at_event = replay.times_ms.iter().map(|t| replay.slack(*t)).collect();
        replay
    }

    /// How much higher (`up`) or lower (`down`) than the replay's the level at `at_ms` may
    /// truly have been: the refill of 2τ, plus the takes recorded up to τ before it (that may
    /// have come after) and refunds up to τ after it (that may have come before), or the
    /// reverse. Events at the same instant are in the replay's order and not counted. Zero
    /// when τ = 0.
    fn slack(&self, at_ms: f64) -> (f64, f64) {
        if self.tolerance_ms == 0.0 {
            return (0.0, 0.0);
        }
        let index = |pred: &dyn Fn(f64) -> bool| self.times_ms.partition_point(|t| pred(*t));
        let window_start = index(&|t| t < at_ms - self.tolerance_ms);
        let same_start = index(&|t| t < at_ms);
        let same_end = index(&|t| t <= at_ms);
        let window_end = index(&|t| t <= at_ms + self.tolerance_ms);
        let sum = |prefix: &[f64], from: usize, to: usize| prefix[to] - prefix[from];
        let refill = self.rate_per_ms * 2.0 * self.tolerance_ms;
        let up =
            refill + sum(&self.removed, window_start, same_start) + sum(&self.returned, same_end, window_end);
        let down =
            refill + sum(&self.removed, same_end, window_end) + sum(&self.returned, window_start, same_start);
        (up, down)
    }

    /// Replays with `capacity` and calls `visit(index, level_before_event)` at each event
    /// (levels after refill, before the event's own change); stops when `visit` says false.
    fn replay(&self, capacity: f64, mut visit: impl FnMut(usize, f64) -> bool) {
        let mut level = capacity;
        let mut last_ms = 0.0_f64;
        for (index, event) in self.events.iter().enumerate() {
            let at_ms = event.at_ms().max(last_ms);
            level = (level + self.rate_per_ms * (at_ms - last_ms)).min(capacity);
            last_ms = at_ms;
            if !visit(index, level) {
                return;
            }
            match *event {
                BucketEvent::Take { tokens, .. } | BucketEvent::Debit { tokens, .. } => level -= tokens,
                BucketEvent::Refund { tokens, .. } => level = (level + tokens).min(capacity),
                BucketEvent::Refused { .. } => {}
            }
        }
    }

    /// The level just after every take of the refusal's instant: the replay has no order for
    /// attempts starting at the same instant, so the lowest the level could have been.
    fn level_after_instant(&self, capacity: f64, index: usize, level: f64) -> f64 {
        let at_ms = self.times_ms[index];
        let taken: f64 =
            self.events[index + 1..].iter().take_while(|e| e.at_ms() == at_ms).map(|e| e.flows().0).sum();
        (level - taken).min(capacity)
    }

    /// Whether `capacity` satisfies every lower-bound observation: admissions, and the lower
    /// end of each refusal's `retry-after`.
    fn admits_all(&self, capacity: f64) -> bool {
        let mut ok = true;
        self.replay(capacity, |index, level| {
            ok = match self.events[index] {
                BucketEvent::Take { at_ms, tokens } => {
                    // A take larger than the bucket never passes, whatever the order.
                    tokens <= capacity + epsilon(tokens)
                        && level + self.slack(at_ms).0 + epsilon(tokens) >= tokens
                }
                BucketEvent::Refused { at_ms, tokens, retry_after_ms: Some(r), .. } => {
                    level + self.slack(at_ms).0 + epsilon(tokens) >= tokens - self.rate_per_ms * r
                }
                _ => true,
            };
            ok
        });
        ok
    }

    /// Whether `capacity` satisfies every upper-bound observation: each refusal's level was
    /// below its cost, and below the upper end its `retry-after` allows.
    fn refuses_all(&self, capacity: f64) -> bool {
        let mut ok = true;
        self.replay(capacity, |index, level| {
            if let BucketEvent::Refused { at_ms, tokens, retry_after_ms, granularity_ms } = self.events[index]
            {
                let lowest = self.level_after_instant(capacity, index, level) - self.slack(at_ms).1;
                let bound = match retry_after_ms {
                    // The wait exceeded r − g (less one µs: the limiter rounds the wait up to
                    // whole µs before the header rounds it up to g).
                    Some(r) if r > granularity_ms => tokens - self.rate_per_ms * (r - granularity_ms - 0.001),
                    _ => tokens,
                };
                ok = lowest - epsilon(tokens) < bound;
            }
            ok
        });
        ok
    }

    /// For each refusal-like probe `(at_ms, tokens)`: whether the bucket with `capacity` could
    /// have refused it (its level, after every event of the probe's instant and less the
    /// slack, below `tokens`). Probes are given in any order; the answers follow it.
    pub fn could_refuse(&self, capacity: f64, probes: &[(f64, f64)]) -> Vec<bool> {
        let mut order: Vec<usize> = (0..probes.len()).collect();
        order.sort_by(|a, b| probes[*a].0.total_cmp(&probes[*b].0));
        let mut answers = vec![false; probes.len()];
        let mut pending = order.into_iter().peekable();
        let mut level = capacity;
        let mut last_ms = 0.0_f64;
        // Answers the pending probes earlier than `before_ms` from the level at `last_ms`.
        let mut answer = |before_ms: f64, level: f64, last_ms: f64| {
            while let Some(&i) = pending.peek() {
                let (at_ms, tokens) = probes[i];
                if at_ms >= before_ms {
                    break;
                }
                let refilled = (level + self.rate_per_ms * (at_ms - last_ms).max(0.0)).min(capacity);
                answers[i] = refilled - self.slack(at_ms).1 - epsilon(tokens) < tokens;
                pending.next();
            }
        };
        for event in &self.events {
            let at_ms = event.at_ms().max(last_ms);
            // A probe at an earlier instant than this event sees every event before it.
            answer(at_ms, level, last_ms);
            level = (level + self.rate_per_ms * (at_ms - last_ms)).min(capacity);
            last_ms = at_ms;
            match *event {
                BucketEvent::Take { tokens, .. } | BucketEvent::Debit { tokens, .. } => level -= tokens,
                BucketEvent::Refund { tokens, .. } => level = (level + tokens).min(capacity),
                BucketEvent::Refused { .. } => {}
            }
        }
        answer(f64::INFINITY, level, last_ms);
        answers
    }

    /// The interval of capacities consistent with every event and with a bucket that held at
    /// least `level_seen_tokens` at some point (the largest `remaining` header, less its
    /// rounding).
    pub fn bounds(&self, level_seen_tokens: f64) -> CapacityBounds {
        let takes = self.events.iter().filter(|e| matches!(e, BucketEvent::Take { .. })).count();
        let refusals = self.events.iter().filter(|e| matches!(e, BucketEvent::Refused { .. })).count();
        let floor = level_seen_tokens.max(0.0);
        // Lower bound: the smallest capacity admitting everything (true for a capacity beyond
        // every take's total, since the bucket then never runs dry).
        let feasible_low = |c: f64| c >= floor && self.admits_all(c);
        let mut high = floor.max(1.0);
        while !feasible_low(high) && high < MAX_CAPACITY_TOKENS {
            high *= 2.0;
        }
        let mut low = 0.0;
        while high - low > RELATIVE_PRECISION * high.max(1.0) {
            let middle = 0.5 * (low + high);
            if feasible_low(middle) {
                high = middle;
            } else {
                low = middle;
            }
        }
        let low_tokens = high;
        // Upper bound: the largest capacity still refusing every refusal (always true at 0).
        let high_tokens = (refusals > 0).then(|| {
            let mut low = 0.0;
            let mut high = low_tokens.max(1.0);
            while self.refuses_all(high) && high < MAX_CAPACITY_TOKENS {
                low = high;
                high *= 2.0;
            }
            if self.refuses_all(high) {
                return f64::INFINITY;
            }
            while high - low > RELATIVE_PRECISION * high.max(1.0) {
                let middle = 0.5 * (low + high);
                if self.refuses_all(middle) {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            low
        });
        CapacityBounds { low_tokens, high_tokens: high_tokens.filter(|h| h.is_finite()), takes, refusals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(at_ms: f64) -> BucketEvent {
        BucketEvent::Take { at_ms, tokens: 1.0 }
    }

    fn refused(at_ms: f64, retry_after_ms: Option<f64>, granularity_ms: f64) -> BucketEvent {
        BucketEvent::Refused { at_ms, tokens: 1.0, retry_after_ms, granularity_ms }
    }

    /// 60 RPM (one request per second, 0.001 per ms) holding 10 s of refill: capacity 10.
    /// Requests 1 ms apart from t = 0: the first ten are admitted, the 11th and 12th refused.
    /// The 10th (at 9 ms) needs C − 9 + 0.009 >= 1, so C >= 9.991; the 11th (at 10 ms, after
    /// ten takes) needs C − 10 + 0.010 < 1, the 12th C − 10 + 0.011 < 1, so C < 10.989.
    fn hand_worked(retry_after_ms: Option<f64>, granularity_ms: f64) -> Vec<BucketEvent> {
        let mut events: Vec<BucketEvent> = (0..10).map(|i| take(i as f64)).collect();
        events.push(refused(10.0, retry_after_ms, granularity_ms));
        events.push(refused(11.0, retry_after_ms, granularity_ms));
        events
    }

    #[test]
    fn admissions_and_refusals_bound_a_hand_worked_bucket() {
        let bounds = AxisReplay::new(60, hand_worked(None, 1_000.0), 0.0).bounds(0.0);
        assert!((bounds.low_tokens - 9.991).abs() < 1e-6, "{bounds:?}");
        assert!((bounds.high_tokens.unwrap() - 10.989).abs() < 1e-6, "{bounds:?}");
        assert_eq!((bounds.takes, bounds.refusals), (10, 2));
        assert!(bounds.is_consistent());
        // Without refusals nothing bounds it from above; a `remaining` of 12 raises the floor.
        let events: Vec<BucketEvent> = (0..10).map(|i| take(i as f64)).collect();
        let replay = AxisReplay::new(60, events, 0.0);
        assert_eq!(replay.bounds(0.0).high_tokens, None);
        assert!((replay.bounds(12.0).low_tokens - 12.0).abs() < 1e-6);
    }

    #[test]
    fn a_retry_after_narrows_the_interval() {
        // With C = 10 the level at 10 ms is 0.01: the wait for one token is 0.99 s. Rounded up
        // to 100 ms the header says 1.0 s, so the wait was in (0.9, 1.0] s: the level was in
        // [0, 0.1), i.e. C − 9.99 in [0, 0.1) at 10 ms: C in [9.99, 10.09). With the 12th
        // refusal (C − 9.989 < 0.1 at 11 ms) the upper end is 10.089; the 10th admission keeps
        // the lower end at 9.991.
        let bounds = AxisReplay::new(60, hand_worked(Some(1_000.0), 100.0), 0.0).bounds(0.0);
        assert!((bounds.low_tokens - 9.991).abs() < 1e-6, "{bounds:?}");
        assert!((bounds.high_tokens.unwrap() - 10.089 - 0.000_001).abs() < 1e-5, "{bounds:?}");
    }

    #[test]
    fn settlement_refunds_and_debits_move_the_level() {
        // 600 tokens per minute (0.01 per ms), capacity C. A take of 8 at 0 with 6 refunded at
        // 100 ms (level C − 8 + 1 + 6, capped), then a take of 9 at 100 ms: C − 1 >= 9 at most
        // needs C >= 10 (the cap binds only above that); refused 5 at 100 ms after it: the
        // level C − 10 < 5, so C < 15.
        let events = vec![
            BucketEvent::Take { at_ms: 0.0, tokens: 8.0 },
            BucketEvent::Refund { at_ms: 100.0, tokens: 6.0 },
            BucketEvent::Take { at_ms: 100.0, tokens: 9.0 },
            BucketEvent::Refused { at_ms: 100.0, tokens: 5.0, retry_after_ms: None, granularity_ms: 1.0 },
        ];
        let bounds = AxisReplay::new(600, events, 0.0).bounds(0.0);
        assert!((bounds.low_tokens - 10.0).abs() < 1e-6, "{bounds:?}");
        assert!((bounds.high_tokens.unwrap() - 15.0).abs() < 1e-6, "{bounds:?}");
        // A debit of 20 at 50 ms puts a bucket of 10 into debt: a take at 60 ms fails.
        let events = vec![
            BucketEvent::Debit { at_ms: 50.0, tokens: 20.0 },
            BucketEvent::Take { at_ms: 60.0, tokens: 1.0 },
        ];
        let bounds = AxisReplay::new(600, events, 0.0).bounds(0.0);
        // Needs C − 20 + 0.1 >= 1 (refill 0.01/ms over 10 ms, the cap not binding).
        assert!((bounds.low_tokens - 20.9).abs() < 1e-6, "{bounds:?}");
    }

    #[test]
    fn could_refuse_reads_the_level_at_each_probe() {
        let replay = AxisReplay::new(60, (0..10).map(|i| take(i as f64)).collect(), 0.0);
        // With capacity 10: at 8.5 ms nine taken (level 1.0085), at 10 ms all ten (0.01); by
        // 5 s the bucket has refilled to 5, and before the first take it is full.
        let answers = replay.could_refuse(10.0, &[(10.0, 1.0), (8.5, 1.0), (5_000.0, 1.0), (-1.0, 1.0)]);
        assert_eq!(answers, vec![true, false, false, false]);
        assert!(!replay.could_refuse(12.0, &[(10.0, 1.0)])[0]);
    }

    #[test]
    fn a_clock_tolerance_allows_reordering_within_it() {
        // Truly (capacity 10): takes at 0..9 ms, then a refusal at 9.2 ms. The client stamped
        // the refusal 0.4 ms early, at 8.8 ms, before the 10th take. Read literally the
        // refusal saw C − 9 + 0.0088 < 1, so C < 9.9912: the true 10 is excluded. With
        // τ = 0.5 ms the refusal's level may have been lower by the take at 9 ms and 1 ms of
        // refill (C < 10.9922), the 10th take's higher by 1 ms of refill (C >= 9.990).
        let mut events: Vec<BucketEvent> = (0..10).map(|i| take(i as f64)).collect();
        events.push(refused(8.8, None, 1_000.0));
        let exact = AxisReplay::new(60, events.clone(), 0.0).bounds(0.0);
        assert!((exact.high_tokens.unwrap() - 9.9912).abs() < 1e-6, "{exact:?}");
        let tolerant = AxisReplay::new(60, events, 0.5).bounds(0.0);
        assert!((tolerant.low_tokens - 9.990).abs() < 1e-6, "{tolerant:?}");
        assert!((tolerant.high_tokens.unwrap() - 10.9922).abs() < 1e-6, "{tolerant:?}");
    }

    #[test]
    fn runs_intersect_and_inconsistency_is_reported() {
        let a = CapacityBounds { low_tokens: 5.0, high_tokens: Some(9.0), takes: 3, refusals: 1 };
        let b = CapacityBounds { low_tokens: 6.0, high_tokens: None, takes: 2, refusals: 0 };
        let both = a.intersect(b);
        assert_eq!((both.low_tokens, both.high_tokens, both.takes), (6.0, Some(9.0), 5));
        let c = CapacityBounds { low_tokens: 10.0, high_tokens: None, takes: 1, refusals: 0 };
        assert!(!both.intersect(c).is_consistent());
    }
}
