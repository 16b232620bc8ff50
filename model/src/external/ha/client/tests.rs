//! Tests of the HA client against the real store ([`HaStore`]) over a simulated network with
//! seeded loss, delay, pauses, partitions and store crashes: leader election with and without
//! tolerating suspended connections, and the checkpoint id counter. They own that network
//! harness (`Net`); they do not test the store on its own (`store/tests.rs` does).

use super::*;
use crate::external::ha::store::HaStore;
use crate::protocol::ha::HaData;
use crate::protocol::ha::ZnodeData;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

const STORE: NodeId = NodeId(0);
const RM: &str = "resource_manager";
const JOB: &str = "job-1";
const TICK: Duration = Duration::from_millis(50);

fn config(tolerate_suspended_connections: bool) -> SessionConfig {
    SessionConfig {
        session_timeout: Duration::from_secs(6),
        retry_wait: Duration::from_millis(500),
        tolerate_suspended_connections,
    }
}

#[derive(Clone, Debug)]
enum Msg {
    ToStore(HaRequest),
    ToClient(HaReply),
}

struct Client {
    ha: HaClient,
    /// Partitioned from the store: everything to and from it is lost.
    cut: bool,
    paused_until: Time,
    effects: Vec<(Time, Effect)>,
    /// Confirm leadership on every grant, as Flink's contenders do.
    contender: bool,
}

/// The store, the clients and a network between them with seeded loss and delay.
struct Net {
    now: Time,
    store: HaStore,
    /// The store's durable content, rebuilt from the persisted ops only.
    durable: HaData,
    store_down_until: Option<Time>,
    clients: Vec<Client>,
    queue: BTreeMap<(Time, u64), (NodeId, NodeId, Msg)>,
    seq: u64,
    rng: ChaCha8Rng,
    loss: f64,
    delay_max_ms: u64,
    /// Accepted `connection_info` writes: the leader session ids, in order.
    published: Vec<LeaderSessionId>,
    granted: BTreeSet<LeaderSessionId>,
    info_mzxid: u64,
}

impl Net {
    fn new(seed: u64, clients: Vec<HaClient>, contender: bool) -> Net {
        let mut net = Net {
            now: Time::ZERO,
            store: HaStore::new(HaData::default(), Time::ZERO),
            durable: HaData::default(),
            store_down_until: None,
            clients: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss: 0.0,
            delay_max_ms: 5,
            published: Vec::new(),
            granted: BTreeSet::new(),
            info_mzxid: 0,
        };
        for ha in clients {
            net.clients.push(Client {
                ha,
                cut: false,
                paused_until: Time::ZERO,
                effects: Vec::new(),
                contender,
            });
        }
        for i in 0..net.clients.len() {
            let effects = net.clients[i].ha.start(Time::ZERO);
            net.effects(i, effects);
        }
        net
    }

    fn node(i: usize) -> NodeId {
        NodeId(i as u32 + 1)
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        let client = if to == STORE { from } else { to };
        if self.clients[client.index() - 1].cut || self.rng.random_bool(self.loss) {
            return;
        }
        let delay = Duration::from_millis(self.rng.random_range(1..=self.delay_max_ms));
        self.seq += 1;
        self.queue
            .insert((self.now + delay, self.seq), (to, from, msg));
    }

    fn effects(&mut self, i: usize, effects: Vec<Effect>) {
        for effect in effects {
            match &effect {
                Effect::Send(request) => {
                    self.send(Self::node(i), STORE, Msg::ToStore(request.clone()))
                }
                Effect::Granted { leader_session_id } => {
                    assert!(
                        self.granted.insert(*leader_session_id),
                        "leader session id {leader_session_id:?} granted twice"
                    );
                    if self.clients[i].contender {
                        let more = self.clients[i].ha.confirm_leadership(
                            self.now,
                            RM,
                            *leader_session_id,
                            Self::node(i),
                        );
                        self.effects(i, more);
                    }
                }
                _ => {}
            }
            self.clients[i].effects.push((self.now, effect));
        }
    }

    /// After each store step: every accepted `connection_info` write came from the holder
    /// of the lowest latch node, once per latch term.
    fn check_published(&mut self) {
        let data = self.store.data();
        let Some(info) = data.get(&connection_info_path(RM)) else {
            return;
        };
        if info.stat.mzxid == self.info_mzxid {
            return;
        }
        self.info_mzxid = info.stat.mzxid;
        let ZnodeData::LeaderInformation(info) = info.data.clone() else {
            panic!("bad connection_info {info:?}");
        };
        let lowest = data
            .children(LATCH_PATH)
            .into_iter()
            .min()
            .expect("a latch node");
        let lowest = data.get(&format!("{LATCH_PATH}/{lowest}")).unwrap();
        assert_eq!(
            LeaderSessionId(lowest.stat.czxid),
            info.leader_session_id,
            "connection_info written by a non-holder of the latch at {:?}",
            self.now
        );
        assert!(
            !self.published.contains(&info.leader_session_id),
            "two connection_info writes in term {:?}",
            info.leader_session_id
        );
        self.published.push(info.leader_session_id);
    }

