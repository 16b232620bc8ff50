//! Checkpoint liveness (eventually): with checkpointing enabled, once the faults stop a running
//! job completes a checkpoint within a bound (docs/architecture.md: after the faults the job must "complete
//! checkpoints"; a coordinator that stops triggering, or whose checkpoints keep failing, makes no
//! progress a restore could use and lets the sink's transactions pile up).
//!
//! Ground truth from the trace: faults as job-liveness counts them (every effective fault, a
//! process exit, a dropped message, a lost one above background loss), the JobMaster's `JobStatusChanged` per instance,
//! and its coordinator's `CheckpointTriggered`, `CheckpointCompleted` and `CheckpointAborted`.
//!
//! The window for one JobMaster instance opens at the later of the last fault and the
//! instance's start. A checkpoint pending at the last fault may legitimately hang until
//! `execution.checkpointing.timeout` (an acknowledgement lost in a partition is not retried),
//! and with `max-concurrent-checkpoints` reached nothing new is triggered meanwhile; so while a
//! checkpoint pending at the last fault is still pending, the window has not opened, and it
//! opens when the last of them is aborted (if one completes instead, that is progress).
//!
//! A checkpoint can only complete while every task runs, so the clock starts at the later of
//! the window's opening and the first moment in the window at which the job was RUNNING with
//! every current execution RUNNING (or FINISHED), as the JobMaster reports them
//! (`ExecutionCreated`, `ExecutionStateChanged`). The first such moment, not the latest: a job
//! that keeps failing over without faults (say, because its checkpoints keep failing) does not
//! restart the clock. One exception: when the job seemed to run fully at the fault itself, the
//! JobMaster may simply not have noticed the fault yet, so the first break of that stretch
//! starts the search afresh. A job that never ran fully again (stuck, or lacking slots) is
//! job-liveness's concern, not this oracle's.
//!
//! Judged at the end of the run, only when no partition or clog is in force and no process is
//! paused, for a job whose current JobMaster is alive and that is not globally terminal
//! (FINISHED, FAILED, CANCELED) or SUSPENDED at the end. Then a checkpoint must complete within
//! [`checkpoint_liveness_bound`] of the clock's start, or, if a checkpoint pending at the last
//! fault is still pending, it must not be pending longer than its timeout + 10 s.
//!
//! The bound (plus four network latencies, stretched by the slowest clock's drift, since timers
//! run on local clocks) is generous on purpose: job-liveness's recovery bound
//! ([`super::job_liveness::liveness_bound`]: restart backoff, failure detection, registration,
//! slot timeout), for a job that fails over once more after its tasks first ran (a fault the
//! JobMaster noticed late, a checkpoint failure over the tolerable count); then the periodic
//! trigger fires within `min-pause` + one interval, a trigger declined because not all tasks
//! run yet costs another interval, and the checkpoint itself completes within a third
//! interval + 10 s.
//!
//! Progress must last, too: once a checkpoint completed in the window, the latest completion
//! may not lie more than the same bound before the end while the job runs (checkpoints that
//! completed after the faults and then stopped: a coordinator that stopped triggering, or whose
//! triggers fail before they have an id, as with FLINK-14091's stuck checkpoint id counter).
//!
//! Random loss up to [`super::BACKGROUND_LOSS_MAX`] is not a fault (as for job-liveness): the
//! bound grows by [`super::loss_allowance`] and one checkpoint timeout (a lost acknowledgement
//! holds its checkpoint until it expires), so a scenario losing messages to its end is judged
//! too.

use super::job_liveness::liveness_bound;
use super::{process_died, secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::checkpoint::{CheckpointConfig, CheckpointId};
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
    name: "checkpoint-liveness",
    kind: Kind::Eventually,
    description: "with checkpointing enabled, a job RUNNING after the faults stop completes a checkpoint within the job-liveness bound + min-pause + 3 checkpoint intervals + 10 s (a checkpoint pending across the last fault ends by its timeout)",
};

/// Slack for a checkpoint's own completion, and after its timeout for its abort.
const SLACK: Duration = Duration::from_secs(10);

