//! Tests of the `sink` node, one RPC at a time through a harness that collects its effects:
//! idempotent sequenced writes, pre-commit and commit, `initTransactions` (commit of the listed,
//! abort of the lingering, epoch bump), fencing of older epochs and aborted transactions, the
//! at-least-once path, and rebuilding the store from its durable ops. They do not run the sink
//! against real TaskExecutors or a whole job: the scenarios and their oracles do.

use super::*;
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use crate::protocol::records::Record;
use sim::testing::traces;
use sim::testing::Driver;
use sim::{Durable, Effect};

const SINK: NodeId = NodeId(9);
const TE: NodeId = NodeId(1);
const JOB: JobId = 42;

type Effects = Vec<Effect<Flink>>;

/// Drives one sink node by hand; every durable change it persists is also kept, so a test
/// can rebuild the node from what survived.
struct Harness {
    sink: Driver<Flink, SinkStore>,
    persisted: Vec<DurableOp>,
    /// Per subtask, the writer attempts initialised so far: each `init` is a new attempt of
    /// the subtask (a restored writer), as in a real restore.
    inits: std::collections::BTreeMap<u32, u32>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            sink: Driver::new(
                SINK,
                SinkStore::new(&ProcessDurable::default()),
                7,
                "sink-store-test",
            ),
            persisted: Vec::new(),
            inits: std::collections::BTreeMap::new(),
        }
    }

    fn rpc(&mut self, rpc: SinkRpc) -> Effects {
        let (out, ()) = self.sink.step(|sink, ctx| sink.on_rpc(ctx, TE, rpc));
        for e in &out {
            match e {
                Effect::Persist(op) => self.persisted.push(op.clone()),
                Effect::SetTimer { .. } => panic!("the sink sets no timers"),
                _ => {}
            }
        }
        out
    }

    fn init(&mut self, subtask: u32, commit: Vec<(CheckpointId, TxnId)>, abort: bool) -> Effects {
        let attempt = self.inits.entry(subtask).or_insert(0);
        let w = writer(subtask, *attempt);
        *attempt += 1;
        self.rpc(SinkRpc::InitTransactions {
            writer: w,
            job_id: JOB,
            subtask,
            commit,
            abort_lingering: abort,
        })
    }

    fn write(&mut self, w: ExecutionAttemptId, seq: u64, txn: Option<TxnId>, r: &[u64]) -> Effects {
        self.rpc(SinkRpc::Write {
            writer: w,
            job_id: JOB,
            subtask: w.vertex.subtask,
            seq,
            txn,
            records: recs(r),
        })
    }

    fn pre_commit(&mut self, txn: TxnId, checkpoint_id: CheckpointId) -> Effects {
        self.rpc(SinkRpc::PreCommit {
            writer: writer(txn.subtask, 0),
            txn,
            checkpoint_id,
        })
    }

    fn commit(&mut self, txn: TxnId) -> Effects {
        self.rpc(SinkRpc::Commit {
            writer: writer(txn.subtask, 0),
            txn,
        })
    }

    fn state(&self, txn: TxnId) -> Option<TxnState> {
        self.sink.component.data().txns.get(&txn).map(|t| t.state)
    }
}

fn writer(subtask: u32, attempt: u32) -> ExecutionAttemptId {
    ExecutionAttemptId {
        graph: 1,
        vertex: ExecutionVertexId {
            vertex: JobVertexId(2),
            subtask,
        },
        attempt,
    }
}

fn txn(subtask: u32, epoch: u64, n: u64) -> TxnId {
    TxnId {
        job_id: JOB,
        subtask,
        epoch,
        n,
    }
}

fn rec(i: u64) -> Rec {
    Rec::Record(Record {
        partition: 0,
        offset: i,
        key: i,
        value: i * 10,
    })
}

fn recs(r: &[u64]) -> Recs {
    r.iter().map(|&i| rec(i)).collect()
}

