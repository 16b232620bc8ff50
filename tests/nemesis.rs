//! `[nemesis]`: random faults drawn from the seed, resolved into ordinary scripted faults.

mod common;

use common::parse;
use flinksim::scenario::{FaultAction, FaultSpec, Scenario};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const JOB_SCENARIO: &str = r#"
name = "nemesis"
duration = "120s"
[cluster]
taskmanagers = 3
[flink]
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
[job]
name = "j"
parallelism = 2
source = { kind = "sequence", partitions = 2, records = 100 }
sink = { kind = "two_phase_commit" }
[[faults]]
at = "5s"
kill = "taskmanager-1"
[[faults]]
at = "7s"
start = "taskmanager-1"
[nemesis]
kill_taskmanager = { every = "5s..15s", down = "2s..20s" }
partition = { every = "10s..30s", lasting = "1s..15s" }
pause = { every = "10s..30s", lasting = "1 s..5 s" }
kill_sink = { every = "20s..40s", down = "1s..5s" }
kill_checkpoint_storage = { every = "20s..40s", down = "500ms..3s" }
quiet_after = "80s"
"#;

fn scenario() -> Scenario {
    parse(JOB_SCENARIO)
}

/// Faults without their line numbers (which depend on the text they were read from).
fn plain(faults: &[FaultSpec]) -> Vec<(Duration, FaultAction)> {
    faults.iter().map(|f| (f.at, f.action.clone())).collect()
}

#[test]
fn the_nemesis_is_parsed_and_described() {
    let s = scenario();
    let n = s.nemesis.as_ref().expect("a nemesis");
    assert_eq!(n.quiet_after, Duration::from_secs(80));
    assert_eq!(
        n.pause.unwrap().lasting.hi,
        Duration::from_secs(5),
        "Flink's spaced syntax"
    );
    let d = s.nemesis_description().unwrap();
    for key in [
        "kill_taskmanager",
        "partition",
        "pause",
        "kill_sink",
        "kill_checkpoint_storage",
        "quiet after 80s",
    ] {
        assert!(d.contains(key), "{d}");
    }
    assert_eq!(s.faults.len(), 2);
}

#[test]
fn the_same_seed_draws_the_same_faults_and_other_seeds_differ() {
    let s = scenario();
    let a = s.resolve(7);
    let b = s.resolve(7);
    assert_eq!(a, b);
    assert!(a.faults.len() > 2 + 5, "{:?}", a.faults);
    let c = s.resolve(8);
    assert_ne!(plain(&a.faults), plain(&c.faults));
    let distinct: std::collections::BTreeSet<String> = (0..20)
        .map(|seed| format!("{:?}", plain(&s.resolve(seed).faults)))
        .collect();
    assert!(distinct.len() >= 19, "{}", distinct.len());
}

#[test]
fn drawn_faults_are_sorted_quiet_after_and_keep_the_scripted_ones() {
    let s = scenario();
    for seed in 0..50 {
        let r = s.resolve(seed);
        assert!(r.nemesis.is_none());
        assert!(
            r.faults.windows(2).all(|w| w[0].at <= w[1].at),
            "seed {seed}"
        );
        for f in &s.faults {
            assert!(r
                .faults
                .iter()
                .any(|g| g.at == f.at && g.action == f.action));
        }
        for f in &r.faults {
            assert!(f.at <= r.duration, "seed {seed}: {f:?}");
            // Only restarts of killed nodes may come at or after quiet_after.
            if f.at >= Duration::from_secs(80) {
                assert!(
                    matches!(f.action, FaultAction::Start(_)),
                    "seed {seed}: {f:?}"
                );
            }
        }
    }
}