/// How long after the window opens a checkpoint must complete (see the module docs), before
/// network latencies and clock drift.
pub fn checkpoint_liveness_bound(
    config: &FlinkConfig,
    checkpointing: &CheckpointConfig,
) -> Duration {
    liveness_bound(config) + checkpointing.min_pause + checkpointing.interval * 3 + SLACK
}

/// Why the window of an instance opened when it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opened {
    Fault,
    Started,
    /// The last checkpoint pending across the last fault was aborted.
    PendingAborted(CheckpointId),
}

/// One JobMaster instance, as far as its checkpoints go.
#[derive(Debug)]
struct Master {
    node: NodeId,
    job_master_id: JobMasterId,
    status: JobStatus,
    /// Pending checkpoints -> when they were triggered.
    pending: BTreeMap<CheckpointId, Time>,
    /// Checkpoints pending at the last fault and still pending -> when they were triggered.
    across_fault: BTreeMap<CheckpointId, Time>,
    window_opened: Time,
    opened: Opened,
    /// The current execution of each vertex and its state, as the JobMaster reports them.
    executions: BTreeMap<ExecutionVertexId, (ExecutionAttemptId, ExecutionState)>,
    /// The first moment since the last fault (or the start) at which the job ran fully.
    ran_fully_at: Option<Time>,
    /// `ran_fully_at` is the last fault's time because the job seemed to run fully then: the
    /// JobMaster may not have noticed the fault yet, so the first break of that stretch
    /// (a failover caused by the fault) starts the search afresh.
    ran_fully_across_fault: bool,
    first_completion: Option<(CheckpointId, Time)>,
    /// The latest completion since the last fault, and how many were triggered after it.
    last_completion: Option<(CheckpointId, Time)>,
    triggered_after_last: u64,
    /// Checkpoints triggered since the last fault (or start), and the latest.
    triggered_since: u64,
    latest_triggered: Option<(CheckpointId, Time)>,
}

impl Master {
    fn on_fault(&mut self, time: Time) {
        self.across_fault = self.pending.clone();
        self.window_opened = time;
        self.opened = Opened::Fault;
        self.ran_fully_at = self.runs_fully().then_some(time);
        self.ran_fully_across_fault = self.ran_fully_at.is_some();
        self.first_completion = None;
        self.last_completion = None;
        self.triggered_after_last = 0;
        self.triggered_since = 0;
        self.latest_triggered = None;
    }

    /// The job is RUNNING and so is every current execution (or it FINISHED).
    fn runs_fully(&self) -> bool {
        self.status == JobStatus::Running
            && !self.executions.is_empty()
            && self
                .executions
                .values()
                .all(|(_, s)| matches!(s, ExecutionState::Running | ExecutionState::Finished))
    }

    /// Notes when the job first runs fully since the last fault.
    fn update_ran_fully(&mut self, time: Time) {
        if self.runs_fully() {
            if self.ran_fully_at.is_none() {
                self.ran_fully_at = Some(time);
                self.ran_fully_across_fault = false;
            }
        } else if self.ran_fully_across_fault {
            self.ran_fully_at = None;
            self.ran_fully_across_fault = false;
        }
    }

    fn on_ended(&mut self, id: CheckpointId, time: Time) {
        self.pending.remove(&id);
        if self.across_fault.remove(&id).is_some() && self.across_fault.is_empty() {
            self.window_opened = self.window_opened.max(time);
            self.opened = Opened::PendingAborted(id);
        }
    }
}

pub struct CheckpointLiveness {
    checkpointing: Option<CheckpointConfig>,
    /// The bound plus four network latencies.
    bound: Duration,
    jobs: BTreeMap<JobId, Option<Master>>,
    /// Execution graph id -> job (from `ExecutionCreated`).
    graph_job: BTreeMap<u64, JobId>,
    last_fault: Time,
    /// Partitions and clogs in force.
    network_rules: u32,
    /// `network.loss`: at most [`super::BACKGROUND_LOSS_MAX`], lost messages are not faults.
    loss: f64,
}

