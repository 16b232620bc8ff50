//! The simulated network as actors see it: FIFO links, reordering, partitions, clogging, loss and
//! duplication.

mod common;

use common::*;
use sim::{DropReason, Fault, Latency, NetConfig, Time};
use std::collections::BTreeMap;

/// A sends `count` data messages to B, one every `every` ms from `every` on (seq = index).
fn stream_a_to_b(count: u64, every: u64) -> impl Fn(sim::NodeId, u64) -> Script + 'static {
    move |id, _| {
        if id == A {
            (0..count)
                .map(|i| (ms((i + 1) * every), Step::Send { to: B, seq: i }))
                .collect()
        } else {
            Vec::new()
        }
    }
}

fn inversions(seqs: &[u64]) -> usize {
    seqs.windows(2).filter(|w| w[0] > w[1]).count()
}

#[test]
fn a_link_delivers_in_send_order_under_random_latency() {
    let net = NetConfig {
        latency: Latency::Uniform(ms(1), ms(50)),
        ..NetConfig::default()
    };
    let mut w = world(1, net, specs(2), stream_a_to_b(500, 20));
    let (_, log) = run_until(&mut w, Time::from_secs(12));
    assert_eq!(log.data_seqs(A, B), (0..500).collect::<Vec<_>>());
    // The latency really varied (otherwise FIFO would be trivial): with messages 20 ms apart and
    // 1..50 ms of latency, later messages would often overtake earlier ones (see the next test).
    let transit: Vec<_> = log
        .delivers()
        .map(|d| d.0.as_nanos() - d.3.as_nanos())
        .collect();
    let (lo, hi) = (transit.iter().min().unwrap(), transit.iter().max().unwrap());
    assert!(*lo < ms(10).as_nanos() as u64 && *hi > ms(40).as_nanos() as u64);
    assert!(log.violations.is_empty(), "{:?}", log.violations);
}

#[test]
fn with_reorder_messages_overtake_each_other() {
    let net = NetConfig {
        latency: Latency::Uniform(ms(1), ms(50)),
        reorder: true,
        ..NetConfig::default()
    };
    let mut w = world(1, net, specs(2), stream_a_to_b(500, 20));
    let (_, log) = run_until(&mut w, Time::from_secs(12));
    let seqs = log.data_seqs(A, B);
    assert_eq!(seqs.len(), 500, "reordering loses nothing");
    assert!(inversions(&seqs) > 50, "{} inversions", inversions(&seqs));
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, (0..500).collect::<Vec<_>>());
}

fn fixed(v: u64) -> NetConfig {
    NetConfig {
        latency: Latency::Fixed(ms(v)),
        ..NetConfig::default()
    }
}

fn partition_ab(one_way: bool, heal_after_ms: Option<u64>) -> Fault {
    Fault::Partition {
        groups: vec![vec![A], vec![B]],
        one_way,
        heal_after: heal_after_ms.map(ms),
    }
}

