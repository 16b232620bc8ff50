//! The HA stores a leading JobManager process uses, as znodes of the `ha` node: the
//! ExecutionPlanStore, the JobResultStore, the CompletedCheckpointStore and the
//! CheckpointIDCounter (the process's module documentation lists their paths). Every write of a
//! leader is guarded by its latch node. This file sends the requests and remembers what each is
//! for (`Call`), handles their results, recovers the jobs after a grant (results, then plans,
//! then each job's newest checkpoint pointer), and carries the JobMasters' checkpoint work and
//! the results of finished jobs to the stores.
//!
//! It does not decide leadership or start JobMasters (`leadership` does), nor decide what a
//! JobMaster checkpoints.

use super::JobManagerProcess;
use crate::external::ha::client::{Effect, LATCH_PATH};
use crate::jobmanager::job_master::checkpoint_coordinator::PointerOp;
use crate::jobmanager::job_master::JobMasterHaCall;
use crate::protocol::ha::{HaError, HaResult, Op, OpResult, ZnodeData};
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::JobSpec;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ClientRpc, Msg};
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::sync::Arc;

/// A request to the `ha` store in flight, by what it is for.
#[derive(Clone, Debug)]
pub(super) enum Call {
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
    RemovePointer {
        job_id: JobId,
        checkpoint_id: u64,
    },
    WriteResult {
        job_id: JobId,
        status: JobStatus,
    },
    RemovePlan {
        job_id: JobId,
        status: JobStatus,
    },
    MarkClean,
    /// Planted [`crate::checking::bugs::Bug::HaDataDeletedOnSuspend`]: a deposed process lists a
    /// suspended job's checkpoint pointers to delete them.
    CleanupList {
        job_id: JobId,
    },
    /// Planted [`crate::checking::bugs::Bug::HaDataDeletedOnSuspend`]: one pointer's deletion.
    Cleanup,
}

/// `/execution-plans/<job>` and friends name a job by its id in 20 digits.
pub(super) fn job_key(job_id: JobId) -> String {
    format!("{job_id:020}")
}

pub(super) fn plan_path(job_id: JobId) -> String {
    format!("/execution-plans/{}", job_key(job_id))
}

pub(super) fn result_path(job_id: JobId) -> String {
    format!("/job-results/{}", job_key(job_id))
}

pub(super) fn checkpoints_path(job_id: JobId) -> String {
    format!("/jobs/{}/checkpoints", job_key(job_id))
}

pub(super) fn pointer_path(job_id: JobId, checkpoint_id: u64) -> String {
    format!(
        "{}/checkpoint-{checkpoint_id:019}",
        checkpoints_path(job_id)
    )
}

/// The Dispatcher's answer to a `submitJob`.
pub(super) fn answer_submission(
    ctx: &mut Ctx<'_, Flink>,
    client: NodeId,
    job_id: JobId,
    duplicate: bool,
) {
    ctx.send(
        client,
        Msg::Client(ClientRpc::SubmitJobResponse { job_id, duplicate }),
    );
}

pub(super) fn children(result: &HaResult) -> Option<Vec<String>> {
    match result {
        Ok(OpResult::Children { children, .. }) => Some(children.clone()),
        Err(HaError::NoNode) => Some(Vec::new()),
        _ => None,
    }
}

/// The job ids a listing of `/execution-plans` or `/job-results` names.
pub(super) fn job_children(result: &HaResult) -> Option<Vec<JobId>> {
    let names = children(result)?;
    Some(names.iter().filter_map(|n| n.parse().ok()).collect())
}

/// Whether a guarded write (latch check, then the op) failed at the op with `error`.
pub(super) fn op_failed_with(result: &HaResult, error: HaError) -> bool {
    matches!(result, Err(HaError::MultiFailed { index: 1, cause }) if **cause == error)
}

impl JobManagerProcess {
    /// Sends `op` and remembers what it is for; `None` when it could not be sent.
    pub(super) fn submit(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        op: Op,
        call: Call,
    ) -> Option<Vec<Effect>> {
        let (id, effects) = self.client_call(ctx, |c, now| c.submit(now, op));
        let id = id?;
        let earlier = self.ha.as_mut().expect("HA").calls.insert(id, call);
        assert!(earlier.is_none(), "request ids are unique");
        Some(effects)
    }

