//! Stale attempts (always): nothing addressed to an old execution attempt or sent by a JobMaster
//! the TaskExecutor no longer follows has an effect (docs/flink-runtime.md §4.2, §12 items 1 and 2).
//!
//! Two rules, each judged on the handler a message triggers. The kernel traces a delivery and
//! then, at the same time and node, the observations its handler made, before any other
//! delivery, timer or fault; so "the current cause" of an observation is the last delivery.
//! - **JobMaster side.** `updateTaskExecutionState(attempt A)` may change the JobMaster's state
//!   of A only. If its handler changes the state of another attempt of the same execution vertex
//!   that already existed, the JobMaster applied a stale (or foreign) report to its current
//!   execution: the attempt-id fencing of `DefaultExecutionGraph.updateState` is missing. New
//!   attempts that the handler itself creates (a restart that completes because A's
//!   cancellation did) are its own doing and are allowed.
//! - **TaskExecutor side.** A task is created only by `submitTask`, and only while the
//!   TaskExecutor is connected to the JobMaster that sent it: the `JobMasterId` in the call must
//!   be the one of the TaskExecutor's current connection for that job
//!   (`TaskExecutor.submitTask` throws `TaskSubmissionException` otherwise). The connection
//!   comes from the TaskExecutor's `JobManagerConnected` / `JobManagerDisconnected` reports; a
//!   process that dies forgets its connections.
//!
//! This oracle does not judge the transition itself (see `transitions`) nor checkpoint acks.

use super::{attempt_name, ends_handler, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

pub const INVARIANT: Invariant = Invariant {
    name: "stale-attempts",
    kind: Kind::Always,
    description: "a JobMaster applies updateTaskExecutionState only to the attempt it names, and a TaskExecutor starts tasks only from submitTask calls of the JobMaster it is connected to",
};

/// The handler of an `updateTaskExecutionState` delivery at a JobMaster.
#[derive(Debug)]
struct UpdateCause {
    node: NodeId,
    time: Time,
    job_id: JobId,
    attempt: ExecutionAttemptId,
    state: ExecutionState,
    /// Attempts the handler created itself.
    created: BTreeSet<ExecutionAttemptId>,
}

/// The handler of a `submitTask` delivery at a TaskExecutor.
#[derive(Debug)]
struct SubmitCause {
    node: NodeId,
    time: Time,
    job_id: JobId,
    job_master_id: JobMasterId,
    attempt: ExecutionAttemptId,
}

pub struct StaleAttempts {
    update: Option<UpdateCause>,
    submit: Option<SubmitCause>,
    /// TaskExecutor view: (TaskManager, job) -> the JobMaster it is connected to.
    connected: BTreeMap<(NodeId, JobId), JobMasterId>,
}

impl StaleAttempts {
    pub fn new(_setup: &Setup) -> StaleAttempts {
        StaleAttempts {
            update: None,
            submit: None,
            connected: BTreeMap::new(),
        }
    }

    fn on_delivery(&mut self, ev: &Event<'_, Flink>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::UpdateTaskExecutionState { attempt, state, .. },
            } => {
                self.update = Some(UpdateCause {
                    node: to,
                    time: ev.time,
                    job_id: *job_id,
                    attempt: *attempt,
                    state: *state,
                    created: BTreeSet::new(),
                });
            }
            Msg::TaskExecutor(TaskExecutorRpc::SubmitTask { tdd, job_master_id }) => {
                self.submit = Some(SubmitCause {
                    node: to,
                    time: ev.time,
                    job_id: tdd.job_id,
                    job_master_id: *job_master_id,
                    attempt: tdd.attempt,
                });
            }
            _ => {}
        }
    }

    fn on_execution_changed(
        &self,
        census: &Census,
        ev: &Event<'_, Flink>,
        node: NodeId,
        changed: ExecutionAttemptId,
        (from, to): (ExecutionState, ExecutionState),
        out: &mut Vec<Violation>,
    ) {
        let Some(cause) = &self.update else { return };
        if cause.node != node || cause.time != ev.time {
            return;
        }
        let stale = changed.vertex == cause.attempt.vertex
            && changed != cause.attempt
            && !cause.created.contains(&changed);
        if stale {
            out.push(Violation {
                invariant: INVARIANT.name,
                at: ev.time,
                node: Some(node),
                message: format!(
                    "the JobMaster of job {:x} on {} applied a report of {} ({}) to {} ({from} -> {to}); reports of any attempt but the current one must be ignored",
                    cause.job_id,
                    census.name(node),
                    attempt_name(&cause.attempt),
                    cause.state,
                    attempt_name(&changed)
                ),
            });
        }
    }

    fn on_task_created(
        &self,
        census: &Census,
        ev: &Event<'_, Flink>,
        node: NodeId,
        attempt: ExecutionAttemptId,
        out: &mut Vec<Violation>,
    ) {
        let tm = census.name(node);
        let cause = self
            .submit
            .as_ref()
            .filter(|c| c.node == node && c.time == ev.time && c.attempt == attempt);
        let problem = match cause {
            None => Some(format!(
                "TaskExecutor {tm} created a task of {} outside a submitTask call",
                attempt_name(&attempt)
            )),
            Some(c) => match self.connected.get(&(node, c.job_id)) {
                Some(current) if *current == c.job_master_id => None,
                Some(current) => Some(format!(
                    "TaskExecutor {tm} started {} of job {:x} from JobMaster {:x}, but it is connected to JobMaster {current:x} of that job (the JobMasterId check of submitTask is missing)",
                    attempt_name(&attempt),
                    c.job_id,
                    c.job_master_id
                )),
                None => Some(format!(
                    "TaskExecutor {tm} started {} of job {:x} from JobMaster {:x} without a connection to any JobMaster of that job",
                    attempt_name(&attempt),
                    c.job_id,
                    c.job_master_id
                )),
            },
        };
        if let Some(message) = problem {
            out.push(Violation {
                invariant: INVARIANT.name,
                at: ev.time,
                node: Some(node),
                message,
            });
        }
    }
}

