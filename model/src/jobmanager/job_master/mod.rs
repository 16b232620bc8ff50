//! The JobMaster of one job: its ExecutionGraph (one Execution per attempt of each
//! ExecutionVertex), the scheduler (slot-sharing groups, region-at-once deployment), the slot pool
//! (declarative requirements, slot offers, idle slots, `slot.request.timeout`), deployment
//! reconciliation with the TaskExecutors' reports, failover (failover strategy + restart backoff
//! strategy) and the JobStatus. It talks to the ResourceManager (registration, requirements, the
//! RM ↔ JM heartbeat as receiver) and to TaskExecutors (registration, offers, `submitTask`,
//! `cancelTask`, the JM ↔ TE heartbeat as sender).
//!
//! A JobMaster instance is one leader session: its `JobMasterId` and ExecutionGraph id are fresh,
//! so nothing of an older instance matches it.
//!
//! This module holds the `JobMaster` itself: its state, its construction (plain or as an HA
//! leader), its lifecycle (start, suspension when leadership is revoked, shutdown once the job is
//! globally terminal), the hooks through which the JobManager process serves its `ha` store work,
//! and the dispatch of its RPCs, timers and unreachable targets to the handlers of its parts,
//! which live in child modules named after Flink's classes: the ExecutionGraph
//! (`execution_graph`), the DefaultScheduler's scheduling, deployment and failover
//! (`scheduler`), the declarative SlotPool (`slot_pool`), the TaskManagers registered here
//! (`task_manager_registration`), the connection to the ResourceManager
//! (`resource_manager_connection`), the JobMaster's side of checkpointing (`checkpointing`), and
//! the CheckpointCoordinator with the restart and failover strategies.

pub mod checkpoint_coordinator;
mod checkpointing;
mod execution_graph;
pub mod failover_strategy;
mod resource_manager_connection;
pub mod restart_strategy;
mod scheduler;
mod slot_pool;
mod task_manager_registration;
#[cfg(test)]
mod tests;

use crate::checking::bugs::{Bug, Bugs};
use crate::jobmanager::job_master::checkpoint_coordinator::{
    assign_state, CheckpointCoordinator, HaCheckpointing, PointerOp,
};
use crate::jobmanager::job_master::failover_strategy::FailoverStrategy;
use crate::jobmanager::job_master::restart_strategy::RestartBackoffTimeStrategy;
use crate::process::ClusterSetup;
use crate::protocol::checkpoint::CompletedCheckpoint;
use crate::protocol::checkpoint::{CheckpointId, TaskRestore};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::job_graph::{ExecutionVertexId, JobGraph, JobSpec};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    ConnectPurpose, DisconnectCause, JobMasterRpc, Msg, ResourceManagerRpc, StreamConfig,
    TaskExecutorRpc, TaskManagerRegistration,
};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::timer::Timer;
use crate::protocol::timer::{HeartbeatPair, HeartbeatTimer, JobMasterTimer, RegistrationTimer};
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use execution_graph::{stream_configs, Execution};
use rand::Rng as _;
use resource_manager_connection::RmConnection;
use scheduler::PendingRestart;
use sim::{Ctx, NodeId, TimerId};
use slot_pool::PoolSlot;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct JobMaster {
    me: NodeId,
    job_id: JobId,
    id: JobMasterId,
    graph_id: u64,
    config: FlinkConfig,
    bugs: Bugs,
    spec: Arc<JobSpec>,
    graph: JobGraph,
    /// Execution vertices of each pipelined region.
    regions: Vec<Vec<ExecutionVertexId>>,
    status: JobStatus,
    executions: BTreeMap<ExecutionVertexId, Execution>,
    /// Registered TaskExecutors and their session ids.
    task_managers: BTreeMap<NodeId, u64>,
    /// `registerTaskManager` calls waiting for the connection back to their TaskExecutor, by
    /// connection id.
    tm_connects: BTreeMap<u64, task_manager_registration::PendingRegistration>,
    slots: BTreeMap<AllocationId, PoolSlot>,
    /// Slot-sharing group (subtask index) → its slot.
    groups: BTreeMap<u32, AllocationId>,
    group_count: u32,
    declared_version: u64,
    declare_timer: Option<TimerId>,
    resource_manager: NodeId,
    source_log: Option<NodeId>,
    /// Per job vertex: what its tasks compute and where their output goes.
    stream_configs: Vec<Arc<StreamConfig>>,
    rm: Option<RmConnection>,
    next_attempt_id: u64,
    rm_heartbeats: HeartbeatManager,
    tm_heartbeats: HeartbeatManager,
    restart_strategy: RestartBackoffTimeStrategy,
    failover: FailoverStrategy,
    pending_restart: Option<PendingRestart>,
    restart_version: u64,
    slot_request_timer: Option<TimerId>,
    shut_down: bool,
    /// Present when checkpointing is enabled.
    coordinator: Option<CheckpointCoordinator>,
    /// What each execution vertex restores when it is deployed next.
    restores: BTreeMap<ExecutionVertexId, TaskRestore>,
    /// With high availability: the checkpoint this leader recovered the job from, until the
    /// first deployment uses it (`Some(None)`: recovered without a checkpoint).
    recovered: Option<Option<CheckpointId>>,
    /// Work for the `ha` store, carried out by the JobManager process.
    ha_calls: Vec<JobMasterHaCall>,
}

