//! Flink's two lifecycle state machines as plain values: [`ExecutionState`] (one per execution
//! attempt, kept by the JobMaster's `Execution`) and [`JobStatus`] (one per job, kept by the
//! ExecutionGraph / scheduler); and the SlotManager's view of a slot, [`SlotState`].
//!
//! This module owns the names Flink prints for each state, which states are terminal, and the
//! legal-transition tables of docs/flink-runtime.md §4.1 and §4.3. It does not own who drives a transition
//! or when: the JobMaster asserts `can_transition_to` before every state change it makes, and the
//! oracles check the same tables against the trace, so an illegal transition is caught on both
//! sides. A self-transition is never a transition here: Flink's compare-and-set guard treats
//! "already in that state" as a no-op, and the model should not trace no-ops as changes.

use crate::protocol::ids::{AllocationId, JobId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of one execution attempt of a subtask, as the JobMaster sees it
/// (`org.apache.flink.runtime.execution.ExecutionState`).
///
/// The variants are declared in lifecycle order rather than Flink's enum order (Flink appends
/// INITIALIZING and RECONCILING at the end for wire compatibility); the derived `Ord` is only
/// used for deterministic collections, never for protocol decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExecutionState {
    Created,
    Scheduled,
    Deploying,
    Initializing,
    Running,
    Finished,
    Canceling,
    Canceled,
    Failed,
    Reconciling,
}

impl ExecutionState {
    /// Every state, in declaration order.
    pub const ALL: [ExecutionState; 10] = [
        ExecutionState::Created,
        ExecutionState::Scheduled,
        ExecutionState::Deploying,
        ExecutionState::Initializing,
        ExecutionState::Running,
        ExecutionState::Finished,
        ExecutionState::Canceling,
        ExecutionState::Canceled,
        ExecutionState::Failed,
        ExecutionState::Reconciling,
    ];

