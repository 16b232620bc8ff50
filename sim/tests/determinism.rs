//! A run is a function of its seed, and every run ends: limits, quiescence and observer stops.

mod common;

use common::*;
use sim::{Fault, Latency, Limits, NetConfig, Outcome, StopReason, Time, World};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

fn net() -> NetConfig {
    NetConfig {
        latency: Latency::Uniform(ms(1), ms(20)),
        loss: 0.01,
        duplicate: 0.01,
        ..NetConfig::default()
    }
}

/// Five pingers with a few faults.
fn busy_world(seed: u64) -> World<Probe> {
    let mut w = ping_cluster(seed, net(), 5, ms(25));
    w.schedule(at_ms(700), Fault::Kill(C));
    w.schedule(at_ms(900), Fault::Pause(B));
    w.schedule(
        at_ms(1000),
        Fault::Partition {
            groups: vec![vec![A, B], vec![C, sim::NodeId(3)]],
            one_way: false,
            heal_after: Some(ms(400)),
        },
    );
    w.schedule(at_ms(1200), Fault::Resume(B));
    w.schedule(at_ms(1300), Fault::Start(C));
    w
}

fn run(seed: u64) -> (Outcome, Log) {
    run_until(&mut busy_world(seed), Time::from_secs(3))
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let (a, log_a) = run(42);
    let (b, log_b) = run(42);
    assert_eq!(a, b);
    assert_eq!(log_a.recs, log_b.recs);
    assert!(a.events > 1000, "a busy run: {} events", a.events);
    assert_eq!(a.events, log_a.recs.len() as u64);
    // The run exercised what it claims to.
    let has = |f: &dyn Fn(&Rec) -> bool| log_a.recs.iter().any(f);
    assert!(has(&|r| matches!(r, Rec::Unreachable { .. })));
    assert!(has(&|r| matches!(r, Rec::Drop { .. })));
    assert!(has(
        &|r| matches!(r, Rec::Started { t, .. } if *t > Time::ZERO)
    ));
    assert!(log_a.violations.is_empty(), "{:?}", log_a.violations);
}

#[test]
fn different_seeds_give_different_traces() {
    let hashes: std::collections::BTreeSet<u64> =
        (1..=5).map(|seed| run(seed).0.trace_hash).collect();
    assert_eq!(hashes.len(), 5);
}

#[test]
fn the_trace_hash_covers_message_payloads() {
    // Same timing, same kinds of events; only a payload differs.
    let outcome = |seq: u64| {
        let mut w = world(1, NetConfig::default(), specs(2), move |id, _| match id {
            A => vec![(ms(10), Step::Send { to: B, seq })],
            _ => Vec::new(),
        });
        run_until(&mut w, Time::from_secs(1)).0
    };
    let (x, y) = (outcome(1), outcome(2));
    assert_eq!((x.events, x.time), (y.events, y.time));
    assert_ne!(x.trace_hash, y.trace_hash);
    assert_eq!(x.trace_hash, outcome(1).trace_hash);
}

#[test]
fn the_event_budget_stops_the_run() {
    let mut w = busy_world(1);
    let limits = Limits {
        time_max: Time::from_secs(3600),
        events_max: 200,
    };
    let outcome = w.run(limits, &mut ());
    assert_eq!(outcome.reason, StopReason::EventBudget);
    assert!(outcome.time < Time::from_secs(3), "{:?}", outcome.time);
    assert!(outcome.events > 0);
}

#[test]
fn the_time_limit_stops_the_run_after_events_due_at_the_limit() {
    // Pingers tick every 100 ms: ticks due exactly at 2 s are handled, later ones are not.
    let mut w = ping_cluster(1, net(), 3, ms(100));
    let (outcome, log) = run_until(&mut w, Time::from_secs(2));
    assert_eq!(outcome.reason, StopReason::TimeLimit);
    assert_eq!(outcome.time, Time::from_secs(2));
    assert!(log.recs.iter().all(|r| r.time() <= Time::from_secs(2)));
    let ticks_at_limit = log
        .recs
        .iter()
        .filter(|r| matches!(r, Rec::Timer { t, .. } if *t == Time::from_secs(2)))
        .count();
    assert_eq!(ticks_at_limit, 3);
    // The run can be continued where it stopped, and the continuation is deterministic.
    let (more, log2) = run_until(&mut w, Time::from_secs(3));
    assert!(log2.recs.iter().all(|r| r.time() > Time::from_secs(2)));
    let mut again = ping_cluster(1, net(), 3, ms(100));
    let (straight, _) = run_until(&mut again, Time::from_secs(3));
    assert_eq!(more, straight, "two runs to 2 s and 3 s == one run to 3 s");
}

#[test]
fn a_run_with_nothing_left_to_do_is_quiescent() {
    let mut w = world(1, NetConfig::default(), specs(2), |id, _| match id {
        A => vec![(ms(10), Step::Ping { to: B, seq: 1 })],
        _ => Vec::new(),
    });
    let (outcome, log) = run_until(&mut w, Time::from_secs(3600));
    assert_eq!(outcome.reason, StopReason::Quiescent);
    assert_eq!(outcome.time, log.recs.last().unwrap().time());
    assert!(outcome.time < Time::from_secs(1));
}

#[test]
fn the_observer_can_stop_the_run() {
    let mut w = ping_cluster(1, net(), 3, ms(100));
    let mut log = Log {
        stop_after_delivers: Some(10),
        ..Log::default()
    };
    let outcome = w.run(Limits::default(), &mut log);
    assert_eq!(outcome.reason, StopReason::Observer);
    assert_eq!(log.delivers().count(), 10);
}

/// A `Write` into a shared buffer.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_recorded_trace_has_one_line_per_event_ending_in_the_trace_hash() {
    let buf = Shared::default();
    let mut w = busy_world(7);
    w.record_trace(Box::new(buf.clone()));
    let (outcome, _) = run_until(&mut w, Time::from_secs(1));
    assert!(w.finish_trace().is_none());
    let text = String::from_utf8(buf.0.borrow().clone()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len() as u64, outcome.events);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{{\"i\":{i},")), "{line}");
        assert!(line.ends_with('}'));
    }
    let last = lines.last().unwrap();
    assert!(last.ends_with(&format!("\"hash\":\"{:016x}\"}}", outcome.trace_hash)));
    // Recording does not change the run.
    assert_eq!(run_until(&mut busy_world(7), Time::from_secs(1)).0, outcome);
}
