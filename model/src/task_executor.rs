//! The TaskExecutor of a TaskManager process: its connection to the ResourceManager
//! (registration with retry, the slot report, the RM ↔ TE heartbeat as the receiver) and the
//! `taskmanager.registration.timeout` after which it gives up and terminates.
//!
//! Slots are reported but not yet allocated; tasks and the JobMaster connection come with the
//! control plane.

use crate::bugs::{Bug, Bugs};
use crate::config::FlinkConfig;
use crate::heartbeat::{HeartbeatManager, HeartbeatPair, Role};
use crate::obs::{Endpoint, LossCause, Obs};
use crate::process::{Process, Timer};
use crate::registration::{RegistrationTarget, RetryingRegistration};
use crate::rpc::{
    DisconnectCause, InstanceId, Msg, RegistrationResponse, ResourceManagerRpc, SlotReport,
    SlotStatus, TaskExecutorRegistration, TaskExecutorRpc,
};
use rand::Rng as _;
use sim::{Ctx, NodeId, TimerId};

/// The TE's view of its ResourceManager connection.
#[derive(Debug)]
enum RmConnection {
    /// Registering (or waiting to retry).
    Registering(RetryingRegistration),
    /// Registered. `slot_report_timeout` runs until the initial slot report is acknowledged.
    Established {
        instance_id: InstanceId,
        slot_report_timeout: Option<TimerId>,
    },
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
    slots: SlotReport,
    connection: Option<RmConnection>,
    registration_timeout: Option<TimerId>,
    next_attempt_id: u64,
    heartbeats: HeartbeatManager,
}

impl TaskExecutor {
    pub fn new(
        me: NodeId,
        resource_manager: NodeId,
        config: &FlinkConfig,
        bugs: Bugs,
    ) -> TaskExecutor {
        let slots = (0..config.number_of_task_slots)
            .map(|slot_index| SlotStatus {
                slot_index,
                allocation_id: None,
            })
            .collect();
        TaskExecutor {
            me,
            resource_manager,
            config: config.clone(),
            bugs,
            session_id: 0,
            slots,
            connection: None,
            registration_timeout: None,
            next_attempt_id: 0,
            heartbeats: HeartbeatManager::new(
                HeartbeatPair::ResourceManagerTaskExecutor,
                Role::Receiver,
                Endpoint::TaskExecutor(me),
                config,
                bugs,
            ),
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Process>) {
        // A fresh session per process start lets the RM tell a restarted TE from the old one.
        self.session_id = ctx.rng().random::<u64>();
        self.connect_to_resource_manager(ctx);
    }

    /// Whether the TE is connected to its RM, and under which registration.
    pub fn connected_instance(&self) -> Option<InstanceId> {
        match &self.connection {
            Some(RmConnection::Established { instance_id, .. }) => Some(*instance_id),
            _ => None,
        }
    }

    fn connect_to_resource_manager(&mut self, ctx: &mut Ctx<'_, Process>) {
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

    fn send_registration(&self, ctx: &mut Ctx<'_, Process>, attempt_id: u64) {
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
    /// registration timeout and register again.
    fn reconnect_to_resource_manager(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
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

    fn close_resource_manager_connection(&mut self, ctx: &mut Ctx<'_, Process>) {
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
        self.heartbeats.unmonitor_target(ctx, self.resource_manager);
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Process>, from: NodeId, rpc: TaskExecutorRpc) {
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
                if self.heartbeats.report_heartbeat(ctx, resource_id) {
                    ctx.send(
                        resource_id,
                        Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager {
                            resource_id: self.me,
                            slot_report: self.slots.clone(),
                        }),
                    );
                }
            }
            TaskExecutorRpc::DisconnectResourceManager { .. } => {
                if from == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::Disconnect));
                }
            }
        }
    }

    fn on_registration_response(
        &mut self,
        ctx: &mut Ctx<'_, Process>,
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
            RegistrationResponse::Success { instance_id, .. } => {
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
                    slot_report_timeout,
                });
                ctx.send(
                    from,
                    Msg::ResourceManager(ResourceManagerRpc::SendSlotReport {
                        resource_id: self.me,
                        instance_id,
                        slot_report: self.slots.clone(),
                    }),
                );
                self.heartbeats.monitor_target(ctx, from);
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

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Process>, timer: TimerId, tag: Timer) {
        match tag {
            Timer::HeartbeatTimeout { target, .. } => {
                if !self.heartbeats.on_timeout(timer, target) {
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
            Timer::RegistrationAttemptTimeout { attempt_id, .. } => {
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
            Timer::RegistrationRetry { attempt_id, .. } => {
                let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    self.send_registration(ctx, id);
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
                }) = self.connection.as_mut()
                {
                    if *current == instance_id && *slot_report_timeout == Some(timer) {
                        *slot_report_timeout = None;
                        self.reconnect_to_resource_manager(ctx, None);
                    }
                }
            }
            Timer::HeartbeatTick(_) => unreachable!("a TaskExecutor is no heartbeat sender"),
        }
    }

    pub fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Process>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::ResourceManager(ResourceManagerRpc::RegisterTaskExecutor {
                attempt_id, ..
            }) => {
                if let Some(RmConnection::Registering(reg)) = self.connection.as_mut() {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager { .. })
                if to == self.resource_manager && self.heartbeats.report_rpc_failure(to) =>
            {
                self.reconnect_to_resource_manager(ctx, Some(LossCause::Unreachable));
            }
            Msg::ResourceManager(ResourceManagerRpc::SendSlotReport { instance_id, .. })
                if self.connected_instance() == Some(*instance_id) =>
            {
                self.reconnect_to_resource_manager(ctx, None);
            }
            _ => {}
        }
    }
}
