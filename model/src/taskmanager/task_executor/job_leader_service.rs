//! Flink's `JobLeaderService` and `JobTable` on the TaskExecutor: one job leader entry per job
//! with slots here — the job's JobMaster found by leader retrieval (HA) or from `requestSlot`,
//! registration at it with retry (`registerTaskManager`), the established connection
//! (`establishJobManagerConnection`) with the JM ↔ TE heartbeat as the receiver, and losing,
//! disconnecting and closing it (`disconnectJobManagerConnection`,
//! `closeJobManagerConnectionIfNoAllocatedResources`, `releaseJobResources`; docs/flink-runtime.md
//! §1.6, §5.3, §9.3).
//!
//! It does not own the slots it offers or parks (`slots`, the slot table) nor the tasks it fails
//! (`tasks`).

use super::slots::PendingOffer;
use super::{job_component, TaskExecutor};
use crate::checking::bugs::Bug;
use crate::protocol::ha::LeaderInformation;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{DisconnectCause, JobMasterRpc, Msg, TaskManagerRegistration};
use crate::protocol::timer::HeartbeatPair;
use crate::protocol::timer::RegistrationTarget;
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use crate::services::registration::RetryingRegistration;
use crate::taskmanager::task::Task;
use sim::{Ctx, NodeId};

/// Flink's `JobTable.Connection`: an established connection to a job's JobMaster.
#[derive(Debug)]
pub(super) struct JobManagerConnection {
    pub(super) job_master_id: JobMasterId,
    /// The JM ↔ TE heartbeat of this job, the TE as receiver.
    pub(super) heartbeats: HeartbeatManager,
}

#[derive(Debug)]
pub(super) enum JobLeader {
    /// Flink's `JobLeaderService` registering at the JobMaster (or waiting to retry).
    Registering(RetryingRegistration),
    Connected(JobManagerConnection),
}

/// Flink's `JobTable.Job`: a job with slots on this TaskExecutor. It exists exactly while the
/// slot table holds slots of the job, and it is always registering or connected.
#[derive(Debug)]
pub(super) struct Job {
    /// The JobMaster's address from `requestSlot` (leader retrieval without HA).
    pub(super) job_master: NodeId,
    pub(super) leader: JobLeader,
    pub(super) offer: Option<PendingOffer>,
}

