//! The external systems a Flink cluster depends on, each a node of its own so it can be slow,
//! partitioned or down: the replayable [`source_log`], the [`checkpoint_storage`] blob store,
//! the transactional [`sink_store`], and the ZooKeeper-like [`ha`] service with the client
//! recipes Flink builds on it.

pub mod checkpoint_storage;
pub mod ha;
pub mod sink_store;
pub mod source_log;
