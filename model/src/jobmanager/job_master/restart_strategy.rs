//! Flink's `RestartBackoffTimeStrategy` (docs/flink-runtime.md §6.3): after each failure, whether the job may
//! restart and how long to wait first. One [`RestartBackoffTimeStrategy`] per job, owned by the
//! JobMaster's failure handling, built from a [`RestartStrategyConfig`].
//!
//! This module owns the four strategies' bookkeeping (`none`, `fixed-delay`, `failure-rate`,
//! `exponential-delay`) with Flink's exact comparisons and integer-millisecond arithmetic. It
//! does not own parsing `restart-strategy.*` keys (the configuration), choosing the default
//! strategy, or scheduling the restart (the JobMaster).
//!
//! The strategy is pure: the caller passes the current time and, for exponential-delay's jitter,
//! a seeded random generator. Flink reads its clock again in `canRestart`/`getBackoffTime`, but
//! `ExecutionFailureHandler` always calls them in the same handler right after `notifyFailure`,
//! so here both answer as of the `now` of the latest
//! [`notify_failure`](RestartBackoffTimeStrategy::notify_failure): call them right after it.

use std::collections::VecDeque;
use std::time::Duration;

pub use crate::protocol::config::restart::RestartStrategyConfig;

/// The per-strategy state; configuration already truncated to milliseconds.
#[derive(Clone, Debug)]
enum Strategy {
    NoRestart,
    FixedDelay {
        attempts: u32,
        delay_ms: u64,
        /// Failures so far (Flink's `currentRestartAttempt`). u64 so that `attempts = u32::MAX`
        /// really means "never refuse" without saturating into a false "≤".
        failures: u64,
    },
    FailureRate {
        max_failures_per_interval: u32,
        failure_rate_interval: Duration,
        delay_ms: u64,
        /// The latest failure times, at most `max_failures_per_interval + 1`, oldest first.
        failure_timestamps: VecDeque<Duration>,
    },
    ExponentialDelay {
        initial_backoff_ms: u64,
        max_backoff_ms: u64,
        backoff_multiplier: f64,
        reset_backoff_threshold: Duration,
        jitter_factor: f64,
        attempts_before_reset_backoff: Option<u32>,
        /// Restarts scheduled since the last reset.
        current_restart_attempt: u32,
        /// When the currently scheduled restart runs; `None` before the first failure.
        next_restart: Option<Duration>,
    },
}

/// Decides, failure by failure, whether the job may restart and after what backoff.
#[derive(Clone, Debug)]
pub struct RestartBackoffTimeStrategy {
    strategy: Strategy,
    /// The `now` of the latest `notify_failure`: what `can_restart` and `backoff_time` answer for.
    last_failure: Option<Duration>,
}

