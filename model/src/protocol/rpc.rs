//! The RPC messages between Flink endpoints, named after Flink's gateway methods.
//!
//! Flink's RPCs are asynchronous asks: a request message and, where the method returns a value,
//! a separate response message. Each variant below is one of the two. Which endpoint a message is
//! for follows from the variant (the gateway), so a process routes it to the endpoint it hosts.
//! The data plane (end of partition between tasks) travels as TaskExecutor-to-TaskExecutor
//! messages on the same simulated network.

use crate::protocol::checkpoint::{
    CheckpointId, CheckpointingMode, Recs, StateHandleId, StreamElement, TaskRestore,
    TaskStateSnapshot, TxnId,
};
use crate::protocol::ha::{HaReply, HaRequest};
use crate::protocol::ids::{
    AllocationId, ExecutionAttemptId, InstanceId, JobId, JobMasterId, ResourceManagerId, SlotId,
};
use crate::protocol::job_graph::SinkKind;
use crate::protocol::job_graph::{JobSpec, Partitioner};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::RegistrationTarget;
use serde::Serialize;
use sim::{Message, NodeId};
use std::sync::Arc;

/// Flink's `SlotStatus` in a `SlotReport`: a slot index and, once allocated, its allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SlotStatus {
    pub slot_index: u32,
    pub allocation: Option<(AllocationId, JobId)>,
}

/// Flink's `SlotReport`.
pub type SlotReport = Vec<SlotStatus>;

/// Flink's `TaskExecutorRegistration` (the fields a model needs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TaskExecutorRegistration {
    pub resource_id: NodeId,
    /// A fresh id per TaskExecutor process start (Flink's TM session id).
    pub session_id: u64,
    pub number_of_slots: u32,
}

/// Flink's `RegistrationResponse` subtypes for a TaskExecutor at the ResourceManager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RegistrationResponse {
    Success {
        instance_id: InstanceId,
        resource_manager_id: ResourceManagerId,
    },
    /// Declined: retry after the refused-registration delay.
    Failure { reason: String },
    /// Terminal.
    Rejection { reason: String },
}

/// Why a connection was closed, as carried by `disconnect*` RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DisconnectCause {
    HeartbeatTimeout,
    Unreachable,
    /// The other side asked to reconnect or shut down the connection.
    Reconnect,
    /// The job reached a terminal state and its JobMaster shut down.
    JobFinished,
}

/// Flink's `SlotOffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SlotOffer {
    pub allocation_id: AllocationId,
    pub slot_index: u32,
}

/// Where a source subtask reads: its partitions of the replayable log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SourceAssignment {
    /// The `source` node: the replayable log (like Kafka's bootstrap servers in the job config).
    pub log: NodeId,
    pub partitions: Vec<u32>,
    pub records_per_partition: u64,
    /// Records per second per partition; `None` = unthrottled.
    pub rate_per_sec: Option<u64>,
}

/// One input channel of a task: the producer attempt and the TaskExecutor it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct InputChannel {
    pub producer: ExecutionAttemptId,
    pub task_manager: NodeId,
}

/// Flink's `TaskDeploymentDescriptor` (the fields a model needs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TaskDeploymentDescriptor {
    pub job_id: JobId,
    pub attempt: ExecutionAttemptId,
    pub allocation_id: AllocationId,
    /// "Source: sequence -> Map (2/4)#1", for traces.
    pub task_name: String,
    /// Set for source subtasks.
    pub source: Option<SourceAssignment>,
    /// Empty for sources.
    pub inputs: Vec<InputChannel>,
    /// What the task computes and where its output goes.
    pub stream: Arc<StreamConfig>,
    /// The subtask index (0-based) of this execution vertex.
    pub subtask: u32,
    /// Set when the execution restores from a completed checkpoint.
    pub restore: Option<TaskRestore>,
}

/// One operator of a task's chain after its input (the source is `TaskDeploymentDescriptor::
/// source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ChainedOperator {
    Map,
    /// Keyed running count over the key groups of the subtask.
    Count,
    Sink(SinkKind),
}

