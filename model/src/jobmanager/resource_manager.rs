//! The ResourceManager endpoint of a JobManager process: TaskExecutor and JobMaster
//! registration, the RM ↔ TE and RM ↔ JobMaster heartbeats (the RM is the sender of both), and
//! the SlotManager: declarative slot requirements per job, slot allocation by `requestSlot`,
//! reconciliation with the TaskExecutors' slot reports, and — when the cluster has spare
//! TaskManagers — active resource management (start workers when slots are missing, release idle
//! ones).
//!
//! It does not own slots' contents (tasks): those are the JobMasters' and TaskExecutors'.

use crate::checking::bugs::{Bug, Bugs};
use crate::process::ClusterSetup;
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{
    AllocationId, InstanceId, JobId, JobMasterId, ResourceManagerId, SlotId,
};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    DisconnectCause, JobMasterRegistration, JobMasterRpc, Msg, RegistrationResponse,
    ResourceManagerRpc, SlotReport, TaskExecutorRpc,
};
use crate::protocol::timer::HeartbeatPair;
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Flink's `HighAvailabilityServices.DEFAULT_LEADER_ID`: the fixed leader id without HA.
pub const DEFAULT_LEADER_ID: ResourceManagerId = 0;

/// `slotmanager.requirement-check.delay`: requirement changes are batched this long.
pub const REQUIREMENT_CHECK_DELAY: Duration = Duration::from_millis(50);

/// Flink's `WorkerRegistration` (the fields the model needs).
#[derive(Debug)]
struct WorkerRegistration {
    instance_id: InstanceId,
    /// Set once the first slot report registered the slots (FLINK-9427 ordering).
    slots_registered: bool,
    /// When the worker last had no allocated slot (for idle release), local monotonic ns.
    idle_since_ns: Option<u64>,
}

/// The SlotManager's view of one slot (`SlotState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    /// `requestSlot` sent; waiting for the TaskExecutor's answer.
    Pending {
        allocation_id: AllocationId,
        job_id: JobId,
    },
    Allocated {
        allocation_id: AllocationId,
        job_id: JobId,
    },
}

impl SlotState {
    fn job(self) -> Option<JobId> {
        match self {
            SlotState::Free => None,
            SlotState::Pending { job_id, .. } | SlotState::Allocated { job_id, .. } => Some(job_id),
        }
    }
}

/// A registered JobMaster and its job's declared requirement.
#[derive(Debug)]
struct JobManagerRegistration {
    node: NodeId,
    job_master_id: JobMasterId,
    heartbeats: HeartbeatManager,
}

#[derive(Debug)]
pub struct ResourceManager {
    me: NodeId,
    id: ResourceManagerId,
    config: FlinkConfig,
    bugs: Bugs,
    task_executors: BTreeMap<NodeId, WorkerRegistration>,
    heartbeats: HeartbeatManager,
    slots: BTreeMap<SlotId, SlotState>,
    /// Outstanding `requestSlot` calls and their ask-timeout timers.
    pending: BTreeMap<AllocationId, (SlotId, TimerId)>,
    job_masters: BTreeMap<JobId, JobManagerRegistration>,
    /// Declared requirements (slots per job); kept when a JobMaster connection is lost.
    requirements: BTreeMap<JobId, (NodeId, u32)>,
    check_scheduled: bool,
    /// Spare TaskManagers this RM may start (active resource management), and those it started.
    spares: Vec<NodeId>,
    started: BTreeSet<NodeId>,
}

impl ResourceManager {
    pub fn new(me: NodeId, setup: &ClusterSetup) -> ResourceManager {
        let config = &setup.config;
        ResourceManager {
            me,
            id: DEFAULT_LEADER_ID,
            config: config.clone(),
            bugs: setup.bugs,
            task_executors: BTreeMap::new(),
            heartbeats: HeartbeatManager::new(
                HeartbeatPair::ResourceManagerTaskExecutor,
                Role::Sender,
                Endpoint::ResourceManager(me),
                config,
                setup.bugs,
            ),
            slots: BTreeMap::new(),
            pending: BTreeMap::new(),
            job_masters: BTreeMap::new(),
            requirements: BTreeMap::new(),
            check_scheduled: false,
            spares: setup.topology.spare_taskmanagers.clone(),
            started: BTreeSet::new(),
        }
    }

