//! The planted-bug self-test: every planted bug (`flinksim list bugs`) with the bundled scenario
//! it breaks, the invariant that must catch it and a seed budget. [`run`] explores each bug's
//! scenario with the bug switched on until the first failing seed, checks the invariant, and
//! shrinks that run; [`markdown`] renders the table `flinksim selftest` prints and records in
//! `reports/selftest.md`.

use crate::explore::{explore, Exploration, SeedRange};
use crate::scenario::Scenario;
use crate::shrink::{shrink, Limits};
use model::checking::bugs::Bug;
use std::path::Path;
use std::time::{Duration, Instant};

/// One planted bug and how the self-test expects to catch it.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub bug: Bug,
    /// The scenario file under `scenarios/`, without `.toml`.
    pub scenario: &'static str,
    /// The invariant that must report the first violation.
    pub invariant: &'static str,
    /// Seeds 0..budget may be explored.
    pub budget: u64,
}

const fn case(bug: Bug, scenario: &'static str, invariant: &'static str, budget: u64) -> Case {
    Case {
        bug,
        scenario,
        invariant,
        budget,
    }
}

/// Every planted bug, in `Bug::ALL` order.
pub const CASES: &[Case] = &[
    case(
        Bug::HeartbeatTimeoutNotReset,
        "heartbeat/heartbeat-steady",
        "heartbeat-detection",
        50,
    ),
    case(
        Bug::HeartbeatTimeoutIgnored,
        "heartbeat/tm-paused",
        "heartbeat-detection",
        50,
    ),
    case(
        Bug::RegistrationNotRetried,
        "heartbeat/tm-partitioned-then-healed",
        "registration-liveness",
        200,
    ),
    case(
        Bug::SlotDoubleAllocation,
        "failover/forward-job-tm-killed",
        "slot-exclusivity",
        200,
    ),
    case(
        Bug::StaleAttemptUpdateAccepted,
        "heartbeat/tm-paused-during-job",
        "stale-attempts",
        200,
    ),
    case(
        Bug::RestartBudgetNotEnforced,
        "failover/restart-budget-exhausted",
        "restart-budget",
        200,
    ),
    case(
        Bug::TmLossNotFailingTasks,
        "failover/tm-killed-region-fixed-delay",
        "job-liveness",
        200,
    ),
    case(
        Bug::SinkCommitOnBarrier,
        "negative/negative-sink-commit-on-barrier",
        "committed-only-completed",
        50,
    ),
    case(
        Bug::NoBarrierAlignment,
        "negative/negative-no-barrier-alignment",
        "exactly-once",
        50,
    ),
    case(
        Bug::RestoreOlderCheckpoint,
        "negative/negative-restore-older-checkpoint",
        "restored-state",
        50,
    ),
    case(
        Bug::OffsetsNotInSnapshot,
        "negative/negative-offsets-not-in-snapshot",
        "restored-state",
        50,
    ),
    case(
        Bug::AckBeforeSnapshotDurable,
        "negative/negative-ack-before-snapshot-durable",
        "checkpoint-completeness",
        50,
    ),
    case(
        Bug::CompleteWithMissingAck,
        "negative/negative-complete-with-missing-ack",
        "checkpoint-completeness",
        50,
    ),
    case(
        Bug::NoAbortOfLingeringTransactions,
        "negative/negative-no-abort-of-lingering-transactions",
        "no-lingering-transactions",
        50,
    ),
    case(
        Bug::NoFencingCheck,
        "ha/negative-ha-no-fencing-check",
        "leader-fencing",
        500,
    ),
    case(
        Bug::CheckpointIdCounterNotPersisted,
        "ha/negative-ha-checkpoint-id-counter-not-persisted",
        "checkpoint-ids",
        500,
    ),
    case(
        Bug::RecoverFromStaleCheckpointPointer,
        "ha/negative-ha-recover-from-stale-checkpoint-pointer",
        "restored-state",
        500,
    ),
    case(
        Bug::TmIgnoresLeaderChange,
        "ha/negative-ha-tm-ignores-leader-change",
        "leader-fencing",
        500,
    ),
    case(
        Bug::RestartBeforeCancellation,
        "nemesis/nemesis-swarm",
        "attempt-order",
        50,
    ),
    case(
        Bug::CommitOnlyNotifiedCheckpoint,
        "nemesis/nemesis-checkpointing",
        "commits-cover-completed",
        50,
    ),
    case(
        Bug::RmTrustsStaleSlotReport,
        "nemesis/nemesis-swarm",
        "slot-views-agree",
        50,
    ),
    case(
        Bug::DiscardOnUnknownPointerWrite,
        "nemesis/nemesis-ha",
        "referenced-state-kept",
        500,
    ),
];