impl CheckpointLiveness {
    pub fn new(setup: &Setup) -> CheckpointLiveness {
        let bound = setup
            .config
            .checkpointing
            .map(|c| {
                // Under background loss a lost acknowledgement holds its checkpoint until the
                // checkpoint timeout, besides the recovery's re-asks.
                let loss = super::loss_allowance(&setup.config, setup.loss);
                let held = if loss.is_zero() {
                    Duration::ZERO
                } else {
                    c.timeout
                };
                checkpoint_liveness_bound(&setup.config, &c) + loss + held + setup.latency_max * 4
            })
            .unwrap_or_default();
        CheckpointLiveness {
            checkpointing: setup.config.checkpointing,
            bound,
            jobs: BTreeMap::new(),
            graph_job: BTreeMap::new(),
            last_fault: Time::ZERO,
            network_rules: 0,
            loss: setup.loss,
        }
    }

    fn on_fault(&mut self, time: Time) {
        self.last_fault = time;
        for m in self.jobs.values_mut().flatten() {
            m.on_fault(time);
        }
    }

    fn master(&mut self, node: NodeId, job_id: JobId) -> Option<&mut Master> {
        self.jobs
            .get_mut(&job_id)?
            .as_mut()
            .filter(|m| m.node == node)
    }

    fn on_obs(&mut self, node: NodeId, obs: &Obs, time: Time) {
        match obs {
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
                            status: *to,
                            pending: BTreeMap::new(),
                            across_fault: BTreeMap::new(),
                            window_opened: time.max(self.last_fault),
                            opened: Opened::Started,
                            executions: BTreeMap::new(),
                            ran_fully_at: None,
                            ran_fully_across_fault: false,
                            first_completion: None,
                            last_completion: None,
                            triggered_after_last: 0,
                            triggered_since: 0,
                            latest_triggered: None,
                        });
                    }
                    (Some(_), Some(m)) if m.job_master_id == *job_master_id => {
                        m.status = *to;
                        m.update_ran_fully(time);
                    }
                    _ => {}
                }
            }
            Obs::ExecutionCreated { job_id, attempt } => {
                self.graph_job.entry(attempt.graph).or_insert(*job_id);
                if let Some(m) = self.master(node, *job_id) {
                    m.executions
                        .insert(attempt.vertex, (*attempt, ExecutionState::Created));
                }
            }
            Obs::ExecutionStateChanged { attempt, to, .. } => {
                let Some(&job_id) = self.graph_job.get(&attempt.graph) else {
                    return;
                };
                if let Some(m) = self.master(node, job_id) {
                    if let Some((current, state)) = m.executions.get_mut(&attempt.vertex) {
                        if current == attempt {
                            *state = *to;
                        }
                    }
                    m.update_ran_fully(time);
                }
            }
            Obs::CheckpointTriggered {
                job_id,
                checkpoint_id,
                ..
            } => {
                if let Some(m) = self.master(node, *job_id) {
                    m.pending.insert(*checkpoint_id, time);
                    m.triggered_since += 1;
                    m.triggered_after_last += 1;
                    m.latest_triggered = Some((*checkpoint_id, time));
                }
            }
            Obs::CheckpointAborted {
                job_id,
                checkpoint_id,
                ..
            } => {
                if let Some(m) = self.master(node, *job_id) {
                    m.on_ended(*checkpoint_id, time);
                }
            }
            Obs::CheckpointCompleted {
                job_id,
                checkpoint_id,
                ..
            } => {
                if let Some(m) = self.master(node, *job_id) {
                    // Completing a checkpoint subsumes the older pending ones.
                    m.pending.retain(|id, _| id > checkpoint_id);
                    m.across_fault.retain(|id, _| id > checkpoint_id);
                    m.first_completion.get_or_insert((*checkpoint_id, time));
                    m.last_completion = Some((*checkpoint_id, time));
                    m.triggered_after_last = 0;
                }
            }
            _ => {}
        }
    }

    /// What is wrong with `m`'s checkpoints at `end`, if anything.
    fn judge(&self, census: &Census, m: &Master, end: Time, bound: Duration) -> Option<String> {
        let checkpointing = self.checkpointing.as_ref()?;
        if m.status.is_globally_terminal() || m.status == JobStatus::Suspended {
            return None;
        }
        let jm = census.name(m.node);
        if let Some((&id, &triggered_at)) = m.across_fault.iter().next() {
            // The window has not opened: a checkpoint pending across the last fault still is.
            let limit = checkpointing.timeout + SLACK;
            if m.first_completion.is_some() || end.saturating_since(triggered_at) < limit {
                return None;
            }
            return Some(format!(
                "checkpoint {id}, triggered at {triggered_at} before the last fault at {}, is still pending at the end ({} later) although execution.checkpointing.timeout is {}; no checkpoint completed since",
                self.last_fault,
                secs(end.saturating_since(triggered_at)),
                secs(checkpointing.timeout)
            ));
        }
        let ran_fully_at = m.ran_fully_at?;
        let opened = match m.opened {
            Opened::Fault => format!("the last fault at {}", m.window_opened),
            Opened::Started => format!("the JobMaster on {jm} started at {}", m.window_opened),
            Opened::PendingAborted(id) => format!(
                "checkpoint {id}, pending across the last fault at {}, was aborted at {}",
                self.last_fault, m.window_opened
            ),
        };
        let since = if ran_fully_at > m.window_opened {
            format!("all its tasks were RUNNING at {ran_fully_at}, following {opened}")
        } else {
            opened
        };
        let deadline = m.window_opened.max(ran_fully_at) + bound;
        let late = match m.first_completion {
            Some((_, at)) if at <= deadline => return self.stalled(m, end, bound, jm),
            Some((id, at)) => format!("; the first one, checkpoint {id}, completed only at {at}"),
            None if end < deadline => return None,
            None => String::new(),
        };
        let triggered = match m.latest_triggered {
            Some((id, at)) => format!(
                "{} triggered since, the latest checkpoint {id} at {at}",
                m.triggered_since
            ),
            None => "none was triggered since".to_string(),
        };
        Some(format!(
            "no checkpoint completed within {} after {since} (job {} on {jm}; {triggered}){late}",
            secs(bound),
            m.status,
        ))
    }
}

