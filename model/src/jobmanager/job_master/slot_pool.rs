//! The JobMaster's declarative SlotPool: the slots it holds (each serving at most one
//! slot-sharing group) and since when they are idle, the requirement it declares to the
//! ResourceManager (`declareRequiredResources`, re-sent until acknowledged), the slot offers of
//! registered TaskExecutors, `failSlot`, the release of idle slots after `slot.idle.timeout`, and
//! `slot.request.timeout` for executions that wait for a slot.
//!
//! It does not decide which group a slot serves or when a region deploys (the scheduler does),
//! nor which TaskExecutors are registered (`task_manager_registration` does).
//!
//! `check_slots` states how the pool, the sharing groups and the executions agree (debug
//! builds: it scans every slot and execution).

use super::{JobMaster, RmConnection};
use crate::checking::bugs::Bug;
use crate::protocol::ids::{AllocationId, JobMasterId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{Msg, ResourceManagerRpc, SlotOffer, TaskExecutorRpc};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::timer::{JobMasterTimer, Timer};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};

/// A slot in the pool.
#[derive(Debug)]
pub(super) struct PoolSlot {
    pub(super) task_manager: NodeId,
    /// The slot-sharing group (subtask index) it serves, if any.
    pub(super) group: Option<u32>,
    /// Since when it serves no group (local monotonic ns).
    pub(super) idle_since_ns: u64,
}

impl JobMaster {
    /// The pool's invariants: every slot is of a registered TaskExecutor, groups and slots
    /// name each other, and a live execution runs in a pool slot of its TaskExecutor.
    pub(super) fn check_slots(&self) {
        if self.shut_down {
            return;
        }
        debug_assert!(self
            .slots
            .values()
            .all(|s| self.task_managers.contains_key(&s.task_manager)));
        if self.bugs.has(Bug::SlotDoubleAllocation) {
            return; // a busy slot serves two groups
        }
        debug_assert!(self
            .groups
            .iter()
            .all(|(g, a)| self.slots.get(a).is_some_and(|s| s.group == Some(*g))));
        debug_assert!(self
            .slots
            .iter()
            .all(|(a, s)| s.group.is_none_or(|g| self.groups.get(&g) == Some(a))));
        if self.bugs.has(Bug::TmLossNotFailingTasks) {
            return; // executions outlive their slots
        }
        debug_assert!(
            self.executions.values().all(|e| e.state.is_terminal()
                || e.slot.is_none_or(|(a, tm)| self
                    .slots
                    .get(&a)
                    .is_some_and(|s| s.task_manager == tm))),
            "a live execution runs in a slot of the pool"
        );
    }

    pub(super) fn required_slots(&self) -> u32 {
        assert!(self.group_count >= 1);
        if self.shut_down || self.status.is_terminal() || self.status == JobStatus::Failing {
            0
        } else {
            self.group_count
        }
    }

