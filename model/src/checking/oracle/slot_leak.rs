//! No slot leak (eventually): once a job is globally terminal (FINISHED, FAILED, CANCELED), no
//! running TaskExecutor keeps a slot allocated to it beyond a grace bound (docs/flink-runtime.md §2.2, §2.4,
//! §5.3; docs/architecture.md "freed slots return; no leaks at job end").
//!
//! Ground truth: the TaskExecutors' own slot reports (`SlotAllocated` carries the job, `SlotFreed`
//! ends it; a dead process holds nothing) and the JobMasters' `JobStatusChanged`. Judged at the
//! end of the run, per slot still held for a terminal job, and only when the TaskExecutor has had
//! the whole grace bound, on its own monotonic clock, since the later of: the job's terminal
//! status, the slot's allocation, and the TaskExecutor's last resumption from a pause.
//!
//! The grace bound ([`grace`]) follows the slowest path by which Flink gives such a slot back:
//! the JobMaster's `freeSlot` at shutdown may be lost; then the TaskExecutor's heartbeat monitor
//! of the vanished JobMaster expires (`heartbeat.timeout`, plus one `heartbeat.interval` because
//! the last request may predate the terminal status by that much), the job's slots turn inactive
//! and expire after `taskmanager.slot.timeout`. An `offerSlots` in flight may hold a slot for one
//! more `pekko.ask.timeout`. Add two network trips and a second of slack. A slot that was only
//! ALLOCATED (never accepted) takes the slot timeout alone.

