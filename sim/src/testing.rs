//! A driver for unit tests that feed one component its events by hand, without a [`World`]:
//! the test calls a handler, the driver runs it in a detached [`Ctx`] at its own clock, returns
//! the effects, and remembers the timers it armed so the test can inspect them or fire the
//! earliest one as the kernel would when it pops.
//!
//! The driver is generic over the vocabulary and the component, so every component's tests
//! share it; a test module usually wraps it with the calls its component takes (`rpc`, `ack`,
//! ...). Nothing here runs in a simulation, so messages sent are only returned, never delivered.
//!
//! [`World`]: crate::World

use crate::actor::{Ctx, Effect, NodeId, TimerId, Timers, Vocabulary};
use crate::rng::{self, Rng};
use crate::time::Time;
use std::time::Duration;

/// One timer the component armed and has not seen fire or cancelled.
struct Armed<T> {
    due: Time,
    id: TimerId,
    after: Duration,
    tag: T,
}

/// Drives `component` (at node `node`) by hand; see the module docs.
pub struct Driver<V: Vocabulary, C> {
    pub component: C,
    node: NodeId,
    now: Time,
    rng: Rng,
    timers: Timers,
    armed: Vec<Armed<V::Timer>>,
}

impl<V: Vocabulary, C> Driver<V, C> {
    /// A driver at time zero whose randomness is the stream `purpose` of `seed`.
    pub fn new(node: NodeId, component: C, seed: u64, purpose: &str) -> Self {
        Driver {
            component,
            node,
            now: Time::ZERO,
            rng: rng::stream(seed, purpose, 0),
            timers: Timers::default(),
            armed: Vec::new(),
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// Moves the clock forward by `d` (timers do not fire by themselves: see [`Driver::fire`]).
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
    }

    /// Runs `f` on the component in a context at the driver's clock; returns its effects and
    /// result. Timers armed in the step are remembered.
    pub fn step<R>(&mut self, f: impl FnOnce(&mut C, &mut Ctx<'_, V>) -> R) -> (Vec<Effect<V>>, R) {
        let mut out = Vec::new();
        let r = {
            let mut ctx = Ctx::detached(
                self.node,
                self.now,
                &mut self.rng,
                &mut self.timers,
                &mut out,
            );
            f(&mut self.component, &mut ctx)
        };
        for e in &out {
            if let Effect::SetTimer { id, after, tag } = e {
                self.armed.push(Armed {
                    due: self.now + *after,
                    id: *id,
                    after: *after,
                    tag: tag.clone(),
                });
            }
        }
        (out, r)
    }

    fn forget_disarmed(&mut self) {
        let timers = &self.timers;
        self.armed.retain(|a| timers.is_armed(a.id));
    }

    /// The armed timers whose tag matches `pred`, in the order they were armed, as (the delay
    /// they were armed with, tag).
    pub fn armed(&mut self, pred: impl Fn(&V::Timer) -> bool) -> Vec<(Duration, V::Timer)> {
        self.forget_disarmed();
        self.armed
            .iter()
            .filter(|a| pred(&a.tag))
            .map(|a| (a.after, a.tag.clone()))
            .collect()
    }

    /// [`armed`](Self::armed) for a component whose timers are one part of a nested tag: `own`
    /// picks that part out of a tag (`None`: another component's timer), and the timers it picks
    /// and `pred` accepts are returned as that part.
    pub fn armed_own<T: Clone>(
        &mut self,
        own: impl Fn(&V::Timer) -> Option<&T>,
        pred: impl Fn(&T) -> bool,
    ) -> Vec<(Duration, T)> {
        let armed = self.armed(|t| own(t).is_some_and(&pred));
        armed
            .into_iter()
            .map(|(after, t)| (after, own(&t).expect("picked").clone()))
            .collect()
    }

    /// Disarms the first-armed timer whose tag matches `pred` and returns its tag, without
    /// running anything or moving the clock: for a test that pops a timer whenever it was due
    /// and then calls the handler itself. None if no armed timer matches.
    pub fn disarm(&mut self, pred: impl Fn(&V::Timer) -> bool) -> Option<V::Timer> {
        self.forget_disarmed();
        let i = self.armed.iter().position(|a| pred(&a.tag))?;
        let a = self.armed.remove(i);
        assert!(self.timers.take_firing(a.id), "the timer is armed");
        Some(a.tag)
    }

    /// Fires the earliest-due armed timer whose tag matches `pred`, as the kernel would when it
    /// pops: the clock moves to its due time (never back), the timer is disarmed, and `f` runs
    /// with its id and tag. Panics if no armed timer matches: the test expected one.
    pub fn fire<R>(
        &mut self,
        pred: impl Fn(&V::Timer) -> bool,
        f: impl FnOnce(&mut C, &mut Ctx<'_, V>, TimerId, V::Timer) -> R,
    ) -> (Vec<Effect<V>>, R) {
        self.forget_disarmed();
        let i = self
            .armed
            .iter()
            .enumerate()
            .filter(|(_, a)| pred(&a.tag))
            .min_by_key(|(_, a)| a.due)
            .map(|(i, _)| i)
            .expect("an armed timer matches");
        let Armed { due, id, tag, .. } = self.armed.remove(i);
        self.now = self.now.max(due);
        assert!(self.timers.take_firing(id), "the timer is armed");
        self.step(|c, ctx| f(c, ctx, id, tag))
    }

    /// [`fire`](Self::fire) for a component whose timers are one part of a nested tag (see
    /// [`armed_own`](Self::armed_own)): `f` runs with that part.
    pub fn fire_own<T: Clone, R>(
        &mut self,
        own: impl Fn(&V::Timer) -> Option<&T>,
        pred: impl Fn(&T) -> bool,
        f: impl FnOnce(&mut C, &mut Ctx<'_, V>, TimerId, T) -> R,
    ) -> (Vec<Effect<V>>, R) {
        let own = &own;
        self.fire(
            |t| own(t).is_some_and(&pred),
            |c, ctx, id, tag| f(c, ctx, id, own(&tag).expect("picked").clone()),
        )
    }
}

/// The messages a step sent, in order, with their destinations.
pub fn sent<V: Vocabulary>(out: &[Effect<V>]) -> Vec<(NodeId, &V::Msg)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg } => Some((*to, msg)),
            _ => None,
        })
        .collect()
}

