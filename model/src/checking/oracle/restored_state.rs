//! Restored state (always): a restore uses the latest completed checkpoint, and every task
//! restores exactly the state its execution vertex had at that checkpoint's barrier (docs/flink-runtime.md
//! §7.6; cf. FLINK-20290 and FLINK-10354, restores of an older checkpoint).
//!
//! Ground truth:
//! - the tasks' `SnapshotTaken` reports: the state each attempt really held at the barrier of a
//!   checkpoint, before anything was written to `checkpoint-storage` (so a snapshot that loses
//!   its offsets on the way shows);
//! - the coordinators' `CheckpointCompleted`: which attempt's snapshot of each execution vertex
//!   the checkpoint consists of (its handles). Several attempts of a vertex may have snapshotted
//!   the same checkpoint id (one failed before it acknowledged); only the one in the completed
//!   checkpoint counts.
//!
//! Checks:
//! - `StateRestored { checkpoint_id: n, attempt, state }`: checkpoint n of the job completed, and
//!   `state` equals the snapshot of `attempt`'s execution vertex in it: the same source offsets
//!   and pending transactions (as sets: their order carries no meaning), the same keyed state
//!   (entry count and hash) and the same end-of-input flag. The first difference is named. A
//!   vertex without state in the checkpoint must restore empty state.
//! - `RestoreDecided { checkpoint_id }`: the latest checkpoint this JobMaster completed for the
//!   job (`None` if it completed none). Checkpoint ids and the completed checkpoint store belong
//!   to one JobMaster instance (without high availability a new JobMaster starts from scratch),
//!   so "latest" is counted per JobMaster process and job and forgotten when that process dies
//!   or a new JobMaster instance of the job reports its first status.

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, StateDigest, TaskStateSnapshot, TxnId};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

pub const INVARIANT: Invariant = Invariant {
    name: "restored-state",
    kind: Kind::Always,
    description: "a restore uses the latest completed checkpoint, and each task restores exactly the source offsets, keyed state and pending transactions its vertex snapshotted for that checkpoint",
};

pub struct RestoredState {
    /// (job, checkpoint) -> attempt -> the state the attempt held at the barrier.
    snapshots: BTreeMap<(JobId, CheckpointId), BTreeMap<ExecutionAttemptId, StateDigest>>,
    /// (job, checkpoint, vertex) -> the attempt whose snapshot the completed checkpoint holds.
    completed_attempts: BTreeMap<(JobId, CheckpointId, ExecutionVertexId), ExecutionAttemptId>,
    completed: BTreeSet<(JobId, CheckpointId)>,
    /// (job, checkpoint, vertex): the vertex had FINISHED when the checkpoint was taken.
    finished: BTreeSet<(JobId, CheckpointId, ExecutionVertexId)>,
    /// (JobMaster process, job) -> the latest checkpoint it completed.
    latest: BTreeMap<(NodeId, JobId), CheckpointId>,
    /// With high availability: the latest is per job, whichever leader completed it.
    ha: bool,
    /// With high availability: the JobManager the `ha` store says leads. A deposed leader's
    /// restore decisions are its own business (fencing must stop their effects, which
    /// `leader-fencing` checks).
    ha_leader: Option<NodeId>,
}

impl RestoredState {
    pub fn new(setup: &Setup) -> RestoredState {
        RestoredState {
            ha: setup.topology.ha.is_some(),
            ha_leader: None,
            snapshots: BTreeMap::new(),
            completed_attempts: BTreeMap::new(),
            completed: BTreeSet::new(),
            finished: BTreeSet::new(),
            latest: BTreeMap::new(),
        }
    }