#[test]
fn every_kill_is_followed_by_a_start_and_no_node_is_killed_twice_while_down() {
    let s = scenario();
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let r = s.resolve(seed);
        let mut down: std::collections::BTreeMap<String, Duration> = Default::default();
        for f in &r.faults {
            match &f.action {
                FaultAction::Kill(n) => {
                    kinds.insert(n.clone());
                    assert!(
                        !down.contains_key(n),
                        "seed {seed}: {n} killed at {:?} while down",
                        f.at
                    );
                    assert!(
                        r.faults
                            .iter()
                            .any(|g| g.at > f.at && g.action == FaultAction::Start(n.clone())),
                        "seed {seed}: {n} killed at {:?} is never started",
                        f.at
                    );
                    down.insert(n.clone(), f.at);
                }
                FaultAction::Start(n) => {
                    down.remove(n);
                }
                FaultAction::Pause { node, resume_after } => {
                    kinds.insert(format!("pause {node}"));
                    assert!(resume_after.is_some());
                    assert!(!down.contains_key(node), "seed {seed}: paused while down");
                }
                FaultAction::Partition {
                    groups, heal_after, ..
                } => {
                    kinds.insert("partition".into());
                    assert!(heal_after.is_some());
                    assert_eq!(groups.len(), 2);
                    assert!(groups.iter().all(|g| !g.is_empty()));
                }
                other => panic!("seed {seed}: unexpected {other:?}"),
            }
        }
        assert!(down.is_empty(), "seed {seed}: left down: {down:?}");
    }
    for k in ["sink", "checkpoint-storage", "taskmanager-2", "partition"] {
        assert!(kinds.contains(k), "{k} never drawn: {kinds:?}");
    }
}

#[test]
fn the_resolved_text_is_standalone_and_reparses_to_the_same_faults() {
    let s = scenario();
    for seed in 0..20 {
        let r = s.resolve(seed);
        assert!(!r.source.contains("[nemesis]"), "{}", r.source);
        assert!(!r.source.contains("quiet_after"), "{}", r.source);
        let again = Scenario::parse(Path::new("resolved.toml"), &r.source)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", r.source));
        assert!(again.nemesis.is_none());
        assert_eq!(again.faults, r.faults, "seed {seed}");
        assert_eq!(again.resolve(seed + 1).faults, r.faults);
        assert_eq!(again.job, s.job);
        assert_eq!(again.flink, s.flink);
        assert_eq!(again.cluster, s.cluster);
        assert_eq!(again.duration, s.duration);
    }
    let text = s.resolve(3).source;
    assert!(text.contains("at = \""), "{text}");
    assert!(text.contains("ms\""), "{text}");
}

#[test]
fn a_scenario_without_a_nemesis_resolves_to_itself() {
    let s = parse(
        "name = \"x\"\nduration = \"30s\"\n[cluster]\ntaskmanagers = 2\n[[faults]]\nat = \"10s\"\nkill = \"taskmanager-2\"\n",
    );
    assert!(s.nemesis.is_none());
    assert_eq!(s.nemesis_description(), None);
    assert_eq!(s.resolve(1), s);
    assert_eq!(s.resolve(2), s);
    for b in common::bundled()
        .into_iter()
        .filter(|b| b.nemesis.is_none())
    {
        assert_eq!(b.resolve(5), b, "{}", b.name);
    }
}

#[test]
fn a_nemesis_of_only_partitions_works_without_a_job() {
    let s = parse(
        "name = \"x\"\nduration = \"60s\"\n[cluster]\ntaskmanagers = 2\n[nemesis]\npartition = { every = \"5s\", lasting = \"1s..2s\" }\nquiet_after = \"40s\"\n",
    );
    let r = s.resolve(0);
    let starts: Vec<Duration> = r.faults.iter().map(|f| f.at).collect();
    // A fixed `every` of 5s: faults at 5s, 10s, …, 35s.
    assert_eq!(
        starts,
        (1..8)
            .map(|i| Duration::from_secs(5 * i))
            .collect::<Vec<_>>()
    );
    let again = Scenario::parse(Path::new("r.toml"), &r.source).unwrap();
    assert_eq!(again.faults, r.faults);
}

#[test]
fn the_bundled_nemesis_scenario_resolves_to_a_file_that_replays_the_same_run() {
    let s = common::scenario("nemesis-checkpointing");
    let resolved = s.resolve(5);
    assert!(resolved.nemesis.is_none());
    assert!(!resolved.faults.is_empty());
    assert!(!resolved.source.contains("[nemesis]"));
    let reparsed = parse(&resolved.source);
    let a = common::run_seed(&s, 5, None).summary;
    let b = common::run_seed(&reparsed, 5, None).summary;
    assert_eq!(a.trace_hash, b.trace_hash);
    assert!(a.passed(), "{:?}", a.violations);
}

