//! Flink's configuration keys, with Flink's names, value syntax and defaults.
//!
//! [`OPTIONS`] is the registry: every key flinksim understands, its default and what it does.
//! [`FlinkConfig`] is the typed result. Keys Flink has but flinksim does not model yet are
//! refused by name (see [`FlinkConfig::set`]) rather than silently ignored. An option whose
//! default is [`UNSET`] has no value unless the scenario sets one (Flink's "(none)").

pub mod failover;
pub mod ha_client;
mod options;
pub mod restart;

use crate::protocol::checkpoint::{CheckpointConfig, CheckpointingMode};
use std::time::Duration;

pub use failover::FailoverStrategy;
pub use ha_client::SessionConfig;
pub use options::{
    ConfigOption, ValueKind, CHECKPOINT_TIME_MIN, DEPRECATED_KEYS, NOT_YET_SUPPORTED, OPTIONS,
    UNSET,
};
pub use restart::RestartStrategyConfig;

/// `high-availability.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HighAvailability {
    None,
    /// The `ha` node with ZooKeeper's sessions, latch and stores.
    ZooKeeper,
}

/// The typed configuration of a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct FlinkConfig {
    /// `None` while `execution.checkpointing.interval` is unset (checkpointing disabled).
    pub checkpointing: Option<CheckpointConfig>,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// `None` when the threshold is disabled (-1).
    pub heartbeat_rpc_failure_threshold: Option<u32>,
    pub registration_initial_timeout: Duration,
    pub registration_max_timeout: Duration,
    pub registration_refused_delay: Duration,
    pub registration_error_delay: Duration,
    pub taskmanager_registration_timeout: Duration,
    pub ask_timeout: Duration,
    pub number_of_task_slots: u32,
    pub slot_request_timeout: Duration,
    pub slot_idle_timeout: Duration,
    pub taskmanager_slot_timeout: Duration,
    pub resourcemanager_taskmanager_timeout: Duration,
    pub failover_strategy: FailoverStrategy,
    pub restart_strategy: RestartStrategyConfig,
    /// `None` = Flink's default for the job's parallelism.
    pub max_parallelism: Option<u32>,
    /// `pipeline.operator-chaining.enabled`.
    pub operator_chaining: bool,
    pub high_availability: HighAvailability,
    /// The `high-availability.zookeeper.client.*` keys.
    pub ha_session: SessionConfig,
    /// The raw restart-strategy keys, resolved into `restart_strategy` by `validate`.
    restart_keys: RestartKeys,
    /// The raw checkpointing keys, resolved into `checkpointing`.
    checkpoint_keys: CheckpointKeys,
}

/// The `execution.checkpointing.*` keys as set. They are accepted without an interval (Flink
/// does too) and then simply unused.
#[derive(Clone, Debug, PartialEq)]
struct CheckpointKeys {
    interval: Option<Duration>,
    mode: CheckpointingMode,
    timeout: Duration,
    min_pause: Duration,
    max_concurrent: u32,
    tolerable_failed: u32,
    num_retained: u32,
    /// `execution.checkpointing.num-retained` itself was set: its deprecated key is ignored.
    num_retained_set: bool,
}

impl CheckpointKeys {
    fn resolve(&self) -> Option<CheckpointConfig> {
        let interval = self.interval?;
        Some(CheckpointConfig {
            interval,
            mode: self.mode,
            timeout: self.timeout,
            min_pause: self.min_pause,
            max_concurrent: self.max_concurrent,
            tolerable_failed: self.tolerable_failed,
            num_retained: self.num_retained,
        })
    }
}

/// The restart-strategy keys as set (resolved together, since the type picks which apply).
#[derive(Clone, Debug, PartialEq)]
struct RestartKeys {
    kind: String,
    fixed_attempts: u32,
    fixed_delay: Duration,
    rate_max_failures: u32,
    rate_interval: Duration,
    rate_delay: Duration,
    exp_initial: Duration,
    exp_max: Duration,
    exp_multiplier: f64,
    exp_reset: Duration,
    exp_jitter: f64,
    exp_attempts: Option<u32>,
}

