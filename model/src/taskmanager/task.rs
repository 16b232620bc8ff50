//! Flink's `Task` on a TaskExecutor: one deployed execution attempt, its `ExecutionState` as the
//! TaskExecutor runs it, its input channels (the pipelined partitions of upstream attempts it
//! reads) and the consumers registered on its own result partition.
//!
//! There are no records in flight yet: a source fetches its partitions from the `source` log,
//! and any other task runs until every input channel has delivered end-of-partition. The task
//! owns its state machine (every transition is asserted with `can_transition_to` and traced) and
//! its timers; it does not own when a step happens or who is told: the TaskExecutor drives it and
//! reports every transition to the JobMaster the task was submitted by.

use crate::checking::bugs::Bugs;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::job_graph::UPPER_BOUND_MAX_PARALLELISM;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{
    InputChannel, JobMasterRpc, Msg, SourceAssignment, SourceLogRpc, TaskDeploymentDescriptor,
    TaskExecutorRpc,
};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use crate::taskmanager::stream_task::StreamTask;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// DEPLOYING → INITIALIZING: loading the user code and setting up the invokable.
pub const TASK_DEPLOY_DURATION: Duration = Duration::from_millis(1);
/// INITIALIZING → RUNNING: restoring state and opening operators.
pub const TASK_INITIALIZE_DURATION: Duration = Duration::from_millis(10);
/// CANCELING → CANCELED: the invokable notices the interrupt and exits.
pub const TASK_CANCEL_DURATION: Duration = Duration::from_millis(1);

/// `taskmanager.network.request-backoff.initial`: the first wait before re-requesting a partition
/// that its producer's TaskExecutor did not know.
pub const PARTITION_REQUEST_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// `taskmanager.network.request-backoff.max`: once the backoff has reached this, the next
/// `PartitionNotFound` fails the task (`PartitionNotFoundException`).
pub const PARTITION_REQUEST_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often a consumer repeats an unanswered partition request. Flink's data plane is a TCP
/// connection that never loses end-of-partition silently; the simulated network may drop any
/// message, so the consumer re-requests (like TCP retransmitting) until its producer's partition
/// ends. The producer answers a repeat idempotently, and a repeat also notices a producer that
/// died (its TaskExecutor refuses the connection) or failed (its partition is gone).
pub const PARTITION_REQUEST_RESEND_INTERVAL: Duration = Duration::from_secs(1);
/// The most consumers one result partition keeps: one per consumer subtask (a newer attempt of
/// a subtask replaces the older one), and a job has at most this many subtasks per vertex.
pub const PARTITION_CONSUMERS_MAX: usize = UPPER_BOUND_MAX_PARALLELISM as usize;

const _: () = assert!(PARTITION_REQUEST_BACKOFF_INITIAL.as_nanos() > 0);
const _: () = assert!(
    PARTITION_REQUEST_BACKOFF_INITIAL.as_nanos() <= PARTITION_REQUEST_BACKOFF_MAX.as_nanos()
);
const _: () = assert!(PARTITION_REQUEST_RESEND_INTERVAL.as_nanos() > 0);

/// Where one input channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelState {
    /// Not requested (the task is not RUNNING, or no longer).
    Idle,
    /// `requestSubpartition` sent; waiting for end of partition or `PartitionNotFound`, and
    /// repeating the request when `resend` fires.
    Requested { resend: TimerId },
    /// The producer was not found; the request is re-sent when `timer` fires.
    Backoff { timer: TimerId },
    /// The producer finished: end of partition received.
    Finished,
}

#[derive(Debug)]
struct InputChannelState {
    channel: InputChannel,
    state: ChannelState,
    /// The current partition-request backoff (Flink's `InputChannel.currentBackoff`).
    backoff: Option<Duration>,
}

/// What a `PartitionNotFound` did to a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionRetry {
    /// Not a live request of this task (stale, duplicated, or the task is not RUNNING).
    Ignored,
    /// Re-requested after a backoff.
    Scheduled,
    /// The backoff is exhausted: the task must fail with `PartitionNotFoundException`.
    Exhausted,
}

/// How often a source fetches from the log: each fetch asks for one interval's worth of its rate.
/// A rate below one record per interval fetches one record every `1 s / rate` instead, so a
/// slow source costs events in proportion to its records, not to the interval.
pub const SOURCE_FETCH_INTERVAL: Duration = Duration::from_millis(100);

