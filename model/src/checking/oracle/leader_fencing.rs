//! Leader fencing (always, with high availability): at most one leader *acts* at any time.
//! Every effect of a leader — a fenced call taking effect at a TaskExecutor (`requestSlot`,
//! `submitTask`), a checkpoint pointer added to the CompletedCheckpointStore, a job recovered —
//! carries the leader session id of the session that leads in the `ha` store at that moment.
//!
//! Ground truth: the `ha` node's own report of its latch leader (`HaLeader`: the owner of the
//! lowest latch node), which no JobManager can see directly; the effects report the token they
//! carried. A deposed leader that still believes it leads (a pause past the session timeout, a
//! partition from the `ha` node) may try to act; fencing must stop every such attempt.

use super::{Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Time};

pub const INVARIANT: Invariant = Invariant {
    name: "leader-fencing",
    kind: Kind::Always,
    description: "with HA, every leader effect (a requestSlot or submitTask taking effect at a TaskExecutor, a checkpoint pointer written, a job recovered) carries the leader session id that leads in the ha store at that moment",
};

pub struct LeaderFencing {
    /// The `ha` store's current leader session (`None`: no contender, or before the first
    /// report).
    current: Option<u64>,
}

impl LeaderFencing {
    pub fn new(_setup: &Setup) -> LeaderFencing {
        LeaderFencing { current: None }
    }
}

impl Oracle for LeaderFencing {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        let (what, token) = match obs {
            Obs::HaLeader {
                leader_session_id, ..
            } => {
                self.current = *leader_session_id;
                return;
            }
            Obs::FencedCallAccepted { call, token } => (format!("accepted {call}"), *token),
            Obs::CheckpointPointerAdded {
                checkpoint_id,
                token,
                ..
            } => (
                format!("added the pointer of checkpoint {checkpoint_id}"),
                *token,
            ),
            Obs::JobRecovered {
                job_id,
                leader_session_id,
                ..
            } => (format!("recovered job {job_id:x}"), *leader_session_id),
            _ => return,
        };
        if self.current != Some(token) {
            let leader = match self.current {
                Some(t) => format!("leader session {t}"),
                None => "no leader".to_string(),
            };
            out.push(Violation {
                invariant: INVARIANT.name,
                at: ev.time,
                node: Some(*node),
                message: format!(
                    "{} {what} under leader session {token}, but the ha store has {leader}: a deposed leader acted",
                    census.name(*node)
                ),
            });
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;

    fn leader(t: u64) -> Step {
        Step::Obs(
            JM,
            Obs::HaLeader {
                leader_session_id: Some(t),
                node: Some(JM),
            },
        )
    }

    fn accepted(token: u64) -> Step {
        Step::Obs(
            TM1,
            Obs::FencedCallAccepted {
                call: "submitTask".into(),
                token,
            },
        )
    }

    fn check(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut o = LeaderFencing::new(&setup(FlinkConfig::default()));
        feed(&mut o, w.census(), steps, Some(100_000))
    }

    #[test]
    fn effects_of_the_current_leader_hold() {
        assert_eq!(check(&[(0, leader(1)), (10, accepted(1))]), vec![]);
        assert_eq!(
            check(&[
                (0, leader(1)),
                (10, accepted(1)),
                (20, leader(6)),
                (30, accepted(6))
            ]),
            vec![]
        );
    }

    #[test]
    fn a_deposed_leaders_effect_is_caught() {
        let v = check(&[(0, leader(1)), (20, leader(6)), (30, accepted(1))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "accepted submitTask under leader session 1, but the ha store has leader session 6"
            ),
            "{}",
            v[0].message
        );
    }
}
