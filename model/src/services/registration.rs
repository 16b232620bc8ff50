//! Flink's `RetryingRegistration`: a gateway connection, then registration attempts with a
//! doubling per-attempt timeout.
//!
//! A registration first connects to its target's address (`RpcService.connect`: a round trip
//! that resolves the remote endpoint, failing after `pekko.ask.timeout` or at once when the
//! target process runs no such endpoint); a failed connection retries after
//! `cluster.registration.error-delay`. Over the connection, the first attempt times out after
//! `cluster.registration.initial-timeout`; each timeout doubles it up to
//! `cluster.registration.max-timeout` and retries at once. A declined registration retries from
//! attempt 1 over the same connection after `cluster.registration.refused-registration-delay`; an
//! error (the target became unreachable) connects again after `cluster.registration.error-delay`.
//! Attempt and connection ids are unique per process so a late answer to an abandoned attempt
//! or connection is ignored.
//!
//! Flink's connection is two asks (Pekko's `Identify`, then a `RemoteHandshakeMessage` to the
//! endpoint); the model makes them one round trip.

use crate::protocol::config::FlinkConfig;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{ConnectPurpose, Msg};
use crate::protocol::timer::{RegistrationTarget, RegistrationTimer};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// The side a registration arrives at keeps each call waiting for its connection back, by
/// connection id: removes and returns the call `connect_id` answers when `answers` says the
/// answer is its (it came from the endpoint connected to).
pub fn take_answered<P>(
    pending: &mut BTreeMap<u64, P>,
    connect_id: u64,
    answers: impl Fn(&P) -> bool,
) -> Option<P> {
    if !answers(pending.get(&connect_id)?) {
        return None;
    }
    pending.remove(&connect_id)
}

/// Where a registration is: connecting to its target, or registering over the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Registering,
    /// Waiting for a retry after a failed connection or an error (`connect`: the retry
    /// connects again) or after a decline (it registers again over the connection).
    Waiting {
        connect: bool,
    },
}

#[derive(Debug)]
pub struct RetryingRegistration {
    target: RegistrationTarget,
    address: NodeId,
    phase: Phase,
    connect_timeout: Duration,
    initial_timeout: Duration,
    max_timeout: Duration,
    refused_delay: Duration,
    error_delay: Duration,
    attempt: u32,
    timeout: Duration,
    /// The current connection's or attempt's id.
    attempt_id: u64,
    timer: Option<TimerId>,
}

