//! The JobMaster's ExecutionGraph: one `Execution` per ExecutionVertex (its current attempt,
//! state, slot and pending `submitTask` / `cancelTask` timers), the JobStatus and ExecutionState
//! transitions (each checked against Flink's state machines and traced), the transition to a
//! terminal JobStatus, and the TaskExecutors' `updateTaskExecutionState` reports. It also
//! derives, from the JobSpec, the JobGraph with its pipelined regions and the per-vertex stream
//! configurations the deployments carry.
//!
//! It does not decide what happens after a failure (the scheduler's failover does), nor own the
//! slots the executions run in (the slot pool does).

use super::JobMaster;
use crate::checking::bugs::Bug;
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobMasterId};
use crate::protocol::job_graph::{ExecutionVertexId, JobGraph, JobSpec, Partitioner};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ChainedOperator, Msg, OutputConfig, StreamConfig, TaskExecutorRpc};
use crate::protocol::states::{ExecutionState, JobStatus};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};
use std::sync::Arc;

/// The JobMaster's `Execution`: the current attempt of one ExecutionVertex.
#[derive(Debug)]
pub(super) struct Execution {
    pub(super) attempt: ExecutionAttemptId,
    pub(super) state: ExecutionState,
    /// The slot it was deployed into, and that slot's TaskExecutor.
    pub(super) slot: Option<(AllocationId, NodeId)>,
    /// `submitTask` was acknowledged (before that, a missing report means nothing).
    pub(super) submitted: bool,
    pub(super) submit_timer: Option<TimerId>,
    pub(super) cancel_timer: Option<TimerId>,
}

impl JobMaster {
    pub(super) fn graph_of(
        spec: &JobSpec,
        config: &FlinkConfig,
    ) -> (JobGraph, Vec<Vec<ExecutionVertexId>>, u32) {
        let mut spec_resolved = spec.clone();
        if spec_resolved.max_parallelism.is_none() {
            spec_resolved.max_parallelism = config.max_parallelism;
        }
        let graph =
            JobGraph::from_spec(&spec_resolved).expect("job spec validated by the scenario");
        let regions: Vec<Vec<ExecutionVertexId>> = graph
            .pipelined_regions()
            .into_iter()
            .map(|r| r.vertices)
            .collect();
        let group_count = graph
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        assert!(group_count >= 1, "a job has at least one subtask");
        // The pipelined regions partition the execution vertices.
        debug_assert_eq!(
            regions.iter().map(Vec::len).sum::<usize>(),
            graph.execution_vertices().len()
        );
        (graph, regions, group_count)
    }

    pub(super) fn set_status(&mut self, ctx: &mut Ctx<'_, Flink>, to: JobStatus) {
        let from = self.status;
        if from == to {
            return;
        }
        if from != JobStatus::Initializing {
            assert!(from.can_transition_to(to), "JobStatus {from:?} -> {to:?}");
        } else {
            // A JobMaster that never started is only created or suspended.
            assert!(
                matches!(to, JobStatus::Created | JobStatus::Suspended),
                "{to:?}"
            );
        }
        self.status = to;
        ctx.trace(Obs::JobStatusChanged {
            job_id: self.job_id,
            job_master_id: self.id,
            from: (from != JobStatus::Initializing).then_some(from),
            to,
        });
        // CheckpointCoordinatorDeActivator: the periodic trigger runs while the job RUNs.
        if let Some(c) = self.coordinator.as_mut() {
            if to == JobStatus::Running {
                c.start_scheduler(ctx);
            } else {
                c.stop_scheduler(ctx);
            }
            assert_eq!(c.is_scheduler_running(), to == JobStatus::Running);
        }
    }

    pub(super) fn transition(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        ev: ExecutionVertexId,
        to: ExecutionState,
    ) {
        let e = self.executions.get_mut(&ev).expect("known vertex");
        assert_eq!(e.attempt.vertex, ev);
        assert_eq!(e.attempt.graph, self.graph_id, "an attempt of this graph");
        // A deployment goes to the slot of the vertex's sharing group; RUNNING needs a slot.
        assert!(to != ExecutionState::Deploying || self.groups.contains_key(&ev.subtask));
        assert!(to != ExecutionState::Running || e.slot.is_some());
        let from = e.state;
        assert!(
            from.can_transition_to(to),
            "ExecutionState {from:?} -> {to:?} of {ev:?}"
        );
        e.state = to;
        if to.is_terminal() {
            if let Some(t) = e.submit_timer.take() {
                ctx.cancel_timer(t);
            }
            if let Some(t) = e.cancel_timer.take() {
                ctx.cancel_timer(t);
            }
        }
        ctx.trace(Obs::ExecutionStateChanged {
            attempt: e.attempt,
            from,
            to,
        });
    }

