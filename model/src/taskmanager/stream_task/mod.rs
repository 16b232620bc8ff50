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

use crate::checking::bugs::{Bug, Bugs};
use crate::protocol::checkpoint::{
    CheckpointId, CheckpointingMode, Rec, StateHandleId, StreamElement, TaskRestore,
    TaskStateSnapshot, TxnId,
};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::{
    key_group_for_key, key_group_range, operator_index_for_key_group, Partitioner, SinkKind,
};
use crate::protocol::obs::Obs;
use crate::protocol::records::{keyed, map_value, record_at, CountOutput};
use crate::protocol::rpc::{
    ChainedOperator, CheckpointStorageRpc, JobMasterRpc, Msg, SinkRpc, StreamConfig,
    TaskExecutorRpc,
};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
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

/// One output subpartition: the elements for one consumer subtask.
#[derive(Debug, Default)]
struct Subpartition {
    /// The consumer attempt that requested it and its TaskExecutor.
    consumer: Option<(ExecutionAttemptId, NodeId)>,
    /// Elements not yet packed into a buffer.
    queue: VecDeque<StreamElement>,
    /// Buffers sent and not yet received, oldest first, from `received`.
    unacked: VecDeque<Arc<[StreamElement]>>,
    next_seq: u64,
    received: u64,
    consumed: u64,
    /// `received` at the previous resend tick (no progress since: re-send).
    received_at_tick: u64,
    consumed_at_tick: u64,
}

impl Subpartition {
    /// Data waits for credit that has not come.
    fn credit_exhausted(&self) -> bool {
        self.consumer.is_some()
            && !self.queue.is_empty()
            && self.next_seq >= self.consumed + BUFFERS_PER_CHANNEL
    }
}

/// One input channel's data.
#[derive(Debug)]
struct InChannel {
    producer: Option<ExecutionAttemptId>,
    /// The producer's TaskExecutor.
    tm: NodeId,
    /// Buffers received and not fully processed, with the position of the next element.
    queue: VecDeque<(Arc<[StreamElement]>, usize)>,
    /// The next sequence number expected.
    expected: u64,
    /// Buffers fully processed (recycled).
    consumed: u64,
    /// Blocked by alignment (EXACTLY_ONCE).
    blocked: bool,
    /// The highest barrier this channel delivered.
    barrier: CheckpointId,
    end_of_data: bool,
    end_of_partition: bool,
    /// Progress not yet reported to the producer.
    dirty: bool,
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
                true
            }
            _ => false,
        }
    }
}

/// The state of a 2PC transaction the writer has handed to a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Waiting for the transaction's writes to be acknowledged (flush).
    Flushing,
    PreCommitSent,
    PreCommitted,
    CommitSent,
}

#[derive(Debug)]
struct SinkWriter {
    kind: SinkKind,
    node: NodeId,
    /// `None` until `initTransactions` answered (2PC); at-least-once and discard need none.
    epoch: Option<u64>,
    init_sent: bool,
    next_txn: u64,
    /// The open transaction and the sequence number of its last write.
    current: Option<(TxnId, Option<u64>)>,
    /// Records processed but not yet written.
    buffer: Vec<Rec>,
    next_seq: u64,
    /// The sink took the writes below this.
    acked: u64,
    acked_at_tick: u64,
    /// Writes not yet acknowledged, from `acked`.
    unacked: VecDeque<(Option<TxnId>, Arc<[Rec]>)>,
    /// Transactions pre-committed (or being) for a checkpoint: (checkpoint, txn, last write seq,
    /// stage). Without checkpointing, the end-of-input transaction uses checkpoint 0.
    pending: Vec<(CheckpointId, TxnId, Option<u64>, Pending)>,
    /// Restored transactions of a completed checkpoint, committed by `initTransactions`.
    restored: Vec<(CheckpointId, TxnId)>,
}

/// A snapshot taken and not yet acknowledged.
#[derive(Debug)]
struct PendingSnapshot {
    handle: StateHandleId,
    written: bool,
    /// At-least-once: the writes below this must be acknowledged first.
    flush_to: Option<u64>,
    acked: bool,
    sent_ns: u64,
}

