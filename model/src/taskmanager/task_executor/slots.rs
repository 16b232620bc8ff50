//! The TaskExecutor's slots against its [`TaskSlotTable`]: `requestSlot` from the connected
//! ResourceManager (fencing, allocation, registering the job with the job leader service),
//! Flink's `internalOfferSlotsToJobManager` / `handleAcceptedSlotOffers` (only the latest offer
//! counts, FLINK-21859), `freeSlotInternal` with `notifySlotAvailable`, and
//! `syncSlotsWithSnapshotFromJobMaster` on the JobMaster's heartbeat payload
//! (docs/flink-runtime.md §2.4, §2.5).
//!
//! It does not own the slot table's state machine (`task_slot_table`) nor the JobMaster
//! connection the offers go over (`job_leader_service`).

use super::job_leader_service::JobLeader;
use super::rm_connection::RmConnection;
use super::{job_component, TaskExecutor};
use crate::checking::bugs::Bug;
use crate::protocol::ids::{
    AllocationId, ExecutionAttemptId, JobId, JobMasterId, ResourceManagerId, SlotId,
};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, ResourceManagerRpc, SlotOffer};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::{TaskExecutorTimer, Timer};
use crate::protocol::Flink;
use crate::taskmanager::task::Task;
use crate::taskmanager::task_slot_table::AllocateOutcome;
use sim::{Ctx, NodeId, TimerId};

/// The latest `offerSlots` of a job: only its answer counts (FLINK-21859).
#[derive(Debug)]
pub(super) struct PendingOffer {
    pub(super) offer_id: u64,
    pub(super) offers: Vec<SlotOffer>,
    pub(super) timeout: TimerId,
}

