//! Flink's identifiers, as plain values. Fresh ids (allocation ids, instance ids, fencing tokens)
//! are drawn from the owning node's random stream, so they are reproducible by seed.

use crate::protocol::job_graph::ExecutionVertexId;
use serde::{Deserialize, Serialize};
use sim::NodeId;

/// Flink's `JobID`.
pub type JobId = u64;
/// Flink's `JobMasterId`: the fencing token of one JobMaster instance (leader session).
pub type JobMasterId = u64;
/// Flink's `ResourceManagerId`: the leader session of a ResourceManager.
pub type ResourceManagerId = u64;
/// Flink's `InstanceID`: a fresh id per TaskExecutor registration at a ResourceManager.
pub type InstanceId = u64;
/// Flink's `AllocationID`: minted by the SlotManager per slot allocation.
pub type AllocationId = u64;

/// Flink's `ExecutionAttemptID`: (ExecutionGraphID, ExecutionVertexID, attemptNumber). The graph
/// id is fresh per JobMaster instance, so attempts of an old JobMaster never match a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecutionAttemptId {
    pub graph: u64,
    pub vertex: ExecutionVertexId,
    pub attempt: u32,
}

/// Flink's `SlotID`: (TaskExecutor ResourceID, slot index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotId {
    pub task_manager: NodeId,
    pub slot_index: u32,
}
