//! Snapshot and restore of a stream task: restore during INITIALIZING (reading the restored
//! handles from `checkpoint-storage`, keeping only the key groups this subtask owns, Flink's
//! `StateAssignmentOperation`) and the `SubtaskCheckpointCoordinator`'s side of a checkpoint
//! (`triggerCheckpoint` for sources, the snapshot at an aligned barrier, the state write, the
//! acknowledgement once the state is durable and the sink ready, declines, and
//! `notifyCheckpointComplete` / `notifyCheckpointAborted`).
//!
//! It does not own barrier alignment (`input`) nor the 2PC transactions a snapshot hands over
//! (`sink_writer`).

use super::sink_writer::Pending;
use super::StreamTask;
use crate::checking::bugs::Bug;
use crate::protocol::checkpoint::{
    CheckpointId, StateHandleId, StreamElement, TaskStateSnapshot, TxnId,
};
use crate::protocol::job_graph::{key_group_for_key, SinkKind};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{CheckpointStorageRpc, JobMasterRpc, Msg};
use crate::protocol::Flink;
use sim::Ctx;
use std::sync::Arc;

/// A snapshot taken and not yet acknowledged.
#[derive(Debug)]
pub(super) struct PendingSnapshot {
    handle: StateHandleId,
    written: bool,
    /// At-least-once: the writes below this must be acknowledged first.
    flush_to: Option<u64>,
    pub(super) acked: bool,
    pub(super) sent_ns: u64,
}

/// What `initialize` waits for.
#[derive(Debug, Default)]
pub(super) struct Init {
    pub(super) reads: Vec<StateHandleId>,
    restored: Vec<Arc<TaskStateSnapshot>>,
    pub(super) started_ns: u64,
    /// The restored state was applied (once, however many steps initialisation takes).
    applied: bool,
    pub(super) done: bool,
}

impl StreamTask {
    /// INITIALIZING begins: read the restored state, if any. Returns true when initialisation
    /// is complete already.
    pub fn start_initialize(&mut self, ctx: &mut Ctx<'_, Flink>) -> bool {
        // INITIALIZING is entered once.
        assert!(!self.init.done && !self.init.applied && self.init.reads.is_empty());
        self.init.started_ns = ctx.mono_ns();
        if let Some(restore) = &self.restore {
            self.init.reads = restore.handles.clone();
            self.send_reads(ctx);
        }
        self.advance_init(ctx)
    }

    pub(super) fn send_reads(&self, ctx: &mut Ctx<'_, Flink>) {
        assert!(!self.init.done);
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
        // Only a restore reads state.
        assert!(self.restore.is_some());
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

    pub(super) fn advance_init(&mut self, ctx: &mut Ctx<'_, Flink>) -> bool {
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
        // Initialised: the restored state is in and a 2PC writer has its epoch.
        assert!(self.restore.is_none() || self.init.applied);
        self.init.done = true;
        true
    }

    fn apply_restored(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // Every restored handle was read, and nothing was processed yet.
        assert!(self.init.reads.is_empty() && !self.init.done);
        assert_eq!(self.last_checkpoint, 0);
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

    pub(super) fn snapshot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        ts: u64,
        offsets: Option<Vec<(u32, u64)>>,
    ) {
        assert!(id > self.last_checkpoint);
        assert!(self.init.done);
        // A task never snapshots a checkpoint at or below one it was told is complete (unless
        // the planted bug completed one without its acknowledgement).
        assert!(id > self.notified || self.bugs.has(Bug::CompleteWithMissingAck));
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
        // Transactions are handed to checkpoints in order.
        debug_assert!(self
            .writer
            .as_ref()
            .is_none_or(|w| w.pending.iter().all(|p| p.0 <= id)));
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

    pub(super) fn decline(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        reason: &'static str,
    ) {
        // A checkpoint is never both acknowledged and declined.
        assert!(self.snapshots.get(&id).is_none_or(|s| !s.acked));
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

    pub(super) fn try_acknowledge(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let writer = self.writer.as_ref();
        for (id, s) in &mut self.snapshots {
            if s.acked || !s.written {
                continue;
            }
            let sink_ready = match writer {
                Some(w) => match w.kind {
                    // Every transaction handed to this checkpoint or an earlier one is
                    // flushed: a checkpoint's state lists them all as pending, and Flink
                    // flushes synchronously in each snapshot, so a later checkpoint never
                    // completes over an earlier transaction whose writes are still on the way.
                    SinkKind::TwoPhaseCommit => w
                        .pending
                        .iter()
                        .filter(|p| p.0 <= *id)
                        .all(|p| matches!(p.3, Pending::PreCommitted | Pending::CommitSent)),
                    SinkKind::AtLeastOnce => s.flush_to.is_none_or(|f| w.acked >= f),
                    SinkKind::Discard => true,
                },
                None => true,
            } || self.bugs.has(Bug::AckBeforeSnapshotDurable);
            if !sink_ready {
                continue;
            }
            // The snapshot's handle names this checkpoint of this attempt.
            assert_eq!(s.handle.checkpoint_id, *id);
            assert_eq!(s.handle.attempt, self.attempt);
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
        if !self.bugs.has(Bug::CompleteWithMissingAck) {
            debug_assert!(self.snapshots.keys().all(|k| *k > self.notified));
        }
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
}