#[test]
fn a_partition_loses_messages_in_flight_drops_new_ones_silently_and_heals() {
    // Latency 10 ms. The partition runs from 1 s to 2 s.
    let mut w = world(3, fixed(10), specs(2), |id, _| match id {
        A => vec![
            (ms(995), Step::Send { to: B, seq: 1 }),  // in flight at 1 s
            (ms(1500), Step::Send { to: B, seq: 2 }), // into the partition
            (ms(2500), Step::Send { to: B, seq: 3 }), // after the heal
        ],
        _ => vec![(ms(1500), Step::Send { to: A, seq: 10 })],
    });
    w.schedule(at_ms(1000), partition_ab(false, Some(1000)));
    let (_, log) = run_until(&mut w, Time::from_secs(4));

    let mut drops: Vec<_> = log
        .drops()
        .into_iter()
        .map(|(t, from, to, m, r)| (t, from, to, m.seq, r))
        .collect();
    drops.sort_by_key(|d| (d.0, d.1));
    assert_eq!(
        drops,
        vec![
            (at_ms(1005), A, B, 1, DropReason::LinkBroken),
            (at_ms(1500), A, B, 2, DropReason::Partitioned),
            (at_ms(1500), B, A, 10, DropReason::Partitioned),
        ]
    );
    // Senders hear nothing about messages lost to a partition.
    assert!(log.unreachables().is_empty());
    assert!(log
        .obs(A)
        .iter()
        .chain(log.obs(B).iter())
        .all(|(_, o)| !matches!(o, Obs::Unreachable { .. })));
    // After the heal the link works again.
    let delivered: Vec<_> = log.delivers().map(|d| (d.0, d.1, d.4.seq)).collect();
    assert_eq!(delivered, vec![(at_ms(2510), A, 3)]);
    let heals: Vec<_> = log
        .recs
        .iter()
        .filter_map(|r| match r {
            Rec::Fault {
                t,
                fault: Fault::Heal(_),
                effective,
            } => Some((*t, *effective)),
            _ => None,
        })
        .collect();
    assert_eq!(heals, vec![(at_ms(2000), true)]);
}

#[test]
fn a_partition_without_heal_lasts_until_heal_all() {
    let mut w = world(3, fixed(10), specs(2), |id, _| match id {
        A => vec![
            (ms(500), Step::Send { to: B, seq: 1 }),
            (ms(1500), Step::Send { to: B, seq: 2 }),
        ],
        _ => vec![],
    });
    w.schedule(at_ms(100), partition_ab(false, None));
    w.schedule(at_ms(1000), Fault::HealAll);
    let (_, log) = run_until(&mut w, Time::from_secs(2));
    assert_eq!(log.data_seqs(A, B), vec![2]);
    assert_eq!(log.drops().len(), 1);
    assert_eq!(log.drops()[0].4, DropReason::Partitioned);
}

#[test]
fn a_one_way_partition_blocks_only_group0_to_group1() {
    // B pings A through a one-way partition A -/-> B: the ping arrives, the pong is dropped.
    let mut w = world(5, fixed(10), specs(2), |id, _| match id {
        A => vec![(ms(100), Step::Send { to: B, seq: 1 })],
        _ => vec![
            (ms(100), Step::Send { to: A, seq: 2 }),
            (ms(200), Step::Ping { to: A, seq: 3 }),
        ],
    });
    w.schedule(at_ms(50), partition_ab(true, None));
    let (_, log) = run_until(&mut w, Time::from_secs(1));

    assert_eq!(log.data_seqs(B, A), vec![2]);
    assert!(log.data_seqs(A, B).is_empty());
    let pings: Vec<_> = log
        .delivers()
        .filter(|d| d.4.kind == Kind::Ping)
        .map(|d| (d.0, d.1, d.2))
        .collect();
    assert_eq!(pings, vec![(at_ms(210), B, A)]);
    let drops: Vec<_> = log
        .drops()
        .into_iter()
        .map(|(t, from, to, m, r)| (t, from, to, m.kind, r))
        .collect();
    assert_eq!(
        drops,
        vec![
            (at_ms(100), A, B, Kind::Data, DropReason::Partitioned),
            (at_ms(210), A, B, Kind::Pong, DropReason::Partitioned),
        ]
    );
}

#[test]
fn nodes_outside_a_partitions_groups_are_unaffected() {
    let mut w = world(5, fixed(10), specs(3), |id, _| match id {
        C => vec![
            (ms(100), Step::Send { to: A, seq: 1 }),
            (ms(100), Step::Send { to: B, seq: 2 }),
        ],
        _ => vec![],
    });
    w.schedule(at_ms(50), partition_ab(false, None));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    assert_eq!(log.data_seqs(C, A), vec![1]);
    assert_eq!(log.data_seqs(C, B), vec![2]);
    assert!(log.drops().is_empty());
}

