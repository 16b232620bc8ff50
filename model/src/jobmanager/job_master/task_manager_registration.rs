//! The TaskManagers registered at the JobMaster (Flink's `JobMaster.registerTaskManager` /
//! `disconnectTaskManager`) and the JM → TE heartbeat, of which the JobMaster is the sender: its
//! requests carry the slots the pool holds from each TaskExecutor, its responses the
//! TaskExecutor's deployed attempts. A lost or disconnected TaskManager's slots leave the pool
//! and their executions fail.
//!
//! It does not own the slots (the slot pool does) nor reconcile deployments (the scheduler does).

use super::JobMaster;
use crate::checking::bugs::Bug;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    ConnectPurpose, DisconnectCause, Msg, TaskExecutorRpc, TaskManagerRegistration,
};
use crate::protocol::Flink;
use crate::services::registration::take_answered;
use sim::{Ctx, NodeId, TimerId};

/// A `registerTaskManager` call waiting for its connection back to the TaskExecutor.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRegistration {
    task_manager: NodeId,
    session_id: u64,
    attempt_id: u64,
}

impl JobMaster {
    /// `registerTaskManager`: an idempotent repeat is answered at once; otherwise (a new
    /// registration, or a restarted TaskManager whose old registration goes first) the JobMaster
    /// connects back to the TaskExecutor and registers it when the connection completes.
    pub(super) fn on_register_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        session_id: u64,
        attempt_id: u64,
    ) {
        match self.task_managers.get(&from) {
            Some(s) if *s == session_id => {
                self.answer_task_manager(ctx, from, attempt_id, true);
                return;
            }
            // The TaskManager restarted: the old registration goes.
            Some(_) => self.disconnect_task_manager(ctx, from, None, false),
            None => {}
        }
        assert!(!self.task_managers.contains_key(&from));
        self.next_attempt_id += 1;
        let connect_id = self.next_attempt_id;
        self.tm_connects.insert(
            connect_id,
            PendingRegistration {
                task_manager: from,
                session_id,
                attempt_id,
            },
        );
        ctx.send(
            from,
            Msg::Connect {
                purpose: ConnectPurpose::JobMasterToTaskExecutor(self.job_id),
                connect_id,
            },
        );
    }

    /// The connection back to a registering TaskExecutor completed (`found`), or failed or
    /// could not be sent. Like Flink's, the completion registers the TaskManager whatever
    /// happened meanwhile: a registration of another session is replaced, not disconnected.
    pub(super) fn on_task_manager_connected(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        connect_id: u64,
        found: bool,
    ) {
        let Some(p) = take_answered(&mut self.tm_connects, connect_id, |p| {
            p.task_manager == from
        }) else {
            return; // not this JobMaster's connection
        };
        if !found {
            self.answer_task_manager(ctx, from, p.attempt_id, false);
            return;
        }
        match self.task_managers.get(&from) {
            Some(s) if *s == p.session_id => {}
            Some(_) => {
                self.task_managers.insert(from, p.session_id);
                self.tm_heartbeats.monitor_target(ctx, from);
            }
            None => self.register_task_manager(ctx, from, p.session_id),
        }
        assert_eq!(self.task_managers.get(&from), Some(&p.session_id));
        assert!(self.tm_heartbeats.is_monitored(from));
        self.answer_task_manager(ctx, from, p.attempt_id, true);
    }

    fn answer_task_manager(
        &self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        attempt_id: u64,
        success: bool,
    ) {
        let response = if success {
            TaskManagerRegistration::Success {
                job_master_id: self.id,
            }
        } else {
            TaskManagerRegistration::Failure
        };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id: self.job_id,
                attempt_id,
                response,
            }),
        );
    }

    pub(super) fn register_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        session_id: u64,
    ) {
        // An older registration of the TaskManager is gone first, with its slots.
        assert!(!self.task_managers.contains_key(&tm));
        debug_assert!(self.slots.values().all(|s| s.task_manager != tm));
        self.task_managers.insert(tm, session_id);
        self.tm_heartbeats.monitor_target(ctx, tm);
    }

    /// `disconnectTaskManager` / `releaseTaskManager`: the TaskExecutor's slots leave the pool
    /// and their executions fail.
    pub(super) fn disconnect_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        cause: Option<LossCause>,
        notify: bool,
    ) {
        if !self.task_managers.contains_key(&tm) {
            return;
        }
        if let Some(cause) = cause {
            ctx.trace(Obs::TargetLost {
                observer: Endpoint::JobMaster(self.me, self.job_id),
                target: Endpoint::TaskExecutor(tm),
                cause,
            });
        }
        self.tm_heartbeats.unmonitor_target(ctx, tm);
        assert!(!self.tm_heartbeats.is_monitored(tm));
        self.task_managers.remove(&tm);
        let lost: Vec<AllocationId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.task_manager == tm)
            .map(|(a, _)| *a)
            .collect();
        // Every slot leaves the pool before any payload fails (Flink's
        // `DefaultDeclarativeSlotPool.releaseSlots`): failing one slot's executions may restart
        // a region at once, which must not be deployed into another slot of the lost TaskManager.
        for allocation_id in &lost {
            self.release_slot(ctx, *allocation_id, false);
        }
        if !self.bugs.has(Bug::TmLossNotFailingTasks) {
            for allocation_id in lost {
                self.fail_executions_in_slot(ctx, allocation_id);
            }
        }
        if notify {
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::DisconnectJobManager {
                    job_id: self.job_id,
                    cause: DisconnectCause::HeartbeatTimeout,
                }),
            );
        }
        self.assign_slots_and_deploy(ctx);
        // None of the TaskManager's slots stays in the pool.
        assert!(!self.task_managers.contains_key(&tm));
        debug_assert!(self.slots.values().all(|s| s.task_manager != tm));
        self.check_slots();
    }

    /// A TaskExecutor's heartbeat response, with its `ExecutionDeploymentReport`.
    pub(super) fn on_heartbeat_from_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        deployed: &[ExecutionAttemptId],
    ) {
        if self.tm_heartbeats.report_heartbeat(ctx, from) {
            self.reconcile_deployments(ctx, from, deployed);
        }
    }

    /// The JM → TE heartbeat request, with the slots the pool holds from each TaskExecutor
    /// (Flink's `AllocatedSlotReport`).
    pub(super) fn on_task_manager_heartbeat_tick(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.tm_heartbeats.on_tick(ctx);
        // The JobMaster monitors exactly its registered TaskManagers.
        debug_assert!(self
            .tm_heartbeats
            .targets()
            .all(|tm| self.task_managers.contains_key(&tm)));
        for tm in self.tm_heartbeats.targets() {
            let allocated = self
                .slots
                .iter()
                .filter(|(_, s)| s.task_manager == tm)
                .map(|(a, _)| *a)
                .collect();
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager {
                    job_id: self.job_id,
                    job_master_id: self.id,
                    allocated,
                }),
            );
        }
    }

    pub(super) fn on_task_manager_heartbeat_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        target: NodeId,
    ) {
        if self.tm_heartbeats.on_timeout(timer, target)
            && !self.bugs.has(Bug::HeartbeatTimeoutIgnored)
        {
            self.disconnect_task_manager(ctx, target, Some(LossCause::HeartbeatTimeout), true);
            assert!(!self.task_managers.contains_key(&target));
        }
    }
}
