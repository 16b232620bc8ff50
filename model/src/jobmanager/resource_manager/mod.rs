//! The ResourceManager endpoint of a JobManager process: TaskExecutor and JobMaster
//! registration, the RM ↔ TE and RM ↔ JobMaster heartbeats (the RM is the sender of both), and
//! the SlotManager: declarative slot requirements per job, slot allocation by `requestSlot`,
//! reconciliation with the TaskExecutors' slot reports, and — when the cluster has spare
//! TaskManagers — active resource management (start workers when slots are missing, release idle
//! ones).
//!
//! It does not own slots' contents (tasks): those are the JobMasters' and TaskExecutors'.
//!
//! This module is the endpoint: the registrations of TaskExecutors and JobMasters, both
//! heartbeats, and the dispatch of RPCs, timers and unreachable targets. The SlotManager's
//! bookkeeping and decisions live in `slot_manager`.

mod slot_manager;
#[cfg(test)]
mod tests;

use crate::checking::bugs::{Bug, Bugs};
use crate::process::ClusterSetup;
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{
    AllocationId, InstanceId, JobId, JobMasterId, ResourceManagerId, SlotId,
};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    ConnectPurpose, DisconnectCause, JobMasterRegistration, JobMasterRpc, Msg,
    RegistrationResponse, ResourceManagerRpc, SlotReport, SlotStatus, TaskExecutorRpc,
};
use crate::protocol::states::SlotState;
use crate::protocol::timer::{HeartbeatPair, HeartbeatTimer, ResourceManagerTimer, Timer};
use crate::protocol::Flink;
use crate::services::heartbeat::{HeartbeatManager, Role};
use crate::services::registration::take_answered;
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
pub use slot_manager::REQUIREMENT_CHECK_DELAY;
use std::collections::{BTreeMap, BTreeSet};

/// Flink's `HighAvailabilityServices.DEFAULT_LEADER_ID`: the fixed leader id without HA.
pub const DEFAULT_LEADER_ID: ResourceManagerId = 0;

/// Flink's `WorkerRegistration` (the fields the model needs).
#[derive(Debug)]
struct WorkerRegistration {
    instance_id: InstanceId,
    /// Set once the first slot report registered the slots (FLINK-9427 ordering).
    slots_registered: bool,
    /// When the worker last had no allocated slot (for idle release), local monotonic ns.
    idle_since_ns: Option<u64>,
    /// The planted bug `RmTrustsStaleSlotReport` only: the previous heartbeat's slot report.
    previous_report: Option<SlotReport>,
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
    /// `registerTaskExecutor` calls waiting for the connection back to their TaskExecutor, by
    /// connection id (Flink's `taskExecutorGatewayFutures`, whose latest entry per ResourceID
    /// is in `latest_te_connect`).
    te_connects: BTreeMap<u64, PendingTaskExecutor>,
    latest_te_connect: BTreeMap<NodeId, u64>,
    /// `registerJobMaster` calls waiting for the connection back to their JobMaster.
    jm_connects: BTreeMap<u64, PendingJobMaster>,
    next_connect_id: u64,
}

/// A `registerTaskExecutor` call waiting for its connection back to the TaskExecutor.
#[derive(Clone, Copy, Debug)]
struct PendingTaskExecutor {
    node: NodeId,
    attempt_id: u64,
    /// The slots its registration announces.
    slots: u32,
}

