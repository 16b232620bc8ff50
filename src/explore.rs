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
use model::checking::bugs::Bug;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
    /// Every run's trace hash folded in (scenario, seed) order ([`fold_trace_hash`]): equal
    /// digests mean identical runs, whatever the thread count or build profile.
    pub traces_digest: u64,
}

/// Folds one run's trace hash (hex, as in the summary) into a digest, order-dependently, with
/// the kernel's fixed-definition hash.
pub fn fold_trace_hash(digest: u64, trace_hash: &str) -> u64 {
    sim::stable_hash(&(digest, trace_hash))
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
                out.traces_digest = fold_trace_hash(out.traces_digest, &s.trace_hash);
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

/// What one exploration (one shard) ran and found, as written to `exploration*.json` by
/// `explore --out` and read back by `merge`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The scenario names explored, in order.
    pub scenarios: Vec<String>,
    /// `A..B`.
    pub seeds: String,
    /// `K/N`, when sharded.
    pub shard: Option<String>,
    pub bug: Option<String>,
    pub runs: u64,
    pub events: u64,
    pub wall_ms: u64,
    /// Why it stopped before the end (first failure, time limit); `None`: every seed ran.
    pub stopped: Option<String>,
    pub failures: Vec<Failure>,
    /// [`Outcome::traces_digest`] in hex.
    #[serde(default)]
    pub traces_digest: String,
}

impl Record {
    pub fn new(scenarios: &[Scenario], what: &Exploration, out: &Outcome) -> Record {
        Record {
            scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
            seeds: format!("{}..{}", what.seeds.start, what.seeds.end),
            shard: what.shard.map(|s| format!("{}/{}", s.index, s.count)),
            bug: what.bug.map(|b| b.name().to_string()),
            runs: out.runs,
            events: out.events,
            wall_ms: out.wall.as_millis() as u64,
            stopped: out.stopped.clone(),
            failures: out.failures.clone(),
            traces_digest: format!("{:016x}", out.traces_digest),
        }
    }

    /// The file name `explore --out DIR` writes into DIR.
    pub fn file_name(&self) -> String {
        match &self.shard {
            Some(s) => format!("exploration-shard-{}.json", s.replace('/', "-of-")),
            None => "exploration.json".to_string(),
        }
    }
}

/// Sharded explorations joined by `merge`: per exploration (scenarios, seeds, bug), the shards
/// seen and the union of what they found.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    pub scenarios: Vec<String>,
    pub seeds: String,
    pub bug: Option<String>,
    /// Shard indices present (empty: an unsharded record), and the shard count.
    pub shards: Vec<u64>,
    pub shard_count: Option<u64>,
    pub runs: u64,
    pub events: u64,
    pub wall_ms: u64,
    /// Shards that stopped early, with why.
    pub stopped: Vec<String>,
    /// Every failing seed, by scenario then seed.
    pub failures: Vec<Failure>,
}

impl Merged {
    /// Shards of `1..=N` that are missing (none for unsharded explorations).
    pub fn missing_shards(&self) -> Vec<u64> {
        match self.shard_count {
            Some(n) => (1..=n).filter(|k| !self.shards.contains(k)).collect(),
            None => Vec::new(),
        }
    }
}

/// Joins records of the same exploration (same scenarios, seeds and bug); records of different
/// explorations stay apart. Errors name a duplicated shard or mixed shard counts.
pub fn merge(records: &[Record]) -> Result<Vec<Merged>, String> {
    let mut out: Vec<Merged> = Vec::new();
    for r in records {
        let (index, count) = match &r.shard {
            Some(text) => {
                let s = Shard::parse(text).map_err(|e| format!("a record's shard: {e}"))?;
                (Some(s.index), Some(s.count))
            }
            None => (None, None),
        };
        let m = match out
            .iter_mut()
            .find(|m| m.scenarios == r.scenarios && m.seeds == r.seeds && m.bug == r.bug)
        {
            Some(m) => m,
            None => {
                out.push(Merged {
                    scenarios: r.scenarios.clone(),
                    seeds: r.seeds.clone(),
                    bug: r.bug.clone(),
                    shards: Vec::new(),
                    shard_count: count,
                    runs: 0,
                    events: 0,
                    wall_ms: 0,
                    stopped: Vec::new(),
                    failures: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if m.shard_count != count {
            return Err(format!(
                "exploration of {} seeds {}: records with different --shard counts ({:?} and {:?})",
                r.scenarios.join(", "),
                r.seeds,
                m.shard_count,
                count
            ));
        }
        if let Some(k) = index {
            if m.shards.contains(&k) {
                return Err(format!(
                    "exploration of {} seeds {}: shard {k}/{} appears twice",
                    r.scenarios.join(", "),
                    r.seeds,
                    count.unwrap_or(0)
                ));
            }
            m.shards.push(k);
        }
        m.runs += r.runs;
        m.events += r.events;
        m.wall_ms += r.wall_ms;
        if let Some(why) = &r.stopped {
            m.stopped.push(match &r.shard {
                Some(s) => format!("shard {s}: {why}"),
                None => why.clone(),
            });
        }
        m.failures.extend(r.failures.iter().cloned());
    }
    for m in &mut out {
        m.shards.sort_unstable();
        m.failures
            .sort_by(|a, b| (&a.scenario, a.summary.seed).cmp(&(&b.scenario, b.summary.seed)));
    }
    Ok(out)
}

/// JUnit XML of merged explorations: a suite per exploration, a test case per shard (failing
/// when it found failing seeds) and one per missing shard.
pub fn junit(merged: &[Merged]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut cases = Vec::new();
    for m in merged {
        let suite = format!(
            "{} seeds {}{}",
            m.scenarios.join("+"),
            m.seeds,
            m.bug
                .as_ref()
                .map(|b| format!(" bug {b}"))
                .unwrap_or_default()
        );
        let shard_names: Vec<(String, Option<u64>)> = match m.shard_count {
            Some(n) => (1..=n)
                .map(|k| (format!("shard {k}/{n}"), Some(k)))
                .collect(),
            None => vec![("all seeds".to_string(), None)],
        };
        let mut xs = Vec::new();
        for (name, k) in shard_names {
            let failing: Vec<&Failure> = m
                .failures
                .iter()
                .filter(|f| match (k, m.shard_count) {
                    (Some(k), Some(n)) => f.summary.seed % n == k - 1,
                    _ => true,
                })
                .collect();
            let body = if k.is_some_and(|k| !m.shards.contains(&k)) {
                "><failure message=\"this shard's record is missing\"/></testcase>".to_string()
            } else if failing.is_empty() {
                "/>".to_string()
            } else {
                let lines: Vec<String> = failing
                    .iter()
                    .map(|f| {
                        let v = f.summary.violations.first();
                        format!(
                            "{} seed {}: {} — {}",
                            f.scenario,
                            f.summary.seed,
                            v.map_or("?", |v| v.invariant.as_str()),
                            f.replay_command()
                        )
                    })
                    .collect();
                format!(
                    "><failure message=\"{} failing seed(s)\">{}</failure></testcase>",
                    failing.len(),
                    esc(&lines.join("\n"))
                )
            };
            xs.push(format!(
                "    <testcase classname=\"{}\" name=\"{}\"{body}\n",
                esc(&suite),
                esc(&name)
            ));
        }
        let failures = xs.iter().filter(|x| x.contains("<failure")).count();
        cases.push(format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n{}  </testsuite>\n",
            esc(&suite),
            xs.len(),
            m.wall_ms as f64 / 1e3,
            xs.concat()
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flinksim merge\">\n{}</testsuites>\n",
        cases.concat()
    )
}
