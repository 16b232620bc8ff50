//! The shared vocabulary of the model: what Flink's processes say to each other and to the
//! observers. Every component and every oracle depends on this layer; it depends on nothing but
//! `sim`.
//!
//! It owns the RPC messages ([`rpc`]), observations ([`obs`]), identifiers ([`ids`]), the
//! lifecycle states ([`states`]), checkpoint and data-plane types ([`checkpoint`]), the records
//! of a job ([`records`]), the job's graph ([`job_graph`]) and the configuration ([`config`]).
//! It does not own behaviour.

pub mod checkpoint;
pub mod config;
pub mod durable;
pub mod ha;
pub mod ids;
pub mod job_graph;
pub mod obs;
pub mod records;
pub mod rpc;
pub mod states;
pub mod timer;

/// The model's vocabulary for the kernel: what Flink's endpoints send ([`rpc::Msg`]), the tags
/// of their timers ([`timer::Timer`]), their observations ([`obs::Obs`]) and their durable
/// changes ([`durable::DurableOp`]). Components take a `sim::Ctx<'_, Flink>`, so they depend on
/// this vocabulary and not on the process type that routes events to them.
#[derive(Debug)]
pub enum Flink {}

impl sim::Vocabulary for Flink {
    type Msg = rpc::Msg;
    type Timer = timer::Timer;
    type Obs = obs::Obs;
    type Op = durable::DurableOp;
}
