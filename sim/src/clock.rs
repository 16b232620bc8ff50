//! Per-node clocks.
//!
//! A node has two readings of time, like a real process:
//! - a **monotonic** clock (`System.nanoTime` in a JVM) that runs at the node's own rate,
//!   `mono(t) = t + t * drift_ppm / 1e6`; timers are set on it, so a drifting node's timers fire
//!   early or late in true time, and a clock jump does not move them;
//! - a **wall** clock (`System.currentTimeMillis`) = monotonic + offset + the sum of clock jumps,
//!   which is what timestamps are taken from.
//!
//! Oracles use true time; a node only ever sees its own local readings.

use crate::time::{nanos, Time};
use std::time::Duration;

/// The largest drift a clock may have, in parts per million (10%).
pub const DRIFT_PPM_MAX: i64 = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Clock {
    /// Rate error of the local oscillator, in parts per million (positive = runs fast).
    pub drift_ppm: i64,
    /// Offset of the wall clock from true time at t = 0, in nanoseconds.
    pub offset_ns: i64,
    /// Sum of all clock jumps applied so far (wall clock only), in nanoseconds.
    pub jumped_ns: i64,
}

impl Clock {
    pub fn new(drift_ppm: i64, offset_ns: i64) -> Clock {
        assert!(drift_ppm.abs() <= DRIFT_PPM_MAX);
        Clock {
            drift_ppm,
            offset_ns,
            jumped_ns: 0,
        }
    }

    /// The local monotonic reading at true time `t`, in nanoseconds.
    #[inline]
    pub fn mono(&self, t: Time) -> u64 {
        let ns = t.as_nanos();
        if self.drift_ppm == 0 {
            return ns;
        }
        // i64 suffices for runs up to ~25 virtual hours at the largest drift; i128 beyond.
        if let Some(scaled) = (ns as i64).checked_mul(self.drift_ppm) {
            if ns <= i64::MAX as u64 {
                let local = ns as i64 + scaled / 1_000_000;
                assert!(local >= 0);
                return local as u64;
            }
        }
        let t = i128::from(ns);
        let local = t + t * i128::from(self.drift_ppm) / 1_000_000;
        assert!(local >= 0);
        local as u64
    }

    /// The local wall-clock reading at true time `t`, in nanoseconds (may be negative early on
    /// for a negative offset).
    #[inline]
    pub fn wall(&self, t: Time) -> i64 {
        self.mono(t) as i64 + self.offset_ns + self.jumped_ns
    }

    /// The true-time span after which `local` has passed on this node's monotonic clock.
    /// Rounded up (plus one nanosecond for the truncation in `mono`) so a timer never fires
    /// before its local deadline.
    #[inline]
    pub fn true_delay(&self, local: Duration) -> Duration {
        if self.drift_ppm == 0 {
            return local;
        }
        let d = u128::from(nanos(local));
        let rate = (1_000_000 + self.drift_ppm) as u128;
        let true_ns = (d * 1_000_000).div_ceil(rate) + 1;
        Duration::from_nanos(u64::try_from(true_ns).unwrap_or(u64::MAX))
    }

    /// Moves the wall clock (not the monotonic clock) by `by_ns`.
    pub fn jump(&mut self, by_ns: i64) {
        self.jumped_ns += by_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_never_fire_before_their_local_deadline() {
        for ppm in [-100_000, -137, -1, 0, 1, 99, 100, 100_000] {
            let clock = Clock::new(ppm, 0);
            for start_ms in [0u64, 1, 999, 123_456] {
                for delay_ns in [1u64, 7, 1_000_000, 50_000_000_000] {
                    let start = Time::from_millis(start_ms);
                    let fire = start + clock.true_delay(Duration::from_nanos(delay_ns));
                    assert!(
                        clock.mono(fire) - clock.mono(start) >= delay_ns,
                        "ppm {ppm}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_fast_and_wide_paths_agree() {
        for ppm in [-100_000, -3, 7, 100_000] {
            let c = Clock::new(ppm, 0);
            for ns in [
                0u64,
                1,
                999_999,
                123_456_789_012,
                90_000_000_000_000,
                200_000_000_000_000,
            ] {
                let t = i128::from(ns);
                let wide = (t + t * i128::from(ppm) / 1_000_000) as u64;
                assert_eq!(c.mono(Time(ns)), wide, "ppm {ppm} ns {ns}");
            }
        }
    }

    #[test]
    fn a_fast_clock_fires_timers_early_in_true_time() {
        let fast = Clock::new(100, 0);
        let slow = Clock::new(-100, 0);
        let d = Duration::from_secs(50);
        assert!(fast.true_delay(d) < d);
        assert!(slow.true_delay(d) > d);
    }

    #[test]
    fn jumps_move_the_wall_clock_only() {
        let mut c = Clock::new(0, 5);
        let t = Time::from_secs(1);
        let mono = c.mono(t);
        c.jump(-2_000_000_000);
        assert_eq!(c.mono(t), mono);
        assert_eq!(c.wall(t), mono as i64 + 5 - 2_000_000_000);
    }
}
