//! Heartbeat detection (always): losses are declared neither too early nor too late.
//!
//! Ground truth per (observer, target) pair, from the trace: when the observer began monitoring
//! the target, when a heartbeat from the target last reached it, and how many heartbeat RPCs to
//! the target in a row bounced because its process was down. All spans are measured on the
//! observer's monotonic clock. Rules (FLINK.md §5.1):
//! - a loss by timeout needs at least `heartbeat.timeout` of silence;
//! - a loss as unreachable needs `heartbeat.rpc-failure-threshold` consecutive failed heartbeat
//!   RPCs (and the threshold enabled);
//! - a monitored target that stays silent is declared lost within timeout + interval + the
//!   network bound, unless the observer is down or paused (then from its resumption).
//!
//! A simplification shared with the model: heartbeat RPC success is observed through the heard
//! heartbeat, so the failure count resets when a heartbeat arrives.

use super::{secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::obs::{Endpoint, LossCause, Obs};
use crate::process::Process;
use crate::rpc::{Msg, ResourceManagerRpc, TaskExecutorRpc};
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
    resumed_at: Vec<Time>,
    next_sweep: Time,
    sweep_every: Duration,
}

impl HeartbeatDetection {
    pub fn new(setup: &Setup) -> HeartbeatDetection {
        let c = &setup.config;
        let nodes = setup.topology.jobmanagers.len() + setup.topology.taskmanagers.len();
        HeartbeatDetection {
            timeout: c.heartbeat_timeout,
            threshold: c.heartbeat_rpc_failure_threshold,
            slack: c.heartbeat_interval + setup.latency_max,
            pairs: BTreeMap::new(),
            resumed_at: vec![Time::ZERO; nodes],
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
            let silent = Self::local_span(census, node, pair.last_heard, now);
            let mut bound = self.timeout + self.slack;
            let resumed = self.resumed_at[node.index()];
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
    }
}

impl Oracle for HeartbeatDetection {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Process>, out: &mut Vec<Violation>) {
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
                Fault::Resume(n) => self.resumed_at[n.index()] = ev.time,
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
}
