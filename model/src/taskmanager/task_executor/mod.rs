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
//!
//! This module is the endpoint: the [`TaskExecutor`] struct and its construction, the entry
//! points the process calls (`on_start`, `on_rpc`, `on_timer`, `on_unreachable`, `on_signal`,
//! and the HA client's replies and ticks), the `fail_task` signal codes, the accessors reports
//! and tests read, and the cross-structure invariants checked after every event. The rest lives
//! in children, one Flink concept each:
//! - `dispatch`: which handler each RPC, timer and unreachable target goes to;
//! - `rm_connection`: the ResourceManager connection (leader retrieval, registration, slot
//!   report, reconnection);
//! - `job_leader_service`: Flink's `JobLeaderService` and `JobTable` (per job: JobMaster leader
//!   retrieval, registration, the JM ↔ TE heartbeat, disconnection);
//! - `slots`: `requestSlot`, slot offers, freeing and reconciliation against the slot table;
//! - `tasks`: `submitTask`, the task lifecycle, `cancelTask`, `updateTaskExecutionState`, and
//!   the producer side of partition requests.

mod dispatch;
mod job_leader_service;
mod rm_connection;
mod slots;
mod tasks;

use crate::checking::bugs::{Bug, Bugs};
use crate::external::ha::client::{Effect as HaEffect, HaClient};
use crate::external::ha::node::{HaServices, RESOURCE_MANAGER_COMPONENT};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ha::{HaReply, LeaderInformation};
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, InstanceId, JobId, JobMasterId};
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use crate::protocol::obs::{Endpoint, Obs};
use crate::protocol::rpc::{Msg, TaskExecutorRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::HeartbeatPair;
use crate::protocol::timer::{RegistrationTarget, TaskExecutorTimer};
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use crate::taskmanager::task::Task;
use crate::taskmanager::task_slot_table::TaskSlotTable;
use job_leader_service::{Job, JobLeader};
use rand::Rng as _;
use rm_connection::RmConnection;
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
    // The decoding loses nothing: the fields fill the code exactly.
    assert_eq!(fail_task_signal(JobVertexId(vertex), subtask), code);
    Some((JobVertexId(vertex), subtask))
}

/// How often release builds run [`TaskExecutor::check_invariants`]'s scans: every this-many-th
/// call (debug builds: every call).
const INVARIANT_CHECK_SAMPLE: u64 = 64;

/// The error of a task failed by a `fail_task` signal.
pub const INJECTED_FAILURE: &str = "injected failure (fail_task)";

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
    /// How many times `check_invariants` ran: only its release-build sampling reads it.
    invariant_checks: u64,
}

