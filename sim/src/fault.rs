//! Faults the kernel can inject: process faults (kill, start, pause, resume, exit, slow),
//! network faults (partition, heal, clog), message faults aimed at kinds of messages (delay,
//! drop, drop the reply) and clock faults (wall-clock jumps).
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
    /// From now on, the messages `rule` matches are delayed, dropped, or have their replies
    /// dropped (see [`MessageRule`]).
    Messages(MessageRule),
    /// The node's handlers take `per_event` each from now on: its events (messages, timers,
    /// unreachable notices) are handled one after another, each `per_event` after the later of
    /// its arrival and the end of the previous one. An overloaded or swapping process, not a
    /// frozen one ([`Fault::Pause`]). `per_event` zero restores normal speed. The slowness
    /// belongs to the machine: it outlives a restart of the process.
    Slow { node: NodeId, per_event: Duration },
}

/// What happens to a message a [`MessageRule`] matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageAction {
    /// Held `by`. A reply is handed to the network `by` later (an answer whose future
    /// completes late), so what its sender sends meanwhile overtakes it; a request or one-way
    /// message stalls its link `by` longer than the latency, and later messages on that link
    /// queue behind it (links deliver in order, as TCP does).
    Delay(Duration),
    /// It vanishes, as if lost: the sender hears nothing.
    Drop,
    /// It is delivered and handled; whatever reply the receiver sends back to its sender while
    /// handling it ([`Message::is_reply`](crate::Message::is_reply)) vanishes. The receiver
    /// applied the request; the sender never learns that it did.
    DropReply,
}

/// Which messages an aimed message fault acts on, what it does to them, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageRule {
    /// Message names ([`Message::name`](crate::Message::name)), compared without regard to
    /// case; `gateway.name` also matches the gateway ([`Message::gateway`](crate::Message::gateway)).
    /// Empty: every message.
    pub kinds: Vec<String>,
    /// Senders the rule applies to; empty: any.
    pub from: Vec<NodeId>,
    /// Receivers the rule applies to; empty: any.
    pub to: Vec<NodeId>,
    pub action: MessageAction,
    /// The rule acts on this many matching messages and ends; `None`: no limit.
    pub count: Option<u32>,
    /// The rule ends this long after it starts; `None`: no limit.
    pub lasting: Option<Duration>,
}

impl MessageRule {
    /// Whether the rule covers a message named `name` on `gateway` from `from` to `to`.
    pub fn covers(&self, gateway: &str, name: &str, from: NodeId, to: NodeId) -> bool {
        (self.from.is_empty() || self.from.contains(&from))
            && (self.to.is_empty() || self.to.contains(&to))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| kind_matches(k, gateway, name)))
    }
}

/// `pattern` is `name` or `gateway.name`, without regard to case. Names may contain dots
/// themselves (`submitTask.response`), so a qualified pattern is tried both ways.
pub fn kind_matches(pattern: &str, gateway: &str, name: &str) -> bool {
    if pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    match pattern.split_once('.') {
        Some((g, n)) => {
            !gateway.is_empty() && g.eq_ignore_ascii_case(gateway) && n.eq_ignore_ascii_case(name)
        }
        None => false,
    }
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
            Fault::Messages(r) => match r.action {
                MessageAction::Delay(_) => "delay-messages",
                MessageAction::Drop => "drop-messages",
                MessageAction::DropReply => "drop-replies",
            },
            Fault::Slow { per_event, .. } if per_event.is_zero() => "slow-end",
            Fault::Slow { .. } => "slow",
        }
    }

    /// The single node the fault targets, if any.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Fault::Kill(n) | Fault::Start(n) | Fault::Pause(n) | Fault::Resume(n) => Some(*n),
            Fault::ClockJump { node, .. }
            | Fault::Signal { node, .. }
            | Fault::Slow { node, .. } => Some(*node),
            _ => None,
        }
    }
}
