//! Simulated processes: a JobManager process (Dispatcher, ResourceManager and one JobMaster per
//! job), a TaskManager process (a TaskExecutor), and the client that submits the job — each one
//! `sim::Actor` that routes a message to the endpoint its gateway names, a timer to the
//! component its tag names, and an unreachable notice back to the component that sent the message
//! (where one acts on it).

use crate::checking::bugs::Bugs;
use crate::client::Client;
use crate::external::checkpoint_storage::CheckpointStorage;
use crate::external::ha::node::HaNode;
use crate::external::sink_store::{SinkData, SinkStore};
use crate::external::source_log::SourceLog;
use crate::jobmanager::job_master::JobMaster;
use crate::jobmanager::resource_manager::ResourceManager;
use crate::protocol::config::FlinkConfig;
use crate::protocol::durable::DurableOp;
use crate::protocol::ha::HaData;
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::JobSpec;
use crate::protocol::rpc::{
    ConnectPurpose, ConnectTarget, Msg, ResourceManagerRpc as R, TaskExecutorRpc as T,
};
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use crate::taskmanager::task_executor::TaskExecutor;
use sim::{Actor, Ctx, NodeId, TimerId};
use std::sync::Arc;
use std::time::Duration;

/// Which processes exist, by role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    pub jobmanagers: Vec<NodeId>,
    /// Every TaskManager, spares included.
    pub taskmanagers: Vec<NodeId>,
    /// TaskManagers that are not started with the cluster; an active ResourceManager starts
    /// them when it lacks slots.
    pub spare_taskmanagers: Vec<NodeId>,
    pub client: Option<NodeId>,
    /// The `source` node (the replayable log the job reads), when the scenario has a job.
    pub source_log: Option<NodeId>,
    /// The `checkpoint-storage` node (a blob store for state handles), when the scenario has a
    /// job.
    pub checkpoint_storage: Option<NodeId>,
    /// The `sink` node (the transactional store the job writes to), when the scenario has a job.
    pub sink: Option<NodeId>,
    /// The `ha` node (a ZooKeeper-like store), with high availability.
    pub ha: Option<NodeId>,
}

impl Topology {
    pub fn is_taskmanager(&self, n: NodeId) -> bool {
        self.taskmanagers.contains(&n)
    }
}

/// The job the client submits, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub spec: Arc<JobSpec>,
    pub at: Duration,
}

/// Everything needed to build any process of a run.
#[derive(Clone, Debug)]
pub struct ClusterSetup {
    pub topology: Topology,
    pub config: FlinkConfig,
    pub bugs: Bugs,
    pub submission: Option<Submission>,
}

pub use crate::jobmanager::process::JobManagerProcess;

#[derive(Debug)]
pub enum Process {
    JobManager(Box<JobManagerProcess>),
    TaskManager(Box<TaskExecutor>),
    Client(Box<Client>),
    SourceLog(Box<SourceLog>),
    CheckpointStorage(Box<CheckpointStorage>),
    Sink(Box<SinkStore>),
    Ha(Box<HaNode>),
}

/// What survives a crash of a node: the blobs of `checkpoint-storage`, the content of the
/// `sink` and the `ha` node's tree and sessions (every other process keeps nothing).
#[derive(Clone, Debug, Default)]
pub struct ProcessDurable {
    pub blobs: crate::external::checkpoint_storage::Blobs,
    pub sink: SinkData,
    pub ha: HaData,
}

impl sim::Durable for ProcessDurable {
    type Op = DurableOp;
    fn apply(&mut self, op: DurableOp) {
        match op {
            DurableOp::Blob(op) => crate::external::checkpoint_storage::apply(&mut self.blobs, op),
            DurableOp::Sink(op) => self.sink.apply(op),
            DurableOp::Ha(op) => {
                self.ha.apply(op);
            }
        }
    }
}

impl Process {
    /// Builds the process for `node` (on first start and on every restart).
    pub fn build(node: NodeId, setup: &ClusterSetup, durable: &ProcessDurable) -> Process {
        let t = &setup.topology;
        if t.jobmanagers.contains(&node) {
            Process::JobManager(Box::new(JobManagerProcess::new(node, setup)))
        } else if t.ha == Some(node) {
            Process::Ha(Box::new(HaNode::new(durable.ha.clone())))
        } else if t.client == Some(node) {
            Process::Client(Box::new(Client::new(node, t.jobmanagers[0], setup)))
        } else if t.source_log == Some(node) {
            Process::SourceLog(Box::new(SourceLog::new(setup)))
        } else if t.checkpoint_storage == Some(node) {
            Process::CheckpointStorage(Box::new(CheckpointStorage::new(durable)))
        } else if t.sink == Some(node) {
            Process::Sink(Box::new(SinkStore::new(durable)))
        } else {
            assert!(t.is_taskmanager(node), "node {node:?} has no role");
            let rm = t.jobmanagers[0];
            let te = TaskExecutor::new(node, rm, &setup.config, setup.bugs);
            Process::TaskManager(Box::new(match t.ha {
                Some(store) => te.with_ha(store),
                None => te,
            }))
        }
    }