    /// FINISHED when every execution finished; FAILED when failing and all are terminal.
    pub(super) fn check_terminal(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let all_terminal = self.executions.values().all(|e| e.state.is_terminal());
        match self.status {
            JobStatus::Running
                if self
                    .executions
                    .values()
                    .all(|e| e.state == ExecutionState::Finished) =>
            {
                self.set_status(ctx, JobStatus::Finished);
                self.shut_down(ctx);
            }
            JobStatus::Failing if all_terminal => {
                self.set_status(ctx, JobStatus::Failed);
                self.shut_down(ctx);
            }
            _ => {}
        }
        assert!(
            !matches!(self.status, JobStatus::Finished | JobStatus::Failed) || self.shut_down,
            "a globally terminal job shuts down"
        );
    }

    pub(super) fn on_update_task_execution_state(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        job_master_id: JobMasterId,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
    ) {
        let ev = attempt.vertex;
        // Stale-update fencing (docs/flink-runtime.md §4.2): only the current attempt of this graph counts.
        let current = job_master_id == self.id
            && self.executions.get(&ev).is_some_and(|e| {
                e.attempt == attempt
                    || (self.bugs.has(Bug::StaleAttemptUpdateAccepted)
                        && e.attempt.graph == attempt.graph)
            });
        ctx.send(
            from,
            Msg::TaskExecutor(TaskExecutorRpc::UpdateTaskExecutionStateResponse {
                attempt,
                ok: current,
            }),
        );
        if !current {
            return;
        }
        // Reports come from attempts this graph created: never a future attempt.
        assert_eq!(attempt.graph, self.graph_id);
        assert!(attempt.attempt <= self.executions[&ev].attempt.attempt);
        let now = self.executions[&ev].state;
        use ExecutionState as S;
        match (now, state) {
            (S::Deploying, S::Initializing) => self.transition(ctx, ev, S::Initializing),
            (S::Deploying, S::Running) => {
                self.transition(ctx, ev, S::Initializing);
                self.transition(ctx, ev, S::Running);
            }
            (S::Initializing, S::Running) => self.transition(ctx, ev, S::Running),
            (S::Deploying | S::Initializing | S::Running, S::Finished) => {
                self.transition(ctx, ev, S::Finished);
            }
            // A cancelling execution completes its cancellation on any terminal report.
            (S::Canceling, S::Finished | S::Canceled | S::Failed) => {
                self.transition(ctx, ev, S::Canceled)
            }
            // Failed, or cancelled without being asked: a failure.
            (S::Deploying | S::Initializing | S::Running, S::Failed | S::Canceled) => {
                self.transition(ctx, ev, S::Failed);
                self.handle_task_failure(ctx, ev);
            }
            _ => {} // late or duplicate reports are ignored
        }
        self.try_restart(ctx);
        self.check_terminal(ctx);
    }
}

/// The stream configuration of every job vertex: its chained operators after the input, the
/// exchange out of it, and the external systems its tasks use.
pub(super) fn stream_configs(
    graph: &JobGraph,
    spec: &JobSpec,
    config: &FlinkConfig,
    topology: &crate::process::Topology,
) -> Vec<Arc<StreamConfig>> {
    // Deployments index the configurations by job vertex id.
    debug_assert!(graph
        .vertices
        .iter()
        .enumerate()
        .all(|(i, v)| v.id.0 as usize == i));
    graph
        .vertices
        .iter()
        .map(|v| {
            let chain = v
                .operators
                .iter()
                .filter_map(|op| match op.kind {
                    "map" => Some(ChainedOperator::Map),
                    "count" => Some(ChainedOperator::Count),
                    "sink" => Some(ChainedOperator::Sink(spec.sink.kind)),
                    _ => None,
                })
                .collect();
            let output = graph.edges.iter().find(|e| e.source == v.id).map(|e| {
                let consumer = graph.vertex(e.target);
                OutputConfig {
                    partitioner: e.partitioner,
                    key_by: match e.partitioner {
                        Partitioner::Hash { keys } => Some(keys),
                        _ => None,
                    },
                    consumer_parallelism: consumer.parallelism,
                    consumer_max_parallelism: consumer.max_parallelism,
                }
            });
            Arc::new(StreamConfig {
                chain,
                output,
                parallelism: v.parallelism,
                max_parallelism: v.max_parallelism,
                checkpointing: config.checkpointing.map(|c| c.mode),
                checkpoint_storage: topology.checkpoint_storage,
                sink: topology.sink,
            })
        })
        .collect()
}
