//! Sans-IO actors: the contract between the kernel and whatever it simulates.
//!
//! A handler gets its node's local time and one event and pushes effects into its [`Ctx`]:
//! send a message, set or cancel a timer, persist a durable change, trace an observation, exit.
//! The kernel applies the effects after the handler returns. The same actor can therefore be
//! driven by the [`World`](crate::World) or by hand in a unit test (see [`Ctx::detached`]).
//!
//! This module owns node ids, timer ids and the effect list; it does not own delivery, time or
//! faults.

use crate::rng::Rng;
use crate::time::Time;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

/// A dense node index, assigned in the order nodes are added to a world.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A message type the kernel can carry: cloneable (duplication), hashable with a fixed hash
/// (the trace hash) and printable (the trace file).
pub trait Message: Clone + Debug + Hash {
    /// A short static name for reports and diagrams (for example the RPC's name).
    fn name(&self) -> &'static str;
    /// The endpoint kind that receives it (for example the RPC gateway), so that aimed message
    /// faults can tell apart two messages of one name; empty when the model has none.
    fn gateway(&self) -> &'static str {
        ""
    }
    /// Whether it answers a request (aimed faults can drop the replies of requests they match).
    fn is_reply(&self) -> bool {
        self.name().ends_with(".response")
    }
}

/// The part of a node's state that survives a crash, changed only through [`Ctx::persist`].
pub trait Durable: Default {
    type Op: Debug + Hash;
    fn apply(&mut self, op: Self::Op);
}

impl Durable for () {
    type Op = ();
    fn apply(&mut self, _op: ()) {}
}

/// What the actors of one world speak and emit: the message, timer tag, observation and durable
/// change types. Handlers take a [`Ctx`] over the vocabulary, not over the actor, so a model's
/// components depend on its shared vocabulary and never on the type that routes events to them.
/// A small actor can be its own vocabulary (`type V = Self`).
pub trait Vocabulary: Sized {
    type Msg: Message;
    /// What a timer carries back to its node when it fires.
    type Timer: Clone + Debug + Hash;
    /// What a node reports to observers (oracles, reports): state transitions and effects.
    type Obs: Debug + Hash;
    /// A change to a node's durable state (see [`Durable`]).
    type Op: Debug + Hash;

    // How payloads are written into the JSON-lines trace, as one JSON value each. The defaults
    // write the Debug text as a JSON string; a model that can serialize its types writes them
    // typed, so that readers of the trace deserialize instead of parsing Debug text.

    /// A message's `body` in the trace.
    fn trace_msg(msg: &Self::Msg) -> String {
        crate::trace::json_str(&format!("{msg:?}"))
    }
    /// A timer's `timer` in the trace.
    fn trace_timer(tag: &Self::Timer) -> String {
        crate::trace::json_str(&format!("{tag:?}"))
    }
    /// An observation's `obs` in the trace.
    fn trace_obs(obs: &Self::Obs) -> String {
        crate::trace::json_str(&format!("{obs:?}"))
    }
    /// A durable change's `op` in the trace.
    fn trace_op(op: &Self::Op) -> String {
        crate::trace::json_str(&format!("{op:?}"))
    }
}

/// A simulated process. Everything not in `Durable` is volatile: the kernel drops the actor on a
/// crash and builds a new one from the durable state on restart.
pub trait Actor: Sized {
    /// The types its handlers exchange with the kernel.
    type V: Vocabulary;
    type Durable: Durable<Op = <Self::V as Vocabulary>::Op>;

    /// The process has started (first start or restart).
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::V>);
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::V>, from: NodeId, msg: Msg<Self>);
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::V>, timer: TimerId, tag: TimerTag<Self>);
    /// A message this node sent could not be delivered because the target process is down
    /// (connection refused or reset). Messages into a partition get no such answer.
    fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Self::V>, to: NodeId, msg: Msg<Self>);

    /// An external signal injected by a scenario (`Fault::Signal`), such as "the user code of
    /// this task throws". Its meaning belongs to the model; the default ignores it.
    fn on_signal(&mut self, _ctx: &mut Ctx<'_, Self::V>, _code: u64) {}
}

/// The message type of actor `A`.
pub type Msg<A> = <<A as Actor>::V as Vocabulary>::Msg;
/// The timer tag type of actor `A`.
pub type TimerTag<A> = <<A as Actor>::V as Vocabulary>::Timer;

/// An effect a handler asks the kernel to carry out.
#[derive(Debug)]
pub enum Effect<V: Vocabulary> {
    Send {
        to: NodeId,
        msg: V::Msg,
    },
    SetTimer {
        id: TimerId,
        after: Duration,
        tag: V::Timer,
    },
    Persist(V::Op),
    Trace(V::Obs),
    /// The process terminates itself (a fatal error); like a crash, volatile state is lost.
    Exit,
    /// Asks the orchestrator (Kubernetes, YARN) to start another node's process; a no-op if it
    /// is running. Models an active ResourceManager's driver.
    StartNode(NodeId),
    /// Asks the orchestrator to stop another node's process (a kill, as a pod deletion is).
    StopNode(NodeId),
}

/// A timer handle: a slot and the generation it was armed with.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// The timers of one node incarnation: a slab of generations. Cancelling bumps the generation so
/// the queued firing is recognised as stale when it pops; no queue search is needed. The top bit
/// of a slot's word says whether it is armed, the rest is its generation.
#[derive(Debug, Default)]
pub struct Timers {
    slots: Vec<u32>,
    free: Vec<u32>,
    armed_count: usize,
}

/// The most timers one node may have armed at once.
pub const TIMERS_PER_NODE_MAX: usize = 1 << 20;