impl Default for FlinkConfig {
    fn default() -> Self {
        let mut c = FlinkConfig {
            heartbeat_interval: Duration::ZERO,
            heartbeat_timeout: Duration::ZERO,
            heartbeat_rpc_failure_threshold: None,
            registration_initial_timeout: Duration::ZERO,
            registration_max_timeout: Duration::ZERO,
            registration_refused_delay: Duration::ZERO,
            registration_error_delay: Duration::ZERO,
            taskmanager_registration_timeout: Duration::ZERO,
            checkpointing: None,
            ask_timeout: Duration::ZERO,
            number_of_task_slots: 0,
            slot_request_timeout: Duration::ZERO,
            slot_idle_timeout: Duration::ZERO,
            taskmanager_slot_timeout: Duration::ZERO,
            resourcemanager_taskmanager_timeout: Duration::ZERO,
            failover_strategy: FailoverStrategy::Region,
            restart_strategy: RestartStrategyConfig::NoRestart,
            max_parallelism: None,
            operator_chaining: true,
            high_availability: HighAvailability::None,
            ha_session: SessionConfig::default(),
            restart_keys: RestartKeys {
                kind: String::new(),
                fixed_attempts: 0,
                fixed_delay: Duration::ZERO,
                rate_max_failures: 0,
                rate_interval: Duration::ZERO,
                rate_delay: Duration::ZERO,
                exp_initial: Duration::ZERO,
                exp_max: Duration::ZERO,
                exp_multiplier: 0.0,
                exp_reset: Duration::ZERO,
                exp_jitter: 0.0,
                exp_attempts: None,
            },
            checkpoint_keys: CheckpointKeys {
                interval: None,
                mode: CheckpointingMode::ExactlyOnce,
                timeout: Duration::ZERO,
                min_pause: Duration::ZERO,
                max_concurrent: 0,
                tolerable_failed: 0,
                num_retained: 0,
                num_retained_set: false,
            },
        };
        for o in OPTIONS.iter().filter(|o| o.default != UNSET) {
            c.set(o.key, o.default).expect("defaults parse");
        }
        // Applying the defaults is not the user setting the key.
        c.checkpoint_keys.num_retained_set = false;
        c.validate().expect("defaults are valid");
        c
    }
}

