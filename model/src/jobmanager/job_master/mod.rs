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

pub mod checkpoint_coordinator;
pub mod failover_strategy;
pub mod restart_strategy;

use crate::checking::bugs::{Bug, Bugs};
use crate::jobmanager::job_master::checkpoint_coordinator::{
    assign_state, CheckpointCoordinator, HaCheckpointing, Outcome, Plan, PointerOp,
};
use crate::jobmanager::job_master::failover_strategy::FailoverStrategy;
use crate::jobmanager::job_master::restart_strategy::RestartBackoffTimeStrategy;
use crate::process::ClusterSetup;
use crate::protocol::checkpoint::CompletedCheckpoint;
use crate::protocol::checkpoint::{CheckpointId, TaskRestore};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId, JobMasterId};
use crate::protocol::job_graph::{ExecutionVertexId, JobGraph, JobSpec, Partitioner};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    ChainedOperator, DisconnectCause, InputChannel, JobMasterRegistration, JobMasterRpc, Msg,
    OutputConfig, ResourceManagerRpc, SlotOffer, SourceAssignment, StreamConfig,
    TaskDeploymentDescriptor, TaskExecutorRpc, TaskManagerRegistration,
};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::timer::HeartbeatPair;
use crate::protocol::timer::RegistrationTarget;
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use crate::services::registration::RetryingRegistration;
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The JobMaster's `Execution`: the current attempt of one ExecutionVertex.
#[derive(Debug)]
struct Execution {
    attempt: ExecutionAttemptId,
    state: ExecutionState,
    /// The slot it was deployed into, and that slot's TaskExecutor.
    slot: Option<(AllocationId, NodeId)>,
    /// `submitTask` was acknowledged (before that, a missing report means nothing).
    submitted: bool,
    submit_timer: Option<TimerId>,
    cancel_timer: Option<TimerId>,
}

/// A slot in the pool.
#[derive(Debug)]
struct PoolSlot {
    task_manager: NodeId,
    /// The slot-sharing group (subtask index) it serves, if any.
    group: Option<u32>,
    /// Since when it serves no group (local monotonic ns).
    idle_since_ns: u64,
}

#[derive(Debug)]
struct PendingRestart {
    version: u64,
    vertices: BTreeSet<ExecutionVertexId>,
    delay_passed: bool,
}