impl TaskExecutor {
    /// `JobLeaderService`'s listener: the job's JobMaster leader changed. The connection to the
    /// old one closes (its tasks fail, its slots are parked) and the TE registers at the new
    /// one, which may take the parked slots (docs/flink-runtime.md §9.3).
    pub(super) fn on_job_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        leader: Option<LeaderInformation>,
    ) {
        if self.bugs.has(Bug::TmIgnoresLeaderChange) {
            return;
        }
        match leader {
            Some(info) => {
                self.job_leaders.insert(job_id, info);
            }
            None => {
                self.job_leaders.remove(&job_id);
            }
        }
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let current = match (&job.leader, leader) {
            (JobLeader::Connected(c), Some(info)) => {
                c.job_master_id == info.leader_session_id.0 && job.job_master == info.address
            }
            (JobLeader::Registering(_), Some(info)) => job.job_master == info.address,
            (JobLeader::Registering(_), None) => true,
            (JobLeader::Connected(_), None) => false,
        };
        if current {
            return;
        }
        if self.job_manager_connection(job_id).is_some() {
            self.disconnect_job_manager_connection(ctx, job_id, Some(DisconnectCause::Reconnect));
        }
        if let Some(info) = leader {
            if let Some(job) = self.jobs.remove(&job_id) {
                self.close_job_leader(ctx, job_id, job, None);
                self.start_job_leader_registration(ctx, job_id, info.address);
            }
            // The job now follows the retrieved leader.
            if let Some(job) = self.jobs.get(&job_id) {
                assert_eq!(job.job_master, info.address);
            }
        }
    }

    pub(super) fn on_job_master_unreachable(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        to: NodeId,
        job_id: JobId,
        rpc: &JobMasterRpc,
    ) {
        match rpc {
            JobMasterRpc::RegisterTaskManager { attempt_id, .. } => {
                if let Some(Job {
                    leader: JobLeader::Registering(reg),
                    ..
                }) = self.jobs.get_mut(&job_id)
                {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            JobMasterRpc::HeartbeatFromTaskManager { .. } => {
                let threshold = match self.jobs.get_mut(&job_id) {
                    Some(Job {
                        job_master,
                        leader: JobLeader::Connected(c),
                        ..
                    }) if *job_master == to => c.heartbeats.report_rpc_failure(to),
                    _ => false,
                };
                if threshold {
                    self.job_manager_lost(ctx, job_id, LossCause::Unreachable);
                }
            }
            JobMasterRpc::OfferSlots { offer_id, .. } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job.offer.as_ref().is_none_or(|o| o.offer_id != *offer_id) {
                    return; // superseded: only the latest offer counts
                }
                // Not a timeout but a failure: Flink frees the offered slots, which returns them
                // to the ResourceManager.
                let offer = job.offer.take().expect("checked");
                ctx.cancel_timer(offer.timeout);
                for o in offer.offers {
                    self.free_slot_internal(ctx, o.allocation_id, "offering the slot failed");
                }
            }
            // The update RPC failed: Flink fails the task (a no-op once it is terminal).
            JobMasterRpc::UpdateTaskExecutionState { attempt, .. } => self.fail_task(
                ctx,
                *attempt,
                "updateTaskExecutionState failed: JobMaster unreachable".to_string(),
            ),
            _ => {}
        }
    }

    pub(super) fn start_job_leader_registration(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master: NodeId,
    ) {
        assert!(!self.jobs.contains_key(&job_id));
        assert!(self.task_slot_table.has_allocations(job_id));
        let registration = RetryingRegistration::start(
            RegistrationTarget::JobMaster(job_id),
            job_master,
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.jobs.insert(
            job_id,
            Job {
                job_master,
                leader: JobLeader::Registering(registration),
                offer: None,
            },
        );
    }

    /// The answer to the job leader registration's gateway connection: register over it.
    pub(super) fn on_job_master_connected(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        connect_id: u64,
        found: bool,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return; // the job left this TE meanwhile
        };
        let JobLeader::Registering(reg) = &mut job.leader else {
            return;
        };
        if let Some(id) = reg.on_connected(connect_id, found, &mut self.next_attempt_id, ctx) {
            let job_master = job.job_master;
            self.send_job_master_registration(ctx, job_id, job_master, id);
        }
    }

    pub(super) fn send_job_master_registration(
        &self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master: NodeId,
        attempt_id: u64,
    ) {
        // Registering at the job's JobMaster only while not connected to it.
        let job = self.jobs.get(&job_id).expect("a job with slots");
        assert!(matches!(job.leader, JobLeader::Registering(_)));
        assert_eq!(job.job_master, job_master);
        ctx.send(
            job_master,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::RegisterTaskManager {
                    session_id: self.session_id,
                    attempt_id,
                },
            },
        );
    }

    pub(super) fn on_register_task_manager_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        attempt_id: u64,
        response: TaskManagerRegistration,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return; // the job left this TE meanwhile
        };
        // A connection is never registering and connected at once, so a duplicate success for
        // an established connection finds no registration and is ignored (FLINK-7526).
        let JobLeader::Registering(reg) = &mut job.leader else {
            return;
        };
        if !reg.is_current(attempt_id) || from != job.job_master {
            return; // an answer to an abandoned attempt
        }
        match response {
            TaskManagerRegistration::Success { job_master_id } => {
                self.establish_job_manager_connection(ctx, job_id, job_master_id)
            }
            TaskManagerRegistration::Failure => {
                reg.on_declined(attempt_id, ctx);
            }
            TaskManagerRegistration::Rejection => {
                // Flink's `handleRejectedJobManagerConnection`: the job is not there (any
                // more); release everything this TE holds for it.
                self.release_job_resources(ctx, job_id);
            }
        }
    }

    /// Flink's `establishJobManagerConnection`: monitor the JobMaster and offer every
    /// ALLOCATED slot of the job.
    fn establish_job_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master_id: JobMasterId,
    ) {
        // While registering, no slot of the job is ACTIVE (losing the JobMaster parked them);
        // only the planted fencing bug deploys into a slot of a registering job.
        if !self.bugs.has(Bug::NoFencingCheck) {
            debug_assert!(self
                .task_slot_table
                .active_allocations(job_id)
                .next()
                .is_none());
        }
        let job = self.jobs.get_mut(&job_id).expect("registering");
        let JobLeader::Registering(reg) = &mut job.leader else {
            unreachable!("only a registration establishes a connection");
        };
        reg.cancel(ctx);
        let mut heartbeats = HeartbeatManager::for_job(
            HeartbeatPair::JobMasterTaskExecutor,
            Role::Receiver,
            Endpoint::TaskExecutor(self.me),
            Some(job_id),
            &self.config,
            self.bugs,
        );
        heartbeats.monitor_target(ctx, job.job_master);
        job.leader = JobLeader::Connected(JobManagerConnection {
            job_master_id,
            heartbeats,
        });
        ctx.trace(Obs::JobManagerConnected {
            job_id,
            job_master_id,
        });
        self.offer_slots(ctx, job_id);
    }

    /// The JM ↔ TE heartbeat request, with the JobMaster's `AllocatedSlotReport`.
    pub(super) fn on_heartbeat_from_job_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        allocated: &[AllocationId],
    ) {
        let Some(Job {
            leader: JobLeader::Connected(conn),
            ..
        }) = self.jobs.get_mut(&job_id)
        else {
            return; // no connection for the job: the payload is ignored
        };
        // Another JobMaster instance of the job is another heartbeat origin; only the connected
        // one is monitored, and an unmonitored origin gets no answer.
        if conn.job_master_id != job_master_id || !conn.heartbeats.report_heartbeat(ctx, from) {
            return;
        }
        // The `ExecutionDeploymentReport`: the attempts of this job still running here.
        let deployed: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.job_id() == job_id && !t.state().is_terminal())
            .map(Task::attempt)
            .collect();
        ctx.send(
            from,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::HeartbeatFromTaskManager { deployed },
            },
        );
        self.sync_slots_with_snapshot_from_job_master(ctx, from, job_id, allocated);
    }

    /// The JobMaster of `job_id` was lost (heartbeat timeout or unreachable).
    pub(super) fn job_manager_lost(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        cause: LossCause,
    ) {
        // Only a connected JobMaster can be lost.
        assert!(self.job_manager_connection(job_id).is_some());
        let job_master = self.jobs[&job_id].job_master;
        // Declared before the monitor stops, so observers see the loss while it is monitored.
        ctx.trace(Obs::TargetLost {
            observer: Endpoint::TaskExecutor(self.me),
            target: Endpoint::JobMaster(job_master, job_id),
            cause,
        });
        let disconnect_cause = match cause {
            LossCause::HeartbeatTimeout => DisconnectCause::HeartbeatTimeout,
            _ => DisconnectCause::Unreachable,
        };
        self.disconnect_job_manager_connection(ctx, job_id, Some(disconnect_cause));
    }

    /// Flink's `disconnectAndTryReconnectToJobManager` (docs/flink-runtime.md §5.3): fail the job's tasks,
    /// park its ACTIVE slots (ALLOCATED with a fresh timeout), drop the connection and register
    /// again, so a new leader can accept the parked slots. `notify` is the cause sent to the
    /// JobMaster (`disconnectTaskManager`); `None` when the JobMaster closed the connection.
    pub(super) fn disconnect_job_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        notify: Option<DisconnectCause>,
    ) {
        assert!(self.job_manager_connection(job_id).is_some());
        // 1. Fail the job's tasks; they report to the JobMaster that submitted them. (The
        // planted bug leaves them running.)
        let outlive = self.bugs.has(Bug::TasksOutliveJobMasterDisconnect);
        let live: Vec<ExecutionAttemptId> = if outlive {
            Vec::new()
        } else {
            self.tasks
                .values()
                .filter(|t| t.job_id() == job_id && t.can_fail())
                .map(Task::attempt)
                .collect()
        };
        for attempt in live {
            self.fail_task(
                ctx,
                attempt,
                format!("Disconnect from JobManager responsible for job {job_id}"),
            );
        }
        // 2. Park the ACTIVE slots.
        let active: Vec<AllocationId> = self.task_slot_table.active_allocations(job_id).collect();
        for allocation_id in active {
            let parked = self.task_slot_table.mark_slot_inactive(ctx, allocation_id);
            assert!(parked);
        }
        // 3. Disassociate.
        let job = self.jobs.remove(&job_id).expect("connected");
        let job_master = job.job_master;
        self.close_job_leader(ctx, job_id, job, notify);
        // 4. Register again, so a new leader can accept the parked slots. (Only the planted
        // slot bug can leave a connected job without slots.)
        if self.task_slot_table.has_allocations(job_id) {
            self.start_job_leader_registration(ctx, job_id, job_master);
        }
        // Disconnected: no live task and no ACTIVE slot of the job remains.
        debug_assert!(
            outlive
                || self
                    .tasks
                    .values()
                    .all(|t| t.job_id() != job_id || !t.can_fail())
        );
        debug_assert!(self
            .task_slot_table
            .active_allocations(job_id)
            .next()
            .is_none());
    }

    /// Closes a job's JobMaster connection or registration (the entry is already out of the
    /// table), telling the JobMaster when `notify` is set.
    fn close_job_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job: Job,
        notify: Option<DisconnectCause>,
    ) {
        assert!(!self.jobs.contains_key(&job_id));
        if let Some(offer) = job.offer {
            ctx.cancel_timer(offer.timeout);
        }
        match job.leader {
            JobLeader::Registering(mut reg) => reg.cancel(ctx),
            JobLeader::Connected(mut conn) => {
                conn.heartbeats.unmonitor_target(ctx, job.job_master);
                if let Some(cause) = notify {
                    ctx.send(
                        job.job_master,
                        Msg::JobMaster {
                            job_id,
                            rpc: JobMasterRpc::DisconnectTaskManager {
                                resource_id: self.me,
                                cause,
                            },
                        },
                    );
                }
                ctx.trace(Obs::JobManagerDisconnected { job_id });
            }
        }
    }

    /// The job has no slots here any more (`closeJobManagerConnectionIfNoAllocatedResources`):
    /// the connection closes for good.
    pub(super) fn close_job(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        assert!(!self.task_slot_table.has_allocations(job_id));
        if let Some(job) = self.jobs.remove(&job_id) {
            self.close_job_leader(ctx, job_id, job, Some(DisconnectCause::Reconnect));
        }
        if let Some(ha) = self.ha.as_mut() {
            ha.call(ctx, |c, _| {
                c.remove_leader_retrieval(&job_component(job_id));
                ((), Vec::new())
            });
            self.job_leaders.remove(&job_id);
        }
        // The job's tasks went with its slots (the planted slot bug drops slots under them).
        if !self.bugs.has(Bug::SlotDoubleAllocation) {
            debug_assert!(self.tasks.values().all(|t| t.job_id() != job_id));
        }
    }

    /// Flink's `releaseJobResources`: frees every slot of the job (the last one closes it).
    fn release_job_resources(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        let allocations: Vec<AllocationId> =
            self.task_slot_table.allocations_of_job(job_id).collect();
        for allocation_id in allocations {
            self.free_slot_internal(
                ctx,
                allocation_id,
                "the JobMaster rejected the registration",
            );
        }
        if self.jobs.contains_key(&job_id) {
            self.close_job(ctx, job_id);
        }
        debug_assert!(!self.task_slot_table.has_allocations(job_id));
        assert!(!self.jobs.contains_key(&job_id));
    }
}