impl FlinkConfig {
    /// Sets `key` from its textual value. The error says what was expected.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        // A deprecated key sets its current key; messages name the key as written.
        let deprecated = DEPRECATED_KEYS.iter().find(|(old, _)| *old == key);
        let canonical = deprecated.map_or(key, |(_, new)| *new);
        OPTIONS.iter().find(|o| o.key == canonical).ok_or_else(|| {
            if NOT_YET_SUPPORTED.contains(&key) {
                format!("Flink key `{key}` is not supported by flinksim yet")
            } else {
                format!(
                    "unknown Flink key `{key}`; supported keys: {}",
                    OPTIONS.iter().map(|o| o.key).collect::<Vec<_>>().join(", ")
                )
            }
        })?;
        let v = Value { key, value };
        if canonical.starts_with("restart-strategy.") {
            self.set_restart(canonical, v)?;
        } else if canonical.starts_with("high-availability.") {
            self.set_ha(canonical, v)?;
        } else if canonical.starts_with("execution.checkpointing.") {
            self.set_checkpointing(canonical, v, deprecated.is_some())?;
        } else {
            self.set_cluster(canonical, v)?;
        }
        self.checkpointing = self.checkpoint_keys.resolve();
        Ok(())
    }

    /// Sets one of the heartbeats, registration, timeouts, failover, parallelism and slots keys (`canonical` is its current name; messages name it as written).
    fn set_cluster(&mut self, canonical: &str, v: Value<'_>) -> Result<(), String> {
        let Value { key, value } = v;
        match canonical {
            "heartbeat.interval" => self.heartbeat_interval = positive(key, v.duration()?)?,
            "heartbeat.timeout" => self.heartbeat_timeout = positive(key, v.duration()?)?,
            "heartbeat.rpc-failure-threshold" => {
                let v = v.int()?;
                self.heartbeat_rpc_failure_threshold = match v {
                    -1 => None,
                    1..=1_000_000 => Some(v as u32),
                    _ => {
                        return Err(format!(
                            "`{key}`: expected -1 (disabled) or a positive integer, got {v}"
                        ))
                    }
                }
            }
            "cluster.registration.initial-timeout" => {
                self.registration_initial_timeout = positive(key, v.duration()?)?
            }
            "cluster.registration.max-timeout" => {
                self.registration_max_timeout = positive(key, v.duration()?)?
            }
            "cluster.registration.refused-registration-delay" => {
                self.registration_refused_delay = v.duration()?
            }
            "cluster.registration.error-delay" => self.registration_error_delay = v.duration()?,
            "taskmanager.registration.timeout" => {
                self.taskmanager_registration_timeout = positive(key, v.duration()?)?
            }
            "pekko.ask.timeout" => self.ask_timeout = positive(key, v.duration()?)?,
            "slot.request.timeout" => self.slot_request_timeout = positive(key, v.duration()?)?,
            "slot.idle.timeout" => self.slot_idle_timeout = positive(key, v.duration()?)?,
            "taskmanager.slot.timeout" => {
                self.taskmanager_slot_timeout = positive(key, v.duration()?)?
            }
            "resourcemanager.taskmanager-timeout" => {
                self.resourcemanager_taskmanager_timeout = positive(key, v.duration()?)?
            }
            "jobmanager.execution.failover-strategy" => {
                self.failover_strategy = FailoverStrategy::from_name(value.trim())
                    .ok_or_else(|| format!("`{key}`: expected `region` or `full`, got `{value}`"))?
            }
            "pipeline.max-parallelism" => {
                let v = v.int()?;
                self.max_parallelism = match v {
                    -1 => None,
                    1..=32768 => Some(v as u32),
                    _ => return Err(format!("`{key}`: expected -1 or 1..=32768, got {v}")),
                };
            }
            "pipeline.operator-chaining.enabled" => self.operator_chaining = v.bool()?,
            "taskmanager.numberOfTaskSlots" => {
                let v = v.int()?;
                if !(1..=1024).contains(&v) {
                    return Err(format!("`{key}`: expected 1..=1024, got {v}"));
                }
                self.number_of_task_slots = v as u32;
            }
            _ => unreachable!("option {canonical} has no setter"),
        }
        Ok(())
    }

    /// Sets one of the `restart-strategy.*` keys (`canonical` is its current name; messages name it as written).
    fn set_restart(&mut self, canonical: &str, v: Value<'_>) -> Result<(), String> {
        let Value { key, value } = v;
        match canonical {
            "restart-strategy.type" => {
                let v = value.trim().to_ascii_lowercase();
                let canonical = match v.as_str() {
                    "none" | "off" | "disable" => "none",
                    "fixed-delay" | "fixeddelay" => "fixed-delay",
                    "failure-rate" | "failurerate" => "failure-rate",
                    "exponential-delay" | "exponentialdelay" => "exponential-delay",
                    _ => {
                        return Err(format!(
                            "`{key}`: expected none, fixed-delay, failure-rate or exponential-delay, got `{value}`"
                        ))
                    }
                };
                self.restart_keys.kind = canonical.to_string();
            }
            "restart-strategy.fixed-delay.attempts" => {
                self.restart_keys.fixed_attempts = non_negative_u32(key, v.int()?)?
            }
            "restart-strategy.fixed-delay.delay" => self.restart_keys.fixed_delay = v.duration()?,
            "restart-strategy.failure-rate.max-failures-per-interval" => {
                self.restart_keys.rate_max_failures = non_negative_u32(key, v.int()?)?
            }
            "restart-strategy.failure-rate.failure-rate-interval" => {
                self.restart_keys.rate_interval = positive(key, v.duration()?)?
            }
            "restart-strategy.failure-rate.delay" => self.restart_keys.rate_delay = v.duration()?,
            "restart-strategy.exponential-delay.initial-backoff" => {
                self.restart_keys.exp_initial = positive(key, v.duration()?)?
            }
            "restart-strategy.exponential-delay.max-backoff" => {
                self.restart_keys.exp_max = positive(key, v.duration()?)?
            }
            "restart-strategy.exponential-delay.backoff-multiplier" => {
                let f = float(key, value)?;
                if f < 1.0 {
                    return Err(format!("`{key}`: must be at least 1.0, got {f}"));
                }
                self.restart_keys.exp_multiplier = f;
            }
            "restart-strategy.exponential-delay.reset-backoff-threshold" => {
                self.restart_keys.exp_reset = positive(key, v.duration()?)?
            }
            "restart-strategy.exponential-delay.jitter-factor" => {
                let f = float(key, value)?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(format!("`{key}`: expected 0.0..=1.0, got {f}"));
                }
                self.restart_keys.exp_jitter = f;
            }
            "restart-strategy.exponential-delay.attempts-before-reset-backoff" => {
                let v = v.int()?;
                self.restart_keys.exp_attempts = match v {
                    -1 => None,
                    v => Some(non_negative_u32(key, v)?),
                };
            }
            _ => unreachable!("option {canonical} has no setter"),
        }
        Ok(())
    }

    /// Sets one of the `high-availability.*` keys (`canonical` is its current name; messages name it as written).
    fn set_ha(&mut self, canonical: &str, v: Value<'_>) -> Result<(), String> {
        let Value { key, value } = v;
        match canonical {
            "high-availability.type" => {
                self.high_availability = match value.trim().to_ascii_uppercase().as_str() {
                    "NONE" => HighAvailability::None,
                    "ZOOKEEPER" => HighAvailability::ZooKeeper,
                    "KUBERNETES" => {
                        return Err(format!(
                            "`{key}`: KUBERNETES is not supported by flinksim yet; use ZOOKEEPER (the `ha` node)"
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "`{key}`: expected NONE or ZOOKEEPER, got `{value}`"
                        ))
                    }
                }
            }
            "high-availability.zookeeper.client.session-timeout" => {
                let d = v.duration()?;
                if d < Duration::from_millis(300) {
                    return Err(format!("`{key}`: expected at least 300 ms, got `{value}`"));
                }
                self.ha_session.session_timeout = d;
            }
            "high-availability.zookeeper.client.retry-wait" => {
                self.ha_session.retry_wait = positive(key, v.duration()?)?
            }
            "high-availability.zookeeper.client.tolerate-suspended-connections" => {
                self.ha_session.tolerate_suspended_connections = v.bool()?
            }
            _ => unreachable!("option {canonical} has no setter"),
        }
        Ok(())
    }

    /// Sets one of the `execution.checkpointing.*` keys (`canonical` is its current name; messages name it as written).
    fn set_checkpointing(
        &mut self,
        canonical: &str,
        v: Value<'_>,
        deprecated: bool,
    ) -> Result<(), String> {
        let Value { key, value } = v;
        match canonical {
            "execution.checkpointing.interval" => {
                self.checkpoint_keys.interval = Some(checkpoint_time(key, v.duration()?)?)
            }
            "execution.checkpointing.mode" => {
                // Flink reads enum options case-insensitively.
                self.checkpoint_keys.mode = match value.trim().to_ascii_uppercase().as_str() {
                    "EXACTLY_ONCE" => CheckpointingMode::ExactlyOnce,
                    "AT_LEAST_ONCE" => CheckpointingMode::AtLeastOnce,
                    _ => {
                        return Err(format!(
                            "`{key}`: expected EXACTLY_ONCE or AT_LEAST_ONCE, got `{value}`"
                        ))
                    }
                }
            }
            "execution.checkpointing.timeout" => {
                self.checkpoint_keys.timeout = checkpoint_time(key, v.duration()?)?
            }
            "execution.checkpointing.min-pause" => self.checkpoint_keys.min_pause = v.duration()?,
            "execution.checkpointing.max-concurrent-checkpoints" => {
                self.checkpoint_keys.max_concurrent = v.count(1)?
            }
            "execution.checkpointing.tolerable-failed-checkpoints" => {
                self.checkpoint_keys.tolerable_failed = v.count(0)?
            }
            "execution.checkpointing.num-retained" => {
                let v = v.count(1)?;
                // Flink reads a deprecated key only when its current key is absent.
                if !deprecated || !self.checkpoint_keys.num_retained_set {
                    self.checkpoint_keys.num_retained = v;
                }
                if !deprecated {
                    self.checkpoint_keys.num_retained_set = true;
                }
            }
            _ => unreachable!("option {canonical} has no setter"),
        }
        Ok(())
    }

    /// Relationships between keys that Flink itself enforces; resolves checkpointing and the
    /// restart strategy.
    pub fn validate(&mut self) -> Result<(), String> {
        self.checkpointing = self.checkpoint_keys.resolve();
        let k = &self.restart_keys;
        // No `restart-strategy.type`: Flink's default depends on checkpointing
        // (`RestartBackoffTimeStrategyFactoryLoader`, exponential-delay since 1.19, FLINK-33738).
        let kind = match k.kind.as_str() {
            "" if self.checkpointing.is_some() => "exponential-delay",
            "" => "none",
            kind => kind,
        };
        self.restart_strategy = match kind {
            "fixed-delay" => RestartStrategyConfig::FixedDelay {
                attempts: k.fixed_attempts,
                delay: k.fixed_delay,
            },
            "failure-rate" => RestartStrategyConfig::FailureRate {
                max_failures_per_interval: k.rate_max_failures,
                failure_rate_interval: k.rate_interval,
                delay: k.rate_delay,
            },
            "exponential-delay" => {
                if k.exp_max < k.exp_initial {
                    return Err("`restart-strategy.exponential-delay.max-backoff` must be at least its initial-backoff".to_string());
                }
                RestartStrategyConfig::ExponentialDelay {
                    initial_backoff: k.exp_initial,
                    max_backoff: k.exp_max,
                    backoff_multiplier: k.exp_multiplier,
                    reset_backoff_threshold: k.exp_reset,
                    jitter_factor: k.exp_jitter,
                    attempts_before_reset_backoff: k.exp_attempts,
                }
            }
            _ => RestartStrategyConfig::NoRestart,
        };
        self.restart_strategy.validate()?;
        if self.heartbeat_timeout < self.heartbeat_interval {
            return Err(format!(
                "`heartbeat.timeout` ({:?}) must be at least `heartbeat.interval` ({:?}), as Flink requires",
                self.heartbeat_timeout, self.heartbeat_interval
            ));
        }
        if self.registration_max_timeout < self.registration_initial_timeout {
            return Err(
                "`cluster.registration.max-timeout` must be at least `cluster.registration.initial-timeout`"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// A value as written for a key, with the parsers every key's setter shares; errors name the
/// key as written.
#[derive(Clone, Copy)]
struct Value<'a> {
    key: &'a str,
    value: &'a str,
}

impl Value<'_> {
    fn duration(self) -> Result<Duration, String> {
        parse_duration(self.value).map_err(|e| format!("`{}`: {e}", self.key))
    }

    fn int(self) -> Result<i64, String> {
        self.value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("`{}`: expected an integer, got `{}`", self.key, self.value))
    }

    fn bool(self) -> Result<bool, String> {
        match self.value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!(
                "`{}`: expected true or false, got `{}`",
                self.key, self.value
            )),
        }
    }

    /// An integer of at least `min` that fits a u32.
    fn count(self, min: i64) -> Result<u32, String> {
        let v = self.int()?;
        if !(min..=i64::from(u32::MAX)).contains(&v) {
            return Err(format!(
                "`{}`: expected an integer of at least {min}, got {v}",
                self.key
            ));
        }
        Ok(v as u32)
    }
}

