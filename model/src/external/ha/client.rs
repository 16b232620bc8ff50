//! The client side of ZooKeeper HA: a session (Curator's connection handling) and the recipes
//! Flink builds on it — `LeaderLatch` (leader election), leader retrieval, and the checkpoint id
//! counter (`ZooKeeperCheckpointIDCounter`'s `SharedCount`) — as sans-IO state machines.
//!
//! It owns the client's view: connection state, outstanding requests and their retries, the
//! latch node and leadership, the last leader seen per component, queued counter increments. It
//! does not own the store ([`crate::external::ha::store`]) or the contenders that act on a grant (the
//! JobManager's components). Handlers take `now` and a reply or tick and return [`Effect`]s;
//! `Effect::Send` goes to the `ha` node.
//!
//! Connection states follow Curator as Flink configures it. A session is `Connected` while a
//! request sent within the last two thirds of the session timeout has been answered (ZooKeeper's
//! read timeout), `Suspended` after that, and `Lost` when the store says the session expired or
//! when it has been suspended for a whole session timeout (Curator's client-side expiry).
//! Liveness is measured from the *send* time of the answered request rather than the arrival of
//! the answer: a late answer then never makes a session look fresher than it is, so a client that
//! believes it is `Connected` always has a live session in the store, whatever the network's
//! delays. With `high-availability.zookeeper.client.tolerate-suspended-connections=false` (the
//! default) `Suspended` revokes leadership; with `true` only `Lost` does, and an old leader can
//! go on believing it leads for up to a session timeout after the store dropped its latch node.
//!
//! Simplifications: one session serves every recipe of a process (as Flink's one
//! `CuratorFramework`); Curator's protected-mode latch names are unnecessary because retried
//! creates are answered from the store's retry window; the latch watches its predecessor with a
//! data watch as Curator does; the leader session id is the zxid that created the latch node
//! (unique across grants and store crashes) instead of a random UUID; a missed watch event
//! (detected from the event sequence numbers) makes every recipe re-read, standing in for the
//! ZooKeeper client's reliable, ordered connection.

use crate::external::ha::store::name;

use crate::protocol::ha::{
    HaError, HaReply, HaRequest, HaResult, LeaderInformation, LeaderSessionId, Op, OpResult,
    SessionId, WatchEvent, ZnodeData,
};
use sim::{NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How many requests a session keeps outstanding; a submit beyond it is refused.
pub const OUTSTANDING_MAX: usize = 64;
/// How many unanswered pings and connect attempts a session remembers.
pub const ATTEMPTS_REMEMBERED_MAX: usize = 8;
/// How many checkpoint id increments may wait per counter.
pub const COUNTER_QUEUE_MAX: u32 = 16;
/// `CheckpointIDCounter.INITIAL_CHECKPOINT_ID`.
pub const INITIAL_CHECKPOINT_ID: u64 = 1;
/// Where the latch nodes live (`<root>/<cluster-id>` omitted).
pub const LATCH_PATH: &str = "/leader/latch";

/// `/leader/<component>/connection_info`.
pub fn connection_info_path(component: &str) -> String {
    format!("/leader/{component}/connection_info")
}

/// `/jobs/<job>/checkpoint_id_counter`.
pub fn checkpoint_id_counter_path(job: &str) -> String {
    format!("/jobs/{job}/checkpoint_id_counter")
}

/// The `high-availability.zookeeper.client.*` options the client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    /// `session-timeout`, default 60 s.
    pub session_timeout: Duration,
    /// `retry-wait`, default 5 s: the interval between re-sends of an unanswered request.
    pub retry_wait: Duration,
    /// `tolerate-suspended-connections`, default false.
    pub tolerate_suspended_connections: bool,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            session_timeout: Duration::from_secs(60),
            retry_wait: Duration::from_secs(5),
            tolerate_suspended_connections: false,
        }
    }
}

impl SessionConfig {
    /// Nothing answered for this long (after the request was sent): `Suspended`.
    pub fn suspend_after(&self) -> Duration {
        self.session_timeout * 2 / 3
    }

    /// The ping interval while connected (ZooKeeper pings at half the read timeout).
    pub fn ping_interval(&self) -> Duration {
        self.session_timeout / 3
    }
}

/// Curator's `ConnectionState`, plus `Latent` before the first session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Latent,
    Connected,
    Suspended,
    Lost,
}

/// What the session tells its recipes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A new session (the first one, or one after `Lost`).
    Connected {
        session: SessionId,
    },
    /// The same session answers again after `Suspended`.
    Reconnected,
    Suspended,
    /// The session is gone; every outstanding request was failed with `SessionExpired` before.
    Lost,
    Reply {
        request_id: u64,
        result: HaResult,
    },
    Watch(WatchEvent),
    /// Watch events may have been missed: re-read everything watched.
    Resync,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Outstanding {
    op: Op,
    first_sent: Time,
    last_sent: Time,
}

/// A ZooKeeper client connection with Curator's connection-state semantics.
#[derive(Clone, Debug)]
pub struct Session {
    store: NodeId,
    config: SessionConfig,
    state: ConnectionState,
    session: Option<SessionId>,
    next_request_id: u64,
    /// Connect attempts of the current connection try: request id → send time.
    connects: BTreeMap<u64, Time>,
    outstanding: BTreeMap<u64, Outstanding>,
    /// Pings in flight: request id → send time.
    pings: BTreeMap<u64, Time>,
    /// The latest send time of a request the live session answered.
    last_ok: Time,
    suspended_since: Time,
    last_ping: Time,
    /// The highest watch event `seq` seen (or known of, after a resync).
    events_seen: u64,
    outbox: Vec<HaRequest>,
}