/// What `initialize` waits for.
#[derive(Debug, Default)]
struct Init {
    reads: Vec<StateHandleId>,
    restored: Vec<Arc<TaskStateSnapshot>>,
    started_ns: u64,
    /// The restored state was applied (once, however many steps initialisation takes).
    applied: bool,
    done: bool,
}

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
        self.restored_offsets.as_deref()
    }

    /// Whether input channel `c` delivered its end of partition.
    pub fn input_ended(&self, c: usize) -> bool {
        self.ins.get(c).is_some_and(|ch| ch.end_of_partition)
    }

    pub fn end_of_input(&self) -> bool {
        self.end_of_input
    }

    // ------------------------------------------------------------------------------------
    // Initialisation: restore and the sink's initTransactions
    // ------------------------------------------------------------------------------------

    /// INITIALIZING begins: read the restored state, if any. Returns true when initialisation
    /// is complete already.
    pub fn start_initialize(&mut self, ctx: &mut Ctx<'_, Flink>) -> bool {
        self.init.started_ns = ctx.mono_ns();
        if let Some(restore) = &self.restore {
            self.init.reads = restore.handles.clone();
            self.send_reads(ctx);
        }
        self.advance_init(ctx)
    }

    fn send_reads(&self, ctx: &mut Ctx<'_, Flink>) {
        let Some(storage) = self.cfg.checkpoint_storage else {
            return;
        };
        for handle in &self.init.reads {
            ctx.send(
                storage,
                Msg::CheckpointStorage(CheckpointStorageRpc::Read {
                    handle: *handle,
                    reader: self.attempt,
                }),
            );
        }
    }

    pub fn is_initialized(&self) -> bool {
        self.init.done
    }

    /// A read of restored state answered. Returns true when initialisation completed now.
    pub fn on_state_read(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        handle: StateHandleId,
        state: Option<Arc<TaskStateSnapshot>>,
    ) -> bool {
        if self.init.done {
            return false;
        }
        let Some(i) = self.init.reads.iter().position(|h| *h == handle) else {
            return false;
        };
        let Some(state) = state else {
            self.fail(format!(
                "could not restore: state of checkpoint {} is missing in checkpoint storage",
                handle.checkpoint_id
            ));
            return false;
        };
        self.init.reads.swap_remove(i);
        self.init.restored.push(state);
        self.advance_init(ctx)
    }

    fn advance_init(&mut self, ctx: &mut Ctx<'_, Flink>) -> bool {
        if self.init.done || !self.init.reads.is_empty() {
            return false;
        }
        if self.restore.is_some() && !self.init.applied {
            self.init.applied = true;
            self.apply_restored(ctx);
        }
        if let Some(w) = &mut self.writer {
            if w.epoch.is_none() {
                if !w.init_sent {
                    w.init_sent = true;
                    Self::send_init(ctx, w, self.attempt, self.job_id, self.subtask, self.bugs);
                }
                return false;
            }
        }
        self.init.done = true;
        true
    }

    fn send_init(
        ctx: &mut Ctx<'_, Flink>,
        w: &SinkWriter,
        attempt: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
        bugs: Bugs,
    ) {
        ctx.send(
            w.node,
            Msg::Sink(SinkRpc::InitTransactions {
                writer: attempt,
                job_id,
                subtask,
                commit: w.restored.clone(),
                abort_lingering: !bugs.has(Bug::NoAbortOfLingeringTransactions),
            }),
        );
    }

    fn apply_restored(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let Some(restore) = &self.restore else {
            return;
        };
        let checkpoint_id = restore.checkpoint_id;
        let mut offsets: Vec<(u32, u64)> = Vec::new();
        let mut pending: Vec<(CheckpointId, TxnId)> = Vec::new();
        let mut end_of_input = false;
        // Keyed state: only the key groups this subtask owns (StateAssignmentOperation).
        let own = self.key_groups.clone();
        let mut counts = Vec::new();
        // Sort the restored handles so that the result does not depend on answer order.
        self.init.restored.sort_by(|a, b| {
            a.source_offsets
                .cmp(&b.source_offsets)
                .then(a.keyed_counts.cmp(&b.keyed_counts))
        });
        for s in &self.init.restored {
            offsets.extend(s.source_offsets.iter().copied());
            pending.extend(s.pending_transactions.iter().copied());
            end_of_input |= s.end_of_input;
            for &(kg, key, n) in &s.keyed_counts {
                if own.contains(&kg) {
                    counts.push((kg, key, n));
                }
            }
        }
        end_of_input |= restore.finished;
        counts.sort_unstable();
        offsets.sort_unstable();
        pending.sort_unstable();
        self.counts = counts.iter().map(|&(_, k, n)| (k, n)).collect();
        if self.is_source {
            self.restored_offsets = Some(offsets.clone());
        }
        self.end_of_input = end_of_input;
        self.last_checkpoint = checkpoint_id;
        self.notified = checkpoint_id;
        if let Some(w) = &mut self.writer {
            w.restored = pending.clone();
        }
        let restored = TaskStateSnapshot {
            source_offsets: offsets,
            keyed_counts: counts,
            pending_transactions: pending,
            end_of_input,
        };
        ctx.trace(Obs::StateRestored {
            job_id: self.job_id,
            checkpoint_id,
            attempt: self.attempt,
            state: restored.digest(),
        });
        self.init.restored = Vec::new();
    }

    /// The sink answered `initTransactions`. Returns true when initialisation completed now.
    pub fn on_transactions_initialized(&mut self, ctx: &mut Ctx<'_, Flink>, epoch: u64) -> bool {
        let Some(w) = &mut self.writer else {
            return false;
        };
        if w.epoch.is_some() || !w.init_sent {
            return false;
        }
        w.epoch = Some(epoch);
        // The restored pending transactions are committed now.
        w.restored = Vec::new();
        self.advance_init(ctx)
    }

    // ------------------------------------------------------------------------------------
    // Records
    // ------------------------------------------------------------------------------------

    /// A source emits records `offset..offset + count` of `partition`.
    pub fn emit_source_records(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        partition: u32,
        offset: u64,
        count: u64,
    ) {
        for o in offset..offset + count {
            let rec = Rec::Record(record_at(partition, o));
            self.process_rec(rec);
        }
        self.flush(ctx);
    }

    /// A source has read every partition to its end: end of data.
    pub fn source_end(&mut self, ctx: &mut Ctx<'_, Flink>) {
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

    fn emit(&mut self, mut rec: Rec) {
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
    fn broadcast(&mut self, e: StreamElement) {
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

    // ------------------------------------------------------------------------------------
    // Output: subpartitions and credit
    // ------------------------------------------------------------------------------------

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
        self.flush(ctx);
    }

    /// Packs queued elements into buffers and sends them while credit lasts; also flushes the
    /// sink writer.
    fn flush(&mut self, ctx: &mut Ctx<'_, Flink>) {
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
        }
        self.flush_writer(ctx);
    }

    fn flush_writer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let attempt = self.attempt;
        let (job_id, subtask) = (self.job_id, self.subtask);
        let Some(w) = &mut self.writer else {
            return;
        };
        if w.buffer.is_empty() || w.epoch.is_none() {
            return;
        }
        let txn = match w.kind {
            SinkKind::TwoPhaseCommit => {
                let epoch = w.epoch.expect("initialised");
                let (t, _) = *w.current.get_or_insert_with(|| {
                    let t = TxnId {
                        job_id,
                        subtask,
                        epoch,
                        n: w.next_txn,
                    };
                    w.next_txn += 1;
                    (t, None)
                });
                Some(t)
            }
            _ => None,
        };
        let records: Arc<[Rec]> = std::mem::take(&mut w.buffer).into();
        let seq = w.next_seq;
        w.next_seq += 1;
        if let Some((_, last)) = &mut w.current {
            *last = Some(seq);
        }
        ctx.send(
            w.node,
            Msg::Sink(SinkRpc::Write {
                writer: attempt,
                job_id,
                subtask,
                seq,
                txn,
                records: Arc::clone(&records),
            }),
        );
        w.unacked.push_back((txn, records));
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

    // ------------------------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------------------------

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
        ch.producer = Some(producer);
        if seq == ch.expected {
            ch.queue.push_back((elements, 0));
            ch.expected += 1;
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
    }

    fn abort_alignment(&mut self) {
        self.aligning = None;
        for ch in &mut self.ins {
            ch.blocked = false;
        }
    }

    fn end_input(&mut self, ctx: &mut Ctx<'_, Flink>) {
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

    // ------------------------------------------------------------------------------------
    // Checkpoints
    // ------------------------------------------------------------------------------------

    /// `triggerCheckpoint` for a task that starts checkpoints (a source): snapshot now with the
    /// reader's position.
    pub fn on_trigger(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        ts: u64,
        offsets: Vec<(u32, u64)>,
    ) {
        if id <= self.last_checkpoint || !self.init.done {
            return;
        }
        if !self.ins.is_empty() && !self.ins.iter().all(|c| c.end_of_data) {
            return; // only sources and tasks whose input ended are triggered
        }
        self.snapshot(ctx, id, ts, Some(offsets));
    }

    fn snapshot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        ts: u64,
        offsets: Option<Vec<(u32, u64)>>,
    ) {
        assert!(id > self.last_checkpoint);
        self.last_checkpoint = id;
        // prepareSnapshotPreBarrier: what the operators emitted before the barrier goes into the
        // transaction (or write) the snapshot covers, not into the next one.
        self.flush_writer(ctx);
        let mut keyed: Vec<(u32, u64, u64)> = self
            .counts
            .iter()
            .map(|(&k, &n)| (key_group_for_key(k, self.cfg.max_parallelism), k, n))
            .collect();
        keyed.sort_unstable();
        // A 2PC writer hands its open transaction to this checkpoint.
        let mut flush_to = None;
        if let Some(w) = &mut self.writer {
            match w.kind {
                SinkKind::TwoPhaseCommit => {
                    if let Some((txn, last)) = w.current.take() {
                        w.pending.push((id, txn, last, Pending::Flushing));
                    }
                }
                SinkKind::AtLeastOnce => {
                    flush_to = Some(w.next_seq);
                }
                SinkKind::Discard => {}
            }
        }
        let pending_transactions = self
            .writer
            .as_ref()
            .map(|w| w.pending.iter().map(|p| (p.0, p.1)).collect())
            .unwrap_or_default();
        let true_offsets = offsets.unwrap_or_default();
        let truth = TaskStateSnapshot {
            source_offsets: true_offsets.clone(),
            keyed_counts: keyed,
            pending_transactions,
            end_of_input: self.end_of_input,
        };
        ctx.trace(Obs::SnapshotTaken {
            job_id: self.job_id,
            checkpoint_id: id,
            attempt: self.attempt,
            state: truth.digest(),
        });
        let mut written = truth;
        if self.bugs.has(Bug::OffsetsNotInSnapshot) {
            written.source_offsets = Vec::new();
        }
        if self.end_of_input && self.final_checkpoint.is_none() {
            self.final_checkpoint = Some(id);
        }
        // The barrier goes downstream behind the records before it.
        self.broadcast(StreamElement::Barrier {
            checkpoint_id: id,
            timestamp_ms: ts,
        });
        let handle = StateHandleId {
            job_id: self.job_id,
            checkpoint_id: id,
            attempt: self.attempt,
        };
        let state = Arc::new(written);
        self.snapshots.insert(
            id,
            PendingSnapshot {
                handle,
                written: false,
                flush_to,
                acked: false,
                sent_ns: ctx.mono_ns(),
            },
        );
        match self.cfg.checkpoint_storage {
            Some(storage) => ctx.send(
                storage,
                Msg::CheckpointStorage(CheckpointStorageRpc::Write { handle, state }),
            ),
            None => self.decline(ctx, id, "CHECKPOINT_ASYNC_EXCEPTION"),
        }
        if self.bugs.has(Bug::AckBeforeSnapshotDurable) {
            if let Some(s) = self.snapshots.get_mut(&id) {
                s.written = true;
            }
        }
        self.flush(ctx);
        self.advance_writer(ctx);
        self.try_acknowledge(ctx);
    }

    /// `checkpoint-storage` stored a handle of ours.
    pub fn on_state_written(&mut self, ctx: &mut Ctx<'_, Flink>, handle: StateHandleId) {
        if let Some(s) = self.snapshots.get_mut(&handle.checkpoint_id) {
            if s.handle == handle {
                s.written = true;
            }
        }
        self.try_acknowledge(ctx);
    }

    /// A state write found `checkpoint-storage` down: the checkpoint is declined.
    pub fn on_state_write_failed(&mut self, ctx: &mut Ctx<'_, Flink>, handle: StateHandleId) {
        if self
            .snapshots
            .get(&handle.checkpoint_id)
            .is_some_and(|s| s.handle == handle && !s.acked)
        {
            self.decline(ctx, handle.checkpoint_id, "CHECKPOINT_ASYNC_EXCEPTION");
        }
    }

    fn decline(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId, reason: &'static str) {
        self.snapshots.remove(&id);
        ctx.send(
            self.job_master,
            Msg::JobMaster {
                job_id: self.job_id,
                rpc: JobMasterRpc::DeclineCheckpoint {
                    attempt: self.attempt,
                    checkpoint_id: id,
                    reason,
                },
            },
        );
    }

    fn try_acknowledge(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let writer = self.writer.as_ref();
        for (id, s) in &mut self.snapshots {
            if s.acked || !s.written {
                continue;
            }
            let sink_ready = match writer {
                Some(w) => match w.kind {
                    SinkKind::TwoPhaseCommit => w
                        .pending
                        .iter()
                        .filter(|p| p.0 == *id)
                        .all(|p| matches!(p.3, Pending::PreCommitted | Pending::CommitSent)),
                    SinkKind::AtLeastOnce => s.flush_to.is_none_or(|f| w.acked >= f),
                    SinkKind::Discard => true,
                },
                None => true,
            } || self.bugs.has(Bug::AckBeforeSnapshotDurable);
            if !sink_ready {
                continue;
            }
            s.acked = true;
            ctx.send(
                self.job_master,
                Msg::JobMaster {
                    job_id: self.job_id,
                    rpc: JobMasterRpc::AcknowledgeCheckpoint {
                        attempt: self.attempt,
                        checkpoint_id: *id,
                        handle: s.handle,
                    },
                },
            );
        }
    }

    /// `notifyCheckpointComplete(id)`: commit every pending transaction up to `id`.
    pub fn on_notify_complete(&mut self, ctx: &mut Ctx<'_, Flink>, id: CheckpointId) {
        self.notified = self.notified.max(id);
        self.snapshots.retain(|k, _| *k > id);
        self.advance_writer(ctx);
    }

    /// `notifyCheckpointAborted(id)`: stop aligning it; the 2PC transaction stays pending for
    /// the next completed checkpoint.
    pub fn on_notify_aborted(&mut self, _ctx: &mut Ctx<'_, Flink>, id: CheckpointId) {
        if self.aligning.is_some_and(|(a, _)| a == id) {
            self.abort_alignment();
            self.last_checkpoint = self.last_checkpoint.max(id);
        }
        self.snapshots.remove(&id);
    }

    /// Moves the writer's pending transactions along: pre-commit once flushed, commit once
    /// notified (or, with the planted bug, at once).
    fn advance_writer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let attempt = self.attempt;
        let notified = self.notified;
        let no_checkpoints = self.checkpointing().is_none();
        let commit_on_barrier = self.bugs.has(Bug::SinkCommitOnBarrier);
        let Some(w) = &mut self.writer else {
            return;
        };
        for p in &mut w.pending {
            let (id, txn, last, stage) = *p;
            match stage {
                Pending::Flushing if last.is_none_or(|l| w.acked > l) => {
                    p.3 = Pending::PreCommitSent;
                    ctx.send(
                        w.node,
                        Msg::Sink(SinkRpc::PreCommit {
                            writer: attempt,
                            txn,
                            checkpoint_id: id,
                        }),
                    );
                }
                Pending::PreCommitted if id <= notified || no_checkpoints || commit_on_barrier => {
                    p.3 = Pending::CommitSent;
                    ctx.send(
                        w.node,
                        Msg::Sink(SinkRpc::Commit {
                            writer: attempt,
                            txn,
                        }),
                    );
                }
                _ => {}
            }
        }
    }

    /// The sink took our writes below `next_seq`.
    pub fn on_sink_write_ack(&mut self, ctx: &mut Ctx<'_, Flink>, next_seq: u64) {
        let Some(w) = &mut self.writer else {
            return;
        };
        while w.acked < next_seq.min(w.next_seq) {
            w.unacked.pop_front();
            w.acked += 1;
        }
        self.advance_writer(ctx);
        self.try_acknowledge(ctx);
        self.process(ctx);
    }

    pub fn on_pre_committed(&mut self, ctx: &mut Ctx<'_, Flink>, txn: TxnId) {
        if let Some(w) = &mut self.writer {
            for p in &mut w.pending {
                if p.1 == txn && p.3 == Pending::PreCommitSent {
                    p.3 = Pending::PreCommitted;
                }
            }
        }
        self.advance_writer(ctx);
        self.try_acknowledge(ctx);
    }

    pub fn on_committed(&mut self, _ctx: &mut Ctx<'_, Flink>, txn: TxnId) {
        if let Some(w) = &mut self.writer {
            w.pending
                .retain(|p| !(p.1 == txn && p.3 == Pending::CommitSent));
        }
    }

    /// The sink fenced this writer: a newer attempt of the subtask took over.
    pub fn on_sink_fenced(&mut self) {
        self.fail("ProducerFencedException: a newer writer of the subtask took over".to_string());
    }

    // ------------------------------------------------------------------------------------
    // Finishing
    // ------------------------------------------------------------------------------------

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

    /// The task finished: end of partition to every consumer.
    pub fn finish(&mut self, ctx: &mut Ctx<'_, Flink>) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
    use crate::protocol::records::Record;
    use crate::protocol::rpc::OutputConfig;
    use sim::{Effect, Time, Timers};

    const JM: NodeId = NodeId(0);
    /// The TaskExecutors of the upstream producers (one per input channel).
    const UPSTREAM: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
    const DOWNSTREAM: NodeId = NodeId(4);
    const ME: NodeId = NodeId(5);
    const STORAGE: NodeId = NodeId(8);
    const SINK: NodeId = NodeId(9);
    const JOB: JobId = 42;

    type Effects = Vec<Effect<Flink>>;

    /// Drives one StreamTask by hand in detached contexts and returns each step's effects.
    struct Harness {
        task: StreamTask,
        rng: sim::Rng,
        timers: Timers,
        now: Time,
    }

    impl Harness {
        /// A task of vertex 1, subtask 0, with `inputs` input channels (none: a source).
        fn new(cfg: StreamConfig, inputs: usize, bugs: Bugs) -> Harness {
            let mut h = Harness {
                task: StreamTask::new(
                    me(),
                    JOB,
                    0,
                    Arc::new(cfg),
                    UPSTREAM[..inputs].to_vec(),
                    inputs == 0,
                    None,
                    JM,
                    bugs,
                    Duration::from_secs(10),
                ),
                rng: sim::rng::stream(7, "stream-task-test", 0),
                timers: Timers::default(),
                now: Time::ZERO,
            };
            let (out, initialized) = h.step(|t, ctx| t.start_initialize(ctx));
            let has_2pc_writer = h
                .task
                .writer
                .as_ref()
                .is_some_and(|w| w.kind == SinkKind::TwoPhaseCommit);
            if has_2pc_writer {
                assert!(!initialized, "a 2PC writer waits for initTransactions");
                assert_eq!(
                    to_sink(&out),
                    vec![&SinkRpc::InitTransactions {
                        writer: me(),
                        job_id: JOB,
                        subtask: 0,
                        commit: vec![],
                        abort_lingering: !bugs.has(Bug::NoAbortOfLingeringTransactions),
                    }]
                );
            } else {
                assert!(initialized, "nothing to restore: initialised at once");
                assert!(out.is_empty(), "{out:?}");
            }
            h
        }

        fn step<R>(
            &mut self,
            f: impl FnOnce(&mut StreamTask, &mut Ctx<'_, Flink>) -> R,
        ) -> (Effects, R) {
            let mut out = Vec::new();
            let r = {
                let mut ctx =
                    Ctx::detached(ME, self.now, &mut self.rng, &mut self.timers, &mut out);
                f(&mut self.task, &mut ctx)
            };
            assert!(
                !out.iter().any(|e| matches!(e, Effect::SetTimer { .. })),
                "the stream side sets no timers (the task owns the tick)"
            );
            (out, r)
        }

        fn batch(&mut self, channel: usize, seq: u64, elements: &[StreamElement]) -> Effects {
            let elements: Arc<[StreamElement]> = elements.into();
            self.step(|t, ctx| t.on_data_batch(ctx, channel, producer(channel), seq, elements))
                .0
        }

        fn written(&mut self, handle: StateHandleId) -> Effects {
            self.step(|t, ctx| t.on_state_written(ctx, handle)).0
        }
    }

    fn me() -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 3,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(1),
                subtask: 0,
            },
            attempt: 0,
        }
    }

    fn producer(subtask: usize) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 3,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(0),
                subtask: subtask as u32,
            },
            attempt: 0,
        }
    }

    fn consumer(subtask: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 3,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(2),
                subtask,
            },
            attempt: 0,
        }
    }

    fn config(
        chain: Vec<ChainedOperator>,
        output: Option<OutputConfig>,
        checkpointing: Option<CheckpointingMode>,
    ) -> StreamConfig {
        StreamConfig {
            chain,
            output,
            parallelism: 1,
            max_parallelism: 128,
            checkpointing,
            checkpoint_storage: Some(STORAGE),
            sink: Some(SINK),
        }
    }

    fn rec(i: u64) -> Rec {
        Rec::Record(Record {
            partition: 0,
            offset: i,
            key: 100 + i,
            value: i,
        })
    }

    fn r(i: u64) -> StreamElement {
        StreamElement::Record(rec(i))
    }

    fn barrier(checkpoint_id: CheckpointId) -> StreamElement {
        StreamElement::Barrier {
            checkpoint_id,
            timestamp_ms: 1_000 * checkpoint_id,
        }
    }

    fn handle(checkpoint_id: CheckpointId) -> StateHandleId {
        StateHandleId {
            job_id: JOB,
            checkpoint_id,
            attempt: me(),
        }
    }

    /// The keyed state a count holds after one record each of `records`.
    fn counted(records: &[u64]) -> Vec<(u32, u64, u64)> {
        let mut v: Vec<(u32, u64, u64)> = records
            .iter()
            .map(|i| (key_group_for_key(100 + i, 128), 100 + i, 1))
            .collect();
        v.sort_unstable();
        v
    }

    fn sent(out: &Effects) -> Vec<(NodeId, &Msg)> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg } => Some((*to, msg)),
                _ => None,
            })
            .collect()
    }

    fn to_job_master(out: &Effects) -> Vec<&JobMasterRpc> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::JobMaster { job_id, rpc } => {
                    assert_eq!(to, JM);
                    assert_eq!(*job_id, JOB);
                    Some(rpc)
                }
                _ => None,
            })
            .collect()
    }

    fn acks(out: &Effects) -> Vec<CheckpointId> {
        to_job_master(out)
            .into_iter()
            .filter_map(|m| match m {
                JobMasterRpc::AcknowledgeCheckpoint {
                    attempt,
                    checkpoint_id,
                    handle: h,
                } => {
                    assert_eq!(*attempt, me());
                    assert_eq!(*h, handle(*checkpoint_id));
                    Some(*checkpoint_id)
                }
                _ => None,
            })
            .collect()
    }

    fn declines(out: &Effects) -> Vec<(CheckpointId, &'static str)> {
        to_job_master(out)
            .into_iter()
            .filter_map(|m| match m {
                JobMasterRpc::DeclineCheckpoint {
                    attempt,
                    checkpoint_id,
                    reason,
                } => {
                    assert_eq!(*attempt, me());
                    Some((*checkpoint_id, *reason))
                }
                _ => None,
            })
            .collect()
    }

    /// The state writes to checkpoint storage.
    fn state_writes(out: &Effects) -> Vec<(StateHandleId, Arc<TaskStateSnapshot>)> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::CheckpointStorage(CheckpointStorageRpc::Write { handle, state }) => {
                    assert_eq!(to, STORAGE);
                    Some((*handle, Arc::clone(state)))
                }
                _ => None,
            })
            .collect()
    }

    fn to_sink(out: &Effects) -> Vec<&SinkRpc> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::Sink(s) => {
                    assert_eq!(to, SINK);
                    Some(s)
                }
                _ => None,
            })
            .collect()
    }

    /// The snapshots traced: (checkpoint, digest).
    fn snapshots_taken(
        out: &Effects,
    ) -> Vec<(CheckpointId, crate::protocol::checkpoint::StateDigest)> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Trace(Obs::SnapshotTaken {
                    job_id,
                    checkpoint_id,
                    attempt,
                    state,
                }) => {
                    assert_eq!(*job_id, JOB);
                    assert_eq!(*attempt, me());
                    Some((*checkpoint_id, state.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The progress reported on input channel `c`: (received, consumed).
    fn progress(out: &Effects, c: usize) -> Vec<(u64, u64)> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                    producer: p,
                    consumer,
                    received,
                    consumed,
                }) if *p == producer(c) => {
                    assert_eq!(to, UPSTREAM[c]);
                    assert_eq!(*consumer, me());
                    Some((*received, *consumed))
                }
                _ => None,
            })
            .collect()
    }

    /// The buffers sent downstream: (consumer subtask, seq, elements).
    fn buffers(out: &Effects) -> Vec<(u32, u64, Arc<[StreamElement]>)> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                    producer: p,
                    consumer,
                    seq,
                    elements,
                }) => {
                    assert_eq!(to, DOWNSTREAM);
                    assert_eq!(*p, me());
                    Some((consumer.vertex.subtask, *seq, Arc::clone(elements)))
                }
                _ => None,
            })
            .collect()
    }

    fn count_task(mode: CheckpointingMode, inputs: usize, bugs: Bugs) -> Harness {
        Harness::new(
            config(vec![ChainedOperator::Count], None, Some(mode)),
            inputs,
            bugs,
        )
    }

    #[test]
    fn exactly_once_alignment_holds_post_barrier_records_out_of_the_snapshot() {
        use CheckpointingMode::*;
        // (mode, bugs, consumed on channel 0 before the alignment completes, records in the
        // snapshot of checkpoint 1)
        let table: &[(CheckpointingMode, Bugs, u64, &[u64])] = &[
            (ExactlyOnce, Bugs::NONE, 0, &[1, 3]),
            (AtLeastOnce, Bugs::NONE, 1, &[1, 2, 3]),
            (
                ExactlyOnce,
                Bugs::NONE.with(Bug::NoBarrierAlignment),
                1,
                &[1, 2, 3],
            ),
        ];
        for &(mode, bugs, consumed, in_snapshot) in table {
            let what = format!("{mode:?} {bugs:?}");
            let mut h = count_task(mode, 2, bugs);
            // Record 2 comes after barrier 1 on channel 0.
            let out = h.batch(0, 0, &[r(1), barrier(1), r(2)]);
            assert!(snapshots_taken(&out).is_empty(), "{what}");
            assert!(state_writes(&out).is_empty(), "{what}");
            assert_eq!(
                progress(&out, 0),
                vec![(1, consumed)],
                "{what}: an aligned channel holds the rest of its buffer"
            );

            let out = h.batch(1, 0, &[r(3), barrier(1)]);
            let taken = snapshots_taken(&out);
            assert_eq!(taken.len(), 1, "{what}: one snapshot");
            assert_eq!(taken[0].0, 1);
            let writes = state_writes(&out);
            assert_eq!(writes.len(), 1, "{what}");
            assert_eq!(writes[0].0, handle(1));
            assert_eq!(writes[0].1.keyed_counts, counted(in_snapshot), "{what}");
            assert_eq!(writes[0].1.digest(), taken[0].1, "{what}: traced = written");
            // A held record is processed once the alignment is over.
            let held: Vec<(u64, u64)> = if consumed == 0 { vec![(1, 1)] } else { vec![] };
            assert_eq!(progress(&out, 0), held, "{what}");
            assert!(acks(&out).is_empty(), "{what}: not durable yet");

            let out = h.written(handle(1));
            assert_eq!(acks(&out), vec![1], "{what}");
            assert_eq!(h.task.counts.len(), 3, "{what}: every record counted once");
            // A repeated answer does not acknowledge twice.
            assert!(h.written(handle(1)).is_empty(), "{what}");
        }
    }

    #[test]
    fn a_newer_barrier_during_alignment_declines_the_older_checkpoint() {
        let mut h = count_task(CheckpointingMode::ExactlyOnce, 2, Bugs::NONE);
        let out = h.batch(0, 0, &[r(1), barrier(1)]);
        assert!(to_job_master(&out).is_empty());
        // Channel 1's producer never saw checkpoint 1.
        let out = h.batch(1, 0, &[r(2), barrier(2), r(3)]);
        assert_eq!(declines(&out), vec![(1, "CHECKPOINT_DECLINED_SUBSUMED")]);
        assert!(snapshots_taken(&out).is_empty());
        assert!(state_writes(&out).is_empty());

        let out = h.batch(0, 1, &[r(4), barrier(2)]);
        let taken = snapshots_taken(&out);
        assert_eq!(taken.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2]);
        let writes = state_writes(&out);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].0, handle(2));
        assert_eq!(writes[0].1.keyed_counts, counted(&[1, 2, 4]));
        assert!(declines(&out).is_empty());
    }

    #[test]
    fn a_stale_barrier_of_a_subsumed_checkpoint_does_not_end_the_newer_alignment() {
        let mut h = count_task(CheckpointingMode::ExactlyOnce, 3, Bugs::NONE);
        h.batch(0, 0, &[barrier(1)]);
        // Channel 1's producer missed checkpoint 1: barrier 2 subsumes it.
        let out = h.batch(1, 0, &[barrier(2), r(9)]);
        assert_eq!(declines(&out), vec![(1, "CHECKPOINT_DECLINED_SUBSUMED")]);
        // Channel 2 still delivers the barrier of the declined checkpoint 1. It must be
        // ignored: checkpoint 1 is gone and channel 1 stays blocked for checkpoint 2.
        let out = h.batch(2, 0, &[barrier(1)]);
        assert!(
            snapshots_taken(&out).is_empty(),
            "a declined checkpoint is snapshotted: {:?}",
            snapshots_taken(&out)
        );
        assert_eq!(progress(&out, 1), vec![], "channel 1 stays blocked");
        h.batch(0, 1, &[barrier(2)]);
        let out = h.batch(2, 1, &[barrier(2)]);
        let writes = state_writes(&out);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].0, handle(2));
        assert_eq!(
            writes[0].1.keyed_counts,
            counted(&[]),
            "record 9 came after barrier 2 on channel 1"
        );
    }

    fn rebalance_task() -> Harness {
        let output = OutputConfig {
            partitioner: Partitioner::Rebalance,
            key_by: None,
            consumer_parallelism: 2,
            consumer_max_parallelism: 128,
        };
        let mut h = Harness::new(config(vec![], Some(output), None), 1, Bugs::NONE);
        for s in 0..2 {
            let out = h
                .step(|t, ctx| t.on_consumer(ctx, consumer(s), DOWNSTREAM))
                .0;
            assert!(out.is_empty(), "nothing to send yet");
        }
        h
    }

    /// A buffer by (consumer subtask, seq).
    type BufferId = (u32, u64);

    /// (consumer, seq) of each buffer.
    fn seqs(out: &Effects) -> Vec<BufferId> {
        buffers(out).into_iter().map(|(c, s, _)| (c, s)).collect()
    }

    #[test]
    fn output_sends_at_most_the_credit_per_consumer() {
        let mut h = rebalance_task();
        let n = 6 * BATCH_MAX as u64; // three full buffers per consumer
        let input: Vec<StreamElement> = (0..n).map(r).collect();
        let out = h.batch(0, 0, &input);
        let sent = buffers(&out);
        assert_eq!(
            seqs(&out),
            vec![(0, 0), (0, 1), (1, 0), (1, 1)],
            "BUFFERS_PER_CHANNEL = {BUFFERS_PER_CHANNEL} buffers each"
        );
        // Rebalance alternates, starting at the producer's subtask.
        let first: Vec<StreamElement> = (0..BATCH_MAX as u64).map(|i| r(2 * i)).collect();
        assert_eq!(&*sent[0].2, first.as_slice());
        assert!(sent.iter().all(|(_, _, e)| e.len() == BATCH_MAX));

        // (consumer, received, consumed, buffers sent on that progress)
        let table: &[(u32, u64, u64, &[BufferId])] = &[
            (0, 2, 0, &[]),       // received, but no buffer recycled: no credit
            (0, 2, 1, &[(0, 2)]), // one recycled: one more
            (0, 3, 3, &[]),       // nothing left for consumer 0
            (1, 1, 1, &[(1, 2)]),
            (1, 3, 3, &[]),
        ];
        for &(c, received, consumed, expected) in table {
            let out = h
                .step(|t, ctx| t.on_channel_progress(ctx, consumer(c), received, consumed))
                .0;
            assert_eq!(seqs(&out), expected, "progress {c} {received}/{consumed}");
        }
        assert!(!h.task.output_pending());
        // Progress from an attempt that did not request the subpartition is ignored.
        let stranger = ExecutionAttemptId {
            attempt: 1,
            ..consumer(0)
        };
        let out = h
            .step(|t, ctx| t.on_channel_progress(ctx, stranger, 9, 9))
            .0;
        assert!(out.is_empty());
    }

    #[test]
    fn tick_resends_unacknowledged_buffers_of_channels_without_progress() {
        let mut h = rebalance_task();
        let input: Vec<StreamElement> = (0..4 * BATCH_MAX as u64).map(r).collect();
        let out = h.batch(0, 0, &input);
        assert_eq!(seqs(&out), vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert!(h.task.needs_tick());

        // (progress before the tick as (consumer, buffers received), buffers the tick re-sends)
        let table: &[(Option<BufferId>, &[BufferId])] = &[
            (None, &[(0, 0), (0, 1), (1, 0), (1, 1)]),
            (Some((0, 1)), &[(1, 0), (1, 1)]), // consumer 0 made progress: not re-sent
            (None, &[(0, 1), (1, 0), (1, 1)]), // and now it did not
            (Some((1, 2)), &[(0, 1)]),
            (Some((0, 2)), &[]),
        ];
        for &(before, resent) in table {
            if let Some((c, received)) = before {
                let out = h
                    .step(|t, ctx| t.on_channel_progress(ctx, consumer(c), received, 0))
                    .0;
                assert!(buffers(&out).is_empty(), "no credit: consumed is 0");
            }
            let out = h.step(|t, ctx| t.tick(ctx)).0;
            assert_eq!(seqs(&out), resent, "after {before:?}");
        }
        assert!(!h.task.needs_tick());
    }

    fn two_phase_commit_task(bugs: Bugs) -> (Harness, TxnId) {
        let mut h = Harness::new(
            config(
                vec![ChainedOperator::Sink(SinkKind::TwoPhaseCommit)],
                None,
                Some(CheckpointingMode::ExactlyOnce),
            ),
            1,
            bugs,
        );
        // Input before initTransactions answered waits.
        let out = h.batch(0, 0, &[r(1), r(2)]);
        assert!(
            to_sink(&out).is_empty(),
            "no writes before initTransactions"
        );
        let (out, initialized) = h.step(|t, ctx| t.on_transactions_initialized(ctx, 3));
        assert!(initialized);
        assert!(h.task.is_initialized());
        assert!(out.is_empty(), "{out:?}");
        let txn = TxnId {
            job_id: JOB,
            subtask: 0,
            epoch: 3,
            n: 0,
        };
        let out = h.step(|t, ctx| t.process(ctx)).0;
        assert_eq!(
            to_sink(&out),
            vec![&SinkRpc::Write {
                writer: me(),
                job_id: JOB,
                subtask: 0,
                seq: 0,
                txn: Some(txn),
                records: vec![rec(1), rec(2)].into(),
            }]
        );
        (h, txn)
    }

    #[derive(Clone, Copy, Debug)]
    enum Answer {
        StateWritten,
        PreCommitted,
    }

    #[test]
    fn two_phase_commit_acks_after_pre_commit_and_state_and_commits_on_notify() {
        use Answer::*;
        for order in [[StateWritten, PreCommitted], [PreCommitted, StateWritten]] {
            let (mut h, txn) = two_phase_commit_task(Bugs::NONE);
            let out = h.batch(0, 1, &[barrier(1)]);
            let writes = state_writes(&out);
            assert_eq!(writes.len(), 1);
            assert_eq!(writes[0].1.pending_transactions, vec![(1, txn)]);
            assert!(
                to_sink(&out).is_empty(),
                "pre-commit waits for the write's ack"
            );

            let out = h.step(|t, ctx| t.on_sink_write_ack(ctx, 1)).0;
            assert_eq!(
                to_sink(&out),
                vec![&SinkRpc::PreCommit {
                    writer: me(),
                    txn,
                    checkpoint_id: 1
                }]
            );
            assert!(acks(&out).is_empty());

            for (i, answer) in order.iter().enumerate() {
                let out = match answer {
                    StateWritten => h.written(handle(1)),
                    PreCommitted => h.step(|t, ctx| t.on_pre_committed(ctx, txn)).0,
                };
                let expected: Vec<CheckpointId> = if i == 1 { vec![1] } else { vec![] };
                assert_eq!(acks(&out), expected, "{order:?} after {answer:?}");
                assert!(
                    to_sink(&out).is_empty(),
                    "no commit before the notification"
                );
            }
            // Records after the barrier go to the next transaction.
            let out = h.batch(0, 2, &[r(3)]);
            let next = TxnId { n: 1, ..txn };
            assert!(matches!(
                to_sink(&out)[..],
                [SinkRpc::Write { seq: 1, txn: Some(t), .. }] if *t == next
            ));

            let out = h.step(|t, ctx| t.on_notify_complete(ctx, 1)).0;
            assert_eq!(to_sink(&out), vec![&SinkRpc::Commit { writer: me(), txn }]);
            h.step(|t, ctx| t.on_committed(ctx, txn));
            assert!(h.task.writer.as_ref().unwrap().pending.is_empty());
        }
    }

    #[test]
    fn sink_commit_on_barrier_commits_before_the_checkpoint_completes() {
        let (mut h, txn) = two_phase_commit_task(Bugs::NONE.with(Bug::SinkCommitOnBarrier));
        h.batch(0, 1, &[barrier(1)]);
        h.step(|t, ctx| t.on_sink_write_ack(ctx, 1));
        let out = h.step(|t, ctx| t.on_pre_committed(ctx, txn)).0;
        assert_eq!(
            to_sink(&out),
            vec![&SinkRpc::Commit { writer: me(), txn }],
            "committed without notifyCheckpointComplete"
        );
    }

    #[test]
    fn two_phase_commit_puts_records_before_the_barrier_into_its_checkpoint() {
        let (mut h, txn) = two_phase_commit_task(Bugs::NONE);
        h.step(|t, ctx| t.on_sink_write_ack(ctx, 1));
        // Record 3 precedes barrier 1 in the same buffer: it belongs to checkpoint 1.
        let out = h.batch(0, 1, &[r(3), barrier(1)]);
        let writes = state_writes(&out);
        assert_eq!(writes.len(), 1);
        let sink_writes: Vec<Option<TxnId>> = to_sink(&out)
            .into_iter()
            .filter_map(|s| match s {
                SinkRpc::Write { txn, .. } => Some(*txn),
                _ => None,
            })
            .collect();
        assert_eq!(
            sink_writes,
            vec![Some(txn)],
            "record 3 is written into the transaction of checkpoint 1"
        );
        assert_eq!(writes[0].1.pending_transactions, vec![(1, txn)]);
    }

    fn at_least_once_sink_task() -> Harness {
        Harness::new(
            config(
                vec![ChainedOperator::Sink(SinkKind::AtLeastOnce)],
                None,
                Some(CheckpointingMode::AtLeastOnce),
            ),
            1,
            Bugs::NONE,
        )
    }

    #[test]
    fn at_least_once_sink_acks_only_after_its_writes_before_the_barrier_are_taken() {
        let mut h = at_least_once_sink_task();
        let out = h.batch(0, 0, &[r(1)]);
        assert!(matches!(
            to_sink(&out)[..],
            [SinkRpc::Write {
                seq: 0,
                txn: None,
                ..
            }]
        ));
        let out = h.batch(0, 1, &[barrier(1)]);
        assert_eq!(state_writes(&out).len(), 1);
        let out = h.written(handle(1));
        assert!(
            acks(&out).is_empty(),
            "the write of record 1 is not taken yet"
        );
        let out = h.step(|t, ctx| t.on_sink_write_ack(ctx, 1)).0;
        assert_eq!(acks(&out), vec![1]);
    }

    #[test]
    fn at_least_once_sink_waits_for_records_in_the_barriers_buffer() {
        let mut h = at_least_once_sink_task();
        let out = h.batch(0, 0, &[r(1), barrier(1)]);
        assert_eq!(state_writes(&out).len(), 1);
        assert_eq!(to_sink(&out).len(), 1, "record 1 is written");
        let out = h.written(handle(1));
        assert!(
            acks(&out).is_empty(),
            "acknowledged before the sink took record 1"
        );
        let out = h.step(|t, ctx| t.on_sink_write_ack(ctx, 1)).0;
        assert_eq!(acks(&out), vec![1]);
    }

    fn source_task(bugs: Bugs) -> Harness {
        Harness::new(
            config(vec![], None, Some(CheckpointingMode::ExactlyOnce)),
            0,
            bugs,
        )
    }

    #[test]
    fn offsets_not_in_snapshot_writes_a_state_without_offsets() {
        let offsets = vec![(0, 5), (1, 7)];
        // (bugs, offsets written to checkpoint storage)
        let table = [
            (Bugs::NONE, offsets.clone()),
            (Bugs::NONE.with(Bug::OffsetsNotInSnapshot), vec![]),
        ];
        for (bugs, written) in table {
            let mut h = source_task(bugs);
            let o = offsets.clone();
            let out = h.step(|t, ctx| t.on_trigger(ctx, 1, 1_000, o)).0;
            let taken = snapshots_taken(&out);
            assert_eq!(taken.len(), 1);
            assert_eq!(taken[0].1.source_offsets, offsets, "{bugs:?}: the truth");
            let writes = state_writes(&out);
            assert_eq!(writes.len(), 1);
            assert_eq!(writes[0].1.source_offsets, written, "{bugs:?}");
        }
    }

    #[test]
    fn ack_before_snapshot_durable_acks_without_the_state_written() {
        // (bugs, acked on the trigger, acked on the state written)
        let table = [
            (Bugs::NONE, vec![], vec![1]),
            (
                Bugs::NONE.with(Bug::AckBeforeSnapshotDurable),
                vec![1],
                vec![],
            ),
        ];
        for (bugs, on_trigger, on_written) in table {
            let mut h = source_task(bugs);
            let out = h.step(|t, ctx| t.on_trigger(ctx, 1, 1_000, vec![(0, 3)])).0;
            assert_eq!(state_writes(&out).len(), 1, "{bugs:?}");
            assert_eq!(acks(&out), on_trigger, "{bugs:?}");
            let out = h.written(handle(1));
            assert_eq!(acks(&out), on_written, "{bugs:?}");
        }
    }

    #[test]
    fn a_source_ignores_a_trigger_of_an_old_checkpoint() {
        let mut h = source_task(Bugs::NONE);
        // (checkpoint triggered, whether it is snapshotted)
        for (id, taken) in [(2, true), (1, false), (2, false), (3, true)] {
            let out = h.step(|t, ctx| t.on_trigger(ctx, id, 0, vec![])).0;
            let ids: Vec<CheckpointId> = snapshots_taken(&out).iter().map(|t| t.0).collect();
            let expected = if taken { vec![id] } else { vec![] };
            assert_eq!(ids, expected, "trigger {id}");
        }
    }
}
