//! `report.md`: a run explained for a human, first the verdict and what was violated in plain
//! words, then the scenario, the knobs drawn from the seed, the fault schedule, a timeline, the
//! figures, the commands to replay and shrink the run, and links to the other files.

use super::trace::{Observation, Outcome, Trace};
use super::{secs_ms, secs_ns};
use crate::scenario::{FaultAction, Scenario};
use crate::summary::Summary;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// At most this many timeline rows are written.
pub const TIMELINE_MAX: usize = 400;

/// A fault as a sentence: `kill taskmanager-2`, `partition {a, b} from {c} (heals after 2s)`.
pub fn describe_fault(action: &FaultAction) -> String {
    let groups = |groups: &[Vec<String>]| {
        groups
            .iter()
            .map(|g| format!("{{{}}}", g.join(", ")))
            .collect::<Vec<_>>()
            .join(" from ")
    };
    let after = |what: &str, d: &Option<Duration>| {
        d.map(|d| format!(" ({what} after {d:?})"))
            .unwrap_or_default()
    };
    if let Some(text) = action.aimed_text() {
        return text;
    }
    match action {
        FaultAction::Messages { .. } | FaultAction::Slow { .. } => unreachable!("aimed_text"),
        FaultAction::Kill(n) => format!("kill {n}"),
        FaultAction::Start(n) => format!("start {n}"),
        FaultAction::Pause { node, resume_after } => {
            format!("pause {node}{}", after("resumes", resume_after))
        }
        FaultAction::Resume(n) => format!("resume {n}"),
        FaultAction::Partition {
            groups: g,
            one_way,
            heal_after,
        } => format!(
            "{}partition {}{}",
            if *one_way { "one-way " } else { "" },
            groups(g),
            after("heals", heal_after)
        ),
        FaultAction::Heal => "heal every partition and clog".to_string(),
        FaultAction::Clog {
            groups: g,
            one_way,
            extra,
            clear_after,
        } => format!(
            "{}clog {} by +{extra:?}{}",
            if *one_way { "one-way " } else { "" },
            groups(g),
            after("clears", clear_after)
        ),
        FaultAction::ClockJump { node, by_ns } => {
            let sign = if *by_ns < 0 { "-" } else { "+" };
            format!(
                "clock of {node} jumps {sign}{:?}",
                Duration::from_nanos(by_ns.unsigned_abs())
            )
        }
        FaultAction::FailTask {
            operator, subtask, ..
        } => format!("task {operator}[{subtask}] throws"),
    }
}

/// Text safe in a Markdown table cell.
fn cell(raw: &str) -> String {
    raw.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\n', '\r'], " ")
}

/// A command-line argument, quoted when the shell would split it.
fn shell_arg(raw: &str) -> String {
    if !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c))
    {
        raw.to_string()
    } else {
        format!("'{}'", raw.replace('\'', "'\\''"))
    }
}

/// What a timeline row is, in the order rows of the same millisecond are listed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RowKind {
    Fault,
    Loss,
    Status,
    Restore,
    Checkpoint,
    /// A completed checkpoint: runs of them collapse into one row.
    Completed(u64),
    Violation,
}

struct Row {
    at_ms: u64,
    kind: RowKind,
    node: String,
    text: String,
}

