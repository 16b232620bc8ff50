//! The ResourceManager's SlotManager: the state of every registered slot (free, pending a
//! `requestSlot`, allocated to a job), the declarative requirements per job, the batched
//! requirement check that allocates free slots by `requestSlot`, reconciliation with the
//! TaskExecutors' slot reports and `notifySlotAvailable`, and active resource management:
//! starting spare TaskManagers for slots no free slot covers, and releasing started ones that
//! stay idle for `resourcemanager.taskmanager-timeout`.
//!
//! It does not own the registrations of TaskExecutors and JobMasters nor the heartbeats (the
//! ResourceManager endpoint in `mod.rs` does): it keeps each worker's idle time on its
//! registration, and releases an idle worker through the endpoint's
//! `close_task_manager_connection`.
//!
//! `check_slot_manager` states how the slots, the outstanding `requestSlot` calls and the
//! registrations agree; every handler checks it on return (debug builds: it scans every slot).

use super::ResourceManager;
use crate::checking::bugs::Bug;
use crate::protocol::ids::{AllocationId, InstanceId, JobId, JobMasterId, SlotId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, SlotReport, TaskExecutorRpc};
use crate::protocol::states::SlotState;
use crate::protocol::timer::{ResourceManagerTimer, Timer};
use crate::protocol::Flink;
use rand::Rng as _;
use sim::{Ctx, NodeId};
use std::time::Duration;

/// `slotmanager.requirement-check.delay`: requirement changes are batched this long.
pub const REQUIREMENT_CHECK_DELAY: Duration = Duration::from_millis(50);

impl ResourceManager {
    /// The SlotManager's invariants: every slot is of a registered TaskExecutor whose slots
    /// are registered; the pending slots are exactly the outstanding `requestSlot` calls; an
    /// allocation is in at most one slot.
    pub(super) fn check_slot_manager(&self) {
        debug_assert!(self.slots.keys().all(|s| self
            .task_executors
            .get(&s.task_manager)
            .is_some_and(|r| r.slots_registered)));
        debug_assert_eq!(
            self.pending.len(),
            self.slots
                .values()
                .filter(|s| matches!(s, SlotState::Pending { .. }))
                .count(),
            "pending slots and outstanding requestSlot calls"
        );
        debug_assert!(self.pending.iter().all(|(a, (slot_id, _))| matches!(
            self.slots.get(slot_id),
            Some(SlotState::Pending { allocation_id, .. }) if allocation_id == a
        )));
        // The sort is O(slots log slots): debug builds only, like the checks above.
        if cfg!(debug_assertions) && !self.bugs.has(Bug::SlotDoubleAllocation) {
            let mut allocations: Vec<AllocationId> =
                self.slots.values().filter_map(|s| s.allocation()).collect();
            let n = allocations.len();
            allocations.sort_unstable();
            allocations.dedup();
            debug_assert_eq!(allocations.len(), n, "an allocation in two slots");
        }
    }

    /// Sets a registered TaskExecutor's slot to `state` (registering it if new), and traces the
    /// change with the registration it belongs to.
    pub(super) fn set_slot_state(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        slot_id: SlotId,
        state: SlotState,
    ) {
        let instance_id = self
            .task_executors
            .get(&slot_id.task_manager)
            .expect("a slot of a registered TaskExecutor")
            .instance_id;
        if self.slots.insert(slot_id, state) != Some(state) {
            ctx.trace(Obs::SlotStateChanged {
                slot_id,
                instance_id,
                state,
            });
        }
    }

