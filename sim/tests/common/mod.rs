//! A tiny scripted test actor and an observer that collects the trace, shared by the kernel's
//! integration tests.
//!
//! A [`Probe`] runs a script: a list of (local offset from start, step) pairs. Steps at offset zero
//! run inside `on_start`; the others run from timers. A probe can also be a *pinger*: every
//! `period` it pings a random other node, and it answers every ping with a pong. Everything a
//! probe sees (messages, unreachable answers, timers) is reported with `ctx.trace`.
//!
//! Every message carries the sender's boot number and a per-incarnation send counter `n`, so the
//! order in which one incarnation sent its messages can be recovered from the trace.

#![allow(dead_code)]

use sim::{
    Actor, Census, Clock, Ctx, DropReason, Durable, Event, EventKind, Fault, Limits, Message,
    NetConfig, NodeId, NodeSpec, Observer, Outcome, Status, Time, TimerId, Vocabulary, World,
};
use std::time::Duration;

pub const A: NodeId = NodeId(0);
pub const B: NodeId = NodeId(1);
pub const C: NodeId = NodeId(2);

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn at_ms(v: u64) -> Time {
    Time::from_millis(v)
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Kind {
    Data,
    Ping,
    Pong,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Msg {
    pub kind: Kind,
    /// Chosen by the script (data) or the pinger (ping; a pong echoes its ping's seq).
    pub seq: u64,
    /// The sender's boot number (1 for the first start).
    pub boot: u64,
    /// The sender incarnation's send counter.
    pub n: u64,
}

impl Message for Msg {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Data => "data",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
        }
    }
    fn is_reply(&self) -> bool {
        self.kind == Kind::Pong
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Step {
    /// Send `Data` with this seq.
    Send { to: NodeId, seq: u64 },
    /// Send `Ping` with this seq (the target answers with a pong).
    Ping { to: NodeId, seq: u64 },
    /// Arm a user timer; when it fires the probe traces [`Obs::Fired`].
    Timer { tag: u64, after: Duration },
    /// Persist a value (durable).
    Persist(u64),
    /// Increment the volatile counter and trace it.
    Bump,
    /// Terminate the process.
    Exit,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Tag {
    Step(usize),
    User(u64),
    Ping,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Obs {
    Started {
        boot: u64,
        saved: Vec<u64>,
        volatile: u64,
    },
    Got {
        from: NodeId,
        msg: Msg,
        mono_ns: u64,
    },
    Unreachable {
        to: NodeId,
        msg: Msg,
    },
    Fired {
        tag: u64,
        mono_ns: u64,
        wall_ms: i64,
    },
    Bumped(u64),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Disk {
    pub boots: u64,
    pub saved: Vec<u64>,
}

#[derive(Debug, Hash)]
pub enum DiskOp {
    Boot,
    Save(u64),
}

impl Durable for Disk {
    type Op = DiskOp;
    fn apply(&mut self, op: DiskOp) {
        match op {
            DiskOp::Boot => self.boots += 1,
            DiskOp::Save(v) => self.saved.push(v),
        }
    }
}

pub type Script = Vec<(Duration, Step)>;

#[derive(Clone, Copy, Debug)]
pub struct Pinger {
    pub nodes: u32,
    pub period: Duration,
}

pub struct Probe {
    pub script: Script,
    pub pinger: Option<Pinger>,
    pub boot: u64,
    pub saved: Vec<u64>,
    pub volatile: u64,
    sent: u64,
    pings: u64,
}

impl Probe {
    pub fn new(disk: &Disk, script: Script, pinger: Option<Pinger>) -> Probe {
        Probe {
            script,
            pinger,
            boot: disk.boots + 1,
            saved: disk.saved.clone(),
            volatile: 0,
            sent: 0,
            pings: 0,
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Self>, to: NodeId, kind: Kind, seq: u64) {
        let msg = Msg {
            kind,
            seq,
            boot: self.boot,
            n: self.sent,
        };
        self.sent += 1;
        ctx.send(to, msg);
    }

    fn run_step(&mut self, ctx: &mut Ctx<'_, Self>, i: usize) {
        match self.script[i].1.clone() {
            Step::Send { to, seq } => self.send(ctx, to, Kind::Data, seq),
            Step::Ping { to, seq } => self.send(ctx, to, Kind::Ping, seq),
            Step::Timer { tag, after } => {
                ctx.set_timer(after, Tag::User(tag));
            }
            Step::Persist(v) => ctx.persist(DiskOp::Save(v)),
            Step::Bump => {
                self.volatile += 1;
                ctx.trace(Obs::Bumped(self.volatile));
            }
            Step::Exit => ctx.exit(),
        }
    }
}

impl Vocabulary for Probe {
    type Msg = Msg;
    type Timer = Tag;
    type Obs = Obs;
    type Op = DiskOp;
}

impl Actor for Probe {
    type V = Self;
    type Durable = Disk;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.persist(DiskOp::Boot);
        ctx.trace(Obs::Started {
            boot: self.boot,
            saved: self.saved.clone(),
            volatile: self.volatile,
        });
        for i in 0..self.script.len() {
            let at = self.script[i].0;
            if at.is_zero() {
                self.run_step(ctx, i);
            } else {
                ctx.set_timer(at, Tag::Step(i));
            }
        }
        if let Some(p) = self.pinger {
            ctx.set_timer(p.period, Tag::Ping);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Msg) {
        ctx.trace(Obs::Got {
            from,
            msg: msg.clone(),
            mono_ns: ctx.mono_ns(),
        });
        if msg.kind == Kind::Ping {
            self.send(ctx, from, Kind::Pong, msg.seq);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _: TimerId, tag: Tag) {
        match tag {
            Tag::Step(i) => self.run_step(ctx, i),
            Tag::User(tag) => ctx.trace(Obs::Fired {
                tag,
                mono_ns: ctx.mono_ns(),
                wall_ms: ctx.wall_ms(),
            }),
            Tag::Ping => {
                let p = self.pinger.expect("pinger");
                use rand::Rng as _;
                let me = ctx.me().0;
                let mut to = ctx.rng().random_range(0..p.nodes - 1);
                if to >= me {
                    to += 1;
                }
                self.pings += 1;
                self.send(ctx, NodeId(to), Kind::Ping, self.pings);
                ctx.set_timer(p.period, Tag::Ping);
            }
        }
    }

    fn on_unreachable(&mut self, ctx: &mut Ctx<'_, Self>, to: NodeId, msg: Msg) {
        ctx.trace(Obs::Unreachable { to, msg });
    }
}

/// `n` nodes named n0, n1, …, started at time zero, with exact clocks.
pub fn specs(n: u32) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            clock: Clock::default(),
            start: true,
        })
        .collect()
}

/// A world of probes; `script(node, boots_so_far)` gives each incarnation its script.
pub fn world(
    seed: u64,
    net: NetConfig,
    specs: Vec<NodeSpec>,
    script: impl Fn(NodeId, u64) -> Script + 'static,
) -> World<Probe> {
    World::new(seed, net, specs, move |id, disk: &Disk| {
        Probe::new(disk, script(id, disk.boots), None)
    })
}

/// A cluster of `n` pingers pinging every `period`.
pub fn ping_cluster(seed: u64, net: NetConfig, n: u32, period: Duration) -> World<Probe> {
    World::new(seed, net, specs(n), move |_, disk: &Disk| {
        Probe::new(disk, Vec::new(), Some(Pinger { nodes: n, period }))
    })
}

/// Runs `world` to `until` (true time) with a fresh log.
pub fn run_until(world: &mut World<Probe>, until: Time) -> (Outcome, Log) {
    let mut log = Log::default();
    let limits = Limits {
        time_max: until,
        ..Limits::default()
    };
    let outcome = world.run(limits, &mut log);
    (outcome, log)
}

/// One traced event, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Rec {
    Deliver {
        t: Time,
        from: NodeId,
        to: NodeId,
        sent: Time,
        msg: Msg,
    },
    Unreachable {
        t: Time,
        from: NodeId,
        to: NodeId,
        msg: Msg,
    },
    Drop {
        t: Time,
        from: NodeId,
        to: NodeId,
        msg: Msg,
        reason: DropReason,
    },
    Timer {
        t: Time,
        node: NodeId,
        tag: Tag,
    },
    Obs {
        t: Time,
        node: NodeId,
        obs: Obs,
    },
    Persist {
        t: Time,
        node: NodeId,
        op: String,
    },
    Fault {
        t: Time,
        fault: Fault,
        effective: bool,
    },
    Started {
        t: Time,
        node: NodeId,
    },
    Exited {
        t: Time,
        node: NodeId,
    },
}

impl Rec {
    pub fn time(&self) -> Time {
        match self {
            Rec::Deliver { t, .. }
            | Rec::Unreachable { t, .. }
            | Rec::Drop { t, .. }
            | Rec::Timer { t, .. }
            | Rec::Obs { t, .. }
            | Rec::Persist { t, .. }
            | Rec::Fault { t, .. }
            | Rec::Started { t, .. }
            | Rec::Exited { t, .. } => *t,
        }
    }
}

/// Collects every event, and notes kernel invariants that every event must satisfy.
#[derive(Default)]
pub struct Log {
    pub recs: Vec<Rec>,
    /// Broken invariants (handlers running on a node that is not up, time going backwards).
    pub violations: Vec<String>,
    /// Ask the run to stop once this many messages were delivered.
    pub stop_after_delivers: Option<usize>,
}

impl Log {
    pub fn delivers(&self) -> impl Iterator<Item = (Time, NodeId, NodeId, Time, &Msg)> {
        self.recs.iter().filter_map(|r| match r {
            Rec::Deliver {
                t,
                from,
                to,
                sent,
                msg,
            } => Some((*t, *from, *to, *sent, msg)),
            _ => None,
        })
    }

    /// Seqs of data messages delivered on `from -> to`, in delivery order.
    pub fn data_seqs(&self, from: NodeId, to: NodeId) -> Vec<u64> {
        self.delivers()
            .filter(|d| d.1 == from && d.2 == to && d.4.kind == Kind::Data)
            .map(|d| d.4.seq)
            .collect()
    }

    pub fn drops(&self) -> Vec<(Time, NodeId, NodeId, Msg, DropReason)> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Drop {
                    t,
                    from,
                    to,
                    msg,
                    reason,
                } => Some((*t, *from, *to, msg.clone(), *reason)),
                _ => None,
            })
            .collect()
    }

    pub fn unreachables(&self) -> Vec<(Time, NodeId, NodeId, Msg)> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Unreachable { t, from, to, msg } => Some((*t, *from, *to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// Observations of `node`, with their true times.
    pub fn obs(&self, node: NodeId) -> Vec<(Time, Obs)> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Obs { t, node: n, obs } if *n == node => Some((*t, obs.clone())),
                _ => None,
            })
            .collect()
    }

    /// True times at which `node`'s timers with this tag fired.
    pub fn timer_times(&self, node: NodeId, tag: &Tag) -> Vec<Time> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Timer { t, node: n, tag: g } if *n == node && g == tag => Some(*t),
                _ => None,
            })
            .collect()
    }
}

