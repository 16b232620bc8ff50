//! No lingering transactions (eventually): when a job has FINISHED, none of its sink
//! transactions is still open or pre-committed. A transaction left behind by a failed writer
//! must be aborted when the restored writer initialises (FLINK-23854); one left open holds back
//! the last stable offset of a Kafka partition, so `read_committed` consumers see nothing
//! written after it, forever.
//!
//! Ground truth: the `sink`'s own reports per transaction: `TransactionBegun` and
//! `TransactionPreCommitted` open it, `TransactionCommitted`, `TransactionAborted` and
//! `CommitOfAbortedTransaction` close it; and the JobMaster's `JobStatusChanged` to FINISHED.
//!
//! Judged at the end of the run for each job that reached FINISHED at least
//! `pekko.ask.timeout` + four network latencies before the end: its final commits (sent before
//! its tasks finished) may still be on their way that long.

use super::committed_only_completed::transaction_name;
use super::{Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, TxnId};
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "no-lingering-transactions",
    kind: Kind::Eventually,
    description: "once a job has FINISHED, every sink transaction it opened is committed or aborted (none left open or pre-committed to block read-committed consumers)",
};

/// An open transaction's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Begun,
    PreCommitted(CheckpointId),
}

pub struct NoLingeringTransactions {
    sink: Option<NodeId>,
    settle: Duration,
    /// Transactions begun or pre-committed and not yet committed or aborted.
    open: BTreeMap<TxnId, Open>,
    /// Jobs that reached FINISHED, and when (first time).
    finished: BTreeMap<JobId, Time>,
}

/// How many lingering transactions a message names before "and n more".
const SHOWN: usize = 3;

impl NoLingeringTransactions {
    pub fn new(setup: &Setup) -> NoLingeringTransactions {
        NoLingeringTransactions {
            sink: setup.topology.sink,
            settle: setup.config.ask_timeout + setup.latency_max * 4,
            open: BTreeMap::new(),
            finished: BTreeMap::new(),
        }
    }
}

