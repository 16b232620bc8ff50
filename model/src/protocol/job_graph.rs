//! The job a scenario runs, from its spec to the topology the scheduler works on: [`JobSpec`]
//! (what a scenario file's `[job]` table says) → [`JobGraph`] (chained [`JobVertex`]es joined by
//! [`JobEdge`]s, what Flink's `StreamingJobGraphGenerator` produces) → the execution-vertex view
//! of Flink's ExecutionGraph (one [`ExecutionVertexId`] per subtask, its producers and consumers,
//! and its [`PipelinedRegion`]), plus the key-group arithmetic of `KeyGroupRangeAssignment`.
//!
//! This module owns the rules that turn a spec into a graph: parallelism and max parallelism,
//! which partitioner each exchange gets, which operators chain, and which user mistakes are
//! rejected (with a `String` naming the offending element, because a bad scenario is something a
//! user fixes). It does not own execution attempts, states or deployment (the JobMaster), nor
//! which vertices a failure restarts (`failover_strategy`). Everything here is a pure function
//! of the spec, so the same spec always yields the same ids, names and regions.
//!
//! The jobs a spec can express are pipelines source(s) → operators → sink: one or more sources,
//! whose union the first operator (or the sink) reads, then a linear chain. That keeps the
//! chaining rule (docs/flink-runtime.md §3.3) down to two clauses: an exchange chains iff it is a
//! forward exchange between equal parallelisms into an operator with one input (the union's
//! reader has several and chains with none of its sources). One slot sharing group and equal
//! max parallelism always hold.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};

/// Flink's upper bound for max parallelism (`Transformation.UPPER_BOUND_MAX_PARALLELISM`): key
/// groups are addressed with 15 bits.
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// The smallest default max parallelism (`KeyGroupRangeAssignment`): leaves room to scale up a
/// job whose user never set max parallelism.
pub const DEFAULT_LOWER_BOUND_MAX_PARALLELISM: u32 = 1 << 7;

const _: () = assert!(DEFAULT_LOWER_BOUND_MAX_PARALLELISM <= UPPER_BOUND_MAX_PARALLELISM);
// The key-group arithmetic below multiplies two values ≤ the upper bound; u64 keeps it exact.
const _: () =
    assert!((UPPER_BOUND_MAX_PARALLELISM as u64) * (UPPER_BOUND_MAX_PARALLELISM as u64) < u64::MAX);

/// A job as a scenario file describes it (`[job]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobSpec {
    pub name: String,
    /// The default parallelism of every operator, and the source's parallelism.
    pub parallelism: u32,
    /// `None`: Flink's default, derived from `parallelism` ([`default_max_parallelism`]).
    pub max_parallelism: Option<u32>,
    /// `pipeline.operator-chaining.enabled`: false makes every operator its own job vertex.
    /// Serialized only when false, so traces of chained jobs stay as they were.
    #[serde(skip_serializing_if = "is_true")]
    pub chaining: bool,
    pub source: SourceSpec,
    /// Further sources (a scenario's `sources = [...]` past its first): each is its own source
    /// vertex, and the first operator (or the sink) reads the union of all of them. Their
    /// partitions follow the first source's in the source log ([`JobSpec::source_partitions`]).
    /// Serialized only when there are some, so traces of one-source jobs stay as they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_sources: Vec<SourceSpec>,
    pub operators: Vec<OperatorSpec>,
    pub sink: SinkSpec,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl JobSpec {
    /// Every source, the first one first.
    pub fn sources(&self) -> impl Iterator<Item = &SourceSpec> {
        std::iter::once(&self.source).chain(&self.more_sources)
    }

    /// The source log's partitions of source `index` (0 is [`JobSpec::source`]): the sources'
    /// partitions are numbered one after another.
    pub fn source_partitions(&self, index: usize) -> Range<u32> {
        let start: u32 = self.sources().take(index).map(|s| s.partitions).sum();
        let spec = self.sources().nth(index).expect("a source of the job");
        start..start + spec.partitions
    }

    /// The partitions of every source together.
    pub fn total_partitions(&self) -> u32 {
        self.sources().map(|s| s.partitions).sum()
    }
}

/// As derived, but `chaining` counts only when false: ids derived from the spec of a chained job
/// stay what they were before the option existed.
impl std::hash::Hash for JobSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.parallelism.hash(state);
        self.max_parallelism.hash(state);
        self.source.hash(state);
        self.operators.hash(state);
        self.sink.hash(state);
        if !self.chaining {
            false.hash(state);
        }
        if !self.more_sources.is_empty() {
            self.more_sources.hash(state);
        }
    }
}

/// The sequence source: `partitions` partitions of `records` records each.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SourceSpec {
    pub partitions: u32,
    /// Records per partition.
    pub records: u64,
    /// Records per second per partition; `None` = unthrottled.
    pub rate_per_sec: Option<u64>,
}

/// One element of the `operators` list. `KeyBy`, `Rebalance` and `Forward` are not operators:
/// they choose the partitioner of the exchange into the next operator (or the sink). `Map` and
/// `Count` are operators.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OperatorKind {
    /// Hash-partition by key; the source emits `keys` distinct keys.
    KeyBy {
        keys: u32,
    },
    Rebalance,
    Forward,
    Map,
    /// Keyed running count; needs a `KeyBy` right before it (keyed state).
    Count,
}

