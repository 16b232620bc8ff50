//! The `sink` node: a transactional store (Kafka-like) that holds the job's observable output.
//!
//! It owns transactions and what is committed. Per sink subtask it keeps a producer *epoch*:
//! `initTransactions` of a (restored) writer commits the transactions the writer's checkpoint
//! says were pre-committed for a completed checkpoint, aborts every other unfinished transaction
//! of the subtask (Flink's abort of lingering transactions), and fences older epochs, whose
//! writes, pre-commits and commits are refused (`ProducerFencedException`). Writes carry a
//! per-writer sequence number and are taken once each, in order (Kafka's idempotent producer),
//! so a re-sent write never duplicates output. Commit is idempotent by transaction id.
//!
//! Everything here is durable: a sink crash loses nothing that was answered.

use crate::process::ProcessDurable;
use crate::protocol::checkpoint::{CheckpointId, Rec, Recs, TxnId};
use crate::protocol::durable::DurableOp;
use crate::protocol::durable::SinkOp;
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{Msg, SinkRpc, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Open,
    PreCommitted(CheckpointId),
    Committed,
    Aborted,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Txn {
    pub state: TxnState,
    pub checkpoint_id: Option<CheckpointId>,
    /// The writes' records, shared with the writes (not copied until the commit; dropped by
    /// it).
    pub records: Vec<Recs>,
}

impl Txn {
    /// How many records the transaction holds.
    pub fn len(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.records.iter().all(|r| r.is_empty())
    }

    /// The records in write order.
    pub fn all_records(&self) -> Vec<Rec> {
        self.records
            .iter()
            .flat_map(|r| r.iter().copied())
            .collect()
    }
}

/// The sink's durable content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkData {
    /// The current producer epoch per (job, sink subtask).
    pub epochs: BTreeMap<(JobId, u32), u64>,
    /// Per writer: the sequence number of the next write it takes.
    pub writers: BTreeMap<ExecutionAttemptId, u64>,
    /// The epoch each writer's `initTransactions` got (a repeated request gets the same).
    pub inits: BTreeMap<ExecutionAttemptId, u64>,
    pub txns: BTreeMap<TxnId, Txn>,
    /// Records committed (or written by an at-least-once writer), in commit order.
    pub committed: u64,
}

impl SinkData {
    pub fn apply(&mut self, op: SinkOp) {
        match op {
            SinkOp::Epoch {
                job_id,
                subtask,
                epoch,
                writer,
            } => {
                // Epochs only grow, and a writer gets one.
                assert!(epoch > self.epoch(job_id, subtask));
                assert!(!self.inits.contains_key(&writer));
                self.epochs.insert((job_id, subtask), epoch);
                self.inits.insert(writer, epoch);
            }
            SinkOp::Write {
                writer,
                txn,
                records,
            } => {
                // A writer flushes only a non-empty buffer.
                assert!(!records.is_empty());
                if let Some(t) = txn {
                    // Writes go into open transactions only (fenced and aborted ones refuse).
                    assert!(self.txns.get(&t).is_none_or(|x| x.state == TxnState::Open));
                }
                *self.writers.entry(writer).or_insert(0) += 1;
                match txn {
                    Some(t) => self.txn_mut(t).records.push(records),
                    None => self.committed += records.len() as u64,
                }
            }
            SinkOp::PreCommit { txn, checkpoint_id } => {
                let t = self.txn_mut(txn);
                // Pre-committed once, from open.
                assert_eq!(t.state, TxnState::Open);
                t.state = TxnState::PreCommitted(checkpoint_id);
                // Checkpoint 0 is the end-of-input commit of a job without checkpoints.
                t.checkpoint_id = (checkpoint_id > 0).then_some(checkpoint_id);
            }
            SinkOp::Commit { txn } => {
                let t = self.txn_mut(txn);
                // Committed once; an aborted transaction's data is gone.
                assert!(matches!(
                    t.state,
                    TxnState::Open | TxnState::PreCommitted(_)
                ));
                t.state = TxnState::Committed;
                let n = t.len() as u64;
                // Committed records are the external system's output now: the store need not
                // keep them per transaction (a repeated commit changes nothing).
                t.records = Vec::new();
                self.committed += n;
            }
            SinkOp::Abort { txn } => {
                let t = self.txn_mut(txn);
                // A committed transaction is never aborted (nor re-opened).
                assert!(matches!(
                    t.state,
                    TxnState::Open | TxnState::PreCommitted(_)
                ));
                t.state = TxnState::Aborted;
                t.records = Vec::new();
            }
        }
    }