/// A `registerJobMaster` call waiting for its connection back to the JobMaster.
#[derive(Clone, Copy, Debug)]
struct PendingJobMaster {
    node: NodeId,
    job_id: JobId,
    job_master_id: JobMasterId,
    attempt_id: u64,
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
            te_connects: BTreeMap::new(),
            latest_te_connect: BTreeMap::new(),
            jm_connects: BTreeMap::new(),
            next_connect_id: 0,
        }
    }

    /// The ResourceManagerId (fencing token) of a leader session.
    pub fn with_id(mut self, id: ResourceManagerId) -> ResourceManager {
        // A leader session's token is given to a fresh ResourceManager, never the default one.
        assert_eq!(self.id, DEFAULT_LEADER_ID);
        assert!(self.task_executors.is_empty() && self.job_masters.is_empty());
        self.id = id;
        self
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.heartbeats.start(ctx);
        if !self.spares.is_empty() {
            ctx.set_timer(
                self.idle_check_interval(),
                Timer::ResourceManager(ResourceManagerTimer::TaskManagerIdleCheck),
            );
        }
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
                self.connect_to_task_executor(ctx, from, attempt_id, registration.number_of_slots)
            }
            ResourceManagerRpc::SendSlotReport {
                resource_id,
                instance_id,
                slot_report,
            } => self.on_send_slot_report(ctx, resource_id, instance_id, slot_report),
            ResourceManagerRpc::HeartbeatFromTaskManager {
                resource_id,
                slot_report,
            } => self.on_heartbeat_from_task_manager(ctx, resource_id, &slot_report),
            ResourceManagerRpc::DisconnectTaskManager { resource_id, .. } => {
                self.close_task_manager_connection(ctx, resource_id, None);
            }
            ResourceManagerRpc::RegisterJobMaster {
                job_id,
                job_master_id,
                attempt_id,
            } => self.connect_to_job_master(ctx, from, job_id, job_master_id, attempt_id),
            ResourceManagerRpc::DeclareRequiredResources {
                job_id,
                job_master_id,
                slots,
                version,
            } => {
                self.on_declare_required_resources(ctx, from, job_id, job_master_id, slots, version)
            }
            ResourceManagerRpc::HeartbeatFromJobManager { job_id } => {
                self.on_heartbeat_from_job_manager(ctx, from, job_id)
            }
            ResourceManagerRpc::NotifySlotAvailable {
                instance_id,
                slot_id,
                allocation_id,
            } => self.on_notify_slot_available(ctx, instance_id, slot_id, allocation_id),
            ResourceManagerRpc::RequestSlotResponse { allocation_id, ok } => {
                self.on_request_slot_response(ctx, allocation_id, ok)
            }
            ResourceManagerRpc::DisconnectJobManager {
                job_id,
                job_master_id,
                terminal,
            } => self.on_disconnect_job_manager(ctx, job_id, job_master_id, terminal),
        }
    }

    /// `registerTaskExecutor`: connect back to the TaskExecutor first; only the latest call's
    /// connection registers it.
    fn connect_to_task_executor(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        attempt_id: u64,
        slots: u32,
    ) {
        self.next_connect_id += 1;
        let connect_id = self.next_connect_id;
        self.te_connects.insert(
            connect_id,
            PendingTaskExecutor {
                node: tm,
                attempt_id,
                slots,
            },
        );
        self.latest_te_connect.insert(tm, connect_id);
        ctx.send(
            tm,
            Msg::Connect {
                purpose: ConnectPurpose::ResourceManagerToTaskExecutor,
                connect_id,
            },
        );
    }

    /// `registerJobMaster`: connect back to the JobMaster first.
    fn connect_to_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        node: NodeId,
        job_id: JobId,
        job_master_id: JobMasterId,
        attempt_id: u64,
    ) {
        self.next_connect_id += 1;
        let connect_id = self.next_connect_id;
        self.jm_connects.insert(
            connect_id,
            PendingJobMaster {
                node,
                job_id,
                job_master_id,
                attempt_id,
            },
        );
        ctx.send(
            node,
            Msg::Connect {
                purpose: ConnectPurpose::ResourceManagerToJobMaster(job_id),
                connect_id,
            },
        );
    }

    /// A connection back to a registering endpoint completed (`found`), or failed or could not
    /// be sent.
    pub fn on_connect_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        purpose: ConnectPurpose,
        connect_id: u64,
        found: bool,
    ) {
        match purpose {
            ConnectPurpose::ResourceManagerToTaskExecutor => {
                let Some(p) = take_answered(&mut self.te_connects, connect_id, |p| p.node == from)
                else {
                    return;
                };
                let (tm, attempt_id, slots) = (p.node, p.attempt_id, p.slots);
                let latest = self.latest_te_connect.get(&tm) == Some(&connect_id);
                if latest {
                    self.latest_te_connect.remove(&tm);
                } else {
                    ctx.trace(Obs::OutdatedConnectionDeclined {
                        task_executor: tm,
                        newer_registered: !self.latest_te_connect.contains_key(&tm),
                    });
                }
                if !latest && !self.bugs.has(Bug::OutdatedConnectionRegisters) {
                    self.decline_task_executor(ctx, tm, attempt_id, "outdated registration");
                } else if found {
                    self.on_register_task_executor(ctx, tm, attempt_id, slots);
                } else {
                    self.decline_task_executor(ctx, tm, attempt_id, "could not connect");
                }
            }
            ConnectPurpose::ResourceManagerToJobMaster(_) => {
                let Some(p) = take_answered(&mut self.jm_connects, connect_id, |p| p.node == from)
                else {
                    return;
                };
                if found {
                    self.on_register_job_master(
                        ctx,
                        p.node,
                        p.job_id,
                        p.job_master_id,
                        p.attempt_id,
                    );
                } else {
                    ctx.send(
                        p.node,
                        Msg::JobMaster {
                            job_id: p.job_id,
                            rpc: JobMasterRpc::RegisterJobMasterResponse {
                                attempt_id: p.attempt_id,
                                response: JobMasterRegistration::Failure,
                            },
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn decline_task_executor(
        &self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        attempt_id: u64,
        reason: &str,
    ) {
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
                attempt_id,
                response: RegistrationResponse::Failure {
                    reason: reason.to_string(),
                },
            }),
        );
    }

    fn on_register_task_executor(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        attempt_id: u64,
        slots: u32,
    ) {
        if let Some(old) = self.task_executors.remove(&tm) {
            // A newer registration of the same ResourceID replaces the old one (the TE
            // reconnected or restarted); its slots leave the SlotManager. No disconnect is sent.
            self.unregister_slots(ctx, tm);
            ctx.trace(Obs::TaskExecutorUnregistered {
                task_executor: tm,
                instance_id: old.instance_id,
            });
        }
        debug_assert!(self.slots.keys().all(|s| s.task_manager != tm));
        let instance_id = ctx.rng().random::<u64>();
        // A registration's instance id is unique among the registered TaskExecutors.
        debug_assert!(self
            .task_executors
            .values()
            .all(|r| r.instance_id != instance_id));
        self.task_executors.insert(
            tm,
            WorkerRegistration {
                instance_id,
                slots_registered: false,
                idle_since_ns: Some(ctx.mono_ns()),
                previous_report: None,
            },
        );
        self.heartbeats.monitor_target(ctx, tm);
        assert!(self.heartbeats.is_monitored(tm));
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
        if self.bugs.has(Bug::SlotsBeforeRegistrationCompletes) {
            // The slots as the registration announces them, all free, before the TaskExecutor
            // even knows it is registered.
            let report = (0..slots)
                .map(|slot_index| SlotStatus {
                    slot_index,
                    allocation: None,
                })
                .collect();
            self.on_send_slot_report(ctx, tm, instance_id, report);
        }
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
                // Slots register once per registration: none of this TE's are known before.
                debug_assert!(
                    reg.slots_registered || self.slots.keys().all(|s| s.task_manager != tm)
                );
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
                        self.set_slot_state(ctx, slot_id, SlotState::Free);
                    }
                    // New slots may fulfil requirements declared before they registered.
                    self.schedule_requirement_check(ctx);
                }
                debug_assert!(slot_report.iter().all(|s| self.slots.contains_key(&SlotId {
                    task_manager: tm,
                    slot_index: s.slot_index,
                })));
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

    /// A TaskExecutor's heartbeat response, with its slot report.
    fn on_heartbeat_from_task_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        resource_id: NodeId,
        slot_report: &SlotReport,
    ) {
        // The monitor is reset only for monitored targets; the payload goes to the
        // listener either way, which ignores reports of unregistered TaskExecutors.
        self.heartbeats.report_heartbeat(ctx, resource_id);
        let Some(reg) = self
            .task_executors
            .get_mut(&resource_id)
            .filter(|r| r.slots_registered)
        else {
            return;
        };
        if self.bugs.has(Bug::RmTrustsStaleSlotReport) {
            // The previous heartbeat's report stands in for this one.
            if let Some(stale) = reg.previous_report.replace(slot_report.clone()) {
                self.report_slot_status(ctx, resource_id, &stale);
            }
            return;
        }
        self.report_slot_status(ctx, resource_id, slot_report);
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
        // One registration per job: the previous one went above.
        assert!(!self.job_masters.contains_key(&job_id));
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

    /// A JobMaster's heartbeat response.
    fn on_heartbeat_from_job_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_id: JobId,
    ) {
        if let Some(reg) = self.job_masters.get_mut(&job_id) {
            reg.heartbeats.report_heartbeat(ctx, from);
        }
    }

    /// `disconnectJobManager`: the registration goes if it is the JobMaster's; a terminal job's
    /// requirements go with it.
    fn on_disconnect_job_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        job_master_id: JobMasterId,
        terminal: bool,
    ) {
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
        // The JobMaster named by the fencing token is no longer registered.
        assert!(self
            .job_masters
            .get(&job_id)
            .is_none_or(|r| r.job_master_id != job_master_id));
    }

    pub fn on_timer(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        tag: ResourceManagerTimer,
    ) {
        use ResourceManagerTimer as R;
        match tag {
            R::TaskManagerHeartbeat(HeartbeatTimer::Tick) => self.on_heartbeat_tick(ctx),
            R::TaskManagerHeartbeat(HeartbeatTimer::Timeout { target }) => {
                self.on_heartbeat_timeout(ctx, timer, target)
            }
            R::JobManagerHeartbeat {
                job_id,
                timer: HeartbeatTimer::Tick,
            } => self.on_job_master_heartbeat_tick(ctx, job_id),
            R::JobManagerHeartbeat {
                job_id,
                timer: HeartbeatTimer::Timeout { target },
            } => self.on_job_master_heartbeat_timeout(ctx, timer, job_id, target),
            R::RequirementCheck => self.on_requirement_check(ctx),
            R::RequestSlotTimeout { allocation_id } => {
                self.on_request_slot_timeout(ctx, allocation_id)
            }
            R::TaskManagerIdleCheck => self.on_task_manager_idle_check(ctx),
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

    /// The RM → JobMaster heartbeat request of one job's registration.
    fn on_job_master_heartbeat_tick(&mut self, ctx: &mut Ctx<'_, Flink>, job_id: JobId) {
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

    fn on_job_master_heartbeat_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        job_id: JobId,
        target: NodeId,
    ) {
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
        assert_eq!(reg.node, target, "a registration monitors its JobMaster");
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

    /// A message to `to` found its process down.
    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::Connect {
                purpose,
                connect_id,
            } => self.on_connect_response(ctx, to, *purpose, *connect_id, false),
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
        assert!(!self.heartbeats.is_monitored(tm));
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
        assert!(!self.task_executors.contains_key(&tm));
        self.check_slot_manager();
    }
}
