//! `summary.json`: the machine-readable verdict and figures of one run (docs/scenarios.md). Field
//! names are a contract; add fields, never rename them. Fields added after the first release
//! default when absent, so older reports still read.
//!
//! [`CheckpointFigures`] collects the checkpointing figures from the trace; the run's recorder
//! feeds it every event.

use crate::scenario::Scenario;
use model::checking::bugs::Bug;
use model::checking::oracle::Violation;
use model::protocol::obs::Obs;
use model::protocol::Flink;
use serde::{Deserialize, Serialize};
use sim::{Event, EventKind};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    /// `"pass"` or `"fail"`.
    pub result: Verdict,
    pub violations: Vec<ViolationOut>,
    pub trace_hash: String,
    pub events: u64,
    pub virtual_ms: u64,
    /// The final JobStatus; `null` when the scenario has no job.
    pub job_status: Option<String>,
    /// Restarts the JobMaster scheduled (one per failover).
    pub restarts: u32,
    /// Every JobStatus the job passed through, in virtual (true) time.
    pub job_status_history: Vec<StatusAt>,
    /// Checkpoints the CheckpointCoordinator completed.
    pub checkpoints_completed: u64,
    /// Pending checkpoints the CheckpointCoordinator aborted (expired, declined, …).
    #[serde(default)]
    pub checkpoints_aborted: u64,
    /// Records that became visible output: committed transactions plus at-least-once writes.
    pub records_committed: u64,
    /// Every restore a failover decided, in virtual (true) time.
    #[serde(default)]
    pub restores: Vec<RestoreAt>,
    pub wall_ms: u64,
    /// The planted bug switched on, if any.
    pub bug: Option<String>,
    /// `[expect] violation` of a negative scenario.
    pub expected_violation: Option<String>,
    pub stop_reason: String,
    pub taskmanagers_lost: Vec<Loss>,
    pub faults: Vec<FaultOut>,
    /// Every knob drawn from the seed.
    pub knobs: Knobs,
    /// How often each coverage probe's situation arose (`flinksim list probes`), every probe
    /// listed, by name.
    #[serde(default)]
    pub probes: std::collections::BTreeMap<String, u64>,
}

/// A run's verdict, serialized as `"pass"` or `"fail"`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No invariant was violated.
    Pass,
    /// At least one invariant was violated (or the model panicked).
    Fail,
}

impl Verdict {
    /// The verdict of a run with these violations.
    pub fn of<T>(violations: &[T]) -> Verdict {
        if violations.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// As `summary.json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusAt {
    pub status: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RestoreAt {
    pub at_ms: u64,
    /// The completed checkpoint restored from; `null`: none existed, the job starts over.
    pub checkpoint_id: Option<u64>,
    /// Execution vertices restored.
    pub vertices: u32,
    /// A global failover (every vertex) rather than a region.
    pub global: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViolationOut {
    pub invariant: String,
    pub at_ms: u64,
    pub node: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Loss {
    /// "resourcemanager", "jobmaster" or the TaskManager that lost its ResourceManager.
    pub observer: String,
    pub taskmanager: String,
    /// What was lost: a TaskManager name or "resourcemanager".
    pub target: String,
    pub at_ms: u64,
    /// heartbeat-timeout, unreachable, disconnect or connection-lost.
    pub cause: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultOut {
    pub at_ms: u64,
    pub fault: String,
    pub node: Option<String>,
    /// For a fault that names a role: the fault as written (`kill = "leader"`); `node` is the
    /// node it resolved to when it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a fault that names a role: the fault it became when it fired
    /// (`partition = [["jobmanager-2"], ["taskmanager-1"]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// Why a fault that names a role did nothing (the role stood for no node then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Knobs {
    pub latency: String,
    pub latency_max_ms: f64,
    pub clocks: Vec<NodeClock>,
    /// Swarm knobs the scenario drew for this seed (e.g. `network.loss`, the kept `nemesis`
    /// entries); empty when it gives no ranges.
    #[serde(default)]
    pub drawn: Vec<DrawnKnob>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DrawnKnob {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeClock {
    pub node: String,
    pub drift_ppm: i64,
    pub offset_ms: f64,
}

impl Summary {
    pub fn passed(&self) -> bool {
        self.result == Verdict::Pass
    }

    /// Whether the run ended as the scenario expects: clean, or (negative scenario) failing
    /// with the declared invariant.
    pub fn as_expected(&self) -> bool {
        match &self.expected_violation {
            None => self.passed(),
            Some(inv) => self.violations.iter().any(|v| &v.invariant == inv),
        }
    }

    pub(crate) fn panicked(
        scenario: &Scenario,
        seed: u64,
        bug: Option<Bug>,
        v: &Violation,
    ) -> Summary {
        Summary {
            scenario: scenario.name.clone(),
            seed,
            result: Verdict::Fail,
            violations: vec![ViolationOut {
                invariant: v.invariant.to_string(),
                at_ms: 0,
                node: None,
                message: v.message.clone(),
            }],
            trace_hash: String::new(),
            events: 0,
            virtual_ms: 0,
            job_status: None,
            restarts: 0,
            job_status_history: Vec::new(),
            checkpoints_completed: 0,
            checkpoints_aborted: 0,
            records_committed: 0,
            restores: Vec::new(),
            wall_ms: 0,
            bug: bug.map(|b| b.name().to_string()),
            expected_violation: scenario.expect.violation.clone(),
            stop_reason: "Panic".to_string(),
            taskmanagers_lost: Vec::new(),
            faults: Vec::new(),
            knobs: Knobs::default(),
            probes: Default::default(),
        }
    }
}

/// The checkpointing figures of a run, collected from its observations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointFigures {
    pub checkpoints_completed: u64,
    pub checkpoints_aborted: u64,
    pub records_committed: u64,
    pub restores: Vec<RestoreAt>,
}

impl CheckpointFigures {
    /// Takes one trace event into account; every event of the run must pass through here.
    pub fn observe(&mut self, ev: &Event<'_, Flink>) {
        let EventKind::Obs { obs, .. } = &ev.kind else {
            return;
        };
        match obs {
            Obs::CheckpointCompleted { .. } => self.checkpoints_completed += 1,
            Obs::CheckpointAborted { .. } => self.checkpoints_aborted += 1,
            Obs::TransactionCommitted { records, .. } | Obs::RecordsWritten { records, .. } => {
                self.records_committed += records.len() as u64
            }
            Obs::RestoreDecided {
                checkpoint_id,
                vertices,
                global,
                ..
            } => self.restores.push(RestoreAt {
                at_ms: ev.time.as_millis(),
                checkpoint_id: *checkpoint_id,
                vertices: *vertices,
                global: *global,
            }),
            _ => {}
        }
    }
}