    /// `op` in one transaction with a check that our latch node still exists: only the
    /// current leader's write succeeds.
    pub(super) fn guarded(&self, op: Op) -> Option<Op> {
        // Guarded writes are a leader's.
        assert!(self.components.is_some());
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

    pub(super) fn submit_guarded(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        op: Op,
        call: Call,
    ) -> Option<Vec<Effect>> {
        let op = self.guarded(op)?;
        self.submit(ctx, op, call)
    }

    // ------------------------------------------------------------------------------------
    // Recovery
    // ------------------------------------------------------------------------------------

    pub(super) fn start_recovery(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        // Only a leader recovers jobs.
        assert!(self.leader_session_id().is_some());
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

    pub(super) fn on_result(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        call: Call,
        result: HaResult,
    ) -> Vec<Effect> {
        match call {
            Call::CleanupList { job_id } => return self.on_cleanup_listed(ctx, job_id, result),
            Call::Cleanup => return Vec::new(),
            _ => {}
        }
        if self.components.is_none() {
            return Vec::new();
        }
        match call {
            Call::CleanupList { .. } | Call::Cleanup => unreachable!("handled above"),
            Call::ListResults => self.on_results_listed(ctx, result),
            Call::ReadResult { job_id } => self.on_result_read(ctx, job_id, result),
            Call::ListPlans => self.on_plans_listed(ctx, result),
            Call::ReadPlan { job_id } => self.on_plan_read(ctx, job_id, result),
            Call::ListCheckpoints { job_id, spec } => {
                self.on_checkpoints_listed(ctx, job_id, spec, result)
            }
            Call::ReadCheckpoint { job_id, spec } => {
                self.on_checkpoint_read(ctx, job_id, spec, result)
            }
            Call::PutPlan {
                job_id,
                spec,
                client,
            } => self.on_plan_put(ctx, job_id, spec, client, result),
            Call::AddPointer {
                job_id,
                checkpoint_id,
                awaited,
            } => self.on_pointer_added(ctx, job_id, checkpoint_id, awaited, result),
            Call::RemovePointer {
                job_id,
                checkpoint_id,
            } => {
                // Gone (or already gone): its state may go too.
                let removed = result.is_ok() || op_failed_with(&result, HaError::NoNode);
                self.with_job_master(ctx, &job_key(job_id), |jm, ctx| {
                    jm.on_pointer_removed(ctx, checkpoint_id, removed)
                })
            }
            Call::MarkClean => Vec::new(),
            Call::WriteResult { job_id, status } => {
                self.on_result_written(ctx, job_id, status, result)
            }
            Call::RemovePlan { job_id, status } => {
                self.on_plan_removed(ctx, job_id, status, result)
            }
        }
    }

    /// The JobResultStore is listed: read every result, then list the ExecutionPlanStore.
    fn on_results_listed(&mut self, ctx: &mut Ctx<'_, Flink>, result: HaResult) -> Vec<Effect> {
        let mut effects = Vec::new();
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
        effects
    }

    /// A job's result was read: the Dispatcher knows it as done.
    fn on_result_read(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        result: HaResult,
    ) -> Vec<Effect> {
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
            // A job with a result never runs here again.
            assert!(c.dispatcher.result(job_id).is_some() || !c.job_masters.contains_key(&job_id));
        }
        Vec::new()
    }

    /// The ExecutionPlanStore is listed: read every plan of a job without a result.
    fn on_plans_listed(&mut self, ctx: &mut Ctx<'_, Flink>, result: HaResult) -> Vec<Effect> {
        let mut effects = Vec::new();
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
            assert!(!c.job_masters.contains_key(&job_id));
            let op = Op::GetData {
                path: plan_path(job_id),
                watch: false,
            };
            effects.extend(
                self.submit(ctx, op, Call::ReadPlan { job_id })
                    .unwrap_or_default(),
            );
        }
        effects
    }

    /// A job's plan was read: recover it from its newest checkpoint pointer.
    fn on_plan_read(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        match result {
            Ok(OpResult::Data {
                data: ZnodeData::ExecutionPlan(spec),
                ..
            }) => effects.extend(self.list_checkpoints(ctx, job_id, spec)),
            _ => {
                let c = self.components.as_mut().expect("leading");
                c.dispatcher.unmark(job_id);
            }
        }
        effects
    }

    /// A job's CompletedCheckpointStore is listed: read its newest pointer, if any.
    fn on_checkpoints_listed(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(names) = children(&result) else {
            return self.list_checkpoints(ctx, job_id, spec);
        };
        let newest = names
            .iter()
            .filter_map(|n| n.strip_prefix("checkpoint-")?.parse::<u64>().ok())
            .max();
        // Checkpoint ids count from 1.
        assert!(newest.is_none_or(|id| id >= 1));
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
        effects
    }

