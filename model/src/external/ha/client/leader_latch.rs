//! Leader election: Curator's `LeaderLatch` (an ephemeral sequential node under
//! [`LATCH_PATH`]; the lowest one leads) and the `connection_info` publishing of Flink's
//! `ZooKeeperLeaderElectionDriver`. It owns the latch node, the predecessor it watches, the
//! leadership granted (with the leader session id) and the publishes in flight, and decides
//! when a session event revokes leadership. It does not own the session it submits through
//! ([`super::session`]), the contenders that act on a grant (the JobManager's components), or
//! the reading of `connection_info` by others ([`super::leader_retrieval`]).

use super::session::{ConnectionState, Session, SessionEvent};
use super::{connection_info_path, Effect};
use crate::external::ha::store::name;
use crate::protocol::ha::{
    HaError, HaResult, LeaderInformation, LeaderSessionId, Op, OpResult, ZnodeData,
};
use sim::{NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

/// Where the latch nodes live (`<root>/<cluster-id>` omitted).
pub const LATCH_PATH: &str = "/leader/latch";

/// Curator's `LeaderLatch` plus the leader-information publishing of Flink's
/// `ZooKeeperLeaderElectionDriver`.
#[derive(Clone, Debug)]
pub struct LeaderLatch {
    tolerate_suspended_connections: bool,
    /// Our latch node and the zxid that created it.
    node: Option<(String, u64)>,
    creating: Option<u64>,
    /// Creates given up by a reset while in flight: their nodes are deleted when they answer
    /// (else a live session would keep an orphan latch node ahead of everyone, forever).
    abandoned: BTreeSet<u64>,
    listing: Option<u64>,
    /// The predecessor we watch.
    watching: Option<String>,
    leader: Option<LeaderSessionId>,
    /// Publishes in flight: request id → (component, leader session, address, as a create).
    publishing: BTreeMap<u64, (String, LeaderSessionId, NodeId, bool)>,
}

impl LeaderLatch {
    pub fn new(tolerate_suspended_connections: bool) -> LeaderLatch {
        LeaderLatch {
            tolerate_suspended_connections,
            node: None,
            creating: None,
            abandoned: BTreeSet::new(),
            listing: None,
            watching: None,
            leader: None,
            publishing: BTreeMap::new(),
        }
    }

    pub fn leader_session_id(&self) -> Option<LeaderSessionId> {
        self.leader
    }

    /// Our latch node's path, once created.
    pub fn node(&self) -> Option<&str> {
        self.node.as_ref().map(|(p, _)| p.as_str())
    }

    fn revoke(&mut self, out: &mut Vec<Effect>) {
        if let Some(leader_session_id) = self.leader.take() {
            out.push(Effect::Revoked { leader_session_id });
        }
    }

    /// Curator's `reset()`: give up our node and queue up again with a new one.
    fn reset(&mut self, now: Time, session: &mut Session, out: &mut Vec<Effect>) {
        self.revoke(out);
        self.listing = None;
        self.watching = None;
        self.abandoned.extend(self.creating.take());
        if let Some((path, _)) = self.node.take() {
            session.submit(
                now,
                Op::Delete {
                    path,
                    expected_version: None,
                },
            );
        }
        self.creating = session.submit(
            now,
            Op::Create {
                path: format!("{LATCH_PATH}/latch-"),
                data: ZnodeData::Empty,
                ephemeral: true,
                sequential: true,
            },
        );
    }

    fn list(&mut self, now: Time, session: &mut Session) {
        // Only a latch with a node looks where it stands.
        assert!(self.node.is_some());
        self.listing = session.submit(
            now,
            Op::GetChildren {
                path: LATCH_PATH.into(),
                watch: false,
            },
        );
    }

    fn on_children(
        &mut self,
        now: Time,
        session: &mut Session,
        children: Vec<String>,
        out: &mut Vec<Effect>,
    ) {
        let Some((path, czxid)) = self.node.clone() else {
            return;
        };
        // Same prefix, ten-digit suffix: name order is sequence order.
        let mut children = children;
        children.sort();
        match children.iter().position(|c| c == name(&path)) {
            // Our node is gone (deleted, or our session expired unnoticed): start over.
            None => self.reset(now, session, out),
            Some(0) => {
                // A held latch is held through this very node.
                assert!(self.leader.is_none_or(|l| l.0 == czxid));
                let suspended_revokes = session.state() == ConnectionState::Suspended
                    && !self.tolerate_suspended_connections;
                if self.leader.is_none() && !suspended_revokes {
                    let leader_session_id = LeaderSessionId(czxid);
                    self.leader = Some(leader_session_id);
                    out.push(Effect::Granted { leader_session_id });
                }
            }
            Some(i) => {
                // Not first: watch the node just before ours (no herd on a leader change).
                let predecessor = format!("{LATCH_PATH}/{}", children[i - 1]);
                self.watching = Some(predecessor.clone());
                session.submit(
                    now,
                    Op::GetData {
                        path: predecessor,
                        watch: true,
                    },
                );
            }
        }
    }

    /// Writes {address, leader session id} to `connection_info` of `component`, guarded by our
    /// latch node in the same transaction, so the write succeeds only while the latch is held.
    pub fn confirm_leadership(
        &mut self,
        now: Time,
        session: &mut Session,
        component: &str,
        leader_session_id: LeaderSessionId,
        address: NodeId,
        out: &mut Vec<Effect>,
    ) {
        self.publish(
            now,
            session,
            (component.to_string(), leader_session_id, address, false),
            out,
        );
    }

    fn publish(
        &mut self,
        now: Time,
        session: &mut Session,
        publish: (String, LeaderSessionId, NodeId, bool),
        out: &mut Vec<Effect>,
    ) {
        let (component, leader_session_id, address, create) = publish.clone();
        // A leader holds a latch node.
        assert!(self.leader.is_none() || self.node.is_some());
        let node = self.node.as_ref().map(|(p, _)| p.clone());
        let request = match node {
            Some(latch) if self.leader == Some(leader_session_id) => {
                let path = connection_info_path(&component);
                let data = ZnodeData::LeaderInformation(LeaderInformation {
                    address,
                    leader_session_id,
                });
                let write = if create {
                    Op::Create {
                        path,
                        data,
                        ephemeral: false,
                        sequential: false,
                    }
                } else {
                    Op::SetData {
                        path,
                        data,
                        expected_version: None,
                    }
                };
                let check = Op::Check {
                    path: latch,
                    expected_version: None,
                };
                session.submit(now, Op::Multi(vec![check, write]))
            }
            _ => None,
        };
        match request {
            Some(request_id) => {
                self.publishing.insert(request_id, publish);
            }
            None => out.push(Effect::PublishRefused {
                component,
                leader_session_id,
            }),
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
            SessionEvent::Connected { .. } => {
                // A new session: our old node (if any) went with the old one.
                self.node = None;
                self.reset(now, session, out);
            }
            SessionEvent::Reconnected => {
                if !self.tolerate_suspended_connections || self.leader.is_none() {
                    self.reset(now, session, out);
                }
            }
            SessionEvent::Suspended => {
                if !self.tolerate_suspended_connections {
                    self.revoke(out);
                }
            }
            SessionEvent::Lost => {
                self.revoke(out);
                self.node = None;
                self.creating = None;
                self.abandoned.clear();
                self.listing = None;
                self.watching = None;
            }
            SessionEvent::Resync => {
                if self.node.is_some() {
                    self.list(now, session);
                }
            }
            SessionEvent::Watch(e) => {
                if self.watching.as_deref() == Some(e.path.as_str()) {
                    self.watching = None;
                    self.list(now, session);
                }
            }
            SessionEvent::Reply { request_id, result } => {
                self.on_reply(now, session, request_id, result, out)
            }
        }
        // Leadership is held through our latch node: its creation zxid is the leader session
        // id. A create in flight has no node yet, and watching or listing needs one.
        assert!(self
            .leader
            .is_none_or(|l| self.node.as_ref().is_some_and(|(_, czxid)| l.0 == *czxid)));
        assert!(self.creating.is_none() || self.node.is_none());
        assert!(self.watching.is_none() || self.node.is_some());
        assert!(self.listing.is_none() || self.node.is_some());
        assert!(self.creating.is_none_or(|c| !self.abandoned.contains(&c)));
    }

    /// The answer to one of the latch's requests (or to someone else's: then nothing).
    fn on_reply(
        &mut self,
        now: Time,
        session: &mut Session,
        request_id: &u64,
        result: &HaResult,
        out: &mut Vec<Effect>,
    ) {
        // An abandoned create is never the current one.
        assert!(self.creating.is_none_or(|c| !self.abandoned.contains(&c)));
        if self.abandoned.remove(request_id) {
            if let Ok(OpResult::Created { path, .. }) = result {
                let path = path.clone();
                session.submit(
                    now,
                    Op::Delete {
                        path,
                        expected_version: None,
                    },
                );
            }
        } else if self.creating == Some(*request_id) {
            self.creating = None;
            assert!(self.node.is_none() && self.leader.is_none());
            if let Ok(OpResult::Created { path, stat }) = result {
                self.node = Some((path.clone(), stat.czxid));
                self.list(now, session);
            }
        } else if self.listing == Some(*request_id) {
            self.listing = None;
            assert!(self.node.is_some());
            if let Ok(OpResult::Children { children, .. }) = result {
                self.on_children(now, session, children.clone(), out);
            }
        } else if let Some(publish) = self.publishing.remove(request_id) {
            self.on_publish_reply(now, session, publish, result, out);
        } else if let Err(HaError::NoNode) = result {
            // The predecessor vanished before the watch was set: look again.
            if self.watching.is_some() {
                self.watching = None;
                self.list(now, session);
            }
        }
    }

    /// The answer to a `connection_info` write of [`LeaderLatch::confirm_leadership`].
    fn on_publish_reply(
        &mut self,
        now: Time,
        session: &mut Session,
        publish: (String, LeaderSessionId, NodeId, bool),
        result: &HaResult,
        out: &mut Vec<Effect>,
    ) {
        let (component, leader_session_id, _, create) = publish.clone();
        match result {
            Ok(r) => {
                // A publish is the latch check and the write, in one transaction.
                assert!(matches!(r, OpResult::Multi(rs) if rs.len() == 2));
                out.push(Effect::Published {
                    component,
                    leader_session_id,
                })
            }
            // connection_info is missing (first leader) or was just created by
            // someone else: switch between create and set.
            Err(HaError::MultiFailed { index: 1, cause })
                if matches!(**cause, HaError::NoNode | HaError::NodeExists) =>
            {
                self.publish(
                    now,
                    session,
                    (component, leader_session_id, publish.2, !create),
                    out,
                );
            }
            Err(_) => {
                out.push(Effect::PublishRefused {
                    component,
                    leader_session_id,
                });
                // Our latch node may be gone: find out.
                if self.node.is_some() {
                    self.list(now, session);
                }
            }
        }
    }
}
