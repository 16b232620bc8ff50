//! The control plane end to end: jobs run, fail over and end exactly as Flink's would, every
//! planted control-plane bug is caught by its oracle, and the control-plane events of two fixed
//! seeds are pinned as golden traces.

mod common;

use common::{run_seed, scenario, Capture, CONTROL_PLANE_BUGS as CAUGHT};
use flinksim::run::{run, RunOptions};

fn statuses(name: &str, seed: u64) -> (Vec<String>, u32) {
    let s = run_seed(&scenario(name), seed, None).summary;
    assert!(s.passed(), "{name} seed {seed}: {:?}", s.violations);
    (
        s.job_status_history
            .iter()
            .map(|h| h.status.clone())
            .collect(),
        s.restarts,
    )
}

#[test]
fn each_job_scenario_goes_through_exactly_flinks_job_status_sequence() {
    let table: &[(&str, &[&str], u32)] = &[
        ("job-finishes", &["CREATED", "RUNNING", "FINISHED"], 0),
        (
            "tm-killed-region-fixed-delay",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            1,
        ),
        (
            "tm-killed-full-failure-rate",
            &[
                "CREATED",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "FINISHED",
            ],
            2,
        ),
        (
            "tm-killed-exponential-delay",
            &[
                "CREATED",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "FINISHED",
            ],
            2,
        ),
        (
            "tm-killed-no-restart",
            &["CREATED", "RUNNING", "FAILING", "FAILED"],
            0,
        ),
        (
            "not-enough-slots-fails",
            &[
                "CREATED",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "FAILING",
                "FAILED",
            ],
            2,
        ),
        (
            "not-enough-slots-spare-tm",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            1,
        ),
        (
            "te-loses-jobmaster-partition",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            1,
        ),
        (
            "restart-budget-exhausted",
            &[
                "CREATED",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "RESTARTING",
                "RUNNING",
                "FAILING",
                "FAILED",
            ],
            2,
        ),
        (
            "region-failover-forward-job",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            1,
        ),
        (
            "forward-job-tm-killed",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            2,
        ),
        (
            "tm-paused-during-job",
            &["CREATED", "RUNNING", "RESTARTING", "RUNNING", "FINISHED"],
            1,
        ),
    ];
    for (name, expected, restarts) in table {
        for seed in 0..5 {
            let (got, r) = statuses(name, seed);
            assert_eq!(&got, expected, "{name} seed {seed}");
            assert_eq!(r, *restarts, "{name} seed {seed}: restarts");
        }
    }
}

#[test]
fn the_restart_budget_fails_the_job_on_the_third_failure() {
    // fixed-delay attempts = 2; the count task throws at 10 s, 20 s and 30 s.
    let s = run_seed(&scenario("restart-budget-exhausted"), 3, None).summary;
    let failing = s
        .job_status_history
        .iter()
        .find(|h| h.status == "FAILING")
        .expect("FAILING");
    assert!(
        (30_000..30_100).contains(&failing.at_ms),
        "{}",
        failing.at_ms
    );
    assert_eq!(s.job_status.as_deref(), Some("FAILED"));
}

#[test]
fn a_slot_request_that_cannot_be_fulfilled_fails_after_slot_request_timeout() {
    // Killed at 10 s, detected ~1 s later, restarted after 1 s: waits 20 s for slots twice.
    let s = run_seed(&scenario("not-enough-slots-fails"), 0, None).summary;
    let restarts: Vec<u64> = s
        .job_status_history
        .iter()
        .filter(|h| h.status == "RESTARTING")
        .map(|h| h.at_ms)
        .collect();
    assert_eq!(restarts.len(), 2);
    let gap = restarts[1] - restarts[0];
    assert!((20_000..23_000).contains(&gap), "{gap}");
}

#[test]
fn an_active_resource_manager_starts_the_spare_and_releases_it_when_idle() {
    let s = run_seed(&scenario("not-enough-slots-spare-tm"), 1, None).summary;
    let starts: Vec<&str> = s
        .faults
        .iter()
        .filter(|f| f.fault == "start")
        .filter_map(|f| f.node.as_deref())
        .collect();
    assert_eq!(starts, ["taskmanager-3"], "{:?}", s.faults);
    // Once the job finished, the idle spare goes after resourcemanager.taskmanager-timeout.
    assert!(s
        .faults
        .iter()
        .any(|f| f.fault == "kill" && f.node.as_deref() == Some("taskmanager-3")));
}

#[test]
fn every_control_plane_bug_is_caught_by_its_oracle_within_200_seeds() {
    for (bug, name, invariant) in CAUGHT {
        let s = scenario(name);
        let caught = (0..200).find_map(|seed| {
            let r = run_seed(&s, seed, Some(*bug)).summary;
            (!r.passed()).then_some((seed, r))
        });
        let (seed, r) = caught.unwrap_or_else(|| panic!("{bug:?} not caught on {name}"));
        assert_eq!(
            r.violations[0].invariant, *invariant,
            "{bug:?} on {name} seed {seed}: {:?}",
            r.violations
        );
    }
}

/// The control-plane milestones of a run, one line each.
fn golden(name: &str, seed: u64) -> String {
    let capture = Capture::default();
    let r = run(
        &scenario(name),
        RunOptions {
            seed,
            bug: None,
            trace: Some(Box::new(capture.clone())),
            tap: sim::Tap::None,
        },
    );
    let text = capture.text();
    let mut out = format!("{name} seed={seed} hash={}\n", r.summary.trace_hash);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obs = common::obs_text(&v);
        let milestone = match (v["kind"].as_str(), obs.as_deref(), v["fault"].as_str()) {
            (Some("obs"), Some(o), _) => [
                "JobSubmitted",
                "JobStatusChanged",
                "RestartScheduled",
                "RestartRefused",
                "TargetLost",
                "SlotsAccepted",
                "TaskManagerRequested",
            ]
            .iter()
            .any(|k| o.starts_with(k))
            .then(|| o.to_string()),
            (Some("fault"), _, Some(f)) => Some(format!("fault {f} {}", v["node"])),
            _ => None,
        };
        if let Some(m) = milestone {
            let ms = v["t_ns"].as_u64().unwrap() / 1_000_000;
            out += &format!("{ms:>7} ms {:<14} {m}\n", v["node"].as_str().unwrap_or("-"));
        }
    }
    out
}

#[test]
fn golden_trace_job_finishes_seed_1() {
    insta::assert_snapshot!(golden("job-finishes", 1));
}

#[test]
fn golden_trace_tm_killed_region_fixed_delay_seed_2() {
    insta::assert_snapshot!(golden("tm-killed-region-fixed-delay", 2));
}