/// The exchange out of a task: how its records are routed to the consumer subtasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct OutputConfig {
    pub partitioner: Partitioner,
    /// A `key_by { keys }` on this exchange re-keys records before hashing.
    pub key_by: Option<u32>,
    pub consumer_parallelism: u32,
    pub consumer_max_parallelism: u32,
}

/// The per-vertex part of a deployment: the operator chain, the output exchange, the
/// checkpointing mode and the external systems the task talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StreamConfig {
    pub chain: Vec<ChainedOperator>,
    pub output: Option<OutputConfig>,
    pub parallelism: u32,
    pub max_parallelism: u32,
    /// `None`: checkpointing disabled (no interval).
    pub checkpointing: Option<CheckpointingMode>,
    pub checkpoint_storage: Option<NodeId>,
    pub sink: Option<NodeId>,
}

/// Methods of Flink's `DispatcherGateway`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DispatcherRpc {
    SubmitJob { job_id: JobId, spec: Arc<JobSpec> },
}

/// Requests to the `source` node, a partitioned replayable log (Kafka-like).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SourceLogRpc {
    /// Read up to `max_records` records of `partition` from `offset`.
    Fetch {
        reader: ExecutionAttemptId,
        partition: u32,
        offset: u64,
        max_records: u64,
    },
}

impl StreamConfig {
    /// A single-subtask task without operators, output, checkpointing or external systems: it
    /// only consumes (for unit tests of the lifecycle around it).
    pub fn minimal() -> StreamConfig {
        StreamConfig {
            chain: Vec::new(),
            output: None,
            parallelism: 1,
            max_parallelism: 128,
            checkpointing: None,
            checkpoint_storage: None,
            sink: None,
        }
    }
}

/// Requests to `checkpoint-storage`, a blob store for state handles.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum CheckpointStorageRpc {
    Write {
        handle: StateHandleId,
        state: Arc<TaskStateSnapshot>,
    },
    Read {
        handle: StateHandleId,
        /// The reading attempt (the answer goes to its TaskExecutor).
        reader: ExecutionAttemptId,
    },
    /// Discard the handles (subsumed or aborted checkpoints). Not answered.
    Delete { handles: Vec<StateHandleId> },
}

/// Requests to the `sink`, a transactional store (Kafka-like: a transactional id per sink
/// subtask, an epoch that fences older producers, idempotent commit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SinkRpc {
    /// `initTransactions` of a (restored) writer: commit the listed transactions (their
    /// checkpoint completed), abort every other unfinished transaction of the subtask, and fence
    /// older epochs. Answered with the new epoch.
    InitTransactions {
        writer: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
        commit: Vec<(CheckpointId, TxnId)>,
        /// False only with the planted bug `no-abort-of-lingering-transactions`.
        abort_lingering: bool,
    },
    /// Append `records` to `txn` (`None`: straight to the output, the at-least-once sink).
    /// `seq` numbers the writer's writes from 0; the sink takes them in order, once each.
    Write {
        writer: ExecutionAttemptId,
        job_id: JobId,
        subtask: u32,
        seq: u64,
        txn: Option<TxnId>,
        records: Recs,
    },
    /// Flush done: `txn` belongs to `checkpoint_id` (0: the end-of-input transaction of a job
    /// without checkpoints).
    PreCommit {
        writer: ExecutionAttemptId,
        txn: TxnId,
        checkpoint_id: CheckpointId,
    },
    /// Commit `txn` (idempotent).
    Commit {
        writer: ExecutionAttemptId,
        txn: TxnId,
    },
}

/// Answers to the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ClientRpc {
    /// `Accepted`, or `duplicate` when the job is already running or done.
    SubmitJobResponse { job_id: JobId, duplicate: bool },
}

