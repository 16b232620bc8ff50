//! The world of one run: nodes, the event queue, the network, clocks, faults and the trace, driven
//! by one loop on one thread.
//!
//! The world owns the semantics of process faults: a killed node loses its actor (volatile state),
//! timers and waiting events and keeps its durable state; a message to a node that is down comes
//! back to its sender as *unreachable*; a paused node's events wait and are handled in order when
//! it resumes. It knows nothing of what the actors simulate.

use crate::actor::Message;
use crate::actor::{
    Actor, Ctx, Durable, Effect, Msg, NodeId, TimerId, TimerTag, Timers, Vocabulary,
};
use crate::clock::Clock;
use crate::fault::{Fault, MessageAction, MessageRule};
use crate::network::{NetConfig, Network, Route};
use crate::rng::{stream, Rng};
use crate::scheduler::Scheduler;
use crate::time::Time;
use crate::trace::{DropReason, Event, EventKind, Trace};
use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

/// The most events that may wait on one paused node; more are dropped and traced.
pub const PARKED_PER_NODE_MAX: usize = 1 << 20;

/// A process's run state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Up,
    Paused,
    Down,
}

/// Per-run limits: every run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop before handling an event later than this (true time).
    pub time_max: Time,
    /// Stop after this many queue events (counted across `run` calls, stale timers included).
    pub events_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_max: Time::from_secs(3600),
            events_max: 100_000_000,
        }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopReason {
    TimeLimit,
    EventBudget,
    /// Nothing left to do.
    Quiescent,
    /// The observer asked to stop.
    Observer,
    /// The event queue overflowed (a runaway model).
    QueueOverflow,
}

/// The result of [`World::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reason: StopReason,
    /// Traced events.
    pub events: u64,
    /// True time at the stop.
    pub time: Time,
    pub trace_hash: u64,
}

/// Sees every traced event (oracles, report collectors). Observers read; they never act on nodes.
pub trait Observer<V: Vocabulary> {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, V>);
    /// Checked before each event: true stops the run.
    fn wants_stop(&self) -> bool {
        false
    }
}

impl<V: Vocabulary> Observer<V> for () {
    fn on_event(&mut self, _: &Census, _: &Event<'_, V>) {}
}

/// The hot facts about one node, read on every event.
#[derive(Clone, Copy, Debug)]
struct NodeInfo {
    clock: Clock,
    status: Status,
    /// Bumped every time the process stops; events of an older incarnation are stale.
    incarnation: u32,
    /// How long each handler takes on this node ([`Fault::Slow`]); zero for a normal node.
    slow: Duration,
    /// Events waiting for their turn at a slow node (in `Node::backlog`).
    backlog: u32,
}

/// Read-only facts about nodes, for observers.
#[derive(Debug, Default)]
pub struct Census {
    names: Vec<String>,
    info: Vec<NodeInfo>,
}

impl Census {
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn name(&self, n: NodeId) -> &str {
        &self.names[n.index()]
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn id(&self, name: &str) -> Option<NodeId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| NodeId(i as u32))
    }
    pub fn clock(&self, n: NodeId) -> &Clock {
        &self.info[n.index()].clock
    }
    /// `n`'s monotonic clock at true time `t`, in nanoseconds.
    pub fn mono(&self, n: NodeId, t: Time) -> u64 {
        self.info[n.index()].clock.mono(t)
    }
    pub fn status(&self, n: NodeId) -> Status {
        self.info[n.index()].status
    }
    /// How many times `n`'s process has stopped.
    pub fn incarnation(&self, n: NodeId) -> u32 {
        self.info[n.index()].incarnation
    }
    /// Whether `n` is slow ([`Fault::Slow`]) or still has events it took on while slow: its
    /// handlers, timers included, run late.
    pub fn lagging(&self, n: NodeId) -> bool {
        let info = &self.info[n.index()];
        !info.slow.is_zero() || info.backlog > 0
    }
}

