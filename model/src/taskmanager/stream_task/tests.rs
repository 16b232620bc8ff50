//! Tests of the stream task: records through the operator chain, credit and backpressure,
//! re-sending, barrier alignment and tracking, snapshots, restore and the sink writer. They
//! drive one StreamTask by hand in detached contexts and inspect its effects.

use super::*;
use crate::checking::bugs::Bug;
use crate::protocol::checkpoint::{StateHandleId, StreamElement, TaskStateSnapshot, TxnId};
use crate::protocol::job_graph::{key_group_for_key, Partitioner};
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use crate::protocol::obs::Obs;
use crate::protocol::records::Record;
use crate::protocol::rpc::OutputConfig;
use crate::protocol::rpc::{CheckpointStorageRpc, JobMasterRpc};
use sim::testing::sent;
use sim::testing::Driver;
use sim::Effect;

const JM: NodeId = NodeId(0);
/// The TaskExecutors of the upstream producers (one per input channel).
const UPSTREAM: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const DOWNSTREAM: NodeId = NodeId(4);
const ME: NodeId = NodeId(5);
const STORAGE: NodeId = NodeId(8);
const SINK: NodeId = NodeId(9);
const JOB: JobId = 42;

type Effects = Vec<Effect<Flink>>;

/// Drives one StreamTask by hand through the shared test driver and returns each step's
/// effects.
struct Harness {
    task: Driver<Flink, StreamTask>,
}

impl Harness {
    /// A task of vertex 1, subtask 0, with `inputs` input channels (none: a source).
    fn new(cfg: StreamConfig, inputs: usize, bugs: Bugs) -> Harness {
        let task = StreamTask::new(
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
        );
        let mut h = Harness {
            task: Driver::new(ME, task, 7, "stream-task-test"),
        };
        let (out, initialized) = h.step(|t, ctx| t.start_initialize(ctx));
        let has_2pc_writer = h
            .task
            .component
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
        let (out, r) = self.task.step(f);
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
fn snapshots_taken(out: &Effects) -> Vec<(CheckpointId, crate::protocol::checkpoint::StateDigest)> {
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
        assert_eq!(
            h.task.component.counts.len(),
            3,
            "{what}: every record counted once"
        );
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
    assert!(!h.task.component.output_pending());
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
    assert!(h.task.component.needs_tick());

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
    assert!(!h.task.component.needs_tick());
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
    assert!(h.task.component.is_initialized());
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
        assert!(h.task.component.writer.as_ref().unwrap().pending.is_empty());
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

/// Found by exploring `nemesis-shapes` (seed 121): the writes of checkpoint 1's transaction are
/// held in the network while checkpoint 2's barrier arrives. Checkpoint 2's state lists that
/// transaction as pending too, so its acknowledgement must wait until the transaction is
/// flushed and pre-committed, as Flink's synchronous flush in every snapshot guarantees;
/// otherwise a restore from checkpoint 2 commits a transaction whose writes never arrived.
#[test]
fn a_later_checkpoint_waits_for_an_earlier_transaction_still_flushing() {
    let (mut h, txn) = two_phase_commit_task(Bugs::NONE);
    // Barrier 1 takes the open transaction (its write not acknowledged yet).
    h.batch(0, 1, &[barrier(1)]);
    h.written(handle(1));
    // Barrier 2: nothing new was written, the state is stored.
    let out = h.batch(0, 2, &[barrier(2)]);
    let writes = state_writes(&out);
    assert_eq!(writes[0].1.pending_transactions, vec![(1, txn)]);
    let out = h.written(handle(2));
    assert!(
        acks(&out).is_empty(),
        "checkpoint 2 waits for transaction 1"
    );
    // The write is acknowledged, the transaction pre-committed: both checkpoints ack.
    h.step(|t, ctx| t.on_sink_write_ack(ctx, 1));
    let out = h.step(|t, ctx| t.on_pre_committed(ctx, txn)).0;
    assert_eq!(acks(&out), vec![1, 2]);
}
