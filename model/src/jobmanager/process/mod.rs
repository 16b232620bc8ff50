//! A JobManager process: its Dispatcher, ResourceManager and JobMasters, and — with high
//! availability — the process-wide leader election that starts and stops them, and the HA
//! stores they use (docs/flink-runtime.md §9).
//!
//! Without HA the components exist from the start and never change. With HA
//! (`high-availability.type = ZOOKEEPER`) the process contends for the `ha` node's leader latch;
//! each grant creates **new** component instances whose fencing token (ResourceManagerId,
//! JobMasterId) is the leader session id, and each revocation stops them (the JobMasters suspend
//! their jobs) and cancels every timer they armed. The leader publishes its address per
//! component (`confirmLeadership`); TaskExecutors and the client follow it by leader retrieval.
//!
//! HA stores, as znodes of the `ha` node (every write of a leader is guarded by its latch node
//! in the same transaction, so a deposed leader's write fails):
//! - ExecutionPlanStore `/execution-plans/<job>`: written before a submission is acknowledged;
//! - JobResultStore `/job-results/<job>`: written (dirty) when a job is globally terminal,
//!   before the plan is removed, then marked clean;
//! - CompletedCheckpointStore `/jobs/<job>/checkpoints/checkpoint-<id>`: written before tasks
//!   hear that the checkpoint completed; subsumed pointers are removed;
//! - CheckpointIDCounter `/jobs/<job>/checkpoint_id_counter` (the client's CAS recipe).
//!
//! On a grant the Dispatcher (once its leadership is confirmed, FLINK-9494) lists the job
//! results and plans, and recovers every plan without a result: a new JobMaster restores the
//! newest pointer of the job's CompletedCheckpointStore.
//!
//! Simplifications: leadership is process-wide (Flink ≥ 1.15), so a JobMaster's
//! ResourceManager is the one in its own process; the Dispatcher keeps no lock nodes on plans;
//! global cleanup removes the plan only (checkpoint pointers and the counter stay).
//!
//! This module holds the process itself: its components, its start, the Dispatcher's RPCs and
//! the step after every component step (finished jobs are reaped). The leader election that
//! starts and stops the components is in `leadership`, the HA stores and the recovery through
//! them in `ha_stores`.

mod ha_stores;
mod leadership;
#[cfg(test)]
mod tests;