impl RestartBackoffTimeStrategy {
    /// Panics when `config` fails [`RestartStrategyConfig::validate`]; validate scenario input
    /// first.
    pub fn new(config: RestartStrategyConfig) -> Self {
        if let Err(error) = config.validate() {
            panic!("invalid restart strategy: {error}");
        }
        let strategy = match config {
            RestartStrategyConfig::NoRestart => Strategy::NoRestart,
            RestartStrategyConfig::FixedDelay { attempts, delay } => Strategy::FixedDelay {
                attempts,
                delay_ms: millis(delay),
                failures: 0,
            },
            RestartStrategyConfig::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                delay,
            } => Strategy::FailureRate {
                max_failures_per_interval,
                failure_rate_interval: Duration::from_millis(millis(failure_rate_interval)),
                delay_ms: millis(delay),
                failure_timestamps: VecDeque::with_capacity(max_failures_per_interval as usize + 1),
            },
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff,
                max_backoff,
                backoff_multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset_backoff,
            } => Strategy::ExponentialDelay {
                initial_backoff_ms: millis(initial_backoff),
                max_backoff_ms: millis(max_backoff),
                backoff_multiplier,
                reset_backoff_threshold: Duration::from_millis(millis(reset_backoff_threshold)),
                jitter_factor,
                attempts_before_reset_backoff,
                current_restart_attempt: 0,
                next_restart: None,
            },
        };
        RestartBackoffTimeStrategy {
            strategy,
            last_failure: None,
        }
    }

    /// A failure happened at `now`. Returns false when it was merged into the already-scheduled
    /// restart (exponential-delay, FLIP-364); true otherwise. `rng` is drawn from only when
    /// exponential-delay schedules a new attempt with a non-zero jitter factor, so a seed's
    /// draws do not depend on the strategy's other settings.
    pub fn notify_failure(&mut self, now: Duration, rng: &mut impl rand::Rng) -> bool {
        if let Some(last) = self.last_failure {
            assert!(now >= last, "time went back: {now:?} < {last:?}");
        }
        self.last_failure = Some(now);
        match &mut self.strategy {
            Strategy::NoRestart => true,
            Strategy::FixedDelay { failures, .. } => {
                *failures += 1;
                true
            }
            Strategy::FailureRate {
                max_failures_per_interval,
                failure_rate_interval: _,
                delay_ms: _,
                failure_timestamps,
            } => {
                // Keep one more timestamp than allowed failures: the window is "full" exactly
                // when it holds max + 1 failures, and then its oldest decides.
                if failure_timestamps.len() > *max_failures_per_interval as usize {
                    failure_timestamps.pop_front();
                }
                failure_timestamps.push_back(now);
                assert!(failure_timestamps.len() <= *max_failures_per_interval as usize + 1);
                true
            }
            Strategy::ExponentialDelay {
                initial_backoff_ms,
                max_backoff_ms,
                backoff_multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset_backoff: _,
                current_restart_attempt,
                next_restart,
            } => {
                if let Some(next) = *next_restart {
                    // Failures of tasks that the pending restart will restart anyway (e.g. the
                    // other subtasks of a region going down together) must not each escalate
                    // the backoff: they join the scheduled attempt.
                    if now <= next {
                        return false;
                    }
                    // A long enough quiet period after the last restart means the job recovered;
                    // start the backoff from the beginning again.
                    if now - next >= *reset_backoff_threshold {
                        *current_restart_attempt = 0;
                    }
                }
                let backoff_ms = exponential_backoff_ms(
                    *initial_backoff_ms,
                    *max_backoff_ms,
                    *backoff_multiplier,
                    *jitter_factor,
                    *current_restart_attempt,
                    rng,
                );
                assert!(backoff_ms >= *initial_backoff_ms);
                assert!(backoff_ms <= *max_backoff_ms);
                *next_restart = Some(now + Duration::from_millis(backoff_ms));
                *current_restart_attempt = current_restart_attempt.saturating_add(1);
                true
            }
        }
    }

    /// Whether the job may restart after the failures notified so far.
    pub fn can_restart(&self) -> bool {
        match &self.strategy {
            Strategy::NoRestart => false,
            Strategy::FixedDelay {
                attempts, failures, ..
            } => *failures <= u64::from(*attempts),
            Strategy::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                delay_ms: _,
                failure_timestamps,
            } => {
                if failure_timestamps.len() <= *max_failures_per_interval as usize {
                    return true;
                }
                let now = self.last_failure.expect("a full window has seen failures");
                let oldest = *failure_timestamps.front().expect("full window");
                // Strictly greater, as Flink: max + 1 failures spanning exactly the interval are
                // still too many.
                now - oldest > *failure_rate_interval
            }
            Strategy::ExponentialDelay {
                attempts_before_reset_backoff,
                current_restart_attempt,
                ..
            } => match attempts_before_reset_backoff {
                None => true,
                Some(limit) => current_restart_attempt <= limit,
            },
        }
    }

    /// How long to wait, from the latest failure, before restarting. For exponential-delay this
    /// is the time left until the scheduled restart, so a merged failure gets the remainder.
    pub fn backoff_time(&self) -> Duration {
        match &self.strategy {
            Strategy::NoRestart => Duration::ZERO,
            Strategy::FixedDelay { delay_ms, .. } | Strategy::FailureRate { delay_ms, .. } => {
                Duration::from_millis(*delay_ms)
            }
            Strategy::ExponentialDelay { next_restart, .. } => {
                let next = next_restart.expect("backoff_time before any notify_failure");
                let now = self.last_failure.expect("set with next_restart");
                next.saturating_sub(now)
            }
        }
    }

    /// The `restart-strategy.type` value: "none", "fixed-delay", "failure-rate" or
    /// "exponential-delay".
    pub fn name(&self) -> &'static str {
        match self.strategy {
            Strategy::NoRestart => "none",
            Strategy::FixedDelay { .. } => "fixed-delay",
            Strategy::FailureRate { .. } => "failure-rate",
            Strategy::ExponentialDelay { .. } => "exponential-delay",
        }
    }
}

