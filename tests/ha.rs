//! JobManager high availability end to end: leader election through the `ha` node, new
//! component instances per leader session, fencing, the HA stores and recovery — checked on the
//! trace of the bundled HA scenarios — and every planted HA bug caught by its oracle,
//! reproducibly.

mod common;

use common::{run_seed, scenario, Capture, HA_BUGS};
use flinksim::run::{run, RunOptions};
use flinksim::scenario::FaultAction;
use flinksim::summary::Verdict;
use std::time::Duration;

/// Records the HA scenarios' job reads: 4 partitions × 20000.
const INPUT: u64 = 80_000;

/// One traced observation: (ms, node, the `Obs` as Debug text).
type Seen = (u64, String, String);

/// Runs `name` at `seed` with tracing; returns the summary's hash and the trace (JSON lines).
fn traced(name: &str, seed: u64, bug: Option<model::checking::bugs::Bug>) -> (String, String) {
    let capture = Capture::default();
    let r = run(
        &scenario(name),
        RunOptions {
            seed,
            bug,
            trace: Some(Box::new(capture.clone())),
            tap: sim::Tap::None,
        },
    );
    (r.summary.trace_hash, capture.text())
}

/// The observations of a trace.
fn observations(text: &str) -> Vec<Seen> {
    text.lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obs = common::obs_text(&v)?;
            Some((
                v["t_ns"].as_u64().unwrap() / 1_000_000,
                v["node"].as_str().unwrap().to_string(),
                obs,
            ))
        })
        .collect()
}

/// Runs `name` at `seed` with tracing; returns the summary's hash and the observations.
fn observe(name: &str, seed: u64, bug: Option<model::checking::bugs::Bug>) -> (String, Vec<Seen>) {
    let (hash, text) = traced(name, seed, bug);
    (hash, observations(&text))
}

