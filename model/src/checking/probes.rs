//! Coverage probes ("sometimes" properties): named situations the correctness suite must reach
//! somewhere across its seeds. An invariant says what must *always* (or *eventually*) hold; a
//! probe says what must *sometimes* happen, so that a suite whose faults never hit the hard
//! cases fails loudly instead of passing vacuously. `flinksim check` over the bundled library
//! requires every probe in `scenarios/probes.toml` to be hit at least once and prints the hit
//! counts.
//!
//! Like the oracles, probes watch the trace (deliveries, faults, observations) and never call
//! into components. A probe counts each time its situation arises; it judges nothing.

use crate::checking::oracle::process_died;
use crate::process::Topology;
use crate::protocol::checkpoint::{CheckpointId, TxnId};
use crate::protocol::ids::JobId;
use crate::protocol::obs::{Endpoint, Obs};
use crate::protocol::rpc::{JobMasterRpc, Msg, SinkRpc, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use sim::{Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

/// A named situation, for `flinksim list probes` and `scenarios/probes.toml`.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub name: &'static str,
    pub description: &'static str,
}

pub const TM_LOST_DURING_PENDING_CHECKPOINT: usize = 0;
pub const CHECKPOINT_DECLINED_THEN_NEXT_COMPLETES: usize = 1;
pub const TWO_LEADERS_FENCING_REJECTS_ONE: usize = 2;
pub const FAILOVER_DURING_RESTORE: usize = 3;
pub const COMMIT_LOST_TXN_RECOMMITTED_ON_RESTORE: usize = 4;
pub const SLOT_OFFER_RACES_LEADER_CHANGE: usize = 5;

/// Every probe, indexed by the constants above.
pub const PROBES: &[Probe] = &[
    Probe {
        name: "tm-lost-during-pending-checkpoint",
        description: "a TaskManager dies, or a JobMaster declares one lost, while a checkpoint \
                      of a job is pending (triggered, neither completed nor aborted)",
    },
    Probe {
        name: "checkpoint-declined-then-next-completes",
        description: "a task declines a checkpoint (CHECKPOINT_DECLINED…, or \
                      CHECKPOINT_ASYNC_EXCEPTION when its snapshot could not be stored), the \
                      coordinator aborts it, and the next checkpoint of that job to finish \
                      completes",
    },
    Probe {
        name: "two-leaders-fencing-rejects-one",
        description: "two JobManager processes both believe they lead (granted, not yet revoked) \
                      while a TaskExecutor rejects a fenced call carrying a token that is not \
                      the leader it knows",
    },
    Probe {
        name: "failover-during-restore",
        description: "a job restoring from a checkpoint fails over again (a restart, another \
                      restore, or a new leader recovering it) before every restored task is \
                      RUNNING",
    },
    Probe {
        name: "commit-lost-txn-recommitted-on-restore",
        description: "a transaction pre-committed for a completed checkpoint was not committed \
                      (notifyCheckpointComplete or the commit was lost) and the restored writer's \
                      initTransactions commits it",
    },
    Probe {
        name: "slot-offer-races-leader-change",
        description: "an offerSlots (or its answer) is in flight while JobManager leadership \
                      changes: granted or revoked between its sending and its delivery, or the \
                      JobManager it was sent to died before it arrived",
    },
];

pub fn probe(name: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.name == name)
}

/// Whether an abort reason is a task's `declineCheckpoint` (Flink's `CHECKPOINT_DECLINED…`
/// reasons, and `CHECKPOINT_ASYNC_EXCEPTION` for a snapshot that could not be stored).
fn declined(reason: &str) -> bool {
    reason.starts_with("CHECKPOINT_DECLINED") || reason == "CHECKPOINT_ASYNC_EXCEPTION"
}

/// A restore in progress: how many restored tasks must still reach RUNNING.
#[derive(Debug)]
struct Restoring {
    waiting_for: u32,
}

/// The probes of one run, fed every traced event.
#[derive(Debug)]
pub struct Probes {
    hits: [u64; PROBES.len()],
    taskmanagers: BTreeSet<NodeId>,
    /// Per job, the pending checkpoints.
    pending: BTreeMap<JobId, BTreeSet<CheckpointId>>,
    /// Per job, a declined checkpoint whose successor has not finished yet.
    declined: BTreeMap<JobId, CheckpointId>,
    /// JobManager processes that believe they lead.
    leaders: BTreeSet<NodeId>,
    /// When leadership last changed hands (granted or revoked anywhere).
    last_leader_change: Option<Time>,
    /// Per job, a restore from a checkpoint that has not finished.
    restoring: BTreeMap<JobId, Restoring>,
    /// The transactions the `initTransactions` being handled asks to commit. The sink commits
    /// them in that handler and traces `TransactionCommitted` only for one not committed
    /// before, so each such trace right after the delivery is a re-commit on restore.
    recommitting: BTreeSet<TxnId>,
}

impl Probes {
    pub fn new(topology: &Topology) -> Probes {
        Probes {
            hits: [0; PROBES.len()],
            taskmanagers: topology.taskmanagers.iter().copied().collect(),
            pending: BTreeMap::new(),
            declined: BTreeMap::new(),
            leaders: BTreeSet::new(),
            last_leader_change: None,
            restoring: BTreeMap::new(),
            recommitting: BTreeSet::new(),
        }
    }