use super::{process_died, secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{AllocationId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, NodeId, Status, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "no-slot-leak",
    kind: Kind::Eventually,
    description: "once a job is FINISHED, FAILED or CANCELED, no running TaskExecutor still holds a slot for it after heartbeat.timeout + heartbeat.interval + taskmanager.slot.timeout + pekko.ask.timeout + network + 1 s",
};

/// How long a TaskExecutor may keep a slot of a globally terminal job (see the module docs).
pub fn grace(setup: &Setup) -> Duration {
    let c = &setup.config;
    c.heartbeat_timeout
        + c.heartbeat_interval
        + c.taskmanager_slot_timeout
        + c.ask_timeout
        + setup.latency_max * 2
        + Duration::from_secs(1)
}

#[derive(Clone, Copy, Debug)]
struct HeldSlot {
    allocation_id: AllocationId,
    job_id: JobId,
    since: Time,
}

pub struct NoSlotLeak {
    grace: Duration,
    /// (TaskManager, slot index) -> what it holds.
    slots: BTreeMap<(NodeId, u32), HeldSlot>,
    /// Job -> its first globally terminal status and when it was reached.
    terminal: BTreeMap<JobId, (JobStatus, Time)>,
    /// Node -> when it last resumed from a pause (its parked timers fire then).
    resumed_at: BTreeMap<NodeId, Time>,
}

impl NoSlotLeak {
    pub fn new(setup: &Setup) -> NoSlotLeak {
        NoSlotLeak {
            grace: grace(setup),
            slots: BTreeMap::new(),
            terminal: BTreeMap::new(),
            resumed_at: BTreeMap::new(),
        }
    }
}

impl Oracle for NoSlotLeak {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.slots.retain(|(node, _), _| *node != n);
            return;
        }
        match &ev.kind {
            EventKind::Fault {
                fault: Fault::Resume(n),
                effective: true,
            } => {
                self.resumed_at.insert(*n, ev.time);
            }
            EventKind::Obs { node, obs } => match obs {
                Obs::SlotAllocated {
                    slot_index,
                    allocation_id,
                    job_id,
                } => {
                    let same = self
                        .slots
                        .get(&(*node, *slot_index))
                        .is_some_and(|s| s.allocation_id == *allocation_id);
                    if !same {
                        self.slots.insert(
                            (*node, *slot_index),
                            HeldSlot {
                                allocation_id: *allocation_id,
                                job_id: *job_id,
                                since: ev.time,
                            },
                        );
                    }
                }
                Obs::SlotFreed {
                    slot_index,
                    allocation_id,
                } => {
                    let held = self
                        .slots
                        .get(&(*node, *slot_index))
                        .is_some_and(|s| s.allocation_id == *allocation_id);
                    if held {
                        self.slots.remove(&(*node, *slot_index));
                    }
                }
                Obs::JobStatusChanged { job_id, to, .. } if to.is_globally_terminal() => {
                    self.terminal.entry(*job_id).or_insert((*to, ev.time));
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        for (&(node, slot_index), slot) in &self.slots {
            let Some(&(status, terminal_at)) = self.terminal.get(&slot.job_id) else {
                continue;
            };
            if census.status(node) != Status::Up {
                continue; // a paused TaskExecutor cannot act; a dead one holds nothing
            }
            let resumed = self.resumed_at.get(&node).copied().unwrap_or(Time::ZERO);
            let reference = terminal_at.max(slot.since).max(resumed);
            let held_for = Duration::from_nanos(
                census
                    .mono(node, end)
                    .saturating_sub(census.mono(node, reference)),
            );
            if held_for < self.grace {
                continue; // not judged: the TaskExecutor has not had the whole grace bound
            }
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: Some(node),
                message: format!(
                    "TaskExecutor {} still holds slot {slot_index} (allocation {:x}) for job {:x}, which reached {status} at {terminal_at}: {} on its clock since the slot could have been freed, beyond the grace bound of {} (heartbeat.timeout + heartbeat.interval + taskmanager.slot.timeout + pekko.ask.timeout + network + 1 s)",
                    census.name(node),
                    slot.allocation_id,
                    slot.job_id,
                    secs(held_for),
                    secs(self.grace)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1, TM2};
    use crate::protocol::config::FlinkConfig;

    fn allocated(tm: NodeId, slot_index: u32, allocation_id: AllocationId) -> Step {
        Step::Obs(
            tm,
            Obs::SlotAllocated {
                slot_index,
                allocation_id,
                job_id: 5,
            },
        )
    }

    fn finished() -> Step {
        Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 9,
                from: Some(JobStatus::Running),
                to: JobStatus::Finished,
            },
        )
    }

    fn check(steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = NoSlotLeak::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn grace_follows_the_configuration() {
        // 50 s + 10 s + 10 s + 10 s + 2 × 10 ms + 1 s with Flink's defaults.
        assert_eq!(
            grace(&setup(FlinkConfig::default())),
            Duration::from_millis(81_020)
        );
    }

    #[test]
    fn slots_freed_after_the_job_ends_hold() {
        let v = check(
            &[
                (0, allocated(TM1, 0, 0xa)),
                (0, allocated(TM2, 0, 0xb)),
                (10_000, finished()),
                (
                    10_010,
                    Step::Obs(
                        TM1,
                        Obs::SlotFreed {
                            slot_index: 0,
                            allocation_id: 0xa,
                        },
                    ),
                ),
                // A dead TaskExecutor holds nothing.
                (10_020, Step::Fault(Fault::Kill(TM2))),
            ],
            500_000,
        );
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_slot_kept_after_the_grace_bound_is_a_leak() {
        let steps = [
            (0, allocated(TM1, 0, 0xa)),
            (0, allocated(TM1, 1, 0xc)),
            (
                1,
                Step::Obs(
                    TM1,
                    Obs::SlotFreed {
                        slot_index: 1,
                        allocation_id: 0xc,
                    },
                ),
            ),
            (10_000, finished()),
        ];
        // Not judged before the grace bound has passed.
        assert_eq!(check(&steps, 10_000 + 81_000), vec![]);
        let v = check(&steps, 10_000 + 81_020);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("taskmanager-1 still holds slot 0 (allocation a) for job 5"),
            "{}",
            v[0].message
        );
    }
}