/// Every scripted fault action renders as a `[[faults]]` table that parses back to itself, so
/// resolved and shrunk scenario files can hold any fault.
#[test]
fn every_fault_action_round_trips_through_its_table() {
    let text = r#"
name = "all-actions"
duration = "60s"
[cluster]
taskmanagers = 2
[job]
name = "j"
parallelism = 2
source = { kind = "sequence", partitions = 2, records = 100 }
operators = [{ kind = "map" }]
sink = { kind = "two_phase_commit" }
[[faults]]
at = "1s"
kill = "taskmanager-1"
[[faults]]
at = "2s"
start = "taskmanager-1"
[[faults]]
at = "3s"
pause = "taskmanager-2"
resume_after = "1500ms"
[[faults]]
at = "4s"
pause = "sink"
[[faults]]
at = "5s"
resume = "sink"
[[faults]]
at = "6s"
partition = [["jobmanager-1"], ["taskmanager-1", "taskmanager-2"]]
one_way = true
heal_after = "2s"
[[faults]]
at = "7s"
heal = true
[[faults]]
at = "8s"
clog = [["sink"], ["taskmanager-2"]]
extra = "200ms"
clear_after = "3s"
[[faults]]
at = "9s"
clock_jump = "taskmanager-2"
by = "-5s"
[[faults]]
at = "10s"
fail_task = "map[1]"
"#;
    let s = parse(text);
    assert_eq!(s.faults.len(), 10);
    let mut table: toml::Table = toml::from_str(text).unwrap();
    let faults = s
        .faults
        .iter()
        .map(|f| {
            toml::Value::Table(
                flinksim::nemesis::fault_table(f.at, &f.action)
                    .unwrap_or_else(|| panic!("no table for {:?}", f.action)),
            )
        })
        .collect();
    table.insert("faults".into(), toml::Value::Array(faults));
    let again = parse(&toml::to_string(&table).unwrap());
    assert_eq!(plain(&again.faults), plain(&s.faults));
}

const SWARM_SCENARIO: &str = r#"
name = "swarm"
duration = "60s"
[cluster]
taskmanagers = 4
[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = 1000
"restart-strategy.fixed-delay.delay" = "1 s"
[job]
name = "j"
parallelism = 2
source = { kind = "sequence", partitions = 2, records = 2000, rate = "200/s" }
operators = [{ kind = "map" }]
sink = { kind = "at_least_once" }
[network]
loss = "0..0.02"
[nemesis]
kill_taskmanager = { every = "5s..10s", down = "2s..4s", nodes = "2" }
clog = { every = "5s..10s", lasting = "1s..2s", extra = "50ms..500ms" }
clock_jump = { every = "5s..10s", by = "-20s..20s" }
fail_task = { every = "5s..10s" }
swarm = true
quiet_after = "30s"
"#;

/// Bursts kill several TaskManagers at once; clogs, clock jumps and task failures are drawn;
/// a swarm nemesis keeps a different subset per seed, each entry at a rate of its own; a loss
/// range draws one loss per seed.
/// Every resolved file is standalone and replays the same run.
#[test]
fn swarm_knobs_bursts_clogs_clock_jumps_and_task_failures_are_drawn_per_seed() {
    let s = parse(SWARM_SCENARIO);
    let mut subsets = std::collections::BTreeSet::new();
    let mut losses = std::collections::BTreeSet::new();
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..24 {
        let r = s.resolve(seed);
        assert!(r.nemesis.is_none());
        assert!(r.network.loss_range.is_none());
        let knob = |name: &str| {
            r.knobs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("knob {name} in {:?}", r.knobs))
        };
        let loss: f64 = knob("network.loss").parse().unwrap();
        assert!((0.0..=0.02).contains(&loss));
        assert_eq!(r.network.loss, loss);
        losses.insert(knob("network.loss"));
        let kept = knob("nemesis");
        assert!(!kept.is_empty());
        // Each kept entry runs at this seed's own rate, drawn from its `every`.
        for entry in kept.split(", ") {
            let every = knob(&format!("nemesis.{entry}.every"));
            let ms: u64 = every.trim_end_matches("ms").parse().unwrap();
            assert!((5_000..=10_000).contains(&ms), "{entry}: {every}");
        }
        subsets.insert(kept.clone());
        // Kills come in bursts of two at the same instant.
        let mut kills: BTreeMap<Duration, usize> = BTreeMap::new();
        for f in &r.faults {
            match &f.action {
                FaultAction::Kill(_) => *kills.entry(f.at).or_default() += 1,
                FaultAction::Clog {
                    extra, clear_after, ..
                } => {
                    assert!(kept.contains("clog"));
                    assert!(
                        (Duration::from_millis(50)..=Duration::from_millis(500)).contains(extra)
                    );
                    assert!(clear_after.is_some());
                    kinds.insert("clog");
                }
                FaultAction::ClockJump { by_ns, .. } => {
                    assert!(by_ns.abs() <= 20_000_000_000);
                    kinds.insert("clock_jump");
                }
                FaultAction::FailTask { subtask, .. } => {
                    assert!(*subtask < 2);
                    kinds.insert("fail_task");
                }
                _ => {}
            }
        }
        if kept.contains("kill_taskmanager") {
            assert!(!kills.is_empty(), "seed {seed}");
            kinds.insert("kill_taskmanager");
        }
        assert!(kills.values().all(|n| *n == 2), "seed {seed}: {kills:?}");
        // The resolved text stands alone: same faults, same knobs, same run.
        let again = Scenario::parse(Path::new("resolved.toml"), &r.source).unwrap();
        assert_eq!(plain(&again.faults), plain(&r.faults));
        assert_eq!(again.network.loss, loss);
        if seed < 3 {
            let a = common::run_seed(&s, seed, None).summary;
            let b = common::run_seed(&again, seed, None).summary;
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        }
    }
    assert!(subsets.len() >= 5, "swarm subsets vary: {subsets:?}");
    assert!(losses.len() >= 20, "losses vary: {losses:?}");
    assert_eq!(kinds.len(), 4, "every kind was drawn somewhere: {kinds:?}");
}

