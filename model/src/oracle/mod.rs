//! Oracles: checkers outside the system. They observe every traced event (deliveries, faults,
//! observations), keep their own ground truth and report violations; they never call into
//! components. One concern per file.
//!
//! Kinds follow STYLE.md: **always** (safety, checked on every event), **eventually** (liveness,
//! judged at the end of a run once faults have been quiet long enough).

pub mod heartbeat;
pub mod registration;

use crate::config::FlinkConfig;
use crate::process::{Process, Topology};
use sim::{Census, Event, NodeId, Observer, Time};
use std::time::Duration;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    /// True time.
    pub at: Time,
    pub node: Option<NodeId>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Always,
    Eventually,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Always => "always",
            Kind::Eventually => "eventually",
        }
    }
}

/// A named invariant, for `flinksim list invariants` and `[expect] invariants`.
#[derive(Clone, Copy, Debug)]
pub struct Invariant {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

pub const INVARIANTS: &[Invariant] = &[heartbeat::INVARIANT, registration::INVARIANT];

pub fn invariant(name: &str) -> Option<&'static Invariant> {
    INVARIANTS.iter().find(|i| i.name == name)
}

/// What oracles know about the run beyond the trace: the configuration they judge against.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: FlinkConfig,
    pub topology: Topology,
    /// The largest one-way network latency (without clogging).
    pub latency_max: Duration,
}

pub trait Oracle {
    fn invariant(&self) -> &'static Invariant;
    fn observe(&mut self, census: &Census, ev: &Event<'_, Process>, out: &mut Vec<Violation>);
    /// The run ended at `end`: judge what must eventually hold.
    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>);
}

/// The oracles of a run, as one kernel observer.
pub struct Oracles {
    oracles: Vec<Box<dyn Oracle>>,
    pub violations: Vec<Violation>,
    /// Stop the run at the first violation.
    pub stop_on_violation: bool,
}

impl Oracles {
    /// The oracles for the named invariants (all when `names` is `None`).
    pub fn new(setup: &Setup, names: Option<&[String]>) -> Oracles {
        let wanted = |n: &str| names.is_none_or(|list| list.iter().any(|x| x == n));
        let mut oracles: Vec<Box<dyn Oracle>> = Vec::new();
        if wanted(heartbeat::INVARIANT.name) {
            oracles.push(Box::new(heartbeat::HeartbeatDetection::new(setup)));
        }
        if wanted(registration::INVARIANT.name) {
            oracles.push(Box::new(registration::RegistrationLiveness::new(setup)));
        }
        Oracles {
            oracles,
            violations: Vec::new(),
            stop_on_violation: true,
        }
    }

    pub fn finish(&mut self, census: &Census, end: Time) {
        for o in &mut self.oracles {
            o.finish(census, end, &mut self.violations);
        }
    }
}

impl Observer<Process> for Oracles {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, Process>) {
        for o in &mut self.oracles {
            o.observe(census, ev, &mut self.violations);
        }
    }

    fn wants_stop(&self) -> bool {
        self.stop_on_violation && !self.violations.is_empty()
    }
}

/// Seconds with millisecond precision, for messages.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
