//! `flinksim shrink`: a failing run is minimized to the faults that matter and a smaller
//! workload, into a standalone scenario file that fails the same way on its own; a passing run
//! is refused; shrinking is deterministic and bounded by its budget.

mod common;

use common::{parse, run_seed, scenario};
use flinksim::nemesis::fault_table;
use flinksim::scenario::{FaultAction, Scenario};
use flinksim::shrink::{shrink, Limits, Shrunk};
use model::checking::bugs::Bug;
use rand::Rng as _;
use std::path::Path;
use std::time::Duration;

/// A keyed exactly-once count with three retained checkpoints: with the planted bug
/// `restore-older-checkpoint`, a failover after the second checkpoint restores the wrong one.
const BASE: &str = r#"
name = "one-fault-matters"
duration = "20s"
bug = "restore-older-checkpoint"

[cluster]
taskmanagers = 3

[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"execution.checkpointing.interval" = "1 s"
"execution.checkpointing.num-retained" = 3
"jobmanager.execution.failover-strategy" = "region"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = 10
"restart-strategy.fixed-delay.delay" = "1 s"

[job]
name = "keyed-count"
parallelism = 4
source = { kind = "sequence", partitions = 4, records = 4000, rate = "1000/s" }
operators = [{ kind = "key_by", keys = 64 }, { kind = "count" }]
sink = { kind = "two_phase_commit" }
"#;

/// The fault that matters: a TaskManager running tasks dies after two checkpoints.
fn the_kill() -> (Duration, FaultAction) {
    (
        Duration::from_millis(2500),
        FaultAction::Kill("taskmanager-2".into()),
    )
}

/// 19 harmless faults drawn from a seeded stream: short clogs between any two nodes, brief
/// pauses of the TaskManagers that are not killed, and partitions between the job's external
/// systems, which never talk to each other.
fn noise() -> Vec<(Duration, FaultAction)> {
    let mut rng = sim::rng::stream(42, "shrink-noise", 0);
    let nodes = [
        "jobmanager-1",
        "taskmanager-1",
        "taskmanager-2",
        "taskmanager-3",
        "source",
        "checkpoint-storage",
        "sink",
    ];
    let ms = |rng: &mut sim::rng::Rng, lo: u64, hi: u64| {
        Duration::from_millis(rng.random_range(lo..=hi))
    };
    (0..19)
        .map(|_| {
            let at = ms(&mut rng, 200, 15_000);
            let action = match rng.random_range(0..3u32) {
                0 => {
                    let a = rng.random_range(0..nodes.len());
                    let b = (a + rng.random_range(1..nodes.len())) % nodes.len();
                    FaultAction::Clog {
                        groups: vec![vec![nodes[a].into()], vec![nodes[b].into()]],
                        one_way: rng.random_bool(0.5),
                        extra: ms(&mut rng, 1, 10),
                        clear_after: Some(ms(&mut rng, 100, 1_000)),
                    }
                }
                1 => FaultAction::Pause {
                    node: ["taskmanager-1", "taskmanager-3"][rng.random_range(0..2)].into(),
                    resume_after: Some(ms(&mut rng, 20, 200)),
                },
                _ => {
                    let pair = [
                        ["source", "sink"],
                        ["source", "checkpoint-storage"],
                        ["sink", "checkpoint-storage"],
                    ][rng.random_range(0..3)];
                    FaultAction::Partition {
                        groups: vec![vec![pair[0].into()], vec![pair[1].into()]],
                        one_way: false,
                        heal_after: Some(ms(&mut rng, 500, 5_000)),
                    }
                }
            };
            (at, action)
        })
        .collect()
}

/// `BASE` with these faults.
fn with_faults(faults: &[(Duration, FaultAction)]) -> Scenario {
    let mut text = BASE.to_string();
    for (at, action) in faults {
        let mut t = toml::Table::new();
        t.insert(
            "faults".into(),
            toml::Value::Array(vec![toml::Value::Table(
                fault_table(*at, action).expect("a text form"),
            )]),
        );
        text += "\n";
        text += &toml::to_string(&t).unwrap();
    }
    parse(&text)
}

fn quiet(_: &flinksim::shrink::Progress) {}

/// The shrunk file read back on its own fails with the same invariant and the same trace.
fn assert_standalone(shrunk: &Shrunk, seed: u64) {
    assert!(
        shrunk
            .scenario
            .source
            .starts_with("# shrunk by flinksim from "),
        "{}",
        shrunk.scenario.source
    );
    let again = Scenario::parse(Path::new("shrunk.toml"), &shrunk.scenario.source)
        .unwrap_or_else(|e| panic!("{e}\n{}", shrunk.scenario.source));
    // No --bug: the file names the bug itself.
    let s = run_seed(&again, seed, None).summary;
    assert!(
        s.violations.iter().any(|v| v.invariant == shrunk.invariant),
        "{:?}\n{}",
        s.violations,
        shrunk.scenario.source
    );
    assert_eq!(s.trace_hash, shrunk.summary.trace_hash);
    assert_eq!(again.faults.len(), shrunk.faults_after);
}

#[test]
fn twenty_faults_shrink_to_the_one_that_matters() {
    let noise = noise();
    assert!(
        run_seed(&with_faults(&noise), 1, None).summary.passed(),
        "the noise alone is harmless"
    );
    let mut all = noise.clone();
    all.insert(7, the_kill());
    let full = with_faults(&all);
    assert_eq!(full.faults.len(), 20);
    let failed = run_seed(&full, 1, None).summary;
    assert_eq!(failed.violations[0].invariant, "restored-state");

    let mut calls = 0;
    let shrunk = shrink(&full, 1, None, &Limits::default(), &mut |_| calls += 1)
        .unwrap_or_else(|e| panic!("{:?}", e.summary.violations));
    assert!(shrunk.complete, "{:?}", shrunk.steps);
    assert_eq!(shrunk.invariant, "restored-state");
    assert_eq!((shrunk.faults_before, shrunk.faults_after), (20, 1));
    assert_eq!(
        shrunk.scenario.faults[0].action,
        FaultAction::Kill("taskmanager-2".into()),
        "{}",
        shrunk.scenario.source
    );
    assert!(calls > 0 && calls as u64 <= shrunk.runs);
    assert!(
        shrunk
            .scenario
            .source
            .contains("20 faults -> 1; fails with restored-state"),
        "{}",
        shrunk.scenario.source
    );
    assert!(!shrunk.steps.is_empty());
    assert_standalone(&shrunk, 1);
}

#[test]
fn a_passing_run_is_not_shrunk() {
    let s = with_faults(&noise());
    let e = shrink(&s, 1, None, &Limits::default(), &mut quiet).expect_err("not failing");
    assert!(e.summary.passed());
}

#[test]
fn the_workload_shrinks_too() {
    let s = scenario("negative-restore-older-checkpoint");
    let original = s.job.as_ref().unwrap().spec.source.records;
    let shrunk = shrink(&s, 1, None, &Limits::default(), &mut quiet).unwrap();
    assert!(shrunk.complete, "{:?}", shrunk.steps);
    assert_eq!(shrunk.invariant, "restored-state");
    let job = &shrunk.scenario.job.as_ref().unwrap().spec;
    assert!(
        job.source.records < original,
        "{} records\n{:?}",
        job.source.records,
        shrunk.steps
    );
    assert!(
        shrunk.scenario.cluster.taskmanagers < s.cluster.taskmanagers,
        "{:?}",
        shrunk.steps
    );
    assert!(shrunk.scenario.duration < s.duration, "{:?}", shrunk.steps);
    assert_standalone(&shrunk, 1);
}

#[test]
fn shrinking_is_deterministic() {
    let s = scenario("negative-no-abort-of-lingering-transactions");
    let a = shrink(&s, 3, None, &Limits::default(), &mut quiet).unwrap();
    let b = shrink(&s, 3, None, &Limits::default(), &mut quiet).unwrap();
    assert_eq!(a.scenario.source, b.scenario.source);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.runs, b.runs);
    assert_eq!(a.summary.trace_hash, b.summary.trace_hash);
}

