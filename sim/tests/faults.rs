//! Process faults as actors see them: down processes refuse connections, killed processes lose
//! volatile state, in-flight messages and timers but keep durable state, paused processes catch up
//! on resume, exited processes are down.

mod common;

use common::*;
use sim::{Fault, Latency, NetConfig, NodeSpec, Status, Time, World};
use std::cell::Cell;
use std::rc::Rc;

fn fixed(v: u64) -> NetConfig {
    NetConfig {
        latency: Latency::Fixed(ms(v)),
        ..NetConfig::default()
    }
}

/// A is started, B is not (it stays down until a `Start` fault).
fn a_up_b_down() -> Vec<NodeSpec> {
    let mut s = specs(2);
    s[1].start = false;
    s
}

fn a_sends_at(at: u64, seq: u64) -> impl Fn(sim::NodeId, u64) -> Script + 'static {
    move |id, boots| {
        if id == A && boots == 0 {
            vec![(ms(at), Step::Send { to: B, seq })]
        } else {
            Vec::new()
        }
    }
}

#[test]
fn a_message_to_a_down_process_comes_back_unreachable_after_a_round_trip() {
    let mut w = world(1, fixed(10), a_up_b_down(), a_sends_at(100, 7));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let u = log.unreachables();
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].0, u[0].1, u[0].2, u[0].3.seq), (at_ms(120), A, B, 7));
    assert_eq!(
        log.obs(A).last().unwrap(),
        &(
            at_ms(120),
            Obs::Unreachable {
                to: B,
                msg: u[0].3.clone()
            }
        )
    );
    assert_eq!(log.delivers().count(), 0);
    assert!(log.drops().is_empty());
    assert_eq!(w.census().status(B), Status::Down);
}

#[test]
fn a_down_process_behind_a_partition_gives_no_answer() {
    let mut w = world(1, fixed(10), a_up_b_down(), a_sends_at(100, 7));
    w.schedule(
        at_ms(50),
        Fault::Partition {
            groups: vec![vec![A], vec![B]],
            one_way: false,
            heal_after: None,
        },
    );
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    assert!(log.unreachables().is_empty());
    let drops = log.drops();
    assert_eq!(drops.len(), 1);
    assert_eq!(drops[0].4, sim::DropReason::Partitioned);
}