impl Session {
    pub fn new(store: NodeId, config: SessionConfig) -> Session {
        assert!(!config.session_timeout.is_zero());
        assert!(!config.retry_wait.is_zero());
        Session {
            store,
            config,
            state: ConnectionState::Latent,
            session: None,
            next_request_id: 1,
            connects: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            pings: BTreeMap::new(),
            last_ok: Time::ZERO,
            suspended_since: Time::ZERO,
            last_ping: Time::ZERO,
            events_seen: 0,
            outbox: Vec::new(),
        }
    }

    pub fn store(&self) -> NodeId {
        self.store
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn state(&self) -> ConnectionState {
        self.state
    }

    pub fn session_id(&self) -> Option<SessionId> {
        self.session
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    fn connect(&mut self, now: Time) {
        assert!(self.session.is_none());
        let request_id = self.request_id();
        self.connects.insert(request_id, now);
        while self.connects.len() > ATTEMPTS_REMEMBERED_MAX {
            self.connects.pop_first();
        }
        self.outbox.push(HaRequest::Connect {
            request_id,
            timeout: self.config.session_timeout,
        });
    }

    /// Starts connecting (once).
    pub fn start(&mut self, now: Time) {
        assert_eq!(self.state, ConnectionState::Latent);
        if self.connects.is_empty() {
            self.connect(now);
        }
    }

    /// Sends `op` in the current session; `None` when there is no session or too much is
    /// outstanding (the caller treats it as a failure).
    pub fn submit(&mut self, now: Time, op: Op) -> Option<u64> {
        let session = self.session?;
        if self.outstanding.len() >= OUTSTANDING_MAX {
            return None;
        }
        let request_id = self.request_id();
        self.outstanding.insert(
            request_id,
            Outstanding {
                op: op.clone(),
                first_sent: now,
                last_sent: now,
            },
        );
        self.outbox.push(HaRequest::Op {
            session,
            request_id,
            op,
        });
        Some(request_id)
    }

    /// The requests to send to the store since the last call.
    pub fn take_outbox(&mut self) -> Vec<HaRequest> {
        std::mem::take(&mut self.outbox)
    }

    /// Time-driven transitions: `Connected` → `Suspended` → `Lost`.
    fn check(&mut self, now: Time, events: &mut Vec<SessionEvent>) {
        match self.state {
            ConnectionState::Connected if now >= self.last_ok + self.config.suspend_after() => {
                self.state = ConnectionState::Suspended;
                self.suspended_since = now;
                events.push(SessionEvent::Suspended);
            }
            ConnectionState::Suspended
                if now >= self.suspended_since + self.config.session_timeout =>
            {
                self.lose(now, events);
            }
            _ => {}
        }
    }

    fn lose(&mut self, now: Time, events: &mut Vec<SessionEvent>) {
        assert!(self.session.is_some());
        self.session = None;
        self.state = ConnectionState::Lost;
        self.pings.clear();
        // Each outstanding request may or may not have been applied; its recipe must cope.
        for (request_id, _) in std::mem::take(&mut self.outstanding) {
            events.push(SessionEvent::Reply {
                request_id,
                result: Err(HaError::SessionExpired),
            });
        }
        events.push(SessionEvent::Lost);
        self.connects.clear();
        self.connect(now);
    }

    /// The session answered a request sent at `sent`.
    fn heard(&mut self, now: Time, sent: Time, events: &mut Vec<SessionEvent>) {
        self.last_ok = self.last_ok.max(sent);
        if self.state == ConnectionState::Suspended
            && now < self.last_ok + self.config.suspend_after()
        {
            self.state = ConnectionState::Connected;
            events.push(SessionEvent::Reconnected);
        }
    }

    pub fn on_reply(&mut self, now: Time, reply: HaReply) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        self.check(now, &mut events);
        match reply {
            HaReply::Connected {
                request_id,
                session,
                timeout,
            } => {
                assert_eq!(timeout, self.config.session_timeout);
                match self.connects.get(&request_id) {
                    Some(&sent) if self.session.is_none() => {
                        self.connects.clear();
                        self.session = Some(session);
                        self.state = ConnectionState::Connected;
                        self.last_ok = sent;
                        self.last_ping = now;
                        self.events_seen = 0;
                        events.push(SessionEvent::Connected { session });
                    }
                    _ => {
                        // A duplicate connect made another session: close it at once.
                        if self.session != Some(session) {
                            let request_id = self.request_id();
                            self.outbox.push(HaRequest::Close {
                                session,
                                request_id,
                            });
                        }
                    }
                }
            }
            HaReply::Pong {
                session,
                request_id,
                events_fired,
                result,
            } => {
                if self.session != Some(session) {
                    return events;
                }
                match result {
                    Err(_) => self.lose(now, &mut events),
                    Ok(()) => {
                        if let Some(sent) = self.pings.remove(&request_id) {
                            self.heard(now, sent, &mut events);
                        }
                        if events_fired > self.events_seen {
                            self.events_seen = events_fired;
                            events.push(SessionEvent::Resync);
                        }
                    }
                }
            }
            HaReply::Response {
                session,
                request_id,
                result,
            } => {
                if self.session != Some(session) {
                    return events;
                }
                if result == Err(HaError::SessionExpired) {
                    self.lose(now, &mut events);
                } else if let Some(o) = self.outstanding.remove(&request_id) {
                    self.heard(now, o.first_sent, &mut events);
                    events.push(SessionEvent::Reply { request_id, result });
                }
            }
            HaReply::Watch(event) => {
                if self.session != Some(event.session) {
                    return events;
                }
                if event.seq > self.events_seen + 1 {
                    events.push(SessionEvent::Resync);
                }
                self.events_seen = self.events_seen.max(event.seq);
                events.push(SessionEvent::Watch(event));
            }
        }
        events
    }

    pub fn on_tick(&mut self, now: Time) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        self.check(now, &mut events);
        let retry_wait = self.config.retry_wait;
        match self.session {
            None => {
                let last = self.connects.values().max().copied();
                if last.is_some_and(|t| now >= t + retry_wait) {
                    self.connect(now);
                }
            }
            Some(session) => {
                let interval = match self.state {
                    ConnectionState::Connected => self.config.ping_interval(),
                    _ => self.config.ping_interval().min(retry_wait),
                };
                if now >= self.last_ping + interval {
                    self.last_ping = now;
                    let request_id = self.request_id();
                    self.pings.insert(request_id, now);
                    while self.pings.len() > ATTEMPTS_REMEMBERED_MAX {
                        self.pings.pop_first();
                    }
                    self.outbox.push(HaRequest::Ping {
                        session,
                        request_id,
                    });
                }
                for (request_id, o) in self.outstanding.iter_mut() {
                    if now >= o.last_sent + retry_wait {
                        o.last_sent = now;
                        self.outbox.push(HaRequest::Op {
                            session,
                            request_id: *request_id,
                            op: o.op.clone(),
                        });
                    }
                }
            }
        }
        events
    }

