//! The `checkpoint-storage` node: a blob store for the tasks' state handles (like the file
//! system behind `execution.checkpointing.dir`).
//!
//! It owns which handles exist. A write is durable once answered (the node's durable state
//! survives a crash); a read returns the stored snapshot or nothing; deletes are fire-and-forget,
//! as Flink's asynchronous discards are. It is a node so that it can be slow, partitioned or
//! down: a task whose write finds it down declines the checkpoint, a restore whose read finds it
//! down fails the task.

use crate::process::ProcessDurable;
use crate::protocol::checkpoint::{StateHandleId, TaskStateSnapshot};
use crate::protocol::durable::BlobOp;
use crate::protocol::durable::DurableOp;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{CheckpointStorageRpc, Msg, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The stored blobs; part of the node's durable state.
pub type Blobs = BTreeMap<StateHandleId, Arc<TaskStateSnapshot>>;

pub fn apply(blobs: &mut Blobs, op: BlobOp) {
    match op {
        BlobOp::Put(handle, state) => {
            // A handle is written once: a repeated write carries the same state.
            debug_assert!(blobs.get(&handle).is_none_or(|s| **s == *state));
            blobs.insert(handle, state);
        }
        BlobOp::Delete(handle) => {
            let deleted = blobs.remove(&handle);
            // Only stored handles are deleted (a discard of a missing one changes nothing).
            assert!(deleted.is_some());
        }
    }
}

#[derive(Debug)]
pub struct CheckpointStorage {
    blobs: Blobs,
}

impl CheckpointStorage {
    /// The node as it (re)starts from its durable state.
    pub fn new(durable: &ProcessDurable) -> CheckpointStorage {
        CheckpointStorage {
            blobs: durable.blobs.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    fn change(&mut self, ctx: &mut Ctx<'_, Flink>, op: BlobOp) {
        let (handle, put) = match &op {
            BlobOp::Put(handle, _) => (*handle, true),
            BlobOp::Delete(handle) => (*handle, false),
        };
        apply(&mut self.blobs, op.clone());
        assert_eq!(self.blobs.contains_key(&handle), put);
        ctx.persist(DurableOp::Blob(op));
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: CheckpointStorageRpc) {
        match rpc {
            CheckpointStorageRpc::Write { handle, state } => {
                // Checkpoint ids start at 1.
                assert!(handle.checkpoint_id > 0);
                // A repeated write of the same handle stores the same bytes again.
                self.change(ctx, BlobOp::Put(handle, state));
                // Durable before it is answered.
                assert!(self.blobs.contains_key(&handle));
                ctx.trace(Obs::StateStored { handle });
                ctx.send(
                    from,
                    Msg::TaskExecutor(TaskExecutorRpc::StateWritten { handle }),
                );
            }
            CheckpointStorageRpc::Read { handle, reader } => {
                let state = self.blobs.get(&handle).cloned();
                ctx.send(
                    from,
                    Msg::TaskExecutor(TaskExecutorRpc::StateRead {
                        handle,
                        reader,
                        state,
                    }),
                );
            }
            CheckpointStorageRpc::Delete { handles } => {
                for &handle in &handles {
                    if self.blobs.contains_key(&handle) {
                        self.change(ctx, BlobOp::Delete(handle));
                        ctx.trace(Obs::StateDiscarded { handle });
                    }
                }
                debug_assert!(handles.iter().all(|h| !self.blobs.contains_key(h)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