    fn deliver(&mut self, to: NodeId, from: NodeId, msg: Msg) {
        match msg {
            Msg::ToStore(request) => {
                if self.store_down_until.is_some() {
                    return;
                }
                let out = self.store.handle(self.now, from, request);
                self.after_store(out);
            }
            Msg::ToClient(reply) => {
                let i = to.index() - 1;
                if self.clients[i].paused_until > self.now {
                    // A paused process takes the message when it resumes.
                    self.seq += 1;
                    let at = self.clients[i].paused_until;
                    self.queue
                        .insert((at, self.seq), (to, from, Msg::ToClient(reply)));
                    return;
                }
                let effects = self.clients[i].ha.on_reply(self.now, reply);
                self.effects(i, effects);
            }
        }
    }

    fn after_store(&mut self, out: crate::external::ha::store::HaOutput) {
        for op in out.persist {
            self.durable.apply(op);
        }
        assert_eq!(&self.durable, self.store.data());
        for (to, reply) in out.send {
            self.send(STORE, to, Msg::ToClient(reply));
        }
        self.check_published();
    }

    fn crash_store(&mut self, down_for: Duration) {
        self.store_down_until = Some(self.now + down_for);
    }

    /// Runs until `until`, one tick at a time.
    fn run_until(&mut self, until: Time, mut each_tick: impl FnMut(&mut Net)) {
        while self.now < until {
            self.now = self.now + TICK;
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, msg) = entry.remove();
                self.deliver(to, from, msg);
            }
            if self.store_down_until.is_some_and(|t| t <= self.now) {
                self.store_down_until = None;
                self.store = HaStore::new(self.durable.clone(), self.now);
            }
            if self.store_down_until.is_none() {
                let out = self.store.expire(self.now);
                self.after_store(out);
            }
            for i in 0..self.clients.len() {
                if self.clients[i].paused_until <= self.now {
                    let effects = self.clients[i].ha.on_tick(self.now);
                    self.effects(i, effects);
                }
            }
            each_tick(self);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, |_| {});
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|i| self.clients[*i].ha.leader_session_id().is_some())
            .collect()
    }

    fn first_effect(&self, i: usize, after: Time, f: impl Fn(&Effect) -> bool) -> Option<Time> {
        self.clients[i]
            .effects
            .iter()
            .find(|(t, e)| *t >= after && f(e))
            .map(|(t, _)| *t)
    }
}

fn contenders(n: usize, tolerate: bool) -> Vec<HaClient> {
    (0..n)
        .map(|_| {
            HaClient::new(STORE, config(tolerate))
                .with_leader_latch()
                .with_leader_retrieval(RM)
        })
        .collect()
}

#[test]
fn ha_election_three_contenders_elect_exactly_one_leader() {
    let mut net = Net::new(1, contenders(3, false), true);
    net.run_for(Duration::from_secs(10));
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let leader = leaders[0];
    let id = net.clients[leader].ha.leader_session_id().unwrap();
    // The leader holds the lowest latch node, and published once.
    let node = net.clients[leader]
        .ha
        .latch()
        .unwrap()
        .node()
        .unwrap()
        .to_string();
    let lowest = net
        .store
        .data()
        .children(LATCH_PATH)
        .into_iter()
        .min()
        .unwrap();
    assert_eq!(node, format!("{LATCH_PATH}/{lowest}"));
    assert_eq!(net.published, vec![id]);
    assert!(net
        .first_effect(leader, Time::ZERO, |e| matches!(
            e,
            Effect::Published { .. }
        ))
        .is_some());
    // Every retriever sees the leader's address and session id.
    let expected = LeaderInformation {
        address: Net::node(leader),
        leader_session_id: id,
    };
    for c in &net.clients {
        assert_eq!(c.ha.retrieved_leader(RM), Some(expected));
        assert_eq!(c.ha.session().state(), ConnectionState::Connected);
    }
    assert_eq!(net.granted.len(), 1);
}

