//! Checkpoint completeness (always): a checkpoint completes only when every task it waits for
//! has acknowledged it and every state it consists of is durable in `checkpoint-storage`
//! (docs/flink-runtime.md §7.3: `PendingCheckpoint` becomes complete when fully acknowledged, and a task
//! acknowledges only after its state handle was written).
//!
//! Ground truth from the kernel, not from the coordinator's bookkeeping:
//! - acknowledgements: `acknowledgeCheckpoint` messages *delivered* to a JobManager process,
//!   recorded per (JobMaster process, job, checkpoint) while that checkpoint is pending there;
//! - the tasks a checkpoint waits for: its `CheckpointTriggered` report;
//! - durable state: `checkpoint-storage`'s `StateStored` reports, minus its `StateDiscarded`.
//!
//! On `CheckpointCompleted`, each awaited attempt must have had its acknowledgement delivered,
//! and each handle of the checkpoint must be stored at that moment. A new JobMaster instance
//! (its first `JobStatusChanged`) or a dead JobMaster process forgets its pending checkpoints,
//! as Flink's coordinator does.

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, StateHandleId};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

pub const INVARIANT: Invariant = Invariant {
    name: "checkpoint-completeness",
    kind: Kind::Always,
    description: "a checkpoint completes only after every task it waits for acknowledged it (acknowledgeCheckpoint delivered to the JobMaster) and every state handle it consists of is stored in checkpoint storage",
};

/// A checkpoint pending at one JobMaster.
#[derive(Debug, Default)]
struct Pending {
    /// The attempts it waits for.
    tasks: Vec<ExecutionAttemptId>,
    /// The attempts whose acknowledgement was delivered.
    acknowledged: BTreeSet<ExecutionAttemptId>,
}

pub struct CheckpointCompleteness {
    jobmanagers: Vec<NodeId>,
    /// (JobMaster process, job, checkpoint) -> the pending checkpoint.
    pending: BTreeMap<(NodeId, JobId, CheckpointId), Pending>,
    /// Handles durable in checkpoint storage.
    stored: BTreeSet<StateHandleId>,
}

/// How many problems of one kind a message lists before "and n more".
const SHOWN: usize = 3;

fn listed(items: &[String]) -> String {
    let mut text = items[..items.len().min(SHOWN)].join(", ");
    if items.len() > SHOWN {
        text += &format!(" and {} more", items.len() - SHOWN);
    }
    text
}

impl CheckpointCompleteness {
    pub fn new(setup: &Setup) -> CheckpointCompleteness {
        CheckpointCompleteness {
            jobmanagers: setup.topology.jobmanagers.clone(),
            pending: BTreeMap::new(),
            stored: BTreeSet::new(),
        }
    }

    fn forget(&mut self, jm: NodeId, job: Option<JobId>) {
        self.pending
            .retain(|(node, j, _), _| *node != jm || job.is_some_and(|job| *j != job));
    }

    /// What is missing for checkpoint `id` of `job_id` to be complete at `jm`.
    fn on_completed(
        &mut self,
        jm: NodeId,
        job_id: JobId,
        id: CheckpointId,
        handles: &[StateHandleId],
    ) -> Option<String> {
        let Some(pending) = self.pending.remove(&(jm, job_id, id)) else {
            return Some(format!(
                "checkpoint {id} completed but this JobMaster has no such pending checkpoint (never triggered, or already completed or aborted)"
            ));
        };
        let unacknowledged: Vec<String> = pending
            .tasks
            .iter()
            .filter(|a| !pending.acknowledged.contains(a))
            .map(attempt_name)
            .collect();
        if !unacknowledged.is_empty() {
            return Some(format!(
                "checkpoint {id} completed without the acknowledgement of {}",
                listed(&unacknowledged)
            ));
        }
        let missing: Vec<String> = handles
            .iter()
            .filter(|h| !self.stored.contains(h))
            .map(|h| attempt_name(&h.attempt))
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "checkpoint {id} completed but the state of {} is not in checkpoint storage",
                listed(&missing)
            ));
        }
        None
    }
}

