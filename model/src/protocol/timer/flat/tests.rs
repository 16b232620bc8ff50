//! The flat encoding against a frozen copy of the flat enum it replaced: same stable hash, same
//! JSON, for every kind of timer.

use super::super::{
    HeartbeatPair, HeartbeatTimer, JobMasterTimer, RegistrationTarget, RegistrationTimer,
    ResourceManagerTimer, TaskExecutorTimer, Timer,
};
use super::NAMES;
use crate::protocol::ids::{AllocationId, ExecutionAttemptId, JobId};
use crate::protocol::job_graph::{ExecutionVertexId, JobVertexId};
use proptest::prelude::*;
use serde::Serialize;
use sim::{stable_hash, NodeId};
use std::collections::BTreeSet;

/// The flat `Timer` as it was before tags were nested by owner, frozen: its derived `Hash` and
/// `Serialize` define the trace hashes and trace files the nested tags must reproduce. Do not
/// edit it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename = "Timer")]
enum LegacyTimer {
    HeartbeatTick {
        pair: HeartbeatPair,
        job: Option<JobId>,
    },
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
    TaskExecutorRegistrationTimeout,
    SlotReportTimeout {
        instance_id: u64,
    },
    SlotTimeout {
        allocation_id: AllocationId,
        ticket: u64,
    },
    TaskStep {
        attempt: ExecutionAttemptId,
    },
    TaskTick {
        attempt: ExecutionAttemptId,
    },
    PartitionRequestRetry {
        consumer: ExecutionAttemptId,
        producer: ExecutionAttemptId,
    },
    OfferSlotsTimeout {
        job_id: JobId,
        offer_id: u64,
    },
    UpdateTaskStateTimeout {
        attempt: ExecutionAttemptId,
    },
    RestartDelay {
        job_id: JobId,
        version: u64,
    },
    SlotRequestTimeout {
        job_id: JobId,
        version: u64,
    },
    SlotIdleCheck {
        job_id: JobId,
    },
    DeclareResourcesRetry {
        job_id: JobId,
        version: u64,
    },
    SubmitTaskTimeout {
        job_id: JobId,
        attempt: ExecutionAttemptId,
    },
    CheckpointTrigger {
        job_id: JobId,
        version: u64,
    },
    CheckpointTimeout {
        job_id: JobId,
        checkpoint_id: u64,
    },
    CancelTaskRetry {
        job_id: JobId,
        attempt: ExecutionAttemptId,
    },
    RequirementCheck,
    RequestSlotTimeout {
        allocation_id: AllocationId,
    },
    TaskManagerIdleCheck,
    SubmitJob,
    HaTick,
    HaExpiry,
}

/// The values the examples are built from.
#[derive(Clone, Copy, Debug)]
struct Ids {
    job: JobId,
    n: u64,
    m: u64,
    node: NodeId,
    attempt: ExecutionAttemptId,
    other: ExecutionAttemptId,
}

