//! `sim` — a seeded discrete-event simulation kernel.
//!
//! It owns virtual time, the event queue, randomness, a simulated network, per-node clocks,
//! process faults and the trace; it knows nothing about the system it simulates. Actors are
//! sans-IO state machines generic over their message type.
//!
//! ```
//! use sim::{Actor, Ctx, Limits, Message, NetConfig, NodeId, NodeSpec, TimerId, Vocabulary, World, Clock};
//! use std::time::Duration;
//!
//! #[derive(Clone, Debug, Hash)]
//! struct Ping(u32);
//! impl Message for Ping {
//!     fn name(&self) -> &'static str { "ping" }
//! }
//!
//! /// Node 0 pings node 1 every second; node 1 answers.
//! struct Pinger { pongs: u32 }
//! impl Vocabulary for Pinger {
//!     type Msg = Ping;
//!     type Timer = ();
//!     type Obs = u32;
//!     type Op = ();
//! }
//! impl Actor for Pinger {
//!     type V = Self;
//!     type Durable = ();
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
//!         if ctx.me() == NodeId(0) { ctx.set_timer(Duration::from_secs(1), ()); }
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Ping) {
//!         if ctx.me() == NodeId(1) { ctx.send(from, Ping(msg.0)); } else { self.pongs += 1; ctx.trace(self.pongs); }
//!     }
//!     fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _: TimerId, _: ()) {
//!         ctx.send(NodeId(1), Ping(0));
//!         ctx.set_timer(Duration::from_secs(1), ());
//!     }
//!     fn on_unreachable(&mut self, _: &mut Ctx<'_, Self>, _: NodeId, _: Ping) {}
//! }
//!
//! let nodes = (0..2).map(|i| NodeSpec { name: format!("n{i}"), clock: Clock::default(), start: true }).collect();
//! let mut world = World::new(42, NetConfig::default(), nodes, |_, _| Pinger { pongs: 0 });
//! let limits = Limits { time_max: sim::Time::from_secs(10), ..Limits::default() };
//! let a = world.run(limits, &mut ());
//! let mut again = World::new(42, NetConfig::default(),
//!     (0..2).map(|i| NodeSpec { name: format!("n{i}"), clock: Clock::default(), start: true }).collect(),
//!     |_, _| Pinger { pongs: 0 });
//! assert_eq!(a.trace_hash, again.run(limits, &mut ()).trace_hash); // same seed, same run
//! ```

pub mod actor;
pub mod clock;
pub mod fault;
pub mod hash;
pub mod network;
pub mod rng;
pub mod scheduler;
pub mod testing;
pub mod time;
pub mod trace;
pub mod world;

pub use actor::{
    Actor, Ctx, Durable, Effect, Message, Msg, NodeId, TimerId, TimerTag, Timers, Vocabulary,
};
pub use clock::Clock;
pub use fault::{Fault, MessageAction, MessageRule};
pub use hash::{stable_hash, StableHasher};
pub use network::{Latency, NetConfig, RuleId};
pub use rng::Rng;
pub use time::Time;
pub use trace::{DropReason, Event, EventKind, Tap};
pub use world::{Census, Limits, NodeSpec, Observer, Outcome, Status, StopReason, World};
