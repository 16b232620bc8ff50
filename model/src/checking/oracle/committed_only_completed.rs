//! Committed only after completion (always): a two-phase-commit sink commits the transaction
//! pre-committed for checkpoint n only once checkpoint n, or a later checkpoint, is complete
//! (docs/flink-runtime.md §8.1: commit on `notifyCheckpointComplete(m)` of every transaction pending for a
//! checkpoint ≤ m, never on the barrier). A later checkpoint counts because a transaction whose
//! own checkpoint was aborted stays pending and is part of the next checkpoint's state. A
//! transaction committed before any covering checkpoint completed makes output visible that a
//! restore will produce again.
//!
//! Ground truth: the coordinators' `CheckpointCompleted` and `CheckpointAborted` reports per job,
//! and the sink's `TransactionCommitted` (its first commit of a transaction), whose transaction
//! id names the job and whose `checkpoint_id` the checkpoint it was pre-committed for. A commit
//! without a checkpoint (at the end of the input) is allowed only when checkpointing is disabled.

use super::{Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, TxnId};
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Time};
use std::collections::BTreeSet;

pub const INVARIANT: Invariant = Invariant {
    name: "committed-only-completed",
    kind: Kind::Always,
    description: "a sink transaction pre-committed for checkpoint n is committed only after checkpoint n or a later one completed (notifyCheckpointComplete), never on the barrier",
};

/// A sink transaction as a Flink engineer reads it: "transaction subtask 0 epoch 1 #3".
pub(crate) fn transaction_name(txn: &TxnId) -> String {
    format!(
        "transaction subtask {} epoch {} #{}",
        txn.subtask, txn.epoch, txn.n
    )
}

pub struct CommittedOnlyCompleted {
    checkpointing: bool,
    completed: BTreeSet<(JobId, CheckpointId)>,
    aborted: BTreeSet<(JobId, CheckpointId)>,
}

impl CommittedOnlyCompleted {
    pub fn new(setup: &Setup) -> CommittedOnlyCompleted {
        CommittedOnlyCompleted {
            checkpointing: setup.config.checkpointing.is_some(),
            completed: BTreeSet::new(),
            aborted: BTreeSet::new(),
        }
    }
}

impl Oracle for CommittedOnlyCompleted {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        match obs {
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                ..
            }
            | Obs::CheckpointPointerStored {
                job_id,
                checkpoint_id,
                ..
            } => {
                self.completed.insert((*job_id, *checkpoint_id));
            }
            Obs::CheckpointAborted {
                job_id,
                checkpoint_id,
                ..
            } => {
                self.aborted.insert((*job_id, *checkpoint_id));
            }
            Obs::TransactionCommitted {
                txn, checkpoint_id, ..
            } => {
                let why = match checkpoint_id {
                    None if self.checkpointing => Some(
                        "without a checkpoint, but checkpointing is enabled: only notifyCheckpointComplete may commit"
                            .to_string(),
                    ),
                    None => None,
                    // Flink's `notifyCheckpointComplete(m)` commits every transaction pending
                    // for a checkpoint ≤ m: one pre-committed for an aborted checkpoint n is
                    // part of checkpoint m's state and commits with it (docs/flink-runtime.md §8.1).
                    Some(n)
                        if self
                            .completed
                            .range((txn.job_id, *n)..=(txn.job_id, CheckpointId::MAX))
                            .next()
                            .is_some() =>
                    {
                        None
                    }
                    Some(n) if self.aborted.contains(&(txn.job_id, *n)) => Some(format!(
                        "for checkpoint {n}, which was aborted, before any later checkpoint completed"
                    )),
                    Some(n) => Some(format!(
                        "for checkpoint {n}, before it (or any later checkpoint) completed"
                    )),
                };
                if let Some(why) = why {
                    out.push(Violation {
                        invariant: INVARIANT.name,
                        at: ev.time,
                        node: Some(*node),
                        message: format!(
                            "{} of job {:x} committed {why}",
                            transaction_name(txn),
                            txn.job_id
                        ),
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM};
    use crate::protocol::checkpoint::{CheckpointConfig, CheckpointingMode};
    use crate::protocol::config::FlinkConfig;
    use sim::NodeId;
    use std::sync::Arc;
    use std::time::Duration;

    const SINK: NodeId = NodeId(2);

    fn txn(n: u64) -> TxnId {
        TxnId {
            job_id: 5,
            subtask: 0,
            epoch: 1,
            n,
        }
    }

    fn completed(checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointCompleted {
                job_id: 5,
                checkpoint_id,
                handles: vec![],
                finished: vec![],
            },
        )
    }

    fn aborted(checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointAborted {
                job_id: 5,
                checkpoint_id,
                reason: "CHECKPOINT_EXPIRED".into(),
            },
        )
    }

    fn pre_committed(n: u64, checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            SINK,
            Obs::TransactionPreCommitted {
                txn: txn(n),
                checkpoint_id,
            },
        )
    }