/// One tag of every nested kind, each with the flat tag it stood for before nesting.
fn examples(ids: Ids) -> Vec<(Timer, LegacyTimer)> {
    use HeartbeatPair::ResourceManagerTaskExecutor;
    use HeartbeatPair::{JobMasterTaskExecutor, ResourceManagerJobMaster};
    use JobMasterTimer as J;
    use LegacyTimer as L;
    use ResourceManagerTimer as R;
    use TaskExecutorTimer as T;
    let Ids {
        job,
        n,
        m,
        node: target,
        attempt,
        other,
    } = ids;
    let jm = |timer| Timer::JobMaster { job_id: job, timer };
    let tick = HeartbeatTimer::Tick;
    let timeout = HeartbeatTimer::Timeout { target };
    let attempt_timeout = RegistrationTimer::AttemptTimeout { attempt_id: n };
    let retry = RegistrationTimer::Retry { attempt_id: n };
    vec![
        // The TaskExecutor's.
        (
            Timer::TaskExecutor(T::ResourceManagerHeartbeatTimeout { target }),
            L::HeartbeatTimeout {
                pair: ResourceManagerTaskExecutor,
                job: None,
                sender: false,
                target,
            },
        ),
        (
            Timer::TaskExecutor(T::JobManagerHeartbeatTimeout {
                job_id: job,
                target,
            }),
            L::HeartbeatTimeout {
                pair: JobMasterTaskExecutor,
                job: Some(job),
                sender: false,
                target,
            },
        ),
        (
            Timer::TaskExecutor(T::ResourceManagerRegistration(attempt_timeout)),
            L::RegistrationAttemptTimeout {
                target: RegistrationTarget::ResourceManager,
                attempt_id: n,
            },
        ),
        (
            Timer::TaskExecutor(T::ResourceManagerRegistration(retry)),
            L::RegistrationRetry {
                target: RegistrationTarget::ResourceManager,
                attempt_id: n,
            },
        ),
        (
            Timer::TaskExecutor(T::JobManagerRegistration {
                job_id: job,
                timer: attempt_timeout,
            }),
            L::RegistrationAttemptTimeout {
                target: RegistrationTarget::JobMaster(job),
                attempt_id: n,
            },
        ),
        (
            Timer::TaskExecutor(T::JobManagerRegistration {
                job_id: job,
                timer: retry,
            }),
            L::RegistrationRetry {
                target: RegistrationTarget::JobMaster(job),
                attempt_id: n,
            },
        ),
        (
            Timer::TaskExecutor(T::RegistrationTimeout),
            L::TaskExecutorRegistrationTimeout,
        ),
        (
            Timer::TaskExecutor(T::SlotReportTimeout { instance_id: n }),
            L::SlotReportTimeout { instance_id: n },
        ),
        (
            Timer::TaskExecutor(T::SlotTimeout {
                allocation_id: n,
                ticket: m,
            }),
            L::SlotTimeout {
                allocation_id: n,
                ticket: m,
            },
        ),
        (
            Timer::TaskExecutor(T::TaskStep { attempt }),
            L::TaskStep { attempt },
        ),
        (
            Timer::TaskExecutor(T::TaskTick { attempt }),
            L::TaskTick { attempt },
        ),
        (
            Timer::TaskExecutor(T::PartitionRequestRetry {
                consumer: attempt,
                producer: other,
            }),
            L::PartitionRequestRetry {
                consumer: attempt,
                producer: other,
            },
        ),
        (
            Timer::TaskExecutor(T::OfferSlotsTimeout {
                job_id: job,
                offer_id: n,
            }),
            L::OfferSlotsTimeout {
                job_id: job,
                offer_id: n,
            },
        ),
        (
            Timer::TaskExecutor(T::UpdateTaskStateTimeout { attempt }),
            L::UpdateTaskStateTimeout { attempt },
        ),
        // A JobMaster's.
        (
            jm(J::TaskManagerHeartbeat(tick)),
            L::HeartbeatTick {
                pair: JobMasterTaskExecutor,
                job: Some(job),
            },
        ),
        (
            jm(J::TaskManagerHeartbeat(timeout)),
            L::HeartbeatTimeout {
                pair: JobMasterTaskExecutor,
                job: Some(job),
                sender: true,
                target,
            },
        ),
        (
            jm(J::ResourceManagerHeartbeatTimeout { target }),
            L::HeartbeatTimeout {
                pair: ResourceManagerJobMaster,
                job: Some(job),
                sender: false,
                target,
            },
        ),
        (
            jm(J::ResourceManagerRegistration(attempt_timeout)),
            L::RegistrationAttemptTimeout {
                target: RegistrationTarget::ResourceManagerForJob(job),
                attempt_id: n,
            },
        ),
        (
            jm(J::ResourceManagerRegistration(retry)),
            L::RegistrationRetry {
                target: RegistrationTarget::ResourceManagerForJob(job),
                attempt_id: n,
            },
        ),
        (
            jm(J::RestartDelay { version: n }),
            L::RestartDelay {
                job_id: job,
                version: n,
            },
        ),
        (
            jm(J::SlotRequestTimeout { version: n }),
            L::SlotRequestTimeout {
                job_id: job,
                version: n,
            },
        ),
        (jm(J::SlotIdleCheck), L::SlotIdleCheck { job_id: job }),
        (
            jm(J::DeclareResourcesRetry { version: n }),
            L::DeclareResourcesRetry {
                job_id: job,
                version: n,
            },
        ),
        (
            jm(J::SubmitTaskTimeout { attempt }),
            L::SubmitTaskTimeout {
                job_id: job,
                attempt,
            },
        ),
        (
            jm(J::CheckpointTrigger { version: n }),
            L::CheckpointTrigger {
                job_id: job,
                version: n,
            },
        ),
        (
            jm(J::CheckpointTimeout { checkpoint_id: n }),
            L::CheckpointTimeout {
                job_id: job,
                checkpoint_id: n,
            },
        ),
        (
            jm(J::CancelTaskRetry { attempt }),
            L::CancelTaskRetry {
                job_id: job,
                attempt,
            },
        ),
        // The ResourceManager's.
        (
            Timer::ResourceManager(R::TaskManagerHeartbeat(tick)),
            L::HeartbeatTick {
                pair: ResourceManagerTaskExecutor,
                job: None,
            },
        ),
        (
            Timer::ResourceManager(R::TaskManagerHeartbeat(timeout)),
            L::HeartbeatTimeout {
                pair: ResourceManagerTaskExecutor,
                job: None,
                sender: true,
                target,
            },
        ),
        (
            Timer::ResourceManager(R::JobManagerHeartbeat {
                job_id: job,
                timer: tick,
            }),
            L::HeartbeatTick {
                pair: ResourceManagerJobMaster,
                job: Some(job),
            },
        ),
        (
            Timer::ResourceManager(R::JobManagerHeartbeat {
                job_id: job,
                timer: timeout,
            }),
            L::HeartbeatTimeout {
                pair: ResourceManagerJobMaster,
                job: Some(job),
                sender: true,
                target,
            },
        ),
        (
            Timer::ResourceManager(R::RequirementCheck),
            L::RequirementCheck,
        ),
        (
            Timer::ResourceManager(R::RequestSlotTimeout { allocation_id: n }),
            L::RequestSlotTimeout { allocation_id: n },
        ),
        (
            Timer::ResourceManager(R::TaskManagerIdleCheck),
            L::TaskManagerIdleCheck,
        ),
        // The client's and the HA systems'.
        (Timer::SubmitJob, L::SubmitJob),
        (Timer::HaTick, L::HaTick),
        (Timer::HaExpiry, L::HaExpiry),
    ]
}