    /// Sends the full requirement to the RM (re-sent until acknowledged).
    pub(super) fn declare_required_resources(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if !matches!(self.rm, Some(RmConnection::Connected)) {
            return; // declared after the connection is established
        }
        self.declared_version += 1;
        let version = self.declared_version;
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::DeclareRequiredResources {
                job_id: self.job_id,
                job_master_id: self.id,
                slots: self.required_slots(),
                version,
            }),
        );
        if let Some(t) = self.declare_timer.take() {
            ctx.cancel_timer(t);
        }
        self.declare_timer = Some(ctx.set_timer(
            self.config.ask_timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::DeclareResourcesRetry { version },
            },
        ));
    }

    /// The RM acknowledged a declaration; only the latest one stops the retries.
    pub(super) fn on_declare_required_resources_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        version: u64,
    ) {
        if version == self.declared_version {
            if let Some(t) = self.declare_timer.take() {
                ctx.cancel_timer(t);
            }
        }
    }

    pub(super) fn on_declare_resources_retry(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        version: u64,
    ) {
        if version == self.declared_version && self.declare_timer == Some(timer) {
            self.declare_timer = None;
            self.declare_required_resources(ctx);
        }
    }

    pub(super) fn on_offer_slots(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_master_id: JobMasterId,
        offers: Vec<SlotOffer>,
        offer_id: u64,
    ) {
        let mut accepted = Vec::new();
        if job_master_id == self.id && self.task_managers.contains_key(&from) {
            let now = ctx.mono_ns();
            for offer in &offers {
                let known = self.slots.contains_key(&offer.allocation_id);
                // A re-offered allocation comes from the TaskExecutor that first offered it.
                assert!(!known || self.slots[&offer.allocation_id].task_manager == from);
                let wanted = (self.slots.len() as u32) < self.required_slots()
                    || self.status == JobStatus::Restarting;
                if known || wanted {
                    if !known {
                        self.slots.insert(
                            offer.allocation_id,
                            PoolSlot {
                                task_manager: from,
                                group: None,
                                idle_since_ns: now,
                            },
                        );
                    }
                    accepted.push(offer.allocation_id);
                }
            }
        }
        // Only the fenced JobMaster of a registered TaskExecutor accepts, into the pool.
        assert!(accepted.is_empty() || (job_master_id == self.id && !self.shut_down));
        debug_assert!(accepted
            .iter()
            .all(|a| self.slots.get(a).is_some_and(|s| s.task_manager == from)));
        if !accepted.is_empty() {
            ctx.trace(Obs::SlotsAccepted {
                job_id: self.job_id,
                task_manager: from,
                allocations: accepted.clone(),
            });
        }
        ctx.send(
            from,
            Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                job_id: self.job_id,
                job_master_id,
                offer_id,
                accepted,
            }),
        );
        self.assign_slots_and_deploy(ctx);
    }

    /// Removes a slot from the pool; with `free`, tells its TaskExecutor to free it.
    pub(super) fn release_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
        free: bool,
    ) {
        let Some(slot) = self.slots.remove(&allocation_id) else {
            return;
        };
        if let Some(g) = slot.group {
            let served = self.groups.remove(&g);
            assert!(served == Some(allocation_id) || self.bugs.has(Bug::SlotDoubleAllocation));
        }
        if free {
            ctx.send(
                slot.task_manager,
                Msg::TaskExecutor(TaskExecutorRpc::FreeSlot { allocation_id }),
            );
        }
        ctx.trace(Obs::SlotReleased {
            job_id: self.job_id,
            task_manager: slot.task_manager,
            allocation_id,
        });
    }

    /// `failSlot` from the slot's TaskExecutor: the slot leaves the pool, its executions fail.
    pub(super) fn on_fail_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        allocation_id: AllocationId,
    ) {
        if self.slots.get(&allocation_id).map(|s| s.task_manager) == Some(from) {
            self.release_slot(ctx, allocation_id, false);
            self.fail_executions_in_slot(ctx, allocation_id);
            self.assign_slots_and_deploy(ctx);
            assert!(!self.slots.contains_key(&allocation_id));
            self.check_slots();
        }
    }

    /// The periodic idle-slot check: slots idle for `slot.idle.timeout` beyond the requirement
    /// are freed.
    pub(super) fn on_slot_idle_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        ctx.set_timer(
            self.config.slot_idle_timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::SlotIdleCheck,
            },
        );
        let now = ctx.mono_ns();
        let timeout = self.config.slot_idle_timeout.as_nanos() as u64;
        let required = self.required_slots() as usize;
        let idle: Vec<AllocationId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.group.is_none() && now.saturating_sub(s.idle_since_ns) >= timeout)
            .map(|(a, _)| *a)
            .collect();
        let before = self.slots.len();
        for allocation_id in idle {
            if self.slots.len() > required {
                self.release_slot(ctx, allocation_id, true);
            }
        }
        // Idle slots are released only beyond the requirement.
        assert!(self.slots.len() >= required.min(before));
        self.check_slots();
    }

    /// `slot.request.timeout` runs while some scheduled execution has no slot.
    pub(super) fn update_slot_request_timer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let waiting = self.executions.iter().any(|(ev, e)| {
            e.state == ExecutionState::Scheduled && !self.groups.contains_key(&ev.subtask)
        });
        match (waiting, self.slot_request_timer) {
            (true, None) => {
                self.slot_request_timer = Some(ctx.set_timer(
                    self.config.slot_request_timeout,
                    Timer::JobMaster {
                        job_id: self.job_id,
                        timer: JobMasterTimer::SlotRequestTimeout { version: 0 },
                    },
                ));
            }
            (false, Some(t)) => {
                ctx.cancel_timer(t);
                self.slot_request_timer = None;
            }
            _ => {}
        }
        assert_eq!(self.slot_request_timer.is_some(), waiting);
    }

    /// `slot.request.timeout` passed with scheduled executions still without a slot.
    pub(super) fn on_slot_request_timeout(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) {
        if self.slot_request_timer != Some(timer) {
            return;
        }
        self.slot_request_timer = None;
        // NoResourceAvailableException: the slotless executions fail as one bulk.
        let slotless: Vec<ExecutionVertexId> = self
            .executions
            .iter()
            .filter(|(ev, e)| {
                e.state == ExecutionState::Scheduled && !self.groups.contains_key(&ev.subtask)
            })
            .map(|(ev, _)| *ev)
            .collect();
        if let Some(first) = slotless.first().copied() {
            // The timer runs only while the job runs.
            assert!(!self.shut_down);
            for ev in &slotless {
                self.transition(ctx, *ev, ExecutionState::Failed);
            }
            self.handle_task_failure(ctx, first);
            self.try_restart(ctx);
            self.check_terminal(ctx);
        }
    }
}
