//! Observations: what endpoints report about themselves for oracles and reports.
//!
//! An observation is a claim by the model ("I declared taskmanager-2 lost", "execution X is now
//! RUNNING"); oracles check such claims against their own ground truth built from the kernel's
//! events (deliveries, faults) and against each other (the JobMaster's view against the
//! TaskExecutors').

use crate::protocol::checkpoint::{CheckpointId, Recs, StateDigest, StateHandleId, TxnId};
use crate::protocol::ids::{
    AllocationId, ExecutionAttemptId, InstanceId, JobId, JobMasterId, SlotId,
};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::states::{ExecutionState, JobStatus, SlotState};
use serde::{Deserialize, Serialize};
// A Cow hashes and prints as the str it holds, and unlike a `&'static str` it deserializes.
use sim::NodeId;
use std::borrow::Cow;

/// An RPC endpoint, identified by the process that hosts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    ResourceManager(NodeId),
    TaskExecutor(NodeId),
    JobMaster(NodeId, JobId),
}

impl Endpoint {
    pub fn node(self) -> NodeId {
        match self {
            Endpoint::ResourceManager(n)
            | Endpoint::TaskExecutor(n)
            | Endpoint::JobMaster(n, _) => n,
        }
    }
}

/// How a heartbeat target was lost (docs/scenarios.md `taskmanagers_lost[].cause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LossCause {
    HeartbeatTimeout,
    /// `heartbeat.rpc-failure-threshold` consecutive heartbeat RPCs found the target down.
    Unreachable,
    /// The other side closed the connection explicitly.
    Disconnect,
    ConnectionLost,
}

