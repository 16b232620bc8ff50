//! Commits cover completed checkpoints (eventually): once `notifyCheckpointComplete(n)` has
//! reached a sink subtask, every transaction of that subtask that belongs to a completed
//! checkpoint <= n gets committed (docs/flink-runtime.md §8.1: notifications may be skipped or
//! lost, so a two-phase-commit sink commits *every* pending transaction up to n, and a restored
//! writer commits the ones its checkpoint lists). A transaction belongs to checkpoint c when it
//! was pre-committed for c or is among the pending transactions of the subtask's snapshot in c
//! (a transaction pre-committed for a checkpoint that then expired is carried by the next one).
//!
//! Ground truth, all from the trace: which attempts are sink writers of which (job, subtask)
//! (the `sink` node's persisted `SinkOp::Epoch`), the deliveries of `notifyCheckpointComplete`
//! to those attempts' TaskExecutors, the tasks' `SnapshotTaken` (their pending transactions),
//! the completed checkpoints and their state handles (the coordinator's `CheckpointCompleted`,
//! and with HA the `ha` node's `CheckpointPointerStored`), and the `sink`'s reports of
//! transactions pre-committed, committed and aborted.
//!
//! Judged at the end of the run, when the run is quiet ([`super::Quiet`]: no partition, clog
//! or pause in force) and both the last fault and the notification lie at least the
//! job-liveness bound + `pekko.ask.timeout` + four network latencies back (a sink that failed
//! right after the notification is restored and commits on `initTransactions`) — or, sooner, once
//! the writer attempt that got the notification kept getting later ones for `pekko.ask.timeout`
//! and four latencies after it and the last fault: a running writer commits, and re-sends its
//! commits, on its own. Jobs that ended
//! FAILED or CANCELED, and jobs whose JobMaster died with nobody to recover them, are not
//! judged: Flink commits a lost commit only on recovery, and none will come.
//!
//! This oracle does not judge commits that come too early (`committed-only-completed`) nor
//! what is committed (`exactly-once`) nor transactions left open (`no-lingering-transactions`).

use super::committed_only_completed::transaction_name;
use super::job_liveness::liveness_bound;
use super::{attempt_name, process_died, secs, Invariant, Kind, Oracle, Quiet, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, TxnId};
use crate::protocol::durable::{DurableOp, SinkOp};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{Msg, TaskExecutorRpc};
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "commits-cover-completed",
    kind: Kind::Eventually,
    description: "once notifyCheckpointComplete(n) reached a sink subtask and the faults stopped for the job-liveness bound + pekko.ask.timeout, every transaction of that subtask belonging to a completed checkpoint <= n (pre-committed for it, or pending in its snapshot) is committed",
};

/// How many transactions a message names before "and n more".
const SHOWN: usize = 4;

/// The latest notification that reached a sink subtask.
#[derive(Clone, Copy, Debug)]
struct Notified {
    checkpoint_id: CheckpointId,
    at: Time,
    attempt: ExecutionAttemptId,
    task_manager: NodeId,
}

pub struct CommitsCoverCompleted {
    bound: Duration,
    /// How long a running writer may take to commit after a notification: the ask timeout and
    /// four latencies (its commits are re-sent on every task tick).
    slack: Duration,
    quiet: Quiet,
    /// Sink writer attempts -> (job, subtask).
    writers: BTreeMap<ExecutionAttemptId, (JobId, u32)>,
    /// (job, subtask) -> the notifications that reached one of its writers, each one for a
    /// higher checkpoint than the one before.
    notified: BTreeMap<(JobId, u32), Vec<Notified>>,
    /// (job, checkpoint, attempt) -> the pending transactions of that snapshot.
    snapshots: BTreeMap<(JobId, CheckpointId, ExecutionAttemptId), Vec<TxnId>>,
    /// Transaction -> the lowest completed checkpoint it belongs to.
    belongs: BTreeMap<TxnId, CheckpointId>,
    /// Transaction -> the checkpoint it was pre-committed for.
    pre_committed_for: BTreeMap<TxnId, CheckpointId>,
    completed: BTreeSet<(JobId, CheckpointId)>,
    /// Transactions pre-committed and not committed -> (checkpoint, aborted since).
    uncommitted: BTreeMap<TxnId, (CheckpointId, bool)>,
    /// Job -> the node of its current JobMaster (`None`: it died, nobody took over).
    owner: BTreeMap<JobId, Option<NodeId>>,
    /// Jobs that ended FAILED or CANCELED.
    abandoned: BTreeSet<JobId>,
}

