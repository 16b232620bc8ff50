//! Faults the kernel can inject: process faults (kill, start, pause, resume, exit), network
//! faults (partition, heal, clog) and clock faults (wall-clock jumps).
//!
//! What a fault *means* for a node (volatile state lost, events parked) is carried out by the
//! world; this module only names them.

use crate::actor::NodeId;
use crate::network::RuleId;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// SIGKILL: volatile state, timers and parked events are gone; durable state stays.
    Kill(NodeId),
    /// Starts a stopped process from its durable state. No-op if it is running or paused.
    Start(NodeId),
    /// SIGSTOP / a long GC pause: events for the node wait; its clocks keep running.
    Pause(NodeId),
    /// SIGCONT: waiting events are handled in their original order.
    Resume(NodeId),
    /// Groups that cannot reach each other (or, one-way, group 0 cannot reach group 1).
    Partition {
        groups: Vec<Vec<NodeId>>,
        one_way: bool,
        heal_after: Option<Duration>,
    },
    /// Extra latency between groups.
    Clog {
        groups: Vec<Vec<NodeId>>,
        one_way: bool,
        extra: Duration,
        clear_after: Option<Duration>,
    },
    /// Ends one partition or clog.
    Heal(RuleId),
    /// Ends every partition and clog.
    HealAll,
    /// Moves a node's wall clock by `by_ns` (its monotonic clock and timers are unaffected).
    ClockJump { node: NodeId, by_ns: i64 },
    /// Hands `code` to the actor of `node` (`Actor::on_signal`), if it is running; the model
    /// decides what it means (e.g. "the task of subtask 3 of vertex 1 throws").
    Signal { node: NodeId, code: u64 },
}

impl Fault {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Start(_) => "start",
            Fault::Pause(_) => "pause",
            Fault::Resume(_) => "resume",
            Fault::Partition { .. } => "partition",
            Fault::Clog { .. } => "clog",
            Fault::Heal(_) => "heal",
            Fault::HealAll => "heal-all",
            Fault::ClockJump { .. } => "clock-jump",
            Fault::Signal { .. } => "signal",
        }
    }

    /// The single node the fault targets, if any.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Fault::Kill(n) | Fault::Start(n) | Fault::Pause(n) | Fault::Resume(n) => Some(*n),
            Fault::ClockJump { node, .. } | Fault::Signal { node, .. } => Some(*node),
            _ => None,
        }
    }
}
