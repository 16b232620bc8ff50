//! Heartbeat detection (always): losses are declared neither too early nor too late.
//!
//! Ground truth per (observer, target) pair, from the trace: when the observer began monitoring
//! the target, when a heartbeat from the target last reached it, and how many heartbeat RPCs to
//! the target in a row bounced because its process was down. All spans are measured on the
//! observer's monotonic clock. Rules (docs/flink-runtime.md §5.1):
//! - a loss by timeout needs at least `heartbeat.timeout` of silence;
//! - a loss as unreachable needs `heartbeat.rpc-failure-threshold` consecutive failed heartbeat
//!   RPCs (and the threshold enabled);
//! - a monitored target that stays silent is declared lost within timeout + interval + the
//!   network bound, unless the observer is down, paused or slow (then from its resumption,
//!   or from when it has worked off what it took on while slow).
//!
//! The same rules hold for the three pairs of docs/flink-runtime.md §5.2: ResourceManager (sender) ↔
//! TaskExecutor (receiver), JobMaster (sender) ↔ TaskExecutor (receiver), one pair per job, and
//! ResourceManager (sender) ↔ JobMaster (receiver), one pair per job, whose two ends live in the
//! same JobManager process and talk to themselves over the network. Each heartbeat message is
//! mapped to the (observer, target) endpoints exactly as the model's monitors name them.
//!
//! A simplification shared with the model: heartbeat RPC success is observed through the heard
//! heartbeat, so the failure count resets when a heartbeat arrives.

use super::{secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{JobMasterRpc, Msg, ResourceManagerRpc, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, NodeId, Status, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "heartbeat-detection",
    kind: Kind::Always,
    description: "a target is declared lost only after heartbeat.timeout of silence (or rpc-failure-threshold failed heartbeat RPCs), and a silent target is declared lost within timeout + interval + network bound",
};

#[derive(Debug)]
struct Pair {
    last_heard: Time,
    failures: u32,
    overdue_reported: bool,
}

pub struct HeartbeatDetection {
    timeout: Duration,
    threshold: Option<u32>,
    slack: Duration,
    /// Monitored pairs only.
    pairs: BTreeMap<(Endpoint, Endpoint), Pair>,
    /// Node -> when it last resumed from a pause.
    resumed_at: BTreeMap<NodeId, Time>,
    next_sweep: Time,
    sweep_every: Duration,
}

impl HeartbeatDetection {
    pub fn new(setup: &Setup) -> HeartbeatDetection {
        let c = &setup.config;
        HeartbeatDetection {
            timeout: c.heartbeat_timeout,
            threshold: c.heartbeat_rpc_failure_threshold,
            slack: c.heartbeat_interval + setup.latency_max,
            pairs: BTreeMap::new(),
            resumed_at: BTreeMap::new(),
            next_sweep: Time::ZERO,
            sweep_every: (c.heartbeat_interval / 2).max(Duration::from_millis(10)),
        }
    }

    /// (observer, target) of a heartbeat message travelling `from -> to`.
    fn heartbeat_pair(msg: &Msg, from: NodeId, to: NodeId) -> Option<(Endpoint, Endpoint)> {
        match msg {
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager { .. }) => {
                Some((Endpoint::ResourceManager(to), Endpoint::TaskExecutor(from)))
            }
            Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromResourceManager { .. }) => {
                Some((Endpoint::TaskExecutor(to), Endpoint::ResourceManager(from)))
            }
            // JobMaster (sender) -> TaskExecutor: the request.
            Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager { job_id, .. }) => Some((
                Endpoint::TaskExecutor(to),
                Endpoint::JobMaster(from, *job_id),
            )),
            // TaskExecutor -> JobMaster (sender): the response.
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::HeartbeatFromTaskManager { .. },
            } => Some((
                Endpoint::JobMaster(to, *job_id),
                Endpoint::TaskExecutor(from),
            )),
            // ResourceManager (sender) -> JobMaster: the request.
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::HeartbeatFromResourceManager,
            } => Some((
                Endpoint::JobMaster(to, *job_id),
                Endpoint::ResourceManager(from),
            )),
            // JobMaster -> ResourceManager (sender): the response.
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromJobManager { job_id }) => Some((
                Endpoint::ResourceManager(to),
                Endpoint::JobMaster(from, *job_id),
            )),
            _ => None,
        }
    }

    fn local_span(census: &Census, node: NodeId, from: Time, to: Time) -> Duration {
        Duration::from_nanos(
            census
                .mono(node, to)
                .saturating_sub(census.mono(node, from)),
        )
    }

    fn sweep(&mut self, census: &Census, now: Time, out: &mut Vec<Violation>) {
        for ((observer, target), pair) in self.pairs.iter_mut() {
            let node = observer.node();
            if pair.overdue_reported || census.status(node) != Status::Up {
                continue;
            }
            if census.lagging(node) {
                // A slow observer runs its monitor's timeout late, as a busy main thread does:
                // judged like a pause, from when it has caught up.
                self.resumed_at.insert(node, now);
                continue;
            }
            let silent = Self::local_span(census, node, pair.last_heard, now);
            let mut bound = self.timeout + self.slack;
            let resumed = self.resumed_at.get(&node).copied().unwrap_or(Time::ZERO);
            if resumed > pair.last_heard {
                // The observer was paused: its monitor fires when it resumes.
                let since_resume = Self::local_span(census, node, resumed, now);
                if since_resume <= self.slack {
                    continue;
                }
                bound = bound.max(silent - since_resume + self.slack);
            }
            if silent > bound {
                pair.overdue_reported = true;
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: now,
                    node: Some(node),
                    message: format!(
                        "{} has heard nothing from {} for {} on its clock but has not declared it lost (bound: timeout {} + interval + network = {})",
                        describe(census, *observer),
                        describe(census, *target),
                        secs(silent),
                        secs(self.timeout),
                        secs(bound)
                    ),
                });
            }
        }
    }
}