/// The number after `key: ` (or `key: Some(`) in a Debug text.
fn field(obs: &str, key: &str) -> Option<u64> {
    let rest = &obs[obs.find(&format!("{key}: "))? + key.len() + 2..];
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn grants(seen: &[Seen]) -> Vec<(u64, String, u64)> {
    seen.iter()
        .filter(|(_, _, o)| o.starts_with("LeadershipGranted"))
        .map(|(t, n, o)| (*t, n.clone(), field(o, "leader_session_id").unwrap()))
        .collect()
}

#[test]
fn a_killed_leader_is_replaced_and_the_job_restores_the_newest_pointer() {
    for seed in 0..3 {
        let s = run_seed(&scenario("ha-leader-killed"), seed, None).summary;
        assert!(s.passed(), "seed {seed}: {:?}", s.violations);
        assert_eq!(s.job_status.as_deref(), Some("FINISHED"));
        assert_eq!(s.records_committed, INPUT, "seed {seed}");
        let (_, seen) = observe("ha-leader-killed", seed, None);
        // jobmanager-1 wins the first election, jobmanager-2 the one after the kill (8 s), once
        // the dead leader's session expired (6 s), under a new, larger leader session id.
        let g = grants(&seen);
        assert_eq!(g.len(), 2, "seed {seed}: {g:?}");
        assert_eq!(g[0].1, "jobmanager-1");
        assert_eq!(g[1].1, "jobmanager-2");
        assert!(g[1].2 > g[0].2);
        assert!((12_000..15_000).contains(&g[1].0), "seed {seed}: {g:?}");
        // The new leader restores the newest pointer the store holds at that moment.
        let (at, recovered) = seen
            .iter()
            .find(|(_, n, o)| n == "jobmanager-2" && o.starts_with("JobRecovered"))
            .map(|(t, _, o)| (*t, field(o, "checkpoint_id").unwrap()))
            .unwrap();
        let newest = seen
            .iter()
            .filter(|(t, n, o)| *t <= at && n == "ha" && o.starts_with("CheckpointPointerStored"))
            .filter_map(|(_, _, o)| field(o, "checkpoint_id"))
            .max()
            .unwrap();
        assert_eq!(recovered, newest, "seed {seed}");
        // Checkpoint ids go on from the HA counter, above every id the old leader used.
        let after: Vec<u64> = seen
            .iter()
            .filter(|(t, n, o)| {
                *t > at && n == "jobmanager-2" && o.starts_with("CheckpointTriggered")
            })
            .filter_map(|(_, _, o)| field(o, "checkpoint_id"))
            .collect();
        assert!(!after.is_empty() && after.iter().all(|id| *id > newest));
    }
}

#[test]
fn a_leader_paused_past_the_session_timeout_steps_down_on_resume() {
    for seed in 0..3 {
        let (_, seen) = observe("ha-leader-paused-past-session-timeout", seed, None);
        let g = grants(&seen);
        assert_eq!(g.len(), 2, "seed {seed}: {g:?}");
        let new_token = g[1].2;
        // Paused 8 s..23 s: jobmanager-2 leads from about 14 s; jobmanager-1 learns it lost its
        // leadership only when it runs again.
        let revoked = seen
            .iter()
            .find(|(_, n, o)| n == "jobmanager-1" && o.starts_with("LeadershipRevoked"))
            .map(|(t, _, _)| *t)
            .unwrap();
        assert!(g[1].0 < 16_000 && revoked >= 23_000, "{g:?} {revoked}");
        // Split brain is harmless: once jobmanager-2 leads, every fenced call that takes
        // effect carries its token.
        let late_old: Vec<&Seen> = seen
            .iter()
            .filter(|(t, _, o)| {
                *t >= g[1].0
                    && o.starts_with("FencedCallAccepted")
                    && field(o, "token") != Some(new_token)
            })
            .collect();
        assert!(late_old.is_empty(), "seed {seed}: {late_old:?}");
    }
}

#[test]
fn a_leader_cut_off_from_ha_revokes_itself_before_its_session_expires() {
    for seed in 0..3 {
        let (_, seen) = observe("ha-leader-partitioned-from-ha", seed, None);
        // Partitioned at 8 s: suspended after 2/3 of the 6 s session timeout, it revokes its
        // own leadership (tolerate-suspended-connections=false) before the store expires the
        // session and elects jobmanager-2.
        let revoked = seen
            .iter()
            .find(|(_, n, o)| n == "jobmanager-1" && o.starts_with("LeadershipRevoked"))
            .map(|(t, _, _)| *t)
            .unwrap();
        let handover = seen
            .iter()
            .find(|(t, n, o)| *t > 8_000 && n == "ha" && o.contains("node: Some(NodeId(1))"))
            .map(|(t, _, _)| *t)
            .unwrap();
        assert!(revoked < handover, "seed {seed}: {revoked} vs {handover}");
        assert!(handover - revoked >= 1_000, "seed {seed}");
    }
}

#[test]
fn plans_and_pointers_survive_the_ha_node_being_down_past_the_session_timeout() {
    for seed in 0..3 {
        let s = run_seed(&scenario("ha-node-down-past-session-timeout"), seed, None).summary;
        assert!(s.passed(), "seed {seed}: {:?}", s.violations);
        assert_eq!(s.records_committed, INPUT, "seed {seed}");
        let (_, seen) = observe("ha-node-down-past-session-timeout", seed, None);
        // The leader stepped down while the node was down (8 s..23 s) and the job was
        // recovered from the restarted node's durable plan and pointer.
        assert!(seen
            .iter()
            .any(|(t, _, o)| (8_000..23_000).contains(t) && o.starts_with("LeadershipRevoked")));
        let recovered = seen
            .iter()
            .find(|(t, _, o)| *t > 23_000 && o.starts_with("JobRecovered"))
            .map(|(_, _, o)| field(o, "checkpoint_id"))
            .unwrap();
        assert!(
            recovered.is_some_and(|id| id >= 5),
            "seed {seed}: {recovered:?}"
        );
    }
}

#[test]
fn delayed_calls_of_a_deposed_leader_are_refused_by_fencing() {
    let (_, text) = traced("ha-stale-calls-in-flight", 0, None);
    let seen = observations(&text);
    let g = grants(&seen);
    let new_token = g.last().unwrap().2;
    // The scenario does deliver submitTask calls of the old leader after the new one leads ...
    let late = text
        .lines()
        .filter(|l| l.contains("\"from\":\"jobmanager-1\"") && l.contains("\"msg\":\"submitTask\""))
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["kind"] == "deliver" && v["t_ns"].as_u64().unwrap() / 1_000_000 > g[1].0
        })
        .count();
    assert!(late > 0, "no late submitTask of the old leader");
    // ... and none takes effect.
    assert!(seen.iter().all(|(t, _, o)| *t < g[1].0
        || !o.starts_with("FencedCallAccepted")
        || field(o, "token") == Some(new_token)));
    // Without the TaskExecutors' checks they would.
    let s = run_seed(
        &scenario("ha-stale-calls-in-flight"),
        0,
        Some(model::checking::bugs::Bug::NoFencingCheck),
    )
    .summary;
    assert_eq!(s.violations[0].invariant, "leader-fencing");
}