fn replies(out: &Effects) -> Vec<&TaskExecutorRpc> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Msg::TaskExecutor(r),
            } => {
                assert_eq!(*to, TE, "answers go to the asker");
                Some(r)
            }
            Effect::Send { msg, .. } => panic!("the sink only answers: {msg:?}"),
            _ => None,
        })
        .collect()
}

fn the_reply(out: &Effects) -> &TaskExecutorRpc {
    let r = replies(out);
    assert_eq!(r.len(), 1, "exactly one answer: {r:?}");
    r[0]
}

fn committed_traces(out: &Effects) -> Vec<(TxnId, Option<CheckpointId>, Vec<Rec>)> {
    traces(out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::TransactionCommitted {
                txn,
                checkpoint_id,
                records,
            } => Some((*txn, *checkpoint_id, records.to_vec())),
            _ => None,
        })
        .collect()
}

/// Initialises subtask 0 at epoch 1 and returns the harness.
fn initialised() -> Harness {
    let mut h = Harness::new();
    let out = h.init(0, vec![], true);
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::TransactionsInitialized {
            writer: writer(0, 0),
            epoch: 1
        }
    );
    h
}

#[test]
fn writes_are_taken_once_each_in_sequence_order() {
    let mut h = initialised();
    let w = writer(0, 0);
    let t = txn(0, 1, 0);
    // (seq sent, records, next_seq answered, records in the txn afterwards)
    let table: &[(u64, &[u64], u64, &[u64])] = &[
        (0, &[1, 2], 1, &[1, 2]),
        (0, &[1, 2], 1, &[1, 2]), // a repeat is not applied twice
        (2, &[5], 1, &[1, 2]),    // after a gap: not applied, the writer learns where it stands
        (1, &[3, 4], 2, &[1, 2, 3, 4]),
        (1, &[3, 4], 2, &[1, 2, 3, 4]),
        (2, &[5], 3, &[1, 2, 3, 4, 5]),
    ];
    for &(seq, r, next_seq, after) in table {
        let out = h.write(w, seq, Some(t), r);
        assert_eq!(
            *the_reply(&out),
            TaskExecutorRpc::SinkWriteAck {
                writer: w,
                next_seq
            },
            "write seq {seq}"
        );
        assert_eq!(
            h.sink.component.data().txns[&t].all_records(),
            recs(after).to_vec(),
            "seq {seq}"
        );
        assert_eq!(h.sink.component.data().writers[&w], next_seq);
    }
    // Another writer has its own sequence.
    let w2 = writer(0, 1);
    let out = h.write(w2, 0, Some(t), &[6]);
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::SinkWriteAck {
            writer: w2,
            next_seq: 1
        }
    );
}

#[test]
fn first_write_of_a_transaction_traces_transaction_begun() {
    let mut h = initialised();
    let w = writer(0, 0);
    let (t0, t1) = (txn(0, 1, 0), txn(0, 1, 1));
    // (seq, txn, whether TransactionBegun is traced)
    let table = [(0, t0, true), (1, t0, false), (1, t0, false), (2, t1, true)];
    for (seq, t, begun) in table {
        let out = h.write(w, seq, Some(t), &[seq]);
        let begun_trace = Obs::TransactionBegun { txn: t };
        let expected: Vec<&Obs> = if begun { vec![&begun_trace] } else { vec![] };
        assert_eq!(traces(&out), expected, "seq {seq}");
        assert_eq!(h.state(t), Some(TxnState::Open));
    }
}

