//! Aimed faults: message rules (delay, drop, drop the reply) by message name, direction, count
//! and window, and slow processes.

mod common;

use common::*;
use sim::{DropReason, Fault, Latency, MessageAction, MessageRule, NetConfig, NodeId, Time, World};

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

/// From `at` ms on, B's handlers take `per_event` ms each (0: no longer slow).
fn slow_b(w: &mut World<Probe>, at: u64, per_event: u64) {
    w.schedule(
        at_ms(at),
        Fault::Slow {
            node: B,
            per_event: ms(per_event),
        },
    );
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
fn a_delay_holds_the_next_matching_message() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 200]));
    let mut r = rule(&["data"], MessageAction::Delay(ms(50)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, log) = data_at_b(&mut w);
    // The first is held 50 ms on its link and keeps its send time; the second is not touched.
    assert_eq!(got, vec![(at_ms(160), 1), (at_ms(210), 2)]);
    let sent: Vec<Time> = log
        .delivers()
        .filter(|(_, _, to, _, _)| *to == B)
        .map(|(_, _, _, sent, _)| sent)
        .collect();
    assert_eq!(sent, vec![at_ms(100), at_ms(200)]);
}

#[test]
fn a_held_request_stalls_its_link_so_later_messages_queue_behind_it() {
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 120]));
    let mut r = rule(&["data"], MessageAction::Delay(ms(100)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (got, _) = data_at_b(&mut w);
    // TCP delivers in order: the second waits for the first.
    assert_eq!(got, vec![(at_ms(210), 1), (at_ms(210), 2)]);
}

#[test]
fn a_held_reply_is_sent_late_and_later_messages_overtake_it() {
    let mut w = world(1, fixed(10), specs(2), a_pings(&[100, 120]));
    let mut r = rule(&["pong"], MessageAction::Delay(ms(100)));
    r.count = Some(1);
    w.schedule(at_ms(50), Fault::Messages(r));
    let (_, log) = run_until(&mut w, Time::from_secs(2));
    let pongs: Vec<(Time, u64)> = log
        .delivers()
        .filter(|(_, _, to, _, m)| *to == A && m.kind == Kind::Pong)
        .map(|(t, _, _, _, m)| (t, m.seq))
        .collect();
    // The first answer completes 100 ms late (sent at 210 ms): the second, answered at once,
    // arrives first.
    assert_eq!(pongs, vec![(at_ms(140), 2), (at_ms(220), 1)]);
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

/// When B handled the data A sent at `times` ms, with B slow (100 ms per event) from 50 ms to
/// `until` ms.
fn handled_while_slow(times: &'static [u64], until: u64) -> Vec<(u64, u64)> {
    let mut w = world(1, fixed(10), specs(2), a_sends(times));
    slow_b(&mut w, 50, 100);
    slow_b(&mut w, until, 0);
    let (got, _) = data_at_b(&mut w);
    got.into_iter()
        .map(|(t, seq)| ((t - Time::ZERO).as_millis() as u64, seq))
        .collect()
}

#[test]
fn a_slow_node_handles_its_events_one_after_another() {
    // Three arrive at 110 ms and are handled 100 ms apart, in order; after the slowness ends,
    // a message is handled on arrival.
    let got = handled_while_slow(&[100, 100, 100, 1500], 1000);
    assert_eq!(got, vec![(210, 1), (310, 2), (410, 3), (1510, 4)]);
}

#[test]
fn a_node_that_stops_being_slow_works_off_its_backlog_first() {
    // The slowness ends at 250 ms, while the second is being handled (done at 310 ms), and a
    // fourth arrives at 260 ms: the rest of the backlog is then handled at once, the fourth
    // after it.
    let got = handled_while_slow(&[100, 100, 100, 250], 250);
    assert_eq!(got, vec![(210, 1), (310, 2), (310, 3), (310, 4)]);
}

#[test]
fn a_slow_node_that_is_paused_keeps_its_backlog_in_order() {
    // Three arrive at 110 ms; the node is paused at 150 ms (its first turn, due at 210 ms,
    // finds it paused) and resumed at 500 ms: still slow, it handles them 100 ms apart again.
    let mut w = world(1, fixed(10), specs(2), a_sends(&[100, 100, 100]));
    slow_b(&mut w, 50, 100);
    w.schedule(at_ms(150), Fault::Pause(B));
    w.schedule(at_ms(500), Fault::Resume(B));
    let (got, _) = data_at_b(&mut w);
    assert_eq!(got, vec![(at_ms(600), 1), (at_ms(700), 2), (at_ms(800), 3)]);
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

#[test]
fn answer_delay_holds_every_answer_and_nothing_else() {
    let net = NetConfig {
        answer_delay: Some(Latency::Fixed(ms(50))),
        ..fixed(10)
    };
    assert_eq!(
        net.latency_max(),
        ms(60),
        "an answer's wait counts as latency"
    );
    let mut w = world(1, net.clone(), specs(2), a_pings(&[100, 120]));
    let (_, log) = run_until(&mut w, Time::from_secs(2));
    let at = |kind: Kind, to: NodeId| -> Vec<(Time, u64)> {
        log.delivers()
            .filter(|(_, _, t, _, m)| *t == to && m.kind == kind)
            .map(|(t, _, _, _, m)| (t, m.seq))
            .collect()
    };
    // Requests travel at once; each answer leaves 50 ms after it was sent.
    assert_eq!(at(Kind::Ping, B), vec![(at_ms(110), 1), (at_ms(130), 2)]);
    assert_eq!(at(Kind::Pong, A), vec![(at_ms(170), 1), (at_ms(190), 2)]);
    let mut w = world(1, net, specs(2), a_sends(&[100]));
    let (got, _) = data_at_b(&mut w);
    assert_eq!(got, vec![(at_ms(110), 1)]);
}