/// What the self-test found for one case.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: Case,
    /// The first failing seed and the invariant of its first violation.
    pub caught: Option<(u64, String)>,
    /// Scripted faults of the failing run before and after shrinking.
    pub shrunk: Option<(usize, usize)>,
    pub wall: Duration,
}

impl Row {
    /// Caught within the budget, by the expected invariant.
    pub fn ok(&self) -> bool {
        self.caught
            .as_ref()
            .is_some_and(|(_, invariant)| invariant == self.case.invariant)
    }
}

/// Loads `scenarios/<case.scenario>.toml` under `root`.
pub fn scenario_of(root: &Path, case: &Case) -> Result<Scenario, String> {
    let path = root
        .join("scenarios")
        .join(format!("{}.toml", case.scenario));
    Scenario::load(&path).map_err(|e| e.to_string())
}

/// Runs the self-test for `cases`: explore up to each budget with the bug on, then shrink the
/// failing run (within `shrink_time`). `progress` is told about each finished row.
pub fn run(
    root: &Path,
    cases: &[Case],
    shrink_time: Duration,
    progress: &mut dyn FnMut(&Row),
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for case in cases {
        let started = Instant::now();
        let scenario = scenario_of(root, case)?;
        let what = Exploration {
            seeds: SeedRange {
                start: 0,
                end: case.budget,
            },
            shard: None,
            bug: Some(case.bug),
            keep_going: false,
            time_limit: None,
        };
        let out = explore(std::slice::from_ref(&scenario), &what, &mut |_, _, _| {});
        let first = out.failures.iter().min_by_key(|f| f.summary.seed).map(|f| {
            let invariant = f
                .summary
                .violations
                .first()
                .map_or_else(|| "?".to_string(), |v| v.invariant.clone());
            (f.summary.seed, invariant)
        });
        let shrunk = first.as_ref().and_then(|(seed, _)| {
            let limits = Limits {
                time: Some(shrink_time),
                ..Limits::default()
            };
            shrink(&scenario, *seed, Some(case.bug), &limits, &mut |_| {})
                .ok()
                .map(|s| (s.faults_before, s.faults_after))
        });
        let row = Row {
            case: *case,
            caught: first,
            shrunk,
            wall: started.elapsed(),
        };
        progress(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// The table of a self-test run, in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| bug | imitates | scenario | caught by | seeds to detection (budget) | faults: failing run → shrunk | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let (caught_by, seeds) = match &r.caught {
            Some((seed, invariant)) => (
                invariant.clone(),
                format!("{} ({})", seed + 1, r.case.budget),
            ),
            None => ("—".to_string(), format!("not caught ({})", r.case.budget)),
        };
        let shrunk = r
            .shrunk
            .map_or_else(|| "—".to_string(), |(a, b)| format!("{a} → {b}"));
        out += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            r.case.bug.name(),
            r.case.bug.description(),
            r.case.scenario,
            caught_by,
            seeds,
            shrunk,
            if r.ok() { "ok" } else { "MISSED" }
        );
    }
    out
}
