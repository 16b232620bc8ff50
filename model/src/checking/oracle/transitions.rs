//! Legal transitions (always): JobStatus and ExecutionState change only along Flink's transition
//! tables (docs/flink-runtime.md §4.1, §4.3, checked with `can_transition_to` from `states.rs`), every change
//! starts from the state the oracle itself last saw, and a terminal state is never left.
//!
//! Three views, each with its own ground truth built from the trace:
//! - the JobMaster's `JobStatus`, per JobMaster instance (`JobMasterId`); its first change has no
//!   `from`, as the model reports the hidden INITIALIZING → CREATED step;
//! - the JobMaster's `Execution` state, per attempt, which starts at CREATED on
//!   `ExecutionCreated`;
//! - the TaskExecutor's `Task` state, per (TaskManager, attempt), which starts at DEPLOYING when
//!   the TaskExecutor creates the task. The TE side may also cancel a task that has not started
//!   yet straight from DEPLOYING to CANCELED (Flink's `Task.cancelOrFailAndCancelInvokable`); the
//!   JobMaster never does that (it waits in CANCELING for the TaskExecutor's answer).
//!
//! A process that dies forgets everything it held, so its views are dropped with it. This oracle
//! does not judge who drove a transition or when (the stale-attempts and liveness oracles do).

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::obs::Obs;
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "legal-transitions",
    kind: Kind::Always,
    description: "JobStatus (per JobMaster) and ExecutionState (JobMaster and TaskExecutor views, per attempt) change only along Flink's transition tables, from the state last reported, and never leave a terminal state",
};

/// The TaskExecutor's `Task` machine: the JobMaster's table plus DEPLOYING → CANCELED, which a
/// task cancelled before its invokable started takes directly.
fn task_can_transition(from: ExecutionState, to: ExecutionState) -> bool {
    from.can_transition_to(to)
        || (from == ExecutionState::Deploying && to == ExecutionState::Canceled)
}

pub struct LegalTransitions {
    /// JobMaster instance -> (its process, job, status).
    job_status: BTreeMap<JobMasterId, (NodeId, JobId, JobStatus)>,
    /// JobMaster view: attempt -> (the JobMaster's process, state).
    executions: BTreeMap<ExecutionAttemptId, (NodeId, ExecutionState)>,
    /// TaskExecutor view: (TaskManager, attempt) -> state.
    tasks: BTreeMap<(NodeId, ExecutionAttemptId), ExecutionState>,
}

impl LegalTransitions {
    pub fn new(_setup: &Setup) -> LegalTransitions {
        LegalTransitions {
            job_status: BTreeMap::new(),
            executions: BTreeMap::new(),
            tasks: BTreeMap::new(),
        }
    }

