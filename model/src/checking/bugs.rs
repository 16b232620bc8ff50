//! Planted bugs: named switches that make the model wrong the way real systems go wrong.
//!
//! Off by default; `--bug NAME` turns one on. Every bug must be caught by some oracle; a bug no
//! oracle catches means an oracle or a fault is missing.

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The heartbeat monitor is not reset when a heartbeat arrives, so a healthy target is
    /// declared lost one timeout after monitoring began (cf. the pre-FLINK-12863 races).
    HeartbeatTimeoutNotReset,
    /// The heartbeat timeout fires but nobody acts on it: a dead TaskManager is never declared
    /// lost by timeout (cf. FLINK-23216-style missed failure detection).
    HeartbeatTimeoutIgnored,
    /// A registration attempt that times out is not retried (a broken `RetryingRegistration`):
    /// a TaskManager whose attempt vanished in a partition never registers again.
    RegistrationNotRetried,
    /// A slot already in use is handed out again without an occupancy check: the JobMaster's
    /// slot pool gives a busy slot to a second slot-sharing group, and a TaskExecutor gives an
    /// occupied slot to a second allocation (`SlotOccupiedException` missing).
    SlotDoubleAllocation,
    /// The JobMaster applies `updateTaskExecutionState` of an old attempt to the current one
    /// (the attempt-number check of docs/flink-runtime.md §4.2 missing).
    StaleAttemptUpdateAccepted,
    /// The restart strategy's `canRestart` is ignored: the job restarts forever.
    RestartBudgetNotEnforced,
    /// A lost TaskManager's slots are released without failing the executions in them: the
    /// JobMaster believes they still run.
    TmLossNotFailingTasks,
    /// The two-phase-commit sink commits its transaction when it pre-commits on the barrier,
    /// before the checkpoint is complete (docs/flink-runtime.md §8.1 pitfall).
    SinkCommitOnBarrier,
    /// In EXACTLY_ONCE mode a task does not block the channels that delivered a barrier: records
    /// after the barrier enter the snapshot (aligned checkpoints degrade to at-least-once).
    NoBarrierAlignment,
    /// A restore uses the oldest retained completed checkpoint instead of the latest
    /// (cf. FLINK-20290, FLINK-10354).
    RestoreOlderCheckpoint,
    /// A source's snapshot omits its read offsets: restored, it reads its partitions from the
    /// start.
    OffsetsNotInSnapshot,
    /// A task acknowledges a checkpoint before its state write to checkpoint storage has
    /// succeeded.
    AckBeforeSnapshotDurable,
    /// The coordinator completes a checkpoint when all but one task have acknowledged.
    CompleteWithMissingAck,
    /// A restored two-phase-commit writer does not abort its subtask's lingering transactions
    /// (cf. FLINK-23854).
    NoAbortOfLingeringTransactions,
    /// TaskExecutors skip the fencing checks: `requestSlot` is taken from any ResourceManager
    /// and `submitTask` from any JobMaster of the job, so a deposed leader's calls take effect.
    NoFencingCheck,
    /// A new JobMaster leader counts checkpoint ids from 1 in memory instead of continuing the
    /// CheckpointIDCounter in the `ha` store.
    CheckpointIdCounterNotPersisted,
    /// The CompletedCheckpointStore pointer is written lazily, one checkpoint behind the
    /// notifications: a new leader recovers from a stale pointer.
    RecoverFromStaleCheckpointPointer,
    /// A TaskExecutor ignores the job leader changes that leader retrieval reports and keeps
    /// its connection to the old JobMaster (cf. FLINK-18677).
    TmIgnoresLeaderChange,
    /// A restart creates and deploys the new attempts as soon as the restart backoff passed,
    /// without waiting for the cancelled old attempts to be CANCELED (the JobMaster then runs
    /// two attempts of a subtask; cf. the concurrent-restart races behind FLINK-7216 / FLINK-9788).
    RestartBeforeCancellation,
    /// `notifyCheckpointComplete(n)` commits only the transaction pre-committed for checkpoint
    /// n: an earlier pending one (its notification lost, or its checkpoint expired and n carried
    /// it) stays pre-committed.
    CommitOnlyNotifiedCheckpoint,
    /// The ResourceManager reconciles each TaskExecutor heartbeat with the slot report of that
    /// TaskExecutor's previous heartbeat (a stale report, one heartbeat behind): slots freed
    /// since are believed allocated again.
    RmTrustsStaleSlotReport,
    /// A checkpoint whose pointer write has an unknown outcome when the JobMaster stops
    /// (leadership lost with the write in flight, answer lost) is taken for failed: it is
    /// aborted and its state discarded, although the `ha` store may hold the pointer and a new
    /// leader restore it (FLINK-22494, before `PossibleInconsistentStateException`).
    DiscardOnUnknownPointerWrite,
    /// A TaskExecutor that loses its JobMaster (heartbeat timeout, unreachable, leader change)
    /// closes the connection and parks the job's slots but does not fail the job's tasks: they
    /// go on reading and writing for a JobMaster that has already restarted them elsewhere
    /// (Flink's `disconnectJobManagerConnection` fails them first).
    TasksOutliveJobMasterDisconnect,
    /// A cancelled or failed source task's reader is not closed: it keeps fetching from the
    /// source log after the task reported CANCELED or FAILED (a source thread that outlives its
    /// task, as a legacy source that ignores cancellation does).
    ReaderOutlivesTask,
    /// The ZooKeeper checkpoint id counter remembers a SUSPENDED connection and never forgets
    /// it on RECONNECTED: every later `getAndIncrement` fails, so a leader that kept its
    /// leadership through the suspension (`tolerate-suspended-connections`) never triggers a
    /// checkpoint again (FLINK-14091).
    CounterStuckAfterReconnect,
    /// `submitTask` needs an ACTIVE slot: a slot still ALLOCATED because the JobMaster's
    /// answer to its offer has not arrived yet refuses the task (FLINK-5836, before
    /// `tryMarkSlotActive`).
    SubmitNeedsActiveSlot,
    /// The ResourceManager registers a TaskExecutor when any connection back to it completes,
    /// not only the one of its latest `registerTaskExecutor` call: an abandoned attempt whose
    /// connection completes last replaces the registration the TaskExecutor holds (Flink
    /// declines it since FLINK-12260: "Decline outdated task executor registration").
    OutdatedConnectionRegisters,
    /// The ResourceManager registers a TaskExecutor's slots with its registration instead of on
    /// the TaskExecutor's first slot report, so it may request a slot before the TaskExecutor
    /// has processed the registration's answer (FLINK-9427, before `sendSlotReport`).
    SlotsBeforeRegistrationCompletes,
    /// A JobManager process that loses leadership treats its SUSPENDED jobs as finished and
    /// cleans their HA data up: it deletes every checkpoint pointer of the job's
    /// CompletedCheckpointStore (unguarded, as a cluster shutting down does), so the next
    /// leader recovers the job without its latest checkpoint (FLINK-25486: state lost when the
    /// ZooKeeper leader changed in application mode).
    HaDataDeletedOnSuspend,
    /// A TaskExecutor takes any answer to `offerSlots` for the answer to its latest offer: an
    /// older offer's answer, which could not accept the slots offered since, frees them as
    /// rejected while the latest offer (accepted by the JobMaster) is still on its way
    /// (FLINK-21859, before offer ids).
    OutdatedOfferAnswerFreesSlots,
}