/// The leader retrieval component of a job's JobMaster.
pub fn job_component(job_id: JobId) -> String {
    let component = format!("job-{job_id:020}");
    debug_assert_eq!(job_of_component(&component), Some(job_id));
    component
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
        // The RM runs in a JobManager process, never in this TaskManager.
        assert_ne!(me, resource_manager);
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
            invariant_checks: 0,
        }
    }

    /// High availability: the RM and each job's JobMaster are found by leader retrieval from
    /// the `ha` node instead of the configured address.
    pub fn with_ha(mut self, store: NodeId) -> TaskExecutor {
        // Configured once, before the process starts.
        assert!(self.ha.is_none() && self.connection.is_none());
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
            match e {
                HaEffect::LeaderChanged { component, leader } => {
                    if component == RESOURCE_MANAGER_COMPONENT {
                        self.on_resource_manager_leader(ctx, leader);
                    } else if let Some(job_id) = job_of_component(&component) {
                        self.on_job_leader(ctx, job_id, leader);
                    }
                }
                HaEffect::ConnectionStateChanged(state) => {
                    use crate::external::ha::client::ConnectionState as C;
                    let state = match state {
                        C::Connected => "CONNECTED",
                        C::Suspended => "SUSPENDED",
                        C::Lost => "LOST",
                        C::Latent => "LATENT",
                    };
                    ctx.trace(Obs::HaConnectionChanged {
                        state: state.into(),
                    });
                }
                _ => {}
            }
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A (re)started process begins with nothing: no connection, job, slot or task.
        assert!(self.connection.is_none() && self.registration_timeout.is_none());
        assert!(self.jobs.is_empty() && self.tasks.is_empty());
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

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: TaskExecutorRpc) {
        self.handle_rpc(ctx, from, rpc);
        self.check_invariants();
    }

    /// The answer to a gateway connection this TE opened for a registration.
    pub fn on_connect_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        target: RegistrationTarget,
        connect_id: u64,
        found: bool,
    ) {
        self.connect_answered(ctx, target, connect_id, found);
        self.check_invariants();
    }

    /// Routes the outcome of a registration's gateway connection to its registration.
    fn connect_answered(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        target: RegistrationTarget,
        connect_id: u64,
        found: bool,
    ) {
        match target {
            RegistrationTarget::ResourceManager => {
                self.on_resource_manager_connected(ctx, connect_id, found)
            }
            RegistrationTarget::JobMaster(job_id) => {
                self.on_job_master_connected(ctx, job_id, connect_id, found)
            }
            // Only a JobMaster registers at the RM for a job.
            RegistrationTarget::ResourceManagerForJob(_) => {}
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: TaskExecutorTimer) {
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
        debug_assert!(self
            .tasks
            .values()
            .all(|t| t.attempt().vertex != target || !t.can_fail()));
        self.check_invariants();
    }

    /// Cross-structure invariants, checked after events. The checks scan every slot, job and
    /// task (O(slots + jobs + tasks)), so debug builds (the tests) run them after every event
    /// and release builds (explore, check) after every [`INVARIANT_CHECK_SAMPLE`]th call only.
    /// The sampling counts the calls in `invariant_checks`, a plain counter that nothing else
    /// reads: it draws no randomness and never influences the protocol, so traces are the same
    /// with or without it. The planted slot bug breaks the slot/task relation on purpose, and
    /// `NoFencingCheck` the connection/fencing relation (oracles must catch them, not these
    /// asserts).
    fn check_invariants(&mut self) {
        self.invariant_checks = self.invariant_checks.wrapping_add(1);
        if !cfg!(debug_assertions) && !self.invariant_checks.is_multiple_of(INVARIANT_CHECK_SAMPLE)
        {
            return;
        }
        assert!(self.terminal_tasks.len() <= TERMINAL_TASKS_RETAINED_MAX);
        // An established RM connection has stopped `taskmanager.registration.timeout`.
        if matches!(self.connection, Some(RmConnection::Established { .. })) {
            assert!(self.registration_timeout.is_none());
        }
        // The retained terminal tasks are exactly the terminal tasks kept.
        for attempt in &self.terminal_tasks {
            assert!(self.tasks[attempt].state().is_terminal());
        }
        assert_eq!(
            self.tasks
                .values()
                .filter(|t| t.state().is_terminal())
                .count(),
            self.terminal_tasks.len()
        );
        for job in self.jobs.values() {
            // Only a connected job leader has slot offers in flight.
            if job.offer.is_some() {
                assert!(matches!(job.leader, JobLeader::Connected(_)));
            }
        }
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
        // The planted bug leaves live tasks behind a closed JobMaster connection.
        let outlive = self.bugs.has(Bug::TasksOutliveJobMasterDisconnect);
        for task in self.tasks.values() {
            // A task's slot lives as long as the task (freeing a slot removes its tasks) ...
            assert!(self
                .task_slot_table
                .is_allocated(task.allocation_id(), task.job_id()));
            // ... and a live task runs in an ACTIVE slot (a lost JobMaster fails the tasks
            // before parking the slots).
            if task.can_fail() && !outlive {
                assert!(self
                    .task_slot_table
                    .is_active(task.allocation_id(), task.job_id()));
            }
            // A live task runs under the JobMasterId of its job's connected leader: losing or
            // changing the leader fails the job's tasks first. The planted fencing bug takes
            // `submitTask` from any JobMaster.
            if task.can_fail() && !self.bugs.has(Bug::NoFencingCheck) && !outlive {
                assert_eq!(
                    self.job_manager_connection(task.job_id()),
                    Some(task.job_master_id())
                );
            }
        }
        // An ACTIVE slot was accepted by (or deployed into by) the job's connected leader, and
        // losing that leader parks the slot.
        if !self.bugs.has(Bug::NoFencingCheck) {
            for (_, slot) in self.task_slot_table.slots() {
                if let Some((_, job_id, true)) = slot {
                    assert!(self.job_manager_connection(job_id).is_some());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
