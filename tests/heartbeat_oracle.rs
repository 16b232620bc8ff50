//! The heartbeat and registration oracles hold on the correct model over the bundled scenarios
//! and fail with each planted bug; detection timing matches Flink's mechanism.
//!
//! That the correct model passes every bundled scenario on all its seeds is `flinksim check
//! scenarios`, which `.ci/run` runs in a release build; a debug-build sweep here only repeated it
//! (112 s).

mod common;

use common::{bundled, parse, run_seed, scenario};
use flinksim::summary::Verdict;
use model::checking::bugs::Bug;

#[test]
fn heartbeat_timeout_not_reset_is_caught_by_heartbeat_detection_on_every_scenario() {
    for s in bundled() {
        let r = run_seed(&s, 0, Some(Bug::HeartbeatTimeoutNotReset)).summary;
        assert_eq!(r.result, Verdict::Fail, "{}", s.name);
        let v = &r.violations[0];
        assert_eq!(v.invariant, "heartbeat-detection", "{}", s.name);
        assert!(v.message.contains("of silence"), "{}", v.message);
        // A monitor armed at registration fires one timeout (on a clock up to 5% off) later,
        // although heartbeats flowed.
        // With HA, registration waits for the first leader election (about half a second).
        let election = match s.flink.high_availability {
            model::protocol::config::HighAvailability::None => 0,
            _ => 1_000,
        };
        let timeout = s.flink.heartbeat_timeout.as_millis() as u64;
        let window = timeout * 94 / 100..timeout * 108 / 100 + election;
        // A leader killed before the first timeout moves registration (and the monitors) to
        // the next leader, one session timeout later: the timing is that of the new leader.
        let early_fault = s.faults.iter().any(|f| f.at.as_millis() < timeout as u128);
        if early_fault {
            assert!(v.at_ms > timeout, "{}: {}", s.name, v.at_ms);
            continue;
        }
        assert!(window.contains(&v.at_ms), "{}: {}", s.name, v.at_ms);
    }
}

#[test]
fn heartbeat_timeout_ignored_is_caught_when_a_taskmanager_goes_silent() {
    for name in ["tm-paused", "tm-partitioned-then-healed"] {
        let r = run_seed(&scenario(name), 0, Some(Bug::HeartbeatTimeoutIgnored)).summary;
        assert_eq!(r.violations[0].invariant, "heartbeat-detection", "{name}");
        assert!(r.violations[0].message.contains("has not declared it lost"));
    }
    // A killed TaskManager is still found through refused heartbeat RPCs, not the timeout.
    let r = run_seed(
        &scenario("tm-killed"),
        0,
        Some(Bug::HeartbeatTimeoutIgnored),
    )
    .summary;
    assert!(r.passed(), "{:?}", r.violations);
}

#[test]
fn registration_not_retried_is_caught_by_registration_liveness() {
    let r = run_seed(
        &scenario("tm-partitioned-then-healed"),
        0,
        Some(Bug::RegistrationNotRetried),
    )
    .summary;
    assert_eq!(r.violations[0].invariant, "registration-liveness");
    assert_eq!(r.violations[0].node.as_deref(), Some("taskmanager-1"));
}

#[test]
fn a_killed_taskmanager_is_declared_unreachable_after_the_rpc_failure_threshold() {
    let s = scenario("tm-killed");
    for seed in 0..10 {
        let r = run_seed(&s, seed, None).summary;
        let loss = &r.taskmanagers_lost[0];
        assert_eq!(loss.observer, "resourcemanager");
        assert_eq!(loss.taskmanager, "taskmanager-2");
        assert_eq!(loss.cause, "unreachable");
        // Killed at 10 s; two refused heartbeat requests at most 2 intervals (1 s) later.
        assert!((10_000..=12_100).contains(&loss.at_ms), "{}", loss.at_ms);
    }
}

#[test]
fn with_the_threshold_disabled_a_killed_taskmanager_is_found_by_timeout() {
    let text = std::fs::read_to_string(common::root().join("scenarios/tm-killed.toml"))
        .unwrap()
        .replace(
            "\"heartbeat.rpc-failure-threshold\" = 2",
            "\"heartbeat.rpc-failure-threshold\" = -1",
        );
    let s = parse(&text);
    let r = run_seed(&s, 3, None).summary;
    assert!(r.passed(), "{:?}", r.violations);
    let loss = &r.taskmanagers_lost[0];
    assert_eq!(loss.cause, "heartbeat-timeout");
    // Last heartbeat before 10 s; declared 5 s (timeout) after it, on a clock within ±100 ppm.
    assert!((14_000..=15_100).contains(&loss.at_ms), "{}", loss.at_ms);
}

#[test]
fn a_paused_taskmanager_is_declared_lost_by_timeout_and_reconnects_on_resume() {
    let r = run_seed(&scenario("tm-paused"), 4, None).summary;
    assert!(r.passed(), "{:?}", r.violations);
    let rm = r
        .taskmanagers_lost
        .iter()
        .find(|l| l.observer == "resourcemanager")
        .unwrap();
    assert_eq!(rm.cause, "heartbeat-timeout");
    assert!((34_000..=35_100).contains(&rm.at_ms), "{}", rm.at_ms);
    // On resume (42 s) the TaskManager handles what waited: the RM's disconnect.
    let tm = r
        .taskmanagers_lost
        .iter()
        .find(|l| l.observer == "taskmanager-3")
        .unwrap();
    assert_eq!(tm.at_ms, 42_000);
}

#[test]
fn a_partition_is_detected_from_both_sides() {
    let r = run_seed(&scenario("tm-partitioned-then-healed"), 2, None).summary;
    let observers: Vec<&str> = r
        .taskmanagers_lost
        .iter()
        .map(|l| l.observer.as_str())
        .collect();
    assert!(observers.contains(&"resourcemanager"), "{observers:?}");
    assert!(observers.contains(&"taskmanager-1"), "{observers:?}");
    assert!(r
        .taskmanagers_lost
        .iter()
        .all(|l| l.cause == "heartbeat-timeout" && (24_000..=26_100).contains(&l.at_ms)));
}

#[test]
fn defaults_apply_when_keys_are_not_set() {
    // Flink's defaults: 10 s interval, 50 s timeout. A paused TaskManager is lost after ~50 s.
    let s = parse(
        r#"
        name = "defaults"
        duration = "200s"
        [cluster]
        taskmanagers = 1
        [[faults]]
        at = "20s"
        pause = "taskmanager-1"
        resume_after = "70s"
    "#,
    );
    let r = run_seed(&s, 0, None).summary;
    assert!(r.passed(), "{:?}", r.violations);
    let loss = &r.taskmanagers_lost[0];
    assert_eq!(loss.cause, "heartbeat-timeout");
    assert!((60_000..=70_100).contains(&loss.at_ms), "{}", loss.at_ms);
}