/// Methods of Flink's `ResourceManagerGateway` (requests to the RM, and responses to it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ResourceManagerRpc {
    RegisterTaskExecutor {
        registration: TaskExecutorRegistration,
        /// Which attempt of the TE's `RetryingRegistration` this is; echoed in the response.
        attempt_id: u64,
    },
    SendSlotReport {
        resource_id: NodeId,
        instance_id: InstanceId,
        slot_report: SlotReport,
    },
    /// The heartbeat response of a TaskExecutor (receiver) to the RM (sender).
    HeartbeatFromTaskManager {
        resource_id: NodeId,
        slot_report: SlotReport,
    },
    DisconnectTaskManager {
        resource_id: NodeId,
        cause: DisconnectCause,
    },
    RegisterJobMaster {
        job_id: JobId,
        job_master_id: JobMasterId,
        attempt_id: u64,
    },
    /// The full current requirement of a job (not a delta): `slots` slots of any profile.
    DeclareRequiredResources {
        job_id: JobId,
        job_master_id: JobMasterId,
        slots: u32,
        /// Increases with every declaration; echoed in the acknowledgement.
        version: u64,
    },
    /// The heartbeat response of a JobMaster (receiver) to the RM (sender).
    HeartbeatFromJobManager { job_id: JobId },
    /// The TaskExecutor freed a slot.
    NotifySlotAvailable {
        instance_id: InstanceId,
        slot_id: SlotId,
        allocation_id: AllocationId,
    },
    /// The TaskExecutor's answer to `requestSlot`.
    RequestSlotResponse {
        allocation_id: AllocationId,
        ok: bool,
    },
    DisconnectJobManager {
        job_id: JobId,
        job_master_id: JobMasterId,
        /// The job is globally terminal: clear its requirements now.
        terminal: bool,
    },
}

/// Flink's `JobMasterRegistrationSuccess` / `RegistrationResponse.Failure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum JobMasterRegistration {
    Success {
        resource_manager_id: ResourceManagerId,
    },
    Failure,
}

/// Methods of Flink's `JobMasterGateway` (requests to a JobMaster, and responses to it). Addressed
/// with the job id ([`Msg::JobMaster`]); fenced by `JobMasterId` where Flink fences.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum JobMasterRpc {
    RegisterTaskManager {
        session_id: u64,
        attempt_id: u64,
    },
    OfferSlots {
        job_master_id: JobMasterId,
        offers: Vec<SlotOffer>,
        /// Only the answer to the latest offer per job is used (FLINK-21859).
        offer_id: u64,
    },
    UpdateTaskExecutionState {
        job_master_id: JobMasterId,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
        error: Option<String>,
    },
    /// The heartbeat response of a TaskExecutor (receiver) to the JobMaster (sender), with its
    /// `ExecutionDeploymentReport`.
    HeartbeatFromTaskManager {
        deployed: Vec<ExecutionAttemptId>,
    },
    /// The RM's (sender's) heartbeat request.
    HeartbeatFromResourceManager,
    FailSlot {
        allocation_id: AllocationId,
    },
    /// Sent by the TaskExecutor itself or by the RM when it lost the TaskExecutor.
    DisconnectTaskManager {
        resource_id: NodeId,
        cause: DisconnectCause,
    },
    DisconnectResourceManager {
        cause: DisconnectCause,
    },
    RegisterJobMasterResponse {
        attempt_id: u64,
        response: JobMasterRegistration,
    },
    DeclareRequiredResourcesResponse {
        version: u64,
    },
    SubmitTaskResponse {
        attempt: ExecutionAttemptId,
        ok: bool,
    },
    /// `acknowledgeCheckpoint`: the task's state for the checkpoint is durable at `handle`.
    AcknowledgeCheckpoint {
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
        handle: StateHandleId,
    },
    /// `declineCheckpoint`.
    DeclineCheckpoint {
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
        reason: &'static str,
    },
}

/// Flink's `JMTMRegistrationSuccess` / `JMTMRegistrationRejection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TaskManagerRegistration {
    Success {
        job_master_id: JobMasterId,
    },
    /// `RegistrationResponse.Failure`: the JobMaster could not connect back; retry after the
    /// refused-registration delay.
    Failure,
    Rejection,
}