/// The timeline of a run: job status, checkpoints, restores, faults, losses, violations.
fn timeline(scenario: &Scenario, s: &Summary, trace: Option<&Trace>) -> Vec<Row> {
    let mut rows = Vec::new();
    let row = |at_ms, kind, node: &str, text: String| Row {
        at_ms,
        kind,
        node: node.to_string(),
        text,
    };
    // The node that reported a job status or restore, from the trace (the summary has none).
    let reporter = |at_ms: u64, wanted: &dyn Fn(&Observation) -> bool| -> &str {
        trace
            .and_then(|t| {
                t.observations
                    .iter()
                    .find(|o| o.t_ns / 1_000_000 == at_ms && wanted(&o.what))
                    .map(|o| t.node_name(o.node))
            })
            .unwrap_or("")
    };
    for st in &s.job_status_history {
        let node = reporter(
            st.at_ms,
            &|o| matches!(o, Observation::JobStatus(x) if *x == st.status),
        );
        rows.push(row(
            st.at_ms,
            RowKind::Status,
            node,
            format!("job **{}**", st.status),
        ));
    }
    for f in &s.faults {
        let node = f.node.as_deref().unwrap_or("");
        let text = match (f.fault.as_str(), &f.node) {
            ("exit", Some(n)) => format!("{n} exited"),
            (kind, None) => scenario
                .faults
                .iter()
                .find(|spec| {
                    spec.at.as_millis() as u64 == f.at_ms
                        && matches!(
                            (kind, &spec.action),
                            ("partition", FaultAction::Partition { .. })
                                | ("clog", FaultAction::Clog { .. })
                                | ("heal-all", FaultAction::Heal)
                        )
                })
                .map_or_else(|| kind.to_string(), |spec| describe_fault(&spec.action)),
            (kind, Some(n)) => format!("{kind} {n}"),
        };
        rows.push(row(f.at_ms, RowKind::Fault, node, format!("fault: {text}")));
    }
    for l in &s.taskmanagers_lost {
        rows.push(row(
            l.at_ms,
            RowKind::Loss,
            &l.taskmanager,
            format!("{} lost {} ({})", l.observer, l.target, l.cause),
        ));
    }
    for r in &s.restores {
        let from = r.checkpoint_id.map_or_else(
            || "no completed checkpoint: starts over".to_string(),
            |c| format!("from checkpoint {c}"),
        );
        let scope = if r.global { "global" } else { "region" };
        let node = reporter(
            r.at_ms,
            &|o| matches!(o, Observation::RestoreDecided { checkpoint, .. } if *checkpoint == r.checkpoint_id),
        );
        rows.push(row(
            r.at_ms,
            RowKind::Restore,
            node,
            format!("restore {from} ({} vertices, {scope} failover)", r.vertices),
        ));
    }
    if let Some(t) = trace {
        for c in t.checkpoint_spans() {
            let node = t.node_name(c.node);
            let at_ms = c.end_ns / 1_000_000;
            match c.outcome {
                Outcome::Completed => {
                    rows.push(row(at_ms, RowKind::Completed(c.id), node, String::new()))
                }
                Outcome::Aborted(reason) => rows.push(row(
                    at_ms,
                    RowKind::Checkpoint,
                    node,
                    format!("checkpoint {} aborted ({reason})", c.id),
                )),
                Outcome::Pending => rows.push(row(
                    c.start_ns / 1_000_000,
                    RowKind::Checkpoint,
                    node,
                    format!("checkpoint {} triggered, still pending at the end", c.id),
                )),
            }
        }
    }
    for v in &s.violations {
        rows.push(row(
            v.at_ms,
            RowKind::Violation,
            v.node.as_deref().unwrap_or(""),
            format!("**VIOLATION** `{}`: {}", v.invariant, v.message),
        ));
    }
    rows.sort_by(|a, b| (a.at_ms, &a.kind).cmp(&(b.at_ms, &b.kind)));
    rows
}

/// The timeline as table lines, runs of completed checkpoints collapsed.
fn timeline_table(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        if let RowKind::Completed(first) = r.kind {
            let run = rows[i..]
                .iter()
                .take_while(|x| matches!(x.kind, RowKind::Completed(_)) && x.node == r.node)
                .count();
            let last = &rows[i + run - 1];
            let last_id = match last.kind {
                RowKind::Completed(id) => id,
                _ => first,
            };
            let (time, text) = if run == 1 {
                (secs_ms(r.at_ms), format!("checkpoint {first} completed"))
            } else {
                (
                    format!("{} – {}", secs_ms(r.at_ms), secs_ms(last.at_ms)),
                    format!("checkpoints {first}–{last_id} completed ({run})"),
                )
            };
            out.push(format!("| {time} | {} | {text} |", cell(&r.node)));
            i += run;
        } else {
            out.push(format!(
                "| {} | {} | {} |",
                secs_ms(r.at_ms),
                cell(&r.node),
                cell(&r.text)
            ));
            i += 1;
        }
    }
    out
}

