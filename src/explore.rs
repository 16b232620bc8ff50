//! `flinksim explore`: many seeds of one or more scenarios, in parallel across seeds (one run is
//! one thread), looking for failing seeds.
//!
//! Results do not depend on the number of threads: seeds run in fixed batches and, unless asked
//! to keep going, the exploration stops after the batch that holds the first failure and reports
//! that failure (the smallest failing seed). A panic inside one seed is that seed's failure
//! (`run_catching`), never a crash of the exploration.

use crate::run::{run_catching, RunOptions};
use crate::scenario::Scenario;
use crate::summary::Summary;
use model::bugs::Bug;
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// Seeds run together before the exploration decides whether to go on. Fixed, so that where an
/// exploration stops does not depend on the thread count.
pub const BATCH: usize = 64;

/// Which seeds to explore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    /// `N` (seeds 0..N) or `A..B`.
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        let bad =
            || format!("--seeds expects N or A..B (for example 1000 or 500..1500), got `{text}`");
        let range = match text.split_once("..") {
            Some((a, b)) => SeedRange {
                start: a.trim().parse().map_err(|_| bad())?,
                end: b.trim().parse().map_err(|_| bad())?,
            },
            None => SeedRange {
                start: 0,
                end: text.trim().parse().map_err(|_| bad())?,
            },
        };
        if range.start >= range.end {
            return Err(format!("--seeds `{text}` is empty"));
        }
        Ok(range)
    }
}

/// `--shard K/N`: the K-th of N deterministic slices of the seeds (K from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad =
            || format!("--shard expects K/N with 1 <= K <= N (for example 2/8), got `{text}`");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard runs `seed` (seed mod N picks the shard).
    pub fn owns(self, seed: u64) -> bool {
        seed % self.count == self.index - 1
    }
}

/// What to explore.
#[derive(Clone, Debug)]
pub struct Exploration {
    pub seeds: SeedRange,
    pub shard: Option<Shard>,
    pub bug: Option<Bug>,
    pub keep_going: bool,
    pub time_limit: Option<Duration>,
}

/// One failing seed.
#[derive(Clone, Debug)]
pub struct Failure {
    pub scenario: String,
    pub file: String,
    pub summary: Summary,
}

impl Failure {
    pub fn replay_command(&self) -> String {
        let mut c = format!("flinksim replay {} --seed {}", self.file, self.summary.seed);
        if let Some(b) = &self.summary.bug {
            c += &format!(" --bug {b}");
        }
        c
    }
}

/// What an exploration found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub runs: u64,
    pub events: u64,
    pub failures: Vec<Failure>,
    /// Stopped early: at a failure, or at the time limit.
    pub stopped: Option<String>,
    pub wall: Duration,
}

/// Progress after each batch: (runs so far, failures so far, wall time so far).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64, Duration);

/// Explores `scenarios` one after the other, each over the seeds of `what`.
pub fn explore(scenarios: &[Scenario], what: &Exploration, progress: Progress<'_>) -> Outcome {
    let began = Instant::now();
    let mut out = Outcome::default();
    'scenarios: for scenario in scenarios {
        let seeds: Vec<u64> = (what.seeds.start..what.seeds.end)
            .filter(|s| what.shard.is_none_or(|sh| sh.owns(*s)))
            .collect();
        for batch in seeds.chunks(BATCH) {
            if let Some(limit) = what.time_limit {
                if began.elapsed() >= limit {
                    out.stopped = Some(format!("time limit of {:.0?} reached", limit));
                    break 'scenarios;
                }
            }
            let results: Vec<Summary> = batch
                .par_iter()
                .map(|&seed| {
                    run_catching(
                        scenario,
                        RunOptions {
                            seed,
                            bug: what.bug,
                            trace: None,
                            tap: sim::Tap::None,
                        },
                    )
                    .summary
                })
                .collect();
            let mut failed = false;
            for s in results {
                out.runs += 1;
                out.events += s.events;
                if !s.passed() {
                    failed = true;
                    out.failures.push(Failure {
                        scenario: scenario.name.clone(),
                        file: scenario.path.display().to_string(),
                        summary: s,
                    });
                }
            }
            progress(out.runs, out.failures.len() as u64, began.elapsed());
            if failed && !what.keep_going {
                // The first failure: the smallest failing seed of this batch (the batch is in
                // seed order), whatever the thread count.
                out.failures.truncate(1);
                out.stopped = Some(format!(
                    "stopped at the first failing seed after {} run(s) (--keep-going finds them all)",
                    out.runs
                ));
                break 'scenarios;
            }
        }
    }
    out.wall = began.elapsed();
    out
}