    /// The ResourceManagerId (fencing token) of a leader session.
    pub fn with_id(mut self, id: ResourceManagerId) -> ResourceManager {
        self.id = id;
        self
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.heartbeats.start(ctx);
        if !self.spares.is_empty() {
            ctx.set_timer(self.idle_check_interval(), Timer::TaskManagerIdleCheck);
        }
    }

    fn idle_check_interval(&self) -> Duration {
        (self.config.resourcemanager_taskmanager_timeout / 4).max(Duration::from_millis(100))
    }

    /// Registered TaskExecutors and whether their slots are registered (for tests and reports).
    pub fn registered(&self) -> impl Iterator<Item = (NodeId, InstanceId, bool)> + '_ {
        self.task_executors
            .iter()
            .map(|(n, r)| (*n, r.instance_id, r.slots_registered))
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: ResourceManagerRpc) {
        match rpc {
            ResourceManagerRpc::RegisterTaskExecutor {
                registration,
                attempt_id,
            } => {
                assert_eq!(registration.resource_id, from);
                self.on_register_task_executor(ctx, from, attempt_id)
            }
            ResourceManagerRpc::SendSlotReport {
                resource_id,
                instance_id,
                slot_report,
            } => self.on_send_slot_report(ctx, resource_id, instance_id, slot_report),
            ResourceManagerRpc::HeartbeatFromTaskManager {
                resource_id,
                slot_report,
            } => {
                // The monitor is reset only for monitored targets; the payload goes to the
                // listener either way, which ignores reports of unregistered TaskExecutors.
                self.heartbeats.report_heartbeat(ctx, resource_id);
                if self
                    .task_executors
                    .get(&resource_id)
                    .is_some_and(|r| r.slots_registered)
                {
                    self.report_slot_status(ctx, resource_id, &slot_report);
                }
            }
            ResourceManagerRpc::DisconnectTaskManager { resource_id, .. } => {
                self.close_task_manager_connection(ctx, resource_id, None);
            }
            ResourceManagerRpc::RegisterJobMaster {
                job_id,
                job_master_id,
                attempt_id,
            } => self.on_register_job_master(ctx, from, job_id, job_master_id, attempt_id),
            ResourceManagerRpc::DeclareRequiredResources {
                job_id,
                job_master_id,
                slots,
                version,
            } => {
                // Checked against the registered JobMaster of the job (fencing by JobMasterId).
                let Some(reg) = self.job_masters.get(&job_id) else {
                    return;
                };
                if reg.job_master_id != job_master_id {
                    return;
                }
                self.requirements.insert(job_id, (from, slots));
                ctx.send(
                    from,
                    Msg::JobMaster {
                        job_id,
                        rpc: JobMasterRpc::DeclareRequiredResourcesResponse { version },
                    },
                );
                self.schedule_requirement_check(ctx);
            }
            ResourceManagerRpc::HeartbeatFromJobManager { job_id } => {
                if let Some(reg) = self.job_masters.get_mut(&job_id) {
                    reg.heartbeats.report_heartbeat(ctx, from);
                }
            }
            ResourceManagerRpc::NotifySlotAvailable {
                instance_id,
                slot_id,
                allocation_id,
            } => {
                let current = self.task_executors.get(&slot_id.task_manager);
                if current.map(|r| r.instance_id) != Some(instance_id) {
                    return;
                }
                if let Some(state) = self.slots.get_mut(&slot_id) {
                    let matches = matches!(*state,
                        SlotState::Allocated { allocation_id: a, .. } | SlotState::Pending { allocation_id: a, .. }
                            if a == allocation_id);
                    if matches {
                        *state = SlotState::Free;
                        if let Some((_, t)) = self.pending.remove(&allocation_id) {
                            ctx.cancel_timer(t);
                        }
                        self.schedule_requirement_check(ctx);
                    }
                }
            }
            ResourceManagerRpc::RequestSlotResponse { allocation_id, ok } => {
                let Some((slot_id, timer)) = self.pending.remove(&allocation_id) else {
                    return; // no longer pending: a stale answer (FLINK-21874)
                };
                ctx.cancel_timer(timer);
                let Some(state) = self.slots.get_mut(&slot_id) else {
                    return;
                };
                if let SlotState::Pending {
                    allocation_id: a,
                    job_id,
                } = *state
                {
                    assert_eq!(a, allocation_id);
                    *state = if ok {
                        SlotState::Allocated {
                            allocation_id,
                            job_id,
                        }
                    } else {
                        SlotState::Free
                    };
                    if !ok {
                        self.schedule_requirement_check(ctx);
                    }
                }
            }
            ResourceManagerRpc::DisconnectJobManager {
                job_id,
                job_master_id,
                terminal,
            } => {
                let known = self
                    .job_masters
                    .get(&job_id)
                    .is_some_and(|r| r.job_master_id == job_master_id);
                if known {
                    if let Some(mut reg) = self.job_masters.remove(&job_id) {
                        reg.heartbeats.unmonitor_all(ctx);
                    }
                }
                if terminal {
                    self.requirements.remove(&job_id);
                }
            }
        }
    }

    fn on_register_task_executor(&mut self, ctx: &mut Ctx<'_, Flink>, tm: NodeId, attempt_id: u64) {
        if let Some(old) = self.task_executors.remove(&tm) {
            // A newer registration of the same ResourceID replaces the old one (the TE
            // reconnected or restarted); its slots leave the SlotManager. No disconnect is sent.
            self.unregister_slots(ctx, tm);
            ctx.trace(Obs::TaskExecutorUnregistered {
                task_executor: tm,
                instance_id: old.instance_id,
            });
        }
        let instance_id = ctx.rng().random::<u64>();
        self.task_executors.insert(
            tm,
            WorkerRegistration {
                instance_id,
                slots_registered: false,
                idle_since_ns: Some(ctx.mono_ns()),
            },
        );
        self.heartbeats.monitor_target(ctx, tm);
        ctx.trace(Obs::TaskExecutorRegistered {
            task_executor: tm,
            instance_id,
        });
        let response = RegistrationResponse::Success {
            instance_id,
            resource_manager_id: self.id,
        };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
                attempt_id,
                response,
            }),
        );
    }

    fn on_send_slot_report(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        instance_id: InstanceId,
        slot_report: SlotReport,
    ) {
        let ok = match self.task_executors.get_mut(&tm) {
            Some(reg) if reg.instance_id == instance_id => {
                if !reg.slots_registered {
                    reg.slots_registered = true;
                    ctx.trace(Obs::SlotsRegistered {
                        task_executor: tm,
                        instance_id,
                        slots: slot_report.len() as u32,
                    });
                    for s in &slot_report {
                        let slot_id = SlotId {
                            task_manager: tm,
                            slot_index: s.slot_index,
                        };
                        self.slots.insert(slot_id, SlotState::Free);
                    }
                    // New slots may fulfil requirements declared before they registered.
                    self.schedule_requirement_check(ctx);
                }
                self.report_slot_status(ctx, tm, &slot_report);
                true
            }
            // Unknown registration id: the TE must reconnect.
            _ => false,
        };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::SlotReportResponse { instance_id, ok }),
        );
    }

    /// Flink's `reportSlotStatus`: the TaskExecutor's report is the truth for slots that are not
    /// pending; a slot the SlotManager thought allocated but the report shows free is freed.
    fn report_slot_status(&mut self, ctx: &mut Ctx<'_, Flink>, tm: NodeId, report: &SlotReport) {
        let mut changed = false;
        for s in report {
            let slot_id = SlotId {
                task_manager: tm,
                slot_index: s.slot_index,
            };
            let Some(state) = self.slots.get_mut(&slot_id) else {
                continue;
            };
            let reported = match s.allocation {
                Some((allocation_id, job_id)) => SlotState::Allocated {
                    allocation_id,
                    job_id,
                },
                None => SlotState::Free,
            };
            match (*state, reported) {
                // Pending requests are tracked by AllocationID; a report sent before the TE saw
                // the request must not free them.
                (
                    SlotState::Pending { allocation_id, .. },
                    SlotState::Allocated {
                        allocation_id: r, ..
                    },
                ) if allocation_id == r => {
                    if let Some((_, t)) = self.pending.remove(&allocation_id) {
                        ctx.cancel_timer(t);
                    }
                    *state = reported;
                }
                (SlotState::Pending { .. }, _) => {}
                (current, reported) if current != reported => {
                    *state = reported;
                    changed = true;
                }
                _ => {}
            }
        }
        let busy = self.worker_is_busy(tm);
        let now = ctx.mono_ns();
        if let Some(reg) = self.task_executors.get_mut(&tm) {
            match (busy, reg.idle_since_ns) {
                (true, _) => reg.idle_since_ns = None,
                (false, None) => reg.idle_since_ns = Some(now),
                _ => {}
            }
        }
        if changed {
            self.schedule_requirement_check(ctx);
        }
    }

    fn worker_is_busy(&self, tm: NodeId) -> bool {
        self.slots
            .iter()
            .any(|(id, s)| id.task_manager == tm && *s != SlotState::Free)
    }

    fn schedule_requirement_check(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if !self.check_scheduled {
            self.check_scheduled = true;
            ctx.set_timer(REQUIREMENT_CHECK_DELAY, Timer::RequirementCheck);
        }
    }

    /// Flink's `checkResourceRequirements`: allocate free slots to jobs that miss slots, and
    /// (active RM) start spare TaskManagers for what free slots cannot cover.
    fn check_resource_requirements(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let mut missing_total = 0u32;
        let jobs: Vec<(JobId, NodeId, u32)> = self
            .requirements
            .iter()
            .map(|(j, (node, n))| (*j, *node, *n))
            .collect();
        for (job_id, job_master, required) in jobs {
            let acquired = self
                .slots
                .values()
                .filter(|s| s.job() == Some(job_id))
                .count() as u32;
            let mut missing = required.saturating_sub(acquired);
            while missing > 0 {
                let free = self
                    .slots
                    .iter()
                    .find(|(_, s)| **s == SlotState::Free)
                    .map(|(id, _)| *id);
                let Some(slot_id) = free else { break };
                let allocation_id = ctx.rng().random::<u64>();
                self.slots.insert(
                    slot_id,
                    SlotState::Pending {
                        allocation_id,
                        job_id,
                    },
                );
                let timer = ctx.set_timer(
                    self.config.ask_timeout,
                    Timer::RequestSlotTimeout { allocation_id },
                );
                self.pending.insert(allocation_id, (slot_id, timer));
                ctx.trace(Obs::SlotRequested {
                    slot_id,
                    allocation_id,
                    job_id,
                });
                ctx.send(
                    slot_id.task_manager,
                    Msg::TaskExecutor(TaskExecutorRpc::RequestSlot {
                        slot_id,
                        job_id,
                        allocation_id,
                        job_master,
                        resource_manager_id: self.id,
                    }),
                );
                missing -= 1;
            }
            missing_total += missing;
        }
        if missing_total > 0 {
            self.start_workers(ctx, missing_total);
        }
    }

    /// Active resource management: start enough spare TaskManagers for `missing` slots, counting
    /// those already started but not yet registered.
    fn start_workers(&mut self, ctx: &mut Ctx<'_, Flink>, missing: u32) {
        let per_worker = self.config.number_of_task_slots.max(1);
        let pending_workers = self
            .started
            .iter()
            .filter(|n| {
                !self
                    .task_executors
                    .get(n)
                    .is_some_and(|r| r.slots_registered)
            })
            .count() as u32;
        let wanted = missing.div_ceil(per_worker).saturating_sub(pending_workers);
        let candidates: Vec<NodeId> = self
            .spares
            .iter()
            .copied()
            .filter(|n| !self.started.contains(n) && !self.task_executors.contains_key(n))
            .take(wanted as usize)
            .collect();
        for n in candidates {
            self.started.insert(n);
            ctx.trace(Obs::TaskManagerRequested { task_manager: n });
            ctx.start_node(n);
        }
    }

    fn on_register_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        attempt_id: u64,
    ) {
        // Without HA the JobMaster leader is whoever registers; a newer JobMaster of the same
        // job replaces the old one (its requirements are retained).
        if let Some(mut old) = self.job_masters.remove(&job_id) {
            old.heartbeats.unmonitor_all(ctx);
            if old.job_master_id != job_master_id {
                ctx.send(
                    old.node,
                    Msg::JobMaster {
                        job_id,
                        rpc: JobMasterRpc::DisconnectResourceManager {
                            cause: DisconnectCause::Reconnect,
                        },
                    },
                );
            }
        }
        let mut heartbeats = HeartbeatManager::for_job(
            HeartbeatPair::ResourceManagerJobMaster,
            Role::Sender,
            Endpoint::ResourceManager(self.me),
            Some(job_id),
            &self.config,
            self.bugs,
        );
        heartbeats.start(ctx);
        heartbeats.monitor_target(ctx, from);
        self.job_masters.insert(
            job_id,
            JobManagerRegistration {
                node: from,
                job_master_id,
                heartbeats,
            },
        );
        ctx.send(
            from,
            Msg::JobMaster {
                job_id,
                rpc: JobMasterRpc::RegisterJobMasterResponse {
                    attempt_id,
                    response: JobMasterRegistration::Success {
                        resource_manager_id: self.id,
                    },
                },
            },
        );
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tag: Timer) {
        match tag {
            Timer::HeartbeatTick {
                pair: HeartbeatPair::ResourceManagerTaskExecutor,
                ..
            } => self.on_heartbeat_tick(ctx),
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::ResourceManagerTaskExecutor,
                target,
                ..
            } => self.on_heartbeat_timeout(ctx, timer, target),
            Timer::HeartbeatTick {
                pair: HeartbeatPair::ResourceManagerJobMaster,
                job: Some(job_id),
            } => {
                let Some(reg) = self.job_masters.get(&job_id) else {
                    return; // the registration went away; its loop ends
                };
                reg.heartbeats.on_tick(ctx);
                for target in reg.heartbeats.targets() {
                    ctx.send(
                        target,
                        Msg::JobMaster {
                            job_id,
                            rpc: JobMasterRpc::HeartbeatFromResourceManager,
                        },
                    );
                }
            }
            Timer::HeartbeatTimeout {
                pair: HeartbeatPair::ResourceManagerJobMaster,
                job: Some(job_id),
                target,
                ..
            } => {
                let Some(reg) = self.job_masters.get(&job_id) else {
                    return;
                };
                if !reg.heartbeats.on_timeout(timer, target) {
                    return;
                }
                // closeJobManagerConnection, retaining the job's requirements.
                ctx.trace(Obs::TargetLost {
                    observer: Endpoint::ResourceManager(self.me),
                    target: Endpoint::JobMaster(target, job_id),
                    cause: LossCause::HeartbeatTimeout,
                });
                let mut reg = self.job_masters.remove(&job_id).expect("checked");
                reg.heartbeats.unmonitor_all(ctx);
                ctx.send(
                    reg.node,
                    Msg::JobMaster {
                        job_id,
                        rpc: JobMasterRpc::DisconnectResourceManager {
                            cause: DisconnectCause::HeartbeatTimeout,
                        },
                    },
                );
            }
            Timer::RequirementCheck => {
                self.check_scheduled = false;
                self.check_resource_requirements(ctx);
            }
            Timer::RequestSlotTimeout { allocation_id } => {
                let Some((slot_id, _)) = self.pending.remove(&allocation_id) else {
                    return;
                };
                if let Some(state) = self.slots.get_mut(&slot_id) {
                    if matches!(*state, SlotState::Pending { allocation_id: a, .. } if a == allocation_id)
                    {
                        *state = SlotState::Free;
                        self.schedule_requirement_check(ctx);
                    }
                }
            }
            Timer::TaskManagerIdleCheck => {
                ctx.set_timer(self.idle_check_interval(), Timer::TaskManagerIdleCheck);
                self.release_idle_workers(ctx);
            }
            other => panic!("ResourceManager timer {other:?} has no handler"),
        }
    }

    /// Releases started TaskManagers idle for `resourcemanager.taskmanager-timeout`, unless a job
    /// still misses slots.
    fn release_idle_workers(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let timeout = self.config.resourcemanager_taskmanager_timeout.as_nanos() as u64;
        let now = ctx.mono_ns();
        let missing: u32 = self
            .requirements
            .iter()
            .map(|(j, (_, n))| {
                let acquired = self.slots.values().filter(|s| s.job() == Some(*j)).count() as u32;
                n.saturating_sub(acquired)
            })
            .sum();
        if missing > 0 {
            return;
        }
        let idle: Vec<NodeId> = self
            .started
            .iter()
            .copied()
            .filter(|n| {
                self.task_executors.get(n).is_some_and(|r| {
                    r.idle_since_ns
                        .is_some_and(|since| now.saturating_sub(since) >= timeout)
                }) && !self.worker_is_busy(*n)
            })
            .collect();
        for n in idle {
            ctx.trace(Obs::TaskManagerReleased { task_manager: n });
            self.close_task_manager_connection(ctx, n, None);
            self.started.remove(&n);
            ctx.stop_node(n);
        }
    }

    fn on_heartbeat_tick(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.heartbeats.on_tick(ctx);
        let me = self.me;
        for tm in self.heartbeats.targets() {
            ctx.send(
                tm,
                Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromResourceManager {
                    resource_id: me,
                }),
            );
        }
    }

    fn on_heartbeat_timeout(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId, tm: NodeId) {
        if !self.heartbeats.on_timeout(timer, tm) {
            return;
        }
        if self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
            return;
        }
        self.close_task_manager_connection(ctx, tm, Some(LossCause::HeartbeatTimeout));
    }

    /// A message to `to` found its process down.
    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromResourceManager { .. })
                if self.heartbeats.report_rpc_failure(to) =>
            {
                self.close_task_manager_connection(ctx, to, Some(LossCause::Unreachable));
            }
            Msg::TaskExecutor(TaskExecutorRpc::RequestSlot { allocation_id, .. }) => {
                // The request failed: the slot is not allocated.
                let allocation_id = *allocation_id;
                self.on_rpc(
                    ctx,
                    to,
                    ResourceManagerRpc::RequestSlotResponse {
                        allocation_id,
                        ok: false,
                    },
                );
            }
            _ => {}
        }
    }

    fn unregister_slots(&mut self, ctx: &mut Ctx<'_, Flink>, tm: NodeId) {
        let gone: Vec<SlotId> = self
            .slots
            .keys()
            .filter(|s| s.task_manager == tm)
            .copied()
            .collect();
        for s in gone {
            if let Some(SlotState::Pending { allocation_id, .. }) = self.slots.remove(&s) {
                if let Some((_, t)) = self.pending.remove(&allocation_id) {
                    ctx.cancel_timer(t);
                }
            }
        }
        self.schedule_requirement_check(ctx);
    }

    /// Flink's `closeTaskManagerConnection`: unmonitor, unregister (its slots leave the
    /// SlotManager), tell every JobMaster, and tell the TE to disconnect. `cause` is `None` when
    /// the TE asked for it.
    fn close_task_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        cause: Option<LossCause>,
    ) {
        if !self.task_executors.contains_key(&tm) {
            self.heartbeats.unmonitor_target(ctx, tm);
            return;
        }
        // The loss is declared before the monitor goes, so observers see it while it exists.
        if let Some(cause) = cause {
            ctx.trace(Obs::TargetLost {
                observer: Endpoint::ResourceManager(self.me),
                target: Endpoint::TaskExecutor(tm),
                cause,
            });
        }
        self.heartbeats.unmonitor_target(ctx, tm);
        let reg = self.task_executors.remove(&tm).expect("checked above");
        self.unregister_slots(ctx, tm);
        ctx.trace(Obs::TaskExecutorUnregistered {
            task_executor: tm,
            instance_id: reg.instance_id,
        });
        let disconnect = match cause {
            Some(LossCause::HeartbeatTimeout) => DisconnectCause::HeartbeatTimeout,
            Some(LossCause::Unreachable) => DisconnectCause::Unreachable,
            _ => DisconnectCause::Reconnect,
        };
        for (job_id, reg) in &self.job_masters {
            ctx.send(
                reg.node,
                Msg::JobMaster {
                    job_id: *job_id,
                    rpc: JobMasterRpc::DisconnectTaskManager {
                        resource_id: tm,
                        cause: disconnect,
                    },
                },
            );
        }
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::DisconnectResourceManager { cause: disconnect }),
        );
    }
}
