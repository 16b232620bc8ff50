//! The flat encoding of a timer tag: what the trace hash (`std::hash::Hash`) and the JSON trace
//! (serde) see of a [`Timer`]. It owns the hand-written `Hash` and `Serialize` of `Timer` and
//! nothing else.
//!
//! Timer tags were once one flat enum with a variant per kind of timer, and its derived impls
//! defined every trace hash and trace file since. Nesting the tags by owner must not change
//! them, so a tag is encoded as that flat enum's derived impls encoded it: `Hash` feeds the flat
//! variant's index (as `isize`, like a derived `Hash` of an enum), then each field in order;
//! `Serialize` writes a unit variant as `"Name"` and any other as `{"Name":{"field":value,..}}`
//! (serde's externally tagged enum). A test keeps a frozen copy of the flat enum and checks
//! both impls against its derived ones.

use super::{
    HeartbeatPair, HeartbeatTimer, JobMasterTimer, RegistrationTarget, RegistrationTimer,
    ResourceManagerTimer, TaskExecutorTimer, Timer,
};
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use serde::ser::{Serialize, SerializeStructVariant, Serializer};
use sim::NodeId;
use std::hash::{Hash, Hasher};

/// Declares the flat variants from one list: [`Flat`] (whose index is the hashed discriminant)
/// and [`NAMES`] (the serialized variant names), so the two cannot disagree.
macro_rules! flat_variants {
    ($($name:ident),* $(,)?) => {
        /// A variant of the flat encoding.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Flat {
            $($name),*
        }

        /// The name of each flat variant, by index.
        const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

// The variants of the old flat `Timer`, in its declaration order. The index of a variant is part
// of every trace hash: never reorder, rename or remove one (a new kind of timer goes at the end).
flat_variants![
    HeartbeatTick,
    HeartbeatTimeout,
    RegistrationAttemptTimeout,
    RegistrationRetry,
    TaskExecutorRegistrationTimeout,
    SlotReportTimeout,
    SlotTimeout,
    TaskStep,
    TaskTick,
    PartitionRequestRetry,
    OfferSlotsTimeout,
    UpdateTaskStateTimeout,
    RestartDelay,
    SlotRequestTimeout,
    SlotIdleCheck,
    DeclareResourcesRetry,
    SubmitTaskTimeout,
    CheckpointTrigger,
    CheckpointTimeout,
    CancelTaskRetry,
    RequirementCheck,
    RequestSlotTimeout,
    TaskManagerIdleCheck,
    SubmitJob,
    HaTick,
    HaExpiry,
];

/// One field value of a flat variant; hashed and serialized as the value alone.
#[derive(Clone, Copy, Debug)]
enum Field {
    Pair(HeartbeatPair),
    Job(Option<JobId>),
    Bool(bool),
    Node(NodeId),
    Target(RegistrationTarget),
    U64(u64),
    Attempt(ExecutionAttemptId),
}

impl Hash for Field {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Field::Pair(v) => v.hash(state),
            Field::Job(v) => v.hash(state),
            Field::Bool(v) => v.hash(state),
            Field::Node(v) => v.hash(state),
            Field::Target(v) => v.hash(state),
            Field::U64(v) => v.hash(state),
            Field::Attempt(v) => v.hash(state),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Pair(v) => v.serialize(s),
            Field::Job(v) => v.serialize(s),
            Field::Bool(v) => v.serialize(s),
            Field::Node(v) => v.serialize(s),
            Field::Target(v) => v.serialize(s),
            Field::U64(v) => v.serialize(s),
            Field::Attempt(v) => v.serialize(s),
        }
    }
}

/// The most fields a flat variant has.
const FIELDS_MAX: usize = 4;