/// The leader is partitioned from the store (it stops pinging). Returns the net, the old
/// leader, the cut time, and the times of its revoke and of the next grant.
fn partition_the_leader(tolerate: bool) -> (Net, usize, Time, Time, Time) {
    let mut net = Net::new(2, contenders(3, tolerate), true);
    net.run_for(Duration::from_secs(5));
    let old = net.leaders()[0];
    let old_id = net.clients[old].ha.leader_session_id().unwrap();
    let cut = net.now;
    net.clients[old].cut = true;
    net.run_for(Duration::from_secs(20));
    let revoked = net
        .first_effect(old, cut, |e| {
            *e == Effect::Revoked {
                leader_session_id: old_id,
            }
        })
        .expect("the old leader is revoked");
    let (new, granted) = (0..3)
        .filter(|i| *i != old)
        .filter_map(|i| {
            net.first_effect(i, cut, |e| matches!(e, Effect::Granted { .. }))
                .map(|t| (i, t))
        })
        .min_by_key(|(_, t)| *t)
        .expect("a new leader");
    let new_id = net.clients[new].ha.leader_session_id().unwrap();
    assert_ne!(new_id, old_id, "a new grant has a new leader session id");
    assert!(new_id > old_id);
    assert_eq!(net.leaders(), vec![new]);
    // The followers' retrieval sees the new leader.
    for i in (0..3).filter(|i| *i != old) {
        assert_eq!(
            net.clients[i].ha.retrieved_leader(RM),
            Some(LeaderInformation {
                address: Net::node(new),
                leader_session_id: new_id
            })
        );
    }
    // The store dropped the old latch node no earlier than one session timeout after the cut.
    let timeout = config(tolerate).session_timeout;
    assert!(granted + config(tolerate).ping_interval() >= cut + timeout);
    assert!(granted <= cut + timeout + Duration::from_secs(1));
    (net, old, cut, revoked, granted)
}

#[test]
fn ha_election_session_expiry_hands_leadership_over_after_the_old_leader_stepped_down() {
    let (mut net, old, cut, revoked, granted) = partition_the_leader(false);
    let c = config(false);
    // SUSPENDED revokes: the old leader steps down before the store drops its node.
    assert!(revoked < granted, "no overlap: {revoked:?} < {granted:?}");
    assert!(revoked <= cut + c.suspend_after() + Duration::from_secs(1));
    assert!(net
        .first_effect(old, cut, |e| *e
            == Effect::ConnectionStateChanged(ConnectionState::Lost))
        .is_some());
    // Healed, the old leader learns of the new leader and does not lead again.
    let new = net.leaders()[0];
    net.clients[old].cut = false;
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.leaders(), vec![new]);
    assert_eq!(
        net.clients[old].ha.session().state(),
        ConnectionState::Connected
    );
    assert_eq!(
        net.clients[old].ha.retrieved_leader(RM).map(|l| l.address),
        Some(Net::node(new))
    );
    assert_eq!(net.published.len(), 2);
}

#[test]
fn ha_election_tolerating_suspension_bounds_the_overlap_by_the_session_timeout() {
    let (_, old, cut, revoked, granted) = partition_the_leader(true);
    let c = config(true);
    // The old leader still believes it leads after the new grant (it only stops on LOST),
    // but for no longer than a session timeout.
    assert!(
        revoked > granted,
        "an overlap exists: {revoked:?} > {granted:?}"
    );
    assert!(revoked - granted <= c.session_timeout);
    assert!(revoked - cut <= c.suspend_after() + c.session_timeout + TICK);

    // Inside the overlap, the store refuses the old leader's connection_info write.
    let mut net = Net::new(2, contenders(3, true), true);
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.leaders(), vec![old]);
    let old_id = net.clients[old].ha.leader_session_id().unwrap();
    let cut = net.now;
    net.clients[old].cut = true;
    net.run_for(c.session_timeout + Duration::from_secs(1));
    assert_eq!(net.leaders().len(), 2, "the overlap window");
    assert_eq!(
        net.clients[old].ha.session().state(),
        ConnectionState::Suspended
    );
    net.clients[old].cut = false;
    let effects = net.clients[old]
        .ha
        .confirm_leadership(net.now, RM, old_id, Net::node(old));
    net.effects(old, effects);
    net.run_for(Duration::from_secs(2));
    let refused = net.first_effect(old, cut, |e| {
        matches!(e, Effect::PublishRefused { leader_session_id, .. } if *leader_session_id == old_id)
    });
    assert!(refused.is_some());
    assert_eq!(net.leaders().len(), 1);
    assert_eq!(
        net.published.len(),
        2,
        "one write per term: {:?}",
        net.published
    );
    assert!(!net.published[1..].contains(&old_id));
}

