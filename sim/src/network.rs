//! The simulated network: per-link latency, FIFO per directed link, loss, duplication,
//! reordering, partitions (symmetric and one-way, by groups) and clogging.
//!
//! Links behave like Pekko over TCP: one connection per directed pair, delivering in order. A
//! partition *breaks* the connections it covers: whatever is in flight on them is lost (each link
//! has an epoch, bumped when it breaks; a message carries the epoch it was sent in). A message
//! sent into a partition gets no answer at all. This module decides *when* and *whether* a
//! message arrives; the world decides what an arrival means (a down process bounces it).

use crate::actor::NodeId;
use crate::rng::Rng;
use crate::time::{nanos, Time};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::time::Duration;

/// A latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Latency {
    Fixed(Duration),
    /// Uniform over `[lo, hi]`.
    Uniform(Duration, Duration),
}

impl Latency {
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => {
                assert!(lo <= hi);
                Duration::from_nanos(rng.random_range(nanos(lo)..=nanos(hi)))
            }
        }
    }
    /// The largest value this distribution can produce.
    pub fn max(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(_, hi) => hi,
        }
    }
}

/// Network behaviour for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    pub latency: Latency,
    /// Per directed link overrides of `latency`.
    pub link_latency: BTreeMap<(NodeId, NodeId), Latency>,
    /// Probability that a message is lost, per message.
    pub loss: f64,
    /// Probability that a message is delivered twice, per message.
    pub duplicate: f64,
    /// When true, messages on one link may overtake each other (no FIFO).
    pub reorder: bool,
    /// Answers ([`Message::is_reply`](crate::Message::is_reply)) leave their sender after a
    /// delay drawn from this, without holding back what the sender sends after them: what it
    /// sends meanwhile may arrive first. (In an RPC framework an answer completes a future on
    /// another thread, and the caller's callback is queued behind calls that arrive meanwhile.)
    /// `None`: answers leave at once, in order with everything else.
    pub answer_delay: Option<Latency>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(5)),
            link_latency: BTreeMap::new(),
            loss: 0.0,
            duplicate: 0.0,
            reorder: false,
            answer_delay: None,
        }
    }
}

impl NetConfig {
    /// The largest one-way latency any link can have without clogging (an answer's
    /// [`NetConfig::answer_delay`] included).
    pub fn latency_max(&self) -> Duration {
        let link = self
            .link_latency
            .values()
            .map(Latency::max)
            .fold(self.latency.max(), Duration::max);
        link + self.answer_delay.map_or(Duration::ZERO, |l| l.max())
    }
}

/// Identifies a partition or clog rule so it can be healed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u32);

const NO_GROUP: u16 = u16::MAX;

/// Nodes split into groups; traffic between different groups is affected. Nodes in no group are
/// unaffected. With `one_way`, only traffic from group 0 to group 1 is affected.
#[derive(Clone, Debug)]
struct GroupRule {
    id: RuleId,
    group_of: Vec<u16>,
    one_way: bool,
    extra: Duration,
}

impl GroupRule {
    #[inline]
    fn covers(&self, from: NodeId, to: NodeId) -> bool {
        let a = self.group_of[from.index()];
        let b = self.group_of[to.index()];
        if a == NO_GROUP || b == NO_GROUP || a == b {
            return false;
        }
        !self.one_way || (a == 0 && b == 1)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    epoch: u32,
    last_arrival: Time,
}

/// What the network decided for one send.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Arrives at `at` unless the link breaks first (epoch changes); `duplicate_at` is a second copy.
    Deliver {
        at: Time,
        epoch: u32,
        duplicate_at: Option<Time>,
    },
    /// Blocked by a partition: silently dropped.
    Partitioned,
    /// Dropped by random loss.
    Lost,
}

pub struct Network {
    pub config: NetConfig,
    nodes: usize,
    links: Vec<Link>,
    partitions: Vec<GroupRule>,
    clogs: Vec<GroupRule>,
    next_rule: u32,
    rng: Rng,
}

/// The most nodes a world may have (the link table is dense).
pub const NODES_MAX: usize = 4096;

impl Network {
    pub fn new(config: NetConfig, nodes: usize, rng: Rng) -> Network {
        assert!(nodes <= NODES_MAX);
        assert!((0.0..=1.0).contains(&config.loss));
        assert!((0.0..=1.0).contains(&config.duplicate));
        Network {
            config,
            nodes,
            links: vec![Link::default(); nodes * nodes],
            partitions: Vec::new(),
            clogs: Vec::new(),
            next_rule: 0,
            rng,
        }
    }