#[test]
fn clogging_adds_latency_between_groups_until_cleared() {
    // A sends to B and to C every 100 ms; A|B is clogged by 200 ms from 1 s to 2 s.
    let mut w = world(7, fixed(5), specs(3), |id, _| {
        if id != A {
            return Vec::new();
        }
        (1..40u64)
            .flat_map(|i| {
                [
                    (ms(i * 100), Step::Send { to: B, seq: i }),
                    (ms(i * 100), Step::Send { to: C, seq: i }),
                ]
            })
            .collect()
    });
    w.schedule(
        at_ms(1000),
        Fault::Clog {
            groups: vec![vec![A], vec![B]],
            one_way: false,
            extra: ms(200),
            clear_after: Some(ms(1000)),
        },
    );
    let (_, log) = run_until(&mut w, Time::from_secs(5));
    let transit = |to| -> BTreeMap<u64, u64> {
        log.delivers()
            .filter(|d| d.2 == to)
            .map(|d| (d.3.as_millis(), d.0.as_millis() - d.3.as_millis()))
            .collect()
    };
    let to_b = transit(B);
    let to_c = transit(C);
    assert_eq!(to_b.len(), 39);
    for (&sent, &lat) in &to_b {
        match sent {
            ..1000 => assert_eq!(lat, 5, "sent at {sent} ms"),
            1000..2000 => assert_eq!(lat, 205, "sent at {sent} ms"),
            // FIFO: the first messages after the clear queue behind the clogged ones.
            2000..2200 => assert!((5..=205).contains(&lat), "sent at {sent} ms: {lat}"),
            _ => assert_eq!(lat, 5, "sent at {sent} ms"),
        }
    }
    assert!(to_c.values().all(|&l| l == 5), "A -> C is not clogged");
}

#[test]
fn loss_drops_roughly_that_fraction() {
    let net = NetConfig {
        loss: 0.3,
        ..NetConfig::default()
    };
    let mut w = world(11, net, specs(2), stream_a_to_b(2000, 1));
    let (_, log) = run_until(&mut w, Time::from_secs(5));
    let delivered = log.data_seqs(A, B);
    let lost = log
        .drops()
        .iter()
        .filter(|d| d.4 == DropReason::Lost)
        .count();
    assert_eq!(
        delivered.len() + lost,
        2000,
        "every message is delivered or lost"
    );
    assert!((500..700).contains(&lost), "lost {lost} of 2000 at p = 0.3");
    // What does arrive still arrives in order.
    assert!(delivered.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn duplication_delivers_some_messages_twice() {
    let net = NetConfig {
        duplicate: 0.2,
        ..NetConfig::default()
    };
    let mut w = world(13, net, specs(2), stream_a_to_b(2000, 1));
    let (_, log) = run_until(&mut w, Time::from_secs(5));
    let mut copies = BTreeMap::<u64, u32>::new();
    for s in log.data_seqs(A, B) {
        *copies.entry(s).or_default() += 1;
    }
    assert_eq!(copies.len(), 2000, "every message arrives at least once");
    assert!(copies.values().all(|&c| c <= 2));
    let twice = copies.values().filter(|&&c| c == 2).count();
    assert!(
        (300..500).contains(&twice),
        "{twice} of 2000 twice at p = 0.2"
    );
    assert!(log.drops().is_empty());
}

#[test]
fn per_link_latency_overrides_the_default() {
    let mut net = fixed(5);
    net.link_latency.insert((A, B), Latency::Fixed(ms(50)));
    let mut w = world(1, net, specs(2), |id, _| match id {
        A => vec![(ms(10), Step::Ping { to: B, seq: 1 })],
        _ => vec![],
    });
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let times: Vec<_> = log.delivers().map(|d| (d.0, d.4.kind)).collect();
    // A -> B takes 50 ms, B -> A the default 5 ms.
    assert_eq!(
        times,
        vec![(at_ms(60), Kind::Ping), (at_ms(65), Kind::Pong)]
    );
}
