//! The stream side of a running task (Flink's `StreamTask` with its operator chain, input gate,
//! result partition, barrier handler, `SubtaskCheckpointCoordinator` and sink writer).
//!
//! It owns the records: what arrives on the input channels, what the chained operators make of
//! it (map, keyed count, sink), the output subpartitions with their credit-based flow control
//! and re-sending, barrier alignment (EXACTLY_ONCE) or tracking (AT_LEAST_ONCE), snapshots to
//! `checkpoint-storage` and their acknowledgement, restore, and the two-phase-commit or
//! at-least-once writer of the `sink`. It does not own the task's lifecycle or the partition
//! requests (`task`), nor who is told about state changes (`task_executor`): it reports what the
//! task must do next through [`StreamTask::take_failure`] and [`StreamTask::can_finish`].
//!
//! Simplifications (documented in the README): processing takes no virtual time; an output is
//! flushed after each input batch (like `execution.buffer-timeout.interval` = 0); credit is the
//! 2 exclusive buffers per channel of `taskmanager.network.memory.buffers-per-channel` without
//! floating buffers; a buffer holds at most [`BATCH_MAX`] elements.
//!
//! This module holds the [`StreamTask`] struct and its construction, the operator chain
//! (`process_rec`: map, keyed count, sink), a source's records, the resend tick every part
//! shares, finishing and release. The rest lives in children:
//! - `input`: the input channels (Flink's `SingleInputGate` / `RemoteInputChannel`), the mailbox
//!   loop, and barrier alignment or tracking (`CheckpointBarrierHandler`);
//! - `output`: the output subpartitions (`ResultSubpartition`), partitioners, credit and
//!   backpressure;
//! - `snapshot`: restore during INITIALIZING and snapshots (`SubtaskCheckpointCoordinator`):
//!   state writes, acknowledge and decline, checkpoint notifications;
//! - `sink_writer`: the sink's writer (`TwoPhaseCommittingSink` / at-least-once): transactions,
//!   writes, pre-commit and commit.

mod input;
mod output;
mod sink_writer;
mod snapshot;

use crate::checking::bugs::Bugs;
use crate::protocol::checkpoint::{CheckpointId, CheckpointingMode, Rec, TaskRestore};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::{key_group_range, SinkKind};
use crate::protocol::records::{map_value, record_at, CountOutput};
use crate::protocol::rpc::{ChainedOperator, Msg, SinkRpc, StreamConfig, TaskExecutorRpc};
use crate::protocol::Flink;
use input::InChannel;
use output::Subpartition;
use sim::{Ctx, NodeId};
use sink_writer::{Pending, SinkWriter};
use snapshot::{Init, PendingSnapshot};
use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

/// The most elements one network buffer carries.
pub const BATCH_MAX: usize = 64;
/// `taskmanager.network.memory.buffers-per-channel`: the credit of one channel.
pub const BUFFERS_PER_CHANNEL: u64 = 2;
/// Unsent elements a subpartition may hold before the task stops taking input (its buffer pool
/// is exhausted: backpressure).
pub const BACKLOG_MAX: usize = 2 * BATCH_MAX;
/// Unacknowledged sink writes before the writer blocks the task.
pub const SINK_WRITES_IN_FLIGHT_MAX: usize = 4;
/// How often a task re-sends what its peers have not acknowledged (like TCP's retransmission;
/// the simulated network may drop messages where a scenario asks).
pub const RESEND_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct StreamTask {
    attempt: ExecutionAttemptId,
    job_id: JobId,
    subtask: u32,
    cfg: Arc<StreamConfig>,
    job_master: NodeId,
    bugs: Bugs,
    is_source: bool,
    restore: Option<TaskRestore>,
    init: Init,
    // ---- operators ----
    counts: BTreeMap<u64, u64>,
    key_groups: RangeInclusive<u32>,
    /// A source's restored read position.
    restored_offsets: Option<Vec<(u32, u64)>>,
    // ---- output ----
    out: Vec<Subpartition>,
    rebalance_next: u32,
    // ---- input ----
    ins: Vec<InChannel>,
    next_channel: usize,
    // ---- checkpointing ----
    /// The checkpoint being aligned (EXACTLY_ONCE) or tracked (AT_LEAST_ONCE).
    aligning: Option<(CheckpointId, u64)>,
    /// The highest checkpoint this task snapshotted or gave up.
    last_checkpoint: CheckpointId,
    snapshots: BTreeMap<CheckpointId, PendingSnapshot>,
    notified: CheckpointId,
    /// All input seen (sources: every partition read).
    end_of_input: bool,
    /// `EndOfData` went downstream since this attempt started.
    end_of_data_sent: bool,
    /// The first checkpoint taken after the end of input (FLIP-147's final checkpoint).
    final_checkpoint: Option<CheckpointId>,
    writer: Option<SinkWriter>,
    failure: Option<String>,
    /// `pekko.ask.timeout`: how long restore reads and state writes may stay unanswered.
    ask_timeout: Duration,
}

