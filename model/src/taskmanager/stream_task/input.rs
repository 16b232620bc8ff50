//! The input side of a stream task: Flink's `SingleInputGate` with one `RemoteInputChannel` per
//! upstream producer (buffers in sequence, recycled buffers as credit, progress reported back),
//! the mailbox loop that takes one buffer at a time while the outputs have room, and the
//! `CheckpointBarrierHandler`: barrier alignment (EXACTLY_ONCE, blocking aligned channels) or
//! tracking (AT_LEAST_ONCE), subsumption, and end of input (docs/flink-runtime.md §7.3).
//!
//! It does not own the partition requests that open a channel (`task`) nor what a snapshot
//! writes (`snapshot`).

use super::sink_writer::Pending;
use super::{StreamTask, BUFFERS_PER_CHANNEL};
use crate::checking::bugs::Bug;
use crate::protocol::checkpoint::{CheckpointId, CheckpointingMode, StreamElement};
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::job_graph::SinkKind;
use crate::protocol::rpc::{Msg, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::VecDeque;
use std::sync::Arc;

/// One input channel's data.
#[derive(Debug)]
pub(super) struct InChannel {
    pub(super) producer: Option<ExecutionAttemptId>,
    /// The producer's TaskExecutor.
    pub(super) tm: NodeId,
    /// Buffers received and not fully processed, with the position of the next element.
    pub(super) queue: VecDeque<(Arc<[StreamElement]>, usize)>,
    /// The next sequence number expected.
    pub(super) expected: u64,
    /// Buffers fully processed (recycled).
    pub(super) consumed: u64,
    /// Blocked by alignment (EXACTLY_ONCE).
    pub(super) blocked: bool,
    /// The highest barrier this channel delivered.
    pub(super) barrier: CheckpointId,
    pub(super) end_of_data: bool,
    pub(super) end_of_partition: bool,
    /// Progress not yet reported to the producer.
    pub(super) dirty: bool,
}

impl InChannel {
    /// The next element of the front buffer (an empty buffer is recycled on the way).
    fn next_element(&mut self) -> Option<StreamElement> {
        self.recycle_if_done();
        let (buf, pos) = self.queue.front_mut()?;
        let e = buf[*pos];
        *pos += 1;
        Some(e)
    }

    /// Recycles the front buffer once all its elements were taken: one more credit for the
    /// producer. Returns whether it did.
    fn recycle_if_done(&mut self) -> bool {
        match self.queue.front() {
            Some((buf, pos)) if *pos >= buf.len() => {
                self.queue.pop_front();
                self.consumed += 1;
                self.dirty = true;
                // Only received buffers are recycled.
                assert!(self.consumed <= self.expected);
                true
            }
            _ => false,
        }
    }
}

impl StreamTask {
    /// Buffer `seq` arrived on input channel `channel` from `producer`.
    pub fn on_data_batch(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        channel: usize,
        producer: ExecutionAttemptId,
        seq: u64,
        elements: Arc<[StreamElement]>,
    ) {
        let ch = &mut self.ins[channel];
        // A channel reads the partition of one producer attempt.
        assert!(ch.producer.is_none_or(|p| p == producer));
        ch.producer = Some(producer);
        if seq == ch.expected {
            ch.queue.push_back((elements, 0));
            ch.expected += 1;
            // Credit: the producer sends at most the channel's buffers ahead of what was
            // recycled.
            assert!(ch.expected <= ch.consumed + BUFFERS_PER_CHANNEL);
        }
        // A repeat or a buffer after a gap: the progress tells the producer where we stand.
        ch.dirty = true;
        self.process(ctx);
        self.report_progress(ctx);
    }

    /// Sends the progress of every channel that changed.
    fn report_progress(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let consumer = self.attempt;
        for ch in &mut self.ins {
            if !ch.dirty {
                continue;
            }
            ch.dirty = false;
            let Some(producer) = ch.producer else {
                continue;
            };
            // The producer's credit: never more recycled than received.
            assert!(ch.consumed <= ch.expected);
            ctx.send(
                ch.tm,
                Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                    producer,
                    consumer,
                    received: ch.expected,
                    consumed: ch.consumed,
                }),
            );
        }
    }

    /// The mailbox loop: processes input while there is some, the outputs have room and the
    /// channels are not blocked; then flushes and reports progress.
    pub fn process(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let n = self.ins.len();
        if n == 0 || !self.init.done {
            return;
        }
        let mut idle_rounds = 0;
        while idle_rounds < n && !self.backpressured() && self.failure.is_none() {
            let c = self.next_channel;
            self.next_channel = (self.next_channel + 1) % n;
            if self.ins[c].blocked || self.ins[c].queue.is_empty() {
                idle_rounds += 1;
                continue;
            }
            idle_rounds = 0;
            // Process one buffer (or up to a blocking barrier).
            while let Some(e) = self.ins[c].next_element() {
                let buffer_done = self.ins[c].recycle_if_done();
                self.on_element(ctx, c, e);
                if buffer_done || self.ins[c].blocked {
                    break;
                }
            }
        }
        // Stopped by backpressure, a failure, or input that is all consumed or blocked.
        debug_assert!(
            self.backpressured()
                || self.failure.is_some()
                || self.ins.iter().all(|ch| ch.blocked || ch.queue.is_empty())
        );
        self.flush(ctx);
        self.report_progress(ctx);
    }

    fn on_element(&mut self, ctx: &mut Ctx<'_, Flink>, c: usize, e: StreamElement) {
        match e {
            StreamElement::Record(rec) => self.process_rec(rec),
            StreamElement::Barrier {
                checkpoint_id,
                timestamp_ms,
            } => self.on_barrier(ctx, c, checkpoint_id, timestamp_ms),
            StreamElement::EndOfData => {
                self.ins[c].end_of_data = true;
                if self.ins.iter().all(|ch| ch.end_of_data) && !self.end_of_data_sent {
                    self.end_input(ctx);
                }
            }
            StreamElement::EndOfPartition => {
                // Buffers are taken once each, in sequence: one end of partition per channel.
                assert!(!self.ins[c].end_of_partition);
                self.ins[c].end_of_partition = true;
                self.ins[c].blocked = false;
                if let Some((id, _)) = self.aligning {
                    // docs/flink-runtime.md §7.3: end of partition during alignment aborts it.
                    if self.checkpointing() == Some(CheckpointingMode::ExactlyOnce) {
                        self.abort_alignment();
                        self.decline(ctx, id, "CHECKPOINT_DECLINED_INPUT_END_OF_STREAM");
                    }
                }
            }
        }
    }

    fn aligned_mode(&self) -> bool {
        self.checkpointing() == Some(CheckpointingMode::ExactlyOnce)
            && !self.bugs.has(Bug::NoBarrierAlignment)
    }

    fn on_barrier(&mut self, ctx: &mut Ctx<'_, Flink>, c: usize, id: CheckpointId, ts: u64) {
        self.ins[c].barrier = self.ins[c].barrier.max(id);
        if id <= self.last_checkpoint {
            return; // an old, duplicate or aborted checkpoint
        }
        match self.aligning {
            Some((current, _)) if id > current => {
                // A newer barrier subsumes the checkpoint being aligned; a late barrier of the
                // subsumed one changes nothing afterwards.
                self.abort_alignment();
                self.decline(ctx, current, "CHECKPOINT_DECLINED_SUBSUMED");
                self.last_checkpoint = current;
                self.aligning = Some((id, ts));
            }
            // An older barrier while aligning a newer checkpoint: that checkpoint was given up.
            Some((current, _)) if id < current => return,
            Some(_) => {}
            None => self.aligning = Some((id, ts)),
        }
        if self.aligned_mode() {
            self.ins[c].blocked = true;
        }
        let complete = self
            .ins
            .iter()
            .all(|ch| ch.end_of_partition || ch.barrier >= id);
        if complete {
            self.abort_alignment();
            self.snapshot(ctx, id, ts, None);
        }
        // The blocked channels are among those that delivered the aligned barrier.
        debug_assert!(self
            .ins
            .iter()
            .all(|ch| !ch.blocked || self.aligning.is_some_and(|(a, _)| ch.barrier >= a)));
    }

    pub(super) fn abort_alignment(&mut self) {
        self.aligning = None;
        for ch in &mut self.ins {
            ch.blocked = false;
        }
    }

    pub(super) fn end_input(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // End of data goes downstream once per attempt.
        assert!(!self.end_of_data_sent);
        let restored_ended = self.end_of_input;
        self.end_of_input = true;
        self.end_of_data_sent = true;
        self.broadcast(StreamElement::EndOfData);
        self.flush(ctx);
        if self.checkpointing().is_none() && !restored_ended {
            // Without checkpoints a 2PC sink commits at end of input.
            if let Some(w) = &mut self.writer {
                if w.kind == SinkKind::TwoPhaseCommit {
                    if let Some((txn, last)) = w.current.take() {
                        w.pending.push((0, txn, last, Pending::Flushing));
                    }
                }
            }
            self.advance_writer(ctx);
        }
    }
}