/// What a JobMaster asks of the `ha` store (through its process's HA client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobMasterHaCall {
    /// `CheckpointIDCounter.getAndIncrement()`; answered by [`JobMaster::on_checkpoint_id`].
    NextCheckpointId,
    /// A CompletedCheckpointStore change; an awaited add is answered by
    /// [`JobMaster::on_pointer_written`].
    Pointer(PointerOp),
}

impl JobMaster {
    pub fn new(
        ctx: &mut Ctx<'_, Flink>,
        me: NodeId,
        job_id: JobId,
        spec: Arc<JobSpec>,
        setup: &ClusterSetup,
    ) -> JobMaster {
        let (graph, regions, group_count) = Self::graph_of(&spec, &setup.config);
        let id = ctx.rng().random::<u64>();
        Self::build(
            ctx,
            me,
            job_id,
            spec,
            setup,
            id,
            graph,
            regions,
            group_count,
        )
    }

    /// A JobMaster of a leader with high availability: its JobMasterId is the leader session id
    /// (`token`), its ResourceManager is the leader's own, checkpoint ids come from the `ha`
    /// store's counter, and it starts from `recovered`, the newest checkpoint of the
    /// CompletedCheckpointStore (when `recovering`: a job from the ExecutionPlanStore).
    #[allow(clippy::too_many_arguments)]
    pub fn new_leader(
        ctx: &mut Ctx<'_, Flink>,
        me: NodeId,
        job_id: JobId,
        spec: Arc<JobSpec>,
        setup: &ClusterSetup,
        token: u64,
        recovered: Option<CompletedCheckpoint>,
        recovering: bool,
    ) -> JobMaster {
        // Only a recovered job starts from a checkpoint.
        assert!(recovering || recovered.is_none());
        let (graph, regions, group_count) = Self::graph_of(&spec, &setup.config);
        let mut jm = Self::build(
            ctx,
            me,
            job_id,
            spec,
            setup,
            token,
            graph,
            regions,
            group_count,
        );
        jm.resource_manager = me;
        jm.recovered = recovering.then(|| recovered.as_ref().map(|c| c.id));
        let ha = HaCheckpointing {
            external_ids: !setup.bugs.has(Bug::CheckpointIdCounterNotPersisted),
            pointer_before_notify: !setup.bugs.has(Bug::RecoverFromStaleCheckpointPointer),
        };
        if let Some(c) = jm.coordinator.take() {
            jm.coordinator = Some(c.with_ha(ha, recovered));
        }
        // The fencing token is the leader session id.
        assert_eq!(jm.id(), token);
        jm
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        ctx: &mut Ctx<'_, Flink>,
        me: NodeId,
        job_id: JobId,
        spec: Arc<JobSpec>,
        setup: &ClusterSetup,
        id: JobMasterId,
        graph: JobGraph,
        regions: Vec<Vec<ExecutionVertexId>>,
        group_count: u32,
    ) -> JobMaster {
        let config = setup.config.clone();
        let stream_configs = stream_configs(&graph, &spec, &setup.config, &setup.topology);
        let graph_id = ctx.rng().random::<u64>();
        let bugs = setup.bugs;
        assert_eq!(stream_configs.len(), graph.vertices.len());
        JobMaster {
            me,
            job_id,
            id,
            graph_id,
            rm_heartbeats: HeartbeatManager::for_job(
                HeartbeatPair::ResourceManagerJobMaster,
                Role::Receiver,
                Endpoint::JobMaster(me, job_id),
                Some(job_id),
                &config,
                bugs,
            ),
            tm_heartbeats: HeartbeatManager::for_job(
                HeartbeatPair::JobMasterTaskExecutor,
                Role::Sender,
                Endpoint::JobMaster(me, job_id),
                Some(job_id),
                &config,
                bugs,
            ),
            restart_strategy: RestartBackoffTimeStrategy::new(config.restart_strategy.clone()),
            failover: config.failover_strategy,
            config,
            bugs,
            spec,
            graph,
            regions,
            status: JobStatus::Initializing,
            executions: BTreeMap::new(),
            task_managers: BTreeMap::new(),
            tm_connects: BTreeMap::new(),
            slots: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_count,
            declared_version: 0,
            declare_timer: None,
            resource_manager: setup.topology.jobmanagers[0],
            source_log: setup.topology.source_log,
            stream_configs,
            coordinator: setup.config.checkpointing.map(|c| {
                CheckpointCoordinator::new(job_id, c, setup.bugs, setup.topology.checkpoint_storage)
            }),
            restores: BTreeMap::new(),
            recovered: None,
            ha_calls: Vec::new(),
            rm: None,
            next_attempt_id: 0,
            pending_restart: None,
            restart_version: 0,
            slot_request_timer: None,
            shut_down: false,
        }
    }

    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// The JobMasterId (fencing token).
    pub fn id(&self) -> JobMasterId {
        self.id
    }