    /// Whether this process runs the endpoint a gateway connection resolves, now.
    fn hosts(&self, target: ConnectTarget) -> bool {
        match (self, target) {
            (Process::JobManager(jm), ConnectTarget::ResourceManager) => jm.components.is_some(),
            (Process::JobManager(jm), ConnectTarget::JobMaster(job_id)) => jm
                .components
                .as_ref()
                .and_then(|c| c.job_masters.get(&job_id))
                .is_some_and(|j| !j.is_shut_down()),
            (Process::TaskManager(_), ConnectTarget::TaskExecutor) => true,
            _ => false,
        }
    }

    pub fn task_executor(&self) -> Option<&TaskExecutor> {
        match self {
            Process::TaskManager(te) => Some(te),
            _ => None,
        }
    }

    /// The ResourceManager of a (leading) JobManager process.
    pub fn resource_manager(&self) -> Option<&ResourceManager> {
        match self {
            Process::JobManager(jm) => jm.components.as_ref().map(|c| &c.resource_manager),
            _ => None,
        }
    }

    pub fn job_manager(&self) -> Option<&JobManagerProcess> {
        match self {
            Process::JobManager(jm) => Some(jm),
            _ => None,
        }
    }

    pub fn ha_node(&self) -> Option<&HaNode> {
        match self {
            Process::Ha(h) => Some(h),
            _ => None,
        }
    }
}

