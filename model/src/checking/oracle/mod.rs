//! Oracles: checkers outside the system. They observe every traced event (deliveries, faults,
//! observations), keep their own ground truth and report violations; they never call into
//! components. One concern per file.
//!
//! Kinds follow docs/architecture.md (conventions): **always** (safety, checked on every event), **eventually** (liveness,
//! judged at the end of a run once faults have been quiet long enough).

pub mod attempt_order;
pub mod checkpoint_completeness;
pub mod checkpoint_ids;
pub mod checkpoint_liveness;
pub mod commits_cover_completed;
pub mod committed_only_completed;
pub mod exactly_once;
pub mod heartbeat;
pub mod held_slot_takes_tasks;
pub mod job_liveness;
pub mod leader_fencing;
pub mod lingering_transactions;
pub mod no_resurrection;
pub mod offer_answers;
pub mod one_live_attempt;
pub mod referenced_state;
pub mod registration;
pub mod restart_budget;
pub mod restored_state;
pub mod slot_leak;
pub mod slot_views;
pub mod slots;
pub mod stale_attempts;
pub mod transitions;

use crate::process::Topology;
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, NodeId, Observer, Time};
use std::time::Duration;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    /// True time.
    pub at: Time,
    pub node: Option<NodeId>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Always,
    Eventually,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Always => "always",
            Kind::Eventually => "eventually",
        }
    }
}

/// A named invariant, for `flinksim list invariants` and `[expect] invariants`.
#[derive(Clone, Copy, Debug)]
pub struct Invariant {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

pub const INVARIANTS: &[Invariant] = &[
    heartbeat::INVARIANT,
    registration::INVARIANT,
    transitions::INVARIANT,
    slots::INVARIANT,
    slot_leak::INVARIANT,
    slot_views::INVARIANT,
    held_slot_takes_tasks::INVARIANT,
    offer_answers::INVARIANT,
    stale_attempts::INVARIANT,
    attempt_order::INVARIANT,
    one_live_attempt::INVARIANT,
    restart_budget::INVARIANT,
    job_liveness::INVARIANT,
    exactly_once::INVARIANT,
    committed_only_completed::INVARIANT,
    commits_cover_completed::INVARIANT,
    restored_state::INVARIANT,
    checkpoint_ids::INVARIANT,
    checkpoint_completeness::INVARIANT,
    referenced_state::INVARIANT,
    checkpoint_liveness::INVARIANT,
    lingering_transactions::INVARIANT,
    leader_fencing::INVARIANT,
    no_resurrection::INVARIANT,
];

pub fn invariant(name: &str) -> Option<&'static Invariant> {
    INVARIANTS.iter().find(|i| i.name == name)
}

/// What oracles know about the run beyond the trace: the configuration they judge against.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: FlinkConfig,
    pub topology: Topology,
    /// The largest one-way network latency (without clogging).
    pub latency_max: Duration,
    /// The per-message probability of random loss (`network.loss`, as drawn for this seed).
    pub loss: f64,
    /// The job the client submits, if the scenario has one: the output oracles derive the
    /// fault-free reference from it.
    pub job: Option<std::sync::Arc<crate::protocol::job_graph::JobSpec>>,
    /// The fault-free reference output of `job`, when the caller already has it (it is a pure
    /// function of the spec, so a runner may compute it once for many seeds); `None`: the
    /// oracles compute it.
    pub reference: Option<std::sync::Arc<crate::checking::reference::ReferenceOutput>>,
}

pub trait Oracle {
    fn invariant(&self) -> &'static Invariant;
    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>);
    /// The run ended at `end`: judge what must eventually hold.
    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>);
}

/// The oracles of a run, as one kernel observer.
pub struct Oracles {
    oracles: Vec<Box<dyn Oracle>>,
    pub violations: Vec<Violation>,
    /// Stop the run at the first violation.
    pub stop_on_violation: bool,
}