    /// What is wrong with `attempt` restoring `state` from checkpoint `n` of `job_id`.
    fn check_restore(
        &self,
        job_id: JobId,
        n: CheckpointId,
        attempt: &ExecutionAttemptId,
        state: &StateDigest,
    ) -> Option<String> {
        let who = format!("{} restored checkpoint {n}", attempt_name(attempt));
        if !self.completed.contains(&(job_id, n)) {
            return Some(format!("{who}, which never completed"));
        }
        let Some(owner) = self.completed_attempts.get(&(job_id, n, attempt.vertex)) else {
            // The checkpoint holds no state of this vertex: there is nothing to restore, except
            // that a vertex that had finished restores as finished (FLIP-147).
            let expected = TaskStateSnapshot {
                end_of_input: self.finished.contains(&(job_id, n, attempt.vertex)),
                ..TaskStateSnapshot::default()
            };
            return (*state != expected.digest()).then(|| {
                format!(
                    "{who}, which holds no state of vertex {} subtask {}, yet restored {}",
                    attempt.vertex.vertex.0,
                    attempt.vertex.subtask,
                    describe(state)
                )
            });
        };
        let snapshot = self
            .snapshots
            .get(&(job_id, n))
            .and_then(|of_checkpoint| of_checkpoint.get(owner));
        let Some(snapshot) = snapshot else {
            return Some(format!(
                "{who}, whose state of {} was never snapshotted",
                attempt_name(owner)
            ));
        };
        let of = format!("the snapshot of {}", attempt_name(owner));
        first_difference(state, snapshot).map(|d| format!("{who}, but {d} ({of})"))
    }
}

fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort_unstable();
    v
}

