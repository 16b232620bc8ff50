//! The output side of a stream task: Flink's `ResultPartition` with one `ResultSubpartition` per
//! consumer subtask, the partitioners (forward, rebalance, hash by key group), credit-based flow
//! control (`taskmanager.network.memory.buffers-per-channel` exclusive buffers), backpressure when
//! a subpartition's backlog or the sink writer is full, and end of partition when the task
//! finishes.
//!
//! It does not own the re-sending of unacknowledged buffers (the resend tick in `mod.rs`) nor
//! who asked for a subpartition (`task`, `task_executor`).

use super::{StreamTask, BACKLOG_MAX, BATCH_MAX, BUFFERS_PER_CHANNEL, SINK_WRITES_IN_FLIGHT_MAX};
use crate::protocol::checkpoint::{Rec, StreamElement};
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::job_graph::{key_group_for_key, operator_index_for_key_group, Partitioner};
use crate::protocol::records::keyed;
use crate::protocol::rpc::{Msg, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::VecDeque;
use std::sync::Arc;

/// One output subpartition: the elements for one consumer subtask.
#[derive(Debug, Default)]
pub(super) struct Subpartition {
    /// The consumer attempt that requested it and its TaskExecutor.
    pub(super) consumer: Option<(ExecutionAttemptId, NodeId)>,
    /// Elements not yet packed into a buffer.
    pub(super) queue: VecDeque<StreamElement>,
    /// Buffers sent and not yet received, oldest first, from `received`.
    pub(super) unacked: VecDeque<Arc<[StreamElement]>>,
    pub(super) next_seq: u64,
    pub(super) received: u64,
    pub(super) consumed: u64,
    /// `received` at the previous resend tick (no progress since: re-send).
    pub(super) received_at_tick: u64,
    pub(super) consumed_at_tick: u64,
}

impl Subpartition {
    /// Data waits for credit that has not come.
    pub(super) fn credit_exhausted(&self) -> bool {
        self.consumer.is_some()
            && !self.queue.is_empty()
            && self.next_seq >= self.consumed + BUFFERS_PER_CHANNEL
    }
}

impl StreamTask {
    pub(super) fn emit(&mut self, mut rec: Rec) {
        let Some(o) = self.cfg.output else {
            return;
        };
        let target = match o.partitioner {
            Partitioner::Forward => self.subtask,
            Partitioner::Rebalance => {
                let t = self.rebalance_next % o.consumer_parallelism;
                self.rebalance_next = self.rebalance_next.wrapping_add(1);
                t
            }
            Partitioner::Hash { keys } => {
                let key = match &mut rec {
                    Rec::Record(r) => {
                        r.key = keyed(r.key, keys);
                        r.key
                    }
                    Rec::Count(c) => c.key,
                };
                let kg = key_group_for_key(key, o.consumer_max_parallelism);
                operator_index_for_key_group(o.consumer_max_parallelism, o.consumer_parallelism, kg)
            }
        };
        self.out[target as usize]
            .queue
            .push_back(StreamElement::Record(rec));
    }

    /// The subpartitions an event goes to: all, or the one partner of a forward exchange.
    pub(super) fn broadcast(&mut self, e: StreamElement) {
        let Some(o) = self.cfg.output else {
            return;
        };
        if o.partitioner == Partitioner::Forward {
            self.out[self.subtask as usize].queue.push_back(e);
        } else {
            for s in &mut self.out {
                s.queue.push_back(e);
            }
        }
    }

    /// Whether the task must stop taking input: an output or the sink writer is full.
    pub fn backpressured(&self) -> bool {
        self.out.iter().any(|s| s.queue.len() > BACKLOG_MAX)
            || self
                .writer
                .as_ref()
                .is_some_and(|w| w.unacked.len() >= SINK_WRITES_IN_FLIGHT_MAX)
    }

    /// A consumer requested its subpartition (a newer attempt replaces an older one and starts
    /// over: its producer is new too, as both are in one pipelined region).
    pub fn on_consumer(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        consumer: ExecutionAttemptId,
        task_manager: NodeId,
    ) {
        let Some(s) = self.out.get_mut(consumer.vertex.subtask as usize) else {
            return;
        };
        match s.consumer {
            Some((c, _)) if c == consumer => {}
            _ => {
                s.consumer = Some((consumer, task_manager));
            }
        }
        self.flush(ctx);
    }

    /// Drops the consumer of a broken connection (its TaskManager refused a buffer).
    pub fn on_consumer_lost(&mut self, consumer: ExecutionAttemptId) {
        if let Some(s) = self.out.get_mut(consumer.vertex.subtask as usize) {
            if s.consumer.is_some_and(|(c, _)| c == consumer) {
                s.consumer = None;
            }
        }
    }

    /// Credit and acknowledgement from a consumer.
    pub fn on_channel_progress(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        consumer: ExecutionAttemptId,
        received: u64,
        consumed: u64,
    ) {
        let Some(s) = self.out.get_mut(consumer.vertex.subtask as usize) else {
            return;
        };
        if s.consumer.map(|(c, _)| c) != Some(consumer) {
            return;
        }
        while s.received < received.min(s.next_seq) {
            s.unacked.pop_front();
            s.received += 1;
        }
        s.consumed = s.consumed.max(consumed.min(s.received));
        debug_assert_eq!(s.unacked.len() as u64, s.next_seq - s.received);
        self.flush(ctx);
    }

    /// Packs queued elements into buffers and sends them while credit lasts; also flushes the
    /// sink writer.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let producer = self.attempt;
        for s in &mut self.out {
            let Some((consumer, tm)) = s.consumer else {
                continue;
            };
            while !s.queue.is_empty() && s.next_seq < s.consumed + BUFFERS_PER_CHANNEL {
                let n = s.queue.len().min(BATCH_MAX);
                let elements: Arc<[StreamElement]> = s.queue.drain(..n).collect();
                ctx.send(
                    tm,
                    Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                        producer,
                        consumer,
                        seq: s.next_seq,
                        elements: Arc::clone(&elements),
                    }),
                );
                s.unacked.push_back(elements);
                s.next_seq += 1;
            }
            // Credit: never more buffers ahead of the consumer than it has.
            assert!(s.next_seq <= s.consumed + BUFFERS_PER_CHANNEL);
        }
        self.flush_writer(ctx);
    }

    /// The task finished: end of partition to every consumer.
    pub fn finish(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A task finishes only after the end of its input.
        assert!(self.end_of_input);
        self.broadcast(StreamElement::EndOfPartition);
        self.flush(ctx);
    }

    /// Whether an output still has something its consumer has not received (a finished
    /// producer keeps serving its partition until then).
    pub fn output_pending(&self) -> bool {
        self.out
            .iter()
            .any(|s| s.consumer.is_some() && (!s.unacked.is_empty() || !s.queue.is_empty()))
    }
}