const ARMED: u32 = 1 << 31;
const GENERATION: u32 = ARMED - 1;

impl Timers {
    fn allocate(&mut self) -> TimerId {
        assert!(
            self.armed_count < TIMERS_PER_NODE_MAX,
            "timer slab overflow"
        );
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let word = &mut self.slots[slot as usize];
        assert!(*word & ARMED == 0);
        *word |= ARMED;
        self.armed_count += 1;
        TimerId {
            slot,
            generation: *word & GENERATION,
        }
    }

    /// Disarms `id` if it is still armed; returns whether it was.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        if !self.is_armed(id) {
            return false;
        }
        let word = &mut self.slots[id.slot as usize];
        *word = (*word + 1) & GENERATION;
        self.armed_count -= 1;
        self.free.push(id.slot);
        true
    }

    /// Disarms every armed timer (an endpoint stopped with all its scheduled work).
    pub fn cancel_all(&mut self) {
        for slot in 0..self.slots.len() {
            let word = self.slots[slot];
            if word & ARMED != 0 {
                self.cancel(TimerId {
                    slot: slot as u32,
                    generation: word & GENERATION,
                });
            }
        }
    }

    /// Whether `id` is armed (set and neither fired nor cancelled).
    #[inline]
    pub fn is_armed(&self, id: TimerId) -> bool {
        self.slots.get(id.slot as usize) == Some(&(id.generation | ARMED))
    }

    /// Called by the kernel when a timer pops: true if it should fire (and disarms it).
    pub(crate) fn take_firing(&mut self, id: TimerId) -> bool {
        self.cancel(id)
    }

    pub fn armed_count(&self) -> usize {
        self.armed_count
    }
}

/// A handler's view of the world: its node, local clocks, randomness, timers and outbox.
pub struct Ctx<'a, V: Vocabulary> {
    node: NodeId,
    now: Time,
    mono_ns: u64,
    wall_ns: i64,
    rng: &'a mut Rng,
    timers: &'a mut Timers,
    out: &'a mut Vec<Effect<V>>,
}

impl<'a, V: Vocabulary> Ctx<'a, V> {
    pub(crate) fn new(
        node: NodeId,
        now: Time,
        mono_ns: u64,
        wall_ns: i64,
        rng: &'a mut Rng,
        timers: &'a mut Timers,
        out: &'a mut Vec<Effect<V>>,
    ) -> Self {
        Ctx {
            node,
            now,
            mono_ns,
            wall_ns,
            rng,
            timers,
            out,
        }
    }

    /// A context outside any world, for driving an actor by hand in unit tests. Local clocks equal
    /// `now`; effects land in `out`.
    pub fn detached(
        node: NodeId,
        now: Time,
        rng: &'a mut Rng,
        timers: &'a mut Timers,
        out: &'a mut Vec<Effect<V>>,
    ) -> Self {
        Ctx::new(
            node,
            now,
            now.as_nanos(),
            now.as_nanos() as i64,
            rng,
            timers,
            out,
        )
    }

    pub fn me(&self) -> NodeId {
        self.node
    }

    /// The node's local monotonic clock, in nanoseconds. Timers run on this clock.
    pub fn mono_ns(&self) -> u64 {
        self.mono_ns
    }

    /// The node's local wall clock, in milliseconds (for timestamps).
    pub fn wall_ms(&self) -> i64 {
        self.wall_ns.div_euclid(1_000_000)
    }

    /// True time. Only for tracing; protocol code must not branch on it.
    pub fn true_time(&self) -> Time {
        self.now
    }

    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    pub fn send(&mut self, to: NodeId, msg: V::Msg) {
        self.out.push(Effect::Send { to, msg });
    }

    /// Arms a timer that fires after `after` on the node's monotonic clock.
    pub fn set_timer(&mut self, after: Duration, tag: V::Timer) -> TimerId {
        let id = self.timers.allocate();
        self.out.push(Effect::SetTimer { id, after, tag });
        id
    }

    /// Disarms a timer; a no-op if it already fired or was cancelled. Returns whether it was armed.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    pub fn is_armed(&self, id: TimerId) -> bool {
        self.timers.is_armed(id)
    }

    /// Disarms every timer of this node incarnation (its endpoints stopped); timers armed later
    /// in the same step are unaffected.
    pub fn cancel_all_timers(&mut self) {
        self.timers.cancel_all();
    }

    pub fn persist(&mut self, op: V::Op) {
        self.out.push(Effect::Persist(op));
    }

    pub fn trace(&mut self, obs: V::Obs) {
        self.out.push(Effect::Trace(obs));
    }

    pub fn exit(&mut self) {
        self.out.push(Effect::Exit);
    }

    /// Asks the orchestrator to start `node` (see [`Effect::StartNode`]).
    pub fn start_node(&mut self, node: NodeId) {
        self.out.push(Effect::StartNode(node));
    }

    /// Asks the orchestrator to stop `node` (see [`Effect::StopNode`]).
    pub fn stop_node(&mut self, node: NodeId) {
        self.out.push(Effect::StopNode(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_and_fired_timers_are_stale() {
        let mut t = Timers::default();
        let a = t.allocate();
        let b = t.allocate();
        assert!(t.cancel(a));
        assert!(!t.cancel(a));
        let c = t.allocate(); // reuses a's slot with a new generation
        assert!(!t.is_armed(a));
        assert!(t.is_armed(c));
        assert!(t.take_firing(b));
        assert!(!t.take_firing(b));
        assert_eq!(t.armed_count(), 1);
        t.cancel_all();
        assert_eq!(t.armed_count(), 0);
        assert!(!t.is_armed(c));
        let d = t.allocate();
        assert!(t.is_armed(d));
    }
}
