//! The event queue: a binary heap ordered by (time, insertion sequence). The heap holds only
//! the 24-byte keys; payloads (messages can be large) wait in a slab and never move while the
//! heap sifts, which keeps push and pop cheap for big clusters.
//!
//! Equal-time events pop in insertion order, which makes the order of a run a function of the
//! seed alone. An *urgent* push (events that waited on a paused node and are due again) goes
//! ahead of every ordinary event of the same instant, still in its own insertion order: the top
//! bit of the order word marks ordinary events.

use crate::time::Time;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The most events that may be pending at once; beyond it a run stops with an overflow.
pub const QUEUE_CAPACITY_MAX: usize = 1 << 26;

const ORDINARY: u64 = 1 << 63;

struct Entry {
    time: Time,
    order: u64,
    /// Where the payload waits in the slab.
    slot: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.order == other.order
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.order).cmp(&(self.time, self.order))
    }
}

pub struct Scheduler<P> {
    heap: BinaryHeap<Entry>,
    /// The payloads of queued events, by slot; `None` for a free slot.
    slab: Vec<Option<P>>,
    /// Free slots of the slab, reused last-freed first.
    free: Vec<u32>,
    seq: u64,
}

impl<P> Default for Scheduler<P> {
    fn default() -> Self {
        Scheduler {
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<P> Scheduler<P> {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Queues `payload` at `time`. Returns false (and drops it) when the queue is full.
    #[inline]
    pub fn push(&mut self, time: Time, payload: P) -> bool {
        self.push_ordered(time, ORDINARY, payload)
    }

    /// Queues `payload` at `time` ahead of every ordinary event at that time.
    pub fn push_urgent(&mut self, time: Time, payload: P) -> bool {
        self.push_ordered(time, 0, payload)
    }

    #[inline]
    fn push_ordered(&mut self, time: Time, lane: u64, payload: P) -> bool {
        if self.heap.len() >= QUEUE_CAPACITY_MAX {
            return false;
        }
        assert!(self.seq < ORDINARY);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(payload);
                slot
            }
            None => {
                let slot = u32::try_from(self.slab.len()).expect("the queue is capped below 2^32");
                self.slab.push(Some(payload));
                slot
            }
        };
        self.heap.push(Entry {
            time,
            order: lane | self.seq,
            slot,
        });
        self.seq += 1;
        true
    }

    /// The time of the next event.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.time)
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Time, P)> {
        let e = self.heap.pop()?;
        self.free.push(e.slot);
        let payload = self.slab[e.slot as usize]
            .take()
            .expect("a queued slot holds its payload");
        Some((e.time, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut s = Scheduler::default();
        s.push(Time(5), "c");
        s.push(Time(1), "a");
        s.push(Time(5), "d");
        s.push(Time(1), "b");
        let order: Vec<_> = std::iter::from_fn(|| s.pop().map(|(_, p)| p)).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn urgent_events_go_first_within_their_instant_only() {
        let mut s = Scheduler::default();
        s.push(Time(5), "ordinary");
        s.push(Time(4), "earlier");
        s.push_urgent(Time(5), "urgent-1");
        s.push_urgent(Time(5), "urgent-2");
        let order: Vec<_> = std::iter::from_fn(|| s.pop().map(|(_, p)| p)).collect();
        assert_eq!(order, ["earlier", "urgent-1", "urgent-2", "ordinary"]);
    }
}
