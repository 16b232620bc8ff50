//! Coverage probes ("sometimes" properties): named situations the correctness suite must reach
//! somewhere across its seeds. An invariant says what must *always* (or *eventually*) hold; a
//! probe says what must *sometimes* happen, so that a suite whose faults never hit the hard
//! cases fails loudly instead of passing vacuously. `flinksim check` over the bundled library
//! requires every probe in `scenarios/probes.toml` to be hit at least once and prints the hit
//! counts.
//!
//! Like the oracles, probes watch the trace (deliveries, faults, observations) and never call
//! into components. A probe counts each time its situation arises; it judges nothing.

use crate::checking::oracle::{ends_handler, process_died};
use crate::process::Topology;
use crate::protocol::checkpoint::{CheckpointId, TxnId};
use crate::protocol::ha::{HaReply, HaRequest, SessionId};
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId};
use crate::protocol::obs::{Endpoint, Obs};
use crate::protocol::rpc::{JobMasterRpc, Msg, ResourceManagerRpc, SinkRpc, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::{JobMasterTimer, ResourceManagerTimer, TaskExecutorTimer, Timer};
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
pub const RPC_ANSWER_AFTER_ASK_TIMEOUT: usize = 6;
pub const SECOND_FAILURE_WHILE_CANCELING: usize = 7;
pub const LEADER_CHANGE_WHILE_HA_SUSPENDED: usize = 8;
pub const POINTER_WRITE_APPLIED_UNANSWERED: usize = 9;
pub const ANSWER_OVERTAKEN_BY_LATER_CALL: usize = 10;
pub const CONNECTION_COMPLETES_AFTER_NEWER: usize = 11;
pub const OFFER_ANSWER_AFTER_NEWER_OFFER: usize = 12;

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
    Probe {
        name: "rpc-answer-after-ask-timeout",
        description: "the answer to an RPC reaches its caller after the caller's ask timeout \
                      (pekko.ask.timeout) fired for it: submitTask, offerSlots, \
                      updateTaskExecutionState, sendSlotReport or requestSlot",
    },
    Probe {
        name: "second-failure-while-canceling",
        description: "a JobMaster schedules a restart (a second failure during RESTARTING) while \
                      an attempt of its job it set CANCELING in an earlier step is not yet \
                      terminal",
    },
    Probe {
        name: "leader-change-while-ha-suspended",
        description: "JobManager leadership is granted or revoked while a TaskManager's \
                      ZooKeeper connection is SUSPENDED (it cannot learn the new leader yet)",
    },
    Probe {
        name: "pointer-write-applied-unanswered",
        description: "the `ha` node applied a write that stored a checkpoint pointer, and its \
                      answer never reached the writer (dropped, or the writer died or was \
                      unreachable first)",
    },
    Probe {
        name: "answer-overtaken-by-later-call",
        description: "a request or one-way message reaches its receiver before an answer its \
                      sender sent earlier on the same link (the answer completed late: \
                      `network.answer_delay`, or an aimed delay of the answer)",
    },
    Probe {
        name: "connection-completes-after-newer",
        description: "the ResourceManager's connection back to a registering TaskExecutor \
                      completes after a newer registerTaskExecutor call of the same \
                      TaskExecutor already registered it (the older call is declined as \
                      outdated)",
    },
    Probe {
        name: "offer-answer-after-newer-offer",
        description: "a TaskExecutor receives the answer to an offerSlots of a job after a newer \
                      offerSlots of it for that job reached the JobMaster (only the latest \
                      offer's answer may decide the slots, FLINK-21859)",
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

/// An ask whose timeout fired while its answer was still outstanding, per caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ask {
    SubmitTask(ExecutionAttemptId),
    OfferSlots(JobId, u64),
    UpdateTaskState(ExecutionAttemptId),
    SlotReport(u64),
    RequestSlot(AllocationId),
}

impl Ask {
    /// The ask whose timeout `timer` is.
    fn timed_out(timer: &Timer) -> Option<Ask> {
        Some(match timer {
            Timer::JobMaster {
                timer: JobMasterTimer::SubmitTaskTimeout { attempt },
                ..
            } => Ask::SubmitTask(*attempt),
            Timer::TaskExecutor(TaskExecutorTimer::OfferSlotsTimeout { job_id, offer_id }) => {
                Ask::OfferSlots(*job_id, *offer_id)
            }
            Timer::TaskExecutor(TaskExecutorTimer::UpdateTaskStateTimeout { attempt }) => {
                Ask::UpdateTaskState(*attempt)
            }
            Timer::TaskExecutor(TaskExecutorTimer::SlotReportTimeout { instance_id }) => {
                Ask::SlotReport(*instance_id)
            }
            Timer::ResourceManager(ResourceManagerTimer::RequestSlotTimeout { allocation_id }) => {
                Ask::RequestSlot(*allocation_id)
            }
            _ => return None,
        })
    }

    /// The ask `msg` answers.
    fn answered(msg: &Msg) -> Option<Ask> {
        Some(match msg {
            Msg::JobMaster {
                rpc: JobMasterRpc::SubmitTaskResponse { attempt, .. },
                ..
            } => Ask::SubmitTask(*attempt),
            Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                job_id, offer_id, ..
            }) => Ask::OfferSlots(*job_id, *offer_id),
            Msg::TaskExecutor(TaskExecutorRpc::UpdateTaskExecutionStateResponse {
                attempt,
                ..
            }) => Ask::UpdateTaskState(*attempt),
            Msg::TaskExecutor(TaskExecutorRpc::SlotReportResponse { instance_id, .. }) => {
                Ask::SlotReport(*instance_id)
            }
            Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse {
                allocation_id, ..
            }) => Ask::RequestSlot(*allocation_id),
            _ => return None,
        })
    }
}

