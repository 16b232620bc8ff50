//! The vocabulary of checkpointing and of the data plane that carries barriers: checkpoint ids,
//! the elements that flow between subtasks, state handles in `checkpoint-storage`, a task's state
//! snapshot, and the sink's transaction ids.
//!
//! This module owns *data types* shared by the TaskExecutor's tasks, the JobMaster's
//! CheckpointCoordinator, the external `checkpoint-storage` and `sink` nodes and the oracles. It
//! does not own behaviour: triggering and completing checkpoints is `checkpoint_coordinator`,
//! barrier alignment and snapshots are the tasks', storing and committing are the nodes'.

use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::records::{CountOutput, Record};
use serde::{Deserialize, Serialize};
use sim::StableHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Flink's checkpoint id: 1, 2, 3, … per job (`CheckpointIDCounter` starts at 1).
pub type CheckpointId = u64;

/// `execution.checkpointing.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CheckpointingMode {
    /// Aligned barriers: a channel that delivered barrier n is blocked until every channel has.
    ExactlyOnce,
    /// Barriers are tracked, never aligned: records after a barrier may enter the snapshot.
    AtLeastOnce,
}

impl CheckpointingMode {
    /// Flink's spelling in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE",
            CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE",
        }
    }
}

/// One output of an operator as it travels between subtasks and into the sink: a source record
/// (possibly re-keyed and mapped) or a keyed count's `(key, n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rec {
    Record(Record),
    Count(CountOutput),
}

/// What a result subpartition carries to its consumer, in order (Flink's buffers and events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum StreamElement {
    Record(Rec),
    /// `CheckpointBarrier(id, timestamp)`.
    Barrier {
        checkpoint_id: CheckpointId,
        timestamp_ms: u64,
    },
    /// `EndOfData`: the producer has emitted its last record (FLIP-147); it still takes
    /// checkpoints until its final one is complete.
    EndOfData,
    /// `EndOfPartitionEvent`: the producer finished; nothing follows.
    EndOfPartition,
}

/// Where one task's snapshot of one checkpoint lives in `checkpoint-storage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StateHandleId {
    pub job_id: JobId,
    pub checkpoint_id: CheckpointId,
    pub attempt: ExecutionAttemptId,
}

impl StateHandleId {
    pub fn vertex(&self) -> ExecutionVertexId {
        self.attempt.vertex
    }
}

/// A sink transaction (Kafka's transactional id + the producer epoch that opened it): sink
/// subtask `subtask` of job `job_id`, opened under writer epoch `epoch`, the `n`-th transaction
/// of that epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub job_id: JobId,
    pub subtask: u32,
    pub epoch: u64,
    pub n: u64,
}

/// One task's state at a checkpoint barrier (Flink's `TaskStateSnapshot` with its operator and
/// keyed state handles inlined). Written to `checkpoint-storage` and read back on restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct TaskStateSnapshot {
    /// A source's position: per partition, the next offset to read.
    pub source_offsets: Vec<(u32, u64)>,
    /// A keyed count's state: (key group, key, count), sorted. Keyed state is snapshotted per
    /// key group so that a restore can give each subtask the key groups it owns.
    pub keyed_counts: Vec<(u32, u64, u64)>,
    /// A two-phase-commit sink's transactions pre-committed for a checkpoint and not yet known
    /// to be committed, in checkpoint order.
    pub pending_transactions: Vec<(CheckpointId, TxnId)>,
    /// The task had seen the end of its input (FLIP-147): restored, it emits nothing more.
    pub end_of_input: bool,
}

impl TaskStateSnapshot {
    /// A fixed-definition digest of the snapshot, for oracles and traces.
    pub fn digest(&self) -> StateDigest {
        let mut h = StableHasher::new();
        self.keyed_counts.hash(&mut h);
        StateDigest {
            source_offsets: self.source_offsets.clone(),
            keyed_entries: self.keyed_counts.len() as u64,
            keyed_hash: h.finish(),
            pending_transactions: self.pending_transactions.clone(),
            end_of_input: self.end_of_input,
        }
    }
}

/// What an oracle compares between a snapshot and a restore: offsets and transactions exactly,
/// keyed state by a fixed hash of its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateDigest {
    pub source_offsets: Vec<(u32, u64)>,
    pub keyed_entries: u64,
    pub keyed_hash: u64,
    pub pending_transactions: Vec<(CheckpointId, TxnId)>,
    pub end_of_input: bool,
}

/// What a redeployed execution restores (Flink's `JobManagerTaskRestore`): the checkpoint and
/// the handles whose state it must read (for keyed state, every handle of the vertex whose key
/// groups intersect the subtask's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TaskRestore {
    pub checkpoint_id: CheckpointId,
    pub handles: Vec<StateHandleId>,
    /// The subtask had finished when the checkpoint was taken: it restores as finished.
    pub finished: bool,
}

/// Records shared between messages without copying.
pub type Recs = Arc<[Rec]>;

/// The checkpointing configuration (docs/flink-runtime.md §7.1; `execution.checkpointing.*`). Present only
/// when `execution.checkpointing.interval` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CheckpointConfig {
    /// `execution.checkpointing.interval`.
    pub interval: std::time::Duration,
    /// `execution.checkpointing.mode` (EXACTLY_ONCE).
    pub mode: CheckpointingMode,
    /// `execution.checkpointing.timeout` (10 min).
    pub timeout: std::time::Duration,
    /// `execution.checkpointing.min-pause` (0).
    pub min_pause: std::time::Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints` (1).
    pub max_concurrent: u32,
    /// `execution.checkpointing.tolerable-failed-checkpoints` (0).
    pub tolerable_failed: u32,
    /// `execution.checkpointing.num-retained` (1).
    pub num_retained: u32,
}

/// A completed checkpoint: the handles of its task states.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CompletedCheckpoint {
    pub id: CheckpointId,
    pub handles: Vec<StateHandleId>,
    pub finished: Vec<ExecutionVertexId>,
}