    /// Hits per probe, in [`PROBES`] order.
    pub fn hits(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PROBES.iter().zip(self.hits).map(|(p, n)| (p.name, n))
    }

    fn hit(&mut self, probe: usize) {
        self.hits[probe] += 1;
    }

    fn any_pending(&self) -> bool {
        self.pending.values().any(|p| !p.is_empty())
    }

    /// A failover of `job` (or of every job, for a leader change): a restore in progress hits.
    fn failover(&mut self, job: Option<JobId>) {
        let before = self.restoring.len();
        match job {
            Some(job) => {
                self.restoring.remove(&job);
            }
            None => self.restoring.clear(),
        }
        let interrupted = (before - self.restoring.len()) as u64;
        self.hits[FAILOVER_DURING_RESTORE] += interrupted;
    }

    pub fn observe(&mut self, ev: &Event<'_, Flink>) {
        if let Some(node) = process_died(ev) {
            if self.taskmanagers.contains(&node) && self.any_pending() {
                self.hit(TM_LOST_DURING_PENDING_CHECKPOINT);
            }
            if self.leaders.remove(&node) {
                self.last_leader_change = Some(ev.time);
                self.failover(None);
            }
            return;
        }
        match &ev.kind {
            EventKind::Deliver { sent, msg, .. } => match msg {
                // The offer, or its answer, crossed a leader change.
                Msg::JobMaster {
                    rpc: JobMasterRpc::OfferSlots { .. },
                    ..
                }
                | Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse { .. })
                    if self.last_leader_change.is_some_and(|t| *sent <= t) =>
                {
                    self.hit(SLOT_OFFER_RACES_LEADER_CHANGE);
                }
                Msg::Sink(SinkRpc::InitTransactions { commit, .. }) => {
                    self.recommitting.clear();
                    self.recommitting.extend(commit.iter().map(|(_, txn)| *txn));
                }
                _ => {}
            },
            // An offer to a JobManager that died (the leader change by crash) before it arrived.
            EventKind::Unreachable {
                msg:
                    Msg::JobMaster {
                        rpc: JobMasterRpc::OfferSlots { .. },
                        ..
                    },
                ..
            } => self.hit(SLOT_OFFER_RACES_LEADER_CHANGE),
            EventKind::Obs { node, obs } => self.on_obs(*node, ev.time, obs),
            _ => {}
        }
    }

    fn on_obs(&mut self, node: NodeId, now: Time, obs: &Obs) {
        match obs {
            Obs::CheckpointTriggered {
                job_id,
                checkpoint_id,
                ..
            } => {
                self.pending
                    .entry(*job_id)
                    .or_default()
                    .insert(*checkpoint_id);
            }
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                ..
            } => {
                if let Some(p) = self.pending.get_mut(job_id) {
                    p.remove(checkpoint_id);
                }
                if self.declined.get(job_id).is_some_and(|d| d < checkpoint_id) {
                    self.declined.remove(job_id);
                    self.hit(CHECKPOINT_DECLINED_THEN_NEXT_COMPLETES);
                }
            }
            Obs::CheckpointAborted {
                job_id,
                checkpoint_id,
                reason,
            } => {
                if let Some(p) = self.pending.get_mut(job_id) {
                    p.remove(checkpoint_id);
                }
                if declined(reason) {
                    self.declined.insert(*job_id, *checkpoint_id);
                } else if self.declined.get(job_id).is_some_and(|d| d < checkpoint_id) {
                    // The next checkpoint to finish did not complete.
                    self.declined.remove(job_id);
                }
            }
            Obs::TargetLost {
                observer: Endpoint::JobMaster(..),
                target: Endpoint::TaskExecutor(_),
                ..
            } if self.any_pending() => self.hit(TM_LOST_DURING_PENDING_CHECKPOINT),
            Obs::LeadershipGranted { .. } => {
                self.leaders.insert(node);
                self.last_leader_change = Some(now);
            }
            Obs::LeadershipRevoked { .. } => {
                self.leaders.remove(&node);
                self.last_leader_change = Some(now);
                self.failover(None);
                // A new leader starts its checkpoints afresh.
                self.pending.clear();
            }
            Obs::FencedCallRejected { .. } if self.leaders.len() >= 2 => {
                self.hit(TWO_LEADERS_FENCING_REJECTS_ONE);
            }
            Obs::RestoreDecided {
                job_id,
                checkpoint_id,
                vertices,
                ..
            } => {
                self.failover(Some(*job_id));
                if checkpoint_id.is_some() {
                    self.restoring.insert(
                        *job_id,
                        Restoring {
                            waiting_for: *vertices,
                        },
                    );
                }
            }
            Obs::RestartScheduled { job_id, .. } => self.failover(Some(*job_id)),
            Obs::JobRecovered { job_id, .. } => self.failover(Some(*job_id)),
            Obs::ExecutionStateChanged {
                to: ExecutionState::Running,
                ..
            } => {
                // Single-job runs are the norm: a RUNNING task counts for every restoring job.
                self.restoring.retain(|_, r| {
                    r.waiting_for = r.waiting_for.saturating_sub(1);
                    r.waiting_for > 0
                });
            }
            Obs::TransactionCommitted { txn, .. } if self.recommitting.remove(txn) => {
                self.hit(COMMIT_LOST_TXN_RECOMMITTED_ON_RESTORE);
            }
            _ => {}
        }
    }
}