/// Methods of Flink's `TaskExecutorGateway` (requests to the TE, and responses to it), and the
/// data plane between tasks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TaskExecutorRpc {
    RegistrationResponse {
        attempt_id: u64,
        response: RegistrationResponse,
    },
    SlotReportResponse {
        instance_id: InstanceId,
        ok: bool,
    },
    HeartbeatFromResourceManager {
        resource_id: NodeId,
    },
    DisconnectResourceManager {
        cause: DisconnectCause,
    },
    RequestSlot {
        slot_id: SlotId,
        job_id: JobId,
        allocation_id: AllocationId,
        /// The JobMaster's address (its process).
        job_master: NodeId,
        resource_manager_id: ResourceManagerId,
    },
    RegisterTaskManagerResponse {
        job_id: JobId,
        attempt_id: u64,
        response: TaskManagerRegistration,
    },
    OfferSlotsResponse {
        job_id: JobId,
        job_master_id: JobMasterId,
        offer_id: u64,
        accepted: Vec<AllocationId>,
    },
    SubmitTask {
        tdd: Box<TaskDeploymentDescriptor>,
        job_master_id: JobMasterId,
    },
    CancelTask {
        attempt: ExecutionAttemptId,
    },
    FreeSlot {
        allocation_id: AllocationId,
    },
    /// The JobMaster's (sender's) heartbeat request with its `AllocatedSlotReport`.
    HeartbeatFromJobManager {
        job_id: JobId,
        job_master_id: JobMasterId,
        allocated: Vec<AllocationId>,
    },
    DisconnectJobManager {
        job_id: JobId,
        cause: DisconnectCause,
    },
    /// The JobMaster's answer to `updateTaskExecutionState`: false = unknown (stale) attempt.
    UpdateTaskExecutionStateResponse {
        attempt: ExecutionAttemptId,
        ok: bool,
    },
    /// Data plane: a consumer asks the producer's TaskExecutor for its subpartition.
    RequestSubpartition {
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
    },
    /// Data plane: the producer is not (or no longer) on this TaskExecutor.
    PartitionNotFound {
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
    },
    /// `triggerCheckpoint` for a task that starts the checkpoint (a source, or the first running
    /// task downstream of finished ones).
    TriggerCheckpoint {
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
        timestamp_ms: u64,
    },
    /// `confirmCheckpoint` = notifyCheckpointComplete.
    NotifyCheckpointComplete {
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
    },
    /// `abortCheckpoint` = notifyCheckpointAborted.
    NotifyCheckpointAborted {
        attempt: ExecutionAttemptId,
        checkpoint_id: CheckpointId,
    },
    /// Data plane: buffer `seq` of `producer`'s subpartition for `consumer`.
    DataBatch {
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
        seq: u64,
        elements: Arc<[StreamElement]>,
    },
    /// Data plane, consumer to producer: buffers below `received` arrived, buffers below
    /// `consumed` were processed and recycled (credit: the producer may send below
    /// `consumed` + the exclusive buffers per channel).
    ChannelProgress {
        producer: ExecutionAttemptId,
        consumer: ExecutionAttemptId,
        received: u64,
        consumed: u64,
    },
    /// `checkpoint-storage` stored `handle`.
    StateWritten {
        handle: StateHandleId,
    },
    /// `checkpoint-storage`'s answer to a read (`None`: no such handle).
    StateRead {
        handle: StateHandleId,
        reader: ExecutionAttemptId,
        state: Option<Arc<TaskStateSnapshot>>,
    },
    /// The sink's answer to `initTransactions`.
    TransactionsInitialized {
        writer: ExecutionAttemptId,
        epoch: u64,
    },
    /// The sink took the writer's writes below `next_seq`.
    SinkWriteAck {
        writer: ExecutionAttemptId,
        next_seq: u64,
    },
    /// The sink refused a request of an older epoch (`ProducerFencedException`).
    SinkFenced {
        writer: ExecutionAttemptId,
    },
    PreCommitted {
        writer: ExecutionAttemptId,
        txn: TxnId,
    },
    /// `ok` is false when the transaction had been aborted (its data is lost).
    Committed {
        writer: ExecutionAttemptId,
        txn: TxnId,
        ok: bool,
    },
    /// The `source` log's answer to a fetch: `count` records of `partition` from `offset`
    /// (records are a pure function of partition and offset), and the partition's end.
    SourceRecords {
        reader: ExecutionAttemptId,
        partition: u32,
        offset: u64,
        count: u64,
        end_offset: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Msg {
    Dispatcher(DispatcherRpc),
    SourceLog(SourceLogRpc),
    Client(ClientRpc),
    ResourceManager(ResourceManagerRpc),
    JobMaster {
        job_id: JobId,
        rpc: JobMasterRpc,
    },
    TaskExecutor(TaskExecutorRpc),
    CheckpointStorage(CheckpointStorageRpc),
    Sink(SinkRpc),
    /// To the `ha` node (a ZooKeeper request).
    Ha(HaRequest),
    /// From the `ha` node.
    HaReply(HaReply),
    /// Flink's `RpcService.connect`: before its first RPC to a new address an endpoint resolves
    /// the remote endpoint (Pekko's `Identify`), asynchronously. The receiving process answers
    /// whether it hosts that endpoint now.
    Connect {
        purpose: ConnectPurpose,
        connect_id: u64,
    },
    /// The answer to [`Msg::Connect`]: `found` is false when the process runs no such endpoint
    /// (a ResourceManager that lost leadership, a JobMaster that finished).
    ConnectResponse {
        purpose: ConnectPurpose,
        connect_id: u64,
        found: bool,
    },
}

/// An endpoint a gateway connection resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ConnectTarget {
    ResourceManager,
    JobMaster(JobId),
    TaskExecutor,
}

