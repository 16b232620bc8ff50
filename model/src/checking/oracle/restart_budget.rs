//! Restart budget (always): a job never restarts more often than its restart strategy allows
//! (`restart-strategy.*`, docs/flink-runtime.md §6.3).
//!
//! Ground truth: the JobMaster's `RestartScheduled` reports, counted per JobMaster process and
//! job; a new JobMaster instance (its first `JobStatusChanged`) or a dead process starts with a
//! fresh strategy, as Flink's does. Every failure the JobMaster hands to the strategy either
//! ends in one `RestartScheduled` or fails the job, so the events are the allowed failures:
//! - `none`: no restart at all;
//! - `fixed-delay`: at most `attempts` restarts;
//! - `failure-rate`: never `max-failures-per-interval + 1` restarts whose first and last lie
//!   within `failure-rate-interval` (Flink refuses when "oldest-to-now ≤ interval");
//! - `exponential-delay` with `attempts-before-reset-backoff`: at most that many restarts
//!   between resets. The oracle replays Flink's bookkeeping from the reported backoffs: a
//!   failure at or before the pending restart's time is merged into it (FLIP-364: reported,
//!   but not a new attempt), and one arriving `reset-backoff-threshold` or more after the last
//!   scheduled restart time resets the count;
//! - otherwise unlimited.
//!
//! Times are the JobMaster process's monotonic clock, which Flink's strategy reads, and
//! durations are truncated to whole milliseconds as Flink reads its options.

use super::{process_died, secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::jobmanager::job_master::restart_strategy::RestartStrategyConfig;
use crate::protocol::ids::JobId;
use crate::protocol::obs::Obs;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "restart-budget",
    kind: Kind::Always,
    description: "a job restarts no more often than restart-strategy.* allows (none: never; fixed-delay: attempts; failure-rate: max-failures-per-interval per interval; exponential-delay: attempts-before-reset-backoff between resets)",
};

/// What the oracle remembers of one JobMaster's restarts.
#[derive(Debug, Default)]
struct Budget {
    /// Restarts counted against the budget (for exponential-delay: since the last reset).
    restarts: u64,
    /// failure-rate: the monotonic times (ns) of the latest `max` restarts, oldest first.
    window: VecDeque<u64>,
    /// exponential-delay: when the pending (latest) restart runs, monotonic ns.
    next_restart_ns: Option<u64>,
}

pub struct RestartBudget {
    strategy: RestartStrategyConfig,
    budgets: BTreeMap<(NodeId, JobId), Budget>,
}

fn ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

impl RestartBudget {
    pub fn new(setup: &Setup) -> RestartBudget {
        RestartBudget {
            strategy: setup.config.restart_strategy.clone(),
            budgets: BTreeMap::new(),
        }
    }

    /// Counts one restart at `now_ns`; returns why it exceeds the budget, if it does.
    fn count(&mut self, key: (NodeId, JobId), now_ns: u64, backoff_ms: u64) -> Option<String> {
        let budget = self.budgets.entry(key).or_default();
        match &self.strategy {
            RestartStrategyConfig::NoRestart => {
                budget.restarts += 1;
                Some("restart-strategy is none: no restart is allowed".to_string())
            }
            RestartStrategyConfig::FixedDelay { attempts, .. } => {
                budget.restarts += 1;
                (budget.restarts > u64::from(*attempts)).then(|| {
                    format!(
                        "this is restart {} but fixed-delay allows {attempts} (restart-strategy.fixed-delay.attempts)",
                        budget.restarts
                    )
                })
            }
            RestartStrategyConfig::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                ..
            } => {
                let max = *max_failures_per_interval as usize;
                let interval = ms(*failure_rate_interval);
                budget.restarts += 1;
                let too_many = match budget.window.front() {
                    Some(&oldest) if budget.window.len() >= max => {
                        let span = Duration::from_nanos(now_ns - oldest);
                        (span <= interval).then(|| {
                            format!(
                                "{} restarts within {} on the JobMaster's clock, but failure-rate allows {max} per {} (restart-strategy.failure-rate.*)",
                                max + 1,
                                secs(span),
                                secs(interval)
                            )
                        })
                    }
                    _ => None,
                };
                budget.window.push_back(now_ns);
                while budget.window.len() > max {
                    budget.window.pop_front();
                }
                too_many
            }
            RestartStrategyConfig::ExponentialDelay {
                reset_backoff_threshold,
                attempts_before_reset_backoff: Some(limit),
                ..
            } => {
                if let Some(next) = budget.next_restart_ns {
                    if now_ns <= next {
                        return None; // merged into the pending restart (FLIP-364)
                    }
                    if Duration::from_nanos(now_ns - next) >= ms(*reset_backoff_threshold) {
                        budget.restarts = 0;
                    }
                }
                budget.restarts += 1;
                budget.next_restart_ns =
                    Some(now_ns.saturating_add(backoff_ms.saturating_mul(1_000_000)));
                (budget.restarts > u64::from(*limit)).then(|| {
                    format!(
                        "this is restart {} without a backoff reset, but exponential-delay allows {limit} (restart-strategy.exponential-delay.attempts-before-reset-backoff)",
                        budget.restarts
                    )
                })
            }
            RestartStrategyConfig::ExponentialDelay {
                attempts_before_reset_backoff: None,
                ..
            } => None,
        }
    }
}

