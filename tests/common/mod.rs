//! Helpers shared by the scenario tests.
#![allow(dead_code)]

use flinksim::run::{run, RunOptions, RunResult};
use flinksim::scenario::Scenario;
use model::checking::bugs::Bug;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Runs the `flinksim` binary in the repository root.
pub fn flinksim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flinksim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The file of a bundled scenario by name, in `scenarios/` or one of its groups
/// (`scenarios/ha/`, …).
pub fn scenario_path(name: &str) -> PathBuf {
    let file = format!("{name}.toml");
    bundled_paths()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|f| f == file.as_str()))
        .unwrap_or_else(|| panic!("no bundled scenario {file}"))
}

/// A bundled scenario by name (see [`scenario_path`]).
pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every bundled scenario file, recursively, sorted (as `flinksim check scenarios` finds them:
/// no `probes.toml`, no alias links).
pub fn bundled_paths() -> Vec<PathBuf> {
    flinksim::check::collect(&[root().join("scenarios")]).unwrap()
}

/// Every bundled scenario except the scale ones (`scenarios/scale/`, thousands of
/// TaskManagers for 10 virtual minutes): `flinksim check` runs those in a release build; the
/// debug test suite would take hours.
pub fn bundled() -> Vec<Scenario> {
    bundled_paths()
        .iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "scale"))
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

pub fn run_seed(s: &Scenario, seed: u64, bug: Option<Bug>) -> RunResult {
    run(
        s,
        RunOptions {
            seed,
            bug,
            trace: None,
            tap: sim::Tap::None,
        },
    )
}

pub fn parse(text: &str) -> Scenario {
    Scenario::parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// Planted bugs with a scenario each breaks and the invariant that must catch it: the
/// heartbeat and registration bugs,
pub const HEARTBEAT_BUGS: &[(Bug, &str, &str)] = &[
    (
        Bug::HeartbeatTimeoutNotReset,
        "heartbeat-steady",
        "heartbeat-detection",
    ),
    (
        Bug::HeartbeatTimeoutIgnored,
        "tm-paused",
        "heartbeat-detection",
    ),
    (
        Bug::RegistrationNotRetried,
        "tm-partitioned-then-healed",
        "registration-liveness",
    ),
];

/// the control-plane bugs (slots, attempts, restarts, TaskManager loss),
pub const CONTROL_PLANE_BUGS: &[(Bug, &str, &str)] = &[
    (
        Bug::SlotDoubleAllocation,
        "forward-job-tm-killed",
        "slot-exclusivity",
    ),
    (
        Bug::StaleAttemptUpdateAccepted,
        "tm-paused-during-job",
        "stale-attempts",
    ),
    (
        Bug::RestartBudgetNotEnforced,
        "restart-budget-exhausted",
        "restart-budget",
    ),
    (
        Bug::TmLossNotFailingTasks,
        "tm-killed-region-fixed-delay",
        "job-liveness",
    ),
    (
        Bug::TasksOutliveJobMasterDisconnect,
        "negative-tasks-outlive-jobmaster-disconnect",
        "one-live-attempt",
    ),
];

/// and the checkpointing bugs, each with its negative scenario.
pub const CHECKPOINTING_BUGS: &[(Bug, &str, &str)] = &[
    (
        Bug::SinkCommitOnBarrier,
        "negative-sink-commit-on-barrier",
        "committed-only-completed",
    ),
    (
        Bug::NoBarrierAlignment,
        "negative-no-barrier-alignment",
        "exactly-once",
    ),
    (
        Bug::RestoreOlderCheckpoint,
        "negative-restore-older-checkpoint",
        "restored-state",
    ),
    (
        Bug::OffsetsNotInSnapshot,
        "negative-offsets-not-in-snapshot",
        "restored-state",
    ),
    (
        Bug::AckBeforeSnapshotDurable,
        "negative-ack-before-snapshot-durable",
        "checkpoint-completeness",
    ),
    (
        Bug::CompleteWithMissingAck,
        "negative-complete-with-missing-ack",
        "checkpoint-completeness",
    ),
    (
        Bug::NoAbortOfLingeringTransactions,
        "negative-no-abort-of-lingering-transactions",
        "no-lingering-transactions",
    ),
];

/// and the bugs the general nemesis scenarios find in their first seeds (the cluster-wide
/// oracles' bugs), with the bug switched on from outside (`--bug`).
pub const NEMESIS_BUGS: &[(Bug, &str, &str)] = &[
    (
        Bug::RestartBeforeCancellation,
        "nemesis-swarm",
        "attempt-order",
    ),
    (
        Bug::CommitOnlyNotifiedCheckpoint,
        "nemesis-checkpointing",
        "commits-cover-completed",
    ),
    (
        Bug::RmTrustsStaleSlotReport,
        "nemesis-swarm",
        "slot-views-agree",
    ),
    (Bug::ReaderOutlivesTask, "nemesis-swarm", "one-live-attempt"),
    (
        Bug::SubmitNeedsActiveSlot,
        "nemesis-swarm",
        "held-slot-takes-tasks",
    ),
    (
        Bug::OutdatedConnectionRegisters,
        "nemesis-regions",
        "registration-liveness",
    ),
    (
        Bug::SlotsBeforeRegistrationCompletes,
        "nemesis-swarm",
        "slot-views-agree",
    ),
    (Bug::HaDataDeletedOnSuspend, "nemesis-ha", "restored-state"),
    (
        Bug::OutdatedOfferAnswerFreesSlots,
        "nemesis-shapes",
        "offer-answer-decides-its-offer",
    ),
];

/// and the high-availability bugs, each with its negative scenario.
pub const HA_BUGS: &[(Bug, &str, &str)] = &[
    (
        Bug::NoFencingCheck,
        "negative-ha-no-fencing-check",
        "leader-fencing",
    ),
    (
        Bug::CheckpointIdCounterNotPersisted,
        "negative-ha-checkpoint-id-counter-not-persisted",
        "checkpoint-ids",
    ),
    (
        Bug::RecoverFromStaleCheckpointPointer,
        "negative-ha-recover-from-stale-checkpoint-pointer",
        "restored-state",
    ),
    (
        Bug::DiscardOnUnknownPointerWrite,
        "negative-ha-discard-on-unknown-pointer-write",
        "referenced-state-kept",
    ),
    (
        Bug::TmIgnoresLeaderChange,
        "negative-ha-tm-ignores-leader-change",
        "leader-fencing",
    ),
    (
        Bug::CounterStuckAfterReconnect,
        "negative-ha-counter-stuck-after-reconnect",
        "checkpoint-liveness",
    ),
];

/// A trace writer that keeps what it is given, for tests that read the trace back.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The observation of a trace line in its Debug spelling, if the line has one: the trace stores
/// observations as serde JSON, and every one must read back into the model's `Obs`.
pub fn obs_text(line: &serde_json::Value) -> Option<String> {
    let json = line.get("obs")?.clone();
    let obs: model::protocol::obs::Obs =
        serde_json::from_value(json).expect("a traced observation reads back");
    Some(format!("{obs:?}"))
}