/// A ZooKeeper request: its writer, session and request id.
type HaCall = (NodeId, SessionId, u64);

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
    /// Asks whose timeout fired, per calling node.
    timed_out: BTreeSet<(NodeId, Ask)>,
    /// Per JobMaster process, the attempts it set CANCELING that are not terminal yet, with
    /// the time they entered CANCELING.
    canceling: BTreeMap<NodeId, BTreeMap<ExecutionAttemptId, Time>>,
    /// TaskManagers whose ZooKeeper connection is SUSPENDED.
    suspended: BTreeSet<NodeId>,
    /// The `ha` request whose handler runs.
    ha_call: Option<HaCall>,
    /// Pointer writes the `ha` node applied whose answer has not reached the writer.
    unanswered: BTreeSet<HaCall>,
    /// Per link, the latest send time of a delivered message that is not an answer.
    last_call_sent: BTreeMap<(NodeId, NodeId), Time>,
    /// Per (TaskExecutor, job), the newest offer id delivered to a JobMaster.
    latest_offer: BTreeMap<(NodeId, JobId), u64>,
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
            timed_out: BTreeSet::new(),
            canceling: BTreeMap::new(),
            suspended: BTreeSet::new(),
            ha_call: None,
            unanswered: BTreeSet::new(),
            last_call_sent: BTreeMap::new(),
            latest_offer: BTreeMap::new(),
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
        if ends_handler(ev) {
            self.ha_call = None;
        }
        if let Some(node) = process_died(ev) {
            if self.taskmanagers.contains(&node) && self.any_pending() {
                self.hit(TM_LOST_DURING_PENDING_CHECKPOINT);
            }
            self.timed_out.retain(|(n, _)| *n != node);
            self.latest_offer.retain(|(n, _), _| *n != node);
            self.canceling.remove(&node);
            self.suspended.remove(&node);
            let before = self.unanswered.len();
            self.unanswered.retain(|(n, _, _)| *n != node);
            self.hits[POINTER_WRITE_APPLIED_UNANSWERED] += (before - self.unanswered.len()) as u64;
            if self.leaders.remove(&node) {
                self.last_leader_change = Some(ev.time);
                self.failover(None);
            }
            return;
        }
        match &ev.kind {
            EventKind::Timer { node, tag } => {
                if let Some(ask) = Ask::timed_out(tag) {
                    self.timed_out.insert((*node, ask));
                }
            }
            EventKind::Deliver {
                from,
                to,
                sent,
                msg,
            } => self.on_deliver(*from, *to, *sent, msg),
            // An ha answer that never arrives, or an offer to a JobManager that died (the leader
            // change by crash) before it arrived.
            EventKind::Drop { to, msg, .. } | EventKind::Unreachable { to, msg, .. } => match msg {
                Msg::HaReply(HaReply::Response {
                    session,
                    request_id,
                    ..
                }) if self.unanswered.remove(&(*to, *session, *request_id)) => {
                    self.hit(POINTER_WRITE_APPLIED_UNANSWERED);
                }
                Msg::JobMaster {
                    rpc: JobMasterRpc::OfferSlots { .. },
                    ..
                } if matches!(ev.kind, EventKind::Unreachable { .. }) => {
                    self.hit(SLOT_OFFER_RACES_LEADER_CHANGE);
                }
                _ => {}
            },
            EventKind::Obs { node, obs } => self.on_obs(*node, ev.time, obs),
            _ => {}
        }
    }

    fn on_deliver(&mut self, from: NodeId, to: NodeId, sent: Time, msg: &Msg) {
        if sim::Message::is_reply(msg) {
            if self
                .last_call_sent
                .get(&(from, to))
                .is_some_and(|t| *t > sent)
            {
                self.hit(ANSWER_OVERTAKEN_BY_LATER_CALL);
            }
        } else {
            let last = self.last_call_sent.entry((from, to)).or_insert(sent);
            *last = (*last).max(sent);
        }
        if let Some(ask) = Ask::answered(msg) {
            if self.timed_out.remove(&(to, ask)) {
                self.hit(RPC_ANSWER_AFTER_ASK_TIMEOUT);
            }
        }
        match msg {
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::OfferSlots { offer_id, .. },
            } => {
                let latest = self
                    .latest_offer
                    .entry((from, *job_id))
                    .or_insert(*offer_id);
                *latest = (*latest).max(*offer_id);
            }
            Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                job_id, offer_id, ..
            }) if self
                .latest_offer
                .get(&(to, *job_id))
                .is_some_and(|latest| latest > offer_id) =>
            {
                self.hit(OFFER_ANSWER_AFTER_NEWER_OFFER);
            }
            _ => {}
        }
        match msg {
            // The offer, or its answer, crossed a leader change.
            Msg::JobMaster {
                rpc: JobMasterRpc::OfferSlots { .. },
                ..
            }
            | Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse { .. })
                if self.last_leader_change.is_some_and(|t| sent <= t) =>
            {
                self.hit(SLOT_OFFER_RACES_LEADER_CHANGE);
            }
            Msg::Sink(SinkRpc::InitTransactions { commit, .. }) => {
                self.recommitting.clear();
                self.recommitting.extend(commit.iter().map(|(_, txn)| *txn));
            }
            // The handler of an ha write starts; its pointer observation names this call.
            Msg::Ha(HaRequest::Op {
                session,
                request_id,
                ..
            }) => self.ha_call = Some((from, *session, *request_id)),
            Msg::HaReply(HaReply::Response {
                session,
                request_id,
                ..
            }) => {
                self.unanswered.remove(&(to, *session, *request_id));
            }
            _ => {}
        }
    }

    /// Leadership granted or revoked somewhere.
    fn leader_changed(&mut self, now: Time) {
        if !self.suspended.is_empty() {
            self.hit(LEADER_CHANGE_WHILE_HA_SUSPENDED);
        }
        self.last_leader_change = Some(now);
    }

    fn on_obs(&mut self, node: NodeId, now: Time, obs: &Obs) {
        // The JobMaster's view of its attempts (TaskExecutors trace theirs too).
        if let Obs::ExecutionStateChanged { attempt, to, .. } = obs {
            if !self.taskmanagers.contains(&node) {
                let entry = self.canceling.entry(node).or_default();
                if *to == ExecutionState::Canceling {
                    entry.insert(*attempt, now);
                } else if to.is_terminal() {
                    entry.remove(attempt);
                }
            }
        }
        match obs {
            Obs::OutdatedConnectionDeclined {
                newer_registered: true,
                ..
            } => self.hit(CONNECTION_COMPLETES_AFTER_NEWER),
            Obs::CheckpointPointerStored { .. } => {
                if let Some(call) = self.ha_call {
                    self.unanswered.insert(call);
                }
            }
            Obs::HaConnectionChanged { state } => {
                if state == "SUSPENDED" {
                    self.suspended.insert(node);
                } else {
                    self.suspended.remove(&node);
                }
            }
            Obs::RestartScheduled { .. }
                if self
                    .canceling
                    .get(&node)
                    .is_some_and(|c| c.values().any(|t| *t < now)) =>
            {
                self.hit(SECOND_FAILURE_WHILE_CANCELING);
            }
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
                self.leader_changed(now);
            }
            Obs::LeadershipRevoked { .. } => {
                self.canceling.remove(&node);
                self.leaders.remove(&node);
                self.leader_changed(now);
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

#[cfg(test)]
mod tests {
    //! Two of the probes on hand-made event sequences (tests/probes.rs runs every probe on the
    //! bundled scenario that reaches it).
    use super::*;
    use crate::checking::oracle::testing::attempt;

    const JM: NodeId = NodeId(0);
    const TM: NodeId = NodeId(1);

    fn probes() -> Probes {
        Probes::new(&Topology {
            jobmanagers: vec![JM],
            taskmanagers: vec![TM],
            spare_taskmanagers: vec![],
            client: None,
            source_log: None,
            checkpoint_storage: None,
            sink: None,
            ha: None,
        })
    }

    fn obs(p: &mut Probes, ms: u64, node: NodeId, obs: Obs) {
        p.observe(&Event {
            index: 0,
            time: Time::from_millis(ms),
            kind: EventKind::Obs { node, obs: &obs },
        });
    }

    /// Delivers `msg` from `from` to the JobManager, sent at `sent_ms`, at `at_ms`.
    fn deliver(p: &mut Probes, from: NodeId, msg: &Msg, sent_ms: u64, at_ms: u64) {
        p.observe(&Event {
            index: 0,
            time: Time::from_millis(at_ms),
            kind: EventKind::Deliver {
                from,
                to: JM,
                sent: Time::from_millis(sent_ms),
                msg,
            },
        })
    }

    /// The answer to `submitTask` of attempt (0, 0, 0).
    fn submit_answer() -> Msg {
        Msg::JobMaster {
            job_id: 1,
            rpc: JobMasterRpc::SubmitTaskResponse {
                attempt: attempt(0, 0, 0),
                ok: true,
            },
        }
    }

    fn hits(p: &Probes, name: &str) -> u64 {
        p.hits().find(|(n, _)| *n == name).expect("a probe").1
    }

    fn changed(to: ExecutionState) -> Obs {
        Obs::ExecutionStateChanged {
            attempt: attempt(0, 1, 0),
            from: ExecutionState::Running,
            to,
        }
    }

    fn restart() -> Obs {
        Obs::RestartScheduled {
            job_id: 1,
            vertices: 1,
            backoff_ms: 1000,
            global: false,
        }
    }

    #[test]
    fn a_restart_while_an_earlier_cancellation_runs_is_a_second_failure_while_canceling() {
        let mut p = probes();
        // The first failure cancels attempt (0, 1) and schedules its restart in one step.
        obs(&mut p, 10, JM, changed(ExecutionState::Canceling));
        obs(&mut p, 10, JM, restart());
        assert_eq!(hits(&p, "second-failure-while-canceling"), 0);
        // The TaskExecutor's own view does not count; a later failure does.
        obs(&mut p, 12, TM, changed(ExecutionState::Canceling));
        obs(&mut p, 15, JM, restart());
        assert_eq!(hits(&p, "second-failure-while-canceling"), 1);
        // Once the attempt is CANCELED, a restart is not one during a cancellation.
        obs(&mut p, 20, JM, changed(ExecutionState::Canceled));
        obs(&mut p, 30, JM, restart());
        assert_eq!(hits(&p, "second-failure-while-canceling"), 1);
    }

    #[test]
    fn an_answer_overtaken_by_a_later_call_counts() {
        let mut p = probes();
        let answer = submit_answer();
        let call = Msg::JobMaster {
            job_id: 1,
            rpc: JobMasterRpc::HeartbeatFromResourceManager,
        };
        // In order: the answer (sent at 1 ms) before the call sent at 2 ms.
        deliver(&mut p, TM, &answer, 1, 3);
        deliver(&mut p, TM, &call, 2, 4);
        assert_eq!(hits(&p, "answer-overtaken-by-later-call"), 0);
        // The call sent at 6 ms arrives before the answer sent at 5 ms.
        deliver(&mut p, TM, &call, 6, 8);
        deliver(&mut p, TM, &answer, 5, 9);
        assert_eq!(hits(&p, "answer-overtaken-by-later-call"), 1);
        // Another link's calls do not count.
        deliver(&mut p, NodeId(7), &call, 20, 21);
        deliver(&mut p, TM, &answer, 10, 22);
        assert_eq!(hits(&p, "answer-overtaken-by-later-call"), 1);
    }

    #[test]
    fn an_answer_counts_only_after_its_ask_timed_out() {
        let mut p = probes();
        let a = attempt(0, 0, 0);
        let answer = submit_answer();
        let deliver = |p: &mut Probes, ms| deliver(p, TM, &answer, ms - 1, ms);
        deliver(&mut p, 5);
        assert_eq!(hits(&p, "rpc-answer-after-ask-timeout"), 0);
        let timeout = Timer::JobMaster {
            job_id: 1,
            timer: JobMasterTimer::SubmitTaskTimeout { attempt: a },
        };
        p.observe(&Event {
            index: 0,
            time: Time::from_millis(10_000),
            kind: EventKind::Timer {
                node: JM,
                tag: &timeout,
            },
        });
        deliver(&mut p, 10_005);
        assert_eq!(hits(&p, "rpc-answer-after-ask-timeout"), 1);
        deliver(&mut p, 10_006);
        assert_eq!(hits(&p, "rpc-answer-after-ask-timeout"), 1);
    }
}