/// Who opens a gateway connection and why, so that its answer finds the opener: a
/// `RetryingRegistration` connects before its first attempt, and the endpoint a registration
/// arrives at connects back to the registering one before it answers (Flink's
/// `registerTaskExecutor`, `registerJobMaster`, `registerTaskManager`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ConnectPurpose {
    /// A registration's own connection to its target.
    Registration(RegistrationTarget),
    /// The ResourceManager to a TaskExecutor that asked to register.
    ResourceManagerToTaskExecutor,
    /// The ResourceManager to the JobMaster of a job that asked to register.
    ResourceManagerToJobMaster(JobId),
    /// The JobMaster of a job to a TaskExecutor that asked to register.
    JobMasterToTaskExecutor(JobId),
}

impl ConnectPurpose {
    /// The endpoint the connection resolves.
    pub fn target(self) -> ConnectTarget {
        match self {
            ConnectPurpose::Registration(RegistrationTarget::ResourceManager)
            | ConnectPurpose::Registration(RegistrationTarget::ResourceManagerForJob(_)) => {
                ConnectTarget::ResourceManager
            }
            ConnectPurpose::Registration(RegistrationTarget::JobMaster(job))
            | ConnectPurpose::ResourceManagerToJobMaster(job) => ConnectTarget::JobMaster(job),
            ConnectPurpose::ResourceManagerToTaskExecutor
            | ConnectPurpose::JobMasterToTaskExecutor(_) => ConnectTarget::TaskExecutor,
        }
    }

    /// The job whose JobMaster opened the connection, if a JobMaster did.
    pub fn job_master(self) -> Option<JobId> {
        match self {
            ConnectPurpose::Registration(RegistrationTarget::ResourceManagerForJob(job))
            | ConnectPurpose::JobMasterToTaskExecutor(job) => Some(job),
            _ => None,
        }
    }

    fn target_gateway(self) -> &'static str {
        match self.target() {
            ConnectTarget::ResourceManager => "resourcemanager",
            ConnectTarget::JobMaster(_) => "jobmaster",
            ConnectTarget::TaskExecutor => "taskexecutor",
        }
    }

    fn opener_gateway(self) -> &'static str {
        match self {
            ConnectPurpose::Registration(RegistrationTarget::ResourceManager)
            | ConnectPurpose::Registration(RegistrationTarget::JobMaster(_)) => "taskexecutor",
            ConnectPurpose::Registration(RegistrationTarget::ResourceManagerForJob(_))
            | ConnectPurpose::JobMasterToTaskExecutor(_) => "jobmaster",
            ConnectPurpose::ResourceManagerToTaskExecutor
            | ConnectPurpose::ResourceManagerToJobMaster(_) => "resourcemanager",
        }
    }
}

/// A kind of message, as aimed message faults name it (`rpc = "submitTask.response"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcKind {
    /// The endpoint kind that receives it ([`Message::gateway`]).
    pub gateway: &'static str,
    /// [`Message::name`]: Flink's RPC method name, `.response` for its answer.
    pub name: &'static str,
    /// Whether it answers a request ([`Message::is_reply`]).
    pub reply: bool,
}

