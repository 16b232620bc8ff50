//! The event queue: a binary heap of compact keys ordered by (time, insertion sequence), with the
//! payloads in a slab so the heap moves 16-byte keys, not messages.
//!
//! Equal-time events pop in insertion order, which makes the order of a run a function of the
//! seed alone. An *urgent* push (events that waited on a paused node and are due again) goes
//! ahead of every ordinary event of the same instant, still in its own insertion order.

use crate::time::Time;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The most events that may be pending at once; beyond it a run stops with an overflow.
pub const QUEUE_CAPACITY_MAX: usize = 1 << 26;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Key {
    time: Time,
    /// 0 = urgent, 1 = ordinary.
    lane: u8,
    seq: u64,
}

pub struct Scheduler<P> {
    heap: BinaryHeap<Reverse<(Key, u32)>>,
    slab: Vec<Option<P>>,
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
    pub fn push(&mut self, time: Time, payload: P) -> bool {
        self.push_in_lane(time, 1, payload)
    }

    /// Queues `payload` at `time` ahead of every ordinary event at that time.
    pub fn push_urgent(&mut self, time: Time, payload: P) -> bool {
        self.push_in_lane(time, 0, payload)
    }

    fn push_in_lane(&mut self, time: Time, lane: u8, payload: P) -> bool {
        if self.heap.len() >= QUEUE_CAPACITY_MAX {
            return false;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                debug_assert!(self.slab[s as usize].is_none());
                self.slab[s as usize] = Some(payload);
                s
            }
            None => {
                self.slab.push(Some(payload));
                (self.slab.len() - 1) as u32
            }
        };
        let key = Key {
            time,
            lane,
            seq: self.seq,
        };
        self.seq += 1;
        self.heap.push(Reverse((key, slot)));
        true
    }

    /// The time of the next event.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((k, _))| k.time)
    }

    pub fn pop(&mut self) -> Option<(Time, P)> {
        let Reverse((key, slot)) = self.heap.pop()?;
        let payload = self.slab[slot as usize].take().expect("slab slot empty");
        self.free.push(slot);
        Some((key.time, payload))
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