#[test]
fn the_run_budget_ends_a_shrink_early_with_a_failing_scenario() {
    let mut all = noise();
    all.insert(7, the_kill());
    let full = with_faults(&all);
    let limits = Limits {
        time: None,
        max_runs: 4,
    };
    let shrunk = shrink(&full, 1, None, &limits, &mut quiet).unwrap();
    assert!(!shrunk.complete);
    // Three candidate runs after the first, and the final run.
    assert_eq!(shrunk.runs, 5);
    assert!(shrunk.faults_after <= 20);
    assert_standalone(&shrunk, 1);
}

#[test]
fn a_nemesis_failure_shrinks_to_at_most_three_faults() {
    // `flinksim explore scenarios/nemesis-checkpointing.toml --bug sink-commit-on-barrier`
    // finds seed 0.
    let s = scenario("nemesis-checkpointing");
    let bug = Some(Bug::SinkCommitOnBarrier);
    let shrunk = shrink(&s, 0, bug, &Limits::default(), &mut quiet).unwrap();
    eprintln!(
        "nemesis-checkpointing seed 0: {} faults -> {}, {} runs, {:?}\n{:#?}\n{}",
        shrunk.faults_before,
        shrunk.faults_after,
        shrunk.runs,
        shrunk.wall,
        shrunk.steps,
        shrunk.scenario.source
    );
    assert!(shrunk.faults_before > 3);
    assert!(shrunk.faults_after <= 3);
    assert_eq!(shrunk.invariant, "committed-only-completed");
    assert!(shrunk
        .scenario
        .source
        .contains("bug = \"sink-commit-on-barrier\""));
    assert_standalone(&shrunk, 0);
}

