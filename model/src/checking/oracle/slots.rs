//! Slot exclusivity (always): a TaskExecutor's slot belongs to one allocation at a time, and an
//! allocation hosts at most one live task per job vertex (docs/flink-runtime.md §2.4, §12 item 3).
//!
//! Ground truth comes from the TaskExecutors' own reports, per process and slot index:
//! `SlotAllocated` claims an index for an `AllocationID`, `SlotFreed` releases it. A second
//! allocation of an index that was not freed in between is the missing `SlotOccupiedException`;
//! an `AllocationID` is minted fresh by the SlotManager, so it also lives in one slot only.
//! Freeing or activating an allocation the TaskExecutor does not hold means its slot table and
//! its reports disagree (a double free, or a stale offer answer applied to a reused slot).
//! From `TaskStateChanged`: a task runs in an allocation its TaskExecutor holds, and two
//! non-terminal attempts of the same job vertex never share one allocation (slot sharing puts
//! one subtask of each vertex in a slot, and a restart's new attempt must wait until the old one
//! is gone).
//!
//! A process that dies loses its slot table and tasks, so its entries are dropped. This oracle
//! does not judge leaks (see `slot_leak`) or the ResourceManager's and JobMaster's views.

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "slot-exclusivity",
    kind: Kind::Always,
    description: "a TaskExecutor slot holds at most one AllocationID at a time (freed before reallocated), an AllocationID lives in one slot, and an allocation hosts at most one live task per job vertex",
};

#[derive(Clone, Copy, Debug)]
struct HeldSlot {
    allocation_id: AllocationId,
    job_id: JobId,
}

pub struct SlotExclusivity {
    /// (TaskManager, slot index) -> its allocation.
    slots: BTreeMap<(NodeId, u32), HeldSlot>,
    /// AllocationID -> (TaskManager, slot index) holding it.
    allocations: BTreeMap<AllocationId, (NodeId, u32)>,
    /// Live (non-terminal) tasks: (TaskManager, attempt) -> allocation.
    live_tasks: BTreeMap<(NodeId, ExecutionAttemptId), AllocationId>,
}

impl SlotExclusivity {
    pub fn new(_setup: &Setup) -> SlotExclusivity {
        SlotExclusivity {
            slots: BTreeMap::new(),
            allocations: BTreeMap::new(),
            live_tasks: BTreeMap::new(),
        }
    }

    fn process_died(&mut self, n: NodeId) {
        self.slots.retain(|(node, _), _| *node != n);
        self.allocations.retain(|_, (node, _)| *node != n);
        self.live_tasks.retain(|(node, _), _| *node != n);
    }

