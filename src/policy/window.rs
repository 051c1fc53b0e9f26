//! The rolling window of latency samples a router keeps per deployment: time to first token
//! and output speed of its finished attempts over the last few minutes, with exact
//! nearest-rank quantiles maintained incrementally.
//!
//! Each sample is inserted into, and on expiry removed from, an ordered multiset of values
//! ([`RankedValues`]: sorted chunks of at most [`CHUNK`] values), so a sample costs a binary
//! search and a short in-chunk move, and a quantile is a walk over chunk lengths. Nothing is
//! copied or re-sorted when a quantile is asked for, whatever the traffic rate. Quantiles are
//! exactly those of [`quantile_of`] on the window's values (nearest rank, `f64::total_cmp`
//! order), so routing decisions do not depend on how the window is stored.
//!
//! It knows nothing of what the samples are used for (sorting, cut-offs, hedge delays) nor of
//! how often its owner refreshes them.

use crate::time::{Duration, Instant};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// The most values one sorted chunk of a [`RankedValues`] holds before it splits in two.
pub const CHUNK: usize = 128;

/// The nearest-rank index (0-based) of `quantile` among `len > 0` sorted values.
fn nearest_rank(quantile: f64, len: usize) -> usize {
    ((quantile.clamp(0.0, 1.0) * len as f64).ceil() as usize).clamp(1, len) - 1
}

/// The nearest-rank quantile of `values` (reordered in place), or None when empty. The
/// definition every quantile of this module follows.
pub fn quantile_of(values: &mut [f64], quantile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = nearest_rank(quantile, values.len());
    let (_, value, _) = values.select_nth_unstable_by(rank, f64::total_cmp);
    Some(*value)
}

/// An ordered multiset of `f64` (in `total_cmp` order) answering rank queries: sorted chunks,
/// each non-empty and at most [`CHUNK`] long, every value of a chunk ≤ every value of the next,
/// with each chunk's largest value kept alongside so finding a chunk touches one array.
#[derive(Clone, Debug, Default)]
pub struct RankedValues {
    chunks: Vec<Vec<f64>>,
    /// `maxes[i]` is the last (largest) value of `chunks[i]`.
    maxes: Vec<f64>,
    len: usize,
}

impl RankedValues {
    /// How many values are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds, or would hold, `value`: the first whose largest value is ≥ it
    /// (the last chunk when `value` is larger than everything). There is at least one chunk.
    fn chunk_for(&self, value: f64) -> usize {
        let i = self.maxes.partition_point(|max| max.total_cmp(&value) == Ordering::Less);
        i.min(self.maxes.len() - 1)
    }

    /// Adds one `value`.
    pub fn insert(&mut self, value: f64) {
        self.len += 1;
        if self.chunks.is_empty() {
            let mut chunk = Vec::with_capacity(CHUNK + 1);
            chunk.push(value);
            self.chunks.push(chunk);
            self.maxes.push(value);
            return;
        }
        let i = self.chunk_for(value);
        let chunk = &mut self.chunks[i];
        let at = chunk.partition_point(|x| x.total_cmp(&value) != Ordering::Greater);
        chunk.insert(at, value);
        if at + 1 == chunk.len() {
            self.maxes[i] = value;
        }
        if chunk.len() > CHUNK {
            let mut upper = Vec::with_capacity(CHUNK + 1);
            upper.extend_from_slice(&chunk[CHUNK / 2..]);
            chunk.truncate(CHUNK / 2);
            self.maxes[i] = chunk[CHUNK / 2 - 1];
            self.maxes.insert(i + 1, upper[upper.len() - 1]);
            self.chunks.insert(i + 1, upper);
        }
    }

