//! Flink's `CheckpointCoordinator` in the JobMaster (docs/flink-runtime.md §7.2–§7.6): the periodic trigger
//! with min-pause and max-concurrent, pending checkpoints with their timeout, acknowledgements
//! and declines, completion into the `CompletedCheckpointStore` with `num-retained` and
//! subsumption, the `CheckpointFailureManager`'s count of consecutive failures, and the choice
//! of the checkpoint a restore uses.
//!
//! It owns checkpoint ids and the pending and completed checkpoints. It does not own which
//! tasks exist or run (the JobMaster passes a [`Plan`]), nor telling tasks about completions
//! (the JobMaster sends `notifyCheckpointComplete` to the current attempts), nor failing the
//! job (it returns [`Outcome::FailJob`]).
//!
//! `check_invariants` states what holds between any two steps (pending and completed ids
//! disjoint and ordered, at most `max-concurrent` in flight, at most `num-retained` retained);
//! every public step checks it on return (debug builds: it scans every checkpoint).

use crate::checking::bugs::{Bug, Bugs};
use crate::protocol::checkpoint::CompletedCheckpoint;
use crate::protocol::checkpoint::{CheckpointConfig, CheckpointId, StateHandleId, TaskRestore};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::{key_group_range, ExecutionVertexId, JobGraph};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{CheckpointStorageRpc, Msg, TaskExecutorRpc};
use crate::protocol::timer::{JobMasterTimer, Timer};
use crate::protocol::Flink;
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

/// How the coordinator works with high availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaCheckpointing {
    /// Checkpoint ids come from the `ha` store's CheckpointIDCounter (asked for per trigger).
    pub external_ids: bool,
    /// A checkpoint completes only once its pointer is in the CompletedCheckpointStore; with
    /// `false` (a planted bug) the pointer is written lazily, one checkpoint behind.
    pub pointer_before_notify: bool,
}

/// A change to the CompletedCheckpointStore in the `ha` store, for the JobMaster to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointerOp {
    /// Add the pointer; with `awaited`, the checkpoint completes only when
    /// [`CheckpointCoordinator::on_pointer_written`] says it was written.
    Add {
        checkpoint: CompletedCheckpoint,
        awaited: bool,
    },
    /// Remove a subsumed checkpoint's pointer.
    Remove(CheckpointId),
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
    ha: Option<HaCheckpointing>,
    /// An id was asked of the `ha` store's counter and has not come back.
    awaiting_id: bool,
    /// Checkpoints whose pointer is being written (all acknowledged, not completed yet).
    finalizing: BTreeMap<CheckpointId, CompletedCheckpoint>,
    /// Subsumed checkpoints whose pointer is being removed from the `ha` store: their state is
    /// discarded only once the pointer is gone (Flink's `tryRemove` before the cleaner runs).
    removing: BTreeMap<CheckpointId, Vec<StateHandleId>>,
    /// Checkpoints still finalizing when the JobMaster was suspended: their pointer write had
    /// an unknown outcome and the `ha` store may hold them, so their state is never discarded
    /// (Flink's `PossibleInconsistentStateException`).
    unsettled: BTreeMap<CheckpointId, Vec<StateHandleId>>,
    pointer_ops: Vec<PointerOp>,
}