#[derive(Debug)]
enum RmConnection {
    Registering(RetryingRegistration),
    Connected,
}

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
        jm
    }

    fn graph_of(
        spec: &JobSpec,
        config: &FlinkConfig,
    ) -> (JobGraph, Vec<Vec<ExecutionVertexId>>, u32) {
        let mut spec_resolved = spec.clone();
        if spec_resolved.max_parallelism.is_none() {
            spec_resolved.max_parallelism = config.max_parallelism;
        }
        let graph =
            JobGraph::from_spec(&spec_resolved).expect("job spec validated by the scenario");
        let regions = graph
            .pipelined_regions()
            .into_iter()
            .map(|r| r.vertices)
            .collect();
        let group_count = graph
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        (graph, regions, group_count)
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

    /// The work this JobMaster has for the `ha` store since the last call.
    pub fn take_ha_calls(&mut self) -> Vec<JobMasterHaCall> {
        let mut calls = std::mem::take(&mut self.ha_calls);
        if let Some(c) = self.coordinator.as_mut() {
            calls.extend(
                c.take_pointer_ops()
                    .into_iter()
                    .map(JobMasterHaCall::Pointer),
            );
        }
        calls
    }

    /// The `ha` store's checkpoint id counter answered (`None`: it failed).
    pub fn on_checkpoint_id(&mut self, ctx: &mut Ctx<'_, Flink>, id: Option<CheckpointId>) {
        let plan = self.checkpoint_plan();
        if let Some(c) = self.coordinator.as_mut() {
            c.on_checkpoint_id(ctx, id, plan);
        }
    }

    /// The pointer of checkpoint `id` was written to the `ha` store (`Some(true)`), was
    /// certainly not (`Some(false)`), or its fate is unknown (`None`: the session was lost
    /// with the write in flight). An unknown write keeps the checkpoint finalizing — neither
    /// completed nor discarded, and no restore happens meanwhile (cf. FLINK-22494's
    /// `PossibleInconsistentStateException`); losing the session revokes leadership anyway.
    pub fn on_pointer_written(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        id: CheckpointId,
        written: Option<bool>,
    ) {
        let Some(ok) = written else {
            return;
        };
        if let Some(c) = self.coordinator.as_mut() {
            let outcome = c.on_pointer_written(ctx, id, ok);
            self.on_checkpoint_outcome(ctx, outcome);
        }
        self.try_restart(ctx);
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

    pub fn owns_allocation(&self, allocation_id: AllocationId) -> bool {
        self.slots.contains_key(&allocation_id)
    }

    /// `startJobExecution`: heartbeats, the RM connection, then scheduling.
    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
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
            Timer::SlotIdleCheck {
                job_id: self.job_id,
            },
        );
        // startScheduling: CREATED -> RUNNING, then every region is scheduled.
        self.set_status(ctx, JobStatus::Running);
        let all: Vec<ExecutionVertexId> = self.executions.keys().copied().collect();
        self.schedule(ctx, &all);
    }

    // ------------------------------------------------------------------------------------
    // State changes
    // ------------------------------------------------------------------------------------

    fn set_status(&mut self, ctx: &mut Ctx<'_, Flink>, to: JobStatus) {
        let from = self.status;
        if from == to {
            return;
        }
        if from != JobStatus::Initializing {
            assert!(from.can_transition_to(to), "JobStatus {from:?} -> {to:?}");
        }
        self.status = to;
        ctx.trace(Obs::JobStatusChanged {
            job_id: self.job_id,
            job_master_id: self.id,
            from: (from != JobStatus::Initializing).then_some(from),
            to,
        });
        // CheckpointCoordinatorDeActivator: the periodic trigger runs while the job RUNs.
        if let Some(c) = self.coordinator.as_mut() {
            if to == JobStatus::Running {
                c.start_scheduler(ctx);
            } else {
                c.stop_scheduler(ctx);
            }
        }
    }

    fn transition(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId, to: ExecutionState) {
        let e = self.executions.get_mut(&ev).expect("known vertex");
        let from = e.state;
        assert!(
            from.can_transition_to(to),
            "ExecutionState {from:?} -> {to:?} of {ev:?}"
        );
        e.state = to;
        if to.is_terminal() {
            if let Some(t) = e.submit_timer.take() {
                ctx.cancel_timer(t);
            }
            if let Some(t) = e.cancel_timer.take() {
                ctx.cancel_timer(t);
            }
        }
        ctx.trace(Obs::ExecutionStateChanged {
            attempt: e.attempt,
            from,
            to,
        });
    }

    // ------------------------------------------------------------------------------------
    // Scheduling and deployment
    // ------------------------------------------------------------------------------------

    /// Moves `vertices` from CREATED to SCHEDULED and tries to deploy.
    fn schedule(&mut self, ctx: &mut Ctx<'_, Flink>, vertices: &[ExecutionVertexId]) {
        for ev in vertices {
            if self.executions[ev].state == ExecutionState::Created {
                self.transition(ctx, *ev, ExecutionState::Scheduled);
            }
        }
        self.declare_required_resources(ctx);
        self.assign_slots_and_deploy(ctx);
    }

    /// Gives free pool slots to sharing groups that wait, then deploys every region whose
    /// executions are all SCHEDULED with a slot (Flink deploys a region's bulk at once).
    fn assign_slots_and_deploy(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if self.shut_down || self.status != JobStatus::Running {
            return;
        }
        let waiting: BTreeSet<u32> = self
            .executions
            .iter()
            .filter(|(_, e)| e.state == ExecutionState::Scheduled)
            .map(|(ev, _)| ev.subtask)
            .filter(|g| !self.groups.contains_key(g))
            .collect();
        // Planted bug: without the occupancy check a busy slot is handed to a second group.
        let unchecked = self.bugs.has(Bug::SlotDoubleAllocation);
        // Each waiting group takes the first free slot (in allocation order), found in one pass.
        let mut free = self
            .slots
            .iter()
            .filter(|(_, s)| s.group.is_none())
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
            .into_iter();
        let first = self.slots.keys().next().copied();
        for g in waiting {
            let next = if unchecked { first } else { free.next() };
            let Some(allocation_id) = next else { break };
            self.slots.get_mut(&allocation_id).expect("found").group = Some(g);
            self.groups.insert(g, allocation_id);
        }
        for r in 0..self.regions.len() {
            let ready = self.regions[r].iter().all(|ev| {
                self.executions[ev].state == ExecutionState::Scheduled
                    && self.groups.contains_key(&ev.subtask)
            });
            if ready {
                let region = self.regions[r].clone();
                for ev in &region {
                    self.deploy(ctx, *ev);
                }
            }
        }
        self.update_slot_request_timer(ctx);
    }

    fn deploy(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let allocation_id = self.groups[&ev.subtask];
        let task_manager = self.slots[&allocation_id].task_manager;
        self.transition(ctx, ev, ExecutionState::Deploying);
        let attempt = self.executions[&ev].attempt;
        ctx.trace(Obs::ExecutionDeployed {
            attempt,
            task_manager,
            allocation_id,
        });
        let vertex = self.graph.vertex(ev.vertex);
        let log = self.source_log;
        let source = vertex.is_source.then(|| SourceAssignment {
            log: log.expect("a job runs with a source log node"),
            partitions: (ev.subtask..self.spec.source.partitions)
                .step_by(vertex.parallelism as usize)
                .collect(),
            records_per_partition: self.spec.source.records,
            rate_per_sec: self.spec.source.rate_per_sec,
        });
        let inputs = self
            .graph
            .inputs(ev)
            .into_iter()
            .map(|producer| {
                let p = &self.executions[&producer];
                let tm = self.slots[&self.groups[&producer.subtask]].task_manager;
                InputChannel {
                    producer: p.attempt,
                    task_manager: tm,
                }
            })
            .collect();
        let tdd = TaskDeploymentDescriptor {
            job_id: self.job_id,
            attempt,
            allocation_id,
            task_name: format!(
                "{} ({}/{})#{}",
                vertex.name,
                ev.subtask + 1,
                vertex.parallelism,
                attempt.attempt
            ),
            source,
            inputs,
            stream: Arc::clone(&self.stream_configs[ev.vertex.0 as usize]),
            subtask: ev.subtask,
            restore: self.restores.get(&ev).cloned(),
        };
        let timer = ctx.set_timer(
            self.config.ask_timeout,
            Timer::SubmitTaskTimeout {
                job_id: self.job_id,
                attempt,
            },
        );
        let e = self.executions.get_mut(&ev).expect("known");
        e.slot = Some((allocation_id, task_manager));
        e.submitted = false;
        e.submit_timer = Some(timer);
        ctx.send(
            task_manager,
            Msg::TaskExecutor(TaskExecutorRpc::SubmitTask {
                tdd: Box::new(tdd),
                job_master_id: self.id,
            }),
        );
    }

    /// `slot.request.timeout` runs while some scheduled execution has no slot.
    fn update_slot_request_timer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let waiting = self.executions.iter().any(|(ev, e)| {
            e.state == ExecutionState::Scheduled && !self.groups.contains_key(&ev.subtask)
        });
        match (waiting, self.slot_request_timer) {
            (true, None) => {
                self.slot_request_timer = Some(ctx.set_timer(
                    self.config.slot_request_timeout,
                    Timer::SlotRequestTimeout {
                        job_id: self.job_id,
                        version: 0,
                    },
                ));
            }
            (false, Some(t)) => {
                ctx.cancel_timer(t);
                self.slot_request_timer = None;
            }
            _ => {}
        }
    }

    fn required_slots(&self) -> u32 {
        if self.shut_down || self.status.is_terminal() || self.status == JobStatus::Failing {
            0
        } else {
            self.group_count
        }
    }

    /// Sends the full requirement to the RM (re-sent until acknowledged).
    fn declare_required_resources(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if !matches!(self.rm, Some(RmConnection::Connected)) {
            return; // declared after the connection is established
        }
        self.declared_version += 1;
        let version = self.declared_version;
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::DeclareRequiredResources {
                job_id: self.job_id,
                job_master_id: self.id,
                slots: self.required_slots(),
                version,
            }),
        );
        if let Some(t) = self.declare_timer.take() {
            ctx.cancel_timer(t);
        }
        self.declare_timer = Some(ctx.set_timer(
            self.config.ask_timeout,
            Timer::DeclareResourcesRetry {
                job_id: self.job_id,
                version,
            },
        ));
    }

    // ------------------------------------------------------------------------------------
    // Failures, failover and restarts
    // ------------------------------------------------------------------------------------

    /// An execution failed (already marked FAILED): ask the restart strategy, then restart the
    /// failover strategy's vertices after the backoff, or fail the job.
    fn handle_task_failure(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        if matches!(self.status, JobStatus::Failing) || self.status.is_terminal() {
            self.check_terminal(ctx);
            return;
        }
        let vertices = self.failover.tasks_to_restart(&self.graph, ev);
        self.handle_failure(ctx, vertices);
    }

    /// Asks the restart strategy; restarts `vertices` after its backoff or fails the job.
    fn handle_failure(&mut self, ctx: &mut Ctx<'_, Flink>, vertices: BTreeSet<ExecutionVertexId>) {
        if matches!(self.status, JobStatus::Failing) || self.status.is_terminal() {
            return;
        }
        let now = Duration::from_nanos(ctx.mono_ns());
        self.restart_strategy.notify_failure(now, ctx.rng());
        let allowed =
            self.restart_strategy.can_restart() || self.bugs.has(Bug::RestartBudgetNotEnforced);
        if !allowed {
            ctx.trace(Obs::RestartRefused {
                job_id: self.job_id,
            });
            self.fail_job(ctx);
            return;
        }
        let backoff = self.restart_strategy.backoff_time();
        self.restart_tasks_with_delay(ctx, vertices, backoff);
    }

    fn restart_tasks_with_delay(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        vertices: BTreeSet<ExecutionVertexId>,
        backoff: Duration,
    ) {
        self.restart_version += 1;
        let version = self.restart_version;
        let mut all = vertices;
        if let Some(p) = self.pending_restart.take() {
            all.extend(p.vertices);
        }
        ctx.trace(Obs::RestartScheduled {
            job_id: self.job_id,
            vertices: all.len() as u32,
            backoff_ms: backoff.as_millis() as u64,
            global: all.len() == self.executions.len(),
        });
        if self.status == JobStatus::Running {
            self.set_status(ctx, JobStatus::Restarting);
        }
        for ev in &all {
            self.cancel_execution(ctx, *ev);
        }
        self.pending_restart = Some(PendingRestart {
            version,
            vertices: all,
            delay_passed: false,
        });
        ctx.set_timer(
            backoff,
            Timer::RestartDelay {
                job_id: self.job_id,
                version,
            },
        );
    }

    fn cancel_execution(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let state = self.executions[&ev].state;
        match state {
            ExecutionState::Created | ExecutionState::Scheduled => {
                self.transition(ctx, ev, ExecutionState::Canceled)
            }
            ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running => {
                self.transition(ctx, ev, ExecutionState::Canceling);
                self.send_cancel(ctx, ev);
            }
            _ => {}
        }
    }

    fn send_cancel(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let e = &self.executions[&ev];
        let attempt = e.attempt;
        let Some((_, tm)) = e.slot else { return };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt }),
        );
        let timer = ctx.set_timer(
            self.config.ask_timeout,
            Timer::CancelTaskRetry {
                job_id: self.job_id,
                attempt,
            },
        );
        if let Some(old) = self
            .executions
            .get_mut(&ev)
            .expect("known")
            .cancel_timer
            .replace(timer)
        {
            ctx.cancel_timer(old);
        }
    }

    /// After the backoff and once every vertex to restart is terminal, new attempts start.
    fn try_restart(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let Some(p) = &self.pending_restart else {
            return;
        };
        if self.coordinator.as_ref().is_some_and(|c| c.is_finalizing()) {
            return; // the latest checkpoint is not settled yet
        }
        if !p.delay_passed {
            return;
        }
        if !p
            .vertices
            .iter()
            .all(|ev| self.executions[ev].state.is_terminal())
        {
            return;
        }
        let vertices: Vec<ExecutionVertexId> = p.vertices.iter().copied().collect();
        self.pending_restart = None;
        // Restore from the latest completed checkpoint (docs/flink-runtime.md §6.4, §7.7).
        if let Some(c) = &self.coordinator {
            let checkpoint = c.checkpoint_to_restore().cloned();
            ctx.trace(Obs::RestoreDecided {
                job_id: self.job_id,
                checkpoint_id: checkpoint.as_ref().map(|c| c.id),
                vertices: vertices.len() as u32,
                global: vertices.len() == self.executions.len(),
            });
            for ev in &vertices {
                match &checkpoint {
                    Some(cp) => {
                        self.restores
                            .insert(*ev, assign_state(&self.graph, cp, *ev));
                    }
                    None => {
                        self.restores.remove(ev);
                    }
                }
            }
        }
        for ev in &vertices {
            let e = self.executions.get_mut(ev).expect("known");
            let attempt = ExecutionAttemptId {
                attempt: e.attempt.attempt + 1,
                ..e.attempt
            };
            *e = Execution {
                attempt,
                state: ExecutionState::Created,
                slot: None,
                submitted: false,
                submit_timer: None,
                cancel_timer: None,
            };
            ctx.trace(Obs::ExecutionCreated {
                job_id: self.job_id,
                attempt,
            });
        }
        if self.status == JobStatus::Restarting {
            self.set_status(ctx, JobStatus::Running);
        }
        self.schedule(ctx, &vertices);
    }

    /// The restart strategy refused: FAILING, cancel everything, FAILED once all is terminal.
    fn fail_job(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.pending_restart = None;
        self.set_status(ctx, JobStatus::Failing);
        let all: Vec<ExecutionVertexId> = self.executions.keys().copied().collect();
        for ev in all {
            self.cancel_execution(ctx, ev);
        }
        self.declare_required_resources(ctx);
        self.check_terminal(ctx);
    }

    /// FINISHED when every execution finished; FAILED when failing and all are terminal.
    fn check_terminal(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let all_terminal = self.executions.values().all(|e| e.state.is_terminal());
        match self.status {
            JobStatus::Running
                if self
                    .executions
                    .values()
                    .all(|e| e.state == ExecutionState::Finished) =>
            {
                self.set_status(ctx, JobStatus::Finished);
                self.shut_down(ctx);
            }
            JobStatus::Failing if all_terminal => {
                self.set_status(ctx, JobStatus::Failed);
                self.shut_down(ctx);
            }
            _ => {}
        }
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
        self.shut_down = true;
    }

    /// Removes a slot from the pool; with `free`, tells its TaskExecutor to free it.
    fn release_slot(&mut self, ctx: &mut Ctx<'_, Flink>, allocation_id: AllocationId, free: bool) {
        let Some(slot) = self.slots.remove(&allocation_id) else {
            return;
        };
        if let Some(g) = slot.group {
            self.groups.remove(&g);
        }
        if free {
            ctx.send(
                slot.task_manager,
                Msg::TaskExecutor(TaskExecutorRpc::FreeSlot { allocation_id }),
            );
        }
        ctx.trace(Obs::SlotReleased {
            job_id: self.job_id,
            task_manager: slot.task_manager,
            allocation_id,
        });
    }

    /// The executions in `allocation_id` lost their slot: non-terminal ones fail (one at a
    /// time, so a failover started by the first cancels the others), cancelling ones complete.
    fn fail_executions_in_slot(&mut self, ctx: &mut Ctx<'_, Flink>, allocation_id: AllocationId) {
        let affected: Vec<ExecutionVertexId> = self
            .executions
            .iter()
            .filter(|(_, e)| e.slot.map(|s| s.0) == Some(allocation_id))
            .map(|(ev, _)| *ev)
            .collect();
        for ev in affected {
            match self.executions[&ev].state {
                ExecutionState::Canceling => self.transition(ctx, ev, ExecutionState::Canceled),
                s if !s.is_terminal() => {
                    self.transition(ctx, ev, ExecutionState::Failed);
                    self.handle_task_failure(ctx, ev);
                }
                _ => {}
            }
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }

    /// `disconnectTaskManager` / `releaseTaskManager`: the TaskExecutor's slots leave the pool
    /// and their executions fail.
    fn disconnect_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        cause: Option<LossCause>,
        notify: bool,
    ) {
        if !self.task_managers.contains_key(&tm) {
            return;
        }
        if let Some(cause) = cause {
            ctx.trace(Obs::TargetLost {
                observer: Endpoint::JobMaster(self.me, self.job_id),
                target: Endpoint::TaskExecutor(tm),
                cause,
            });
        }
        self.tm_heartbeats.unmonitor_target(ctx, tm);
        self.task_managers.remove(&tm);
        let lost: Vec<AllocationId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.task_manager == tm)
            .map(|(a, _)| *a)
            .collect();
        for allocation_id in lost {
            self.release_slot(ctx, allocation_id, false);
            if !self.bugs.has(Bug::TmLossNotFailingTasks) {
                self.fail_executions_in_slot(ctx, allocation_id);
            }
        }
        if notify {
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::DisconnectJobManager {
                    job_id: self.job_id,
                    cause: DisconnectCause::HeartbeatTimeout,
                }),
            );
        }
        self.assign_slots_and_deploy(ctx);
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
            } => {
                if let Some(c) = self.coordinator.as_mut() {
                    let outcome = c.on_acknowledge(ctx, attempt, checkpoint_id, handle);
                    self.on_checkpoint_outcome(ctx, outcome);
                }
            }
            JobMasterRpc::DeclineCheckpoint {
                checkpoint_id,
                reason,
                ..
            } => {
                if let Some(c) = self.coordinator.as_mut() {
                    let outcome = c.on_decline(ctx, checkpoint_id, reason);
                    self.on_checkpoint_outcome(ctx, outcome);
                }
            }
            JobMasterRpc::RegisterTaskManager {
                session_id,
                attempt_id,
            } => {
                match self.task_managers.get(&from) {
                    Some(s) if *s == session_id => {} // idempotent
                    Some(_) => {
                        // The TaskManager restarted: the old registration goes.
                        self.disconnect_task_manager(ctx, from, None, false);
                        self.register_task_manager(ctx, from, session_id);
                    }
                    None => self.register_task_manager(ctx, from, session_id),
                }
                ctx.send(
                    from,
                    Msg::TaskExecutor(TaskExecutorRpc::RegisterTaskManagerResponse {
                        job_id: self.job_id,
                        attempt_id,
                        response: TaskManagerRegistration::Success {
                            job_master_id: self.id,
                        },
                    }),
                );
            }
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
                if self.tm_heartbeats.report_heartbeat(ctx, from) {
                    self.reconcile_deployments(ctx, from, &deployed);
                }
            }
            JobMasterRpc::HeartbeatFromResourceManager => {
                if self.rm_heartbeats.report_heartbeat(ctx, from) {
                    ctx.send(
                        from,
                        Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromJobManager {
                            job_id: self.job_id,
                        }),
                    );
                }
            }
            JobMasterRpc::FailSlot { allocation_id } => {
                if self.slots.get(&allocation_id).map(|s| s.task_manager) == Some(from) {
                    self.release_slot(ctx, allocation_id, false);
                    self.fail_executions_in_slot(ctx, allocation_id);
                    self.assign_slots_and_deploy(ctx);
                }
            }
            JobMasterRpc::DisconnectTaskManager { resource_id, .. } => {
                self.disconnect_task_manager(ctx, resource_id, Some(LossCause::Disconnect), false);
            }
            JobMasterRpc::DisconnectResourceManager { .. } => {
                if from == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::Disconnect));
                }
            }
            JobMasterRpc::RegisterJobMasterResponse {
                attempt_id,
                response,
            } => self.on_register_job_master_response(ctx, attempt_id, response),
            JobMasterRpc::DeclareRequiredResourcesResponse { version } => {
                if version == self.declared_version {
                    if let Some(t) = self.declare_timer.take() {
                        ctx.cancel_timer(t);
                    }
                }
            }
            JobMasterRpc::SubmitTaskResponse { attempt, ok } => {
                let ev = attempt.vertex;
                let Some(e) = self.executions.get_mut(&ev) else {
                    return;
                };
                if e.attempt != attempt {
                    return;
                }
                if let Some(t) = e.submit_timer.take() {
                    ctx.cancel_timer(t);
                }
                if ok {
                    e.submitted = true;
                } else if !e.state.is_terminal() {
                    self.fail_execution(ctx, ev);
                }
            }
        }
    }

    fn register_task_manager(&mut self, ctx: &mut Ctx<'_, Flink>, tm: NodeId, session_id: u64) {
        self.task_managers.insert(tm, session_id);
        self.tm_heartbeats.monitor_target(ctx, tm);
    }

    fn on_offer_slots(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_master_id: JobMasterId,
        offers: Vec<SlotOffer>,
        offer_id: u64,
    ) {
        let mut accepted = Vec::new();
        if job_master_id == self.id && self.task_managers.contains_key(&from) {
            let now = ctx.mono_ns();
            for offer in &offers {
                let known = self.slots.contains_key(&offer.allocation_id);
                let wanted = (self.slots.len() as u32) < self.required_slots()
                    || self.status == JobStatus::Restarting;
                if known || wanted {
                    if !known {
                        self.slots.insert(
                            offer.allocation_id,
                            PoolSlot {
                                task_manager: from,
                                group: None,
                                idle_since_ns: now,
                            },
                        );
                    }
                    accepted.push(offer.allocation_id);
                }
            }
        }
        if !accepted.is_empty() {
            ctx.trace(Obs::SlotsAccepted {
                job_id: self.job_id,
                task_manager: from,
                allocations: accepted.clone(),
            });
        }
        ctx.send(
            from,
            Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                job_id: self.job_id,
                job_master_id,
                offer_id,
                accepted,
            }),
        );
        self.assign_slots_and_deploy(ctx);
    }

    fn on_update_task_execution_state(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_master_id: JobMasterId,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
    ) {
        let ev = attempt.vertex;
        // Stale-update fencing (docs/flink-runtime.md §4.2): only the current attempt of this graph counts.
        let current = job_master_id == self.id
            && self.executions.get(&ev).is_some_and(|e| {
                e.attempt == attempt
                    || (self.bugs.has(Bug::StaleAttemptUpdateAccepted)
                        && e.attempt.graph == attempt.graph)
            });
        ctx.send(
            from,
            Msg::TaskExecutor(TaskExecutorRpc::UpdateTaskExecutionStateResponse {
                attempt,
                ok: current,
            }),
        );
        if !current {
            return;
        }
        let now = self.executions[&ev].state;
        use ExecutionState as S;
        match (now, state) {
            (S::Deploying, S::Initializing) => self.transition(ctx, ev, S::Initializing),
            (S::Deploying, S::Running) => {
                self.transition(ctx, ev, S::Initializing);
                self.transition(ctx, ev, S::Running);
            }
            (S::Initializing, S::Running) => self.transition(ctx, ev, S::Running),
            (S::Deploying | S::Initializing | S::Running, S::Finished) => {
                self.transition(ctx, ev, S::Finished);
            }
            // A cancelling execution completes its cancellation on any terminal report.
            (S::Canceling, S::Finished | S::Canceled | S::Failed) => {
                self.transition(ctx, ev, S::Canceled)
            }
            // Failed, or cancelled without being asked: a failure.
            (S::Deploying | S::Initializing | S::Running, S::Failed | S::Canceled) => {
                self.transition(ctx, ev, S::Failed);
                self.handle_task_failure(ctx, ev);
            }
            _ => {} // late or duplicate reports are ignored
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }

    /// The JobMaster itself fails an execution (deployment failed or timed out, or the
    /// TaskExecutor no longer reports it). Like Flink's `Execution.processFail`, it also tells
    /// the TaskExecutor to cancel the task, so no live task survives its failed execution.
    fn fail_execution(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        match self.executions[&ev].state {
            ExecutionState::Canceling => self.transition(ctx, ev, ExecutionState::Canceled),
            s if s.is_terminal() => {}
            _ => {
                let e = &self.executions[&ev];
                if let Some((_, tm)) = e.slot {
                    let attempt = e.attempt;
                    ctx.send(
                        tm,
                        Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt }),
                    );
                }
                self.transition(ctx, ev, ExecutionState::Failed);
                self.handle_task_failure(ctx, ev);
            }
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }

    /// `DefaultExecutionDeploymentReconciler`: unknown attempts on the TaskExecutor are
    /// cancelled; expected ones it does not report are failed (missing).
    fn reconcile_deployments(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        deployed: &[ExecutionAttemptId],
    ) {
        for attempt in deployed {
            let known = self
                .executions
                .get(&attempt.vertex)
                .is_some_and(|e| e.attempt == *attempt && e.slot.map(|s| s.1) == Some(tm));
            if !known {
                ctx.send(
                    tm,
                    Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt: *attempt }),
                );
            }
        }
        let missing: Vec<ExecutionVertexId> = self
            .executions
            .iter()
            .filter(|(_, e)| {
                e.slot.map(|s| s.1) == Some(tm)
                    && e.submitted
                    && matches!(
                        e.state,
                        ExecutionState::Deploying
                            | ExecutionState::Initializing
                            | ExecutionState::Running
                            | ExecutionState::Canceling
                    )
                    && !deployed.contains(&e.attempt)
            })
            .map(|(ev, _)| *ev)
            .collect();
        for ev in missing {
            self.fail_execution(ctx, ev);
        }
    }

    // ------------------------------------------------------------------------------------
    // ResourceManager connection
    // ------------------------------------------------------------------------------------

    fn connect_to_resource_manager(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let (registration, attempt_id) = RetryingRegistration::start(
            RegistrationTarget::ResourceManagerForJob(self.job_id),
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.rm = Some(RmConnection::Registering(registration));
        self.send_registration(ctx, attempt_id);
    }

    fn send_registration(&self, ctx: &mut Ctx<'_, Flink>, attempt_id: u64) {
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::RegisterJobMaster {
                job_id: self.job_id,
                job_master_id: self.id,
                attempt_id,
            }),
        );
    }

    fn reconnect_to_resource_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        cause: Option<LossCause>,
    ) {
        if let Some(cause) = cause {
            if self.rm_heartbeats.is_monitored(self.resource_manager) {
                ctx.trace(Obs::TargetLost {
                    observer: Endpoint::JobMaster(self.me, self.job_id),
                    target: Endpoint::ResourceManager(self.resource_manager),
                    cause,
                });
            }
        }
        self.rm_heartbeats
            .unmonitor_target(ctx, self.resource_manager);
        if let Some(RmConnection::Registering(mut r)) = self.rm.take() {
            r.cancel(ctx);
        }
        self.connect_to_resource_manager(ctx);
    }

    fn on_register_job_master_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt_id: u64,
        response: JobMasterRegistration,
    ) {
        let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
            return;
        };
        if !reg.is_current(attempt_id) {
            return;
        }
        match response {
            JobMasterRegistration::Success { .. } => {
                reg.cancel(ctx);
                self.rm = Some(RmConnection::Connected);
                self.rm_heartbeats
                    .monitor_target(ctx, self.resource_manager);
                self.declare_required_resources(ctx);
            }
            JobMasterRegistration::Failure => {
                reg.on_declined(attempt_id, ctx);
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Timers and unreachable targets
    // ------------------------------------------------------------------------------------

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: Timer) {
        if self.shut_down {
            return;
        }
        match tag {
            Timer::HeartbeatTick {
                pair: HeartbeatPair::JobMasterTaskExecutor,
                ..
            } => {
                self.tm_heartbeats.on_tick(ctx);
                for tm in self.tm_heartbeats.targets() {
                    let allocated = self
                        .slots
                        .iter()
                        .filter(|(_, s)| s.task_manager == tm)
                        .map(|(a, _)| *a)
                        .collect();
                    ctx.send(
                        tm,
                        Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromJobManager {
                            job_id: self.job_id,
                            job_master_id: self.id,
                            allocated,
                        }),
                    );
                }
            }
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::JobMasterTaskExecutor,
                target,
                ..
            } => {
                if self.tm_heartbeats.on_timeout(timer, target)
                    && !self.bugs.has(Bug::HeartbeatTimeoutIgnored)
                {
                    self.disconnect_task_manager(
                        ctx,
                        target,
                        Some(LossCause::HeartbeatTimeout),
                        true,
                    );
                }
            }
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::ResourceManagerJobMaster,
                target,
                ..
            } => {
                if self.rm_heartbeats.on_timeout(timer, target)
                    && !self.bugs.has(Bug::HeartbeatTimeoutIgnored)
                {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::HeartbeatTimeout));
                }
            }
            Timer::RegistrationAttemptTimeout { attempt_id, .. } => {
                let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
                    return;
                };
                if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx)
                {
                    self.send_registration(ctx, id);
                }
            }
            Timer::RegistrationRetry { attempt_id, .. } => {
                let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    self.send_registration(ctx, id);
                }
            }
            Timer::CheckpointTrigger { version, .. } => {
                let plan = self.checkpoint_plan();
                if let Some(c) = self.coordinator.as_mut() {
                    if c.is_trigger(version) && c.on_trigger_timer(ctx, plan) {
                        self.ha_calls.push(JobMasterHaCall::NextCheckpointId);
                    }
                }
            }
            Timer::CheckpointTimeout { checkpoint_id, .. } => {
                if let Some(c) = self.coordinator.as_mut() {
                    let outcome = c.on_timeout(ctx, checkpoint_id);
                    self.on_checkpoint_outcome(ctx, outcome);
                }
            }
            Timer::RestartDelay { version, .. } => {
                if let Some(p) = self.pending_restart.as_mut() {
                    if p.version == version {
                        p.delay_passed = true;
                        self.try_restart(ctx);
                    }
                }
            }
            Timer::SlotRequestTimeout { .. } => {
                if self.slot_request_timer != Some(timer) {
                    return;
                }
                self.slot_request_timer = None;
                // NoResourceAvailableException: the slotless executions fail as one bulk.
                let slotless: Vec<ExecutionVertexId> = self
                    .executions
                    .iter()
                    .filter(|(ev, e)| {
                        e.state == ExecutionState::Scheduled
                            && !self.groups.contains_key(&ev.subtask)
                    })
                    .map(|(ev, _)| *ev)
                    .collect();
                if let Some(first) = slotless.first().copied() {
                    for ev in &slotless {
                        self.transition(ctx, *ev, ExecutionState::Failed);
                    }
                    self.handle_task_failure(ctx, first);
                    self.try_restart(ctx);
                    self.check_terminal(ctx);
                }
            }
            Timer::SlotIdleCheck { .. } => {
                ctx.set_timer(
                    self.config.slot_idle_timeout,
                    Timer::SlotIdleCheck {
                        job_id: self.job_id,
                    },
                );
                let now = ctx.mono_ns();
                let timeout = self.config.slot_idle_timeout.as_nanos() as u64;
                let required = self.required_slots() as usize;
                let idle: Vec<AllocationId> = self
                    .slots
                    .iter()
                    .filter(|(_, s)| {
                        s.group.is_none() && now.saturating_sub(s.idle_since_ns) >= timeout
                    })
                    .map(|(a, _)| *a)
                    .collect();
                for allocation_id in idle {
                    if self.slots.len() > required {
                        self.release_slot(ctx, allocation_id, true);
                    }
                }
            }
            Timer::DeclareResourcesRetry { version, .. } => {
                if version == self.declared_version && self.declare_timer == Some(timer) {
                    self.declare_timer = None;
                    self.declare_required_resources(ctx);
                }
            }
            Timer::SubmitTaskTimeout { attempt, .. } => {
                let ev = attempt.vertex;
                let stale = self
                    .executions
                    .get(&ev)
                    .is_none_or(|e| e.attempt != attempt || e.submit_timer != Some(timer));
                if stale {
                    return;
                }
                self.executions.get_mut(&ev).expect("known").submit_timer = None;
                if !self.executions[&ev].submitted {
                    self.fail_execution(ctx, ev);
                }
            }
            Timer::CancelTaskRetry { attempt, .. } => {
                let ev = attempt.vertex;
                let e = &self.executions[&ev];
                if e.attempt == attempt
                    && e.state == ExecutionState::Canceling
                    && e.cancel_timer == Some(timer)
                {
                    self.executions.get_mut(&ev).expect("known").cancel_timer = None;
                    self.send_cancel(ctx, ev);
                }
            }
            other => panic!("JobMaster timer {other:?} has no handler"),
        }
    }

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

