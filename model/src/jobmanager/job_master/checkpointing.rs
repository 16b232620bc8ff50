//! The JobMaster's side of checkpointing: it hands the tasks' `acknowledgeCheckpoint` /
//! `declineCheckpoint`, the periodic trigger and the checkpoint timeout to the
//! CheckpointCoordinator, computes which tasks a checkpoint triggers and waits for (Flink's
//! `DefaultCheckpointPlanCalculator`), tells the running attempts about completed and aborted
//! checkpoints, and carries the coordinator's work for the `ha` store (CheckpointIDCounter,
//! CompletedCheckpointStore) to and from the JobManager process.
//!
//! It does not own pending or completed checkpoints (the CheckpointCoordinator does) nor decide
//! how the job recovers from a failed one (the scheduler's failover does).

use super::{JobMaster, JobMasterHaCall};
use crate::jobmanager::job_master::checkpoint_coordinator::{Outcome, Plan};
use crate::protocol::checkpoint::{CheckpointId, StateHandleId};
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::rpc::{Msg, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use sim::Ctx;

impl JobMaster {
    /// The work this JobMaster has for the `ha` store since the last call.
    pub fn take_ha_calls(&mut self) -> Vec<JobMasterHaCall> {
        // Only a checkpointing JobMaster has work for the `ha` store.
        assert!(self.ha_calls.is_empty() || self.coordinator.is_some());
        let mut calls = std::mem::take(&mut self.ha_calls);
        if let Some(c) = self.coordinator.as_mut() {
            calls.extend(
                c.take_pointer_ops()
                    .into_iter()
                    .map(JobMasterHaCall::Pointer),
            );
        }
        calls
    }

    /// The `ha` store's checkpoint id counter answered (`None`: it failed).
    pub fn on_checkpoint_id(&mut self, ctx: &mut Ctx<'_, Flink>, id: Option<CheckpointId>) {
        // The CheckpointIDCounter counts from 1 (0 means: no checkpoint).
        assert!(id.is_none_or(|id| id >= 1));
        let plan = self.checkpoint_plan();
        if let Some(c) = self.coordinator.as_mut() {
            c.on_checkpoint_id(ctx, id, plan);
        }
    }

    /// The pointer of checkpoint `id` was written to the `ha` store (`Some(true)`), was
    /// certainly not (`Some(false)`), or its fate is unknown (`None`: the session was lost
    /// with the write in flight). An unknown write keeps the checkpoint finalizing — neither
    /// completed nor discarded, and no restore happens meanwhile (cf. FLINK-22494's
    /// `PossibleInconsistentStateException`); losing the session revokes leadership anyway.
    pub fn on_pointer_written(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        written: Option<bool>,
    ) {
        // Only a checkpointing JobMaster writes pointers.
        assert!(self.coordinator.is_some());
        // Unknown outcome: the checkpoint stays finalizing (its state kept) until suspension.
        let Some(ok) = written else {
            return;
        };
        if let Some(c) = self.coordinator.as_mut() {
            let outcome = c.on_pointer_written(ctx, id, ok);
            self.on_checkpoint_outcome(ctx, outcome);
        }
        self.try_restart(ctx);
    }

    /// The pointer of subsumed checkpoint `id` was removed from the `ha` store (`ok`), or the
    /// removal failed: the coordinator discards its state only in the first case.
    pub fn on_pointer_removed(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId, ok: bool) {
        if let Some(c) = self.coordinator.as_mut() {
            c.on_pointer_removed(ctx, id, ok);
        }
    }

    /// `acknowledgeCheckpoint`, handed to the CheckpointCoordinator.
    pub(super) fn on_acknowledge_checkpoint(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
        handle: StateHandleId,
    ) {
        assert_eq!(handle.job_id, self.job_id, "state of this job");
        if let Some(c) = self.coordinator.as_mut() {
            let outcome = c.on_acknowledge(ctx, attempt, checkpoint_id, handle);
            self.on_checkpoint_outcome(ctx, outcome);
        }
    }

    /// `declineCheckpoint`, handed to the CheckpointCoordinator.
    pub(super) fn on_decline_checkpoint(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        checkpoint_id: CheckpointId,
        reason: &'static str,
    ) {
        if let Some(c) = self.coordinator.as_mut() {
            let outcome = c.on_decline(ctx, checkpoint_id, reason);
            self.on_checkpoint_outcome(ctx, outcome);
        }
    }

    /// The periodic checkpoint trigger fired.
    pub(super) fn on_checkpoint_trigger(&mut self, ctx: &mut Ctx<'_, Flink>, version: u64) {
        let plan = self.checkpoint_plan();
        if let Some(c) = self.coordinator.as_mut() {
            if c.is_trigger(version) && c.on_trigger_timer(ctx, plan) {
                self.ha_calls.push(JobMasterHaCall::NextCheckpointId);
            }
        }
    }

    /// `execution.checkpointing.timeout` of a pending checkpoint.
    pub(super) fn on_checkpoint_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        checkpoint_id: CheckpointId,
    ) {
        if let Some(c) = self.coordinator.as_mut() {
            let outcome = c.on_timeout(ctx, checkpoint_id);
            self.on_checkpoint_outcome(ctx, outcome);
        }
    }

    /// The tasks of a checkpoint now: `None` unless every execution is RUNNING or FINISHED.
    pub(super) fn checkpoint_plan(&self) -> Option<Plan> {
        let mut plan = Plan::default();
        for (ev, e) in &self.executions {
            match e.state {
                ExecutionState::Running => {}
                ExecutionState::Finished => {
                    plan.finished.push(*ev);
                    continue;
                }
                _ => return None,
            }
            assert_eq!(e.attempt.vertex, *ev);
            plan.wait_for.push(e.attempt);
            let inputs = self.graph.inputs(*ev);
            if inputs
                .iter()
                .all(|i| self.executions[i].state == ExecutionState::Finished)
            {
                let (_, tm) = e.slot?;
                plan.trigger.push((e.attempt, tm));
            }
        }
        // Every execution is waited for or finished; a job with a RUNNING task triggers one.
        assert_eq!(
            plan.wait_for.len() + plan.finished.len(),
            self.executions.len()
        );
        assert!(plan.wait_for.is_empty() || !plan.trigger.is_empty());
        Some(plan)
    }

    /// Tells the current running attempts about a completed or aborted checkpoint, or fails
    /// the job when the failure manager says so.
    pub(super) fn on_checkpoint_outcome(&mut self, ctx: &mut Ctx<'_, Flink>, outcome: Outcome) {
        let (complete, id) = match outcome {
            Outcome::Nothing => return,
            Outcome::FailJob => return self.handle_global_failure(ctx),
            Outcome::Completed(id) => (true, id),
            Outcome::Aborted(id) => (false, id),
        };
        let c = self.coordinator.as_ref().expect("a checkpoint outcome");
        if complete {
            assert_eq!(c.latest_completed().map(|c| c.id), Some(id));
        }
        debug_assert!(!c.pending_ids().contains(&id));
        for e in self.executions.values() {
            if e.state != ExecutionState::Running {
                continue;
            }
            let Some((_, tm)) = e.slot else { continue };
            let rpc = if complete {
                TaskExecutorRpc::NotifyCheckpointComplete {
                    attempt: e.attempt,
                    checkpoint_id: id,
                }
            } else {
                TaskExecutorRpc::NotifyCheckpointAborted {
                    attempt: e.attempt,
                    checkpoint_id: id,
                }
            };
            ctx.send(tm, Msg::TaskExecutor(rpc));
        }
    }
}