    /// When `on_tick` has something to do next.
    pub fn next_tick(&self) -> Time {
        let retry_wait = self.config.retry_wait;
        let mut next = Vec::new();
        match self.state {
            ConnectionState::Connected => next.push(self.last_ok + self.config.suspend_after()),
            ConnectionState::Suspended => {
                next.push(self.suspended_since + self.config.session_timeout)
            }
            _ => {}
        }
        match self.session {
            None => next.extend(self.connects.values().max().map(|t| *t + retry_wait)),
            Some(_) => {
                let interval = match self.state {
                    ConnectionState::Connected => self.config.ping_interval(),
                    _ => self.config.ping_interval().min(retry_wait),
                };
                next.push(self.last_ping + interval);
                next.extend(self.outstanding.values().map(|o| o.last_sent + retry_wait));
            }
        }
        next.into_iter().min().unwrap_or(Time::MAX)
    }
}

/// What the client asks of its process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Send to the `ha` node.
    Send(HaRequest),
    ConnectionStateChanged(ConnectionState),
    /// `LeaderContender.grantLeadership(leaderSessionId)`.
    Granted {
        leader_session_id: LeaderSessionId,
    },
    /// `LeaderContender.revokeLeadership()`.
    Revoked {
        leader_session_id: LeaderSessionId,
    },
    /// `confirmLeadership` wrote `connection_info` while the latch was held.
    Published {
        component: String,
        leader_session_id: LeaderSessionId,
    },
    /// `connection_info` was not written: the latch is no longer held (or no session).
    PublishRefused {
        component: String,
        leader_session_id: LeaderSessionId,
    },
    /// `LeaderRetrievalListener.notifyLeaderAddress`; `None`: no leader known.
    LeaderChanged {
        component: String,
        leader: Option<LeaderInformation>,
    },
    /// The answer to `get_and_increment`.
    CheckpointId {
        job: String,
        checkpoint_id: u64,
    },
    /// `get_and_increment` failed (connection not `Connected`, or the session was lost with the
    /// increment in flight, which may still have been applied: an id may be skipped).
    CheckpointIdFailed {
        job: String,
    },
    /// The answer to an op given to [`HaClient::submit`] (`SessionExpired` when the session was
    /// lost with it in flight: it may or may not have been applied).
    Result {
        request_id: u64,
        result: HaResult,
    },
}

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
                    if let Ok(OpResult::Created { path, stat }) = result {
                        self.node = Some((path.clone(), stat.czxid));
                        self.list(now, session);
                    }
                } else if self.listing == Some(*request_id) {
                    self.listing = None;
                    if let Ok(OpResult::Children { children, .. }) = result {
                        self.on_children(now, session, children.clone(), out);
                    }
                } else if let Some(publish) = self.publishing.remove(request_id) {
                    let (component, leader_session_id, _, create) = publish.clone();
                    match result {
                        Ok(_) => out.push(Effect::Published {
                            component,
                            leader_session_id,
                        }),
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
                } else if let Err(HaError::NoNode) = result {
                    // The predecessor vanished before the watch was set: look again.
                    if self.watching.is_some() {
                        self.watching = None;
                        self.list(now, session);
                    }
                }
            }
        }
    }
}

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
            path: connection_info_path(component),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CounterStep {
    Idle,
    Reading(u64),
    Creating(u64),
    /// Setting `value + 1` over `value`.
    Setting {
        request_id: u64,
        value: u64,
    },
}

/// `ZooKeeperCheckpointIDCounter`: `getAndIncrement` as a versioned compare-and-set on a shared
/// count, retried on `BadVersion`; it refuses to start while the connection is not `Connected`.
#[derive(Clone, Debug)]
pub struct CheckpointIdCounter {
    job: String,
    path: String,
    queued: u32,
    step: CounterStep,
}

