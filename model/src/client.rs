//! The client: submits the scenario's job to the Dispatcher at the scenario's time and retries
//! (after the ask timeout) until the Dispatcher acknowledges, which is how a duplicate submission
//! can reach the Dispatcher.

use crate::external::ha::client::{Effect, HaClient};
use crate::external::ha::node::{HaServices, DISPATCHER_COMPONENT};
use crate::process::ClusterSetup;
use crate::protocol::ha::HaReply;
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::JobSpec;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ClientRpc, DispatcherRpc, Msg};
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Client {
    /// The Dispatcher's address (with HA: the retrieved leader, `None` while unknown).
    dispatcher: Option<NodeId>,
    /// With HA: the ZooKeeper client that retrieves the Dispatcher leader (as Flink's
    /// `RestClusterClient` retrieves the REST endpoint leader).
    ha: Option<HaServices>,
    job: Option<(JobId, Arc<JobSpec>, Duration)>,
    ask_timeout: Duration,
    acknowledged: bool,
    /// The submission time has come (with HA the client may still wait for a leader).
    due: bool,
}

/// The job id of a job: derived from its name, as a fixed id would be by the user.
pub fn job_id_of(spec: &JobSpec) -> JobId {
    sim::stable_hash(&("job", spec.name.as_str()))
}

impl Client {
    pub fn new(_me: NodeId, dispatcher: NodeId, setup: &ClusterSetup) -> Client {
        let ha = setup.topology.ha.map(|store| {
            let client = HaClient::new(store, setup.config.ha_session)
                .with_leader_retrieval(DISPATCHER_COMPONENT);
            HaServices::new(store, client)
        });
        Client {
            dispatcher: if ha.is_some() { None } else { Some(dispatcher) },
            ha,
            job: setup
                .submission
                .as_ref()
                .map(|s| (job_id_of(&s.spec), s.spec.clone(), s.at)),
            ask_timeout: setup.config.ask_timeout,
            acknowledged: false,
            due: false,
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        assert!(!self.due && !self.acknowledged, "a client starts fresh");
        // Without HA the Dispatcher's address is known up front; with HA it is retrieved.
        assert_eq!(self.dispatcher.is_some(), self.ha.is_none());
        if let Some((_, _, at)) = &self.job {
            ctx.set_timer(*at, Timer::SubmitJob);
        }
        if let Some(ha) = self.ha.as_mut() {
            let effects = ha.start(ctx);
            self.on_ha_effects(ctx, effects);
        }
    }

    pub fn on_ha_reply(&mut self, ctx: &mut Ctx<'_, Flink>, reply: HaReply) {
        if let Some(ha) = self.ha.as_mut() {
            let effects = ha.on_reply(ctx, reply);
            self.on_ha_effects(ctx, effects);
        }
    }

    pub fn on_ha_tick(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) {
        if let Some(ha) = self.ha.as_mut() {
            let effects = ha.on_tick(ctx, timer);
            self.on_ha_effects(ctx, effects);
        }
    }

    fn on_ha_effects(&mut self, ctx: &mut Ctx<'_, Flink>, effects: Vec<Effect>) {
        for e in effects {
            if let Effect::LeaderChanged { leader, .. } = e {
                assert!(self.ha.is_some(), "leader retrieval runs with HA only");
                self.dispatcher = leader.map(|l| l.address);
                // A new leader: submit to it now rather than at the next retry.
                if self.dispatcher.is_some() && self.due && !self.acknowledged {
                    self.submit(ctx);
                }
            }
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, _from: NodeId, rpc: ClientRpc) {
        match rpc {
            ClientRpc::SubmitJobResponse { job_id, duplicate } => {
                // Only a submitted job is answered, and only after its submission time.
                assert_eq!(self.job.as_ref().map(|(id, _, _)| *id), Some(job_id));
                assert!(self.due, "an answer before the first submission");
                if !self.acknowledged {
                    self.acknowledged = true;
                    ctx.trace(Obs::JobSubmissionAcknowledged { job_id, duplicate });
                }
            }
        }
    }

    /// The submit timer ([`Timer::SubmitJob`], the client's only one) fired.
    pub fn on_submit_timer(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.due = true;
        if self.acknowledged {
            return;
        }
        self.submit(ctx);
        // No answer within the ask timeout: submit again (the Dispatcher rejects duplicates).
        ctx.set_timer(self.ask_timeout, Timer::SubmitJob);
    }

    fn submit(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let (job_id, spec, _) = self.job.as_ref().expect("a submit timer without a job");
        assert!(self.due && !self.acknowledged);
        if let Some(dispatcher) = self.dispatcher {
            ctx.send(
                dispatcher,
                Msg::Dispatcher(DispatcherRpc::SubmitJob {
                    job_id: *job_id,
                    spec: spec.clone(),
                }),
            );
        }
    }

    pub fn on_unreachable(&mut self, _ctx: &mut Ctx<'_, Flink>, _to: NodeId, _msg: &Msg) {
        // The retry timer resubmits.
    }
}