#[test]
fn bad_swarm_and_nemesis_values_are_clear_errors() {
    let cases = [
        (
            r#"kill_taskmanager = { every = "5s", down = "1s", nodes = "0..9" }"#,
            "`nemesis.kill_taskmanager.nodes`",
        ),
        (
            r#"clock_jump = { every = "5s", by = "20s..-20s" }"#,
            "`nemesis.clock_jump.by`",
        ),
        (r#"clog = { every = "5s", lasting = "1s" }"#, "extra"),
    ];
    for (entry, needle) in cases {
        let text = format!(
            "name = \"x\"\nduration = \"60s\"\n[cluster]\ntaskmanagers = 2\n[nemesis]\n{entry}\nquiet_after = \"30s\"\n"
        );
        let e = Scenario::parse(Path::new("bad.toml"), &text).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
        assert_eq!(e.line.map(|(l, _)| l), Some(6), "{e}");
    }
    let text = "name = \"x\"\nduration = \"60s\"\n[cluster]\ntaskmanagers = 2\n[network]\nloss = \"0.5..0.1\"\n";
    let e = Scenario::parse(Path::new("bad.toml"), text).unwrap_err();
    assert!(e.to_string().contains("`network.loss`"), "{e}");
}

const AIMED_SCENARIO: &str = r#"
name = "aimed"
duration = "120s"
[cluster]
jobmanagers = 2
taskmanagers = 3
[flink]
"high-availability.type" = "ZOOKEEPER"
[job]
name = "j"
parallelism = 2
source = { kind = "sequence", partitions = 2, records = 100 }
sink = { kind = "two_phase_commit" }
[nemesis]
kill_jobmanager = { every = "10s..30s", down = "2s..15s" }
delay_messages = { every = "5s..10s", by = "1s..15s", kinds = ["submitTask.response", "offerSlots"] }
drop_messages = { every = "5s..10s", lasting = "1s..3s" }
drop_replies = { every = "5s..10s" }
isolate = { every = "5s..10s", lasting = "1s..5s" }
slow = { every = "5s..10s", lasting = "1s..5s", per_event = "10ms..200ms" }
kill_leader = { every = "10s..20s", down = "2s..5s" }
pause_leader = { every = "10s..20s", lasting = "1s..5s" }
quiet_after = "80s"
"#;

/// The aimed entries draw what their tables say: one kind at a time from `kinds` (default
/// every RPC kind; for `drop_replies` only answered requests), `count` 1..3 unless `lasting`
/// is given, isolations from an external node of subsets that name the leader or concrete
/// JobManagers but not both, slowness of one process, and leader kills and pauses that keep
/// every JobManager out of the other JobManager entries meanwhile (each kill is followed by a
/// start of every JobManager). The resolved file replays them.
#[test]
fn aimed_entries_draw_kinds_counts_subsets_and_leader_faults() {
    let s = parse(AIMED_SCENARIO);
    let n = s.nemesis.as_ref().expect("a nemesis");
    let requests = flinksim::nemesis::default_kinds(true, true);
    assert!(requests.contains(&"ha.zk-multi".to_string()));
    assert!(requests.contains(&"taskexecutor.submitTask".to_string()));
    assert!(!requests.iter().any(|k| k.ends_with(".response")));
    assert_eq!(n.drop_replies.as_ref().unwrap().kinds, requests);
    assert!(flinksim::nemesis::default_kinds(false, false)
        .iter()
        .all(|k| !k.starts_with("ha")));
    let mut seen = BTreeMap::<&str, u32>::new();
    for seed in 0..40 {
        let r = s.resolve(seed);
        let again = Scenario::parse(Path::new("r.toml"), &r.source)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", r.source));
        assert_eq!(plain(&again.faults), plain(&r.faults), "seed {seed}");
        let mut leader_busy: Vec<(Duration, Duration)> = Vec::new();
        for (i, f) in r.faults.iter().enumerate() {
            match &f.action {
                FaultAction::Messages {
                    fault,
                    kinds,
                    count,
                    lasting,
                    from,
                    to,
                } => {
                    assert!(from.is_empty() && to.is_empty());
                    assert_eq!(kinds.len(), 1, "one kind at a time");
                    match fault.key() {
                        "delay" => {
                            assert!(
                                ["submitTask.response", "offerSlots"].contains(&kinds[0].as_str())
                            );
                            assert!(matches!(count, Some(1..=3)) && lasting.is_none());
                            *seen.entry("delay").or_default() += 1;
                        }
                        "drop" => {
                            assert!(count.is_none() && lasting.is_some(), "{f:?}");
                            *seen.entry("drop").or_default() += 1;
                        }
                        _ => {
                            assert!(requests.contains(&kinds[0]));
                            *seen.entry("drop_reply").or_default() += 1;
                        }
                    }
                }
                FaultAction::Partition {
                    groups, heal_after, ..
                } if groups
                    .iter()
                    .any(|g| g.len() == 1 && !g[0].contains("manager")) =>
                {
                    let external = groups
                        .iter()
                        .find(|g| g.len() == 1 && !g[0].contains("manager") && g[0] != "leader");
                    let members: Vec<&String> = groups
                        .iter()
                        .flatten()
                        .filter(|m| Some(*m) != external.map(|g| &g[0]))
                        .collect();
                    assert!(!members.is_empty());
                    let leader = members.iter().any(|m| *m == "leader");
                    let jm = members.iter().any(|m| m.starts_with("jobmanager-"));
                    assert!(!(leader && jm), "the leader and a JobManager: {groups:?}");
                    assert!(heal_after.is_some());
                    *seen
                        .entry(if leader { "isolate-leader" } else { "isolate" })
                        .or_default() += 1;
                }
                FaultAction::Slow {
                    lasting, per_event, ..
                } => {
                    assert!(lasting.is_some());
                    assert!(*per_event >= Duration::from_millis(10));
                    *seen.entry("slow").or_default() += 1;
                }
                FaultAction::Kill(n) if n == "leader" => {
                    let starts: Vec<&str> = r.faults[i + 1..]
                        .iter()
                        .filter_map(|g| match &g.action {
                            FaultAction::Start(m) if m.starts_with("jobmanager-") => {
                                Some(m.as_str())
                            }
                            _ => None,
                        })
                        .take(2)
                        .collect();
                    assert_eq!(
                        starts.len(),
                        2,
                        "every JobManager started again: {:?}",
                        r.faults
                    );
                    *seen.entry("kill-leader").or_default() += 1;
                }
                FaultAction::Pause { node, resume_after } if node == "leader" => {
                    leader_busy.push((f.at, f.at + resume_after.unwrap()));
                    *seen.entry("pause-leader").or_default() += 1;
                }
                _ => {}
            }
        }
        // No JobManager is killed while the leader of the moment is paused.
        for f in &r.faults {
            if let FaultAction::Kill(n) = &f.action {
                if n.starts_with("jobmanager-") {
                    assert!(
                        leader_busy.iter().all(|&(a, b)| f.at < a || f.at > b),
                        "seed {seed}: {n} killed during a leader pause"
                    );
                }
            }
        }
    }
    for k in [
        "delay",
        "drop",
        "drop_reply",
        "isolate",
        "isolate-leader",
        "slow",
        "kill-leader",
        "pause-leader",
    ] {
        assert!(
            seen.get(k).copied().unwrap_or(0) > 0,
            "{k} never drawn: {seen:?}"
        );
    }
}
