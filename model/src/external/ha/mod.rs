//! ZooKeeper high availability: the linearizable [`store`] of the `ha` node, the [`node`] that
//! hosts it (and the per-process glue), and the [`client`] side: the session and the recipes
//! Flink builds on it.

pub mod client;
pub mod node;
pub mod store;