impl CheckpointLiveness {
    /// Checkpoints completed after the faults, then stopped: none for longer than `bound`
    /// before the end, while the job was still running (a coordinator that stopped triggering,
    /// or whose triggers or checkpoints keep failing).
    fn stalled(&self, m: &Master, end: Time, bound: Duration, jm: &str) -> Option<String> {
        let (id, at) = m.last_completion?;
        if end.saturating_since(at) <= bound {
            return None;
        }
        let triggered = match m.latest_triggered {
            Some((latest, when)) if m.triggered_after_last > 0 => format!(
                "{} triggered after it, the latest checkpoint {latest} at {when}, none completed",
                m.triggered_after_last
            ),
            _ => "none was triggered after it: the coordinator stopped triggering, or its triggers failed before they had a checkpoint id".to_string(),
        };
        Some(format!(
            "checkpoints stopped: the last one, checkpoint {id}, completed at {at}, after the last fault at {}, and none in the {} since, longer than {} (job {} on {}; {triggered})",
            self.last_fault,
            secs(end.saturating_since(at)),
            secs(bound),
            m.status,
            jm,
        ))
    }
}

impl Oracle for CheckpointLiveness {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.on_fault(ev.time);
            for master in self.jobs.values_mut() {
                if master.as_ref().is_some_and(|m| m.node == n) {
                    *master = None;
                }
            }
            return;
        }
        match &ev.kind {
            EventKind::Fault {
                fault,
                effective: true,
            } => {
                match fault {
                    Fault::Partition { .. } | Fault::Clog { .. } => self.network_rules += 1,
                    Fault::Heal(_) => self.network_rules = self.network_rules.saturating_sub(1),
                    Fault::HealAll => self.network_rules = 0,
                    _ => {}
                }
                self.on_fault(ev.time);
            }
            EventKind::Drop { .. } if !super::background_loss(self.loss, ev) => {
                self.on_fault(ev.time)
            }
            EventKind::Obs { node, obs } => self.on_obs(*node, obs, ev.time),
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        if self.checkpointing.is_none() || self.network_rules > 0 {
            return;
        }
        let paused = (0..census.len()).any(|i| census.status(NodeId(i as u32)) == Status::Paused);
        if paused {
            return;
        }
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
            if let Some(why) = self.judge(census, m, end, bound) {
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: end,
                    node: Some(m.node),
                    message: format!("job {job_id:x}: {why}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{
        feed, lost_heartbeat, setup, world, Step, JM, TM1, TM2,
    };
    use crate::protocol::checkpoint::CheckpointingMode;

    fn checkpointing() -> CheckpointConfig {
        CheckpointConfig {
            interval: Duration::from_secs(1),
            mode: CheckpointingMode::ExactlyOnce,
            timeout: Duration::from_secs(60),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failed: 0,
            num_retained: 1,
        }
    }

    fn config() -> FlinkConfig {
        let mut c = FlinkConfig::default();
        c.checkpointing = Some(checkpointing());
        c
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

    fn attempt(vertex: u32, n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: crate::protocol::job_graph::JobVertexId(vertex),
                subtask: 0,
            },
            attempt: n,
        }
    }

    /// Attempt `n` of vertices 0 and 1 created at `at_ms`, RUNNING 600 ms later.
    fn executions(n: u32, at_ms: u64) -> Vec<(u64, Step)> {
        let mut steps = Vec::new();
        for vertex in 0..2 {
            let a = attempt(vertex, n);
            steps.push((
                at_ms,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: a,
                    },
                ),
            ));
            for (from, to) in [
                (ExecutionState::Created, ExecutionState::Deploying),
                (ExecutionState::Deploying, ExecutionState::Initializing),
                (ExecutionState::Initializing, ExecutionState::Running),
            ] {
                steps.push((
                    at_ms + 600,
                    Step::Obs(
                        JM,
                        Obs::ExecutionStateChanged {
                            attempt: a,
                            from,
                            to,
                        },
                    ),
                ));
            }
        }
        steps
    }

    /// Running from 0 s (its tasks from 0.6 s), checkpoints 1 and 2 complete; TM2 is killed at
    /// 10 s, the job restarts and its tasks run again at 20.6 s.
    fn history() -> Vec<(u64, Step)> {
        let mut steps = vec![(0, status(None, JobStatus::Created))];
        steps.extend(executions(0, 0));
        steps.extend([
            (0, status(Some(JobStatus::Created), JobStatus::Running)),
            (1_000, triggered(1)),
            (1_500, completed(1)),
            (2_000, triggered(2)),
            (2_500, completed(2)),
            (10_000, Step::Fault(Fault::Kill(TM2))),
            (
                15_000,
                Step::Obs(
                    JM,
                    Obs::ExecutionStateChanged {
                        attempt: attempt(1, 0),
                        from: ExecutionState::Running,
                        to: ExecutionState::Failed,
                    },
                ),
            ),
            (
                15_000,
                Step::Obs(
                    JM,
                    Obs::ExecutionStateChanged {
                        attempt: attempt(0, 0),
                        from: ExecutionState::Running,
                        to: ExecutionState::Canceled,
                    },
                ),
            ),
            (
                15_000,
                status(Some(JobStatus::Running), JobStatus::Restarting),
            ),
            (
                20_000,
                status(Some(JobStatus::Restarting), JobStatus::Running),
            ),
        ]);
        steps.extend(executions(1, 20_000));
        steps.sort_by_key(|(ms, _)| *ms);
        steps
    }

    fn check(
        config: FlinkConfig,
        up: [bool; 3],
        steps: &[(u64, Step)],
        end_ms: u64,
    ) -> Vec<Violation> {
        let w = world(up);
        let mut oracle = CheckpointLiveness::new(&setup(config));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn the_bound_follows_the_configuration() {
        // job-liveness's 132 s + 3 × 1 s + 10 s.
        assert_eq!(
            checkpoint_liveness_bound(&config(), &checkpointing()),
            Duration::from_secs(145)
        );
    }

    #[test]
    fn checkpoints_completing_after_the_fault_hold() {
        let mut steps = history();
        steps.extend([(22_000, triggered(3)), (23_000, completed(3))]);
        assert_eq!(
            check(config(), [true, true, false], &steps, 160_000),
            vec![]
        );
        // Without checkpointing nothing is judged.
        let steps = history();
        assert_eq!(
            check(FlinkConfig::default(), [true, true, false], &steps, 400_000),
            vec![]
        );
    }

    #[test]
    fn checkpoints_that_stop_after_completing_once_are_caught() {
        // Checkpoint 3 completes after the restart, then the coordinator stops (FLINK-14091:
        // every trigger fails before it has an id) while the job runs on.
        let mut steps = history();
        steps.extend([(22_000, triggered(3)), (23_000, completed(3))]);
        // 145.04 s after the last completion at 23 s.
        assert_eq!(
            check(config(), [true, true, false], &steps, 168_000),
            vec![]
        );
        let v = check(config(), [true, true, false], &steps, 169_000);
        assert_eq!(v.len(), 1, "{v:?}");
        let m = &v[0].message;
        assert!(
            m.contains("checkpoints stopped: the last one, checkpoint 3"),
            "{m}"
        );
        assert!(m.contains("the coordinator stopped triggering"), "{m}");
        // Triggered but never completed: the message counts them.
        steps.extend([(24_000, triggered(4)), (84_000, aborted(4))]);
        let v = check(config(), [true, true, false], &steps, 169_000);
        assert!(v[0].message.contains("1 triggered after it"), "{v:?}");
        // Checkpoints that go on completing hold.
        steps.extend([(100_000, triggered(5)), (101_000, completed(5))]);
        assert_eq!(
            check(config(), [true, true, false], &steps, 240_000),
            vec![]
        );
    }

    #[test]
    fn background_loss_is_judged_through_with_a_longer_bound() {
        let mut steps = history();
        steps.extend([(22_000, triggered(3)), (22_500, aborted(3))]);
        // A message lost at random after the restart.
        steps.push((30_000, lost_heartbeat(TM1, JM)));
        let judge = |loss: f64, end_ms: u64| {
            let w = world([true, true, false]);
            let mut oracle = CheckpointLiveness::new(&Setup {
                loss,
                ..setup(config())
            });
            feed(&mut oracle, w.census(), &steps, Some(end_ms))
        };
        // From the tasks running at 20.6 s: 145.04 s + 3 × 10 s ask timeout + 60 s checkpoint
        // timeout; the lost message does not restart the clock.
        assert_eq!(judge(0.003, 250_000), vec![]);
        let v = judge(0.003, 260_000);
        assert_eq!(v.len(), 1, "{v:?}");
        // Heavier loss is a fault: the clock restarts at the loss (30 s + 145.04 s), so at
        // 170 s, past 20.6 s + 145.04 s, nothing is judged yet.
        assert_eq!(judge(0.05, 170_000), vec![]);
        assert_eq!(judge(0.05, 180_000).len(), 1);
    }

    #[test]
    fn no_checkpoint_after_the_fault_is_caught_once_the_bound_passed() {
        let mut steps = history();
        // Triggered, but every checkpoint is declined and aborted.
        steps.extend([(22_000, triggered(3)), (22_500, aborted(3))]);
        // Too early to judge: the tasks ran at 20.6 s, + 145.04 s.
        assert_eq!(
            check(config(), [true, true, false], &steps, 165_000),
            vec![]
        );
        let v = check(config(), [true, true, false], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].node, Some(JM));
        assert_eq!(
            v[0].message,
            "job 5: no checkpoint completed within 145.040 s after all its tasks were RUNNING at 20.600s, following the last fault at 10.000s (job RUNNING on jobmanager-1; 1 triggered since, the latest checkpoint 3 at 22.000s)"
        );
        // A finished job or one lost with its JobManager is not judged.
        let mut finished = steps;
        finished.push((
            30_000,
            status(Some(JobStatus::Running), JobStatus::Finished),
        ));
        assert_eq!(
            check(config(), [true, true, false], &finished, 200_000),
            vec![]
        );
        let mut lost = history();
        lost.push((30_000, Step::Fault(Fault::Kill(JM))));
        assert_eq!(
            check(config(), [false, true, false], &lost, 400_000),
            vec![]
        );
    }

    #[test]
    fn a_fault_the_job_rides_out_is_judged_from_the_fault() {
        // A lost message at 10 s changes nothing for the job, which keeps running.
        let mut steps = vec![(0, status(None, JobStatus::Created))];
        steps.extend(executions(0, 0));
        steps.push((0, status(Some(JobStatus::Created), JobStatus::Running)));
        steps.push((10_000, lost_heartbeat(TM1, JM)));
        steps.sort_by_key(|(ms, _)| *ms);
        let v = check(config(), [true; 3], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("within 145.040 s after the last fault at 10.000s (job RUNNING"),
            "{}",
            v[0].message
        );
        // A checkpoint completing too late is named.
        steps.push((190_000, completed(1)));
        let v = check(config(), [true; 3], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .ends_with("; the first one, checkpoint 1, completed only at 190.000s"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_job_whose_tasks_never_all_run_again_is_left_to_job_liveness() {
        // After the fault the new attempts wait for slots the cluster no longer has.
        let mut steps = history();
        steps.retain(|(ms, step)| {
            *ms < 20_600 || !matches!(step, Step::Obs(_, Obs::ExecutionStateChanged { .. }))
        });
        assert_eq!(
            check(config(), [true, true, false], &steps, 400_000),
            vec![]
        );
    }

    #[test]
    fn a_checkpoint_pending_across_the_fault_delays_the_window_until_its_abort() {
        let mut steps = history();
        // Checkpoint 3 was triggered before the fault and times out after 60 s.
        steps.push((9_000, triggered(3)));
        steps.push((69_000, aborted(3)));
        steps.sort_by_key(|(ms, _)| *ms);
        // 69 s + 145.04 s has not passed at 200 s.
        assert_eq!(
            check(config(), [true, true, false], &steps, 200_000),
            vec![]
        );
        let v = check(config(), [true, true, false], &steps, 300_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "within 145.040 s after checkpoint 3, pending across the last fault at 10.000s, was aborted at 69.000s ("
            ),
            "{}",
            v[0].message
        );
        // Never aborted: judged after its timeout.
        let mut stuck = history();
        stuck.push((9_000, triggered(3)));
        stuck.sort_by_key(|(ms, _)| *ms);
        assert_eq!(check(config(), [true, true, false], &stuck, 75_000), vec![]);
        let v = check(config(), [true, true, false], &stuck, 300_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "checkpoint 3, triggered at 9.000s before the last fault at 10.000s, is still pending at the end (291.000 s later) although execution.checkpointing.timeout is 60.000 s"
            ),
            "{}",
            v[0].message
        );
        // Completing it is progress (for the bound after it: 70 s + 145.04 s).
        stuck.push((70_000, completed(3)));
        assert_eq!(
            check(config(), [true, true, false], &stuck, 210_000),
            vec![]
        );
    }

    #[test]
    fn a_job_that_never_checkpoints_is_caught_from_its_start() {
        let mut steps = vec![(0, status(None, JobStatus::Created))];
        steps.extend(executions(0, 0));
        steps.push((0, status(Some(JobStatus::Created), JobStatus::Running)));
        steps.sort_by_key(|(ms, _)| *ms);
        let v = check(config(), [true; 3], &steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "after all its tasks were RUNNING at 0.600s, following the JobMaster on jobmanager-1 started at 0.000s (job RUNNING on jobmanager-1; none was triggered since)"
            ),
            "{}",
            v[0].message
        );
        // A partition still in force: not judged.
        steps.push((
            5_000,
            Step::Fault(Fault::Partition {
                groups: vec![vec![JM], vec![TM1]],
                one_way: false,
                heal_after: None,
            }),
        ));
        assert_eq!(check(config(), [true; 3], &steps, 400_000), vec![]);
    }
}