impl CheckpointIdCounter {
    pub fn new(job: &str) -> CheckpointIdCounter {
        CheckpointIdCounter {
            job: job.to_string(),
            path: checkpoint_id_counter_path(job),
            queued: 0,
            step: CounterStep::Idle,
        }
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn get_and_increment(&mut self, now: Time, session: &mut Session, out: &mut Vec<Effect>) {
        if session.state() != ConnectionState::Connected || self.queued >= COUNTER_QUEUE_MAX {
            out.push(Effect::CheckpointIdFailed {
                job: self.job.clone(),
            });
            return;
        }
        self.queued += 1;
        if self.step == CounterStep::Idle {
            self.read(now, session, out);
        }
    }

    fn read(&mut self, now: Time, session: &mut Session, out: &mut Vec<Effect>) {
        let op = Op::GetData {
            path: self.path.clone(),
            watch: false,
        };
        match session.submit(now, op) {
            Some(request_id) => self.step = CounterStep::Reading(request_id),
            None => self.fail_all(out),
        }
    }

    fn fail_all(&mut self, out: &mut Vec<Effect>) {
        for _ in 0..self.queued {
            out.push(Effect::CheckpointIdFailed {
                job: self.job.clone(),
            });
        }
        self.queued = 0;
        self.step = CounterStep::Idle;
    }

    pub fn on_event(
        &mut self,
        now: Time,
        session: &mut Session,
        event: &SessionEvent,
        out: &mut Vec<Effect>,
    ) {
        let SessionEvent::Reply { request_id, result } = event else {
            return;
        };
        match self.step {
            CounterStep::Reading(r) if r == *request_id => match result {
                Ok(OpResult::Data {
                    data: ZnodeData::Counter(value),
                    stat,
                }) => {
                    let op = Op::SetData {
                        path: self.path.clone(),
                        data: ZnodeData::Counter(value + 1),
                        expected_version: Some(stat.version),
                    };
                    match session.submit(now, op) {
                        Some(request_id) => {
                            self.step = CounterStep::Setting {
                                request_id,
                                value: *value,
                            }
                        }
                        None => self.fail_all(out),
                    }
                }
                // SharedCount.start(): create with the initial value when missing.
                Err(HaError::NoNode) => {
                    let op = Op::Create {
                        path: self.path.clone(),
                        data: ZnodeData::Counter(INITIAL_CHECKPOINT_ID),
                        ephemeral: false,
                        sequential: false,
                    };
                    match session.submit(now, op) {
                        Some(request_id) => self.step = CounterStep::Creating(request_id),
                        None => self.fail_all(out),
                    }
                }
                _ => self.fail_all(out),
            },
            CounterStep::Creating(r) if r == *request_id => match result {
                Ok(_) | Err(HaError::NodeExists) => self.read(now, session, out),
                Err(_) => self.fail_all(out),
            },
            CounterStep::Setting {
                request_id: r,
                value,
            } if r == *request_id => match result {
                Ok(_) => {
                    assert!(self.queued > 0);
                    self.queued -= 1;
                    self.step = CounterStep::Idle;
                    out.push(Effect::CheckpointId {
                        job: self.job.clone(),
                        checkpoint_id: value,
                    });
                    if self.queued > 0 {
                        self.read(now, session, out);
                    }
                }
                // Someone else incremented in between: read and try again.
                Err(HaError::BadVersion) => self.read(now, session, out),
                Err(_) => self.fail_all(out),
            },
            _ => {}
        }
    }
}

/// One process's HA client: a session shared by an optional leader latch, leader retrievals
/// and checkpoint id counters.
#[derive(Clone, Debug)]
pub struct HaClient {
    session: Session,
    latch: Option<LeaderLatch>,
    retrievals: Vec<LeaderRetrieval>,
    counters: Vec<CheckpointIdCounter>,
    /// Ops of [`HaClient::submit`] in flight.
    submitted: BTreeSet<u64>,
}

impl HaClient {
    pub fn new(store: NodeId, config: SessionConfig) -> HaClient {
        HaClient {
            session: Session::new(store, config),
            latch: None,
            retrievals: Vec::new(),
            counters: Vec::new(),
            submitted: BTreeSet::new(),
        }
    }

    /// Sends `op`; its answer comes back as [`Effect::Result`] with the returned request id.
    /// `None`: not sent (no `Connected` session, or too many requests outstanding).
    pub fn submit(&mut self, now: Time, op: Op) -> (Option<u64>, Vec<Effect>) {
        let id = self.session.submit(now, op);
        self.submitted.extend(id);
        (id, self.finish(Vec::new()))
    }

    /// Starts following `component`'s leader (a no-op if already followed).
    pub fn add_leader_retrieval(&mut self, now: Time, component: &str) -> Vec<Effect> {
        if self.retrievals.iter().all(|r| r.component() != component) {
            let tolerate = self.session.config.tolerate_suspended_connections;
            let mut r = LeaderRetrieval::new(component, tolerate);
            if self.session.state() == ConnectionState::Connected {
                r.read(now, &mut self.session);
            }
            self.retrievals.push(r);
        }
        self.finish(Vec::new())
    }

    /// Stops following `component`'s leader.
    pub fn remove_leader_retrieval(&mut self, component: &str) {
        self.retrievals.retain(|r| r.component() != component);
    }

    /// Adds a checkpoint id counter for `job` (a no-op if it exists).
    pub fn add_checkpoint_id_counter(&mut self, job: &str) {
        if self.counters.iter().all(|c| c.job() != job) {
            self.counters.push(CheckpointIdCounter::new(job));
        }
    }

    /// Contend for leadership (process-wide, as since FLINK-24038).
    pub fn with_leader_latch(mut self) -> HaClient {
        self.latch = Some(LeaderLatch::new(
            self.session.config.tolerate_suspended_connections,
        ));
        self
    }

    pub fn with_leader_retrieval(mut self, component: &str) -> HaClient {
        let tolerate = self.session.config.tolerate_suspended_connections;
        self.retrievals
            .push(LeaderRetrieval::new(component, tolerate));
        self
    }

