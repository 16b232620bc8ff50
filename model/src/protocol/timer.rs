//! What a timer carries back to its process when it fires: one variant per kind of timer, named
//! after the Flink mechanism that arms it.

use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId};
use serde::Serialize;
use sim::NodeId;

/// What a timer of a process carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Timer {
    /// A heartbeat sender's interval loop (`job` for per-job pairs).
    HeartbeatTick {
        pair: HeartbeatPair,
        job: Option<JobId>,
    },
    /// A heartbeat monitor's timeout for `target`; `sender` tells which side's monitor it is
    /// (the RM and a JobMaster share a process and monitor each other).
    HeartbeatTimeout {
        pair: HeartbeatPair,
        job: Option<JobId>,
        sender: bool,
        target: NodeId,
    },
    RegistrationAttemptTimeout {
        target: RegistrationTarget,
        attempt_id: u64,
    },
    RegistrationRetry {
        target: RegistrationTarget,
        attempt_id: u64,
    },
    /// `taskmanager.registration.timeout`.
    TaskExecutorRegistrationTimeout,
    /// The ask timeout of the initial `sendSlotReport` of registration `instance_id`.
    SlotReportTimeout { instance_id: u64 },

    // ---- TaskExecutor ----
    /// `taskmanager.slot.timeout` of an allocated, inactive slot (`ticket` tells stale arms).
    SlotTimeout {
        allocation_id: AllocationId,
        ticket: u64,
    },
    /// The next step of a task's lifecycle (initialisation done, input exhausted, cancelled).
    TaskStep { attempt: ExecutionAttemptId },
    /// A task's data-plane resend tick.
    TaskTick { attempt: ExecutionAttemptId },
    /// Retry a partition request that found no producer yet.
    PartitionRequestRetry {
        consumer: ExecutionAttemptId,
        producer: ExecutionAttemptId,
    },
    /// The ask timeout of an `offerSlots` call.
    OfferSlotsTimeout { job_id: JobId, offer_id: u64 },
    /// The ask timeout of an `updateTaskExecutionState` call.
    UpdateTaskStateTimeout { attempt: ExecutionAttemptId },

    // ---- JobMaster ----
    /// The restart backoff of a failover has passed (`version` detects superseded restarts).
    RestartDelay { job_id: JobId, version: u64 },
    /// `slot.request.timeout` for the slot requests of a job.
    SlotRequestTimeout { job_id: JobId, version: u64 },
    /// The periodic idle-slot check (`slot.idle.timeout`).
    SlotIdleCheck { job_id: JobId },
    /// Re-send `declareRequiredResources` until acknowledged.
    DeclareResourcesRetry { job_id: JobId, version: u64 },
    /// The ask timeout of a `submitTask` call.
    SubmitTaskTimeout {
        job_id: JobId,
        attempt: ExecutionAttemptId,
    },
    /// The CheckpointCoordinator's periodic trigger (`version` detects a stopped scheduler).
    CheckpointTrigger { job_id: JobId, version: u64 },
    /// `execution.checkpointing.timeout` of a pending checkpoint.
    CheckpointTimeout { job_id: JobId, checkpoint_id: u64 },
    /// Re-send `cancelTask` until the task reports a terminal state.
    CancelTaskRetry {
        job_id: JobId,
        attempt: ExecutionAttemptId,
    },

    // ---- ResourceManager ----
    /// `slotmanager.requirement-check.delay` passed: check requirements.
    RequirementCheck,
    /// The ask timeout of a `requestSlot` call.
    RequestSlotTimeout { allocation_id: AllocationId },
    /// The periodic idle-TaskManager check (`resourcemanager.taskmanager-timeout`).
    TaskManagerIdleCheck,

    // ---- Client ----
    /// Time to submit the job, or to retry the submission.
    SubmitJob,

    // ---- high availability ----
    /// A ZooKeeper client's tick (pings, re-sends, connection-state checks).
    HaTick,
    /// The `ha` node's next session expiry.
    HaExpiry,
}

/// Which pair of endpoints a heartbeat manager serves (one manager per pair on an endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum HeartbeatPair {
    /// ResourceManager (sender) ↔ TaskExecutor (receiver).
    ResourceManagerTaskExecutor,
    /// JobMaster (sender) ↔ TaskExecutor (receiver), one pair per job.
    JobMasterTaskExecutor,
    /// ResourceManager (sender) ↔ JobMaster (receiver), one pair per job.
    ResourceManagerJobMaster,
}

/// What a registration is for (timer tags carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RegistrationTarget {
    /// A TaskExecutor at the ResourceManager.
    ResourceManager,
    /// A TaskExecutor at the JobMaster of a job (the "job leader" connection).
    JobMaster(JobId),
    /// The JobMaster of a job at the ResourceManager.
    ResourceManagerForJob(JobId),
}