impl RetryingRegistration {
    /// Starts a registration at `address`: sends the connection request. `next_attempt_id` is
    /// the process's id counter. The caller sends an attempt when
    /// [`on_connected`](Self::on_connected) returns its id.
    pub fn start(
        target: RegistrationTarget,
        address: NodeId,
        config: &FlinkConfig,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> RetryingRegistration {
        let mut r = RetryingRegistration {
            target,
            address,
            phase: Phase::Connecting,
            connect_timeout: config.ask_timeout,
            initial_timeout: config.registration_initial_timeout,
            max_timeout: config.registration_max_timeout,
            refused_delay: config.registration_refused_delay,
            error_delay: config.registration_error_delay,
            attempt: 0,
            timeout: config.registration_initial_timeout,
            attempt_id: 0,
            timer: None,
        };
        r.connect_now(next_attempt_id, ctx);
        assert_eq!(r.phase, Phase::Connecting);
        r
    }

    fn next_id(&mut self, next_attempt_id: &mut u64) -> u64 {
        assert!(
            *next_attempt_id >= self.attempt_id,
            "attempt ids are unique per process: the counter never falls behind"
        );
        *next_attempt_id += 1;
        self.attempt_id = *next_attempt_id;
        self.attempt_id
    }

    fn connect_now(&mut self, next_attempt_id: &mut u64, ctx: &mut Ctx<'_, Flink>) {
        self.phase = Phase::Connecting;
        self.attempt = 0;
        let connect_id = self.next_id(next_attempt_id);
        // The connection fails when its ask times out.
        self.replace_timer(
            ctx,
            self.connect_timeout,
            RegistrationTimer::AttemptTimeout {
                attempt_id: connect_id,
            },
        );
        ctx.send(
            self.address,
            Msg::Connect {
                purpose: ConnectPurpose::Registration(self.target),
                connect_id,
            },
        );
    }

    fn attempt_now(
        &mut self,
        attempt: u32,
        timeout: Duration,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> u64 {
        assert!(attempt >= 1);
        self.phase = Phase::Registering;
        self.next_id(next_attempt_id);
        self.attempt = attempt;
        self.timeout = timeout;
        self.replace_timer(
            ctx,
            timeout,
            RegistrationTimer::AttemptTimeout {
                attempt_id: self.attempt_id,
            },
        );
        ctx.trace(Obs::RegistrationAttempt {
            attempt,
            timeout_ms: timeout.as_millis() as u64,
        });
        self.attempt_id
    }

    fn replace_timer(&mut self, ctx: &mut Ctx<'_, Flink>, after: Duration, t: RegistrationTimer) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        self.timer = Some(ctx.set_timer(after, self.target.timer(t)));
    }

    /// Whether `attempt_id` is the current registration attempt (not a connection, nor an
    /// abandoned attempt).
    pub fn is_current(&self, attempt_id: u64) -> bool {
        self.phase == Phase::Registering && self.attempt_id == attempt_id
    }

    /// The answer to the current connection: returns the first attempt's id to send when the
    /// target endpoint was found; otherwise (not found, or the request could not be delivered)
    /// connects again after the error delay.
    pub fn on_connected(
        &mut self,
        connect_id: u64,
        found: bool,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> Option<u64> {
        if self.phase != Phase::Connecting || self.attempt_id != connect_id {
            return None; // an abandoned connection, or one already failed
        }
        if !found {
            self.retry_later(self.error_delay, true, ctx);
            return None;
        }
        let id = self.attempt_now(1, self.initial_timeout, next_attempt_id, ctx);
        assert!(self.is_current(id));
        Some(id)
    }

    /// The current attempt timed out: returns the next attempt id to send (doubled timeout). A
    /// connection that timed out connects again after the error delay.
    pub fn on_attempt_timeout(
        &mut self,
        attempt_id: u64,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> Option<u64> {
        if self.attempt_id != attempt_id || matches!(self.phase, Phase::Waiting { .. }) {
            return None;
        }
        self.timer = None;
        if self.phase == Phase::Connecting {
            self.retry_later(self.error_delay, true, ctx);
            return None;
        }
        let timeout = (self.timeout * 2).min(self.max_timeout);
        assert!(
            timeout >= self.timeout.min(self.max_timeout),
            "the timeout never shrinks"
        );
        let previous = self.attempt;
        let id = self.attempt_now(previous + 1, timeout, next_attempt_id, ctx);
        assert_eq!(self.attempt, previous + 1);
        Some(id)
    }

    /// The current attempt was declined: retry from attempt 1 over the same connection after
    /// the refused delay.
    pub fn on_declined(&mut self, attempt_id: u64, ctx: &mut Ctx<'_, Flink>) -> bool {
        if !self.is_current(attempt_id) {
            return false;
        }
        self.retry_later(self.refused_delay, false, ctx);
        true
    }

    /// The current attempt failed with an error: connect again after the error delay.
    pub fn on_error(&mut self, attempt_id: u64, ctx: &mut Ctx<'_, Flink>) -> bool {
        if !self.is_current(attempt_id) {
            return false;
        }
        self.retry_later(self.error_delay, true, ctx);
        true
    }

    fn retry_later(&mut self, delay: Duration, connect: bool, ctx: &mut Ctx<'_, Flink>) {
        self.phase = Phase::Waiting { connect };
        let attempt_id = self.attempt_id;
        self.replace_timer(ctx, delay, RegistrationTimer::Retry { attempt_id });
    }

    /// The retry delay passed: returns the attempt id to send, or `None` when the retry
    /// connects again (the registration sent the connection request itself).
    pub fn on_retry(
        &mut self,
        attempt_id: u64,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> Option<u64> {
        let Phase::Waiting { connect } = self.phase else {
            return None;
        };
        if self.attempt_id != attempt_id {
            return None;
        }
        self.timer = None;
        if connect {
            self.connect_now(next_attempt_id, ctx);
            return None;
        }
        let id = self.attempt_now(1, self.initial_timeout, next_attempt_id, ctx);
        assert!(
            self.is_current(id) && id != attempt_id,
            "a retry is a new attempt"
        );
        Some(id)
    }

    /// Stops all timers (success or abandonment).
    pub fn cancel(&mut self, ctx: &mut Ctx<'_, Flink>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
    }
}