#[test]
fn ha_election_randomized_loss_pauses_and_store_crashes_keep_one_publishing_leader() {
    let (mut handovers, mut stale_paused_believers, mut store_crashes) = (0, 0, 0);
    for seed in 0..200u64 {
        let mut net = Net::new(seed, contenders(3, false), true);
        net.loss = 0.05;
        net.delay_max_ms = 400;
        let faults_end = Time::from_secs(60);
        net.run_until(faults_end, |net| {
            // Pauses (GC), partitions and store crashes, drawn from the seed.
            for i in 0..net.clients.len() {
                if net.clients[i].paused_until <= net.now && net.rng.random_bool(0.002) {
                    let ms = net.rng.random_range(100..12_000);
                    net.clients[i].paused_until = net.now + Duration::from_millis(ms);
                }
                if net.rng.random_bool(0.002) {
                    net.clients[i].cut = !net.clients[i].cut;
                }
            }
            if net.store_down_until.is_none() && net.rng.random_bool(0.0005) {
                let ms = net.rng.random_range(100..5_000);
                net.crash_store(Duration::from_millis(ms));
                store_crashes += 1;
            }
            // A paused old leader still believes it leads while another one does: the
            // window Flink's fencing tokens exist for. It must never act before noticing.
            if net.leaders().len() > 1 {
                stale_paused_believers += 1;
            }
            // At no time do two running contenders believe they lead with info accepted in
            // their term.
            let believers: Vec<LeaderSessionId> = (0..net.clients.len())
                .filter(|i| net.clients[*i].paused_until <= net.now)
                .filter_map(|i| net.clients[i].ha.leader_session_id())
                .filter(|id| net.published.contains(id))
                .collect();
            assert!(
                believers.len() <= 1,
                "seed {seed}: two leaders {believers:?} at {:?}",
                net.now
            );
        });
        // Healed: exactly one leader, published and seen by every retriever.
        for c in &mut net.clients {
            c.cut = false;
            c.paused_until = Time::ZERO;
        }
        net.loss = 0.0;
        net.delay_max_ms = 5;
        let heal_end = net.now + Duration::from_secs(40);
        net.run_until(heal_end, |_| {});
        let leaders = net.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}: leaders {leaders:?}");
        let id = net.clients[leaders[0]].ha.leader_session_id().unwrap();
        assert_eq!(net.published.last(), Some(&id), "seed {seed}");
        for (i, c) in net.clients.iter().enumerate() {
            assert_eq!(
                c.ha.retrieved_leader(RM),
                Some(LeaderInformation {
                    address: Net::node(leaders[0]),
                    leader_session_id: id
                }),
                "seed {seed}: client {i}"
            );
        }
        // Leader session ids never repeat and only grow with every accepted publish.
        assert!(net.published.windows(2).all(|w| w[0] < w[1]), "seed {seed}");
        assert!(net.published.iter().all(|id| net.granted.contains(id)));
        handovers += net.published.len() - 1;
    }
    // The faults did bite: leadership moved, paused leaders overlapped, the store crashed.
    assert!(handovers > 200, "handovers {handovers}");
    assert!(stale_paused_believers > 0);
    assert!(store_crashes > 10, "store crashes {store_crashes}");
}

fn counters(n: usize) -> Vec<HaClient> {
    (0..n)
        .map(|_| {
            HaClient::new(STORE, config(false))
                .with_leader_latch()
                .with_checkpoint_id_counter(JOB)
        })
        .collect()
}

fn checkpoint_ids(net: &Net, i: usize) -> Vec<u64> {
    net.clients[i]
        .effects
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::CheckpointId { job, checkpoint_id } if job == JOB => Some(*checkpoint_id),
            _ => None,
        })
        .collect()
}

fn counter_value(net: &Net) -> u64 {
    match net
        .store
        .data()
        .get(&checkpoint_id_counter_path(JOB))
        .map(|n| &n.data)
    {
        Some(ZnodeData::Counter(v)) => *v,
        other => panic!("counter {other:?}"),
    }
}