impl Oracle for StaleAttempts {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if ends_handler(ev) {
            self.update = None;
            self.submit = None;
        }
        if let Some(n) = process_died(ev) {
            self.connected.retain(|(node, _), _| *node != n);
            return;
        }
        match &ev.kind {
            EventKind::Deliver { to, msg, .. } => self.on_delivery(ev, *to, msg),
            EventKind::Obs { node, obs } => match obs {
                Obs::ExecutionCreated { attempt, .. } => {
                    if let Some(c) = self.update.as_mut() {
                        c.created.insert(*attempt);
                    }
                }
                Obs::ExecutionStateChanged { attempt, from, to } => {
                    self.on_execution_changed(census, ev, *node, *attempt, (*from, *to), out)
                }
                Obs::JobManagerConnected {
                    job_id,
                    job_master_id,
                } => {
                    self.connected.insert((*node, *job_id), *job_master_id);
                }
                Obs::JobManagerDisconnected { job_id } => {
                    self.connected.remove(&(*node, *job_id));
                }
                Obs::TaskStateChanged {
                    attempt,
                    from: None,
                    ..
                } => self.on_task_created(census, ev, *node, *attempt, out),
                _ => {}
            },
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
    use crate::protocol::timer::{JobMasterTimer, Timer};
    use ExecutionState as S;

    fn attempt(n: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 7,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(0),
                subtask: 1,
            },
            attempt: n,
        }
    }

    fn update(a: u32, state: S) -> Step {
        Step::Deliver(
            TM1,
            JM,
            Msg::JobMaster {
                job_id: 5,
                rpc: JobMasterRpc::UpdateTaskExecutionState {
                    job_master_id: 9,
                    attempt: attempt(a),
                    state,
                    error: None,
                },
            },
        )
    }

    fn changed(a: u32, from: S, to: S) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionStateChanged {
                attempt: attempt(a),
                from,
                to,
            },
        )
    }

    fn submit(a: u32, job_master_id: JobMasterId) -> Step {
        crate::checking::oracle::testing::submit_task(attempt(a), 3, job_master_id)
    }

    fn created(a: u32) -> Step {
        Step::Obs(
            TM1,
            Obs::TaskStateChanged {
                attempt: attempt(a),
                allocation_id: 3,
                from: None,
                to: S::Deploying,
            },
        )
    }

    fn connected(job_master_id: JobMasterId) -> Step {
        Step::Obs(
            TM1,
            Obs::JobManagerConnected {
                job_id: 5,
                job_master_id,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = StaleAttempts::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(10_000))
    }

    #[test]
    fn reports_of_the_current_attempt_and_restarts_they_complete_hold() {
        let v = check(&[
            (0, connected(9)),
            (1, submit(1, 9)),
            (1, created(1)),
            (2, update(1, S::Running)),
            (2, changed(1, S::Deploying, S::Initializing)),
            (2, changed(1, S::Initializing, S::Running)),
            // A stale report of attempt 0 changes nothing.
            (3, update(0, S::Failed)),
            // Attempt 1's cancellation completes the pending restart: attempt 2 is born and
            // scheduled by the same handler.
            (4, update(1, S::Canceled)),
            (4, changed(1, S::Canceling, S::Canceled)),
            (
                4,
                Step::Obs(
                    JM,
                    Obs::ExecutionCreated {
                        job_id: 5,
                        attempt: attempt(2),
                    },
                ),
            ),
            (4, changed(2, S::Created, S::Scheduled)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_stale_report_applied_to_the_current_attempt_is_caught() {
        let v = check(&[
            (3, update(0, S::Failed)),
            (3, changed(1, S::Running, S::Failed)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "applied a report of vertex 0 subtask 1 attempt 0 (FAILED) to vertex 0 subtask 1 attempt 1"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_later_handler_is_not_blamed_on_an_earlier_report() {
        let v = check(&[
            (3, update(0, S::Failed)),
            (
                3,
                Step::Timer(
                    JM,
                    Timer::JobMaster {
                        job_id: 5,
                        timer: JobMasterTimer::RestartDelay { version: 1 },
                    },
                ),
            ),
            (3, changed(1, S::Running, S::Failed)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_task_from_a_jobmaster_the_taskexecutor_does_not_follow_is_caught() {
        let v = check(&[
            (0, connected(9)),
            (1, submit(1, 8)),
            (1, created(1)),
            (2, Step::Obs(TM1, Obs::JobManagerDisconnected { job_id: 5 })),
            (3, submit(2, 9)),
            (3, created(2)),
        ]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0]
            .message
            .contains("from JobMaster 8, but it is connected to JobMaster 9"));
        assert!(v[1].message.contains("without a connection"));
    }
}