#[test]
fn pre_commit_then_commit_publishes_the_records_once() {
    let mut h = initialised();
    let w = writer(0, 0);
    let t = txn(0, 1, 0);
    h.write(w, 0, Some(t), &[1, 2]);
    h.write(w, 1, Some(t), &[3]);

    let out = h.pre_commit(t, 5);
    assert_eq!(
        traces(&out),
        vec![&Obs::TransactionPreCommitted {
            txn: t,
            checkpoint_id: 5
        }]
    );
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::PreCommitted { writer: w, txn: t }
    );
    assert_eq!(h.state(t), Some(TxnState::PreCommitted(5)));
    assert_eq!(
        h.sink.component.data().committed,
        0,
        "pre-committed is not visible"
    );

    // A repeated pre-commit is answered and changes nothing.
    let out = h.pre_commit(t, 5);
    assert!(traces(&out).is_empty());
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::PreCommitted { writer: w, txn: t }
    );

    let out = h.commit(t);
    assert_eq!(
        committed_traces(&out),
        vec![(t, Some(5), recs(&[1, 2, 3]).to_vec())]
    );
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::Committed {
            writer: w,
            txn: t,
            ok: true
        }
    );
    assert_eq!(h.sink.component.data().committed, 3);

    // Commit is idempotent: answered ok, nothing traced, nothing counted twice.
    let persisted = h.persisted.len();
    let out = h.commit(t);
    assert!(traces(&out).is_empty(), "{:?}", traces(&out));
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::Committed {
            writer: w,
            txn: t,
            ok: true
        }
    );
    assert_eq!(h.sink.component.data().committed, 3);
    assert_eq!(h.persisted.len(), persisted, "nothing new persisted");
}

#[test]
fn pre_commit_for_checkpoint_zero_stores_no_checkpoint_id() {
    // (checkpoint the pre-commit names, checkpoint id the txn and its commit trace carry)
    for (checkpoint_id, stored) in [(0, None), (1, Some(1)), (7, Some(7))] {
        let mut h = initialised();
        let t = txn(0, 1, 0);
        h.write(writer(0, 0), 0, Some(t), &[1]);
        h.pre_commit(t, checkpoint_id);
        assert_eq!(h.sink.component.data().txns[&t].checkpoint_id, stored);
        assert_eq!(h.state(t), Some(TxnState::PreCommitted(checkpoint_id)));
        let out = h.commit(t);
        assert_eq!(
            committed_traces(&out),
            vec![(t, stored, recs(&[1]).to_vec())]
        );
    }
}

#[test]
fn pre_commit_of_a_transaction_without_writes_begins_it() {
    let mut h = initialised();
    let t = txn(0, 1, 3);
    let out = h.pre_commit(t, 2);
    assert_eq!(
        traces(&out),
        vec![
            &Obs::TransactionBegun { txn: t },
            &Obs::TransactionPreCommitted {
                txn: t,
                checkpoint_id: 2
            }
        ]
    );
    let out = h.commit(t);
    assert_eq!(committed_traces(&out), vec![(t, Some(2), vec![])]);
}

#[test]
fn init_transactions_commits_listed_aborts_lingering_and_bumps_the_epoch() {
    let mut h = initialised();
    let w = writer(0, 0);
    let other_subtask = writer(1, 0);
    h.init(1, vec![], true);
    let listed = txn(0, 1, 0); // pre-committed for a completed checkpoint
    let pre = txn(0, 1, 1); // pre-committed for a checkpoint that did not complete
    let open = txn(0, 1, 2);
    let done = txn(0, 1, 3); // committed already
    let elsewhere = txn(1, 1, 0); // another subtask's open transaction
    h.write(w, 0, Some(listed), &[1]);
    h.write(w, 1, Some(pre), &[2]);
    h.write(w, 2, Some(open), &[3]);
    h.write(w, 3, Some(done), &[4]);
    h.write(other_subtask, 0, Some(elsewhere), &[5]);
    h.pre_commit(listed, 1);
    h.pre_commit(pre, 2);
    h.pre_commit(done, 1);
    h.commit(done);
    assert_eq!(h.sink.component.data().committed, 1);

    let out = h.init(0, vec![(1, listed)], true);
    assert_eq!(
        committed_traces(&out),
        vec![(listed, Some(1), recs(&[1]).to_vec())]
    );
    let aborted: Vec<TxnId> = traces(&out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::TransactionAborted { txn } => Some(*txn),
            _ => None,
        })
        .collect();
    assert_eq!(aborted, vec![pre, open]);
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::TransactionsInitialized {
            writer: writer(0, 1),
            epoch: 2
        }
    );
    // (txn, state after the restore)
    let table = [
        (listed, TxnState::Committed),
        (pre, TxnState::Aborted),
        (open, TxnState::Aborted),
        (done, TxnState::Committed),
        (elsewhere, TxnState::Open),
    ];
    for (t, state) in table {
        assert_eq!(h.state(t), Some(state), "{t:?}");
    }
    assert!(
        h.sink.component.data().txns[&pre].records.is_empty(),
        "aborted data is gone"
    );
    assert_eq!(h.sink.component.data().committed, 2);
    assert_eq!(h.sink.component.data().epochs[&(JOB, 0)], 2);
    assert_eq!(
        h.sink.component.data().epochs[&(JOB, 1)],
        1,
        "other subtasks keep their epoch"
    );
}

