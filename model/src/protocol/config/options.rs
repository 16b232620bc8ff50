//! The registry of configuration keys: every key flinksim understands with Flink's default and
//! what it does (what `flinksim list config` prints and the scenario reference documents), the
//! deprecated keys still read as fallbacks, and the keys refused as not modelled yet. Parsing a
//! value into [`super::FlinkConfig`] is `super`'s.

use std::time::Duration;

/// How a value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// Flink's duration syntax: "10 s", "500 ms", "2 min"; a bare number is milliseconds.
    Duration,
    /// An integer.
    Int,
    /// A decimal number.
    Float,
    /// A word from a fixed set.
    Text,
    /// `true` or `false`.
    Bool,
}

/// One supported configuration key.
#[derive(Clone, Copy, Debug)]
pub struct ConfigOption {
    pub key: &'static str,
    pub default: &'static str,
    pub kind: ValueKind,
    pub description: &'static str,
}

/// The default of an option that is unset unless configured (Flink's docs print "(none)").
pub const UNSET: &str = "(none)";

/// Flink's `CheckpointConfig.MINIMAL_CHECKPOINT_TIME`: the smallest checkpoint interval and
/// checkpoint timeout Flink accepts.
pub const CHECKPOINT_TIME_MIN: Duration = Duration::from_millis(10);

/// Deprecated keys Flink still reads as fallbacks of a current key: (old key, current key).
/// When both are set the current key wins, as in Flink.
pub const DEPRECATED_KEYS: &[(&str, &str)] = &[(
    "state.checkpoints.num-retained",
    "execution.checkpointing.num-retained",
)];

