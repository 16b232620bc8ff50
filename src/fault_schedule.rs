//! Turns a scenario's faults into kernel faults: the ones that name nodes are queued before the
//! run starts; the ones that name a role (`leader`, `taskmanager-of:count[1]`,
//! `random-taskmanager`) wait until their time comes and are resolved then, from what the run
//! has shown so far ([`TargetView`], built from the traced observations like an oracle: it reads
//! no component's memory).

use crate::scenario::{FaultAction, MessageFault, NodeLayout, Target};
use model::process::Process;
use model::process::Topology;
use model::protocol::ids::ExecutionAttemptId;
use model::protocol::job_graph::{ExecutionVertexId, JobGraph};
use model::protocol::obs::Obs;
use model::protocol::Flink;
use rand::Rng as _;
use sim::{
    Census, Event, EventKind, Fault, MessageAction, MessageRule, NodeId, Status, Time, World,
};
use std::collections::BTreeMap;

/// A fault that names a role: resolved when it fires.
#[derive(Clone, Debug)]
pub struct Deferred {
    pub at: Time,
    pub action: FaultAction,
}

/// How a role resolved (or why it did not), for the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub at: Time,
    /// The action as written (`kill = "leader"`).
    pub written: String,
    /// The nodes the roles stood for, in the order they appear; empty when unresolved.
    pub nodes: Vec<String>,
    /// The fault it became (`kill = "jobmanager-2"`); `None` when skipped.
    pub resolved: Option<String>,
    /// The kernel's name for the fault it became ([`sim::Fault::name`]).
    pub kind: &'static str,
    /// Why it was skipped, when a role stood for no node at that moment.
    pub skipped: Option<String>,
}

/// The kernel's name ([`sim::Fault::name`]) of the fault an action becomes.
pub fn kernel_name(action: &FaultAction) -> &'static str {
    match action {
        FaultAction::Kill(_) => "kill",
        FaultAction::Start(_) => "start",
        FaultAction::Pause { .. } => "pause",
        FaultAction::Resume(_) => "resume",
        FaultAction::Partition { .. } => "partition",
        FaultAction::Heal => "heal-all",
        FaultAction::Clog { .. } => "clog",
        FaultAction::ClockJump { .. } => "clock-jump",
        FaultAction::FailTask { .. } => "signal",
        FaultAction::Messages { fault, .. } => match fault {
            MessageFault::Delay(_) => "delay-messages",
            MessageFault::Drop => "drop-messages",
            MessageFault::DropReply => "drop-replies",
        },
        FaultAction::Slow { .. } => "slow",
    }
}

/// Queues every fault that names only nodes; returns the ones with roles, in time order.
pub fn schedule(
    world: &mut World<Process>,
    faults: &[crate::scenario::FaultSpec],
    layout: &NodeLayout,
    topology: &Topology,
) -> Vec<Deferred> {
    let mut deferred = Vec::new();
    for f in faults {
        let at = Time::ZERO + f.at;
        if f.action.has_roles() {
            deferred.push(Deferred {
                at,
                action: f.action.clone(),
            });
        } else {
            queue(world, at, &f.action, layout, topology);
        }
    }
    deferred.sort_by_key(|d| d.at);
    deferred
}