    /// Removes one occurrence of `value` (the same bits); false if there was none.
    pub fn remove(&mut self, value: f64) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let i = self.chunk_for(value);
        let chunk = &mut self.chunks[i];
        let at = chunk.partition_point(|x| x.total_cmp(&value) == Ordering::Less);
        if chunk.get(at).is_none_or(|x| x.total_cmp(&value) != Ordering::Equal) {
            return false;
        }
        chunk.remove(at);
        self.len -= 1;
        let left = chunk.len();
        if left == 0 {
            self.chunks.remove(i);
            self.maxes.remove(i);
            return true;
        }
        if at == left {
            self.maxes[i] = chunk[left - 1];
        }
        if left < CHUNK / 4 && i + 1 < self.chunks.len() && left + self.chunks[i + 1].len() <= CHUNK {
            // Keep chunks from thinning out, so rank queries stay a short walk.
            let next = self.chunks.remove(i + 1);
            self.chunks[i].extend_from_slice(&next);
            self.maxes.remove(i);
        }
        true
    }

    /// The `rank`-th smallest value (0-based), if there are more than `rank` values.
    pub fn nth(&self, mut rank: usize) -> Option<f64> {
        for chunk in &self.chunks {
            if rank < chunk.len() {
                return Some(chunk[rank]);
            }
            rank -= chunk.len();
        }
        None
    }

    /// The nearest-rank `quantile`, exactly as [`quantile_of`] over the held values.
    pub fn quantile(&self, quantile: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        self.nth(nearest_rank(quantile, self.len))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    at: Instant,
    ttft_ms: f64,
    output_tokens_per_s: Option<f64>,
}

/// Time-to-first-token and output-speed samples of one deployment, in the order they were
/// taken, with their values ranked for quantiles.
#[derive(Clone, Debug, Default)]
pub struct SampleWindow {
    samples: VecDeque<Sample>,
    ttft_ms: RankedValues,
    output_tokens_per_s: RankedValues,
}

impl SampleWindow {
    /// Adds a sample taken at `at` (samples arrive in time order); `output_tokens_per_s` is
    /// None when the attempt streamed nothing to time.
    pub fn push(&mut self, at: Instant, ttft_ms: f64, output_tokens_per_s: Option<f64>) {
        self.samples.push_back(Sample { at, ttft_ms, output_tokens_per_s });
        self.ttft_ms.insert(ttft_ms);
        if let Some(speed) = output_tokens_per_s {
            self.output_tokens_per_s.insert(speed);
        }
    }

    /// Drops the samples taken more than `window` before `now`.
    pub fn evict(&mut self, now: Instant, window: Duration) {
        while let Some(s) = self.samples.front().copied() {
            if now.saturating_since(s.at) <= window {
                break;
            }
            self.samples.pop_front();
            let removed = self.ttft_ms.remove(s.ttft_ms);
            debug_assert!(removed, "an evicted sample's TTFT is in the ranked set");
            if let Some(speed) = s.output_tokens_per_s {
                let removed = self.output_tokens_per_s.remove(speed);
                debug_assert!(removed, "an evicted sample's speed is in the ranked set");
            }
        }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Time to first token (ms) at the nearest-rank `quantile`, if there are samples.
    pub fn ttft_quantile_ms(&self, quantile: f64) -> Option<f64> {
        self.ttft_ms.quantile(quantile)
    }

    /// Output speed (tokens/s) at the nearest-rank `quantile`, if any sample has one.
    pub fn speed_quantile(&self, quantile: f64) -> Option<f64> {
        self.output_tokens_per_s.quantile(quantile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile_of(&mut v, 0.5), Some(3.0));
        assert_eq!(quantile_of(&mut v, 0.9), Some(5.0));
        assert_eq!(quantile_of(&mut v, 0.0), Some(1.0));
        assert_eq!(quantile_of(&mut [], 0.5), None);
    }

    #[test]
    fn ranked_values_split_merge_and_refuse_absent_values() {
        let mut r = RankedValues::default();
        for k in (0..1_000).rev() {
            r.insert(k as f64);
        }
        assert_eq!(r.len(), 1_000);
        assert!(r.chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
        assert!(r.chunks.iter().zip(&r.maxes).all(|(c, m)| c.last() == Some(m)));
        assert_eq!(r.nth(0), Some(0.0));
        assert_eq!(r.nth(999), Some(999.0));
        assert_eq!(r.nth(1_000), None);
        assert!(!r.remove(1_000.5));
        assert!(!r.remove(-0.0), "-0.0 and 0.0 are distinct in total order");
        for k in 0..990 {
            assert!(r.remove(k as f64));
        }
        assert_eq!(r.len(), 10);
        assert_eq!(r.quantile(0.5), Some(994.0));
        assert!(r.chunks.len() <= 2, "thinned chunks are merged: {}", r.chunks.len());
    }

    /// Values with many duplicates, both signs of zero and a wide range.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u32..20).prop_map(f64::from),
            Just(-0.0),
            (-1e6f64..1e6),
            (0u64..5_000_000).prop_map(|us| us as f64 / 1_000.0),
        ]
    }