/// The Markdown report of a run in report folder `dir`; `trace` adds checkpoints to the
/// timeline, `diagram` is embedded as a Mermaid block.
pub fn render(
    dir: &Path,
    scenario: &Scenario,
    s: &Summary,
    trace: Option<&Trace>,
    diagram: Option<&str>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}, seed {}\n", s.scenario, s.seed);
    verdict_section(&mut md, s, trace);
    violations_section(&mut md, s);
    scenario_section(&mut md, scenario, s);
    faults_section(&mut md, scenario);
    timeline_section(&mut md, scenario, s, trace);
    figures_section(&mut md, s, trace);
    reproduce_section(&mut md, dir, s);
    files_section(&mut md, s, trace, diagram);
    md
}

/// The verdict line, what the run expected, the planted bug and trace warnings.
fn verdict_section(md: &mut String, s: &Summary, trace: Option<&Trace>) {
    let verdict = if s.passed() { "PASS" } else { "FAIL" };
    let what = match s.violations.first() {
        Some(v) => format!(
            " — `{}` violated at {}{}{}",
            v.invariant,
            secs_ms(v.at_ms),
            v.node
                .as_deref()
                .map(|n| format!(" on `{n}`"))
                .unwrap_or_default(),
            match s.violations.len() {
                1 => String::new(),
                n => format!(" ({n} violations)"),
            }
        ),
        None => " — every checked invariant held".to_string(),
    };
    let _ = writeln!(md, "**{verdict}**{what}.\n");
    if let Some(expected) = &s.expected_violation {
        let how = if s.as_expected() {
            "the run failed with it **as expected**"
        } else {
            "the run did **NOT** end as expected"
        };
        let _ = writeln!(
            md,
            "Negative scenario: it expects a violation of `{expected}`; {how}.\n"
        );
    }
    if let Some(b) = &s.bug {
        let about = model::checking::bugs::Bug::from_name(b)
            .map(|b| format!(": {}", b.description()))
            .unwrap_or_default();
        let _ = writeln!(md, "Planted bug `{b}`{about}\n");
    }
    if s.stop_reason == "Panic" {
        md.push_str("The run **panicked**; the figures below are empty.\n\n");
    }
    if let Some(t) = trace {
        let mismatch = !s.trace_hash.is_empty()
            && (t.last_hash.as_deref() != Some(s.trace_hash.as_str()) || t.events != s.events);
        if mismatch {
            let _ = writeln!(
                md,
                "> **Warning:** `trace.jsonl` does not match this summary ({} events, last hash {}; the summary has {} events, hash {}): it may be from another run.\n",
                t.events,
                t.last_hash.as_deref().unwrap_or("none"),
                s.events,
                s.trace_hash
            );
        }
        if t.skipped_lines > 0 {
            let _ = writeln!(
                md,
                "> {} unreadable line(s) of `trace.jsonl` were skipped.\n",
                t.skipped_lines
            );
        }
    }
}

/// One subsection per violation: the invariant in plain words, when, where, what.
fn violations_section(md: &mut String, s: &Summary) {
    if !s.violations.is_empty() {
        md.push_str("## Violations\n\n");
        for (i, v) in s.violations.iter().enumerate() {
            let inv = model::checking::oracle::invariant(&v.invariant);
            let kind = inv
                .map(|i| format!(" ({})", i.kind.name()))
                .unwrap_or_default();
            let _ = writeln!(md, "### {}. `{}`{kind}\n", i + 1, v.invariant);
            let _ = writeln!(
                md,
                "- **In plain words:** {}",
                inv.map_or(
                    "(an invariant this version of flinksim does not know)",
                    |i| { i.description }
                )
            );
            let _ = writeln!(md, "- **When:** {} (virtual time)", secs_ms(v.at_ms));
            if let Some(n) = &v.node {
                let _ = writeln!(md, "- **Where:** `{n}`");
            }
            let _ = writeln!(md, "- **What the oracle saw:** {}\n", v.message);
        }
    }
}

