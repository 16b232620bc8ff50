//! Referenced state kept (always): `checkpoint-storage` never deletes a state handle that a
//! checkpoint pointer in the `ha` store refers to, nor one of a checkpoint a running JobMaster
//! still retains (docs/flink-runtime.md §7.4 and §9.3: a new leader restores the newest pointer
//! of the CompletedCheckpointStore, a failover the newest retained checkpoint; Flink removes a
//! subsumed checkpoint's pointer first and discards its state only once that removal
//! succeeded, and keeps the state of a checkpoint whose pointer write had an unknown outcome).
//!
//! Ground truth, each from the component that owns it:
//! - the `ha` node's `CheckpointPointerStored` / `CheckpointPointerRemoved`: what a new leader
//!   could restore, whoever wrote it;
//! - each JobMaster's `CheckpointCompleted` reports: its last `state.checkpoints.num-retained`
//!   checkpoints, for as long as that JobMaster runs the job (a globally terminal or SUSPENDED
//!   job status, or the death of its process, ends it); with HA only the JobMaster of the
//!   process the `ha` store says leads counts (a deposed leader that has not noticed yet may
//!   still believe it retains checkpoints the new leader subsumed: that split brain only fails
//!   its own tasks, and Flink accepts it);
//! - `checkpoint-storage`'s `StateDiscarded`: what really disappeared.
//!
//! The order matters both ways: a pointer stored after its state was discarded (a write whose
//! outcome the JobMaster took for failed, applied late) breaks the invariant as well; discarded
//! handles are remembered for the newest [`DISCARDED_CHECKPOINTS_KEPT`] checkpoint ids per job.
//!
//! It does not judge which checkpoint a restore picks (`restored-state`) nor whether completed
//! state was durable (`checkpoint-completeness`).

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointId, StateHandleId};
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, VecDeque};

pub const INVARIANT: Invariant = Invariant {
    name: "referenced-state-kept",
    kind: Kind::Always,
    description: "checkpoint storage never deletes state that a checkpoint pointer in the ha store refers to, nor state of a checkpoint a running JobMaster retains (its last state.checkpoints.num-retained completed ones)",
};

/// How many of a job's newest checkpoint ids the oracle remembers discarded handles for.
pub const DISCARDED_CHECKPOINTS_KEPT: usize = 64;

/// A JobMaster's retained checkpoints, oldest first, with their handles.
type Retained = VecDeque<(CheckpointId, Vec<StateHandleId>)>;

pub struct ReferencedStateKept {
    /// (job, checkpoint) -> its discarded handles and when the first went.
    discarded: BTreeMap<(JobId, CheckpointId), (Time, Vec<StateHandleId>)>,
    num_retained: usize,
    /// (job, checkpoint) -> its handles, for every pointer the `ha` store holds.
    pointers: BTreeMap<(JobId, CheckpointId), Vec<StateHandleId>>,
    /// (JobMaster process, job) -> its retained checkpoints, oldest first.
    retained: BTreeMap<(NodeId, JobId), Retained>,
    /// With HA: the process the `ha` store says leads (`None`: nobody); without HA: unused.
    leader: Option<Option<NodeId>>,
}

impl ReferencedStateKept {
    pub fn new(setup: &Setup) -> ReferencedStateKept {
        ReferencedStateKept {
            num_retained: setup
                .config
                .checkpointing
                .map_or(1, |c| c.num_retained.max(1) as usize),
            discarded: BTreeMap::new(),
            pointers: BTreeMap::new(),
            retained: BTreeMap::new(),
            leader: setup.topology.ha.map(|_| None),
        }
    }

    fn on_discarded(
        &self,
        census: &Census,
        at: Time,
        node: NodeId,
        handle: &StateHandleId,
        out: &mut Vec<Violation>,
    ) {
        // Formatted only for a violation: discards are frequent.
        let what = || {
            format!(
                "the state of {} for checkpoint {} of job {}",
                attempt_name(&handle.attempt),
                handle.checkpoint_id,
                handle.job_id
            )
        };
        let key = (handle.job_id, handle.checkpoint_id);
        if self.pointers.get(&key).is_some_and(|h| h.contains(handle)) {
            out.push(Violation {
                invariant: INVARIANT.name,
                at,
                node: Some(node),
                message: format!(
                    "{} deleted {} while the ha store's CompletedCheckpointStore still points to checkpoint {}: a new leader restoring it finds its state gone",
                    census.name(node),
                    what(),
                    handle.checkpoint_id
                ),
            });
            return;
        }
        let holder = self.retained.iter().find(|((jm, job), list)| {
            *job == handle.job_id
                && self.leader.is_none_or(|leader| leader == Some(*jm))
                && list.iter().any(|(_, hs)| hs.contains(handle))
        });
        if let Some(((jm, _), list)) = holder {
            let ids: Vec<String> = list.iter().map(|(id, _)| id.to_string()).collect();
            out.push(Violation {
                invariant: INVARIANT.name,
                at,
                node: Some(node),
                message: format!(
                    "{} deleted {} while the JobMaster on {} still retains checkpoint {} (retained: {}): a failover restoring it finds its state gone",
                    census.name(node),
                    what(),
                    census.name(*jm),
                    handle.checkpoint_id,
                    ids.join(", ")
                ),
            });
        }
    }
}

