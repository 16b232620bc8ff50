//! The changes to durable state that survive a crash of a node: the blobs of
//! `checkpoint-storage`, the content of the `sink` and the `ha` node's tree and sessions.

use crate::protocol::checkpoint::{CheckpointId, Recs, StateHandleId, TaskStateSnapshot, TxnId};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use serde::Serialize;
use std::sync::Arc;

use crate::protocol::ha::HaDataOp;

/// A change to a node's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DurableOp {
    Blob(BlobOp),
    Sink(SinkOp),
    Ha(HaDataOp),
}

/// A change to the stored blobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum BlobOp {
    Put(StateHandleId, Arc<TaskStateSnapshot>),
    Delete(StateHandleId),
}

/// A change to the sink's content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
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
