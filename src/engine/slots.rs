//! The requests in the system, by slot: a reusable table, so memory follows the requests in
//! flight, not the trace.
//!
//! Owns slot reuse and the rule that makes old events recognisable: every occupant of a slot
//! gets a new serial, and an event names (slot, serial), so an event of a request that has
//! finished (its slot free or taken by a later request) is *stale* and is dropped. It must not
//! know what a request holds.

/// A request's place in the table: the slot and the serial of that occupant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRef {
    pub slot: u32,
    pub serial: u32,
}

/// Occupied and free slots.
#[derive(Debug)]
pub struct Slots<T> {
    /// Kept apart from the serials so that freeing a slot moves its occupant out once (the
    /// occupant is the engine's largest value; this is the hottest path after the queue).
    entries: Vec<Option<T>>,
    /// The serial of each slot's current (or, if free, last) occupant.
    serials: Vec<u32>,
    free: Vec<u32>,
    next_serial: u32,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { entries: Vec::new(), serials: Vec::new(), free: Vec::new(), next_serial: 0 }
    }
}

impl<T> Slots<T> {
    /// Places `value` in a free slot (the last freed first) or a new one.
    pub fn insert(&mut self, value: T) -> SlotRef {
        self.next_serial = self.next_serial.wrapping_add(1);
        let serial = self.next_serial;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(value);
                self.serials[slot as usize] = serial;
                slot
            }
            None => {
                self.entries.push(Some(value));
                self.serials.push(serial);
                u32::try_from(self.entries.len() - 1).expect("fewer than 4 billion requests in flight")
            }
        };
        SlotRef { slot, serial }
    }

    /// The occupant `at` names, if it is still there (`None`: the reference is stale).
    pub fn get(&self, at: SlotRef) -> Option<&T> {
        let slot = at.slot as usize;
        self.entries[slot].as_ref().filter(|_| self.serials[slot] == at.serial)
    }

    /// The current occupant of `slot`, with its reference.
    ///
    /// # Panics
    /// If the slot is free: the engine only names slots it knows are occupied.
    pub fn occupant(&self, slot: u32) -> SlotRef {
        assert!(self.entries[slot as usize].is_some(), "an occupied slot");
        SlotRef { slot, serial: self.serials[slot as usize] }
    }

    /// The current occupant of `slot`.
    ///
    /// # Panics
    /// If the slot is free.
    pub fn live(&mut self, slot: u32) -> &mut T {
        self.entries[slot as usize].as_mut().expect("events only refer to occupied slots")
    }

    /// Frees `slot` and returns its occupant; older references to it become stale.
    ///
    /// # Panics
    /// If the slot is already free.
    pub fn remove(&mut self, slot: u32) -> T {
        let value = self.entries[slot as usize].take().expect("freeing an occupied slot");
        self.free.push(slot);
        value
    }

    /// Every occupant, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_makes_the_old_occupants_references_stale() {
        let mut slots = Slots::default();
        let a = slots.insert("a");
        let b = slots.insert("b");
        assert_eq!((a.slot, b.slot), (0, 1));
        assert_eq!(slots.get(a), Some(&"a"));
        assert_eq!(slots.remove(a.slot), "a");
        assert_eq!(slots.get(a), None, "freed: stale");
        let c = slots.insert("c");
        assert_eq!(c.slot, a.slot, "the freed slot is reused");
        assert_ne!(c.serial, a.serial);
        assert_eq!(slots.get(a), None, "taken by a later request: still stale");
        assert_eq!(slots.get(c), Some(&"c"));
        assert_eq!(slots.occupant(c.slot), c);
        *slots.live(b.slot) = "b2";
        assert_eq!(slots.values().copied().collect::<Vec<_>>(), vec!["c", "b2"]);
    }

    #[test]
    fn memory_follows_the_occupants_not_the_total() {
        let mut slots = Slots::default();
        for i in 0..10_000u32 {
            let r = slots.insert(i);
            assert_eq!(slots.remove(r.slot), i);
        }
        assert_eq!(slots.entries.len(), 1);
    }
}
