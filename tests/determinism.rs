//! Same scenario + same seed = the same run, bit for bit; different seeds differ; the hashes of
//! fixed seeds are pinned so any drift in behaviour is visible in review.

mod common;

use common::{bundled, run_seed, scenario, Capture};
use flinksim::run::{run, RunOptions};

#[test]
fn every_bundled_scenario_gives_the_same_trace_hash_twice() {
    for s in bundled() {
        for seed in [0, 7] {
            let a = run_seed(&s, seed, None).summary;
            let b = run_seed(&s, seed, None).summary;
            assert_eq!(a.trace_hash, b.trace_hash, "{} seed {seed}", s.name);
            assert_eq!(a.events, b.events, "{} seed {seed}", s.name);
            assert_eq!(a.taskmanagers_lost, b.taskmanagers_lost, "{}", s.name);
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let s = scenario("tm-killed");
    let hashes: std::collections::BTreeSet<String> = (0..20)
        .map(|seed| run_seed(&s, seed, None).summary.trace_hash)
        .collect();
    assert_eq!(hashes.len(), 20);
}

/// A `Write` that keeps what it got, shareable with the run.

#[test]
fn full_traces_of_the_same_seed_are_byte_identical_and_tracing_does_not_change_the_hash() {
    let s = scenario("tm-partitioned-then-healed");
    let mut traces = Vec::new();
    for _ in 0..2 {
        let capture = Capture::default();
        let r = run(
            &s,
            RunOptions {
                seed: 11,
                bug: None,
                trace: Some(Box::new(capture.clone())),
                tap: sim::Tap::None,
            },
        );
        let bytes = capture.0.lock().unwrap().clone();
        traces.push((r.summary.trace_hash, bytes));
    }
    let untraced = run_seed(&s, 11, None).summary.trace_hash;
    assert_eq!(traces[0].0, untraced);
    assert_eq!(traces[0], traces[1]);
    let text = String::from_utf8(traces[0].1.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, run_seed(&s, 11, None).summary.events);
    // Every line is a JSON object, and the last one carries the final rolling hash.
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["hash"], untraced.as_str());
}

#[test]
fn trace_hashes_of_fixed_seeds_are_pinned() {
    let mut pinned = String::new();
    for (name, seed) in [
        ("heartbeat-steady", 1),
        ("tm-killed", 7),
        ("tm-paused", 3),
        ("clock-drift", 5),
        ("checkpoint-tm-killed-mid-checkpoint", 1),
        ("checkpoint-lossy-network", 2),
    ] {
        let r = run_seed(&scenario(name), seed, None).summary;
        pinned += &format!(
            "{name} seed={seed} hash={} events={} result={}\n",
            r.trace_hash, r.events, r.result
        );
    }
    insta::assert_snapshot!(pinned);
}

#[test]
fn hashes_do_not_depend_on_how_many_threads_run_seeds() {
    let s = scenario("lossy-network");
    let sequential: Vec<String> = (0..8)
        .map(|seed| run_seed(&s, seed, None).summary.trace_hash)
        .collect();
    let parallel: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|seed| {
                let s = &s;
                scope.spawn(move || run_seed(s, seed, None).summary.trace_hash)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sequential, parallel);
}

/// The determinism gate finds no difference between two runs of one seed, and names the exact
/// first differing event when two runs do differ (here: one fault moved by 1 ms).
#[test]
fn the_determinism_gate_names_the_first_event_where_two_runs_differ() {
    use flinksim::determinism::{check, compare};
    use flinksim::scenario::FaultAction;
    let a = scenario("tm-killed");
    assert_eq!(check(&a, 3, None, None).difference, None);
    let mut b = a.clone();
    let kill = b
        .faults
        .iter_mut()
        .find(|f| matches!(f.action, FaultAction::Kill(_)))
        .expect("tm-killed kills a TaskManager");
    let kill_at = kill.at;
    kill.at += std::time::Duration::from_millis(1);
    let checked = compare(&a, &b, 3, None, None);
    let d = checked.difference.expect("the runs differ");
    let first = d.first.clone().expect("the first run has the event");
    assert!(
        first.contains("\"kind\":\"fault\"") && first.contains("\"fault\":\"kill\""),
        "the first difference is the kill in the first run: {first}"
    );
    assert_eq!(d.t_ns, Some(kill_at.as_nanos() as u64));
    let second = d.second.clone().expect("the second run goes on");
    assert_ne!(first, second);
    assert!(second.contains(&format!("\"i\":{}", d.index)));
    // Both runs agree on every earlier event: the first run's hash log and a trace of the
    // second differ only from this index on.
    let text = d.to_string();
    assert!(text.contains(&format!("event #{}", d.index)), "{text}");
    assert!(checked.result.summary.passed());
}
