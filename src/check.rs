//! `flinksim check`: the CI suite. Every scenario file under the given paths runs for its
//! `seeds`; a scenario passes when every seed ends as it expects (clean, or — negative
//! scenarios — failing with the declared invariant). Optionally writes JUnit XML.
//!
//! The determinism gate reruns a share of the seeds (every `determinism_every`-th, from seed 0)
//! and compares the two traces event by event ([`crate::determinism`]); a difference fails the
//! file and names the first differing event.

use crate::determinism::Difference;
use crate::run::{run_catching, RunOptions};
use crate::scenario::{Scenario, ScenarioError};
use crate::summary::Summary;
use std::path::{Path, PathBuf};

/// The outcome of one scenario file.
pub struct FileResult {
    pub scenario: Scenario,
    pub seeds: Vec<Summary>,
    /// Seeds the determinism gate ran twice, with the first difference (`None`: identical).
    pub determinism: Vec<(u64, Option<Difference>)>,
}

impl FileResult {
    /// Seeds that did not end as the scenario expects.
    pub fn unexpected(&self) -> impl Iterator<Item = &Summary> {
        self.seeds.iter().filter(|s| !s.as_expected())
    }
    /// Seeds whose two runs traced different events.
    pub fn nondeterministic(&self) -> impl Iterator<Item = (u64, &Difference)> {
        self.determinism
            .iter()
            .filter_map(|(seed, d)| d.as_ref().map(|d| (*seed, d)))
    }
    pub fn ok(&self) -> bool {
        self.unexpected().next().is_none() && self.nondeterministic().next().is_none()
    }
}

/// By default the determinism gate reruns every 10th seed (0, 10, …).
pub const DETERMINISM_EVERY: u64 = 10;

/// Every `.toml` file under `paths` (files as given, directories recursively), sorted.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut files).map_err(|e| format!("{}: {e}", p.display()))?;
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err("no scenario files (*.toml) found".to_string());
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every file first, so a bad file is reported before anything runs.
pub fn load_all(files: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    files.iter().map(|f| Scenario::load(f)).collect()
}

/// Runs one scenario for all its seeds; every `determinism_every`-th seed runs twice and the
/// traces are compared (0: no rerun).
pub fn run_file(scenario: Scenario, determinism_every: u64) -> FileResult {
    let mut determinism = Vec::new();
    let seeds = (0..scenario.seeds)
        .map(|seed| {
            if determinism_every > 0 && seed % determinism_every == 0 {
                let checked = crate::determinism::check(&scenario, seed, None, None);
                determinism.push((seed, checked.difference));
                return checked.result.summary;
            }
            run_catching(
                &scenario,
                RunOptions {
                    seed,
                    ..RunOptions::default()
                },
            )
            .summary
        })
        .collect();
    FileResult {
        scenario,
        seeds,
        determinism,
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Seeds of `r` that failed: unexpected endings, and nondeterministic seeds that ended as
/// expected.
pub fn failed_seeds(r: &FileResult) -> usize {
    r.seeds
        .iter()
        .filter(|s| !s.as_expected() || r.nondeterministic().any(|(seed, _)| seed == s.seed))
        .count()
}

/// JUnit XML: a test suite per scenario file, a test case per seed.
pub fn junit(results: &[FileResult]) -> String {
    let tests: usize = results.iter().map(|r| r.seeds.len()).sum();
    let failures: usize = results.iter().map(failed_seeds).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flinksim check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    );
    for r in results {
        let time: f64 = r.seeds.iter().map(|s| s.wall_ms as f64 / 1e3).sum();
        x += &format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{time:.3}\">\n",
            xml(&r.scenario.name),
            r.seeds.len(),
            failed_seeds(r)
        );
        for s in &r.seeds {
            x += &format!(
                "    <testcase classname=\"{}\" name=\"seed {}\" time=\"{:.3}\"",
                xml(&r.scenario.name),
                s.seed,
                s.wall_ms as f64 / 1e3
            );
            let nondeterministic = r
                .nondeterministic()
                .find(|(seed, _)| *seed == s.seed)
                .map(|(_, d)| d);
            if let Some(d) = nondeterministic {
                x += &format!(
                    ">\n      <failure message=\"not deterministic: the same seed traced different events\">{}</failure>\n    </testcase>\n",
                    xml(&d.to_string())
                );
                continue;
            }
            if s.as_expected() {
                x += "/>\n";
                continue;
            }
            let message = match (&s.expected_violation, s.violations.first()) {
                (Some(inv), _) => format!(
                    "expected a violation of {inv}, got {:?}",
                    s.violations
                        .iter()
                        .map(|v| &v.invariant)
                        .collect::<Vec<_>>()
                ),
                (None, Some(v)) => format!("{} at {} ms: {}", v.invariant, v.at_ms, v.message),
                (None, None) => "failed".to_string(),
            };
            x += &format!(
                ">\n      <failure message=\"{}\">trace_hash={} replay: flinksim replay {} --seed {}</failure>\n    </testcase>\n",
                xml(&message),
                s.trace_hash,
                xml(&r.scenario.path.display().to_string()),
                s.seed
            );
        }
        x += "  </testsuite>\n";
    }
    x += "</testsuites>\n";
    x
}