fn non_negative_u32(key: &str, v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("`{key}`: expected a non-negative integer, got {v}"))
}

fn float(key: &str, value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("`{key}`: expected a number, got `{value}`"))
}

/// A checkpoint interval or timeout: at least Flink's `MINIMAL_CHECKPOINT_TIME`.
fn checkpoint_time(key: &str, d: Duration) -> Result<Duration, String> {
    if d < CHECKPOINT_TIME_MIN {
        Err(format!(
            "`{key}` must be at least {} ms (Flink's minimal checkpoint time), got {} ms",
            CHECKPOINT_TIME_MIN.as_millis(),
            d.as_millis()
        ))
    } else {
        Ok(d)
    }
}

fn positive(key: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("`{key}` must be greater than zero"))
    } else {
        Ok(d)
    }
}

/// Parses Flink's duration syntax (`TimeUtils.parseDuration`): a non-negative integer, optional
/// whitespace, and a unit (d, h, min/m, s, ms, us/µs, ns, with long forms such as "seconds");
/// no unit means milliseconds. Also accepts the compact forms "1s", "500ms".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!(
            "expected a duration like \"10 s\", \"500 ms\" or \"2 min\", got `{text}`"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("duration `{text}` is too large"))?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let nanos_per: u64 = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        "us" | "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
        "h" | "hour" | "hours" => 3_600_000_000_000,
        "d" | "day" | "days" => 86_400_000_000_000,
        other => {
            return Err(format!(
                "unknown time unit `{other}` in `{text}` (expected ns, us, ms, s, min, h or d)"
            ))
        }
    };
    n.checked_mul(nanos_per)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_flinks() {
        let mut c = FlinkConfig::default();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(50));
        assert_eq!(c.heartbeat_rpc_failure_threshold, Some(2));
        assert_eq!(c.registration_initial_timeout, Duration::from_millis(100));
        assert_eq!(c.registration_max_timeout, Duration::from_secs(30));
        assert_eq!(c.registration_refused_delay, Duration::from_secs(30));
        assert_eq!(c.registration_error_delay, Duration::from_secs(10));
        assert_eq!(c.taskmanager_registration_timeout, Duration::from_secs(300));
        assert_eq!(c.ask_timeout, Duration::from_secs(10));
        assert_eq!(c.number_of_task_slots, 1);
        c.validate().unwrap();
    }

    #[test]
    fn durations_use_flinks_syntax() {
        for (text, ms) in [
            ("1 s", 1000),
            ("1s", 1000),
            ("500 ms", 500),
            ("500", 500),
            ("2 min", 120_000),
            ("3 seconds", 3000),
            ("1h", 3_600_000),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        for bad in ["", "s", "1 fortnight", "-1 s", "1.5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_and_unsupported_keys_are_refused_by_name() {
        let mut c = FlinkConfig::default();
        let e = c.set("heartbeat.intervall", "1 s").unwrap_err();
        assert!(e.contains("heartbeat.intervall") && e.contains("heartbeat.interval"));
        let e = c
            .set(
                "high-availability.kubernetes.leader-election.lease-duration",
                "15 s",
            )
            .unwrap_err();
        assert!(e.contains("not supported by flinksim yet"));
        let e = c.set("high-availability.type", "kubernetes").unwrap_err();
        assert!(e.contains("use ZOOKEEPER"), "{e}");
        c.set("high-availability.type", "zookeeper").unwrap();
        assert_eq!(c.high_availability, HighAvailability::ZooKeeper);
        assert_eq!(c.ha_session.session_timeout, Duration::from_secs(60));
        assert!(c
            .set(
                "high-availability.zookeeper.client.tolerate-suspended-connections",
                "maybe"
            )
            .is_err());
        c.set("heartbeat.rpc-failure-threshold", "-1").unwrap();
        assert_eq!(c.heartbeat_rpc_failure_threshold, None);
        assert!(c.set("heartbeat.rpc-failure-threshold", "0").is_err());
    }

    #[test]
    fn restart_strategies_resolve_from_their_keys() {
        let mut c = FlinkConfig::default();
        assert_eq!(c.restart_strategy, RestartStrategyConfig::NoRestart);
        c.set("restart-strategy.type", "fixed-delay").unwrap();
        c.set("restart-strategy.fixed-delay.attempts", "2").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.restart_strategy,
            RestartStrategyConfig::FixedDelay {
                attempts: 2,
                delay: Duration::from_secs(1)
            }
        );
        assert!(c.set("restart-strategy.type", "sometimes").is_err());
        assert!(c
            .set("jobmanager.execution.failover-strategy", "half")
            .is_err());
    }

    fn checkpointing_with(keys: &[(&str, &str)]) -> Result<FlinkConfig, String> {
        let mut c = FlinkConfig::default();
        for (k, v) in keys {
            c.set(k, v)?;
        }
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn checkpointing_is_disabled_until_an_interval_is_set() {
        let c = FlinkConfig::default();
        assert_eq!(c.checkpointing, None);
        // The other keys alone are accepted and unused, as in Flink.
        let c = checkpointing_with(&[
            ("execution.checkpointing.mode", "AT_LEAST_ONCE"),
            ("execution.checkpointing.timeout", "1 min"),
            ("execution.checkpointing.num-retained", "3"),
        ])
        .unwrap();
        assert_eq!(c.checkpointing, None);
        assert_eq!(c.restart_strategy, RestartStrategyConfig::NoRestart);
    }

    #[test]
    fn checkpointing_defaults_are_flinks() {
        let c = checkpointing_with(&[("execution.checkpointing.interval", "1 s")]).unwrap();
        assert_eq!(
            c.checkpointing,
            Some(CheckpointConfig {
                interval: Duration::from_secs(1),
                mode: CheckpointingMode::ExactlyOnce,
                timeout: Duration::from_secs(600),
                min_pause: Duration::ZERO,
                max_concurrent: 1,
                tolerable_failed: 0,
                num_retained: 1,
            })
        );
    }

    #[test]
    fn checkpointing_keys_parse_in_flinks_syntax() {
        let c = checkpointing_with(&[
            ("execution.checkpointing.interval", "500ms"),
            ("execution.checkpointing.mode", "at_least_once"),
            ("execution.checkpointing.timeout", "30 s"),
            ("execution.checkpointing.min-pause", "200 ms"),
            ("execution.checkpointing.max-concurrent-checkpoints", "3"),
            ("execution.checkpointing.tolerable-failed-checkpoints", "2"),
            ("execution.checkpointing.num-retained", "4"),
        ])
        .unwrap();
        assert_eq!(
            c.checkpointing,
            Some(CheckpointConfig {
                interval: Duration::from_millis(500),
                mode: CheckpointingMode::AtLeastOnce,
                timeout: Duration::from_secs(30),
                min_pause: Duration::from_millis(200),
                max_concurrent: 3,
                tolerable_failed: 2,
                num_retained: 4,
            })
        );
    }

    #[test]
    fn bad_checkpointing_values_are_refused_with_the_expectation() {
        for (key, value, needle) in [
            (
                "execution.checkpointing.interval",
                "0",
                "must be at least 10 ms",
            ),
            (
                "execution.checkpointing.interval",
                "5 ms",
                "must be at least 10 ms",
            ),
            (
                "execution.checkpointing.interval",
                "often",
                "expected a duration",
            ),
            (
                "execution.checkpointing.timeout",
                "0 s",
                "must be at least 10 ms",
            ),
            (
                "execution.checkpointing.mode",
                "EXACTLY_TWICE",
                "expected EXACTLY_ONCE or AT_LEAST_ONCE",
            ),
            (
                "execution.checkpointing.max-concurrent-checkpoints",
                "0",
                "at least 1, got 0",
            ),
            (
                "execution.checkpointing.tolerable-failed-checkpoints",
                "-1",
                "at least 0, got -1",
            ),
            (
                "execution.checkpointing.num-retained",
                "0",
                "at least 1, got 0",
            ),
            (
                "execution.checkpointing.num-retained",
                "two",
                "expected an integer",
            ),
            (
                "state.checkpoints.num-retained",
                "0",
                "`state.checkpoints.num-retained`",
            ),
        ] {
            let e = FlinkConfig::default().set(key, value).unwrap_err();
            assert!(e.contains(needle), "{key} = {value}: {e}");
            assert!(e.contains(key), "{key} = {value}: {e}");
        }
    }

    #[test]
    fn deprecated_num_retained_is_read_unless_the_current_key_is_set() {
        let interval = ("execution.checkpointing.interval", "1 s");
        let retained = |c: FlinkConfig| c.checkpointing.unwrap().num_retained;
        let c = checkpointing_with(&[interval, ("state.checkpoints.num-retained", "3")]).unwrap();
        assert_eq!(retained(c), 3);
        for keys in [
            [
                interval,
                ("state.checkpoints.num-retained", "3"),
                ("execution.checkpointing.num-retained", "2"),
            ],
            [
                interval,
                ("execution.checkpointing.num-retained", "2"),
                ("state.checkpoints.num-retained", "3"),
            ],
        ] {
            assert_eq!(retained(checkpointing_with(&keys).unwrap()), 2);
        }
    }

    #[test]
    fn restart_strategy_defaults_to_exponential_delay_with_checkpointing() {
        let c = checkpointing_with(&[("execution.checkpointing.interval", "1 s")]).unwrap();
        assert_eq!(
            c.restart_strategy,
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                backoff_multiplier: 1.5,
                reset_backoff_threshold: Duration::from_secs(3600),
                jitter_factor: 0.1,
                attempts_before_reset_backoff: None,
            }
        );
        // An explicit type wins, including `none`.
        let c = checkpointing_with(&[
            ("execution.checkpointing.interval", "1 s"),
            ("restart-strategy.type", "none"),
        ])
        .unwrap();
        assert_eq!(c.restart_strategy, RestartStrategyConfig::NoRestart);
        let c = checkpointing_with(&[
            ("restart-strategy.type", "fixed-delay"),
            ("execution.checkpointing.interval", "1 s"),
        ])
        .unwrap();
        assert!(matches!(
            c.restart_strategy,
            RestartStrategyConfig::FixedDelay { .. }
        ));
    }

    #[test]
    fn every_option_default_parses_or_is_unset() {
        for o in OPTIONS {
            let mut c = FlinkConfig::default();
            if o.default == UNSET {
                assert!(c.set(o.key, o.default).is_err(), "{}", o.key);
            } else {
                c.set(o.key, o.default).unwrap();
            }
        }
        assert!(NOT_YET_SUPPORTED
            .iter()
            .all(|k| OPTIONS.iter().all(|o| o.key != *k)));
    }

    #[test]
    fn timeout_below_interval_is_refused() {
        let mut c = FlinkConfig::default();
        c.set("heartbeat.timeout", "1 s").unwrap();
        assert!(c.validate().unwrap_err().contains("heartbeat.timeout"));
    }
}
