//! Report folders: `reports/<scenario>/<seed>/` with `summary.json`, `trace.jsonl` and
//! `scenario.toml` (the exact scenario text, so `flinksim run` on it alone reproduces the run).
//!
//! When the folder holds the run's `trace.jsonl`, [`write`] also renders three views of it
//! ([`render_extras`]):
//!
//! - `report.md` ([`markdown`]): the verdict, the violated invariants in plain words, the
//!   knobs, the fault schedule, a timeline and the commands to replay and shrink the run;
//! - `trace.perfetto.json` ([`perfetto`]): the run in Chrome's Trace Event Format, for
//!   <https://ui.perfetto.dev>: a track per node, message flows, checkpoints and faults;
//! - `sequence.mmd` ([`mermaid`]): a Mermaid sequence diagram of the messages that causally
//!   precede the first violation.
//!
//! All three are derived from the trace on disk ([`trace::Trace`]) and the summary; a bad
//! trace line is skipped, never a reason to fail.

pub mod markdown;
pub mod mermaid;
pub mod perfetto;
pub mod trace;

use crate::scenario::Scenario;
use crate::summary::Summary;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The human-readable report.
pub const REPORT_MD: &str = "report.md";
/// The Perfetto (Chrome Trace Event Format) rendering of the trace.
pub const PERFETTO_JSON: &str = "trace.perfetto.json";
/// The Mermaid sequence diagram.
pub const SEQUENCE_MMD: &str = "sequence.mmd";
/// The recorded trace.
pub const TRACE_JSONL: &str = "trace.jsonl";

/// The default report folder of a run.
pub fn default_dir(scenario: &Scenario, seed: u64) -> PathBuf {
    PathBuf::from("reports")
        .join(&scenario.name)
        .join(seed.to_string())
}

/// Creates `dir` and opens its `trace.jsonl` for writing.
pub fn open_trace(dir: &Path) -> io::Result<Box<dyn io::Write>> {
    fs::create_dir_all(dir)?;
    let f = fs::File::create(dir.join(TRACE_JSONL))?;
    Ok(Box::new(io::BufWriter::with_capacity(1 << 16, f)))
}

/// Writes `summary.json` and `scenario.toml` into `dir`, and, when `dir` holds the run's
/// `trace.jsonl`, `report.md`, `trace.perfetto.json` and `sequence.mmd` ([`render_extras`]).
pub fn write(dir: &Path, scenario: &Scenario, summary: &Summary) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    fs::write(dir.join("summary.json"), json + "\n")?;
    if dir.join("scenario.toml") != scenario.path {
        fs::write(dir.join("scenario.toml"), &scenario.source)?;
    }
    if dir.join(TRACE_JSONL).is_file() {
        render_extras(dir, scenario, summary)?;
    }
    Ok(())
}

/// Renders `report.md`, `trace.perfetto.json` and `sequence.mmd` into `dir` from its
/// `trace.jsonl` (which must be complete) and the run's summary.
pub fn render_extras(dir: &Path, scenario: &Scenario, summary: &Summary) -> io::Result<()> {
    let trace = trace::Trace::read(&dir.join(TRACE_JSONL))?;
    let diagram = mermaid::render(&trace, summary);
    fs::write(dir.join(SEQUENCE_MMD), &diagram)?;
    let f = fs::File::create(dir.join(PERFETTO_JSON))?;
    let mut w = io::BufWriter::with_capacity(1 << 16, f);
    perfetto::write(&mut w, &trace, summary)?;
    io::Write::flush(&mut w)?;
    let md = markdown::render(dir, scenario, summary, Some(&trace), Some(&diagram));
    fs::write(dir.join(REPORT_MD), md)?;
    Ok(())
}

/// Reads a report folder's `summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary, String> {
    let p = dir.join("summary.json");
    let text = fs::read_to_string(&p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a flinksim summary: {e}", p.display()))
}

/// Virtual time in seconds with millisecond precision: `12.345s`.
pub(crate) fn secs_ms(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Virtual time in seconds from nanoseconds, with millisecond precision: `12.345s`.
pub(crate) fn secs_ns(ns: u64) -> String {
    secs_ms(ns / 1_000_000)
}
