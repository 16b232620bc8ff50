//! Flink's `CheckpointCoordinator` in the JobMaster (FLINK.md §7.2–§7.6): the periodic trigger
//! with min-pause and max-concurrent, pending checkpoints with their timeout, acknowledgements
//! and declines, completion into the `CompletedCheckpointStore` with `num-retained` and
//! subsumption, the `CheckpointFailureManager`'s count of consecutive failures, and the choice
//! of the checkpoint a restore uses.
//!
//! It owns checkpoint ids and the pending and completed checkpoints. It does not own which
//! tasks exist or run (the JobMaster passes a [`Plan`]), nor telling tasks about completions
//! (the JobMaster sends `notifyCheckpointComplete` to the current attempts), nor failing the
//! job (it returns [`Outcome::FailJob`]).

use crate::bugs::{Bug, Bugs};
use crate::checkpoint::{CheckpointConfig, CheckpointId, StateHandleId, TaskRestore};
use crate::ids::{ExecutionAttemptId, JobId};
use crate::job_graph::{key_group_range, ExecutionVertexId, JobGraph};
use crate::obs::Obs;
use crate::process::{Process, Timer};
use crate::rpc::{CheckpointStorageRpc, Msg, TaskExecutorRpc};
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// The tasks of one checkpoint: those to trigger (sources, or running tasks whose input all
/// ended) with their TaskExecutors, and every running task it waits for.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub trigger: Vec<(ExecutionAttemptId, NodeId)>,
    pub wait_for: Vec<ExecutionAttemptId>,
    /// Execution vertices already FINISHED: restored, they stay finished (FLIP-147).
    pub finished: Vec<ExecutionVertexId>,
}

#[derive(Debug)]
struct PendingCheckpoint {
    finished: Vec<ExecutionVertexId>,
    not_yet_acknowledged: BTreeSet<ExecutionAttemptId>,
    acknowledged: BTreeMap<ExecutionAttemptId, StateHandleId>,
    timeout: TimerId,
}

/// A completed checkpoint: the handles of its task states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    pub handles: Vec<StateHandleId>,
    pub finished: Vec<ExecutionVertexId>,
}

/// What the JobMaster must do after a coordinator step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Nothing,
    /// Send `notifyCheckpointComplete(id)` to the current attempts.
    Completed(CheckpointId),
    /// Send `notifyCheckpointAborted(id)` to the current attempts.
    Aborted(CheckpointId),
    /// More consecutive failures than `tolerable-failed-checkpoints`: fail the job (global
    /// failover).
    FailJob,
}

#[derive(Debug)]
pub struct CheckpointCoordinator {
    job_id: JobId,
    config: CheckpointConfig,
    bugs: Bugs,
    storage: Option<NodeId>,
    /// The next id (`CheckpointIDCounter`, from 1).
    next_id: CheckpointId,
    /// The periodic trigger's timer while the scheduler runs.
    trigger_timer: Option<TimerId>,
    scheduler_version: u64,
    pending: BTreeMap<CheckpointId, PendingCheckpoint>,
    completed: VecDeque<CompletedCheckpoint>,
    /// Local monotonic time of the last completion.
    last_completion_ns: Option<u64>,
    consecutive_failures: u32,
    last_succeeded: CheckpointId,
}

/// Reasons counted by the `CheckpointFailureManager` (FLINK.md §7.5).
fn counted(reason: &str) -> bool {
    matches!(
        reason,
        "CHECKPOINT_EXPIRED"
            | "CHECKPOINT_DECLINED"
            | "CHECKPOINT_ASYNC_EXCEPTION"
            | "IO_EXCEPTION"
            | "FINALIZE_CHECKPOINT_FAILURE"
    )
}

impl CheckpointCoordinator {
    pub fn new(
        job_id: JobId,
        config: CheckpointConfig,
        bugs: Bugs,
        storage: Option<NodeId>,
    ) -> Self {
        CheckpointCoordinator {
            job_id,
            config,
            bugs,
            storage,
            next_id: 1,
            trigger_timer: None,
            scheduler_version: 0,
            pending: BTreeMap::new(),
            completed: VecDeque::new(),
            last_completion_ns: None,
            consecutive_failures: 0,
            last_succeeded: 0,
        }
    }

    pub fn is_scheduler_running(&self) -> bool {
        self.trigger_timer.is_some()
    }

    pub fn latest_completed(&self) -> Option<&CompletedCheckpoint> {
        self.completed.back()
    }

    pub fn pending_ids(&self) -> Vec<CheckpointId> {
        self.pending.keys().copied().collect()
    }

    /// The job is RUNNING: start the periodic trigger. The first fires after a random delay in
    /// `[min-pause, interval]`.
    pub fn start_scheduler(&mut self, ctx: &mut Ctx<'_, Process>) {
        if self.trigger_timer.is_some() {
            return;
        }
        let lo = self.config.min_pause.min(self.config.interval).as_nanos() as u64;
        let hi = self.config.interval.as_nanos() as u64;
        let delay = ctx.rng().random_range(lo..=hi);
        self.arm_trigger(ctx, Duration::from_nanos(delay));
    }