/// Every kind of message the model sends, by receiving gateway (`flinksim list rpcs`). A test
/// checks that the names [`Message::name`] returns are all here.
pub const RPC_KINDS: &[RpcKind] = &[
    RpcKind {
        gateway: "dispatcher",
        name: "submitJob",
        reply: false,
    },
    RpcKind {
        gateway: "source",
        name: "fetch",
        reply: false,
    },
    RpcKind {
        gateway: "client",
        name: "submitJob.response",
        reply: true,
    },
    RpcKind {
        gateway: "checkpoint-storage",
        name: "storage.write",
        reply: false,
    },
    RpcKind {
        gateway: "checkpoint-storage",
        name: "storage.read",
        reply: false,
    },
    RpcKind {
        gateway: "checkpoint-storage",
        name: "storage.delete",
        reply: false,
    },
    RpcKind {
        gateway: "sink",
        name: "initTransactions",
        reply: false,
    },
    RpcKind {
        gateway: "sink",
        name: "sink.write",
        reply: false,
    },
    RpcKind {
        gateway: "sink",
        name: "preCommit",
        reply: false,
    },
    RpcKind {
        gateway: "sink",
        name: "commit",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "registerTaskExecutor",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "sendSlotReport",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "heartbeatFromTaskManager",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "disconnectTaskManager",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "registerJobMaster",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "declareRequiredResources",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "heartbeatFromJobManager",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "notifySlotAvailable",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "requestSlot.response",
        reply: true,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "disconnectJobManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "registerTaskManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "offerSlots",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "updateTaskExecutionState",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "heartbeatFromTaskManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "heartbeatFromResourceManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "failSlot",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "disconnectTaskManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "disconnectResourceManager",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "registerJobMaster.response",
        reply: true,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "declareRequiredResources.response",
        reply: true,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "submitTask.response",
        reply: true,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "acknowledgeCheckpoint",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "declineCheckpoint",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "registerTaskExecutor.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "sendSlotReport.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "heartbeatFromResourceManager",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "disconnectResourceManager",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "requestSlot",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "registerTaskManager.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "offerSlots.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "submitTask",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "cancelTask",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "freeSlot",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "heartbeatFromJobManager",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "disconnectJobManager",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "updateTaskExecutionState.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "requestSubpartition",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "partitionNotFound",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "fetch.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "triggerCheckpoint",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "notifyCheckpointComplete",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "notifyCheckpointAborted",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "buffer",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "credit",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "storage.write.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "storage.read.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "initTransactions.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "sink.write.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "producerFenced",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "preCommit.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "commit.response",
        reply: true,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-connect",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-ping",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-close",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-create",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-set-data",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-delete",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-check",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-get-data",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-get-children",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-exists",
        reply: false,
    },
    RpcKind {
        gateway: "ha",
        name: "zk-multi",
        reply: false,
    },
    RpcKind {
        gateway: "ha-client",
        name: "zk-connected",
        reply: true,
    },
    RpcKind {
        gateway: "ha-client",
        name: "zk-pong",
        reply: true,
    },
    RpcKind {
        gateway: "ha-client",
        name: "zk-response",
        reply: true,
    },
    RpcKind {
        gateway: "ha-client",
        name: "zk-watch-event",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "connect",
        reply: false,
    },
    RpcKind {
        gateway: "resourcemanager",
        name: "connect.response",
        reply: true,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "connect",
        reply: false,
    },
    RpcKind {
        gateway: "jobmaster",
        name: "connect.response",
        reply: true,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "connect",
        reply: false,
    },
    RpcKind {
        gateway: "taskexecutor",
        name: "connect.response",
        reply: true,
    },
];