impl LossCause {
    pub fn name(self) -> &'static str {
        match self {
            LossCause::HeartbeatTimeout => "heartbeat-timeout",
            LossCause::Unreachable => "unreachable",
            LossCause::Disconnect => "disconnect",
            LossCause::ConnectionLost => "connection-lost",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Obs {
    // ---- heartbeats and registration (RM <-> TE) ----
    /// `observer` armed a heartbeat monitor for `target`.
    HeartbeatMonitorStarted {
        observer: Endpoint,
        target: Endpoint,
    },
    /// `observer` stopped monitoring `target` (unmonitor, loss or shutdown).
    HeartbeatMonitorStopped {
        observer: Endpoint,
        target: Endpoint,
    },
    /// `observer` declared `target` lost and closed its connection.
    TargetLost {
        observer: Endpoint,
        target: Endpoint,
        cause: LossCause,
    },
    /// The RM accepted a TaskExecutor registration.
    TaskExecutorRegistered {
        task_executor: NodeId,
        instance_id: InstanceId,
    },
    /// The RM registered the TaskExecutor's slots (after its first slot report).
    SlotsRegistered {
        task_executor: NodeId,
        instance_id: InstanceId,
        slots: u32,
    },
    /// The RM dropped a TaskExecutor registration.
    TaskExecutorUnregistered {
        task_executor: NodeId,
        instance_id: InstanceId,
    },
    /// The RM declined a `registerTaskExecutor` call whose connection back to the TE completed
    /// after a newer call of the same TE (Flink's "outdated TaskExecutorGateway connection").
    /// `newer_registered`: no newer call is still connecting (the newest one registered).
    OutdatedConnectionDeclined {
        task_executor: NodeId,
        newer_registered: bool,
    },
    /// The TE started a registration attempt at the RM.
    RegistrationAttempt { attempt: u32, timeout_ms: u64 },
    /// The TE is connected to the RM under `instance_id`.
    ResourceManagerConnected {
        resource_manager: NodeId,
        instance_id: InstanceId,
    },
    /// The TE closed its RM connection.
    ResourceManagerDisconnected { resource_manager: NodeId },
    /// The TE could not register within `taskmanager.registration.timeout` and terminates.
    RegistrationTimedOut,

    // ---- Dispatcher and client ----
    /// The Dispatcher accepted a job and started its JobMaster.
    JobSubmitted { job_id: JobId },
    /// The Dispatcher rejected a submission of a job it already runs or ran.
    JobSubmissionRejected { job_id: JobId },
    /// The client learnt that its submission was accepted (or was a duplicate).
    JobSubmissionAcknowledged { job_id: JobId, duplicate: bool },

    // ---- JobMaster ----
    /// The JobMaster's `JobStatus` changed (`from` is `None` for the first status).
    JobStatusChanged {
        job_id: JobId,
        job_master_id: JobMasterId,
        from: Option<JobStatus>,
        to: JobStatus,
    },
    /// A new Execution (attempt) of a vertex of job `job_id` was created, in CREATED.
    ExecutionCreated {
        job_id: JobId,
        attempt: ExecutionAttemptId,
    },
    /// The JobMaster's view of an Execution changed.
    ExecutionStateChanged {
        attempt: ExecutionAttemptId,
        from: ExecutionState,
        to: ExecutionState,
    },
    /// The JobMaster deployed an Execution into a slot (before `submitTask`).
    ExecutionDeployed {
        attempt: ExecutionAttemptId,
        task_manager: NodeId,
        allocation_id: AllocationId,
    },
    /// The failover strategy decided to restart `vertices` execution vertices after `backoff_ms`.
    RestartScheduled {
        job_id: JobId,
        vertices: u32,
        backoff_ms: u64,
        global: bool,
    },
    /// The restart strategy refused another restart: the job fails.
    RestartRefused { job_id: JobId },
    /// The JobMaster accepted slot offers from a TaskExecutor into its slot pool.
    SlotsAccepted {
        job_id: JobId,
        task_manager: NodeId,
        allocations: Vec<AllocationId>,
    },
    /// The JobMaster released a slot from its pool (freeSlot sent, or its TaskManager lost).
    SlotReleased {
        job_id: JobId,
        task_manager: NodeId,
        allocation_id: AllocationId,
    },

    // ---- ResourceManager's SlotManager ----
    /// The SlotManager allocated a slot for a job and sent `requestSlot`.
    SlotRequested {
        slot_id: SlotId,
        allocation_id: AllocationId,
        job_id: JobId,
    },
    /// The SlotManager's state of a slot changed, or the slot was registered (FREE, on its
    /// TaskExecutor's first slot report): `instance_id` is the registration the slot belongs to.
    /// A TaskExecutor's slots leave with its registration (`TaskExecutorUnregistered`).
    SlotStateChanged {
        slot_id: SlotId,
        instance_id: InstanceId,
        state: SlotState,
    },
    /// The active ResourceManager asked the orchestrator for a new TaskManager.
    TaskManagerRequested { task_manager: NodeId },
    /// The active ResourceManager released an idle TaskManager.
    TaskManagerReleased { task_manager: NodeId },

    // ---- TaskExecutor ----
    /// A slot of this TE was allocated (ALLOCATED, not yet accepted by the JobMaster).
    SlotAllocated {
        slot_index: u32,
        allocation_id: AllocationId,
        job_id: JobId,
    },
    /// The JobMaster accepted the slot: ACTIVE.
    SlotActivated { allocation_id: AllocationId },
    /// The slot went back to ALLOCATED (its JobMaster was lost).
    SlotDeactivated { allocation_id: AllocationId },
    /// The slot was freed.
    SlotFreed {
        slot_index: u32,
        allocation_id: AllocationId,
    },
    /// The TaskExecutor's `Task` changed state (`from` is `None` when the task is created).
    TaskStateChanged {
        attempt: ExecutionAttemptId,
        allocation_id: AllocationId,
        from: Option<ExecutionState>,
        to: ExecutionState,
    },
    /// The TE is connected to the JobMaster of `job_id`.
    JobManagerConnected {
        job_id: JobId,
        job_master_id: JobMasterId,
    },
    /// The TE closed its connection to the JobMaster of `job_id`.
    JobManagerDisconnected { job_id: JobId },

    // ---- checkpointing (JobMaster's CheckpointCoordinator) ----
    /// A checkpoint was triggered: `tasks` are the attempts it waits for (all of them ack or it
    /// fails), `triggered` those sent `triggerCheckpoint`.
    CheckpointTriggered {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        tasks: Vec<ExecutionAttemptId>,
        triggered: Vec<ExecutionAttemptId>,
    },
    /// The coordinator completed a checkpoint: `handles` are the task states it consists of;
    /// `finished` the execution vertices that had already FINISHED (FLIP-147: they restore as
    /// finished, with no state).
    CheckpointCompleted {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        handles: Vec<StateHandleId>,
        finished: Vec<ExecutionVertexId>,
    },
    /// The coordinator aborted a pending checkpoint (Flink's `CheckpointFailureReason`).
    CheckpointAborted {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        reason: Cow<'static, str>,
    },
    /// A failover (or the first start with a retained checkpoint) restores `vertices` from
    /// `checkpoint_id` (`None`: no completed checkpoint, from the start).
    RestoreDecided {
        job_id: JobId,
        checkpoint_id: Option<CheckpointId>,
        vertices: u32,
        global: bool,
    },

    // ---- checkpointing (TaskExecutor's tasks) ----
    /// A task took its snapshot of `checkpoint_id` at the barrier: `state` is what it really
    /// held then (the ground truth a restore is compared with).
    SnapshotTaken {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        attempt: ExecutionAttemptId,
        state: StateDigest,
    },
    /// A task restored its state from `checkpoint_id`: `state` is what it restored.
    StateRestored {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        attempt: ExecutionAttemptId,
        state: StateDigest,
    },

    // ---- external systems ----
    /// `checkpoint-storage` stored a state handle durably.
    StateStored { handle: StateHandleId },
    /// `checkpoint-storage` deleted a state handle.
    StateDiscarded { handle: StateHandleId },
    /// The `sink` opened a transaction (its first write).
    TransactionBegun { txn: TxnId },
    /// The `sink` marked a transaction pre-committed for `checkpoint_id`.
    TransactionPreCommitted {
        txn: TxnId,
        checkpoint_id: CheckpointId,
    },
    /// The `sink` committed a transaction for the first time: its `records` became the job's
    /// visible output. `checkpoint_id` is the checkpoint it was pre-committed for (`None`: a
    /// commit at end of input without checkpointing).
    TransactionCommitted {
        txn: TxnId,
        checkpoint_id: Option<CheckpointId>,
        records: Recs,
    },
    /// The `sink` aborted a transaction: its records are discarded.
    TransactionAborted { txn: TxnId },
    /// The `sink` could not commit a transaction it had aborted before: its records are lost.
    CommitOfAbortedTransaction { txn: TxnId },
    /// The `sink` appended records outside any transaction (the `at_least_once` sink).
    RecordsWritten { job_id: JobId, records: Recs },

    // ---- high availability ----
    /// The `ha` node's latch leader changed (the owner of the lowest latch node): the store's
    /// truth of who leads, by leader session id (`None`: no contender).
    HaLeader {
        leader_session_id: Option<u64>,
        node: Option<NodeId>,
    },
    /// A JobManager process was granted leadership (its components start with this token).
    LeadershipGranted { leader_session_id: u64 },
    /// A JobManager process lost leadership (its components stopped).
    LeadershipRevoked { leader_session_id: u64 },
    /// A new leader recovered a job from the ExecutionPlanStore, restoring `checkpoint_id`, the
    /// newest pointer in the CompletedCheckpointStore (`None`: none).
    JobRecovered {
        job_id: JobId,
        leader_session_id: u64,
        checkpoint_id: Option<CheckpointId>,
    },
    /// The Dispatcher found a job result in the JobResultStore and did not run the job.
    JobResultFound { job_id: JobId, status: JobStatus },
    /// A fenced call took effect at a TaskExecutor (`requestSlot`, `submitTask`) with the
    /// leader session id it carried (HA only).
    FencedCallAccepted { call: Cow<'static, str>, token: u64 },
    /// A checkpoint pointer was added to the CompletedCheckpointStore by the leader `token`.
    CheckpointPointerAdded {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        token: u64,
    },
    /// The `ha` node stored a checkpoint pointer in a job's CompletedCheckpointStore: from now
    /// on a new leader may restore it, so it counts as completed even if the JobMaster that
    /// wrote it never learnt so (the store's truth, traced by the `ha` node).
    CheckpointPointerStored {
        job_id: JobId,
        checkpoint_id: CheckpointId,
        handles: Vec<StateHandleId>,
        finished: Vec<ExecutionVertexId>,
    },
    /// The `ha` node deleted a checkpoint pointer from a job's CompletedCheckpointStore (a
    /// subsumed checkpoint): from now on no new leader can restore it (the store's truth).
    CheckpointPointerRemoved {
        job_id: JobId,
        checkpoint_id: CheckpointId,
    },
    /// The `ha` node stored a job's entry in the JobResultStore: from now on the job is
    /// globally terminal for every leader (the store's truth, traced by the `ha` node).
    JobResultStored { job_id: JobId, status: JobStatus },
    /// A TaskExecutor's ZooKeeper connection changed state (Curator's `ConnectionState`:
    /// `CONNECTED`, `SUSPENDED`, `LOST`), as its leader retrieval sees it.
    HaConnectionChanged { state: Cow<'static, str> },
    /// A TaskExecutor refused a fenced call (`requestSlot`, `submitTask`) because its token is
    /// not the leader session it knows (traced with high availability only).
    FencedCallRejected { call: Cow<'static, str>, token: u64 },
}
