//! No resurrection (always): a job that reached a globally terminal status (FINISHED, FAILED,
//! CANCELED) is never run again — no JobMaster of any process is created for it afterwards
//! (docs/flink-runtime.md §9.2: the JobResultStore exists to prevent exactly this after a JobManager
//! failover).
//!
//! Ground truth: without HA the JobMasters' `JobStatusChanged` reports (the JobResultStore is
//! the Dispatcher's memory); with HA the `ha` node's `JobResultStored` — a JobManager that dies
//! between its job finishing and the dirty JobResultStore entry being written leaves a job that
//! is not globally terminal yet, and Flink recovers it (from its final checkpoint).

use super::{Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Time};
use std::collections::BTreeMap;

pub const INVARIANT: Invariant = Invariant {
    name: "no-resurrection",
    kind: Kind::Always,
    description: "a job that reached a globally terminal status (FINISHED, FAILED, CANCELED) is never started again, by any JobManager",
};

pub struct NoResurrection {
    terminal: BTreeMap<JobId, JobStatus>,
    ha: bool,
}

impl NoResurrection {
    pub fn new(setup: &Setup) -> NoResurrection {
        NoResurrection {
            terminal: BTreeMap::new(),
            ha: setup.topology.ha.is_some(),
        }
    }
}

impl Oracle for NoResurrection {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let (job_id, from, to) = match obs {
            Obs::JobStatusChanged {
                job_id, from, to, ..
            } => (job_id, from, to),
            Obs::JobResultStored { job_id, status } => {
                self.terminal.entry(*job_id).or_insert(*status);
                return;
            }
            _ => return,
        };
        if let Some(done) = self.terminal.get(job_id) {
            // A JobMaster created for the job after it ended (a deposed JobMaster that still
            // ran it may only suspend).
            if from.is_none() {
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: ev.time,
                    node: Some(*node),
                    message: format!(
                        "job {job_id:x} went to {} on {} after it had reached the globally terminal {}",
                        to.name(),
                        census.name(*node),
                        done.name()
                    ),
                });
            }
            return;
        }
        if to.is_globally_terminal() && !self.ha {
            self.terminal.insert(*job_id, *to);
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;

    fn status(node: sim::NodeId, from: Option<JobStatus>, to: JobStatus) -> Step {
        Step::Obs(
            node,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 1,
                from,
                to,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut o = NoResurrection::new(&setup(FlinkConfig::default()));
        feed(&mut o, w.census(), steps, Some(100_000))
    }

    #[test]
    fn a_job_that_ends_once_holds() {
        let v = check(&[
            (0, status(JM, None, JobStatus::Created)),
            (1, status(JM, Some(JobStatus::Created), JobStatus::Running)),
            (9, status(JM, Some(JobStatus::Running), JobStatus::Finished)),
        ]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn a_finished_job_started_again_is_caught() {
        let v = check(&[
            (1, status(JM, Some(JobStatus::Created), JobStatus::Running)),
            (9, status(JM, Some(JobStatus::Running), JobStatus::Finished)),
            (20, status(TM1, None, JobStatus::Created)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("went to CREATED"), "{}", v[0].message);
        assert!(
            v[0].message.contains("globally terminal FINISHED"),
            "{}",
            v[0].message
        );
    }
}