fn offsets(offsets: &[(u32, u64)]) -> String {
    let parts: Vec<String> = offsets
        .iter()
        .map(|(p, o)| format!("partition {p} at {o}"))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn transactions(txns: &[(CheckpointId, TxnId)]) -> String {
    let parts: Vec<String> = txns
        .iter()
        .map(|(n, t)| {
            format!(
                "checkpoint {n}: subtask {} epoch {} #{}",
                t.subtask, t.epoch, t.n
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn describe(state: &StateDigest) -> String {
    format!(
        "offsets {}, {} keyed entries, pending transactions {}",
        offsets(&state.source_offsets),
        state.keyed_entries,
        transactions(&state.pending_transactions)
    )
}

/// The first difference between a restored state and its snapshot, in words.
fn first_difference(restored: &StateDigest, snapshot: &StateDigest) -> Option<String> {
    let (r, s) = (
        sorted(&restored.source_offsets),
        sorted(&snapshot.source_offsets),
    );
    if r != s {
        return Some(format!(
            "source offsets differ: restored {}, snapshotted {}",
            offsets(&r),
            offsets(&s)
        ));
    }
    if (restored.keyed_entries, restored.keyed_hash)
        != (snapshot.keyed_entries, snapshot.keyed_hash)
    {
        return Some(format!(
            "keyed state differs: restored {} entries (hash {:016x}), snapshotted {} entries (hash {:016x})",
            restored.keyed_entries, restored.keyed_hash, snapshot.keyed_entries, snapshot.keyed_hash
        ));
    }
    let (r, s) = (
        sorted(&restored.pending_transactions),
        sorted(&snapshot.pending_transactions),
    );
    if r != s {
        return Some(format!(
            "pending transactions differ: restored {}, snapshotted {}",
            transactions(&r),
            transactions(&s)
        ));
    }
    if restored.end_of_input != snapshot.end_of_input {
        return Some(format!(
            "end of input differs: restored {}, snapshotted {}",
            restored.end_of_input, snapshot.end_of_input
        ));
    }
    None
}

impl Oracle for RestoredState {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            if !self.ha {
                self.latest.retain(|(node, _), _| *node != n);
            }
            return;
        }
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let at = *node;
        // With HA the CompletedCheckpointStore outlives JobMasters: one history per job.
        let node = if self.ha { NodeId(u32::MAX) } else { at };
        let why = match obs {
            Obs::JobStatusChanged {
                job_id, from: None, ..
            } => {
                // A new JobMaster instance: a fresh checkpoint store (without HA).
                if !self.ha {
                    self.latest.remove(&(node, *job_id));
                }
                None
            }
            Obs::SnapshotTaken {
                job_id,
                checkpoint_id,
                attempt,
                state,
            } => {
                self.snapshots
                    .entry((*job_id, *checkpoint_id))
                    .or_default()
                    .insert(*attempt, state.clone());
                None
            }
            Obs::CheckpointAborted {
                job_id,
                checkpoint_id,
                ..
            } => {
                // Nothing restores an aborted checkpoint (a restore of one is caught above).
                if !self.completed.contains(&(*job_id, *checkpoint_id)) {
                    self.snapshots.remove(&(*job_id, *checkpoint_id));
                }
                None
            }
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                handles,
                finished,
            }
            | Obs::CheckpointPointerStored {
                job_id,
                checkpoint_id,
                handles,
                finished,
            } => {
                self.completed.insert((*job_id, *checkpoint_id));
                for v in finished {
                    self.finished.insert((*job_id, *checkpoint_id, *v));
                }
                for h in handles {
                    self.completed_attempts
                        .insert((*job_id, *checkpoint_id, h.vertex()), h.attempt);
                }
                let latest = self.latest.entry((node, *job_id)).or_insert(*checkpoint_id);
                *latest = (*latest).max(*checkpoint_id);
                None
            }
            Obs::HaLeader { node, .. } => {
                self.ha_leader = *node;
                None
            }
            Obs::RestoreDecided { .. } if self.ha && self.ha_leader != Some(at) => None,
            Obs::RestoreDecided {
                job_id,
                checkpoint_id,
                ..
            } => {
                let latest = self.latest.get(&(node, *job_id)).copied();
                (*checkpoint_id != latest).then(|| {
                    let chosen = match checkpoint_id {
                        Some(n) => format!("restore from checkpoint {n}"),
                        None => "restore without a checkpoint (from the start)".to_string(),
                    };
                    let latest = match latest {
                        Some(n) => format!("checkpoint {n} is the latest completed"),
                        None => "no checkpoint completed".to_string(),
                    };
                    format!("job {job_id:x}: {chosen} but {latest}")
                })
            }
            Obs::StateRestored {
                job_id,
                checkpoint_id,
                attempt,
                state,
            } => self
                .check_restore(*job_id, *checkpoint_id, attempt, state)
                .map(|why| format!("job {job_id:x}: {why}")),
            _ => None,
        };
        if let Some(message) = why {
            out.push(Violation {
                invariant: INVARIANT.name,
                at: ev.time,
                node: Some(at),
                message,
            });
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1, TM2};
    use crate::protocol::checkpoint::StateHandleId;
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::job_graph::JobVertexId;
    use crate::protocol::states::JobStatus;
    use sim::Fault;

    fn attempt(vertex: u32, n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(vertex),
                subtask: 0,
            },
            attempt: n,
        }
    }

    fn digest(offset: u64, keyed_hash: u64) -> StateDigest {
        StateDigest {
            source_offsets: vec![(0, offset), (1, offset + 1)],
            keyed_entries: 3,
            keyed_hash,
            pending_transactions: vec![],
            end_of_input: false,
        }
    }

    fn snapshot(checkpoint_id: CheckpointId, a: ExecutionAttemptId, state: StateDigest) -> Step {
        Step::Obs(
            TM1,
            Obs::SnapshotTaken {
                job_id: 5,
                checkpoint_id,
                attempt: a,
                state,
            },
        )
    }

    fn completed(checkpoint_id: CheckpointId, attempts: &[ExecutionAttemptId]) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointCompleted {
                job_id: 5,
                checkpoint_id,
                handles: attempts
                    .iter()
                    .map(|a| StateHandleId {
                        job_id: 5,
                        checkpoint_id,
                        attempt: *a,
                    })
                    .collect(),
                finished: vec![],
            },
        )
    }

    fn decided(checkpoint_id: Option<CheckpointId>) -> Step {
        Step::Obs(
            JM,
            Obs::RestoreDecided {
                job_id: 5,
                checkpoint_id,
                vertices: 2,
                global: true,
            },
        )
    }

    fn restored(checkpoint_id: CheckpointId, a: ExecutionAttemptId, state: StateDigest) -> Step {
        Step::Obs(
            TM2,
            Obs::StateRestored {
                job_id: 5,
                checkpoint_id,
                attempt: a,
                state,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = RestoredState::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(100_000))
    }

    /// Two checkpoints of a source (vertex 0) and a count (vertex 1); in checkpoint 2 the
    /// source's first attempt snapshotted, failed, and its second attempt's snapshot is the one
    /// that completed.
    fn history() -> Vec<(u64, Step)> {
        vec![
            (1_000, snapshot(1, attempt(0, 0), digest(10, 0xa))),
            (1_000, snapshot(1, attempt(1, 0), digest(0, 0xb))),
            (1_100, completed(1, &[attempt(0, 0), attempt(1, 0)])),
            (2_000, snapshot(2, attempt(0, 0), digest(20, 0xc))),
            (2_500, snapshot(2, attempt(0, 1), digest(25, 0xc))),
            (2_500, snapshot(2, attempt(1, 0), digest(0, 0xd))),
            (2_600, completed(2, &[attempt(0, 1), attempt(1, 0)])),
        ]
    }

    #[test]
    fn a_restore_of_the_latest_checkpoint_with_its_snapshots_holds() {
        let mut steps = history();
        let mut offsets_reordered = digest(25, 0xc);
        offsets_reordered.source_offsets.reverse();
        steps.extend([
            (3_000, decided(Some(2))),
            (3_100, restored(2, attempt(0, 2), offsets_reordered)),
            (3_100, restored(2, attempt(1, 1), digest(0, 0xd))),
        ]);
        assert_eq!(check(&steps), vec![]);
        // Before any completion, a restore starts from scratch.
        assert_eq!(check(&[(500, decided(None))]), vec![]);
    }

    #[test]
    fn a_restore_of_an_older_checkpoint_is_caught() {
        let mut steps = history();
        steps.push((3_000, decided(Some(1))));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].node, Some(JM));
        assert_eq!(
            v[0].message,
            "job 5: restore from checkpoint 1 but checkpoint 2 is the latest completed"
        );
        // A new JobMaster process starts without completed checkpoints.
        let mut steps = history();
        steps.extend([
            (2_800, Step::Fault(Fault::Kill(JM))),
            (3_000, decided(Some(2))),
        ]);
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.ends_with("but no checkpoint completed"),
            "{}",
            v[0].message
        );
        let mut steps = history();
        steps.extend([
            (
                2_800,
                Step::Obs(
                    JM,
                    Obs::JobStatusChanged {
                        job_id: 5,
                        job_master_id: 10,
                        from: None,
                        to: JobStatus::Created,
                    },
                ),
            ),
            (3_000, decided(None)),
        ]);
        assert_eq!(check(&steps), vec![]);
    }

    #[test]
    fn restored_offsets_that_differ_from_the_snapshot_are_caught() {
        // OffsetsNotInSnapshot: the source restores no offsets and rereads from the start.
        let mut steps = history();
        let mut lost = digest(25, 0xc);
        lost.source_offsets.clear();
        steps.push((3_100, restored(2, attempt(0, 2), lost)));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].node, Some(TM2));
        assert_eq!(
            v[0].message,
            "job 5: vertex 0 subtask 0 attempt 2 restored checkpoint 2, but source offsets differ: restored [], snapshotted [partition 0 at 25, partition 1 at 26] (the snapshot of vertex 0 subtask 0 attempt 1)"
        );
        // The failed attempt's snapshot of checkpoint 2 is not the one restored.
        let mut steps = history();
        steps.push((3_100, restored(2, attempt(0, 2), digest(20, 0xc))));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn restored_keyed_state_or_transactions_that_differ_are_caught() {
        let mut steps = history();
        steps.push((3_100, restored(2, attempt(1, 1), digest(0, 0xe))));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("keyed state differs: restored 3 entries (hash 000000000000000e), snapshotted 3 entries (hash 000000000000000d)"),
            "{}",
            v[0].message
        );
        let mut with_txn = digest(0, 0xd);
        with_txn.pending_transactions = vec![(
            2,
            TxnId {
                job_id: 5,
                subtask: 0,
                epoch: 1,
                n: 4,
            },
        )];
        let mut steps = history();
        steps.push((3_100, restored(2, attempt(1, 1), with_txn)));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "pending transactions differ: restored [checkpoint 2: subtask 0 epoch 1 #4], snapshotted []"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_vertex_without_state_in_the_checkpoint_restores_nothing() {
        let mut steps = history();
        steps.push((
            3_100,
            restored(2, attempt(2, 1), TaskStateSnapshot::default().digest()),
        ));
        assert_eq!(check(&steps), vec![]);
        let mut steps = history();
        steps.push((3_100, restored(2, attempt(2, 1), digest(25, 0xc))));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "restored checkpoint 2, which holds no state of vertex 2 subtask 0, yet restored offsets [partition 0 at 25, partition 1 at 26]"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_restore_of_a_checkpoint_that_never_completed_is_caught() {
        let mut steps = history();
        steps.push((3_000, snapshot(3, attempt(0, 1), digest(30, 0xc))));
        steps.push((3_100, restored(3, attempt(0, 2), digest(30, 0xc))));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.ends_with(
                "vertex 0 subtask 0 attempt 2 restored checkpoint 3, which never completed"
            ),
            "{}",
            v[0].message
        );
    }
}