use crate::checking::bugs::Bug;
use crate::client::job_id_of;
use crate::external::ha::client::{Effect, HaClient};
use crate::external::ha::node::HaServices;
use crate::jobmanager::dispatcher::Dispatcher;
use crate::jobmanager::job_master::JobMaster;
use crate::jobmanager::resource_manager::ResourceManager;
use crate::process::ClusterSetup;
use crate::protocol::ha::{Op, ZnodeData};
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::DispatcherRpc;
use crate::protocol::Flink;
use ha_stores::{answer_submission, plan_path, Call};
use leadership::JobManagerHa;
pub use leadership::START_GAP;
use sim::{Ctx, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The components of a leading JobManager process.
#[derive(Debug)]
pub struct Components {
    /// The leader session id of this incarnation (`None` without HA).
    pub token: Option<u64>,
    pub dispatcher: Dispatcher,
    pub resource_manager: ResourceManager,
    pub job_masters: BTreeMap<JobId, JobMaster>,
}

#[derive(Debug)]
pub struct JobManagerProcess {
    me: NodeId,
    setup: ClusterSetup,
    /// `Some` while leading (always, without HA).
    pub components: Option<Components>,
    ha: Option<JobManagerHa>,
}

impl JobManagerProcess {
    pub fn new(me: NodeId, setup: &ClusterSetup) -> JobManagerProcess {
        match setup.topology.ha {
            None => JobManagerProcess {
                me,
                setup: setup.clone(),
                components: Some(Components {
                    token: None,
                    dispatcher: Dispatcher::new(me, setup),
                    resource_manager: ResourceManager::new(me, setup),
                    job_masters: BTreeMap::new(),
                }),
                ha: None,
            },
            Some(store) => {
                let client = HaClient::new(store, setup.config.ha_session)
                    .with_leader_latch()
                    .with_counter_stuck_after_reconnect(
                        setup.bugs.has(Bug::CounterStuckAfterReconnect),
                    );
                JobManagerProcess {
                    me,
                    setup: setup.clone(),
                    components: None,
                    ha: Some(JobManagerHa {
                        services: HaServices::new(store, client),
                        calls: BTreeMap::new(),
                        recovery_started: false,
                        results: BTreeSet::new(),
                        started: false,
                        cleanup_due: BTreeSet::new(),
                    }),
                }
            }
        }
    }

    /// The leader session id this process leads under, if it leads (HA only).
    pub fn leader_session_id(&self) -> Option<u64> {
        // Components carry a leader session id exactly with HA.
        assert!(self
            .components
            .as_ref()
            .is_none_or(|c| c.token.is_some() == self.ha.is_some()));
        self.components.as_ref().and_then(|c| c.token)
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        match self.ha.as_mut() {
            None => {
                let c = self.components.as_mut().expect("without HA");
                assert!(c.token.is_none() && c.job_masters.is_empty());
                c.resource_manager.on_start(ctx);
            }
            Some(ha) => {
                // With HA, components exist only once leadership is granted.
                assert!(self.components.is_none());
                let index = self
                    .setup
                    .topology
                    .jobmanagers
                    .iter()
                    .position(|j| *j == self.me);
                let first_start = ctx.mono_ns() < START_GAP.as_nanos() as u64;
                match index {
                    Some(i) if i > 0 && first_start => {
                        ctx.set_timer(START_GAP * i as u32, crate::protocol::timer::Timer::HaTick);
                    }
                    _ => {
                        ha.started = true;
                        let effects = ha.services.start(ctx);
                        self.handle_effects(ctx, effects);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Messages, timers
    // ------------------------------------------------------------------------------------

    /// A submission: without HA the Dispatcher starts the JobMaster at once; with HA the plan
    /// is written to the ExecutionPlanStore first.
    pub fn on_dispatcher_rpc(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        rpc: DispatcherRpc,
    ) {
        let Some(c) = self.components.as_mut() else {
            return; // not the leader: a fenced endpoint that does not answer
        };
        if self.ha.is_none() {
            if let Some(mut job_master) = c.dispatcher.on_rpc(ctx, from, rpc) {
                let job_id = job_master.job_id();
                job_master.on_start(ctx);
                c.job_masters.insert(job_id, job_master);
            }
            return;
        }
        let DispatcherRpc::SubmitJob { job_id, spec } = rpc;
        debug_assert_eq!(job_id, job_id_of(&spec));
        assert!(c.token.is_some(), "an HA Dispatcher leads under a session");
        if c.dispatcher.is_known(job_id) {
            answer_submission(ctx, from, job_id, true);
            ctx.trace(Obs::JobSubmissionRejected { job_id });
            return;
        }
        c.dispatcher.mark_running(job_id);
        let op = Op::Create {
            path: plan_path(job_id),
            data: ZnodeData::ExecutionPlan(spec.clone()),
            ephemeral: false,
            sequential: false,
        };
        let call = Call::PutPlan {
            job_id,
            spec,
            client: from,
        };
        match self.submit_guarded(ctx, op, call) {
            Some(effects) => self.handle_effects(ctx, effects),
            None => {
                let c = self.components.as_mut().expect("leading");
                c.dispatcher.unmark(job_id);
            }
        }
    }

    /// After any step of a component: finished jobs are reaped and JobMasters' HA work is
    /// sent.
    pub fn after_step(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        let Some(c) = self.components.as_mut() else {
            return Vec::new();
        };
        let done: Vec<JobId> = c
            .job_masters
            .iter()
            .filter(|(_, jm)| jm.is_shut_down())
            .map(|(id, _)| *id)
            .collect();
        let mut finished = Vec::new();
        for job_id in done {
            let jm = c.job_masters.remove(&job_id).expect("listed");
            c.dispatcher
                .job_reached_terminal_state(ctx, job_id, jm.status());
            finished.push((job_id, jm.status()));
        }
        // Every JobMaster left runs, and runs for a job the Dispatcher knows as running.
        debug_assert!(c.job_masters.iter().all(|(j, jm)| !jm.is_shut_down()
            && jm.job_id() == *j
            && c.dispatcher.is_known(*j)
            && c.dispatcher.result(*j).is_none()));
        if self.ha.is_none() {
            return Vec::new();
        }
        let mut calls = Vec::new();
        for (job_id, jm) in c.job_masters.iter_mut() {
            for call in jm.take_ha_calls() {
                calls.push((*job_id, call));
            }
        }
        self.send_ha_work(ctx, finished, calls)
    }

    /// Runs a component step, then [`Self::after_step`] and the HA effects it caused.
    pub fn step(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        f: impl FnOnce(&mut Components, &mut Ctx<'_, Flink>),
    ) {
        let Some(c) = self.components.as_mut() else {
            return;
        };
        f(c, ctx);
        let effects = self.after_step(ctx);
        self.handle_effects(ctx, effects);
    }
}