impl Observer<Probe> for Log {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, Probe>) {
        let t = ev.time;
        if let Some(last) = self.recs.last() {
            if last.time() > t {
                self.violations
                    .push(format!("time went back: {:?} then {t:?}", last.time()));
            }
        }
        let mut must_be_up = |n: NodeId, what: &str| {
            if census.status(n) != Status::Up {
                self.violations.push(format!(
                    "{what} at {t:?} on {n:?}, which is {:?}",
                    census.status(n)
                ));
            }
        };
        let rec = match &ev.kind {
            EventKind::Deliver {
                from,
                to,
                sent,
                msg,
            } => {
                must_be_up(*to, "deliver");
                Rec::Deliver {
                    t,
                    from: *from,
                    to: *to,
                    sent: *sent,
                    msg: (*msg).clone(),
                }
            }
            EventKind::Unreachable { from, to, msg } => {
                must_be_up(*from, "unreachable");
                Rec::Unreachable {
                    t,
                    from: *from,
                    to: *to,
                    msg: (*msg).clone(),
                }
            }
            EventKind::Drop {
                from,
                to,
                msg,
                reason,
            } => Rec::Drop {
                t,
                from: *from,
                to: *to,
                msg: (*msg).clone(),
                reason: *reason,
            },
            EventKind::Timer { node, tag } => {
                must_be_up(*node, "timer");
                Rec::Timer {
                    t,
                    node: *node,
                    tag: (*tag).clone(),
                }
            }
            EventKind::Obs { node, obs } => Rec::Obs {
                t,
                node: *node,
                obs: (*obs).clone(),
            },
            EventKind::Persist { node, op } => Rec::Persist {
                t,
                node: *node,
                op: format!("{op:?}"),
            },
            EventKind::Fault { fault, effective } => Rec::Fault {
                t,
                fault: (*fault).clone(),
                effective: *effective,
            },
            EventKind::Started { node } => Rec::Started { t, node: *node },
            EventKind::Exited { node } => Rec::Exited { t, node: *node },
        };
        self.recs.push(rec);
    }

    fn wants_stop(&self) -> bool {
        match self.stop_after_delivers {
            Some(n) => self.delivers().count() >= n,
            None => false,
        }
    }
}
