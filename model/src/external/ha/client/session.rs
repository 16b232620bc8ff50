//! The ZooKeeper session under every recipe: Curator's connection handling as Flink configures
//! it. It owns the connection state ([`ConnectionState`]) and its timings ([`SessionConfig`],
//! from `high-availability.zookeeper.client.*`), connecting (again, after a lost session), the
//! pings that keep the session alive, and the requests in flight with their re-sends every
//! `retry-wait`; it turns the store's replies and the passing of time into [`SessionEvent`]s. It
//! does not own the recipes that react to those events (the leader latch, leader retrieval and
//! the checkpoint id counter, each in its own file) nor the [`super::HaClient`] that hands the
//! events to them and sends the session's outbox.
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

use crate::protocol::ha::{HaError, HaReply, HaRequest, HaResult, Op, SessionId, WatchEvent};
use sim::{NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// How many requests a session keeps outstanding; a submit beyond it is refused.
pub const OUTSTANDING_MAX: usize = 64;
/// How many unanswered pings and connect attempts a session remembers.
pub const ATTEMPTS_REMEMBERED_MAX: usize = 8;

pub use crate::protocol::config::ha_client::SessionConfig;

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
    pub(super) config: SessionConfig,
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
        assert!(matches!(
            self.state,
            ConnectionState::Connected | ConnectionState::Suspended
        ));
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
        // A session exists exactly while `Connected` or `Suspended`; without one nothing is in
        // flight but connect attempts, and with one no connect is.
        assert_eq!(
            self.session.is_some(),
            matches!(
                self.state,
                ConnectionState::Connected | ConnectionState::Suspended
            )
        );
        if self.session.is_none() {
            assert!(self.outstanding.is_empty() && self.pings.is_empty());
        } else {
            assert!(self.connects.is_empty());
        }
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
        assert!(matches!(
            self.state,
            ConnectionState::Connected | ConnectionState::Suspended
        ));
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
        // Only the live session is heard, about a request sent in the past.
        assert!(self.session.is_some());
        assert!(sent <= now);
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
            } => self.on_connected(now, request_id, session, timeout, &mut events),
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
                // The store numbers a session's watch events from 1.
                assert!(event.seq > 0);
                if event.seq > self.events_seen + 1 {
                    events.push(SessionEvent::Resync);
                }
                self.events_seen = self.events_seen.max(event.seq);
                events.push(SessionEvent::Watch(event));
            }
        }
        events
    }

    /// The answer to a connect attempt: the new session, or a duplicate to close.
    fn on_connected(
        &mut self,
        now: Time,
        request_id: u64,
        session: SessionId,
        timeout: Duration,
        events: &mut Vec<SessionEvent>,
    ) {
        assert_eq!(timeout, self.config.session_timeout);
        match self.connects.get(&request_id) {
            Some(&sent) if self.session.is_none() => {
                // A new session follows none or a lost one, and starts with nothing in flight.
                assert!(matches!(
                    self.state,
                    ConnectionState::Latent | ConnectionState::Lost
                ));
                assert!(self.outstanding.is_empty() && sent <= now);
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

    pub fn on_tick(&mut self, now: Time) -> Vec<SessionEvent> {
        let mut events = Vec::new();
        self.check(now, &mut events);
        let retry_wait = self.config.retry_wait;
        match self.session {
            None => {
                // Without a session a connect is in flight, once started.
                assert!(!self.connects.is_empty() || self.state == ConnectionState::Latent);
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
                    assert!(o.first_sent <= o.last_sent && o.last_sent <= now);
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
        let next = next.into_iter().min().unwrap_or(Time::MAX);
        // A live session always has a ping due.
        assert!(self.session.is_none() || next < Time::MAX);
        next
    }
}
