//! Regression tests for kernel bugs found while writing the integration tests, each named after
//! the behaviour it protects.

mod common;

use common::*;
use sim::{Fault, Latency, NetConfig, Time};

fn fixed(v: u64) -> NetConfig {
    NetConfig {
        latency: Latency::Fixed(ms(v)),
        ..NetConfig::default()
    }
}

/// `Fault::Resume` re-queues the parked events at `now` behind everything already queued for
/// `now`, so an event arriving exactly at the resume instant overtakes the parked ones.
#[test]
fn messages_parked_on_a_paused_process_are_not_overtaken_at_resume() {
    // B is paused from 10 ms to 100 ms. A sends seq 1 at 50 ms (arrives 55 ms, parked) and seq 2
    // at 95 ms (arrives exactly at 100 ms, the resume instant).
    let mut w = world(1, fixed(5), specs(2), |id, _| match id {
        A => vec![
            (ms(50), Step::Send { to: B, seq: 1 }),
            (ms(95), Step::Send { to: B, seq: 2 }),
        ],
        _ => Vec::new(),
    });
    w.schedule(at_ms(10), Fault::Pause(B));
    w.schedule(at_ms(100), Fault::Resume(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    assert_eq!(log.data_seqs(A, B), vec![1, 2], "FIFO on A -> B");
}

/// `World::bounce` answers the sender's *current* incarnation: a process restarted after it sent
/// a message hears that its predecessor's message was refused.
#[test]
fn a_restarted_sender_does_not_hear_about_its_predecessors_messages() {
    // A (boot 1) sends at 100 ms (arrives 110 ms). A dies at 102 ms and is back at 104 ms (boot 2).
    // B dies at 105 ms, so the message bounces at 110 ms; the answer arrives at 120 ms.
    let mut w = world(1, fixed(10), specs(2), |id, boots| match (id, boots) {
        (A, 0) => vec![(ms(100), Step::Send { to: B, seq: 1 })],
        _ => Vec::new(),
    });
    w.schedule(at_ms(102), Fault::Kill(A));
    w.schedule(at_ms(104), Fault::Start(A));
    w.schedule(at_ms(105), Fault::Kill(B));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    let heard: Vec<_> = log
        .obs(A)
        .into_iter()
        .filter(|(_, o)| matches!(o, Obs::Unreachable { .. }))
        .collect();
    assert!(
        heard.is_empty(),
        "boot 2 of A was told about boot 1's message: {heard:?}"
    );
}

/// `World::run` sets `now = limits.time_max` when the next event is later, even when `time_max`
/// is before `now`: time goes backwards and `schedule` then accepts faults in the past.
#[test]
fn a_run_with_an_earlier_time_limit_does_not_move_time_back() {
    let mut w = ping_cluster(1, NetConfig::default(), 3, ms(100));
    let (first, _) = run_until(&mut w, Time::from_secs(2));
    assert_eq!(first.time, Time::from_secs(2));
    let (second, _) = run_until(&mut w, Time::from_secs(1));
    assert!(
        second.time >= first.time,
        "time went from {:?} to {:?}",
        first.time,
        second.time
    );
    assert!(w.now() >= Time::from_secs(2));
}
