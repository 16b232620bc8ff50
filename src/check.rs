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

/// The file in a scenario folder that lists the coverage probes the folder must reach; it is
/// not a scenario.
pub const PROBES_FILE: &str = "probes.toml";

/// Every scenario file under `paths` (files as given; directories recursively: every `.toml`
/// except [`PROBES_FILE`], and not through symbolic links, which are aliases), sorted.
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
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_symlink() {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml")
            && p.file_name().is_some_and(|f| f != PROBES_FILE)
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every file first, so a bad file is reported before anything runs.
pub fn load_all(files: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    files.iter().map(|f| Scenario::load(f)).collect()
}

/// Runs one scenario for all its seeds, in parallel on the current rayon pool (each run on one
/// thread; the results, in seed order, do not depend on the thread count); every
/// `determinism_every`-th seed runs twice and the traces are compared (0: no rerun).
pub fn run_file(scenario: Scenario, determinism_every: u64) -> FileResult {
    use rayon::prelude::*;
    let outcomes: Vec<(Summary, Option<Option<Difference>>)> = (0..scenario.seeds)
        .into_par_iter()
        .map(|seed| {
            if determinism_every > 0 && seed % determinism_every == 0 {
                let checked = crate::determinism::check(&scenario, seed, None, None);
                return (checked.result.summary, Some(checked.difference));
            }
            let summary = run_catching(
                &scenario,
                RunOptions {
                    seed,
                    ..RunOptions::default()
                },
            )
            .summary;
            (summary, None)
        })
        .collect();
    let mut seeds = Vec::with_capacity(outcomes.len());
    let mut determinism = Vec::new();
    for (summary, checked) in outcomes {
        if let Some(difference) = checked {
            determinism.push((summary.seed, difference));
        }
        seeds.push(summary);
    }
    FileResult {
        scenario,
        seeds,
        determinism,
    }
}

/// The probes a folder requires (its [`PROBES_FILE`]): `required = ["probe", …]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbesFile {
    required: Vec<toml::Spanned<String>>,
}

/// The coverage probes required by the [`PROBES_FILE`] at the top of each directory in `paths`
/// (a file given on its own, or a folder without one, requires none), each with the file that
/// requires it. An unreadable file or an unknown probe name is an error naming file and line.
pub fn required_probes(paths: &[PathBuf]) -> Result<Vec<(&'static str, PathBuf)>, String> {
    let mut required: Vec<(&'static str, PathBuf)> = Vec::new();
    for dir in paths.iter().filter(|p| p.is_dir()) {
        let file = dir.join(PROBES_FILE);
        if !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let line_of = |offset: usize| text[..offset.min(text.len())].lines().count().max(1);
        let parsed: ProbesFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(s.start));
            format!(
                "{}:{line}: expected `required = [\"<probe>\", …]` (see `flinksim list probes`): {}",
                file.display(),
                e.message()
            )
        })?;
        for name in &parsed.required {
            let Some(probe) = model::checking::probes::probe(name.get_ref()) else {
                return Err(format!(
                    "{}:{}: unknown probe {:?}; expected one of: {}",
                    file.display(),
                    line_of(name.span().start),
                    name.get_ref(),
                    model::checking::probes::PROBES
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !required.iter().any(|(n, _)| *n == probe.name) {
                required.push((probe.name, file.clone()));
            }
        }
    }
    Ok(required)
}

/// How often the clean runs of `results` reached each probe (negative scenarios, which run
/// with a planted bug or are meant to fail, do not count), with the scenarios that reached it.
pub fn probe_hits(results: &[FileResult]) -> Vec<(&'static str, u64, Vec<String>)> {
    model::checking::probes::PROBES
        .iter()
        .map(|p| {
            let mut hits = 0;
            let mut scenarios = Vec::new();
            for r in results
                .iter()
                .filter(|r| r.scenario.expect.violation.is_none())
            {
                let n: u64 = r
                    .seeds
                    .iter()
                    .filter(|s| s.bug.is_none())
                    .filter_map(|s| s.probes.get(p.name))
                    .sum();
                if n > 0 {
                    hits += n;
                    scenarios.push(r.scenario.name.clone());
                }
            }
            (p.name, hits, scenarios)
        })
        .collect()
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

/// A required probe and how often the suite reached it.
pub struct ProbeVerdict {
    pub name: &'static str,
    pub hits: u64,
    /// The probes file that requires it.
    pub required_by: PathBuf,
}

/// JUnit XML: a test suite per scenario file, a test case per seed; and a `coverage probes`
/// suite with a test case per required probe (failed when never reached).
pub fn junit(results: &[FileResult], probes: &[ProbeVerdict]) -> String {
    let unreached = probes.iter().filter(|p| p.hits == 0).count();
    let tests: usize = results.iter().map(|r| r.seeds.len()).sum::<usize>() + probes.len();
    let failures: usize = results.iter().map(failed_seeds).sum::<usize>() + unreached;
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
    if !probes.is_empty() {
        x += &format!(
            "  <testsuite name=\"coverage probes\" tests=\"{}\" failures=\"{unreached}\">\n",
            probes.len()
        );
        for p in probes {
            x += &format!(
                "    <testcase classname=\"coverage probes\" name=\"{}\"",
                xml(p.name)
            );
            if p.hits > 0 {
                x += "/>\n";
            } else {
                x += &format!(
                    ">\n      <failure message=\"probe never reached\">required by {}; no clean run of the suite reached it</failure>\n    </testcase>\n",
                    xml(&p.required_by.display().to_string())
                );
            }
        }
        x += "  </testsuite>\n";
    }
    x += "</testsuites>\n";
    x
}