impl CommitsCoverCompleted {
    pub fn new(setup: &Setup) -> CommitsCoverCompleted {
        CommitsCoverCompleted {
            bound: liveness_bound(&setup.config) + setup.config.ask_timeout + setup.latency_max * 4,
            slack: setup.config.ask_timeout + setup.latency_max * 4,
            quiet: Quiet::default(),
            writers: BTreeMap::new(),
            notified: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            belongs: BTreeMap::new(),
            pre_committed_for: BTreeMap::new(),
            completed: BTreeSet::new(),
            uncommitted: BTreeMap::new(),
            owner: BTreeMap::new(),
            abandoned: BTreeSet::new(),
        }
    }

    fn on_obs(&mut self, node: NodeId, obs: &Obs) {
        match obs {
            Obs::SnapshotTaken {
                job_id,
                checkpoint_id,
                attempt,
                state,
            } if !state.pending_transactions.is_empty() => {
                let txns = state.pending_transactions.iter().map(|(_, t)| *t).collect();
                self.snapshots
                    .insert((*job_id, *checkpoint_id, *attempt), txns);
            }
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                handles,
                ..
            }
            | Obs::CheckpointPointerStored {
                job_id,
                checkpoint_id,
                handles,
                ..
            } => {
                let c = *checkpoint_id;
                self.completed.insert((*job_id, c));
                let mut members: Vec<TxnId> = handles
                    .iter()
                    .filter_map(|h| self.snapshots.get(&(*job_id, c, h.attempt)))
                    .flatten()
                    .copied()
                    .collect();
                members.extend(
                    self.pre_committed_for
                        .iter()
                        .filter(|(t, id)| t.job_id == *job_id && **id == c)
                        .map(|(t, _)| *t),
                );
                for txn in members {
                    let lowest = self.belongs.entry(txn).or_insert(c);
                    *lowest = (*lowest).min(c);
                }
            }
            Obs::TransactionPreCommitted { txn, checkpoint_id } => {
                self.uncommitted.insert(*txn, (*checkpoint_id, false));
                self.pre_committed_for.insert(*txn, *checkpoint_id);
                if self.completed.contains(&(txn.job_id, *checkpoint_id)) {
                    let lowest = self.belongs.entry(*txn).or_insert(*checkpoint_id);
                    *lowest = (*lowest).min(*checkpoint_id);
                }
            }
            Obs::TransactionCommitted { txn, .. } => {
                self.uncommitted.remove(txn);
            }
            Obs::TransactionAborted { txn } => {
                if let Some((_, aborted)) = self.uncommitted.get_mut(txn) {
                    *aborted = true;
                }
            }
            Obs::JobStatusChanged {
                job_id, from, to, ..
            } => {
                if from.is_none() {
                    self.owner.insert(*job_id, Some(node));
                }
                if matches!(to, JobStatus::Failed | JobStatus::Canceled) {
                    self.abandoned.insert(*job_id);
                }
            }
            _ => {}
        }
    }

    /// The uncommitted transactions of (job, subtask) that a notification in `notes` covers,
    /// each with the first notification that did (the `judged` filter, given that one and the
    /// last notification of the same writer attempt, says which are judged).
    fn overdue(
        &self,
        job_id: JobId,
        subtask: u32,
        notes: &[Notified],
        judged: impl Fn(&Notified, &Notified) -> bool,
    ) -> Vec<(String, Notified, Notified)> {
        self.uncommitted
            .iter()
            .filter(|(txn, _)| txn.job_id == job_id && txn.subtask == subtask)
            .filter_map(|(txn, (c, aborted))| {
                let belongs = *self.belongs.get(txn)?;
                let first = *notes.iter().find(|n| n.checkpoint_id >= belongs)?;
                let last = notes
                    .iter()
                    .rev()
                    .find(|n| n.attempt == first.attempt)
                    .expect("the first one at least");
                if !judged(&first, last) {
                    return None;
                }
                let state = if *aborted {
                    "aborted"
                } else {
                    "still pre-committed"
                };
                let of = if belongs == *c {
                    format!("checkpoint {c}")
                } else {
                    format!("pre-committed for checkpoint {c}, in completed checkpoint {belongs}")
                };
                Some((
                    format!("{} ({of}, {state})", transaction_name(txn)),
                    first,
                    *last,
                ))
            })
            .collect()
    }
}

