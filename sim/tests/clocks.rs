//! Per-node clocks as actors see them: timers run on the node's drifting monotonic clock; wall
//! clock jumps move timestamps, not timers.

mod common;

use common::*;
use sim::{Clock, Fault, NetConfig, NodeId, Time};

const SECOND_NS: u64 = 1_000_000_000;

/// Nodes with the given clocks; each arms a 10 s timer (tag 1) in `on_start`.
fn ten_second_timers(clocks: &[Clock]) -> sim::World<Probe> {
    let mut s = specs(clocks.len() as u32);
    for (spec, clock) in s.iter_mut().zip(clocks) {
        spec.clock = *clock;
    }
    world(1, NetConfig::default(), s, |_, _| {
        vec![(
            ms(0),
            Step::Timer {
                tag: 1,
                after: ms(10_000),
            },
        )]
    })
}

fn fired(log: &Log, node: NodeId) -> Vec<(Time, u64, i64)> {
    log.obs(node)
        .into_iter()
        .filter_map(|(t, o)| match o {
            Obs::Fired {
                mono_ns, wall_ms, ..
            } => Some((t, mono_ns, wall_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fast_clock_fires_a_timer_earlier_in_true_time_than_a_slow_one() {
    // +1000 ppm runs 0.1% fast, -1000 ppm 0.1% slow.
    let mut w = ten_second_timers(&[Clock::new(1000, 0), Clock::default(), Clock::new(-1000, 0)]);
    let (_, log) = run_until(&mut w, Time::from_secs(20));
    let [fast, exact, slow] = [NodeId(0), NodeId(1), NodeId(2)].map(|n| {
        let f = fired(&log, n);
        assert_eq!(f.len(), 1);
        f[0]
    });
    assert!(
        fast.0 < exact.0 && exact.0 < slow.0,
        "{fast:?} {exact:?} {slow:?}"
    );
    assert_eq!(exact.0, Time::from_secs(10));
    // 10 s local is 10 / 1.001 s and 10 / 0.999 s true, within a microsecond.
    let near = |t: Time, want_ns: u64| t.as_nanos().abs_diff(want_ns) < 1_000;
    assert!(near(fast.0, 9_990_009_990), "{:?}", fast.0);
    assert!(near(slow.0, 10_010_010_010), "{:?}", slow.0);
    // Each node saw its timer fire no earlier than 10 s on its own clock, and only just after.
    for (_, mono_ns, _) in [fast, exact, slow] {
        assert!(
            (10 * SECOND_NS..10 * SECOND_NS + 1_000).contains(&mono_ns),
            "{mono_ns}"
        );
    }
}

#[test]
fn a_clock_jump_moves_the_wall_clock_but_not_timers() {
    // Three exact clocks with timers due at 10 s; node 1's wall clock jumps forward an hour at
    // 1 s, node 2's jumps back 15 s at 2 s.
    let mut w = ten_second_timers(&[Clock::default(), Clock::default(), Clock::new(0, 0)]);
    w.schedule(
        Time::from_secs(1),
        Fault::ClockJump {
            node: NodeId(1),
            by_ns: 3600 * SECOND_NS as i64,
        },
    );
    w.schedule(
        Time::from_secs(2),
        Fault::ClockJump {
            node: NodeId(2),
            by_ns: -15 * SECOND_NS as i64,
        },
    );
    let (_, log) = run_until(&mut w, Time::from_secs(20));
    let f: Vec<_> = (0..3).map(|n| fired(&log, NodeId(n))[0]).collect();
    for (t, mono_ns, _) in &f {
        assert_eq!(*t, Time::from_secs(10));
        assert_eq!(*mono_ns, 10 * SECOND_NS);
    }
    assert_eq!(f[0].2, 10_000);
    assert_eq!(f[1].2, 10_000 + 3_600_000);
    assert_eq!(f[2].2, 10_000 - 15_000);
    assert_eq!(
        w.census().clock(NodeId(1)).jumped_ns,
        3600 * SECOND_NS as i64
    );
}

#[test]
fn the_wall_clock_includes_the_offset_and_drift() {
    let mut w = ten_second_timers(&[Clock::new(0, -3 * SECOND_NS as i64), Clock::new(1000, 0)]);
    let (_, log) = run_until(&mut w, Time::from_secs(20));
    assert_eq!(fired(&log, NodeId(0))[0].2, 10_000 - 3_000);
    // A drifting node's wall clock runs at its own rate: the timer fires at 10 s local.
    assert_eq!(fired(&log, NodeId(1))[0].2, 10_000);
}

#[test]
fn drift_scales_message_timestamps_on_the_receiver() {
    // Node 1 runs 10% fast: a message it receives at true time t reads mono 1.1 t.
    let mut s = specs(2);
    s[1].clock = Clock::new(100_000, 0);
    let mut w = world(1, NetConfig::default(), s, |id, _| match id {
        A => vec![(ms(1000), Step::Send { to: B, seq: 1 })],
        _ => Vec::new(),
    });
    let (_, log) = run_until(&mut w, Time::from_secs(2));
    let got: Vec<_> = log
        .obs(B)
        .into_iter()
        .filter_map(|(t, o)| match o {
            Obs::Got { mono_ns, .. } => Some((t, mono_ns)),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    let (t, mono) = got[0];
    assert_eq!(mono, t.as_nanos() + t.as_nanos() / 10);
}