impl OperatorKind {
    /// The `kind` string a scenario file uses.
    pub fn name(&self) -> &'static str {
        match self {
            OperatorKind::KeyBy { .. } => "key_by",
            OperatorKind::Rebalance => "rebalance",
            OperatorKind::Forward => "forward",
            OperatorKind::Map => "map",
            OperatorKind::Count => "count",
        }
    }

    fn is_partitioner(&self) -> bool {
        matches!(
            self,
            OperatorKind::KeyBy { .. } | OperatorKind::Rebalance | OperatorKind::Forward
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct OperatorSpec {
    pub kind: OperatorKind,
    /// A user name (operators only); `None` = named after the kind.
    pub name: Option<String>,
    /// Operators only; `None` = the job's parallelism.
    pub parallelism: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SinkKind {
    TwoPhaseCommit,
    AtLeastOnce,
    Discard,
}

impl SinkKind {
    /// The `kind` string a scenario file uses.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::TwoPhaseCommit => "two_phase_commit",
            SinkKind::AtLeastOnce => "at_least_once",
            SinkKind::Discard => "discard",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SinkSpec {
    pub kind: SinkKind,
    /// `None` = the job's parallelism.
    pub parallelism: Option<u32>,
}

/// A job vertex's id: its index in [`JobGraph::vertices`] (topological order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobVertexId(pub u32);

/// One operator inside a (possibly chained) job vertex.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct OperatorInfo {
    /// "source", "map", "count" or "sink".
    pub kind: &'static str,
    /// The user name, else the kind the scenario wrote: "sequence" for the source, the sink's
    /// kind ("two_phase_commit", …) for the sink, "map"/"count" for operators.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct JobVertex {
    pub id: JobVertexId,
    /// Flink's style: the chained operators' display names joined with " -> ", e.g.
    /// "Source: sequence" or "Count -> Sink: two_phase_commit".
    pub name: String,
    /// The chained operators, head first.
    pub operators: Vec<OperatorInfo>,
    pub parallelism: u32,
    pub max_parallelism: u32,
    /// The vertex's chain starts with the source.
    pub is_source: bool,
    /// The vertex's chain ends with the sink.
    pub has_sink: bool,
}

/// How records cross an exchange (`StreamPartitioner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Partitioner {
    Forward,
    /// `keyBy`: re-keys records to `keys` distinct keys and routes them by key group.
    Hash {
        keys: u32,
    },
    Rebalance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DistributionPattern {
    Pointwise,
    AllToAll,
}

/// A pipelined exchange between two job vertices.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct JobEdge {
    pub source: JobVertexId,
    pub target: JobVertexId,
    pub partitioner: Partitioner,
    pub pattern: DistributionPattern,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct JobGraph {
    pub name: String,
    /// Topological order; `vertices[i].id == JobVertexId(i)`.
    pub vertices: Vec<JobVertex>,
    /// Every edge goes from a lower to a higher vertex id.
    pub edges: Vec<JobEdge>,
}

/// One subtask of one job vertex (Flink's `ExecutionVertexID`). Ordered by (vertex, subtask).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecutionVertexId {
    pub vertex: JobVertexId,
    pub subtask: u32,
}

/// A set of execution vertices connected through pipelined exchanges: the unit of scheduling and
/// of region failover.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PipelinedRegion {
    /// Regions are numbered in the order of their smallest member.
    pub id: u32,
    /// Sorted, non-empty.
    pub vertices: Vec<ExecutionVertexId>,
}

/// The name of source `index`: "sequence", then "sequence-2", "sequence-3", ….
pub fn source_name(index: usize) -> String {
    match index {
        0 => "sequence".to_string(),
        i => format!("sequence-{}", i + 1),
    }
}

/// One link of the linear pipeline before chaining: an operator, its parallelism and the
/// partitioner of the exchange into it (`None` for the source).
struct ChainNode {
    info: OperatorInfo,
    display_name: String,
    parallelism: u32,
    input: Option<Partitioner>,
}

impl JobGraph {
    /// Builds the JobGraph of a spec, or says which element of the spec is wrong.
    pub fn from_spec(spec: &JobSpec) -> Result<JobGraph, String> {
        if spec.parallelism == 0 || spec.parallelism > UPPER_BOUND_MAX_PARALLELISM {
            return Err(format!(
                "job parallelism {} must be between 1 and {UPPER_BOUND_MAX_PARALLELISM}",
                spec.parallelism
            ));
        }
        let max_parallelism = match spec.max_parallelism {
            Some(m) if m == 0 || m > UPPER_BOUND_MAX_PARALLELISM => {
                return Err(format!(
                    "max_parallelism {m} must be between 1 and {UPPER_BOUND_MAX_PARALLELISM}"
                ));
            }
            Some(m) => m,
            None => default_max_parallelism(spec.parallelism),
        };
        check_parallelism("the job", spec.parallelism, max_parallelism)?;
        let mut nodes = Vec::new();
        for (index, source) in spec.sources().enumerate() {
            // One source is "source"; several are "sources[i]".
            let what = match spec.more_sources.is_empty() {
                true => "source".to_string(),
                false => format!("sources[{index}]"),
            };
            if source.partitions == 0 {
                return Err(format!("{what} partitions must be at least 1"));
            }
            if source.rate_per_sec == Some(0) {
                // A zero rate would never emit; "unthrottled" is spelled by leaving the rate out.
                return Err(format!("{what} rate must be at least 1 record per second"));
            }
            if source.records != spec.source.records {
                // The source log gives every partition one length (and the reference relies on it).
                return Err(format!(
                    "{what} records {} differ from sources[0]'s {}: every source's partitions \
                     hold the same number of records",
                    source.records, spec.source.records
                ));
            }
            let name = source_name(index);
            nodes.push(ChainNode {
                display_name: format!("Source: {name}"),
                info: OperatorInfo {
                    kind: "source",
                    name,
                },
                parallelism: spec.parallelism,
                input: None,
            });
        }
        // The partitioner element waiting for the operator it applies to, with its position.
        let mut pending: Option<(usize, &OperatorKind)> = None;
        for (index, op) in spec.operators.iter().enumerate() {
            let what = format!("operators[{index}] ({})", op.kind.name());
            if op.kind.is_partitioner() {
                if let Some((previous, kind)) = pending {
                    return Err(format!(
                        "{what} follows operators[{previous}] ({}): two partitioners in a row",
                        kind.name()
                    ));
                }
                if op.parallelism.is_some() {
                    return Err(format!("{what} is a partitioner and takes no parallelism"));
                }
                if op.name.is_some() {
                    return Err(format!("{what} is a partitioner and takes no name"));
                }
                if let OperatorKind::KeyBy { keys: 0 } = op.kind {
                    return Err(format!("{what}: keys must be at least 1"));
                }
                pending = Some((index, &op.kind));
                continue;
            }
            let (kind, default_display_name) = match op.kind {
                OperatorKind::Map => ("map", "Map"),
                OperatorKind::Count => ("count", "Count"),
                _ => unreachable!("partitioners handled above"),
            };
            if op.kind == OperatorKind::Count
                && !matches!(pending, Some((_, OperatorKind::KeyBy { .. })))
            {
                // Flink offers keyed aggregations only on a KeyedStream, which only keyBy makes.
                return Err(format!(
                    "{what} needs a key_by right before it (keyed state)"
                ));
            }
            if op.name.as_deref() == Some("") {
                return Err(format!("{what}: name must not be empty"));
            }
            let parallelism = op.parallelism.unwrap_or(spec.parallelism);
            check_parallelism(&what, parallelism, max_parallelism)?;
            let upstream = nodes.last().expect("the source is always there");
            let input = choose_partitioner(
                &what,
                pending.map(|(_, k)| k),
                upstream.parallelism,
                parallelism,
            )?;
            let name = op.name.clone().unwrap_or_else(|| kind.to_string());
            let display_name = op
                .name
                .clone()
                .unwrap_or_else(|| default_display_name.to_string());
            nodes.push(ChainNode {
                info: OperatorInfo { kind, name },
                display_name,
                parallelism,
                input: Some(input),
            });
            pending = None;
        }
        // A trailing partitioner applies to the exchange into the sink.
        let sink_parallelism = spec.sink.parallelism.unwrap_or(spec.parallelism);
        check_parallelism("the sink", sink_parallelism, max_parallelism)?;
        let upstream = nodes.last().expect("the source is always there");
        let sink_input = choose_partitioner(
            "the sink",
            pending.map(|(_, k)| k),
            upstream.parallelism,
            sink_parallelism,
        )?;
        nodes.push(ChainNode {
            info: OperatorInfo {
                kind: "sink",
                name: spec.sink.kind.name().to_string(),
            },
            display_name: format!("Sink: {}", spec.sink.kind.name()),
            parallelism: sink_parallelism,
            input: Some(sink_input),
        });

        let graph = chain(&spec.name, nodes, max_parallelism, spec.chaining);
        graph.check();
        Ok(graph)
    }

    /// Every execution vertex, in (vertex, subtask) order.
    pub fn execution_vertices(&self) -> Vec<ExecutionVertexId> {
        self.vertices
            .iter()
            .flat_map(|v| {
                (0..v.parallelism).map(move |subtask| ExecutionVertexId {
                    vertex: v.id,
                    subtask,
                })
            })
            .collect()
    }

    /// The vertex with id `id`; panics on an id from another graph.
    pub fn vertex(&self, id: JobVertexId) -> &JobVertex {
        let vertex = &self.vertices[id.0 as usize];
        assert_eq!(vertex.id, id);
        vertex
    }

    /// The first vertex (in topological order) holding an operator whose name or kind is
    /// `operator`; what a `fail_task = "count[1]"` fault names.
    pub fn find_vertex(&self, operator: &str) -> Option<JobVertexId> {
        self.vertices
            .iter()
            .find(|v| {
                v.operators
                    .iter()
                    .any(|o| o.name == operator || o.kind == operator)
            })
            .map(|v| v.id)
    }

    /// The execution vertices `v` consumes from, sorted.
    pub fn inputs(&self, v: ExecutionVertexId) -> Vec<ExecutionVertexId> {
        self.check_execution_vertex(v);
        let mut inputs = Vec::new();
        for edge in self.edges.iter().filter(|e| e.target == v.vertex) {
            let source_parallelism = self.vertex(edge.source).parallelism;
            let subtasks = match edge.pattern {
                DistributionPattern::AllToAll => 0..source_parallelism,
                DistributionPattern::Pointwise => pointwise_producers(
                    source_parallelism,
                    self.vertex(v.vertex).parallelism,
                    v.subtask,
                ),
            };
            inputs.extend(subtasks.map(|subtask| ExecutionVertexId {
                vertex: edge.source,
                subtask,
            }));
        }
        inputs.sort();
        inputs.dedup();
        inputs
    }

    /// The execution vertices consuming what `v` produces, sorted.
    pub fn outputs(&self, v: ExecutionVertexId) -> Vec<ExecutionVertexId> {
        self.check_execution_vertex(v);
        let mut outputs = Vec::new();
        for edge in self.edges.iter().filter(|e| e.source == v.vertex) {
            let target_parallelism = self.vertex(edge.target).parallelism;
            let subtasks = match edge.pattern {
                DistributionPattern::AllToAll => 0..target_parallelism,
                DistributionPattern::Pointwise => pointwise_consumers(
                    self.vertex(v.vertex).parallelism,
                    target_parallelism,
                    v.subtask,
                ),
            };
            outputs.extend(subtasks.map(|subtask| ExecutionVertexId {
                vertex: edge.target,
                subtask,
            }));
        }
        outputs.sort();
        outputs.dedup();
        outputs
    }

    /// The pipelined regions, ordered by id.
    ///
    /// Every exchange of a streaming job is pipelined, so a region is simply a connected
    /// component of execution vertices over producer/consumer links. (Flink also merges regions
    /// that form a cycle through blocking exchanges; without blocking exchanges there is no such
    /// cycle.)
    pub fn pipelined_regions(&self) -> Vec<PipelinedRegion> {
        let region_ids = self.region_ids();
        let mut regions: Vec<PipelinedRegion> = Vec::new();
        for (v, &id) in self.execution_vertices().into_iter().zip(&region_ids) {
            if id as usize == regions.len() {
                regions.push(PipelinedRegion {
                    id,
                    vertices: Vec::new(),
                });
            }
            regions[id as usize].vertices.push(v);
        }
        for region in &regions {
            assert!(!region.vertices.is_empty());
            assert!(region.vertices.windows(2).all(|w| w[0] < w[1]));
        }
        regions
    }

    /// The id of the region holding `v`, as numbered by [`pipelined_regions`](Self::pipelined_regions).
    /// Recomputes the regions (linear in the graph); a caller asking for many vertices should
    /// index the output of `pipelined_regions` instead.
    pub fn region_of(&self, v: ExecutionVertexId) -> u32 {
        self.check_execution_vertex(v);
        self.region_ids()[self.flat_index(v)]
    }

    /// The region id of every execution vertex, indexed like [`execution_vertices`](Self::execution_vertices).
    fn region_ids(&self) -> Vec<u32> {
        let offsets = self.offsets();
        let count: usize = self.vertices.iter().map(|v| v.parallelism as usize).sum();
        let mut parents: Vec<usize> = (0..count).collect();
        for edge in &self.edges {
            let source = offsets[edge.source.0 as usize];
            let target = offsets[edge.target.0 as usize];
            let source_parallelism = self.vertex(edge.source).parallelism;
            let target_parallelism = self.vertex(edge.target).parallelism;
            match edge.pattern {
                // All producers and all consumers form one component; joining each to one anchor
                // keeps this linear instead of producers × consumers.
                DistributionPattern::AllToAll => {
                    for subtask in 1..source_parallelism {
                        union(&mut parents, source, source + subtask as usize);
                    }
                    for subtask in 0..target_parallelism {
                        union(&mut parents, source, target + subtask as usize);
                    }
                }
                DistributionPattern::Pointwise => {
                    for target_subtask in 0..target_parallelism {
                        for source_subtask in pointwise_producers(
                            source_parallelism,
                            target_parallelism,
                            target_subtask,
                        ) {
                            union(
                                &mut parents,
                                source + source_subtask as usize,
                                target + target_subtask as usize,
                            );
                        }
                    }
                }
            }
        }
        // Number components by first appearance; indices run in (vertex, subtask) order, so the
        // first member seen is the smallest.
        let mut ids_by_root: BTreeMap<usize, u32> = BTreeMap::new();
        let mut ids = Vec::with_capacity(count);
        for index in 0..count {
            let root = find(&mut parents, index);
            let next = ids_by_root.len() as u32;
            ids.push(*ids_by_root.entry(root).or_insert(next));
        }
        ids
    }

    /// Index of each vertex's subtask 0 in the flat (vertex, subtask) order.
    fn offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.vertices.len());
        let mut offset = 0;
        for v in &self.vertices {
            offsets.push(offset);
            offset += v.parallelism as usize;
        }
        offsets
    }

    fn flat_index(&self, v: ExecutionVertexId) -> usize {
        self.offsets()[v.vertex.0 as usize] + v.subtask as usize
    }

    fn check_execution_vertex(&self, v: ExecutionVertexId) {
        assert!((v.vertex.0 as usize) < self.vertices.len());
        assert!(v.subtask < self.vertex(v.vertex).parallelism);
    }

    /// The structural invariants every method relies on.
    fn check(&self) {
        assert!(!self.vertices.is_empty());
        for (index, v) in self.vertices.iter().enumerate() {
            assert_eq!(v.id, JobVertexId(index as u32));
            assert!(!v.operators.is_empty());
            assert!(v.parallelism >= 1);
            assert!(v.parallelism <= v.max_parallelism);
            assert!(v.max_parallelism <= UPPER_BOUND_MAX_PARALLELISM);
        }
        for edge in &self.edges {
            assert!(edge.source < edge.target, "edges follow topological order");
            assert!((edge.target.0 as usize) < self.vertices.len());
            if edge.partitioner == Partitioner::Forward {
                assert_eq!(edge.pattern, DistributionPattern::Pointwise);
            } else {
                assert_eq!(edge.pattern, DistributionPattern::AllToAll);
            }
        }
    }
}