impl Oracle for CommitsCoverCompleted {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        self.quiet.observe(ev);
        if let Some(n) = process_died(ev) {
            self.quiet.last_fault = ev.time;
            for owner in self.owner.values_mut() {
                if *owner == Some(n) {
                    *owner = None;
                }
            }
            return;
        }
        match &ev.kind {
            EventKind::Persist {
                op:
                    DurableOp::Sink(SinkOp::Epoch {
                        job_id,
                        subtask,
                        writer,
                        ..
                    }),
                ..
            } => {
                self.writers.insert(*writer, (*job_id, *subtask));
            }
            EventKind::Deliver {
                to,
                msg:
                    Msg::TaskExecutor(TaskExecutorRpc::NotifyCheckpointComplete {
                        attempt,
                        checkpoint_id,
                    }),
                ..
            } => {
                if let Some(&key) = self.writers.get(attempt) {
                    let notes = self.notified.entry(key).or_default();
                    if notes
                        .last()
                        .is_none_or(|n| n.checkpoint_id < *checkpoint_id)
                    {
                        notes.push(Notified {
                            checkpoint_id: *checkpoint_id,
                            at: ev.time,
                            attempt: *attempt,
                            task_manager: *to,
                        });
                    }
                }
            }
            EventKind::Obs { node, obs } => self.on_obs(*node, obs),
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        if !self.quiet.judged(census) {
            return;
        }
        let bound = Quiet::stretched(census, self.bound);
        let slack = Quiet::stretched(census, self.slack);
        let last_fault = self.quiet.last_fault;
        let since = |n: &Notified| last_fault.max(n.at);
        for (&(job_id, subtask), notes) in &self.notified {
            let owned = self.owner.get(&job_id).is_some_and(|o| o.is_some());
            if self.abandoned.contains(&job_id) || !owned {
                continue;
            }
            // Judged once the bound passed since the covering notification (and the faults), or
            // once the same writer attempt, alive, kept getting notifications for the retry
            // slack after it: a running writer commits (and re-sends its commits) on its own.
            let overdue = self.overdue(job_id, subtask, notes, |n, last| {
                end.saturating_since(since(n)) >= bound
                    || last.at.saturating_since(since(n)) >= slack
            });
            let Some(&(_, n, last)) = overdue.first() else {
                continue;
            };
            let names: Vec<&str> = overdue.iter().map(|(t, _, _)| t.as_str()).collect();
            let mut named = names[..names.len().min(SHOWN)].join(", ");
            if names.len() > SHOWN {
                named += &format!(", and {} more", names.len() - SHOWN);
            }
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: Some(n.task_manager),
                message: format!(
                    "job {job_id:x} sink subtask {subtask}: notifyCheckpointComplete({}) reached {} on {} at {}, but {named} of completed checkpoints <= {} {} uncommitted {} later (bound {}{}); a two-phase-commit sink commits every pending transaction up to the notified checkpoint",
                    n.checkpoint_id,
                    attempt_name(&n.attempt),
                    census.name(n.task_manager),
                    n.at,
                    n.checkpoint_id,
                    if names.len() == 1 { "is" } else { "are" },
                    secs(end.saturating_since(since(&n))),
                    secs(bound),
                    if last.at > n.at {
                        format!(
                            "; the same attempt, running, got notifications until {} ({} after)",
                            last.at,
                            secs(last.at.saturating_since(since(&n)))
                        )
                    } else {
                        String::new()
                    }
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{self, feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;
    use sim::Fault;

    const SINK: NodeId = NodeId(2);

    fn writer() -> ExecutionAttemptId {
        testing::attempt(2, 0, 0)
    }

    fn txn(n: u64) -> TxnId {
        TxnId {
            job_id: 5,
            subtask: 0,
            epoch: 1,
            n,
        }
    }

    /// A running job whose sink writer pre-commits transaction k for checkpoint k (k = 1, 2)
    /// and both checkpoints complete; `notified` says which notifications reach the writer.
    fn history(notified: &[CheckpointId], committed: &[u64]) -> Vec<(u64, Step)> {
        let mut steps = vec![(
            0,
            Step::Obs(
                JM,
                Obs::JobStatusChanged {
                    job_id: 5,
                    job_master_id: 9,
                    from: None,
                    to: JobStatus::Created,
                },
            ),
        )];
        steps.push((
            500,
            Step::Persist(
                SINK,
                DurableOp::Sink(SinkOp::Epoch {
                    job_id: 5,
                    subtask: 0,
                    epoch: 1,
                    writer: writer(),
                }),
            ),
        ));
        for k in 1..=2 {
            steps.push((
                k * 1_000,
                Step::Obs(
                    SINK,
                    Obs::TransactionPreCommitted {
                        txn: txn(k),
                        checkpoint_id: k,
                    },
                ),
            ));
            steps.push((
                k * 1_000 + 100,
                Step::Obs(
                    JM,
                    Obs::CheckpointCompleted {
                        job_id: 5,
                        checkpoint_id: k,
                        handles: vec![],
                        finished: vec![],
                    },
                ),
            ));
            if notified.contains(&k) {
                steps.push((
                    k * 1_000 + 200,
                    Step::Deliver(
                        JM,
                        TM1,
                        Msg::TaskExecutor(TaskExecutorRpc::NotifyCheckpointComplete {
                            attempt: writer(),
                            checkpoint_id: k,
                        }),
                    ),
                ));
            }
            if committed.contains(&k) {
                steps.push((
                    k * 1_000 + 300,
                    Step::Obs(
                        SINK,
                        Obs::TransactionCommitted {
                            txn: txn(k),
                            checkpoint_id: Some(k),
                            records: std::sync::Arc::from([]),
                        },
                    ),
                ));
            }
        }
        steps
    }

    fn check(steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = CommitsCoverCompleted::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn every_transaction_up_to_the_notified_checkpoint_committed_holds() {
        // Notification 1 was lost; notification 2 commits both.
        let steps = history(&[2], &[1, 2]);
        assert_eq!(check(&steps, 400_000), vec![]);
    }

    #[test]
    fn a_transaction_left_behind_by_a_skipped_notification_is_caught_and_named() {
        let steps = history(&[2], &[2]);
        // Too early to judge.
        assert_eq!(check(&steps, 60_000), vec![]);
        let v = check(&steps, 400_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "notifyCheckpointComplete(2) reached vertex 2 subtask 0 attempt 0 on taskmanager-1 at 2.200s, but transaction subtask 0 epoch 1 #1 (checkpoint 1, still pre-committed) of completed checkpoints <= 2 is uncommitted"
            ),
            "{}",
            v[0].message
        );
    }

    /// Later notifications (checkpoints 3 and 4, at 20 s and 40 s) to `attempt`.
    fn later_notifications(steps: &mut Vec<(u64, Step)>, attempt: ExecutionAttemptId) {
        for (k, at) in [(3, 20_000), (4, 40_000)] {
            steps.push((
                at,
                Step::Deliver(
                    JM,
                    TM1,
                    Msg::TaskExecutor(TaskExecutorRpc::NotifyCheckpointComplete {
                        attempt,
                        checkpoint_id: k,
                    }),
                ),
            ));
        }
    }

    #[test]
    fn a_running_writer_that_keeps_getting_notifications_is_judged_before_the_bound() {
        let mut steps = history(&[2], &[2]);
        later_notifications(&mut steps, writer());
        let v = check(&steps, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("the same attempt, running, got notifications until 40.000s"),
            "{}",
            v[0].message
        );
        // Notifications to another attempt (a restored writer, which commits on its own) do not
        // shorten the wait.
        let mut steps = history(&[2], &[2]);
        steps.push((
            10_000,
            Step::Persist(
                SINK,
                DurableOp::Sink(SinkOp::Epoch {
                    job_id: 5,
                    subtask: 0,
                    epoch: 2,
                    writer: testing::attempt(2, 0, 1),
                }),
            ),
        ));
        later_notifications(&mut steps, testing::attempt(2, 0, 1));
        assert_eq!(check(&steps, 60_000), vec![]);
    }

    #[test]
    fn a_transaction_of_an_expired_checkpoint_carried_by_the_next_is_judged_with_it() {
        // Transaction 1 was pre-committed for checkpoint 1, which expired; checkpoint 2's
        // snapshot carries it as pending, so notification 2 must commit it too.
        let mut steps: Vec<(u64, Step)> = history(&[2], &[2])
            .into_iter()
            .filter(|(_, s)| {
                !matches!(
                    s,
                    Step::Obs(
                        _,
                        Obs::CheckpointCompleted {
                            checkpoint_id: 1,
                            ..
                        }
                    )
                )
            })
            .collect();
        let handle = crate::protocol::checkpoint::StateHandleId {
            job_id: 5,
            checkpoint_id: 2,
            attempt: writer(),
        };
        let snapshot = Step::Obs(
            TM1,
            Obs::SnapshotTaken {
                job_id: 5,
                checkpoint_id: 2,
                attempt: writer(),
                state: crate::protocol::checkpoint::StateDigest {
                    pending_transactions: vec![(1, txn(1)), (2, txn(2))],
                    ..Default::default()
                },
            },
        );
        steps.insert(4, (2_050, snapshot));
        for step in &mut steps {
            if let Step::Obs(
                _,
                Obs::CheckpointCompleted {
                    checkpoint_id: 2,
                    handles,
                    ..
                },
            ) = &mut step.1
            {
                *handles = vec![handle];
            }
        }
        let v = check(&steps, 400_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "transaction subtask 0 epoch 1 #1 (pre-committed for checkpoint 1, in completed checkpoint 2, still pre-committed)"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_job_lost_with_its_jobmaster_or_failed_is_not_judged() {
        let mut steps = history(&[2], &[2]);
        steps.push((3_000, Step::Fault(Fault::Kill(JM))));
        assert_eq!(check(&steps, 400_000), vec![]);
        let mut steps = history(&[2], &[2]);
        steps.push((
            3_000,
            Step::Obs(
                JM,
                Obs::JobStatusChanged {
                    job_id: 5,
                    job_master_id: 9,
                    from: Some(JobStatus::Failing),
                    to: JobStatus::Failed,
                },
            ),
        ));
        assert_eq!(check(&steps, 400_000), vec![]);
    }
}
