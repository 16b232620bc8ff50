//! Leader retrieval: Flink's `ZooKeeperLeaderRetrievalDriver`, which follows one component's
//! `connection_info` node with a data watch (an exists watch while there is no leader) and
//! notifies the leader it reads. It owns the component's path, the reads in flight and the
//! leader last notified, and clears that leader on a suspended or lost connection as
//! `LeaderInformationClearancePolicy` says. It does not own the session ([`super::session`]) or
//! the writing of `connection_info` (the leader's latch, [`super::leader_latch`]).

use super::session::{Session, SessionEvent};
use super::{connection_info_path, Effect};
use crate::protocol::ha::{HaError, LeaderInformation, Op, OpResult, ZnodeData};
use sim::Time;

/// Flink's `ZooKeeperLeaderRetrievalDriver` for one component.
#[derive(Clone, Debug)]
pub struct LeaderRetrieval {
    component: String,
    path: String,
    /// `LeaderInformationClearancePolicy.ON_SUSPENDED_CONNECTION` (else on lost connection).
    clear_on_suspended: bool,
    reading: Option<u64>,
    probing: Option<u64>,
    notified: Option<Option<LeaderInformation>>,
}

impl LeaderRetrieval {
    pub fn new(component: &str, tolerate_suspended_connections: bool) -> LeaderRetrieval {
        LeaderRetrieval {
            component: component.to_string(),
            path: {
                let path = connection_info_path(component);
                debug_assert!(crate::external::ha::store::is_valid_path(&path));
                path
            },
            clear_on_suspended: !tolerate_suspended_connections,
            reading: None,
            probing: None,
            notified: None,
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    /// The leader last notified (`None` when none is known).
    pub fn leader(&self) -> Option<LeaderInformation> {
        self.notified.flatten()
    }

    pub(crate) fn read(&mut self, now: Time, session: &mut Session) {
        self.reading = session.submit(
            now,
            Op::GetData {
                path: self.path.clone(),
                watch: true,
            },
        );
    }

    fn notify(&mut self, leader: Option<LeaderInformation>, out: &mut Vec<Effect>) {
        // Leader session ids are creation zxids of latch nodes, never 0.
        assert!(leader.is_none_or(|l| l.leader_session_id.0 > 0));
        if self.notified != Some(leader) {
            self.notified = Some(leader);
            out.push(Effect::LeaderChanged {
                component: self.component.clone(),
                leader,
            });
        }
    }

    pub fn on_event(
        &mut self,
        now: Time,
        session: &mut Session,
        event: &SessionEvent,
        out: &mut Vec<Effect>,
    ) {
        match event {
            SessionEvent::Connected { .. } | SessionEvent::Reconnected | SessionEvent::Resync => {
                self.read(now, session)
            }
            SessionEvent::Suspended => {
                if self.clear_on_suspended {
                    self.notify(None, out);
                }
            }
            SessionEvent::Lost => {
                self.reading = None;
                self.probing = None;
                self.notify(None, out);
            }
            SessionEvent::Watch(e) => {
                if e.path == self.path {
                    self.read(now, session);
                }
            }
            SessionEvent::Reply { request_id, result } => {
                if self.reading == Some(*request_id) {
                    self.reading = None;
                    match result {
                        Ok(OpResult::Data {
                            data: ZnodeData::LeaderInformation(info),
                            ..
                        }) => self.notify(Some(*info), out),
                        Ok(_) => self.notify(None, out),
                        // No leader yet: leave an exists watch that fires on creation.
                        Err(HaError::NoNode) => {
                            self.probing = session.submit(
                                now,
                                Op::Exists {
                                    path: self.path.clone(),
                                    watch: true,
                                },
                            );
                        }
                        Err(_) => {}
                    }
                } else if self.probing == Some(*request_id) {
                    self.probing = None;
                    match result {
                        Ok(OpResult::Exists(Some(_))) => self.read(now, session),
                        Ok(OpResult::Exists(None)) => self.notify(None, out),
                        _ => {}
                    }
                }
            }
        }
    }
}