    fn arm_trigger(&mut self, ctx: &mut Ctx<'_, Process>, after: Duration) {
        self.scheduler_version += 1;
        self.trigger_timer = Some(ctx.set_timer(
            after,
            Timer::CheckpointTrigger {
                job_id: self.job_id,
                version: self.scheduler_version,
            },
        ));
    }

    /// The job left RUNNING: stop the trigger and abort every pending checkpoint
    /// (CHECKPOINT_COORDINATOR_SUSPEND, not counted).
    pub fn stop_scheduler(&mut self, ctx: &mut Ctx<'_, Process>) -> Vec<CheckpointId> {
        if let Some(t) = self.trigger_timer.take() {
            ctx.cancel_timer(t);
        }
        let ids = self.pending_ids();
        for id in &ids {
            self.abort(ctx, *id, "CHECKPOINT_COORDINATOR_SUSPEND");
        }
        ids
    }

    /// Whether `version` is the live periodic trigger.
    pub fn is_trigger(&self, version: u64) -> bool {
        self.trigger_timer.is_some() && version == self.scheduler_version
    }

    /// The periodic trigger fired. `plan` is `None` when not every task is RUNNING (or
    /// finished): the checkpoint fails before it starts (NOT_ALL_REQUIRED_TASKS_RUNNING).
    pub fn on_trigger_timer(&mut self, ctx: &mut Ctx<'_, Process>, plan: Option<Plan>) {
        // Fixed rate: the next trigger is one interval after this one.
        self.arm_trigger(ctx, self.config.interval);
        let Some(plan) = plan else {
            return;
        };
        if plan.trigger.is_empty() || plan.wait_for.is_empty() {
            return;
        }
        if self.pending.len() >= self.config.max_concurrent as usize {
            return; // too many concurrent checkpoints
        }
        let now = ctx.mono_ns();
        if let Some(last) = self.last_completion_ns {
            let pause = self.config.min_pause.as_nanos() as u64;
            if now.saturating_sub(last) < pause {
                // MINIMUM_TIME_BETWEEN_CHECKPOINTS: dropped, and the trigger waits out the pause.
                if let Some(t) = self.trigger_timer.take() {
                    ctx.cancel_timer(t);
                }
                self.arm_trigger(ctx, Duration::from_nanos(pause - (now - last)));
                return;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let timeout = ctx.set_timer(
            self.config.timeout,
            Timer::CheckpointTimeout {
                job_id: self.job_id,
                checkpoint_id: id,
            },
        );
        ctx.trace(Obs::CheckpointTriggered {
            job_id: self.job_id,
            checkpoint_id: id,
            tasks: plan.wait_for.clone(),
            triggered: plan.trigger.iter().map(|(a, _)| *a).collect(),
        });
        self.pending.insert(
            id,
            PendingCheckpoint {
                finished: plan.finished.clone(),
                not_yet_acknowledged: plan.wait_for.iter().copied().collect(),
                acknowledged: BTreeMap::new(),
                timeout,
            },
        );
        let timestamp_ms = u64::try_from(ctx.wall_ms()).unwrap_or(0);
        for (attempt, tm) in plan.trigger {
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::TriggerCheckpoint {
                    attempt,
                    checkpoint_id: id,
                    timestamp_ms,
                }),
            );
        }
    }

    /// `acknowledgeCheckpoint`.
    pub fn on_acknowledge(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
        attempt: ExecutionAttemptId,
        id: CheckpointId,
        handle: StateHandleId,
    ) -> Outcome {
        let Some(p) = self.pending.get_mut(&id) else {
            // Late or unknown: the state is discarded, unless a completed checkpoint holds it
            // (a repeated acknowledgement of a checkpoint that completed).
            if !self.completed.iter().any(|c| c.handles.contains(&handle)) {
                self.discard(ctx, vec![handle]);
            }
            return Outcome::Nothing;
        };
        if !p.not_yet_acknowledged.remove(&attempt) {
            if !p.acknowledged.contains_key(&attempt) {
                // UNKNOWN: not a task of this checkpoint (a stale or newer attempt).
                self.discard(ctx, vec![handle]);
            }
            return Outcome::Nothing;
        }
        p.acknowledged.insert(attempt, handle);
        let missing = p.not_yet_acknowledged.len();
        let complete = missing == 0
            || (self.bugs.has(Bug::CompleteWithMissingAck)
                && missing == 1
                && !p.acknowledged.is_empty());
        if complete {
            self.complete(ctx, id)
        } else {
            Outcome::Nothing
        }
    }