pub(crate) fn describe(census: &Census, e: Endpoint) -> String {
    match e {
        Endpoint::ResourceManager(n) => format!("the ResourceManager on {}", census.name(n)),
        Endpoint::TaskExecutor(n) => format!("TaskExecutor {}", census.name(n)),
        Endpoint::JobMaster(n, job_id) => {
            format!("the JobMaster of job {job_id:x} on {}", census.name(n))
        }
    }
}

impl Oracle for HeartbeatDetection {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if ev.time >= self.next_sweep {
            self.sweep(census, ev.time, out);
            self.next_sweep = ev.time + self.sweep_every;
        }
        match &ev.kind {
            EventKind::Deliver { from, to, msg, .. } => {
                if let Some(key) = Self::heartbeat_pair(msg, *from, *to) {
                    if let Some(pair) = self.pairs.get_mut(&key) {
                        pair.last_heard = ev.time;
                        pair.failures = 0;
                        pair.overdue_reported = false;
                    }
                }
            }
            EventKind::Unreachable { from, to, msg } => {
                // The bounce reaches the sender, which is the observer of the pair.
                if let Some((target, observer)) = Self::heartbeat_pair(msg, *from, *to) {
                    if let Some(pair) = self.pairs.get_mut(&(observer, target)) {
                        pair.failures += 1;
                    }
                }
            }
            EventKind::Obs { obs, .. } => match obs {
                Obs::HeartbeatMonitorStarted { observer, target } => {
                    self.pairs.insert(
                        (*observer, *target),
                        Pair {
                            last_heard: ev.time,
                            failures: 0,
                            overdue_reported: false,
                        },
                    );
                }
                Obs::HeartbeatMonitorStopped { observer, target } => {
                    self.pairs.remove(&(*observer, *target));
                }
                // With HA a JobManager process stops its RM and JobMasters on a leadership
                // change (a grant starts new ones): their monitors go with them.
                Obs::LeadershipRevoked { .. } | Obs::LeadershipGranted { .. } => {
                    let EventKind::Obs { node, .. } = &ev.kind else {
                        unreachable!()
                    };
                    self.pairs.retain(|(observer, _), _| {
                        matches!(observer, Endpoint::TaskExecutor(_)) || observer.node() != *node
                    });
                }
                Obs::TargetLost {
                    observer,
                    target,
                    cause,
                } => {
                    let Some(pair) = self.pairs.get(&(*observer, *target)) else {
                        if *cause == LossCause::HeartbeatTimeout || *cause == LossCause::Unreachable
                        {
                            out.push(Violation {
                                invariant: INVARIANT.name,
                                at: ev.time,
                                node: Some(observer.node()),
                                message: format!(
                                    "{} declared {} lost ({}) without monitoring it",
                                    describe(census, *observer),
                                    describe(census, *target),
                                    cause.name()
                                ),
                            });
                        }
                        return;
                    };
                    let node = observer.node();
                    let silent = Self::local_span(census, node, pair.last_heard, ev.time);
                    let early = match cause {
                        LossCause::HeartbeatTimeout if silent < self.timeout => Some(format!(
                            "after only {} of silence on its clock (heartbeat.timeout is {})",
                            secs(silent),
                            secs(self.timeout)
                        )),
                        LossCause::Unreachable => match self.threshold {
                            None => Some(
                                "as unreachable although heartbeat.rpc-failure-threshold is disabled"
                                    .to_string(),
                            ),
                            Some(k) if pair.failures < k => Some(format!(
                                "as unreachable after {} failed heartbeat RPCs (threshold {k})",
                                pair.failures
                            )),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(why) = early {
                        out.push(Violation {
                            invariant: INVARIANT.name,
                            at: ev.time,
                            node: Some(node),
                            message: format!(
                                "{} declared {} lost {why}",
                                describe(census, *observer),
                                describe(census, *target)
                            ),
                        });
                    }
                }
                _ => {}
            },
            EventKind::Fault {
                fault,
                effective: true,
            } => match fault {
                Fault::Kill(n) => self.forget_observer(*n),
                Fault::Resume(n) => {
                    self.resumed_at.insert(*n, ev.time);
                }
                _ => {}
            },
            EventKind::Exited { node } => self.forget_observer(*node),
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        self.sweep(census, end, out);
    }
}

impl HeartbeatDetection {
    /// A process died: its monitors were volatile state.
    fn forget_observer(&mut self, node: NodeId) {
        self.pairs
            .retain(|(observer, _), _| observer.node() != node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};

    #[test]
    fn heartbeat_messages_map_to_observer_and_target() {
        let (jm, tm) = (NodeId(0), NodeId(1));
        let request =
            Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromResourceManager { resource_id: jm });
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&request, jm, tm),
            Some((Endpoint::TaskExecutor(tm), Endpoint::ResourceManager(jm)))
        );
        let response = Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager {
            resource_id: tm,
            slot_report: vec![],
        });
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&response, tm, jm),
            Some((Endpoint::ResourceManager(jm), Endpoint::TaskExecutor(tm)))
        );
    }

    #[test]
    fn job_heartbeat_messages_map_to_the_endpoints_the_monitors_name() {
        let (jm, tm, job_id) = (NodeId(0), NodeId(1), 5);
        let request = Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager {
            job_id,
            job_master_id: 9,
            allocated: vec![],
        });
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&request, jm, tm),
            Some((Endpoint::TaskExecutor(tm), Endpoint::JobMaster(jm, job_id)))
        );
        let response = Msg::JobMaster {
            job_id,
            rpc: JobMasterRpc::HeartbeatFromTaskManager { deployed: vec![] },
        };
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&response, tm, jm),
            Some((Endpoint::JobMaster(jm, job_id), Endpoint::TaskExecutor(tm)))
        );
        // ResourceManager and JobMaster share the JobManager process.
        let request = Msg::JobMaster {
            job_id,
            rpc: JobMasterRpc::HeartbeatFromResourceManager,
        };
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&request, jm, jm),
            Some((
                Endpoint::JobMaster(jm, job_id),
                Endpoint::ResourceManager(jm)
            ))
        );
        let response = Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromJobManager { job_id });
        assert_eq!(
            HeartbeatDetection::heartbeat_pair(&response, jm, jm),
            Some((
                Endpoint::ResourceManager(jm),
                Endpoint::JobMaster(jm, job_id)
            ))
        );
    }

    fn monitor(observer: Endpoint, target: Endpoint) -> Step {
        Step::Obs(
            observer.node(),
            Obs::HeartbeatMonitorStarted { observer, target },
        )
    }

    fn lost(observer: Endpoint, target: Endpoint, cause: LossCause) -> Step {
        Step::Obs(
            observer.node(),
            Obs::TargetLost {
                observer,
                target,
                cause,
            },
        )
    }

    fn check(steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut config = crate::protocol::config::FlinkConfig::default();
        config.heartbeat_interval = Duration::from_secs(1);
        config.heartbeat_timeout = Duration::from_secs(5);
        let mut oracle = HeartbeatDetection::new(&setup(config));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn a_jobmaster_declaring_a_heartbeating_taskexecutor_lost_early_is_caught() {
        let (jm, te) = (Endpoint::JobMaster(JM, 5), Endpoint::TaskExecutor(TM1));
        let response = |ms| {
            (
                ms,
                Step::Deliver(
                    TM1,
                    JM,
                    Msg::JobMaster {
                        job_id: 5,
                        rpc: JobMasterRpc::HeartbeatFromTaskManager { deployed: vec![] },
                    },
                ),
            )
        };
        let mut steps = vec![(0, monitor(jm, te))];
        steps.extend((1..=6).map(|s| response(s * 1_000)));
        // Declared lost 5 s after monitoring began, although it answered every second.
        steps.push((6_500, lost(jm, te, LossCause::HeartbeatTimeout)));
        let v = check(&steps, 7_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.starts_with(
                "the JobMaster of job 5 on jobmanager-1 declared TaskExecutor taskmanager-1 lost after only 0.500 s of silence"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_dead_taskexecutor_is_unreachable_only_after_the_failure_threshold() {
        let (jm, te) = (Endpoint::JobMaster(JM, 5), Endpoint::TaskExecutor(TM1));
        let refused = |ms| {
            (
                ms,
                Step::Unreachable(
                    JM,
                    TM1,
                    Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager {
                        job_id: 5,
                        job_master_id: 9,
                        allocated: vec![],
                    }),
                ),
            )
        };
        let early = [
            (0, monitor(jm, te)),
            refused(1_000),
            (1_000, lost(jm, te, LossCause::Unreachable)),
        ];
        let v = check(&early, 2_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("after 1 failed heartbeat RPCs (threshold 2)"),
            "{}",
            v[0].message
        );
        let on_time = [
            (0, monitor(jm, te)),
            refused(1_000),
            refused(2_000),
            (2_000, lost(jm, te, LossCause::Unreachable)),
            (2_000, Step::Exited(JM)),
        ];
        assert_eq!(check(&on_time, 60_000), vec![]);
    }

    #[test]
    fn a_resourcemanager_detecting_a_silent_jobmaster_in_time_holds_and_late_does_not() {
        let (rm, jm) = (Endpoint::ResourceManager(JM), Endpoint::JobMaster(JM, 5));
        let on_time = [
            (0, monitor(rm, jm)),
            (5_500, lost(rm, jm, LossCause::HeartbeatTimeout)),
            (
                5_500,
                Step::Obs(
                    JM,
                    Obs::HeartbeatMonitorStopped {
                        observer: rm,
                        target: jm,
                    },
                ),
            ),
        ];
        assert_eq!(check(&on_time, 30_000), vec![]);
        let v = check(&[(0, monitor(rm, jm))], 30_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "the ResourceManager on jobmanager-1 has heard nothing from the JobMaster of job 5 on jobmanager-1"
            ),
            "{}",
            v[0].message
        );
    }
}