impl JobMaster {
    /// The tasks of a checkpoint now: `None` unless every execution is RUNNING or FINISHED.
    fn checkpoint_plan(&self) -> Option<Plan> {
        let mut plan = Plan::default();
        for (ev, e) in &self.executions {
            match e.state {
                ExecutionState::Running => {}
                ExecutionState::Finished => {
                    plan.finished.push(*ev);
                    continue;
                }
                _ => return None,
            }
            plan.wait_for.push(e.attempt);
            let inputs = self.graph.inputs(*ev);
            if inputs
                .iter()
                .all(|i| self.executions[i].state == ExecutionState::Finished)
            {
                let (_, tm) = e.slot?;
                plan.trigger.push((e.attempt, tm));
            }
        }
        Some(plan)
    }

    /// Tells the current running attempts about a completed or aborted checkpoint, or fails
    /// the job when the failure manager says so.
    fn on_checkpoint_outcome(&mut self, ctx: &mut Ctx<'_, Flink>, outcome: Outcome) {
        let (complete, id) = match outcome {
            Outcome::Nothing => return,
            Outcome::FailJob => return self.handle_global_failure(ctx),
            Outcome::Completed(id) => (true, id),
            Outcome::Aborted(id) => (false, id),
        };
        for e in self.executions.values() {
            if e.state != ExecutionState::Running {
                continue;
            }
            let Some((_, tm)) = e.slot else { continue };
            let rpc = if complete {
                TaskExecutorRpc::NotifyCheckpointComplete {
                    attempt: e.attempt,
                    checkpoint_id: id,
                }
            } else {
                TaskExecutorRpc::NotifyCheckpointAborted {
                    attempt: e.attempt,
                    checkpoint_id: id,
                }
            };
            ctx.send(tm, Msg::TaskExecutor(rpc));
        }
    }