impl Oracle for RestartBudget {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            self.budgets.retain(|(node, _), _| *node != n);
            return;
        }
        let EventKind::Obs { node, obs } = &ev.kind else {
            return;
        };
        match obs {
            Obs::JobStatusChanged {
                job_id, from: None, ..
            } => {
                // A new JobMaster instance starts with a fresh restart strategy.
                self.budgets.remove(&(*node, *job_id));
            }
            Obs::RestartScheduled {
                job_id, backoff_ms, ..
            } => {
                let now_ns = census.mono(*node, ev.time);
                if let Some(why) = self.count((*node, *job_id), now_ns, *backoff_ms) {
                    out.push(Violation {
                        invariant: INVARIANT.name,
                        at: ev.time,
                        node: Some(*node),
                        message: format!(
                            "the JobMaster of job {job_id:x} on {} scheduled a restart: {why}; the job should have failed",
                            census.name(*node)
                        ),
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, _census: &Census, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM};
    use crate::protocol::config::FlinkConfig;
    use sim::Fault;

    fn restart(backoff_ms: u64) -> Step {
        Step::Obs(
            JM,
            Obs::RestartScheduled {
                job_id: 5,
                vertices: 2,
                backoff_ms,
                global: true,
            },
        )
    }

    fn check(strategy: RestartStrategyConfig, steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut config = FlinkConfig::default();
        config.restart_strategy = strategy;
        let mut oracle = RestartBudget::new(&setup(config));
        feed(&mut oracle, w.census(), steps, Some(1_000_000))
    }

    fn fixed(attempts: u32) -> RestartStrategyConfig {
        RestartStrategyConfig::FixedDelay {
            attempts,
            delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn fixed_delay_within_its_attempts_holds() {
        let steps = [(1_000, restart(1_000)), (5_000, restart(1_000))];
        assert_eq!(check(fixed(2), &steps), vec![]);
    }

    #[test]
    fn a_third_restart_with_two_fixed_delay_attempts_is_caught() {
        let steps = [
            (1_000, restart(1_000)),
            (5_000, restart(1_000)),
            (9_000, restart(1_000)),
        ];
        let v = check(fixed(2), &steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("restart 3 but fixed-delay allows 2"),
            "{}",
            v[0].message
        );
        // A new JobMaster (after a crash) has a fresh budget.
        let mut again = steps.into_iter().collect::<Vec<_>>();
        again.insert(2, (8_000, Step::Fault(Fault::Kill(JM))));
        assert_eq!(check(fixed(2), &again), vec![]);
    }

    #[test]
    fn no_restart_means_none() {
        let v = check(RestartStrategyConfig::NoRestart, &[(1_000, restart(0))]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn failure_rate_counts_restarts_per_window() {
        let rate = RestartStrategyConfig::FailureRate {
            max_failures_per_interval: 2,
            failure_rate_interval: Duration::from_secs(10),
            delay: Duration::from_secs(1),
        };
        // Three restarts spanning more than the interval are fine.
        let ok = [
            (0, restart(1_000)),
            (5_000, restart(1_000)),
            (10_001, restart(1_000)),
        ];
        assert_eq!(check(rate.clone(), &ok), vec![]);
        // Three within exactly the interval are one too many.
        let bad = [
            (0, restart(1_000)),
            (5_000, restart(1_000)),
            (10_000, restart(1_000)),
        ];
        let v = check(rate, &bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("3 restarts within 10.000 s"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn exponential_delay_merges_and_resets_like_flink() {
        let exp = RestartStrategyConfig::ExponentialDelay {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            reset_backoff_threshold: Duration::from_secs(100),
            jitter_factor: 0.0,
            attempts_before_reset_backoff: Some(2),
        };
        let ok = [
            (0, restart(1_000)),
            // Before the pending restart at 1 s: merged, not a new attempt.
            (500, restart(500)),
            (2_000, restart(2_000)),
            // ≥ 100 s after the restart scheduled for 4 s: the count resets.
            (104_000, restart(1_000)),
        ];
        assert_eq!(check(exp.clone(), &ok), vec![]);
        let bad = [
            (0, restart(1_000)),
            (2_000, restart(2_000)),
            (5_000, restart(4_000)),
        ];
        let v = check(exp, &bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("restart 3 without a backoff reset"),
            "{}",
            v[0].message
        );
    }
}
