//! The TaskExecutor of a TaskManager process: Flink's `TaskExecutor` endpoint.
//!
//! It owns
//! - the ResourceManager connection: registration with retry, the slot report, the RM ↔ TE
//!   heartbeat as the receiver, and `taskmanager.registration.timeout`, after which it gives up
//!   and terminates (docs/flink-runtime.md §1.4);
//! - the slots ([`TaskSlotTable`]): `requestSlot` from the connected ResourceManager, offers to
//!   the job's JobMaster, freeing on `freeSlot`, on rejection and on `taskmanager.slot.timeout`
//!   (§2.4), and reconciliation with the JobMaster's heartbeat payload (§2.5);
//! - the job table: one "job leader" connection per job with slots here — registration at the
//!   JobMaster, the JM ↔ TE heartbeat as the receiver, and `disconnectJobManagerConnection` when
//!   the JobMaster is lost (§1.6, §5.3);
//! - the tasks ([`Task`]): `submitTask`, the lifecycle DEPLOYING → INITIALIZING → RUNNING →
//!   FINISHED reported to the JobMaster, `cancelTask`, injected failures (`fail_task` signals),
//!   and the data plane between tasks (partition requests and end of partition).
//!
//! Losing the ResourceManager does not touch slots or tasks (§5.2); losing a JobMaster fails that
//! job's tasks and parks its slots until a new leader accepts them or they time out (§5.3).
//! It does not own what the JobMaster or ResourceManager decide, nor records and checkpoints.

use crate::checking::bugs::{Bug, Bugs};
use crate::external::ha::client::{Effect as HaEffect, HaClient};
use crate::external::ha::node::{HaServices, RESOURCE_MANAGER_COMPONENT};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ha::{HaReply, LeaderInformation};
use crate::protocol::ids::{
    AllocationId, ExecutionAttemptId, InstanceId, JobId, JobMasterId, ResourceManagerId, SlotId,
};
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    CheckpointStorageRpc, DisconnectCause, JobMasterRpc, Msg, RegistrationResponse,
    ResourceManagerRpc, SlotOffer, SourceLogRpc, TaskDeploymentDescriptor,
    TaskExecutorRegistration, TaskExecutorRpc, TaskManagerRegistration,
};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::HeartbeatPair;
use crate::protocol::timer::RegistrationTarget;
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use crate::services::registration::RetryingRegistration;
use crate::taskmanager::task::{
    PartitionRetry, Task, TASK_CANCEL_DURATION, TASK_INITIALIZE_DURATION,
};
use crate::taskmanager::task_slot_table::{AllocateOutcome, TaskSlotTable};
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeMap;

/// How many terminal tasks a TaskExecutor keeps (oldest evicted first). Terminal tasks stay so a
/// finished producer can still answer late partition requests and so reports can show them;
/// freeing a slot drops its tasks anyway, so the cap only matters for slots that see many
/// restarts.
pub const TERMINAL_TASKS_RETAINED_MAX: usize = 256;

/// The `fail_task` signal kind, in the top byte of a signal code.
const SIGNAL_KIND_FAIL_TASK: u64 = 0x01;
const SIGNAL_KIND_SHIFT: u32 = 56;
const SIGNAL_VERTEX_SHIFT: u32 = 24;
/// Subtask indices fit in the low 24 bits (max parallelism is 2^15).
const SIGNAL_SUBTASK_MASK: u64 = (1 << SIGNAL_VERTEX_SHIFT) - 1;
const _: () = assert!(
    crate::protocol::job_graph::UPPER_BOUND_MAX_PARALLELISM as u64 <= SIGNAL_SUBTASK_MASK + 1
);
const _: () = assert!(SIGNAL_VERTEX_SHIFT + 32 == SIGNAL_KIND_SHIFT);

/// The signal code of a scenario's `fail_task` fault: the task running `subtask` of `vertex`
/// throws, on whichever TaskExecutor runs it.
pub fn fail_task_signal(vertex: JobVertexId, subtask: u32) -> u64 {
    assert!(u64::from(subtask) <= SIGNAL_SUBTASK_MASK);
    SIGNAL_KIND_FAIL_TASK << SIGNAL_KIND_SHIFT
        | u64::from(vertex.0) << SIGNAL_VERTEX_SHIFT
        | u64::from(subtask)
}

/// The inverse of [`fail_task_signal`]; `None` for codes of other kinds.
pub fn fail_task_of_signal(code: u64) -> Option<(JobVertexId, u32)> {
    if code >> SIGNAL_KIND_SHIFT != SIGNAL_KIND_FAIL_TASK {
        return None;
    }
    let vertex = (code >> SIGNAL_VERTEX_SHIFT) as u32;
    let subtask = (code & SIGNAL_SUBTASK_MASK) as u32;
    Some((JobVertexId(vertex), subtask))
}

/// The error of a task failed by a `fail_task` signal.
pub const INJECTED_FAILURE: &str = "injected failure (fail_task)";

/// The TE's view of its ResourceManager connection.
#[derive(Debug)]
enum RmConnection {
    /// Registering (or waiting to retry).
    Registering(RetryingRegistration),
    /// Registered. `slot_report_timeout` runs until the initial slot report is acknowledged.
    Established {
        instance_id: InstanceId,
        /// The RM leader session this registration belongs to; `requestSlot` must carry it.
        resource_manager_id: ResourceManagerId,
        slot_report_timeout: Option<TimerId>,
    },
}

/// Flink's `JobTable.Connection`: an established connection to a job's JobMaster.
#[derive(Debug)]
struct JobManagerConnection {
    job_master_id: JobMasterId,
    /// The JM ↔ TE heartbeat of this job, the TE as receiver.
    heartbeats: HeartbeatManager,
}

#[derive(Debug)]
enum JobLeader {
    /// Flink's `JobLeaderService` registering at the JobMaster (or waiting to retry).
    Registering(RetryingRegistration),
    Connected(JobManagerConnection),
}

/// The latest `offerSlots` of a job: only its answer counts (FLINK-21859).
#[derive(Debug)]
struct PendingOffer {
    offer_id: u64,
    offers: Vec<SlotOffer>,
    timeout: TimerId,
}

/// Flink's `JobTable.Job`: a job with slots on this TaskExecutor. It exists exactly while the
/// slot table holds slots of the job, and it is always registering or connected.
#[derive(Debug)]
struct Job {
    /// The JobMaster's address from `requestSlot` (leader retrieval without HA).
    job_master: NodeId,
    leader: JobLeader,
    offer: Option<PendingOffer>,
}

#[derive(Debug)]
pub struct TaskExecutor {
    me: NodeId,
    /// The RM's address. Without high availability, leader retrieval yields the configured
    /// JobManager address, so it never changes.
    resource_manager: NodeId,
    config: FlinkConfig,
    bugs: Bugs,
    session_id: u64,
    connection: Option<RmConnection>,
    registration_timeout: Option<TimerId>,
    /// The process's registration attempt ids (RM and JobMaster registrations share them, so an
    /// answer to any abandoned attempt is recognised).
    next_attempt_id: u64,
    resource_manager_heartbeats: HeartbeatManager,
    task_slot_table: TaskSlotTable,
    jobs: BTreeMap<JobId, Job>,
    tasks: BTreeMap<ExecutionAttemptId, Task>,
    /// Terminal tasks in the order they ended, for [`TERMINAL_TASKS_RETAINED_MAX`].
    terminal_tasks: Vec<ExecutionAttemptId>,
    next_offer_id: u64,
    /// With high availability: the ZooKeeper client that retrieves the RM's and each job's
    /// leader.
    ha: Option<HaServices>,
    /// The RM leader session the TE follows (HA): a registration must be answered under it.
    resource_manager_token: Option<u64>,
    /// The retrieved leader of each job with slots here (HA).
    job_leaders: BTreeMap<JobId, LeaderInformation>,
}

/// The leader retrieval component of a job's JobMaster.
pub fn job_component(job_id: JobId) -> String {
    format!("job-{job_id:020}")
}

fn job_of_component(component: &str) -> Option<JobId> {
    component.strip_prefix("job-")?.parse().ok()
}

impl TaskExecutor {
    pub fn new(
        me: NodeId,
        resource_manager: NodeId,
        config: &FlinkConfig,
        bugs: Bugs,
    ) -> TaskExecutor {
        TaskExecutor {
            me,
            resource_manager,
            config: config.clone(),
            bugs,
            session_id: 0,
            connection: None,
            registration_timeout: None,
            next_attempt_id: 0,
            resource_manager_heartbeats: HeartbeatManager::new(
                HeartbeatPair::ResourceManagerTaskExecutor,
                Role::Receiver,
                Endpoint::TaskExecutor(me),
                config,
                bugs,
            ),
            task_slot_table: TaskSlotTable::new(
                config.number_of_task_slots,
                config.taskmanager_slot_timeout,
            ),
            jobs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            terminal_tasks: Vec::new(),
            next_offer_id: 0,
            ha: None,
            resource_manager_token: None,
            job_leaders: BTreeMap::new(),
        }
    }

    /// High availability: the RM and each job's JobMaster are found by leader retrieval from
    /// the `ha` node instead of the configured address.
    pub fn with_ha(mut self, store: NodeId) -> TaskExecutor {
        let client = HaClient::new(store, self.config.ha_session)
            .with_leader_retrieval(RESOURCE_MANAGER_COMPONENT);
        self.ha = Some(HaServices::new(store, client));
        self
    }

    pub fn on_ha_reply(&mut self, ctx: &mut Ctx<'_, Flink>, reply: HaReply) {
        let Some(ha) = self.ha.as_mut() else { return };
        let effects = ha.on_reply(ctx, reply);
        self.on_ha_effects(ctx, effects);
        self.check_invariants();
    }

    pub fn on_ha_tick(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) {
        let Some(ha) = self.ha.as_mut() else { return };
        let effects = ha.on_tick(ctx, timer);
        self.on_ha_effects(ctx, effects);
        self.check_invariants();
    }

    fn on_ha_effects(&mut self, ctx: &mut Ctx<'_, Flink>, effects: Vec<HaEffect>) {
        for e in effects {
            if let HaEffect::LeaderChanged { component, leader } = e {
                if component == RESOURCE_MANAGER_COMPONENT {
                    self.on_resource_manager_leader(ctx, leader);
                } else if let Some(job_id) = job_of_component(&component) {
                    self.on_job_leader(ctx, job_id, leader);
                }
            }
        }
    }