impl Message for Msg {
    fn gateway(&self) -> &'static str {
        match self {
            Msg::Dispatcher(_) => "dispatcher",
            Msg::SourceLog(_) => "source",
            Msg::Client(_) => "client",
            Msg::ResourceManager(_) => "resourcemanager",
            Msg::JobMaster { .. } => "jobmaster",
            Msg::TaskExecutor(_) => "taskexecutor",
            Msg::CheckpointStorage(_) => "checkpoint-storage",
            Msg::Sink(_) => "sink",
            Msg::Ha(_) => "ha",
            Msg::HaReply(_) => "ha-client",
            Msg::Connect { purpose, .. } => purpose.target_gateway(),
            Msg::ConnectResponse { purpose, .. } => purpose.opener_gateway(),
        }
    }

    fn is_reply(&self) -> bool {
        match self {
            Msg::HaReply(r) => !matches!(r, crate::protocol::ha::HaReply::Watch(_)),
            Msg::TaskExecutor(TaskExecutorRpc::SinkFenced { .. }) => true,
            _ => self.name().ends_with(".response"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Msg::Dispatcher(DispatcherRpc::SubmitJob { .. }) => "submitJob",
            Msg::Connect { .. } => "connect",
            Msg::ConnectResponse { .. } => "connect.response",
            Msg::Ha(r) => r.name(),
            Msg::HaReply(r) => r.name(),
            Msg::SourceLog(SourceLogRpc::Fetch { .. }) => "fetch",
            Msg::Client(ClientRpc::SubmitJobResponse { .. }) => "submitJob.response",
            Msg::CheckpointStorage(r) => match r {
                CheckpointStorageRpc::Write { .. } => "storage.write",
                CheckpointStorageRpc::Read { .. } => "storage.read",
                CheckpointStorageRpc::Delete { .. } => "storage.delete",
            },
            Msg::Sink(r) => match r {
                SinkRpc::InitTransactions { .. } => "initTransactions",
                SinkRpc::Write { .. } => "sink.write",
                SinkRpc::PreCommit { .. } => "preCommit",
                SinkRpc::Commit { .. } => "commit",
            },
            Msg::ResourceManager(r) => match r {
                ResourceManagerRpc::RegisterTaskExecutor { .. } => "registerTaskExecutor",
                ResourceManagerRpc::SendSlotReport { .. } => "sendSlotReport",
                ResourceManagerRpc::HeartbeatFromTaskManager { .. } => "heartbeatFromTaskManager",
                ResourceManagerRpc::DisconnectTaskManager { .. } => "disconnectTaskManager",
                ResourceManagerRpc::RegisterJobMaster { .. } => "registerJobMaster",
                ResourceManagerRpc::DeclareRequiredResources { .. } => "declareRequiredResources",
                ResourceManagerRpc::HeartbeatFromJobManager { .. } => "heartbeatFromJobManager",
                ResourceManagerRpc::NotifySlotAvailable { .. } => "notifySlotAvailable",
                ResourceManagerRpc::RequestSlotResponse { .. } => "requestSlot.response",
                ResourceManagerRpc::DisconnectJobManager { .. } => "disconnectJobManager",
            },
            Msg::JobMaster { rpc, .. } => match rpc {
                JobMasterRpc::RegisterTaskManager { .. } => "registerTaskManager",
                JobMasterRpc::OfferSlots { .. } => "offerSlots",
                JobMasterRpc::UpdateTaskExecutionState { .. } => "updateTaskExecutionState",
                JobMasterRpc::HeartbeatFromTaskManager { .. } => "heartbeatFromTaskManager",
                JobMasterRpc::HeartbeatFromResourceManager => "heartbeatFromResourceManager",
                JobMasterRpc::FailSlot { .. } => "failSlot",
                JobMasterRpc::DisconnectTaskManager { .. } => "disconnectTaskManager",
                JobMasterRpc::DisconnectResourceManager { .. } => "disconnectResourceManager",
                JobMasterRpc::RegisterJobMasterResponse { .. } => "registerJobMaster.response",
                JobMasterRpc::DeclareRequiredResourcesResponse { .. } => {
                    "declareRequiredResources.response"
                }
                JobMasterRpc::SubmitTaskResponse { .. } => "submitTask.response",
                JobMasterRpc::AcknowledgeCheckpoint { .. } => "acknowledgeCheckpoint",
                JobMasterRpc::DeclineCheckpoint { .. } => "declineCheckpoint",
            },
            Msg::TaskExecutor(t) => match t {
                TaskExecutorRpc::RegistrationResponse { .. } => "registerTaskExecutor.response",
                TaskExecutorRpc::SlotReportResponse { .. } => "sendSlotReport.response",
                TaskExecutorRpc::HeartbeatFromResourceManager { .. } => {
                    "heartbeatFromResourceManager"
                }
                TaskExecutorRpc::DisconnectResourceManager { .. } => "disconnectResourceManager",
                TaskExecutorRpc::RequestSlot { .. } => "requestSlot",
                TaskExecutorRpc::RegisterTaskManagerResponse { .. } => {
                    "registerTaskManager.response"
                }
                TaskExecutorRpc::OfferSlotsResponse { .. } => "offerSlots.response",
                TaskExecutorRpc::SubmitTask { .. } => "submitTask",
                TaskExecutorRpc::CancelTask { .. } => "cancelTask",
                TaskExecutorRpc::FreeSlot { .. } => "freeSlot",
                TaskExecutorRpc::HeartbeatFromJobManager { .. } => "heartbeatFromJobManager",
                TaskExecutorRpc::DisconnectJobManager { .. } => "disconnectJobManager",
                TaskExecutorRpc::UpdateTaskExecutionStateResponse { .. } => {
                    "updateTaskExecutionState.response"
                }
                TaskExecutorRpc::RequestSubpartition { .. } => "requestSubpartition",
                TaskExecutorRpc::PartitionNotFound { .. } => "partitionNotFound",
                TaskExecutorRpc::SourceRecords { .. } => "fetch.response",
                TaskExecutorRpc::TriggerCheckpoint { .. } => "triggerCheckpoint",
                TaskExecutorRpc::NotifyCheckpointComplete { .. } => "notifyCheckpointComplete",
                TaskExecutorRpc::NotifyCheckpointAborted { .. } => "notifyCheckpointAborted",
                TaskExecutorRpc::DataBatch { .. } => "buffer",
                TaskExecutorRpc::ChannelProgress { .. } => "credit",
                TaskExecutorRpc::StateWritten { .. } => "storage.write.response",
                TaskExecutorRpc::StateRead { .. } => "storage.read.response",
                TaskExecutorRpc::TransactionsInitialized { .. } => "initTransactions.response",
                TaskExecutorRpc::SinkWriteAck { .. } => "sink.write.response",
                TaskExecutorRpc::SinkFenced { .. } => "producerFenced",
                TaskExecutorRpc::PreCommitted { .. } => "preCommit.response",
                TaskExecutorRpc::Committed { .. } => "commit.response",
            },
        }
    }
}