impl Oracles {
    /// The oracles for the named invariants (all when `names` is `None`).
    pub fn new(setup: &Setup, names: Option<&[String]>) -> Oracles {
        let wanted = |n: &str| names.is_none_or(|list| list.iter().any(|x| x == n));
        let mut oracles: Vec<Box<dyn Oracle>> = Vec::new();
        if wanted(heartbeat::INVARIANT.name) {
            oracles.push(Box::new(heartbeat::HeartbeatDetection::new(setup)));
        }
        if wanted(registration::INVARIANT.name) {
            oracles.push(Box::new(registration::RegistrationLiveness::new(setup)));
        }
        if wanted(transitions::INVARIANT.name) {
            oracles.push(Box::new(transitions::LegalTransitions::new(setup)));
        }
        if wanted(slots::INVARIANT.name) {
            oracles.push(Box::new(slots::SlotExclusivity::new(setup)));
        }
        if wanted(slot_leak::INVARIANT.name) {
            oracles.push(Box::new(slot_leak::NoSlotLeak::new(setup)));
        }
        if wanted(slot_views::INVARIANT.name) {
            oracles.push(Box::new(slot_views::SlotViewsAgree::new(setup)));
        }
        if wanted(held_slot_takes_tasks::INVARIANT.name) {
            oracles.push(Box::new(held_slot_takes_tasks::HeldSlotTakesTasks::new(
                setup,
            )));
        }
        if wanted(offer_answers::INVARIANT.name) {
            oracles.push(Box::new(offer_answers::OfferAnswers::new(setup)));
        }
        if wanted(stale_attempts::INVARIANT.name) {
            oracles.push(Box::new(stale_attempts::StaleAttempts::new(setup)));
        }
        if wanted(attempt_order::INVARIANT.name) {
            oracles.push(Box::new(attempt_order::AttemptOrder::new(setup)));
        }
        if wanted(one_live_attempt::INVARIANT.name) {
            oracles.push(Box::new(one_live_attempt::OneLiveAttempt::new(setup)));
        }
        if wanted(restart_budget::INVARIANT.name) {
            oracles.push(Box::new(restart_budget::RestartBudget::new(setup)));
        }
        if wanted(job_liveness::INVARIANT.name) {
            oracles.push(Box::new(job_liveness::JobLiveness::new(setup)));
        }
        // Before exactly-once: a transaction left uncommitted also shows as missing output at
        // the end, and this oracle names the mechanism.
        if wanted(commits_cover_completed::INVARIANT.name) {
            oracles.push(Box::new(
                commits_cover_completed::CommitsCoverCompleted::new(setup),
            ));
        }
        if wanted(exactly_once::INVARIANT.name) {
            oracles.push(Box::new(exactly_once::ExactlyOnce::new(setup)));
        }
        if wanted(committed_only_completed::INVARIANT.name) {
            oracles.push(Box::new(
                committed_only_completed::CommittedOnlyCompleted::new(setup),
            ));
        }
        if wanted(restored_state::INVARIANT.name) {
            oracles.push(Box::new(restored_state::RestoredState::new(setup)));
        }
        if wanted(checkpoint_ids::INVARIANT.name) {
            oracles.push(Box::new(checkpoint_ids::CheckpointIds::new(setup)));
        }
        if wanted(checkpoint_completeness::INVARIANT.name) {
            oracles.push(Box::new(
                checkpoint_completeness::CheckpointCompleteness::new(setup),
            ));
        }
        if wanted(referenced_state::INVARIANT.name) {
            oracles.push(Box::new(referenced_state::ReferencedStateKept::new(setup)));
        }
        if wanted(checkpoint_liveness::INVARIANT.name) {
            oracles.push(Box::new(checkpoint_liveness::CheckpointLiveness::new(
                setup,
            )));
        }
        if wanted(lingering_transactions::INVARIANT.name) {
            oracles.push(Box::new(
                lingering_transactions::NoLingeringTransactions::new(setup),
            ));
        }
        if wanted(leader_fencing::INVARIANT.name) {
            oracles.push(Box::new(leader_fencing::LeaderFencing::new(setup)));
        }
        if wanted(no_resurrection::INVARIANT.name) {
            oracles.push(Box::new(no_resurrection::NoResurrection::new(setup)));
        }
        Oracles {
            oracles,
            violations: Vec::new(),
            stop_on_violation: true,
        }
    }