    /// `ResourceManagerLeaderListener.notifyLeaderAddress`: a new RM leader (or none) — close
    /// the old connection and register at the new leader.
    fn on_resource_manager_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        leader: Option<LeaderInformation>,
    ) {
        let new = leader.map(|l| (l.address, l.leader_session_id.0));
        let old = self
            .resource_manager_token
            .map(|t| (self.resource_manager, t));
        if new == old {
            return;
        }
        self.close_resource_manager_connection(ctx);
        match new {
            Some((address, token)) => {
                self.resource_manager = address;
                self.resource_manager_token = Some(token);
                self.connect_to_resource_manager(ctx);
            }
            None => self.resource_manager_token = None,
        }
    }

    /// `JobLeaderService`'s listener: the job's JobMaster leader changed. The connection to the
    /// old one closes (its tasks fail, its slots are parked) and the TE registers at the new
    /// one, which may take the parked slots (docs/flink-runtime.md §9.3).
    fn on_job_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        leader: Option<LeaderInformation>,
    ) {
        if self.bugs.has(Bug::TmIgnoresLeaderChange) {
            return;
        }
        match leader {
            Some(info) => {
                self.job_leaders.insert(job_id, info);
            }
            None => {
                self.job_leaders.remove(&job_id);
            }
        }
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let current = match (&job.leader, leader) {
            (JobLeader::Connected(c), Some(info)) => {
                c.job_master_id == info.leader_session_id.0 && job.job_master == info.address
            }
            (JobLeader::Registering(_), Some(info)) => job.job_master == info.address,
            (JobLeader::Registering(_), None) => true,
            (JobLeader::Connected(_), None) => false,
        };
        if current {
            return;
        }
        if self.job_manager_connection(job_id).is_some() {
            self.disconnect_job_manager_connection(ctx, job_id, Some(DisconnectCause::Reconnect));
        }
        if let Some(info) = leader {
            if let Some(job) = self.jobs.remove(&job_id) {
                self.close_job_leader(ctx, job_id, job, None);
                self.start_job_leader_registration(ctx, job_id, info.address);
            }
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A fresh session per process start lets the RM and JobMasters tell a restarted TE from
        // the old one.
        self.session_id = ctx.rng().random::<u64>();
        match self.ha.as_mut() {
            // The RM's address comes from leader retrieval.
            Some(ha) => {
                let effects = ha.start(ctx);
                self.on_ha_effects(ctx, effects);
            }
            None => self.connect_to_resource_manager(ctx),
        }
    }

    /// Whether the TE is connected to its RM, and under which registration.
    pub fn connected_instance(&self) -> Option<InstanceId> {
        match &self.connection {
            Some(RmConnection::Established { instance_id, .. }) => Some(*instance_id),
            _ => None,
        }
    }

    /// Every slot: its index and, if held, (allocation, job, ACTIVE?).
    pub fn slots(&self) -> impl Iterator<Item = (u32, Option<(AllocationId, JobId, bool)>)> + '_ {
        self.task_slot_table.slots()
    }

    /// Every task this TE knows (terminal ones until their slot is freed), with its state.
    pub fn tasks(&self) -> impl Iterator<Item = (ExecutionAttemptId, ExecutionState)> + '_ {
        self.tasks.values().map(|t| (t.attempt(), t.state()))
    }

    /// The JobMasterId this TE is connected to for `job_id`, if any.
    pub fn job_manager_connection(&self, job_id: JobId) -> Option<JobMasterId> {
        match self.jobs.get(&job_id).map(|j| &j.leader) {
            Some(JobLeader::Connected(c)) => Some(c.job_master_id),
            _ => None,
        }
    }

    // ------------------------------------------------------------------------------------
    // ResourceManager connection
    // ------------------------------------------------------------------------------------

    fn connect_to_resource_manager(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert!(self.connection.is_none());
        if self.registration_timeout.is_none() {
            self.registration_timeout = Some(ctx.set_timer(
                self.config.taskmanager_registration_timeout,
                Timer::TaskExecutorRegistrationTimeout,
            ));
        }
        let (registration, attempt_id) = RetryingRegistration::start(
            RegistrationTarget::ResourceManager,
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.connection = Some(RmConnection::Registering(registration));
        self.send_registration(ctx, attempt_id);
    }

    fn send_registration(&self, ctx: &mut Ctx<'_, Flink>, attempt_id: u64) {
        let registration = TaskExecutorRegistration {
            resource_id: self.me,
            session_id: self.session_id,
            number_of_slots: self.config.number_of_task_slots,
        };
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::RegisterTaskExecutor {
                registration,
                attempt_id,
            }),
        );
    }

    /// Flink's `reconnectToResourceManager`: close the connection (telling the RM), re-arm the
    /// registration timeout and register again. Slots and tasks are untouched: the slot report
    /// after re-registration tells the RM what is allocated.
    fn reconnect_to_resource_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        cause: Option<LossCause>,
    ) {
        if let Some(cause) = cause {
            ctx.trace(Obs::TargetLost {
                observer: Endpoint::TaskExecutor(self.me),
                target: Endpoint::ResourceManager(self.resource_manager),
                cause,
            });
        }
        self.close_resource_manager_connection(ctx);
        self.connect_to_resource_manager(ctx);
    }

    fn close_resource_manager_connection(&mut self, ctx: &mut Ctx<'_, Flink>) {
        match self.connection.take() {
            Some(RmConnection::Registering(mut r)) => r.cancel(ctx),
            Some(RmConnection::Established {
                slot_report_timeout,
                ..
            }) => {
                if let Some(t) = slot_report_timeout {
                    ctx.cancel_timer(t);
                }
                ctx.send(
                    self.resource_manager,
                    Msg::ResourceManager(ResourceManagerRpc::DisconnectTaskManager {
                        resource_id: self.me,
                        cause: DisconnectCause::Reconnect,
                    }),
                );
                ctx.trace(Obs::ResourceManagerDisconnected {
                    resource_manager: self.resource_manager,
                });
            }
            None => {}
        }
        self.resource_manager_heartbeats
            .unmonitor_target(ctx, self.resource_manager);
    }

    fn on_registration_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        attempt_id: u64,
        response: RegistrationResponse,
    ) {
        let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
            return; // a duplicate or late answer after the connection was established
        };
        if !reg.is_current(attempt_id) {
            return; // an answer to an abandoned attempt
        }
        match response {
            RegistrationResponse::Success {
                instance_id,
                resource_manager_id,
            } => {
                if self
                    .resource_manager_token
                    .is_some_and(|t| t != resource_manager_id)
                {
                    return; // fenced: another leader session than the one retrieved
                }
                reg.cancel(ctx);
                // Establish: report slots (only now does the RM register them; a failed or
                // timed-out report makes the TE reconnect), monitor the RM, stop the
                // registration timeout.
                let slot_report_timeout = Some(ctx.set_timer(
                    self.config.ask_timeout,
                    Timer::SlotReportTimeout { instance_id },
                ));
                self.connection = Some(RmConnection::Established {
                    instance_id,
                    resource_manager_id,
                    slot_report_timeout,
                });
                ctx.send(
                    from,
                    Msg::ResourceManager(ResourceManagerRpc::SendSlotReport {
                        resource_id: self.me,
                        instance_id,
                        slot_report: self.task_slot_table.slot_report(),
                    }),
                );
                self.resource_manager_heartbeats.monitor_target(ctx, from);
                if let Some(t) = self.registration_timeout.take() {
                    ctx.cancel_timer(t);
                }
                ctx.trace(Obs::ResourceManagerConnected {
                    resource_manager: from,
                    instance_id,
                });
            }
            RegistrationResponse::Failure { .. } => {
                reg.on_declined(attempt_id, ctx);
            }
            RegistrationResponse::Rejection { .. } => {
                // Terminal: Flink's TaskExecutor treats a rejection as a fatal error.
                ctx.exit();
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Event entry points
    // ------------------------------------------------------------------------------------

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: TaskExecutorRpc) {
        self.handle_rpc(ctx, from, rpc);
        self.check_invariants();
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: Timer) {
        self.handle_timer(ctx, timer, tag);
        self.check_invariants();
    }

    /// A message this TE sent found its target process down (connection refused).
    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        self.handle_unreachable(ctx, to, msg);
        self.check_invariants();
    }

    /// A scenario's injected fault. `fail_task` fails every live task of that subtask here.
    pub fn on_signal(&mut self, ctx: &mut Ctx<'_, Flink>, code: u64) {
        let Some((vertex, subtask)) = fail_task_of_signal(code) else {
            return;
        };
        let target = ExecutionVertexId { vertex, subtask };
        let hit: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.attempt().vertex == target && t.can_fail())
            .map(Task::attempt)
            .collect();
        for attempt in hit {
            self.fail_task(ctx, attempt, INJECTED_FAILURE.to_string());
        }
        self.check_invariants();
    }

    fn handle_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: TaskExecutorRpc) {
        match rpc {
            TaskExecutorRpc::RegistrationResponse {
                attempt_id,
                response,
            } => self.on_registration_response(ctx, from, attempt_id, response),
            TaskExecutorRpc::SlotReportResponse { instance_id, ok } => {
                if self.connected_instance() != Some(instance_id) {
                    return; // an answer for an older registration
                }
                if !ok {
                    self.reconnect_to_resource_manager(ctx, None);
                } else if let Some(RmConnection::Established {
                    slot_report_timeout,
                    ..
                }) = self.connection.as_mut()
                {
                    if let Some(t) = slot_report_timeout.take() {
                        ctx.cancel_timer(t);
                    }
                }
            }
            TaskExecutorRpc::HeartbeatFromResourceManager { resource_id } => {
                // A request from an origin that is not monitored gets no answer.
                if self
                    .resource_manager_heartbeats
                    .report_heartbeat(ctx, resource_id)
                {
                    ctx.send(
                        resource_id,
                        Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager {
                            resource_id: self.me,
                            slot_report: self.task_slot_table.slot_report(),
                        }),
                    );
                }
            }
            TaskExecutorRpc::DisconnectResourceManager { .. } => {
                if from == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::Disconnect));
                }
            }
            TaskExecutorRpc::RequestSlot {
                slot_id,
                job_id,
                allocation_id,
                job_master,
                resource_manager_id,
            } => self.on_request_slot(
                ctx,
                from,
                slot_id,
                job_id,
                allocation_id,
                job_master,
                resource_manager_id,
            ),
            TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id,
                attempt_id,
                response,
            } => self.on_register_task_manager_response(ctx, from, job_id, attempt_id, response),
            TaskExecutorRpc::OfferSlotsResponse {
                job_id,
                job_master_id,
                offer_id,
                accepted,
            } => self.on_offer_slots_response(ctx, job_id, job_master_id, offer_id, &accepted),
            TaskExecutorRpc::SubmitTask { tdd, job_master_id } => {
                self.on_submit_task(ctx, from, *tdd, job_master_id)
            }
            TaskExecutorRpc::CancelTask { attempt } => self.on_cancel_task(ctx, attempt),
            TaskExecutorRpc::FreeSlot { allocation_id } => {
                self.free_slot_internal(ctx, allocation_id, "the JobMaster freed the slot");
            }
            TaskExecutorRpc::HeartbeatFromJobManager {
                job_id,
                job_master_id,
                allocated,
            } => self.on_heartbeat_from_job_manager(ctx, from, job_id, job_master_id, &allocated),
            TaskExecutorRpc::DisconnectJobManager { job_id, .. } => {
                let connected_to_sender = self.job_manager_connection(job_id).is_some()
                    && self.jobs[&job_id].job_master == from;
                if connected_to_sender {
                    // The JobMaster closed the connection itself: no loss to declare, and no
                    // `disconnectTaskManager` echo (it already dropped this TaskManager).
                    self.disconnect_job_manager_connection(ctx, job_id, None);
                }
            }
            TaskExecutorRpc::UpdateTaskExecutionStateResponse { attempt, ok } => {
                self.on_update_task_execution_state_response(ctx, attempt, ok)
            }
            TaskExecutorRpc::RequestSubpartition { producer, consumer } => {
                self.on_request_subpartition(ctx, from, producer, consumer)
            }
            TaskExecutorRpc::PartitionNotFound { producer, consumer } => {
                let Some(task) = self.tasks.get_mut(&consumer) else {
                    return;
                };
                if task.on_partition_not_found(ctx, producer) == PartitionRetry::Exhausted {
                    self.fail_task(
                        ctx,
                        consumer,
                        format!("PartitionNotFoundException: partition of {producer:?} not found"),
                    );
                }
            }
            TaskExecutorRpc::SourceRecords {
                reader,
                partition,
                offset,
                count,
                end_offset,
            } => {
                let Some(task) = self.tasks.get_mut(&reader) else {
                    return; // the reader is gone
                };
                if task.state() != ExecutionState::Running || !task.is_source() {
                    return; // a late answer to a task that stopped reading
                }
                if task.on_source_records(ctx, partition, offset, count, end_offset) {
                    task.stream.source_end(ctx);
                }
                self.after_stream(ctx, reader);
            }
            TaskExecutorRpc::TriggerCheckpoint {
                attempt,
                checkpoint_id,
                timestamp_ms,
            } => {
                // A task that is not RUNNING ignores the trigger; the checkpoint times out or
                // is aborted by the task's failure.
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    let offsets = task.source_offsets();
                    task.stream
                        .on_trigger(ctx, checkpoint_id, timestamp_ms, offsets);
                });
            }
            TaskExecutorRpc::NotifyCheckpointComplete {
                attempt,
                checkpoint_id,
            } => {
                // docs/flink-runtime.md §7.4: a task that is not running ignores notifications.
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    task.stream.on_notify_complete(ctx, checkpoint_id)
                });
            }
            TaskExecutorRpc::NotifyCheckpointAborted {
                attempt,
                checkpoint_id,
            } => {
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    task.stream.on_notify_aborted(ctx, checkpoint_id);
                    task.stream.process(ctx);
                });
            }
            TaskExecutorRpc::DataBatch {
                producer,
                consumer,
                seq,
                elements,
            } => {
                let Some(task) = self.tasks.get_mut(&consumer) else {
                    return;
                };
                if task.state() != ExecutionState::Running {
                    return;
                }
                let Some(channel) = task.input_index(producer) else {
                    return;
                };
                task.stream
                    .on_data_batch(ctx, channel, producer, seq, elements);
                if task.stream.input_ended(channel) {
                    // In-band end of partition: the channel needs no more requests.
                    task.on_end_of_partition(ctx, producer);
                }
                self.after_stream(ctx, consumer);
            }
            TaskExecutorRpc::ChannelProgress {
                producer,
                consumer,
                received,
                consumed,
            } => {
                let Some(task) = self.tasks.get_mut(&producer) else {
                    return;
                };
                if !matches!(
                    task.state(),
                    ExecutionState::Running | ExecutionState::Finished
                ) {
                    return;
                }
                task.stream
                    .on_channel_progress(ctx, consumer, received, consumed);
                if task.state() == ExecutionState::Running {
                    // Credit may end backpressure.
                    task.stream.process(ctx);
                }
                self.after_stream(ctx, producer);
            }
            TaskExecutorRpc::StateWritten { handle } => {
                self.with_running_stream(ctx, handle.attempt, |task, ctx| {
                    task.stream.on_state_written(ctx, handle)
                });
            }
            TaskExecutorRpc::StateRead {
                handle,
                reader,
                state,
            } => {
                if let Some(task) = self.tasks.get_mut(&reader) {
                    if task.state() == ExecutionState::Initializing
                        && task.stream.on_state_read(ctx, handle, state)
                    {
                        self.maybe_start_running(ctx, reader);
                    }
                    self.after_stream(ctx, reader);
                }
            }
            TaskExecutorRpc::TransactionsInitialized { writer, epoch } => {
                if let Some(task) = self.tasks.get_mut(&writer) {
                    if task.state() == ExecutionState::Initializing
                        && task.stream.on_transactions_initialized(ctx, epoch)
                    {
                        self.maybe_start_running(ctx, writer);
                    }
                    self.after_stream(ctx, writer);
                }
            }
            TaskExecutorRpc::SinkWriteAck { writer, next_seq } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_sink_write_ack(ctx, next_seq)
                });
            }
            TaskExecutorRpc::SinkFenced { writer } => {
                self.with_running_stream(ctx, writer, |task, _| task.stream.on_sink_fenced());
            }
            TaskExecutorRpc::PreCommitted { writer, txn } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_pre_committed(ctx, txn)
                });
            }
            TaskExecutorRpc::Committed { writer, txn, .. } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_committed(ctx, txn)
                });
            }
        }
    }

    fn handle_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: Timer) {
        match tag {
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::ResourceManagerTaskExecutor,
                target,
                ..
            } => {
                if !self.resource_manager_heartbeats.on_timeout(timer, target) {
                    return;
                }
                if self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
                    return;
                }
                // Only a timeout of the currently connected RM reconnects (FLINK-8462).
                if target == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::HeartbeatTimeout));
                }
            }
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::JobMasterTaskExecutor,
                job: Some(job_id),
                target,
                ..
            } => {
                let current = match self.jobs.get(&job_id).map(|j| &j.leader) {
                    Some(JobLeader::Connected(c)) => c.heartbeats.on_timeout(timer, target),
                    _ => false,
                };
                if current && !self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
                    self.job_manager_lost(ctx, job_id, LossCause::HeartbeatTimeout);
                }
            }
            Timer::RegistrationAttemptTimeout {
                target: RegistrationTarget::ResourceManager,
                attempt_id,
            } => {
                let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
                    return;
                };
                if self.bugs.has(Bug::RegistrationNotRetried) {
                    return;
                }
                if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx)
                {
                    self.send_registration(ctx, id);
                }
            }
            Timer::RegistrationRetry {
                target: RegistrationTarget::ResourceManager,
                attempt_id,
            } => {
                let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    self.send_registration(ctx, id);
                }
            }
            Timer::RegistrationAttemptTimeout {
                target: RegistrationTarget::JobMaster(job_id),
                attempt_id,
            } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                let JobLeader::Registering(reg) = &mut job.leader else {
                    return;
                };
                if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx)
                {
                    let job_master = job.job_master;
                    self.send_job_master_registration(ctx, job_id, job_master, id);
                }
            }
            Timer::RegistrationRetry {
                target: RegistrationTarget::JobMaster(job_id),
                attempt_id,
            } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                let JobLeader::Registering(reg) = &mut job.leader else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    let job_master = job.job_master;
                    self.send_job_master_registration(ctx, job_id, job_master, id);
                }
            }
            Timer::TaskExecutorRegistrationTimeout => {
                self.registration_timeout = None;
                if self.connected_instance().is_none() {
                    ctx.trace(Obs::RegistrationTimedOut);
                    ctx.exit();
                }
            }
            Timer::SlotReportTimeout { instance_id } => {
                if let Some(RmConnection::Established {
                    instance_id: current,
                    slot_report_timeout,
                    ..
                }) = self.connection.as_mut()
                {
                    if *current == instance_id && *slot_report_timeout == Some(timer) {
                        *slot_report_timeout = None;
                        self.reconnect_to_resource_manager(ctx, None);
                    }
                }
            }
            Timer::SlotTimeout {
                allocation_id,
                ticket,
            } => {
                // Only the current arm of a still-inactive slot counts (Flink's
                // `isValidTimeout`): an activated, re-armed or freed slot ignores it.
                if self.task_slot_table.is_valid_timeout(allocation_id, ticket) {
                    self.free_slot_internal(ctx, allocation_id, "the slot timed out");
                }
            }
            Timer::TaskStep { attempt } => self.on_task_step(ctx, attempt, timer),
            Timer::TaskTick { attempt } => {
                let Some(task) = self.tasks.get_mut(&attempt) else {
                    return;
                };
                if task.on_tick_fired(timer) {
                    task.stream.tick(ctx);
                    self.after_stream(ctx, attempt);
                }
            }
            Timer::PartitionRequestRetry { consumer, producer } => {
                if let Some(task) = self.tasks.get_mut(&consumer) {
                    task.on_partition_request_retry(ctx, producer, timer);
                }
            }
            Timer::OfferSlotsTimeout { job_id, offer_id } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job
                    .offer
                    .as_ref()
                    .is_some_and(|o| o.offer_id == offer_id && o.timeout == timer)
                {
                    // The JobMaster did not answer in time: offer again (with whatever is
                    // still ALLOCATED now).
                    job.offer = None;
                    self.offer_slots(ctx, job_id);
                }
            }
            Timer::UpdateTaskStateTimeout { attempt } => {
                let live = self
                    .tasks
                    .get(&attempt)
                    .is_some_and(|t| t.is_update_timeout(timer));
                if live {
                    // Flink fails the task when `updateTaskExecutionState` fails, a timeout
                    // included.
                    self.fail_task(
                        ctx,
                        attempt,
                        "updateTaskExecutionState timed out".to_string(),
                    );
                }
            }
            other => unreachable!("timer {other:?} is not a TaskExecutor's"),
        }
    }

    fn handle_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::SourceLog(SourceLogRpc::Fetch {
                reader, partition, ..
            }) => {
                if let Some(task) = self.tasks.get_mut(reader) {
                    task.on_fetch_unreachable(*partition);
                }
            }
            Msg::ResourceManager(ResourceManagerRpc::RegisterTaskExecutor {
                attempt_id, ..
            }) => {
                if let Some(RmConnection::Registering(reg)) = self.connection.as_mut() {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager { .. })
                if to == self.resource_manager
                    && self.resource_manager_heartbeats.report_rpc_failure(to) =>
            {
                self.reconnect_to_resource_manager(ctx, Some(LossCause::Unreachable));
            }
            Msg::ResourceManager(ResourceManagerRpc::SendSlotReport { instance_id, .. })
                if self.connected_instance() == Some(*instance_id) =>
            {
                self.reconnect_to_resource_manager(ctx, None);
            }
            Msg::JobMaster { job_id, rpc } => self.on_job_master_unreachable(ctx, to, *job_id, rpc),
            Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                producer, consumer, ..
            }) => {
                // The consumer's TaskManager is gone: the connection is closed and the
                // subpartition's view released (the producer itself goes with its region).
                if let Some(task) = self.tasks.get_mut(producer) {
                    task.stream.on_consumer_lost(*consumer);
                }
            }
            // The producer's TaskManager is gone: Flink's `RemoteTransportException` fails
            // the consumer at once.
            Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                producer, consumer, ..
            }) if self
                .tasks
                .get(consumer)
                .is_some_and(|t| t.state() == ExecutionState::Running) =>
            {
                self.fail_task(
                    ctx,
                    *consumer,
                    format!(
                        "RemoteTransportException: connection to the TaskManager of \
                         {producer:?} lost"
                    ),
                );
            }
            Msg::CheckpointStorage(CheckpointStorageRpc::Write { handle, .. }) => {
                if let Some(task) = self.tasks.get_mut(&handle.attempt) {
                    task.stream.on_state_write_failed(ctx, *handle);
                    let attempt = handle.attempt;
                    self.after_stream(ctx, attempt);
                }
            }
            Msg::CheckpointStorage(CheckpointStorageRpc::Read { reader, .. })
                if self
                    .tasks
                    .get(reader)
                    .is_some_and(|t| t.state() == ExecutionState::Initializing) =>
            {
                self.fail_task(
                    ctx,
                    *reader,
                    "could not restore: checkpoint storage is unreachable".to_string(),
                );
            }
            Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }) => {
                // The producer's TaskManager refused the connection: Flink's
                // `RemoteTransportException` fails the consumer at once.
                let waiting = self
                    .tasks
                    .get(consumer)
                    .is_some_and(|t| t.awaits_partition(*producer));
                if waiting {
                    self.fail_task(
                        ctx,
                        *consumer,
                        format!(
                            "RemoteTransportException: the TaskManager of {producer:?} refused \
                             the connection"
                        ),
                    );
                }
            }
            // Answers to a consumer or the RM that went away: nothing to do.
            _ => {}
        }
    }

    fn on_job_master_unreachable(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        to: NodeId,
        job_id: JobId,
        rpc: &JobMasterRpc,
    ) {
        match rpc {
            JobMasterRpc::RegisterTaskManager { attempt_id, .. } => {
                if let Some(Job {
                    leader: JobLeader::Registering(reg),
                    ..
                }) = self.jobs.get_mut(&job_id)
                {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            JobMasterRpc::HeartbeatFromTaskManager { .. } => {
                let threshold = match self.jobs.get_mut(&job_id) {
                    Some(Job {
                        job_master,
                        leader: JobLeader::Connected(c),
                        ..
                    }) if *job_master == to => c.heartbeats.report_rpc_failure(to),
                    _ => false,
                };
                if threshold {
                    self.job_manager_lost(ctx, job_id, LossCause::Unreachable);
                }
            }
            JobMasterRpc::OfferSlots { offer_id, .. } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job.offer.as_ref().is_none_or(|o| o.offer_id != *offer_id) {
                    return; // superseded: only the latest offer counts
                }
                // Not a timeout but a failure: Flink frees the offered slots, which returns them
                // to the ResourceManager.
                let offer = job.offer.take().expect("checked");
                ctx.cancel_timer(offer.timeout);
                for o in offer.offers {
                    self.free_slot_internal(ctx, o.allocation_id, "offering the slot failed");
                }
            }
            // The update RPC failed: Flink fails the task (a no-op once it is terminal).
            JobMasterRpc::UpdateTaskExecutionState { attempt, .. } => self.fail_task(
                ctx,
                *attempt,
                "updateTaskExecutionState failed: JobMaster unreachable".to_string(),
            ),
            _ => {}
        }
    }

    // ------------------------------------------------------------------------------------
    // Slots
    // ------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn on_request_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        slot_id: SlotId,
        job_id: JobId,
        allocation_id: AllocationId,
        job_master: NodeId,
        resource_manager_id: ResourceManagerId,
    ) {
        // The TE is not fenced; it checks explicitly that the caller is the RM it is registered
        // at, under that RM's current leader session.
        let connected = from == self.resource_manager
            && matches!(
                self.connection,
                Some(RmConnection::Established { resource_manager_id: id, .. })
                    if id == resource_manager_id
            );
        if !connected && !self.bugs.has(Bug::NoFencingCheck) {
            if self.ha.is_some() {
                ctx.trace(Obs::FencedCallRejected {
                    call: "requestSlot".into(),
                    token: resource_manager_id,
                });
            }
            Self::answer_request_slot(ctx, from, allocation_id, false);
            return;
        }
        if self.ha.is_some() {
            ctx.trace(Obs::FencedCallAccepted {
                call: "requestSlot".into(),
                token: resource_manager_id,
            });
        }
        assert_eq!(slot_id.task_manager, self.me);
        assert!(slot_id.slot_index < self.task_slot_table.number_of_slots());
        let ok =
            match self
                .task_slot_table
                .allocate_slot(ctx, slot_id.slot_index, job_id, allocation_id)
            {
                AllocateOutcome::Allocated | AllocateOutcome::AlreadyAllocated => true,
                AllocateOutcome::Occupied { .. } if self.bugs.has(Bug::SlotDoubleAllocation) => {
                    self.task_slot_table.reassign_slot(
                        ctx,
                        slot_id.slot_index,
                        job_id,
                        allocation_id,
                    );
                    true
                }
                // Flink's `SlotOccupiedException`: the RM's view is stale; it learns the truth from
                // the answer and the next slot report.
                AllocateOutcome::Occupied { .. } => false,
            };
        Self::answer_request_slot(ctx, from, allocation_id, ok);
        if !ok {
            return;
        }
        // Register the job with the job leader service on its first slot; offer now if the
        // JobMaster connection is already up.
        match self.jobs.get(&job_id).map(|j| &j.leader) {
            None => {
                // With HA the job's leader comes from retrieval; `requestSlot`'s address is
                // where to start.
                let job_master = match self.job_leaders.get(&job_id) {
                    Some(info) if !self.bugs.has(Bug::TmIgnoresLeaderChange) => info.address,
                    _ => job_master,
                };
                if let Some(ha) = self.ha.as_mut() {
                    let component = job_component(job_id);
                    let (_, effects) =
                        ha.call(ctx, |c, now| ((), c.add_leader_retrieval(now, &component)));
                    self.start_job_leader_registration(ctx, job_id, job_master);
                    self.on_ha_effects(ctx, effects);
                } else {
                    self.start_job_leader_registration(ctx, job_id, job_master);
                }
            }
            Some(JobLeader::Connected(_)) => self.offer_slots(ctx, job_id),
            Some(JobLeader::Registering(_)) => {} // the slots are offered once connected
        }
    }

    fn answer_request_slot(
        ctx: &mut Ctx<'_, Flink>,
        to: NodeId,
        allocation_id: AllocationId,
        ok: bool,
    ) {
        ctx.send(
            to,
            Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse { allocation_id, ok }),
        );
    }

    /// Flink's `freeSlotInternal`: tasks in the slot end first, the slot is freed, the RM is
    /// told, and a job left without slots here closes its JobMaster connection.
    fn free_slot_internal(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
        reason: &str,
    ) {
        let Some(job_id) = self.task_slot_table.owning_job(allocation_id) else {
            return; // already freed
        };
        let in_slot: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.allocation_id() == allocation_id)
            .map(Task::attempt)
            .collect();
        for &attempt in &in_slot {
            match self.tasks[&attempt].state() {
                // A cancelling task's slot goes away under it: its cancellation is complete.
                ExecutionState::Canceling => {
                    self.transition_task(ctx, attempt, ExecutionState::Canceled, None)
                }
                s if s.is_terminal() => {}
                _ => self.fail_task(
                    ctx,
                    attempt,
                    format!("slot {allocation_id} freed: {reason}"),
                ),
            }
        }
        for attempt in &in_slot {
            let task = self.tasks.remove(attempt).expect("listed");
            assert!(task.state().is_terminal());
        }
        self.terminal_tasks.retain(|a| !in_slot.contains(a));
        let (slot_index, freed_job) = self
            .task_slot_table
            .free_slot(ctx, allocation_id)
            .expect("owned above");
        assert_eq!(freed_job, job_id);
        if let Some(instance_id) = self.connected_instance() {
            ctx.send(
                self.resource_manager,
                Msg::ResourceManager(ResourceManagerRpc::NotifySlotAvailable {
                    instance_id,
                    slot_id: SlotId {
                        task_manager: self.me,
                        slot_index,
                    },
                    allocation_id,
                }),
            );
        }
        if !self.task_slot_table.has_allocations(job_id) {
            self.close_job(ctx, job_id);
        }
    }

    // ------------------------------------------------------------------------------------
    // Job leader connections
    // ------------------------------------------------------------------------------------

    fn start_job_leader_registration(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master: NodeId,
    ) {
        assert!(!self.jobs.contains_key(&job_id));
        assert!(self.task_slot_table.has_allocations(job_id));
        let (registration, attempt_id) = RetryingRegistration::start(
            RegistrationTarget::JobMaster(job_id),
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.jobs.insert(
            job_id,
            Job {
                job_master,
                leader: JobLeader::Registering(registration),
                offer: None,
            },
        );
        self.send_job_master_registration(ctx, job_id, job_master, attempt_id);
    }

    fn send_job_master_registration(
        &self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master: NodeId,
        attempt_id: u64,
    ) {
        ctx.send(
            job_master,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::RegisterTaskManager {
                    session_id: self.session_id,
                    attempt_id,
                },
            },
        );
    }

    fn on_register_task_manager_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        attempt_id: u64,
        response: TaskManagerRegistration,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return; // the job left this TE meanwhile
        };
        // A connection is never registering and connected at once, so a duplicate success for
        // an established connection finds no registration and is ignored (FLINK-7526).
        let JobLeader::Registering(reg) = &mut job.leader else {
            return;
        };
        if !reg.is_current(attempt_id) || from != job.job_master {
            return; // an answer to an abandoned attempt
        }
        match response {
            TaskManagerRegistration::Success { job_master_id } => {
                self.establish_job_manager_connection(ctx, job_id, job_master_id)
            }
            TaskManagerRegistration::Rejection => {
                // Flink's `handleRejectedJobManagerConnection`: the job is not there (any
                // more); release everything this TE holds for it.
                self.release_job_resources(ctx, job_id);
            }
        }
    }

    /// Flink's `establishJobManagerConnection`: monitor the JobMaster and offer every
    /// ALLOCATED slot of the job.
    fn establish_job_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master_id: JobMasterId,
    ) {
        let job = self.jobs.get_mut(&job_id).expect("registering");
        let JobLeader::Registering(reg) = &mut job.leader else {
            unreachable!("only a registration establishes a connection");
        };
        reg.cancel(ctx);
        let mut heartbeats = HeartbeatManager::for_job(
            HeartbeatPair::JobMasterTaskExecutor,
            Role::Receiver,
            Endpoint::TaskExecutor(self.me),
            Some(job_id),
            &self.config,
            self.bugs,
        );
        heartbeats.monitor_target(ctx, job.job_master);
        job.leader = JobLeader::Connected(JobManagerConnection {
            job_master_id,
            heartbeats,
        });
        ctx.trace(Obs::JobManagerConnected {
            job_id,
            job_master_id,
        });
        self.offer_slots(ctx, job_id);
    }

    /// Flink's `internalOfferSlotsToJobManager`: offers every ALLOCATED slot of the job under a
    /// fresh offer id, which supersedes any earlier offer.
    fn offer_slots(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        let job = self.jobs.get_mut(&job_id).expect("a job with slots");
        let JobLeader::Connected(conn) = &job.leader else {
            return;
        };
        let offers: Vec<SlotOffer> = self.task_slot_table.allocated_slots(job_id).collect();
        if offers.is_empty() {
            return;
        }
        if let Some(old) = job.offer.take() {
            ctx.cancel_timer(old.timeout);
        }
        self.next_offer_id += 1;
        let offer_id = self.next_offer_id;
        let timeout = ctx.set_timer(
            self.config.ask_timeout,
            Timer::OfferSlotsTimeout { job_id, offer_id },
        );
        ctx.send(
            job.job_master,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::OfferSlots {
                    job_master_id: conn.job_master_id,
                    offers: offers.clone(),
                    offer_id,
                },
            },
        );
        job.offer = Some(PendingOffer {
            offer_id,
            offers,
            timeout,
        });
    }

    /// Flink's `handleAcceptedSlotOffers`.
    fn on_offer_slots_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master_id: JobMasterId,
        offer_id: u64,
        accepted: &[AllocationId],
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        // Only the latest offer's answer counts (FLINK-21859): an older answer may accept slots
        // that a later offer re-offered or that were freed since.
        if job.offer.as_ref().is_none_or(|o| o.offer_id != offer_id) {
            return;
        }
        let offer = job.offer.take().expect("checked");
        ctx.cancel_timer(offer.timeout);
        let connection_unchanged = matches!(
            &job.leader,
            JobLeader::Connected(c) if c.job_master_id == job_master_id
        );
        if !connection_unchanged {
            return; // a new JobMaster leader; it gets its own offer
        }
        let job_master = job.job_master;
        for o in offer.offers {
            if accepted.contains(&o.allocation_id) {
                if !self
                    .task_slot_table
                    .mark_slot_active(ctx, o.allocation_id, job_id)
                {
                    // Accepted, but the slot timed out or was freed meanwhile: the JobMaster
                    // must not use it.
                    ctx.send(
                        job_master,
                        Msg::JobMaster {
                            job_id,
                            rpc: JobMasterRpc::FailSlot {
                                allocation_id: o.allocation_id,
                            },
                        },
                    );
                }
            } else {
                self.free_slot_internal(ctx, o.allocation_id, "the JobMaster rejected the slot");
            }
        }
    }

    /// The JM ↔ TE heartbeat request, with the JobMaster's `AllocatedSlotReport`.
    fn on_heartbeat_from_job_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        allocated: &[AllocationId],
    ) {
        let Some(Job {
            leader: JobLeader::Connected(conn),
            ..
        }) = self.jobs.get_mut(&job_id)
        else {
            return; // no connection for the job: the payload is ignored
        };
        // Another JobMaster instance of the job is another heartbeat origin; only the connected
        // one is monitored, and an unmonitored origin gets no answer.
        if conn.job_master_id != job_master_id || !conn.heartbeats.report_heartbeat(ctx, from) {
            return;
        }
        // The `ExecutionDeploymentReport`: the attempts of this job still running here.
        let deployed: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.job_id() == job_id && !t.state().is_terminal())
            .map(Task::attempt)
            .collect();
        ctx.send(
            from,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::HeartbeatFromTaskManager { deployed },
            },
        );
        self.sync_slots_with_snapshot_from_job_master(ctx, from, job_id, allocated);
    }

    /// Flink's `syncSlotsWithSnapshotFromJobMaster`: a slot the JobMaster lists but this TE does
    /// not hold for the job is failed at the JobMaster; an ACTIVE slot it no longer lists is
    /// freed here.
    fn sync_slots_with_snapshot_from_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_master: NodeId,
        job_id: JobId,
        allocated: &[AllocationId],
    ) {
        for &allocation_id in allocated {
            if !self.task_slot_table.is_allocated(allocation_id, job_id) {
                ctx.send(
                    job_master,
                    Msg::JobMaster {
                        job_id,
                        rpc: JobMasterRpc::FailSlot { allocation_id },
                    },
                );
            }
        }
        let unused: Vec<AllocationId> = self
            .task_slot_table
            .active_allocations(job_id)
            .filter(|a| !allocated.contains(a))
            .collect();
        for allocation_id in unused {
            self.free_slot_internal(ctx, allocation_id, "the JobMaster no longer holds the slot");
        }
    }

    /// The JobMaster of `job_id` was lost (heartbeat timeout or unreachable).
    fn job_manager_lost(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId, cause: LossCause) {
        let job_master = self.jobs[&job_id].job_master;
        // Declared before the monitor stops, so observers see the loss while it is monitored.
        ctx.trace(Obs::TargetLost {
            observer: Endpoint::TaskExecutor(self.me),
            target: Endpoint::JobMaster(job_master, job_id),
            cause,
        });
        let disconnect_cause = match cause {
            LossCause::HeartbeatTimeout => DisconnectCause::HeartbeatTimeout,
            _ => DisconnectCause::Unreachable,
        };
        self.disconnect_job_manager_connection(ctx, job_id, Some(disconnect_cause));
    }

    /// Flink's `disconnectAndTryReconnectToJobManager` (docs/flink-runtime.md §5.3): fail the job's tasks,
    /// park its ACTIVE slots (ALLOCATED with a fresh timeout), drop the connection and register
    /// again, so a new leader can accept the parked slots. `notify` is the cause sent to the
    /// JobMaster (`disconnectTaskManager`); `None` when the JobMaster closed the connection.
    fn disconnect_job_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        notify: Option<DisconnectCause>,
    ) {
        assert!(self.job_manager_connection(job_id).is_some());
        // 1. Fail the job's tasks; they report to the JobMaster that submitted them.
        let live: Vec<ExecutionAttemptId> = self
            .tasks
            .values()
            .filter(|t| t.job_id() == job_id && t.can_fail())
            .map(Task::attempt)
            .collect();
        for attempt in live {
            self.fail_task(
                ctx,
                attempt,
                format!("Disconnect from JobManager responsible for job {job_id}"),
            );
        }
        // 2. Park the ACTIVE slots.
        let active: Vec<AllocationId> = self.task_slot_table.active_allocations(job_id).collect();
        for allocation_id in active {
            let parked = self.task_slot_table.mark_slot_inactive(ctx, allocation_id);
            assert!(parked);
        }
        // 3. Disassociate.
        let job = self.jobs.remove(&job_id).expect("connected");
        let job_master = job.job_master;
        self.close_job_leader(ctx, job_id, job, notify);
        // 4. Register again, so a new leader can accept the parked slots. (Only the planted
        // slot bug can leave a connected job without slots.)
        if self.task_slot_table.has_allocations(job_id) {
            self.start_job_leader_registration(ctx, job_id, job_master);
        }
    }

    /// Closes a job's JobMaster connection or registration (the entry is already out of the
    /// table), telling the JobMaster when `notify` is set.
    fn close_job_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job: Job,
        notify: Option<DisconnectCause>,
    ) {
        if let Some(offer) = job.offer {
            ctx.cancel_timer(offer.timeout);
        }
        match job.leader {
            JobLeader::Registering(mut reg) => reg.cancel(ctx),
            JobLeader::Connected(mut conn) => {
                conn.heartbeats.unmonitor_target(ctx, job.job_master);
                if let Some(cause) = notify {
                    ctx.send(
                        job.job_master,
                        Msg::JobMaster {
                            job_id,
                            rpc: JobMasterRpc::DisconnectTaskManager {
                                resource_id: self.me,
                                cause,
                            },
                        },
                    );
                }
                ctx.trace(Obs::JobManagerDisconnected { job_id });
            }
        }
    }

    /// The job has no slots here any more (`closeJobManagerConnectionIfNoAllocatedResources`):
    /// the connection closes for good.
    fn close_job(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        assert!(!self.task_slot_table.has_allocations(job_id));
        if let Some(job) = self.jobs.remove(&job_id) {
            self.close_job_leader(ctx, job_id, job, Some(DisconnectCause::Reconnect));
        }
        if let Some(ha) = self.ha.as_mut() {
            ha.call(ctx, |c, _| {
                c.remove_leader_retrieval(&job_component(job_id));
                ((), Vec::new())
            });
            self.job_leaders.remove(&job_id);
        }
    }

    /// Flink's `releaseJobResources`: frees every slot of the job (the last one closes it).
    fn release_job_resources(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
        let allocations: Vec<AllocationId> =
            self.task_slot_table.allocations_of_job(job_id).collect();
        for allocation_id in allocations {
            self.free_slot_internal(
                ctx,
                allocation_id,
                "the JobMaster rejected the registration",
            );
        }
        if self.jobs.contains_key(&job_id) {
            self.close_job(ctx, job_id);
        }
    }

    // ------------------------------------------------------------------------------------
    // Tasks
    // ------------------------------------------------------------------------------------

    fn on_submit_task(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        tdd: TaskDeploymentDescriptor,
        job_master_id: JobMasterId,
    ) {
        let (job_id, attempt) = (tdd.job_id, tdd.attempt);
        let answer = |ctx: &mut Ctx<'_, Flink>, ok: bool| {
            ctx.send(
                from,
                Msg::JobMaster {
                    job_id,
                    rpc: JobMasterRpc::SubmitTaskResponse { attempt, ok },
                },
            )
        };
        if let Some(task) = self.tasks.get(&attempt) {
            // A duplicated delivery of a submission that was accepted: acknowledge it again
            // rather than fail an attempt that runs (Flink's TCP never duplicates).
            assert_eq!(task.job_id(), job_id);
            answer(ctx, task.job_master_id() == job_master_id);
            return;
        }
        // Flink's `TaskSubmissionException` cases: no connection to this JobMaster, or the slot
        // is not (or no longer) allocated to the job.
        let job_master = match self.jobs.get(&job_id) {
            Some(Job {
                job_master,
                leader: JobLeader::Connected(c),
                ..
            }) if c.job_master_id == job_master_id => *job_master,
            // The planted bug takes the call from whichever JobMaster sent it.
            Some(_) if self.bugs.has(Bug::NoFencingCheck) => from,
            Some(Job {
                leader: JobLeader::Connected(c),
                ..
            }) if self.ha.is_some() && c.job_master_id != job_master_id => {
                ctx.trace(Obs::FencedCallRejected {
                    call: "submitTask".into(),
                    token: job_master_id,
                });
                return answer(ctx, false);
            }
            _ => return answer(ctx, false),
        };
        if self.ha.is_some() {
            ctx.trace(Obs::FencedCallAccepted {
                call: "submitTask".into(),
                token: job_master_id,
            });
        }
        // Flink's `tryMarkSlotActive`: a JobMaster that deploys into a slot holds it, so an
        // ALLOCATED slot becomes ACTIVE here even if the answer to its offer was lost.
        if !self
            .task_slot_table
            .mark_slot_active(ctx, tdd.allocation_id, job_id)
        {
            return answer(ctx, false);
        }
        let task = Task::deploy(
            ctx,
            tdd,
            job_master,
            job_master_id,
            self.bugs,
            self.config.ask_timeout,
        );
        self.tasks.insert(attempt, task);
        answer(ctx, true);
    }

    fn on_task_step(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        timer: TimerId,
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if !task.is_step(timer) {
            return; // superseded (cancelled, failed)
        }
        task.on_step_fired();
        match task.state() {
            ExecutionState::Deploying => {
                self.transition_task(ctx, attempt, ExecutionState::Initializing, None);
                let task = self.tasks.get_mut(&attempt).expect("live");
                task.arm_step(ctx, TASK_INITIALIZE_DURATION);
                // Restore state and initialise the sink writer meanwhile.
                task.stream.start_initialize(ctx);
                self.after_stream(ctx, attempt);
            }
            ExecutionState::Initializing => {
                task.initialize_elapsed = true;
                self.maybe_start_running(ctx, attempt);
            }
            ExecutionState::Running => {
                // Only a source has a step while RUNNING: its next fetch from the log.
                assert!(task.is_source());
                task.fetch_tick(ctx, self.config.ask_timeout);
                self.after_stream(ctx, attempt);
            }
            ExecutionState::Canceling => {
                self.transition_task(ctx, attempt, ExecutionState::Canceled, None);
            }
            s => unreachable!("task step in {s}"),
        }
    }

    /// INITIALIZING → RUNNING once both the minimum duration passed and the stream (restore,
    /// sink writer) is initialised.
    fn maybe_start_running(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId) {
        let Some(task) = self.tasks.get(&attempt) else {
            return;
        };
        if task.state() != ExecutionState::Initializing
            || !task.initialize_elapsed
            || !task.stream.is_initialized()
        {
            return;
        }
        self.transition_task(ctx, attempt, ExecutionState::Running, None);
        let task = self.tasks.get_mut(&attempt).expect("live");
        if task.is_source() {
            if task.start_reading(ctx, self.config.ask_timeout) {
                task.stream.source_end(ctx);
            }
        } else {
            task.request_partitions(ctx);
            task.stream.process(ctx);
        }
        self.after_stream(ctx, attempt);
    }

    /// Hands a RUNNING task to `f` (anything else ignores the event), then settles its stream.
    fn with_running_stream(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        f: impl FnOnce(&mut Task, &mut Ctx<'_, Flink>),
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if task.state() != ExecutionState::Running {
            return;
        }
        f(task, ctx);
        self.after_stream(ctx, attempt);
    }

    /// After the stream of a task handled something: fail the task if the stream asks, finish
    /// it if it may, and keep its resend tick armed while it needs one.
    fn after_stream(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if let Some(error) = task.stream.take_failure() {
            if task.can_fail() {
                self.fail_task(ctx, attempt, error);
            }
            return;
        }
        if task.state() == ExecutionState::Running && task.stream.can_finish() {
            self.transition_task(ctx, attempt, ExecutionState::Finished, None);
            return;
        }
        if matches!(
            task.state(),
            ExecutionState::Running | ExecutionState::Initializing | ExecutionState::Finished
        ) {
            task.arm_tick(ctx);
        }
    }

    fn on_cancel_task(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId) {
        // Unknown or already terminal: nothing to cancel. A repeated cancel of a cancelling task
        // changes nothing either.
        let Some(task) = self.tasks.get(&attempt) else {
            return;
        };
        if !task.can_fail() {
            return;
        }
        self.transition_task(ctx, attempt, ExecutionState::Canceling, None);
        let task = self.tasks.get_mut(&attempt).expect("live");
        task.arm_step(ctx, TASK_CANCEL_DURATION);
    }

    fn on_update_task_execution_state_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        ok: bool,
    ) {
        let Some(task) = self.tasks.get_mut(&attempt) else {
            return;
        };
        if ok {
            task.on_update_acknowledged(ctx);
        } else if task.can_fail() {
            // The JobMaster does not know the attempt (stale, or from an older JobMaster): Flink
            // fails the task when the update RPC fails.
            self.fail_task(
                ctx,
                attempt,
                "the JobMaster rejected the state update (unknown execution attempt)".to_string(),
            );
        }
    }

    /// `failExternally`: a live task fails (a cancelling one completes its cancellation).
    fn fail_task(&mut self, ctx: &mut Ctx<'_, Flink>, attempt: ExecutionAttemptId, error: String) {
        if self.tasks.get(&attempt).is_some_and(Task::can_fail) {
            self.transition_task(ctx, attempt, ExecutionState::Failed, Some(error));
        }
    }

    /// Moves a task to `to` and reports it to its JobMaster. A finishing producer first sends
    /// end of partition to every consumer that asked for its partition.
    fn transition_task(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        to: ExecutionState,
        error: Option<String>,
    ) {
        let task = self.tasks.get_mut(&attempt).expect("a known task");
        if to == ExecutionState::Finished {
            // End of partition travels in-band, behind the last buffers.
            task.stream.finish(ctx);
            task.arm_tick(ctx);
        }
        task.transition(ctx, to, error);
        if to != ExecutionState::Canceling {
            task.report_state(ctx, self.config.ask_timeout);
        }
        if to.is_terminal() {
            self.retain_terminal(attempt);
        }
    }

    fn retain_terminal(&mut self, attempt: ExecutionAttemptId) {
        assert!(!self.terminal_tasks.contains(&attempt));
        self.terminal_tasks.push(attempt);
        if self.terminal_tasks.len() > TERMINAL_TASKS_RETAINED_MAX {
            let oldest = self.terminal_tasks.remove(0);
            let task = self.tasks.remove(&oldest).expect("retained");
            assert!(task.state().is_terminal());
        }
    }

    /// Data plane, producer side: a consumer asks for `producer`'s partition.
    fn on_request_subpartition(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
    ) {
        let reply = match self.tasks.get_mut(&producer) {
            // Finished: the partition is still served until its consumer has it all.
            Some(t) if t.state() == ExecutionState::Finished => {
                t.stream.on_consumer(ctx, consumer, from);
                t.arm_tick(ctx);
                return;
            }
            Some(t) if !t.state().is_terminal() => {
                t.add_consumer(consumer, from);
                t.stream.on_consumer(ctx, consumer, from);
                t.arm_tick(ctx);
                return;
            }
            // Unknown here, or failed/cancelled (its partition was released).
            _ => TaskExecutorRpc::PartitionNotFound { producer, consumer },
        };
        ctx.send(from, Msg::TaskExecutor(reply));
    }

    // ------------------------------------------------------------------------------------
    // Invariants
    // ------------------------------------------------------------------------------------

    /// Cross-structure invariants, checked after every event in debug builds. The planted slot
    /// bug breaks the slot/task relation on purpose (oracles must catch it, not these asserts).
    fn check_invariants(&self) {
        // O(slots + tasks) after every event: debug builds (the tests) only.
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(self.terminal_tasks.len() <= TERMINAL_TASKS_RETAINED_MAX);
        // Every job with slots has a job leader entry; no entry outlives its slots.
        for (_, slot) in self.task_slot_table.slots() {
            if let Some((_, job_id, _)) = slot {
                assert!(self.jobs.contains_key(&job_id));
            }
        }
        if self.bugs.has(Bug::SlotDoubleAllocation) {
            return;
        }
        for job_id in self.jobs.keys() {
            assert!(self.task_slot_table.has_allocations(*job_id));
        }
        for task in self.tasks.values() {
            // A task's slot lives as long as the task (freeing a slot removes its tasks) ...
            assert!(self
                .task_slot_table
                .is_allocated(task.allocation_id(), task.job_id()));
            // ... and a live task runs in an ACTIVE slot (a lost JobMaster fails the tasks
            // before parking the slots).
            if task.can_fail() {
                assert!(self
                    .task_slot_table
                    .is_active(task.allocation_id(), task.job_id()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::checkpoint::StreamElement;
    use crate::protocol::rpc::{InputChannel, SlotStatus, SourceAssignment, StreamConfig};
    use crate::taskmanager::task::{
        PARTITION_REQUEST_BACKOFF_INITIAL, PARTITION_REQUEST_BACKOFF_MAX,
        PARTITION_REQUEST_RESEND_INTERVAL, TASK_DEPLOY_DURATION,
    };
    use sim::{Effect, Time, Timers};
    use std::time::Duration;

    const RM: NodeId = NodeId(0);
    /// The JobMaster runs in the JobManager process, with the ResourceManager.
    const JM: NodeId = NodeId(0);
    const TE: NodeId = NodeId(1);
    const OTHER_TE: NodeId = NodeId(2);
    const RM_ID: ResourceManagerId = 77;
    const INSTANCE: InstanceId = 5;
    const JOB: JobId = 42;
    const JM_ID: JobMasterId = 900;

    type Effects = Vec<Effect<Flink>>;

    /// Drives one TaskExecutor by hand: every handler runs in a detached context, armed timers
    /// are remembered so a test can fire them, and the effects are returned for inspection.
    struct Harness {
        te: TaskExecutor,
        rng: sim::Rng,
        timers: Timers,
        now: Time,
        pending: Vec<(Time, TimerId, Duration, Timer)>,
    }

    impl Harness {
        fn new(bugs: Bugs) -> Harness {
            let mut config = FlinkConfig::default();
            config.set("taskmanager.numberOfTaskSlots", "2").unwrap();
            Harness {
                te: TaskExecutor::new(TE, RM, &config, bugs),
                rng: sim::rng::stream(7, "task-executor-test", 0),
                timers: Timers::default(),
                now: Time::ZERO,
                pending: Vec::new(),
            }
        }

        fn step(&mut self, f: impl FnOnce(&mut TaskExecutor, &mut Ctx<'_, Flink>)) -> Effects {
            let mut out = Vec::new();
            {
                let mut ctx =
                    Ctx::detached(TE, self.now, &mut self.rng, &mut self.timers, &mut out);
                f(&mut self.te, &mut ctx);
            }
            for e in &out {
                if let Effect::SetTimer { id, after, tag } = e {
                    self.pending
                        .push((self.now + *after, *id, *after, tag.clone()));
                }
            }
            out
        }

        fn rpc(&mut self, from: NodeId, rpc: TaskExecutorRpc) -> Effects {
            self.step(|te, ctx| te.on_rpc(ctx, from, rpc))
        }

        fn unreachable(&mut self, to: NodeId, msg: Msg) -> Effects {
            self.step(|te, ctx| te.on_unreachable(ctx, to, &msg))
        }

        /// The armed timers matching `pred`, as (delay they were armed with, tag).
        fn armed(&mut self, pred: impl Fn(&Timer) -> bool) -> Vec<(Duration, Timer)> {
            let timers = &self.timers;
            self.pending.retain(|(_, id, _, _)| timers.is_armed(*id));
            self.pending
                .iter()
                .filter(|(_, _, _, t)| pred(t))
                .map(|(_, _, after, t)| (*after, t.clone()))
                .collect()
        }

        /// Fires the earliest armed timer matching `pred`, as the kernel would when it pops.
        fn fire(&mut self, pred: impl Fn(&Timer) -> bool) -> Effects {
            let timers = &self.timers;
            self.pending.retain(|(_, id, _, _)| timers.is_armed(*id));
            let i = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, (_, _, _, t))| pred(t))
                .min_by_key(|(_, (at, _, _, _))| *at)
                .map(|(i, _)| i)
                .expect("an armed timer matches");
            let (at, id, _, tag) = self.pending.remove(i);
            self.now = self.now.max(at);
            assert!(self.timers.cancel(id));
            self.step(|te, ctx| te.on_timer(ctx, id, tag))
        }

        fn fire_step(&mut self, attempt: ExecutionAttemptId) -> Effects {
            self.fire(|t| *t == Timer::TaskStep { attempt })
        }

        fn state_of(&self, attempt: ExecutionAttemptId) -> Option<ExecutionState> {
            self.te.tasks().find(|(a, _)| *a == attempt).map(|(_, s)| s)
        }
    }

    fn sent(out: &Effects) -> Vec<(NodeId, &Msg)> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg } => Some((*to, msg)),
                _ => None,
            })
            .collect()
    }

    fn traces(out: &Effects) -> Vec<&Obs> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Trace(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    fn to_job_master(out: &Effects) -> Vec<&JobMasterRpc> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::JobMaster { job_id, rpc } => {
                    assert_eq!(to, JM);
                    assert_eq!(*job_id, JOB);
                    Some(rpc)
                }
                _ => None,
            })
            .collect()
    }

    fn to_resource_manager(out: &Effects) -> Vec<&ResourceManagerRpc> {
        sent(out)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Msg::ResourceManager(r) => {
                    assert_eq!(to, RM);
                    Some(r)
                }
                _ => None,
            })
            .collect()
    }

    /// The state reports (`updateTaskExecutionState`) in `out`, in order.
    fn reports(out: &Effects) -> Vec<(ExecutionAttemptId, ExecutionState)> {
        to_job_master(out)
            .into_iter()
            .filter_map(|r| match r {
                JobMasterRpc::UpdateTaskExecutionState {
                    job_master_id,
                    attempt,
                    state,
                    ..
                } => {
                    assert_eq!(*job_master_id, JM_ID);
                    Some((*attempt, *state))
                }
                _ => None,
            })
            .collect()
    }

    fn request_slot_answer(out: &Effects) -> Option<(AllocationId, bool)> {
        to_resource_manager(out).into_iter().find_map(|r| match r {
            ResourceManagerRpc::RequestSlotResponse { allocation_id, ok } => {
                Some((*allocation_id, *ok))
            }
            _ => None,
        })
    }

    fn registration_attempt(out: &Effects) -> Option<u64> {
        to_job_master(out).into_iter().find_map(|r| match r {
            JobMasterRpc::RegisterTaskManager { attempt_id, .. } => Some(*attempt_id),
            _ => None,
        })
    }

    fn offer(out: &Effects) -> Option<(u64, Vec<SlotOffer>)> {
        to_job_master(out).into_iter().find_map(|r| match r {
            JobMasterRpc::OfferSlots {
                job_master_id,
                offers,
                offer_id,
            } => {
                assert_eq!(*job_master_id, JM_ID);
                Some((*offer_id, offers.clone()))
            }
            _ => None,
        })
    }

    fn submit_answer(out: &Effects) -> Option<bool> {
        to_job_master(out).into_iter().find_map(|r| match r {
            JobMasterRpc::SubmitTaskResponse { ok, .. } => Some(*ok),
            _ => None,
        })
    }

    /// A TaskExecutor registered at the RM.
    fn registered(bugs: Bugs) -> Harness {
        let mut h = Harness::new(bugs);
        let out = h.step(|te, ctx| te.on_start(ctx));
        let attempt_id = to_resource_manager(&out)
            .into_iter()
            .find_map(|r| match r {
                ResourceManagerRpc::RegisterTaskExecutor { attempt_id, .. } => Some(*attempt_id),
                _ => None,
            })
            .expect("registers at the RM");
        h.rpc(
            RM,
            TaskExecutorRpc::RegistrationResponse {
                attempt_id,
                response: RegistrationResponse::Success {
                    instance_id: INSTANCE,
                    resource_manager_id: RM_ID,
                },
            },
        );
        assert_eq!(h.te.connected_instance(), Some(INSTANCE));
        h
    }

    fn request_slot(h: &mut Harness, slot_index: u32, allocation_id: AllocationId) -> Effects {
        h.rpc(
            RM,
            TaskExecutorRpc::RequestSlot {
                slot_id: SlotId {
                    task_manager: TE,
                    slot_index,
                },
                job_id: JOB,
                allocation_id,
                job_master: JM,
                resource_manager_id: RM_ID,
            },
        )
    }

    fn registration_success(h: &mut Harness, attempt_id: u64) -> Effects {
        h.rpc(
            JM,
            TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id: JOB,
                attempt_id,
                response: TaskManagerRegistration::Success {
                    job_master_id: JM_ID,
                },
            },
        )
    }

    fn offer_response(h: &mut Harness, offer_id: u64, accepted: Vec<AllocationId>) -> Effects {
        h.rpc(
            JM,
            TaskExecutorRpc::OfferSlotsResponse {
                job_id: JOB,
                job_master_id: JM_ID,
                offer_id,
                accepted,
            },
        )
    }

    /// Registered at the RM, slot 0 allocated as `allocation_id`, connected to the JobMaster and
    /// (when `accept`) the slot accepted.
    fn connected(allocation_id: AllocationId, accept: bool) -> Harness {
        connected_with(Bugs::NONE, allocation_id, accept)
    }

    fn connected_with(bugs: Bugs, allocation_id: AllocationId, accept: bool) -> Harness {
        let mut h = registered(bugs);
        let out = request_slot(&mut h, 0, allocation_id);
        let attempt_id = registration_attempt(&out).expect("registers at the JobMaster");
        let out = registration_success(&mut h, attempt_id);
        assert!(traces(&out).contains(&&Obs::JobManagerConnected {
            job_id: JOB,
            job_master_id: JM_ID
        }));
        let (offer_id, offers) = offer(&out).expect("offers the slot");
        assert_eq!(
            offers,
            vec![SlotOffer {
                allocation_id,
                slot_index: 0
            }]
        );
        if accept {
            let out = offer_response(&mut h, offer_id, vec![allocation_id]);
            assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id }));
        }
        h
    }

    fn attempt(vertex: u32, subtask: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            graph: 1,
            vertex: ExecutionVertexId {
                vertex: JobVertexId(vertex),
                subtask,
            },
            attempt: 0,
        }
    }

    /// The `source` log node of the hand-driven tests.
    const SOURCE_LOG: NodeId = NodeId(90);

    /// The log's answer that hands `reader` all 1000 records of `partition`.
    fn read_all(reader: ExecutionAttemptId, partition: u32) -> TaskExecutorRpc {
        TaskExecutorRpc::SourceRecords {
            reader,
            partition,
            offset: 0,
            count: 1000,
            end_offset: 1000,
        }
    }

    fn source_tdd(a: ExecutionAttemptId, allocation_id: AllocationId) -> TaskDeploymentDescriptor {
        TaskDeploymentDescriptor {
            job_id: JOB,
            attempt: a,
            allocation_id,
            task_name: "Source: sequence (1/1)#0".into(),
            source: Some(SourceAssignment {
                log: SOURCE_LOG,
                partitions: vec![0, 1],
                records_per_partition: 1000,
                rate_per_sec: Some(100),
            }),
            inputs: Vec::new(),
            stream: std::sync::Arc::new(crate::protocol::rpc::StreamConfig::minimal()),
            subtask: 0,
            restore: None,
        }
    }

    fn consumer_tdd(
        a: ExecutionAttemptId,
        allocation_id: AllocationId,
        inputs: Vec<InputChannel>,
    ) -> TaskDeploymentDescriptor {
        TaskDeploymentDescriptor {
            job_id: JOB,
            attempt: a,
            allocation_id,
            task_name: "count (1/1)#0".into(),
            source: None,
            inputs,
            stream: std::sync::Arc::new(crate::protocol::rpc::StreamConfig::minimal()),
            subtask: 0,
            restore: None,
        }
    }

    fn submit(
        h: &mut Harness,
        tdd: TaskDeploymentDescriptor,
        job_master_id: JobMasterId,
    ) -> Effects {
        h.rpc(
            JM,
            TaskExecutorRpc::SubmitTask {
                tdd: Box::new(tdd),
                job_master_id,
            },
        )
    }

    /// Submits `tdd` and drives it to RUNNING.
    fn running(h: &mut Harness, tdd: TaskDeploymentDescriptor) -> Effects {
        let a = tdd.attempt;
        assert_eq!(submit_answer(&submit(h, tdd, JM_ID)), Some(true));
        h.fire_step(a);
        let out = h.fire_step(a);
        assert_eq!(h.state_of(a), Some(ExecutionState::Running));
        out
    }

    // ---- requestSlot ----

    #[test]
    fn request_slot_allocates_acks_and_registers_at_the_job_master() {
        let mut h = registered(Bugs::NONE);
        let out = request_slot(&mut h, 1, 100);
        assert_eq!(request_slot_answer(&out), Some((100, true)));
        assert!(traces(&out).contains(&&Obs::SlotAllocated {
            slot_index: 1,
            allocation_id: 100,
            job_id: JOB
        }));
        assert!(registration_attempt(&out).is_some());
        assert_eq!(
            h.te.slots().collect::<Vec<_>>(),
            vec![(0, None), (1, Some((100, JOB, false)))]
        );
        assert_eq!(
            h.armed(|t| matches!(
                t,
                Timer::SlotTimeout {
                    allocation_id: 100,
                    ..
                }
            ))[0]
                .0,
            h.te.config.taskmanager_slot_timeout
        );
        // The RM heartbeat carries the allocation.
        let out = h.rpc(
            RM,
            TaskExecutorRpc::HeartbeatFromResourceManager { resource_id: RM },
        );
        let report = to_resource_manager(&out)
            .into_iter()
            .find_map(|r| match r {
                ResourceManagerRpc::HeartbeatFromTaskManager { slot_report, .. } => {
                    Some(slot_report.clone())
                }
                _ => None,
            })
            .expect("answers the RM heartbeat");
        assert_eq!(
            report,
            vec![
                SlotStatus {
                    slot_index: 0,
                    allocation: None
                },
                SlotStatus {
                    slot_index: 1,
                    allocation: Some((100, JOB))
                }
            ]
        );
    }

    #[test]
    fn request_slot_for_the_same_allocation_is_idempotent() {
        let mut h = registered(Bugs::NONE);
        request_slot(&mut h, 0, 100);
        let out = request_slot(&mut h, 0, 100);
        assert_eq!(request_slot_answer(&out), Some((100, true)));
        assert!(traces(&out).is_empty(), "nothing changes: {out:?}");
        assert_eq!(registration_attempt(&out), None, "already registering");
    }

    #[test]
    fn request_slot_for_an_occupied_slot_is_refused() {
        let mut h = registered(Bugs::NONE);
        request_slot(&mut h, 0, 100);
        let out = request_slot(&mut h, 0, 200);
        assert_eq!(request_slot_answer(&out), Some((200, false)));
        assert!(traces(&out).is_empty());
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, false)))));
    }

    #[test]
    fn request_slot_is_refused_unless_connected_to_that_resource_manager() {
        let mut h = Harness::new(Bugs::NONE);
        h.step(|te, ctx| te.on_start(ctx));
        let out = request_slot(&mut h, 0, 100);
        assert_eq!(
            request_slot_answer(&out),
            Some((100, false)),
            "not registered yet"
        );

        let mut h = registered(Bugs::NONE);
        let stale = |h: &mut Harness, from: NodeId, resource_manager_id| {
            h.rpc(
                from,
                TaskExecutorRpc::RequestSlot {
                    slot_id: SlotId {
                        task_manager: TE,
                        slot_index: 0,
                    },
                    job_id: JOB,
                    allocation_id: 100,
                    job_master: JM,
                    resource_manager_id,
                },
            )
        };
        let out = stale(&mut h, RM, RM_ID + 1);
        assert_eq!(
            request_slot_answer(&out),
            Some((100, false)),
            "old RM leader"
        );
        let out = stale(&mut h, OTHER_TE, RM_ID);
        assert_eq!(
            sent(&out),
            vec![(
                OTHER_TE,
                &Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse {
                    allocation_id: 100,
                    ok: false
                })
            )],
            "not the RM"
        );
        assert!(h.te.slots().all(|(_, s)| s.is_none()));
    }

    #[test]
    fn planted_slot_double_allocation_reassigns_an_occupied_slot() {
        let mut h = registered(Bugs::NONE.with(Bug::SlotDoubleAllocation));
        request_slot(&mut h, 0, 100);
        let out = request_slot(&mut h, 0, 200);
        assert_eq!(request_slot_answer(&out), Some((200, true)));
        let t = traces(&out);
        assert!(t.contains(&&Obs::SlotAllocated {
            slot_index: 0,
            allocation_id: 200,
            job_id: JOB
        }));
        assert!(
            !t.iter().any(|o| matches!(o, Obs::SlotFreed { .. })),
            "silently"
        );
        assert_eq!(h.te.slots().next(), Some((0, Some((200, JOB, false)))));
    }

    // ---- JobMaster connection and offers ----

    #[test]
    fn accepted_offer_activates_the_slot() {
        let h = connected(100, true);
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, true)))));
        assert_eq!(h.te.job_manager_connection(JOB), Some(JM_ID));
    }

    #[test]
    fn duplicate_registration_success_is_ignored() {
        let mut h = registered(Bugs::NONE);
        let out = request_slot(&mut h, 0, 100);
        let attempt_id = registration_attempt(&out).unwrap();
        registration_success(&mut h, attempt_id);
        let out = registration_success(&mut h, attempt_id);
        assert!(out.is_empty(), "FLINK-7526: {out:?}");
    }

    #[test]
    fn rejected_offer_frees_the_slot_and_closes_the_job() {
        let mut h = connected(100, false);
        let (offer_id, _) = h
            .armed(|t| matches!(t, Timer::OfferSlotsTimeout { .. }))
            .into_iter()
            .find_map(|(_, t)| match t {
                Timer::OfferSlotsTimeout { offer_id, .. } => Some((offer_id, ())),
                _ => None,
            })
            .unwrap();
        let out = offer_response(&mut h, offer_id, vec![]);
        let t = traces(&out);
        assert!(t.contains(&&Obs::SlotFreed {
            slot_index: 0,
            allocation_id: 100
        }));
        assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
        assert!(
            to_resource_manager(&out).contains(&&ResourceManagerRpc::NotifySlotAvailable {
                instance_id: INSTANCE,
                slot_id: SlotId {
                    task_manager: TE,
                    slot_index: 0
                },
                allocation_id: 100
            })
        );
        assert_eq!(
            registration_attempt(&out),
            None,
            "no slots: no re-registration"
        );
        assert_eq!(h.te.job_manager_connection(JOB), None);
    }

    #[test]
    fn only_the_latest_offer_is_answered() {
        let mut h = connected(100, false);
        let first = match &h.armed(|t| matches!(t, Timer::OfferSlotsTimeout { .. }))[0].1 {
            Timer::OfferSlotsTimeout { offer_id, .. } => *offer_id,
            _ => unreachable!(),
        };
        // The ask times out: the slots are offered again under a new id.
        let out = h.fire(|t| matches!(t, Timer::OfferSlotsTimeout { .. }));
        let (second, offers) = offer(&out).expect("re-offers");
        assert_ne!(first, second);
        assert_eq!(offers.len(), 1);
        let out = offer_response(&mut h, first, vec![100]);
        assert!(
            out.is_empty(),
            "FLINK-21859: a superseded answer is ignored"
        );
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, false)))));
        let out = offer_response(&mut h, second, vec![100]);
        assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
    }

    #[test]
    fn registration_rejection_releases_the_jobs_slots() {
        let mut h = registered(Bugs::NONE);
        let out = request_slot(&mut h, 0, 100);
        let attempt_id = registration_attempt(&out).unwrap();
        let out = h.rpc(
            JM,
            TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id: JOB,
                attempt_id,
                response: TaskManagerRegistration::Rejection,
            },
        );
        assert!(traces(&out).contains(&&Obs::SlotFreed {
            slot_index: 0,
            allocation_id: 100
        }));
        assert!(h.te.slots().all(|(_, s)| s.is_none()));
        assert!(h
            .armed(|t| matches!(
                t,
                Timer::RegistrationRetry { .. }
                    | Timer::RegistrationAttemptTimeout {
                        target: RegistrationTarget::JobMaster(_),
                        ..
                    }
            ))
            .is_empty());
    }

    #[test]
    fn unreachable_job_master_registration_retries_after_the_error_delay() {
        let mut h = registered(Bugs::NONE);
        let out = request_slot(&mut h, 0, 100);
        let attempt_id = registration_attempt(&out).unwrap();
        h.unreachable(
            JM,
            Msg::JobMaster {
                job_id: JOB,
                rpc: JobMasterRpc::RegisterTaskManager {
                    session_id: 0,
                    attempt_id,
                },
            },
        );
        let retry = h.armed(|t| {
            matches!(
                t,
                Timer::RegistrationRetry {
                    target: RegistrationTarget::JobMaster(JOB),
                    ..
                }
            )
        });
        assert_eq!(retry.len(), 1);
        assert_eq!(retry[0].0, h.te.config.registration_error_delay);
        let out = h.fire(|t| matches!(t, Timer::RegistrationRetry { .. }));
        assert!(registration_attempt(&out).is_some_and(|id| id != attempt_id));
    }

    // ---- submitTask ----

    #[test]
    fn submit_task_is_refused_without_a_job_master_connection() {
        let mut h = registered(Bugs::NONE);
        request_slot(&mut h, 0, 100);
        let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
        assert_eq!(submit_answer(&out), Some(false));
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn submit_task_is_refused_for_another_job_master_id() {
        let mut h = connected(100, true);
        let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID + 1);
        assert_eq!(submit_answer(&out), Some(false));
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn submit_task_is_refused_for_a_slot_the_job_does_not_hold() {
        let mut h = connected(100, true);
        let out = submit(&mut h, source_tdd(attempt(0, 0), 999), JM_ID);
        assert_eq!(submit_answer(&out), Some(false), "no such slot");
        // A slot of another job.
        let out = h.rpc(
            RM,
            TaskExecutorRpc::RequestSlot {
                slot_id: SlotId {
                    task_manager: TE,
                    slot_index: 1,
                },
                job_id: JOB + 1,
                allocation_id: 200,
                job_master: JM,
                resource_manager_id: RM_ID,
            },
        );
        assert_eq!(request_slot_answer(&out), Some((200, true)));
        let out = submit(&mut h, source_tdd(attempt(0, 0), 200), JM_ID);
        assert_eq!(submit_answer(&out), Some(false), "another job's slot");
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn submit_task_activates_an_allocated_slot_whose_acceptance_was_lost() {
        let mut h = connected(100, false);
        let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
        assert_eq!(submit_answer(&out), Some(true));
        assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
        assert!(h
            .armed(|t| matches!(t, Timer::SlotTimeout { .. }))
            .is_empty());
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, true)))));
    }

    #[test]
    fn task_lifecycle_is_reported_in_order() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        let mut out = submit(&mut h, source_tdd(a, 100), JM_ID);
        assert_eq!(submit_answer(&out), Some(true));
        assert_eq!(
            h.armed(|t| *t == Timer::TaskStep { attempt: a })[0].0,
            TASK_DEPLOY_DURATION
        );
        out.extend(h.fire_step(a));
        out.extend(h.fire_step(a));
        // RUNNING: each partition is fetched from the log, one interval's worth at a time
        // (100 records/s for 100 ms = 10 records).
        assert_eq!(
            h.armed(|t| *t == Timer::TaskStep { attempt: a })[0].0,
            crate::taskmanager::task::SOURCE_FETCH_INTERVAL
        );
        for partition in [0, 1] {
            let fetch = Msg::SourceLog(SourceLogRpc::Fetch {
                reader: a,
                partition,
                offset: 0,
                max_records: 10,
            });
            assert!(sent(&out).contains(&(SOURCE_LOG, &fetch)), "{fetch:?}");
        }
        for partition in [0, 1] {
            out.extend(h.rpc(SOURCE_LOG, read_all(a, partition)));
        }
        assert_eq!(
            reports(&out),
            vec![
                (a, ExecutionState::Initializing),
                (a, ExecutionState::Running),
                (a, ExecutionState::Finished)
            ]
        );
        let changes: Vec<(Option<ExecutionState>, ExecutionState)> = traces(&out)
            .into_iter()
            .filter_map(|o| match o {
                Obs::TaskStateChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (None, ExecutionState::Deploying),
                (
                    Some(ExecutionState::Deploying),
                    ExecutionState::Initializing
                ),
                (Some(ExecutionState::Initializing), ExecutionState::Running),
                (Some(ExecutionState::Running), ExecutionState::Finished),
            ]
        );
        assert_eq!(h.state_of(a), Some(ExecutionState::Finished));
        // The slot stays ACTIVE: the JobMaster frees slots.
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, true)))));
    }

    #[test]
    fn an_unknown_attempt_answer_fails_the_task() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.rpc(
            JM,
            TaskExecutorRpc::UpdateTaskExecutionStateResponse {
                attempt: a,
                ok: false,
            },
        );
        assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
        assert!(h.armed(|t| *t == Timer::TaskStep { attempt: a }).is_empty());
    }

    #[test]
    fn cancel_task_cancels_without_reporting_canceling() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.rpc(JM, TaskExecutorRpc::CancelTask { attempt: a });
        assert_eq!(h.state_of(a), Some(ExecutionState::Canceling));
        assert!(reports(&out).is_empty());
        let out = h.rpc(JM, TaskExecutorRpc::CancelTask { attempt: a });
        assert!(out.is_empty(), "a repeated cancel changes nothing");
        let out = h.fire_step(a);
        assert_eq!(reports(&out), vec![(a, ExecutionState::Canceled)]);
        assert!(h
            .rpc(JM, TaskExecutorRpc::CancelTask { attempt: a })
            .is_empty());
    }

    #[test]
    fn fail_task_signal_fails_the_running_subtask() {
        let code = fail_task_signal(JobVertexId(3), 1);
        assert_eq!(fail_task_of_signal(code), Some((JobVertexId(3), 1)));
        assert_eq!(fail_task_of_signal(0), None);

        let mut h = connected(100, true);
        let a = attempt(3, 1);
        running(&mut h, source_tdd(a, 100));
        let out = h.step(|te, ctx| te.on_signal(ctx, fail_task_signal(JobVertexId(3), 0)));
        assert!(out.is_empty(), "another subtask");
        let out = h.step(|te, ctx| te.on_signal(ctx, code));
        assert!(
            to_job_master(&out).contains(&&JobMasterRpc::UpdateTaskExecutionState {
                job_master_id: JM_ID,
                attempt: a,
                state: ExecutionState::Failed,
                error: Some(INJECTED_FAILURE.to_string()),
            })
        );
    }

    // ---- JobMaster heartbeats and loss ----

    #[test]
    fn job_master_heartbeat_is_answered_with_the_deployed_attempts() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.rpc(
            JM,
            TaskExecutorRpc::HeartbeatFromJobManager {
                job_id: JOB,
                job_master_id: JM_ID,
                allocated: vec![100, 555],
            },
        );
        let jm = to_job_master(&out);
        assert!(jm.contains(&&JobMasterRpc::HeartbeatFromTaskManager { deployed: vec![a] }));
        assert!(
            jm.contains(&&JobMasterRpc::FailSlot { allocation_id: 555 }),
            "the JobMaster lists a slot this TE does not hold"
        );
        assert!(traces(&out).is_empty(), "the listed slot stays");
        // Another JobMaster instance is not monitored: no answer.
        let out = h.rpc(
            JM,
            TaskExecutorRpc::HeartbeatFromJobManager {
                job_id: JOB,
                job_master_id: JM_ID + 1,
                allocated: vec![],
            },
        );
        assert!(out.is_empty());
        // The JobMaster no longer lists the ACTIVE slot: it is freed, failing its task.
        let out = h.rpc(
            JM,
            TaskExecutorRpc::HeartbeatFromJobManager {
                job_id: JOB,
                job_master_id: JM_ID,
                allocated: vec![],
            },
        );
        assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
        assert!(traces(&out).contains(&&Obs::SlotFreed {
            slot_index: 0,
            allocation_id: 100
        }));
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn job_master_heartbeat_loss_fails_tasks_and_parks_slots() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.fire(|t| {
            matches!(
                t,
                Timer::HeartbeatTimeout {
                    pair: HeartbeatPair::JobMasterTaskExecutor,
                    ..
                }
            )
        });
        let t = traces(&out);
        let lost = t
            .iter()
            .position(|o| {
                **o == Obs::TargetLost {
                    observer: Endpoint::TaskExecutor(TE),
                    target: Endpoint::JobMaster(JM, JOB),
                    cause: LossCause::HeartbeatTimeout,
                }
            })
            .expect("declares the JobMaster lost");
        let stopped = t
            .iter()
            .position(|o| matches!(o, Obs::HeartbeatMonitorStopped { .. }))
            .expect("unmonitors");
        assert!(lost < stopped);
        assert!(t.contains(&&Obs::SlotDeactivated { allocation_id: 100 }));
        assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
        assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
        assert_eq!(h.state_of(a), Some(ExecutionState::Failed));
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, false)))));
        assert!(registration_attempt(&out).is_some(), "re-registers");
        assert!(
            to_job_master(&out).contains(&&JobMasterRpc::DisconnectTaskManager {
                resource_id: TE,
                cause: DisconnectCause::HeartbeatTimeout
            })
        );
        // The parked slot times out unless a new leader accepts it.
        let out = h.fire(|t| matches!(t, Timer::SlotTimeout { .. }));
        assert!(traces(&out).contains(&&Obs::SlotFreed {
            slot_index: 0,
            allocation_id: 100
        }));
        assert!(h.te.slots().all(|(_, s)| s.is_none()));
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn disconnect_from_the_job_master_reconnects_without_declaring_a_loss() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.rpc(
            JM,
            TaskExecutorRpc::DisconnectJobManager {
                job_id: JOB,
                cause: DisconnectCause::HeartbeatTimeout,
            },
        );
        assert!(!traces(&out)
            .iter()
            .any(|o| matches!(o, Obs::TargetLost { .. })));
        assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
        let attempt_id = registration_attempt(&out).expect("re-registers");
        // A new leader session accepts the parked slot through a new offer.
        let out = h.rpc(
            JM,
            TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id: JOB,
                attempt_id,
                response: TaskManagerRegistration::Success {
                    job_master_id: JM_ID + 1,
                },
            },
        );
        let offer_id = to_job_master(&out)
            .into_iter()
            .find_map(|r| match r {
                JobMasterRpc::OfferSlots {
                    offer_id, offers, ..
                } => {
                    assert_eq!(offers.len(), 1);
                    Some(*offer_id)
                }
                _ => None,
            })
            .expect("offers the parked slot");
        let out = h.rpc(
            JM,
            TaskExecutorRpc::OfferSlotsResponse {
                job_id: JOB,
                job_master_id: JM_ID + 1,
                offer_id,
                accepted: vec![100],
            },
        );
        assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
    }

    #[test]
    fn losing_the_resource_manager_leaves_tasks_running() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.fire(|t| {
            matches!(
                t,
                Timer::HeartbeatTimeout {
                    pair: HeartbeatPair::ResourceManagerTaskExecutor,
                    ..
                }
            )
        });
        assert!(traces(&out).contains(&&Obs::ResourceManagerDisconnected {
            resource_manager: RM
        }));
        assert_eq!(h.state_of(a), Some(ExecutionState::Running));
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, true)))));
        assert_eq!(h.te.job_manager_connection(JOB), Some(JM_ID));
    }

    // ---- freeing ----

    #[test]
    fn slot_timeout_frees_an_unaccepted_slot_and_notifies_the_resource_manager() {
        let mut h = registered(Bugs::NONE);
        request_slot(&mut h, 1, 100);
        let out = h.fire(|t| matches!(t, Timer::SlotTimeout { .. }));
        assert!(traces(&out).contains(&&Obs::SlotFreed {
            slot_index: 1,
            allocation_id: 100
        }));
        assert_eq!(
            to_resource_manager(&out),
            vec![&ResourceManagerRpc::NotifySlotAvailable {
                instance_id: INSTANCE,
                slot_id: SlotId {
                    task_manager: TE,
                    slot_index: 1
                },
                allocation_id: 100
            }]
        );
        assert!(h.te.slots().all(|(_, s)| s.is_none()));
        // The job left: its registration stops.
        assert!(h
            .armed(|t| matches!(
                t,
                Timer::RegistrationAttemptTimeout {
                    target: RegistrationTarget::JobMaster(_),
                    ..
                }
            ))
            .is_empty());
    }

    #[test]
    fn an_accepted_slot_does_not_time_out() {
        let mut h = connected(100, true);
        assert!(h
            .armed(|t| matches!(t, Timer::SlotTimeout { .. }))
            .is_empty());
    }

    #[test]
    fn free_slot_fails_its_tasks_and_closes_the_job() {
        let mut h = connected(100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        let out = h.rpc(JM, TaskExecutorRpc::FreeSlot { allocation_id: 100 });
        assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
        let t = traces(&out);
        assert!(t.contains(&&Obs::SlotFreed {
            slot_index: 0,
            allocation_id: 100
        }));
        assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
        assert!(!t.iter().any(|o| matches!(o, Obs::TargetLost { .. })));
        assert_eq!(registration_attempt(&out), None, "no re-registration");
        assert!(to_resource_manager(&out).iter().any(|r| matches!(
            r,
            ResourceManagerRpc::NotifySlotAvailable {
                allocation_id: 100,
                ..
            }
        )));
        assert_eq!(h.te.tasks().count(), 0);
        assert_eq!(h.te.job_manager_connection(JOB), None);
    }

    // ---- data plane ----

    /// A buffer from `producer` to `consumer` with `elements`.
    fn buffer(
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
        seq: u64,
        elements: Vec<StreamElement>,
    ) -> TaskExecutorRpc {
        TaskExecutorRpc::DataBatch {
            producer,
            consumer,
            seq,
            elements: elements.into(),
        }
    }

    fn buffers_to(out: &Effects, consumer: ExecutionAttemptId) -> Vec<u64> {
        sent(out)
            .into_iter()
            .filter_map(|(_, m)| match m {
                Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                    consumer: c, seq, ..
                }) if *c == consumer => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn end_of_partition_in_band_completes_a_consumer() {
        let mut h = connected(100, true);
        let producer = attempt(0, 0);
        let consumer = attempt(1, 0);
        let tdd = consumer_tdd(
            consumer,
            100,
            vec![InputChannel {
                producer,
                task_manager: OTHER_TE,
            }],
        );
        let out = running(&mut h, tdd);
        assert!(sent(&out).contains(&(
            OTHER_TE,
            &Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer })
        )));
        // A buffer out of order is not taken; the progress tells the producer where we are.
        let out = h.rpc(OTHER_TE, buffer(producer, consumer, 1, vec![]));
        assert_eq!(h.state_of(consumer), Some(ExecutionState::Running));
        assert!(sent(&out).contains(&(
            OTHER_TE,
            &Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                producer,
                consumer,
                received: 0,
                consumed: 0
            })
        )));
        let out = h.rpc(
            OTHER_TE,
            buffer(
                producer,
                consumer,
                0,
                vec![StreamElement::EndOfData, StreamElement::EndOfPartition],
            ),
        );
        assert_eq!(reports(&out), vec![(consumer, ExecutionState::Finished)]);
        assert!(sent(&out).contains(&(
            OTHER_TE,
            &Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                producer,
                consumer,
                received: 1,
                consumed: 1
            })
        )));
    }

    #[test]
    fn a_producer_sends_its_partition_within_the_consumers_credit() {
        let mut h = connected(100, true);
        let producer = attempt(0, 0);
        let mut tdd = source_tdd(producer, 100);
        tdd.stream = std::sync::Arc::new(StreamConfig {
            output: Some(crate::protocol::rpc::OutputConfig {
                partitioner: crate::protocol::job_graph::Partitioner::Rebalance,
                key_by: None,
                consumer_parallelism: 2,
                consumer_max_parallelism: 128,
            }),
            ..StreamConfig::minimal()
        });
        running(&mut h, tdd);
        let early = attempt(1, 0);
        let out = h.rpc(
            OTHER_TE,
            TaskExecutorRpc::RequestSubpartition {
                producer,
                consumer: early,
            },
        );
        assert!(
            buffers_to(&out, early).is_empty(),
            "registered; no data yet"
        );
        // 2 × 1000 records, rebalanced: 1000 per consumer, 64 per buffer; the credit of a
        // channel is its 2 exclusive buffers.
        let mut out = h.rpc(SOURCE_LOG, read_all(producer, 0));
        out.extend(h.rpc(SOURCE_LOG, read_all(producer, 1)));
        assert_eq!(buffers_to(&out, early), vec![0, 1]);
        let out = h.rpc(
            OTHER_TE,
            TaskExecutorRpc::ChannelProgress {
                producer,
                consumer: early,
                received: 2,
                consumed: 1,
            },
        );
        assert_eq!(
            buffers_to(&out, early),
            vec![2],
            "one buffer recycled: one credit"
        );
        // A consumer that connects later gets what was kept for it, within its credit.
        let late = attempt(1, 1);
        let out = h.rpc(
            OTHER_TE,
            TaskExecutorRpc::RequestSubpartition {
                producer,
                consumer: late,
            },
        );
        assert_eq!(buffers_to(&out, late), vec![0, 1]);
        let unknown = attempt(9, 0);
        let out = h.rpc(
            OTHER_TE,
            TaskExecutorRpc::RequestSubpartition {
                producer: unknown,
                consumer: late,
            },
        );
        assert_eq!(
            sent(&out),
            vec![(
                OTHER_TE,
                &Msg::TaskExecutor(TaskExecutorRpc::PartitionNotFound {
                    producer: unknown,
                    consumer: late
                })
            )]
        );
    }

    #[test]
    fn partition_not_found_backs_off_then_fails_the_consumer() {
        let mut h = connected(100, true);
        let producer = attempt(0, 0);
        let consumer = attempt(1, 0);
        let tdd = consumer_tdd(
            consumer,
            100,
            vec![InputChannel {
                producer,
                task_manager: OTHER_TE,
            }],
        );
        running(&mut h, tdd);
        let not_found = TaskExecutorRpc::PartitionNotFound { producer, consumer };
        let mut backoffs = Vec::new();
        loop {
            let out = h.rpc(OTHER_TE, not_found.clone());
            if let Some(r) = reports(&out).first() {
                assert_eq!(*r, (consumer, ExecutionState::Failed));
                break;
            }
            // A duplicate of the same answer does not double the backoff again.
            assert!(h.rpc(OTHER_TE, not_found.clone()).is_empty());
            let retry = h.armed(|t| matches!(t, Timer::PartitionRequestRetry { .. }));
            assert_eq!(retry.len(), 1);
            backoffs.push(retry[0].0);
            let out = h.fire(|t| matches!(t, Timer::PartitionRequestRetry { .. }));
            assert_eq!(
                sent(&out),
                vec![(
                    OTHER_TE,
                    &Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer })
                )]
            );
        }
        assert_eq!(backoffs.first(), Some(&PARTITION_REQUEST_BACKOFF_INITIAL));
        assert_eq!(backoffs.last(), Some(&PARTITION_REQUEST_BACKOFF_MAX));
        assert!(backoffs
            .windows(2)
            .all(|w| w[1] == (w[0] * 2).min(PARTITION_REQUEST_BACKOFF_MAX)));
        assert_eq!(backoffs.len(), 8, "100 ms doubling to 10 s");
    }

    #[test]
    fn an_unanswered_partition_request_is_repeated_until_the_partition_ends() {
        let mut h = connected(100, true);
        let producer = attempt(0, 0);
        let consumer = attempt(1, 0);
        let tdd = consumer_tdd(
            consumer,
            100,
            vec![InputChannel {
                producer,
                task_manager: OTHER_TE,
            }],
        );
        running(&mut h, tdd);
        let request = (
            OTHER_TE,
            Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }),
        );
        for _ in 0..3 {
            let resend = h.armed(|t| matches!(t, Timer::PartitionRequestRetry { .. }));
            assert_eq!(resend.len(), 1);
            assert_eq!(resend[0].0, PARTITION_REQUEST_RESEND_INTERVAL);
            let out = h.fire(|t| matches!(t, Timer::PartitionRequestRetry { .. }));
            assert_eq!(sent(&out), vec![(request.0, &request.1)]);
        }
        h.rpc(
            OTHER_TE,
            buffer(
                producer,
                consumer,
                0,
                vec![StreamElement::EndOfData, StreamElement::EndOfPartition],
            ),
        );
        assert_eq!(h.state_of(consumer), Some(ExecutionState::Finished));
        assert!(h
            .armed(|t| matches!(t, Timer::PartitionRequestRetry { .. }))
            .is_empty());
    }

    #[test]
    fn an_unreachable_producer_fails_the_consumer_at_once() {
        let mut h = connected(100, true);
        let producer = attempt(0, 0);
        let consumer = attempt(1, 0);
        let tdd = consumer_tdd(
            consumer,
            100,
            vec![InputChannel {
                producer,
                task_manager: OTHER_TE,
            }],
        );
        running(&mut h, tdd);
        let out = h.unreachable(
            OTHER_TE,
            Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }),
        );
        assert_eq!(reports(&out), vec![(consumer, ExecutionState::Failed)]);
    }

    /// The leader JobManager after a failover (HA), and its leader session id.
    const NEW_JM: NodeId = NodeId(5);
    const NEW_JM_ID: JobMasterId = 901;

    fn new_job_leader(h: &mut Harness) -> Effects {
        let info = LeaderInformation {
            address: NEW_JM,
            leader_session_id: crate::protocol::ha::LeaderSessionId(NEW_JM_ID),
        };
        h.step(|te, ctx| te.on_job_leader(ctx, JOB, Some(info)))
    }

    #[test]
    fn a_job_leader_change_closes_the_old_connection_and_registers_at_the_new_leader() {
        let mut h = connected(100, true);
        let out = new_job_leader(&mut h);
        // The old connection is closed (the old JobMaster is told) ...
        assert!(traces(&out).contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
        assert!(sent(&out).iter().any(|(to, m)| *to == JM
            && matches!(
                m,
                Msg::JobMaster {
                    rpc: JobMasterRpc::DisconnectTaskManager { .. },
                    ..
                }
            )));
        // ... the slot is parked for the new leader, and the TE registers there.
        assert_eq!(h.te.slots().next(), Some((0, Some((100, JOB, false)))));
        assert!(sent(&out).iter().any(|(to, m)| *to == NEW_JM
            && matches!(
                m,
                Msg::JobMaster {
                    rpc: JobMasterRpc::RegisterTaskManager { .. },
                    ..
                }
            )));
        assert_eq!(h.te.job_manager_connection(JOB), None);
        // A late call of the deposed JobMaster is refused.
        let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
        assert_eq!(submit_answer(&out), Some(false));
        assert_eq!(h.te.tasks().count(), 0);
    }

    #[test]
    fn the_planted_bugs_keep_the_deposed_job_master() {
        // tm-ignores-leader-change: the notification changes nothing.
        let mut h = connected_with(Bugs::NONE.with(Bug::TmIgnoresLeaderChange), 100, true);
        let out = new_job_leader(&mut h);
        assert!(sent(&out).is_empty(), "{out:?}");
        assert_eq!(h.te.job_manager_connection(JOB), Some(JM_ID));
        // no-fencing-check: a submission under another JobMasterId is taken.
        let mut h = connected_with(Bugs::NONE.with(Bug::NoFencingCheck), 100, true);
        let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID + 1);
        assert_eq!(submit_answer(&out), Some(true));
        assert_eq!(h.te.tasks().count(), 1);
    }
}