    fn txn_mut(&mut self, txn: TxnId) -> &mut Txn {
        self.txns.entry(txn).or_insert(Txn {
            state: TxnState::Open,
            checkpoint_id: None,
            records: Vec::new(),
        })
    }

    fn epoch(&self, job_id: JobId, subtask: u32) -> u64 {
        self.epochs.get(&(job_id, subtask)).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct SinkStore {
    data: SinkData,
}

impl SinkStore {
    /// The node as it (re)starts from its durable state.
    pub fn new(durable: &ProcessDurable) -> SinkStore {
        // The durable content is consistent: a settled transaction keeps no records.
        let data = &durable.sink;
        debug_assert!(data.txns.values().all(|t| {
            matches!(t.state, TxnState::Open | TxnState::PreCommitted(_)) || t.records.is_empty()
        }));
        SinkStore {
            data: durable.sink.clone(),
        }
    }

    pub fn data(&self) -> &SinkData {
        &self.data
    }

    fn change(&mut self, ctx: &mut Ctx<'_, Flink>, op: SinkOp) {
        let committed = self.data.committed;
        self.data.apply(op.clone());
        // Output once committed stays committed.
        assert!(self.data.committed >= committed);
        ctx.persist(DurableOp::Sink(op));
    }

    fn reply(ctx: &mut Ctx<'_, Flink>, to: NodeId, rpc: TaskExecutorRpc) {
        ctx.send(to, Msg::TaskExecutor(rpc));
    }

    fn fenced(&self, txn: TxnId) -> bool {
        txn.epoch < self.data.epoch(txn.job_id, txn.subtask)
    }

    /// Commits `txn` if it can be: returns false for an aborted transaction (its data is gone).
    fn commit(&mut self, ctx: &mut Ctx<'_, Flink>, txn: TxnId) -> bool {
        let state = self.data.txns.get(&txn).map(|t| t.state);
        match state {
            Some(TxnState::Committed) => true,
            Some(TxnState::Aborted) => {
                ctx.trace(Obs::CommitOfAbortedTransaction { txn });
                false
            }
            // An empty transaction (no write reached the sink) commits as empty.
            None | Some(TxnState::Open) | Some(TxnState::PreCommitted(_)) => {
                let records: Arc<[Rec]> = self
                    .data
                    .txns
                    .get(&txn)
                    .map_or_else(|| Arc::from([]), |t| Arc::from(t.all_records()));
                self.change(ctx, SinkOp::Commit { txn });
                let t = &self.data.txns[&txn];
                // The committed records are the output now, no longer the transaction's.
                assert!(t.state == TxnState::Committed && t.records.is_empty());
                ctx.trace(Obs::TransactionCommitted {
                    txn,
                    checkpoint_id: t.checkpoint_id,
                    records,
                });
                true
            }
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: SinkRpc) {
        match rpc {
            SinkRpc::InitTransactions {
                writer,
                job_id,
                subtask,
                commit,
                abort_lingering,
            } => {
                // Restored transactions belong to completed checkpoints (never the
                // checkpoint-less end-of-input commit).
                debug_assert!(commit.iter().all(|(c, _)| *c > 0));
                if let Some(&epoch) = self.data.inits.get(&writer) {
                    assert!(epoch <= self.data.epoch(job_id, subtask));
                    // A re-sent request (its answer was lost): the same answer, nothing redone.
                    return Self::reply(
                        ctx,
                        from,
                        TaskExecutorRpc::TransactionsInitialized { writer, epoch },
                    );
                }
                for (_, txn) in &commit {
                    self.commit(ctx, *txn);
                }
                if abort_lingering {
                    self.abort_lingering(ctx, job_id, subtask);
                }
                self.start_epoch(ctx, from, writer, job_id, subtask);
                // The new writer holds the subtask's current epoch.
                assert_eq!(
                    self.data.inits.get(&writer).copied(),
                    Some(self.data.epoch(job_id, subtask))
                );
                // The restored transactions are settled: committed, or aborted earlier.
                debug_assert!(commit.iter().all(|(_, t)| matches!(
                    self.data.txns.get(t).map(|x| x.state),
                    Some(TxnState::Committed | TxnState::Aborted)
                )));
            }
            SinkRpc::Write {
                writer,
                job_id,
                subtask: _,
                seq,
                txn,
                records,
            } => {
                if let Some(t) = txn {
                    // A writer's transactions are its job's.
                    assert_eq!(t.job_id, job_id);
                    let aborted = self
                        .data
                        .txns
                        .get(&t)
                        .is_some_and(|x| x.state == TxnState::Aborted);
                    if self.fenced(t) || aborted {
                        return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
                    }
                }
                let next = self.data.writers.get(&writer).copied().unwrap_or(0);
                if seq == next {
                    self.take_write(ctx, writer, job_id, txn, records);
                    // Taken once, in sequence.
                    assert_eq!(self.data.writers.get(&writer), Some(&(next + 1)));
                }
                // A repeat or a write after a gap: tell the writer where it stands.
                let next_seq = self.data.writers.get(&writer).copied().unwrap_or(0);
                Self::reply(
                    ctx,
                    from,
                    TaskExecutorRpc::SinkWriteAck { writer, next_seq },
                );
            }
            SinkRpc::PreCommit {
                writer,
                txn,
                checkpoint_id,
            } => self.pre_commit(ctx, from, writer, txn, checkpoint_id),
            SinkRpc::Commit { writer, txn } => {
                if self.fenced(txn) {
                    return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
                }
                let ok = self.commit(ctx, txn);
                assert!(!ok || self.data.txns[&txn].state == TxnState::Committed);
                Self::reply(ctx, from, TaskExecutorRpc::Committed { writer, txn, ok });
            }
        }
    }

    /// `initTransactions` with the abort of lingering transactions: every open or pre-committed
    /// transaction of the subtask is aborted.
    fn abort_lingering(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId, subtask: u32) {
        let lingering: Vec<TxnId> = self
            .data
            .txns
            .iter()
            .filter(|(t, x)| {
                t.job_id == job_id
                    && t.subtask == subtask
                    && matches!(x.state, TxnState::Open | TxnState::PreCommitted(_))
            })
            .map(|(t, _)| *t)
            .collect();
        for txn in lingering {
            self.change(ctx, SinkOp::Abort { txn });
            ctx.trace(Obs::TransactionAborted { txn });
        }
        debug_assert!(self.data.txns.iter().all(|(t, x)| t.job_id != job_id
            || t.subtask != subtask
            || matches!(x.state, TxnState::Committed | TxnState::Aborted)));
    }

    /// The end of `initTransactions`: the subtask's next producer epoch, given to `writer`.
    fn start_epoch(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        writer: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
    ) {
        // Re-sent requests were answered before: a writer starts one epoch.
        assert!(!self.data.inits.contains_key(&writer));
        let epoch = self.data.epoch(job_id, subtask) + 1;
        self.change(
            ctx,
            SinkOp::Epoch {
                job_id,
                subtask,
                epoch,
                writer,
            },
        );
        Self::reply(
            ctx,
            from,
            TaskExecutorRpc::TransactionsInitialized { writer, epoch },
        );
    }

    /// Takes the writer's next write (its sequence number is the expected one).
    fn take_write(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        writer: ExecutionAttemptId,
        job_id: JobId,
        txn: Option<TxnId>,
        records: Recs,
    ) {
        if let Some(t) = txn {
            if !self.data.txns.contains_key(&t) {
                ctx.trace(Obs::TransactionBegun { txn: t });
            }
        } else {
            ctx.trace(Obs::RecordsWritten {
                job_id,
                records: Arc::clone(&records),
            });
        }
        self.change(
            ctx,
            SinkOp::Write {
                writer,
                txn,
                records,
            },
        );
    }

    /// A pre-commit of `txn`: refused when fenced or aborted, taken once (a repeat changes
    /// nothing).
    fn pre_commit(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        writer: ExecutionAttemptId,
        txn: TxnId,
        checkpoint_id: CheckpointId,
    ) {
        if self.fenced(txn) {
            return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
        }
        let state = self.data.txns.get(&txn).map(|t| t.state);
        match state {
            None | Some(TxnState::Open) => {
                if state.is_none() {
                    ctx.trace(Obs::TransactionBegun { txn });
                }
                self.change(ctx, SinkOp::PreCommit { txn, checkpoint_id });
                assert_eq!(
                    self.data.txns[&txn].state,
                    TxnState::PreCommitted(checkpoint_id)
                );
                ctx.trace(Obs::TransactionPreCommitted { txn, checkpoint_id });
            }
            Some(TxnState::Aborted) => {
                return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
            }
            // A repeated pre-commit, or one that crossed the commit.
            Some(TxnState::PreCommitted(c)) => {
                // A transaction is pre-committed for one checkpoint.
                assert_eq!(c, checkpoint_id);
            }
            Some(TxnState::Committed) => {}
        }
        Self::reply(ctx, from, TaskExecutorRpc::PreCommitted { writer, txn });
    }
}

#[cfg(test)]
mod tests;
