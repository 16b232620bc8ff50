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
    /// When `scenario` was written for the bug: a general nemesis scenario (under
    /// `scenarios/`, without `.toml`) that finds it too, explored up to [`GENERAL_BUDGET`]
    /// seeds so the table reports seeds to detection for both.
    pub general: Option<&'static str>,
}

/// Seeds a general nemesis scenario may take to find a bug.
pub const GENERAL_BUDGET: u64 = 1000;

const fn case(bug: Bug, scenario: &'static str, invariant: &'static str, budget: u64) -> Case {
    Case {
        bug,
        scenario,
        invariant,
        budget,
        general: None,
    }
}

impl Case {
    const fn also_on(self, general: &'static str) -> Case {
        Case {
            general: Some(general),
            ..self
        }
    }

    /// The scenario that finds the bug is a general nemesis scenario.
    pub fn on_nemesis(&self) -> bool {
        self.scenario.starts_with("nemesis/")
    }
}

/// Every planted bug, in `Bug::ALL` order.
pub const CASES: &[Case] = &[
    case(
        Bug::HeartbeatTimeoutNotReset,
        "heartbeat/heartbeat-steady",
        "heartbeat-detection",
        50,
    )
    .also_on("nemesis/nemesis-swarm"),
    case(
        Bug::HeartbeatTimeoutIgnored,
        "heartbeat/tm-paused",
        "heartbeat-detection",
        50,
    )
    .also_on("nemesis/nemesis-swarm"),
    case(
        Bug::RegistrationNotRetried,
        "heartbeat/tm-partitioned-then-healed",
        "registration-liveness",
        200,
    )
    .also_on("nemesis/nemesis-swarm"),
    case(
        Bug::SlotDoubleAllocation,
        "failover/forward-job-tm-killed",
        "slot-exclusivity",
        200,
    )
    .also_on("nemesis/nemesis-swarm"),
    case(
        Bug::StaleAttemptUpdateAccepted,
        "heartbeat/tm-paused-during-job",
        "stale-attempts",
        200,
    )
    .also_on("nemesis/nemesis-regions"),
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
    )
    .also_on("nemesis/nemesis-swarm"),
    case(
        Bug::SinkCommitOnBarrier,
        "negative/negative-sink-commit-on-barrier",
        "committed-only-completed",
        50,
    )
    .also_on("nemesis/nemesis-checkpointing"),
    case(
        Bug::NoBarrierAlignment,
        "negative/negative-no-barrier-alignment",
        "exactly-once",
        50,
    )
    .also_on("nemesis/nemesis-swarm"),
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
    )
    .also_on("nemesis/nemesis-checkpointing"),
    case(
        Bug::AckBeforeSnapshotDurable,
        "negative/negative-ack-before-snapshot-durable",
        "checkpoint-completeness",
        50,
    )
    .also_on("nemesis/nemesis-checkpointing"),
    case(
        Bug::CompleteWithMissingAck,
        "negative/negative-complete-with-missing-ack",
        "checkpoint-completeness",
        50,
    )
    .also_on("nemesis/nemesis-checkpointing"),
    case(
        Bug::NoAbortOfLingeringTransactions,
        "negative/negative-no-abort-of-lingering-transactions",
        "no-lingering-transactions",
        50,
    )
    .also_on("nemesis/nemesis-checkpointing"),
    case(
        Bug::NoFencingCheck,
        "ha/negative-ha-no-fencing-check",
        "leader-fencing",
        500,
    )
    .also_on("nemesis/nemesis-ha"),
    case(
        Bug::CheckpointIdCounterNotPersisted,
        "ha/negative-ha-checkpoint-id-counter-not-persisted",
        "checkpoint-ids",
        500,
    )
    .also_on("nemesis/nemesis-ha"),
    case(
        Bug::RecoverFromStaleCheckpointPointer,
        "ha/negative-ha-recover-from-stale-checkpoint-pointer",
        "restored-state",
        500,
    )
    .also_on("nemesis/nemesis-ha"),
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
    // On nemesis-ha slot-exclusivity sees it first: the parked slot still runs the old task
    // when the new leader deploys into it.
    case(
        Bug::TasksOutliveJobMasterDisconnect,
        "negative/negative-tasks-outlive-jobmaster-disconnect",
        "one-live-attempt",
        50,
    )
    .also_on("nemesis/nemesis-ha"),
    case(
        Bug::ReaderOutlivesTask,
        "nemesis/nemesis-swarm",
        "one-live-attempt",
        50,
    ),
    case(
        Bug::CounterStuckAfterReconnect,
        "ha/negative-ha-counter-stuck-after-reconnect",
        "checkpoint-liveness",
        50,
    ),
    case(
        Bug::SubmitNeedsActiveSlot,
        "nemesis/nemesis-swarm",
        "held-slot-takes-tasks",
        50,
    ),
    case(
        Bug::OutdatedConnectionRegisters,
        "nemesis/nemesis-regions",
        "registration-liveness",
        50,
    ),
    case(
        Bug::SlotsBeforeRegistrationCompletes,
        "nemesis/nemesis-swarm",
        "slot-views-agree",
        50,
    ),
    case(
        Bug::OutdatedOfferAnswerFreesSlots,
        "nemesis/nemesis-shapes",
        "offer-answer-decides-its-offer",
        50,
    ),
    case(
        Bug::HaDataDeletedOnSuspend,
        "nemesis/nemesis-ha",
        "restored-state",
        50,
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
    /// On the case's general nemesis scenario: the first failing seed and its invariant.
    pub general: Option<(u64, String)>,
    pub wall: Duration,
}

