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
}

impl Bug {
    pub const ALL: &'static [Bug] = &[
        Bug::HeartbeatTimeoutNotReset,
        Bug::HeartbeatTimeoutIgnored,
        Bug::RegistrationNotRetried,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::HeartbeatTimeoutNotReset => "heartbeat-timeout-not-reset",
            Bug::HeartbeatTimeoutIgnored => "heartbeat-timeout-ignored",
            Bug::RegistrationNotRetried => "registration-not-retried",
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