    /// The name Flink prints (the Java enum constant).
    pub fn name(self) -> &'static str {
        match self {
            ExecutionState::Created => "CREATED",
            ExecutionState::Scheduled => "SCHEDULED",
            ExecutionState::Deploying => "DEPLOYING",
            ExecutionState::Initializing => "INITIALIZING",
            ExecutionState::Running => "RUNNING",
            ExecutionState::Finished => "FINISHED",
            ExecutionState::Canceling => "CANCELING",
            ExecutionState::Canceled => "CANCELED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::Reconciling => "RECONCILING",
        }
    }

    /// FINISHED, CANCELED and FAILED: an attempt in one of these never changes state again; a
    /// restart creates a new attempt instead.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionState::Finished | ExecutionState::Canceled | ExecutionState::Failed
        )
    }

    /// Whether the JobMaster may move an attempt from `self` to `to` (docs/flink-runtime.md §4.1).
    pub fn can_transition_to(self, to: ExecutionState) -> bool {
        use ExecutionState::*;
        // Flink's `transitionState` throws when leaving a terminal state; late reports for a
        // terminal attempt are dropped before they get here.
        if self.is_terminal() {
            return false;
        }
        if self == to {
            return false;
        }
        // Any live attempt can fail: a TE report, a failed or timed-out deploy, a lost slot or
        // TaskManager all end in FAILED regardless of how far the attempt got.
        if to == Failed {
            return true;
        }
        match (self, to) {
            (Created, Scheduled) => true,
            (Scheduled, Deploying) => true,
            (Deploying, Initializing) => true,
            (Initializing, Running) => true,
            // A TE may report FINISHED for a task that finished before its RUNNING report was
            // processed (bounded sources finish fast), so FINISHED is legal from every deployed
            // state.
            (Deploying | Initializing | Running, Finished) => true,
            // Cancelling an attempt that was never deployed needs no RPC: `cancelAtomically`
            // passes through CANCELING and lands in CANCELED at once, so both steps are legal.
            (Created | Scheduled, Canceling | Canceled) => true,
            // A deployed attempt needs a `cancelTask` RPC and waits for the TE's answer.
            (Deploying | Initializing | Running, Canceling) => true,
            (Canceling, Canceled) => true,
            // Reserved for JM-failover reconciliation; defined but unused by Flink's runtime.
            (Created, Reconciling) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status of a job (`org.apache.flink.api.common.JobStatus`), in Flink's enum order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
}

impl JobStatus {
    /// Every status, in declaration order.
    pub const ALL: [JobStatus; 11] = [
        JobStatus::Initializing,
        JobStatus::Created,
        JobStatus::Running,
        JobStatus::Failing,
        JobStatus::Failed,
        JobStatus::Cancelling,
        JobStatus::Canceled,
        JobStatus::Finished,
        JobStatus::Restarting,
        JobStatus::Suspended,
        JobStatus::Reconciling,
    ];

    /// The name Flink prints (the Java enum constant).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Initializing => "INITIALIZING",
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Suspended => "SUSPENDED",
            JobStatus::Reconciling => "RECONCILING",
        }
    }

    /// The status whose [`name`](JobStatus::name) is exactly `name` (Flink's upper-case
    /// spelling, as scenario files write it), or `None`.
    pub fn from_name(name: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.name() == name)
    }

    /// FINISHED, CANCELED and FAILED: the job is over for the whole cluster, its HA data is
    /// removed and no JobManager will ever recover it.
    pub fn is_globally_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        )
    }

    /// The globally terminal statuses plus SUSPENDED. SUSPENDED ends this JobMaster's execution
    /// graph but keeps the HA data, so another leader may recover the job.
    pub fn is_terminal(self) -> bool {
        self.is_globally_terminal() || self == JobStatus::Suspended
    }

    /// Whether the execution graph may move from `self` to `to` (docs/flink-runtime.md §4.3).
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        // The ExecutionGraph's CAS refuses to leave any terminal status, SUSPENDED included:
        // recovery after suspension builds a new graph instead of reviving the old one.
        if self.is_terminal() {
            return false;
        }
        if self == to {
            return false;
        }
        // Losing leadership or stopping the JobMaster suspends from wherever the job is.
        if to == Suspended {
            return true;
        }
        // `failJob` returns early when already FAILING; from any other live status it moves
        // to FAILING (restart refused or the error is unrecoverable).
        if to == Failing {
            return true;
        }
        match (self, to) {
            (Initializing, Created) => true,
            (Created, Running) => true,
            (Running, Restarting) => true,
            (Restarting, Running) => true,
            (Running, Finished) => true,
            (Running | Created | Restarting | Failing, Cancelling) => true,
            (Cancelling, Canceled) => true,
            // Cancellation itself can fail.
            (Cancelling, Failed) => true,
            (Failing, Failed) => true,
            // A user cancel that arrived while failing wins the final status.
            (Failing, Canceled) => true,
            (Created, Reconciling) => true,
            (Reconciling, Running) => true,
            _ => false,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ResourceManager's SlotManager's view of one registered slot (Flink's `SlotState` of a
/// `TaskManagerSlotInformation`: FREE, PENDING, ALLOCATED), with the allocation it is pending
/// for or allocated to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SlotState {
    Free,
    /// `requestSlot` sent; waiting for the TaskExecutor's answer.
    Pending {
        allocation_id: AllocationId,
        job_id: JobId,
    },
    Allocated {
        allocation_id: AllocationId,
        job_id: JobId,
    },
}

impl SlotState {
    /// The job the slot is pending for or allocated to.
    pub fn job(self) -> Option<JobId> {
        match self {
            SlotState::Free => None,
            SlotState::Pending { job_id, .. } | SlotState::Allocated { job_id, .. } => Some(job_id),
        }
    }

    /// The allocation the slot is pending for or allocated to.
    pub fn allocation(self) -> Option<AllocationId> {
        match self {
            SlotState::Free => None,
            SlotState::Pending { allocation_id, .. }
            | SlotState::Allocated { allocation_id, .. } => Some(allocation_id),
        }
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotState::Free => f.write_str("FREE"),
            SlotState::Pending {
                allocation_id,
                job_id,
            } => {
                write!(
                    f,
                    "PENDING for allocation {allocation_id:x} (job {job_id:x})"
                )
            }
            SlotState::Allocated {
                allocation_id,
                job_id,
            } => {
                write!(
                    f,
                    "ALLOCATED to allocation {allocation_id:x} (job {job_id:x})"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every legal ExecutionState transition; everything not listed must be refused.
    const EXECUTION_LEGAL: &[(ExecutionState, ExecutionState)] = {
        use ExecutionState::*;
        &[
            (Created, Scheduled),
            (Scheduled, Deploying),
            (Deploying, Initializing),
            (Initializing, Running),
            (Deploying, Finished),
            (Initializing, Finished),
            (Running, Finished),
            (Created, Canceled),
            (Scheduled, Canceled),
            (Created, Canceling),
            (Scheduled, Canceling),
            (Deploying, Canceling),
            (Initializing, Canceling),
            (Running, Canceling),
            (Canceling, Canceled),
            (Created, Failed),
            (Scheduled, Failed),
            (Deploying, Failed),
            (Initializing, Failed),
            (Running, Failed),
            (Canceling, Failed),
            (Reconciling, Failed),
            (Created, Reconciling),
        ]
    };

    /// Illegal ExecutionState transitions worth naming (the exhaustive check covers the rest).
    const EXECUTION_ILLEGAL: &[(ExecutionState, ExecutionState)] = {
        use ExecutionState::*;
        &[
            (Created, Deploying),
            (Created, Running),
            (Created, Finished),
            (Scheduled, Running),
            (Scheduled, Finished),
            (Deploying, Running),
            (Running, Initializing),
            (Running, Deploying),
            (Canceling, Finished),
            (Canceling, Running),
            (Finished, Failed),
            (Finished, Canceled),
            (Canceled, Failed),
            (Canceled, Created),
            (Failed, Created),
            (Failed, Canceled),
            (Running, Reconciling),
            (Reconciling, Running),
            (Running, Running),
            (Failed, Failed),
        ]
    };

    const JOB_LEGAL: &[(JobStatus, JobStatus)] = {
        use JobStatus::*;
        &[
            (Initializing, Created),
            (Created, Running),
            (Running, Restarting),
            (Restarting, Running),
            (Running, Finished),
            (Running, Cancelling),
            (Created, Cancelling),
            (Restarting, Cancelling),
            (Failing, Cancelling),
            (Cancelling, Canceled),
            (Cancelling, Failed),
            (Initializing, Failing),
            (Created, Failing),
            (Running, Failing),
            (Cancelling, Failing),
            (Restarting, Failing),
            (Reconciling, Failing),
            (Failing, Failed),
            (Failing, Canceled),
            (Initializing, Suspended),
            (Created, Suspended),
            (Running, Suspended),
            (Failing, Suspended),
            (Cancelling, Suspended),
            (Restarting, Suspended),
            (Reconciling, Suspended),
            (Created, Reconciling),
            (Reconciling, Running),
        ]
    };

    const JOB_ILLEGAL: &[(JobStatus, JobStatus)] = {
        use JobStatus::*;
        &[
            (Initializing, Running),
            (Created, Finished),
            (Created, Restarting),
            (Restarting, Finished),
            (Running, Failed),
            (Running, Canceled),
            (Failing, Running),
            (Failing, Restarting),
            (Failing, Failing),
            (Cancelling, Running),
            (Finished, Running),
            (Finished, Suspended),
            (Failed, Restarting),
            (Canceled, Running),
            (Suspended, Running),
            (Suspended, Failing),
            (Suspended, Suspended),
            (Running, Reconciling),
            (Reconciling, Finished),
            (Running, Running),
        ]
    };

    #[test]
    fn execution_state_transition_table() {
        let legal: BTreeSet<_> = EXECUTION_LEGAL.iter().copied().collect();
        assert_eq!(legal.len(), EXECUTION_LEGAL.len(), "duplicate row");
        for (from, to) in EXECUTION_ILLEGAL {
            assert!(
                !legal.contains(&(*from, *to)),
                "{from} -> {to} listed both ways"
            );
            assert!(
                !from.can_transition_to(*to),
                "{from} -> {to} must be illegal"
            );
        }
        // Exhaustive: the table above is exactly the legal set.
        for from in ExecutionState::ALL {
            for to in ExecutionState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn execution_state_terminal_states_are_never_left() {
        let terminal: Vec<_> = ExecutionState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                ExecutionState::Finished,
                ExecutionState::Canceled,
                ExecutionState::Failed
            ]
        );
        for from in terminal {
            for to in ExecutionState::ALL {
                assert!(!from.can_transition_to(to), "{from} -> {to}");
            }
        }
        // Every non-terminal state can reach a terminal one (no dead end).
        for from in ExecutionState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(from.can_transition_to(ExecutionState::Failed), "{from}");
        }
    }

    #[test]
    fn execution_state_names() {
        let table = [
            (ExecutionState::Created, "CREATED"),
            (ExecutionState::Scheduled, "SCHEDULED"),
            (ExecutionState::Deploying, "DEPLOYING"),
            (ExecutionState::Initializing, "INITIALIZING"),
            (ExecutionState::Running, "RUNNING"),
            (ExecutionState::Finished, "FINISHED"),
            (ExecutionState::Canceling, "CANCELING"),
            (ExecutionState::Canceled, "CANCELED"),
            (ExecutionState::Failed, "FAILED"),
            (ExecutionState::Reconciling, "RECONCILING"),
        ];
        assert_eq!(table.len(), ExecutionState::ALL.len());
        for (state, name) in table {
            assert_eq!(state.name(), name);
            assert_eq!(state.to_string(), name);
        }
    }

    #[test]
    fn job_status_transition_table() {
        let legal: BTreeSet<_> = JOB_LEGAL.iter().copied().collect();
        assert_eq!(legal.len(), JOB_LEGAL.len(), "duplicate row");
        for (from, to) in JOB_ILLEGAL {
            assert!(
                !legal.contains(&(*from, *to)),
                "{from} -> {to} listed both ways"
            );
            assert!(
                !from.can_transition_to(*to),
                "{from} -> {to} must be illegal"
            );
        }
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn job_status_terminality() {
        // (status, globally terminal, terminal)
        let table = [
            (JobStatus::Initializing, false, false),
            (JobStatus::Created, false, false),
            (JobStatus::Running, false, false),
            (JobStatus::Failing, false, false),
            (JobStatus::Failed, true, true),
            (JobStatus::Cancelling, false, false),
            (JobStatus::Canceled, true, true),
            (JobStatus::Finished, true, true),
            (JobStatus::Restarting, false, false),
            (JobStatus::Suspended, false, true),
            (JobStatus::Reconciling, false, false),
        ];
        assert_eq!(table.len(), JobStatus::ALL.len());
        for (status, globally, terminal) in table {
            assert_eq!(status.is_globally_terminal(), globally, "{status}");
            assert_eq!(status.is_terminal(), terminal, "{status}");
            if status.is_terminal() {
                for to in JobStatus::ALL {
                    assert!(!status.can_transition_to(to), "{status} -> {to}");
                }
            } else {
                assert!(status.can_transition_to(JobStatus::Suspended), "{status}");
            }
        }
    }

    #[test]
    fn job_status_names_round_trip() {
        let table = [
            (JobStatus::Initializing, "INITIALIZING"),
            (JobStatus::Created, "CREATED"),
            (JobStatus::Running, "RUNNING"),
            (JobStatus::Failing, "FAILING"),
            (JobStatus::Failed, "FAILED"),
            (JobStatus::Cancelling, "CANCELLING"),
            (JobStatus::Canceled, "CANCELED"),
            (JobStatus::Finished, "FINISHED"),
            (JobStatus::Restarting, "RESTARTING"),
            (JobStatus::Suspended, "SUSPENDED"),
            (JobStatus::Reconciling, "RECONCILING"),
        ];
        assert_eq!(table.len(), JobStatus::ALL.len());
        for (status, name) in table {
            assert_eq!(status.name(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(JobStatus::from_name(name), Some(status));
        }
        for bad in ["", "finished", "Finished", "CANCELING", "RUNNING ", "DONE"] {
            assert_eq!(JobStatus::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn job_status_happy_paths_are_legal_walks() {
        use JobStatus::*;
        let walks: &[&[JobStatus]] = &[
            &[Initializing, Created, Running, Finished],
            &[
                Initializing,
                Created,
                Running,
                Restarting,
                Running,
                Finished,
            ],
            &[Created, Running, Failing, Failed],
            &[Created, Running, Cancelling, Canceled],
            &[Created, Running, Failing, Cancelling, Canceled],
            &[Created, Running, Restarting, Suspended],
            &[Created, Reconciling, Running, Finished],
        ];
        for walk in walks {
            for pair in walk.windows(2) {
                assert!(pair[0].can_transition_to(pair[1]), "{walk:?}: {pair:?}");
            }
        }
    }
}
