//! Simulated processes: a JobManager process (hosting the ResourceManager) or a TaskManager
//! process (hosting a TaskExecutor), as one `sim::Actor` that routes each message to the
//! endpoint its gateway names.

use crate::bugs::Bugs;
use crate::config::FlinkConfig;
use crate::heartbeat::HeartbeatPair;
use crate::obs::Obs;
use crate::registration::RegistrationTarget;
use crate::resource_manager::ResourceManager;
use crate::rpc::Msg;
use crate::task_executor::TaskExecutor;
use sim::{Actor, Ctx, NodeId, TimerId};

/// What a timer of a process carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A heartbeat sender's interval loop.
    HeartbeatTick(HeartbeatPair),
    /// A heartbeat monitor's timeout for `target`.
    HeartbeatTimeout { pair: HeartbeatPair, target: NodeId },
    RegistrationAttemptTimeout {
        target: RegistrationTarget,
        attempt_id: u64,
    },
    RegistrationRetry {
        target: RegistrationTarget,
        attempt_id: u64,
    },
    /// `taskmanager.registration.timeout`.
    TaskExecutorRegistrationTimeout,
    /// The ask timeout of the initial `sendSlotReport` of registration `instance_id`.
    SlotReportTimeout { instance_id: u64 },
}

/// Which processes exist, by role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    pub jobmanagers: Vec<NodeId>,
    pub taskmanagers: Vec<NodeId>,
}

impl Topology {
    pub fn is_taskmanager(&self, n: NodeId) -> bool {
        self.taskmanagers.contains(&n)
    }
}

#[derive(Debug)]
pub struct JobManagerProcess {
    pub resource_manager: ResourceManager,
}

#[derive(Debug)]
pub enum Process {
    JobManager(Box<JobManagerProcess>),
    TaskManager(Box<TaskExecutor>),
}

impl Process {
    /// Builds the process for `node` (on first start and on every restart).
    pub fn build(node: NodeId, topology: &Topology, config: &FlinkConfig, bugs: Bugs) -> Process {
        if topology.jobmanagers.contains(&node) {
            Process::JobManager(Box::new(JobManagerProcess {
                resource_manager: ResourceManager::new(node, config, bugs),
            }))
        } else {
            assert!(topology.is_taskmanager(node), "node {node:?} has no role");
            let rm = topology.jobmanagers[0];
            Process::TaskManager(Box::new(TaskExecutor::new(node, rm, config, bugs)))
        }
    }

    pub fn task_executor(&self) -> Option<&TaskExecutor> {
        match self {
            Process::TaskManager(te) => Some(te),
            _ => None,
        }
    }

    pub fn resource_manager(&self) -> Option<&ResourceManager> {
        match self {
            Process::JobManager(jm) => Some(&jm.resource_manager),
            _ => None,
        }
    }
}

impl Actor for Process {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = Obs;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        match self {
            Process::JobManager(jm) => jm.resource_manager.on_start(ctx),
            Process::TaskManager(te) => te.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Msg) {
        match (self, msg) {
            (Process::JobManager(jm), Msg::ResourceManager(rpc)) => {
                jm.resource_manager.on_rpc(ctx, from, rpc)
            }
            (Process::TaskManager(te), Msg::TaskExecutor(rpc)) => te.on_rpc(ctx, from, rpc),
            (_, msg) => panic!("message {msg:?} routed to a process without its endpoint"),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, timer: TimerId, tag: Timer) {
        match self {
            Process::JobManager(jm) => match tag {
                Timer::HeartbeatTick(HeartbeatPair::ResourceManagerTaskExecutor) => {
                    jm.resource_manager.on_heartbeat_tick(ctx)
                }
                Timer::HeartbeatTimeout { target, .. } => {
                    jm.resource_manager.on_heartbeat_timeout(ctx, timer, target)
                }
                other => panic!("JobManager timer {other:?} has no handler"),
            },
            Process::TaskManager(te) => te.on_timer(ctx, timer, tag),
        }
    }

    fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Self>, to: NodeId, msg: Msg) {
        match self {
            Process::JobManager(jm) => jm.resource_manager.on_unreachable(ctx, to, &msg),
            Process::TaskManager(te) => te.on_unreachable(ctx, to, &msg),
        }
    }
}
