//! The RPC messages between Flink endpoints, named after Flink's gateway methods.
//!
//! Flink's RPCs are asynchronous asks: a request message and, where the method returns a value,
//! a separate response message. Each variant below is one of the two. Which endpoint a message is
//! for follows from the variant (ResourceManagerGateway or TaskExecutorGateway), so a process can
//! route it to the endpoint it hosts.

use sim::{Message, NodeId};

/// Flink's `ResourceManagerId`: the leader session of a ResourceManager. Without high
/// availability it is Flink's fixed default leader id (0).
pub type ResourceManagerId = u64;
/// Flink's `InstanceID`: a fresh id per TaskExecutor registration at a ResourceManager.
pub type InstanceId = u64;

/// Flink's `SlotStatus` in a `SlotReport`: a slot index and, once allocated, its allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotStatus {
    pub slot_index: u32,
    pub allocation_id: Option<u64>,
}

/// Flink's `SlotReport`.
pub type SlotReport = Vec<SlotStatus>;

/// Flink's `TaskExecutorRegistration` (the fields a model needs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskExecutorRegistration {
    /// The TaskExecutor's `ResourceID` (its process).
    pub resource_id: NodeId,
    /// A fresh id per TaskExecutor process start (Flink's TM session id).
    pub session_id: u64,
    pub number_of_slots: u32,
}

/// Flink's `RegistrationResponse` subtypes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegistrationResponse {
    /// `TaskExecutorRegistrationSuccess`.
    Success {
        instance_id: InstanceId,
        resource_manager_id: ResourceManagerId,
    },
    /// `RegistrationResponse.Failure` (declined: retry after the refused-registration delay).
    Failure { reason: String },
    /// `TaskExecutorRegistrationRejection` (terminal).
    Rejection { reason: String },
}

/// Why a connection was closed, as carried by `disconnect*` RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisconnectCause {
    HeartbeatTimeout,
    Unreachable,
    /// The other side asked to reconnect or shut down the connection.
    Reconnect,
}

/// Methods of Flink's `ResourceManagerGateway` (requests to the RM, and TE responses to it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
}

/// Methods of Flink's `TaskExecutorGateway` (requests to the TE, and RM responses to it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaskExecutorRpc {
    /// The response to `RegisterTaskExecutor`.
    RegistrationResponse {
        attempt_id: u64,
        response: RegistrationResponse,
    },
    /// The response to `SendSlotReport`: acknowledged, or failed (unknown registration).
    SlotReportResponse {
        instance_id: InstanceId,
        ok: bool,
    },
    /// The RM's (sender's) heartbeat request.
    HeartbeatFromResourceManager {
        resource_id: NodeId,
    },
    DisconnectResourceManager {
        cause: DisconnectCause,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    ResourceManager(ResourceManagerRpc),
    TaskExecutor(TaskExecutorRpc),
}

impl Message for Msg {
    fn name(&self) -> &'static str {
        match self {
            Msg::ResourceManager(r) => match r {
                ResourceManagerRpc::RegisterTaskExecutor { .. } => "registerTaskExecutor",
                ResourceManagerRpc::SendSlotReport { .. } => "sendSlotReport",
                ResourceManagerRpc::HeartbeatFromTaskManager { .. } => "heartbeatFromTaskManager",
                ResourceManagerRpc::DisconnectTaskManager { .. } => "disconnectTaskManager",
            },
            Msg::TaskExecutor(t) => match t {
                TaskExecutorRpc::RegistrationResponse { .. } => "registerTaskExecutor.response",
                TaskExecutorRpc::SlotReportResponse { .. } => "sendSlotReport.response",
                TaskExecutorRpc::HeartbeatFromResourceManager { .. } => {
                    "heartbeatFromResourceManager"
                }
                TaskExecutorRpc::DisconnectResourceManager { .. } => "disconnectResourceManager",
            },
        }
    }
}
