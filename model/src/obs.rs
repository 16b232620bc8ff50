//! Observations: what endpoints report about themselves for oracles and reports.
//!
//! An observation is a claim by the model ("I declared taskmanager-2 lost"); oracles check such
//! claims against their own ground truth built from the kernel's events (deliveries, faults).

use crate::rpc::InstanceId;
use sim::NodeId;

/// An RPC endpoint, identified by the process that hosts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    ResourceManager(NodeId),
    TaskExecutor(NodeId),
}

impl Endpoint {
    pub fn node(self) -> NodeId {
        match self {
            Endpoint::ResourceManager(n) | Endpoint::TaskExecutor(n) => n,
        }
    }
}

/// How a heartbeat target was lost (SCENARIOS.md `taskmanagers_lost[].cause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Obs {
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
}