#[test]
fn every_ha_bug_is_caught_on_its_negative_scenario_reproducibly() {
    for (bug, name, invariant) in HA_BUGS {
        let s = scenario(name);
        assert_eq!(s.bug, Some(*bug), "{name}");
        for seed in 0..3 {
            let a = run_seed(&s, seed, None).summary;
            assert_eq!(a.result, Verdict::Fail, "{name} seed {seed}");
            assert_eq!(a.violations[0].invariant, *invariant, "{name} seed {seed}");
            assert!(a.as_expected(), "{name} seed {seed}");
            let b = run_seed(&s, seed, None).summary;
            assert_eq!(a.trace_hash, b.trace_hash, "{name} seed {seed}");
        }
    }
}

#[test]
fn the_correct_model_passes_the_negative_ha_scenarios_without_their_bug() {
    for (_, name, _) in HA_BUGS {
        let mut s = scenario(name);
        s.bug = None;
        s.expect.violation = None;
        for seed in 0..3 {
            let r = run_seed(&s, seed, None).summary;
            assert!(r.passed(), "{name} seed {seed}: {:?}", r.violations);
        }
    }
}

#[test]
fn the_ha_nemesis_kills_and_pauses_jobmanagers_the_leader_and_the_ha_node() {
    let s = scenario("nemesis-ha");
    let mut targets = std::collections::BTreeSet::new();
    for seed in 0..10 {
        for f in s.resolve(seed).faults {
            // Nothing new starts after quiet_after (60 s); only restarts and resumes follow.
            if f.at >= Duration::from_secs(60) {
                assert!(
                    matches!(f.action, FaultAction::Start(_)),
                    "{:?} at {:?}",
                    f.action,
                    f.at
                );
            }
            match f.action {
                FaultAction::Kill(n) => {
                    targets.insert(format!("kill {n}"));
                }
                FaultAction::Pause { node, .. } => {
                    assert!(
                        node.starts_with("jobmanager-") || node == "leader",
                        "{node}"
                    );
                    targets.insert(format!("pause {}", node.trim_end_matches(char::is_numeric)));
                }
                _ => {}
            }
        }
    }
    for t in [
        "kill jobmanager-1",
        "kill jobmanager-2",
        "kill ha",
        "kill leader",
        "pause jobmanager-",
        "pause leader",
    ] {
        assert!(targets.contains(t), "{t} never drawn: {targets:?}");
    }
    assert!(targets.iter().any(|t| t.starts_with("kill taskmanager-")));
    for seed in 0..3 {
        let r = run_seed(&s, seed, None).summary;
        assert!(r.passed(), "seed {seed}: {:?}", r.violations);
        assert_eq!(r.records_committed, 120_000, "seed {seed}");
    }
}

#[test]
fn golden_trace_ha_leader_killed_seed_1() {
    let (hash, seen) = observe("ha-leader-killed", 1, None);
    let mut out = format!("ha-leader-killed seed=1 hash={hash}\n");
    for (t, node, o) in &seen {
        let keep = [
            "HaLeader",
            "LeadershipGranted",
            "LeadershipRevoked",
            "JobSubmitted",
            "JobRecovered",
            "JobStatusChanged",
            "RestoreDecided",
        ]
        .iter()
        .any(|k| o.starts_with(k));
        if keep {
            out += &format!("{t:>7} ms {node:<14} {o}\n");
        }
    }
    insta::assert_snapshot!(out);
}