    /// `declareRequiredResources`: the job's requirement replaces the previous one.
    pub(super) fn on_declare_required_resources(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        slots: u32,
        version: u64,
    ) {
        // Checked against the registered JobMaster of the job (fencing by JobMasterId).
        let Some(reg) = self.job_masters.get(&job_id) else {
            return;
        };
        if reg.job_master_id != job_master_id {
            return;
        }
        // The fencing token names the registered JobMaster, at its node.
        assert_eq!(reg.node, from);
        self.requirements.insert(job_id, (from, slots));
        ctx.send(
            from,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::DeclareRequiredResourcesResponse { version },
            },
        );
        self.schedule_requirement_check(ctx);
    }

    /// `notifySlotAvailable`: the TaskExecutor freed a slot the SlotManager thought allocated or
    /// pending.
    pub(super) fn on_notify_slot_available(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        instance_id: InstanceId,
        slot_id: SlotId,
        allocation_id: AllocationId,
    ) {
        let current = self.task_executors.get(&slot_id.task_manager);
        if current.map(|r| r.instance_id) != Some(instance_id) {
            return;
        }
        let matches = self
            .slots
            .get(&slot_id)
            .is_some_and(|s| s.allocation() == Some(allocation_id));
        if matches {
            self.set_slot_state(ctx, slot_id, SlotState::Free);
            if let Some((_, t)) = self.pending.remove(&allocation_id) {
                ctx.cancel_timer(t);
            }
            self.schedule_requirement_check(ctx);
            assert!(!self.pending.contains_key(&allocation_id));
        }
        self.check_slot_manager();
    }

    /// The TaskExecutor's answer to `requestSlot`: the pending slot is allocated or free again.
    pub(super) fn on_request_slot_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
        ok: bool,
    ) {
        let Some((slot_id, timer)) = self.pending.remove(&allocation_id) else {
            return; // no longer pending: a stale answer (FLINK-21874)
        };
        ctx.cancel_timer(timer);
        // An outstanding request is for a registered slot that waits for it.
        assert!(matches!(
            self.slots.get(&slot_id),
            Some(SlotState::Pending { allocation_id: a, .. }) if *a == allocation_id
        ));
        if let Some(&SlotState::Pending {
            allocation_id: a,
            job_id,
        }) = self.slots.get(&slot_id)
        {
            assert_eq!(a, allocation_id);
            let state = if ok {
                SlotState::Allocated {
                    allocation_id,
                    job_id,
                }
            } else {
                SlotState::Free
            };
            self.set_slot_state(ctx, slot_id, state);
            if !ok {
                self.schedule_requirement_check(ctx);
            }
        }
        self.check_slot_manager();
    }

    /// The ask timeout of `requestSlot`: a still pending slot is free again.
    pub(super) fn on_request_slot_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
    ) {
        let Some((slot_id, _)) = self.pending.remove(&allocation_id) else {
            return;
        };
        assert!(matches!(
            self.slots.get(&slot_id),
            Some(SlotState::Pending { allocation_id: a, .. }) if *a == allocation_id
        ));
        let still_pending = matches!(
            self.slots.get(&slot_id),
            Some(SlotState::Pending { allocation_id: a, .. }) if *a == allocation_id
        );
        if still_pending {
            self.set_slot_state(ctx, slot_id, SlotState::Free);
            self.schedule_requirement_check(ctx);
        }
        self.check_slot_manager();
    }

    /// Flink's `reportSlotStatus`: the TaskExecutor's report is the truth for slots that are not
    /// pending; a slot the SlotManager thought allocated but the report shows free is freed.
    pub(super) fn report_slot_status(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        report: &SlotReport,
    ) {
        // Only registered slots are reconciled.
        assert!(self
            .task_executors
            .get(&tm)
            .is_some_and(|r| r.slots_registered));
        let mut changed = false;
        for s in report {
            let slot_id = SlotId {
                task_manager: tm,
                slot_index: s.slot_index,
            };
            let Some(&current) = self.slots.get(&slot_id) else {
                continue;
            };
            let reported = match s.allocation {
                Some((allocation_id, job_id)) => SlotState::Allocated {
                    allocation_id,
                    job_id,
                },
                None => SlotState::Free,
            };
            match (current, reported) {
                // Pending requests are tracked by AllocationID; a report sent before the TE saw
                // the request must not free them.
                (
                    SlotState::Pending { allocation_id, .. },
                    SlotState::Allocated {
                        allocation_id: r, ..
                    },
                ) if allocation_id == r => {
                    if let Some((_, t)) = self.pending.remove(&allocation_id) {
                        ctx.cancel_timer(t);
                    }
                    self.set_slot_state(ctx, slot_id, reported);
                }
                (SlotState::Pending { .. }, _) => {}
                (current, reported) if current != reported => {
                    self.set_slot_state(ctx, slot_id, reported);
                    changed = true;
                }
                _ => {}
            }
        }
        let busy = self.worker_is_busy(tm);
        let now = ctx.mono_ns();
        if let Some(reg) = self.task_executors.get_mut(&tm) {
            match (busy, reg.idle_since_ns) {
                (true, _) => reg.idle_since_ns = None,
                (false, None) => reg.idle_since_ns = Some(now),
                _ => {}
            }
        }
        if changed {
            self.schedule_requirement_check(ctx);
        }
        self.check_slot_manager();
    }

    pub(super) fn worker_is_busy(&self, tm: NodeId) -> bool {
        self.slots
            .iter()
            .any(|(id, s)| id.task_manager == tm && *s != SlotState::Free)
    }

    pub(super) fn schedule_requirement_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if !self.check_scheduled {
            self.check_scheduled = true;
            ctx.set_timer(
                REQUIREMENT_CHECK_DELAY,
                Timer::ResourceManager(ResourceManagerTimer::RequirementCheck),
            );
        }
    }

    /// The batched requirement check is due.
    pub(super) fn on_requirement_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // One batched check is scheduled at a time.
        assert!(self.check_scheduled);
        self.check_scheduled = false;
        self.check_resource_requirements(ctx);
    }

    /// Flink's `checkResourceRequirements`: allocate free slots to jobs that miss slots, and
    /// (active RM) start spare TaskManagers for what free slots cannot cover.
    pub(super) fn check_resource_requirements(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let mut missing_total = 0u32;
        let jobs: Vec<(JobId, NodeId, u32)> = self
            .requirements
            .iter()
            .map(|(j, (node, n))| (*j, *node, *n))
            .collect();
        for (job_id, job_master, required) in jobs {
            let acquired = self
                .slots
                .values()
                .filter(|s| s.job() == Some(job_id))
                .count() as u32;
            let mut missing = required.saturating_sub(acquired);
            while missing > 0 {
                let free = self
                    .slots
                    .iter()
                    .find(|(_, s)| **s == SlotState::Free)
                    .map(|(id, _)| *id);
                let Some(slot_id) = free else { break };
                assert!(self
                    .task_executors
                    .get(&slot_id.task_manager)
                    .is_some_and(|r| r.slots_registered));
                let allocation_id = ctx.rng().random::<u64>();
                // A fresh allocation: never one that is outstanding.
                assert!(!self.pending.contains_key(&allocation_id));
                self.set_slot_state(
                    ctx,
                    slot_id,
                    SlotState::Pending {
                        allocation_id,
                        job_id,
                    },
                );
                let timer = ctx.set_timer(
                    self.config.ask_timeout,
                    Timer::ResourceManager(ResourceManagerTimer::RequestSlotTimeout {
                        allocation_id,
                    }),
                );
                self.pending.insert(allocation_id, (slot_id, timer));
                ctx.trace(Obs::SlotRequested {
                    slot_id,
                    allocation_id,
                    job_id,
                });
                ctx.send(
                    slot_id.task_manager,
                    Msg::TaskExecutor(TaskExecutorRpc::RequestSlot {
                        slot_id,
                        job_id,
                        allocation_id,
                        job_master,
                        resource_manager_id: self.id,
                    }),
                );
                missing -= 1;
            }
            missing_total += missing;
        }
        // Slots are missing only when no slot is free.
        debug_assert!(missing_total == 0 || self.slots.values().all(|s| *s != SlotState::Free));
        if missing_total > 0 {
            self.start_workers(ctx, missing_total);
        }
        self.check_slot_manager();
    }

    /// Active resource management: start enough spare TaskManagers for `missing` slots, counting
    /// those already started but not yet registered.
    pub(super) fn start_workers(&mut self, ctx: &mut Ctx<'_, Flink>, missing: u32) {
        assert!(missing > 0);
        let per_worker = self.config.number_of_task_slots.max(1);
        let pending_workers = self
            .started
            .iter()
            .filter(|n| {
                !self
                    .task_executors
                    .get(n)
                    .is_some_and(|r| r.slots_registered)
            })
            .count() as u32;
        let wanted = missing.div_ceil(per_worker).saturating_sub(pending_workers);
        let candidates: Vec<NodeId> = self
            .spares
            .iter()
            .copied()
            .filter(|n| !self.started.contains(n) && !self.task_executors.contains_key(n))
            .take(wanted as usize)
            .collect();
        for n in candidates {
            self.started.insert(n);
            ctx.trace(Obs::TaskManagerRequested { task_manager: n });
            ctx.start_node(n);
        }
        // Only spare TaskManagers are started.
        debug_assert!(self.started.iter().all(|n| self.spares.contains(n)));
    }

    pub(super) fn unregister_slots(&mut self, ctx: &mut Ctx<'_, Flink>, tm: NodeId) {
        let gone: Vec<SlotId> = self
            .slots
            .keys()
            .filter(|s| s.task_manager == tm)
            .copied()
            .collect();
        for s in gone {
            if let Some(SlotState::Pending { allocation_id, .. }) = self.slots.remove(&s) {
                if let Some((_, t)) = self.pending.remove(&allocation_id) {
                    ctx.cancel_timer(t);
                }
            }
        }
        // None of the TaskExecutor's slots, nor a request for one, is left.
        debug_assert!(self.slots.keys().all(|s| s.task_manager != tm));
        debug_assert!(self.pending.values().all(|(s, _)| s.task_manager != tm));
        self.schedule_requirement_check(ctx);
    }

    pub(super) fn idle_check_interval(&self) -> Duration {
        (self.config.resourcemanager_taskmanager_timeout / 4).max(Duration::from_millis(100))
    }

    /// The periodic check for idle started TaskManagers.
    pub(super) fn on_task_manager_idle_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // The check runs only with spare TaskManagers to release.
        assert!(!self.spares.is_empty());
        ctx.set_timer(
            self.idle_check_interval(),
            Timer::ResourceManager(ResourceManagerTimer::TaskManagerIdleCheck),
        );
        self.release_idle_workers(ctx);
    }

    /// Releases started TaskManagers idle for `resourcemanager.taskmanager-timeout`, unless a job
    /// still misses slots.
    pub(super) fn release_idle_workers(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let timeout = self.config.resourcemanager_taskmanager_timeout.as_nanos() as u64;
        let now = ctx.mono_ns();
        let missing: u32 = self
            .requirements
            .iter()
            .map(|(j, (_, n))| {
                let acquired = self.slots.values().filter(|s| s.job() == Some(*j)).count() as u32;
                n.saturating_sub(acquired)
            })
            .sum();
        if missing > 0 {
            return;
        }
        let idle: Vec<NodeId> = self
            .started
            .iter()
            .copied()
            .filter(|n| {
                self.task_executors.get(n).is_some_and(|r| {
                    r.idle_since_ns
                        .is_some_and(|since| now.saturating_sub(since) >= timeout)
                }) && !self.worker_is_busy(*n)
            })
            .collect();
        for n in idle {
            ctx.trace(Obs::TaskManagerReleased { task_manager: n });
            self.close_task_manager_connection(ctx, n, None);
            self.started.remove(&n);
            ctx.stop_node(n);
            assert!(!self.task_executors.contains_key(&n));
        }
        self.check_slot_manager();
    }
}