    /// The newest checkpoint pointer was read: start the job from it.
    fn on_checkpoint_read(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        match result {
            Ok(OpResult::Data {
                data: ZnodeData::CompletedCheckpoint(cp),
                ..
            }) => {
                // A pointer holds a checkpoint of this job.
                assert!(cp.id >= 1);
                debug_assert!(cp.handles.iter().all(|h| h.job_id == job_id));
                effects.extend(self.start_job(ctx, job_id, spec, Some((*cp).clone()), true))
            }
            // Subsumed meanwhile: list again.
            _ => effects.extend(self.list_checkpoints(ctx, job_id, spec)),
        }
        effects
    }

    /// A submission's plan was written (or was there already): answer and start the job.
    fn on_plan_put(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
        client: NodeId,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        // The submission marked the job running; it has no JobMaster yet.
        let c = self.components.as_ref().expect("leading");
        assert!(c.dispatcher.is_known(job_id) && !c.job_masters.contains_key(&job_id));
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
        effects
    }

    /// A checkpoint pointer write finished.
    fn on_pointer_added(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        checkpoint_id: u64,
        awaited: bool,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        // The latch check failing, or the pointer already there (a retried write),
        // are certain; a lost session leaves the write's fate unknown.
        let written = match &result {
            Ok(_) => Some(true),
            _ if op_failed_with(&result, HaError::NodeExists) => Some(true),
            Err(HaError::SessionExpired | HaError::RequestTooOld) => None,
            Err(_) => Some(false),
        };
        let ok = written == Some(true);
        assert!(checkpoint_id >= 1);
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
        effects
    }

    /// A job's result was written (dirty): remove its plan.
    fn on_result_written(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        status: JobStatus,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
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
        effects
    }

    /// A job's plan was removed: mark its result clean.
    fn on_plan_removed(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        status: JobStatus,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
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
        effects
    }

    /// Planted [`crate::checking::bugs::Bug::HaDataDeletedOnSuspend`]: the jobs this process
    /// suspended when it lost leadership get their HA data "cleaned up" as if they had
    /// finished — their checkpoint pointers listed, then deleted without the latch guard (as
    /// FLINK-25486's application cluster did when it shut down).
    pub(super) fn send_suspend_cleanup(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let due: Vec<JobId> = match self.ha.as_ref() {
            Some(ha) if self.components.is_none() => ha.cleanup_due.iter().copied().collect(),
            _ => return effects,
        };
        for job_id in due {
            let op = Op::GetChildren {
                path: checkpoints_path(job_id),
                watch: false,
            };
            if let Some(e) = self.submit(ctx, op, Call::CleanupList { job_id }) {
                effects.extend(e);
                self.ha.as_mut().expect("HA").cleanup_due.remove(&job_id);
            }
        }
        effects
    }

    fn on_cleanup_listed(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        result: HaResult,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(names) = children(&result) else {
            // Not listed: due again once the connection is back.
            self.ha.as_mut().expect("HA").cleanup_due.insert(job_id);
            return effects;
        };
        for name in names {
            let op = Op::Delete {
                path: format!("{}/{name}", checkpoints_path(job_id)),
                expected_version: None,
            };
            effects.extend(self.submit(ctx, op, Call::Cleanup).unwrap_or_default());
        }
        effects
    }

    pub(super) fn list_checkpoints(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        job_id: JobId,
        spec: Arc<JobSpec>,
    ) -> Vec<Effect> {
        // A job is recovered only while the Dispatcher marks it running.
        assert!(self.components.as_ref().is_some_and(
            |c| c.dispatcher.is_known(job_id) && c.dispatcher.result(job_id).is_none()
        ));
        let op = Op::GetChildren {
            path: checkpoints_path(job_id),
            watch: false,
        };
        self.submit(ctx, op, Call::ListCheckpoints { job_id, spec })
            .unwrap_or_default()
    }

    /// The HA store work after a step: the results of finished jobs (JobResultStore), then the
    /// JobMasters' checkpoint id requests and pointer changes, in the order they were made.
    pub(super) fn send_ha_work(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        finished: Vec<(JobId, JobStatus)>,
        calls: Vec<(JobId, JobMasterHaCall)>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (job_id, status) in finished {
            // The Dispatcher recorded the result the store is about to get.
            assert!(status.is_globally_terminal());
            assert!(self
                .components
                .as_ref()
                .is_some_and(|c| c.dispatcher.result(job_id) == Some(status)));
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
                    assert!(checkpoint_id >= 1);
                    debug_assert!(checkpoint
                        .handles
                        .iter()
                        .all(|h| h.job_id == job_id && h.checkpoint_id == checkpoint_id));
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
                    let call = Call::RemovePointer {
                        job_id,
                        checkpoint_id,
                    };
                    effects.extend(self.submit_guarded(ctx, op, call).unwrap_or_default());
                }
            }
        }
        effects
    }
}