/// The scenario and the knobs drawn from the seed.
fn scenario_section(md: &mut String, scenario: &Scenario, s: &Summary) {
    md.push_str("## Scenario\n\n");
    if !scenario.description.is_empty() {
        let _ = writeln!(md, "{}\n", scenario.description.trim());
    }
    let _ = writeln!(
        md,
        "Duration {:?}; the exact scenario is [scenario.toml](scenario.toml).\n",
        scenario.duration
    );
    md.push_str("### Knobs drawn from the seed\n\n");
    let _ = writeln!(
        md,
        "- Network latency: `{}` (at most {:.3} ms one way)",
        s.knobs.latency, s.knobs.latency_max_ms
    );
    if s.knobs.clocks.is_empty() {
        md.push_str("- Clocks: none recorded\n\n");
    } else {
        md.push_str("\n| node | clock drift (ppm) | clock offset (ms) |\n|---|---:|---:|\n");
        for c in &s.knobs.clocks {
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} |",
                cell(&c.node),
                c.drift_ppm,
                c.offset_ms
            );
        }
        md.push('\n');
    }
}

/// The fault schedule: scripted faults and those drawn from the seed.
fn faults_section(md: &mut String, scenario: &Scenario) {
    md.push_str("## Fault schedule\n\n");
    if scenario.faults.is_empty() {
        md.push_str("No scripted or drawn faults.\n\n");
    } else {
        md.push_str("| at | fault | in the scenario |\n|---:|---|---|\n");
        for f in &scenario.faults {
            let _ = writeln!(
                md,
                "| {} | {} | `{}` |",
                secs_ms(f.at.as_millis() as u64),
                cell(&describe_fault(&f.action)),
                cell(&crate::nemesis::fault_syntax(&f.action)).replace('`', "'")
            );
        }
        md.push('\n');
    }
}

/// The timeline of the run (at most `TIMELINE_MAX` rows).
fn timeline_section(md: &mut String, scenario: &Scenario, s: &Summary, trace: Option<&Trace>) {
    md.push_str("## Timeline\n\n");
    let rows = timeline_table(&timeline(scenario, s, trace));
    if rows.is_empty() {
        md.push_str("Nothing happened worth a line.\n\n");
    } else {
        md.push_str("| time | node | event |\n|---:|---|---|\n");
        for r in rows.iter().take(TIMELINE_MAX) {
            md.push_str(r);
            md.push('\n');
        }
        if rows.len() > TIMELINE_MAX {
            let _ = writeln!(
                md,
                "\n… and {} more row(s), left out; see `summary.json`.",
                rows.len() - TIMELINE_MAX
            );
        }
        md.push('\n');
    }
}

/// The run's figures.
fn figures_section(md: &mut String, s: &Summary, trace: Option<&Trace>) {
    md.push_str("## Figures\n\n| | |\n|---|---|\n");
    let lost = s
        .taskmanagers_lost
        .iter()
        .filter(|l| l.observer == "resourcemanager")
        .count();
    let figures: Vec<(&str, String)> = vec![
        ("result", s.result.to_string()),
        ("stopped", s.stop_reason.clone()),
        ("events", s.events.to_string()),
        ("virtual time", secs_ms(s.virtual_ms)),
        ("wall time", format!("{} ms", s.wall_ms)),
        ("trace hash", format!("`{}`", s.trace_hash)),
        (
            "final job status",
            s.job_status.clone().unwrap_or_else(|| "no job".into()),
        ),
        ("restarts", s.restarts.to_string()),
        ("checkpoints completed", s.checkpoints_completed.to_string()),
        ("checkpoints aborted", s.checkpoints_aborted.to_string()),
        ("records committed", s.records_committed.to_string()),
        ("TaskManagers lost (ResourceManager)", lost.to_string()),
        ("faults", s.faults.len().to_string()),
    ];
    for (k, v) in figures {
        let _ = writeln!(md, "| {k} | {} |", cell(&v));
    }
    if let Some(t) = trace {
        let _ = writeln!(
            md,
            "| messages delivered | {} |\n| messages lost (control plane listed in Perfetto) | {} |",
            t.deliveries.len(),
            t.lost.len() as u64 + t.lost_left_out
        );
        let _ = writeln!(md, "| trace end | {} |", secs_ns(t.end_ns));
    }
    md.push('\n');
}

