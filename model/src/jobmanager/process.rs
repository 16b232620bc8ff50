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

use crate::jobmanager::job_master::checkpoint_coordinator::PointerOp;

use crate::client::job_id_of;
use crate::external::ha::client::{Effect, HaClient, LATCH_PATH};
use crate::external::ha::node::{HaServices, DISPATCHER_COMPONENT, RESOURCE_MANAGER_COMPONENT};
use crate::jobmanager::dispatcher::Dispatcher;
use crate::jobmanager::job_master::{JobMaster, JobMasterHaCall};
use crate::jobmanager::resource_manager::ResourceManager;
use crate::process::ClusterSetup;
use crate::protocol::checkpoint::CompletedCheckpoint;
use crate::protocol::ha::{HaError, HaReply, HaResult, LeaderSessionId, Op, OpResult, ZnodeData};
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::JobSpec;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ClientRpc, DispatcherRpc, Msg};
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use crate::taskmanager::task_executor::job_component;
use sim::{Ctx, NodeId, TimerId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The components of a leading JobManager process.
#[derive(Debug)]
pub struct Components {
    /// The leader session id of this incarnation (`None` without HA).
    pub token: Option<u64>,
    pub dispatcher: Dispatcher,
    pub resource_manager: ResourceManager,
    pub job_masters: BTreeMap<JobId, JobMaster>,
}

/// A request to the `ha` store in flight, by what it is for.
#[derive(Clone, Debug)]
enum Call {
    ListResults,
    ReadResult {
        job_id: JobId,
    },
    ListPlans,
    ReadPlan {
        job_id: JobId,
    },
    ListCheckpoints {
        job_id: JobId,
        spec: Arc<JobSpec>,
    },
    ReadCheckpoint {
        job_id: JobId,
        spec: Arc<JobSpec>,
    },
    PutPlan {
        job_id: JobId,
        spec: Arc<JobSpec>,
        client: NodeId,
    },
    AddPointer {
        job_id: JobId,
        checkpoint_id: u64,
        awaited: bool,
    },
    RemovePointer,
    WriteResult {
        job_id: JobId,
        status: JobStatus,
    },
    RemovePlan {
        job_id: JobId,
        status: JobStatus,
    },
    MarkClean,
}

#[derive(Debug)]
struct JobManagerHa {
    services: HaServices,
    calls: BTreeMap<u64, Call>,
    /// The Dispatcher's recovery of this leadership has started.
    recovery_started: bool,
    /// Jobs with an entry in the JobResultStore (as listed at recovery).
    results: BTreeSet<JobId>,
    /// The HA services have started (JobManagers start in name order, see [`START_GAP`]).
    started: bool,
}

/// With HA, JobManager processes start their HA services one after another in name order, this
/// far apart, so that `jobmanager-1` wins the first election (as a standby deployed after the
/// first JobManager would); later elections are won by whoever is first in the latch queue.
pub const START_GAP: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
pub struct JobManagerProcess {
    me: NodeId,
    setup: ClusterSetup,
    /// `Some` while leading (always, without HA).
    pub components: Option<Components>,
    ha: Option<JobManagerHa>,
}

/// `/execution-plans/<job>` and friends name a job by its id in 20 digits.
fn job_key(job_id: JobId) -> String {
    format!("{job_id:020}")
}

fn plan_path(job_id: JobId) -> String {
    format!("/execution-plans/{}", job_key(job_id))
}

fn result_path(job_id: JobId) -> String {
    format!("/job-results/{}", job_key(job_id))
}

fn checkpoints_path(job_id: JobId) -> String {
    format!("/jobs/{}/checkpoints", job_key(job_id))
}

fn pointer_path(job_id: JobId, checkpoint_id: u64) -> String {
    format!(
        "{}/checkpoint-{checkpoint_id:019}",
        checkpoints_path(job_id)
    )
}

/// The Dispatcher's answer to a `submitJob`.
fn answer_submission(ctx: &mut Ctx<'_, Flink>, client: NodeId, job_id: JobId, duplicate: bool) {
    ctx.send(
        client,
        Msg::Client(ClientRpc::SubmitJobResponse { job_id, duplicate }),
    );
}

fn children(result: &HaResult) -> Option<Vec<String>> {
    match result {
        Ok(OpResult::Children { children, .. }) => Some(children.clone()),
        Err(HaError::NoNode) => Some(Vec::new()),
        _ => None,
    }
}

/// The job ids a listing of `/execution-plans` or `/job-results` names.
fn job_children(result: &HaResult) -> Option<Vec<JobId>> {
    let names = children(result)?;
    Some(names.iter().filter_map(|n| n.parse().ok()).collect())
}

/// Whether a guarded write (latch check, then the op) failed at the op with `error`.
fn op_failed_with(result: &HaResult, error: HaError) -> bool {
    matches!(result, Err(HaError::MultiFailed { index: 1, cause }) if **cause == error)
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
                let client = HaClient::new(store, setup.config.ha_session).with_leader_latch();
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
                    }),
                }
            }
        }
    }

    /// The leader session id this process leads under, if it leads (HA only).
    pub fn leader_session_id(&self) -> Option<u64> {
        self.components.as_ref().and_then(|c| c.token)
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        match self.ha.as_mut() {
            None => {
                let c = self.components.as_mut().expect("without HA");
                c.resource_manager.on_start(ctx);
            }
            Some(ha) => {
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

    fn handle_effects(&mut self, ctx: &mut Ctx<'_, Flink>, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            let more = self.handle_effect(ctx, e);
            queue.extend(more);
        }
    }

    /// Runs `f` on the HA client; returns its effects (to be handled by the caller's loop).
    fn client_call<R>(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        f: impl FnOnce(&mut HaClient, sim::Time) -> (R, Vec<Effect>),
    ) -> (R, Vec<Effect>) {
        let ha = self.ha.as_mut().expect("HA");
        ha.services.call(ctx, f)
    }

    /// Sends `op` and remembers what it is for; `None` when it could not be sent.
    fn submit(&mut self, ctx: &mut Ctx<'_, Flink>, op: Op, call: Call) -> Option<Vec<Effect>> {
        let (id, effects) = self.client_call(ctx, |c, now| c.submit(now, op));
        let id = id?;
        self.ha.as_mut().expect("HA").calls.insert(id, call);
        Some(effects)
    }

    /// `op` in one transaction with a check that our latch node still exists: only the
    /// current leader's write succeeds.
    fn guarded(&self, op: Op) -> Option<Op> {
        let ha = self.ha.as_ref()?;
        let latch = ha.services.client().latch()?.node()?.to_string();
        debug_assert!(latch.starts_with(LATCH_PATH));
        Some(Op::Multi(vec![
            Op::Check {
                path: latch,
                expected_version: None,
            },
            op,
        ]))
    }

    fn submit_guarded(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        op: Op,
        call: Call,
    ) -> Option<Vec<Effect>> {
        let op = self.guarded(op)?;
        self.submit(ctx, op, call)
    }

    fn handle_effect(&mut self, ctx: &mut Ctx<'_, Flink>, e: Effect) -> Vec<Effect> {
        match e {
            Effect::Granted { leader_session_id } => self.grant(ctx, leader_session_id.0),
            Effect::Revoked { .. } => {
                self.revoke(ctx);
                Vec::new()
            }
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
                    Vec::new()
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

    fn with_job_master(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job: &str,
        f: impl FnOnce(&mut JobMaster, &mut Ctx<'_, Flink>),
    ) -> Vec<Effect> {
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
        f(jm, ctx);
        self.after_step(ctx)
    }

    /// `grantLeadership`: new component instances under the new token.
    fn grant(&mut self, ctx: &mut Ctx<'_, Flink>, token: u64) -> Vec<Effect> {
        self.stop_components(ctx);
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
    fn revoke(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if let Some(token) = self.leader_session_id() {
            ctx.trace(Obs::LeadershipRevoked {
                leader_session_id: token,
            });
        }
        self.stop_components(ctx);
    }

    fn stop_components(&mut self, ctx: &mut Ctx<'_, Flink>) {
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
        }
    }

    // ------------------------------------------------------------------------------------
    // Recovery
    // ------------------------------------------------------------------------------------

    fn start_recovery(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        let op = Op::GetChildren {
            path: "/job-results".into(),
            watch: false,
        };
        match self.submit(ctx, op, Call::ListResults) {
            Some(e) => {
                self.ha.as_mut().expect("HA").recovery_started = true;
                e
            }
            None => Vec::new(),
        }
    }

    fn on_result(&mut self, ctx: &mut Ctx<'_, Flink>, call: Call, result: HaResult) -> Vec<Effect> {
        if self.components.is_none() {
            return Vec::new();
        }
        let mut effects = Vec::new();
        match call {
            Call::ListResults => {
                let Some(jobs) = job_children(&result) else {
                    self.ha.as_mut().expect("HA").recovery_started = false;
                    return effects;
                };
                for job_id in jobs {
                    self.ha.as_mut().expect("HA").results.insert(job_id);
                    let op = Op::GetData {
                        path: result_path(job_id),
                        watch: false,
                    };
                    effects.extend(
                        self.submit(ctx, op, Call::ReadResult { job_id })
                            .unwrap_or_default(),
                    );
                }
                let op = Op::GetChildren {
                    path: "/execution-plans".into(),
                    watch: false,
                };
                effects.extend(self.submit(ctx, op, Call::ListPlans).unwrap_or_default());
            }
            Call::ReadResult { job_id } => {
                if let Ok(OpResult::Data {
                    data: ZnodeData::JobResult { status, .. },
                    ..
                }) = result
                {
                    let c = self.components.as_mut().expect("leading");
                    if !c.dispatcher.is_known(job_id) {
                        c.dispatcher.record_result(job_id, status);
                        ctx.trace(Obs::JobResultFound { job_id, status });
                    }
                }
            }
            Call::ListPlans => {
                let Some(jobs) = job_children(&result) else {
                    self.ha.as_mut().expect("HA").recovery_started = false;
                    return effects;
                };
                for job_id in jobs {
                    // A job with a result is done: never run again (docs/flink-runtime.md §9.2).
                    if self.ha.as_ref().expect("HA").results.contains(&job_id) {
                        continue;
                    }
                    let c = self.components.as_mut().expect("leading");
                    if c.dispatcher.is_known(job_id) {
                        continue;
                    }
                    c.dispatcher.mark_running(job_id);
                    let op = Op::GetData {
                        path: plan_path(job_id),
                        watch: false,
                    };
                    effects.extend(
                        self.submit(ctx, op, Call::ReadPlan { job_id })
                            .unwrap_or_default(),
                    );
                }
            }
            Call::ReadPlan { job_id } => match result {
                Ok(OpResult::Data {
                    data: ZnodeData::ExecutionPlan(spec),
                    ..
                }) => effects.extend(self.list_checkpoints(ctx, job_id, spec)),
                _ => {
                    let c = self.components.as_mut().expect("leading");
                    c.dispatcher.unmark(job_id);
                }
            },
            Call::ListCheckpoints { job_id, spec } => {
                let Some(names) = children(&result) else {
                    return self.list_checkpoints(ctx, job_id, spec);
                };
                let newest = names
                    .iter()
                    .filter_map(|n| n.strip_prefix("checkpoint-")?.parse::<u64>().ok())
                    .max();
                match newest {
                    None => effects.extend(self.start_job(ctx, job_id, spec, None, true)),
                    Some(id) => {
                        let op = Op::GetData {
                            path: pointer_path(job_id, id),
                            watch: false,
                        };
                        effects.extend(
                            self.submit(ctx, op, Call::ReadCheckpoint { job_id, spec })
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            Call::ReadCheckpoint { job_id, spec } => match result {
                Ok(OpResult::Data {
                    data: ZnodeData::CompletedCheckpoint(cp),
                    ..
                }) => effects.extend(self.start_job(ctx, job_id, spec, Some((*cp).clone()), true)),
                // Subsumed meanwhile: list again.
                _ => effects.extend(self.list_checkpoints(ctx, job_id, spec)),
            },
            Call::PutPlan {
                job_id,
                spec,
                client,
            } => {
                let exists = op_failed_with(&result, HaError::NodeExists);
                if result.is_ok() || exists {
                    answer_submission(ctx, client, job_id, false);
                    ctx.trace(Obs::JobSubmitted { job_id });
                    if exists {
                        // A plan from an earlier attempt (or leader): recover it.
                        effects.extend(self.list_checkpoints(ctx, job_id, spec));
                    } else {
                        effects.extend(self.start_job(ctx, job_id, spec, None, false));
                    }
                } else {
                    // Not acknowledged: the client submits again.
                    let c = self.components.as_mut().expect("leading");
                    c.dispatcher.unmark(job_id);
                }
            }
            Call::AddPointer {
                job_id,
                checkpoint_id,
                awaited,
            } => {
                // The latch check failing, or the pointer already there (a retried write),
                // are certain; a lost session leaves the write's fate unknown.
                let written = match &result {
                    Ok(_) => Some(true),
                    _ if op_failed_with(&result, HaError::NodeExists) => Some(true),
                    Err(HaError::SessionExpired | HaError::RequestTooOld) => None,
                    Err(_) => Some(false),
                };
                let ok = written == Some(true);
                if ok {
                    ctx.trace(Obs::CheckpointPointerAdded {
                        job_id,
                        checkpoint_id,
                        token: self.leader_session_id().expect("leading"),
                    });
                }
                if awaited {
                    effects.extend(self.with_job_master(ctx, &job_key(job_id), |jm, ctx| {
                        jm.on_pointer_written(ctx, checkpoint_id, written)
                    }));
                }
            }
            Call::RemovePointer | Call::MarkClean => {}
            Call::WriteResult { job_id, status } => {
                let exists = op_failed_with(&result, HaError::NodeExists);
                if result.is_ok() || exists {
                    // Global cleanup, only now that the result is durable.
                    let op = Op::Delete {
                        path: plan_path(job_id),
                        expected_version: None,
                    };
                    effects.extend(
                        self.submit_guarded(ctx, op, Call::RemovePlan { job_id, status })
                            .unwrap_or_default(),
                    );
                }
            }
            Call::RemovePlan { job_id, status } => {
                let gone = result.is_ok() || op_failed_with(&result, HaError::NoNode);
                if gone {
                    let op = Op::SetData {
                        path: result_path(job_id),
                        data: ZnodeData::JobResult {
                            status,
                            clean: true,
                        },
                        expected_version: None,
                    };
                    effects.extend(
                        self.submit_guarded(ctx, op, Call::MarkClean)
                            .unwrap_or_default(),
                    );
                }
            }
        }
        effects
    }

    fn list_checkpoints(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
    ) -> Vec<Effect> {
        let op = Op::GetChildren {
            path: checkpoints_path(job_id),
            watch: false,
        };
        self.submit(ctx, op, Call::ListCheckpoints { job_id, spec })
            .unwrap_or_default()
    }

    /// Creates and starts the job's JobMaster under the current leadership.
    fn start_job(
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
        let c = self.components.as_ref().expect("leading");
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
        if self.ha.is_none() {
            return Vec::new();
        }
        let mut calls = Vec::new();
        for (job_id, jm) in c.job_masters.iter_mut() {
            for call in jm.take_ha_calls() {
                calls.push((*job_id, call));
            }
        }
        let mut effects = Vec::new();
        for (job_id, status) in finished {
            let op = Op::Create {
                path: result_path(job_id),
                data: ZnodeData::JobResult {
                    status,
                    clean: false,
                },
                ephemeral: false,
                sequential: false,
            };
            effects.extend(
                self.submit_guarded(ctx, op, Call::WriteResult { job_id, status })
                    .unwrap_or_default(),
            );
        }
        for (job_id, call) in calls {
            match call {
                JobMasterHaCall::NextCheckpointId => {
                    let key = job_key(job_id);
                    let (_, e) =
                        self.client_call(ctx, |c, now| ((), c.get_and_increment(now, &key)));
                    effects.extend(e);
                }
                JobMasterHaCall::Pointer(PointerOp::Add {
                    checkpoint,
                    awaited,
                }) => {
                    let checkpoint_id = checkpoint.id;
                    let op = Op::Create {
                        path: pointer_path(job_id, checkpoint_id),
                        data: ZnodeData::CompletedCheckpoint(Arc::new(checkpoint)),
                        ephemeral: false,
                        sequential: false,
                    };
                    let call = Call::AddPointer {
                        job_id,
                        checkpoint_id,
                        awaited,
                    };
                    match self.submit_guarded(ctx, op, call) {
                        Some(e) => effects.extend(e),
                        None if awaited => {
                            if let Some(jm) = self
                                .components
                                .as_mut()
                                .and_then(|c| c.job_masters.get_mut(&job_id))
                            {
                                jm.on_pointer_written(ctx, checkpoint_id, Some(false));
                            }
                        }
                        None => {}
                    }
                }
                JobMasterHaCall::Pointer(PointerOp::Remove(checkpoint_id)) => {
                    let op = Op::Delete {
                        path: pointer_path(job_id, checkpoint_id),
                        expected_version: None,
                    };
                    effects.extend(
                        self.submit_guarded(ctx, op, Call::RemovePointer)
                            .unwrap_or_default(),
                    );
                }
            }
        }
        effects
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
