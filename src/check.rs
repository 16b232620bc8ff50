//! `flinksim check`: the CI suite. Every scenario file under the given paths runs for its
//! `seeds`; a scenario passes when every seed ends as it expects (clean, or — negative
//! scenarios — failing with the declared invariant). Optionally writes JUnit XML.

use crate::run::{run_catching, RunOptions};
use crate::scenario::{Scenario, ScenarioError};
use crate::summary::Summary;
use std::path::{Path, PathBuf};

/// The outcome of one scenario file.
pub struct FileResult {
    pub scenario: Scenario,
    pub seeds: Vec<Summary>,
}

impl FileResult {
    pub fn unexpected(&self) -> impl Iterator<Item = &Summary> {
        self.seeds.iter().filter(|s| !s.as_expected())
    }
    pub fn ok(&self) -> bool {
        self.unexpected().next().is_none()
    }
}

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

/// Runs one scenario for all its seeds.
pub fn run_file(scenario: Scenario) -> FileResult {
    let seeds = (0..scenario.seeds)
        .map(|seed| {
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
    FileResult { scenario, seeds }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: a test suite per scenario file, a test case per seed.
pub fn junit(results: &[FileResult]) -> String {
    let tests: usize = results.iter().map(|r| r.seeds.len()).sum();
    let failures: usize = results.iter().map(|r| r.unexpected().count()).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flinksim check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    );
    for r in results {
        let time: f64 = r.seeds.iter().map(|s| s.wall_ms as f64 / 1e3).sum();
        x += &format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{time:.3}\">\n",
            xml(&r.scenario.name),
            r.seeds.len(),
            r.unexpected().count()
        );
        for s in &r.seeds {
            x += &format!(
                "    <testcase classname=\"{}\" name=\"seed {}\" time=\"{:.3}\"",
                xml(&r.scenario.name),
                s.seed,
                s.wall_ms as f64 / 1e3
            );
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
