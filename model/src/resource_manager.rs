//! The ResourceManager endpoint of a JobManager process: TaskExecutor registration and the
//! RM ↔ TE heartbeat (the RM is the sender).
//!
//! It owns TaskExecutor registrations (`InstanceID`s) and the slots they reported. Slot
//! allocation (the SlotManager) and JobMaster registration come with the control plane.

use crate::bugs::{Bug, Bugs};
use crate::config::FlinkConfig;
use crate::heartbeat::{HeartbeatManager, HeartbeatPair, Role};
use crate::obs::{Endpoint, LossCause, Obs};
use crate::process::Process;
use crate::rpc::{
    DisconnectCause, InstanceId, Msg, RegistrationResponse, ResourceManagerId, ResourceManagerRpc,
    SlotReport, TaskExecutorRpc,
};
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeMap;

/// Flink's `WorkerRegistration` (the fields the model needs).
#[derive(Debug)]
struct WorkerRegistration {
    instance_id: InstanceId,
    session_id: u64,
    /// Set once the first slot report registered the slots (FLINK-9427 ordering).
    slots_registered: bool,
    slot_report: SlotReport,
}

#[derive(Debug)]
pub struct ResourceManager {
    me: NodeId,
    id: ResourceManagerId,
    bugs: Bugs,
    task_executors: BTreeMap<NodeId, WorkerRegistration>,
    heartbeats: HeartbeatManager,
}

/// Flink's `HighAvailabilityServices.DEFAULT_LEADER_ID`: the fixed leader id without HA.
pub const DEFAULT_LEADER_ID: ResourceManagerId = 0;

impl ResourceManager {
    pub fn new(me: NodeId, config: &FlinkConfig, bugs: Bugs) -> ResourceManager {
        ResourceManager {
            me,
            id: DEFAULT_LEADER_ID,
            bugs,
            task_executors: BTreeMap::new(),
            heartbeats: HeartbeatManager::new(
                HeartbeatPair::ResourceManagerTaskExecutor,
                Role::Sender,
                Endpoint::ResourceManager(me),
                config,
                bugs,
            ),
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Process>) {
        self.heartbeats.start(ctx);
    }

    /// Registered TaskExecutors and whether their slots are registered (for tests and reports).
    pub fn registered(&self) -> impl Iterator<Item = (NodeId, InstanceId, bool)> + '_ {
        self.task_executors
            .iter()
            .map(|(n, r)| (*n, r.instance_id, r.slots_registered))
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Process>, from: NodeId, rpc: ResourceManagerRpc) {
        match rpc {
            ResourceManagerRpc::RegisterTaskExecutor {
                registration,
                attempt_id,
            } => {
                assert_eq!(registration.resource_id, from);
                self.on_register_task_executor(ctx, from, registration.session_id, attempt_id)
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
                if let Some(reg) = self.task_executors.get_mut(&resource_id) {
                    if reg.slots_registered {
                        reg.slot_report = slot_report;
                    }
                }
            }
            ResourceManagerRpc::DisconnectTaskManager { resource_id, .. } => {
                self.close_task_manager_connection(ctx, resource_id, None);
            }
        }
    }

    fn on_register_task_executor(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
        tm: NodeId,
        session_id: u64,
        attempt_id: u64,
    ) {
        if let Some(old) = self.task_executors.remove(&tm) {
            // A newer registration of the same ResourceID replaces the old one (the TE
            // reconnected or restarted); its slots leave the SlotManager. No disconnect is sent.
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
                session_id,
                slots_registered: false,
                slot_report: Vec::new(),
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
        ctx: &mut Ctx<'_, Process>,
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
                }
                reg.slot_report = slot_report;
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

    pub fn on_heartbeat_tick(&mut self, ctx: &mut Ctx<'_, Process>) {
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

    pub fn on_heartbeat_timeout(&mut self, ctx: &mut Ctx<'_, Process>, timer: TimerId, tm: NodeId) {
        if !self.heartbeats.on_timeout(timer, tm) {
            return;
        }
        if self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
            return;
        }
        self.close_task_manager_connection(ctx, tm, Some(LossCause::HeartbeatTimeout));
    }

    /// A message to `tm` found its process down.
    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Process>, tm: NodeId, msg: &Msg) {
        if let Msg::TaskExecutor(TaskExecutorRpc::HeartbeatFromResourceManager { .. }) = msg {
            if self.heartbeats.report_rpc_failure(tm) {
                self.close_task_manager_connection(ctx, tm, Some(LossCause::Unreachable));
            }
        }
    }

    /// Flink's `closeTaskManagerConnection`: unmonitor, unregister (its slots leave the
    /// SlotManager) and tell the TE to disconnect. `cause` is `None` when the TE asked for it.
    fn close_task_manager_connection(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
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
        ctx.trace(Obs::TaskExecutorUnregistered {
            task_executor: tm,
            instance_id: reg.instance_id,
        });
        let _ = reg.session_id;
        let cause = match cause {
            Some(LossCause::HeartbeatTimeout) => DisconnectCause::HeartbeatTimeout,
            Some(LossCause::Unreachable) => DisconnectCause::Unreachable,
            _ => DisconnectCause::Reconnect,
        };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::DisconnectResourceManager { cause }),
        );
    }
}