    fn violation(at: Time, node: NodeId, message: String) -> Violation {
        Violation {
            invariant: INVARIANT.name,
            at,
            node: Some(node),
            message,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_slot_allocated(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        slot_index: u32,
        allocation_id: AllocationId,
        job_id: JobId,
        out: &mut Vec<Violation>,
    ) {
        let tm = census.name(node);
        if let Some(held) = self.slots.get(&(node, slot_index)) {
            if held.allocation_id != allocation_id {
                out.push(Self::violation(
                    at,
                    node,
                    format!(
                        "TaskExecutor {tm} allocated slot {slot_index} to allocation {allocation_id:x} (job {job_id:x}) while it still held allocation {:x} (job {:x}) and never freed it: the slot is occupied and the request must be refused (SlotOccupiedException)",
                        held.allocation_id, held.job_id
                    ),
                ));
            }
        }
        if let Some(&(other_node, other_index)) = self.allocations.get(&allocation_id) {
            if (other_node, other_index) != (node, slot_index) {
                out.push(Self::violation(
                    at,
                    node,
                    format!(
                        "TaskExecutor {tm} allocated slot {slot_index} to allocation {allocation_id:x}, which slot {other_index} of {} already holds; one AllocationID is one slot",
                        census.name(other_node)
                    ),
                ));
            }
        }
        if let Some(old) = self.slots.insert(
            (node, slot_index),
            HeldSlot {
                allocation_id,
                job_id,
            },
        ) {
            if self.allocations.get(&old.allocation_id) == Some(&(node, slot_index)) {
                self.allocations.remove(&old.allocation_id);
            }
        }
        self.allocations.insert(allocation_id, (node, slot_index));
    }

    fn on_slot_freed(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        slot_index: u32,
        allocation_id: AllocationId,
        out: &mut Vec<Violation>,
    ) {
        let tm = census.name(node);
        match self.slots.get(&(node, slot_index)) {
            Some(held) if held.allocation_id == allocation_id => {
                self.slots.remove(&(node, slot_index));
                self.allocations.remove(&allocation_id);
            }
            Some(held) => out.push(Self::violation(
                at,
                node,
                format!(
                    "TaskExecutor {tm} freed allocation {allocation_id:x} from slot {slot_index}, but that slot holds allocation {:x}",
                    held.allocation_id
                ),
            )),
            None => out.push(Self::violation(
                at,
                node,
                format!(
                    "TaskExecutor {tm} freed allocation {allocation_id:x} from slot {slot_index}, which was already free (a slot freed twice)"
                ),
            )),
        }
    }

    fn holds(&self, node: NodeId, allocation_id: AllocationId) -> bool {
        self.allocations
            .get(&allocation_id)
            .is_some_and(|(n, _)| *n == node)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_task(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        attempt: ExecutionAttemptId,
        allocation_id: AllocationId,
        created: bool,
        live: bool,
        out: &mut Vec<Violation>,
    ) {
        let tm = census.name(node);
        if !live {
            self.live_tasks.remove(&(node, attempt));
            return;
        }
        if created && !self.holds(node, allocation_id) {
            out.push(Self::violation(
                at,
                node,
                format!(
                    "TaskExecutor {tm} started a task of {} in allocation {allocation_id:x}, which none of its slots holds; a task may only run in an allocated slot",
                    attempt_name(&attempt)
                ),
            ));
        }
        if self.live_tasks.insert((node, attempt), allocation_id) == Some(allocation_id) {
            return; // already checked when it became live here
        }
        // Two subtasks of one vertex never share a slot. Two attempts of the *same* subtask
        // may, for a moment: a failed attempt whose `cancelTask` was lost lingers until the
        // JobMaster's deployment reconciliation cancels it (as in Flink); its effects are the
        // stale-attempts oracle's concern.
        let twin = self.live_tasks.iter().find(|((n, other), a)| {
            *n == node
                && **a == allocation_id
                && *other != attempt
                && other.vertex.vertex == attempt.vertex.vertex
                && other.vertex.subtask != attempt.vertex.subtask
        });
        if let Some(((_, other), _)) = twin {
            out.push(Self::violation(
                at,
                node,
                format!(
                    "allocation {allocation_id:x} on TaskExecutor {tm} hosts two live tasks of job vertex {}: {} and {}; a slot runs one subtask per vertex",
                    attempt.vertex.vertex.0,
                    attempt_name(other),
                    attempt_name(&attempt)
                ),
            ));
        }
    }
}

impl Oracle for SlotExclusivity {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.process_died(n);
            return;
        }
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let (at, node) = (ev.time, *node);
        match obs {
            Obs::SlotAllocated {
                slot_index,
                allocation_id,
                job_id,
            } => {
                self.on_slot_allocated(census, at, node, *slot_index, *allocation_id, *job_id, out)
            }
            Obs::SlotFreed {
                slot_index,
                allocation_id,
            } => self.on_slot_freed(census, at, node, *slot_index, *allocation_id, out),
            Obs::SlotActivated { allocation_id } if !self.holds(node, *allocation_id) => {
                out.push(Self::violation(
                    at,
                    node,
                    format!(
                        "TaskExecutor {} marked allocation {allocation_id:x} active, but none of its slots holds it (an offer answer applied to a slot that was freed or reused)",
                        census.name(node)
                    ),
                ));
            }
            Obs::TaskStateChanged {
                attempt,
                allocation_id,
                from,
                to,
            } => self.on_task(
                census,
                at,
                node,
                *attempt,
                *allocation_id,
                from.is_none(),
                !to.is_terminal(),
                out,
            ),
            _ => {}
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, TM1};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
    use crate::protocol::states::ExecutionState as S;
    use sim::Fault;

    fn attempt(subtask: u32, n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(2),
                subtask,
            },
            attempt: n,
        }
    }

