//! What a timer carries back to its process when it fires, nested by the component that armed it
//! (as messages are nested by the gateway they address): the process hands a fired timer to its
//! owner with a plain match, and each owner matches only its own timers. Timers of the heartbeat
//! and registration services belong to the endpoint that runs the service (a JobMaster's
//! heartbeat to its TaskExecutors is a timer of that JobMaster). Variants are named after the
//! Flink mechanism that arms them.
//!
//! The trace hash and the JSON trace see a timer in a fixed flat encoding, which [`flat`] owns.

mod flat;

use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId};
use serde::Serialize;
use sim::NodeId;

/// What a timer of a process carries: the component that armed it, then that component's timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    TaskExecutor(TaskExecutorTimer),
    /// A timer of the JobMaster of `job_id`.
    JobMaster {
        job_id: JobId,
        timer: JobMasterTimer,
    },
    ResourceManager(ResourceManagerTimer),
    /// The client's only timer: time to submit the job, or to retry the submission.
    SubmitJob,
    /// A ZooKeeper client's tick (pings, re-sends, connection-state checks), in whichever process
    /// the client runs.
    HaTick,
    /// The `ha` node's next session expiry.
    HaExpiry,
}

/// The timers of a TaskExecutor, its tasks included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskExecutorTimer {
    /// The monitor of the ResourceManager `target` timed out (the TaskExecutor receives the
    /// ResourceManager's heartbeats).
    ResourceManagerHeartbeatTimeout { target: NodeId },
    /// The monitor of the JobMaster `target` of `job_id` timed out.
    JobManagerHeartbeatTimeout { job_id: JobId, target: NodeId },
    /// The registration at the ResourceManager.
    ResourceManagerRegistration(RegistrationTimer),
    /// The registration at the JobMaster of `job_id` (the "job leader" connection).
    JobManagerRegistration {
        job_id: JobId,
        timer: RegistrationTimer,
    },
    /// `taskmanager.registration.timeout`.
    RegistrationTimeout,
    /// The ask timeout of the initial `sendSlotReport` of registration `instance_id`.
    SlotReportTimeout { instance_id: u64 },
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
}

/// The timers of one JobMaster (its job is in [`Timer::JobMaster`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobMasterTimer {
    /// The heartbeats the JobMaster sends to its TaskExecutors.
    TaskManagerHeartbeat(HeartbeatTimer),
    /// The monitor of the ResourceManager `target` timed out (the JobMaster receives the
    /// ResourceManager's heartbeats).
    ResourceManagerHeartbeatTimeout { target: NodeId },
    /// The registration at the ResourceManager.
    ResourceManagerRegistration(RegistrationTimer),
    /// The restart backoff of a failover has passed (`version` detects superseded restarts).
    RestartDelay { version: u64 },
    /// `slot.request.timeout` for the slot requests of the job.
    SlotRequestTimeout { version: u64 },
    /// The periodic idle-slot check (`slot.idle.timeout`).
    SlotIdleCheck,
    /// Re-send `declareRequiredResources` until acknowledged.
    DeclareResourcesRetry { version: u64 },
    /// The ask timeout of a `submitTask` call.
    SubmitTaskTimeout { attempt: ExecutionAttemptId },
    /// The CheckpointCoordinator's periodic trigger (`version` detects a stopped scheduler).
    CheckpointTrigger { version: u64 },
    /// `execution.checkpointing.timeout` of a pending checkpoint.
    CheckpointTimeout { checkpoint_id: u64 },
    /// Re-send `cancelTask` until the task reports a terminal state.
    CancelTaskRetry { attempt: ExecutionAttemptId },
}

/// The timers of the ResourceManager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceManagerTimer {
    /// The heartbeats the ResourceManager sends to its TaskExecutors.
    TaskManagerHeartbeat(HeartbeatTimer),
    /// The heartbeats the ResourceManager sends to the JobMaster of `job_id`.
    JobManagerHeartbeat {
        job_id: JobId,
        timer: HeartbeatTimer,
    },
    /// `slotmanager.requirement-check.delay` passed: check requirements.
    RequirementCheck,
    /// The ask timeout of a `requestSlot` call.
    RequestSlotTimeout { allocation_id: AllocationId },
    /// The periodic idle-TaskManager check (`resourcemanager.taskmanager-timeout`).
    TaskManagerIdleCheck,
}

