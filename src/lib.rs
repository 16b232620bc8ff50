//! `flinksim` — a deterministic simulation testbed for Apache Flink's distributed runtime.
//!
//! Everything the CLI does is available here (README: "Using flinksim as a library");
//! `tests/properties.rs` is a worked example of a team's own proptest over fault schedules,
//! written against this API only.
//!
//! This crate turns scenario files into runs: [`scenario`] parses and validates them, [`run`]
//! builds a `sim` world of `model` processes for a seed and runs it under the oracles,
//! [`summary`] and [`report`] describe the result, and [`cli`] is the command line.
//!
//! ```
//! use flinksim::{run::{run, RunOptions}, scenario::Scenario};
//! use std::path::Path;
//!
//! let text = r#"
//!     name = "example"
//!     duration = "30s"
//!     [cluster]
//!     taskmanagers = 2
//!     [flink]
//!     "heartbeat.interval" = "1 s"
//!     "heartbeat.timeout" = "5 s"
//!     [[faults]]
//!     at = "10s"
//!     kill = "taskmanager-2"
//! "#;
//! let scenario = Scenario::parse(Path::new("example.toml"), text).unwrap();
//! let a = run(&scenario, RunOptions { seed: 7, ..RunOptions::default() });
//! let b = run(&scenario, RunOptions { seed: 7, ..RunOptions::default() });
//! assert!(a.summary.passed());
//! assert_eq!(a.summary.trace_hash, b.summary.trace_hash);
//! assert_eq!(a.summary.taskmanagers_lost[0].taskmanager, "taskmanager-2");
//! ```

pub mod check;
pub mod cli;
pub mod determinism;
pub mod explore;
pub mod fault_schedule;
pub mod nemesis;
pub mod report;
pub mod run;
pub mod scenario;
pub mod selftest;
pub mod shrink;
pub mod summary;
