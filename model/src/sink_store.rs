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

use crate::checkpoint::{CheckpointId, Rec, Recs, TxnId};
use crate::ids::{ExecutionAttemptId, JobId};
use crate::obs::Obs;
use crate::process::{DurableOp, Process, ProcessDurable};
use crate::rpc::{Msg, SinkRpc, TaskExecutorRpc};
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
    pub records: Vec<Rec>,
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

/// A change to the sink's content.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SinkOp {
    Epoch {
        job_id: JobId,
        subtask: u32,
        epoch: u64,
        writer: ExecutionAttemptId,
    },
    /// A write taken: the writer's next sequence number moves on; the records go to `txn`
    /// (opening it) or, without one, straight to the output.
    Write {
        writer: ExecutionAttemptId,
        txn: Option<TxnId>,
        records: Recs,
    },
    PreCommit {
        txn: TxnId,
        checkpoint_id: CheckpointId,
    },
    Commit {
        txn: TxnId,
    },
    Abort {
        txn: TxnId,
    },
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
                self.epochs.insert((job_id, subtask), epoch);
                self.inits.insert(writer, epoch);
            }
            SinkOp::Write {
                writer,
                txn,
                records,
            } => {
                *self.writers.entry(writer).or_insert(0) += 1;
                match txn {
                    Some(t) => self.txn_mut(t).records.extend(records.iter().copied()),
                    None => self.committed += records.len() as u64,
                }
            }
            SinkOp::PreCommit { txn, checkpoint_id } => {
                let t = self.txn_mut(txn);
                t.state = TxnState::PreCommitted(checkpoint_id);
                // Checkpoint 0 is the end-of-input commit of a job without checkpoints.
                t.checkpoint_id = (checkpoint_id > 0).then_some(checkpoint_id);
            }
            SinkOp::Commit { txn } => {
                let t = self.txn_mut(txn);
                t.state = TxnState::Committed;
                let n = t.records.len() as u64;
                self.committed += n;
            }
            SinkOp::Abort { txn } => {
                let t = self.txn_mut(txn);
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
        SinkStore {
            data: durable.sink.clone(),
        }
    }

    pub fn data(&self) -> &SinkData {
        &self.data
    }

    fn change(&mut self, ctx: &mut Ctx<'_, Process>, op: SinkOp) {
        self.data.apply(op.clone());
        ctx.persist(DurableOp::Sink(op));
    }

    fn reply(ctx: &mut Ctx<'_, Process>, to: NodeId, rpc: TaskExecutorRpc) {
        ctx.send(to, Msg::TaskExecutor(rpc));
    }

    fn fenced(&self, txn: TxnId) -> bool {
        txn.epoch < self.data.epoch(txn.job_id, txn.subtask)
    }

    /// Commits `txn` if it can be: returns false for an aborted transaction (its data is gone).
    fn commit(&mut self, ctx: &mut Ctx<'_, Process>, txn: TxnId) -> bool {
        let state = self.data.txns.get(&txn).map(|t| t.state);
        match state {
            Some(TxnState::Committed) => true,
            Some(TxnState::Aborted) => {
                ctx.trace(Obs::CommitOfAbortedTransaction { txn });
                false
            }
            // An empty transaction (no write reached the sink) commits as empty.
            None | Some(TxnState::Open) | Some(TxnState::PreCommitted(_)) => {
                self.change(ctx, SinkOp::Commit { txn });
                let t = &self.data.txns[&txn];
                ctx.trace(Obs::TransactionCommitted {
                    txn,
                    checkpoint_id: t.checkpoint_id,
                    records: Arc::from(t.records.as_slice()),
                });
                true
            }
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Process>, from: NodeId, rpc: SinkRpc) {
        match rpc {
            SinkRpc::InitTransactions {
                writer,
                job_id,
                subtask,
                commit,
                abort_lingering,
            } => {
                if let Some(&epoch) = self.data.inits.get(&writer) {
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
                }
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
            SinkRpc::Write {
                writer,
                job_id,
                subtask: _,
                seq,
                txn,
                records,
            } => {
                if let Some(t) = txn {
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
            } => {
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
                        ctx.trace(Obs::TransactionPreCommitted { txn, checkpoint_id });
                    }
                    Some(TxnState::Aborted) => {
                        return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
                    }
                    // A repeated pre-commit, or one that crossed the commit.
                    Some(TxnState::PreCommitted(_)) | Some(TxnState::Committed) => {}
                }
                Self::reply(ctx, from, TaskExecutorRpc::PreCommitted { writer, txn });
            }
            SinkRpc::Commit { writer, txn } => {
                if self.fenced(txn) {
                    return Self::reply(ctx, from, TaskExecutorRpc::SinkFenced { writer });
                }
                let ok = self.commit(ctx, txn);
                Self::reply(ctx, from, TaskExecutorRpc::Committed { writer, txn, ok });
            }
        }
    }
}
