//! Job liveness (eventually): once the faults stop, every submitted job is back to RUNNING with
//! all its executions really running, or has ended (docs/flink-runtime.md §12 item 11, flink-jepsen's
//! "job running within the grace period", §11).
//!
//! Ground truth from the trace: the JobMaster's JobStatus and its current execution per
//! ExecutionVertex (`ExecutionCreated`, `ExecutionStateChanged`, `ExecutionDeployed`: which
//! TaskManager it was sent to), the TaskExecutors' own task states (`TaskStateChanged`), and
//! which processes are up (the census). A dead JobManager process takes its JobMasters along;
//! without high availability nothing recovers such a job, so it is not judged (a resubmission
//! starts a new JobMaster that is).
//!
//! Judged at the end of the run, and only when the run has been quiet — no effective fault, no
//! process exit, no lost or dropped message, no partition or clog still in force, no process
//! paused — for at least [`liveness_bound`] (plus four network latencies, stretched by the
//! slowest clock's drift since every timeout runs on a local clock), counted from the later of
//! the last fault and the JobMaster's start. Random loss (`network.loss`) up to
//! [`super::BACKGROUND_LOSS_MAX`] is not a fault: every message is re-sent or re-asked after a
//! timeout, so the bound grows by [`super::loss_allowance`] instead; a scenario losing more to the
//! end is never judged, since without reliable delivery there is no bound. Then for
//! each job:
//! - a globally terminal status (FINISHED, FAILED, CANCELED) is fine;
//! - RUNNING: each current execution is RUNNING or FINISHED, and each RUNNING one runs on a
//!   TaskManager that is up and itself reports that attempt RUNNING ("the JobMaster thinks X runs
//!   on Y, but Y doesn't" — a lost TaskManager whose executions were never failed). A TaskExecutor
//!   report younger than `heartbeat.interval` + `pekko.ask.timeout` + network may still be on
//!   its way to the JobMaster and is not held against it;
//! - any other status (RESTARTING, FAILING, CANCELLING, CREATED, …) is stuck.
//!
//! Without enough slots a job cannot run: when the running TaskManagers offer fewer slots than
//! the unfinished jobs need (one slot per subtask index, slot sharing), executions waiting for
//! slots and a RESTARTING job are not held against the JobMaster; executions it believes run on
//! a dead or forgetful TaskManager still are.
//!
//! The bound, in the spirit of flink-jepsen's grace period, adds up the slowest steps of a
//! recovery: the restart backoff (the fixed or failure-rate delay, exponential-delay's
//! max-backoff, 0 without restarts), detecting the lost peer (`heartbeat.timeout` +
//! `heartbeat.interval`), a TaskManager's registration attempt at its longest
//! (`cluster.registration.max-timeout`) and the longest pause before the next
//! (`max(refused-registration-delay, error-delay)`), an unaccepted slot expiring
//! (`taskmanager.slot.timeout`), and 2 s for the messages in between.

use super::{attempt_name, process_died, secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::jobmanager::job_master::restart_strategy::RestartStrategyConfig;
use crate::process::Topology;
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, NodeId, Status, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "job-liveness",
    kind: Kind::Eventually,
    description: "after the faults stop for restart backoff + heartbeat timeout + interval + registration max-timeout + max(refused, error delay) + slot timeout + 2 s, every submitted job is ended or RUNNING with every execution RUNNING (or FINISHED) on a live TaskManager that agrees",
};

/// How long after the last fault a job must be healthy again (see the module docs).
pub fn liveness_bound(config: &FlinkConfig) -> Duration {
    let backoff_max = match &config.restart_strategy {
        RestartStrategyConfig::NoRestart => Duration::ZERO,
        RestartStrategyConfig::FixedDelay { delay, .. }
        | RestartStrategyConfig::FailureRate { delay, .. } => *delay,
        RestartStrategyConfig::ExponentialDelay { max_backoff, .. } => *max_backoff,
    };
    backoff_max
        + config.heartbeat_timeout
        + config.heartbeat_interval
        + config.registration_max_timeout
        + config
            .registration_refused_delay
            .max(config.registration_error_delay)
        + config.taskmanager_slot_timeout
        + Duration::from_secs(2)
}

#[derive(Debug)]
struct Execution {
    attempt: ExecutionAttemptId,
    state: ExecutionState,
    since: Time,
    /// The TaskManager it was deployed to.
    task_manager: Option<NodeId>,
}

