//! The JobManager process's leadership with high availability: the HA services (the `ha` node's
//! leader latch and the process's HA client), which the processes start one after another
//! (`START_GAP`); the HA client's effects, handled in order; `grantLeadership`, which creates new
//! component instances under the leader session id and confirms the ResourceManager's and the
//! Dispatcher's leadership; `revokeLeadership`, which suspends the jobs and stops every
//! component with the timers it armed; and the start of a job's JobMaster under the current
//! leadership, whose leadership it confirms too.
//!
//! It does not own what the leader reads and writes in the `ha` store (`ha_stores` does), nor
//! the components themselves.

use super::ha_stores::{job_key, Call};
use super::{Components, JobManagerProcess};
use crate::checking::bugs::Bug;
use crate::external::ha::client::{Effect, HaClient};
use crate::external::ha::node::{HaServices, DISPATCHER_COMPONENT, RESOURCE_MANAGER_COMPONENT};
use crate::jobmanager::dispatcher::Dispatcher;
use crate::jobmanager::job_master::JobMaster;
use crate::jobmanager::resource_manager::ResourceManager;
use crate::protocol::checkpoint::CompletedCheckpoint;
use crate::protocol::ha::{HaReply, LeaderSessionId};
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::JobSpec;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use crate::taskmanager::task_executor::job_component;
use sim::{Ctx, TimerId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct JobManagerHa {
    pub(super) services: HaServices,
    pub(super) calls: BTreeMap<u64, Call>,
    /// The Dispatcher's recovery of this leadership has started.
    pub(super) recovery_started: bool,
    /// Jobs with an entry in the JobResultStore (as listed at recovery).
    pub(super) results: BTreeSet<JobId>,
    /// The HA services have started (JobManagers start in name order, see [`START_GAP`]).
    pub(super) started: bool,
    /// Planted [`Bug::HaDataDeletedOnSuspend`]: suspended jobs whose HA data this deposed
    /// process still means to delete.
    pub(super) cleanup_due: BTreeSet<JobId>,
}

/// With HA, JobManager processes start their HA services one after another in name order, this
/// far apart, so that `jobmanager-1` wins the first election (as a standby deployed after the
/// first JobManager would); later elections are won by whoever is first in the latch queue.
pub const START_GAP: std::time::Duration = std::time::Duration::from_secs(1);

impl JobManagerProcess {
    pub fn on_ha_reply(&mut self, ctx: &mut Ctx<'_, Flink>, reply: HaReply) {
        let Some(ha) = self.ha.as_mut() else { return };
        let effects = ha.services.on_reply(ctx, reply);
        self.handle_effects(ctx, effects);
    }

    pub fn on_ha_tick(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) {
        let Some(ha) = self.ha.as_mut() else { return };
        let effects = if ha.started {
            ha.services.on_tick(ctx, timer)
        } else {
            ha.started = true;
            ha.services.start(ctx)
        };
        self.handle_effects(ctx, effects);
    }

    pub(super) fn handle_effects(&mut self, ctx: &mut Ctx<'_, Flink>, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            let more = self.handle_effect(ctx, e);
            queue.extend(more);
        }
    }

    /// Runs `f` on the HA client; returns its effects (to be handled by the caller's loop).
    pub(super) fn client_call<R>(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        f: impl FnOnce(&mut HaClient, sim::Time) -> (R, Vec<Effect>),
    ) -> (R, Vec<Effect>) {
        let ha = self.ha.as_mut().expect("HA");
        ha.services.call(ctx, f)
    }

    pub(super) fn handle_effect(&mut self, ctx: &mut Ctx<'_, Flink>, e: Effect) -> Vec<Effect> {
        match e {
            Effect::Granted { leader_session_id } => self.grant(ctx, leader_session_id.0),
            Effect::Revoked { .. } => self.revoke(ctx),
            Effect::Published {
                component,
                leader_session_id,
            } => {
                let leading = self.leader_session_id() == Some(leader_session_id.0);
                if leading && component == DISPATCHER_COMPONENT {
                    self.start_recovery(ctx)
                } else {
                    Vec::new()
                }
            }
            Effect::ConnectionStateChanged(
                crate::external::ha::client::ConnectionState::Connected,
            ) => {
                let pending = self.ha.as_ref().is_some_and(|h| !h.recovery_started);
                if pending && self.components.is_some() {
                    // A recovery that could not be sent while suspended.
                    self.start_recovery(ctx)
                } else {
                    self.send_suspend_cleanup(ctx)
                }
            }
            Effect::CheckpointId { job, checkpoint_id } => {
                self.with_job_master(ctx, &job, |jm, ctx| {
                    jm.on_checkpoint_id(ctx, Some(checkpoint_id))
                })
            }
            Effect::CheckpointIdFailed { job } => {
                self.with_job_master(ctx, &job, |jm, ctx| jm.on_checkpoint_id(ctx, None))
            }
            Effect::Result { request_id, result } => {
                let call = self.ha.as_mut().and_then(|h| h.calls.remove(&request_id));
                match call {
                    Some(call) => self.on_result(ctx, call, result),
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn with_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job: &str,
        f: impl FnOnce(&mut JobMaster, &mut Ctx<'_, Flink>),
    ) -> Vec<Effect> {
        assert!(self.ha.is_some(), "job work from the `ha` store");
        let Ok(job_id) = job.parse::<JobId>() else {
            return Vec::new();
        };
        let Some(jm) = self
            .components
            .as_mut()
            .and_then(|c| c.job_masters.get_mut(&job_id))
        else {
            return Vec::new();
        };
        assert_eq!(jm.job_id(), job_id);
        f(jm, ctx);
        self.after_step(ctx)
    }

    /// `grantLeadership`: new component instances under the new token.
    pub(super) fn grant(&mut self, ctx: &mut Ctx<'_, Flink>, token: u64) -> Vec<Effect> {
        // A granted leader session is never older than the one it replaces.
        assert!(self.leader_session_id().is_none_or(|old| old <= token));
        self.stop_components(ctx);
        assert!(self.components.is_none());
        if let Some(ha) = self.ha.as_mut() {
            // Leading again: this process did not shut down after all.
            ha.cleanup_due.clear();
        }
        ctx.trace(Obs::LeadershipGranted {
            leader_session_id: token,
        });
        let mut resource_manager = ResourceManager::new(self.me, &self.setup).with_id(token);
        resource_manager.on_start(ctx);
        self.components = Some(Components {
            token: Some(token),
            dispatcher: Dispatcher::new(self.me, &self.setup),
            resource_manager,
            job_masters: BTreeMap::new(),
        });
        assert_eq!(self.leader_session_id(), Some(token));
        let me = self.me;
        let mut effects = Vec::new();
        for component in [RESOURCE_MANAGER_COMPONENT, DISPATCHER_COMPONENT] {
            let (_, e) = self.client_call(ctx, |c, now| {
                (
                    (),
                    c.confirm_leadership(now, component, LeaderSessionId(token), me),
                )
            });
            effects.extend(e);
        }
        effects
    }

    /// `revokeLeadership`: every component stops; JobMasters suspend their jobs.
    pub(super) fn revoke(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        if let Some(token) = self.leader_session_id() {
            ctx.trace(Obs::LeadershipRevoked {
                leader_session_id: token,
            });
        }
        let suspended: Vec<JobId> = match &self.components {
            Some(c) if self.setup.bugs.has(Bug::HaDataDeletedOnSuspend) => {
                c.job_masters.keys().copied().collect()
            }
            _ => Vec::new(),
        };
        self.stop_components(ctx);
        assert!(self.leader_session_id().is_none());
        if suspended.is_empty() {
            return Vec::new();
        }
        self.ha.as_mut().expect("HA").cleanup_due.extend(suspended);
        self.send_suspend_cleanup(ctx)
    }

    pub(super) fn stop_components(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if let Some(mut c) = self.components.take() {
            for jm in c.job_masters.values_mut() {
                jm.suspend(ctx);
            }
        }
        // The stopped endpoints' scheduled work goes with them.
        ctx.cancel_all_timers();
        if let Some(ha) = self.ha.as_mut() {
            ha.calls.clear();
            ha.recovery_started = false;
            ha.results.clear();
            ha.services.rearm(ctx);
            assert!(ha.calls.is_empty() && !ha.recovery_started);
        }
        assert!(self.components.is_none());
    }

    /// Creates and starts the job's JobMaster under the current leadership.
    pub(super) fn start_job(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
        recovered: Option<CompletedCheckpoint>,
        recovering: bool,
    ) -> Vec<Effect> {
        let Some(token) = self.leader_session_id() else {
            return Vec::new();
        };
        assert!(recovering || recovered.is_none());
        let c = self.components.as_ref().expect("leading");
        // The Dispatcher marked the job running before its JobMaster starts.
        assert!(c.dispatcher.is_known(job_id) && c.dispatcher.result(job_id).is_none());
        if c.job_masters.contains_key(&job_id) {
            return Vec::new();
        }
        let key = job_key(job_id);
        let (_, mut effects) = self.client_call(ctx, |c, _| {
            c.add_checkpoint_id_counter(&key);
            ((), Vec::new())
        });
        if recovering {
            ctx.trace(Obs::JobRecovered {
                job_id,
                leader_session_id: token,
                checkpoint_id: recovered.as_ref().map(|c| c.id),
            });
        }
        let mut jm = JobMaster::new_leader(
            ctx,
            self.me,
            job_id,
            spec,
            &self.setup,
            token,
            recovered,
            recovering,
        );
        jm.on_start(ctx);
        // The JobMaster is fenced by the leader session that started it.
        assert_eq!(jm.id(), token);
        let c = self.components.as_mut().expect("leading");
        c.job_masters.insert(job_id, jm);
        let me = self.me;
        let component = job_component(job_id);
        let (_, e) = self.client_call(ctx, |c, now| {
            (
                (),
                c.confirm_leadership(now, &component, LeaderSessionId(token), me),
            )
        });
        effects.extend(e);
        effects.extend(self.after_step(ctx));
        effects
    }
}