impl Oracle for NoLingeringTransactions {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        let EventKind::Obs { obs, .. } = &ev.kind else {
            return;
        };
        match obs {
            Obs::TransactionBegun { txn } => {
                self.open.entry(*txn).or_insert(Open::Begun);
            }
            Obs::TransactionPreCommitted { txn, checkpoint_id } => {
                self.open.insert(*txn, Open::PreCommitted(*checkpoint_id));
            }
            Obs::TransactionCommitted { txn, .. }
            | Obs::TransactionAborted { txn }
            | Obs::CommitOfAbortedTransaction { txn } => {
                self.open.remove(txn);
            }
            Obs::JobStatusChanged {
                job_id,
                to: JobStatus::Finished,
                ..
            } => {
                self.finished.entry(*job_id).or_insert(ev.time);
            }
            _ => {}
        }
    }

    fn finish(&mut self, _census: &Census, end: Time, out: &mut Vec<Violation>) {
        for (&job_id, &finished_at) in &self.finished {
            if end.saturating_since(finished_at) < self.settle {
                continue; // its last commits may still be on their way
            }
            let lingering: Vec<String> = self
                .open
                .iter()
                .filter(|(txn, _)| txn.job_id == job_id)
                .map(|(txn, open)| {
                    let what = match open {
                        Open::Begun => "open, never pre-committed".to_string(),
                        Open::PreCommitted(n) => format!("pre-committed for checkpoint {n}"),
                    };
                    format!("{} ({what})", transaction_name(txn))
                })
                .collect();
            let Some(first) = lingering.first() else {
                continue;
            };
            let more = match lingering.len() {
                1 => String::new(),
                n => format!(
                    " (and {} more: {})",
                    n - 1,
                    lingering[1..lingering.len().min(SHOWN + 1)].join(", ")
                        + if n - 1 > SHOWN { ", …" } else { "" }
                ),
            };
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: self.sink,
                message: format!(
                    "job {job_id:x}: {first} is still open after the job finished at {finished_at}: it would block read-committed consumers{more}"
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM};
    use crate::protocol::config::FlinkConfig;
    use std::sync::Arc;

    const SINK: NodeId = NodeId(2);

    fn txn(subtask: u32, n: u64) -> TxnId {
        TxnId {
            job_id: 5,
            subtask,
            epoch: 1,
            n,
        }
    }

    fn sink(obs: Obs) -> Step {
        Step::Obs(SINK, obs)
    }

    fn begun(t: TxnId) -> Step {
        sink(Obs::TransactionBegun { txn: t })
    }

    fn pre_committed(t: TxnId, checkpoint_id: CheckpointId) -> Step {
        sink(Obs::TransactionPreCommitted {
            txn: t,
            checkpoint_id,
        })
    }

    fn committed(t: TxnId, checkpoint_id: CheckpointId) -> Step {
        sink(Obs::TransactionCommitted {
            txn: t,
            checkpoint_id: Some(checkpoint_id),
            records: Arc::from(Vec::new()),
        })
    }

    fn finished() -> Step {
        Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 9,
                from: Some(JobStatus::Running),
                to: JobStatus::Finished,
            },
        )
    }

    fn check(steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut s = setup(FlinkConfig::default());
        s.topology.sink = Some(SINK);
        let mut oracle = NoLingeringTransactions::new(&s);
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    /// Subtask 1's first writer pre-committed #2 for checkpoint 3 and died; its restored writer
    /// (epoch 2) takes over.
    fn history() -> Vec<(u64, Step)> {
        vec![
            (1_000, begun(txn(1, 1))),
            (1_500, pre_committed(txn(1, 1), 2)),
            (1_600, committed(txn(1, 1), 2)),
            (2_000, begun(txn(1, 2))),
            (2_500, pre_committed(txn(1, 2), 3)),
            (
                4_000,
                begun(TxnId {
                    epoch: 2,
                    ..txn(1, 1)
                }),
            ),
            (
                5_000,
                pre_committed(
                    TxnId {
                        epoch: 2,
                        ..txn(1, 1)
                    },
                    4,
                ),
            ),
            (
                5_100,
                committed(
                    TxnId {
                        epoch: 2,
                        ..txn(1, 1)
                    },
                    4,
                ),
            ),
            (6_000, finished()),
        ]
    }

    #[test]
    fn a_lingering_transaction_aborted_by_the_restored_writer_holds() {
        let mut steps = history();
        steps.insert(5, (3_900, sink(Obs::TransactionAborted { txn: txn(1, 2) })));
        assert_eq!(check(&steps, 60_000), vec![]);
    }

    #[test]
    fn a_transaction_left_pre_committed_after_the_job_finished_is_caught() {
        // NoAbortOfLingeringTransactions: nobody aborts #2 of epoch 1.
        let steps = history();
        let v = check(&steps, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].node, Some(SINK));
        assert_eq!(
            v[0].message,
            "job 5: transaction subtask 1 epoch 1 #2 (pre-committed for checkpoint 3) is still open after the job finished at 6.000s: it would block read-committed consumers"
        );
        // Too close to FINISHED, or not finished: not judged.
        assert_eq!(check(&steps, 6_010), vec![]);
        assert_eq!(check(&steps[..8], 60_000), vec![]);
        // Several: the first is named, the rest counted.
        let mut more = history();
        more.push((5_500, begun(txn(0, 7))));
        let v = check(&more, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.starts_with(
                "job 5: transaction subtask 0 epoch 1 #7 (open, never pre-committed) is still open"
            ),
            "{}",
            v[0].message
        );
        assert!(
            v[0].message.ends_with(
                "(and 1 more: transaction subtask 1 epoch 1 #2 (pre-committed for checkpoint 3))"
            ),
            "{}",
            v[0].message
        );
    }
}