    proptest! {
        #[test]
        fn ranked_values_match_a_sorted_reference(
            ops in proptest::collection::vec((any::<bool>(), value(), 0usize..64), 1..2_000),
            q in 0.0f64..=1.0,
        ) {
            let mut ranked = RankedValues::default();
            let mut reference: Vec<f64> = Vec::new();
            for (insert, v, pick) in ops {
                if insert || reference.is_empty() {
                    ranked.insert(v);
                    reference.push(v);
                } else {
                    let gone = reference.swap_remove(pick % reference.len());
                    prop_assert!(ranked.remove(gone));
                }
                prop_assert_eq!(ranked.len(), reference.len());
                prop_assert!(ranked.chunks.iter().zip(&ranked.maxes).all(|(c, m)| c.last().map(|l| l.to_bits()) == Some(m.to_bits())));
                prop_assert_eq!(ranked.chunks.len(), ranked.maxes.len());
                let expected = quantile_of(&mut reference.clone(), q).map(f64::to_bits);
                prop_assert_eq!(ranked.quantile(q).map(f64::to_bits), expected);
            }
            let mut sorted = reference.clone();
            sorted.sort_by(f64::total_cmp);
            for (k, v) in sorted.iter().enumerate() {
                prop_assert_eq!(ranked.nth(k).map(f64::to_bits), Some(v.to_bits()));
            }
        }

        #[test]
        fn window_quantiles_equal_sorting_the_window(
            samples in proptest::collection::vec((0u64..4_000, 0u64..60_000, proptest::option::of(1.0f64..500.0)), 1..1_500),
            window_ms in 1u64..200_000,
            qs in proptest::collection::vec(0.0f64..=1.0, 1..4),
        ) {
            let window = Duration::from_millis(window_ms);
            let mut w = SampleWindow::default();
            let mut reference: VecDeque<(Instant, f64, Option<f64>)> = VecDeque::new();
            let mut now_ms = 0;
            for (step_ms, ttft_us, speed) in samples {
                now_ms += step_ms;
                let now = Instant::from_millis(now_ms);
                let ttft_ms = ttft_us as f64 / 1_000.0;
                w.push(now, ttft_ms, speed);
                reference.push_back((now, ttft_ms, speed));
                // Ask as a router would, a little later than the sample.
                let asked = Instant::from_millis(now_ms + step_ms / 2);
                w.evict(asked, window);
                reference.retain(|(at, _, _)| asked.saturating_since(*at) <= window);
                prop_assert_eq!(w.len(), reference.len());
                let mut ttfts: Vec<f64> = reference.iter().map(|s| s.1).collect();
                let mut speeds: Vec<f64> = reference.iter().filter_map(|s| s.2).collect();
                for &q in &qs {
                    prop_assert_eq!(
                        w.ttft_quantile_ms(q).map(f64::to_bits),
                        quantile_of(&mut ttfts, q).map(f64::to_bits)
                    );
                    prop_assert_eq!(
                        w.speed_quantile(q).map(f64::to_bits),
                        quantile_of(&mut speeds, q).map(f64::to_bits)
                    );
                }
            }
        }
    }
}