impl Oracle for ReferencedStateKept {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.retained.retain(|(jm, _), _| *jm != n);
            return;
        }
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let node = *node;
        match obs {
            Obs::CheckpointPointerStored {
                job_id,
                checkpoint_id,
                handles,
                ..
            } => {
                let key = (*job_id, *checkpoint_id);
                if let Some((at, gone)) = self.discarded.get(&key) {
                    let missing = handles.iter().filter(|h| gone.contains(h)).count();
                    if missing > 0 {
                        out.push(Violation {
                            invariant: INVARIANT.name,
                            at: ev.time,
                            node: Some(node),
                            message: format!(
                                "the ha store's CompletedCheckpointStore now points to checkpoint {checkpoint_id} of job {job_id}, whose state ({missing} of {} handles) checkpoint storage deleted at {}: a new leader restoring it finds its state gone (a pointer write taken for failed was applied)",
                                handles.len(),
                                super::secs(at.saturating_since(Time::ZERO))
                            ),
                        });
                    }
                }
                self.pointers.insert(key, handles.clone());
            }
            Obs::CheckpointPointerRemoved {
                job_id,
                checkpoint_id,
            } => {
                self.pointers.remove(&(*job_id, *checkpoint_id));
            }
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                handles,
                ..
            } => {
                let list = self.retained.entry((node, *job_id)).or_default();
                list.push_back((*checkpoint_id, handles.clone()));
                while list.len() > self.num_retained {
                    list.pop_front();
                }
            }
            Obs::JobStatusChanged { job_id, to, .. } if to.is_terminal() => {
                self.retained.remove(&(node, *job_id));
            }
            Obs::HaLeader { node: leader, .. } if self.leader.is_some() => {
                self.leader = Some(*leader);
            }
            Obs::StateDiscarded { handle } => {
                self.on_discarded(census, ev.time, node, handle, out);
                let job = handle.job_id;
                self.discarded
                    .entry((job, handle.checkpoint_id))
                    .or_insert_with(|| (ev.time, Vec::new()))
                    .1
                    .push(*handle);
                let mut ids = self
                    .discarded
                    .range((job, 0)..=(job, u64::MAX))
                    .map(|(k, _)| *k);
                let oldest = ids.next();
                if ids.nth(DISCARDED_CHECKPOINTS_KEPT - 1).is_some() {
                    self.discarded.remove(&oldest.expect("non-empty"));
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
    use crate::checking::oracle::testing::{attempt, feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::states::JobStatus;

    const STORAGE: NodeId = TM1;

    fn handle(checkpoint_id: CheckpointId) -> StateHandleId {
        StateHandleId {
            job_id: 1,
            checkpoint_id,
            attempt: attempt(1, 0, 0),
        }
    }

    fn completed(id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointCompleted {
                job_id: 1,
                checkpoint_id: id,
                handles: vec![handle(id)],
                finished: Vec::new(),
            },
        )
    }

    fn discarded(id: CheckpointId) -> Step {
        Step::Obs(STORAGE, Obs::StateDiscarded { handle: handle(id) })
    }

    fn stored(id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointPointerStored {
                job_id: 1,
                checkpoint_id: id,
                handles: vec![handle(id)],
                finished: Vec::new(),
            },
        )
    }

    fn removed(id: CheckpointId) -> Step {
        Step::Obs(
            JM,
            Obs::CheckpointPointerRemoved {
                job_id: 1,
                checkpoint_id: id,
            },
        )
    }

    fn run(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true, true, true]);
        let mut o = ReferencedStateKept::new(&setup(FlinkConfig::default()));
        feed(&mut o, w.census(), steps, Some(10_000))
    }

    #[test]
    fn subsumed_state_may_go_once_unreferenced() {
        // num-retained 1: checkpoint 1 is subsumed by 2, its pointer removed, then discarded.
        let v = run(&[
            (1, stored(1)),
            (2, completed(1)),
            (3, stored(2)),
            (4, completed(2)),
            (5, removed(1)),
            (6, discarded(1)),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn discarding_state_behind_a_pointer_is_a_violation() {
        let v = run(&[
            (1, stored(1)),
            (2, completed(1)),
            (3, stored(2)),
            (4, completed(2)),
            (6, discarded(1)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("still points to checkpoint 1"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_pointer_stored_after_its_state_was_discarded_is_a_violation() {
        // The JobMaster took the write for failed and discarded; the write was applied late.
        let v = run(&[(2, discarded(3)), (5, stored(3))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("now points to checkpoint 3"),
            "{}",
            v[0].message
        );
        // Another checkpoint's pointer is fine.
        assert!(run(&[(2, discarded(3)), (5, stored(4))]).is_empty());
    }

    #[test]
    fn discarding_a_retained_checkpoint_is_a_violation_until_the_job_ends() {
        let v = run(&[(2, completed(1)), (6, discarded(1))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("still retains checkpoint 1"),
            "{}",
            v[0].message
        );
        // Subsumed without HA: fine.
        assert!(run(&[(2, completed(1)), (3, completed(2)), (6, discarded(1))]).is_empty());
        // The job ended (or the JobMaster died): its checkpoints may be cleaned up.
        let ended = Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 1,
                job_master_id: 1,
                from: Some(JobStatus::Running),
                to: JobStatus::Finished,
            },
        );
        assert!(run(&[(2, completed(1)), (3, ended), (6, discarded(1))]).is_empty());
        assert!(run(&[(2, completed(1)), (3, Step::Exited(JM)), (6, discarded(1))]).is_empty());
    }
}