/// One JobMaster instance's view of its job.
#[derive(Debug)]
struct Master {
    node: NodeId,
    job_master_id: JobMasterId,
    started_at: Time,
    status: JobStatus,
    status_since: Time,
    executions: BTreeMap<ExecutionVertexId, Execution>,
}

impl Master {
    /// Slots the job needs: one per subtask index (slot sharing).
    fn slots_needed(&self) -> u64 {
        self.executions
            .keys()
            .map(|ev| u64::from(ev.subtask) + 1)
            .max()
            .unwrap_or(0)
    }
}

pub struct JobLiveness {
    topology: Topology,
    slots_per_task_manager: u64,
    bound: Duration,
    /// How long a TaskExecutor's task report may take to reach the JobMaster.
    settle: Duration,
    /// Submitted jobs -> their current JobMaster (`None` once its process died).
    jobs: BTreeMap<JobId, Option<Master>>,
    /// Execution graph id -> job (from `ExecutionCreated`).
    graph_job: BTreeMap<u64, JobId>,

    /// TaskExecutor view: (TaskManager, attempt) -> (state, since).
    tasks: BTreeMap<(NodeId, ExecutionAttemptId), (ExecutionState, Time)>,
    /// Node -> when its process last died.
    died_at: BTreeMap<NodeId, Time>,
    last_fault: Time,
    /// Partitions and clogs in force.
    network_rules: u32,
    /// `network.loss`: at most [`super::BACKGROUND_LOSS_MAX`], lost messages are not faults.
    loss: f64,
}

impl JobLiveness {
    pub fn new(setup: &Setup) -> JobLiveness {
        let c = &setup.config;
        JobLiveness {
            topology: setup.topology.clone(),
            slots_per_task_manager: u64::from(c.number_of_task_slots),
            bound: liveness_bound(c) + super::loss_allowance(c, setup.loss) + setup.latency_max * 4,
            settle: c.heartbeat_interval + c.ask_timeout + setup.latency_max * 2,
            jobs: BTreeMap::new(),
            graph_job: BTreeMap::new(),

            tasks: BTreeMap::new(),
            died_at: BTreeMap::new(),
            last_fault: Time::ZERO,
            network_rules: 0,
            loss: setup.loss,
        }
    }

    /// The judged bound: [`liveness_bound`] plus four network latencies (and, under background
    /// loss, [`super::loss_allowance`]).
    pub fn bound(&self) -> Duration {
        self.bound
    }

    fn master_of_attempt(&mut self, attempt: &ExecutionAttemptId) -> Option<&mut Master> {
        let job = self.graph_job.get(&attempt.graph)?;
        self.jobs.get_mut(job)?.as_mut()
    }

    fn on_fault(&mut self, fault: &Fault, time: Time) {
        self.last_fault = time;
        match fault {
            Fault::Partition { .. } | Fault::Clog { .. } => self.network_rules += 1,
            Fault::Heal(_) => self.network_rules = self.network_rules.saturating_sub(1),
            Fault::HealAll => self.network_rules = 0,
            _ => {}
        }
    }

    fn process_died(&mut self, n: NodeId, time: Time) {
        self.last_fault = time;
        self.died_at.insert(n, time);
        self.tasks.retain(|(node, _), _| *node != n);
        for master in self.jobs.values_mut() {
            if master.as_ref().is_some_and(|m| m.node == n) {
                *master = None;
            }
        }
    }

    fn on_obs(&mut self, node: NodeId, obs: &Obs, time: Time) {
        match obs {
            Obs::JobSubmitted { job_id } => {
                self.jobs.entry(*job_id).or_insert(None);
            }
            Obs::JobStatusChanged {
                job_id,
                job_master_id,
                from,
                to,
            } => {
                let entry = self.jobs.entry(*job_id).or_insert(None);
                match (from, entry.as_mut()) {
                    (None, _) => {
                        *entry = Some(Master {
                            node,
                            job_master_id: *job_master_id,
                            started_at: time,
                            status: *to,
                            status_since: time,
                            executions: BTreeMap::new(),
                        });
                    }
                    (Some(_), Some(m)) if m.job_master_id == *job_master_id => {
                        m.status = *to;
                        m.status_since = time;
                    }
                    _ => {}
                }
            }
            Obs::ExecutionCreated { job_id, attempt } => {
                self.graph_job.entry(attempt.graph).or_insert(*job_id);
                if let Some(m) = self.master_of_attempt(attempt) {
                    m.executions.insert(
                        attempt.vertex,
                        Execution {
                            attempt: *attempt,
                            state: ExecutionState::Created,
                            since: time,
                            task_manager: None,
                        },
                    );
                }
            }
            Obs::ExecutionStateChanged { attempt, to, .. } => {
                if let Some(m) = self.master_of_attempt(attempt) {
                    if let Some(e) = m.executions.get_mut(&attempt.vertex) {
                        if e.attempt == *attempt {
                            e.state = *to;
                            e.since = time;
                        }
                    }
                }
            }
            Obs::ExecutionDeployed {
                attempt,
                task_manager,
                ..
            } => {
                if let Some(m) = self.master_of_attempt(attempt) {
                    if let Some(e) = m.executions.get_mut(&attempt.vertex) {
                        if e.attempt == *attempt {
                            e.task_manager = Some(*task_manager);
                        }
                    }
                }
            }
            Obs::TaskStateChanged { attempt, to, .. } => {
                self.tasks.insert((node, *attempt), (*to, time));
            }
            _ => {}
        }
    }

