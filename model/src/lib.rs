//! `model` — Apache Flink's JobManager/TaskManager protocol as sans-IO actors on `sim`.
//!
//! Components keep Flink's names (ResourceManager, TaskExecutor, `RetryingRegistration`,
//! `HeartbeatManager`), states, configuration keys and defaults. They talk only through
//! messages ([`rpc::Msg`]) on the simulated network. Oracles ([`oracle`]) watch the trace and
//! never call into components; planted bugs ([`bugs`]) make the model wrong on purpose so the
//! oracles can be shown to catch them.
//!
//! ```
//! use model::{bugs::Bugs, config::FlinkConfig, process::{ClusterSetup, Process, Topology}};
//! use sim::{Clock, Limits, NetConfig, NodeId, NodeSpec, Time, World};
//!
//! let mut config = FlinkConfig::default();
//! config.set("heartbeat.interval", "1 s").unwrap();
//! config.set("heartbeat.timeout", "5 s").unwrap();
//! let setup = ClusterSetup {
//!     topology: Topology {
//!         jobmanagers: vec![NodeId(0)],
//!         taskmanagers: vec![NodeId(1)],
//!         ..Topology::default()
//!     },
//!     config,
//!     bugs: Bugs::NONE,
//!     submission: None,
//! };
//! let nodes = ["jobmanager-1", "taskmanager-1"]
//!     .map(|n| NodeSpec { name: n.into(), clock: Clock::default(), start: true }).into();
//! let mut world = World::new(7, NetConfig::default(), nodes, move |node, durable| Process::build(node, &setup, durable));
//! world.run(Limits { time_max: Time::from_secs(10), ..Limits::default() }, &mut ());
//! let te = world.actor(NodeId(1)).unwrap().task_executor().unwrap();
//! assert!(te.connected_instance().is_some()); // registered at the ResourceManager
//! ```

pub mod bugs;
pub mod checkpoint;
pub mod checkpoint_coordinator;
pub mod checkpoint_storage;
pub mod client;
pub mod config;
pub mod dispatcher;
pub mod failover_strategy;
pub mod ha_client;
pub mod ha_node;
pub mod ha_store;
pub mod heartbeat;
pub mod ids;
pub mod job_graph;
pub mod job_master;
pub mod jobmanager;
pub mod obs;
pub mod oracle;
pub mod probes;
pub mod process;
pub mod records;
pub mod reference;
pub mod registration;
pub mod resource_manager;
pub mod restart_strategy;
pub mod rpc;
pub mod sink_store;
pub mod source_log;
pub mod states;
pub mod stream;
pub mod task;
pub mod task_executor;
pub mod task_slot_table;