#[test]
fn a_repeated_init_transactions_of_one_writer_gets_the_same_answer() {
    let mut h = initialised();
    let w = writer(0, 0);
    let open = txn(0, 1, 0);
    h.write(w, 0, Some(open), &[1]);
    // The writer's request is re-sent (its answer was lost): nothing is redone.
    let out = h.rpc(SinkRpc::InitTransactions {
        writer: w,
        job_id: JOB,
        subtask: 0,
        commit: vec![],
        abort_lingering: true,
    });
    assert!(traces(&out).is_empty(), "{:?}", traces(&out));
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::TransactionsInitialized {
            writer: w,
            epoch: 1
        }
    );
    assert_eq!(h.state(open), Some(TxnState::Open));
    assert_eq!(h.sink.component.data().epochs[&(JOB, 0)], 1);
}

#[test]
fn init_transactions_without_abort_of_lingering_leaves_them_open() {
    let mut h = initialised();
    let w = writer(0, 0);
    let (pre, open) = (txn(0, 1, 0), txn(0, 1, 1));
    h.write(w, 0, Some(pre), &[1]);
    h.write(w, 1, Some(open), &[2]);
    h.pre_commit(pre, 1);
    let out = h.init(0, vec![], false);
    assert!(traces(&out).is_empty(), "{:?}", traces(&out));
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::TransactionsInitialized {
            writer: writer(0, 1),
            epoch: 2
        }
    );
    assert_eq!(h.state(pre), Some(TxnState::PreCommitted(1)));
    assert_eq!(h.state(open), Some(TxnState::Open));
}

#[test]
fn requests_of_an_older_epoch_are_fenced() {
    let mut h = initialised();
    let w = writer(0, 0);
    let old = txn(0, 1, 0);
    h.write(w, 0, Some(old), &[1]);
    h.pre_commit(old, 1);
    // A newer writer of the subtask initialises without aborting (so `old` survives as
    // pre-committed and only the epoch fences it).
    h.init(0, vec![], false);
    let fenced = TaskExecutorRpc::SinkFenced { writer: w };

    let before = h.sink.component.data().clone();
    let out = h.write(w, 1, Some(txn(0, 1, 1)), &[2]);
    assert_eq!(*the_reply(&out), fenced, "write");
    let out = h.pre_commit(txn(0, 1, 1), 2);
    assert_eq!(*the_reply(&out), fenced, "pre-commit");
    let out = h.commit(old);
    assert_eq!(*the_reply(&out), fenced, "commit");
    assert!(traces(&out).is_empty());
    assert_eq!(
        *h.sink.component.data(),
        before,
        "fenced requests change nothing"
    );

    // The current epoch is not fenced.
    let out = h.write(w, 1, Some(txn(0, 2, 0)), &[3]);
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::SinkWriteAck {
            writer: w,
            next_seq: 2
        }
    );
}

