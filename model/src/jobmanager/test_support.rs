//! What the JobManager-side unit tests share: a small cluster's setup, job specs, and readers of
//! the effects a handler returned (messages sent, observations traced, timers armed). Each
//! component's `tests.rs` drives its component through `sim::testing::Driver` with these.

use crate::checking::bugs::Bugs;
use crate::client::job_id_of;
use crate::process::{ClusterSetup, Topology};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::{
    JobSpec, OperatorKind, OperatorSpec, SinkKind, SinkSpec, SourceSpec,
};
use crate::protocol::rpc::Msg;
use crate::protocol::Flink;
use sim::{Effect, NodeId};
use std::sync::Arc;

pub type Effects = Vec<Effect<Flink>>;

/// The JobManager process (Dispatcher, ResourceManager and JobMasters share it).
pub const JM: NodeId = NodeId(0);
pub const TM1: NodeId = NodeId(1);
pub const TM2: NodeId = NodeId(2);
pub const CLIENT: NodeId = NodeId(5);
pub const HA: NodeId = NodeId(6);
pub const SOURCE_LOG: NodeId = NodeId(9);

/// One JobManager, two TaskManagers, a client and a source log; `keys` are Flink options.
pub fn setup(keys: &[(&str, &str)]) -> ClusterSetup {
    let mut config = FlinkConfig::default();
    for (k, v) in keys {
        config.set(k, v).unwrap();
    }
    config.validate().unwrap();
    ClusterSetup {
        topology: Topology {
            jobmanagers: vec![JM],
            taskmanagers: vec![TM1, TM2],
            client: Some(CLIENT),
            source_log: Some(SOURCE_LOG),
            ..Topology::default()
        },
        config,
        bugs: Bugs::NONE,
        submission: None,
    }
}

/// A job named `name`: a source of `parallelism` partitions, then `operators`, then a discarding
/// sink.
pub fn spec(name: &str, parallelism: u32, operators: Vec<OperatorKind>) -> Arc<JobSpec> {
    Arc::new(JobSpec {
        name: name.to_string(),
        parallelism,
        max_parallelism: None,
        chaining: true,
        source: SourceSpec {
            partitions: parallelism,
            records: 10,
            rate_per_sec: None,
        },
        more_sources: Vec::new(),
        operators: operators
            .into_iter()
            .map(|kind| OperatorSpec {
                kind,
                name: None,
                parallelism: None,
            })
            .collect(),
        sink: SinkSpec {
            kind: SinkKind::Discard,
            parallelism: None,
        },
    })
}

/// The id the client gives a job (what the HA path checks submissions against).
pub fn job_id(spec: &JobSpec) -> JobId {
    job_id_of(spec)
}

/// The messages sent, in order.
pub use sim::testing::sent as sends;
/// The observations traced, in order.
pub use sim::testing::traces;

/// The messages sent to `to`, in order.
pub fn sends_to(out: &Effects, to: NodeId) -> Vec<&Msg> {
    sends(out)
        .into_iter()
        .filter(|(n, _)| *n == to)
        .map(|(_, m)| m)
        .collect()
}
