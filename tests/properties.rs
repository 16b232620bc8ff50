//! Property tests with proptest, written the way a team embedding flinksim would write its own:
//! only the public library API (`Scenario::parse`, `run`, the summary), no test helpers.
//!
//! - random fault schedules (kills with restarts, pauses, partitions, task failures) over a
//!   checkpointed exactly-once job must satisfy every invariant;
//! - random small jobs and configurations (parallelism, pipeline, sink, checkpoint interval,
//!   heartbeats, restart and failover strategy) must satisfy every invariant without faults and
//!   finish;
//! - when a property fails (here: with a planted bug), proptest shrinks the fault schedule to a
//!   minimal one.
//!
//! CI runs 24 cases per property from a fixed RNG seed; `PROPTEST_CASES=500
//! PROPTEST_RNG_SEED=$RANDOM cargo test --release --test properties` explores more.

use flinksim::run::{run, RunOptions};
use flinksim::scenario::Scenario;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use std::path::Path;

const TASKMANAGERS: u32 = 3;

/// 24 cases from a fixed RNG seed, so CI runs the same cases every time;
/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override both.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 24;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(20261122);
    }
    config.failure_persistence = None;
    config
}

/// One scripted fault of a schedule; `tm` is 1-based.
#[derive(Clone, Debug)]
enum Fault {
    /// Kill a TaskManager, start it again `down_s` later.
    Kill { tm: u32, at_s: u32, down_s: u32 },
    /// A stop-the-world pause of a TaskManager.
    Pause { tm: u32, at_s: u32, lasting_s: u32 },
    /// A TaskManager cut off from the JobManager, healed later.
    Partition { tm: u32, at_s: u32, lasting_s: u32 },
    /// The task running subtask `subtask` of the count operator throws.
    FailTask { subtask: u32, at_s: u32 },
}