    fn complete(&mut self, ctx: &mut Ctx<'_, Process>, id: CheckpointId) -> Outcome {
        let p = self.pending.remove(&id).expect("pending");
        ctx.cancel_timer(p.timeout);
        let handles: Vec<StateHandleId> = p.acknowledged.values().copied().collect();
        ctx.trace(Obs::CheckpointCompleted {
            job_id: self.job_id,
            checkpoint_id: id,
            handles: handles.clone(),
            finished: p.finished.clone(),
        });
        self.completed.push_back(CompletedCheckpoint {
            id,
            handles,
            finished: p.finished,
        });
        while self.completed.len() > self.config.num_retained as usize {
            let old = self.completed.pop_front().expect("non-empty");
            self.discard(ctx, old.handles);
        }
        self.last_completion_ns = Some(ctx.mono_ns());
        self.consecutive_failures = 0;
        self.last_succeeded = id;
        // Subsumption: older pending checkpoints are aborted.
        let older: Vec<CheckpointId> = self.pending.range(..id).map(|(k, _)| *k).collect();
        for old in older {
            self.abort(ctx, old, "CHECKPOINT_SUBSUMED");
        }
        Outcome::Completed(id)
    }

    /// `declineCheckpoint`.
    pub fn on_decline(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
        id: CheckpointId,
        reason: &'static str,
    ) -> Outcome {
        if !self.pending.contains_key(&id) {
            return Outcome::Nothing;
        }
        let reason = match reason {
            "CHECKPOINT_ASYNC_EXCEPTION" => "CHECKPOINT_ASYNC_EXCEPTION",
            "CHECKPOINT_DECLINED_SUBSUMED" => "CHECKPOINT_DECLINED_SUBSUMED",
            "CHECKPOINT_DECLINED_INPUT_END_OF_STREAM" => "CHECKPOINT_DECLINED_INPUT_END_OF_STREAM",
            _ => "CHECKPOINT_DECLINED",
        };
        self.fail_pending(ctx, id, reason)
    }

    /// The checkpoint's timeout fired.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_, Process>, id: CheckpointId) -> Outcome {
        if !self.pending.contains_key(&id) {
            return Outcome::Nothing;
        }
        self.fail_pending(ctx, id, "CHECKPOINT_EXPIRED")
    }

    fn fail_pending(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
        id: CheckpointId,
        reason: &'static str,
    ) -> Outcome {
        self.abort(ctx, id, reason);
        if counted(reason) && id > self.last_succeeded {
            self.consecutive_failures += 1;
            if self.consecutive_failures > self.config.tolerable_failed {
                self.consecutive_failures = 0;
                return Outcome::FailJob;
            }
        }
        Outcome::Aborted(id)
    }

    fn abort(&mut self, ctx: &mut Ctx<'_, Process>, id: CheckpointId, reason: &'static str) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        ctx.cancel_timer(p.timeout);
        ctx.trace(Obs::CheckpointAborted {
            job_id: self.job_id,
            checkpoint_id: id,
            reason,
        });
        self.discard(ctx, p.acknowledged.into_values().collect());
    }

    fn discard(&self, ctx: &mut Ctx<'_, Process>, handles: Vec<StateHandleId>) {
        if handles.is_empty() {
            return;
        }
        if let Some(storage) = self.storage {
            ctx.send(
                storage,
                Msg::CheckpointStorage(CheckpointStorageRpc::Delete { handles }),
            );
        }
    }

    /// The checkpoint a restore uses: the latest completed one (with the planted bug, the
    /// oldest retained).
    pub fn checkpoint_to_restore(&self) -> Option<&CompletedCheckpoint> {
        if self.bugs.has(Bug::RestoreOlderCheckpoint) {
            self.completed.front()
        } else {
            self.completed.back()
        }
    }
}

/// Flink's `StateAssignmentOperation` for one execution vertex: every handle of the same job
/// vertex whose subtask's key groups intersect this subtask's (with an unchanged parallelism,
/// exactly the same subtask's handle).
pub fn assign_state(
    graph: &JobGraph,
    checkpoint: &CompletedCheckpoint,
    ev: ExecutionVertexId,
) -> TaskRestore {
    let v = graph.vertex(ev.vertex);
    let own = key_group_range(v.max_parallelism, v.parallelism, ev.subtask);
    let handles = checkpoint
        .handles
        .iter()
        .filter(|h| h.vertex().vertex == ev.vertex)
        .filter(|h| {
            let theirs = key_group_range(v.max_parallelism, v.parallelism, h.vertex().subtask);
            if v.operators.iter().any(|o| o.kind == "count") {
                theirs.start() <= own.end() && own.start() <= theirs.end()
            } else {
                // Operator state (offsets, transactions) is not split: same subtask.
                h.vertex().subtask == ev.subtask
            }
        })
        .copied()
        .collect();
    TaskRestore {
        checkpoint_id: checkpoint.id,
        handles,
        finished: checkpoint.finished.contains(&ev),
    }
}