    #[inline]
    fn link(&mut self, from: NodeId, to: NodeId) -> &mut Link {
        &mut self.links[from.index() * self.nodes + to.index()]
    }

    #[inline]
    pub fn epoch(&self, from: NodeId, to: NodeId) -> u32 {
        self.links[from.index() * self.nodes + to.index()].epoch
    }

    /// Whether a partition currently blocks `from -> to`.
    #[inline]
    pub fn blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.partitions.iter().any(|p| p.covers(from, to))
    }

    fn rule(&mut self, groups: &[Vec<NodeId>], one_way: bool, extra: Duration) -> GroupRule {
        assert!(groups.len() >= 2, "a partition needs at least two groups");
        assert!(
            !one_way || groups.len() == 2,
            "a one-way partition has exactly two groups"
        );
        let mut group_of = vec![NO_GROUP; self.nodes];
        for (g, members) in groups.iter().enumerate() {
            for n in members {
                assert!(
                    group_of[n.index()] == NO_GROUP,
                    "node {n:?} is in two groups"
                );
                group_of[n.index()] = g as u16;
            }
        }
        let id = RuleId(self.next_rule);
        self.next_rule += 1;
        GroupRule {
            id,
            group_of,
            one_way,
            extra,
        }
    }

    /// Starts a partition; the connections it covers break (in-flight messages are lost).
    pub fn partition(&mut self, groups: &[Vec<NodeId>], one_way: bool) -> RuleId {
        let rule = self.rule(groups, one_way, Duration::ZERO);
        for from in 0..self.nodes {
            for to in 0..self.nodes {
                let (f, t) = (NodeId(from as u32), NodeId(to as u32));
                if rule.covers(f, t) {
                    self.link(f, t).epoch += 1;
                }
            }
        }
        let id = rule.id;
        self.partitions.push(rule);
        id
    }

    /// Ends a partition or clog; unknown ids are ignored (already healed).
    pub fn heal(&mut self, id: RuleId) -> bool {
        let before = self.partitions.len() + self.clogs.len();
        self.partitions.retain(|p| p.id != id);
        self.clogs.retain(|p| p.id != id);
        before != self.partitions.len() + self.clogs.len()
    }

    /// Heals every partition and clog.
    pub fn heal_all(&mut self) {
        self.partitions.clear();
        self.clogs.clear();
    }

    /// Adds `extra` latency to messages between the groups until healed.
    pub fn clog(&mut self, groups: &[Vec<NodeId>], one_way: bool, extra: Duration) -> RuleId {
        let rule = self.rule(groups, one_way, extra);
        let id = rule.id;
        self.clogs.push(rule);
        id
    }

    /// How long an answer waits before it leaves its sender ([`NetConfig::answer_delay`]);
    /// draws from the network's stream only when configured.
    pub fn sample_answer_delay(&mut self) -> Duration {
        match self.config.answer_delay {
            Some(l) => l.sample(&mut self.rng),
            None => Duration::ZERO,
        }
    }

    /// A sample of the one-way latency of `from -> to`, clog included, without FIFO bookkeeping.
    pub fn sample_latency(&mut self, from: NodeId, to: NodeId) -> Duration {
        let base = match self.config.link_latency.get(&(from, to)) {
            Some(l) => *l,
            None => self.config.latency,
        };
        let mut d = base.sample(&mut self.rng);
        for c in &self.clogs {
            if c.covers(from, to) {
                d += c.extra;
            }
        }
        d
    }

    /// Decides the fate of a message sent at `now`.
    pub fn route(&mut self, now: Time, from: NodeId, to: NodeId) -> Route {
        self.route_held(now, from, to, Duration::ZERO)
    }

    /// [`Network::route`] for a message the link holds `hold` longer than its latency (a
    /// stalled connection): without reordering, later messages on the link queue behind it.
    pub fn route_held(&mut self, now: Time, from: NodeId, to: NodeId, hold: Duration) -> Route {
        if self.blocked(from, to) {
            return Route::Partitioned;
        }
        if self.config.loss > 0.0 && self.rng.random_bool(self.config.loss) {
            return Route::Lost;
        }
        let mut at = now + self.sample_latency(from, to) + hold;
        let reorder = self.config.reorder;
        let link = self.link(from, to);
        if !reorder {
            // FIFO: never arrive before the previous message on this link. Equal arrival times
            // keep send order through the scheduler's insertion sequence.
            at = at.max(link.last_arrival);
            link.last_arrival = at;
        }
        let epoch = link.epoch;
        let duplicate_at =
            if self.config.duplicate > 0.0 && self.rng.random_bool(self.config.duplicate) {
                Some(at + self.sample_latency(from, to))
            } else {
                None
            };
        Route::Deliver {
            at,
            epoch,
            duplicate_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    fn net(config: NetConfig) -> Network {
        Network::new(config, 4, stream(1, "network", 0))
    }

    #[test]
    fn fifo_per_link_without_reorder() {
        let mut n = net(NetConfig {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(50)),
            ..NetConfig::default()
        });
        let mut last = Time::ZERO;
        for i in 0..1000 {
            let now = Time::from_micros_for_test(i * 10);
            match n.route(now, NodeId(0), NodeId(1)) {
                Route::Deliver { at, .. } => {
                    assert!(at >= last);
                    last = at;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn reorder_lets_messages_overtake() {
        let mut n = net(NetConfig {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(50)),
            reorder: true,
            ..NetConfig::default()
        });
        let mut last = Time::ZERO;
        let mut overtaken = 0;
        for i in 0..1000 {
            if let Route::Deliver { at, .. } =
                n.route(Time::from_micros_for_test(i * 10), NodeId(0), NodeId(1))
            {
                if at < last {
                    overtaken += 1;
                }
                last = last.max(at);
            }
        }
        assert!(overtaken > 100, "{overtaken}");
    }

    #[test]
    fn partitions_block_by_group_and_direction_and_break_links() {
        let mut n = net(NetConfig::default());
        let e01 = n.epoch(NodeId(0), NodeId(1));
        let p = n.partition(&[vec![NodeId(0)], vec![NodeId(1), NodeId(2)]], false);
        assert!(n.blocked(NodeId(0), NodeId(1)));
        assert!(n.blocked(NodeId(2), NodeId(0)));
        assert!(!n.blocked(NodeId(1), NodeId(2)));
        assert!(!n.blocked(NodeId(3), NodeId(0)));
        assert_ne!(n.epoch(NodeId(0), NodeId(1)), e01);
        assert_eq!(
            n.route(Time::ZERO, NodeId(0), NodeId(1)),
            Route::Partitioned
        );
        assert!(n.heal(p));
        assert!(!n.blocked(NodeId(0), NodeId(1)));

        let one = n.partition(&[vec![NodeId(0)], vec![NodeId(1)]], true);
        assert!(n.blocked(NodeId(0), NodeId(1)));
        assert!(!n.blocked(NodeId(1), NodeId(0)));
        n.heal(one);
    }

    #[test]
    fn clogging_adds_latency_between_groups_only() {
        let mut n = net(NetConfig {
            latency: Latency::Fixed(Duration::from_millis(1)),
            ..NetConfig::default()
        });
        n.clog(
            &[vec![NodeId(0)], vec![NodeId(1)]],
            false,
            Duration::from_millis(100),
        );
        assert_eq!(
            n.sample_latency(NodeId(0), NodeId(1)),
            Duration::from_millis(101)
        );
        assert_eq!(
            n.sample_latency(NodeId(1), NodeId(0)),
            Duration::from_millis(101)
        );
        assert_eq!(
            n.sample_latency(NodeId(0), NodeId(2)),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn loss_and_duplication_follow_their_probabilities() {
        let mut n = net(NetConfig {
            loss: 0.25,
            duplicate: 0.1,
            ..NetConfig::default()
        });
        let (mut lost, mut dup) = (0, 0);
        for _ in 0..10_000 {
            match n.route(Time::ZERO, NodeId(0), NodeId(1)) {
                Route::Lost => lost += 1,
                Route::Deliver {
                    duplicate_at: Some(_),
                    ..
                } => dup += 1,
                _ => {}
            }
        }
        assert!((2200..2800).contains(&lost), "{lost}");
        assert!((550..950).contains(&dup), "{dup}");
    }

    impl Time {
        fn from_micros_for_test(us: u64) -> Time {
            Time(us * 1000)
        }
    }
}
