//! Registration liveness (eventually): once faults have been quiet long enough, every running
//! TaskManager is registered at the running ResourceManager with its slots, and both sides agree
//! on the registration (`InstanceID`).
//!
//! The bound comes from the configuration: detecting the old connection as lost (timeout +
//! interval), one full registration attempt at the maximum timeout, the longest retry pause
//! (refused or error delay), plus network round trips.

use super::{secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::process::Topology;
use crate::protocol::ids::InstanceId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, NodeId, Status, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "registration-liveness",
    kind: Kind::Eventually,
    description: "after the last fault, every running TaskManager is registered (with its slots) at the running ResourceManager within a bound derived from the heartbeat and registration settings",
};

pub struct RegistrationLiveness {
    topology: Topology,
    bound: Duration,
    /// The JobManager process whose ResourceManager leads: the first one without HA; with HA
    /// the latest granted and not revoked (`None`: no leader, not judged).
    leader: Option<NodeId>,
    /// RM view: TaskExecutor -> (instance, slots registered).
    registered: BTreeMap<NodeId, (InstanceId, bool)>,
    /// TE view: TaskExecutor -> instance it is connected under.
    connected: BTreeMap<NodeId, InstanceId>,
    last_fault: Time,
}

impl RegistrationLiveness {
    pub fn new(setup: &Setup) -> RegistrationLiveness {
        let c = &setup.config;
        let bound = c.heartbeat_timeout
            + c.heartbeat_interval
            + c.registration_max_timeout
            + c.registration_refused_delay.max(c.registration_error_delay)
            + setup.latency_max * 4
            + Duration::from_secs(1);
        // With HA a new ResourceManager needs its leader first: a dead leader's session expires
        // after the session timeout, and a reconnecting client waits a retry.
        let bound = match setup.topology.ha {
            None => bound,
            Some(_) => bound + c.ha_session.session_timeout * 2 + c.ha_session.retry_wait * 2,
        };
        RegistrationLiveness {
            topology: setup.topology.clone(),
            bound,
            leader: match setup.topology.ha {
                None => setup.topology.jobmanagers.first().copied(),
                Some(_) => None,
            },
            registered: BTreeMap::new(),
            connected: BTreeMap::new(),
            last_fault: Time::ZERO,
        }
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }
}

impl Oracle for RegistrationLiveness {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, _out: &mut Vec<Violation>) {
        match &ev.kind {
            // A deposed ResourceManager (HA) may still register TaskExecutors for a moment;
            // only the leader's registrations count.
            EventKind::Obs {
                node,
                obs:
                    Obs::TaskExecutorRegistered { .. }
                    | Obs::SlotsRegistered { .. }
                    | Obs::TaskExecutorUnregistered { .. },
            } if self.topology.ha.is_some() && self.leader != Some(*node) => {}
            EventKind::Obs { node, obs } => match obs {
                Obs::TaskExecutorRegistered {
                    task_executor,
                    instance_id,
                } => {
                    self.registered
                        .insert(*task_executor, (*instance_id, false));
                }
                Obs::SlotsRegistered {
                    task_executor,
                    instance_id,
                    ..
                } => {
                    if let Some(r) = self.registered.get_mut(task_executor) {
                        if r.0 == *instance_id {
                            r.1 = true;
                        }
                    }
                }
                Obs::TaskExecutorUnregistered {
                    task_executor,
                    instance_id,
                } if self.registered.get(task_executor).map(|r| r.0) == Some(*instance_id) => {
                    self.registered.remove(task_executor);
                }
                Obs::ResourceManagerConnected { instance_id, .. } => {
                    self.connected.insert(*node, *instance_id);
                }
                Obs::ResourceManagerDisconnected { .. } => {
                    self.connected.remove(node);
                }
                // With HA a grant starts a new ResourceManager (with no registrations), and a
                // revocation stops it.
                Obs::LeadershipGranted { .. } => {
                    self.registered.clear();
                    self.leader = Some(*node);
                }
                Obs::LeadershipRevoked { .. } if self.leader == Some(*node) => {
                    self.registered.clear();
                    self.leader = None;
                }
                _ => {}
            },
            EventKind::Fault {
                fault,
                effective: true,
            } => {
                self.last_fault = ev.time;
                if let Fault::Kill(n) = fault {
                    self.process_died(*n);
                }
            }
            EventKind::Exited { node } => {
                self.last_fault = ev.time;
                self.process_died(*node);
            }
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        let quiet = end.saturating_since(self.last_fault);
        if quiet < self.bound {
            return; // not judged: faults did not stop long enough before the end
        }
        let Some(rm) = self.leader else {
            return;
        };
        if census.status(rm) != Status::Up {
            return;
        }
        for &tm in &self.topology.taskmanagers {
            if census.status(tm) != Status::Up {
                continue;
            }
            let problem = match (self.registered.get(&tm), self.connected.get(&tm)) {
                (None, _) => "the ResourceManager has no registration for it".to_string(),
                (Some((_, false)), _) => "its slots were never registered".to_string(),
                (Some(_), None) => "it is not connected to the ResourceManager".to_string(),
                (Some((rm_view, _)), Some(te_view)) if rm_view != te_view => format!(
                    "the two sides disagree on the registration ({rm_view:x} vs {te_view:x})"
                ),
                _ => continue,
            };
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: Some(tm),
                message: format!(
                    "{} is running but not registered {} after the last fault (bound {}): {problem}",
                    census.name(tm),
                    secs(quiet),
                    secs(self.bound)
                ),
            });
        }
    }
}

impl RegistrationLiveness {
    fn process_died(&mut self, n: NodeId) {
        if self.leader == Some(n) {
            self.registered.clear();
            if self.topology.ha.is_some() {
                self.leader = None;
            }
        }
        self.connected.remove(&n);
    }
}
