//! A held slot takes tasks (always): a TaskExecutor accepts every `submitTask` that its
//! connected JobMaster (the JobMasterId it is connected under) sends into a slot the
//! TaskExecutor holds for that job (docs/flink-runtime.md §4.3: Flink's
//! `TaskSubmissionException` cases are exactly "no connection to this JobMaster" and "the slot
//! is not allocated to the job"; an ALLOCATED slot whose offer answer is still on its way is
//! marked ACTIVE by the submission itself, `tryMarkSlotActive`, the fix of FLINK-5836).
//!
//! Ground truth is the TaskExecutor's own reports, as they stand when a `submitTask` is
//! delivered (the observations of its handler follow the delivery): `SlotAllocated` /
//! `SlotFreed` for the slots it holds and for which job, `JobManagerConnected` /
//! `JobManagerDisconnected` for its connection per job. The verdict falls when the answer, a
//! refusal, reaches the JobMaster. A process that dies forgets everything.
//!
//! It does not judge which JobMaster may submit (`leader-fencing`, `stale-attempts`) nor
//! whether the slot should be held (`slot-exclusivity`, `slot-views-agree`).

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "held-slot-takes-tasks",
    kind: Kind::Always,
    description: "a TaskExecutor accepts every submitTask from the JobMaster it is connected to (that JobMasterId) into a slot it holds for that job, ACTIVE or still ALLOCATED (FLINK-5836)",
};

/// A submission that the TaskExecutor had to accept, with what made it so.
#[derive(Clone, Copy, Debug)]
struct Owed {
    allocation_id: AllocationId,
    job_id: JobId,
    delivered: Time,
}

pub struct HeldSlotTakesTasks {
    /// (TaskExecutor, allocation) -> the job it holds the slot for.
    slots: BTreeMap<(NodeId, AllocationId), JobId>,
    /// (TaskExecutor, job) -> the JobMasterId it is connected under.
    connections: BTreeMap<(NodeId, JobId), JobMasterId>,
    /// (TaskExecutor, attempt) -> a submission it had to accept, until its answer arrives.
    owed: BTreeMap<(NodeId, ExecutionAttemptId), Owed>,
}

impl HeldSlotTakesTasks {
    pub fn new(_setup: &Setup) -> HeldSlotTakesTasks {
        HeldSlotTakesTasks {
            slots: BTreeMap::new(),
            connections: BTreeMap::new(),
            owed: BTreeMap::new(),
        }
    }
}