    pub fn with_checkpoint_id_counter(mut self, job: &str) -> HaClient {
        self.counters.push(CheckpointIdCounter::new(job));
        self
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn latch(&self) -> Option<&LeaderLatch> {
        self.latch.as_ref()
    }

    pub fn leader_session_id(&self) -> Option<LeaderSessionId> {
        self.latch.as_ref().and_then(|l| l.leader_session_id())
    }

    pub fn retrieved_leader(&self, component: &str) -> Option<LeaderInformation> {
        self.retrievals
            .iter()
            .find(|r| r.component() == component)
            .and_then(|r| r.leader())
    }

    /// When `on_tick` is next due.
    pub fn next_tick(&self) -> Time {
        self.session.next_tick()
    }

    pub fn start(&mut self, now: Time) -> Vec<Effect> {
        self.session.start(now);
        self.finish(Vec::new())
    }

    pub fn on_reply(&mut self, now: Time, reply: HaReply) -> Vec<Effect> {
        let events = self.session.on_reply(now, reply);
        self.dispatch(now, events)
    }

    pub fn on_tick(&mut self, now: Time) -> Vec<Effect> {
        let events = self.session.on_tick(now);
        self.dispatch(now, events)
    }

    /// `confirmLeadership(leaderSessionId, address)` for `component`.
    pub fn confirm_leadership(
        &mut self,
        now: Time,
        component: &str,
        leader_session_id: LeaderSessionId,
        address: NodeId,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let latch = self.latch.as_mut().expect("a leader latch");
        latch.confirm_leadership(
            now,
            &mut self.session,
            component,
            leader_session_id,
            address,
            &mut out,
        );
        self.finish(out)
    }

    /// `CheckpointIDCounter.getAndIncrement()` of `job`; answered by `CheckpointId` or
    /// `CheckpointIdFailed`.
    pub fn get_and_increment(&mut self, now: Time, job: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        let counter = self
            .counters
            .iter_mut()
            .find(|c| c.job() == job)
            .expect("a counter for the job");
        counter.get_and_increment(now, &mut self.session, &mut out);
        self.finish(out)
    }

    fn dispatch(&mut self, now: Time, events: Vec<SessionEvent>) -> Vec<Effect> {
        let mut out = Vec::new();
        for event in &events {
            if let SessionEvent::Reply { request_id, result } = event {
                if self.submitted.remove(request_id) {
                    out.push(Effect::Result {
                        request_id: *request_id,
                        result: result.clone(),
                    });
                    continue;
                }
            }
            let state = match event {
                SessionEvent::Connected { .. } | SessionEvent::Reconnected => {
                    Some(ConnectionState::Connected)
                }
                SessionEvent::Suspended => Some(ConnectionState::Suspended),
                SessionEvent::Lost => Some(ConnectionState::Lost),
                _ => None,
            };
            out.extend(state.map(Effect::ConnectionStateChanged));
            if let Some(latch) = self.latch.as_mut() {
                latch.on_event(now, &mut self.session, event, &mut out);
            }
            for r in &mut self.retrievals {
                r.on_event(now, &mut self.session, event, &mut out);
            }
            for c in &mut self.counters {
                c.on_event(now, &mut self.session, event, &mut out);
            }
        }
        self.finish(out)
    }

    fn finish(&mut self, mut out: Vec<Effect>) -> Vec<Effect> {
        out.extend(self.session.take_outbox().into_iter().map(Effect::Send));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external::ha::store::HaStore;
    use crate::protocol::ha::HaData;
    use rand::{Rng as _, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const STORE: NodeId = NodeId(0);
    const RM: &str = "resource_manager";
    const JOB: &str = "job-1";
    const TICK: Duration = Duration::from_millis(50);

    fn config(tolerate_suspended_connections: bool) -> SessionConfig {
        SessionConfig {
            session_timeout: Duration::from_secs(6),
            retry_wait: Duration::from_millis(500),
            tolerate_suspended_connections,
        }
    }

    #[derive(Clone, Debug)]
    enum Msg {
        ToStore(HaRequest),
        ToClient(HaReply),
    }

    struct Client {
        ha: HaClient,
        /// Partitioned from the store: everything to and from it is lost.
        cut: bool,
        paused_until: Time,
        effects: Vec<(Time, Effect)>,
        /// Confirm leadership on every grant, as Flink's contenders do.
        contender: bool,
    }

    /// The store, the clients and a network between them with seeded loss and delay.
    struct Net {
        now: Time,
        store: HaStore,
        /// The store's durable content, rebuilt from the persisted ops only.
        durable: HaData,
        store_down_until: Option<Time>,
        clients: Vec<Client>,
        queue: BTreeMap<(Time, u64), (NodeId, NodeId, Msg)>,
        seq: u64,
        rng: ChaCha8Rng,
        loss: f64,
        delay_max_ms: u64,
        /// Accepted `connection_info` writes: the leader session ids, in order.
        published: Vec<LeaderSessionId>,
        granted: BTreeSet<LeaderSessionId>,
        info_mzxid: u64,
    }

    impl Net {
        fn new(seed: u64, clients: Vec<HaClient>, contender: bool) -> Net {
            let mut net = Net {
                now: Time::ZERO,
                store: HaStore::new(HaData::default(), Time::ZERO),
                durable: HaData::default(),
                store_down_until: None,
                clients: Vec::new(),
                queue: BTreeMap::new(),
                seq: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
                loss: 0.0,
                delay_max_ms: 5,
                published: Vec::new(),
                granted: BTreeSet::new(),
                info_mzxid: 0,
            };
            for ha in clients {
                net.clients.push(Client {
                    ha,
                    cut: false,
                    paused_until: Time::ZERO,
                    effects: Vec::new(),
                    contender,
                });
            }
            for i in 0..net.clients.len() {
                let effects = net.clients[i].ha.start(Time::ZERO);
                net.effects(i, effects);
            }
            net
        }

        fn node(i: usize) -> NodeId {
            NodeId(i as u32 + 1)
        }

        fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
            let client = if to == STORE { from } else { to };
            if self.clients[client.index() - 1].cut || self.rng.random_bool(self.loss) {
                return;
            }
            let delay = Duration::from_millis(self.rng.random_range(1..=self.delay_max_ms));
            self.seq += 1;
            self.queue
                .insert((self.now + delay, self.seq), (to, from, msg));
        }

        fn effects(&mut self, i: usize, effects: Vec<Effect>) {
            for effect in effects {
                match &effect {
                    Effect::Send(request) => {
                        self.send(Self::node(i), STORE, Msg::ToStore(request.clone()))
                    }
                    Effect::Granted { leader_session_id } => {
                        assert!(
                            self.granted.insert(*leader_session_id),
                            "leader session id {leader_session_id:?} granted twice"
                        );
                        if self.clients[i].contender {
                            let more = self.clients[i].ha.confirm_leadership(
                                self.now,
                                RM,
                                *leader_session_id,
                                Self::node(i),
                            );
                            self.effects(i, more);
                        }
                    }
                    _ => {}
                }
                self.clients[i].effects.push((self.now, effect));
            }
        }

        /// After each store step: every accepted `connection_info` write came from the holder
        /// of the lowest latch node, once per latch term.
        fn check_published(&mut self) {
            let data = self.store.data();
            let Some(info) = data.get(&connection_info_path(RM)) else {
                return;
            };
            if info.stat.mzxid == self.info_mzxid {
                return;
            }
            self.info_mzxid = info.stat.mzxid;
            let ZnodeData::LeaderInformation(info) = info.data.clone() else {
                panic!("bad connection_info {info:?}");
            };
            let lowest = data
                .children(LATCH_PATH)
                .into_iter()
                .min()
                .expect("a latch node");
            let lowest = data.get(&format!("{LATCH_PATH}/{lowest}")).unwrap();
            assert_eq!(
                LeaderSessionId(lowest.stat.czxid),
                info.leader_session_id,
                "connection_info written by a non-holder of the latch at {:?}",
                self.now
            );
            assert!(
                !self.published.contains(&info.leader_session_id),
                "two connection_info writes in term {:?}",
                info.leader_session_id
            );
            self.published.push(info.leader_session_id);
        }

        fn deliver(&mut self, to: NodeId, from: NodeId, msg: Msg) {
            match msg {
                Msg::ToStore(request) => {
                    if self.store_down_until.is_some() {
                        return;
                    }
                    let out = self.store.handle(self.now, from, request);
                    self.after_store(out);
                }
                Msg::ToClient(reply) => {
                    let i = to.index() - 1;
                    if self.clients[i].paused_until > self.now {
                        // A paused process takes the message when it resumes.
                        self.seq += 1;
                        let at = self.clients[i].paused_until;
                        self.queue
                            .insert((at, self.seq), (to, from, Msg::ToClient(reply)));
                        return;
                    }
                    let effects = self.clients[i].ha.on_reply(self.now, reply);
                    self.effects(i, effects);
                }
            }
        }

        fn after_store(&mut self, out: crate::external::ha::store::HaOutput) {
            for op in out.persist {
                self.durable.apply(op);
            }
            assert_eq!(&self.durable, self.store.data());
            for (to, reply) in out.send {
                self.send(STORE, to, Msg::ToClient(reply));
            }
            self.check_published();
        }

        fn crash_store(&mut self, down_for: Duration) {
            self.store_down_until = Some(self.now + down_for);
        }

        /// Runs until `until`, one tick at a time.
        fn run_until(&mut self, until: Time, mut each_tick: impl FnMut(&mut Net)) {
            while self.now < until {
                self.now = self.now + TICK;
                while let Some(entry) = self.queue.first_entry() {
                    if entry.key().0 > self.now {
                        break;
                    }
                    let (to, from, msg) = entry.remove();
                    self.deliver(to, from, msg);
                }
                if self.store_down_until.is_some_and(|t| t <= self.now) {
                    self.store_down_until = None;
                    self.store = HaStore::new(self.durable.clone(), self.now);
                }
                if self.store_down_until.is_none() {
                    let out = self.store.expire(self.now);
                    self.after_store(out);
                }
                for i in 0..self.clients.len() {
                    if self.clients[i].paused_until <= self.now {
                        let effects = self.clients[i].ha.on_tick(self.now);
                        self.effects(i, effects);
                    }
                }
                each_tick(self);
            }
        }

        fn run_for(&mut self, d: Duration) {
            let until = self.now + d;
            self.run_until(until, |_| {});
        }

        fn leaders(&self) -> Vec<usize> {
            (0..self.clients.len())
                .filter(|i| self.clients[*i].ha.leader_session_id().is_some())
                .collect()
        }

        fn first_effect(&self, i: usize, after: Time, f: impl Fn(&Effect) -> bool) -> Option<Time> {
            self.clients[i]
                .effects
                .iter()
                .find(|(t, e)| *t >= after && f(e))
                .map(|(t, _)| *t)
        }
    }

    fn contenders(n: usize, tolerate: bool) -> Vec<HaClient> {
        (0..n)
            .map(|_| {
                HaClient::new(STORE, config(tolerate))
                    .with_leader_latch()
                    .with_leader_retrieval(RM)
            })
            .collect()
    }

    #[test]
    fn ha_election_three_contenders_elect_exactly_one_leader() {
        let mut net = Net::new(1, contenders(3, false), true);
        net.run_for(Duration::from_secs(10));
        let leaders = net.leaders();
        assert_eq!(leaders.len(), 1, "{leaders:?}");
        let leader = leaders[0];
        let id = net.clients[leader].ha.leader_session_id().unwrap();
        // The leader holds the lowest latch node, and published once.
        let node = net.clients[leader]
            .ha
            .latch()
            .unwrap()
            .node()
            .unwrap()
            .to_string();
        let lowest = net
            .store
            .data()
            .children(LATCH_PATH)
            .into_iter()
            .min()
            .unwrap();
        assert_eq!(node, format!("{LATCH_PATH}/{lowest}"));
        assert_eq!(net.published, vec![id]);
        assert!(net
            .first_effect(leader, Time::ZERO, |e| matches!(
                e,
                Effect::Published { .. }
            ))
            .is_some());
        // Every retriever sees the leader's address and session id.
        let expected = LeaderInformation {
            address: Net::node(leader),
            leader_session_id: id,
        };
        for c in &net.clients {
            assert_eq!(c.ha.retrieved_leader(RM), Some(expected));
            assert_eq!(c.ha.session().state(), ConnectionState::Connected);
        }
        assert_eq!(net.granted.len(), 1);
    }

    /// The leader is partitioned from the store (it stops pinging). Returns the net, the old
    /// leader, the cut time, and the times of its revoke and of the next grant.
    fn partition_the_leader(tolerate: bool) -> (Net, usize, Time, Time, Time) {
        let mut net = Net::new(2, contenders(3, tolerate), true);
        net.run_for(Duration::from_secs(5));
        let old = net.leaders()[0];
        let old_id = net.clients[old].ha.leader_session_id().unwrap();
        let cut = net.now;
        net.clients[old].cut = true;
        net.run_for(Duration::from_secs(20));
        let revoked = net
            .first_effect(old, cut, |e| {
                *e == Effect::Revoked {
                    leader_session_id: old_id,
                }
            })
            .expect("the old leader is revoked");
        let (new, granted) = (0..3)
            .filter(|i| *i != old)
            .filter_map(|i| {
                net.first_effect(i, cut, |e| matches!(e, Effect::Granted { .. }))
                    .map(|t| (i, t))
            })
            .min_by_key(|(_, t)| *t)
            .expect("a new leader");
        let new_id = net.clients[new].ha.leader_session_id().unwrap();
        assert_ne!(new_id, old_id, "a new grant has a new leader session id");
        assert!(new_id > old_id);
        assert_eq!(net.leaders(), vec![new]);
        // The followers' retrieval sees the new leader.
        for i in (0..3).filter(|i| *i != old) {
            assert_eq!(
                net.clients[i].ha.retrieved_leader(RM),
                Some(LeaderInformation {
                    address: Net::node(new),
                    leader_session_id: new_id
                })
            );
        }
        // The store dropped the old latch node no earlier than one session timeout after the cut.
        let timeout = config(tolerate).session_timeout;
        assert!(granted + config(tolerate).ping_interval() >= cut + timeout);
        assert!(granted <= cut + timeout + Duration::from_secs(1));
        (net, old, cut, revoked, granted)
    }

    #[test]
    fn ha_election_session_expiry_hands_leadership_over_after_the_old_leader_stepped_down() {
        let (mut net, old, cut, revoked, granted) = partition_the_leader(false);
        let c = config(false);
        // SUSPENDED revokes: the old leader steps down before the store drops its node.
        assert!(revoked < granted, "no overlap: {revoked:?} < {granted:?}");
        assert!(revoked <= cut + c.suspend_after() + Duration::from_secs(1));
        assert!(net
            .first_effect(old, cut, |e| *e
                == Effect::ConnectionStateChanged(ConnectionState::Lost))
            .is_some());
        // Healed, the old leader learns of the new leader and does not lead again.
        let new = net.leaders()[0];
        net.clients[old].cut = false;
        net.run_for(Duration::from_secs(5));
        assert_eq!(net.leaders(), vec![new]);
        assert_eq!(
            net.clients[old].ha.session().state(),
            ConnectionState::Connected
        );
        assert_eq!(
            net.clients[old].ha.retrieved_leader(RM).map(|l| l.address),
            Some(Net::node(new))
        );
        assert_eq!(net.published.len(), 2);
    }

    #[test]
    fn ha_election_tolerating_suspension_bounds_the_overlap_by_the_session_timeout() {
        let (_, old, cut, revoked, granted) = partition_the_leader(true);
        let c = config(true);
        // The old leader still believes it leads after the new grant (it only stops on LOST),
        // but for no longer than a session timeout.
        assert!(
            revoked > granted,
            "an overlap exists: {revoked:?} > {granted:?}"
        );
        assert!(revoked - granted <= c.session_timeout);
        assert!(revoked - cut <= c.suspend_after() + c.session_timeout + TICK);

        // Inside the overlap, the store refuses the old leader's connection_info write.
        let mut net = Net::new(2, contenders(3, true), true);
        net.run_for(Duration::from_secs(5));
        assert_eq!(net.leaders(), vec![old]);
        let old_id = net.clients[old].ha.leader_session_id().unwrap();
        let cut = net.now;
        net.clients[old].cut = true;
        net.run_for(c.session_timeout + Duration::from_secs(1));
        assert_eq!(net.leaders().len(), 2, "the overlap window");
        assert_eq!(
            net.clients[old].ha.session().state(),
            ConnectionState::Suspended
        );
        net.clients[old].cut = false;
        let effects = net.clients[old]
            .ha
            .confirm_leadership(net.now, RM, old_id, Net::node(old));
        net.effects(old, effects);
        net.run_for(Duration::from_secs(2));
        let refused = net.first_effect(old, cut, |e| {
            matches!(e, Effect::PublishRefused { leader_session_id, .. } if *leader_session_id == old_id)
        });
        assert!(refused.is_some());
        assert_eq!(net.leaders().len(), 1);
        assert_eq!(
            net.published.len(),
            2,
            "one write per term: {:?}",
            net.published
        );
        assert!(!net.published[1..].contains(&old_id));
    }

    #[test]
    fn ha_election_randomized_loss_pauses_and_store_crashes_keep_one_publishing_leader() {
        let (mut handovers, mut stale_paused_believers, mut store_crashes) = (0, 0, 0);
        for seed in 0..200u64 {
            let mut net = Net::new(seed, contenders(3, false), true);
            net.loss = 0.05;
            net.delay_max_ms = 400;
            let faults_end = Time::from_secs(60);
            net.run_until(faults_end, |net| {
                // Pauses (GC), partitions and store crashes, drawn from the seed.
                for i in 0..net.clients.len() {
                    if net.clients[i].paused_until <= net.now && net.rng.random_bool(0.002) {
                        let ms = net.rng.random_range(100..12_000);
                        net.clients[i].paused_until = net.now + Duration::from_millis(ms);
                    }
                    if net.rng.random_bool(0.002) {
                        net.clients[i].cut = !net.clients[i].cut;
                    }
                }
                if net.store_down_until.is_none() && net.rng.random_bool(0.0005) {
                    let ms = net.rng.random_range(100..5_000);
                    net.crash_store(Duration::from_millis(ms));
                    store_crashes += 1;
                }
                // A paused old leader still believes it leads while another one does: the
                // window Flink's fencing tokens exist for. It must never act before noticing.
                if net.leaders().len() > 1 {
                    stale_paused_believers += 1;
                }
                // At no time do two running contenders believe they lead with info accepted in
                // their term.
                let believers: Vec<LeaderSessionId> = (0..net.clients.len())
                    .filter(|i| net.clients[*i].paused_until <= net.now)
                    .filter_map(|i| net.clients[i].ha.leader_session_id())
                    .filter(|id| net.published.contains(id))
                    .collect();
                assert!(
                    believers.len() <= 1,
                    "seed {seed}: two leaders {believers:?} at {:?}",
                    net.now
                );
            });
            // Healed: exactly one leader, published and seen by every retriever.
            for c in &mut net.clients {
                c.cut = false;
                c.paused_until = Time::ZERO;
            }
            net.loss = 0.0;
            net.delay_max_ms = 5;
            let heal_end = net.now + Duration::from_secs(40);
            net.run_until(heal_end, |_| {});
            let leaders = net.leaders();
            assert_eq!(leaders.len(), 1, "seed {seed}: leaders {leaders:?}");
            let id = net.clients[leaders[0]].ha.leader_session_id().unwrap();
            assert_eq!(net.published.last(), Some(&id), "seed {seed}");
            for (i, c) in net.clients.iter().enumerate() {
                assert_eq!(
                    c.ha.retrieved_leader(RM),
                    Some(LeaderInformation {
                        address: Net::node(leaders[0]),
                        leader_session_id: id
                    }),
                    "seed {seed}: client {i}"
                );
            }
            // Leader session ids never repeat and only grow with every accepted publish.
            assert!(net.published.windows(2).all(|w| w[0] < w[1]), "seed {seed}");
            assert!(net.published.iter().all(|id| net.granted.contains(id)));
            handovers += net.published.len() - 1;
        }
        // The faults did bite: leadership moved, paused leaders overlapped, the store crashed.
        assert!(handovers > 200, "handovers {handovers}");
        assert!(stale_paused_believers > 0);
        assert!(store_crashes > 10, "store crashes {store_crashes}");
    }

    fn counters(n: usize) -> Vec<HaClient> {
        (0..n)
            .map(|_| {
                HaClient::new(STORE, config(false))
                    .with_leader_latch()
                    .with_checkpoint_id_counter(JOB)
            })
            .collect()
    }

    fn checkpoint_ids(net: &Net, i: usize) -> Vec<u64> {
        net.clients[i]
            .effects
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::CheckpointId { job, checkpoint_id } if job == JOB => Some(*checkpoint_id),
                _ => None,
            })
            .collect()
    }

