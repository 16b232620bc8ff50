//! The TaskExecutor's tasks: Flink's `submitTask` (fenced by the JobMasterId, into an ACTIVE
//! slot), the lifecycle DEPLOYING → INITIALIZING → RUNNING → FINISHED driven by the task's steps
//! and its stream, `cancelTask`, `failExternally`, `updateTaskExecutionState` and its answers,
//! how many terminal tasks stay, and the producer side of the data plane (a consumer's
//! `requestSubpartition`, served like Flink's `PartitionRequestServerHandler`).
//!
//! It does not own a task's own state machine and timers ([`Task`]) nor its records
//! (`stream_task`).

use super::job_leader_service::{Job, JobLeader};
use super::{TaskExecutor, TERMINAL_TASKS_RETAINED_MAX};
use crate::checking::bugs::Bug;
use crate::protocol::ids::{ExecutionAttemptId, JobMasterId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, TaskDeploymentDescriptor, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use crate::taskmanager::task::{Task, TASK_CANCEL_DURATION, TASK_INITIALIZE_DURATION};
use sim::{Ctx, NodeId, TimerId};

impl TaskExecutor {
    pub(super) fn on_submit_task(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        tdd: TaskDeploymentDescriptor,
        job_master_id: JobMasterId,
    ) {
        let (job_id, attempt) = (tdd.job_id, tdd.attempt);
        let answer = |ctx: &mut Ctx<'_, Flink>, ok: bool| {
            ctx.send(
                from,
                Msg::JobMaster {
                    job_id,
                    rpc: JobMasterRpc::SubmitTaskResponse { attempt, ok },
                },
            )
        };
        if let Some(task) = self.tasks.get(&attempt) {
            // A duplicated delivery of a submission that was accepted: acknowledge it again
            // rather than fail an attempt that runs (Flink's TCP never duplicates).
            assert_eq!(task.job_id(), job_id);
            answer(ctx, task.job_master_id() == job_master_id);
            return;
        }
        // Flink's `TaskSubmissionException` cases: no connection to this JobMaster, or the slot
        // is not (or no longer) allocated to the job.
        let job_master = match self.jobs.get(&job_id) {
            Some(Job {
                job_master,
                leader: JobLeader::Connected(c),
                ..
            }) if c.job_master_id == job_master_id => *job_master,
            // The planted bug takes the call from whichever JobMaster sent it.
            Some(_) if self.bugs.has(Bug::NoFencingCheck) => from,
            Some(Job {
                leader: JobLeader::Connected(c),
                ..
            }) if self.ha.is_some() && c.job_master_id != job_master_id => {
                ctx.trace(Obs::FencedCallRejected {
                    call: "submitTask".into(),
                    token: job_master_id,
                });
                return answer(ctx, false);
            }
            _ => return answer(ctx, false),
        };
        if self.ha.is_some() {
            ctx.trace(Obs::FencedCallAccepted {
                call: "submitTask".into(),
                token: job_master_id,
            });
        }
        // Accepted only under the JobMasterId of the job's connected leader.
        assert!(
            self.bugs.has(Bug::NoFencingCheck)
                || self.job_manager_connection(job_id) == Some(job_master_id)
        );
        // The planted bug: only a slot whose offer was answered takes tasks.
        if self.bugs.has(Bug::SubmitNeedsActiveSlot)
            && !self.task_slot_table.is_active(tdd.allocation_id, job_id)
        {
            return answer(ctx, false);
        }
        // Flink's `tryMarkSlotActive`: a JobMaster that deploys into a slot holds it, so an
        // ALLOCATED slot becomes ACTIVE here even if the answer to its offer was lost.
        if !self
            .task_slot_table
            .mark_slot_active(ctx, tdd.allocation_id, job_id)
        {
            return answer(ctx, false);
        }
        let task = Task::deploy(
            ctx,
            tdd,
            job_master,
            job_master_id,
            self.bugs,
            self.config.ask_timeout,
        );
        // A task is deployed into an ACTIVE slot of its job.
        debug_assert!(self.task_slot_table.is_active(task.allocation_id(), job_id));
        self.tasks.insert(attempt, task);
        answer(ctx, true);
    }

    pub(super) fn on_task_step(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        timer: TimerId,
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if !task.is_step(timer) {
            return; // superseded (cancelled, failed)
        }
        task.on_step_fired();
        // Reaching a terminal state cancels the step timer; the planted bug keeps a source's
        // reader fetching.
        if task.state().is_terminal() {
            assert!(self.bugs.has(Bug::ReaderOutlivesTask));
            task.zombie_fetch(ctx, true);
            return;
        }
        match task.state() {
            ExecutionState::Deploying => {
                self.transition_task(ctx, attempt, ExecutionState::Initializing, None);
                let task = self.tasks.get_mut(&attempt).expect("live");
                task.arm_step(ctx, TASK_INITIALIZE_DURATION);
                // Restore state and initialise the sink writer meanwhile.
                task.stream.start_initialize(ctx);
                self.after_stream(ctx, attempt);
            }
            ExecutionState::Initializing => {
                task.initialize_elapsed = true;
                self.maybe_start_running(ctx, attempt);
            }
            ExecutionState::Running => {
                // Only a source has a step while RUNNING: its next fetch from the log.
                assert!(task.is_source());
                task.fetch_tick(ctx, self.config.ask_timeout);
                self.after_stream(ctx, attempt);
            }
            ExecutionState::Canceling => {
                self.transition_task(ctx, attempt, ExecutionState::Canceled, None);
            }
            s => unreachable!("task step in {s}"),
        }
    }

    /// INITIALIZING → RUNNING once both the minimum duration passed and the stream (restore,
    /// sink writer) is initialised.
    pub(super) fn maybe_start_running(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
    ) {
        let Some(task) = self.tasks.get(&attempt) else {
            return;
        };
        if task.state() != ExecutionState::Initializing
            || !task.initialize_elapsed
            || !task.stream.is_initialized()
        {
            return;
        }
        // A task starts running only in an ACTIVE slot (the planted slot bug may hand the slot
        // to another allocation under it).
        if !self.bugs.has(Bug::SlotDoubleAllocation)
            && !self.bugs.has(Bug::TasksOutliveJobMasterDisconnect)
        {
            debug_assert!(self
                .task_slot_table
                .is_active(task.allocation_id(), task.job_id()));
        }
        self.transition_task(ctx, attempt, ExecutionState::Running, None);
        let task = self.tasks.get_mut(&attempt).expect("live");
        if task.is_source() {
            if task.start_reading(ctx, self.config.ask_timeout) {
                task.stream.source_end(ctx);
            }
        } else {
            task.request_partitions(ctx);
            task.stream.process(ctx);
        }
        self.after_stream(ctx, attempt);
    }

    /// Hands a RUNNING task to `f` (anything else ignores the event), then settles its stream.
    pub(super) fn with_running_stream(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        f: impl FnOnce(&mut Task, &mut Ctx<'_, Flink>),
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if task.state() != ExecutionState::Running {
            return;
        }
        f(task, ctx);
        self.after_stream(ctx, attempt);
    }

    /// After the stream of a task handled something: fail the task if the stream asks, finish
    /// it if it may, and keep its resend tick armed while it needs one.
    pub(super) fn after_stream(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if let Some(error) = task.stream.take_failure() {
            if task.can_fail() {
                self.fail_task(ctx, attempt, error);
            }
            return;
        }
        if task.state() == ExecutionState::Running && task.stream.can_finish() {
            self.transition_task(ctx, attempt, ExecutionState::Finished, None);
            return;
        }
        if matches!(
            task.state(),
            ExecutionState::Running | ExecutionState::Initializing | ExecutionState::Finished
        ) {
            task.arm_tick(ctx);
        }
    }

    pub(super) fn on_cancel_task(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId) {
        // Unknown or already terminal: nothing to cancel. A repeated cancel of a cancelling task
        // changes nothing either.
        let Some(task) = self.tasks.get(&attempt) else {
            return;
        };
        if !task.can_fail() {
            return;
        }
        self.transition_task(ctx, attempt, ExecutionState::Canceling, None);
        let task = self.tasks.get_mut(&attempt).expect("live");
        task.arm_step(ctx, TASK_CANCEL_DURATION);
    }

    pub(super) fn on_update_task_execution_state_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        ok: bool,
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if ok {
            task.on_update_acknowledged(ctx);
        } else if task.can_fail() {
            // The JobMaster does not know the attempt (stale, or from an older JobMaster): Flink
            // fails the task when the update RPC fails.
            self.fail_task(
                ctx,
                attempt,
                "the JobMaster rejected the state update (unknown execution attempt)".to_string(),
            );
        }
    }

    /// `failExternally`: a live task fails (a cancelling one completes its cancellation).
    pub(super) fn fail_task(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        error: String,
    ) {
        if self.tasks.get(&attempt).is_some_and(Task::can_fail) {
            self.transition_task(ctx, attempt, ExecutionState::Failed, Some(error));
        }
        assert!(!self.tasks.get(&attempt).is_some_and(Task::can_fail));
    }

    /// Moves a task to `to` and reports it to its JobMaster. A finishing producer first sends
    /// end of partition to every consumer that asked for its partition.
    pub(super) fn transition_task(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        to: ExecutionState,
        error: Option<String>,
    ) {
        let task = self.tasks.get_mut(&attempt).expect("a known task");
        // A task's slot outlives it: it changes state only while its slot is held (freeing a
        // slot ends its tasks first). The planted slot bug drops slots under their tasks.
        if !self.bugs.has(Bug::SlotDoubleAllocation) {
            debug_assert!(self
                .task_slot_table
                .is_allocated(task.allocation_id(), task.job_id()));
        }
        if to == ExecutionState::Finished {
            // End of partition travels in-band, behind the last buffers.
            task.stream.finish(ctx);
            task.arm_tick(ctx);
        }
        task.transition(ctx, to, error);
        if to != ExecutionState::Canceling {
            task.report_state(ctx, self.config.ask_timeout);
        }
        if to.is_terminal() {
            if to != ExecutionState::Finished
                && task.is_source()
                && self.bugs.has(Bug::ReaderOutlivesTask)
            {
                task.zombie_fetch(ctx, false);
            }
            self.retain_terminal(attempt);
        }
    }

    fn retain_terminal(&mut self, attempt: ExecutionAttemptId) {
        assert!(!self.terminal_tasks.contains(&attempt));
        self.terminal_tasks.push(attempt);
        if self.terminal_tasks.len() > TERMINAL_TASKS_RETAINED_MAX {
            let oldest = self.terminal_tasks.remove(0);
            let task = self.tasks.remove(&oldest).expect("retained");
            assert!(task.state().is_terminal());
        }
    }

    /// Data plane, producer side: a consumer asks for `producer`'s partition.
    pub(super) fn on_request_subpartition(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
    ) {
        // Chained operators share a task: a partition connects two different vertices.
        assert_ne!(producer.vertex.vertex, consumer.vertex.vertex);
        let reply = match self.tasks.get_mut(&producer) {
            // Finished: the partition is still served until its consumer has it all.
            Some(t) if t.state() == ExecutionState::Finished => {
                t.stream.on_consumer(ctx, consumer, from);
                t.arm_tick(ctx);
                return;
            }
            Some(t) if !t.state().is_terminal() => {
                t.add_consumer(consumer, from);
                t.stream.on_consumer(ctx, consumer, from);
                t.arm_tick(ctx);
                return;
            }
            // Unknown here, or failed/cancelled (its partition was released).
            _ => TaskExecutorRpc::PartitionNotFound { producer, consumer },
        };
        ctx.send(from, Msg::TaskExecutor(reply));
    }
}