    pub fn finish(&mut self, census: &Census, end: Time) {
        for o in &mut self.oracles {
            o.finish(census, end, &mut self.violations);
        }
    }
}

impl Observer<Flink> for Oracles {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, Flink>) {
        for o in &mut self.oracles {
            o.observe(census, ev, &mut self.violations);
        }
    }

    fn wants_stop(&self) -> bool {
        self.stop_on_violation && !self.violations.is_empty()
    }
}

/// Seconds with millisecond precision, for messages.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// An execution attempt as a Flink engineer reads it: "vertex 1 subtask 0 attempt 2".
pub(crate) fn attempt_name(a: &ExecutionAttemptId) -> String {
    format!(
        "vertex {} subtask {} attempt {}",
        a.vertex.vertex.0, a.vertex.subtask, a.attempt
    )
}

/// The node whose process stopped with this event (killed, or exited by itself): everything it
/// kept in memory is gone.
pub(crate) fn process_died<V: sim::Vocabulary>(ev: &Event<'_, V>) -> Option<NodeId> {
    match &ev.kind {
        EventKind::Fault {
            fault: Fault::Kill(n),
            effective: true,
        } => Some(*n),
        EventKind::Exited { node } => Some(*node),
        _ => None,
    }
}

/// Whether `ev` ends the handler that runs. The kernel traces a delivery (or timer) and then, at
/// the same time and node, its handler's observations, persists and drops of its sends, before
/// any other delivery, timer or fault; so "the current cause" of an observation or persist is
/// the last delivery, and every event but those three starts a new handler or is none.
pub(crate) fn ends_handler<V: sim::Vocabulary>(ev: &Event<'_, V>) -> bool {
    !matches!(
        ev.kind,
        EventKind::Obs { .. } | EventKind::Persist { .. } | EventKind::Drop { .. }
    )
}

/// Random message loss up to this probability is background noise that the job-liveness and
/// checkpoint-liveness oracles judge through: every message Flink relies on is re-sent or
/// re-asked after a timeout, so a rare loss delays a recovery by a timeout rather than stopping
/// it. Above it, a lost message counts as a fault, as every other drop does.
pub const BACKGROUND_LOSS_MAX: f64 = 0.01;

/// Whether `ev` is a message lost to background loss ([`BACKGROUND_LOSS_MAX`]), which the
/// liveness oracles do not count as a fault.
pub(crate) fn background_loss(setup_loss: f64, ev: &Event<'_, Flink>) -> bool {
    setup_loss > 0.0
        && setup_loss <= BACKGROUND_LOSS_MAX
        && matches!(
            ev.kind,
            EventKind::Drop {
                reason: sim::DropReason::Lost,
                ..
            }
        )
}

/// What background loss adds to a liveness bound: a lost request or answer is redone after
/// `pekko.ask.timeout` (registrations and heartbeats retry sooner); a recovery may meet three in
/// a row.
pub fn loss_allowance(config: &FlinkConfig, loss: f64) -> Duration {
    if loss > 0.0 && loss <= BACKGROUND_LOSS_MAX {
        config.ask_timeout * 3
    } else {
        Duration::ZERO
    }
}

/// When the faults stopped, as the liveness oracles count them: every effective fault, a
/// process exit and a lost or dropped message; and whether the run is quiet enough at its end
/// to be judged at all (no partition or clog in force, no process paused).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quiet {
    pub last_fault: Time,
    /// Partitions and clogs in force.
    network_rules: u32,
}

impl Quiet {
    pub fn observe(&mut self, ev: &Event<'_, Flink>) {
        match &ev.kind {
            EventKind::Fault {
                fault,
                effective: true,
            } => {
                self.last_fault = ev.time;
                match fault {
                    Fault::Partition { .. } | Fault::Clog { .. } => self.network_rules += 1,
                    Fault::Heal(_) => self.network_rules = self.network_rules.saturating_sub(1),
                    Fault::HealAll => self.network_rules = 0,
                    _ => {}
                }
            }
            EventKind::Exited { .. } | EventKind::Drop { .. } => self.last_fault = ev.time,
            _ => {}
        }
    }

