//! Flink's `TaskSlotTable` (`TaskSlotTableImpl`): which slots of one TaskExecutor are allocated to
//! which job, and whether the job's JobMaster has accepted them.
//!
//! A slot index is free (absent), ALLOCATED (reserved by the ResourceManager's `requestSlot` but
//! not accepted by a JobMaster, armed with `taskmanager.slot.timeout`) or ACTIVE (accepted through
//! `offerSlots`; no timeout). The table arms and cancels slot timeouts itself, and every arm
//! carries a fresh ticket, so a `TaskExecutorTimer::SlotTimeout` of an earlier arm is recognised
//! as stale (Flink's `TimerService` tickets). Every state change is traced (`SlotAllocated`,
//! `SlotActivated`, `SlotDeactivated`, `SlotFreed`) and the slot report is derived from the table,
//! so the ResourceManager always hears what the table holds.
//!
//! It does not own tasks (the TaskExecutor keeps them by attempt, each naming its allocation), nor
//! what a free or a timeout means for the ResourceManager and JobMaster connections.

use crate::protocol::ids::{AllocationId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{SlotOffer, SlotReport, SlotStatus};
use crate::protocol::timer::{TaskExecutorTimer, Timer};
use crate::protocol::Flink;
use sim::{Ctx, TimerId};
use std::time::Duration;

/// The most slots one TaskExecutor may have: slot indices are scanned linearly, which is only
/// cheap while the table is small (Flink's TaskManagers have a handful of slots).
pub const TASK_SLOTS_MAX: u32 = 1024;

/// Flink's `TaskSlotState`, without RELEASING: the model frees a slot in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskSlotState {
    /// Reserved for a job, not yet accepted by its JobMaster; times out.
    Allocated,
    /// Accepted by the JobMaster; tasks may be deployed into it.
    Active,
}

#[derive(Clone, Copy, Debug)]
struct SlotTimeout {
    timer: TimerId,
    ticket: u64,
}

#[derive(Debug)]
struct TaskSlot {
    allocation_id: AllocationId,
    job_id: JobId,
    state: TaskSlotState,
    /// Armed exactly while the slot is ALLOCATED.
    timeout: Option<SlotTimeout>,
}

/// What `allocate_slot` found at the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// The index was free and now holds the allocation (ALLOCATED).
    Allocated,
    /// The index already holds this allocation: an idempotent repeat of the request.
    AlreadyAllocated,
    /// The index holds another allocation (Flink's `SlotOccupiedException`).
    Occupied {
        allocation_id: AllocationId,
        job_id: JobId,
    },
}

#[derive(Debug)]
pub struct TaskSlotTable {
    slots: Vec<Option<TaskSlot>>,
    slot_timeout: Duration,
    next_ticket: u64,
}

impl TaskSlotTable {
    pub fn new(number_of_slots: u32, slot_timeout: Duration) -> TaskSlotTable {
        assert!(number_of_slots <= TASK_SLOTS_MAX);
        assert!(slot_timeout > Duration::ZERO);
        TaskSlotTable {
            slots: (0..number_of_slots).map(|_| None).collect(),
            slot_timeout,
            next_ticket: 0,
        }
    }

    pub fn number_of_slots(&self) -> u32 {
        self.slots.len() as u32
    }

    fn index_of(&self, allocation_id: AllocationId) -> Option<usize> {
        let holds =
            |s: &Option<TaskSlot>| s.as_ref().is_some_and(|s| s.allocation_id == allocation_id);
        // A slot is allocated to at most one allocation, and an allocation to at most one slot.
        debug_assert!(self.slots.iter().filter(|s| holds(s)).count() <= 1);
        self.slots.iter().position(holds)
    }

