//! Flink's `Task` on a TaskExecutor: one deployed execution attempt, its `ExecutionState` as the
//! TaskExecutor runs it, its input channels (the pipelined partitions of upstream attempts it
//! reads) and the consumers registered on its own result partition.
//!
//! There are no records in flight yet: a source fetches its partitions from the `source` log,
//! and any other task runs until every input channel has delivered end-of-partition. The task
//! owns its state machine (every transition is asserted with `can_transition_to` and traced) and
//! its timers; it does not own when a step happens or who is told: the TaskExecutor drives it and
//! reports every transition to the JobMaster the task was submitted by.
//!
//! This module holds the [`Task`] struct, deployment, the lifecycle (steps, transitions,
//! `updateTaskExecutionState` reports and their ask timeout), the stream's resend tick and the
//! consumers of the task's result partition. The rest lives in children:
//! - `input_channels`: the partition requests of its input channels (Flink's
//!   `RemoteInputChannel`: `requestSubpartition`, re-requests, the `PartitionNotFound` backoff);
//! - `source_reader`: a source subtask's reader of its partitions of the `source` log.

mod input_channels;
mod source_reader;

use crate::checking::bugs::Bugs;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::job_graph::UPPER_BOUND_MAX_PARALLELISM;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, SourceAssignment, TaskDeploymentDescriptor};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::{TaskExecutorTimer, Timer};
use crate::protocol::Flink;
use crate::taskmanager::stream_task::StreamTask;
use input_channels::{ChannelState, InputChannelState};
pub use input_channels::{
    PartitionRetry, PARTITION_REQUEST_BACKOFF_INITIAL, PARTITION_REQUEST_BACKOFF_MAX,
    PARTITION_REQUEST_RESEND_INTERVAL,
};
use sim::{Ctx, NodeId, TimerId};
use source_reader::SourceReader;
pub use source_reader::{source_fetch_plan, SOURCE_FETCH_INTERVAL};
use std::time::Duration;

/// DEPLOYING → INITIALIZING: loading the user code and setting up the invokable.
pub const TASK_DEPLOY_DURATION: Duration = Duration::from_millis(1);
/// INITIALIZING → RUNNING: restoring state and opening operators.
pub const TASK_INITIALIZE_DURATION: Duration = Duration::from_millis(10);
/// CANCELING → CANCELED: the invokable notices the interrupt and exits.
pub const TASK_CANCEL_DURATION: Duration = Duration::from_millis(1);

/// The most consumers one result partition keeps: one per consumer subtask (a newer attempt of
/// a subtask replaces the older one), and a job has at most this many subtasks per vertex.
pub const PARTITION_CONSUMERS_MAX: usize = UPPER_BOUND_MAX_PARALLELISM as usize;

#[derive(Debug)]
pub struct Task {
    attempt: ExecutionAttemptId,
    job_id: JobId,
    allocation_id: AllocationId,
    task_name: String,
    /// The JobMaster that submitted the task and its fencing token. Like Flink's
    /// `TaskManagerActions`, the task reports to the gateway it was submitted through, even
    /// after the TaskExecutor has lost that JobMaster.
    job_master: NodeId,
    job_master_id: JobMasterId,
    state: ExecutionState,
    error: Option<String>,
    source: Option<SourceAssignment>,
    inputs: Vec<InputChannelState>,
    /// A source's progress through its partitions of the `source` log.
    reader: Option<SourceReader>,
    /// Consumers that requested this task's partition: (consumer attempt, its TaskExecutor).
    consumers: Vec<(ExecutionAttemptId, NodeId)>,
    /// The next lifecycle step (`TaskExecutorTimer::TaskStep`).
    step_timer: Option<TimerId>,
    /// The ask timeout of the latest `updateTaskExecutionState`; see `updates_in_flight`.
    update_timeout: Option<TimerId>,
    updates_in_flight: u32,
    /// The records, state and checkpoints of the task.
    pub stream: StreamTask,
    /// The stream's resend tick (`TaskExecutorTimer::TaskTick`).
    tick_timer: Option<TimerId>,
    /// INITIALIZING's minimum duration has passed (RUNNING follows once the stream is
    /// initialised too).
    pub initialize_elapsed: bool,
}

