//! The JobMaster's declarative SlotPool: the slots it holds (each serving at most one
//! slot-sharing group) and since when they are idle, the requirement it declares to the
//! ResourceManager (`declareRequiredResources`, re-sent until acknowledged), the slot offers of
//! registered TaskExecutors, `failSlot`, the release of idle slots after `slot.idle.timeout`, and
//! `slot.request.timeout` for executions that wait for a slot.
//!
//! It does not decide which group a slot serves or when a region deploys (the scheduler does),
//! nor which TaskExecutors are registered (`task_manager_registration` does).

use super::{JobMaster, RmConnection};
use crate::protocol::ids::{AllocationId, JobMasterId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{Msg, ResourceManagerRpc, SlotOffer, TaskExecutorRpc};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::timer::Timer;
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
    pub(super) fn required_slots(&self) -> u32 {
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
            Timer::DeclareResourcesRetry {
                job_id: self.job_id,
                version,
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
            self.groups.remove(&g);
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
        }
    }

    /// The periodic idle-slot check: slots idle for `slot.idle.timeout` beyond the requirement
    /// are freed.
    pub(super) fn on_slot_idle_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        ctx.set_timer(
            self.config.slot_idle_timeout,
            Timer::SlotIdleCheck {
                job_id: self.job_id,
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
        for allocation_id in idle {
            if self.slots.len() > required {
                self.release_slot(ctx, allocation_id, true);
            }
        }
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
                    Timer::SlotRequestTimeout {
                        job_id: self.job_id,
                        version: 0,
                    },
                ));
            }
            (false, Some(t)) => {
                ctx.cancel_timer(t);
                self.slot_request_timer = None;
            }
            _ => {}
        }
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
            for ev in &slotless {
                self.transition(ctx, *ev, ExecutionState::Failed);
            }
            self.handle_task_failure(ctx, first);
            self.try_restart(ctx);
            self.check_terminal(ctx);
        }
    }
}