/// A tag in the flat encoding: its variant and its named fields, in declaration order.
struct FlatTag {
    variant: Flat,
    fields: [(&'static str, Field); FIELDS_MAX],
    len: usize,
}

impl FlatTag {
    fn new<const N: usize>(variant: Flat, fields: [(&'static str, Field); N]) -> FlatTag {
        let mut padded = [("", Field::U64(0)); FIELDS_MAX];
        padded[..N].copy_from_slice(&fields);
        FlatTag {
            variant,
            fields: padded,
            len: N,
        }
    }

    fn fields(&self) -> &[(&'static str, Field)] {
        &self.fields[..self.len]
    }

    /// A heartbeat manager's timer of `pair` on the sending or receiving side.
    fn heartbeat(pair: HeartbeatPair, job: Option<JobId>, sender: bool, t: HeartbeatTimer) -> Self {
        let (pair, job) = (("pair", Field::Pair(pair)), ("job", Field::Job(job)));
        match t {
            HeartbeatTimer::Tick => FlatTag::new(Flat::HeartbeatTick, [pair, job]),
            HeartbeatTimer::Timeout { target } => FlatTag::new(
                Flat::HeartbeatTimeout,
                [
                    pair,
                    job,
                    ("sender", Field::Bool(sender)),
                    ("target", Field::Node(target)),
                ],
            ),
        }
    }

    /// A `RetryingRegistration`'s timer for `target`.
    fn registration(target: RegistrationTarget, t: RegistrationTimer) -> FlatTag {
        let (variant, attempt_id) = match t {
            RegistrationTimer::AttemptTimeout { attempt_id } => {
                (Flat::RegistrationAttemptTimeout, attempt_id)
            }
            RegistrationTimer::Retry { attempt_id } => (Flat::RegistrationRetry, attempt_id),
        };
        FlatTag::new(
            variant,
            [
                ("target", Field::Target(target)),
                ("attempt_id", Field::U64(attempt_id)),
            ],
        )
    }
}

impl Timer {
    fn flat(&self) -> FlatTag {
        match self {
            Timer::TaskExecutor(t) => task_executor(t),
            Timer::JobMaster { job_id, timer } => job_master(*job_id, timer),
            Timer::ResourceManager(t) => resource_manager(t),
            Timer::SubmitJob => FlatTag::new(Flat::SubmitJob, []),
            Timer::HaTick => FlatTag::new(Flat::HaTick, []),
            Timer::HaExpiry => FlatTag::new(Flat::HaExpiry, []),
        }
    }
}

fn task_executor(t: &TaskExecutorTimer) -> FlatTag {
    use Field::{Attempt, U64};
    use TaskExecutorTimer as T;
    let receiver = |pair, job, target| {
        FlatTag::heartbeat(pair, job, false, HeartbeatTimer::Timeout { target })
    };
    match *t {
        T::ResourceManagerHeartbeatTimeout { target } => {
            receiver(HeartbeatPair::ResourceManagerTaskExecutor, None, target)
        }
        T::JobManagerHeartbeatTimeout { job_id, target } => {
            receiver(HeartbeatPair::JobMasterTaskExecutor, Some(job_id), target)
        }
        T::ResourceManagerRegistration(r) => {
            FlatTag::registration(RegistrationTarget::ResourceManager, r)
        }
        T::JobManagerRegistration { job_id, timer } => {
            FlatTag::registration(RegistrationTarget::JobMaster(job_id), timer)
        }
        T::RegistrationTimeout => FlatTag::new(Flat::TaskExecutorRegistrationTimeout, []),
        T::SlotReportTimeout { instance_id } => {
            FlatTag::new(Flat::SlotReportTimeout, [("instance_id", U64(instance_id))])
        }
        T::SlotTimeout {
            allocation_id,
            ticket,
        } => FlatTag::new(
            Flat::SlotTimeout,
            [
                ("allocation_id", U64(allocation_id)),
                ("ticket", U64(ticket)),
            ],
        ),
        T::TaskStep { attempt } => FlatTag::new(Flat::TaskStep, [("attempt", Attempt(attempt))]),
        T::TaskTick { attempt } => FlatTag::new(Flat::TaskTick, [("attempt", Attempt(attempt))]),
        T::PartitionRequestRetry { consumer, producer } => FlatTag::new(
            Flat::PartitionRequestRetry,
            [
                ("consumer", Attempt(consumer)),
                ("producer", Attempt(producer)),
            ],
        ),
        T::OfferSlotsTimeout { job_id, offer_id } => FlatTag::new(
            Flat::OfferSlotsTimeout,
            [("job_id", U64(job_id)), ("offer_id", U64(offer_id))],
        ),
        T::UpdateTaskStateTimeout { attempt } => FlatTag::new(
            Flat::UpdateTaskStateTimeout,
            [("attempt", Attempt(attempt))],
        ),
    }
}

fn job_master(job_id: JobId, t: &JobMasterTimer) -> FlatTag {
    use JobMasterTimer as J;
    // Every JobMaster timer but the services' led with its job.
    let job = ("job_id", Field::U64(job_id));
    let with_job = |variant, name, value| FlatTag::new(variant, [job, (name, value)]);
    match *t {
        J::TaskManagerHeartbeat(h) => {
            FlatTag::heartbeat(HeartbeatPair::JobMasterTaskExecutor, Some(job_id), true, h)
        }
        J::ResourceManagerHeartbeatTimeout { target } => FlatTag::heartbeat(
            HeartbeatPair::ResourceManagerJobMaster,
            Some(job_id),
            false,
            HeartbeatTimer::Timeout { target },
        ),
        J::ResourceManagerRegistration(r) => {
            FlatTag::registration(RegistrationTarget::ResourceManagerForJob(job_id), r)
        }
        J::RestartDelay { version } => with_job(Flat::RestartDelay, "version", Field::U64(version)),
        J::SlotRequestTimeout { version } => {
            with_job(Flat::SlotRequestTimeout, "version", Field::U64(version))
        }
        J::SlotIdleCheck => FlatTag::new(Flat::SlotIdleCheck, [job]),
        J::DeclareResourcesRetry { version } => {
            with_job(Flat::DeclareResourcesRetry, "version", Field::U64(version))
        }
        J::SubmitTaskTimeout { attempt } => {
            with_job(Flat::SubmitTaskTimeout, "attempt", Field::Attempt(attempt))
        }
        J::CheckpointTrigger { version } => {
            with_job(Flat::CheckpointTrigger, "version", Field::U64(version))
        }
        J::CheckpointTimeout { checkpoint_id } => with_job(
            Flat::CheckpointTimeout,
            "checkpoint_id",
            Field::U64(checkpoint_id),
        ),
        J::CancelTaskRetry { attempt } => {
            with_job(Flat::CancelTaskRetry, "attempt", Field::Attempt(attempt))
        }
    }
}

fn resource_manager(t: &ResourceManagerTimer) -> FlatTag {
    use ResourceManagerTimer as R;
    match *t {
        R::TaskManagerHeartbeat(h) => {
            FlatTag::heartbeat(HeartbeatPair::ResourceManagerTaskExecutor, None, true, h)
        }
        R::JobManagerHeartbeat { job_id, timer } => FlatTag::heartbeat(
            HeartbeatPair::ResourceManagerJobMaster,
            Some(job_id),
            true,
            timer,
        ),
        R::RequirementCheck => FlatTag::new(Flat::RequirementCheck, []),
        R::RequestSlotTimeout { allocation_id } => FlatTag::new(
            Flat::RequestSlotTimeout,
            [("allocation_id", Field::U64(allocation_id))],
        ),
        R::TaskManagerIdleCheck => FlatTag::new(Flat::TaskManagerIdleCheck, []),
    }
}

impl Hash for Timer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let flat = self.flat();
        (flat.variant as isize).hash(state);
        for (_, value) in flat.fields() {
            value.hash(state);
        }
    }
}

impl Serialize for Timer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let flat = self.flat();
        let (index, name) = (flat.variant as u32, NAMES[flat.variant as usize]);
        if flat.len == 0 {
            return s.serialize_unit_variant("Timer", index, name);
        }
        let mut v = s.serialize_struct_variant("Timer", index, name, flat.len)?;
        for (key, value) in flat.fields() {
            v.serialize_field(key, value)?;
        }
        v.end()
    }
}

#[cfg(test)]
mod tests;
