//! The input channels of a task: Flink's `RemoteInputChannel` as far as partition requests go.
//! While the task is RUNNING each channel requests its producer's subpartition
//! (`requestSubpartition`), repeats an unanswered request every
//! [`PARTITION_REQUEST_RESEND_INTERVAL`], backs off on `PartitionNotFound`
//! (`InputChannel.increaseBackoff`: initial, doubling, capped; past the cap the task fails with
//! `PartitionNotFoundException`), and stops at the in-band end of partition.
//!
//! It does not own the buffers a channel delivers (`stream_task`'s input) nor the producer side
//! of a request (`task_executor`).

use super::Task;
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::rpc::{InputChannel, Msg, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::{TaskExecutorTimer, Timer};
use crate::protocol::Flink;
use sim::{Ctx, TimerId};
use std::time::Duration;

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

const _: () = assert!(PARTITION_REQUEST_BACKOFF_INITIAL.as_nanos() > 0);
const _: () = assert!(
    PARTITION_REQUEST_BACKOFF_INITIAL.as_nanos() <= PARTITION_REQUEST_BACKOFF_MAX.as_nanos()
);
const _: () = assert!(PARTITION_REQUEST_RESEND_INTERVAL.as_nanos() > 0);

/// Where one input channel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChannelState {
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
pub(super) struct InputChannelState {
    pub(super) channel: InputChannel,
    pub(super) state: ChannelState,
    /// The current partition-request backoff (Flink's `InputChannel.currentBackoff`).
    pub(super) backoff: Option<Duration>,
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

impl Task {
    pub(super) fn stop_channels(&mut self, ctx: &mut Ctx<'_, Flink>) {
        for ch in &mut self.inputs {
            match ch.state {
                ChannelState::Requested { resend: timer } | ChannelState::Backoff { timer } => {
                    ctx.cancel_timer(timer);
                    ch.state = ChannelState::Idle;
                }
                ChannelState::Idle | ChannelState::Finished => {}
            }
        }
        debug_assert!(self
            .inputs
            .iter()
            .all(|c| matches!(c.state, ChannelState::Idle | ChannelState::Finished)));
    }

    /// Input channel index of `producer`.
    pub fn input_index(&self, producer: ExecutionAttemptId) -> Option<usize> {
        self.channel_of(producer)
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
        // Only a RUNNING task requests, and never again after the end of partition.
        assert_eq!(self.state, ExecutionState::Running);
        let ch = &mut self.inputs[i];
        assert_ne!(ch.state, ChannelState::Finished);
        let resend = ctx.set_timer(
            PARTITION_REQUEST_RESEND_INTERVAL,
            Timer::TaskExecutor(TaskExecutorTimer::PartitionRequestRetry {
                consumer: self.attempt,
                producer: ch.channel.producer,
            }),
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
        assert!(next >= PARTITION_REQUEST_BACKOFF_INITIAL && next <= PARTITION_REQUEST_BACKOFF_MAX);
        ch.backoff = Some(next);
        let timer = ctx.set_timer(
            next,
            Timer::TaskExecutor(TaskExecutorTimer::PartitionRequestRetry {
                consumer: self.attempt,
                producer,
            }),
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
}
