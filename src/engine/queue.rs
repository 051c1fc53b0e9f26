//! The engine's event queue: what happens next, in a fixed order.
//!
//! Owns the ordering rule of the simulation: earliest time first; at one microsecond, events
//! in the order they were scheduled, except that requests *entering* the system come after
//! every other event of that microsecond ([`Tie::AfterOthers`]), so a completion (its slot,
//! its refund) is always seen before a new arrival. Every run is therefore the same. It must
//! not know what an event means, nor whether one has gone stale (the engine decides that
//! when it pops one).

use crate::time::Instant;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Where an event goes among the others of its microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tie {
    /// In scheduling order.
    InOrder,
    /// After every `InOrder` event of the microsecond (then in scheduling order).
    AfterOthers,
}

/// Set in a key's sequence half for [`Tie::AfterOthers`] (sequences stay far below 2^63).
const AFTER_OTHERS: u64 = 1 << 63;

/// An event with its key: time in the high 64 bits, tie class and scheduling sequence in the
/// low 64, so ordering is one integer comparison (the heap is the engine's hottest structure).
#[derive(Debug)]
struct Scheduled<E> {
    key: u128,
    event: E,
}

impl<E> Scheduled<E> {
    fn time(&self) -> Instant {
        Instant::from_micros((self.key >> 64) as u64)
    }
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    /// Reversed, so the max-heap pops the earliest key first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Events by (time, tie class, scheduling order).
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Instant, tie: Tie, event: E) {
        self.seq += 1;
        let class = if tie == Tie::AfterOthers { AFTER_OTHERS } else { 0 };
        let key = (u128::from(at.as_micros()) << 64) | u128::from(class | self.seq);
        self.heap.push(Scheduled { key, event });
    }

    /// When the next event happens (stale ones included: the queue cannot tell).
    pub fn next_time(&self) -> Option<Instant> {
        self.heap.peek().map(Scheduled::time)
    }

    pub fn pop(&mut self) -> Option<(Instant, E)> {
        self.heap.pop().map(|s| (s.time(), s.event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut EventQueue<&'static str>) -> Vec<(u64, &'static str)> {
        std::iter::from_fn(|| q.pop()).map(|(t, e)| (t.as_micros(), e)).collect()
    }

    #[test]
    fn earliest_first_whatever_the_scheduling_order() {
        let mut q = EventQueue::default();
        for (t, e) in [(30, "c"), (10, "a"), (u64::MAX >> 1, "far"), (20, "b"), (0, "zero")] {
            q.push(Instant::from_micros(t), Tie::InOrder, e);
        }
        assert_eq!(q.next_time(), Some(Instant::ZERO));
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q), vec![(0, "zero"), (10, "a"), (20, "b"), (30, "c"), (u64::MAX >> 1, "far")]);
        assert!(q.is_empty() && q.next_time().is_none());
    }

    #[test]
    fn ties_keep_scheduling_order_and_entering_requests_come_last() {
        let mut q = EventQueue::default();
        let t = Instant::from_micros(5);
        q.push(t, Tie::AfterOthers, "start 1");
        q.push(t, Tie::InOrder, "end 1");
        q.push(t, Tie::AfterOthers, "start 2");
        q.push(t, Tie::InOrder, "end 2");
        q.push(Instant::from_micros(4), Tie::AfterOthers, "earlier start");
        q.push(Instant::from_micros(6), Tie::InOrder, "later end");
        assert_eq!(
            drain(&mut q),
            vec![
                (4, "earlier start"),
                (5, "end 1"),
                (5, "end 2"),
                (5, "start 1"),
                (5, "start 2"),
                (6, "later end")
            ]
        );
    }

    #[test]
    fn an_event_scheduled_while_draining_a_microsecond_joins_it_in_order() {
        // What the engine does when a completion at t wakes a parked request at t.
        let mut q = EventQueue::default();
        let t = Instant::from_micros(9);
        q.push(t, Tie::InOrder, "end");
        q.push(t, Tie::AfterOthers, "start");
        assert_eq!(q.pop().map(|(_, e)| e), Some("end"));
        q.push(t, Tie::InOrder, "wake");
        assert_eq!(drain(&mut q), vec![(9, "wake"), (9, "start")]);
    }
}