/// Queues one fault whose nodes are all named.
pub fn queue(
    world: &mut World<Process>,
    at: Time,
    action: &FaultAction,
    layout: &NodeLayout,
    topology: &Topology,
) {
    let groups = |g: &Vec<Vec<String>>| -> Vec<Vec<NodeId>> {
        g.iter()
            .map(|grp| grp.iter().map(|n| layout.id(n)).collect())
            .collect()
    };
    let ids = |v: &[String]| -> Vec<NodeId> { v.iter().map(|n| layout.id(n)).collect() };
    match action {
        FaultAction::Kill(n) => world.schedule(at, Fault::Kill(layout.id(n))),
        FaultAction::Start(n) => world.schedule(at, Fault::Start(layout.id(n))),
        FaultAction::Pause { node, resume_after } => {
            world.schedule(at, Fault::Pause(layout.id(node)));
            if let Some(d) = resume_after {
                world.schedule(at + *d, Fault::Resume(layout.id(node)));
            }
        }
        FaultAction::Resume(n) => world.schedule(at, Fault::Resume(layout.id(n))),
        FaultAction::Partition {
            groups: g,
            one_way,
            heal_after,
        } => world.schedule(
            at,
            Fault::Partition {
                groups: groups(g),
                one_way: *one_way,
                heal_after: *heal_after,
            },
        ),
        FaultAction::Heal => world.schedule(at, Fault::HealAll),
        FaultAction::Clog {
            groups: g,
            one_way,
            extra,
            clear_after,
        } => world.schedule(
            at,
            Fault::Clog {
                groups: groups(g),
                one_way: *one_way,
                extra: *extra,
                clear_after: *clear_after,
            },
        ),
        FaultAction::ClockJump { node, by_ns } => world.schedule(
            at,
            Fault::ClockJump {
                node: layout.id(node),
                by_ns: *by_ns,
            },
        ),
        FaultAction::FailTask {
            vertex, subtask, ..
        } => {
            // The user code of that task throws, wherever it runs at that moment.
            let code = model::taskmanager::task_executor::fail_task_signal(*vertex, *subtask);
            for tm in &topology.taskmanagers {
                world.schedule(at, Fault::Signal { node: *tm, code });
            }
        }
        FaultAction::Messages {
            fault,
            kinds,
            from,
            to,
            count,
            lasting,
        } => world.schedule(
            at,
            Fault::Messages(MessageRule {
                kinds: kinds.clone(),
                from: ids(from),
                to: ids(to),
                action: match fault {
                    MessageFault::Delay(by) => MessageAction::Delay(*by),
                    MessageFault::Drop => MessageAction::Drop,
                    MessageFault::DropReply => MessageAction::DropReply,
                },
                count: *count,
                lasting: *lasting,
            }),
        ),
        FaultAction::Slow {
            node,
            per_event,
            lasting,
        } => {
            let node = layout.id(node);
            world.schedule(
                at,
                Fault::Slow {
                    node,
                    per_event: *per_event,
                },
            );
            if let Some(d) = lasting {
                world.schedule(
                    at + *d,
                    Fault::Slow {
                        node,
                        per_event: std::time::Duration::ZERO,
                    },
                );
            }
        }
    }
}

/// Who leads and where each subtask runs, as the trace has shown it so far.
#[derive(Debug, Default)]
pub struct TargetView {
    /// With HA: the JobManager most recently granted leadership that has not lost it since.
    granted: Option<NodeId>,
    /// The live attempts of each subtask: attempt -> the TaskManager running it.
    running: BTreeMap<ExecutionVertexId, BTreeMap<ExecutionAttemptId, NodeId>>,
}

impl TargetView {
    pub fn observe(&mut self, ev: &Event<'_, Flink>) {
        match &ev.kind {
            EventKind::Obs { node, obs } => match obs {
                Obs::LeadershipGranted { .. } => self.granted = Some(*node),
                Obs::LeadershipRevoked { .. } if self.granted == Some(*node) => self.granted = None,
                Obs::TaskStateChanged { attempt, to, .. } => {
                    let live = self.running.entry(attempt.vertex).or_default();
                    if to.is_terminal() {
                        live.remove(attempt);
                    } else {
                        live.insert(*attempt, *node);
                    }
                }
                _ => {}
            },
            EventKind::Fault {
                fault: Fault::Kill(n),
                effective: true,
            }
            | EventKind::Exited { node: n } => self.forget(*n),
            _ => {}
        }
    }

    /// A process stopped: it leads no more and runs no task.
    fn forget(&mut self, n: NodeId) {
        if self.granted == Some(n) {
            self.granted = None;
        }
        for live in self.running.values_mut() {
            live.retain(|_, tm| *tm != n);
        }
    }
}

/// What a resolution may use: the view, the node states, the layout and the seed's stream.
pub struct Resolver<'a> {
    pub view: &'a TargetView,
    pub census: &'a Census,
    pub layout: &'a NodeLayout,
    pub topology: &'a Topology,
    pub graph: Option<&'a JobGraph>,
    pub rng: &'a mut sim::Rng,
}