    fn allocated(slot_index: u32, allocation_id: AllocationId) -> Step {
        Step::Obs(
            TM1,
            Obs::SlotAllocated {
                slot_index,
                allocation_id,
                job_id: 5,
            },
        )
    }

    fn freed(slot_index: u32, allocation_id: AllocationId) -> Step {
        Step::Obs(
            TM1,
            Obs::SlotFreed {
                slot_index,
                allocation_id,
            },
        )
    }

    fn task(a: ExecutionAttemptId, allocation_id: AllocationId, from: Option<S>, to: S) -> Step {
        Step::Obs(
            TM1,
            Obs::TaskStateChanged {
                attempt: a,
                allocation_id,
                from,
                to,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = SlotExclusivity::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(10_000))
    }

    #[test]
    fn slots_freed_before_reuse_and_one_live_attempt_per_vertex_hold() {
        let v = check(&[
            (0, allocated(0, 0xa)),
            (0, allocated(0, 0xa)), // an idempotent repeat of the same request
            (1, Step::Obs(TM1, Obs::SlotActivated { allocation_id: 0xa })),
            (2, task(attempt(0, 0), 0xa, None, S::Deploying)),
            (3, task(attempt(0, 0), 0xa, Some(S::Deploying), S::Failed)),
            (4, task(attempt(0, 1), 0xa, None, S::Deploying)),
            (5, task(attempt(0, 1), 0xa, Some(S::Deploying), S::Canceled)),
            (6, freed(0, 0xa)),
            (7, allocated(0, 0xb)),
            (8, Step::Fault(Fault::Kill(TM1))),
            // The restarted process has an empty slot table.
            (9, allocated(0, 0xc)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_slot_given_to_a_second_allocation_is_caught() {
        let v = check(&[(0, allocated(1, 0xa)), (5, allocated(1, 0xb))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("SlotOccupiedException"),
            "{}",
            v[0].message
        );
        assert!(v[0].message.contains("taskmanager-1"), "{}", v[0].message);
    }

    #[test]
    fn two_subtasks_of_a_vertex_in_one_allocation_are_caught() {
        let v = check(&[
            (0, allocated(0, 0xa)),
            (1, task(attempt(0, 0), 0xa, None, S::Deploying)),
            (2, task(attempt(1, 0), 0xa, None, S::Deploying)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("vertex 2 subtask 0 attempt 0 and vertex 2 subtask 1 attempt 0"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_stale_attempt_of_the_same_subtask_may_linger_until_reconciled() {
        // attempt 0 failed at the JobMaster but its cancelTask was lost: it still runs while
        // attempt 1 is deployed into the same slot, until reconciliation cancels it.
        let v = check(&[
            (0, allocated(0, 0xa)),
            (1, task(attempt(0, 0), 0xa, None, S::Deploying)),
            (2, task(attempt(0, 1), 0xa, None, S::Deploying)),
            (3, task(attempt(0, 0), 0xa, Some(S::Deploying), S::Canceled)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_double_free_is_caught() {
        let v = check(&[
            (0, allocated(0, 0xa)),
            (1, freed(0, 0xa)),
            (2, freed(0, 0xa)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("freed twice"), "{}", v[0].message);
    }
}
