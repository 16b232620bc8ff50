//! The JobMaster's part of Flink's DefaultScheduler: scheduling (CREATED → SCHEDULED), slot-sharing
//! groups (one slot per subtask index), region-at-once deployment by `submitTask`, deployment
//! reconciliation with the TaskExecutors' reports, cancellation, and failover: the failover
//! strategy picks the vertices to restart, the restart backoff strategy allows it (after its
//! backoff) or fails the job, and restarted vertices restore from the latest completed
//! checkpoint, or every vertex restarts on a global failure (the checkpoint failure manager's
//! verdict).
//!
//! It does not own the executions' state machines (the ExecutionGraph does), the slots (the slot
//! pool does) or the checkpoints (the CheckpointCoordinator does).

use super::{Execution, JobMaster};
use crate::checking::bugs::Bug;
use crate::jobmanager::job_master::checkpoint_coordinator::assign_state;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{
    InputChannel, Msg, SourceAssignment, TaskDeploymentDescriptor, TaskExecutorRpc,
};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::timer::{JobMasterTimer, Timer};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub(super) struct PendingRestart {
    pub(super) version: u64,
    pub(super) vertices: BTreeSet<ExecutionVertexId>,
    pub(super) delay_passed: bool,
}

impl JobMaster {
    // ------------------------------------------------------------------------------------
    // Scheduling and deployment
    // ------------------------------------------------------------------------------------

    /// Moves `vertices` from CREATED to SCHEDULED and tries to deploy.
    pub(super) fn schedule(&mut self, ctx: &mut Ctx<'_, Flink>, vertices: &[ExecutionVertexId]) {
        // Only fresh attempts are scheduled (the start, or a restart's new attempts).
        debug_assert!(vertices
            .iter()
            .all(|ev| self.executions[ev].state == ExecutionState::Created));
        for ev in vertices {
            if self.executions[ev].state == ExecutionState::Created {
                self.transition(ctx, *ev, ExecutionState::Scheduled);
            }
        }
        self.declare_required_resources(ctx);
        self.assign_slots_and_deploy(ctx);
    }

    /// Gives free pool slots to sharing groups that wait, then deploys every region whose
    /// executions are all SCHEDULED with a slot (Flink deploys a region's bulk at once).
    pub(super) fn assign_slots_and_deploy(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if self.shut_down || self.status != JobStatus::Running {
            return;
        }
        let waiting: BTreeSet<u32> = self
            .executions
            .iter()
            .filter(|(_, e)| e.state == ExecutionState::Scheduled)
            .map(|(ev, _)| ev.subtask)
            .filter(|g| !self.groups.contains_key(g))
            .collect();
        // Planted bug: without the occupancy check a busy slot is handed to a second group.
        let unchecked = self.bugs.has(Bug::SlotDoubleAllocation);
        // Each waiting group takes the first free slot (in allocation order), found in one pass.
        let mut free = self
            .slots
            .iter()
            .filter(|(_, s)| s.group.is_none())
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
            .into_iter();
        let first = self.slots.keys().next().copied();
        for g in waiting {
            let next = if unchecked { first } else { free.next() };
            let Some(allocation_id) = next else { break };
            // A slot serves one sharing group (the planted bug hands out a busy one).
            assert!(unchecked || self.slots[&allocation_id].group.is_none());
            self.slots.get_mut(&allocation_id).expect("found").group = Some(g);
            self.groups.insert(g, allocation_id);
        }
        for r in 0..self.regions.len() {
            let ready = self.regions[r].iter().all(|ev| {
                self.executions[ev].state == ExecutionState::Scheduled
                    && self.groups.contains_key(&ev.subtask)
            });
            if ready {
                let region = self.regions[r].clone();
                for ev in &region {
                    self.deploy(ctx, *ev);
                }
            }
        }
        self.update_slot_request_timer(ctx);
        self.check_slots();
    }