/// Flink's `calculateActualBackoffTime`: `initial · multiplier^attempt`, truncated to whole
/// milliseconds, plus a uniform jitter in `[-offset, offset]` with `offset = backoff · factor`
/// (truncated), clamped to `[initial, max]`.
fn exponential_backoff_ms(
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    backoff_multiplier: f64,
    jitter_factor: f64,
    attempt: u32,
    rng: &mut impl rand::Rng,
) -> u64 {
    assert!(initial_backoff_ms >= 1);
    assert!(initial_backoff_ms <= max_backoff_ms);
    assert!(backoff_multiplier > 1.0);
    assert!((0.0..=1.0).contains(&jitter_factor));
    // Float-to-int casts saturate, like Java's `(long)`: a huge attempt count yields i64::MAX,
    // which the clamp below brings back to max.
    let backoff = (initial_backoff_ms as f64 * backoff_multiplier.powf(f64::from(attempt))) as i64;
    let jitter = if jitter_factor == 0.0 {
        0
    } else {
        let offset = (backoff as f64 * jitter_factor) as i64;
        rng.random_range(-offset..=offset)
    };
    let jittered = i128::from(backoff) + i128::from(jitter);
    jittered.clamp(i128::from(initial_backoff_ms), i128::from(max_backoff_ms)) as u64
}