impl Resolver<'_> {
    /// The action with every role replaced by the node it stands for now, and the nodes; an
    /// error says which role stood for nothing.
    pub fn resolve(&mut self, action: &FaultAction) -> Result<(FaultAction, Vec<String>), String> {
        // Which node states a random TaskManager is drawn from.
        let wanted = match action {
            FaultAction::Start(_) => Status::Down,
            FaultAction::Resume(_) => Status::Paused,
            _ => Status::Up,
        };
        let mut nodes = Vec::new();
        let mut one = |name: &String| -> Result<String, String> {
            if !Target::is_role(name) {
                return Ok(name.clone());
            }
            let node = self.node_of(name, wanted)?;
            nodes.push(node.clone());
            Ok(node)
        };
        let mut out = action.clone();
        match &mut out {
            FaultAction::Kill(n) | FaultAction::Start(n) | FaultAction::Resume(n) => *n = one(n)?,
            FaultAction::Pause { node, .. }
            | FaultAction::ClockJump { node, .. }
            | FaultAction::Slow { node, .. } => *node = one(node)?,
            FaultAction::Partition { groups, .. } | FaultAction::Clog { groups, .. } => {
                for n in groups.iter_mut().flatten() {
                    *n = one(n)?;
                }
                let mut all: Vec<&String> = groups.iter().flatten().collect();
                all.sort();
                if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
                    return Err(format!("`{}` would be in two groups", w[0]));
                }
            }
            FaultAction::Messages { from, to, .. } => {
                for n in from.iter_mut().chain(to.iter_mut()) {
                    *n = one(n)?;
                }
            }
            FaultAction::Heal | FaultAction::FailTask { .. } => {}
        }
        Ok((out, nodes))
    }

    fn node_of(&mut self, role: &str, wanted: Status) -> Result<String, String> {
        let name = |n: NodeId| self.census.name(n).to_string();
        match Target::role(role, self.graph) {
            Some(Target::Leader) => {
                let leader = if self.topology.ha.is_some() {
                    self.view.granted
                } else {
                    self.topology.jobmanagers.first().copied()
                };
                match leader {
                    Some(n) if self.census.status(n) != Status::Down => Ok(name(n)),
                    _ => Err("no JobManager leads".to_string()),
                }
            }
            Some(Target::TaskManagerOf {
                operator,
                vertex,
                subtask,
            }) => {
                let id = ExecutionVertexId { vertex, subtask };
                self.view
                    .running
                    .get(&id)
                    .and_then(|live| live.iter().max_by_key(|(a, _)| (a.graph, a.attempt)))
                    .map(|(_, tm)| name(*tm))
                    .ok_or_else(|| format!("no TaskManager runs {operator}[{subtask}]"))
            }
            Some(Target::RandomTaskManager) => {
                let candidates: Vec<NodeId> = self
                    .topology
                    .taskmanagers
                    .iter()
                    .copied()
                    .filter(|n| self.census.status(*n) == wanted)
                    .collect();
                if candidates.is_empty() {
                    return Err(format!(
                        "no TaskManager is {}",
                        match wanted {
                            Status::Up => "running",
                            Status::Down => "stopped",
                            Status::Paused => "paused",
                        }
                    ));
                }
                let i = self.rng.random_range(0..candidates.len());
                Ok(name(candidates[i]))
            }
            Some(Target::Node(n)) => Ok(n),
            None => Err(format!("`{role}` names no node")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_told_apart_from_node_names() {
        assert!(Target::is_role("leader"));
        assert!(Target::is_role("random-taskmanager"));
        assert!(Target::is_role("taskmanager-of:count[1]"));
        assert!(!Target::is_role("taskmanager-1"));
        assert!(!Target::is_role("jobmanager-1"));
        let kill = FaultAction::Kill("leader".into());
        assert!(kill.has_roles());
        assert!(!FaultAction::Kill("jobmanager-2".into()).has_roles());
    }
}