fn attempt(graph: u64, vertex: u32, subtask: u32, attempt: u32) -> ExecutionAttemptId {
    ExecutionAttemptId {
        graph,
        vertex: ExecutionVertexId {
            vertex: JobVertexId(vertex),
            subtask,
        },
        attempt,
    }
}

fn assert_encoded_as_legacy(ids: Ids) {
    for (timer, legacy) in examples(ids) {
        assert_eq!(stable_hash(&timer), stable_hash(&legacy), "{timer:?}");
        let json = serde_json::to_string(&timer).expect("serializes");
        assert_eq!(
            json,
            serde_json::to_string(&legacy).expect("serializes"),
            "{timer:?}"
        );
    }
}

#[test]
fn every_timer_hashes_and_serializes_as_its_flat_tag_did() {
    assert_encoded_as_legacy(Ids {
        job: 7,
        n: 3,
        m: 11,
        node: NodeId(2),
        attempt: attempt(5, 1, 0, 2),
        other: attempt(5, 0, 1, 0),
    });
}

#[test]
fn the_examples_cover_every_flat_variant() {
    // With the hashes equal per example, this also pins the order of `NAMES` to the frozen
    // enum's declaration order.
    let ids = Ids {
        job: 1,
        n: 1,
        m: 1,
        node: NodeId(1),
        attempt: attempt(1, 1, 1, 1),
        other: attempt(1, 1, 1, 1),
    };
    // A serialized tag starts with its variant name: `"Name"` or `{"Name":`.
    let name = |json: String| json.split('"').nth(1).expect("a name").to_string();
    let covered: BTreeSet<String> = examples(ids)
        .into_iter()
        .map(|(t, _)| name(serde_json::to_string(&t).expect("serializes")))
        .collect();
    let names: BTreeSet<String> = NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(covered, names);
}

#[test]
fn a_derived_hash_of_an_enum_feeds_its_index_as_isize_then_its_fields() {
    // What the encoding relies on, shown on the frozen enum (rustc's derive of `Hash`).
    assert_eq!(stable_hash(&LegacyTimer::HaExpiry), stable_hash(&25isize));
    assert_eq!(
        stable_hash(&LegacyTimer::SlotIdleCheck { job_id: 9 }),
        stable_hash(&(14isize, 9u64))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_timer_of_any_ids_hashes_and_serializes_as_its_flat_tag_did(
        job in any::<u64>(),
        n in any::<u64>(),
        m in any::<u64>(),
        node in any::<u32>(),
        a in (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()),
        b in (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()),
    ) {
        assert_encoded_as_legacy(Ids {
            job,
            n,
            m,
            node: NodeId(node),
            attempt: attempt(a.0, a.1, a.2, a.3),
            other: attempt(b.0, b.1, b.2, b.3),
        });
    }
}