/// The commands that replay, shrink and re-run this run.
fn reproduce_section(md: &mut String, dir: &Path, s: &Summary) {
    let d = dir.display().to_string();
    let scenario_file = dir.join("scenario.toml").display().to_string();
    let bug = s
        .bug
        .as_deref()
        .map(|b| format!(" --bug {}", shell_arg(b)))
        .unwrap_or_default();
    md.push_str("## Reproduce\n\n```sh\n");
    let _ = writeln!(md, "# re-run with full tracing; checks the trace hash");
    let _ = writeln!(md, "flinksim replay {}", shell_arg(&d));
    let _ = writeln!(md, "# look for a smaller scenario that fails the same way");
    let _ = writeln!(
        md,
        "flinksim shrink {} --seed {}{bug}",
        shell_arg(&scenario_file),
        s.seed
    );
    let _ = writeln!(md, "# the same run from the scenario alone");
    let _ = writeln!(
        md,
        "flinksim run {} --seed {}{bug}",
        shell_arg(&scenario_file),
        s.seed
    );
    md.push_str("```\n\n");
}

/// The sequence diagram, if any, and the files of the report folder.
fn files_section(md: &mut String, s: &Summary, trace: Option<&Trace>, diagram: Option<&str>) {
    if let Some(diagram) = diagram {
        let caption = if s.violations.is_empty() {
            "The last control-plane messages of the run"
        } else {
            "The messages that causally precede the first violation"
        };
        let _ = writeln!(
            md,
            "## Sequence\n\n{caption} (also in [sequence.mmd](sequence.mmd)):\n\n```mermaid\n{}```\n",
            diagram
        );
    }
    md.push_str("## Files\n\n");
    md.push_str("- [summary.json](summary.json): the machine-readable verdict and figures\n");
    md.push_str("- [scenario.toml](scenario.toml): the exact scenario, faults drawn for this seed included\n");
    md.push_str("- [trace.jsonl](trace.jsonl): every event of the run, one JSON object a line\n");
    if trace.is_some() {
        md.push_str("- [trace.perfetto.json](trace.perfetto.json): the trace for <https://ui.perfetto.dev> (Open trace file): a track per node, message flows, checkpoints, faults\n");
        md.push_str("- [sequence.mmd](sequence.mmd): the sequence diagram above, for <https://mermaid.live>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_as_sentences() {
        assert_eq!(
            describe_fault(&FaultAction::Kill("taskmanager-2".into())),
            "kill taskmanager-2"
        );
        assert_eq!(
            describe_fault(&FaultAction::Partition {
                groups: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
                one_way: true,
                heal_after: Some(Duration::from_millis(2500)),
            }),
            "one-way partition {a, b} from {c} (heals after 2.5s)"
        );
        assert_eq!(
            describe_fault(&FaultAction::ClockJump {
                node: "x".into(),
                by_ns: -1_000_000
            }),
            "clock of x jumps -1ms"
        );
    }

    #[test]
    fn cells_and_arguments_are_escaped() {
        assert_eq!(cell("a|b\nc<d"), "a\\|b c&lt;d");
        assert_eq!(shell_arg("reports/x/1"), "reports/x/1");
        assert_eq!(shell_arg("my dir"), "'my dir'");
    }
}