impl StreamTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        attempt: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
        cfg: Arc<StreamConfig>,
        input_tms: Vec<NodeId>,
        is_source: bool,
        restore: Option<TaskRestore>,
        job_master: NodeId,
        bugs: Bugs,
        ask_timeout: Duration,
    ) -> StreamTask {
        // A source reads the log, not input channels.
        assert!(!is_source || input_tms.is_empty());
        assert!(subtask < cfg.parallelism);
        let out = match &cfg.output {
            Some(o) => (0..o.consumer_parallelism)
                .map(|_| Subpartition::default())
                .collect(),
            None => Vec::new(),
        };
        let writer = cfg.chain.iter().find_map(|op| match op {
            ChainedOperator::Sink(kind) => Some(SinkWriter {
                kind: *kind,
                node: cfg.sink.unwrap_or(NodeId(u32::MAX)),
                epoch: (*kind != SinkKind::TwoPhaseCommit).then_some(0),
                init_sent: false,
                next_txn: 0,
                current: None,
                buffer: Vec::new(),
                next_seq: 0,
                acked: 0,
                acked_at_tick: 0,
                unacked: VecDeque::new(),
                pending: Vec::new(),
                restored: Vec::new(),
            }),
            _ => None,
        });
        let key_groups = key_group_range(cfg.max_parallelism, cfg.parallelism, subtask);
        StreamTask {
            attempt,
            job_id,
            subtask,
            cfg,
            job_master,
            bugs,
            is_source,
            restore,
            init: Init::default(),
            counts: BTreeMap::new(),
            key_groups,
            restored_offsets: None,
            out,
            rebalance_next: subtask,
            ins: input_tms
                .into_iter()
                .map(|tm| InChannel {
                    producer: None,
                    tm,
                    queue: VecDeque::new(),
                    expected: 0,
                    consumed: 0,
                    blocked: false,
                    barrier: 0,
                    end_of_data: false,
                    end_of_partition: false,
                    dirty: false,
                })
                .collect(),
            next_channel: 0,
            aligning: None,
            last_checkpoint: 0,
            snapshots: BTreeMap::new(),
            notified: 0,
            end_of_input: false,
            end_of_data_sent: false,
            final_checkpoint: None,
            writer,
            failure: None,
            ask_timeout,
        }
    }

    fn checkpointing(&self) -> Option<CheckpointingMode> {
        self.cfg.checkpointing
    }

    /// The failure the task must fail with, once.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// A source's restored read position, if it restored one.
    pub fn restored_offsets(&self) -> Option<&[(u32, u64)]> {
        assert!(self.is_source || self.restored_offsets.is_none());
        self.restored_offsets.as_deref()
    }

    /// Whether input channel `c` delivered its end of partition.
    pub fn input_ended(&self, c: usize) -> bool {
        self.ins.get(c).is_some_and(|ch| ch.end_of_partition)
    }

    pub fn end_of_input(&self) -> bool {
        self.end_of_input
    }

    /// A source emits records `offset..offset + count` of `partition`.
    pub fn emit_source_records(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        partition: u32,
        offset: u64,
        count: u64,
    ) {
        assert!(self.is_source && self.ins.is_empty());
        for o in offset..offset + count {
            let rec = Rec::Record(record_at(partition, o));
            self.process_rec(rec);
        }
        self.flush(ctx);
    }

    /// A source has read every partition to its end: end of data.
    pub fn source_end(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert!(self.is_source);
        if !self.end_of_data_sent {
            self.end_input(ctx);
        }
    }

    fn process_rec(&mut self, mut rec: Rec) {
        for i in 0..self.cfg.chain.len() {
            match self.cfg.chain[i] {
                ChainedOperator::Map => {
                    if let Rec::Record(r) = &mut rec {
                        r.value = map_value(r.value);
                    }
                }
                ChainedOperator::Count => {
                    let key = match rec {
                        Rec::Record(r) => r.key,
                        Rec::Count(c) => c.key,
                    };
                    let n = self.counts.entry(key).or_insert(0);
                    *n += 1;
                    rec = Rec::Count(CountOutput { key, count: *n });
                }
                ChainedOperator::Sink(kind) => {
                    if kind != SinkKind::Discard {
                        if let Some(w) = &mut self.writer {
                            w.buffer.push(rec);
                        }
                    }
                    return;
                }
            }
        }
        self.emit(rec);
    }

    /// Whether anything sent still waits for an acknowledgement (the resend tick is needed).
    pub fn needs_tick(&self) -> bool {
        self.out
            .iter()
            .any(|s| !s.unacked.is_empty() || s.credit_exhausted())
            || self.writer.as_ref().is_some_and(|w| {
                !w.unacked.is_empty()
                    || w.pending
                        .iter()
                        .any(|p| matches!(p.3, Pending::PreCommitSent | Pending::CommitSent))
                    || (w.init_sent && w.epoch.is_none())
            })
            || !self.snapshots.is_empty()
            || !self.init.reads.is_empty()
    }

    /// The resend tick: re-send what made no progress since the last tick, and time out what
    /// waited longer than the ask timeout.
    pub fn tick(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let producer = self.attempt;
        for s in &mut self.out {
            let Some((consumer, tm)) = s.consumer else {
                continue;
            };
            let stalled = s.received == s.received_at_tick && s.consumed == s.consumed_at_tick;
            // The resend window is exactly the buffers sent and not yet received.
            debug_assert_eq!(s.unacked.len() as u64, s.next_seq - s.received);
            if !s.unacked.is_empty() && stalled {
                for (i, elements) in s.unacked.iter().enumerate() {
                    ctx.send(
                        tm,
                        Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                            producer,
                            consumer,
                            seq: s.received + i as u64,
                            elements: Arc::clone(elements),
                        }),
                    );
                }
            } else if s.credit_exhausted() && stalled {
                // Zero-window probe: everything sent was received, but the credit that would
                // let more go may have been lost. An empty repeat of the last buffer makes the
                // consumer announce its progress again.
                assert!(s.next_seq > 0);
                ctx.send(
                    tm,
                    Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                        producer,
                        consumer,
                        seq: s.next_seq - 1,
                        elements: Arc::from([]),
                    }),
                );
            }
            s.received_at_tick = s.received;
            s.consumed_at_tick = s.consumed;
        }
        let now = ctx.mono_ns();
        let timeout = self.ask_timeout.as_nanos() as u64;
        if !self.init.done && now.saturating_sub(self.init.started_ns) > timeout {
            self.fail("initialisation timed out (restore or initTransactions)".to_string());
        } else if !self.init.reads.is_empty() {
            self.send_reads(ctx);
        }
        let (attempt, job_id, subtask, bugs) = (self.attempt, self.job_id, self.subtask, self.bugs);
        if let Some(w) = &mut self.writer {
            if w.init_sent && w.epoch.is_none() {
                Self::send_init(ctx, w, attempt, job_id, subtask, bugs);
            }
            debug_assert_eq!(w.unacked.len() as u64, w.next_seq - w.acked);
            if !w.unacked.is_empty() && w.acked == w.acked_at_tick {
                for (i, (txn, records)) in w.unacked.iter().enumerate() {
                    ctx.send(
                        w.node,
                        Msg::Sink(SinkRpc::Write {
                            writer: attempt,
                            job_id,
                            subtask,
                            seq: w.acked + i as u64,
                            txn: *txn,
                            records: Arc::clone(records),
                        }),
                    );
                }
            }
            w.acked_at_tick = w.acked;
            for &(checkpoint_id, txn, _, stage) in &w.pending {
                match stage {
                    Pending::PreCommitSent => ctx.send(
                        w.node,
                        Msg::Sink(SinkRpc::PreCommit {
                            writer: attempt,
                            txn,
                            checkpoint_id,
                        }),
                    ),
                    Pending::CommitSent => ctx.send(
                        w.node,
                        Msg::Sink(SinkRpc::Commit {
                            writer: attempt,
                            txn,
                        }),
                    ),
                    Pending::Flushing | Pending::PreCommitted => {}
                }
            }
        }
        // A snapshot whose state write went unanswered for the ask timeout is declined.
        let late: Vec<CheckpointId> = self
            .snapshots
            .iter()
            .filter(|(_, s)| !s.acked && now.saturating_sub(s.sent_ns) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.decline(ctx, id, "CHECKPOINT_ASYNC_EXCEPTION");
        }
    }

    /// Whether the task may finish: its input ended, its final checkpoint is confirmed (with
    /// checkpointing), its sink output is committed, and every input partition ended.
    pub fn can_finish(&self) -> bool {
        if !self.end_of_input || !self.init.done {
            return false;
        }
        if self.checkpointing().is_some() && self.final_checkpoint.is_none_or(|f| self.notified < f)
        {
            return false;
        }
        let writer_done = self
            .writer
            .as_ref()
            .is_none_or(|w| w.pending.is_empty() && w.unacked.is_empty() && w.buffer.is_empty());
        writer_done && self.ins.iter().all(|c| c.end_of_partition)
    }
}

impl StreamTask {
    /// The task failed or was cancelled: its partition and writer are released, nothing more
    /// is sent.
    pub fn release(&mut self) {
        for s in &mut self.out {
            s.consumer = None;
            s.queue.clear();
            s.unacked.clear();
        }
        self.snapshots.clear();
        self.ins.clear();
        if let Some(w) = &mut self.writer {
            w.unacked.clear();
            w.pending.clear();
            w.buffer.clear();
            w.init_sent = false;
        }
        self.init.reads.clear();
        self.init.done = true;
        // Released: nothing is left to re-send or time out.
        debug_assert!(!self.needs_tick());
    }
}

#[cfg(test)]
mod tests;