/// The timers of a heartbeat sender (`HeartbeatManagerSenderImpl`); a receiver only has monitor
/// timeouts, which its owner names directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatTimer {
    /// The interval loop: request a heartbeat from every target.
    Tick,
    /// The monitor of `target` timed out.
    Timeout { target: NodeId },
}

/// The timers of a `RetryingRegistration` (`attempt_id` tells a stale one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationTimer {
    /// The current attempt got no answer in time.
    AttemptTimeout { attempt_id: u64 },
    /// The delay after a declined or failed attempt has passed.
    Retry { attempt_id: u64 },
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

/// What a registration is for; it tells whose timers the registration arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RegistrationTarget {
    /// A TaskExecutor at the ResourceManager.
    ResourceManager,
    /// A TaskExecutor at the JobMaster of a job (the "job leader" connection).
    JobMaster(JobId),
    /// The JobMaster of a job at the ResourceManager.
    ResourceManagerForJob(JobId),
}

impl RegistrationTarget {
    /// The timer `timer` of a registration for this target, as its owner's timer.
    pub fn timer(self, timer: RegistrationTimer) -> Timer {
        match self {
            RegistrationTarget::ResourceManager => {
                Timer::TaskExecutor(TaskExecutorTimer::ResourceManagerRegistration(timer))
            }
            RegistrationTarget::JobMaster(job_id) => {
                Timer::TaskExecutor(TaskExecutorTimer::JobManagerRegistration { job_id, timer })
            }
            RegistrationTarget::ResourceManagerForJob(job_id) => Timer::JobMaster {
                job_id,
                timer: JobMasterTimer::ResourceManagerRegistration(timer),
            },
        }
    }
}

impl HeartbeatPair {
    /// The timer `timer` of this pair's heartbeat manager on the sending (`sender`) or the
    /// receiving side, as its owner's timer; `job` is the job of a per-job pair. A receiver does
    /// not loop, so it only has monitor timeouts.
    pub fn timer(self, sender: bool, job: Option<JobId>, timer: HeartbeatTimer) -> Timer {
        use HeartbeatPair::ResourceManagerTaskExecutor;
        use HeartbeatPair::{JobMasterTaskExecutor, ResourceManagerJobMaster};
        let job_id = || job.expect("a per-job heartbeat pair has a job");
        match (self, sender, timer) {
            (ResourceManagerTaskExecutor, true, timer) => {
                Timer::ResourceManager(ResourceManagerTimer::TaskManagerHeartbeat(timer))
            }
            (ResourceManagerJobMaster, true, timer) => {
                Timer::ResourceManager(ResourceManagerTimer::JobManagerHeartbeat {
                    job_id: job_id(),
                    timer,
                })
            }
            (JobMasterTaskExecutor, true, timer) => Timer::JobMaster {
                job_id: job_id(),
                timer: JobMasterTimer::TaskManagerHeartbeat(timer),
            },
            (ResourceManagerTaskExecutor, false, HeartbeatTimer::Timeout { target }) => {
                Timer::TaskExecutor(TaskExecutorTimer::ResourceManagerHeartbeatTimeout { target })
            }
            (JobMasterTaskExecutor, false, HeartbeatTimer::Timeout { target }) => {
                Timer::TaskExecutor(TaskExecutorTimer::JobManagerHeartbeatTimeout {
                    job_id: job_id(),
                    target,
                })
            }
            (ResourceManagerJobMaster, false, HeartbeatTimer::Timeout { target }) => {
                Timer::JobMaster {
                    job_id: job_id(),
                    timer: JobMasterTimer::ResourceManagerHeartbeatTimeout { target },
                }
            }
            (_, false, HeartbeatTimer::Tick) => panic!("only a heartbeat sender loops"),
        }
    }
}