#[cfg(test)]
mod rpc_kind_tests {
    use super::*;

    /// The names `Message::name` can return, read off its source (and HA's), against
    /// `RPC_KINDS`: a message added without a catalogue entry could not be aimed at.
    #[test]
    fn every_message_name_is_in_the_catalogue() {
        let sources = [include_str!("rpc.rs"), include_str!("ha.rs")];
        let mut names = Vec::new();
        for src in sources {
            let src = &src[..src.find("#[cfg(test)]").unwrap_or(src.len())];
            for fn_start in src.match_indices("fn name(&self) -> &'static str {") {
                let body = &src[fn_start.0..];
                let body = &body[..body.find("\n    }\n").expect("end of fn name")];
                for piece in body.split('"').skip(1).step_by(2) {
                    names.push(piece);
                }
            }
        }
        assert!(names.len() > 70, "read {} names", names.len());
        for n in &names {
            assert!(
                RPC_KINDS.iter().any(|k| k.name == *n),
                "`{n}` is missing from RPC_KINDS"
            );
        }
        for k in RPC_KINDS {
            assert!(
                names.contains(&k.name),
                "RPC_KINDS has `{}` no message returns",
                k.name
            );
        }
    }

    #[test]
    fn replies_and_gateways_agree_with_the_catalogue() {
        let m = Msg::TaskExecutor(TaskExecutorRpc::FreeSlot { allocation_id: 1 });
        assert!(!m.is_reply());
        assert_eq!(m.gateway(), "taskexecutor");
        let m = Msg::Client(ClientRpc::SubmitJobResponse {
            job_id: JobId::default(),
            duplicate: false,
        });
        let k = RPC_KINDS.iter().find(|k| k.name == m.name()).unwrap();
        assert_eq!((k.gateway, k.reply), (m.gateway(), m.is_reply()));
        assert!(m.is_reply());
    }
}