    /// A failure of the whole job (the checkpoint failure manager's verdict): every vertex
    /// restarts, if the restart strategy allows.
    fn handle_global_failure(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let all = self.executions.keys().copied().collect();
        self.handle_failure(ctx, all);
    }
}

/// The stream configuration of every job vertex: its chained operators after the input, the
/// exchange out of it, and the external systems its tasks use.
fn stream_configs(
    graph: &JobGraph,
    spec: &JobSpec,
    config: &FlinkConfig,
    topology: &crate::process::Topology,
) -> Vec<Arc<StreamConfig>> {
    graph
        .vertices
        .iter()
        .map(|v| {
            let chain = v
                .operators
                .iter()
                .filter_map(|op| match op.kind {
                    "map" => Some(ChainedOperator::Map),
                    "count" => Some(ChainedOperator::Count),
                    "sink" => Some(ChainedOperator::Sink(spec.sink.kind)),
                    _ => None,
                })
                .collect();
            let output = graph.edges.iter().find(|e| e.source == v.id).map(|e| {
                let consumer = graph.vertex(e.target);
                OutputConfig {
                    partitioner: e.partitioner,
                    key_by: match e.partitioner {
                        Partitioner::Hash { keys } => Some(keys),
                        _ => None,
                    },
                    consumer_parallelism: consumer.parallelism,
                    consumer_max_parallelism: consumer.max_parallelism,
                }
            });
            Arc::new(StreamConfig {
                chain,
                output,
                parallelism: v.parallelism,
                max_parallelism: v.max_parallelism,
                checkpointing: config.checkpointing.map(|c| c.mode),
                checkpoint_storage: topology.checkpoint_storage,
                sink: topology.sink,
            })
        })
        .collect()
}