    /// No partition or clog is in force and no process is paused.
    pub fn judged(&self, census: &Census) -> bool {
        self.network_rules == 0
            && (0..census.len()).all(|i| census.status(NodeId(i as u32)) != sim::Status::Paused)
    }

    /// `bound` in true time: timeouts run on local clocks, and the slowest stretches them.
    pub fn stretched(census: &Census, bound: Duration) -> Duration {
        let slowest_ppm = (0..census.len())
            .map(|i| census.clock(NodeId(i as u32)).drift_ppm)
            .min()
            .unwrap_or(0)
            .min(0);
        bound.mul_f64(1e6 / (1e6 + slowest_ppm as f64))
    }
}

/// Hand-fed event sequences for the oracles' unit tests: a census of named nodes from a real
/// (idle) `sim::World`, and steps that own what the borrowed `sim::Event`s point to.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Oracle, Setup, Violation};
    use crate::process::Topology;
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::obs::Obs;
    use crate::protocol::rpc::Msg;
    use crate::protocol::timer::Timer;
    use crate::protocol::Flink;
    use sim::{
        Actor, Census, Clock, Ctx, Event, EventKind, Fault, Limits, NetConfig, NodeId, NodeSpec,
        Time, TimerId, World,
    };
    use std::time::Duration;

    /// An actor that does nothing: the tests only need the census of its world.
    pub struct Idle;

    impl sim::Vocabulary for Idle {
        type Msg = Nothing;
        type Timer = ();
        type Obs = ();
        type Op = ();
    }

    impl Actor for Idle {
        type V = Self;
        type Durable = ();
        fn on_start(&mut self, _: &mut Ctx<'_, Self>) {}
        fn on_message(&mut self, _: &mut Ctx<'_, Self>, _: NodeId, _: Nothing) {}
        fn on_timer(&mut self, _: &mut Ctx<'_, Self>, _: TimerId, _: ()) {}
        fn on_unreachable(&mut self, _: &mut Ctx<'_, Self>, _: NodeId, _: Nothing) {}
    }

    #[derive(Clone, Debug, Hash)]
    pub struct Nothing;

    impl sim::Message for Nothing {
        fn name(&self) -> &'static str {
            "idle"
        }
    }

    pub const JM: NodeId = NodeId(0);
    pub const TM1: NodeId = NodeId(1);
    pub const TM2: NodeId = NodeId(2);

    /// `jobmanager-1`, `taskmanager-1`, `taskmanager-2`; `up[i]` says whether node i runs.
    pub fn world(up: [bool; 3]) -> World<Idle> {
        let names = ["jobmanager-1", "taskmanager-1", "taskmanager-2"];
        let nodes = names
            .iter()
            .zip(up)
            .map(|(name, start)| NodeSpec {
                name: name.to_string(),
                clock: Clock::default(),
                start,
            })
            .collect();
        let mut world = World::new(1, NetConfig::default(), nodes, |_, _| Idle);
        let limits = Limits {
            time_max: Time::ZERO,
            ..Limits::default()
        };
        world.run(limits, &mut ());
        world
    }

    pub fn setup(config: FlinkConfig) -> Setup {
        Setup {
            config,
            topology: Topology {
                jobmanagers: vec![JM],
                taskmanagers: vec![TM1, TM2],
                ..Topology::default()
            },
            latency_max: Duration::from_millis(10),
            loss: 0.0,
            job: None,
            reference: None,
        }
    }

    /// Attempt `n` of subtask `subtask` of job vertex `vertex`, in execution graph 7.
    pub fn attempt(vertex: u32, subtask: u32, n: u32) -> crate::protocol::ids::ExecutionAttemptId {
        crate::protocol::ids::ExecutionAttemptId {
            graph: 7,
            vertex: crate::protocol::job_graph::ExecutionVertexId {
                vertex: crate::protocol::job_graph::JobVertexId(vertex),
                subtask,
            },
            attempt: n,
        }
    }

    /// One traced event, owning its payload.
    pub enum Step {
        Obs(NodeId, Obs),
        Deliver(NodeId, NodeId, Msg),
        /// A delivery of a message sent at the given millisecond (earlier than its step's).
        DeliverSent(NodeId, NodeId, u64, Msg),
        Unreachable(NodeId, NodeId, Msg),
        /// A message lost in the network.
        Drop(NodeId, NodeId, Msg),
        Timer(NodeId, Timer),
        Persist(NodeId, crate::protocol::durable::DurableOp),
        Fault(Fault),
        Exited(NodeId),
    }

    /// `submitTask` of `attempt` of job 5 into allocation `allocation_id`, from the JobMaster
    /// on `JM` under `job_master_id`, delivered to `TM1`.
    pub fn submit_task(
        attempt: crate::protocol::ids::ExecutionAttemptId,
        allocation_id: crate::protocol::ids::AllocationId,
        job_master_id: crate::protocol::ids::JobMasterId,
    ) -> Step {
        use crate::protocol::rpc::{StreamConfig, TaskDeploymentDescriptor, TaskExecutorRpc};
        Step::Deliver(
            JM,
            TM1,
            Msg::TaskExecutor(TaskExecutorRpc::SubmitTask {
                tdd: Box::new(TaskDeploymentDescriptor {
                    job_id: 5,
                    attempt,
                    allocation_id,
                    task_name: "Source: sequence (1/1)#0".into(),
                    source: None,
                    inputs: Vec::new(),
                    stream: std::sync::Arc::new(StreamConfig::minimal()),
                    subtask: 0,
                    restore: None,
                }),
                job_master_id,
            }),
        )
    }

    /// A heartbeat of job 5's JobMaster from `from` to `to`, lost in the network.
    pub fn lost_heartbeat(from: NodeId, to: NodeId) -> Step {
        Step::Drop(
            from,
            to,
            Msg::JobMaster {
                job_id: 5,
                rpc: crate::protocol::rpc::JobMasterRpc::HeartbeatFromResourceManager,
            },
        )
    }

    /// Feeds `steps` (each at its millisecond) to `oracle`; with `end_ms`, then finishes the run.
    pub fn feed(
        oracle: &mut dyn Oracle,
        census: &Census,
        steps: &[(u64, Step)],
        end_ms: Option<u64>,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        for (index, (ms, step)) in steps.iter().enumerate() {
            let kind: EventKind<'_, Flink> = match step {
                Step::Obs(node, obs) => EventKind::Obs { node: *node, obs },
                Step::Deliver(from, to, msg) => EventKind::Deliver {
                    from: *from,
                    to: *to,
                    sent: Time::from_millis(*ms),
                    msg,
                },
                Step::DeliverSent(from, to, sent, msg) => EventKind::Deliver {
                    from: *from,
                    to: *to,
                    sent: Time::from_millis(*sent),
                    msg,
                },
                Step::Unreachable(from, to, msg) => EventKind::Unreachable {
                    from: *from,
                    to: *to,
                    msg,
                },
                Step::Drop(from, to, msg) => EventKind::Drop {
                    from: *from,
                    to: *to,
                    msg,
                    reason: sim::DropReason::Lost,
                },
                Step::Timer(node, tag) => EventKind::Timer { node: *node, tag },
                Step::Persist(node, op) => EventKind::Persist { node: *node, op },
                Step::Fault(fault) => EventKind::Fault {
                    fault,
                    effective: true,
                },
                Step::Exited(node) => EventKind::Exited { node: *node },
            };
            let ev = Event {
                index: index as u64,
                time: Time::from_millis(*ms),
                kind,
            };
            oracle.observe(census, &ev, &mut out);
        }
        if let Some(end) = end_ms {
            oracle.finish(census, Time::from_millis(end), &mut out);
        }
        out
    }
}
