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
//! The pieces, each in its own file: the [`Session`] (`session.rs`: connection states, pings,
//! re-sends), the [`LeaderLatch`] (`leader_latch.rs`), [`LeaderRetrieval`]
//! (`leader_retrieval.rs`) and the [`CheckpointIdCounter`] (`checkpoint_id_counter.rs`). This
//! file owns what combines them: the [`HaClient`] that feeds every session event to every recipe
//! in a fixed order, the [`Effect`]s it returns, and the `connection_info` path that the latch
//! writes and retrieval reads. It owns no session or recipe state of its own beyond the ops of
//! [`HaClient::submit`] in flight.
//!
//! Connection states follow Curator as Flink configures it; `session.rs` says how, and when
//! `Suspended` revokes leadership.
//!
//! Simplifications: one session serves every recipe of a process (as Flink's one
//! `CuratorFramework`); Curator's protected-mode latch names are unnecessary because retried
//! creates are answered from the store's retry window; the latch watches its predecessor with a
//! data watch as Curator does; the leader session id is the zxid that created the latch node
//! (unique across grants and store crashes) instead of a random UUID; a missed watch event
//! (detected from the event sequence numbers) makes every recipe re-read, standing in for the
//! ZooKeeper client's reliable, ordered connection.

mod checkpoint_id_counter;
mod leader_latch;
mod leader_retrieval;
mod session;

pub use checkpoint_id_counter::{
    checkpoint_id_counter_path, CheckpointIdCounter, COUNTER_QUEUE_MAX, INITIAL_CHECKPOINT_ID,
};
pub use leader_latch::{LeaderLatch, LATCH_PATH};
pub use leader_retrieval::LeaderRetrieval;
pub use session::{
    ConnectionState, Session, SessionConfig, SessionEvent, ATTEMPTS_REMEMBERED_MAX, OUTSTANDING_MAX,
};

use crate::protocol::ha::{HaReply, HaRequest, HaResult, LeaderInformation, LeaderSessionId, Op};
use sim::{NodeId, Time};
use std::collections::BTreeSet;

/// `/leader/<component>/connection_info`.
pub fn connection_info_path(component: &str) -> String {
    // A component is one path component.
    debug_assert!(!component.is_empty() && !component.contains('/'));
    format!("/leader/{component}/connection_info")
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
    /// The planted bug `counter-stuck-after-reconnect`, for the counters this client creates.
    counter_stuck_after_reconnect: bool,
}

impl HaClient {
    pub fn new(store: NodeId, config: SessionConfig) -> HaClient {
        HaClient {
            session: Session::new(store, config),
            latch: None,
            retrievals: Vec::new(),
            counters: Vec::new(),
            submitted: BTreeSet::new(),
            counter_stuck_after_reconnect: false,
        }
    }

    /// Plants `counter-stuck-after-reconnect` in the checkpoint id counters created from now on.
    pub fn with_counter_stuck_after_reconnect(mut self, on: bool) -> HaClient {
        self.counter_stuck_after_reconnect = on;
        self
    }

    /// Sends `op`; its answer comes back as [`Effect::Result`] with the returned request id.
    /// `None`: not sent (no `Connected` session, or too many requests outstanding).
    pub fn submit(&mut self, now: Time, op: Op) -> (Option<u64>, Vec<Effect>) {
        let id = self.session.submit(now, op);
        // Request ids are fresh.
        assert!(id.is_none_or(|i| !self.submitted.contains(&i)));
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
        debug_assert_eq!(
            self.retrievals
                .iter()
                .filter(|r| r.component() == component)
                .count(),
            1
        );
        self.finish(Vec::new())
    }

    /// Stops following `component`'s leader.
    pub fn remove_leader_retrieval(&mut self, component: &str) {
        self.retrievals.retain(|r| r.component() != component);
    }

    /// Adds a checkpoint id counter for `job` for a starting JobMaster (one that exists is
    /// reused: it is the same shared count, and Flink's fresh counter instance remembers no
    /// earlier connection state).
    pub fn add_checkpoint_id_counter(&mut self, job: &str) {
        match self.counters.iter_mut().find(|c| c.job() == job) {
            Some(c) => c.forget_connection_state(),
            None => self.counters.push(CheckpointIdCounter::new(
                job,
                self.counter_stuck_after_reconnect,
            )),
        }
        debug_assert_eq!(self.counters.iter().filter(|c| c.job() == job).count(), 1);
    }

    /// Contend for leadership (process-wide, as since FLINK-24038).
    pub fn with_leader_latch(mut self) -> HaClient {
        assert!(self.latch.is_none());
        self.latch = Some(LeaderLatch::new(
            self.session.config.tolerate_suspended_connections,
        ));
        self
    }

    pub fn with_leader_retrieval(mut self, component: &str) -> HaClient {
        // One retrieval per component.
        assert!(self.retrievals.iter().all(|r| r.component() != component));
        let tolerate = self.session.config.tolerate_suspended_connections;
        self.retrievals
            .push(LeaderRetrieval::new(component, tolerate));
        self
    }

    pub fn with_checkpoint_id_counter(mut self, job: &str) -> HaClient {
        // One counter per job.
        assert!(self.counters.iter().all(|c| c.job() != job));
        self.counters.push(CheckpointIdCounter::new(
            job,
            self.counter_stuck_after_reconnect,
        ));
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
            // A batch ends in the state its last transition made.
            match event {
                SessionEvent::Connected { session } => {
                    assert_eq!(self.session.session_id(), Some(*session))
                }
                SessionEvent::Lost => assert!(self.session.session_id().is_none()),
                SessionEvent::Reconnected => {
                    assert_eq!(self.session.state(), ConnectionState::Connected)
                }
                _ => {}
            }
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
        // A submitted op is outstanding in the session until its answer was handed out.
        assert!(self.submitted.len() <= self.session.outstanding());
        out.extend(self.session.take_outbox().into_iter().map(Effect::Send));
        out
    }
}

#[cfg(test)]
mod tests;