/// Every key flinksim understands, in the order `flinksim list config` prints them.
pub const OPTIONS: &[ConfigOption] = &[
    ConfigOption {
        key: "heartbeat.interval",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "How often a heartbeat sender requests heartbeats from its targets.",
    },
    ConfigOption {
        key: "heartbeat.timeout",
        default: "50 s",
        kind: ValueKind::Duration,
        description: "Silence after which a heartbeat target is declared lost.",
    },
    ConfigOption {
        key: "heartbeat.rpc-failure-threshold",
        default: "2",
        kind: ValueKind::Int,
        description: "Consecutive failed heartbeat RPCs (target unreachable) after which the target is declared unreachable; -1 disables.",
    },
    ConfigOption {
        key: "cluster.registration.initial-timeout",
        default: "100 ms",
        kind: ValueKind::Duration,
        description: "Timeout of the first registration attempt; doubled after each timeout.",
    },
    ConfigOption {
        key: "cluster.registration.max-timeout",
        default: "30 s",
        kind: ValueKind::Duration,
        description: "Upper bound of the doubling registration attempt timeout.",
    },
    ConfigOption {
        key: "cluster.registration.refused-registration-delay",
        default: "30 s",
        kind: ValueKind::Duration,
        description: "Pause before retrying after a registration was declined.",
    },
    ConfigOption {
        key: "cluster.registration.error-delay",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "Pause before retrying after a registration failed with an error (e.g. the target refused the connection).",
    },
    ConfigOption {
        key: "taskmanager.registration.timeout",
        default: "5 min",
        kind: ValueKind::Duration,
        description: "A TaskManager that cannot register with a ResourceManager for this long terminates.",
    },
    ConfigOption {
        key: "pekko.ask.timeout",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "Timeout of RPCs that expect an answer (Flink's rpcTimeout), e.g. the TaskExecutor's initial slot report.",
    },
        ConfigOption {
        key: "slot.request.timeout",
        default: "5 min",
        kind: ValueKind::Duration,
        description: "A job's slot request that stays unfulfillable this long fails its tasks (NoResourceAvailableException).",
    },
    ConfigOption {
        key: "slot.idle.timeout",
        default: "50 s",
        kind: ValueKind::Duration,
        description: "Free slots idle this long and beyond the job's requirements go back to their TaskExecutor.",
    },
    ConfigOption {
        key: "taskmanager.slot.timeout",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "A slot allocated on a TaskExecutor but not accepted (active) by a JobMaster for this long is freed.",
    },
    ConfigOption {
        key: "resourcemanager.taskmanager-timeout",
        default: "30 s",
        kind: ValueKind::Duration,
        description: "An active ResourceManager releases a TaskManager it started once it has been idle this long.",
    },
    ConfigOption {
        key: "jobmanager.execution.failover-strategy",
        default: "region",
        kind: ValueKind::Text,
        description: "region (restart the failed task's pipelined region and its consumers) or full.",
    },
    ConfigOption {
        key: "restart-strategy.type",
        default: UNSET,
        kind: ValueKind::Text,
        description: "none | fixed-delay | failure-rate | exponential-delay; unset: exponential-delay when checkpointing is enabled, otherwise none (Flink >= 1.19).",
    },
    ConfigOption {
        key: "restart-strategy.fixed-delay.attempts",
        default: "1",
        kind: ValueKind::Int,
        description: "fixed-delay: restarts allowed before the job fails.",
    },
    ConfigOption {
        key: "restart-strategy.fixed-delay.delay",
        default: "1 s",
        kind: ValueKind::Duration,
        description: "fixed-delay: pause before each restart.",
    },
    ConfigOption {
        key: "restart-strategy.failure-rate.max-failures-per-interval",
        default: "1",
        kind: ValueKind::Int,
        description: "failure-rate: failures allowed within one interval.",
    },
    ConfigOption {
        key: "restart-strategy.failure-rate.failure-rate-interval",
        default: "1 min",
        kind: ValueKind::Duration,
        description: "failure-rate: the measuring window.",
    },
    ConfigOption {
        key: "restart-strategy.failure-rate.delay",
        default: "1 s",
        kind: ValueKind::Duration,
        description: "failure-rate: pause before each restart.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.initial-backoff",
        default: "1 s",
        kind: ValueKind::Duration,
        description: "exponential-delay: the first backoff.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.max-backoff",
        default: "1 min",
        kind: ValueKind::Duration,
        description: "exponential-delay: the largest backoff.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.backoff-multiplier",
        default: "1.5",
        kind: ValueKind::Float,
        description: "exponential-delay: growth per attempt.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.reset-backoff-threshold",
        default: "1 h",
        kind: ValueKind::Duration,
        description: "exponential-delay: a failure this long after the last restart starts the backoff over.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.jitter-factor",
        default: "0.1",
        kind: ValueKind::Float,
        description: "exponential-delay: ± this fraction of the backoff, drawn from the seed.",
    },
    ConfigOption {
        key: "restart-strategy.exponential-delay.attempts-before-reset-backoff",
        default: "-1",
        kind: ValueKind::Int,
        description: "exponential-delay: restarts allowed before the job fails (-1 = unlimited).",
    },
    ConfigOption {
        key: "execution.checkpointing.interval",
        default: UNSET,
        kind: ValueKind::Duration,
        description: "Base interval of periodic checkpoints (at least 10 ms); unset: checkpointing is disabled.",
    },
    ConfigOption {
        key: "execution.checkpointing.mode",
        default: "EXACTLY_ONCE",
        kind: ValueKind::Text,
        description: "EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE (barriers tracked, never aligned).",
    },
    ConfigOption {
        key: "execution.checkpointing.timeout",
        default: "10 min",
        kind: ValueKind::Duration,
        description: "A pending checkpoint not completed within this time is aborted (at least 10 ms).",
    },
    ConfigOption {
        key: "execution.checkpointing.min-pause",
        default: "0 ms",
        kind: ValueKind::Duration,
        description: "Minimum time between the end of one checkpoint and the next periodic trigger.",
    },
    ConfigOption {
        key: "execution.checkpointing.max-concurrent-checkpoints",
        default: "1",
        kind: ValueKind::Int,
        description: "Checkpoints that may be pending at the same time (at least 1).",
    },
    ConfigOption {
        key: "execution.checkpointing.tolerable-failed-checkpoints",
        default: "0",
        kind: ValueKind::Int,
        description: "Consecutive counted checkpoint failures tolerated before the job fails over.",
    },
    ConfigOption {
        key: "execution.checkpointing.num-retained",
        default: "1",
        kind: ValueKind::Int,
        description: "Completed checkpoints retained (at least 1); the deprecated `state.checkpoints.num-retained` is read too.",
    },
    ConfigOption {
        key: "pipeline.max-parallelism",
        default: "-1",
        kind: ValueKind::Int,
        description: "Max parallelism (key groups) of the job; -1 = Flink's default min(max(roundUpToPowerOfTwo(p + p/2), 128), 32768).",
    },
    ConfigOption {
        key: "pipeline.operator-chaining.enabled",
        default: "true",
        kind: ValueKind::Bool,
        description: "true: operators joined by a forward exchange of equal parallelism run chained in one task; false: each operator is its own job vertex, joined by a pointwise edge (pipelined regions of several tasks).",
    },
    ConfigOption {
        key: "high-availability.type",
        default: "NONE",
        kind: ValueKind::Text,
        description: "NONE, or ZOOKEEPER: the `ha` node (a ZooKeeper-like store) elects the leading JobManager process and keeps job plans, checkpoint pointers, the checkpoint id counter and job results.",
    },
    ConfigOption {
        key: "high-availability.zookeeper.client.session-timeout",
        default: "60 s",
        kind: ValueKind::Duration,
        description: "ZooKeeper session timeout: the `ha` node expires a silent session (and its latch node) after this long; the client suspends after 2/3 of it.",
    },
    ConfigOption {
        key: "high-availability.zookeeper.client.retry-wait",
        default: "5 s",
        kind: ValueKind::Duration,
        description: "Wait before an unanswered ZooKeeper request or connect is sent again.",
    },
    ConfigOption {
        key: "high-availability.zookeeper.client.tolerate-suspended-connections",
        default: "false",
        kind: ValueKind::Bool,
        description: "false: a SUSPENDED connection revokes leadership; true: only a LOST session does (FLINK-10052).",
    },
    ConfigOption {
        key: "taskmanager.numberOfTaskSlots",
        default: "1",
        kind: ValueKind::Int,
        description: "Slots each TaskManager offers (reported to the ResourceManager in its slot report).",
    },
];

/// Flink keys flinksim knows about but does not model yet; setting one is an error that says so.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "high-availability.kubernetes.leader-election.lease-duration",
    "high-availability.kubernetes.leader-election.renew-deadline",
    "high-availability.kubernetes.leader-election.retry-period",
];