    fn committed(n: u64, checkpoint_id: Option<CheckpointId>) -> Step {
        Step::Obs(
            SINK,
            Obs::TransactionCommitted {
                txn: txn(n),
                checkpoint_id,
                records: Arc::from(Vec::new()),
            },
        )
    }

    fn check(checkpointing: bool, steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut config = FlinkConfig::default();
        config.checkpointing = checkpointing.then_some(CheckpointConfig {
            interval: Duration::from_secs(1),
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failed: 0,
            num_retained: 1,
        });
        let mut oracle = CommittedOnlyCompleted::new(&setup(config));
        feed(&mut oracle, w.census(), steps, Some(100_000))
    }

    #[test]
    fn commits_after_notify_checkpoint_complete_hold() {
        let steps = [
            (1_000, pre_committed(1, 1)),
            (1_100, completed(1)),
            (1_200, committed(1, Some(1))),
            (2_000, pre_committed(2, 2)),
            (2_100, completed(2)),
            (2_200, committed(2, Some(2))),
        ];
        assert_eq!(check(true, &steps), vec![]);
        // A transaction of an aborted checkpoint commits with the next completed one.
        let later = [
            (1_000, pre_committed(1, 1)),
            (1_100, aborted(1)),
            (2_000, completed(2)),
            (2_100, committed(1, Some(1))),
        ];
        assert_eq!(check(true, &later), vec![]);
        // Without checkpointing the sink commits at the end of the input.
        assert_eq!(check(false, &[(9_000, committed(1, None))]), vec![]);
    }

    #[test]
    fn a_commit_on_the_barrier_is_caught() {
        // SinkCommitOnBarrier: the commit comes with the pre-commit, before completion.
        let steps = [
            (1_000, pre_committed(3, 5)),
            (1_000, committed(3, Some(5))),
            (1_100, completed(5)),
        ];
        let v = check(true, &steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Time::from_millis(1_000));
        assert_eq!(v[0].node, Some(SINK));
        assert_eq!(
            v[0].message,
            "transaction subtask 0 epoch 1 #3 of job 5 committed for checkpoint 5, before it (or any later checkpoint) completed"
        );
    }

    #[test]
    fn a_commit_for_an_aborted_checkpoint_or_without_one_is_caught() {
        let steps = [
            (1_000, pre_committed(3, 5)),
            (2_000, aborted(5)),
            (2_100, committed(3, Some(5))),
        ];
        let v = check(true, &steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .ends_with("committed for checkpoint 5, which was aborted, before any later checkpoint completed"),
            "{}",
            v[0].message
        );
        // Another job's completed checkpoint 5 does not count.
        let other = Step::Obs(
            JM,
            Obs::CheckpointCompleted {
                job_id: 6,
                checkpoint_id: 5,
                handles: vec![],
                finished: vec![],
            },
        );
        let v = check(true, &[(1_000, other), (1_100, committed(3, Some(5)))]);
        assert_eq!(v.len(), 1, "{v:?}");
        let v = check(true, &[(9_000, committed(1, None))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("without a checkpoint, but checkpointing is enabled"),
            "{}",
            v[0].message
        );
    }
}
