//! The JobManager process and the endpoints it hosts: the [`dispatcher`], the
//! [`resource_manager`] with its SlotManager, one [`job_master`] per job, and — with high
//! availability — the leadership that starts and stops them ([`process`]).

pub mod dispatcher;
pub mod job_master;
pub mod process;
pub mod resource_manager;
#[cfg(test)]
mod test_support;