#[test]
fn a_message_in_flight_to_a_killed_process_bounces_back() {
    // Sent at 100 ms, would arrive at 110 ms; B dies at 105 ms. The reset reaches A at 120 ms.
    let mut w = world(1, fixed(10), specs(2), a_sends_at(100, 7));
    w.schedule(at_ms(105), Fault::Kill(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let u: Vec<_> = log
        .unreachables()
        .into_iter()
        .map(|u| (u.0, u.1, u.2, u.3.seq))
        .collect();
    assert_eq!(u, vec![(at_ms(120), A, B, 7)]);
    assert_eq!(log.delivers().count(), 0);
}

#[test]
fn a_message_in_flight_to_a_restarted_process_bounces_back_and_the_new_process_never_sees_it() {
    // B dies at 105 ms and is back at 107 ms, before the message sent at 100 ms arrives: the
    // connection it travelled on belonged to the old process. The message sent at 200 ms reaches
    // the new process.
    let mut w = world(1, fixed(10), specs(2), |id, _| match id {
        A => vec![
            (ms(100), Step::Send { to: B, seq: 1 }),
            (ms(200), Step::Send { to: B, seq: 2 }),
        ],
        _ => Vec::new(),
    });
    w.schedule(at_ms(105), Fault::Kill(B));
    w.schedule(at_ms(107), Fault::Start(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let u: Vec<_> = log
        .unreachables()
        .into_iter()
        .map(|u| (u.0, u.3.seq))
        .collect();
    assert_eq!(u, vec![(at_ms(120), 1)]);
    let delivered: Vec<_> = log.delivers().map(|d| (d.0, d.4.seq)).collect();
    assert_eq!(delivered, vec![(at_ms(210), 2)]);
    let got: Vec<_> = log
        .obs(B)
        .into_iter()
        .filter(|(_, o)| matches!(o, Obs::Got { .. }))
        .collect();
    assert_eq!(got.len(), 1);
}

#[test]
fn a_restarted_process_gets_a_fresh_actor_but_keeps_its_durable_state() {
    let built = Rc::new(Cell::new(0u32));
    let counter = built.clone();
    let mut w: World<Probe> = World::new(1, fixed(10), specs(2), move |id, disk: &Disk| {
        counter.set(counter.get() + 1);
        let script = if id == B && disk.boots == 0 {
            vec![
                (ms(100), Step::Persist(7)),
                (ms(100), Step::Bump),
                (ms(120), Step::Bump),
                (ms(150), Step::Persist(8)),
            ]
        } else {
            Vec::new()
        };
        Probe::new(disk, script, None)
    });
    assert_eq!(built.get(), 0, "actors are built when their process starts");
    w.schedule(at_ms(200), Fault::Kill(B));
    w.schedule(at_ms(300), Fault::Start(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));

    assert_eq!(built.get(), 3, "A once, B twice");
    let b = log.obs(B);
    assert_eq!(
        b,
        vec![
            (
                Time::ZERO,
                Obs::Started {
                    boot: 1,
                    saved: vec![],
                    volatile: 0
                }
            ),
            (at_ms(100), Obs::Bumped(1)),
            (at_ms(120), Obs::Bumped(2)),
            (
                at_ms(300),
                Obs::Started {
                    boot: 2,
                    saved: vec![7, 8],
                    volatile: 0
                }
            ),
        ]
    );
    assert_eq!(
        w.durable(B),
        &Disk {
            boots: 2,
            saved: vec![7, 8]
        }
    );
    assert_eq!(w.actor(B).unwrap().volatile, 0);
    let persisted: Vec<_> = log
        .recs
        .iter()
        .filter_map(|r| match r {
            Rec::Persist { t, node, op } if *node == B => Some((*t, op.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        persisted,
        vec![
            (Time::ZERO, "Boot"),
            (at_ms(100), "Save(7)"),
            (at_ms(150), "Save(8)"),
            (at_ms(300), "Boot"),
        ]
    );
}

#[test]
fn kill_cancels_the_processs_timers() {
    // The first incarnation arms a 1 s timer at start; it is killed at 0.5 s and restarted at
    // 0.6 s, when the new incarnation arms its own 1 s timer (which gets the same slot and
    // generation in the fresh timer table).
    let mut w = world(1, fixed(10), specs(2), |id, boots| {
        if id != B {
            return Vec::new();
        }
        let tag = boots + 1;
        vec![(
            ms(0),
            Step::Timer {
                tag,
                after: ms(1000),
            },
        )]
    });
    w.schedule(at_ms(500), Fault::Kill(B));
    w.schedule(at_ms(600), Fault::Start(B));
    let (_, log) = run_until(&mut w, Time::from_secs(3));
    assert!(log.timer_times(B, &Tag::User(1)).is_empty());
    assert_eq!(log.timer_times(B, &Tag::User(2)), vec![at_ms(1600)]);
    let fired: Vec<_> = log
        .obs(B)
        .into_iter()
        .filter_map(|(t, o)| match o {
            Obs::Fired { tag, .. } => Some((t, tag)),
            _ => None,
        })
        .collect();
    assert_eq!(fired, vec![(at_ms(1600), 2)]);
    assert!(log.violations.is_empty(), "{:?}", log.violations);
}

#[test]
fn kill_of_a_down_process_and_start_of_a_running_one_are_not_effective() {
    let mut w = world(1, fixed(10), a_up_b_down(), |_, _| Vec::new());
    w.schedule(at_ms(10), Fault::Kill(B));
    w.schedule(at_ms(20), Fault::Start(A));
    w.schedule(at_ms(30), Fault::Pause(B));
    w.schedule(at_ms(40), Fault::Resume(A));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let faults: Vec<_> = log
        .recs
        .iter()
        .filter_map(|r| match r {
            Rec::Fault {
                t,
                fault,
                effective,
            } => Some((*t, fault.name(), *effective)),
            _ => None,
        })
        .collect();
    assert_eq!(
        faults,
        vec![
            (Time::ZERO, "start", true),
            (at_ms(10), "kill", false),
            (at_ms(20), "start", false),
            (at_ms(30), "pause", false),
            (at_ms(40), "resume", false),
        ]
    );
    let started = log
        .recs
        .iter()
        .filter(|r| matches!(r, Rec::Started { .. }))
        .count();
    assert_eq!(started, 1);
}

#[test]
fn a_paused_process_catches_up_in_arrival_order_at_resume_with_its_clock_running() {
    // B is paused from 100 ms to 500 ms. A sends data at 150, 200, 250, 300 and 600 ms (latency
    // 1..5 ms); B's own timer is due at 300 ms, between the third and fourth arrival.
    let net = NetConfig {
        latency: Latency::Uniform(ms(1), ms(5)),
        ..NetConfig::default()
    };
    let mut w = world(9, net, specs(2), |id, _| match id {
        A => [150, 200, 250, 300, 600]
            .iter()
            .zip(1..)
            .map(|(&at, seq)| (ms(at), Step::Send { to: B, seq }))
            .collect(),
        _ => vec![(
            ms(0),
            Step::Timer {
                tag: 9,
                after: ms(300),
            },
        )],
    });
    w.schedule(at_ms(100), Fault::Pause(B));
    w.schedule(at_ms(500), Fault::Resume(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));

    // Nothing happens on B while it is paused.
    let on_b: Vec<_> = log
        .recs
        .iter()
        .filter_map(|r| match r {
            Rec::Deliver { t, to, msg, .. } if *to == B => Some((*t, format!("data {}", msg.seq))),
            Rec::Timer { t, node, .. } if *node == B => Some((*t, "timer".to_string())),
            _ => None,
        })
        .collect();
    assert!(on_b
        .iter()
        .all(|(t, _)| *t <= at_ms(100) || *t >= at_ms(500)));
    let at_resume: Vec<_> = on_b
        .iter()
        .filter(|(t, _)| *t == at_ms(500))
        .map(|(_, what)| what.as_str())
        .collect();
    assert_eq!(
        at_resume,
        ["data 1", "data 2", "data 3", "timer", "data 4"],
        "waiting events are handled in arrival order"
    );
    // After the resume B is a normal process again.
    let last = on_b.last().unwrap();
    assert_eq!(last.1, "data 5");
    assert!(last.0 > at_ms(600) && last.0 <= at_ms(605));
    // B's clock kept running while it was paused.
    for (t, o) in log.obs(B) {
        match o {
            Obs::Got { mono_ns, .. } | Obs::Fired { mono_ns, .. } => {
                assert_eq!(mono_ns, t.as_nanos())
            }
            _ => {}
        }
    }
    let fired: Vec<_> = log
        .obs(B)
        .into_iter()
        .filter_map(|(_, o)| match o {
            Obs::Fired { mono_ns, .. } => Some(mono_ns),
            _ => None,
        })
        .collect();
    assert_eq!(fired, vec![at_ms(500).as_nanos()]);
    // Messages to a paused process are neither refused nor lost.
    assert!(log.unreachables().is_empty());
    assert!(log.drops().is_empty());
    assert!(log.violations.is_empty(), "{:?}", log.violations);
}

#[test]
fn a_process_killed_while_paused_loses_what_waited_for_it() {
    let mut w = world(1, fixed(10), specs(2), |id, boots| match (id, boots) {
        (A, 0) => vec![(ms(200), Step::Send { to: B, seq: 1 })],
        (B, 0) => vec![(
            ms(0),
            Step::Timer {
                tag: 1,
                after: ms(300),
            },
        )],
        _ => Vec::new(),
    });
    w.schedule(at_ms(100), Fault::Pause(B));
    w.schedule(at_ms(400), Fault::Kill(B));
    w.schedule(at_ms(500), Fault::Start(B));
    let (_, log) = run_until(&mut w, Time::from_secs(2));
    assert_eq!(log.delivers().count(), 0);
    assert!(log.timer_times(B, &Tag::User(1)).is_empty());
    assert_eq!(w.census().status(B), Status::Up);
}

#[test]
fn a_process_that_exits_is_down_and_refuses_later_messages() {
    let mut w = world(1, fixed(10), specs(2), |id, boots| match (id, boots) {
        (A, 0) => vec![
            (ms(100), Step::Send { to: B, seq: 1 }),
            (ms(300), Step::Send { to: B, seq: 2 }),
        ],
        (B, 0) => vec![
            (ms(200), Step::Exit),
            (
                ms(250),
                Step::Timer {
                    tag: 1,
                    after: ms(1),
                },
            ),
        ],
        _ => Vec::new(),
    });
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    assert!(log.recs.contains(&Rec::Exited {
        t: at_ms(200),
        node: B
    }));
    assert_eq!(w.census().status(B), Status::Down);
    assert!(w.actor(B).is_none());
    assert_eq!(log.data_seqs(A, B), vec![1]);
    let u: Vec<_> = log
        .unreachables()
        .into_iter()
        .map(|u| (u.0, u.3.seq))
        .collect();
    assert_eq!(u, vec![(at_ms(320), 2)]);
    // The exited process's remaining script timers never fire.
    assert!(log
        .recs
        .iter()
        .all(|r| !matches!(r, Rec::Timer { node, t, .. } if *node == B && *t > at_ms(200))));
}

#[test]
fn a_process_that_is_not_started_waits_for_a_start_fault() {
    let mut w = world(1, fixed(10), a_up_b_down(), |id, _| match id {
        B => vec![(ms(0), Step::Ping { to: A, seq: 1 })],
        _ => Vec::new(),
    });
    w.schedule(at_ms(250), Fault::Start(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    assert_eq!(
        log.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Started { t, node } => Some((*t, *node)),
                _ => None,
            })
            .collect::<Vec<_>>(),
        vec![(Time::ZERO, A), (at_ms(250), B)]
    );
    let kinds: Vec<_> = log.delivers().map(|d| (d.0, d.4.kind)).collect();
    assert_eq!(
        kinds,
        vec![(at_ms(260), Kind::Ping), (at_ms(270), Kind::Pong)]
    );
}