    /// What is wrong with a RUNNING execution's TaskManager side, if anything.
    fn running_elsewhere(
        &self,
        census: &Census,
        end: Time,
        e: &Execution,
        jm: NodeId,
    ) -> Option<String> {
        let who = format!(
            "the JobMaster on {} thinks {} runs",
            census.name(jm),
            attempt_name(&e.attempt)
        );
        let Some(tm) = e.task_manager else {
            return Some(format!("{who}, but it never deployed it"));
        };
        let tm_name = census.name(tm);
        if census.status(tm) != Status::Up {
            let when = self
                .died_at
                .get(&tm)
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            return Some(format!("{who} on {tm_name}, but {tm_name} is down{when}"));
        }
        match self.tasks.get(&(tm, e.attempt)) {
            Some((ExecutionState::Running, _)) => None,
            Some((_, since)) if end.saturating_since(*since) < self.settle => None,
            Some((state, since)) => Some(format!(
                "{who} on {tm_name}, but {tm_name} has reported it {state} since {since}"
            )),
            None => {
                let restarted = self
                    .died_at
                    .get(&tm)
                    .map(|t| format!(" (its process restarted after dying at {t})"))
                    .unwrap_or_default();
                Some(format!(
                    "{who} on {tm_name}, but {tm_name} has no such task{restarted}"
                ))
            }
        }
    }
}

