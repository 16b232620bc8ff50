//! The TaskExecutor's ResourceManager connection: Flink's `ResourceManagerLeaderListener`, the
//! `TaskExecutorToResourceManagerConnection` (registration with retry under
//! `RetryingRegistration`), `establishResourceManagerConnection` (the initial slot report, RM ↔
//! TE heartbeat monitoring, stopping `taskmanager.registration.timeout`) and
//! `reconnectToResourceManager` (docs/flink-runtime.md §1.4, §5.2).
//!
//! It does not own the slots the slot report describes (`slots`), nor the heartbeat requests and
//! timeouts themselves, which `dispatch` answers and routes here.

use super::TaskExecutor;
use crate::protocol::ha::LeaderInformation;
use crate::protocol::ids::{InstanceId, ResourceManagerId};
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{
    DisconnectCause, Msg, RegistrationResponse, ResourceManagerRpc, TaskExecutorRegistration,
};
use crate::protocol::timer::RegistrationTarget;
use crate::protocol::timer::{TaskExecutorTimer, Timer};
use crate::protocol::Flink;
use crate::services::registration::RetryingRegistration;
use sim::{Ctx, NodeId, TimerId};

/// The TE's view of its ResourceManager connection.
#[derive(Debug)]
pub(super) enum RmConnection {
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

impl TaskExecutor {
    /// `ResourceManagerLeaderListener.notifyLeaderAddress`: a new RM leader (or none) — close
    /// the old connection and register at the new leader.
    pub(super) fn on_resource_manager_leader(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        leader: Option<LeaderInformation>,
    ) {
        // Only leader retrieval (high availability) moves the RM.
        assert!(self.ha.is_some());
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
        // Registering or registered exactly while an RM leader is known.
        assert_eq!(
            self.connection.is_some(),
            self.resource_manager_token.is_some()
        );
    }

    pub(super) fn connect_to_resource_manager(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert!(self.connection.is_none());
        if self.registration_timeout.is_none() {
            self.registration_timeout = Some(ctx.set_timer(
                self.config.taskmanager_registration_timeout,
                Timer::TaskExecutor(TaskExecutorTimer::RegistrationTimeout),
            ));
        }
        let registration = RetryingRegistration::start(
            RegistrationTarget::ResourceManager,
            self.resource_manager,
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.connection = Some(RmConnection::Registering(registration));
        // `taskmanager.registration.timeout` runs while the TE is not registered.
        assert!(self.registration_timeout.is_some());
    }

    /// The answer to the registration's gateway connection: register over it.
    pub(super) fn on_resource_manager_connected(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        connect_id: u64,
        found: bool,
    ) {
        let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
            return;
        };
        if let Some(id) = reg.on_connected(connect_id, found, &mut self.next_attempt_id, ctx) {
            self.send_registration(ctx, id);
        }
    }

    pub(super) fn send_registration(&self, ctx: &mut Ctx<'_, Flink>, attempt_id: u64) {
        // Registering with the RM only while not registered.
        assert!(matches!(
            self.connection,
            Some(RmConnection::Registering(_))
        ));
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
    pub(super) fn reconnect_to_resource_manager(
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

    pub(super) fn on_registration_response(
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
        // The current attempt went to the current RM: a new RM leader starts a new registration.
        assert_eq!(from, self.resource_manager);
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
                    Timer::TaskExecutor(TaskExecutorTimer::SlotReportTimeout { instance_id }),
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
}