impl Fault {
    fn toml(&self) -> String {
        match self {
            Fault::Kill { tm, at_s, down_s } => format!(
                "[[faults]]\nat = \"{at_s}s\"\nkill = \"taskmanager-{tm}\"\n\
                 [[faults]]\nat = \"{}s\"\nstart = \"taskmanager-{tm}\"\n",
                at_s + down_s
            ),
            Fault::Pause {
                tm,
                at_s,
                lasting_s,
            } => format!(
                "[[faults]]\nat = \"{at_s}s\"\npause = \"taskmanager-{tm}\"\n\
                 resume_after = \"{lasting_s}s\"\n"
            ),
            Fault::Partition {
                tm,
                at_s,
                lasting_s,
            } => format!(
                "[[faults]]\nat = \"{at_s}s\"\n\
                 partition = [[\"jobmanager-1\"], [\"taskmanager-{tm}\"]]\n\
                 heal_after = \"{lasting_s}s\"\n"
            ),
            Fault::FailTask { subtask, at_s } => {
                format!("[[faults]]\nat = \"{at_s}s\"\nfail_task = \"count[{subtask}]\"\n")
            }
        }
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    let tm = 1..=TASKMANAGERS;
    prop_oneof![
        (tm.clone(), 2u32..40, 1u32..15).prop_map(|(tm, at_s, down_s)| Fault::Kill {
            tm,
            at_s,
            down_s
        }),
        (tm.clone(), 2u32..40, 1u32..12).prop_map(|(tm, at_s, lasting_s)| Fault::Pause {
            tm,
            at_s,
            lasting_s
        }),
        (tm, 2u32..40, 1u32..12).prop_map(|(tm, at_s, lasting_s)| Fault::Partition {
            tm,
            at_s,
            lasting_s
        }),
        (0u32..4, 2u32..40).prop_map(|(subtask, at_s)| Fault::FailTask { subtask, at_s }),
    ]
}

/// A keyed count with a two-phase-commit sink, 1 s exactly-once checkpoints (10 s timeout) and
/// a generous restart budget, on 3 TaskManagers × 2 slots (one spare TaskManager's worth), plus
/// `faults`.
fn faulty_job(faults: &[Fault]) -> Scenario {
    let mut text = String::from(
        r#"
name = "property-fault-schedule"
duration = "120s"
[cluster]
taskmanagers = 3
[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"execution.checkpointing.interval" = "1 s"
# A triggerCheckpoint lost in a partition leaves the checkpoint pending, and the aligned tasks
# blocked, until the timeout: with the default 10 min the job could not finish in 120 s.
"execution.checkpointing.timeout" = "10 s"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = 1000
"restart-strategy.fixed-delay.delay" = "1 s"
[job]
name = "keyed-count"
parallelism = 4
source = { kind = "sequence", partitions = 4, records = 3000, rate = "200/s" }
operators = [{ kind = "key_by", keys = 16 }, { kind = "count" }]
sink = { kind = "two_phase_commit" }
[expect]
job_status = "FINISHED"
"#,
    );
    for f in faults {
        text += &f.toml();
    }
    Scenario::parse(Path::new("property.toml"), &text).expect("a valid generated scenario")
}

/// Runs `scenario` with `seed` (and `bug`) and fails the case with the violations, if any.
fn holds(
    scenario: &Scenario,
    seed: u64,
    bug: Option<model::checking::bugs::Bug>,
) -> Result<(), TestCaseError> {
    let r = run(
        scenario,
        RunOptions {
            seed,
            bug,
            ..RunOptions::default()
        },
    );
    prop_assert!(
        r.summary.passed(),
        "seed {seed}: {:?}",
        r.summary
            .violations
            .iter()
            .map(|v| format!("{} at {} ms: {}", v.invariant, v.at_ms, v.message))
            .collect::<Vec<_>>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Every invariant holds, and the job finishes, under any schedule of up to 4 faults.
    #[test]
    fn random_fault_schedules_keep_every_invariant(
        faults in prop::collection::vec(fault(), 0..=4),
        seed in 0u64..1000,
    ) {
        holds(&faulty_job(&faults), seed, None)?;
    }
}

/// A small job and configuration drawn at random.
#[derive(Clone, Debug)]
struct SmallJob {
    parallelism: u32,
    partitions: u32,
    records: u32,
    pipeline: &'static str,
    sink: &'static str,
    checkpoint_ms: Option<u32>,
    heartbeat_interval_ms: u32,
    region_failover: bool,
    restart: &'static str,
}

prop_compose! {
    fn small_job()(
        parallelism in 1u32..=4,
        partitions in 1u32..=4,
        records in 1u32..400,
        pipeline in prop::sample::select(vec![
            r#"[{ kind = "map" }]"#,
            r#"[{ kind = "key_by", keys = 8 }, { kind = "count" }]"#,
            r#"[{ kind = "rebalance" }, { kind = "map" }]"#,
            r#"[{ kind = "map" }, { kind = "key_by", keys = 3 }, { kind = "count" }, { kind = "rebalance" }]"#,
        ]),
        sink in prop::sample::select(vec!["two_phase_commit", "at_least_once", "discard"]),
        checkpoint_ms in prop::option::of(200u32..3000),
        heartbeat_interval_ms in prop::sample::select(vec![500u32, 1000, 10_000]),
        region_failover in any::<bool>(),
        restart in prop::sample::select(vec!["fixed-delay", "exponential-delay", "failure-rate", "none"]),
    ) -> SmallJob {
        SmallJob {
            parallelism,
            partitions,
            records,
            pipeline,
            sink,
            checkpoint_ms,
            heartbeat_interval_ms,
            region_failover,
            restart,
        }
    }
}

impl SmallJob {
    fn scenario(&self) -> Scenario {
        let checkpointing = self
            .checkpoint_ms
            .map(|ms| format!("\"execution.checkpointing.interval\" = \"{ms} ms\"\n"))
            .unwrap_or_default();
        let text = format!(
            r#"
name = "property-small-job"
duration = "60s"
[cluster]
taskmanagers = 2
[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "{hb} ms"
"heartbeat.timeout" = "{timeout} ms"
"jobmanager.execution.failover-strategy" = "{failover}"
"restart-strategy.type" = "{restart}"
{checkpointing}
[job]
name = "small"
parallelism = {p}
source = {{ kind = "sequence", partitions = {partitions}, records = {records}, rate = "500/s" }}
operators = {pipeline}
sink = {{ kind = "{sink}" }}
[expect]
job_status = "FINISHED"
"#,
            hb = self.heartbeat_interval_ms,
            timeout = self.heartbeat_interval_ms * 5,
            failover = if self.region_failover {
                "region"
            } else {
                "full"
            },
            restart = self.restart,
            p = self.parallelism,
            partitions = self.partitions,
            records = self.records,
            pipeline = self.pipeline,
            sink = self.sink,
        );
        Scenario::parse(Path::new("small-job.toml"), &text).expect("a valid generated scenario")
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any small job and configuration runs to FINISHED without faults, every invariant held.
    #[test]
    fn random_small_jobs_and_configs_keep_every_invariant(job in small_job(), seed in 0u64..1000) {
        holds(&job.scenario(), seed, None)?;
    }
}

/// With a planted bug that only shows under a fault (a paused TaskManager is never declared
/// lost), the property fails and proptest shrinks the schedule to the one fault that matters.
#[test]
fn a_failing_property_shrinks_to_a_minimal_fault_schedule() {
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..config()
    });
    let schedules = prop::collection::vec(fault(), 1..=4);
    let result = runner.run(&schedules, |faults| {
        holds(
            &faulty_job(&faults),
            1,
            Some(model::checking::bugs::Bug::HeartbeatTimeoutIgnored),
        )
    });
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("the planted bug was never caught: {result:?}");
    };
    assert!(
        reason.message().contains("heartbeat-detection"),
        "{}",
        reason.message()
    );
    assert_eq!(minimal.len(), 1, "not minimal: {minimal:?}");
    assert!(
        matches!(minimal[0], Fault::Pause { .. } | Fault::Partition { .. }),
        "{minimal:?}"
    );
}