impl Oracle for JobLiveness {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.process_died(n, ev.time);
            return;
        }
        match &ev.kind {
            EventKind::Fault {
                fault,
                effective: true,
            } => self.on_fault(fault, ev.time),
            // A message that vanished is a network fault; what it would have done may be redone
            // only by a timeout (background loss is allowed for in the bound instead).
            EventKind::Drop { .. } if !super::background_loss(self.loss, ev) => {
                self.last_fault = ev.time
            }
            EventKind::Obs { node, obs } => self.on_obs(*node, obs, ev.time),
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        if self.network_rules > 0 {
            return; // not judged: a partition or clog is still in force
        }
        let paused = (0..census.len()).any(|i| census.status(NodeId(i as u32)) == Status::Paused);
        if paused {
            return; // not judged: a process is still stopped
        }
        let slots_up = self
            .topology
            .taskmanagers
            .iter()
            .filter(|tm| census.status(**tm) == Status::Up)
            .count() as u64
            * self.slots_per_task_manager;
        let slots_needed: u64 = self
            .jobs
            .values()
            .flatten()
            .filter(|m| !m.status.is_globally_terminal())
            .map(Master::slots_needed)
            .sum();
        let enough_slots = slots_up >= slots_needed;
        // Timeouts run on local clocks: the slowest one stretches them in true time.
        let slowest_ppm = (0..census.len())
            .map(|i| census.clock(NodeId(i as u32)).drift_ppm)
            .min()
            .unwrap_or(0)
            .min(0);
        let bound = self.bound.mul_f64(1e6 / (1e6 + slowest_ppm as f64));
        for (job_id, master) in &self.jobs {
            let Some(m) = master else {
                continue; // lost with its JobManager process; only HA would recover it
            };
            let since = self.last_fault.max(m.started_at);
            let quiet = end.saturating_since(since);
            if quiet < bound || m.status.is_globally_terminal() {
                continue;
            }
            let context = format!(
                "{} after the last fault or the JobMaster's start (liveness bound {})",
                secs(quiet),
                secs(bound)
            );
            let message = match m.status {
                JobStatus::Running => {
                    let problems: Vec<String> = m
                        .executions
                        .values()
                        .filter_map(|e| match e.state {
                            ExecutionState::Finished => None,
                            ExecutionState::Running => {
                                self.running_elsewhere(census, end, e, m.node)
                            }
                            state if enough_slots => Some(format!(
                                "{} is {state} since {} ({})",
                                attempt_name(&e.attempt),
                                e.since,
                                secs(end.saturating_since(e.since))
                            )),
                            _ => None, // waiting for slots the cluster does not have
                        })
                        .collect();
                    if problems.is_empty() {
                        continue;
                    }
                    const SHOWN: usize = 4;
                    let mut text = problems[..problems.len().min(SHOWN)].join("; ");
                    if problems.len() > SHOWN {
                        text += &format!("; and {} more", problems.len() - SHOWN);
                    }
                    format!(
                        "job {job_id:x} is RUNNING on {} {context}, but {text}",
                        census.name(m.node)
                    )
                }
                // Recovering the job of a suspended JobMaster needs high availability.
                JobStatus::Suspended => continue,
                JobStatus::Restarting if !enough_slots => continue,
                status => format!(
                    "job {job_id:x} on {} has been {status} since {} ({}), {context}; it should be RUNNING or ended by now",
                    census.name(m.node),
                    m.status_since,
                    secs(end.saturating_since(m.status_since))
                ),
            };
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: Some(m.node),
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{
        feed, lost_heartbeat, setup, world, Step, JM, TM1, TM2,
    };
    use crate::protocol::job_graph::JobVertexId;
    use ExecutionState as S;

    fn attempt(subtask: u32, n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(0),
                subtask,
            },
            attempt: n,
        }
    }

    fn status(from: Option<JobStatus>, to: JobStatus) -> Step {
        Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 9,
                from,
                to,
            },
        )
    }

    fn exec(a: ExecutionAttemptId, from: S, to: S) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionStateChanged {
                attempt: a,
                from,
                to,
            },
        )
    }

    fn task(tm: NodeId, a: ExecutionAttemptId, from: Option<S>, to: S) -> Step {
        Step::Obs(
            tm,
            Obs::TaskStateChanged {
                attempt: a,
                allocation_id: 1,
                from,
                to,
            },
        )
    }

    /// A job of two subtasks, subtask s deployed to TaskManager `tms[s]`, both RUNNING by 1 s.
    fn running_job(tms: [NodeId; 2]) -> Vec<(u64, Step)> {
        let mut steps = vec![
            (0, Step::Obs(JM, Obs::JobSubmitted { job_id: 5 })),
            (0, status(None, JobStatus::Created)),
        ];
        for s in 0..2 {
            steps.push((
                0,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: attempt(s, 0),
                    },
                ),
            ));
        }
        steps.push((0, status(Some(JobStatus::Created), JobStatus::Running)));
        for (s, tm) in tms.into_iter().enumerate() {
            let a = attempt(s as u32, 0);
            steps.extend([
                (100, exec(a, S::Created, S::Scheduled)),
                (200, exec(a, S::Scheduled, S::Deploying)),
                (
                    200,
                    Step::Obs(
                        JM,
                        Obs::ExecutionDeployed {
                            attempt: a,
                            task_manager: tm,
                            allocation_id: 1,
                        },
                    ),
                ),
                (300, task(tm, a, None, S::Deploying)),
                (400, task(tm, a, Some(S::Deploying), S::Initializing)),
                (500, task(tm, a, Some(S::Initializing), S::Running)),
                (600, exec(a, S::Deploying, S::Initializing)),
                (600, exec(a, S::Initializing, S::Running)),
            ]);
        }
        steps
    }

    fn config() -> FlinkConfig {
        let mut c = FlinkConfig::default();
        c.number_of_task_slots = 2;
        c
    }

    fn check(up: [bool; 3], steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        check_with(config(), up, steps, end_ms)
    }

    fn check_with(
        config: FlinkConfig,
        up: [bool; 3],
        steps: &[(u64, Step)],
        end_ms: u64,
    ) -> Vec<Violation> {
        let w = world(up);
        let mut oracle = JobLiveness::new(&setup(config));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn the_bound_follows_the_configuration() {
        // Defaults, no restarts: 50 + 10 + 30 + max(30, 10) + 10 + 2 s.
        assert_eq!(liveness_bound(&config()), Duration::from_secs(132));
        let mut c = config();
        c.restart_strategy = RestartStrategyConfig::EXPONENTIAL_DELAY_DEFAULT;
        assert_eq!(liveness_bound(&c), Duration::from_secs(192));
    }

    #[test]
    fn a_running_job_whose_taskmanagers_agree_holds() {
        let steps = running_job([TM1, TM2]);
        assert_eq!(check([true; 3], &steps, 200_000), vec![]);
    }

    #[test]
    fn background_loss_is_judged_through_with_its_allowance() {
        let mut steps = running_job([TM1, TM1]);
        steps.push((
            5_000,
            status(Some(JobStatus::Running), JobStatus::Restarting),
        ));
        let lost = |at: u64| (at, lost_heartbeat(TM1, JM));
        steps.push(lost(100_000));
        steps.push(lost(199_000));
        let judge = |loss: f64, end_ms: u64| {
            let w = world([true; 3]);
            let mut oracle = JobLiveness::new(&Setup {
                loss,
                ..setup(config())
            });
            feed(&mut oracle, w.census(), &steps, Some(end_ms))
        };
        // Background loss: the stuck job is caught once the bound with its allowance passed
        // since the JobMaster started, lost messages or not ...
        let bound = JobLiveness::new(&Setup {
            loss: 0.003,
            ..setup(config())
        })
        .bound();
        assert_eq!(
            bound,
            liveness_bound(&config()) + config().ask_timeout * 3 + Duration::from_millis(40)
        );
        let v = judge(0.003, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("RESTARTING"), "{}", v[0].message);
        let early = bound.as_millis() as u64 - 1_000;
        assert_eq!(judge(0.003, early), vec![]);
        // ... while heavier loss is a fault, and the run is not judged.
        assert_eq!(judge(0.05, 200_000), vec![]);
    }

    #[test]
    fn executions_believed_running_on_a_killed_taskmanager_are_caught() {
        let mut steps = running_job([TM1, TM2]);
        steps.push((10_000, Step::Fault(Fault::Kill(TM2))));
        // Too early to judge.
        assert_eq!(check([true, true, false], &steps, 100_000), vec![]);
        let v = check([true, true, false], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "thinks vertex 0 subtask 1 attempt 0 runs on taskmanager-2, but taskmanager-2 is down since 10.000s"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn executions_waiting_for_slots_are_judged_only_when_the_cluster_has_them() {
        let mut one_slot = config();
        one_slot.number_of_task_slots = 1;
        let mut steps = running_job([TM1, TM2]);
        let retry = attempt(1, 1);
        steps.extend([
            (10_000, Step::Fault(Fault::Kill(TM2))),
            (15_000, exec(attempt(1, 0), S::Running, S::Failed)),
            (
                15_000,
                status(Some(JobStatus::Running), JobStatus::Restarting),
            ),
            (
                16_000,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: retry,
                    },
                ),
            ),
            (
                16_000,
                status(Some(JobStatus::Restarting), JobStatus::Running),
            ),
            (16_000, exec(retry, S::Created, S::Scheduled)),
        ]);
        // taskmanager-2 stays dead: one slot for two subtasks, the job cannot run.
        let lacking = check_with(one_slot.clone(), [true, true, false], &steps, 300_000);
        assert_eq!(lacking, vec![]);
        // taskmanager-2 came back (its start is a fault too): the slot is there.
        steps.push((20_000, Step::Fault(Fault::Start(TM2))));
        let v = check_with(one_slot, [true; 3], &steps, 300_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("vertex 0 subtask 1 attempt 1 is SCHEDULED since 16.000s"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_run_that_keeps_losing_messages_is_not_judged() {
        let mut steps = running_job([TM1, TM1]);
        steps.push((
            5_000,
            status(Some(JobStatus::Running), JobStatus::Restarting),
        ));
        steps.push((199_000, lost_heartbeat(TM1, JM)));
        assert_eq!(check([true; 3], &steps, 200_000), vec![]);
    }

    #[test]
    fn a_job_stuck_restarting_is_caught() {
        let mut steps = running_job([TM1, TM1]);
        steps.push((
            5_000,
            status(Some(JobStatus::Running), JobStatus::Restarting),
        ));
        let v = check([true; 3], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("job 5 on jobmanager-1 has been RESTARTING since 5.000s (195.000 s)"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_job_lost_with_its_jobmanager_or_finished_is_not_held_against_anyone() {
        let mut steps = running_job([TM1, TM2]);
        steps.push((5_000, Step::Fault(Fault::Kill(JM))));
        assert_eq!(check([false, true, true], &steps, 200_000), vec![]);
        let mut steps = running_job([TM1, TM2]);
        steps.push((5_000, status(Some(JobStatus::Running), JobStatus::Finished)));
        assert_eq!(check([true; 3], &steps, 200_000), vec![]);
    }
}
