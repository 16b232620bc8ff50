//! The checkpoint id counter: Flink's `ZooKeeperCheckpointIDCounter` on Curator's
//! `SharedCount`, one znode per job under `/jobs/<job>`. It owns the counter's path, the
//! increments queued behind the one in flight and the read / create / compare-and-set step it is
//! at; a version conflict retries, any other failed step fails every queued increment. It does
//! not own the session ([`super::session`]) or what the JobMaster does with the ids.

use super::session::{ConnectionState, Session, SessionEvent};
use super::Effect;
use crate::protocol::ha::{HaError, Op, OpResult, ZnodeData};
use sim::Time;

/// How many checkpoint id increments may wait per counter.
pub const COUNTER_QUEUE_MAX: u32 = 16;
/// `CheckpointIDCounter.INITIAL_CHECKPOINT_ID`.
pub const INITIAL_CHECKPOINT_ID: u64 = 1;

/// `/jobs/<job>/checkpoint_id_counter`.
pub fn checkpoint_id_counter_path(job: &str) -> String {
    debug_assert!(!job.is_empty() && !job.contains('/'));
    format!("/jobs/{job}/checkpoint_id_counter")
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
    /// The planted bug `counter-stuck-after-reconnect`: a SUSPENDED connection is remembered
    /// through RECONNECTED (FLINK-14091's connection-state listener).
    stuck_after_reconnect: bool,
    /// With the bug: the suspension it remembers.
    remembered_suspension: bool,
}

impl CheckpointIdCounter {
    pub fn new(job: &str, stuck_after_reconnect: bool) -> CheckpointIdCounter {
        CheckpointIdCounter {
            job: job.to_string(),
            path: checkpoint_id_counter_path(job),
            queued: 0,
            step: CounterStep::Idle,
            stuck_after_reconnect,
            remembered_suspension: false,
        }
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    /// A new JobMaster's counter instance: no connection state remembered.
    pub fn forget_connection_state(&mut self) {
        self.remembered_suspension = false;
    }

    pub fn get_and_increment(&mut self, now: Time, session: &mut Session, out: &mut Vec<Effect>) {
        if session.state() != ConnectionState::Connected
            || self.queued >= COUNTER_QUEUE_MAX
            || self.remembered_suspension
        {
            out.push(Effect::CheckpointIdFailed {
                job: self.job.clone(),
            });
            return;
        }
        self.queued += 1;
        if self.step == CounterStep::Idle {
            self.read(now, session, out);
        }
        assert!(self.queued <= COUNTER_QUEUE_MAX);
        // A step in progress serves a queued increment.
        assert!(self.step == CounterStep::Idle || self.queued > 0);
    }

    fn read(&mut self, now: Time, session: &mut Session, out: &mut Vec<Effect>) {
        assert!(self.queued > 0);
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
        match event {
            // Before FLINK-14091 Flink's listener remembered a SUSPENDED (or LOST) state for the
            // life of the counter instance; the fix forgets it on RECONNECTED, when the same
            // session works again. A new session means a new leadership and a new instance.
            SessionEvent::Suspended if self.stuck_after_reconnect => {
                self.remembered_suspension = true
            }
            SessionEvent::Connected { .. } => self.remembered_suspension = false,
            _ => {}
        }
        let SessionEvent::Reply { request_id, result } = event else {
            return;
        };
        match self.step {
            CounterStep::Reading(r) if r == *request_id => match result {
                Ok(OpResult::Data {
                    data: ZnodeData::Counter(value),
                    stat,
                }) => {
                    // The shared count starts at the initial id and only grows.
                    assert!(*value >= INITIAL_CHECKPOINT_ID);
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
        assert!(self.step == CounterStep::Idle || self.queued > 0);
    }
}