impl TaskExecutor {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_request_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        slot_id: SlotId,
        job_id: JobId,
        allocation_id: AllocationId,
        job_master: NodeId,
        resource_manager_id: ResourceManagerId,
    ) {
        // The TE is not fenced; it checks explicitly that the caller is the RM it is registered
        // at, under that RM's current leader session.
        let connected = from == self.resource_manager
            && matches!(
                self.connection,
                Some(RmConnection::Established { resource_manager_id: id, .. })
                    if id == resource_manager_id
            );
        if !connected && !self.bugs.has(Bug::NoFencingCheck) {
            if self.ha.is_some() {
                ctx.trace(Obs::FencedCallRejected {
                    call: "requestSlot".into(),
                    token: resource_manager_id,
                });
            }
            Self::answer_request_slot(ctx, from, allocation_id, false);
            return;
        }
        if self.ha.is_some() {
            ctx.trace(Obs::FencedCallAccepted {
                call: "requestSlot".into(),
                token: resource_manager_id,
            });
        }
        // An established registration was answered under the retrieved RM leader session.
        if connected {
            assert!(self
                .resource_manager_token
                .is_none_or(|t| t == resource_manager_id));
        }
        assert_eq!(slot_id.task_manager, self.me);
        assert!(slot_id.slot_index < self.task_slot_table.number_of_slots());
        let ok =
            match self
                .task_slot_table
                .allocate_slot(ctx, slot_id.slot_index, job_id, allocation_id)
            {
                AllocateOutcome::Allocated | AllocateOutcome::AlreadyAllocated => true,
                AllocateOutcome::Occupied { .. } if self.bugs.has(Bug::SlotDoubleAllocation) => {
                    self.task_slot_table.reassign_slot(
                        ctx,
                        slot_id.slot_index,
                        job_id,
                        allocation_id,
                    );
                    true
                }
                // Flink's `SlotOccupiedException`: the RM's view is stale; it learns the truth from
                // the answer and the next slot report.
                AllocateOutcome::Occupied { .. } => false,
            };
        Self::answer_request_slot(ctx, from, allocation_id, ok);
        if !ok {
            return;
        }
        debug_assert_eq!(self.task_slot_table.owning_job(allocation_id), Some(job_id));
        // Register the job with the job leader service on its first slot; offer now if the
        // JobMaster connection is already up.
        match self.jobs.get(&job_id).map(|j| &j.leader) {
            None => {
                // With HA the job's leader comes from retrieval; `requestSlot`'s address is
                // where to start.
                let job_master = match self.job_leaders.get(&job_id) {
                    Some(info) if !self.bugs.has(Bug::TmIgnoresLeaderChange) => info.address,
                    _ => job_master,
                };
                if let Some(ha) = self.ha.as_mut() {
                    let component = job_component(job_id);
                    let (_, effects) =
                        ha.call(ctx, |c, now| ((), c.add_leader_retrieval(now, &component)));
                    self.start_job_leader_registration(ctx, job_id, job_master);
                    self.on_ha_effects(ctx, effects);
                } else {
                    self.start_job_leader_registration(ctx, job_id, job_master);
                }
            }
            Some(JobLeader::Connected(_)) => self.offer_slots(ctx, job_id),
            Some(JobLeader::Registering(_)) => {} // the slots are offered once connected
        }
        // A job with a slot here has a job leader entry.
        assert!(self.jobs.contains_key(&job_id));
    }

    fn answer_request_slot(
        ctx: &mut Ctx<'_, Flink>,
        to: NodeId,
        allocation_id: AllocationId,
        ok: bool,
    ) {
        ctx.send(
            to,
            Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse { allocation_id, ok }),
        );
    }

    /// Flink's `freeSlotInternal`: tasks in the slot end first, the slot is freed, the RM is
    /// told, and a job left without slots here closes its JobMaster connection.
    pub(super) fn free_slot_internal(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
        reason: &str,
    ) {
        let Some(job_id) = self.task_slot_table.owning_job(allocation_id) else {
            return; // already freed
        };
        let in_slot: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.allocation_id() == allocation_id)
            .map(Task::attempt)
            .collect();
        for &attempt in &in_slot {
            match self.tasks[&attempt].state() {
                // A cancelling task's slot goes away under it: its cancellation is complete.
                ExecutionState::Canceling => {
                    self.transition_task(ctx, attempt, ExecutionState::Canceled, None)
                }
                s if s.is_terminal() => {}
                _ => self.fail_task(
                    ctx,
                    attempt,
                    format!("slot {allocation_id} freed: {reason}"),
                ),
            }
        }
        for attempt in &in_slot {
            let task = self.tasks.remove(attempt).expect("listed");
            assert!(task.state().is_terminal());
        }
        self.terminal_tasks.retain(|a| !in_slot.contains(a));
        let (slot_index, freed_job) = self
            .task_slot_table
            .free_slot(ctx, allocation_id)
            .expect("owned above");
        assert_eq!(freed_job, job_id);
        if let Some(instance_id) = self.connected_instance() {
            ctx.send(
                self.resource_manager,
                Msg::ResourceManager(ResourceManagerRpc::NotifySlotAvailable {
                    instance_id,
                    slot_id: SlotId {
                        task_manager: self.me,
                        slot_index,
                    },
                    allocation_id,
                }),
            );
        }
        if !self.task_slot_table.has_allocations(job_id) {
            self.close_job(ctx, job_id);
        }
        // The slot and its tasks are gone; the job entry lives exactly while it has slots.
        debug_assert!(self.task_slot_table.owning_job(allocation_id).is_none());
        debug_assert!(self
            .tasks
            .values()
            .all(|t| t.allocation_id() != allocation_id));
        if !self.bugs.has(Bug::SlotDoubleAllocation) {
            debug_assert_eq!(
                self.jobs.contains_key(&job_id),
                self.task_slot_table.has_allocations(job_id)
            );
        }
    }

    /// Flink's `internalOfferSlotsToJobManager`: offers every ALLOCATED slot of the job under a
    /// fresh offer id, which supersedes any earlier offer.
    pub(super) fn offer_slots(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        let job = self.jobs.get_mut(&job_id).expect("a job with slots");
        let JobLeader::Connected(conn) = &job.leader else {
            return;
        };
        let offers: Vec<SlotOffer> = self.task_slot_table.allocated_slots(job_id).collect();
        if offers.is_empty() {
            return;
        }
        if let Some(old) = job.offer.take() {
            // Offer ids only grow, so a later offer supersedes every earlier one.
            assert!(old.offer_id <= self.next_offer_id);
            ctx.cancel_timer(old.timeout);
        }
        self.next_offer_id += 1;
        let offer_id = self.next_offer_id;
        let timeout = ctx.set_timer(
            self.config.ask_timeout,
            Timer::TaskExecutor(TaskExecutorTimer::OfferSlotsTimeout { job_id, offer_id }),
        );
        ctx.send(
            job.job_master,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::OfferSlots {
                    job_master_id: conn.job_master_id,
                    offers: offers.clone(),
                    offer_id,
                },
            },
        );
        job.offer = Some(PendingOffer {
            offer_id,
            offers,
            timeout,
        });
    }

    /// Flink's `handleAcceptedSlotOffers`.
    pub(super) fn on_offer_slots_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master_id: JobMasterId,
        offer_id: u64,
        accepted: &[AllocationId],
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        // Only the latest offer's answer counts (FLINK-21859): an older answer may accept slots
        // that a later offer re-offered or that were freed since.
        let outdated = self.bugs.has(Bug::OutdatedOfferAnswerFreesSlots);
        if job
            .offer
            .as_ref()
            .is_none_or(|o| o.offer_id != offer_id && !outdated)
        {
            return;
        }
        let offer = job.offer.take().expect("checked");
        ctx.cancel_timer(offer.timeout);
        let connection_unchanged = matches!(
            &job.leader,
            JobLeader::Connected(c) if c.job_master_id == job_master_id
        );
        if !connection_unchanged {
            return; // a new JobMaster leader; it gets its own offer
        }
        let job_master = job.job_master;
        // Allocation ids are minted per request: an offered one is the job's or nobody's.
        debug_assert!(offer.offers.iter().all(|o| self
            .task_slot_table
            .owning_job(o.allocation_id)
            .is_none_or(|j| j == job_id)));
        for o in offer.offers {
            if accepted.contains(&o.allocation_id) {
                if !self
                    .task_slot_table
                    .mark_slot_active(ctx, o.allocation_id, job_id)
                {
                    // Accepted, but the slot timed out or was freed meanwhile: the JobMaster
                    // must not use it.
                    ctx.send(
                        job_master,
                        Msg::JobMaster {
                            job_id,
                            rpc: JobMasterRpc::FailSlot {
                                allocation_id: o.allocation_id,
                            },
                        },
                    );
                }
            } else {
                self.free_slot_internal(ctx, o.allocation_id, "the JobMaster rejected the slot");
            }
        }
    }

    /// Flink's `syncSlotsWithSnapshotFromJobMaster`: a slot the JobMaster lists but this TE does
    /// not hold for the job is failed at the JobMaster; an ACTIVE slot it no longer lists is
    /// freed here.
    pub(super) fn sync_slots_with_snapshot_from_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_master: NodeId,
        job_id: JobId,
        allocated: &[AllocationId],
    ) {
        for &allocation_id in allocated {
            if !self.task_slot_table.is_allocated(allocation_id, job_id) {
                ctx.send(
                    job_master,
                    Msg::JobMaster {
                        job_id,
                        rpc: JobMasterRpc::FailSlot { allocation_id },
                    },
                );
            }
        }
        let unused: Vec<AllocationId> = self
            .task_slot_table
            .active_allocations(job_id)
            .filter(|a| !allocated.contains(a))
            .collect();
        for allocation_id in unused {
            self.free_slot_internal(ctx, allocation_id, "the JobMaster no longer holds the slot");
        }
        // Every ACTIVE slot left is one the JobMaster holds.
        debug_assert!(self
            .task_slot_table
            .active_allocations(job_id)
            .all(|a| allocated.contains(&a)));
    }
}