/// The observations a step traced, in order.
pub fn traces<V: Vocabulary>(out: &[Effect<V>]) -> Vec<&V::Obs> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Trace(o) => Some(o),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Hash, PartialEq)]
    struct Ping;
    impl crate::Message for Ping {
        fn name(&self) -> &'static str {
            "ping"
        }
    }

    enum V {}
    impl Vocabulary for V {
        type Msg = Ping;
        type Timer = &'static str;
        type Obs = ();
        type Op = ();
    }

    #[test]
    fn fires_the_earliest_matching_timer_and_forgets_cancelled_ones() {
        let mut d: Driver<V, Vec<&'static str>> = Driver::new(NodeId(3), Vec::new(), 1, "t");
        let (out, late) = d.step(|_, ctx| {
            ctx.send(NodeId(1), Ping);
            let late = ctx.set_timer(Duration::from_secs(5), "late");
            ctx.set_timer(Duration::from_secs(2), "early");
            ctx.set_timer(Duration::from_secs(1), "other");
            late
        });
        assert_eq!(out.len(), 4);
        assert_eq!(sent(&out), vec![(NodeId(1), &Ping)]);
        assert!(traces(&out).is_empty());
        assert_eq!(
            d.armed(|t| *t != "other"),
            vec![
                (Duration::from_secs(5), "late"),
                (Duration::from_secs(2), "early")
            ]
        );
        let (_, ()) = d.fire(
            |t| *t != "other",
            |c, ctx, _, tag| {
                assert_eq!(ctx.me(), NodeId(3));
                c.push(tag)
            },
        );
        assert_eq!(d.now(), Time::from_secs(2));
        d.step(|_, ctx| assert!(ctx.cancel_timer(late)));
        assert!(d.armed(|t| *t == "late").is_empty());
        assert_eq!(d.disarm(|_| true), Some("other"));
        assert_eq!(d.disarm(|_| true), None);
        assert_eq!(d.component, vec!["early"]);
        assert_eq!(
            d.now(),
            Time::from_secs(2),
            "disarming does not move the clock"
        );
    }
}