impl Oracle for CheckpointCompleteness {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.forget(n, None);
            return;
        }
        match &ev.kind {
            EventKind::Deliver {
                to,
                msg:
                    Msg::JobMaster {
                        job_id,
                        rpc:
                            JobMasterRpc::AcknowledgeCheckpoint {
                                attempt,
                                checkpoint_id,
                                ..
                            },
                    },
                ..
            } if self.jobmanagers.contains(to) => {
                // A late acknowledgement of a checkpoint no longer pending changes nothing.
                if let Some(p) = self.pending.get_mut(&(*to, *job_id, *checkpoint_id)) {
                    p.acknowledged.insert(*attempt);
                }
            }
            EventKind::Obs { node, obs } => {
                let node = *node;
                match obs {
                    Obs::StateStored { handle } => {
                        self.stored.insert(*handle);
                    }
                    Obs::StateDiscarded { handle } => {
                        self.stored.remove(handle);
                    }
                    Obs::JobStatusChanged {
                        job_id, from: None, ..
                    } => self.forget(node, Some(*job_id)),
                    Obs::CheckpointTriggered {
                        job_id,
                        checkpoint_id,
                        tasks,
                        ..
                    } => {
                        self.pending.insert(
                            (node, *job_id, *checkpoint_id),
                            Pending {
                                tasks: tasks.clone(),
                                acknowledged: BTreeSet::new(),
                            },
                        );
                    }
                    Obs::CheckpointAborted {
                        job_id,
                        checkpoint_id,
                        ..
                    } => {
                        self.pending.remove(&(node, *job_id, *checkpoint_id));
                    }
                    Obs::CheckpointCompleted {
                        job_id,
                        checkpoint_id,
                        handles,
                        ..
                    } => {
                        if let Some(why) = self.on_completed(node, *job_id, *checkpoint_id, handles)
                        {
                            out.push(Violation {
                                invariant: INVARIANT.name,
                                at: ev.time,
                                node: Some(node),
                                message: format!("job {job_id:x}: {why}"),
                            });
                        }
                    }
                    _ => {}
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
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
    use sim::Fault;

    const STORAGE: NodeId = NodeId(2);

    fn attempt(vertex: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(vertex),
                subtask: 0,
            },
            attempt: 0,
        }
    }

    fn handle(checkpoint_id: CheckpointId, vertex: u32) -> StateHandleId {
        StateHandleId {
            job_id: 5,
            checkpoint_id,
            attempt: attempt(vertex),
        }
    }

    fn triggered(checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointTriggered {
                job_id: 5,
                checkpoint_id,
                tasks: vec![attempt(0), attempt(1)],
                triggered: vec![attempt(0)],
            },
        )
    }

    fn stored(checkpoint_id: CheckpointId, vertex: u32) -> Step {
        Step::Obs(
            STORAGE,
            Obs::StateStored {
                handle: handle(checkpoint_id, vertex),
            },
        )
    }

    fn ack(checkpoint_id: CheckpointId, vertex: u32) -> Step {
        Step::Deliver(
            TM1,
            JM,
            Msg::JobMaster {
                job_id: 5,
                rpc: JobMasterRpc::AcknowledgeCheckpoint {
                    attempt: attempt(vertex),
                    checkpoint_id,
                    handle: handle(checkpoint_id, vertex),
                },
            },
        )
    }

    fn completed(checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointCompleted {
                job_id: 5,
                checkpoint_id,
                handles: vec![handle(checkpoint_id, 0), handle(checkpoint_id, 1)],
                finished: vec![],
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = CheckpointCompleteness::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(100_000))
    }

    fn acknowledged_checkpoint(checkpoint_id: CheckpointId, at_ms: u64) -> Vec<(u64, Step)> {
        vec![
            (at_ms, triggered(checkpoint_id)),
            (at_ms + 100, stored(checkpoint_id, 0)),
            (at_ms + 110, ack(checkpoint_id, 0)),
            (at_ms + 200, stored(checkpoint_id, 1)),
            (at_ms + 210, ack(checkpoint_id, 1)),
        ]
    }

    #[test]
    fn a_fully_acknowledged_and_stored_checkpoint_holds() {
        let mut steps = acknowledged_checkpoint(1, 1_000);
        steps.push((1_300, completed(1)));
        steps.extend(acknowledged_checkpoint(2, 2_000));
        // Subsumed state of checkpoint 1 is discarded after checkpoint 2 completed.
        steps.push((2_300, completed(2)));
        steps.push((
            2_400,
            Step::Obs(
                STORAGE,
                Obs::StateDiscarded {
                    handle: handle(1, 0),
                },
            ),
        ));
        assert_eq!(check(&steps), vec![]);
    }

    #[test]
    fn a_completion_missing_an_acknowledgement_is_caught() {
        // CompleteWithMissingAck: vertex 1's acknowledgement is still on its way.
        let mut steps = acknowledged_checkpoint(4, 1_000);
        steps.retain(|(ms, _)| *ms != 1_210);
        steps.push((1_250, completed(4)));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].node, Some(JM));
        assert_eq!(
            v[0].message,
            "job 5: checkpoint 4 completed without the acknowledgement of vertex 1 subtask 0 attempt 0"
        );
        // An acknowledgement delivered to another JobMaster process does not count; one
        // delivered before the JobMaster process died is forgotten with it.
        let mut steps = acknowledged_checkpoint(4, 1_000);
        steps.push((1_220, Step::Fault(Fault::Kill(JM))));
        steps.push((1_300, completed(4)));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("no such pending checkpoint"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_completion_with_state_not_yet_stored_is_caught() {
        // AckBeforeSnapshotDurable: vertex 1 acknowledged before its write reached storage.
        let mut steps = acknowledged_checkpoint(4, 1_000);
        steps.retain(|(ms, _)| *ms != 1_200);
        steps.push((1_250, completed(4)));
        steps.push((1_260, stored(4, 1)));
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Time::from_millis(1_250));
        assert_eq!(
            v[0].message,
            "job 5: checkpoint 4 completed but the state of vertex 1 subtask 0 attempt 0 is not in checkpoint storage"
        );
    }
}