impl Row {
    /// Caught within the budget, by the expected invariant.
    pub fn ok(&self) -> bool {
        self.caught
            .as_ref()
            .is_some_and(|(_, invariant)| invariant == self.case.invariant)
    }

    /// Caught by the expected invariant on a general nemesis scenario: its own scenario is
    /// one, or its general scenario found it within [`GENERAL_BUDGET`] seeds.
    pub fn on_nemesis(&self) -> bool {
        (self.case.on_nemesis() && self.ok())
            || self
                .general
                .as_ref()
                .is_some_and(|(_, invariant)| invariant == self.case.invariant)
    }
}

/// Explores `scenario` with `bug` on seeds `0..budget`: the first failing seed and the
/// invariant of its first violation.
fn first_failure(scenario: &Scenario, bug: Bug, budget: u64) -> Option<(u64, String)> {
    let what = Exploration {
        seeds: SeedRange {
            start: 0,
            end: budget,
        },
        shard: None,
        bug: Some(bug),
        keep_going: false,
        time_limit: None,
    };
    let out = explore(std::slice::from_ref(scenario), &what, &mut |_, _, _| {});
    out.failures.iter().min_by_key(|f| f.summary.seed).map(|f| {
        let invariant = f
            .summary
            .violations
            .first()
            .map_or_else(|| "?".to_string(), |v| v.invariant.clone());
        (f.summary.seed, invariant)
    })
}

/// Loads `scenarios/<case.scenario>.toml` under `root`.
pub fn scenario_of(root: &Path, case: &Case) -> Result<Scenario, String> {
    load(root, case.scenario)
}

/// Loads `scenarios/<name>.toml` under `root`.
pub fn load(root: &Path, name: &str) -> Result<Scenario, String> {
    let path = root.join("scenarios").join(format!("{name}.toml"));
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
        let first = first_failure(&scenario, case.bug, case.budget);
        let shrunk = first.as_ref().and_then(|(seed, _)| {
            let limits = Limits {
                time: Some(shrink_time),
                ..Limits::default()
            };
            shrink(&scenario, *seed, Some(case.bug), &limits, &mut |_| {})
                .ok()
                .map(|s| (s.faults_before, s.faults_after))
        });
        let general = match case.general {
            Some(name) => first_failure(&load(root, name)?, case.bug, GENERAL_BUDGET),
            None => None,
        };
        let row = Row {
            case: *case,
            caught: first,
            shrunk,
            general,
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
        "| bug | imitates | scenario | caught by | seeds to detection (budget) | faults: failing run → shrunk | on a general nemesis scenario: seeds to detection (budget) | verdict |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
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
        let general = match (r.case.general, &r.general) {
            _ if r.case.on_nemesis() => "(its scenario)".to_string(),
            (Some(name), Some((seed, invariant))) => {
                format!("{name}: {} ({GENERAL_BUDGET}) by {invariant}", seed + 1)
            }
            (Some(name), None) => format!("{name}: not caught ({GENERAL_BUDGET})"),
            (None, _) => "—".to_string(),
        };
        out += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            r.case.bug.name(),
            r.case.bug.description(),
            r.case.scenario,
            caught_by,
            seeds,
            shrunk,
            general,
            if r.ok() { "ok" } else { "MISSED" }
        );
    }
    let nemesis = rows.iter().filter(|r| r.on_nemesis()).count();
    out += &format!(
        "\n{nemesis} of {} planted bugs caught on a general nemesis scenario (`scenarios/nemesis/`) by their invariant within {GENERAL_BUDGET} seeds.\n",
        rows.len()
    );
    out
}
