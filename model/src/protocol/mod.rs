//! The shared vocabulary of the model: what Flink's processes say to each other and to the
//! observers. Every component and every oracle depends on this layer; it depends on nothing but
//! `sim`.
//!
//! It owns the RPC messages ([`rpc`]), observations ([`obs`]), identifiers ([`ids`]), the
//! lifecycle states ([`states`]), checkpoint and data-plane types ([`checkpoint`]), the records
//! of a job ([`records`]), the job's graph ([`job_graph`]), the configuration ([`config`]) and
//! the timer tags, nested by the component that arms them ([`timer`]). It does not own behaviour.

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

    // The trace carries typed JSON (serde), which the report reads back with serde.
    fn trace_msg(msg: &rpc::Msg) -> String {
        to_json(msg)
    }
    fn trace_timer(tag: &timer::Timer) -> String {
        to_json(tag)
    }
    fn trace_obs(obs: &obs::Obs) -> String {
        to_json(obs)
    }
    fn trace_op(op: &durable::DurableOp) -> String {
        to_json(op)
    }
}

/// A payload as JSON. The vocabulary's types are plain data (no maps with non-string keys), so
/// serializing cannot fail.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("the vocabulary serializes to JSON")
}
