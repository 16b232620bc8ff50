//! `model` — Apache Flink's JobManager/TaskManager protocol as sans-IO actors on `sim`.
//!
//! Components keep Flink's names (ResourceManager, TaskExecutor, `RetryingRegistration`,
//! `HeartbeatManager`), states, configuration keys and defaults. They talk only through
//! messages ([`protocol::rpc::Msg`]) on the simulated network. The crate is laid out by Flink
//! process, and dependencies point one way: `sim` → [`protocol`] (the shared vocabulary) →
//! components ([`services`], [`jobmanager`], [`taskmanager`], [`external`], [`client`]) →
//! [`process`] (the `sim::Actor` that hosts them) → the runner in the root crate. Oracles
//! ([`checking::oracle`]) watch the trace and never call into components; planted bugs
//! ([`checking::bugs`]) make the model wrong on purpose so the oracles can be shown to catch
//! them. docs/architecture.md describes the layers.
//!
//! ```
//! use model::checking::bugs::Bugs;
//! use model::process::{ClusterSetup, Process, Topology};
//! use model::protocol::config::FlinkConfig;
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

pub mod checking;
pub mod client;
pub mod external;
pub mod jobmanager;
pub mod process;
pub mod protocol;
pub mod services;
pub mod taskmanager;
