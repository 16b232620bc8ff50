//! The determinism gate: run a scenario twice with the same seed and compare the traces event by
//! event. The first run keeps the rolling trace hash after every event (8 bytes per event, see
//! [`sim::Tap`]) and the second checks its own against them as it goes; on a mismatch two more
//! runs render just the first differing event, so the report can name it (index, virtual time,
//! both versions) without holding either trace.

use crate::run::{run_catching, RunOptions, RunResult};
use crate::scenario::Scenario;
use model::checking::bugs::Bug;
use std::io::Write;

/// The first event where two runs of the same scenario and seed differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Position of the event in the trace, from 0.
    pub index: u64,
    /// Its virtual (true) time in nanoseconds, as the first run has it (or the second, if the
    /// first ended before it).
    pub t_ns: Option<u64>,
    /// The event as each run traced it (JSON line), or `None` where that run ended earlier.
    pub first: Option<String>,
    pub second: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self
            .t_ns
            .map(|t| format!(" at {:.6}s", t as f64 / 1e9))
            .unwrap_or_default();
        writeln!(f, "the runs differ first at event #{}{at}", self.index)?;
        let show = |l: &Option<String>| {
            l.as_deref()
                .map_or("(no such event: the run ended before it)", str::trim_end)
                .to_string()
        };
        writeln!(f, "  first run:  {}", show(&self.first))?;
        write!(f, "  second run: {}", show(&self.second))
    }
}

/// The outcome of a determinism check: the first run's result, and the first difference.
pub struct Checked {
    pub result: RunResult,
    pub difference: Option<Difference>,
}

/// Runs `scenario` with `seed` twice and compares the traces. The first run also writes its
/// trace to `trace` (so a report folder holds it).
pub fn check(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    trace: Option<Box<dyn Write>>,
) -> Checked {
    compare(scenario, scenario, seed, bug, trace)
}

/// Runs `first` and `second` with the same seed and compares their traces event by event (the
/// determinism check is `compare(s, s, …)`; different scenarios show where they diverge). When
/// a difference is intermittent, the two extra runs that render the differing event may not
/// meet it again; the index is exact either way.
pub fn compare(
    first: &Scenario,
    second: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    trace: Option<Box<dyn Write>>,
) -> Checked {
    let run = |scenario: &Scenario, trace: Option<Box<dyn Write>>, tap: sim::Tap| {
        run_catching(
            scenario,
            RunOptions {
                seed,
                bug,
                trace,
                tap,
            },
        )
    };
    let mut result = run(first, trace, sim::Tap::Hashes(Vec::new()));
    // A panicking run keeps no tap; compare what is left (nothing).
    let expected = match std::mem::take(&mut result.tap) {
        sim::Tap::Hashes(h) => h,
        _ => Vec::new(),
    };
    let verify = sim::Tap::Verify {
        expected,
        first_difference: None,
    };
    let second_run = run(second, None, verify);
    let index = match &second_run.tap {
        sim::Tap::Verify { .. } => second_run.tap.verified(second_run.summary.events),
        // The second run panicked: it differs wherever the first has events.
        _ => (result.summary.events > 0).then_some(0),
    };
    drop(second_run);
    let Some(index) = index else {
        return Checked {
            result,
            difference: None,
        };
    };
    let line = |scenario: &Scenario| {
        let r = run_catching(
            scenario,
            RunOptions {
                seed,
                bug,
                trace: None,
                tap: sim::Tap::Line { index, line: None },
            },
        );
        match r.tap {
            sim::Tap::Line { line, .. } => line,
            _ => None,
        }
    };
    let (first, second) = (line(first), line(second));
    let t_ns = first
        .as_deref()
        .or(second.as_deref())
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("t_ns").and_then(|t| t.as_u64()));
    Checked {
        result,
        difference: Some(Difference {
            index,
            t_ns,
            first,
            second,
        }),
    }
}