impl Bug {
    pub const ALL: &'static [Bug] = &[
        Bug::HeartbeatTimeoutNotReset,
        Bug::HeartbeatTimeoutIgnored,
        Bug::RegistrationNotRetried,
        Bug::SlotDoubleAllocation,
        Bug::StaleAttemptUpdateAccepted,
        Bug::RestartBudgetNotEnforced,
        Bug::TmLossNotFailingTasks,
        Bug::SinkCommitOnBarrier,
        Bug::NoBarrierAlignment,
        Bug::RestoreOlderCheckpoint,
        Bug::OffsetsNotInSnapshot,
        Bug::AckBeforeSnapshotDurable,
        Bug::CompleteWithMissingAck,
        Bug::NoAbortOfLingeringTransactions,
        Bug::NoFencingCheck,
        Bug::CheckpointIdCounterNotPersisted,
        Bug::RecoverFromStaleCheckpointPointer,
        Bug::TmIgnoresLeaderChange,
        Bug::RestartBeforeCancellation,
        Bug::CommitOnlyNotifiedCheckpoint,
        Bug::RmTrustsStaleSlotReport,
        Bug::DiscardOnUnknownPointerWrite,
        Bug::TasksOutliveJobMasterDisconnect,
        Bug::ReaderOutlivesTask,
        Bug::CounterStuckAfterReconnect,
        Bug::SubmitNeedsActiveSlot,
        Bug::OutdatedConnectionRegisters,
        Bug::SlotsBeforeRegistrationCompletes,
        Bug::HaDataDeletedOnSuspend,
        Bug::OutdatedOfferAnswerFreesSlots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::HeartbeatTimeoutNotReset => "heartbeat-timeout-not-reset",
            Bug::HeartbeatTimeoutIgnored => "heartbeat-timeout-ignored",
            Bug::RegistrationNotRetried => "registration-not-retried",
            Bug::SlotDoubleAllocation => "slot-double-allocation",
            Bug::StaleAttemptUpdateAccepted => "stale-attempt-update-accepted",
            Bug::RestartBudgetNotEnforced => "restart-budget-not-enforced",
            Bug::TmLossNotFailingTasks => "tm-loss-not-failing-tasks",
            Bug::SinkCommitOnBarrier => "sink-commit-on-barrier",
            Bug::NoBarrierAlignment => "no-barrier-alignment",
            Bug::RestoreOlderCheckpoint => "restore-older-checkpoint",
            Bug::OffsetsNotInSnapshot => "offsets-not-in-snapshot",
            Bug::AckBeforeSnapshotDurable => "ack-before-snapshot-durable",
            Bug::CompleteWithMissingAck => "complete-with-missing-ack",
            Bug::NoAbortOfLingeringTransactions => "no-abort-of-lingering-transactions",
            Bug::NoFencingCheck => "no-fencing-check",
            Bug::CheckpointIdCounterNotPersisted => "checkpoint-id-counter-not-persisted",
            Bug::RecoverFromStaleCheckpointPointer => "recover-from-stale-checkpoint-pointer",
            Bug::TmIgnoresLeaderChange => "tm-ignores-leader-change",
            Bug::RestartBeforeCancellation => "restart-before-cancellation",
            Bug::CommitOnlyNotifiedCheckpoint => "commit-only-notified-checkpoint",
            Bug::RmTrustsStaleSlotReport => "rm-trusts-stale-slot-report",
            Bug::DiscardOnUnknownPointerWrite => "discard-on-unknown-pointer-write",
            Bug::TasksOutliveJobMasterDisconnect => "tasks-outlive-jobmaster-disconnect",
            Bug::ReaderOutlivesTask => "reader-outlives-task",
            Bug::CounterStuckAfterReconnect => "counter-stuck-after-reconnect",
            Bug::SubmitNeedsActiveSlot => "submit-needs-active-slot",
            Bug::OutdatedConnectionRegisters => "outdated-connection-registers",
            Bug::SlotsBeforeRegistrationCompletes => "slots-before-registration-completes",
            Bug::HaDataDeletedOnSuspend => "ha-data-deleted-on-suspend",
            Bug::OutdatedOfferAnswerFreesSlots => "outdated-offer-answer-frees-slots",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Bug::HeartbeatTimeoutNotReset => {
                "heartbeat monitors are not reset on receipt: healthy targets are declared lost one timeout after monitoring starts"
            }
            Bug::HeartbeatTimeoutIgnored => {
                "a fired heartbeat timeout is ignored: silent targets are never declared lost by timeout"
            }
            Bug::RegistrationNotRetried => {
                "a timed-out registration attempt is never retried: a TaskManager cut off during registration never re-registers"
            }
            Bug::SlotDoubleAllocation => {
                "a busy slot is handed out again without an occupancy check (JobMaster slot pool: to a second sharing group; TaskExecutor: to a second allocation)"
            }
            Bug::StaleAttemptUpdateAccepted => {
                "the JobMaster applies task state updates of old execution attempts to the current attempt (FLINK-7216/9788 class)"
            }
            Bug::RestartBudgetNotEnforced => {
                "the restart strategy's limit is ignored: a job that should fail keeps restarting"
            }
            Bug::TmLossNotFailingTasks => {
                "a lost TaskManager's slots are released without failing their executions: the job waits forever"
            }
            Bug::SinkCommitOnBarrier => {
                "the two-phase-commit sink commits on the barrier (pre-commit) instead of on notifyCheckpointComplete"
            }
            Bug::NoBarrierAlignment => {
                "EXACTLY_ONCE tasks do not block channels that delivered a barrier: post-barrier records enter the snapshot"
            }
            Bug::RestoreOlderCheckpoint => {
                "a failover restores the oldest retained checkpoint instead of the latest (FLINK-20290 / FLINK-10354 class)"
            }
            Bug::OffsetsNotInSnapshot => {
                "source snapshots omit read offsets: a restored source re-reads its partitions from the start"
            }
            Bug::AckBeforeSnapshotDurable => {
                "tasks acknowledge a checkpoint before their state is durable in checkpoint storage"
            }
            Bug::CompleteWithMissingAck => {
                "the CheckpointCoordinator completes a checkpoint when all but one task acknowledged"
            }
            Bug::NoAbortOfLingeringTransactions => {
                "a restored two-phase-commit writer leaves its subtask's lingering transactions open (FLINK-23854 class)"
            }
            Bug::NoFencingCheck => {
                "TaskExecutors skip fencing-token checks: a deposed JobMaster's or ResourceManager's calls are accepted"
            }
            Bug::CheckpointIdCounterNotPersisted => {
                "a new JobMaster leader restarts checkpoint ids at 1 instead of continuing the HA CheckpointIDCounter"
            }
            Bug::RecoverFromStaleCheckpointPointer => {
                "the HA checkpoint pointer lags one checkpoint behind the notifications: a new leader recovers from a stale checkpoint"
            }
            Bug::TmIgnoresLeaderChange => {
                "TaskExecutors ignore job leader changes and stay connected to the old JobMaster (FLINK-18677 class)"
            }
            Bug::RestartBeforeCancellation => {
                "a restart deploys new attempts once the backoff passed, while the old attempts are still CANCELING (FLINK-7216 / FLINK-9788 class)"
            }
            Bug::CommitOnlyNotifiedCheckpoint => {
                "notifyCheckpointComplete(n) commits only checkpoint n's transaction: earlier pending ones (lost notification, expired checkpoint) stay pre-committed (notifications are not guaranteed, cf. FLINK-10377)"
            }
            Bug::RmTrustsStaleSlotReport => {
                "the SlotManager reconciles each TaskExecutor heartbeat with the previous heartbeat's slot report: slots freed since are believed allocated again (a stale report trusted; cf. FLINK-21874's outdated allocation confirmations)"
            }
            Bug::DiscardOnUnknownPointerWrite => {
                "a checkpoint whose pointer write has an unknown outcome when leadership is lost counts as failed: it is aborted and its state discarded, though the ha store may point to it and a new leader restore it (FLINK-22494 class)"
            }
            Bug::TasksOutliveJobMasterDisconnect => {
                "a TaskExecutor that loses its JobMaster closes the connection without failing the job's tasks: they keep reading and writing while the JobMaster restarts them elsewhere"
            }
            Bug::ReaderOutlivesTask => {
                "a cancelled or failed source task's reader is not closed: it keeps fetching from the source log after the task reported CANCELED or FAILED"
            }
            Bug::CounterStuckAfterReconnect => {
                "the ZooKeeper checkpoint id counter keeps a SUSPENDED connection state after RECONNECTED: every later getAndIncrement fails and a leader that tolerated the suspension never checkpoints again (FLINK-14091)"
            }
            Bug::SubmitNeedsActiveSlot => {
                "submitTask needs an ACTIVE slot: a slot still ALLOCATED because the answer to its offer has not arrived refuses the task, which fails its deployment (FLINK-5836)"
            }
            Bug::OutdatedConnectionRegisters => {
                "the ResourceManager registers a TaskExecutor whenever a connection back to it completes, not only its latest registerTaskExecutor call's: an abandoned attempt's late connection replaces the registration the TaskExecutor holds (before FLINK-12260)"
            }
            Bug::SlotsBeforeRegistrationCompletes => {
                "the ResourceManager registers a TaskExecutor's slots with its registration, not on its first slot report: it may request a slot before the TaskExecutor has processed the answer to its registration (FLINK-9427)"
            }
            Bug::OutdatedOfferAnswerFreesSlots => {
                "a TaskExecutor takes an older offerSlots answer for the answer to its latest offer: slots offered since, which the old answer could not accept, are freed as rejected while the JobMaster accepts them (FLINK-21859)"
            }
            Bug::HaDataDeletedOnSuspend => {
                "a JobManager that loses leadership cleans up the HA data of its SUSPENDED jobs as if they had finished: their checkpoint pointers are deleted and the next leader recovers without the latest checkpoint (FLINK-25486)"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| b.name() == name)
    }
}

/// A set of planted bugs (usually empty or one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bugs(u64);

impl Bugs {
    pub const NONE: Bugs = Bugs(0);

    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | 1 << bug as u32)
    }

    #[inline]
    pub fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }
}

const _: () = assert!(Bug::ALL.len() <= 64);
