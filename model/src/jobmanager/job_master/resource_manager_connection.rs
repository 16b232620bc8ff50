//! The JobMaster's connection to the ResourceManager (Flink's `ResourceManagerConnection`): the
//! retrying `registerJobMaster`, the RM ↔ JM heartbeat (the JobMaster is the receiver), and
//! reconnection when the RM is lost or disconnects the JobMaster. Once connected, the slot pool
//! declares its requirement.
//!
//! It does not own the requirement itself (the slot pool does) nor the RM's side (the
//! ResourceManager's `on_register_job_master` does).

use super::JobMaster;
use crate::checking::bugs::Bug;
use crate::protocol::obs::{Endpoint, LossCause, Obs};
use crate::protocol::rpc::{JobMasterRegistration, Msg, ResourceManagerRpc};
use crate::protocol::timer::RegistrationTarget;
use crate::protocol::Flink;
use crate::services::registration::RetryingRegistration;
use sim::{Ctx, NodeId, TimerId};

#[derive(Debug)]
pub(super) enum RmConnection {
    Registering(RetryingRegistration),
    Connected,
}

impl JobMaster {
    pub(super) fn connect_to_resource_manager(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // The previous connection (and its retrying registration) is gone.
        assert!(self.rm.is_none());
        assert!(!self.rm_heartbeats.is_monitored(self.resource_manager));
        let registration = RetryingRegistration::start(
            RegistrationTarget::ResourceManagerForJob(self.job_id),
            self.resource_manager,
            &self.config,
            &mut self.next_attempt_id,
            ctx,
        );
        self.rm = Some(RmConnection::Registering(registration));
    }

    /// The answer to the registration's gateway connection (`found` false too when it could
    /// not be sent).
    pub(super) fn on_resource_manager_connected(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        connect_id: u64,
        found: bool,
    ) {
        let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
            return;
        };
        if let Some(id) = reg.on_connected(connect_id, found, &mut self.next_attempt_id, ctx) {
            self.send_registration(ctx, id);
        }
    }

    pub(super) fn send_registration(&self, ctx: &mut Ctx<'_, Flink>, attempt_id: u64) {
        assert!(matches!(self.rm, Some(RmConnection::Registering(_))));
        assert!(!self.shut_down);
        ctx.send(
            self.resource_manager,
            Msg::ResourceManager(ResourceManagerRpc::RegisterJobMaster {
                job_id: self.job_id,
                job_master_id: self.id,
                attempt_id,
            }),
        );
    }

    pub(super) fn reconnect_to_resource_manager(
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
        assert!(matches!(self.rm, Some(RmConnection::Registering(_))));
    }

    pub(super) fn on_register_job_master_response(
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
                // Connected: the RM is monitored and a requirement declaration is in flight.
                assert!(self.rm_heartbeats.is_monitored(self.resource_manager));
                assert!(self.declare_timer.is_some());
            }
            JobMasterRegistration::Failure => {
                reg.on_declined(attempt_id, ctx);
            }
        }
    }

    pub(super) fn on_registration_attempt_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt_id: u64,
    ) {
        let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
            return;
        };
        if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx) {
            self.send_registration(ctx, id);
        }
    }

    pub(super) fn on_registration_retry(&mut self, ctx: &mut Ctx<'_, Flink>, attempt_id: u64) {
        let Some(RmConnection::Registering(reg)) = self.rm.as_mut() else {
            return;
        };
        if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
            self.send_registration(ctx, id);
        }
    }

    /// The RM's (sender's) heartbeat request, answered while the RM is monitored.
    pub(super) fn on_heartbeat_from_resource_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
    ) {
        if self.rm_heartbeats.report_heartbeat(ctx, from) {
            // Only the connected ResourceManager is monitored.
            assert_eq!(from, self.resource_manager);
            assert!(matches!(self.rm, Some(RmConnection::Connected)));
            ctx.send(
                from,
                Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromJobManager {
                    job_id: self.job_id,
                }),
            );
        }
    }

    pub(super) fn on_resource_manager_heartbeat_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        target: NodeId,
    ) {
        if self.rm_heartbeats.on_timeout(timer, target)
            && !self.bugs.has(Bug::HeartbeatTimeoutIgnored)
        {
            assert_eq!(target, self.resource_manager);
            self.reconnect_to_resource_manager(ctx, Some(LossCause::HeartbeatTimeout));
        }
    }

    /// `disconnectResourceManager`: the current RM dropped this JobMaster; register again.
    pub(super) fn on_disconnect_resource_manager(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
    ) {
        if from == self.resource_manager {
            self.reconnect_to_resource_manager(ctx, Some(LossCause::Disconnect));
        }
    }
}