    /// Leadership was revoked (`JobMasterServiceProcess.closeAsync`): the job is SUSPENDED
    /// here, its tasks are cancelled and its TaskExecutors disconnected. The process drops
    /// this JobMaster (with every timer) right after; a new leader recovers the job.
    pub fn suspend(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if self.shut_down {
            return;
        }
        if self.status.can_transition_to(JobStatus::Suspended) {
            self.set_status(ctx, JobStatus::Suspended);
        }
        if let Some(c) = self.coordinator.as_mut() {
            c.suspend(ctx);
        }
        // A suspended job triggers no more checkpoints.
        assert!(!self
            .coordinator
            .as_ref()
            .is_some_and(|c| c.is_scheduler_running()));
        for e in self.executions.values() {
            if let Some((_, tm)) = e.slot {
                if e.submitted && !e.state.is_terminal() {
                    ctx.send(
                        tm,
                        Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt: e.attempt }),
                    );
                }
            }
        }
        for tm in self.task_managers.keys() {
            ctx.send(
                *tm,
                Msg::TaskExecutor(TaskExecutorRpc::DisconnectJobManager {
                    job_id: self.job_id,
                    cause: DisconnectCause::Reconnect,
                }),
            );
        }
        self.shut_down = true;
    }

    pub fn status(&self) -> JobStatus {
        self.status
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    pub fn owns_attempt(&self, attempt: &ExecutionAttemptId) -> bool {
        attempt.graph == self.graph_id
    }

    /// `startJobExecution`: heartbeats, the RM connection, then scheduling.
    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert_eq!(
            self.status,
            JobStatus::Initializing,
            "a JobMaster starts once"
        );
        assert!(self.executions.is_empty() && self.slots.is_empty() && self.rm.is_none());
        self.set_status(ctx, JobStatus::Created);
        for ev in self.graph.execution_vertices() {
            let attempt = ExecutionAttemptId {
                graph: self.graph_id,
                vertex: ev,
                attempt: 0,
            };
            self.executions.insert(
                ev,
                Execution {
                    attempt,
                    state: ExecutionState::Created,
                    slot: None,
                    submitted: false,
                    submit_timer: None,
                    cancel_timer: None,
                },
            );
            ctx.trace(Obs::ExecutionCreated {
                job_id: self.job_id,
                attempt,
            });
        }
        if self.recovered.is_some() {
            // A new leader restores the newest checkpoint of the CompletedCheckpointStore.
            if let Some(c) = &self.coordinator {
                let checkpoint = c.checkpoint_to_restore().cloned();
                ctx.trace(Obs::RestoreDecided {
                    job_id: self.job_id,
                    checkpoint_id: checkpoint.as_ref().map(|c| c.id),
                    vertices: self.executions.len() as u32,
                    global: true,
                });
                if let Some(cp) = checkpoint {
                    let all: Vec<ExecutionVertexId> = self.executions.keys().copied().collect();
                    for ev in all {
                        self.restores.insert(ev, assign_state(&self.graph, &cp, ev));
                    }
                }
            }
        }
        self.tm_heartbeats.start(ctx);
        self.connect_to_resource_manager(ctx);
        ctx.set_timer(
            self.config.slot_idle_timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::SlotIdleCheck,
            },
        );
        // startScheduling: CREATED -> RUNNING, then every region is scheduled.
        self.set_status(ctx, JobStatus::Running);
        let all: Vec<ExecutionVertexId> = self.executions.keys().copied().collect();
        assert_eq!(all.len(), self.graph.execution_vertices().len());
        self.schedule(ctx, &all);
    }

    /// The job is globally terminal: release everything and stop.
    fn shut_down(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert!(self.status.is_globally_terminal());
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::DisconnectJobManager {
                job_id: self.job_id,
                job_master_id: self.id,
                terminal: true,
            }),
        );
        let slots: Vec<AllocationId> = self.slots.keys().copied().collect();
        for allocation_id in slots {
            self.release_slot(ctx, allocation_id, true);
        }
        let tms: Vec<NodeId> = self.task_managers.keys().copied().collect();
        for tm in tms {
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::DisconnectJobManager {
                    job_id: self.job_id,
                    cause: DisconnectCause::JobFinished,
                }),
            );
        }
        assert!(self.groups.is_empty() || self.bugs.has(Bug::SlotDoubleAllocation));
        self.task_managers.clear();
        self.tm_heartbeats.unmonitor_all(ctx);
        self.rm_heartbeats.unmonitor_all(ctx);
        if let Some(RmConnection::Registering(mut r)) = self.rm.take() {
            r.cancel(ctx);
        }
        for t in [self.declare_timer.take(), self.slot_request_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_timer(t);
        }
        assert!(!self
            .coordinator
            .as_ref()
            .is_some_and(|c| c.is_scheduler_running()));
        self.shut_down = true;
    }

    // ------------------------------------------------------------------------------------
    // RPCs
    // ------------------------------------------------------------------------------------

    /// Answers a JobMaster RPC for a job that has no JobMaster here.
    pub fn answer_unknown_job(
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        rpc: JobMasterRpc,
    ) {
        match rpc {
            JobMasterRpc::RegisterTaskManager { attempt_id, .. } => ctx.send(
                from,
                Msg::TaskExecutor(TaskExecutorRpc::RegisterTaskManagerResponse {
                    job_id,
                    attempt_id,
                    response: TaskManagerRegistration::Rejection,
                }),
            ),
            JobMasterRpc::UpdateTaskExecutionState { attempt, .. } => ctx.send(
                from,
                Msg::TaskExecutor(TaskExecutorRpc::UpdateTaskExecutionStateResponse {
                    attempt,
                    ok: false,
                }),
            ),
            JobMasterRpc::OfferSlots {
                job_master_id,
                offer_id,
                ..
            } => ctx.send(
                from,
                Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                    job_id,
                    job_master_id,
                    offer_id,
                    accepted: Vec::new(),
                }),
            ),
            _ => {}
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: JobMasterRpc) {
        if self.shut_down {
            Self::answer_unknown_job(ctx, from, self.job_id, rpc);
            return;
        }
        match rpc {
            JobMasterRpc::AcknowledgeCheckpoint {
                attempt,
                checkpoint_id,
                handle,
            } => self.on_acknowledge_checkpoint(ctx, attempt, checkpoint_id, handle),
            JobMasterRpc::DeclineCheckpoint {
                checkpoint_id,
                reason,
                ..
            } => self.on_decline_checkpoint(ctx, checkpoint_id, reason),
            JobMasterRpc::RegisterTaskManager {
                session_id,
                attempt_id,
            } => self.on_register_task_manager(ctx, from, session_id, attempt_id),
            JobMasterRpc::OfferSlots {
                job_master_id,
                offers,
                offer_id,
            } => self.on_offer_slots(ctx, from, job_master_id, offers, offer_id),
            JobMasterRpc::UpdateTaskExecutionState {
                job_master_id,
                attempt,
                state,
                ..
            } => self.on_update_task_execution_state(ctx, from, job_master_id, attempt, state),
            JobMasterRpc::HeartbeatFromTaskManager { deployed } => {
                self.on_heartbeat_from_task_manager(ctx, from, &deployed)
            }
            JobMasterRpc::HeartbeatFromResourceManager => {
                self.on_heartbeat_from_resource_manager(ctx, from)
            }
            JobMasterRpc::FailSlot { allocation_id } => self.on_fail_slot(ctx, from, allocation_id),
            JobMasterRpc::DisconnectTaskManager { resource_id, .. } => {
                self.disconnect_task_manager(ctx, resource_id, Some(LossCause::Disconnect), false);
            }
            JobMasterRpc::DisconnectResourceManager { .. } => {
                self.on_disconnect_resource_manager(ctx, from)
            }
            JobMasterRpc::RegisterJobMasterResponse {
                attempt_id,
                response,
            } => self.on_register_job_master_response(ctx, attempt_id, response),
            JobMasterRpc::DeclareRequiredResourcesResponse { version } => {
                self.on_declare_required_resources_response(ctx, version)
            }
            JobMasterRpc::SubmitTaskResponse { attempt, ok } => {
                self.on_submit_task_response(ctx, attempt, ok)
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Timers and unreachable targets
    // ------------------------------------------------------------------------------------

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: JobMasterTimer) {
        if self.shut_down {
            return;
        }
        match tag {
            JobMasterTimer::TaskManagerHeartbeat(HeartbeatTimer::Tick) => {
                self.on_task_manager_heartbeat_tick(ctx)
            }
            JobMasterTimer::TaskManagerHeartbeat(HeartbeatTimer::Timeout { target }) => {
                self.on_task_manager_heartbeat_timeout(ctx, timer, target)
            }
            JobMasterTimer::ResourceManagerHeartbeatTimeout { target } => {
                self.on_resource_manager_heartbeat_timeout(ctx, timer, target)
            }
            JobMasterTimer::ResourceManagerRegistration(RegistrationTimer::AttemptTimeout {
                attempt_id,
            }) => self.on_registration_attempt_timeout(ctx, attempt_id),
            JobMasterTimer::ResourceManagerRegistration(RegistrationTimer::Retry {
                attempt_id,
            }) => self.on_registration_retry(ctx, attempt_id),
            JobMasterTimer::CheckpointTrigger { version } => {
                self.on_checkpoint_trigger(ctx, version)
            }
            JobMasterTimer::CheckpointTimeout { checkpoint_id } => {
                self.on_checkpoint_timeout(ctx, checkpoint_id)
            }
            JobMasterTimer::RestartDelay { version } => self.on_restart_delay(ctx, version),
            JobMasterTimer::SlotRequestTimeout { .. } => self.on_slot_request_timeout(ctx, timer),
            JobMasterTimer::SlotIdleCheck => self.on_slot_idle_check(ctx),
            JobMasterTimer::DeclareResourcesRetry { version } => {
                self.on_declare_resources_retry(ctx, timer, version)
            }
            JobMasterTimer::SubmitTaskTimeout { attempt } => {
                self.on_submit_task_timeout(ctx, timer, attempt)
            }
            JobMasterTimer::CancelTaskRetry { attempt } => {
                self.on_cancel_task_retry(ctx, timer, attempt)
            }
        }
    }

    /// The answer to a gateway connection this JobMaster opened.
    pub fn on_connect_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        purpose: ConnectPurpose,
        connect_id: u64,
        found: bool,
    ) {
        if self.shut_down {
            return;
        }
        match purpose {
            ConnectPurpose::Registration(_) => {
                self.on_resource_manager_connected(ctx, connect_id, found)
            }
            ConnectPurpose::JobMasterToTaskExecutor(_) => {
                self.on_task_manager_connected(ctx, from, connect_id, found)
            }
            _ => {}
        }
    }

    /// An RPC of this JobMaster found `to` down. The process reports only the RPCs that name the
    /// job; of these, a heartbeat request, `submitTask`, `registerJobMaster` and the
    /// connections it opens are acted on.
    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        if self.shut_down {
            return;
        }
        match msg {
            Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager { .. })
                if self.tm_heartbeats.report_rpc_failure(to) =>
            {
                self.disconnect_task_manager(ctx, to, Some(LossCause::Unreachable), true);
            }
            Msg::Connect {
                purpose: ConnectPurpose::Registration(_),
                connect_id,
            } => self.on_resource_manager_connected(ctx, *connect_id, false),
            Msg::Connect {
                purpose: ConnectPurpose::JobMasterToTaskExecutor(_),
                connect_id,
            } => self.on_task_manager_connected(ctx, to, *connect_id, false),
            Msg::ResourceManager(ResourceManagerRpc::RegisterJobMaster { attempt_id, .. }) => {
                if let Some(RmConnection::Registering(reg)) = self.rm.as_mut() {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            Msg::TaskExecutor(TaskExecutorRpc::SubmitTask { tdd, .. }) => {
                let ev = tdd.attempt.vertex;
                if self
                    .executions
                    .get(&ev)
                    .is_some_and(|e| e.attempt == tdd.attempt)
                {
                    self.fail_execution(ctx, ev);
                }
            }
            _ => {}
        }
    }
}
