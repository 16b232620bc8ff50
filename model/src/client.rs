//! The client: submits the scenario's job to the Dispatcher at the scenario's time and retries
//! (after the ask timeout) until the Dispatcher acknowledges, which is how a duplicate submission
//! can reach the Dispatcher.

use crate::ids::JobId;
use crate::job_graph::JobSpec;
use crate::obs::Obs;
use crate::process::{ClusterSetup, Process, Timer};
use crate::rpc::{ClientRpc, DispatcherRpc, Msg};
use sim::{Ctx, NodeId, TimerId};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Client {
    dispatcher: NodeId,
    job: Option<(JobId, Arc<JobSpec>, Duration)>,
    ask_timeout: Duration,
    acknowledged: bool,
}

/// The job id of a job: derived from its name, as a fixed id would be by the user.
pub fn job_id_of(spec: &JobSpec) -> JobId {
    sim::stable_hash(&("job", spec.name.as_str()))
}

impl Client {
    pub fn new(_me: NodeId, dispatcher: NodeId, setup: &ClusterSetup) -> Client {
        Client {
            dispatcher,
            job: setup
                .submission
                .as_ref()
                .map(|s| (job_id_of(&s.spec), s.spec.clone(), s.at)),
            ask_timeout: setup.config.ask_timeout,
            acknowledged: false,
        }
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Process>) {
        if let Some((_, _, at)) = &self.job {
            ctx.set_timer(*at, Timer::SubmitJob);
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Process>, _from: NodeId, rpc: ClientRpc) {
        match rpc {
            ClientRpc::SubmitJobResponse { job_id, duplicate } => {
                if !self.acknowledged {
                    self.acknowledged = true;
                    ctx.trace(Obs::JobSubmissionAcknowledged { job_id, duplicate });
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Process>, _timer: TimerId, tag: Timer) {
        assert_eq!(tag, Timer::SubmitJob);
        if self.acknowledged {
            return;
        }
        let (job_id, spec, _) = self.job.as_ref().expect("a submit timer without a job");
        ctx.send(
            self.dispatcher,
            Msg::Dispatcher(DispatcherRpc::SubmitJob {
                job_id: *job_id,
                spec: spec.clone(),
            }),
        );
        // No answer within the ask timeout: submit again (the Dispatcher rejects duplicates).
        ctx.set_timer(self.ask_timeout, Timer::SubmitJob);
    }

    pub fn on_unreachable(&mut self, _ctx: &mut Ctx<'_, Process>, _to: NodeId, _msg: &Msg) {
        // The retry timer resubmits.
    }
}