impl Oracle for HeldSlotTakesTasks {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.slots.retain(|(te, _), _| *te != n);
            self.connections.retain(|(te, _), _| *te != n);
            self.owed.retain(|(te, _), _| *te != n);
            return;
        }
        match &ev.kind {
            EventKind::Deliver {
                to,
                msg: Msg::TaskExecutor(TaskExecutorRpc::SubmitTask { tdd, job_master_id }),
                ..
            } => {
                let held = self.slots.get(&(*to, tdd.allocation_id)) == Some(&tdd.job_id);
                let connected = self.connections.get(&(*to, tdd.job_id)) == Some(job_master_id);
                if held && connected {
                    self.owed.insert(
                        (*to, tdd.attempt),
                        Owed {
                            allocation_id: tdd.allocation_id,
                            job_id: tdd.job_id,
                            delivered: ev.time,
                        },
                    );
                }
            }
            EventKind::Deliver {
                from,
                msg:
                    Msg::JobMaster {
                        rpc: JobMasterRpc::SubmitTaskResponse { attempt, ok },
                        ..
                    },
                ..
            } => {
                let Some(owed) = self.owed.remove(&(*from, *attempt)) else {
                    return;
                };
                if *ok {
                    return;
                }
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: ev.time,
                    node: Some(*from),
                    message: format!(
                        "{} refused submitTask of {} (delivered at {}) from the JobMaster it is connected to, into slot {:x} it holds for job {:x}; a slot whose offer answer is still on its way must take the task (tryMarkSlotActive)",
                        census.name(*from),
                        attempt_name(attempt),
                        owed.delivered,
                        owed.allocation_id,
                        owed.job_id
                    ),
                });
            }
            EventKind::Obs { node, obs } => match obs {
                Obs::SlotAllocated {
                    allocation_id,
                    job_id,
                    ..
                } => {
                    self.slots.insert((*node, *allocation_id), *job_id);
                }
                Obs::SlotFreed { allocation_id, .. } => {
                    self.slots.remove(&(*node, *allocation_id));
                }
                Obs::JobManagerConnected {
                    job_id,
                    job_master_id,
                } => {
                    self.connections.insert((*node, *job_id), *job_master_id);
                }
                Obs::JobManagerDisconnected { job_id } => {
                    self.connections.remove(&(*node, *job_id));
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish(&mut self, _: &Census, _: Time, _: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{attempt, feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;

    fn submit(job_master_id: JobMasterId) -> Step {
        crate::checking::oracle::testing::submit_task(attempt(0, 0, 0), 100, job_master_id)
    }

    fn answer(ok: bool) -> Step {
        Step::Deliver(
            TM1,
            JM,
            Msg::JobMaster {
                job_id: 5,
                rpc: JobMasterRpc::SubmitTaskResponse {
                    attempt: attempt(0, 0, 0),
                    ok,
                },
            },
        )
    }

    fn held_and_connected() -> Vec<(u64, Step)> {
        vec![
            (
                1,
                Step::Obs(
                    TM1,
                    Obs::SlotAllocated {
                        slot_index: 0,
                        allocation_id: 100,
                        job_id: 5,
                    },
                ),
            ),
            (
                2,
                Step::Obs(
                    TM1,
                    Obs::JobManagerConnected {
                        job_id: 5,
                        job_master_id: 9,
                    },
                ),
            ),
        ]
    }

    fn run(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut o = HeldSlotTakesTasks::new(&setup(FlinkConfig::default()));
        feed(&mut o, w.census(), steps, Some(1000))
    }

    #[test]
    fn a_refused_submission_into_a_held_slot_from_the_connected_job_master_fails() {
        let mut steps = held_and_connected();
        steps.extend([(10, submit(9)), (12, answer(false))]);
        let v = run(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("taskmanager-1 refused submitTask"),
            "{v:?}"
        );
        assert_eq!(v[0].node, Some(TM1));
    }

    #[test]
    fn legitimate_refusals_and_acceptances_hold() {
        // Accepted.
        let mut steps = held_and_connected();
        steps.extend([(10, submit(9)), (12, answer(true))]);
        assert!(run(&steps).is_empty());
        // Another JobMasterId (a deposed leader): refusing is right.
        let mut steps = held_and_connected();
        steps.extend([(10, submit(8)), (12, answer(false))]);
        assert!(run(&steps).is_empty());
        // The slot was freed first.
        let mut steps = held_and_connected();
        steps.push((
            5,
            Step::Obs(
                TM1,
                Obs::SlotFreed {
                    slot_index: 0,
                    allocation_id: 100,
                },
            ),
        ));
        steps.extend([(10, submit(9)), (12, answer(false))]);
        assert!(run(&steps).is_empty());
        // The connection was closed first.
        let mut steps = held_and_connected();
        steps.push((5, Step::Obs(TM1, Obs::JobManagerDisconnected { job_id: 5 })));
        steps.extend([(10, submit(9)), (12, answer(false))]);
        assert!(run(&steps).is_empty());
        // The TaskExecutor died and came back: it holds nothing.
        let mut steps = held_and_connected();
        steps.push((5, Step::Fault(sim::Fault::Kill(TM1))));
        steps.extend([(10, submit(9)), (12, answer(false))]);
        assert!(run(&steps).is_empty());
    }
}
