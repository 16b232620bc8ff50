//! Flink's configuration keys, with Flink's names, value syntax and defaults.
//!
//! [`OPTIONS`] is the registry: every key flinksim understands, its default and what it does.
//! [`FlinkConfig`] is the typed result. Keys Flink has but flinksim does not model yet are
//! refused by name (see [`FlinkConfig::set`]) rather than silently ignored.

use std::time::Duration;

/// How a value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// Flink's duration syntax: "10 s", "500 ms", "2 min"; a bare number is milliseconds.
    Duration,
    /// An integer.
    Int,
}

/// One supported configuration key.
#[derive(Clone, Copy, Debug)]
pub struct ConfigOption {
    pub key: &'static str,
    pub default: &'static str,
    pub kind: ValueKind,
    pub description: &'static str,
}

/// Every key flinksim understands, in the order `flinksim list config` prints them.
pub const OPTIONS: &[ConfigOption] = &[
    ConfigOption {
        key: "heartbeat.interval",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "How often a heartbeat sender requests heartbeats from its targets.",
    },
    ConfigOption {
        key: "heartbeat.timeout",
        default: "50 s",
        kind: ValueKind::Duration,
        description: "Silence after which a heartbeat target is declared lost.",
    },
    ConfigOption {
        key: "heartbeat.rpc-failure-threshold",
        default: "2",
        kind: ValueKind::Int,
        description: "Consecutive failed heartbeat RPCs (target unreachable) after which the target is declared unreachable; -1 disables.",
    },
    ConfigOption {
        key: "cluster.registration.initial-timeout",
        default: "100 ms",
        kind: ValueKind::Duration,
        description: "Timeout of the first registration attempt; doubled after each timeout.",
    },
    ConfigOption {
        key: "cluster.registration.max-timeout",
        default: "30 s",
        kind: ValueKind::Duration,
        description: "Upper bound of the doubling registration attempt timeout.",
    },
    ConfigOption {
        key: "cluster.registration.refused-registration-delay",
        default: "30 s",
        kind: ValueKind::Duration,
        description: "Pause before retrying after a registration was declined.",
    },
    ConfigOption {
        key: "cluster.registration.error-delay",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "Pause before retrying after a registration failed with an error (e.g. the target refused the connection).",
    },
    ConfigOption {
        key: "taskmanager.registration.timeout",
        default: "5 min",
        kind: ValueKind::Duration,
        description: "A TaskManager that cannot register with a ResourceManager for this long terminates.",
    },
    ConfigOption {
        key: "pekko.ask.timeout",
        default: "10 s",
        kind: ValueKind::Duration,
        description: "Timeout of RPCs that expect an answer (Flink's rpcTimeout), e.g. the TaskExecutor's initial slot report.",
    },
    ConfigOption {
        key: "taskmanager.numberOfTaskSlots",
        default: "1",
        kind: ValueKind::Int,
        description: "Slots each TaskManager offers (reported to the ResourceManager in its slot report).",
    },
];

/// Flink keys flinksim knows about but does not model yet; setting one is an error that says so.
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "execution.checkpointing.interval",
    "execution.checkpointing.mode",
    "execution.checkpointing.timeout",
    "execution.checkpointing.min-pause",
    "execution.checkpointing.max-concurrent-checkpoints",
    "execution.checkpointing.tolerable-failed-checkpoints",
    "execution.checkpointing.num-retained",
    "restart-strategy.type",
    "restart-strategy.fixed-delay.attempts",
    "restart-strategy.fixed-delay.delay",
    "jobmanager.execution.failover-strategy",
    "high-availability.type",
    "slot.request.timeout",
    "slot.idle.timeout",
    "taskmanager.slot.timeout",
    "resourcemanager.taskmanager-timeout",
    "pipeline.max-parallelism",
];

/// The typed configuration of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlinkConfig {
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
            ask_timeout: Duration::ZERO,
            number_of_task_slots: 0,
        };
        for o in OPTIONS {
            c.set(o.key, o.default).expect("defaults parse");
        }
        c
    }
}

impl FlinkConfig {
    /// Sets `key` from its textual value. The error says what was expected.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let option = OPTIONS.iter().find(|o| o.key == key).ok_or_else(|| {
            if NOT_YET_SUPPORTED.contains(&key) {
                format!("Flink key `{key}` is not supported by flinksim yet")
            } else {
                format!(
                    "unknown Flink key `{key}`; supported keys: {}",
                    OPTIONS.iter().map(|o| o.key).collect::<Vec<_>>().join(", ")
                )
            }
        })?;
        let duration = || parse_duration(value).map_err(|e| format!("`{key}`: {e}"));
        let int = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("`{key}`: expected an integer, got `{value}`"))
        };
        match key {
            "heartbeat.interval" => self.heartbeat_interval = positive(key, duration()?)?,
            "heartbeat.timeout" => self.heartbeat_timeout = positive(key, duration()?)?,
            "heartbeat.rpc-failure-threshold" => {
                let v = int()?;
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
                self.registration_initial_timeout = positive(key, duration()?)?
            }
            "cluster.registration.max-timeout" => {
                self.registration_max_timeout = positive(key, duration()?)?
            }
            "cluster.registration.refused-registration-delay" => {
                self.registration_refused_delay = duration()?
            }
            "cluster.registration.error-delay" => self.registration_error_delay = duration()?,
            "taskmanager.registration.timeout" => {
                self.taskmanager_registration_timeout = positive(key, duration()?)?
            }
            "pekko.ask.timeout" => self.ask_timeout = positive(key, duration()?)?,
            "taskmanager.numberOfTaskSlots" => {
                let v = int()?;
                if !(1..=1024).contains(&v) {
                    return Err(format!("`{key}`: expected 1..=1024, got {v}"));
                }
                self.number_of_task_slots = v as u32;
            }
            _ => unreachable!("option {} has no setter", option.key),
        }
        Ok(())
    }

    /// Relationships between keys that Flink itself enforces.
    pub fn validate(&self) -> Result<(), String> {
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
        let c = FlinkConfig::default();
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
        let e = c.set("restart-strategy.type", "none").unwrap_err();
        assert!(e.contains("not supported by flinksim yet"));
        c.set("heartbeat.rpc-failure-threshold", "-1").unwrap();
        assert_eq!(c.heartbeat_rpc_failure_threshold, None);
        assert!(c.set("heartbeat.rpc-failure-threshold", "0").is_err());
    }

    #[test]
    fn timeout_below_interval_is_refused() {
        let mut c = FlinkConfig::default();
        c.set("heartbeat.timeout", "1 s").unwrap();
        assert!(c.validate().unwrap_err().contains("heartbeat.timeout"));
    }
}
