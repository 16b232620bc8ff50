//! Aimed faults: message rules (delay, drop, drop the reply) by message name, direction, count
//! and window, and slow processes.

mod common;

use common::*;
use sim::{DropReason, Fault, Latency, MessageAction, MessageRule, NetConfig, NodeId, Time, World};
use std::time::Duration;

fn fixed(v: u64) -> NetConfig {
    NetConfig {
        latency: Latency::Fixed(ms(v)),
        ..NetConfig::default()
    }
}

/// A sends `step(seq)` to B at the given milliseconds, seqs 1, 2, ….
fn a_script(
    times: &'static [u64],
    step: fn(u64) -> Step,
) -> impl Fn(NodeId, u64) -> Script + 'static {
    move |id, boots| {
        if id == A && boots == 0 {
            times
                .iter()
                .enumerate()
                .map(|(i, t)| (ms(*t), step(i as u64 + 1)))
                .collect()
        } else {
            Vec::new()
        }
    }
}

/// A sends data with seqs 1, 2, … at the given milliseconds.
fn a_sends(times: &'static [u64]) -> impl Fn(NodeId, u64) -> Script + 'static {
    a_script(times, |seq| Step::Send { to: B, seq })
}

/// A pings B at the given milliseconds (B answers with a pong, a reply).
fn a_pings(times: &'static [u64]) -> impl Fn(NodeId, u64) -> Script + 'static {
    a_script(times, |seq| Step::Ping { to: B, seq })
}

fn rule(kinds: &[&str], action: MessageAction) -> MessageRule {
    MessageRule {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        from: Vec::new(),
        to: Vec::new(),
        action,
        count: None,
        lasting: None,
    }
}

/// (arrival, seq) of every data message B got.
fn data_at_b(w: &mut World<Probe>) -> (Vec<(Time, u64)>, Log) {
    let (_, log) = run_until(w, Time::from_secs(2));
    let got = log
        .delivers()
        .filter(|(_, _, to, _, m)| *to == B && m.kind == Kind::Data)
        .map(|(t, _, _, _, m)| (t, m.seq))
        .collect();
    (got, log)
}

#[test]
fn a_delay_holds_the_next_matching_message_at_its_sender() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 200]));
    let mut r = rule(&["data"], MessageAction::Delay(ms(50)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, log) = data_at_b(&mut w);
    // The first is held 50 ms and keeps its send time; the second is not touched.
    assert_eq!(got, vec![(at_ms(160), 1), (at_ms(210), 2)]);
    let sent: Vec<Time> = log
        .delivers()
        .filter(|(_, _, to, _, _)| *to == B)
        .map(|(_, _, _, sent, _)| sent)
        .collect();
    assert_eq!(sent, vec![at_ms(100), at_ms(200)]);
}

#[test]
fn a_held_message_may_be_overtaken_by_a_later_one() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 120]));
    let mut r = rule(&["data"], MessageAction::Delay(ms(100)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, _) = data_at_b(&mut w);
    assert_eq!(got, vec![(at_ms(130), 2), (at_ms(210), 1)]);
}

#[test]
fn a_drop_with_a_count_drops_that_many_matching_messages() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 200, 300]));
    let mut r = rule(&["DATA"], MessageAction::Drop);
    r.count = Some(2);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, log) = data_at_b(&mut w);
    assert_eq!(got, vec![(at_ms(310), 3)]);
    let drops = log.drops();
    assert_eq!(drops.len(), 2);
    assert!(drops.iter().all(|d| d.4 == DropReason::Rule));
    assert_eq!(DropReason::Rule.name(), "fault-rule");
}

#[test]
fn a_drop_with_a_window_ends_with_it() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 140, 200]));
    let mut r = rule(&[], MessageAction::Drop);
    r.lasting = Some(ms(100));
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, _) = data_at_b(&mut w);
    // The window is [50 ms, 150 ms): the third send is after it.
    assert_eq!(got, vec![(at_ms(210), 3)]);
}

#[test]
fn a_rule_only_covers_its_direction_and_names() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100]));
    let mut r = rule(&["data"], MessageAction::Drop);
    r.from = vec![B];
    w.schedule(at_ms(50), Fault::Messages(r));
    let mut other = rule(&["pong"], MessageAction::Drop);
    other.to = vec![B];
    w.schedule(at_ms(50), Fault::Messages(other));
    let (got, log) = data_at_b(&mut w);
    assert_eq!(got, vec![(at_ms(110), 1)]);
    assert!(log.drops().is_empty());
}

#[test]
fn a_dropped_reply_leaves_the_request_applied() {
    let mut w = world(1, fixed(10), specs(2), a_pings(&[100, 300]));
    let mut r = rule(&["ping"], MessageAction::DropReply);
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (_, log) = run_until(&mut w, Time::from_secs(1));
    // B got both pings; the first pong vanished, the second arrived.
    let pings_at_b = log
        .delivers()
        .filter(|(_, _, to, _, m)| *to == B && m.kind == Kind::Ping)
        .count();
    assert_eq!(pings_at_b, 2);
    let pongs: Vec<(Time, u64)> = log
        .delivers()
        .filter(|(_, _, to, _, m)| *to == A && m.kind == Kind::Pong)
        .map(|(t, _, _, _, m)| (t, m.seq))
        .collect();
    assert_eq!(pongs, vec![(at_ms(320), 2)]);
    let drops = log.drops();
    assert_eq!(drops.len(), 1);
    assert_eq!((drops[0].1, drops[0].2, drops[0].3.seq), (B, A, 1));
    assert_eq!(drops[0].4, DropReason::Rule);
}

#[test]
fn a_held_message_of_a_sender_that_died_is_gone() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100]));
    let mut r = rule(&["data"], MessageAction::Delay(ms(100)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    w.schedule(at_ms(150), Fault::Kill(A));
    let (got, log) = data_at_b(&mut w);
    assert!(got.is_empty());
    assert_eq!(log.drops()[0].4, DropReason::SenderDied);
}

#[test]
fn a_slow_node_handles_its_events_one_after_another() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 100, 100, 1500]));
    w.schedule(
        at_ms(50),
        Fault::Slow {
            node: B,
            per_event: ms(100),
        },
    );
    w.schedule(
        at_ms(1000),
        Fault::Slow {
            node: B,
            per_event: Duration::ZERO,
        },
    );
    let (got, _) = data_at_b(&mut w);
    // Three arrive at 110 ms and are handled 100 ms apart, in order; after the slowness ends,
    // a message is handled on arrival.
    assert_eq!(
        got,
        vec![
            (at_ms(210), 1),
            (at_ms(310), 2),
            (at_ms(410), 3),
            (at_ms(1510), 4)
        ]
    );
}

#[test]
fn kind_patterns_match_names_and_gateways_without_regard_to_case() {
    use sim::fault::kind_matches;
    assert!(kind_matches("submitTask", "taskexecutor", "submitTask"));
    assert!(kind_matches("SUBMITTASK", "taskexecutor", "submitTask"));
    assert!(kind_matches(
        "taskexecutor.submitTask",
        "taskexecutor",
        "submitTask"
    ));
    assert!(!kind_matches(
        "jobmaster.submitTask",
        "taskexecutor",
        "submitTask"
    ));
    assert!(kind_matches(
        "submitTask.response",
        "jobmaster",
        "submitTask.response"
    ));
    assert!(kind_matches(
        "jobmaster.submitTask.response",
        "jobmaster",
        "submitTask.response"
    ));
    assert!(!kind_matches(
        "submitTask",
        "jobmaster",
        "submitTask.response"
    ));
    assert!(!kind_matches("x.data", "", "data"));
}
