//! Coverage probes: each is reached by the bundled scenario built for it, stays at zero in a
//! fault-free run, and `flinksim check` fails when a required probe is never reached.

mod common;

use common::{flinksim, run_seed, scenario, scenario_path};
use flinksim::summary::Verdict;
use std::path::{Path, PathBuf};

/// A fresh temporary folder with a `probes.toml` requiring `probe` and a copy of the bundled
/// scenario `scenario`, cut to 2 seeds.
fn folder_requiring(name: &str, probe: &str, scenario: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flinksim-probes-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let text = std::fs::read_to_string(scenario_path(scenario)).unwrap();
    std::fs::write(d.join("probes.toml"), format!("required = [{probe:?}]\n")).unwrap();
    std::fs::write(
        d.join(format!("{scenario}.toml")),
        text.replace("seeds = 20", "seeds = 2"),
    )
    .unwrap();
    d
}

#[test]
fn every_probe_is_reached_by_its_scenario() {
    let cases = [
        (
            "tm-lost-during-pending-checkpoint",
            "checkpoint-tm-killed-mid-checkpoint.toml",
            0,
        ),
        (
            "checkpoint-declined-then-next-completes",
            "checkpoint-storage-unavailable.toml",
            0,
        ),
        (
            "two-leaders-fencing-rejects-one",
            "ha-stale-calls-in-flight.toml",
            0,
        ),
        (
            "failover-during-restore",
            "ha-leader-killed-during-restore.toml",
            0,
        ),
        (
            "commit-lost-txn-recommitted-on-restore",
            "ha-node-restarted.toml",
            42,
        ),
        (
            "slot-offer-races-leader-change",
            "ha-leader-killed-while-offering-slots.toml",
            0,
        ),
        ("rpc-answer-after-ask-timeout", "nemesis-swarm.toml", 3),
        ("second-failure-while-canceling", "nemesis-regions.toml", 2),
        (
            "leader-change-while-ha-suspended",
            "ha-node-down-past-session-timeout.toml",
            0,
        ),
        ("leader-change-while-ha-suspended", "nemesis-ha.toml", 1),
        ("pointer-write-applied-unanswered", "nemesis-ha.toml", 6),
        ("answer-overtaken-by-later-call", "nemesis-swarm.toml", 0),
        ("connection-completes-after-newer", "nemesis-swarm.toml", 6),
        ("offer-answer-after-newer-offer", "nemesis-regions.toml", 46),
    ];
    let reached: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(reached.len(), model::checking::probes::PROBES.len());
    for (probe, file, seed) in cases {
        let r = run_seed(&scenario(file.trim_end_matches(".toml")), seed, None);
        assert_eq!(r.summary.result, Verdict::Pass, "{file} seed {seed}");
        let hits = r.summary.probes.get(probe).copied();
        assert!(
            hits.is_some_and(|n| n > 0),
            "{probe} not reached by {file} seed {seed}: {:?}",
            r.summary.probes
        );
    }
}

#[test]
fn a_fault_free_run_reaches_no_probe() {
    let r = run_seed(&scenario("checkpoint-steady-exactly-once"), 1, None);
    assert_eq!(
        r.summary.probes.len(),
        model::checking::probes::PROBES.len()
    );
    assert!(
        r.summary.probes.values().all(|n| *n == 0),
        "{:?}",
        r.summary.probes
    );
}

#[test]
fn check_fails_when_a_required_probe_is_never_reached() {
    let dir = folder_requiring(
        "unreached",
        "tm-lost-during-pending-checkpoint",
        "checkpoint-steady-exactly-once",
    );
    let junit = dir.join("junit.xml");
    let out = flinksim(&[
        "check",
        dir.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("tm-lost-during-pending-checkpoint"))
        .unwrap_or_else(|| panic!("no probe line in {stdout}"));
    assert!(line.contains("NEVER REACHED"), "{line}");
    assert!(
        stdout.contains("0 of 1 required probe(s) reached"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("name=\"tm-lost-during-pending-checkpoint\">\n      <failure message=\"probe never reached\">"),
        "{xml}"
    );
}

#[test]
fn check_passes_when_the_required_probe_is_reached() {
    let dir = folder_requiring(
        "reached",
        "checkpoint-declined-then-next-completes",
        "checkpoint-storage-unavailable",
    );
    let out = flinksim(&["check", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("1 of 1 required probe(s) reached"),
        "{stdout}"
    );
    // A file given on its own requires no probes.
    let out = flinksim(&["check", "scenarios/heartbeat-steady.toml"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn an_unknown_probe_is_a_usage_error_naming_file_and_line() {
    let dir = folder_requiring("unknown", "failover-during-restore", "heartbeat-steady");
    std::fs::write(
        dir.join("probes.toml"),
        "required = [\n  \"failover-during-restore\",\n  \"no-such-probe\",\n]\n",
    )
    .unwrap();
    let out = flinksim(&["check", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("probes.toml:3"), "{stderr}");
    assert!(
        stderr.contains("unknown probe \"no-such-probe\""),
        "{stderr}"
    );
    assert!(!Path::new(&dir.join("reports")).exists());
}

#[test]
fn the_bundled_library_requires_every_probe() {
    let required = flinksim::check::required_probes(&[common::root().join("scenarios")]).unwrap();
    let names: Vec<&str> = required.iter().map(|(n, _)| *n).collect();
    let all: Vec<&str> = model::checking::probes::PROBES
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, all);
}

#[test]
fn list_probes_names_every_probe() {
    let out = flinksim(&["list", "probes"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for p in model::checking::probes::PROBES {
        assert!(
            stdout.lines().any(|l| l.starts_with(p.name)),
            "{} missing from {stdout}",
            p.name
        );
    }
}
