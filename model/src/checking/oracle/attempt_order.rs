//! Attempt order (always): attempt n+1 of an execution vertex is deployed only after every
//! earlier attempt of it is terminal in the view of the JobMaster that deploys it, or that
//! JobMaster has declared the earlier attempt's TaskManager lost (docs/flink-runtime.md §6.1: a
//! failover cancels the old executions and waits for them to be CANCELED / FAILED before the
//! restart creates new ones; §4.2: one current attempt per vertex).
//!
//! Ground truth is the JobMaster's own reports: `ExecutionCreated` (CREATED),
//! `ExecutionStateChanged` and `ExecutionDeployed` (the TaskManager it went to), per execution
//! graph. The graph id is fresh per JobMaster instance, so a new leader's attempts are judged
//! against its own earlier attempts only, never against a deposed leader's (those are fenced by
//! other means, see `stale-attempts` and `one-live-attempt`). A `TargetLost` of the JobMaster for
//! the TaskManager an earlier attempt was deployed to, after that deployment, excuses the
//! earlier attempt: the JobMaster knows it gone with its TaskManager.
//!
//! This oracle does not judge which transitions are legal (`execution-transitions`) nor what an
//! old attempt still does on its TaskManager (`one-live-attempt`).

use super::{attempt_name, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::ExecutionAttemptId;
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::{Endpoint, Obs};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "attempt-order",
    kind: Kind::Always,
    description: "attempt n+1 of an execution vertex is deployed only after every earlier attempt is terminal in the deploying JobMaster's view, or that JobMaster declared the earlier attempt's TaskManager lost",
};

/// One attempt as its JobMaster sees it.
#[derive(Clone, Copy, Debug)]
struct AttemptView {
    state: ExecutionState,
    /// The TaskManager it was deployed to, and when.
    deployed: Option<(NodeId, Time)>,
}

pub struct AttemptOrder {
    /// (graph, vertex) -> attempt number -> the JobMaster's view; terminal attempts are dropped.
    attempts: BTreeMap<(u64, ExecutionVertexId), BTreeMap<u32, AttemptView>>,
    /// Graph -> the JobMaster node that created it.
    graph_node: BTreeMap<u64, NodeId>,
    /// (JobMaster node, TaskManager) -> when that JobMaster last declared it lost.
    lost: BTreeMap<(NodeId, NodeId), Time>,
}

impl AttemptOrder {
    pub fn new(_setup: &Setup) -> AttemptOrder {
        AttemptOrder {
            attempts: BTreeMap::new(),
            graph_node: BTreeMap::new(),
            lost: BTreeMap::new(),
        }
    }

    fn process_died(&mut self, n: NodeId) {
        let graphs: Vec<u64> = self
            .graph_node
            .iter()
            .filter(|(_, node)| **node == n)
            .map(|(g, _)| *g)
            .collect();
        for g in graphs {
            self.graph_node.remove(&g);
            self.attempts.retain(|(graph, _), _| *graph != g);
        }
        self.lost.retain(|(jm, _), _| *jm != n);
    }

    fn on_deployed(
        &mut self,
        census: &Census,
        at: Time,
        node: NodeId,
        attempt: &ExecutionAttemptId,
        task_manager: NodeId,
        out: &mut Vec<Violation>,
    ) {
        let key = (attempt.graph, attempt.vertex);
        let Some(views) = self.attempts.get_mut(&key) else {
            return;
        };
        let blocking: Vec<String> = views
            .range(..attempt.attempt)
            .filter(|(_, v)| !v.state.is_terminal())
            .filter(|(_, v)| {
                // Excused: the JobMaster declared the earlier attempt's TaskManager lost.
                !v.deployed.is_some_and(|(tm, deployed_at)| {
                    self.lost
                        .get(&(node, tm))
                        .is_some_and(|lost_at| *lost_at >= deployed_at)
                })
            })
            .map(|(n, v)| {
                let earlier = ExecutionAttemptId {
                    attempt: *n,
                    ..*attempt
                };
                let place = v
                    .deployed
                    .map_or_else(String::new, |(tm, _)| format!(" on {}", census.name(tm)));
                format!("{} is still {}{place}", attempt_name(&earlier), v.state)
            })
            .collect();
        if let Some(v) = views.get_mut(&attempt.attempt) {
            v.deployed = Some((task_manager, at));
        }
        if blocking.is_empty() {
            return;
        }
        out.push(Violation {
            invariant: INVARIANT.name,
            at,
            node: Some(node),
            message: format!(
                "the JobMaster on {} deployed {} to {} while {}; a restart must wait until the old attempt is terminal (or its TaskManager is lost)",
                census.name(node),
                attempt_name(attempt),
                census.name(task_manager),
                blocking.join(", ")
            ),
        });
    }
}

