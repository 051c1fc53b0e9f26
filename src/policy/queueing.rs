//! Queueing shared by the wrappers that hold attempts back (smoothing, concurrency cap,
//! adaptive limits): a priority queue of waiting requests, a gate of slots in flight, and the
//! attempt a wrapper holds for a request while it waits.
//!
//! It decides nothing about *where* an attempt goes (the inner policy does) nor *when* it may
//! go (each wrapper does); it must not know any particular wrapper.

use super::{Decision, History, Policy};
use crate::provider::{AttemptOptions, DeploymentId};
use crate::rng::SplitMix64;
use crate::time::{Duration, Instant};
use crate::trace::Request;
use std::collections::{BTreeMap, HashMap};

/// Requests waiting for their turn, by (class rank, arrival order in the queue).
#[derive(Clone, Debug, Default)]
pub struct WaitQueue {
    order: BTreeMap<(u8, u64), u64>,
    keys: HashMap<u64, (u8, u64)>,
    next: u64,
}

impl WaitQueue {
    /// Adds `id` with priority `rank` (lower goes first) unless it is already queued.
    pub fn push(&mut self, id: u64, rank: u8) {
        if self.keys.contains_key(&id) {
            return;
        }
        self.next += 1;
        self.order.insert((rank, self.next), id);
        self.keys.insert(id, (rank, self.next));
    }

    pub fn remove(&mut self, id: u64) -> bool {
        match self.keys.remove(&id) {
            Some(key) => {
                self.order.remove(&key);
                true
            }
            None => false,
        }
    }

    pub fn head(&self) -> Option<u64> {
        self.order.values().next().copied()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.keys.contains_key(&id)
    }

    /// The first `n` waiting requests, in order.
    pub fn first(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        self.order.values().take(n).copied()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Attempts in flight under a cap, with a priority queue of waiters. Free slots go to the head
/// of the queue first; a newcomer gets one only if there are more free slots than waiters.
/// Shared by the [`ConcurrencyCap`](super::smoothing::ConcurrencyCap) (global or per session) and the per-deployment adaptive limits.
#[derive(Clone, Debug, Default)]
pub struct SlotGate {
    pub in_flight: u32,
    pub queue: WaitQueue,
}

impl SlotGate {
    /// Takes a slot for `id` under `limit` if it is its turn (or at once with `jump_queue`, for
    /// a hedge, which must not wait); true when taken.
    pub fn try_enter(&mut self, id: u64, limit: u32, jump_queue: bool) -> bool {
        let free = limit.saturating_sub(self.in_flight) as usize;
        let my_turn = if self.queue.contains(id) {
            self.queue.first(free).any(|w| w == id)
        } else {
            self.queue.len() < free
        };
        if free > 0 && (my_turn || jump_queue) {
            self.in_flight += 1;
            self.queue.remove(id);
            true
        } else {
            false
        }
    }

    /// An attempt that held a slot ended.
    pub fn leave(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The waiters that may take the slots free under `limit`.
    pub fn wakeable(&self, limit: u32) -> impl Iterator<Item = u64> + '_ {
        self.queue.first(limit.saturating_sub(self.in_flight) as usize)
    }
}

/// An attempt the inner policy chose, waiting for its turn (a local token, a free slot).
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    pub deployment: DeploymentId,
    pub options: AttemptOptions,
    pub hedge_after: Option<Duration>,
    pub queued_at: Instant,
}

impl Pending {
    /// The attempt to send once admitted.
    pub fn attempt(&self) -> Decision {
        Decision::Attempt {
            deployment: self.deployment,
            options: self.options,
            hedge_after: self.hedge_after,
        }
    }
}

/// The attempt a queueing wrapper holds for `request`: the one already chosen, or the inner
/// policy's new choice. Anything but a (synchronous, unless `batch_too`) attempt is the
/// inner policy's final word and is returned as `Err` to pass on unchanged. The inner policy
/// is asked once per attempt, however long the request then waits.
pub fn held_or_new_attempt(
    held: &HashMap<u64, Pending>,
    inner: &mut dyn Policy,
    now: Instant,
    request: &Request,
    history: &mut History,
    rng: &mut SplitMix64,
    batch_too: bool,
) -> Result<Pending, Decision> {
    if let Some(p) = held.get(&request.id) {
        return Ok(*p);
    }
    match inner.route(now, request, history, rng) {
        Decision::Attempt { deployment, options, hedge_after } if batch_too || !options.batch => {
            Ok(Pending { deployment, options, hedge_after, queued_at: now })
        }
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_queue_serves_by_class_rank_then_arrival() {
        let mut q = WaitQueue::default();
        q.push(1, 2); // bulk
        q.push(2, 0); // interactive
        q.push(3, 2); // bulk
        q.push(4, 0); // interactive
        q.push(2, 0); // already queued: no change
        assert_eq!(q.first(4).collect::<Vec<_>>(), vec![2, 4, 1, 3]);
        assert!(q.remove(2));
        assert_eq!(q.head(), Some(4));
        assert!(!q.remove(2));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn slot_gate_serves_waiters_before_newcomers() {
        let mut gate = SlotGate::default();
        assert!(gate.try_enter(1, 2, false));
        assert!(gate.try_enter(2, 2, false));
        assert!(!gate.try_enter(3, 2, false), "no free slot");
        gate.queue.push(3, 0);
        gate.leave();
        // One slot free, one waiter: the waiter may go, a newcomer may not.
        assert_eq!(gate.wakeable(2).collect::<Vec<_>>(), vec![3]);
        assert!(!gate.try_enter(4, 2, false));
        assert!(gate.try_enter(4, 3, true), "a hedge jumps the queue when a slot is free");
        assert!(gate.try_enter(3, 3, false), "the waiter takes the last slot");
        assert!(!gate.try_enter(5, 3, true), "no slot left, even for a hedge");
        assert_eq!(gate.in_flight, 3);
        assert!(gate.queue.is_empty());
    }
}