    pub(super) fn deploy(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let allocation_id = self.groups[&ev.subtask];
        let task_manager = self.slots[&allocation_id].task_manager;
        // A deployment goes to a pool slot of a registered TaskExecutor that serves the group.
        assert!(self.task_managers.contains_key(&task_manager));
        assert!(
            self.slots[&allocation_id].group == Some(ev.subtask)
                || self.bugs.has(Bug::SlotDoubleAllocation)
        );
        assert!(self.executions[&ev].submit_timer.is_none() && !self.executions[&ev].submitted);
        self.transition(ctx, ev, ExecutionState::Deploying);
        let attempt = self.executions[&ev].attempt;
        ctx.trace(Obs::ExecutionDeployed {
            attempt,
            task_manager,
            allocation_id,
        });
        let vertex = self.graph.vertex(ev.vertex);
        let log = self.source_log;
        let source = vertex.is_source.then(|| {
            // Source vertices come first, in the order of the spec's sources.
            let index = ev.vertex.0 as usize;
            let spec = self.spec.sources().nth(index).expect("a source of the job");
            let partitions = self.spec.source_partitions(index);
            SourceAssignment {
                log: log.expect("a job runs with a source log node"),
                partitions: (partitions.start + ev.subtask..partitions.end)
                    .step_by(vertex.parallelism as usize)
                    .collect(),
                records_per_partition: spec.records,
                rate_per_sec: spec.rate_per_sec,
            }
        });
        let inputs = self
            .graph
            .inputs(ev)
            .into_iter()
            .map(|producer| {
                let p = &self.executions[&producer];
                let tm = self.slots[&self.groups[&producer.subtask]].task_manager;
                InputChannel {
                    producer: p.attempt,
                    task_manager: tm,
                }
            })
            .collect();
        let tdd = TaskDeploymentDescriptor {
            job_id: self.job_id,
            attempt,
            allocation_id,
            task_name: format!(
                "{} ({}/{})#{}",
                vertex.name,
                ev.subtask + 1,
                vertex.parallelism,
                attempt.attempt
            ),
            source,
            inputs,
            stream: Arc::clone(&self.stream_configs[ev.vertex.0 as usize]),
            subtask: ev.subtask,
            restore: self.restores.get(&ev).cloned(),
        };
        let timer = ctx.set_timer(
            self.config.ask_timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::SubmitTaskTimeout { attempt },
            },
        );
        let e = self.executions.get_mut(&ev).expect("known");
        e.slot = Some((allocation_id, task_manager));
        e.submitted = false;
        e.submit_timer = Some(timer);
        ctx.send(
            task_manager,
            Msg::TaskExecutor(TaskExecutorRpc::SubmitTask {
                tdd: Box::new(tdd),
                job_master_id: self.id,
            }),
        );
    }

    /// The answer to `submitTask`: acknowledged, or the deployment failed.
    pub(super) fn on_submit_task_response(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        attempt: ExecutionAttemptId,
        ok: bool,
    ) {
        let ev = attempt.vertex;
        let Some(e) = self.executions.get_mut(&ev) else {
            return;
        };
        if e.attempt != attempt {
            return;
        }
        if let Some(t) = e.submit_timer.take() {
            ctx.cancel_timer(t);
        }
        // Only a deployed attempt is submitted: it has a slot.
        assert!(e.slot.is_some());
        assert!(!matches!(
            e.state,
            ExecutionState::Created | ExecutionState::Scheduled
        ));
        if ok {
            e.submitted = true;
        } else if !e.state.is_terminal() {
            self.fail_execution(ctx, ev);
        }
    }

    /// The ask timeout of `submitTask`: an unacknowledged deployment fails.
    pub(super) fn on_submit_task_timeout(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        attempt: ExecutionAttemptId,
    ) {
        let ev = attempt.vertex;
        let stale = self
            .executions
            .get(&ev)
            .is_none_or(|e| e.attempt != attempt || e.submit_timer != Some(timer));
        if stale {
            return;
        }
        assert!(
            self.executions[&ev].slot.is_some(),
            "a submitted attempt has a slot"
        );
        self.executions.get_mut(&ev).expect("known").submit_timer = None;
        if !self.executions[&ev].submitted {
            self.fail_execution(ctx, ev);
        }
    }

    /// `DefaultExecutionDeploymentReconciler`: unknown attempts on the TaskExecutor are
    /// cancelled; expected ones it does not report are failed (missing).
    pub(super) fn reconcile_deployments(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        tm: NodeId,
        deployed: &[ExecutionAttemptId],
    ) {
        // Only registered (monitored) TaskExecutors report their deployments.
        assert!(self.task_managers.contains_key(&tm));
        for attempt in deployed {
            let known = self
                .executions
                .get(&attempt.vertex)
                .is_some_and(|e| e.attempt == *attempt && e.slot.map(|s| s.1) == Some(tm));
            if !known {
                ctx.send(
                    tm,
                    Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt: *attempt }),
                );
            }
        }
        let missing: Vec<ExecutionVertexId> = self
            .executions
            .iter()
            .filter(|(_, e)| {
                e.slot.map(|s| s.1) == Some(tm)
                    && e.submitted
                    && matches!(
                        e.state,
                        ExecutionState::Deploying
                            | ExecutionState::Initializing
                            | ExecutionState::Running
                            | ExecutionState::Canceling
                    )
                    && !deployed.contains(&e.attempt)
            })
            .map(|(ev, _)| *ev)
            .collect();
        for ev in missing {
            self.fail_execution(ctx, ev);
        }
    }

    // ------------------------------------------------------------------------------------
    // Failures, failover and restarts
    // ------------------------------------------------------------------------------------

    /// An execution failed (already marked FAILED): ask the restart strategy, then restart the
    /// failover strategy's vertices after the backoff, or fail the job.
    pub(super) fn handle_task_failure(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        // Called once the execution is marked FAILED.
        assert_eq!(self.executions[&ev].state, ExecutionState::Failed);
        if matches!(self.status, JobStatus::Failing) || self.status.is_terminal() {
            self.check_terminal(ctx);
            return;
        }
        let vertices = self.failover.tasks_to_restart(&self.graph, ev);
        self.handle_failure(ctx, vertices);
    }

    /// Asks the restart strategy; restarts `vertices` after its backoff or fails the job.
    pub(super) fn handle_failure(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        vertices: BTreeSet<ExecutionVertexId>,
    ) {
        if matches!(self.status, JobStatus::Failing) || self.status.is_terminal() {
            return;
        }
        assert!(!vertices.is_empty());
        debug_assert!(vertices.iter().all(|ev| self.executions.contains_key(ev)));
        let now = Duration::from_nanos(ctx.mono_ns());
        self.restart_strategy.notify_failure(now, ctx.rng());
        let allowed =
            self.restart_strategy.can_restart() || self.bugs.has(Bug::RestartBudgetNotEnforced);
        if !allowed {
            ctx.trace(Obs::RestartRefused {
                job_id: self.job_id,
            });
            self.fail_job(ctx);
            return;
        }
        let backoff = self.restart_strategy.backoff_time();
        self.restart_tasks_with_delay(ctx, vertices, backoff);
    }

    /// A failure of the whole job (the checkpoint failure manager's verdict): every vertex
    /// restarts, if the restart strategy allows.
    pub(super) fn handle_global_failure(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let all = self.executions.keys().copied().collect();
        self.handle_failure(ctx, all);
    }

    pub(super) fn restart_tasks_with_delay(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        vertices: BTreeSet<ExecutionVertexId>,
        backoff: Duration,
    ) {
        self.restart_version += 1;
        let version = self.restart_version;
        let mut all = vertices;
        if let Some(p) = self.pending_restart.take() {
            all.extend(p.vertices);
        }
        ctx.trace(Obs::RestartScheduled {
            job_id: self.job_id,
            vertices: all.len() as u32,
            backoff_ms: backoff.as_millis() as u64,
            global: all.len() == self.executions.len(),
        });
        if self.status == JobStatus::Running {
            self.set_status(ctx, JobStatus::Restarting);
        }
        for ev in &all {
            self.cancel_execution(ctx, *ev);
        }
        // The vertices to restart are cancelled or already terminal; the job is not RUNNING.
        debug_assert!(all.iter().all(|ev| {
            let s = self.executions[ev].state;
            s.is_terminal() || s == ExecutionState::Canceling
        }));
        assert!(self.status != JobStatus::Running);
        self.pending_restart = Some(PendingRestart {
            version,
            vertices: all,
            delay_passed: false,
        });
        ctx.set_timer(
            backoff,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::RestartDelay { version },
            },
        );
    }

    /// The restart backoff of the pending restart passed.
    pub(super) fn on_restart_delay(&mut self, ctx: &mut Ctx<'_, Flink>, version: u64) {
        if let Some(p) = self.pending_restart.as_mut() {
            if p.version == version {
                p.delay_passed = true;
                self.try_restart(ctx);
            }
        }
    }

    pub(super) fn cancel_execution(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let state = self.executions[&ev].state;
        match state {
            ExecutionState::Created | ExecutionState::Scheduled => {
                self.transition(ctx, ev, ExecutionState::Canceled)
            }
            ExecutionState::Deploying | ExecutionState::Initializing | ExecutionState::Running => {
                self.transition(ctx, ev, ExecutionState::Canceling);
                self.send_cancel(ctx, ev);
            }
            _ => {}
        }
        let now = self.executions[&ev].state;
        assert!(
            now.is_terminal() || now == ExecutionState::Canceling,
            "{now:?}"
        );
    }

    pub(super) fn send_cancel(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        let e = &self.executions[&ev];
        // Only a cancelling execution is asked to cancel (and re-asked).
        assert_eq!(e.state, ExecutionState::Canceling);
        let attempt = e.attempt;
        let Some((_, tm)) = e.slot else { return };
        ctx.send(
            tm,
            Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt }),
        );
        let timer = ctx.set_timer(
            self.config.ask_timeout,
            Timer::JobMaster {
                job_id: self.job_id,
                timer: JobMasterTimer::CancelTaskRetry { attempt },
            },
        );
        if let Some(old) = self
            .executions
            .get_mut(&ev)
            .expect("known")
            .cancel_timer
            .replace(timer)
        {
            ctx.cancel_timer(old);
        }
    }

    /// `cancelTask` is re-sent until the task reports a terminal state.
    pub(super) fn on_cancel_task_retry(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        attempt: ExecutionAttemptId,
    ) {
        let ev = attempt.vertex;
        assert!(self.owns_attempt(&attempt), "a retry timer of this graph");
        let e = &self.executions[&ev];
        if e.attempt == attempt
            && e.state == ExecutionState::Canceling
            && e.cancel_timer == Some(timer)
        {
            self.executions.get_mut(&ev).expect("known").cancel_timer = None;
            self.send_cancel(ctx, ev);
        }
    }

    /// After the backoff and once every vertex to restart is terminal, new attempts start.
    pub(super) fn try_restart(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let Some(p) = &self.pending_restart else {
            return;
        };
        if self.coordinator.as_ref().is_some_and(|c| c.is_finalizing()) {
            return; // the latest checkpoint is not settled yet
        }
        if !p.delay_passed {
            return;
        }
        // The planted bug restarts as soon as the backoff passed, old attempts still cancelling.
        let waits_for_cancellation = !self.bugs.has(Bug::RestartBeforeCancellation);
        if waits_for_cancellation
            && !p
                .vertices
                .iter()
                .all(|ev| self.executions[ev].state.is_terminal())
        {
            return;
        }
        let vertices: Vec<ExecutionVertexId> = p.vertices.iter().copied().collect();
        // A restart happens while the job restarts (or runs, for a regional failover).
        assert!(
            matches!(self.status, JobStatus::Restarting | JobStatus::Running),
            "{:?}",
            self.status
        );
        self.pending_restart = None;
        // Restore from the latest completed checkpoint (docs/flink-runtime.md §6.4, §7.7).
        if let Some(c) = &self.coordinator {
            let checkpoint = c.checkpoint_to_restore().cloned();
            ctx.trace(Obs::RestoreDecided {
                job_id: self.job_id,
                checkpoint_id: checkpoint.as_ref().map(|c| c.id),
                vertices: vertices.len() as u32,
                global: vertices.len() == self.executions.len(),
            });
            for ev in &vertices {
                match &checkpoint {
                    Some(cp) => {
                        self.restores
                            .insert(*ev, assign_state(&self.graph, cp, *ev));
                    }
                    None => {
                        self.restores.remove(ev);
                    }
                }
            }
        }
        for ev in &vertices {
            let e = self.executions.get_mut(ev).expect("known");
            // A new attempt replaces a terminal one of this graph.
            if waits_for_cancellation {
                assert!(e.state.is_terminal());
                assert!(e.submit_timer.is_none() && e.cancel_timer.is_none());
            }
            if let Some(t) = e.cancel_timer.take() {
                ctx.cancel_timer(t);
            }
            if let Some(t) = e.submit_timer.take() {
                ctx.cancel_timer(t);
            }
            let attempt = ExecutionAttemptId {
                attempt: e.attempt.attempt + 1,
                ..e.attempt
            };
            *e = Execution {
                attempt,
                state: ExecutionState::Created,
                slot: None,
                submitted: false,
                submit_timer: None,
                cancel_timer: None,
            };
            ctx.trace(Obs::ExecutionCreated {
                job_id: self.job_id,
                attempt,
            });
        }
        if self.status == JobStatus::Restarting {
            self.set_status(ctx, JobStatus::Running);
        }
        assert_eq!(self.status, JobStatus::Running);
        self.schedule(ctx, &vertices);
    }

    /// The restart strategy refused: FAILING, cancel everything, FAILED once all is terminal.
    pub(super) fn fail_job(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.pending_restart = None;
        self.set_status(ctx, JobStatus::Failing);
        let all: Vec<ExecutionVertexId> = self.executions.keys().copied().collect();
        for ev in all {
            self.cancel_execution(ctx, ev);
        }
        self.declare_required_resources(ctx);
        self.check_terminal(ctx);
        assert!(matches!(
            self.status,
            JobStatus::Failing | JobStatus::Failed
        ));
        debug_assert!(self
            .executions
            .values()
            .all(|e| { e.state.is_terminal() || e.state == ExecutionState::Canceling }));
    }

    /// The JobMaster itself fails an execution (deployment failed or timed out, or the
    /// TaskExecutor no longer reports it). Like Flink's `Execution.processFail`, it also tells
    /// the TaskExecutor to cancel the task, so no live task survives its failed execution.
    pub(super) fn fail_execution(&mut self, ctx: &mut Ctx<'_, Flink>, ev: ExecutionVertexId) {
        match self.executions[&ev].state {
            ExecutionState::Canceling => self.transition(ctx, ev, ExecutionState::Canceled),
            s if s.is_terminal() => {}
            _ => {
                let e = &self.executions[&ev];
                assert!(!e.state.is_terminal());
                if let Some((_, tm)) = e.slot {
                    let attempt = e.attempt;
                    ctx.send(
                        tm,
                        Msg::TaskExecutor(TaskExecutorRpc::CancelTask { attempt }),
                    );
                }
                self.transition(ctx, ev, ExecutionState::Failed);
                self.handle_task_failure(ctx, ev);
            }
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }

    /// The executions in `allocation_id` lost their slot: non-terminal ones fail (one at a
    /// time, so a failover started by the first cancels the others), cancelling ones complete.
    pub(super) fn fail_executions_in_slot(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        allocation_id: AllocationId,
    ) {
        let affected: Vec<ExecutionVertexId> = self
            .executions
            .iter()
            .filter(|(_, e)| e.slot.map(|s| s.0) == Some(allocation_id))
            .map(|(ev, _)| *ev)
            .collect();
        for ev in affected {
            match self.executions[&ev].state {
                ExecutionState::Canceling => self.transition(ctx, ev, ExecutionState::Canceled),
                s if !s.is_terminal() => {
                    self.transition(ctx, ev, ExecutionState::Failed);
                    self.handle_task_failure(ctx, ev);
                }
                _ => {}
            }
            // The execution lost its slot: it cannot still be running in it.
            assert!(self.executions[&ev].state.is_terminal());
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }
}