impl Task {
    /// A task just submitted: DEPLOYING (Flink's CREATED → DEPLOYING happens before the first
    /// report, so the TaskExecutor's task starts in DEPLOYING). Traces its creation and arms the
    /// first step.
    pub fn deploy(
        ctx: &mut Ctx<'_, Flink>,
        tdd: TaskDeploymentDescriptor,
        job_master: NodeId,
        job_master_id: JobMasterId,
        bugs: Bugs,
        ask_timeout: Duration,
    ) -> Task {
        // A source reads its partitions; any other task reads its inputs: never both.
        if tdd.source.is_some() {
            assert!(tdd.inputs.is_empty());
        }
        // Inputs come from upstream vertices, never from the task's own vertex.
        debug_assert!(tdd
            .inputs
            .iter()
            .all(|c| c.producer.vertex.vertex != tdd.attempt.vertex.vertex));
        let inputs = tdd
            .inputs
            .iter()
            .map(|&channel| InputChannelState {
                channel,
                state: ChannelState::Idle,
                backoff: None,
            })
            .collect();
        let stream = StreamTask::new(
            tdd.attempt,
            tdd.job_id,
            tdd.subtask,
            std::sync::Arc::clone(&tdd.stream),
            tdd.inputs.iter().map(|c| c.task_manager).collect(),
            tdd.source.is_some(),
            tdd.restore.clone(),
            job_master,
            bugs,
            ask_timeout,
        );
        let mut task = Task {
            attempt: tdd.attempt,
            job_id: tdd.job_id,
            allocation_id: tdd.allocation_id,
            task_name: tdd.task_name,
            job_master,
            job_master_id,
            state: ExecutionState::Deploying,
            error: None,
            source: tdd.source,
            inputs,
            reader: None,
            consumers: Vec::new(),
            step_timer: None,
            update_timeout: None,
            updates_in_flight: 0,
            stream,
            tick_timer: None,
            initialize_elapsed: false,
        };
        ctx.trace(Obs::TaskStateChanged {
            attempt: task.attempt,
            allocation_id: task.allocation_id,
            from: None,
            to: ExecutionState::Deploying,
        });
        task.arm_step(ctx, TASK_DEPLOY_DURATION);
        task
    }

    pub fn attempt(&self) -> ExecutionAttemptId {
        self.attempt
    }
    pub fn job_id(&self) -> JobId {
        self.job_id
    }
    pub fn allocation_id(&self) -> AllocationId {
        self.allocation_id
    }
    pub fn task_name(&self) -> &str {
        &self.task_name
    }
    pub fn job_master_id(&self) -> JobMasterId {
        self.job_master_id
    }
    pub fn state(&self) -> ExecutionState {
        self.state
    }
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    pub fn is_source(&self) -> bool {
        self.source.is_some()
    }

    /// Whether `failExternally` fails the task now. A cancelling task completes its cancellation
    /// instead (Flink ignores a failure that arrives while cancelling), and a terminal task stays.
    pub fn can_fail(&self) -> bool {
        matches!(
            self.state,
            ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running
        )
    }

    /// Whether `timer` is this task's pending lifecycle step.
    pub fn is_step(&self, timer: TimerId) -> bool {
        self.step_timer == Some(timer)
    }

    /// Arms the next lifecycle step, replacing a pending one.
    pub fn arm_step(&mut self, ctx: &mut Ctx<'_, Flink>, after: Duration) {
        assert!(!self.state.is_terminal());
        self.set_step(ctx, after);
    }

    /// [`Task::arm_step`] without the lifecycle check (the planted reader bug keeps a terminal
    /// source's step).
    pub(super) fn set_step(&mut self, ctx: &mut Ctx<'_, Flink>, after: Duration) {
        if let Some(t) = self.step_timer.take() {
            ctx.cancel_timer(t);
        }
        self.step_timer = Some(ctx.set_timer(
            after,
            Timer::TaskExecutor(TaskExecutorTimer::TaskStep {
                attempt: self.attempt,
            }),
        ));
    }

    /// The step timer fired (the caller checked `is_step`).
    pub fn on_step_fired(&mut self) {
        assert!(self.step_timer.is_some());
        self.step_timer = None;
    }

    /// Moves to `to`, tracing it. Leaving RUNNING stops the input channels; a terminal state stops
    /// every timer and forgets consumers and producers. The caller reports to the JobMaster.
    pub fn transition(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        to: ExecutionState,
        error: Option<String>,
    ) {
        let from = self.state;
        assert!(
            from.can_transition_to(to),
            "task {:?}: illegal transition {from} -> {to}",
            self.attempt
        );
        // An error explains a failure and nothing else.
        assert_eq!(error.is_some(), to == ExecutionState::Failed);
        self.state = to;
        self.error = error;
        ctx.trace(Obs::TaskStateChanged {
            attempt: self.attempt,
            allocation_id: self.allocation_id,
            from: Some(from),
            to,
        });
        if from == ExecutionState::Running {
            self.stop_channels(ctx);
        }
        if to.is_terminal() {
            if to != ExecutionState::Finished {
                self.stream.release();
                if let Some(t) = self.tick_timer.take() {
                    ctx.cancel_timer(t);
                }
            }
            if let Some(t) = self.step_timer.take() {
                ctx.cancel_timer(t);
            }
            if let Some(t) = self.update_timeout.take() {
                ctx.cancel_timer(t);
            }
            self.updates_in_flight = 0;
            self.consumers = Vec::new();
            self.inputs = Vec::new();
        }
    }

