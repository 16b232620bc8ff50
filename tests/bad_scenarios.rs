//! Bad scenario files get a clear error — file, line, what was expected — and exit code 2,
//! never a panic.

use std::process::Command;

const GOOD_HEAD: &str = "name = \"bad\"\nduration = \"30s\"\n";

/// (case, file text, expected line, text the message must contain)
const CASES: &[(&str, &str, Option<usize>, &str)] = &[
    ("not toml", "name = \"x\"\nduration = \n", Some(2), "expected"),
    ("missing duration", "name = \"x\"\n", Some(1), "missing required key `duration`"),
    (
        "unknown top-level key",
        "name = \"x\"\nduration = \"30s\"\nturbo = true\n",
        Some(3),
        "unknown key `turbo`",
    ),
    (
        "bad duration unit",
        "name = \"x\"\nduration = \"30 parsecs\"\n",
        Some(2),
        "unknown time unit",
    ),
    (
        "unknown flink key",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"heartbeat.intervall\" = \"1 s\"\n",
        Some(4),
        "unknown Flink key `heartbeat.intervall`",
    ),
        (
        "bad restart strategy",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"restart-strategy.type\" = \"sometimes\"\n",
        Some(4),
        "expected none, fixed-delay, failure-rate or exponential-delay",
    ),
    (
        "timeout below interval",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"heartbeat.interval\" = \"10 s\"\n\"heartbeat.timeout\" = \"1 s\"\n",
        None,
        "must be at least `heartbeat.interval`",
    ),
    (
        "threshold zero",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"heartbeat.rpc-failure-threshold\" = 0\n",
        Some(4),
        "-1 (disabled) or a positive integer",
    ),
    (
        "unknown node",
        "name = \"x\"\nduration = \"30s\"\n[cluster]\ntaskmanagers = 2\n[[faults]]\nat = \"5s\"\nkill = \"taskmanager-9\"\n",
        Some(7),
        "unknown node `taskmanager-9`",
    ),
    (
        "unknown message kind",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\ndrop = \"submitTsk\"\n",
        Some(5),
        "unknown message kind `submitTsk`",
    ),
    (
        "swarm parallelism zero",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[swarm]\nparallelism = \"0..3\"\n",
        Some(8),
        "`swarm.parallelism`: expected a count like 2 or a range",
    ),
    (
        "swarm without a job",
        "name = \"x\"\nduration = \"30s\"\n[swarm]\nparallelism = \"1..3\"\n",
        Some(3),
        "need a [job]",
    ),
    (
        "empty swarm",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[swarm]\n",
        Some(7),
        "expects at least one of",
    ),
    (
        "swarm operator alternative unknown",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[swarm]\noperators = [[{ kind = \"map\" }], [{ kind = \"join\" }]]\n",
        Some(8),
        "operators alternative 2",
    ),
    (
        "empty answer delay range",
        "name = \"x\"\nduration = \"30s\"\n[network]\nanswer_delay = \"9ms..1ms\"\n",
        Some(4),
        "is empty",
    ),
    (
        "delay without by",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\ndelay = \"submitTask.response\"\n",
        Some(5),
        "`delay` needs `by`",
    ),
    (
        "drop_reply of a reply",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\ndrop_reply = \"offerSlots.response\"\n",
        Some(5),
        "is itself a reply",
    ),
    (
        "slow without per_event",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nslow = \"taskmanager-1\"\n",
        Some(3),
        "`slow` needs `per_event`",
    ),
    (
        "count on a kill",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nkill = \"leader\"\ncount = 2\n",
        Some(3),
        "belongs to `delay, drop or drop_reply`",
    ),
    (
        "taskmanager-of without a job",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nkill = \"taskmanager-of:count[1]\"\n",
        Some(5),
        "`taskmanager-of:` needs a [job]",
    ),
    (
        "isolate_from an unknown node",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nisolate_from = \"zookeeper\"\n",
        Some(5),
        "unknown node `zookeeper`",
    ),
    (
        "fault with two actions",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nkill = \"taskmanager-1\"\npause = \"taskmanager-1\"\n",
        Some(3),
        "exactly one action",
    ),
    (
        "fault after the end",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"50s\"\nkill = \"taskmanager-1\"\n",
        Some(4),
        "after the scenario's duration",
    ),
    (
        "loss above one",
        "name = \"x\"\nduration = \"30s\"\n[network]\nloss = 1.5\n",
        Some(4),
        "probability",
    ),
    (
        "empty latency range",
        "name = \"x\"\nduration = \"30s\"\n[network]\nlatency = \"9ms..1ms\"\n",
        Some(4),
        "is empty",
    ),
    (
        "partition with one group",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\npartition = [[\"jobmanager-1\"]]\n",
        Some(5),
        "at least two non-empty groups",
    ),
    (
        "stray key on a fault",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nkill = \"taskmanager-1\"\nheal_after = \"3s\"\n",
        Some(3),
        "`heal_after` belongs to `partition`",
    ),
        (
        "job without a source",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\n",
        Some(3),
        "`[job]` needs `source` (or `sources`",
    ),
    (
        "job with source and sources",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\nsources = [{ kind = \"sequence\", partitions = 2, records = 10 }]\n",
        Some(7),
        "both given",
    ),
    (
        "sources with different record counts",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsources = [\n  { kind = \"sequence\", partitions = 2, records = 10 },\n  { kind = \"sequence\", partitions = 2, records = 11 },\n]\n",
        Some(8),
        "differs from the first source's 10",
    ),
    (
        "swarm sources of a job with sources",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsources = [{ kind = \"sequence\", partitions = 2, records = 10 }]\n[swarm]\nsources = \"1..2\"\n",
        Some(8),
        "must give one `source`",
    ),
    (
        "fail_task of an unknown operator",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[[faults]]\nat = \"5s\"\nfail_task = \"window[0]\"\n",
        Some(9),
        "no operator named `window`",
    ),
    (
        "kubernetes high availability",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"high-availability.type\" = \"kubernetes\"\n",
        Some(4),
        "KUBERNETES is not supported by flinksim yet; use ZOOKEEPER",
    ),
    (
        "two jobmanagers without high availability",
        "name = \"x\"\nduration = \"30s\"\n[cluster]\njobmanagers = 2\ntaskmanagers = 1\n",
        Some(4),
        "`cluster.jobmanagers` > 1 requires high availability",
    ),
    (
        "bad checkpointing mode",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"execution.checkpointing.interval\" = \"1 s\"\n\"execution.checkpointing.mode\" = \"EXACTLY_TWICE\"\n",
        Some(5),
        "`execution.checkpointing.mode`: expected EXACTLY_ONCE or AT_LEAST_ONCE, got `EXACTLY_TWICE`",
    ),
    (
        "zero checkpoint interval",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"execution.checkpointing.interval\" = \"0 s\"\n",
        Some(4),
        "`execution.checkpointing.interval` must be at least 10 ms",
    ),
    (
        "no concurrent checkpoints",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"execution.checkpointing.interval\" = \"1 s\"\n\"execution.checkpointing.max-concurrent-checkpoints\" = 0\n",
        Some(5),
        "`execution.checkpointing.max-concurrent-checkpoints`: expected an integer of at least 1, got 0",
    ),
    (
        "unknown planted bug",
        "name = \"x\"\nduration = \"30s\"\nbug = \"no-such-bug\"\n",
        Some(3),
        "unknown bug `no-such-bug`; planted bugs: heartbeat-timeout-not-reset",
    ),
    (
        "min_completed_checkpoints without checkpointing",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[expect]\nmin_completed_checkpoints = 3\n",
        Some(8),
        "needs checkpointing: set \"execution.checkpointing.interval\"",
    ),
    (
        "negative min_completed_checkpoints",
        "name = \"x\"\nduration = \"30s\"\n[flink]\n\"execution.checkpointing.interval\" = \"1 s\"\n[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n[expect]\nmin_completed_checkpoints = -1\n",
        Some(10),
        "`expect.min_completed_checkpoints`: expected 0..=",
    ),
    (
        "sink fault without a job",
        "name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"5s\"\nkill = \"sink\"\n",
        Some(5),
        "node `sink` exists only in scenarios with a [job]",
    ),
    (
        "unknown invariant",
        "name = \"x\"\nduration = \"30s\"\n[expect]\nviolation = \"exactly-twice\"\n",
        Some(4),
        "unknown invariant `exactly-twice`",
    ),
    (
        "drift out of range",
        "name = \"x\"\nduration = \"30s\"\n[clocks]\ndrift_ppm = \"0..2000000\"\n",
        Some(4),
        "drift_ppm",
    ),
    (
        "bad name",
        "name = \"a/b\"\nduration = \"30s\"\n",
        Some(1),
        "`name`",
    ),
    (
        "unknown nemesis key",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\nkill_jobmaster = { every = \"5s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "unknown key `kill_jobmaster`, expected one of `kill_taskmanager`, `partition`, `pause`, `kill_sink`, `kill_checkpoint_storage`, `clog`, `clock_jump`, `fail_task`, `kill_jobmanager`, `pause_jobmanager`, `kill_ha`, `delay_messages`, `drop_messages`, `drop_replies`, `isolate`, `slow`, `kill_leader`, `pause_leader`, `swarm`, `quiet_after`",
    ),
    (
        "nemesis kill_jobmanager without high availability",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\nkill_jobmanager = { every = \"5s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "`nemesis.kill_jobmanager` needs high availability",
    ),
    (
        "nemesis delay_messages without by",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\ndelay_messages = { every = \"5s\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.delay_messages` needs `by`",
    ),
    (
        "nemesis drop_messages with by",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\ndrop_messages = { every = \"5s\", by = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.drop_messages.by`: only `delay_messages` holds messages",
    ),
    (
        "nemesis unknown message kind",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\ndrop_messages = { every = \"5s\", kinds = [\"submitJobs\"] }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.drop_messages.kinds`: unknown message kind `submitJobs`",
    ),
    (
        "nemesis drop_replies of a reply",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\ndrop_replies = { every = \"5s\", kinds = \"submitTask.response\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.drop_replies.kinds`: `submitTask.response` is itself a reply",
    ),
    (
        "nemesis bad message count",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\ndrop_messages = { every = \"5s\", count = \"3..1\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.drop_messages.count`: expected a count",
    ),
    (
        "nemesis isolate from a TaskManager",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\nisolate = { every = \"5s\", lasting = \"1s\", from = \"taskmanager-1\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.isolate.from`: `taskmanager-1` is not an external node",
    ),
    (
        "nemesis slow without per_event",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\nslow = { every = \"5s\", lasting = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "missing required key `per_event`",
    ),
    (
        "nemesis kill_leader without high availability",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\nkill_leader = { every = \"5s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.kill_leader` needs high availability",
    ),
    (
        "nemesis pause_leader without high availability",
        "name = \"x\"\nduration = \"30s\"\n[job]\nname = \"j\"\nparallelism = 1\nsource = { kind = \"sequence\", partitions = 1, records = 10 }\nsink = { kind = \"two_phase_commit\" }\n[nemesis]\npause_leader = { every = \"5s\", lasting = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(9),
        "`nemesis.pause_leader` needs high availability",
    ),
    (
        "unknown key in a nemesis entry",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\npause = { every = \"5s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "unknown key `down`, expected `every` or `lasting`",
    ),
    (
        "bad nemesis range",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\nkill_taskmanager = { every = \"40s..10s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "`nemesis.kill_taskmanager.every`: range `40s..10s` is empty",
    ),
    (
        "zero nemesis every",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\npartition = { every = \"0s..5s\", lasting = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "`nemesis.partition.every`: must be greater than zero",
    ),
    (
        "nemesis without quiet_after",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\npause = { every = \"5s\", lasting = \"1s\" }\n",
        Some(3),
        "[nemesis] needs `quiet_after`",
    ),
    (
        "quiet_after not before the end",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\npause = { every = \"5s\", lasting = \"1s\" }\nquiet_after = \"30s\"\n",
        Some(5),
        "`nemesis.quiet_after` = 30s must be before the scenario's duration",
    ),
    (
        "kill_sink without a job",
        "name = \"x\"\nduration = \"30s\"\n[nemesis]\nkill_sink = { every = \"5s\", down = \"1s\" }\nquiet_after = \"20s\"\n",
        Some(4),
        "`nemesis.kill_sink` needs a [job]",
    ),
    (
        "wrong type",
        "name = \"x\"\nduration = \"30s\"\nseeds = \"many\"\n",
        Some(3),
        "invalid type",
    ),
];

#[test]
fn malformed_scenario_files_exit_2_with_file_line_and_expectation() {
    let dir = std::env::temp_dir().join(format!("flinksim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(CASES.len() >= 10);
    for (i, (case, text, line, needle)) in CASES.iter().enumerate() {
        let file = dir.join(format!("case{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_flinksim"))
            .args(["run", file.to_str().unwrap(), "--out"])
            .arg(dir.join("reports"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        let located = match line {
            Some(l) => format!("case{i}.toml:{l}:"),
            None => format!("case{i}.toml"),
        };
        assert!(
            stderr.contains(&located),
            "{case}: expected `{located}` in: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{case}: expected `{needle}` in: {stderr}"
        );
    }
    let _ = GOOD_HEAD;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["frobnicate"],
        vec!["run"],
        vec!["run", "scenarios/tm-killed.toml", "--seed", "minus-one"],
        vec!["run", "scenarios/tm-killed.toml", "--bug", "no-such-bug"],
        vec!["run", "does/not/exist.toml"],
        vec!["replay", "scenarios/tm-killed.toml"],
        vec!["list", "everything"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_flinksim"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.is_empty(), "{args:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
