//! Flink's failover strategies (docs/flink-runtime.md §6.2, `jobmanager.execution.failover-strategy`): given a
//! failed execution vertex, the set of execution vertices to restart. `full` is
//! `RestartAllFailoverStrategy`, `region` is `RestartPipelinedRegionFailoverStrategy`.
//!
//! This module owns only that choice, as a pure function of the [`JobGraph`]. It does not own
//! whether a restart is allowed or when it runs (`restart_strategy`), nor cancelling and
//! redeploying the vertices (the JobMaster). Flink leaves out vertices still in CREATED (nothing
//! to restart); the graph carries no execution states, so the caller drops those itself.

use crate::protocol::job_graph::{ExecutionVertexId, JobGraph};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use crate::protocol::config::failover::FailoverStrategy;

impl FailoverStrategy {
    /// The execution vertices to restart when `failed` fails. Full: all. Region: the failed
    /// vertex's pipelined region plus, transitively, the producer region of every partition an
    /// involved region consumes that cannot be read again, and every consumer region of an
    /// involved region.
    ///
    /// Simplification: every exchange here is pipelined, and a pipelined partition is never
    /// re-consumable, so Flink counts every consumed partition of an involved region as
    /// unavailable. Both rules are applied, but with pipelined exchanges producers and consumers
    /// are in the region already, so the result is exactly the failed vertex's region.
    pub fn tasks_to_restart(
        self,
        graph: &JobGraph,
        failed: ExecutionVertexId,
    ) -> BTreeSet<ExecutionVertexId> {
        let all: BTreeSet<ExecutionVertexId> = graph.execution_vertices().into_iter().collect();
        assert!(all.contains(&failed), "unknown execution vertex {failed:?}");
        let tasks = match self {
            FailoverStrategy::Full => all.clone(),
            FailoverStrategy::Region => regions_to_restart(graph, failed),
        };
        assert!(tasks.contains(&failed));
        assert!(tasks.is_subset(&all));
        tasks
    }
}

/// Walks from the failed vertex's region over producer and consumer links to every involved
/// region, and returns all their vertices.
fn regions_to_restart(graph: &JobGraph, failed: ExecutionVertexId) -> BTreeSet<ExecutionVertexId> {
    let regions = graph.pipelined_regions();
    let region_of: BTreeMap<ExecutionVertexId, u32> = regions
        .iter()
        .flat_map(|region| region.vertices.iter().map(move |&v| (v, region.id)))
        .collect();
    let failed_region = region_of[&failed];
    let mut involved = BTreeSet::from([failed_region]);
    let mut to_visit = VecDeque::from([failed_region]);
    while let Some(region) = to_visit.pop_front() {
        for &v in &regions[region as usize].vertices {
            for neighbour in graph.inputs(v).into_iter().chain(graph.outputs(v)) {
                let neighbour_region = region_of[&neighbour];
                if involved.insert(neighbour_region) {
                    to_visit.push_back(neighbour_region);
                }
            }
        }
    }
    involved
        .into_iter()
        .flat_map(|region| regions[region as usize].vertices.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::job_graph::{
        JobSpec, JobVertexId, OperatorKind, OperatorSpec, SinkKind, SinkSpec, SourceSpec,
    };

    fn op(kind: OperatorKind) -> OperatorSpec {
        OperatorSpec {
            kind,
            name: None,
            parallelism: None,
        }
    }

    fn graph(parallelism: u32, operators: Vec<OperatorSpec>) -> JobGraph {
        JobGraph::from_spec(&JobSpec {
            name: "job".into(),
            parallelism,
            max_parallelism: None,
            chaining: true,
            source: SourceSpec {
                partitions: parallelism,
                records: 10,
                rate_per_sec: None,
            },
            more_sources: Vec::new(),
            operators,
            sink: SinkSpec {
                kind: SinkKind::TwoPhaseCommit,
                parallelism: None,
            },
        })
        .unwrap()
    }

    fn ev(vertex: u32, subtask: u32) -> ExecutionVertexId {
        ExecutionVertexId {
            vertex: JobVertexId(vertex),
            subtask,
        }
    }

    #[test]
    fn names() {
        let table = [
            ("full", Some(FailoverStrategy::Full)),
            ("region", Some(FailoverStrategy::Region)),
            ("Region", Some(FailoverStrategy::Region)),
            ("FULL", Some(FailoverStrategy::Full)),
            ("", None),
            ("restart-all", None),
            ("regions", None),
        ];
        for (name, expected) in table {
            assert_eq!(FailoverStrategy::from_name(name), expected, "{name:?}");
            if let Some(strategy) = expected {
                assert!(strategy.name().eq_ignore_ascii_case(name));
            }
        }
    }

    #[test]
    fn region_on_a_forward_only_job_restarts_one_subtask_chain() {
        let graph = graph(4, vec![op(OperatorKind::Map)]);
        assert_eq!(graph.vertices.len(), 1);
        for subtask in 0..4 {
            let tasks = FailoverStrategy::Region.tasks_to_restart(&graph, ev(0, subtask));
            assert_eq!(tasks, BTreeSet::from([ev(0, subtask)]));
        }
    }

    #[test]
    fn region_on_a_keyed_job_restarts_everything() {
        let graph = graph(
            4,
            vec![
                op(OperatorKind::KeyBy { keys: 64 }),
                op(OperatorKind::Count),
            ],
        );
        let all: BTreeSet<_> = graph.execution_vertices().into_iter().collect();
        assert_eq!(all.len(), 8);
        for &failed in &all {
            assert_eq!(
                FailoverStrategy::Region.tasks_to_restart(&graph, failed),
                all,
                "{failed:?}"
            );
        }
    }

    #[test]
    fn full_always_restarts_everything() {
        let graphs = [
            graph(4, vec![op(OperatorKind::Map)]),
            graph(
                3,
                vec![op(OperatorKind::KeyBy { keys: 8 }), op(OperatorKind::Count)],
            ),
            graph(2, vec![op(OperatorKind::Rebalance), op(OperatorKind::Map)]),
        ];
        for graph in &graphs {
            let all: BTreeSet<_> = graph.execution_vertices().into_iter().collect();
            for &failed in &all {
                assert_eq!(
                    FailoverStrategy::Full.tasks_to_restart(graph, failed),
                    all,
                    "{failed:?}"
                );
            }
        }
    }

    #[test]
    fn region_equals_the_failed_vertex_region() {
        let graphs = [
            graph(4, vec![op(OperatorKind::Map)]),
            graph(
                3,
                vec![
                    op(OperatorKind::Map),
                    op(OperatorKind::KeyBy { keys: 8 }),
                    op(OperatorKind::Count),
                ],
            ),
        ];
        for graph in &graphs {
            for region in graph.pipelined_regions() {
                let expected: BTreeSet<_> = region.vertices.iter().copied().collect();
                for &failed in &region.vertices {
                    let tasks = FailoverStrategy::Region.tasks_to_restart(graph, failed);
                    assert_eq!(tasks, expected, "{failed:?}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "unknown execution vertex")]
    fn unknown_vertex_is_a_bug() {
        let graph = graph(2, vec![op(OperatorKind::Map)]);
        FailoverStrategy::Full.tasks_to_restart(&graph, ev(0, 2));
    }
}