impl Actor for Process {
    type V = Flink;
    type Durable = ProcessDurable;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        match self {
            Process::JobManager(jm) => jm.on_start(ctx),
            Process::TaskManager(te) => te.on_start(ctx),
            Process::Client(c) => c.on_start(ctx),
            Process::Ha(h) => h.on_start(ctx),
            Process::SourceLog(_) | Process::CheckpointStorage(_) | Process::Sink(_) => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, msg: Msg) {
        match (self, msg) {
            // Resolving an endpoint is answered by the process (Pekko's actor system), whatever
            // its endpoints are doing.
            (
                p,
                Msg::Connect {
                    purpose,
                    connect_id,
                },
            ) => {
                let found = p.hosts(purpose.target());
                ctx.send(
                    from,
                    Msg::ConnectResponse {
                        purpose,
                        connect_id,
                        found,
                    },
                );
            }
            (
                Process::TaskManager(te),
                Msg::ConnectResponse {
                    purpose: ConnectPurpose::Registration(target),
                    connect_id,
                    found,
                },
            ) => te.on_connect_response(ctx, target, connect_id, found),
            (
                Process::JobManager(jm),
                Msg::ConnectResponse {
                    purpose,
                    connect_id,
                    found,
                },
            ) => jm.step(ctx, |c, ctx| match purpose.job_master() {
                Some(job_id) => {
                    if let Some(job_master) = c.job_masters.get_mut(&job_id) {
                        job_master.on_connect_response(ctx, from, purpose, connect_id, found);
                    }
                }
                None => c
                    .resource_manager
                    .on_connect_response(ctx, from, purpose, connect_id, found),
            }),
            (Process::JobManager(jm), Msg::ResourceManager(rpc)) => {
                jm.step(ctx, |c, ctx| c.resource_manager.on_rpc(ctx, from, rpc))
            }
            (Process::JobManager(jm), Msg::Dispatcher(rpc)) => jm.on_dispatcher_rpc(ctx, from, rpc),
            (Process::JobManager(jm), Msg::JobMaster { job_id, rpc }) => {
                jm.step(ctx, |c, ctx| match c.job_masters.get_mut(&job_id) {
                    Some(job_master) => job_master.on_rpc(ctx, from, rpc),
                    // No JobMaster for the job (finished, or never here): Flink answers with a
                    // failure; the callers treat silence and failure alike.
                    None => JobMaster::answer_unknown_job(ctx, from, job_id, rpc),
                })
            }
            (Process::JobManager(jm), Msg::HaReply(reply)) => jm.on_ha_reply(ctx, reply),
            (Process::TaskManager(te), Msg::HaReply(reply)) => te.on_ha_reply(ctx, reply),
            (Process::Client(c), Msg::HaReply(reply)) => c.on_ha_reply(ctx, reply),
            (Process::Ha(h), Msg::Ha(request)) => h.on_request(ctx, from, request),
            (Process::TaskManager(te), Msg::TaskExecutor(rpc)) => te.on_rpc(ctx, from, rpc),
            (Process::Client(c), Msg::Client(rpc)) => c.on_rpc(ctx, from, rpc),
            (Process::SourceLog(log), Msg::SourceLog(rpc)) => log.on_rpc(ctx, from, rpc),
            (Process::CheckpointStorage(s), Msg::CheckpointStorage(rpc)) => {
                s.on_rpc(ctx, from, rpc)
            }
            (Process::Sink(s), Msg::Sink(rpc)) => s.on_rpc(ctx, from, rpc),
            (_, msg) => panic!("message {msg:?} routed to a process without its endpoint"),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: Timer) {
        match (self, tag) {
            (Process::JobManager(jm), Timer::HaTick) => jm.on_ha_tick(ctx, timer),
            (Process::JobManager(jm), Timer::JobMaster { job_id, timer: tag }) => {
                jm.step(ctx, |c, ctx| {
                    // A timer of a finished (reaped) JobMaster finds no one.
                    if let Some(job_master) = c.job_masters.get_mut(&job_id) {
                        job_master.on_timer(ctx, timer, tag);
                    }
                })
            }
            (Process::JobManager(jm), Timer::ResourceManager(tag)) => {
                jm.step(ctx, |c, ctx| c.resource_manager.on_timer(ctx, timer, tag))
            }
            (Process::TaskManager(te), Timer::HaTick) => te.on_ha_tick(ctx, timer),
            (Process::TaskManager(te), Timer::TaskExecutor(tag)) => te.on_timer(ctx, timer, tag),
            (Process::Client(c), Timer::HaTick) => c.on_ha_tick(ctx, timer),
            (Process::Client(c), Timer::SubmitJob) => c.on_submit_timer(ctx),
            (Process::Ha(h), Timer::HaExpiry) => h.on_expiry(ctx, timer),
            (_, tag) => panic!("timer {tag:?} fired in a process without its owner"),
        }
    }

    fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: Msg) {
        match self {
            Process::JobManager(_) if matches!(msg, Msg::Ha(_) | Msg::Client(_)) => {}
            Process::JobManager(jm) => jm.step(ctx, |c, ctx| {
                let mut job_master = |job_id: &JobId| {
                    // A finished (reaped) JobMaster hears nothing.
                    if let Some(job_master) = c.job_masters.get_mut(job_id) {
                        job_master.on_unreachable(ctx, to, &msg);
                    }
                };
                match &msg {
                    // A JobMaster's RPCs that name its job.
                    Msg::TaskExecutor(
                        T::RegisterTaskManagerResponse { job_id, .. }
                        | T::OfferSlotsResponse { job_id, .. }
                        | T::HeartbeatFromJobManager { job_id, .. }
                        | T::DisconnectJobManager { job_id, .. },
                    )
                    | Msg::ResourceManager(
                        R::RegisterJobMaster { job_id, .. }
                        | R::DeclareRequiredResources { job_id, .. }
                        | R::HeartbeatFromJobManager { job_id }
                        | R::DisconnectJobManager { job_id, .. },
                    ) => job_master(job_id),
                    Msg::TaskExecutor(T::SubmitTask { tdd, .. }) => job_master(&tdd.job_id),
                    Msg::Connect { purpose, .. } if let Some(job_id) = purpose.job_master() => {
                        job_master(&job_id)
                    }
                    // A JobMaster's RPCs that name no job (nor do Flink's `cancelTask`,
                    // `freeSlot`, `triggerCheckpoint`, ...): no JobMaster reacts to their loss
                    // (it re-sends `cancelTask` on a timer, times checkpoints out and hears of a
                    // lost TaskExecutor from heartbeats), so no one is told.
                    Msg::TaskExecutor(
                        T::CancelTask { .. }
                        | T::FreeSlot { .. }
                        | T::UpdateTaskExecutionStateResponse { .. }
                        | T::TriggerCheckpoint { .. }
                        | T::NotifyCheckpointComplete { .. }
                        | T::NotifyCheckpointAborted { .. },
                    )
                    | Msg::CheckpointStorage(_) => {}
                    // Everything else the process sends is the ResourceManager's.
                    _ => c.resource_manager.on_unreachable(ctx, to, &msg),
                }
            }),
            Process::TaskManager(_) | Process::Client(_) if matches!(msg, Msg::Ha(_)) => {}
            Process::TaskManager(te) => te.on_unreachable(ctx, to, &msg),
            Process::Client(c) => c.on_unreachable(ctx, to, &msg),
            // A reader or writer that went away.
            Process::SourceLog(_)
            | Process::CheckpointStorage(_)
            | Process::Sink(_)
            | Process::Ha(_) => {}
        }
    }

    fn on_signal(&mut self, ctx: &mut Ctx<'_, Flink>, code: u64) {
        if let Process::TaskManager(te) = self {
            te.on_signal(ctx, code);
        }
    }
}