#[test]
fn commit_of_an_aborted_transaction_fails_and_is_traced() {
    let mut h = initialised();
    let w = writer(0, 0);
    // A transaction of epoch 2 (not fenced once the sink is at epoch 2), aborted by the
    // restore that moves the sink to epoch 2.
    let t = txn(0, 2, 0);
    h.write(w, 0, Some(t), &[1, 2]);
    h.pre_commit(t, 1);
    h.init(0, vec![], true);
    assert_eq!(h.state(t), Some(TxnState::Aborted));
    assert_eq!(h.sink.component.data().epochs[&(JOB, 0)], 2);

    let before = h.sink.component.data().clone();
    let out = h.commit(t);
    assert_eq!(
        traces(&out),
        vec![&Obs::CommitOfAbortedTransaction { txn: t }]
    );
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::Committed {
            writer: w,
            txn: t,
            ok: false
        }
    );
    assert_eq!(*h.sink.component.data(), before, "nothing changes");

    // A restore that lists it cannot commit it either.
    let out = h.init(0, vec![(1, t)], true);
    assert_eq!(
        traces(&out),
        vec![&Obs::CommitOfAbortedTransaction { txn: t }]
    );
    assert_eq!(h.state(t), Some(TxnState::Aborted));
    assert_eq!(h.sink.component.data().committed, 0);
}

#[test]
fn writes_and_pre_commits_to_an_aborted_transaction_are_fenced() {
    let mut h = initialised();
    let w = writer(0, 0);
    // A transaction of a newer epoch than the sink knows, aborted by a restore.
    let t = txn(0, 3, 0);
    h.write(w, 0, Some(t), &[1]);
    h.init(0, vec![], true); // epoch 2 < 3: t is not fenced by epoch, but it is aborted
    assert_eq!(h.state(t), Some(TxnState::Aborted));
    let fenced = TaskExecutorRpc::SinkFenced { writer: w };
    assert_eq!(*the_reply(&h.write(w, 1, Some(t), &[2])), fenced);
    assert_eq!(*the_reply(&h.pre_commit(t, 1)), fenced);
    assert!(h.sink.component.data().txns[&t].records.is_empty());
    assert_eq!(
        h.sink.component.data().writers[&w],
        1,
        "the refused write was not taken"
    );
}

#[test]
fn at_least_once_write_goes_straight_to_the_output() {
    let mut h = Harness::new();
    let w = writer(0, 0);
    let out = h.write(w, 0, None, &[1, 2]);
    assert_eq!(
        traces(&out),
        vec![&Obs::RecordsWritten {
            job_id: JOB,
            records: recs(&[1, 2])
        }]
    );
    assert_eq!(h.sink.component.data().committed, 2);
    assert!(h.sink.component.data().txns.is_empty());
    // A repeat is neither traced nor counted again.
    let out = h.write(w, 0, None, &[1, 2]);
    assert!(traces(&out).is_empty());
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::SinkWriteAck {
            writer: w,
            next_seq: 1
        }
    );
    assert_eq!(h.sink.component.data().committed, 2);
}

#[test]
fn a_store_rebuilt_from_its_durable_ops_has_the_same_data() {
    let mut h = initialised();
    let w = writer(0, 0);
    let (a, b, c) = (txn(0, 1, 0), txn(0, 1, 1), txn(0, 1, 2));
    h.write(w, 0, Some(a), &[1]);
    h.write(w, 1, Some(b), &[2, 3]);
    h.write(w, 2, Some(c), &[4]);
    h.write(w, 3, None, &[5]);
    h.pre_commit(a, 1);
    h.pre_commit(b, 2);
    h.commit(a);
    h.init(0, vec![(2, b)], true);

    let mut durable = ProcessDurable::default();
    for op in h.persisted.clone() {
        durable.apply(op);
    }
    let rebuilt = SinkStore::new(&durable);
    assert_eq!(rebuilt.data(), h.sink.component.data());
    assert_eq!(rebuilt.data().committed, 4);
    assert_eq!(rebuilt.data().txns[&c].state, TxnState::Aborted);
    assert_eq!(rebuilt.data().epochs[&(JOB, 0)], 2);

    // The rebuilt node still takes writes once each: the writer's sequence survived.
    let mut h2 = Harness::new();
    h2.sink.component = rebuilt;
    let out = h2.write(w, 3, None, &[5]);
    assert_eq!(
        *the_reply(&out),
        TaskExecutorRpc::SinkWriteAck {
            writer: w,
            next_seq: 4
        }
    );
    assert_eq!(h2.sink.component.data().committed, 4);
}
