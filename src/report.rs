//! Report folders: `reports/<scenario>/<seed>/` with `summary.json`, `trace.jsonl` and
//! `scenario.toml` (the exact scenario text, so `flinksim run` on it alone reproduces the run).

use crate::scenario::Scenario;
use crate::summary::Summary;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The default report folder of a run.
pub fn default_dir(scenario: &Scenario, seed: u64) -> PathBuf {
    PathBuf::from("reports")
        .join(&scenario.name)
        .join(seed.to_string())
}

/// Creates `dir` and opens its `trace.jsonl` for writing.
pub fn open_trace(dir: &Path) -> io::Result<Box<dyn io::Write>> {
    fs::create_dir_all(dir)?;
    let f = fs::File::create(dir.join("trace.jsonl"))?;
    Ok(Box::new(io::BufWriter::with_capacity(1 << 16, f)))
}

/// Writes `summary.json` and `scenario.toml` into `dir`.
pub fn write(dir: &Path, scenario: &Scenario, summary: &Summary) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    fs::write(dir.join("summary.json"), json + "\n")?;
    if dir.join("scenario.toml") != scenario.path {
        fs::write(dir.join("scenario.toml"), &scenario.source)?;
    }
    Ok(())
}

/// Reads a report folder's `summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary, String> {
    let p = dir.join("summary.json");
    let text = fs::read_to_string(&p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a flinksim summary: {e}", p.display()))
}
