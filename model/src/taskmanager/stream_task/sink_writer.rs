//! The sink writer of a stream task: Flink's `SinkWriter` / `TwoPhaseCommittingSink` against
//! the `sink` node — `initTransactions` (committing restored transactions, aborting lingering
//! ones), writes with sequence numbers and acknowledgements, and per checkpoint pre-commit then
//! commit once the checkpoint is notified complete; at-least-once and discard sinks write
//! without transactions.
//!
//! It does not own when a transaction is handed to a checkpoint (`snapshot`) nor the re-sending
//! of unanswered writes and commits (the resend tick in `mod.rs`).

use super::StreamTask;
use crate::checking::bugs::{Bug, Bugs};
use crate::protocol::checkpoint::{CheckpointId, Rec, TxnId};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::SinkKind;
use crate::protocol::rpc::{Msg, SinkRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::VecDeque;
use std::sync::Arc;

/// The state of a 2PC transaction the writer has handed to a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
    /// Waiting for the transaction's writes to be acknowledged (flush).
    Flushing,
    PreCommitSent,
    PreCommitted,
    CommitSent,
}

#[derive(Debug)]
pub(super) struct SinkWriter {
    pub(super) kind: SinkKind,
    pub(super) node: NodeId,
    /// `None` until `initTransactions` answered (2PC); at-least-once and discard need none.
    pub(super) epoch: Option<u64>,
    pub(super) init_sent: bool,
    pub(super) next_txn: u64,
    /// The open transaction and the sequence number of its last write.
    pub(super) current: Option<(TxnId, Option<u64>)>,
    /// Records processed but not yet written.
    pub(super) buffer: Vec<Rec>,
    pub(super) next_seq: u64,
    /// The sink took the writes below this.
    pub(super) acked: u64,
    pub(super) acked_at_tick: u64,
    /// Writes not yet acknowledged, from `acked`.
    pub(super) unacked: VecDeque<(Option<TxnId>, Arc<[Rec]>)>,
    /// Transactions pre-committed (or being) for a checkpoint: (checkpoint, txn, last write seq,
    /// stage). Without checkpointing, the end-of-input transaction uses checkpoint 0.
    pub(super) pending: Vec<(CheckpointId, TxnId, Option<u64>, Pending)>,
    /// Restored transactions of a completed checkpoint, committed by `initTransactions`.
    pub(super) restored: Vec<(CheckpointId, TxnId)>,
}

impl StreamTask {
    pub(super) fn send_init(
        ctx: &mut Ctx<'_, Flink>,
        w: &SinkWriter,
        attempt: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
        bugs: Bugs,
    ) {
        // Only a 2PC writer waits for `initTransactions`, and only until it has an epoch.
        assert!(w.init_sent && w.epoch.is_none());
        assert_eq!(w.kind, SinkKind::TwoPhaseCommit);
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

    /// The sink answered `initTransactions`. Returns true when initialisation completed now.
    pub fn on_transactions_initialized(&mut self, ctx: &mut Ctx<'_, Flink>, epoch: u64) -> bool {
        let Some(w) = &mut self.writer else {
            return false;
        };
        if w.epoch.is_some() || !w.init_sent {
            return false;
        }
        // The sink's epochs start at 1 (0 is the epoch-less writers').
        assert!(epoch > 0);
        w.epoch = Some(epoch);
        // The restored pending transactions are committed now.
        w.restored = Vec::new();
        self.advance_init(ctx)
    }

    pub(super) fn flush_writer(&mut self, ctx: &mut Ctx<'_, Flink>) {
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
        // Writes carry consecutive sequence numbers; the unacknowledged ones are the last.
        assert_eq!(w.unacked.len() as u64, w.next_seq - w.acked);
        debug_assert!(w.current.is_none_or(|(t, _)| Some(t.epoch) == w.epoch));
    }

    /// Moves the writer's pending transactions along: pre-commit once flushed, commit once
    /// notified (or, with the planted bug, at once).
    pub(super) fn advance_writer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let attempt = self.attempt;
        let notified = self.notified;
        let no_checkpoints = self.checkpointing().is_none();
        let commit_on_barrier = self.bugs.has(Bug::SinkCommitOnBarrier);
        let commit_only_notified = self.bugs.has(Bug::CommitOnlyNotifiedCheckpoint);
        let Some(w) = &mut self.writer else {
            return;
        };
        // A transaction is handed to one checkpoint only, so it is pre-committed once.
        debug_assert!(w
            .pending
            .iter()
            .enumerate()
            .all(|(i, p)| w.pending[..i].iter().all(|q| q.1 != p.1)));
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
                // Every pending transaction up to the notified checkpoint commits: the
                // notifications of earlier checkpoints may have been lost or skipped.
                Pending::PreCommitted
                    if (id <= notified && !(commit_only_notified && id < notified))
                        || no_checkpoints
                        || commit_on_barrier =>
                {
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
        assert_eq!(w.unacked.len() as u64, w.next_seq - w.acked);
        self.advance_writer(ctx);
        self.try_acknowledge(ctx);
        self.process(ctx);
    }

    pub fn on_pre_committed(&mut self, ctx: &mut Ctx<'_, Flink>, txn: TxnId) {
        if let Some(w) = &mut self.writer {
            // Only a 2PC writer pre-commits.
            assert_eq!(w.kind, SinkKind::TwoPhaseCommit);
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
            assert_eq!(w.kind, SinkKind::TwoPhaseCommit);
            w.pending
                .retain(|p| !(p.1 == txn && p.3 == Pending::CommitSent));
        }
    }

    /// The sink fenced this writer: a newer attempt of the subtask took over.
    pub fn on_sink_fenced(&mut self) {
        // Only a writer is fenced.
        assert!(self.writer.is_some());
        self.fail("ProducerFencedException: a newer writer of the subtask took over".to_string());
    }
}