    /// Reserves `slot_index` for `allocation_id` of `job_id` (ALLOCATED, timeout armed) if it is
    /// free; says what it found otherwise and changes nothing.
    pub fn allocate_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        slot_index: u32,
        job_id: JobId,
        allocation_id: AllocationId,
    ) -> AllocateOutcome {
        assert!(slot_index < self.number_of_slots());
        match &self.slots[slot_index as usize] {
            Some(s) if s.allocation_id == allocation_id => {
                // Allocation ids are minted per request by the SlotManager: one id, one job.
                assert_eq!(s.job_id, job_id);
                return AllocateOutcome::AlreadyAllocated;
            }
            Some(s) => {
                return AllocateOutcome::Occupied {
                    allocation_id: s.allocation_id,
                    job_id: s.job_id,
                }
            }
            None => {}
        }
        // An allocation id lives in at most one slot.
        assert!(self.index_of(allocation_id).is_none());
        self.put(ctx, slot_index, job_id, allocation_id);
        debug_assert_eq!(self.index_of(allocation_id), Some(slot_index as usize));
        AllocateOutcome::Allocated
    }

    /// The planted bug `SlotDoubleAllocation`: hands an occupied index to a new allocation,
    /// dropping the old one without freeing it (no `SlotFreed`, its timeout just goes stale).
    pub fn reassign_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        slot_index: u32,
        job_id: JobId,
        allocation_id: AllocationId,
    ) {
        assert!(slot_index < self.number_of_slots());
        assert!(self.slots[slot_index as usize].is_some());
        assert!(self.index_of(allocation_id).is_none());
        if let Some(old) = self.slots[slot_index as usize].take() {
            if let Some(t) = old.timeout {
                ctx.cancel_timer(t.timer);
            }
            debug_assert!(self.index_of(old.allocation_id).is_none());
        }
        self.put(ctx, slot_index, job_id, allocation_id);
        debug_assert_eq!(self.index_of(allocation_id), Some(slot_index as usize));
    }

    fn put(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        slot_index: u32,
        job_id: JobId,
        allocation_id: AllocationId,
    ) {
        assert!(self.slots[slot_index as usize].is_none());
        let timeout = self.arm_timeout(ctx, allocation_id);
        // A fresh allocation carries the newest ticket: no earlier arm can free it.
        assert_eq!(timeout.ticket, self.next_ticket);
        self.slots[slot_index as usize] = Some(TaskSlot {
            allocation_id,
            job_id,
            state: TaskSlotState::Allocated,
            timeout: Some(timeout),
        });
        ctx.trace(Obs::SlotAllocated {
            slot_index,
            allocation_id,
            job_id,
        });
    }

    fn arm_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
    ) -> SlotTimeout {
        // An allocation has at most one live timeout: it is armed only when not (yet) ALLOCATED.
        debug_assert!(self
            .slot_of(allocation_id)
            .is_none_or(|s| s.state == TaskSlotState::Active && s.timeout.is_none()));
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let timer = ctx.set_timer(
            self.slot_timeout,
            Timer::TaskExecutor(TaskExecutorTimer::SlotTimeout {
                allocation_id,
                ticket,
            }),
        );
        SlotTimeout { timer, ticket }
    }

    /// The JobMaster accepted the slot: ACTIVE, timeout cancelled. False if the table does not
    /// hold the allocation for `job_id` (it was freed or timed out meanwhile).
    pub fn mark_slot_active(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
        job_id: JobId,
    ) -> bool {
        let Some(i) = self.index_of(allocation_id) else {
            return false;
        };
        let slot = self.slots[i].as_mut().expect("found");
        if slot.job_id != job_id {
            return false;
        }
        if slot.state == TaskSlotState::Active {
            // An ACTIVE slot never times out.
            assert!(slot.timeout.is_none());
            return true; // Flink's markSlotActive is idempotent
        }
        let timeout = slot
            .timeout
            .take()
            .expect("an ALLOCATED slot has a timeout");
        // Only the current arm of the slot's timeout is cancelled here.
        assert!(timeout.ticket <= self.next_ticket);
        ctx.cancel_timer(timeout.timer);
        slot.state = TaskSlotState::Active;
        ctx.trace(Obs::SlotActivated { allocation_id });
        true
    }

    /// The slot's JobMaster was lost: back to ALLOCATED with a fresh timeout, so the slot waits
    /// for a new leader to accept it and is freed if none does. False if not ACTIVE.
    pub fn mark_slot_inactive(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
    ) -> bool {
        let Some(i) = self.index_of(allocation_id) else {
            return false;
        };
        if self.slots[i].as_ref().expect("found").state != TaskSlotState::Active {
            return false;
        }
        let timeout = self.arm_timeout(ctx, allocation_id);
        let slot = self.slots[i].as_mut().expect("found");
        assert!(slot.timeout.is_none());
        assert_eq!(slot.allocation_id, allocation_id);
        slot.state = TaskSlotState::Allocated;
        slot.timeout = Some(timeout);
        ctx.trace(Obs::SlotDeactivated { allocation_id });
        true
    }

    /// Frees the slot of `allocation_id`: returns its index and job, `None` if not held.
    pub fn free_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
    ) -> Option<(u32, JobId)> {
        let i = self.index_of(allocation_id)?;
        let slot = self.slots[i].take().expect("found");
        // ALLOCATED exactly while the timeout is armed.
        assert_eq!(
            slot.timeout.is_some(),
            slot.state == TaskSlotState::Allocated
        );
        if let Some(t) = slot.timeout {
            assert_eq!(slot.state, TaskSlotState::Allocated);
            ctx.cancel_timer(t.timer);
        }
        let slot_index = i as u32;
        debug_assert!(self.index_of(allocation_id).is_none());
        ctx.trace(Obs::SlotFreed {
            slot_index,
            allocation_id,
        });
        Some((slot_index, slot.job_id))
    }

    /// Whether a `SlotTimeout` with `ticket` is the current arm of a still-ALLOCATED slot.
    pub fn is_valid_timeout(&self, allocation_id: AllocationId, ticket: u64) -> bool {
        // Every ticket a timer carries was issued by this table.
        assert!(ticket > 0 && ticket <= self.next_ticket);
        self.index_of(allocation_id).is_some_and(|i| {
            let slot = self.slots[i].as_ref().expect("found");
            slot.state == TaskSlotState::Allocated
                && slot.timeout.is_some_and(|t| t.ticket == ticket)
        })
    }

    fn slot_of(&self, allocation_id: AllocationId) -> Option<&TaskSlot> {
        self.index_of(allocation_id)
            .and_then(|i| self.slots[i].as_ref())
    }

    /// The job holding `allocation_id`, if any.
    pub fn owning_job(&self, allocation_id: AllocationId) -> Option<JobId> {
        self.slot_of(allocation_id).map(|s| s.job_id)
    }

    /// Whether `allocation_id` is held for `job_id`, ALLOCATED or ACTIVE.
    pub fn is_allocated(&self, allocation_id: AllocationId, job_id: JobId) -> bool {
        self.slot_of(allocation_id)
            .is_some_and(|s| s.job_id == job_id)
    }

    /// Whether `allocation_id` is ACTIVE for `job_id` (tasks may run in it).
    pub fn is_active(&self, allocation_id: AllocationId, job_id: JobId) -> bool {
        self.slot_of(allocation_id)
            .is_some_and(|s| s.job_id == job_id && s.state == TaskSlotState::Active)
    }

    fn held(&self) -> impl Iterator<Item = (u32, &TaskSlot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s)))
    }

    /// The ALLOCATED (not yet accepted) slots of `job_id`, as offers to its JobMaster.
    pub fn allocated_slots(&self, job_id: JobId) -> impl Iterator<Item = SlotOffer> + '_ {
        self.held()
            .filter(move |(_, s)| s.job_id == job_id && s.state == TaskSlotState::Allocated)
            .map(|(slot_index, s)| {
                debug_assert!(s.timeout.is_some());
                SlotOffer {
                    allocation_id: s.allocation_id,
                    slot_index,
                }
            })
    }

    /// The allocation ids of the ACTIVE slots of `job_id`.
    pub fn active_allocations(&self, job_id: JobId) -> impl Iterator<Item = AllocationId> + '_ {
        self.held()
            .filter(move |(_, s)| s.job_id == job_id && s.state == TaskSlotState::Active)
            .map(|(_, s)| {
                debug_assert!(s.timeout.is_none());
                s.allocation_id
            })
    }

    /// The allocation ids of every slot of `job_id`, whatever its state.
    pub fn allocations_of_job(&self, job_id: JobId) -> impl Iterator<Item = AllocationId> + '_ {
        self.held()
            .filter(move |(_, s)| s.job_id == job_id)
            .map(|(_, s)| s.allocation_id)
    }

    pub fn has_allocations(&self, job_id: JobId) -> bool {
        self.held().any(|(_, s)| s.job_id == job_id)
    }

    /// Flink's `SlotReport`: every slot, with its allocation if held.
    pub fn slot_report(&self) -> SlotReport {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| SlotStatus {
                slot_index: i as u32,
                allocation: s.as_ref().map(|s| (s.allocation_id, s.job_id)),
            })
            .collect()
    }

    /// Every slot: its index and, if held, (allocation, job, ACTIVE?).
    pub fn slots(&self) -> impl Iterator<Item = (u32, Option<(AllocationId, JobId, bool)>)> + '_ {
        self.slots.iter().enumerate().map(|(i, s)| {
            debug_assert!(s
                .as_ref()
                .is_none_or(|s| s.timeout.is_some() == (s.state == TaskSlotState::Allocated)));
            (
                i as u32,
                s.as_ref()
                    .map(|s| (s.allocation_id, s.job_id, s.state == TaskSlotState::Active)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::testing::traces as trace_of;
    use sim::{Effect, NodeId, Time, Timers};

    fn slot_timeouts(out: &[Effect<Flink>]) -> Vec<(AllocationId, u64)> {
        out.iter()
            .filter_map(|e| match e {
                Effect::SetTimer {
                    tag:
                        Timer::TaskExecutor(TaskExecutorTimer::SlotTimeout {
                            allocation_id,
                            ticket,
                        }),
                    ..
                } => Some((*allocation_id, *ticket)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn slot_lifecycle_and_timeout_tickets() {
        let mut rng = sim::rng::stream(1, "test", 0);
        let mut timers = Timers::default();
        let mut out = Vec::new();
        let mut ctx = Ctx::detached(NodeId(1), Time::ZERO, &mut rng, &mut timers, &mut out);
        let mut table = TaskSlotTable::new(2, Duration::from_secs(10));

        assert_eq!(
            table.allocate_slot(&mut ctx, 0, 7, 100),
            AllocateOutcome::Allocated
        );
        assert_eq!(
            table.allocate_slot(&mut ctx, 0, 7, 100),
            AllocateOutcome::AlreadyAllocated
        );
        assert_eq!(
            table.allocate_slot(&mut ctx, 0, 8, 200),
            AllocateOutcome::Occupied {
                allocation_id: 100,
                job_id: 7
            }
        );
        assert!(table.mark_slot_active(&mut ctx, 100, 7));
        assert!(
            !table.mark_slot_active(&mut ctx, 100, 8),
            "another job's slot"
        );
        assert!(table.is_active(100, 7));
        assert!(table.mark_slot_inactive(&mut ctx, 100));
        assert!(!table.is_active(100, 7));
        assert!(table.is_allocated(100, 7));
        assert_eq!(table.free_slot(&mut ctx, 100), Some((0, 7)));
        assert_eq!(table.free_slot(&mut ctx, 100), None);

        let arms = slot_timeouts(&out);
        assert_eq!(arms.len(), 2, "allocate and deactivate each arm a timeout");
        assert_ne!(arms[0].1, arms[1].1, "every arm has a fresh ticket");
        assert!(
            !table.is_valid_timeout(100, arms[1].1),
            "freed slots never time out"
        );
        let trace = trace_of(&out);
        assert!(matches!(trace[0], Obs::SlotAllocated { slot_index: 0, .. }));
        assert!(matches!(
            trace[1],
            Obs::SlotActivated { allocation_id: 100 }
        ));
        assert!(matches!(
            trace[2],
            Obs::SlotDeactivated { allocation_id: 100 }
        ));
        assert!(matches!(
            trace[3],
            Obs::SlotFreed {
                slot_index: 0,
                allocation_id: 100
            }
        ));
        assert!(table.slot_report().iter().all(|s| s.allocation.is_none()));
    }

    #[test]
    fn stale_ticket_is_not_a_valid_timeout() {
        let mut rng = sim::rng::stream(1, "test", 0);
        let mut timers = Timers::default();
        let mut out = Vec::new();
        let mut ctx = Ctx::detached(NodeId(1), Time::ZERO, &mut rng, &mut timers, &mut out);
        let mut table = TaskSlotTable::new(1, Duration::from_secs(10));
        table.allocate_slot(&mut ctx, 0, 7, 100);
        table.mark_slot_active(&mut ctx, 100, 7);
        table.mark_slot_inactive(&mut ctx, 100);
        let arms = slot_timeouts(&out);
        assert!(!table.is_valid_timeout(100, arms[0].1));
        assert!(table.is_valid_timeout(100, arms[1].1));
        assert_eq!(
            table.slot_report(),
            vec![SlotStatus {
                slot_index: 0,
                allocation: Some((100, 7))
            }]
        );
    }
}