    fn counter_value(net: &Net) -> u64 {
        match net
            .store
            .data()
            .get(&checkpoint_id_counter_path(JOB))
            .map(|n| &n.data)
        {
            Some(ZnodeData::Counter(v)) => *v,
            other => panic!("counter {other:?}"),
        }
    }

    #[test]
    fn ha_counter_concurrent_increments_yield_unique_increasing_ids() {
        let mut net = Net::new(3, counters(2), false);
        net.loss = 0.05;
        net.delay_max_ms = 100;
        net.run_until(Time::from_secs(40), |net| {
            for i in 0..2 {
                if net.rng.random_bool(0.3) {
                    let effects = net.clients[i].ha.get_and_increment(net.now, JOB);
                    net.effects(i, effects);
                }
            }
        });
        net.loss = 0.0;
        net.run_for(Duration::from_secs(5));
        let (a, b) = (checkpoint_ids(&net, 0), checkpoint_ids(&net, 1));
        assert!(a.len() > 20 && b.len() > 20, "{} {}", a.len(), b.len());
        // Each client sees strictly increasing ids, and no id is handed out twice.
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        let all: BTreeSet<u64> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), a.len() + b.len());
        assert_eq!(all.first(), Some(&INITIAL_CHECKPOINT_ID));
        // The two interleaved: CAS conflicts were resolved by retrying, not by duplicating.
        assert!(
            a.iter().any(|x| b.iter().any(|y| y > x)) && b.iter().any(|y| a.iter().any(|x| x > y))
        );
        // An increment whose answer died with its session may have been applied: that id is
        // skipped, never reused. Every skipped id is accounted for by a failed increment.
        let failed = net
            .clients
            .iter()
            .flat_map(|c| &c.effects)
            .filter(|(_, e)| matches!(e, Effect::CheckpointIdFailed { .. }))
            .count() as u64;
        let next = counter_value(&net);
        assert!(next > *all.last().unwrap());
        assert!(
            next - 1 - all.len() as u64 <= failed,
            "{next} {} {failed}",
            all.len()
        );
    }

    #[test]
    fn ha_counter_continues_after_a_new_leader_and_refuses_while_suspended() {
        let mut net = Net::new(4, counters(2), false);
        net.run_for(Duration::from_secs(3));
        let old = net.leaders()[0];
        let new = 1 - old;
        for _ in 0..5 {
            let effects = net.clients[old].ha.get_and_increment(net.now, JOB);
            net.effects(old, effects);
        }
        net.run_for(Duration::from_secs(2));
        assert_eq!(checkpoint_ids(&net, old), vec![1, 2, 3, 4, 5]);
        // The old leader loses the store; once SUSPENDED its counter refuses at once.
        net.clients[old].cut = true;
        net.run_for(config(false).suspend_after() + TICK);
        assert_eq!(
            net.clients[old].ha.session().state(),
            ConnectionState::Suspended
        );
        let effects = net.clients[old].ha.get_and_increment(net.now, JOB);
        assert_eq!(
            effects,
            vec![Effect::CheckpointIdFailed { job: JOB.into() }]
        );
        // The new leader's counter continues where the old one stopped.
        net.run_for(config(false).session_timeout);
        assert_eq!(net.leaders(), vec![new]);
        for _ in 0..3 {
            let effects = net.clients[new].ha.get_and_increment(net.now, JOB);
            net.effects(new, effects);
        }
        net.run_for(Duration::from_secs(1));
        assert_eq!(checkpoint_ids(&net, new), vec![6, 7, 8]);
        assert_eq!(counter_value(&net), 9);
    }
}