#[test]
fn ha_counter_concurrent_increments_yield_unique_increasing_ids() {
    let mut net = Net::new(3, counters(2), false);
    net.loss = 0.05;
    net.delay_max_ms = 100;
    net.run_until(Time::from_secs(40), |net| {
        for i in 0..2 {
            if net.rng.random_bool(0.3) {
                let effects = net.clients[i].ha.get_and_increment(net.now, JOB);
                net.effects(i, effects);
            }
        }
    });
    net.loss = 0.0;
    net.run_for(Duration::from_secs(5));
    let (a, b) = (checkpoint_ids(&net, 0), checkpoint_ids(&net, 1));
    assert!(a.len() > 20 && b.len() > 20, "{} {}", a.len(), b.len());
    // Each client sees strictly increasing ids, and no id is handed out twice.
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert!(b.windows(2).all(|w| w[0] < w[1]));
    let all: BTreeSet<u64> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), a.len() + b.len());
    assert_eq!(all.first(), Some(&INITIAL_CHECKPOINT_ID));
    // The two interleaved: CAS conflicts were resolved by retrying, not by duplicating.
    assert!(a.iter().any(|x| b.iter().any(|y| y > x)) && b.iter().any(|y| a.iter().any(|x| x > y)));
    // An increment whose answer died with its session may have been applied: that id is
    // skipped, never reused. Every skipped id is accounted for by a failed increment.
    let failed = net
        .clients
        .iter()
        .flat_map(|c| &c.effects)
        .filter(|(_, e)| matches!(e, Effect::CheckpointIdFailed { .. }))
        .count() as u64;
    let next = counter_value(&net);
    assert!(next > *all.last().unwrap());
    assert!(
        next - 1 - all.len() as u64 <= failed,
        "{next} {} {failed}",
        all.len()
    );
}

#[test]
fn ha_counter_continues_after_a_new_leader_and_refuses_while_suspended() {
    let mut net = Net::new(4, counters(2), false);
    net.run_for(Duration::from_secs(3));
    let old = net.leaders()[0];
    let new = 1 - old;
    for _ in 0..5 {
        let effects = net.clients[old].ha.get_and_increment(net.now, JOB);
        net.effects(old, effects);
    }
    net.run_for(Duration::from_secs(2));
    assert_eq!(checkpoint_ids(&net, old), vec![1, 2, 3, 4, 5]);
    // The old leader loses the store; once SUSPENDED its counter refuses at once.
    net.clients[old].cut = true;
    net.run_for(config(false).suspend_after() + TICK);
    assert_eq!(
        net.clients[old].ha.session().state(),
        ConnectionState::Suspended
    );
    let effects = net.clients[old].ha.get_and_increment(net.now, JOB);
    assert_eq!(
        effects,
        vec![Effect::CheckpointIdFailed { job: JOB.into() }]
    );
    // The new leader's counter continues where the old one stopped.
    net.run_for(config(false).session_timeout);
    assert_eq!(net.leaders(), vec![new]);
    for _ in 0..3 {
        let effects = net.clients[new].ha.get_and_increment(net.now, JOB);
        net.effects(new, effects);
    }
    net.run_for(Duration::from_secs(1));
    assert_eq!(checkpoint_ids(&net, new), vec![6, 7, 8]);
    assert_eq!(counter_value(&net), 9);
}

/// FLINK-14091: after SUSPENDED → RECONNECTED the counter works again; with the planted bug it
/// keeps refusing until a new JobMaster takes a fresh counter instance.
#[test]
fn ha_counter_works_after_a_reconnect_unless_the_planted_bug_keeps_it_stuck() {
    for bug in [false, true] {
        let client = HaClient::new(STORE, config(true))
            .with_leader_latch()
            .with_counter_stuck_after_reconnect(bug)
            .with_checkpoint_id_counter(JOB);
        let mut net = Net::new(5, vec![client], false);
        net.run_for(Duration::from_secs(3));
        net.clients[0].cut = true;
        net.run_for(config(true).suspend_after() + TICK);
        assert_eq!(
            net.clients[0].ha.session().state(),
            ConnectionState::Suspended
        );
        // Healed before the session expires: the same session reconnects.
        net.clients[0].cut = false;
        net.run_for(Duration::from_secs(1));
        assert_eq!(
            net.clients[0].ha.session().state(),
            ConnectionState::Connected
        );
        let effects = net.clients[0].ha.get_and_increment(net.now, JOB);
        net.effects(0, effects);
        net.run_for(Duration::from_secs(1));
        let stuck = net.clients[0]
            .effects
            .iter()
            .any(|(_, e)| matches!(e, Effect::CheckpointIdFailed { .. }));
        assert_eq!(stuck, bug, "bug {bug}");
        assert_eq!(checkpoint_ids(&net, 0), if bug { vec![] } else { vec![1] });
        // A new JobMaster's counter instance remembers nothing.
        net.clients[0].ha.add_checkpoint_id_counter(JOB);
        let effects = net.clients[0].ha.get_and_increment(net.now, JOB);
        net.effects(0, effects);
        net.run_for(Duration::from_secs(1));
        assert_eq!(
            checkpoint_ids(&net, 0),
            if bug { vec![1] } else { vec![1, 2] }
        );
    }
}