/// Flink's default max parallelism for an operator of parallelism `parallelism`
/// (`computeDefaultMaxParallelism`): 1.5 × parallelism rounded up to a power of two, at least
/// 128, at most 32768.
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    assert!(parallelism >= 1);
    assert!(parallelism <= UPPER_BOUND_MAX_PARALLELISM);
    let scaled = (parallelism + parallelism / 2).next_power_of_two();
    let max_parallelism = scaled.clamp(
        DEFAULT_LOWER_BOUND_MAX_PARALLELISM,
        UPPER_BOUND_MAX_PARALLELISM,
    );
    assert!(max_parallelism >= parallelism);
    max_parallelism
}

/// The key groups subtask `subtask` owns (`computeKeyGroupRangeForOperatorIndex`):
/// `[ceil(subtask·maxP / p), floor(((subtask+1)·maxP − 1) / p)]`. Never empty while
/// `p ≤ maxP`, and the ranges of all subtasks partition `0..maxP` in order.
pub fn key_group_range(
    max_parallelism: u32,
    parallelism: u32,
    subtask: u32,
) -> RangeInclusive<u32> {
    check_key_group_arguments(max_parallelism, parallelism);
    assert!(subtask < parallelism);
    let (m, p, i) = (max_parallelism as u64, parallelism as u64, subtask as u64);
    let start = (i * m).div_ceil(p);
    let end = ((i + 1) * m - 1) / p;
    assert!(start <= end);
    assert!(end < m);
    start as u32..=end as u32
}

