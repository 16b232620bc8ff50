//! `jobmanager.execution.failover-strategy` as a value: restart everything or the failed
//! pipelined region. Which vertices a failure restarts is the JobMaster's
//! (`jobmanager::job_master::failover_strategy`).

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailoverStrategy {
    /// Restart every vertex of the job.
    Full,
    /// Restart the failed vertex's pipelined region and the regions it drags along.
    Region,
}

impl FailoverStrategy {
    /// The strategy named by a `jobmanager.execution.failover-strategy` value, ignoring case as
    /// Flink does: "full" or "region".
    pub fn from_name(name: &str) -> Option<FailoverStrategy> {
        [FailoverStrategy::Full, FailoverStrategy::Region]
            .into_iter()
            .find(|strategy| strategy.name().eq_ignore_ascii_case(name))
    }

    /// The configuration value: "full" or "region".
    pub fn name(self) -> &'static str {
        match self {
            FailoverStrategy::Full => "full",
            FailoverStrategy::Region => "region",
        }
    }
}
