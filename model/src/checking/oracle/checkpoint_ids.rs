//! Checkpoint ids (always): a JobMaster's checkpoint ids strictly increase, both as it triggers
//! checkpoints and as it completes them (Flink's `CheckpointIDCounter`; a completed checkpoint
//! subsumes every older pending one, so completions never go back).
//!
//! Ground truth: the coordinators' `CheckpointTriggered` and `CheckpointCompleted` reports, in
//! trace order, per JobMaster process and job. Without high availability the id counter and the
//! completed checkpoint store live in one JobMaster instance, so a new instance (its first
//! `JobStatusChanged`) or a dead JobMaster process starts the sequences afresh.

use super::{process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::CheckpointId;
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "checkpoint-ids",
    kind: Kind::Always,
    description: "per job (JobMaster instance; with HA across every leader), triggered checkpoint ids strictly increase and completed checkpoint ids strictly increase",
};

/// The latest ids one JobMaster instance triggered and completed for a job.
#[derive(Debug, Default)]
struct Latest {
    triggered: Option<CheckpointId>,
    completed: Option<CheckpointId>,
}

pub struct CheckpointIds {
    latest: BTreeMap<(NodeId, JobId), Latest>,
    /// With high availability the counter lives in the `ha` store: ids increase across
    /// JobMaster instances and leaders, so the sequences are per job only.
    ha: bool,
}

/// The key of every JobMaster's sequences with high availability.
const ANY_LEADER: NodeId = NodeId(u32::MAX);

impl CheckpointIds {
    pub fn new(setup: &Setup) -> CheckpointIds {
        CheckpointIds {
            latest: BTreeMap::new(),
            ha: setup.topology.ha.is_some(),
        }
    }
}

impl Oracle for CheckpointIds {
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
        let key_node = if self.ha { ANY_LEADER } else { *node };
        let (job_id, id, is_completion) = match obs {
            Obs::JobStatusChanged {
                job_id, from: None, ..
            } => {
                // A new JobMaster instance: a new CheckpointIDCounter (without HA).
                if !self.ha {
                    self.latest.remove(&(*node, *job_id));
                }
                return;
            }
            Obs::CheckpointTriggered {
                job_id,
                checkpoint_id,
                ..
            } => (*job_id, *checkpoint_id, false),
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                ..
            } => (*job_id, *checkpoint_id, true),
            _ => return,
        };
        let latest = self.latest.entry((key_node, job_id)).or_default();
        let (previous, verb) = if is_completion {
            (&mut latest.completed, "completed")
        } else {
            (&mut latest.triggered, "triggered")
        };
        if let Some(p) = *previous {
            if id <= p {
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: ev.time,
                    node: Some(*node),
                    message: format!(
                        "job {job_id:x}: checkpoint {id} {verb} after checkpoint {p} had been {verb}: checkpoint ids must strictly increase"
                    ),
                });
            }
        }
        *previous = Some(previous.map_or(id, |p| p.max(id)));
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::states::JobStatus;
    use sim::Fault;

    fn triggered(checkpoint_id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointTriggered {
                job_id: 5,
                checkpoint_id,
                tasks: vec![],
                triggered: vec![],
            },
        )
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

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = CheckpointIds::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(100_000))
    }

    #[test]
    fn increasing_ids_with_gaps_hold() {
        // Checkpoint 2 was aborted; 3 and 4 are pending together and complete in order.
        let steps = [
            (1_000, triggered(1)),
            (1_100, completed(1)),
            (2_000, triggered(2)),
            (3_000, triggered(3)),
            (3_500, triggered(4)),
            (3_600, completed(3)),
            (3_700, completed(4)),
        ];
        assert_eq!(check(&steps), vec![]);
        // A new JobMaster process counts from 1 again.
        let steps = [
            (1_000, triggered(1)),
            (1_100, completed(1)),
            (2_000, Step::Fault(Fault::Kill(JM))),
            (3_000, Step::Fault(Fault::Start(JM))),
            (4_000, triggered(1)),
            (4_100, completed(1)),
        ];
        assert_eq!(check(&steps), vec![]);
    }

    #[test]
    fn a_completion_going_back_is_caught() {
        let steps = [
            (1_000, triggered(3)),
            (1_100, triggered(4)),
            (1_200, completed(4)),
            (1_300, completed(3)),
        ];
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Time::from_millis(1_300));
        assert_eq!(
            v[0].message,
            "job 5: checkpoint 3 completed after checkpoint 4 had been completed: checkpoint ids must strictly increase"
        );
    }

    #[test]
    fn a_reused_trigger_id_is_caught_unless_a_new_jobmaster_took_over() {
        let steps = [(1_000, triggered(2)), (2_000, triggered(2))];
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("checkpoint 2 triggered after checkpoint 2 had been triggered"),
            "{}",
            v[0].message
        );
        let new_master = Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 10,
                from: None,
                to: JobStatus::Created,
            },
        );
        let steps = [
            (1_000, triggered(2)),
            (1_500, new_master),
            (2_000, triggered(1)),
        ];
        assert_eq!(check(&steps), vec![]);
    }
}