/// Whole milliseconds of `d`, as Flink's `Duration.toMillis()`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("duration beyond u64 milliseconds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn exponential(
        max_ms: u64,
        reset_ms: u64,
        jitter: f64,
        attempts: Option<u32>,
    ) -> RestartStrategyConfig {
        RestartStrategyConfig::ExponentialDelay {
            initial_backoff: ms(1000),
            max_backoff: ms(max_ms),
            backoff_multiplier: 1.5,
            reset_backoff_threshold: ms(reset_ms),
            jitter_factor: jitter,
            attempts_before_reset_backoff: attempts,
        }
    }

    #[test]
    fn names() {
        let table = [
            (RestartStrategyConfig::NoRestart, "none"),
            (RestartStrategyConfig::FIXED_DELAY_DEFAULT, "fixed-delay"),
            (RestartStrategyConfig::FAILURE_RATE_DEFAULT, "failure-rate"),
            (
                RestartStrategyConfig::EXPONENTIAL_DELAY_DEFAULT,
                "exponential-delay",
            ),
        ];
        for (config, name) in table {
            assert_eq!(config.name(), name);
            assert!(config.validate().is_ok(), "{name}");
            assert_eq!(RestartBackoffTimeStrategy::new(config).name(), name);
        }
    }

    #[test]
    fn no_restart_never_restarts() {
        let mut strategy = RestartBackoffTimeStrategy::new(RestartStrategyConfig::NoRestart);
        assert!(!strategy.can_restart());
        assert!(strategy.notify_failure(ms(5), &mut rng()));
        assert!(!strategy.can_restart());
        assert_eq!(strategy.backoff_time(), Duration::ZERO);
    }

    #[test]
    fn fixed_delay_table() {
        // (attempts, can_restart after failure 1, 2, 3, …)
        let table: &[(u32, &[bool])] = &[
            (0, &[false, false]),
            (1, &[true, false, false]),
            (2, &[true, true, false, false]),
            (5, &[true, true, true, true, true, false]),
        ];
        for &(attempts, expected) in table {
            let mut strategy = RestartBackoffTimeStrategy::new(RestartStrategyConfig::FixedDelay {
                attempts,
                delay: Duration::from_micros(2_500_900),
            });
            assert!(
                strategy.can_restart(),
                "attempts {attempts}: before any failure"
            );
            for (index, &allowed) in expected.iter().enumerate() {
                assert!(strategy.notify_failure(ms(index as u64 * 10_000), &mut rng()));
                assert_eq!(
                    strategy.can_restart(),
                    allowed,
                    "attempts {attempts}, failure {}",
                    index + 1
                );
                // Constant delay, truncated to whole milliseconds.
                assert_eq!(strategy.backoff_time(), ms(2500));
            }
        }
    }

    #[test]
    fn fixed_delay_unlimited_attempts_never_refuse() {
        let mut strategy = RestartBackoffTimeStrategy::new(RestartStrategyConfig::FixedDelay {
            attempts: u32::MAX,
            delay: ms(0),
        });
        for failure in 0..1000 {
            strategy.notify_failure(ms(failure), &mut rng());
            assert!(strategy.can_restart());
            assert_eq!(strategy.backoff_time(), Duration::ZERO);
        }
    }

    #[test]
    fn failure_rate_table() {
        // (max failures per interval, interval ms, failure times ms, can_restart after each)
        let table: &[(u32, u64, &[u64], &[bool])] = &[
            // Three failures within 10 s with max 2: refused on the third.
            (2, 10_000, &[0, 1_000, 2_000], &[true, true, false]),
            // Exactly the interval between oldest and now is still inside the window.
            (2, 10_000, &[0, 5_000, 10_000], &[true, true, false]),
            (2, 10_000, &[0, 5_000, 10_001], &[true, true, true]),
            // The window slides: the oldest is dropped once a newer one arrives.
            (
                2,
                10_000,
                &[0, 1_000, 2_000, 11_500, 11_999],
                &[true, true, false, true, false],
            ),
            (
                2,
                10_000,
                &[0, 1_000, 2_000, 11_500, 21_600],
                &[true, true, false, true, true],
            ),
            // max 1: two failures in a minute are too many.
            (
                1,
                60_000,
                &[0, 59_000, 118_000, 178_001],
                &[true, false, false, true],
            ),
            // Many failures far apart are fine.
            (
                1,
                1_000,
                &[0, 2_000, 4_000, 6_000],
                &[true, true, true, true],
            ),
        ];
        for (row, &(max, interval_ms, times, expected)) in table.iter().enumerate() {
            assert_eq!(times.len(), expected.len(), "row {row}");
            let mut strategy =
                RestartBackoffTimeStrategy::new(RestartStrategyConfig::FailureRate {
                    max_failures_per_interval: max,
                    failure_rate_interval: ms(interval_ms),
                    delay: ms(750),
                });
            assert!(strategy.can_restart(), "row {row}: before any failure");
            for (index, (&at, &allowed)) in times.iter().zip(expected).enumerate() {
                assert!(strategy.notify_failure(ms(at), &mut rng()));
                assert_eq!(
                    strategy.can_restart(),
                    allowed,
                    "row {row}, failure {index} at {at} ms"
                );
                assert_eq!(strategy.backoff_time(), ms(750));
            }
        }
    }

    /// Notifies failures at the given times and returns, per failure, (merged-or-new,
    /// backoff_time, can_restart).
    fn run(config: RestartStrategyConfig, times_ms: &[u64], seed: u64) -> Vec<(bool, u64, bool)> {
        let mut strategy = RestartBackoffTimeStrategy::new(config);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        times_ms
            .iter()
            .map(|&at| {
                let new_attempt = strategy.notify_failure(ms(at), &mut rng);
                let backoff = u64::try_from(strategy.backoff_time().as_millis()).unwrap();
                (new_attempt, backoff, strategy.can_restart())
            })
            .collect()
    }

    #[test]
    fn exponential_delay_grows_by_the_multiplier_up_to_max() {
        // Each failure lands 1 ms after the previous restart ran: never merged, never reset.
        let expected_backoffs = [1000, 1500, 2250, 3375, 5062, 7593, 10_000, 10_000];
        let mut times = Vec::new();
        let mut at = 0;
        for backoff in expected_backoffs {
            times.push(at);
            at += backoff + 1;
        }
        let results = run(exponential(10_000, 3_600_000, 0.0, None), &times, 1);
        let backoffs: Vec<_> = results.iter().map(|r| r.1).collect();
        assert_eq!(backoffs, expected_backoffs);
        assert!(results.iter().all(|r| r.0 && r.2));
    }

    #[test]
    fn exponential_delay_merges_failures_before_the_scheduled_restart() {
        // (failure times ms, expected (new attempt?, backoff ms))
        type Row = (&'static [u64], &'static [(bool, u64)]);
        let table: &[Row] = &[
            // A failure before the restart at 1000 joins it and gets the remaining wait.
            (&[0, 400], &[(true, 1000), (false, 600)]),
            // Exactly at the restart time still merges (`now <= next`).
            (&[0, 1000], &[(true, 1000), (false, 0)]),
            // Just after it is a new attempt with the next backoff.
            (&[0, 1001], &[(true, 1000), (true, 1500)]),
            // Merged failures do not escalate the backoff.
            (
                &[0, 10, 20, 30, 1001, 1002],
                &[
                    (true, 1000),
                    (false, 990),
                    (false, 980),
                    (false, 970),
                    (true, 1500),
                    (false, 1499),
                ],
            ),
        ];
        for (row, &(times, expected)) in table.iter().enumerate() {
            let results = run(exponential(60_000, 3_600_000, 0.0, None), times, 1);
            let got: Vec<_> = results.iter().map(|r| (r.0, r.1)).collect();
            assert_eq!(got, expected, "row {row}");
        }
    }

    #[test]
    fn exponential_delay_resets_after_a_quiet_period() {
        // Threshold 10 s. Restarts run at 1000 and 2501 (= 1001 + 1500).
        let table: &[(u64, u64)] = &[
            // (third failure at, its backoff)
            (12_500, 2250), // 9999 ms after the last restart: keeps growing
            (12_501, 1000), // exactly the threshold: reset
            (50_000, 1000), // long after: reset
        ];
        for &(at, backoff) in table {
            let results = run(exponential(60_000, 10_000, 0.0, None), &[0, 1001, at], 1);
            assert_eq!(results[1].1, 1500);
            assert_eq!(results[2], (true, backoff, true), "third failure at {at}");
        }
    }

    #[test]
    fn exponential_delay_attempts_before_reset_backoff() {
        // (attempts, failure times, can_restart after each). Restarts run at 1000, 2501, 4752.
        let table: &[(Option<u32>, &[u64], &[bool])] = &[
            (Some(1), &[0, 1001], &[true, false]),
            (Some(2), &[0, 1001, 2502], &[true, true, false]),
            // Merged failures do not count as attempts.
            (Some(2), &[0, 500, 1001, 2000], &[true, true, true, true]),
            // A reset (quiet ≥ 10 s after the restart at 4752) gives the attempts back.
            (
                Some(2),
                &[0, 1001, 2502, 4753 + 10_000],
                &[true, true, false, true],
            ),
            (
                None,
                &[0, 1001, 2502, 4753, 8129],
                &[true, true, true, true, true],
            ),
        ];
        for (row, &(attempts, times, expected)) in table.iter().enumerate() {
            let results = run(exponential(60_000, 10_000, 0.0, attempts), times, 1);
            let got: Vec<_> = results.iter().map(|r| r.2).collect();
            assert_eq!(got, expected, "row {row}");
        }
    }

    #[test]
    fn exponential_delay_jitter_stays_in_bounds_and_is_reproducible() {
        let config = || exponential(60_000, 3_600_000, 0.1, None);
        // Base backoffs 1000, 1500, 2250 with ±10 %; the first is clamped up to the initial.
        let bounds = [(1000, 1100), (1350, 1650), (2025, 2475)];
        let times = [0, 2_000, 5_000];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let results = run(config(), &times, seed);
            for (index, ((new_attempt, backoff, _), (low, high))) in
                results.iter().zip(bounds).enumerate()
            {
                assert!(*new_attempt);
                assert!(
                    (low..=high).contains(backoff),
                    "seed {seed}, failure {index}: {backoff}"
                );
            }
            seen.insert(results[1].1);
            // Same seed, same draws.
            assert_eq!(results, run(config(), &times, seed));
        }
        // Uniform over 301 values: 500 draws hit well over a hundred distinct ones.
        assert!(seen.len() > 100, "{} distinct backoffs", seen.len());
        assert!(seen.iter().any(|&b| b < 1380));
        assert!(seen.iter().any(|&b| b > 1620));
    }

    #[test]
    fn exponential_delay_without_jitter_draws_nothing() {
        let mut strategy =
            RestartBackoffTimeStrategy::new(exponential(60_000, 3_600_000, 0.0, None));
        let mut rng = rng();
        let untouched = rng.clone();
        strategy.notify_failure(ms(0), &mut rng);
        strategy.notify_failure(ms(2000), &mut rng);
        assert_eq!(rng, untouched);
        // And the others never draw either.
        for config in [
            RestartStrategyConfig::NoRestart,
            RestartStrategyConfig::FIXED_DELAY_DEFAULT,
            RestartStrategyConfig::FAILURE_RATE_DEFAULT,
        ] {
            let mut strategy = RestartBackoffTimeStrategy::new(config);
            strategy.notify_failure(ms(0), &mut rng);
            assert_eq!(rng, untouched);
        }
    }

    #[test]
    fn exponential_delay_survives_huge_attempt_counts() {
        // Without a limit the attempt count keeps growing; the backoff stays at max.
        let mut strategy =
            RestartBackoffTimeStrategy::new(exponential(5_000, 3_600_000, 1.0, None));
        let mut rng = rng();
        let mut at = ms(0);
        for _ in 0..3000 {
            assert!(strategy.notify_failure(at, &mut rng));
            let backoff = strategy.backoff_time();
            assert!(backoff >= ms(1000));
            assert!(backoff <= ms(5000));
            at += backoff + ms(1);
        }
        assert!(strategy.can_restart());
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let exponential_with = |f: &dyn Fn(&mut RestartStrategyConfig)| {
            let mut config = RestartStrategyConfig::EXPONENTIAL_DELAY_DEFAULT;
            f(&mut config);
            config
        };
        let cases = [
            (
                RestartStrategyConfig::FailureRate {
                    max_failures_per_interval: 0,
                    failure_rate_interval: ms(1000),
                    delay: ms(0),
                },
                "max-failures-per-interval",
            ),
            (
                RestartStrategyConfig::FailureRate {
                    max_failures_per_interval: 1,
                    failure_rate_interval: Duration::from_micros(999),
                    delay: ms(0),
                },
                "failure-rate-interval",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay {
                        initial_backoff, ..
                    } = c
                    {
                        *initial_backoff = Duration::from_micros(500);
                    }
                }),
                "initial-backoff must be at least",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay { max_backoff, .. } = c {
                        *max_backoff = ms(999);
                    }
                }),
                "must not exceed max-backoff",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay {
                        backoff_multiplier, ..
                    } = c
                    {
                        *backoff_multiplier = 1.0;
                    }
                }),
                "backoff-multiplier",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay {
                        backoff_multiplier, ..
                    } = c
                    {
                        *backoff_multiplier = f64::NAN;
                    }
                }),
                "backoff-multiplier",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay {
                        reset_backoff_threshold,
                        ..
                    } = c
                    {
                        *reset_backoff_threshold = ms(0);
                    }
                }),
                "reset-backoff-threshold",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay { jitter_factor, .. } = c {
                        *jitter_factor = 1.5;
                    }
                }),
                "jitter-factor",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay { jitter_factor, .. } = c {
                        *jitter_factor = -0.1;
                    }
                }),
                "jitter-factor",
            ),
            (
                exponential_with(&|c| {
                    if let RestartStrategyConfig::ExponentialDelay {
                        attempts_before_reset_backoff,
                        ..
                    } = c
                    {
                        *attempts_before_reset_backoff = Some(0);
                    }
                }),
                "attempts-before-reset-backoff",
            ),
        ];
        for (config, fragment) in cases {
            let error = config.validate().expect_err(fragment);
            assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            let panicked =
                std::panic::catch_unwind(|| RestartBackoffTimeStrategy::new(config.clone()));
            assert!(panicked.is_err(), "new must refuse {fragment}");
        }
        // Boundaries that Flink accepts.
        let accepted = [
            RestartStrategyConfig::FixedDelay {
                attempts: 0,
                delay: ms(0),
            },
            exponential(1000, 1, 0.0, Some(1)),
            exponential(1000, 1, 1.0, None),
        ];
        for config in accepted {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }

    #[test]
    #[should_panic(expected = "time went back")]
    fn time_must_not_go_back() {
        let mut strategy =
            RestartBackoffTimeStrategy::new(RestartStrategyConfig::FIXED_DELAY_DEFAULT);
        strategy.notify_failure(ms(10), &mut rng());
        strategy.notify_failure(ms(9), &mut rng());
    }
}
