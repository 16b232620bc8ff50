//! The CLI contract of docs/scenarios.md: verdict line, exit codes, `--json`, reports, `replay`,
//! `list`.

mod common;

use common::flinksim;
use std::path::Path;

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("flinksim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.to_str().unwrap().to_string()
}

#[test]
fn run_passes_prints_the_verdict_and_writes_the_report() {
    let out_dir = tmp("pass");
    let out = flinksim(&[
        "run",
        "scenarios/tm-killed.toml",
        "--seed",
        "7",
        "--out",
        &out_dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout.lines().next().unwrap();
    assert!(
        line.starts_with("PASS tm-killed seed=7 trace_hash="),
        "{line}"
    );
    assert!(
        line.contains("events=") && line.contains("virtual=120.000s"),
        "{line}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out_dir).join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["result"], "pass");
    assert_eq!(summary["seed"], 7);
    assert_eq!(
        summary["taskmanagers_lost"][0]["taskmanager"],
        "taskmanager-2"
    );
    assert_eq!(summary["faults"][0]["fault"], "kill");
    assert!(Path::new(&out_dir).join("trace.jsonl").exists());
    assert!(Path::new(&out_dir).join("scenario.toml").exists());
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn json_prints_one_summary_object_with_the_contract_fields() {
    let out_dir = tmp("json");
    let out = flinksim(&[
        "run",
        "scenarios/heartbeat/tm-paused.toml",
        "--seed",
        "2",
        "--json",
        "--out",
        &out_dir,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "scenario",
        "seed",
        "result",
        "violations",
        "trace_hash",
        "events",
        "virtual_ms",
        "job_status",
        "restarts",
        "checkpoints_completed",
        "records_committed",
        "wall_ms",
        "taskmanagers_lost",
        "faults",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["virtual_ms"], 120_000);
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn a_planted_bug_fails_with_a_replay_command_that_reproduces_the_hash() {
    let out_dir = tmp("bug");
    let out = flinksim(&[
        "run",
        "scenarios/tm-killed.toml",
        "--seed",
        "7",
        "--bug",
        "heartbeat-timeout-not-reset",
        "--out",
        &out_dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("FAIL tm-killed seed=7"), "{stdout}");
    assert!(stdout.contains("violated=heartbeat-detection"), "{stdout}");
    let replay_cmd = format!("flinksim replay {out_dir}");
    assert!(stdout.contains(&replay_cmd), "{stdout}");
    let hash = stdout.split("trace_hash=").nth(1).unwrap()[..16].to_string();

    let replayed = flinksim(&["replay", &out_dir]);
    let rs = String::from_utf8_lossy(&replayed.stdout);
    assert_eq!(replayed.status.code(), Some(1), "{rs}");
    assert!(rs.contains(&format!("trace hash {hash} matches")), "{rs}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn replay_of_a_file_and_seed_runs_with_a_full_trace() {
    let out_dir = tmp("replay-file");
    let out = flinksim(&[
        "replay",
        "scenarios/heartbeat-steady.toml",
        "--seed",
        "3",
        "--out",
        &out_dir,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("reproduced by a second run"),
        "replay says it reproduces: {stdout}"
    );
    let trace = std::fs::read_to_string(Path::new(&out_dir).join("trace.jsonl")).unwrap();
    assert!(trace.lines().count() > 100);
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn list_names_every_invariant_bug_and_config_key() {
    let inv = String::from_utf8(flinksim(&["list", "invariants"]).stdout).unwrap();
    for name in ["heartbeat-detection", "registration-liveness"] {
        assert!(inv.contains(name));
    }
    let bugs = String::from_utf8(flinksim(&["list", "bugs"]).stdout).unwrap();
    for b in model::checking::bugs::Bug::ALL {
        assert!(bugs.contains(b.name()));
    }
    assert!(bugs.contains("heartbeat-timeout-not-reset"));
    let config = String::from_utf8(flinksim(&["list", "config"]).stdout).unwrap();
    for o in model::protocol::config::OPTIONS {
        assert!(
            config.contains(o.key) && config.contains(o.default),
            "{}",
            o.key
        );
    }
}

#[test]
fn run_check_determinism_runs_twice_and_says_so() {
    let out_dir = tmp("determinism");
    let out = flinksim(&[
        "run",
        "scenarios/tm-killed.toml",
        "--seed",
        "4",
        "--out",
        &out_dir,
        "--check-determinism",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout
        .lines()
        .next()
        .unwrap()
        .starts_with("PASS tm-killed seed=4"));
    assert!(
        stdout.contains("deterministic: a second run traced the same"),
        "{stdout}"
    );
    assert!(Path::new(&out_dir).join("trace.jsonl").is_file());
}

#[test]
fn explore_writes_records_and_reports_that_merge_joins() {
    let out_dir = tmp("explore-merge");
    for k in ["1/2", "2/2"] {
        let out = flinksim(&[
            "explore",
            "scenarios/negative/negative-sink-commit-on-barrier.toml",
            "--seeds",
            "4",
            "--shard",
            k,
            "--jobs",
            "1",
            "--out",
            &out_dir,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("committed-only-completed"), "{stdout}");
    }
    let dir = Path::new(&out_dir);
    assert!(dir.join("exploration-shard-1-of-2.json").is_file());
    assert!(dir.join("exploration-shard-2-of-2.json").is_file());
    // The first failing seed of each shard got a report folder.
    assert!(dir
        .join("negative-sink-commit-on-barrier/0/summary.json")
        .is_file());
    assert!(dir
        .join("negative-sink-commit-on-barrier/1/trace.jsonl")
        .is_file());
    let junit = dir.join("merged.xml");
    let out = flinksim(&["merge", &out_dir, "--junit", junit.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "failures found: {stdout}");
    assert!(stdout.contains("2/2"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("shard 2/2") && xml.contains("<failure"),
        "{xml}"
    );
    // Not a record: a usage error naming the file.
    let bogus = dir.join("exploration-bogus.json");
    std::fs::write(&bogus, "{}").unwrap();
    let out = flinksim(&["merge", bogus.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a flinksim exploration record"));
}

#[test]
fn shrink_writes_a_standalone_scenario_that_still_fails() {
    let out_dir = tmp("shrink");
    let file = Path::new(&out_dir).join("shrunk.toml");
    let out = flinksim(&[
        "shrink",
        "scenarios/negative/negative-sink-commit-on-barrier.toml",
        "--seed",
        "2",
        "--out",
        file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("shrunk from "), "{stdout}");
    assert!(stdout.contains("committed-only-completed"), "{stdout}");
    let run = flinksim(&[
        "run",
        file.to_str().unwrap(),
        "--seed",
        "2",
        "--out",
        &out_dir,
    ]);
    let line = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{line}");
    assert!(line.contains("violated=committed-only-completed"), "{line}");
    // A passing run has nothing to shrink; a file without a seed is a usage error.
    let pass = flinksim(&[
        "shrink",
        "scenarios/tm-killed.toml",
        "--seed",
        "1",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(pass.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&pass.stdout).contains("nothing to shrink"));
    let usage = flinksim(&["shrink", "scenarios/tm-killed.toml"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--seed"));
}

#[test]
fn selftest_of_one_bug_prints_and_writes_its_table() {
    let out_file = format!("{}/selftest.md", tmp("selftest"));
    let out = flinksim(&[
        "selftest",
        "--bug",
        "complete-with-missing-ack",
        "--out",
        &out_file,
        "--shrink-time",
        "5 s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("| `complete-with-missing-ack` |") && stdout.contains("| ok |"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 1 planted bugs caught"), "{stdout}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(written.starts_with("# Planted-bug self-test"), "{written}");
    assert!(written.contains("checkpoint-completeness"), "{written}");
    let bad = flinksim(&["selftest", "--bug", "no-such-bug"]);
    assert_eq!(bad.status.code(), Some(2));
}