/// The fetch size and interval that keep `rate_per_sec` per partition (unthrottled: the log's
/// maximum every [`SOURCE_FETCH_INTERVAL`]).
pub fn source_fetch_plan(rate_per_sec: Option<u64>) -> (u64, Duration) {
    match rate_per_sec {
        Some(rate) => {
            let nanos = u128::from(rate) * SOURCE_FETCH_INTERVAL.as_nanos();
            let per_fetch = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
            if per_fetch >= 1 {
                let exact = nanos.is_multiple_of(1_000_000_000);
                (per_fetch + u64::from(!exact), SOURCE_FETCH_INTERVAL)
            } else {
                (1, Duration::from_nanos(1_000_000_000 / rate.max(1)))
            }
        }
        None => (
            crate::external::source_log::FETCH_RECORDS_MAX,
            SOURCE_FETCH_INTERVAL,
        ),
    }
}

/// A source subtask's reader of its partitions of the `source` log.
#[derive(Debug)]
struct SourceReader {
    log: NodeId,
    per_fetch: u64,
    /// How long between fetches ([`source_fetch_plan`]).
    interval: Duration,
    partitions: BTreeMap<u32, PartitionProgress>,
}

#[derive(Debug)]
struct PartitionProgress {
    next_offset: u64,
    /// Learnt from the log's first answer.
    end_offset: Option<u64>,
    /// When the fetch in flight was sent (local monotonic ns).
    fetch_sent_ns: Option<u64>,
}

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
    /// The next lifecycle step (`Timer::TaskStep`).
    step_timer: Option<TimerId>,
    /// The ask timeout of the latest `updateTaskExecutionState`; see `updates_in_flight`.
    update_timeout: Option<TimerId>,
    updates_in_flight: u32,
    /// The records, state and checkpoints of the task.
    pub stream: StreamTask,
    /// The stream's resend tick (`Timer::TaskTick`).
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
        if let Some(t) = self.step_timer.take() {
            ctx.cancel_timer(t);
        }
        self.step_timer = Some(ctx.set_timer(
            after,
            Timer::TaskStep {
                attempt: self.attempt,
            },
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

    fn stop_channels(&mut self, ctx: &mut Ctx<'_, Flink>) {
        for ch in &mut self.inputs {
            match ch.state {
                ChannelState::Requested { resend: timer } | ChannelState::Backoff { timer } => {
                    ctx.cancel_timer(timer);
                    ch.state = ChannelState::Idle;
                }
                ChannelState::Idle | ChannelState::Finished => {}
            }
        }
    }

    /// Sends the current state to the JobMaster (`updateTaskExecutionState`). A non-terminal
    /// report arms the ask timeout: if the JobMaster never answers, Flink fails the task.
    pub fn report_state(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) {
        // The JobMaster sets CANCELING itself before it sends `cancelTask`, and Flink's
        // ExecutionGraph treats a CANCELING report as an illegal update; it is never reported.
        assert_ne!(self.state, ExecutionState::Canceling);
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
            Timer::UpdateTaskStateTimeout {
                attempt: self.attempt,
            },
        ));
    }

    /// The JobMaster acknowledged a state update.
    pub fn on_update_acknowledged(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.updates_in_flight = self.updates_in_flight.saturating_sub(1);
        if self.updates_in_flight == 0 {
            if let Some(t) = self.update_timeout.take() {
                ctx.cancel_timer(t);
            }
        }
    }

    /// Whether `timer` is the live ask timeout of an unacknowledged state update.
    pub fn is_update_timeout(&self, timer: TimerId) -> bool {
        self.update_timeout == Some(timer)
    }

    /// RUNNING source: starts reading its partitions from the `source` log. Returns true when
    /// there is nothing to read (no partitions, or empty ones are only known after a fetch).
    pub fn start_reading(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) -> bool {
        assert_eq!(self.state, ExecutionState::Running);
        let source = self.source.as_ref().expect("a source task");
        let (per_fetch, interval) = source_fetch_plan(source.rate_per_sec);
        let restored = self.stream.restored_offsets();
        let start = |p: u32| {
            restored
                .and_then(|r| r.iter().find(|(q, _)| *q == p))
                .map_or(0, |(_, o)| *o)
        };
        let ended = self.stream.end_of_input();
        self.reader = Some(SourceReader {
            log: source.log,
            per_fetch,
            interval,
            partitions: source
                .partitions
                .iter()
                .map(|p| {
                    (
                        *p,
                        PartitionProgress {
                            next_offset: start(*p),
                            end_offset: ended.then_some(start(*p)),
                            fetch_sent_ns: None,
                        },
                    )
                })
                .collect(),
        });
        if self.reading_done() {
            return true;
        }
        self.fetch_tick(ctx, ask_timeout);
        false
    }

    /// The source's periodic fetch: one fetch per unfinished partition that has none in flight
    /// (or whose fetch went unanswered for the ask timeout), then the next tick.
    pub fn fetch_tick(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) {
        let attempt = self.attempt;
        let now = ctx.mono_ns();
        let timeout = u64::try_from(ask_timeout.as_nanos()).unwrap_or(u64::MAX);
        let backpressured = self.stream.backpressured();
        let reader = self.reader.as_mut().expect("a reading source");
        let interval = reader.interval;
        for (partition, p) in reader.partitions.iter_mut() {
            if backpressured {
                break;
            }
            if p.end_offset.is_some_and(|end| p.next_offset >= end) {
                continue;
            }
            let due = p
                .fetch_sent_ns
                .is_none_or(|sent| now.saturating_sub(sent) >= timeout);
            if !due {
                continue;
            }
            p.fetch_sent_ns = Some(now);
            ctx.send(
                reader.log,
                Msg::SourceLog(SourceLogRpc::Fetch {
                    reader: attempt,
                    partition: *partition,
                    offset: p.next_offset,
                    max_records: reader.per_fetch,
                }),
            );
        }
        self.arm_step(ctx, interval);
    }

    /// The log answered a fetch: the records are emitted. Stale answers (an offset already
    /// read) change nothing. Returns true when every partition has been read to its end.
    pub fn on_source_records(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        partition: u32,
        offset: u64,
        count: u64,
        end: u64,
    ) -> bool {
        let Some(reader) = self.reader.as_mut() else {
            return false;
        };
        let Some(p) = reader.partitions.get_mut(&partition) else {
            return false;
        };
        if offset == p.next_offset {
            p.next_offset += count;
            p.end_offset = Some(end);
            p.fetch_sent_ns = None;
            assert!(p.next_offset <= end);
            self.stream
                .emit_source_records(ctx, partition, offset, count);
        }
        self.reading_done()
    }

    /// Arms the stream's resend tick if it needs one and none is armed.
    pub fn arm_tick(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if self.tick_timer.is_none() && self.stream.needs_tick() {
            self.tick_timer = Some(ctx.set_timer(
                crate::taskmanager::stream_task::RESEND_INTERVAL,
                Timer::TaskTick {
                    attempt: self.attempt,
                },
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

    /// Input channel index of `producer`.
    pub fn input_index(&self, producer: ExecutionAttemptId) -> Option<usize> {
        self.channel_of(producer)
    }

    /// A fetch found the log down: retry on the next tick (the reader keeps retrying, as a
    /// Kafka consumer does, instead of failing the task).
    pub fn on_fetch_unreachable(&mut self, partition: u32) {
        if let Some(p) = self
            .reader
            .as_mut()
            .and_then(|r| r.partitions.get_mut(&partition))
        {
            p.fetch_sent_ns = None;
        }
    }

    fn reading_done(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| {
            r.partitions
                .values()
                .all(|p| p.end_offset.is_some_and(|end| p.next_offset >= end))
        })
    }

    /// Records read so far, per partition (for tests and reports).
    pub fn source_offsets(&self) -> Vec<(u32, u64)> {
        self.reader.as_ref().map_or_else(Vec::new, |r| {
            r.partitions
                .iter()
                .map(|(p, s)| (*p, s.next_offset))
                .collect()
        })
    }

    /// RUNNING: requests every input channel's subpartition from its producer's TaskExecutor.
    pub fn request_partitions(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert_eq!(self.state, ExecutionState::Running);
        assert!(self.source.is_none());
        for i in 0..self.inputs.len() {
            assert_eq!(self.inputs[i].state, ChannelState::Idle);
            self.request_partition(ctx, i);
        }
    }

    fn request_partition(&mut self, ctx: &mut Ctx<'_, Flink>, i: usize) {
        let ch = &mut self.inputs[i];
        let resend = ctx.set_timer(
            PARTITION_REQUEST_RESEND_INTERVAL,
            Timer::PartitionRequestRetry {
                consumer: self.attempt,
                producer: ch.channel.producer,
            },
        );
        ch.state = ChannelState::Requested { resend };
        ctx.send(
            ch.channel.task_manager,
            Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition {
                producer: ch.channel.producer,
                consumer: self.attempt,
            }),
        );
    }

    fn channel_of(&self, producer: ExecutionAttemptId) -> Option<usize> {
        self.inputs
            .iter()
            .position(|c| c.channel.producer == producer)
    }

    /// End of partition from `producer` arrived in-band: the channel stops requesting. Returns
    /// true when this was a live channel.
    pub fn on_end_of_partition(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        producer: ExecutionAttemptId,
    ) -> bool {
        if self.state != ExecutionState::Running {
            return false;
        }
        let Some(i) = self.channel_of(producer) else {
            return false;
        };
        let ch = &mut self.inputs[i];
        match ch.state {
            ChannelState::Finished => false, // a duplicate
            ChannelState::Idle => unreachable!("a RUNNING task has requested every channel"),
            // In backoff, the end crossed the `PartitionNotFound` of a repeated request: the
            // producer was there after all.
            ChannelState::Requested { resend: timer } | ChannelState::Backoff { timer } => {
                ctx.cancel_timer(timer);
                ch.state = ChannelState::Finished;
                true
            }
        }
    }

    /// `PartitionNotFound` for `producer`: back off and retry, or give up (Flink's
    /// `InputChannel.increaseBackoff`: initial, doubling, capped at the max; once at the max the
    /// next miss fails).
    pub fn on_partition_not_found(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        producer: ExecutionAttemptId,
    ) -> PartitionRetry {
        if self.state != ExecutionState::Running {
            return PartitionRetry::Ignored;
        }
        let Some(i) = self.channel_of(producer) else {
            return PartitionRetry::Ignored;
        };
        let ch = &mut self.inputs[i];
        // Only an answer to an outstanding request counts; a duplicate must not double the
        // backoff twice.
        let ChannelState::Requested { resend } = ch.state else {
            return PartitionRetry::Ignored;
        };
        ctx.cancel_timer(resend);
        let next = match ch.backoff {
            None => PARTITION_REQUEST_BACKOFF_INITIAL,
            Some(b) if b < PARTITION_REQUEST_BACKOFF_MAX => {
                (b * 2).min(PARTITION_REQUEST_BACKOFF_MAX)
            }
            Some(_) => {
                ch.state = ChannelState::Idle;
                return PartitionRetry::Exhausted;
            }
        };
        ch.backoff = Some(next);
        let timer = ctx.set_timer(
            next,
            Timer::PartitionRequestRetry {
                consumer: self.attempt,
                producer,
            },
        );
        ch.state = ChannelState::Backoff { timer };
        PartitionRetry::Scheduled
    }

    /// A partition-request backoff or resend interval fired: request again if `timer` is the
    /// channel's live one.
    pub fn on_partition_request_retry(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        producer: ExecutionAttemptId,
        timer: TimerId,
    ) {
        if self.state != ExecutionState::Running {
            return;
        }
        let Some(i) = self.channel_of(producer) else {
            return;
        };
        let live = match self.inputs[i].state {
            ChannelState::Requested { resend } => resend == timer,
            ChannelState::Backoff { timer: t } => t == timer,
            ChannelState::Idle | ChannelState::Finished => false,
        };
        if live {
            self.request_partition(ctx, i);
        }
    }

    /// Whether a request for `producer`'s partition is still waiting for its producer (an
    /// unreachable producer TaskExecutor then fails the task).
    pub fn awaits_partition(&self, producer: ExecutionAttemptId) -> bool {
        self.state == ExecutionState::Running
            && self
                .channel_of(producer)
                .is_some_and(|i| self.inputs[i].state != ChannelState::Finished)
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
mod tests {
    use super::*;

    #[test]
    fn source_fetch_plan_keeps_the_rate_per_partition() {
        let ms = Duration::from_millis;
        // One interval's worth per fetch, rounded up.
        assert_eq!(source_fetch_plan(Some(1000)), (100, ms(100)));
        assert_eq!(source_fetch_plan(Some(15)), (2, ms(100)));
        assert_eq!(source_fetch_plan(Some(10)), (1, ms(100)));
        // Slower than one record per interval: one record every 1 s / rate.
        assert_eq!(source_fetch_plan(Some(2)), (1, ms(500)));
        assert_eq!(source_fetch_plan(Some(1)), (1, ms(1000)));
        assert_eq!(
            source_fetch_plan(None),
            (crate::external::source_log::FETCH_RECORDS_MAX, ms(100))
        );
    }
}