    fn process_died(&mut self, n: NodeId) {
        self.job_status.retain(|_, (node, _, _)| *node != n);
        self.executions.retain(|_, (node, _)| *node != n);
        self.tasks.retain(|(node, _), _| *node != n);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_job_status(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        from: Option<JobStatus>,
        to: JobStatus,
        out: &mut Vec<Violation>,
    ) {
        let who = format!("the JobMaster of job {job_id:x} on {}", census.name(node));
        let seen = self.job_status.get(&job_master_id).map(|(_, _, s)| *s);
        let problem = match (seen, from) {
            (None, Some(claimed)) => Some(format!(
                "reported a change from {claimed} to {to} as its first status (a JobMaster's first status has no predecessor)"
            )),
            (None, None) => {
                let first_ok =
                    to == JobStatus::Initializing || JobStatus::Initializing.can_transition_to(to);
                (!first_ok).then(|| {
                    format!("started in {to}, which no new ExecutionGraph starts in (INITIALIZING or CREATED)")
                })
            }
            (Some(last), None) => Some(format!(
                "reported {to} as a first status although it was already {last}"
            )),
            (Some(last), Some(claimed)) if claimed != last => Some(format!(
                "reported a change from {claimed} to {to}, but its status was {last}"
            )),
            (Some(last), Some(_)) if last.is_terminal() => Some(format!(
                "left the terminal status {last} for {to}; a terminal JobStatus is final"
            )),
            (Some(last), Some(_)) if !last.can_transition_to(to) => Some(format!(
                "moved from {last} to {to}, which Flink's JobStatus never allows"
            )),
            _ => None,
        };
        if let Some(why) = problem {
            out.push(Violation {
                invariant: INVARIANT.name,
                at,
                node: Some(node),
                message: format!("{who} {why}"),
            });
        }
        self.job_status.insert(job_master_id, (node, job_id, to));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_execution(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        attempt: ExecutionAttemptId,
        from: ExecutionState,
        to: ExecutionState,
        out: &mut Vec<Violation>,
    ) {
        let who = format!(
            "the JobMaster on {} moved {}",
            census.name(node),
            attempt_name(&attempt)
        );
        let problem = match self.executions.get(&attempt).map(|(_, s)| *s) {
            None => Some(format!(
                "from {from} to {to}, but that attempt was never created (no ExecutionCreated)"
            )),
            Some(last) if last != from => Some(format!(
                "from {from} to {to}, but the attempt was {last}"
            )),
            Some(last) if last.is_terminal() => Some(format!(
                "out of the terminal state {last} to {to}; a restart must create a new attempt instead"
            )),
            Some(last) if !last.can_transition_to(to) => Some(format!(
                "from {last} to {to}, which Flink's ExecutionState never allows"
            )),
            _ => None,
        };
        if let Some(why) = problem {
            out.push(Violation {
                invariant: INVARIANT.name,
                at,
                node: Some(node),
                message: format!("{who} {why}"),
            });
        }
        self.executions.insert(attempt, (node, to));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_task(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        attempt: ExecutionAttemptId,
        from: Option<ExecutionState>,
        to: ExecutionState,
        out: &mut Vec<Violation>,
    ) {
        let who = format!(
            "TaskExecutor {} moved its task of {}",
            census.name(node),
            attempt_name(&attempt)
        );
        let problem = match (self.tasks.get(&(node, attempt)).copied(), from) {
            (None, None) if to != ExecutionState::Deploying => Some(format!(
                "into {to} on creation; a new Task starts DEPLOYING"
            )),
            (None, None) => None,
            (None, Some(claimed)) => Some(format!(
                "from {claimed} to {to}, but it never created that task"
            )),
            (Some(last), None) if last.is_terminal() => Some(format!(
                "into {to} as a new task, although that attempt already ran there and ended {last}; an attempt is deployed once"
            )),
            (Some(last), None) => Some(format!(
                "into {to} as a new task, although that attempt was already {last} there (submitted twice)"
            )),
            (Some(last), Some(claimed)) if claimed != last => Some(format!(
                "from {claimed} to {to}, but the task was {last}"
            )),
            (Some(last), Some(_)) if last.is_terminal() => Some(format!(
                "out of the terminal state {last} to {to}"
            )),
            (Some(last), Some(_)) if !task_can_transition(last, to) => Some(format!(
                "from {last} to {to}, which Flink's Task never allows"
            )),
            _ => None,
        };
        if let Some(why) = problem {
            out.push(Violation {
                invariant: INVARIANT.name,
                at,
                node: Some(node),
                message: format!("{who} {why}"),
            });
        }
        self.tasks.insert((node, attempt), to);
    }
}

impl Oracle for LegalTransitions {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.process_died(n);
            return;
        }
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let (at, node) = (ev.time, *node);
        match obs {
            Obs::JobStatusChanged {
                job_id,
                job_master_id,
                from,
                to,
            } => self.on_job_status(census, at, node, *job_id, *job_master_id, *from, *to, out),
            Obs::ExecutionCreated { attempt, .. } => {
                if let Some((_, state)) = self.executions.get(attempt) {
                    out.push(Violation {
                        invariant: INVARIANT.name,
                        at,
                        node: Some(node),
                        message: format!(
                            "the JobMaster on {} created {} again while it existed ({state}); attempt numbers are never reused",
                            census.name(node),
                            attempt_name(attempt)
                        ),
                    });
                }
                self.executions
                    .insert(*attempt, (node, ExecutionState::Created));
            }
            Obs::ExecutionStateChanged { attempt, from, to } => {
                self.on_execution(census, at, node, *attempt, *from, *to, out)
            }
            Obs::TaskStateChanged {
                attempt, from, to, ..
            } => self.on_task(census, at, node, *attempt, *from, *to, out),
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
    use ExecutionState as S;

    fn attempt(n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(1),
                subtask: 0,
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

    fn exec(a: u32, from: S, to: S) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionStateChanged {
                attempt: attempt(a),
                from,
                to,
            },
        )
    }

    fn task(a: u32, from: Option<S>, to: S) -> Step {
        Step::Obs(
            TM1,
            Obs::TaskStateChanged {
                attempt: attempt(a),
                allocation_id: 3,
                from,
                to,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = LegalTransitions::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(10_000))
    }

    #[test]
    fn a_failover_along_the_tables_holds() {
        let v = check(&[
            (0, status(None, JobStatus::Created)),
            (
                0,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: attempt(0),
                    },
                ),
            ),
            (0, status(Some(JobStatus::Created), JobStatus::Running)),
            (0, exec(0, S::Created, S::Scheduled)),
            (1, exec(0, S::Scheduled, S::Deploying)),
            (2, task(0, None, S::Deploying)),
            (3, task(0, Some(S::Deploying), S::Initializing)),
            (4, task(0, Some(S::Initializing), S::Running)),
            (5, exec(0, S::Deploying, S::Initializing)),
            (5, exec(0, S::Initializing, S::Running)),
            (6, task(0, Some(S::Running), S::Failed)),
            (7, exec(0, S::Running, S::Failed)),
            (7, status(Some(JobStatus::Running), JobStatus::Restarting)),
            (
                8,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: attempt(1),
                    },
                ),
            ),
            (8, status(Some(JobStatus::Restarting), JobStatus::Running)),
            (8, exec(1, S::Created, S::Scheduled)),
            (9, exec(1, S::Scheduled, S::Deploying)),
            (10, task(1, None, S::Deploying)),
            // A task cancelled before it started goes straight to CANCELED on the TE.
            (11, task(1, Some(S::Deploying), S::Canceled)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn an_illegal_execution_transition_is_caught() {
        let v = check(&[
            (
                0,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: attempt(0),
                    },
                ),
            ),
            (1, exec(0, S::Created, S::Running)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("vertex 1 subtask 0 attempt 0 from CREATED to RUNNING"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn leaving_a_terminal_state_or_a_wrong_from_is_caught() {
        let v = check(&[
            (0, status(None, JobStatus::Created)),
            (1, status(Some(JobStatus::Created), JobStatus::Running)),
            (2, status(Some(JobStatus::Running), JobStatus::Finished)),
            (3, status(Some(JobStatus::Finished), JobStatus::Running)),
            (4, task(0, None, S::Deploying)),
            (5, task(0, Some(S::Initializing), S::Running)),
        ]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].message.contains("left the terminal status FINISHED"));
        assert!(v[1].message.contains("but the task was DEPLOYING"));
    }

    #[test]
    fn a_crash_forgets_the_views_of_the_dead_process() {
        let v = check(&[
            (0, task(0, None, S::Deploying)),
            (1, Step::Fault(Fault::Kill(TM1))),
            // The restarted TaskExecutor knows nothing of the old task.
            (2, task(0, None, S::Deploying)),
        ]);
        assert_eq!(v, vec![]);
    }
}