    /// Sends the current state to the JobMaster (`updateTaskExecutionState`). A non-terminal
    /// report arms the ask timeout: if the JobMaster never answers, Flink fails the task.
    pub fn report_state(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) {
        // The JobMaster sets CANCELING itself before it sends `cancelTask`, and Flink's
        // ExecutionGraph treats a CANCELING report as an illegal update; it is never reported.
        assert_ne!(self.state, ExecutionState::Canceling);
        // DEPLOYING is answered by `submitTask` itself; the first report is a later state.
        assert_ne!(self.state, ExecutionState::Deploying);
        ctx.send(
            self.job_master,
            Msg::JobMaster {
                job_id: self.job_id,
                rpc: JobMasterRpc::UpdateTaskExecutionState {
                    job_master_id: self.job_master_id,
                    attempt: self.attempt,
                    state: self.state,
                    error: self.error.clone(),
                },
            },
        );
        if self.state.is_terminal() {
            return;
        }
        if let Some(t) = self.update_timeout.take() {
            ctx.cancel_timer(t);
        }
        self.updates_in_flight += 1;
        self.update_timeout = Some(ctx.set_timer(
            ask_timeout,
            Timer::TaskExecutor(TaskExecutorTimer::UpdateTaskStateTimeout {
                attempt: self.attempt,
            }),
        ));
        // INITIALIZING and RUNNING are the only non-terminal states reported, once each.
        assert!(self.updates_in_flight <= 2);
    }

    /// The JobMaster acknowledged a state update.
    pub fn on_update_acknowledged(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A terminal task waits for no acknowledgement.
        if self.state.is_terminal() {
            assert_eq!(self.updates_in_flight, 0);
        }
        self.updates_in_flight = self.updates_in_flight.saturating_sub(1);
        if self.updates_in_flight == 0 {
            if let Some(t) = self.update_timeout.take() {
                ctx.cancel_timer(t);
            }
        }
        // The ask timeout is armed exactly while an update is unacknowledged.
        assert_eq!(self.update_timeout.is_some(), self.updates_in_flight > 0);
    }

    /// Whether `timer` is the live ask timeout of an unacknowledged state update.
    pub fn is_update_timeout(&self, timer: TimerId) -> bool {
        self.update_timeout == Some(timer)
    }

    /// Arms the stream's resend tick if it needs one and none is armed.
    pub fn arm_tick(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A failed or cancelled task's stream is released: it sends nothing more.
        assert!(!matches!(
            self.state,
            ExecutionState::Failed | ExecutionState::Canceled
        ));
        if self.tick_timer.is_none() && self.stream.needs_tick() {
            self.tick_timer = Some(ctx.set_timer(
                crate::taskmanager::stream_task::RESEND_INTERVAL,
                Timer::TaskExecutor(TaskExecutorTimer::TaskTick {
                    attempt: self.attempt,
                }),
            ));
        }
    }

    /// The resend tick fired: returns true if `timer` is the live one.
    pub fn on_tick_fired(&mut self, timer: TimerId) -> bool {
        if self.tick_timer == Some(timer) {
            self.tick_timer = None;
            true
        } else {
            false
        }
    }

    /// A consumer requested this task's partition. A newer attempt of the same consumer subtask
    /// replaces the older one, which bounds the list by the consumer parallelism.
    pub fn add_consumer(&mut self, consumer: ExecutionAttemptId, task_manager: NodeId) {
        assert!(!self.state.is_terminal());
        match self
            .consumers
            .iter_mut()
            .find(|(c, _)| c.vertex == consumer.vertex)
        {
            Some(entry) => *entry = (consumer, task_manager),
            None => {
                assert!(self.consumers.len() < PARTITION_CONSUMERS_MAX);
                self.consumers.push((consumer, task_manager));
            }
        }
    }

    /// The consumers registered on this task's partition.
    pub fn consumers(&self) -> &[(ExecutionAttemptId, NodeId)] {
        &self.consumers
    }
}

#[cfg(test)]
mod tests;
