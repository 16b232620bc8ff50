//! The Dispatcher of a JobManager process: accepts job submissions, rejects duplicates (a job
//! that runs, or has a result), and starts one JobMaster per job. Without high availability its
//! job results live in memory only (a restarted JobManager process has forgotten them).

use crate::jobmanager::job_master::JobMaster;
use crate::process::ClusterSetup;
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ClientRpc, DispatcherRpc, Msg};
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct Dispatcher {
    me: NodeId,
    setup: ClusterSetup,
    running: BTreeSet<JobId>,
    /// Flink's JobResultStore (in memory without HA): globally terminal jobs and how they ended.
    results: BTreeMap<JobId, JobStatus>,
}

impl Dispatcher {
    pub fn new(me: NodeId, setup: &ClusterSetup) -> Dispatcher {
        Dispatcher {
            me,
            setup: setup.clone(),
            running: BTreeSet::new(),
            results: BTreeMap::new(),
        }
    }

    /// Handles a Dispatcher RPC; returns a new JobMaster for the process to start.
    pub fn on_rpc(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        rpc: DispatcherRpc,
    ) -> Option<JobMaster> {
        match rpc {
            DispatcherRpc::SubmitJob { job_id, spec } => {
                let duplicate =
                    self.running.contains(&job_id) || self.results.contains_key(&job_id);
                ctx.send(
                    from,
                    Msg::Client(ClientRpc::SubmitJobResponse { job_id, duplicate }),
                );
                if duplicate {
                    ctx.trace(Obs::JobSubmissionRejected { job_id });
                    return None;
                }
                self.running.insert(job_id);
                // A job runs or has a result, never both.
                debug_assert!(self.running.iter().all(|j| !self.results.contains_key(j)));
                ctx.trace(Obs::JobSubmitted { job_id });
                Some(JobMaster::new(ctx, self.me, job_id, spec, &self.setup))
            }
        }
    }

    /// A JobMaster reached a globally terminal state and shut down.
    pub fn job_reached_terminal_state(
        &mut self,
        _ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        status: JobStatus,
    ) {
        assert!(status.is_globally_terminal(), "{status:?}");
        assert!(self.running.remove(&job_id));
        let earlier = self.results.insert(job_id, status);
        assert!(
            earlier.is_none(),
            "a job reaches one globally terminal state"
        );
    }

    /// Whether the job runs here or has a result (a submission of it is a duplicate).
    pub fn is_known(&self, job_id: JobId) -> bool {
        self.running.contains(&job_id) || self.results.contains_key(&job_id)
    }

    /// HA: the job is being submitted or recovered.
    pub fn mark_running(&mut self, job_id: JobId) {
        // Callers reject known jobs first: a job runs once and never after its result.
        assert!(!self.is_known(job_id), "job {job_id} marked twice");
        self.running.insert(job_id);
    }

    /// HA: the submission or recovery of the job did not go through.
    pub fn unmark(&mut self, job_id: JobId) {
        assert!(!self.results.contains_key(&job_id));
        let was = self.running.remove(&job_id);
        assert!(was, "job {job_id} was not being submitted or recovered");
    }

    /// HA: a result found in the JobResultStore.
    pub fn record_result(&mut self, job_id: JobId, status: JobStatus) {
        assert!(status.is_globally_terminal(), "{status:?}");
        assert!(!self.is_known(job_id), "job {job_id} already known");
        self.results.insert(job_id, status);
    }

    pub fn result(&self, job_id: JobId) -> Option<JobStatus> {
        self.results.get(&job_id).copied()
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
