//! Tests of the `checkpoint-storage` node through a harness that collects its effects: writes
//! answered and durable, reads of stored and missing handles, fire-and-forget deletes, and a
//! restart from the durable state. They do not cover what tasks do when the node is down (the
//! checkpointing scenarios do).

use super::*;
use crate::protocol::checkpoint::CheckpointId;
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use sim::testing::traces;
use sim::testing::Driver;
use sim::{Durable, Effect};

const STORAGE: NodeId = NodeId(8);
const TE: NodeId = NodeId(1);

type Effects = Vec<Effect<Flink>>;

struct Harness {
    storage: Driver<Flink, CheckpointStorage>,
    persisted: Vec<DurableOp>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            storage: Driver::new(
                STORAGE,
                CheckpointStorage::new(&ProcessDurable::default()),
                7,
                "checkpoint-storage-test",
            ),
            persisted: Vec::new(),
        }
    }

    fn rpc(&mut self, rpc: CheckpointStorageRpc) -> Effects {
        let (out, ()) = self
            .storage
            .step(|storage, ctx| storage.on_rpc(ctx, TE, rpc));
        for e in &out {
            if let Effect::Persist(op) = e {
                self.persisted.push(op.clone());
            }
        }
        out
    }

    fn read(&mut self, handle: StateHandleId) -> Option<Arc<TaskStateSnapshot>> {
        let out = self.rpc(CheckpointStorageRpc::Read {
            handle,
            reader: handle.attempt,
        });
        assert!(traces(&out).is_empty(), "a read traces nothing");
        match sent(&out).as_slice() {
            [TaskExecutorRpc::StateRead {
                handle: h,
                reader,
                state,
            }] => {
                assert_eq!(*h, handle);
                assert_eq!(*reader, handle.attempt);
                state.clone()
            }
            other => panic!("expected one StateRead, got {other:?}"),
        }
    }
}

fn handle(checkpoint_id: CheckpointId, subtask: u32) -> StateHandleId {
    StateHandleId {
        job_id: 42,
        checkpoint_id,
        attempt: ExecutionAttemptId {
            graph: 1,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(0),
                subtask,
            },
            attempt: 0,
        },
    }
}

fn state(offset: u64) -> Arc<TaskStateSnapshot> {
    Arc::new(TaskStateSnapshot {
        source_offsets: vec![(0, offset)],
        keyed_counts: vec![(3, 7, offset)],
        pending_transactions: vec![],
        end_of_input: false,
    })
}

fn sent(out: &Effects) -> Vec<&TaskExecutorRpc> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Msg::TaskExecutor(r),
            } => {
                assert_eq!(*to, TE);
                Some(r)
            }
            Effect::Send { msg, .. } => panic!("unexpected message {msg:?}"),
            _ => None,
        })
        .collect()
}

#[test]
fn write_stores_traces_and_answers() {
    let mut h = Harness::new();
    let a = handle(1, 0);
    let out = h.rpc(CheckpointStorageRpc::Write {
        handle: a,
        state: state(5),
    });
    assert_eq!(traces(&out), vec![&Obs::StateStored { handle: a }]);
    assert_eq!(
        sent(&out),
        vec![&TaskExecutorRpc::StateWritten { handle: a }]
    );
    assert_eq!(h.persisted, vec![DurableOp::Blob(BlobOp::Put(a, state(5)))]);
    assert_eq!(h.storage.component.len(), 1);

    // A repeated write of the same handle stores again and is answered again.
    let out = h.rpc(CheckpointStorageRpc::Write {
        handle: a,
        state: state(5),
    });
    assert_eq!(
        sent(&out),
        vec![&TaskExecutorRpc::StateWritten { handle: a }]
    );
    assert_eq!(h.storage.component.len(), 1);
}

#[test]
fn read_returns_the_stored_snapshot_or_none() {
    let mut h = Harness::new();
    let (a, b) = (handle(1, 0), handle(1, 1));
    h.rpc(CheckpointStorageRpc::Write {
        handle: a,
        state: state(5),
    });
    // (handle read, what comes back)
    let table = [(a, Some(state(5))), (b, None), (handle(2, 0), None)];
    for (hd, expected) in table {
        assert_eq!(h.read(hd), expected, "{hd:?}");
    }
}

#[test]
fn delete_discards_only_existing_handles() {
    let mut h = Harness::new();
    let (a, b, missing) = (handle(1, 0), handle(1, 1), handle(9, 0));
    for hd in [a, b] {
        h.rpc(CheckpointStorageRpc::Write {
            handle: hd,
            state: state(1),
        });
    }
    h.persisted.clear();
    let out = h.rpc(CheckpointStorageRpc::Delete {
        handles: vec![a, missing],
    });
    assert_eq!(traces(&out), vec![&Obs::StateDiscarded { handle: a }]);
    assert!(sent(&out).is_empty(), "deletes are not answered");
    assert_eq!(h.persisted, vec![DurableOp::Blob(BlobOp::Delete(a))]);
    assert_eq!(h.read(a), None);
    assert_eq!(h.read(b), Some(state(1)));

    // Deleting again: nothing to discard.
    let out = h.rpc(CheckpointStorageRpc::Delete { handles: vec![a] });
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_node_rebuilt_from_its_durable_state_still_serves_the_blob() {
    let mut h = Harness::new();
    let (a, b) = (handle(1, 0), handle(2, 0));
    h.rpc(CheckpointStorageRpc::Write {
        handle: a,
        state: state(3),
    });
    h.rpc(CheckpointStorageRpc::Write {
        handle: b,
        state: state(4),
    });
    h.rpc(CheckpointStorageRpc::Delete { handles: vec![a] });

    let mut durable = ProcessDurable::default();
    for op in h.persisted.clone() {
        durable.apply(op);
    }
    let mut rebuilt = Harness::new();
    rebuilt.storage.component = CheckpointStorage::new(&durable);
    assert_eq!(rebuilt.storage.component.len(), 1);
    assert_eq!(rebuilt.read(b), Some(state(4)));
    assert_eq!(rebuilt.read(a), None, "a delete is durable too");
}