/// Reasons counted by the `CheckpointFailureManager` (docs/flink-runtime.md §7.5).
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
        assert!(config.max_concurrent >= 1, "max-concurrent-checkpoints");
        assert!(config.num_retained >= 1, "num-retained");
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
            ha: None,
            awaiting_id: false,
            finalizing: BTreeMap::new(),
            removing: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            pointer_ops: Vec::new(),
        }
    }

    /// High availability: ids from the `ha` store and pointers in it; `recovered` is the
    /// newest checkpoint of the CompletedCheckpointStore a new leader starts from.
    pub fn with_ha(
        mut self,
        ha: HaCheckpointing,
        recovered: Option<CompletedCheckpoint>,
    ) -> CheckpointCoordinator {
        // Only a fresh coordinator becomes an HA leader's.
        assert!(self.ha.is_none());
        assert!(self.pending.is_empty() && self.finalizing.is_empty());
        assert!(self.completed.is_empty() && self.last_succeeded == 0);
        self.ha = Some(ha);
        if let Some(cp) = recovered {
            // Ids come from the `ha` store's counter (or, with the planted bug, from 1 again).
            self.last_succeeded = cp.id;
            self.completed.push_back(cp);
        }
        self.check_invariants();
        self
    }

    /// Whether a planted bug lets checkpoint ids repeat or go backwards: a new leader that
    /// counts from 1 again re-uses ids below (or equal to) the recovered checkpoint's.
    fn ids_may_repeat(&self) -> bool {
        self.bugs.has(Bug::CheckpointIdCounterNotPersisted)
    }

    /// What holds between any two steps of the coordinator (see the module documentation).
    fn check_invariants(&self) {
        let in_flight = self.pending.len() + self.finalizing.len();
        assert!(in_flight <= self.config.max_concurrent as usize);
        assert!(self.completed.len() <= self.config.num_retained as usize);
        assert!(self.consecutive_failures <= self.config.tolerable_failed);
        assert_eq!(
            self.completed.back().map_or(0, |c| c.id),
            self.last_succeeded,
            "the latest completed checkpoint is the last that succeeded"
        );
        // Pending checkpoints exist only while the periodic trigger runs.
        assert!(self.trigger_timer.is_some() || self.pending.is_empty());
        assert!(!self.awaiting_id || self.ha.is_some_and(|h| h.external_ids));
        assert!(self.finalizing.is_empty() || self.ha.is_some_and(|h| h.pointer_before_notify));
        assert!(self.pointer_ops.is_empty() || self.ha.is_some());
        debug_assert!(self
            .pending
            .keys()
            .chain(self.finalizing.keys())
            .all(|id| *id < self.next_id));
        debug_assert!(
            self.pending
                .keys()
                .all(|id| !self.finalizing.contains_key(id)),
            "a checkpoint is pending or finalizing, not both"
        );
        debug_assert!(self.pending.values().all(|p| p
            .acknowledged
            .keys()
            .all(|a| !p.not_yet_acknowledged.contains(a))));
        if !self.ids_may_repeat() {
            debug_assert!(
                self.completed
                    .iter()
                    .all(|c| !self.pending.contains_key(&c.id)
                        && !self.finalizing.contains_key(&c.id)),
                "pending, finalizing and completed ids are disjoint"
            );
            debug_assert!(
                self.completed
                    .iter()
                    .zip(self.completed.iter().skip(1))
                    .all(|(a, b)| a.id < b.id),
                "retained checkpoints are ordered by id"
            );
        }
    }

    /// Whether a completed checkpoint's pointer is being written. A restore waits for it: the
    /// checkpoint may be in the store already, and restoring an older one would abort the
    /// transactions a new leader will commit.
    pub fn is_finalizing(&self) -> bool {
        assert!(self.finalizing.is_empty() || self.ha.is_some_and(|h| h.pointer_before_notify));
        !self.finalizing.is_empty()
    }

    /// The pointer changes to carry out in the `ha` store.
    pub fn take_pointer_ops(&mut self) -> Vec<PointerOp> {
        // Pointers live in the `ha` store: without HA there is nothing to write.
        assert!(self.pointer_ops.is_empty() || self.ha.is_some());
        std::mem::take(&mut self.pointer_ops)
    }

    pub fn is_scheduler_running(&self) -> bool {
        self.trigger_timer.is_some()
    }

    pub fn latest_completed(&self) -> Option<&CompletedCheckpoint> {
        assert_eq!(
            self.completed.back().map_or(0, |c| c.id),
            self.last_succeeded
        );
        self.completed.back()
    }

    pub fn pending_ids(&self) -> Vec<CheckpointId> {
        self.pending.keys().copied().collect()
    }

    /// The job is RUNNING: start the periodic trigger. The first fires after a random delay in
    /// `[min-pause, interval]`.
    pub fn start_scheduler(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if self.trigger_timer.is_some() {
            return;
        }
        // Stopping the trigger aborted every pending checkpoint.
        assert!(self.pending.is_empty());
        let lo = self.config.min_pause.min(self.config.interval).as_nanos() as u64;
        let hi = self.config.interval.as_nanos() as u64;
        let delay = ctx.rng().random_range(lo..=hi);
        self.arm_trigger(ctx, Duration::from_nanos(delay));
        self.check_invariants();
    }

    fn arm_trigger(&mut self, ctx: &mut Ctx<'_, Flink>, after: Duration) {
        // A trigger is never further away than one interval or one minimum pause.
        assert!(after <= self.config.interval.max(self.config.min_pause));
        self.scheduler_version += 1;
        self.trigger_timer = Some(ctx.set_timer(
            after,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::CheckpointTrigger {
                    version: self.scheduler_version,
                },
            },
        ));
    }

    /// The job left RUNNING: stop the trigger and abort every pending checkpoint
    /// (CHECKPOINT_COORDINATOR_SUSPEND, not counted).
    pub fn stop_scheduler(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<CheckpointId> {
        if let Some(t) = self.trigger_timer.take() {
            ctx.cancel_timer(t);
        }
        let ids = self.pending_ids();
        for id in &ids {
            self.abort(ctx, *id, "CHECKPOINT_COORDINATOR_SUSPEND");
        }
        assert!(self.pending.is_empty() && self.trigger_timer.is_none());
        self.check_invariants();
        ids
    }

    /// The JobMaster is suspended (leadership lost): a checkpoint still finalizing has a
    /// pointer write of unknown outcome, so its state stays for a new leader that may restore
    /// it; with the planted bug it is taken for failed and discarded.
    pub fn suspend(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let finalizing = std::mem::take(&mut self.finalizing);
        for (id, checkpoint) in finalizing {
            if self.bugs.has(Bug::DiscardOnUnknownPointerWrite) {
                ctx.trace(Obs::CheckpointAborted {
                    job_id: self.job_id,
                    checkpoint_id: id,
                    reason: "FINALIZE_CHECKPOINT_FAILURE".into(),
                });
                self.discard(ctx, checkpoint.handles);
            } else {
                self.unsettled.insert(id, checkpoint.handles);
            }
        }
    }

    /// Whether `version` is the live periodic trigger.
    pub fn is_trigger(&self, version: u64) -> bool {
        self.trigger_timer.is_some() && version == self.scheduler_version
    }

    /// The periodic trigger fired. `plan` is `None` when not every task is RUNNING (or
    /// finished): the checkpoint fails before it starts (NOT_ALL_REQUIRED_TASKS_RUNNING).
    /// Returns true when the checkpoint waits for an id from the `ha` store's counter (then
    /// [`CheckpointCoordinator::on_checkpoint_id`] triggers it).
    pub fn on_trigger_timer(&mut self, ctx: &mut Ctx<'_, Flink>, plan: Option<Plan>) -> bool {
        // Fixed rate: the next trigger is one interval after this one.
        self.arm_trigger(ctx, self.config.interval);
        let Some(plan) = plan else {
            return false;
        };
        if plan.trigger.is_empty() || plan.wait_for.is_empty() {
            return false;
        }
        if self.pending.len() + self.finalizing.len() >= self.config.max_concurrent as usize {
            return false; // too many concurrent checkpoints
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
                return false;
            }
        }
        if self.ha.is_some_and(|h| h.external_ids) {
            if self.awaiting_id {
                return false;
            }
            self.awaiting_id = true;
            return true;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.start_checkpoint(ctx, id, plan);
        assert!(self.pending.contains_key(&id));
        self.check_invariants();
        false
    }

    /// The `ha` store's counter answered (`None`: it failed): trigger with that id if the
    /// checkpoint can still start.
    pub fn on_checkpoint_id(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: Option<CheckpointId>,
        plan: Option<Plan>,
    ) {
        self.awaiting_id = false;
        let (Some(id), Some(plan)) = (id, plan) else {
            return;
        };
        if !self.is_scheduler_running()
            || plan.trigger.is_empty()
            || plan.wait_for.is_empty()
            || self.pending.len() + self.finalizing.len() >= self.config.max_concurrent as usize
        {
            return;
        }
        self.next_id = self.next_id.max(id + 1);
        self.start_checkpoint(ctx, id, plan);
        assert!(self.pending.contains_key(&id));
        self.check_invariants();
    }

    fn start_checkpoint(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId, plan: Plan) {
        assert!(self.is_scheduler_running());
        assert!(!plan.trigger.is_empty() && !plan.wait_for.is_empty());
        assert!(
            self.pending.len() + self.finalizing.len() < self.config.max_concurrent as usize,
            "max-concurrent-checkpoints"
        );
        // A new checkpoint id is above every pending one and above the latest completed.
        assert!(self
            .pending
            .keys()
            .next_back()
            .is_none_or(|last| *last < id));
        assert!(!self.finalizing.contains_key(&id));
        if !self.ids_may_repeat() {
            assert!(
                id > self.last_succeeded,
                "checkpoint {id} after {}",
                self.last_succeeded
            );
            debug_assert!(self.finalizing.keys().all(|f| *f < id));
        }
        // Triggered tasks are among those the checkpoint waits for.
        debug_assert!(plan.trigger.iter().all(|(a, _)| plan.wait_for.contains(a)));
        let timeout = ctx.set_timer(
            self.config.timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::CheckpointTimeout { checkpoint_id: id },
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
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        id: CheckpointId,
        handle: StateHandleId,
    ) -> Outcome {
        let Some(p) = self.pending.get_mut(&id) else {
            // Late or unknown: the state is discarded, unless a checkpoint that completed, is
            // finalizing or may be in the `ha` store holds it (a repeated acknowledgement).
            if !self.may_be_referenced(&handle) {
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
        // A task acknowledges a checkpoint once: it waited for it, so it had not acknowledged.
        assert!(!p.acknowledged.contains_key(&attempt));
        assert_eq!(
            handle.attempt, attempt,
            "a task acknowledges with its own state"
        );
        assert_eq!(handle.checkpoint_id, id);
        p.acknowledged.insert(attempt, handle);
        let missing = p.not_yet_acknowledged.len();
        let complete = missing == 0
            || (self.bugs.has(Bug::CompleteWithMissingAck)
                && missing == 1
                && !p.acknowledged.is_empty());
        let outcome = if complete {
            self.complete(ctx, id)
        } else {
            Outcome::Nothing
        };
        assert!(!complete || !self.pending.contains_key(&id));
        self.check_invariants();
        outcome
    }

    fn complete(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId) -> Outcome {
        let p = self.pending.remove(&id).expect("pending");
        // Every task the checkpoint waited for acknowledged (the planted bug: all but one).
        assert!(
            p.not_yet_acknowledged.is_empty()
                || (self.bugs.has(Bug::CompleteWithMissingAck)
                    && p.not_yet_acknowledged.len() == 1)
        );
        assert!(!p.acknowledged.is_empty());
        assert!(!self.finalizing.contains_key(&id));
        ctx.cancel_timer(p.timeout);
        let handles: Vec<StateHandleId> = p.acknowledged.values().copied().collect();
        let checkpoint = CompletedCheckpoint {
            id,
            handles,
            finished: p.finished,
        };
        match self.ha {
            Some(ha) if ha.pointer_before_notify => {
                // `addCheckpointAndSubsumeOldestOne` first; tasks hear of the completion only
                // once the pointer is in the `ha` store.
                self.finalizing.insert(id, checkpoint.clone());
                self.pointer_ops.push(PointerOp::Add {
                    checkpoint,
                    awaited: true,
                });
                Outcome::Nothing
            }
            Some(_) => {
                // The planted bug: the previous checkpoint's pointer is written now.
                if let Some(previous) = self.completed.back() {
                    self.pointer_ops.push(PointerOp::Add {
                        checkpoint: previous.clone(),
                        awaited: false,
                    });
                }
                self.finish_completion(ctx, checkpoint)
            }
            None => self.finish_completion(ctx, checkpoint),
        }
    }

    /// The pointer of a subsumed checkpoint was removed from the `ha` store (`ok`) or not:
    /// only a removed pointer's state is discarded (a failed removal leaves it, as Flink's
    /// subsume action does when `tryRemove` throws).
    pub fn on_pointer_removed(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId, ok: bool) {
        let Some(handles) = self.removing.remove(&id) else {
            return;
        };
        // A subsumed checkpoint is retained no longer.
        debug_assert!(self.completed.iter().all(|c| c.id != id));
        if ok {
            self.discard(ctx, handles);
        }
    }

    /// Whether `handle` belongs to a checkpoint this JobMaster or a new leader may restore.
    fn may_be_referenced(&self, handle: &StateHandleId) -> bool {
        let id = handle.checkpoint_id;
        self.completed
            .iter()
            .any(|c| c.id == id && c.handles.contains(handle))
            || self
                .finalizing
                .get(&id)
                .is_some_and(|c| c.handles.contains(handle))
            || self.removing.get(&id).is_some_and(|h| h.contains(handle))
            || self.unsettled.get(&id).is_some_and(|h| h.contains(handle))
    }

    /// The pointer of a finalizing checkpoint was written (`ok`) or certainly not (the write
    /// failed: the checkpoint fails and its state is discarded). After an unknown outcome (the
    /// session was lost) nothing is called: the checkpoint stays finalizing, its state kept,
    /// until [`Self::suspend`] settles it as unsettled.
    pub fn on_pointer_written(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        ok: bool,
    ) -> Outcome {
        let Some(checkpoint) = self.finalizing.remove(&id) else {
            return Outcome::Nothing;
        };
        // Only awaited pointer writes finalize a checkpoint.
        assert!(self.ha.is_some_and(|h| h.pointer_before_notify));
        assert_eq!(checkpoint.id, id);
        assert!(!self.pending.contains_key(&id));
        if !ok {
            ctx.trace(Obs::CheckpointAborted {
                job_id: self.job_id,
                checkpoint_id: id,
                reason: "FINALIZE_CHECKPOINT_FAILURE".into(),
            });
            // Certainly not stored: Flink's `cleanCheckpointOnFailedStoring` discards it.
            self.discard(ctx, checkpoint.handles);
            return Outcome::Aborted(id);
        }
        let outcome = self.finish_completion(ctx, checkpoint);
        self.check_invariants();
        outcome
    }

    fn finish_completion(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        checkpoint: CompletedCheckpoint,
    ) -> Outcome {
        let id = checkpoint.id;
        assert!(!self.pending.contains_key(&id) && !self.finalizing.contains_key(&id));
        if !self.ids_may_repeat() {
            // A completed checkpoint never replaces one with the same id.
            debug_assert!(self.completed.iter().all(|c| c.id != id));
        }
        ctx.trace(Obs::CheckpointCompleted {
            job_id: self.job_id,
            checkpoint_id: id,
            handles: checkpoint.handles.clone(),
            finished: checkpoint.finished.clone(),
        });
        self.completed.push_back(checkpoint);
        while self.completed.len() > self.config.num_retained as usize {
            let old = self.completed.pop_front().expect("non-empty");
            if self.ha.is_some_and(|h| h.pointer_before_notify) {
                // The state goes once the pointer is gone (`on_pointer_removed`).
                self.pointer_ops.push(PointerOp::Remove(old.id));
                self.removing.insert(old.id, old.handles);
            } else if self.ha.is_none() {
                self.discard(ctx, old.handles);
            }
            // (With the planted lagging-pointer bug, subsumed pointers and their state stay:
            // the bug is about which checkpoint a new leader restores, not about cleanup.)
        }
        self.last_completion_ns = Some(ctx.mono_ns());
        self.consecutive_failures = 0;
        self.last_succeeded = id;
        // Subsumption: older pending checkpoints are aborted.
        let older: Vec<CheckpointId> = self.pending.range(..id).map(|(k, _)| *k).collect();
        for old in older {
            self.abort(ctx, old, "CHECKPOINT_SUBSUMED");
        }
        assert!(self.completed.len() <= self.config.num_retained as usize);
        assert_eq!(self.completed.back().map(|c| c.id), Some(id));
        assert!(self.pending.keys().next().is_none_or(|first| *first > id));
        Outcome::Completed(id)
    }

    /// `declineCheckpoint`.
    pub fn on_decline(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
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
        let outcome = self.fail_pending(ctx, id, reason);
        assert!(!self.pending.contains_key(&id));
        self.check_invariants();
        outcome
    }

    /// The checkpoint's timeout fired.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId) -> Outcome {
        if !self.pending.contains_key(&id) {
            return Outcome::Nothing;
        }
        let outcome = self.fail_pending(ctx, id, "CHECKPOINT_EXPIRED");
        assert!(!self.pending.contains_key(&id));
        self.check_invariants();
        outcome
    }

    fn fail_pending(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        reason: &'static str,
    ) -> Outcome {
        assert!(self.pending.contains_key(&id));
        self.abort(ctx, id, reason);
        if counted(reason) && id > self.last_succeeded {
            self.consecutive_failures += 1;
            if self.consecutive_failures > self.config.tolerable_failed {
                self.consecutive_failures = 0;
                return Outcome::FailJob;
            }
        }
        assert!(self.consecutive_failures <= self.config.tolerable_failed);
        Outcome::Aborted(id)
    }

    fn abort(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId, reason: &'static str) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        // An aborted checkpoint never completed: its state belongs to no retained checkpoint.
        assert!(!self.finalizing.contains_key(&id));
        ctx.cancel_timer(p.timeout);
        ctx.trace(Obs::CheckpointAborted {
            job_id: self.job_id,
            checkpoint_id: id,
            reason: reason.into(),
        });
        self.discard(ctx, p.acknowledged.into_values().collect());
    }

    fn discard(&self, ctx: &mut Ctx<'_, Flink>, handles: Vec<StateHandleId>) {
        if handles.is_empty() {
            return;
        }
        if !self.ids_may_repeat() {
            // State a retained checkpoint may restore is never discarded.
            debug_assert!(
                handles
                    .iter()
                    .all(|h| self.completed.iter().all(|c| !c.handles.contains(h))),
                "discarding state of a retained checkpoint"
            );
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
        // Nothing finalizing is restored around (the scheduler waits for it).
        debug_assert!(self.finalizing.is_empty());
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
    assert!(ev.subtask < v.parallelism, "{ev:?}");
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
        .collect::<Vec<_>>();
    // The state of a checkpoint is the state it took.
    debug_assert!(handles.iter().all(|h| h.checkpoint_id == checkpoint.id));
    TaskRestore {
        checkpoint_id: checkpoint.id,
        handles,
        finished: checkpoint.finished.contains(&ev),
    }
}

#[cfg(test)]
mod tests;