enum Pending<A: Actor> {
    Deliver {
        from: NodeId,
        to: NodeId,
        sent: Time,
        epoch: u32,
        /// The receiver's incarnation when sent (a restarted receiver resets the connection).
        incarnation: u32,
        /// The sender's incarnation when sent (only it may hear of a refusal).
        sender_incarnation: u32,
        /// Already arrived once and waited on a paused node: link checks are done.
        arrived: bool,
        msg: Msg<A>,
    },
    Unreachable {
        from: NodeId,
        to: NodeId,
        incarnation: u32,
        msg: Msg<A>,
    },
    Timer {
        node: NodeId,
        incarnation: u32,
        id: TimerId,
        tag: TimerTag<A>,
    },
    /// Boxed: faults are rare, and a small payload keeps the queue compact.
    Fault(Box<Fault>),
    /// A reply an aimed fault delayed at its sender (answered late): it enters the network now.
    Held(Box<Held<A>>),
    /// A slow node is done handling the oldest event of its backlog: it takes effect now.
    Turn { node: NodeId, incarnation: u32 },
}

struct Held<A: Actor> {
    from: NodeId,
    to: NodeId,
    sent: Time,
    sender_incarnation: u32,
    msg: Msg<A>,
}

/// Whether an event for a node in state `info` waits instead of being handled now: the node
/// is paused, or slow (or still has a backlog, so that it handles its events in order) and
/// the event has not waited its turn yet (`slowed`).
fn must_wait(info: &NodeInfo, slowed: bool) -> bool {
    info.status == Status::Paused || !slowed && (!info.slow.is_zero() || info.backlog > 0)
}

/// An aimed message fault in force.
struct ActiveRule {
    rule: MessageRule,
    remaining: Option<u32>,
    until: Option<Time>,
}

struct Node<A: Actor> {
    actor: Option<A>,
    durable: A::Durable,
    timers: Timers,
    parked: VecDeque<Pending<A>>,
    /// Events a slow node has taken on, oldest first; the first is handled at its next turn.
    backlog: VecDeque<Pending<A>>,
}

/// A node to add to a world.
pub struct NodeSpec {
    pub name: String,
    pub clock: Clock,
    /// Started at time 0 (otherwise it waits for a `Start` fault).
    pub start: bool,
}

type Factory<A> = Box<dyn FnMut(NodeId, &<A as Actor>::Durable) -> A>;

pub struct World<A: Actor> {
    now: Time,
    queue: Scheduler<Pending<A>>,
    nodes: Vec<Node<A>>,
    /// Per-node random streams, apart from `nodes` to keep the hot records small.
    rngs: Vec<Rng>,
    census: Census,
    net: Network,
    factory: Factory<A>,
    trace: Trace,
    scratch: Vec<Effect<A::V>>,
    popped: u64,
    /// Aimed message faults in force, oldest first.
    rules: Vec<ActiveRule>,
    /// While a node handles a request a `DropReply` rule matched: the requester, whose replies
    /// from that handler vanish.
    drop_replies_to: Option<NodeId>,
}

impl<A: Actor> World<A> {
    /// A world of `nodes` whose actors are built by `factory` (on start and on every restart).
    /// Randomness comes from streams of `seed`: `("network", 0)` and `("node", i)`.
    pub fn new(
        seed: u64,
        net: NetConfig,
        nodes: Vec<NodeSpec>,
        factory: impl FnMut(NodeId, &A::Durable) -> A + 'static,
    ) -> World<A> {
        let count = nodes.len();
        let mut world = World {
            now: Time::ZERO,
            queue: Scheduler::default(),
            nodes: Vec::with_capacity(count),
            rngs: Vec::with_capacity(count),
            census: Census::default(),
            net: Network::new(net, count, stream(seed, "network", 0)),
            factory: Box::new(factory),
            trace: Trace::default(),
            scratch: Vec::new(),
            popped: 0,
            rules: Vec::new(),
            drop_replies_to: None,
        };
        for (i, spec) in nodes.into_iter().enumerate() {
            world.nodes.push(Node {
                actor: None,
                durable: A::Durable::default(),
                timers: Timers::default(),
                parked: VecDeque::new(),
                backlog: VecDeque::new(),
            });
            world.rngs.push(stream(seed, "node", i as u64));
            world.census.names.push(spec.name);
            world.census.info.push(NodeInfo {
                clock: spec.clock,
                status: Status::Down,
                incarnation: 0,
                slow: Duration::ZERO,
                backlog: 0,
            });
            if spec.start {
                world.schedule(Time::ZERO, Fault::Start(NodeId(i as u32)));
            }
        }
        world
    }

