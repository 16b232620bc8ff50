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
use crate::protocol::rpc::{DisconnectCause, Msg, TaskExecutorRpc, TaskManagerRegistration};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};

impl JobMaster {
    /// `registerTaskManager`: a new registration, an idempotent repeat, or a restarted
    /// TaskManager (new session) replacing its old registration; always answered with success.
    pub(super) fn on_register_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        session_id: u64,
        attempt_id: u64,
    ) {
        match self.task_managers.get(&from) {
            Some(s) if *s == session_id => {} // idempotent
            Some(_) => {
                // The TaskManager restarted: the old registration goes.
                self.disconnect_task_manager(ctx, from, None, false);
                self.register_task_manager(ctx, from, session_id);
            }
            None => self.register_task_manager(ctx, from, session_id),
        }
        assert_eq!(self.task_managers.get(&from), Some(&session_id));
        assert!(self.tm_heartbeats.is_monitored(from));
        ctx.send(
            from,
            Msg::TaskExecutor(TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id: self.job_id,
                attempt_id,
                response: TaskManagerRegistration::Success {
                    job_master_id: self.id,
                },
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
