//! Flink's `RetryingRegistration`: registration attempts with a doubling per-attempt timeout.
//!
//! The first attempt times out after `cluster.registration.initial-timeout`; each timeout doubles
//! it up to `cluster.registration.max-timeout` and retries at once. A declined registration
//! retries from attempt 1 after `cluster.registration.refused-registration-delay`; an error (the
//! target refused the connection) retries from attempt 1 after `cluster.registration.error-delay`.
//! Attempt ids are unique per process so a late answer to an abandoned attempt is ignored.

use crate::protocol::config::FlinkConfig;
use crate::protocol::obs::Obs;
use crate::protocol::timer::{RegistrationTarget, RegistrationTimer};
use crate::protocol::Flink;
use sim::{Ctx, TimerId};
use std::time::Duration;

#[derive(Debug)]
pub struct RetryingRegistration {
    target: RegistrationTarget,
    initial_timeout: Duration,
    max_timeout: Duration,
    refused_delay: Duration,
    error_delay: Duration,
    attempt: u32,
    timeout: Duration,
    attempt_id: u64,
    timer: Option<TimerId>,
}

impl RetryingRegistration {
    /// Starts a registration; `next_attempt_id` is the process's attempt id counter. Returns the
    /// attempt id the caller must send now.
    pub fn start(
        target: RegistrationTarget,
        config: &FlinkConfig,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> (RetryingRegistration, u64) {
        let mut r = RetryingRegistration {
            target,
            initial_timeout: config.registration_initial_timeout,
            max_timeout: config.registration_max_timeout,
            refused_delay: config.registration_refused_delay,
            error_delay: config.registration_error_delay,
            attempt: 0,
            timeout: config.registration_initial_timeout,
            attempt_id: 0,
            timer: None,
        };
        let id = r.attempt_now(1, config.registration_initial_timeout, next_attempt_id, ctx);
        assert_eq!(r.attempt, 1);
        assert!(r.is_current(id));
        (r, id)
    }

    fn attempt_now(
        &mut self,
        attempt: u32,
        timeout: Duration,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> u64 {
        assert!(attempt >= 1);
        assert!(
            *next_attempt_id >= self.attempt_id,
            "attempt ids are unique per process: the counter never falls behind"
        );
        *next_attempt_id += 1;
        self.attempt = attempt;
        self.timeout = timeout;
        self.attempt_id = *next_attempt_id;
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

    pub fn is_current(&self, attempt_id: u64) -> bool {
        self.attempt_id == attempt_id
    }

    /// The current attempt timed out: returns the next attempt id to send (doubled timeout).
    pub fn on_attempt_timeout(
        &mut self,
        attempt_id: u64,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> Option<u64> {
        if !self.is_current(attempt_id) {
            return None;
        }
        self.timer = None;
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

    /// The current attempt was declined: retry from attempt 1 after the refused delay.
    pub fn on_declined(&mut self, attempt_id: u64, ctx: &mut Ctx<'_, Flink>) -> bool {
        self.later(attempt_id, self.refused_delay, ctx)
    }

    /// The current attempt failed with an error: retry from attempt 1 after the error delay.
    pub fn on_error(&mut self, attempt_id: u64, ctx: &mut Ctx<'_, Flink>) -> bool {
        self.later(attempt_id, self.error_delay, ctx)
    }

    fn later(&mut self, attempt_id: u64, delay: Duration, ctx: &mut Ctx<'_, Flink>) -> bool {
        if !self.is_current(attempt_id) {
            return false;
        }
        self.replace_timer(ctx, delay, RegistrationTimer::Retry { attempt_id });
        true
    }

    /// The retry delay passed: returns the attempt id to send.
    pub fn on_retry(
        &mut self,
        attempt_id: u64,
        next_attempt_id: &mut u64,
        ctx: &mut Ctx<'_, Flink>,
    ) -> Option<u64> {
        if !self.is_current(attempt_id) {
            return None;
        }
        self.timer = None;
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