    pub fn census(&self) -> &Census {
        &self.census
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The actor of a running node (for tests and final-state reports, never for the protocol).
    pub fn actor(&self, n: NodeId) -> Option<&A> {
        self.nodes[n.index()].actor.as_ref()
    }

    pub fn durable(&self, n: NodeId) -> &A::Durable {
        &self.nodes[n.index()].durable
    }

    /// Writes every traced event as a JSON line to `w`.
    pub fn record_trace(&mut self, w: Box<dyn Write>) {
        self.trace.set_writer(w);
    }

    /// Keeps what `tap` asks for of the trace (see [`Tap`](crate::trace::Tap)).
    pub fn tap_trace(&mut self, tap: crate::trace::Tap) {
        self.trace.set_tap(tap);
    }

    /// What the trace tap kept.
    pub fn take_tap(&mut self) -> crate::trace::Tap {
        self.trace.take_tap()
    }

    /// Flushes the trace writer and returns its first error, if any.
    pub fn finish_trace(&mut self) -> Option<std::io::Error> {
        self.trace.flush();
        self.trace.take_write_error()
    }

    /// Queues a fault at true time `at` (not before now).
    pub fn schedule(&mut self, at: Time, fault: Fault) {
        assert!(at >= self.now, "fault scheduled in the past");
        let queued = self.queue.push(at, Pending::Fault(Box::new(fault)));
        assert!(queued, "event queue full while scheduling a fault");
    }

    /// Runs until a limit, quiescence or the observer says stop.
    pub fn run(&mut self, limits: Limits, observer: &mut dyn Observer<A::V>) -> Outcome {
        let reason = loop {
            if observer.wants_stop() {
                break StopReason::Observer;
            }
            if self.popped >= limits.events_max {
                break StopReason::EventBudget;
            }
            match self.queue.peek_time() {
                None => break StopReason::Quiescent,
                Some(t) if t > limits.time_max => {
                    self.now = self.now.max(limits.time_max);
                    break StopReason::TimeLimit;
                }
                Some(_) => {}
            }
            let (time, pending) = self.queue.pop().expect("peeked");
            assert!(time >= self.now, "event queue went back in time");
            self.now = time;
            self.popped += 1;
            if !self.dispatch(pending, observer) {
                break StopReason::QueueOverflow;
            }
        };
        Outcome {
            reason,
            events: self.trace.events(),
            time: self.now,
            trace_hash: self.trace.hash(),
        }
    }

    fn emit(&mut self, kind: EventKind<'_, A::V>, observer: &mut dyn Observer<A::V>) {
        let ev = Event {
            index: self.trace.next_index(),
            time: self.now,
            kind,
        };
        self.trace.record(&ev, &self.census.names);
        observer.on_event(&self.census, &ev);
    }

    /// Traces that `msg` from `from` to `to` vanished.
    fn emit_drop(
        &mut self,
        from: NodeId,
        to: NodeId,
        msg: &Msg<A>,
        reason: DropReason,
        observer: &mut dyn Observer<A::V>,
    ) {
        self.emit(
            EventKind::Drop {
                from,
                to,
                msg,
                reason,
            },
            observer,
        );
    }

    fn push(&mut self, at: Time, p: Pending<A>) -> bool {
        self.queue.push(at, p)
    }

    /// Handles one queue event. Returns false on queue overflow.
    fn dispatch(&mut self, pending: Pending<A>, observer: &mut dyn Observer<A::V>) -> bool {
        self.dispatch_event(pending, observer, false)
    }

    /// An event that must wait: a paused node parks it, a slow node adds it to its backlog.
    /// A slow node handles one event per turn: each takes `slow` from the end of the one
    /// before (or from when it was taken on by an idle node); once the node is no longer slow,
    /// the rest of the backlog is handled at once, in order.
    fn wait_turn(
        &mut self,
        node: NodeId,
        p: Pending<A>,
        observer: &mut dyn Observer<A::V>,
    ) -> bool {
        if self.census.info[node.index()].status == Status::Paused {
            self.park(node, p, observer);
            return true;
        }
        self.nodes[node.index()].backlog.push_back(p);
        let info = &mut self.census.info[node.index()];
        info.backlog += 1;
        if info.backlog > 1 {
            return true; // a turn is already due
        }
        let (at, incarnation) = (self.now + info.slow, info.incarnation);
        self.push(at, Pending::Turn { node, incarnation })
    }

    /// A slow node's turn: the oldest event of its backlog takes effect (a paused node parks
    /// its whole backlog, ahead of what it parked already); the next turn is due `slow` later.
    fn turn(&mut self, node: NodeId, incarnation: u32, observer: &mut dyn Observer<A::V>) -> bool {
        let info = self.census.info[node.index()];
        if info.incarnation != incarnation || info.backlog == 0 {
            return true; // the process stopped since
        }
        let n = &mut self.nodes[node.index()];
        if info.status == Status::Paused {
            while let Some(p) = n.backlog.pop_back() {
                n.parked.push_front(p);
            }
            self.census.info[node.index()].backlog = 0;
            return true;
        }
        let p = n.backlog.pop_front().expect("a backlog");
        self.census.info[node.index()].backlog -= 1;
        if !self.dispatch_event(p, observer, true) {
            return false;
        }
        let info = self.census.info[node.index()];
        if info.incarnation != incarnation || info.backlog == 0 {
            return true;
        }
        self.push(self.now + info.slow, Pending::Turn { node, incarnation })
    }

    /// Handles one queue event; `slowed`: a slow node's turn for it has come.
    fn dispatch_event(
        &mut self,
        pending: Pending<A>,
        observer: &mut dyn Observer<A::V>,
        slowed: bool,
    ) -> bool {
        match pending {
            Pending::Fault(fault) => self.apply_fault(*fault, observer),
            Pending::Turn { node, incarnation } => self.turn(node, incarnation, observer),
            Pending::Held(h) => {
                let Held {
                    from,
                    to,
                    sent,
                    sender_incarnation,
                    msg,
                } = *h;
                let sender = self.census.info[from.index()];
                if sender.incarnation != sender_incarnation || sender.status == Status::Down {
                    let reason = DropReason::SenderDied;
                    self.emit_drop(from, to, &msg, reason, observer);
                    return true;
                }
                self.route(from, to, sent, Duration::ZERO, msg, observer)
            }
            Pending::Deliver {
                from,
                to,
                sent,
                epoch,
                incarnation,
                sender_incarnation,
                arrived,
                msg,
            } => {
                if !arrived && self.net.epoch(from, to) != epoch {
                    let reason = DropReason::LinkBroken;
                    self.emit_drop(from, to, &msg, reason, observer);
                    return true;
                }
                if !arrived && self.census.info[from.index()].incarnation != sender_incarnation {
                    // The sender died after sending: its connections died with it.
                    let reason = DropReason::SenderDied;
                    self.emit_drop(from, to, &msg, reason, observer);
                    return true;
                }
                let info = self.census.info[to.index()];
                if info.incarnation != incarnation || info.status == Status::Down {
                    // The connection was refused or reset: the sender hears about it one
                    // latency later, unless it is gone or cut off by now.
                    return self.bounce(from, sender_incarnation, to, msg, observer);
                }
                if must_wait(&info, slowed) {
                    let p = Pending::Deliver {
                        from,
                        to,
                        sent,
                        epoch,
                        incarnation,
                        sender_incarnation,
                        arrived: true,
                        msg,
                    };
                    return self.wait_turn(to, p, observer);
                }
                self.emit(
                    EventKind::Deliver {
                        from,
                        to,
                        sent,
                        msg: &msg,
                    },
                    observer,
                );
                if self.rules.is_empty() {
                    return self.handle(to, observer, |a, ctx| a.on_message(ctx, from, msg));
                }
                // A request whose reply an aimed fault drops: the receiver applies it.
                if self.take_rule(from, to, &msg, true).is_some() {
                    self.drop_replies_to = Some(from);
                }
                let ok = self.handle(to, observer, |a, ctx| a.on_message(ctx, from, msg));
                self.drop_replies_to = None;
                ok
            }
            Pending::Unreachable {
                from,
                to,
                incarnation,
                msg,
            } => {
                let info = self.census.info[from.index()];
                if info.incarnation != incarnation || info.status == Status::Down {
                    return true; // the answer reached a dead connection
                }
                if must_wait(&info, slowed) {
                    let p = Pending::Unreachable {
                        from,
                        to,
                        incarnation,
                        msg,
                    };
                    return self.wait_turn(from, p, observer);
                }
                self.emit(
                    EventKind::Unreachable {
                        from,
                        to,
                        msg: &msg,
                    },
                    observer,
                );
                self.handle(from, observer, |a, ctx| a.on_unreachable(ctx, to, msg))
            }
            Pending::Timer {
                node,
                incarnation,
                id,
                tag,
            } => {
                let info = self.census.info[node.index()];
                let n = &mut self.nodes[node.index()];
                if info.incarnation != incarnation || !n.timers.is_armed(id) {
                    return true; // cancelled, or from a previous incarnation
                }
                if must_wait(&info, slowed) {
                    let p = Pending::Timer {
                        node,
                        incarnation,
                        id,
                        tag,
                    };
                    return self.wait_turn(node, p, observer);
                }
                let fired = n.timers.take_firing(id);
                assert!(fired);
                self.emit(EventKind::Timer { node, tag: &tag }, observer);
                self.handle(node, observer, |a, ctx| a.on_timer(ctx, id, tag))
            }
        }
    }

    fn bounce(
        &mut self,
        from: NodeId,
        sender_incarnation: u32,
        to: NodeId,
        msg: Msg<A>,
        observer: &mut dyn Observer<A::V>,
    ) -> bool {
        // Only the process that sent the message may hear that it was refused; a restarted
        // sender has new connections.
        let sender = self.census.info[from.index()];
        let sender_up = sender.status != Status::Down && sender.incarnation == sender_incarnation;
        if !sender_up || self.net.blocked(to, from) {
            let reason = if sender_up {
                DropReason::Partitioned
            } else {
                DropReason::SenderGone
            };
            self.emit_drop(from, to, &msg, reason, observer);
            return true;
        }
        let at = self.now + self.net.sample_latency(to, from);
        self.push(
            at,
            Pending::Unreachable {
                from,
                to,
                incarnation: sender_incarnation,
                msg,
            },
        )
    }

    fn park(&mut self, node: NodeId, p: Pending<A>, observer: &mut dyn Observer<A::V>) {
        let parked = &mut self.nodes[node.index()].parked;
        if parked.len() < PARKED_PER_NODE_MAX {
            parked.push_back(p);
            return;
        }
        match p {
            Pending::Deliver { from, to, msg, .. } => {
                let reason = DropReason::ParkedOverflow;
                self.emit_drop(from, to, &msg, reason, observer);
            }
            Pending::Timer { node, id, .. } => {
                self.nodes[node.index()].timers.cancel(id);
            }
            Pending::Unreachable { .. }
            | Pending::Fault(_)
            | Pending::Held(_)
            | Pending::Turn { .. } => {}
        }
    }

    /// Runs one handler of `node` and applies its effects.
    fn handle(
        &mut self,
        node: NodeId,
        observer: &mut dyn Observer<A::V>,
        f: impl FnOnce(&mut A, &mut Ctx<'_, A::V>),
    ) -> bool {
        let mut out = std::mem::take(&mut self.scratch);
        debug_assert!(out.is_empty());
        let clock = self.census.info[node.index()].clock;
        let n = &mut self.nodes[node.index()];
        let actor = n
            .actor
            .as_mut()
            .expect("handler on a node that is not running");
        let mono = clock.mono(self.now);
        let wall = mono as i64 + clock.offset_ns + clock.jumped_ns;
        let mut ctx = Ctx::new(
            node,
            self.now,
            mono,
            wall,
            &mut self.rngs[node.index()],
            &mut n.timers,
            &mut out,
        );
        f(actor, &mut ctx);
        let ok = self.apply_effects(node, &mut out, observer);
        out.clear();
        self.scratch = out;
        ok
    }

    fn apply_effects(
        &mut self,
        node: NodeId,
        out: &mut Vec<Effect<A::V>>,
        observer: &mut dyn Observer<A::V>,
    ) -> bool {
        let mut exit = false;
        for effect in out.drain(..) {
            if exit {
                break; // a process that exited does nothing more
            }
            match effect {
                Effect::Send { to, msg } => {
                    if !self.send(node, to, msg, observer) {
                        return false;
                    }
                }
                Effect::SetTimer { id, after, tag } => {
                    if !self.nodes[node.index()].timers.is_armed(id) {
                        continue; // cancelled within the same handler
                    }
                    let info = &self.census.info[node.index()];
                    let at = self.now + info.clock.true_delay(after);
                    let p = Pending::Timer {
                        node,
                        incarnation: info.incarnation,
                        id,
                        tag,
                    };
                    if !self.push(at, p) {
                        return false;
                    }
                }
                Effect::Persist(op) => {
                    self.emit(EventKind::Persist { node, op: &op }, observer);
                    self.nodes[node.index()].durable.apply(op);
                }
                Effect::Trace(obs) => self.emit(EventKind::Obs { node, obs: &obs }, observer),
                Effect::Exit => exit = true,
                Effect::StartNode(n) => {
                    // The orchestrator acts after a moment, as a separate event.
                    if !self.push(self.now, Pending::Fault(Box::new(Fault::Start(n)))) {
                        return false;
                    }
                }
                Effect::StopNode(n) => {
                    if !self.push(self.now, Pending::Fault(Box::new(Fault::Kill(n)))) {
                        return false;
                    }
                }
            }
        }
        if exit {
            self.emit(EventKind::Exited { node }, observer);
            return self.stop_process(node, observer);
        }
        true
    }

    fn send(
        &mut self,
        from: NodeId,
        to: NodeId,
        msg: Msg<A>,
        observer: &mut dyn Observer<A::V>,
    ) -> bool {
        assert!(to.index() < self.nodes.len(), "send to unknown node {to:?}");
        let now = self.now;
        if self.drop_replies_to == Some(to) && msg.is_reply() {
            self.emit_drop(from, to, &msg, DropReason::Rule, observer);
            return true;
        }
        if !self.rules.is_empty() {
            match self.take_rule(from, to, &msg, false) {
                Some(MessageAction::Drop) => {
                    self.emit_drop(from, to, &msg, DropReason::Rule, observer);
                    return true;
                }
                Some(MessageAction::Delay(by)) if !msg.is_reply() => {
                    // A request or one-way message: its connection stalls, and later messages
                    // on the link queue behind it (TCP delivers in order).
                    return self.route(from, to, now, by, msg, observer);
                }
                Some(MessageAction::Delay(by)) => {
                    // A reply: the receiver answers late (its future completes late), so what it
                    // sends meanwhile overtakes the answer.
                    return self.hold_answer(from, to, by, msg);
                }
                _ => {}
            }
        }
        if self.net.config.answer_delay.is_some() && msg.is_reply() {
            let wait = self.net.sample_answer_delay();
            if !wait.is_zero() {
                // The answer completes late; what the sender sends meanwhile overtakes it.
                return self.hold_answer(from, to, wait, msg);
            }
        }
        self.route(from, to, now, Duration::ZERO, msg, observer)
    }

    /// Hands an answer sent now to the network `by` later, without holding its link.
    fn hold_answer(&mut self, from: NodeId, to: NodeId, by: Duration, msg: Msg<A>) -> bool {
        let now = self.now;
        let held = Held {
            from,
            to,
            sent: now,
            sender_incarnation: self.census.info[from.index()].incarnation,
            msg,
        };
        self.push(now + by, Pending::Held(Box::new(held)))
    }

    /// The first rule in force that covers the message, counted as used; `on_delivery` picks
    /// the `DropReply` rules (judged when the request is handled), otherwise the others (judged
    /// when it is sent). Rules past their window or count end here.
    fn take_rule(
        &mut self,
        from: NodeId,
        to: NodeId,
        msg: &Msg<A>,
        on_delivery: bool,
    ) -> Option<MessageAction> {
        let now = self.now;
        self.rules
            .retain(|r| r.until.is_none_or(|u| now < u) && r.remaining != Some(0));
        let (gateway, name) = (msg.gateway(), msg.name());
        let r = self.rules.iter_mut().find(|r| {
            (r.rule.action == MessageAction::DropReply) == on_delivery
                && r.rule.covers(gateway, name, from, to)
        })?;
        if let Some(n) = r.remaining.as_mut() {
            *n -= 1;
        }
        Some(r.rule.action.clone())
    }

    /// Hands a message sent at `sent` to the network (or, to a node that is down, has it
    /// refused); the link holds it `hold` longer than its latency.
    fn route(
        &mut self,
        from: NodeId,
        to: NodeId,
        sent: Time,
        hold: Duration,
        msg: Msg<A>,
        observer: &mut dyn Observer<A::V>,
    ) -> bool {
        let now = self.now;
        if self.census.info[to.index()].status == Status::Down && !self.net.blocked(from, to) {
            // Connection refused: the answer takes a round trip.
            let there = self.net.sample_latency(from, to);
            let back = self.net.sample_latency(to, from);
            if self.net.blocked(to, from) {
                let reason = DropReason::Partitioned;
                self.emit_drop(from, to, &msg, reason, observer);
                return true;
            }
            let incarnation = self.census.info[from.index()].incarnation;
            let p = Pending::Unreachable {
                from,
                to,
                incarnation,
                msg,
            };
            return self.push(now + there + back, p);
        }
        match self.net.route_held(now, from, to, hold) {
            Route::Partitioned | Route::Lost => {
                let reason = if self.net.blocked(from, to) {
                    DropReason::Partitioned
                } else {
                    DropReason::Lost
                };
                self.emit_drop(from, to, &msg, reason, observer);
                true
            }
            Route::Deliver {
                at,
                epoch,
                duplicate_at,
            } => {
                let incarnation = self.census.info[to.index()].incarnation;
                let sender_incarnation = self.census.info[from.index()].incarnation;
                if let Some(dup_at) = duplicate_at {
                    let p = Pending::Deliver {
                        from,
                        to,
                        sent,
                        epoch,
                        incarnation,
                        sender_incarnation,
                        arrived: false,
                        msg: msg.clone(),
                    };
                    if !self.push(dup_at, p) {
                        return false;
                    }
                }
                let p = Pending::Deliver {
                    from,
                    to,
                    sent,
                    epoch,
                    incarnation,
                    sender_incarnation,
                    arrived: false,
                    msg,
                };
                self.push(at, p)
            }
        }
    }

    /// The process of `node` stops (kill or exit). Messages that waited on it (it was paused)
    /// find their connection reset, so their senders hear about them.
    fn stop_process(&mut self, node: NodeId, observer: &mut dyn Observer<A::V>) -> bool {
        let n = &mut self.nodes[node.index()];
        n.actor = None;
        n.timers = Timers::default();
        let mut parked = std::mem::take(&mut n.backlog);
        parked.append(&mut n.parked);
        let info = &mut self.census.info[node.index()];
        info.incarnation += 1;
        info.status = Status::Down;
        info.backlog = 0;
        for p in parked {
            if let Pending::Deliver {
                from,
                to,
                sender_incarnation,
                msg,
                ..
            } = p
            {
                if !self.bounce(from, sender_incarnation, to, msg, observer) {
                    return false;
                }
            }
        }
        true
    }

    fn apply_fault(&mut self, fault: Fault, observer: &mut dyn Observer<A::V>) -> bool {
        let status = |w: &Self, n: NodeId| w.census.info[n.index()].status;
        match &fault {
            Fault::Kill(n) => {
                let effective = status(self, *n) != Status::Down;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                if effective {
                    return self.stop_process(*n, observer);
                }
                true
            }
            Fault::Start(n) => {
                let n = *n;
                let effective = status(self, n) == Status::Down;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                if !effective {
                    return true;
                }
                let node = &mut self.nodes[n.index()];
                node.actor = Some((self.factory)(n, &node.durable));
                self.census.info[n.index()].status = Status::Up;
                self.emit(EventKind::Started { node: n }, observer);
                self.handle(n, observer, |a, ctx| a.on_start(ctx))
            }
            Fault::Pause(n) => {
                let effective = status(self, *n) == Status::Up;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                if effective {
                    self.census.info[n.index()].status = Status::Paused;
                }
                true
            }
            Fault::Resume(n) => {
                let n = *n;
                let effective = status(self, n) == Status::Paused;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                if !effective {
                    return true;
                }
                self.census.info[n.index()].status = Status::Up;
                // What waited is handled now, in the order it arrived.
                let parked = std::mem::take(&mut self.nodes[n.index()].parked);
                let now = self.now;
                for p in parked {
                    if !self.queue.push_urgent(now, p) {
                        return false;
                    }
                }
                true
            }
            Fault::Partition {
                groups,
                one_way,
                heal_after,
            } => {
                let id = self.net.partition(groups, *one_way);
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                match heal_after {
                    Some(d) => self.push(self.now + *d, Pending::Fault(Box::new(Fault::Heal(id)))),
                    None => true,
                }
            }
            Fault::Clog {
                groups,
                one_way,
                extra,
                clear_after,
            } => {
                let id = self.net.clog(groups, *one_way, *extra);
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                match clear_after {
                    Some(d) => self.push(self.now + *d, Pending::Fault(Box::new(Fault::Heal(id)))),
                    None => true,
                }
            }
            Fault::Heal(id) => {
                let effective = self.net.heal(*id);
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                true
            }
            Fault::HealAll => {
                self.net.heal_all();
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                true
            }
            Fault::Signal { node, code } => {
                let (node, code) = (*node, *code);
                let effective = status(self, node) == Status::Up;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective,
                    },
                    observer,
                );
                if !effective {
                    return true;
                }
                self.handle(node, observer, |a, ctx| a.on_signal(ctx, code))
            }
            Fault::Messages(rule) => {
                self.rules.push(ActiveRule {
                    rule: rule.clone(),
                    remaining: rule.count,
                    until: rule.lasting.map(|d| self.now + d),
                });
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                true
            }
            Fault::Slow { node, per_event } => {
                let info = &mut self.census.info[node.index()];
                info.slow = *per_event;
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                true
            }
            Fault::ClockJump { node, by_ns } => {
                self.census.info[node.index()].clock.jump(*by_ns);
                self.emit(
                    EventKind::Fault {
                        fault: &fault,
                        effective: true,
                    },
                    observer,
                );
                true
            }
        }
    }
}

/// Convenience for tests: a duration in milliseconds.
pub const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
