//! The `restart-strategy.*` options as a value: which of Flink's four restart strategies a job
//! runs with and their settings, with Flink's defaults and argument checks. The strategies'
//! bookkeeping (`RestartBackoffTimeStrategy`) is the JobMaster's, in
//! `jobmanager::job_master::restart_strategy`.

use std::time::Duration;

/// The restart strategy a job runs with (`restart-strategy.type` and its options).
///
/// Durations count in whole milliseconds, as Flink's options are read with `toMillis()`; any
/// sub-millisecond part is dropped by
/// [`RestartBackoffTimeStrategy::new`](crate::jobmanager::job_master::restart_strategy::RestartBackoffTimeStrategy::new).
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategyConfig {
    /// `none` / `off` / `disable`: the first failure fails the job.
    NoRestart,
    /// Restart while failures ≤ `attempts`, always after `delay`.
    FixedDelay { attempts: u32, delay: Duration },
    /// Restart unless more than `max_failures_per_interval` failures fell within
    /// `failure_rate_interval`; always after `delay`.
    FailureRate {
        max_failures_per_interval: u32,
        failure_rate_interval: Duration,
        delay: Duration,
    },
    /// Backoff growing by `backoff_multiplier` from `initial_backoff` up to `max_backoff`, with
    /// ± `jitter_factor` × backoff of jitter; reset after `reset_backoff_threshold` without
    /// failures; at most `attempts_before_reset_backoff` restarts between resets (`None` =
    /// unlimited, Flink's `Integer.MAX_VALUE` default).
    ExponentialDelay {
        initial_backoff: Duration,
        max_backoff: Duration,
        backoff_multiplier: f64,
        reset_backoff_threshold: Duration,
        jitter_factor: f64,
        attempts_before_reset_backoff: Option<u32>,
    },
}

impl RestartStrategyConfig {
    /// `fixed-delay` with Flink's defaults for its options.
    pub const FIXED_DELAY_DEFAULT: RestartStrategyConfig = RestartStrategyConfig::FixedDelay {
        attempts: 1,
        delay: Duration::from_secs(1),
    };

    /// `failure-rate` with Flink's defaults for its options.
    pub const FAILURE_RATE_DEFAULT: RestartStrategyConfig = RestartStrategyConfig::FailureRate {
        max_failures_per_interval: 1,
        failure_rate_interval: Duration::from_secs(60),
        delay: Duration::from_secs(1),
    };

    /// `exponential-delay` with Flink's defaults for its options.
    pub const EXPONENTIAL_DELAY_DEFAULT: RestartStrategyConfig =
        RestartStrategyConfig::ExponentialDelay {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 1.5,
            reset_backoff_threshold: Duration::from_secs(3600),
            jitter_factor: 0.1,
            attempts_before_reset_backoff: None,
        };

    /// The `restart-strategy.type` value: "none", "fixed-delay", "failure-rate" or
    /// "exponential-delay".
    pub fn name(&self) -> &'static str {
        match self {
            RestartStrategyConfig::NoRestart => "none",
            RestartStrategyConfig::FixedDelay { .. } => "fixed-delay",
            RestartStrategyConfig::FailureRate { .. } => "failure-rate",
            RestartStrategyConfig::ExponentialDelay { .. } => "exponential-delay",
        }
    }

    /// Flink's argument checks, as an error a scenario author can fix. `new` asserts them.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            // Fixed delay accepts any attempt count and any delay (both unsigned here).
            RestartStrategyConfig::NoRestart | RestartStrategyConfig::FixedDelay { .. } => Ok(()),
            RestartStrategyConfig::FailureRate {
                max_failures_per_interval,
                failure_rate_interval,
                delay: _,
            } => {
                if max_failures_per_interval == 0 {
                    return Err("failure-rate: max-failures-per-interval must be at least 1".into());
                }
                if millis(failure_rate_interval) == 0 {
                    return Err("failure-rate: failure-rate-interval must be at least 1 ms".into());
                }
                Ok(())
            }
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff,
                max_backoff,
                backoff_multiplier,
                reset_backoff_threshold,
                jitter_factor,
                attempts_before_reset_backoff,
            } => {
                if millis(initial_backoff) == 0 {
                    return Err("exponential-delay: initial-backoff must be at least 1 ms".into());
                }
                if millis(initial_backoff) > millis(max_backoff) {
                    return Err(
                        "exponential-delay: initial-backoff must not exceed max-backoff".into(),
                    );
                }
                // Phrased positively so that NaN is refused too.
                let multiplier_valid = backoff_multiplier.is_finite() && backoff_multiplier > 1.0;
                if !multiplier_valid {
                    return Err(format!(
                        "exponential-delay: backoff-multiplier {backoff_multiplier} must be greater than 1"
                    ));
                }
                if millis(reset_backoff_threshold) == 0 {
                    return Err(
                        "exponential-delay: reset-backoff-threshold must be at least 1 ms".into(),
                    );
                }
                if !(0.0..=1.0).contains(&jitter_factor) {
                    return Err(format!(
                        "exponential-delay: jitter-factor {jitter_factor} must be between 0 and 1"
                    ));
                }
                if attempts_before_reset_backoff == Some(0) {
                    return Err(
                        "exponential-delay: attempts-before-reset-backoff must be at least 1"
                            .into(),
                    );
                }
                Ok(())
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("duration beyond u64 milliseconds")
}