/// The subtask that owns `key_group` (`computeOperatorIndexForKeyGroup`): `kg · p / maxP`.
pub fn operator_index_for_key_group(max_parallelism: u32, parallelism: u32, key_group: u32) -> u32 {
    check_key_group_arguments(max_parallelism, parallelism);
    assert!(key_group < max_parallelism);
    let index = (key_group as u64 * parallelism as u64 / max_parallelism as u64) as u32;
    assert!(index < parallelism);
    index
}

/// The key group of `key`. Stands in for Flink's `murmurHash(key.hashCode()) % maxP`: the model's
/// keys are integers, so murmur3's 64-bit finalizer (`fmix64`) scrambles them instead; any fixed
/// mix that spreads keys evenly serves, and this one never changes between runs.
pub fn key_group_for_key(key: u64, max_parallelism: u32) -> u32 {
    assert!(max_parallelism >= 1);
    assert!(max_parallelism <= UPPER_BOUND_MAX_PARALLELISM);
    (fmix64(key) % max_parallelism as u64) as u32
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

fn check_key_group_arguments(max_parallelism: u32, parallelism: u32) {
    assert!(parallelism >= 1);
    assert!(parallelism <= max_parallelism);
    assert!(max_parallelism <= UPPER_BOUND_MAX_PARALLELISM);
}

fn check_parallelism(what: &str, parallelism: u32, max_parallelism: u32) -> Result<(), String> {
    if parallelism == 0 {
        return Err(format!("{what}: parallelism must be at least 1"));
    }
    if parallelism > max_parallelism {
        return Err(format!(
            "{what}: parallelism {parallelism} exceeds max_parallelism {max_parallelism}"
        ));
    }
    Ok(())
}

/// The partitioner of the exchange into an operator of parallelism `parallelism` whose upstream
/// has `upstream_parallelism`, given the partitioner element (if any) right before it.
fn choose_partitioner(
    what: &str,
    explicit: Option<&OperatorKind>,
    upstream_parallelism: u32,
    parallelism: u32,
) -> Result<Partitioner, String> {
    match explicit {
        Some(OperatorKind::KeyBy { keys }) => Ok(Partitioner::Hash { keys: *keys }),
        Some(OperatorKind::Rebalance) => Ok(Partitioner::Rebalance),
        // Flink rejects a forward exchange between different parallelisms when it builds the
        // StreamGraph: subtask i would have no partner.
        Some(OperatorKind::Forward) if parallelism != upstream_parallelism => Err(format!(
            "{what}: forward needs equal parallelism, but upstream has {upstream_parallelism} and this has {parallelism}"
        )),
        Some(OperatorKind::Forward) => Ok(Partitioner::Forward),
        Some(kind) => unreachable!("{} is not a partitioner", kind.name()),
        // With nothing explicit Flink forwards between equal parallelisms and rebalances
        // otherwise.
        None if parallelism == upstream_parallelism => Ok(Partitioner::Forward),
        None => Ok(Partitioner::Rebalance),
    }
}

/// Groups the linear pipeline into job vertices: a forward exchange (always between equal
/// parallelisms by now) chains, any other exchange starts a new vertex behind an edge. Without
/// `chaining` a forward exchange starts a new vertex too, behind a pointwise edge (subtask i
/// feeds subtask i), as Flink's `StreamingJobGraphGenerator` does with chaining disabled.
fn chain(name: &str, nodes: Vec<ChainNode>, max_parallelism: u32, chaining: bool) -> JobGraph {
    // The sources come first; with several, the node after them reads their union.
    let sources = nodes.iter().take_while(|n| n.input.is_none()).count();
    assert!(
        sources >= 1 && nodes.len() > sources,
        "a source and a sink at least"
    );
    let last = nodes.len() - 1;
    let mut vertices: Vec<JobVertex> = Vec::new();
    let mut edges: Vec<JobEdge> = Vec::new();
    let mut display_names: Vec<Vec<String>> = Vec::new();
    for (index, node) in nodes.into_iter().enumerate() {
        // Flink chains an operator only to its single input.
        let union = index == sources && sources > 1;
        match node.input {
            Some(Partitioner::Forward) if chaining && !union => {
                let vertex = vertices
                    .last_mut()
                    .expect("the source starts the first vertex");
                assert_eq!(vertex.parallelism, node.parallelism);
                vertex.operators.push(node.info);
                display_names
                    .last_mut()
                    .expect("paired with vertices")
                    .push(node.display_name);
            }
            input => {
                assert_eq!(
                    input.is_none(),
                    index < sources,
                    "only sources have no input"
                );
                let id = JobVertexId(vertices.len() as u32);
                if let Some(partitioner) = input {
                    let producers = if union { 0..id.0 } else { id.0 - 1..id.0 };
                    for producer in producers {
                        edges.push(JobEdge {
                            source: JobVertexId(producer),
                            target: id,
                            partitioner,
                            pattern: if partitioner == Partitioner::Forward {
                                DistributionPattern::Pointwise
                            } else {
                                DistributionPattern::AllToAll
                            },
                        });
                    }
                }
                vertices.push(JobVertex {
                    id,
                    name: String::new(),
                    operators: vec![node.info],
                    parallelism: node.parallelism,
                    max_parallelism,
                    is_source: index < sources,
                    has_sink: false,
                });
                display_names.push(vec![node.display_name]);
            }
        }
        if index == last {
            vertices.last_mut().expect("non-empty").has_sink = true;
        }
    }
    for (vertex, names) in vertices.iter_mut().zip(display_names) {
        vertex.name = names.join(" -> ");
    }
    JobGraph {
        name: name.to_string(),
        vertices,
        edges,
    }
}

/// The producer subtasks a pointwise consumer `target_subtask` reads from, as Flink's
/// `computeVertexInputInfoForPointwise` spreads them: with more producers each consumer reads a
/// contiguous block, with fewer each producer feeds a contiguous block of consumers.
fn pointwise_producers(
    source_parallelism: u32,
    target_parallelism: u32,
    target_subtask: u32,
) -> Range<u32> {
    assert!(target_subtask < target_parallelism);
    let (s, t, j) = (
        source_parallelism as u64,
        target_parallelism as u64,
        target_subtask as u64,
    );
    let range = if s >= t {
        (j * s / t)..((j + 1) * s / t)
    } else {
        let i = j * s / t;
        i..i + 1
    };
    assert!(range.start < range.end);
    assert!(range.end <= s);
    range.start as u32..range.end as u32
}

/// The inverse of [`pointwise_producers`]: the consumer subtasks producer `source_subtask` feeds.
fn pointwise_consumers(
    source_parallelism: u32,
    target_parallelism: u32,
    source_subtask: u32,
) -> Range<u32> {
    assert!(source_subtask < source_parallelism);
    let (s, t, i) = (
        source_parallelism as u64,
        target_parallelism as u64,
        source_subtask as u64,
    );
    let range = if s >= t {
        let j = ((i + 1) * t).div_ceil(s) - 1;
        j..j + 1
    } else {
        (i * t).div_ceil(s)..((i + 1) * t).div_ceil(s)
    };
    assert!(range.start < range.end);
    assert!(range.end <= t);
    range.start as u32..range.end as u32
}

fn find(parents: &mut [usize], mut x: usize) -> usize {
    while parents[x] != x {
        // Path halving keeps the trees flat without recursion.
        parents[x] = parents[parents[x]];
        x = parents[x];
    }
    x
}

fn union(parents: &mut [usize], a: usize, b: usize) {
    let (root_a, root_b) = (find(parents, a), find(parents, b));
    // Always hang the larger root under the smaller, so a root is its component's minimum.
    match root_a.cmp(&root_b) {
        std::cmp::Ordering::Less => parents[root_b] = root_a,
        std::cmp::Ordering::Greater => parents[root_a] = root_b,
        std::cmp::Ordering::Equal => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OperatorKind) -> OperatorSpec {
        OperatorSpec {
            kind,
            name: None,
            parallelism: None,
        }
    }

    fn op_with_parallelism(kind: OperatorKind, parallelism: u32) -> OperatorSpec {
        OperatorSpec {
            kind,
            name: None,
            parallelism: Some(parallelism),
        }
    }

    fn spec(parallelism: u32, operators: Vec<OperatorSpec>, sink: SinkKind) -> JobSpec {
        JobSpec {
            name: "job".to_string(),
            parallelism,
            max_parallelism: None,
            chaining: true,
            source: SourceSpec {
                partitions: parallelism,
                records: 100,
                rate_per_sec: Some(1000),
            },
            more_sources: Vec::new(),
            operators,
            sink: SinkSpec {
                kind: sink,
                parallelism: None,
            },
        }
    }

    /// The `[job]` of docs/scenarios.md.
    fn keyed_count() -> JobSpec {
        JobSpec {
            name: "keyed-count".to_string(),
            ..spec(
                4,
                vec![
                    op(OperatorKind::KeyBy { keys: 64 }),
                    op(OperatorKind::Count),
                ],
                SinkKind::TwoPhaseCommit,
            )
        }
    }

    fn ev(vertex: u32, subtask: u32) -> ExecutionVertexId {
        ExecutionVertexId {
            vertex: JobVertexId(vertex),
            subtask,
        }
    }

    fn evs(vertex: u32, subtasks: Range<u32>) -> Vec<ExecutionVertexId> {
        subtasks.map(|s| ev(vertex, s)).collect()
    }

    #[test]
    fn keyed_count_job_from_scenarios_md() {
        let graph = JobGraph::from_spec(&keyed_count()).unwrap();
        assert_eq!(graph.name, "keyed-count");
        let names: Vec<_> = graph.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["Source: sequence", "Count -> Sink: two_phase_commit"]
        );
        let source = graph.vertex(JobVertexId(0));
        assert!(source.is_source);
        assert!(!source.has_sink);
        assert_eq!(
            source.operators,
            [OperatorInfo {
                kind: "source",
                name: "sequence".into()
            }]
        );
        let count = graph.vertex(JobVertexId(1));
        assert!(!count.is_source);
        assert!(count.has_sink);
        assert_eq!(
            count.operators,
            [
                OperatorInfo {
                    kind: "count",
                    name: "count".into()
                },
                OperatorInfo {
                    kind: "sink",
                    name: "two_phase_commit".into()
                },
            ]
        );
        for v in &graph.vertices {
            assert_eq!(v.parallelism, 4);
            assert_eq!(v.max_parallelism, 128);
        }
        assert_eq!(
            graph.edges,
            [JobEdge {
                source: JobVertexId(0),
                target: JobVertexId(1),
                partitioner: Partitioner::Hash { keys: 64 },
                pattern: DistributionPattern::AllToAll,
            }]
        );
        assert_eq!(graph.execution_vertices().len(), 8);
        let regions = graph.pipelined_regions();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].id, 0);
        assert_eq!(regions[0].vertices, graph.execution_vertices());
        // Every count subtask reads every source subtask and vice versa.
        assert_eq!(graph.inputs(ev(1, 1)), evs(0, 0..4));
        assert_eq!(graph.outputs(ev(0, 2)), evs(1, 0..4));
        assert!(graph.inputs(ev(0, 3)).is_empty());
        assert!(graph.outputs(ev(1, 0)).is_empty());
    }

    #[test]
    fn without_chaining_a_forward_job_has_a_vertex_per_operator_and_a_region_per_subtask_chain() {
        let job = JobSpec {
            chaining: false,
            ..spec(3, vec![op(OperatorKind::Map)], SinkKind::TwoPhaseCommit)
        };
        let graph = JobGraph::from_spec(&job).unwrap();
        let names: Vec<&str> = graph.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["Source: sequence", "Map", "Sink: two_phase_commit"]);
        assert_eq!(graph.edges.len(), 2);
        for edge in &graph.edges {
            assert_eq!(edge.partitioner, Partitioner::Forward);
            assert_eq!(edge.pattern, DistributionPattern::Pointwise);
        }
        // Subtask i feeds subtask i only, so each chain of subtasks is one region of three tasks.
        assert_eq!(graph.outputs(ev(0, 1)), [ev(1, 1)]);
        assert_eq!(graph.inputs(ev(2, 2)), [ev(1, 2)]);
        let regions = graph.pipelined_regions();
        assert_eq!(regions.len(), 3);
        for (index, region) in regions.iter().enumerate() {
            let i = index as u32;
            assert_eq!(region.vertices, [ev(0, i), ev(1, i), ev(2, i)]);
        }
    }

    fn two_sources(job: JobSpec) -> JobSpec {
        let second = SourceSpec {
            partitions: 5,
            ..job.source.clone()
        };
        JobSpec {
            more_sources: vec![second],
            ..job
        }
    }

    #[test]
    fn two_sources_are_vertices_of_their_own_feeding_the_union_of_the_first_operator() {
        // Forward into the map: each map subtask reads subtask i of both sources, and the map
        // (its input is a union) chains with neither.
        let job = two_sources(spec(
            3,
            vec![op(OperatorKind::Map)],
            SinkKind::TwoPhaseCommit,
        ));
        let graph = JobGraph::from_spec(&job).unwrap();
        let names: Vec<&str> = graph.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Source: sequence",
                "Source: sequence-2",
                "Map -> Sink: two_phase_commit"
            ]
        );
        assert_eq!(
            graph
                .vertices
                .iter()
                .map(|v| v.is_source)
                .collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(graph.find_vertex("sequence-2"), Some(JobVertexId(1)));
        assert_eq!(graph.edges.len(), 2);
        assert!(graph
            .edges
            .iter()
            .all(|e| e.target == JobVertexId(2) && e.partitioner == Partitioner::Forward));
        assert_eq!(graph.inputs(ev(2, 1)), [ev(0, 1), ev(1, 1)]);
        let regions = graph.pipelined_regions();
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[2].vertices, [ev(0, 2), ev(1, 2), ev(2, 2)]);
        // The source log numbers the second source's partitions after the first's.
        assert_eq!(job.source_partitions(0), 0..3);
        assert_eq!(job.source_partitions(1), 3..8);
        assert_eq!(job.total_partitions(), 8);

        // A keyBy: both sources feed every count subtask, one region.
        let job = two_sources(keyed_count());
        let graph = JobGraph::from_spec(&job).unwrap();
        assert_eq!(graph.vertices.len(), 3);
        assert!(graph
            .edges
            .iter()
            .all(|e| e.pattern == DistributionPattern::AllToAll));
        assert_eq!(graph.inputs(ev(2, 0)).len(), 8);
        assert_eq!(graph.pipelined_regions().len(), 1);
    }

    #[test]
    fn sources_must_hold_as_many_records_per_partition() {
        let mut job = two_sources(keyed_count());
        job.more_sources[0].records += 1;
        let err = JobGraph::from_spec(&job).unwrap_err();
        assert!(err.contains("sources[1] records 101 differ"), "{err}");
        let mut job = two_sources(keyed_count());
        job.more_sources[0].partitions = 0;
        let err = JobGraph::from_spec(&job).unwrap_err();
        assert_eq!(err, "sources[1] partitions must be at least 1");
    }

    #[test]
    fn one_source_jobs_keep_their_spec_hash_and_serialization() {
        // `more_sources` is left out when empty: ids derived from a one-source spec do not move.
        let job = keyed_count();
        let json = serde_json::to_string(&job).unwrap();
        assert!(!json.contains("more_sources"), "{json}");
        let two = two_sources(keyed_count());
        assert!(serde_json::to_string(&two)
            .unwrap()
            .contains("more_sources"));
        let hash = |j: &JobSpec| {
            use std::hash::{Hash, Hasher};
            let mut h = sim::StableHasher::new();
            j.hash(&mut h);
            h.finish()
        };
        assert_ne!(hash(&job), hash(&two));
    }

    #[test]
    fn forward_only_job_chains_into_one_vertex_with_a_region_per_subtask() {
        let graph =
            JobGraph::from_spec(&spec(3, vec![op(OperatorKind::Map)], SinkKind::Discard)).unwrap();
        assert_eq!(graph.vertices.len(), 1);
        assert!(graph.edges.is_empty());
        let v = &graph.vertices[0];
        assert_eq!(v.name, "Source: sequence -> Map -> Sink: discard");
        assert!(v.is_source);
        assert!(v.has_sink);
        assert_eq!(
            v.operators.iter().map(|o| o.kind).collect::<Vec<_>>(),
            ["source", "map", "sink"]
        );
        let regions = graph.pipelined_regions();
        assert_eq!(regions.len(), 3);
        for (index, region) in regions.iter().enumerate() {
            assert_eq!(region.id, index as u32);
            assert_eq!(region.vertices, [ev(0, index as u32)]);
            assert_eq!(graph.region_of(ev(0, index as u32)), index as u32);
        }
    }

    #[test]
    fn partitioner_and_chaining_table() {
        use OperatorKind::*;
        // (job parallelism, operators, sink parallelism, expected vertex names, expected edges)
        type Case = (
            u32,
            Vec<OperatorSpec>,
            Option<u32>,
            Vec<&'static str>,
            Vec<(u32, u32, Partitioner)>,
        );
        let cases: Vec<Case> = vec![
            // A map with a different parallelism: rebalance in, rebalance out (sink back at 4).
            (
                4,
                vec![op_with_parallelism(Map, 2)],
                None,
                vec!["Source: sequence", "Map", "Sink: at_least_once"],
                vec![
                    (0, 1, Partitioner::Rebalance),
                    (1, 2, Partitioner::Rebalance),
                ],
            ),
            // Explicit rebalance between equal parallelisms breaks the chain.
            (
                2,
                vec![op(Rebalance), op(Map)],
                None,
                vec!["Source: sequence", "Map -> Sink: at_least_once"],
                vec![(0, 1, Partitioner::Rebalance)],
            ),
            // Explicit forward between equal parallelisms chains.
            (
                2,
                vec![op(Forward), op(Map)],
                None,
                vec!["Source: sequence -> Map -> Sink: at_least_once"],
                vec![],
            ),
            // A trailing key_by applies to the sink edge.
            (
                2,
                vec![op(Map), op(KeyBy { keys: 8 })],
                None,
                vec!["Source: sequence -> Map", "Sink: at_least_once"],
                vec![(0, 1, Partitioner::Hash { keys: 8 })],
            ),
            // A trailing rebalance applies to the sink edge.
            (
                2,
                vec![op(Rebalance)],
                None,
                vec!["Source: sequence", "Sink: at_least_once"],
                vec![(0, 1, Partitioner::Rebalance)],
            ),
            // Sink parallelism differs: default partitioner is rebalance.
            (
                4,
                vec![op(KeyBy { keys: 8 }), op(Count), op(Map)],
                Some(1),
                vec!["Source: sequence", "Count -> Map", "Sink: at_least_once"],
                vec![
                    (0, 1, Partitioner::Hash { keys: 8 }),
                    (1, 2, Partitioner::Rebalance),
                ],
            ),
            // Two keyed counts need two key_bys.
            (
                2,
                vec![
                    op(KeyBy { keys: 8 }),
                    op(Count),
                    op(KeyBy { keys: 4 }),
                    op(Count),
                ],
                None,
                vec!["Source: sequence", "Count", "Count -> Sink: at_least_once"],
                vec![
                    (0, 1, Partitioner::Hash { keys: 8 }),
                    (1, 2, Partitioner::Hash { keys: 4 }),
                ],
            ),
        ];
        for (index, (parallelism, operators, sink_parallelism, names, edges)) in
            cases.into_iter().enumerate()
        {
            let mut job = spec(parallelism, operators, SinkKind::AtLeastOnce);
            job.sink.parallelism = sink_parallelism;
            let graph = JobGraph::from_spec(&job).unwrap_or_else(|e| panic!("case {index}: {e}"));
            let got_names: Vec<_> = graph.vertices.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(got_names, names, "case {index}");
            let got_edges: Vec<_> = graph
                .edges
                .iter()
                .map(|e| (e.source.0, e.target.0, e.partitioner))
                .collect();
            assert_eq!(got_edges, edges, "case {index}");
            // Unchained exchanges are never forward here, so every edge is all-to-all.
            assert!(
                graph
                    .edges
                    .iter()
                    .all(|e| e.pattern == DistributionPattern::AllToAll),
                "case {index}"
            );
            assert!(graph.vertices[0].is_source, "case {index}");
            assert!(graph.vertices.last().unwrap().has_sink, "case {index}");
            assert_eq!(
                graph.vertices.iter().filter(|v| v.has_sink).count(),
                1,
                "case {index}"
            );
            // Any all-to-all edge in a linear pipeline makes the whole job one region.
            let regions = graph.pipelined_regions();
            let expected_regions = if edges.is_empty() {
                parallelism as usize
            } else {
                1
            };
            assert_eq!(regions.len(), expected_regions, "case {index}");
        }
    }

    #[test]
    fn map_parallelism_shows_in_vertices() {
        let graph = JobGraph::from_spec(&spec(
            4,
            vec![op_with_parallelism(OperatorKind::Map, 2)],
            SinkKind::Discard,
        ))
        .unwrap();
        let parallelisms: Vec<_> = graph.vertices.iter().map(|v| v.parallelism).collect();
        assert_eq!(parallelisms, [4, 2, 4]);
        assert_eq!(graph.execution_vertices().len(), 10);
        assert_eq!(graph.inputs(ev(1, 1)), evs(0, 0..4));
        assert_eq!(graph.outputs(ev(1, 0)), evs(2, 0..4));
    }

    #[test]
    fn user_names_and_max_parallelism() {
        let mut job = spec(
            2,
            vec![
                OperatorSpec {
                    kind: OperatorKind::Map,
                    name: Some("parse".into()),
                    parallelism: None,
                },
                op(OperatorKind::KeyBy { keys: 3 }),
                OperatorSpec {
                    kind: OperatorKind::Count,
                    name: Some("tally".into()),
                    parallelism: None,
                },
            ],
            SinkKind::TwoPhaseCommit,
        );
        job.max_parallelism = Some(16);
        let graph = JobGraph::from_spec(&job).unwrap();
        let names: Vec<_> = graph.vertices.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Source: sequence -> parse",
                "tally -> Sink: two_phase_commit"
            ]
        );
        assert!(graph.vertices.iter().all(|v| v.max_parallelism == 16));
        // (query, expected vertex)
        let lookups = [
            ("source", Some(0)),
            ("sequence", Some(0)),
            ("map", Some(0)),
            ("parse", Some(0)),
            ("count", Some(1)),
            ("tally", Some(1)),
            ("sink", Some(1)),
            ("two_phase_commit", Some(1)),
            ("Map", None),
            ("key_by", None),
            ("", None),
        ];
        for (query, expected) in lookups {
            assert_eq!(
                graph.find_vertex(query),
                expected.map(JobVertexId),
                "{query:?}"
            );
        }
    }

    #[test]
    fn find_vertex_returns_the_first_match() {
        use OperatorKind::*;
        let graph = JobGraph::from_spec(&spec(
            2,
            vec![
                op(Map),
                op(KeyBy { keys: 2 }),
                op(Count),
                op(Rebalance),
                op(Map),
            ],
            SinkKind::Discard,
        ))
        .unwrap();
        assert_eq!(graph.vertices.len(), 3);
        assert_eq!(graph.find_vertex("map"), Some(JobVertexId(0)));
        assert_eq!(graph.find_vertex("count"), Some(JobVertexId(1)));
        assert_eq!(graph.find_vertex("discard"), Some(JobVertexId(2)));
    }

    #[test]
    fn invalid_specs_are_rejected_with_a_reason() {
        use OperatorKind::*;
        let base = || spec(4, vec![op(Map)], SinkKind::Discard);
        // (mutation, a fragment the error must contain)
        type Mutation = Box<dyn Fn(&mut JobSpec)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|j| j.parallelism = 0), "job parallelism 0"),
            (
                Box::new(|j| j.parallelism = 40_000),
                "job parallelism 40000",
            ),
            (
                Box::new(|j| j.max_parallelism = Some(0)),
                "max_parallelism 0",
            ),
            (
                Box::new(|j| j.max_parallelism = Some(32_769)),
                "max_parallelism 32769",
            ),
            (
                Box::new(|j| j.max_parallelism = Some(2)),
                "exceeds max_parallelism 2",
            ),
            (Box::new(|j| j.source.partitions = 0), "partitions"),
            (Box::new(|j| j.source.rate_per_sec = Some(0)), "rate"),
            (
                Box::new(|j| j.operators = vec![op(Count)]),
                "operators[0] (count) needs a key_by",
            ),
            (
                Box::new(|j| j.operators = vec![op(KeyBy { keys: 2 }), op(Map), op(Count)]),
                "operators[2] (count) needs a key_by",
            ),
            (
                Box::new(|j| j.operators = vec![op(KeyBy { keys: 0 }), op(Count)]),
                "keys must be at least 1",
            ),
            (
                Box::new(|j| j.operators = vec![op(KeyBy { keys: 2 }), op(Rebalance), op(Map)]),
                "two partitioners in a row",
            ),
            (
                Box::new(|j| j.operators = vec![op(Forward), op(Forward)]),
                "two partitioners in a row",
            ),
            (
                Box::new(|j| j.operators = vec![op(Forward), op_with_parallelism(Map, 2)]),
                "forward needs equal parallelism",
            ),
            (
                Box::new(|j| {
                    j.operators = vec![op(Forward)];
                    j.sink.parallelism = Some(1);
                }),
                "the sink: forward needs equal parallelism",
            ),
            (
                Box::new(|j| j.operators = vec![op_with_parallelism(Map, 0)]),
                "parallelism must be at least 1",
            ),
            (
                Box::new(|j| j.operators = vec![op_with_parallelism(Map, 129)]),
                "parallelism 129 exceeds max_parallelism 128",
            ),
            (
                Box::new(|j| j.sink.parallelism = Some(0)),
                "the sink: parallelism must be at least 1",
            ),
            (
                Box::new(|j| j.operators = vec![op_with_parallelism(Rebalance, 2), op(Map)]),
                "takes no parallelism",
            ),
            (
                Box::new(|j| {
                    j.operators = vec![OperatorSpec {
                        kind: KeyBy { keys: 1 },
                        name: Some("k".into()),
                        parallelism: None,
                    }]
                }),
                "takes no name",
            ),
            (
                Box::new(|j| {
                    j.operators = vec![OperatorSpec {
                        kind: Map,
                        name: Some(String::new()),
                        parallelism: None,
                    }]
                }),
                "name must not be empty",
            ),
        ];
        assert!(JobGraph::from_spec(&base()).is_ok());
        for (index, (mutate, fragment)) in cases.iter().enumerate() {
            let mut job = base();
            mutate(&mut job);
            let error = JobGraph::from_spec(&job).expect_err(&format!("case {index} must fail"));
            assert!(
                error.contains(fragment),
                "case {index}: {error:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn default_max_parallelism_table() {
        let table = [
            (1, 128),
            (4, 128),
            (85, 128),
            (86, 256),
            (100, 256),
            (171, 256),
            (172, 512),
            (1000, 2048),
            (20_000, 32_768),
            (21_846, 32_768),
            (32_768, 32_768),
        ];
        for (parallelism, expected) in table {
            assert_eq!(
                default_max_parallelism(parallelism),
                expected,
                "p = {parallelism}"
            );
        }
    }

    #[test]
    fn key_group_range_table() {
        // (maxP, p, subtask, start, end)
        let table = [
            (128, 4, 0, 0, 31),
            (128, 4, 3, 96, 127),
            (10, 3, 0, 0, 3),
            (10, 3, 1, 4, 6),
            (10, 3, 2, 7, 9),
            (7, 7, 5, 5, 5),
            (1, 1, 0, 0, 0),
            (32_768, 3, 2, 21_846, 32_767),
        ];
        for (max_parallelism, parallelism, subtask, start, end) in table {
            assert_eq!(
                key_group_range(max_parallelism, parallelism, subtask),
                start..=end,
                "({max_parallelism}, {parallelism}, {subtask})"
            );
        }
    }

    #[test]
    fn key_group_ranges_partition_all_key_groups() {
        let mut max_parallelisms: Vec<u32> = (1..=130).collect();
        max_parallelisms.extend([256, 1000, 4096, 32_767, 32_768]);
        for &max_parallelism in &max_parallelisms {
            let mut parallelisms: Vec<u32> = (1..=max_parallelism.min(70)).collect();
            parallelisms.extend([max_parallelism / 2, max_parallelism - 1, max_parallelism]);
            parallelisms.retain(|&p| p >= 1);
            for &parallelism in &parallelisms {
                let mut next = 0;
                for subtask in 0..parallelism {
                    let range = key_group_range(max_parallelism, parallelism, subtask);
                    assert_eq!(
                        *range.start(),
                        next,
                        "({max_parallelism}, {parallelism}, {subtask})"
                    );
                    assert!(range.start() <= range.end());
                    next = range.end() + 1;
                }
                assert_eq!(next, max_parallelism, "({max_parallelism}, {parallelism})");
                // Routing agrees with ownership; checking the range ends is enough since ranges
                // are contiguous and routing is monotone.
                for subtask in 0..parallelism {
                    let range = key_group_range(max_parallelism, parallelism, subtask);
                    for key_group in [*range.start(), *range.end()] {
                        assert_eq!(
                            operator_index_for_key_group(max_parallelism, parallelism, key_group),
                            subtask,
                            "({max_parallelism}, {parallelism}, kg {key_group})"
                        );
                    }
                }
            }
        }
        // Exhaustively for small sizes.
        for max_parallelism in 1..=64 {
            for parallelism in 1..=max_parallelism {
                for key_group in 0..max_parallelism {
                    let owner =
                        operator_index_for_key_group(max_parallelism, parallelism, key_group);
                    assert!(
                        key_group_range(max_parallelism, parallelism, owner).contains(&key_group)
                    );
                }
            }
        }
    }

    #[test]
    fn key_group_for_key_is_fixed_and_spreads_keys() {
        // Pinned: a change here changes every keyed scenario's routing.
        assert_eq!(key_group_for_key(0, 128), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(
            key_group_for_key(1, 128),
            (0xb456_bcfc_34c2_cb2c_u64 % 128) as u32
        );
        for max_parallelism in [1, 2, 7, 128, 32_768] {
            for key in 0..1000 {
                let key_group = key_group_for_key(key, max_parallelism);
                assert!(key_group < max_parallelism);
                assert_eq!(key_group, key_group_for_key(key, max_parallelism));
            }
        }
        // 64 000 consecutive keys over 128 key groups: each within ±25 % of the mean of 500.
        let mut counts = [0u32; 128];
        for key in 0..64_000 {
            counts[key_group_for_key(key, 128) as usize] += 1;
        }
        for (key_group, &count) in counts.iter().enumerate() {
            assert!(
                (375..=625).contains(&count),
                "key group {key_group}: {count}"
            );
        }
    }

    #[test]
    fn pointwise_links_are_symmetric_and_cover_both_sides() {
        for source_parallelism in 1..=12 {
            for target_parallelism in 1..=12 {
                let mut consumed = vec![0u32; source_parallelism as usize];
                for j in 0..target_parallelism {
                    for i in pointwise_producers(source_parallelism, target_parallelism, j) {
                        consumed[i as usize] += 1;
                        assert!(
                            pointwise_consumers(source_parallelism, target_parallelism, i)
                                .contains(&j)
                        );
                    }
                }
                for i in 0..source_parallelism {
                    for j in pointwise_consumers(source_parallelism, target_parallelism, i) {
                        assert!(
                            pointwise_producers(source_parallelism, target_parallelism, j)
                                .contains(&i)
                        );
                    }
                    // Each partition has exactly one consumer group: with more producers, one
                    // consumer; with fewer, every consumer it feeds reads only it.
                    if source_parallelism >= target_parallelism {
                        assert_eq!(
                            consumed[i as usize], 1,
                            "{source_parallelism} -> {target_parallelism}"
                        );
                    } else {
                        assert!(consumed[i as usize] >= 1);
                    }
                }
            }
        }
        // Equal parallelism is one-to-one.
        for subtask in 0..5 {
            assert_eq!(pointwise_producers(5, 5, subtask), subtask..subtask + 1);
            assert_eq!(pointwise_consumers(5, 5, subtask), subtask..subtask + 1);
        }
    }

    /// A hand-built graph with pointwise exchanges (the spec language cannot make one, since a
    /// forward exchange always chains): A(4) → B(2) → C(4).
    fn pointwise_graph() -> JobGraph {
        let vertex = |id: u32, parallelism: u32| JobVertex {
            id: JobVertexId(id),
            name: format!("v{id}"),
            operators: vec![OperatorInfo {
                kind: "map",
                name: format!("v{id}"),
            }],
            parallelism,
            max_parallelism: 128,
            is_source: id == 0,
            has_sink: id == 2,
        };
        let edge = |source: u32, target: u32| JobEdge {
            source: JobVertexId(source),
            target: JobVertexId(target),
            partitioner: Partitioner::Forward,
            pattern: DistributionPattern::Pointwise,
        };
        let graph = JobGraph {
            name: "pointwise".into(),
            vertices: vec![vertex(0, 4), vertex(1, 2), vertex(2, 4)],
            edges: vec![edge(0, 1), edge(1, 2)],
        };
        graph.check();
        graph
    }

    #[test]
    fn pointwise_exchanges_make_one_region_per_connected_block() {
        let graph = pointwise_graph();
        assert_eq!(graph.inputs(ev(1, 0)), evs(0, 0..2));
        assert_eq!(graph.inputs(ev(1, 1)), evs(0, 2..4));
        assert_eq!(graph.outputs(ev(0, 3)), [ev(1, 1)]);
        assert_eq!(graph.outputs(ev(1, 0)), evs(2, 0..2));
        assert_eq!(graph.inputs(ev(2, 3)), [ev(1, 1)]);
        let regions = graph.pipelined_regions();
        let expected = vec![
            PipelinedRegion {
                id: 0,
                vertices: vec![ev(0, 0), ev(0, 1), ev(1, 0), ev(2, 0), ev(2, 1)],
            },
            PipelinedRegion {
                id: 1,
                vertices: vec![ev(0, 2), ev(0, 3), ev(1, 1), ev(2, 2), ev(2, 3)],
            },
        ];
        assert_eq!(regions, expected);
        for region in &regions {
            for &v in &region.vertices {
                assert_eq!(graph.region_of(v), region.id);
            }
        }
    }

    #[test]
    fn regions_are_closed_under_inputs_and_outputs() {
        use OperatorKind::*;
        let graphs = [
            JobGraph::from_spec(&keyed_count()).unwrap(),
            JobGraph::from_spec(&spec(5, vec![op(Map)], SinkKind::Discard)).unwrap(),
            JobGraph::from_spec(&spec(
                3,
                vec![
                    op_with_parallelism(Map, 2),
                    op(Forward),
                    op_with_parallelism(Map, 2),
                ],
                SinkKind::Discard,
            ))
            .unwrap(),
            pointwise_graph(),
        ];
        for graph in &graphs {
            let regions = graph.pipelined_regions();
            let members: usize = regions.iter().map(|r| r.vertices.len()).sum();
            assert_eq!(members, graph.execution_vertices().len(), "{}", graph.name);
            // Ids follow the smallest member.
            assert!(regions
                .windows(2)
                .all(|w| w[0].vertices[0] < w[1].vertices[0]));
            for region in &regions {
                for &v in &region.vertices {
                    for neighbour in graph.inputs(v).into_iter().chain(graph.outputs(v)) {
                        assert_eq!(
                            graph.region_of(neighbour),
                            region.id,
                            "{}: {v:?} ~ {neighbour:?}",
                            graph.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn execution_vertices_are_in_vertex_then_subtask_order() {
        let graph = JobGraph::from_spec(&spec(
            2,
            vec![op_with_parallelism(OperatorKind::Map, 3)],
            SinkKind::Discard,
        ))
        .unwrap();
        let expected: Vec<_> = evs(0, 0..2)
            .into_iter()
            .chain(evs(1, 0..3))
            .chain(evs(2, 0..2))
            .collect();
        let got = graph.execution_vertices();
        assert_eq!(got, expected);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
}