#[test]
fn drawn_faults_shrink_to_the_outage_that_matters() {
    // Seed 0 of nemesis-checkpointing's kills, partitions and pauses (its aimed entries left
    // out) is 7 faults; with `offsets-not-in-snapshot` the restore after one TaskManager kill
    // re-reads the sources.
    let mut s = scenario("nemesis-checkpointing");
    let n = s.nemesis.as_mut().expect("a nemesis");
    (n.delay_messages, n.drop_messages, n.drop_replies, n.slow) = (None, None, None, None);
    let bug = Some(Bug::OffsetsNotInSnapshot);
    let shrunk = shrink(&s, 0, bug, &Limits::default(), &mut quiet).unwrap();
    assert!(shrunk.complete, "{:?}", shrunk.steps);
    assert_eq!(shrunk.invariant, "restored-state");
    assert_eq!(shrunk.faults_before, 7);
    // The kill and its restart: the original's outages all end, so the shrunk one's does.
    assert_eq!(shrunk.faults_after, 2, "{}", shrunk.scenario.source);
    let f = &shrunk.scenario.faults;
    match (&f[0].action, &f[1].action) {
        (FaultAction::Kill(a), FaultAction::Start(b)) => assert_eq!(a, b),
        other => panic!("a kill and its start, not {other:?}"),
    }
    assert_standalone(&shrunk, 0);
}

/// The shrinker keeps what made the original a fair liveness test: its job keeps the slots it
/// needs, and every outage ends. (Seed 1526 of an earlier nemesis-swarm slipped from "a sink
/// outage slows the job past its deadline" to "the sink never comes back".)
#[test]
fn shrinking_never_slips_into_a_node_that_never_comes_back_or_missing_slots() {
    let text = r#"
name = "slow-after-sink-outage"
duration = "40s"
[cluster]
taskmanagers = 2
[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"execution.checkpointing.interval" = "1 s"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = 100
"restart-strategy.fixed-delay.delay" = "1 s"
[job]
name = "j"
parallelism = 4
source = { kind = "sequence", partitions = 4, records = 39000, rate = "1000/s" }
sink = { kind = "two_phase_commit" }
[[faults]]
at = "5s"
kill = "sink"
[[faults]]
at = "6s"
start = "sink"
[expect]
job_status = "FINISHED"
"#;
    // 39 s of input against a 40 s deadline: the outage makes the job miss it.
    let s = parse(text);
    let shrunk = shrink(&s, 1, None, &Limits::default(), &mut |_| {})
        .unwrap_or_else(|_| panic!("the outage delays the job past its deadline"));
    assert_eq!(shrunk.invariant, "expect");
    let kills = shrunk
        .scenario
        .faults
        .iter()
        .filter(|f| matches!(f.action, FaultAction::Kill(_)))
        .count();
    let starts = shrunk
        .scenario
        .faults
        .iter()
        .filter(|f| matches!(f.action, FaultAction::Start(_)))
        .count();
    assert!(
        kills <= starts,
        "every kill keeps its start: {:?}",
        shrunk.scenario.faults
    );
    let slots = shrunk.scenario.cluster.taskmanagers * shrunk.scenario.flink.number_of_task_slots;
    assert!(
        slots >= 4,
        "the job keeps its slots: {} TaskManagers",
        shrunk.scenario.cluster.taskmanagers
    );
}