impl Oracle for AttemptOrder {
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
        let node = *node;
        match obs {
            Obs::ExecutionCreated { attempt, .. } => {
                self.graph_node.entry(attempt.graph).or_insert(node);
                self.attempts
                    .entry((attempt.graph, attempt.vertex))
                    .or_default()
                    .insert(
                        attempt.attempt,
                        AttemptView {
                            state: ExecutionState::Created,
                            deployed: None,
                        },
                    );
            }
            Obs::ExecutionStateChanged { attempt, to, .. } => {
                let key = (attempt.graph, attempt.vertex);
                if let Some(views) = self.attempts.get_mut(&key) {
                    let latest = views.keys().next_back().copied();
                    if to.is_terminal() && latest != Some(attempt.attempt) {
                        views.remove(&attempt.attempt);
                    } else if let Some(v) = views.get_mut(&attempt.attempt) {
                        v.state = *to;
                    }
                }
            }
            Obs::ExecutionDeployed {
                attempt,
                task_manager,
                ..
            } => self.on_deployed(census, ev.time, node, attempt, *task_manager, out),
            Obs::TargetLost {
                observer: Endpoint::JobMaster(jm, _),
                target: Endpoint::TaskExecutor(tm),
                ..
            } => {
                self.lost.insert((*jm, *tm), ev.time);
            }
            _ => {}
        }
        // Terminal attempts below the latest of their vertex can never block a deployment.
        if let Obs::ExecutionCreated { attempt, .. } = obs {
            if let Some(views) = self.attempts.get_mut(&(attempt.graph, attempt.vertex)) {
                views.retain(|n, v| *n == attempt.attempt || !v.state.is_terminal());
            }
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{self, feed, setup, world, Step, JM, TM1, TM2};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::obs::LossCause;
    use ExecutionState as S;

    fn attempt(n: u32) -> ExecutionAttemptId {
        testing::attempt(1, 0, n)
    }

    fn created(n: u32) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionCreated {
                job_id: 5,
                attempt: attempt(n),
            },
        )
    }

    fn changed(n: u32, from: S, to: S) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionStateChanged {
                attempt: attempt(n),
                from,
                to,
            },
        )
    }

    fn deployed(n: u32, tm: NodeId) -> Step {
        Step::Obs(
            JM,
            Obs::ExecutionDeployed {
                attempt: attempt(n),
                task_manager: tm,
                allocation_id: 1,
            },
        )
    }

    /// Attempt 0 deployed to taskmanager-1 and RUNNING, then a failover cancels it.
    fn first_attempt_cancelling() -> Vec<(u64, Step)> {
        vec![
            (0, created(0)),
            (1, changed(0, S::Created, S::Scheduled)),
            (2, changed(0, S::Scheduled, S::Deploying)),
            (2, deployed(0, TM1)),
            (3, changed(0, S::Deploying, S::Running)),
            (10, changed(0, S::Running, S::Canceling)),
        ]
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = AttemptOrder::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(10_000))
    }

    #[test]
    fn a_restart_after_the_old_attempt_is_canceled_holds() {
        let mut steps = first_attempt_cancelling();
        steps.extend([
            (20, changed(0, S::Canceling, S::Canceled)),
            (1_020, created(1)),
            (1_021, changed(1, S::Created, S::Scheduled)),
            (1_022, deployed(1, TM2)),
            // A late terminal report of the old attempt changes nothing.
            (1_023, changed(0, S::Canceled, S::Canceled)),
        ]);
        assert_eq!(check(&steps), vec![]);
    }

    #[test]
    fn a_deployment_while_the_old_attempt_is_canceling_is_caught() {
        let mut steps = first_attempt_cancelling();
        steps.extend([(1_010, created(1)), (1_012, deployed(1, TM2))]);
        let v = check(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "deployed vertex 1 subtask 0 attempt 1 to taskmanager-2 while vertex 1 subtask 0 attempt 0 is still CANCELING on taskmanager-1"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn an_attempt_on_a_taskmanager_the_jobmaster_declared_lost_does_not_block() {
        let mut steps = first_attempt_cancelling();
        steps.extend([
            (
                500,
                Step::Obs(
                    JM,
                    Obs::TargetLost {
                        observer: Endpoint::JobMaster(JM, 5),
                        target: Endpoint::TaskExecutor(TM1),
                        cause: LossCause::HeartbeatTimeout,
                    },
                ),
            ),
            (1_010, created(1)),
            (1_012, deployed(1, TM2)),
        ]);
        assert_eq!(check(&steps), vec![]);
    }

    #[test]
    fn a_new_jobmaster_is_not_judged_against_a_dead_one() {
        let mut steps = first_attempt_cancelling();
        steps.push((500, Step::Fault(sim::Fault::Kill(JM))));
        // The restarted JobMaster reuses nothing of the old graph; even the same graph id
        // starts afresh.
        steps.extend([(1_010, created(1)), (1_012, deployed(1, TM2))]);
        assert_eq!(check(&steps), vec![]);
    }
}
