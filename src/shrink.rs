//! `flinksim shrink`: minimizes a failing run into a small standalone scenario file that still
//! violates the same invariant.
//!
//! The scenario is first resolved for the seed (its `[nemesis]` drawn into explicit
//! `[[faults]]`) and run; the first violation names the target invariant. A candidate *still
//! fails* when its run, with the same seed and bug, reports a violation of that invariant (a
//! panic is the invariant `no-panic`, see [`run_catching`]). Then, accepting every candidate
//! that still fails:
//!
//! 1. **faults**: no faults at all, then delta debugging (Zeller's ddmin: complements first,
//!    then subsets, doubling the granularity) over the fault list, then single removals until
//!    no fault can go (1-minimal);
//! 2. **parameters**, fault by fault: shorter effects (halved `resume_after`, `heal_after`,
//!    `clear_after`, clog `extra`, clock jump, and the downtime between a kill and the next
//!    start of its node), then later, rounder start times (up to the next whole second, then
//!    halfway towards the violation);
//! 3. **workload**: fewer records, lower parallelism and fewer source partitions, fewer
//!    TaskManagers, and a shorter `duration` when the violation happens before the end.
//!
//! Every candidate is built as text — the resolved source as a TOML table with `faults`
//! replaced and the workload edited, `bug` set when one was given — and validated by
//! [`Scenario::parse`]; a candidate that does not validate is rejected without a run, and so is
//! one whose TaskManagers no longer have the slots its job needs when the original had them (a
//! guard against *slippage*: "the job did not finish" turning into "the job never got its
//! slots", which the same invariant would accept). For the same reason a candidate may not
//! leave an outage of the original without its end (a kill without its start, a pause without
//! its resume, a partition or clog without its heal). The
//! result is that text with a comment header: a file that reproduces the failure on its own
//! (with the same `--seed`).
//!
//! Shrinking is deterministic: candidates are tried one at a time in a fixed order, and a
//! candidate's outcome depends only on its text (outcomes are cached by text). A wall-time and
//! a run budget ([`Limits`]) bound the work; when either runs out, the smallest failing scenario
//! so far is returned, marked incomplete.

use crate::nemesis::{duration_text, fault_table};
use crate::run::{run_catching, RunOptions};
use crate::scenario::{FaultAction, Scenario};
use crate::summary::Summary;
use model::checking::bugs::Bug;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The budget of a shrink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-time budget; `None` = unbounded.
    pub time: Option<Duration>,
    /// The most candidate runs (the first and the final run included).
    pub max_runs: u64,
}

impl Default for Limits {
    /// Two minutes of wall time, 10 000 runs.
    fn default() -> Limits {
        Limits {
            time: Some(Duration::from_secs(120)),
            max_runs: 10_000,
        }
    }
}

/// Where a shrink is, reported after every candidate run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// "faults", "parameters" or "workload".
    pub phase: &'static str,
    /// Runs so far.
    pub runs: u64,
    /// Faults in the smallest failing scenario so far.
    pub faults: usize,
    /// Reductions accepted so far.
    pub steps: usize,
    /// Wall time so far.
    pub elapsed: Duration,
}

/// A shrunk failing scenario.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The shrunk scenario; its `source` is the standalone file text.
    pub scenario: Scenario,
    /// The invariant the original run violated first, and the shrunk one still violates.
    pub invariant: String,
    /// Faults of the resolved original (scripted and drawn).
    pub faults_before: usize,
    /// Faults left.
    pub faults_after: usize,
    /// Candidate runs, the first and the final run included.
    pub runs: u64,
    /// `false` when the time or run budget ran out before every reduction was tried.
    pub complete: bool,
    /// The run of the final `scenario` (same seed and bug).
    pub summary: Summary,
    /// Each accepted reduction, human readable, in order.
    pub steps: Vec<String>,
    /// Wall time spent.
    pub wall: Duration,
}

/// The scenario does not fail for this seed: there is nothing to shrink.
#[derive(Clone, Debug)]
pub struct NotFailing {
    /// The passing run (boxed: it is large).
    pub summary: Box<Summary>,
}

/// Shrinks the failing run of `scenario` with `seed` (and `bug`, which overrides the
/// scenario's own) to a small standalone scenario that violates the same invariant.
///
/// `progress` is called after every candidate run.
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    limits: &Limits,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Shrunk, NotFailing> {
    let started = Instant::now();
    let resolved = scenario.resolve(seed);
    let first = run_catching(
        &resolved,
        RunOptions {
            seed,
            bug,
            trace: None,
            tap: sim::Tap::None,
        },
    )
    .summary;
    let Some(target) = first.violations.first().map(|v| v.invariant.clone()) else {
        return Err(NotFailing {
            summary: Box::new(first),
        });
    };
    let faults: Vec<Fault> = resolved
        .faults
        .iter()
        .map(|f| (f.at, f.action.clone()))
        .collect();
    let faults_before = faults.len();
    let mut base: toml::Table = match toml::from_str(&resolved.source) {
        Ok(t) => t,
        Err(_) => {
            // Not expected: the source of a validated scenario is TOML.
            return Ok(unshrunk(&resolved, target, first, 1, started));
        }
    };
    base.remove("faults");
    base.remove("nemesis");
    if let Some(b) = bug {
        base.insert("bug".into(), toml::Value::String(b.name().into()));
    }
    // Its own name, so that its reports do not mix with the original's (the name does not
    // enter the run).
    base.insert(
        "name".into(),
        toml::Value::String(format!("{}-shrunk", scenario.name)),
    );
    let must_be_fair = fair(&faults);
    let mut s = Shrinker {
        path: &scenario.path,
        seed,
        bug,
        target,
        limits: limits.clone(),
        started,
        runs: 1,
        cache: BTreeMap::new(),
        progress,
        phase: "faults",
        base,
        faults,
        best: first.clone(),
        steps: Vec::new(),
        must_fit: fits(&resolved),
        must_be_fair,
    };
    // The rebuilt text must fail the same way before anything is removed from it.
    let (base, faults) = (s.base.clone(), s.faults.clone());
    match s.try_candidate(&base, &faults) {
        Ok(true) => {}
        Ok(false) | Err(Exhausted) => {
            let runs = s.runs;
            return Ok(unshrunk(&resolved, s.target, first, runs, started));
        }
    }
    let complete = s.all_phases().is_ok();
    Ok(s.finish(scenario, faults_before, complete))
}

/// A fault as the shrinker handles it: when, and what.
type Fault = (Duration, FaultAction);

/// The time or run budget ran out.
struct Exhausted;

struct Shrinker<'a> {
    path: &'a Path,
    seed: u64,
    bug: Option<Bug>,
    target: String,
    limits: Limits,
    started: Instant,
    runs: u64,
    /// Candidate text → the summary of its run when it still fails, `None` when it does not.
    cache: BTreeMap<String, Option<Summary>>,
    progress: &'a mut dyn FnMut(&Progress),
    phase: &'static str,
    /// The smallest failing scenario so far: its table without `faults`, and its faults.
    base: toml::Table,
    faults: Vec<Fault>,
    /// The run of the smallest failing scenario so far.
    best: Summary,
    steps: Vec<String>,
    /// The original cluster has the slots its job needs: candidates must keep that, or a
    /// "job did not finish" failure would slip into "the job never got its slots".
    must_fit: bool,
    /// Every outage of the original ends (each kill is followed by a start of the node, each
    /// pause by its resume, each partition or clog by a heal): candidates must keep that, or a
    /// liveness failure would slip into a node that never comes back.
    must_be_fair: bool,
}

impl Shrinker<'_> {
    fn all_phases(&mut self) -> Result<(), Exhausted> {
        self.phase = "faults";
        self.remove_faults()?;
        self.phase = "parameters";
        self.simplify_faults()?;
        self.phase = "workload";
        self.shrink_workload()
    }

    /// Whether the candidate still violates the target invariant; if it does, it becomes the
    /// smallest failing scenario so far.
    fn try_candidate(&mut self, base: &toml::Table, faults: &[Fault]) -> Result<bool, Exhausted> {
        if self.must_be_fair && !fair(faults) {
            return Ok(false);
        }
        let Some(text) = candidate_text(base, faults) else {
            return Ok(false);
        };
        let outcome = match self.cache.get(&text) {
            Some(o) => o.clone(),
            None => {
                let scenario = match Scenario::parse(self.path, &text) {
                    Ok(s) if !self.must_fit || fits(&s) => s,
                    _ => {
                        self.cache.insert(text, None);
                        return Ok(false);
                    }
                };
                if self.runs >= self.limits.max_runs
                    || self
                        .limits
                        .time
                        .is_some_and(|t| self.started.elapsed() >= t)
                {
                    return Err(Exhausted);
                }
                let summary = self.run(&scenario);
                self.runs += 1;
                let fails = summary
                    .violations
                    .iter()
                    .any(|v| v.invariant == self.target);
                let o = fails.then_some(summary);
                self.cache.insert(text, o.clone());
                o
            }
        };
        let fails = outcome.is_some();
        if let Some(summary) = outcome {
            self.base = base.clone();
            self.faults = faults.to_vec();
            self.best = summary;
        }
        (self.progress)(&Progress {
            phase: self.phase,
            runs: self.runs,
            faults: self.faults.len(),
            steps: self.steps.len(),
            elapsed: self.started.elapsed(),
        });
        Ok(fails)
    }

    /// One run of a candidate, with the seed and bug being shrunk.
    fn run(&self, scenario: &Scenario) -> Summary {
        run_catching(
            scenario,
            RunOptions {
                seed: self.seed,
                bug: self.bug,
                ..RunOptions::default()
            },
        )
        .summary
    }

    /// Tries `faults` with the current workload.
    fn try_faults(&mut self, faults: &[Fault]) -> Result<bool, Exhausted> {
        let base = self.base.clone();
        self.try_candidate(&base, faults)
    }

    /// Tries the current faults with `base`.
    fn try_base(&mut self, base: &toml::Table) -> Result<bool, Exhausted> {
        let faults = self.faults.clone();
        self.try_candidate(base, &faults)
    }

    /// Phase 1: no faults; ddmin; then single removals to a fixpoint.
    fn remove_faults(&mut self) -> Result<(), Exhausted> {
        let before = self.faults.len();
        if before == 0 {
            return Ok(());
        }
        if self.try_faults(&[])? {
            self.steps.push(format!(
                "removed all {before} fault(s): it fails without any"
            ));
            return Ok(());
        }
        // ddmin over the fault list (the current list is always the last failing one).
        let mut n = 2usize;
        while self.faults.len() >= 2 {
            let items = self.faults.clone();
            let chunks = split(items.len(), n);
            let mut reduced = false;
            // Complements first: drop one chunk.
            for r in &chunks {
                let complement: Vec<Fault> = items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !r.contains(i))
                    .map(|(_, f)| f.clone())
                    .collect();
                if self.try_faults(&complement)? {
                    self.steps.push(format!(
                        "removed {} of {} fault(s) (ddmin, granularity {n})",
                        r.len(),
                        items.len()
                    ));
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced && n > 2 {
                // Then a single chunk (with n = 2 the chunks are the complements just tried).
                for r in &chunks {
                    let subset = items[r.clone()].to_vec();
                    if self.try_faults(&subset)? {
                        self.steps.push(format!(
                            "kept {} of {} fault(s) (ddmin, granularity {n})",
                            r.len(),
                            items.len()
                        ));
                        n = 2;
                        reduced = true;
                        break;
                    }
                }
            }
            if !reduced {
                if n >= items.len() {
                    break;
                }
                n = (2 * n).min(items.len());
            }
        }
        // 1-minimality: no single fault can go.
        loop {
            let mut changed = false;
            let mut i = 0;
            while i < self.faults.len() {
                let mut fewer = self.faults.clone();
                let gone = fewer.remove(i);
                if self.try_faults(&fewer)? {
                    self.steps.push(format!("removed {}", label(&gone)));
                    changed = true;
                } else {
                    i += 1;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(())
    }

    /// Phase 2: shorter effects, then later and rounder start times, fault by fault.
    fn simplify_faults(&mut self) -> Result<(), Exhausted> {
        const TRIES: usize = 6;
        let mut i = 0;
        while i < self.faults.len() {
            for dim in 0..2 {
                for _ in 0..TRIES {
                    let Some((candidate, what)) = shorter(&self.faults, i, dim) else {
                        break;
                    };
                    if !self.try_faults(&candidate)? {
                        break;
                    }
                    self.steps.push(what);
                }
            }
            for step in 0..3 {
                let violation = self.violation_at();
                let Some((candidate, what)) = later(&self.faults, i, step, violation) else {
                    continue;
                };
                if self.try_faults(&candidate)? {
                    self.steps.push(what);
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Phase 3: fewer records, lower parallelism, fewer TaskManagers, a shorter duration.
    fn shrink_workload(&mut self) -> Result<(), Exhausted> {
        const MIN_RECORDS: i64 = 10;
        // Records: halved while that still fails, then once by a quarter.
        let mut quarter = false;
        while let Some(records) = int_at(&self.base, &["job", "source", "records"]) {
            if records <= MIN_RECORDS {
                break;
            }
            let fewer = if quarter {
                records - records / 4
            } else {
                records / 2
            };
            let fewer = fewer.max(MIN_RECORDS);
            if fewer >= records {
                break;
            }
            let mut base = self.base.clone();
            set_int(&mut base, &["job", "source", "records"], fewer);
            if self.try_base(&base)? {
                self.steps.push(format!("records {records} -> {fewer}"));
            } else if quarter {
                break;
            } else {
                quarter = true;
            }
        }
        // Parallelism, with the source partitions when they matched it.
        while let Some(p) = int_at(&self.base, &["job", "parallelism"]) {
            if p <= 1 {
                break;
            }
            let lower = p / 2;
            let mut base = self.base.clone();
            set_int(&mut base, &["job", "parallelism"], lower);
            let partitions = int_at(&base, &["job", "source", "partitions"]);
            if partitions == Some(p) {
                set_int(&mut base, &["job", "source", "partitions"], lower);
            }
            if !self.try_base(&base)? {
                break;
            }
            self.steps.push(if partitions == Some(p) {
                format!("parallelism and source partitions {p} -> {lower}")
            } else {
                format!("parallelism {p} -> {lower}")
            });
        }
        while let Some(p) = int_at(&self.base, &["job", "source", "partitions"]) {
            if p <= 1 {
                break;
            }
            let fewer = p / 2;
            let mut base = self.base.clone();
            set_int(&mut base, &["job", "source", "partitions"], fewer);
            if !self.try_base(&base)? {
                break;
            }
            self.steps.push(format!("source partitions {p} -> {fewer}"));
        }
        // TaskManagers: spares first, then running ones, one at a time (a candidate whose
        // faults or links name a removed node does not validate and costs no run).
        // Straight to the fewest first: one step down may pass where fewer still fail (the
        // run's timing changes with the cluster).
        for key in ["spare_taskmanagers", "taskmanagers"] {
            let least = if key == "taskmanagers" { 1 } else { 0 };
            if let Some(n) = int_at(&self.base, &["cluster", key]).filter(|n| *n > least + 1) {
                let mut base = self.base.clone();
                set_int(&mut base, &["cluster", key], least);
                if self.try_base(&base)? {
                    let what = key.replace('_', " ");
                    self.steps.push(format!("{what} {n} -> {least}"));
                }
            }
            while let Some(n) = int_at(&self.base, &["cluster", key]) {
                if n <= least {
                    break;
                }
                let mut base = self.base.clone();
                set_int(&mut base, &["cluster", key], n - 1);
                if !self.try_base(&base)? {
                    break;
                }
                let what = key.replace('_', " ");
                self.steps.push(format!("{what} {n} -> {}", n - 1));
            }
        }
        self.shorten_duration()
    }

    /// A shorter `duration`: a second past the violation (or the last fault), else halfway
    /// there. Only when the violation is found before the end of the run: a violation judged
    /// at the end would move with the end, and might then be another failure.
    fn shorten_duration(&mut self) -> Result<(), Exhausted> {
        let Some(current) = self
            .base
            .get("duration")
            .and_then(|d| d.as_str())
            .and_then(|d| model::protocol::config::parse_duration(d).ok())
        else {
            return Ok(());
        };
        let Some(violation) = self.violation_at() else {
            return Ok(());
        };
        if violation >= current {
            return Ok(());
        }
        let last_fault = self.faults.iter().map(|f| f.0).max().unwrap_or_default();
        let floor = ceil_secs(violation.max(last_fault)) + Duration::from_secs(1);
        if floor >= current {
            return Ok(());
        }
        let half = ceil_secs(floor + (current - floor) / 2);
        for shorter in [floor, half] {
            if shorter >= current {
                continue;
            }
            let mut base = self.base.clone();
            base.insert("duration".into(), toml::Value::String(nice(shorter)));
            if self.try_base(&base)? {
                self.steps
                    .push(format!("duration {} -> {}", nice(current), nice(shorter)));
                break;
            }
        }
        Ok(())
    }

    /// When the smallest failing run so far first violated the target invariant.
    fn violation_at(&self) -> Option<Duration> {
        self.best
            .violations
            .iter()
            .find(|v| v.invariant == self.target)
            .map(|v| Duration::from_millis(v.at_ms))
    }

    /// The standalone file of the smallest failing scenario, run once more.
    fn finish(self, original: &Scenario, faults_before: usize, complete: bool) -> Shrunk {
        let body = candidate_text(&self.base, &self.faults).unwrap_or_default();
        let header = format!(
            "# shrunk by flinksim from {} seed {}: {} faults -> {}; fails with {}\n# run it with: flinksim run FILE --seed {}\n\n",
            original.path.display(),
            self.seed,
            faults_before,
            self.faults.len(),
            self.target,
            self.seed,
        );
        let text = format!("{header}{body}");
        let Ok(scenario) = Scenario::parse(&original.path, &text) else {
            // Not expected: the body was validated when it was tried.
            return unshrunk(
                &original.resolve(self.seed),
                self.target,
                self.best,
                self.runs,
                self.started,
            );
        };
        let summary = self.run(&scenario);
        Shrunk {
            faults_after: scenario.faults.len(),
            scenario,
            invariant: self.target,
            faults_before,
            runs: self.runs + 1,
            complete,
            summary,
            steps: self.steps,
            wall: self.started.elapsed(),
        }
    }
}

/// The resolved scenario as it is (and the run of it), when it cannot be rebuilt as text.
fn unshrunk(
    resolved: &Scenario,
    invariant: String,
    summary: Summary,
    runs: u64,
    started: Instant,
) -> Shrunk {
    let n = resolved.faults.len();
    Shrunk {
        scenario: resolved.clone(),
        invariant,
        faults_before: n,
        faults_after: n,
        runs,
        complete: false,
        summary,
        steps: vec![
            "the scenario rebuilt as text does not fail the same way (or the budget allows no run); not shrunk".into(),
        ],
        wall: started.elapsed(),
    }
}

/// The scenario text of `base` with `faults` (in time order, ties in list order, as the
/// validator orders them); `None` when a fault has no text form.
/// Whether every outage in `faults` ends: a kill is followed by a start of the node, a pause
/// without `resume_after` by a resume, a partition or clog without its own end by a heal.
fn fair(faults: &[Fault]) -> bool {
    faults.iter().enumerate().all(|(i, (at, action))| {
        let later = |ends: &dyn Fn(&FaultAction) -> bool| {
            faults
                .iter()
                .enumerate()
                .any(|(j, (t, a))| j != i && t >= at && ends(a))
        };
        match action {
            FaultAction::Kill(n) => later(&|a| matches!(a, FaultAction::Start(m) if m == n)),
            FaultAction::Pause {
                node,
                resume_after: None,
            } => later(&|a| matches!(a, FaultAction::Resume(m) if m == node)),
            FaultAction::Partition {
                heal_after: None, ..
            }
            | FaultAction::Clog {
                clear_after: None, ..
            } => later(&|a| matches!(a, FaultAction::Heal)),
            _ => true,
        }
    })
}

/// Whether the cluster's slots (running and spare TaskManagers) can hold the job's widest
/// vertex (with slot sharing, one slot per parallel pipeline). True without a job.
fn fits(s: &Scenario) -> bool {
    let Some(job) = &s.job else {
        return true;
    };
    let Ok(graph) = model::protocol::job_graph::JobGraph::from_spec(&job.spec) else {
        return true;
    };
    let widest = graph
        .vertices
        .iter()
        .map(|v| v.parallelism)
        .max()
        .unwrap_or(0);
    let slots = u64::from(s.cluster.taskmanagers + s.cluster.spare_taskmanagers)
        * u64::from(s.flink.number_of_task_slots);
    slots >= u64::from(widest)
}

fn candidate_text(base: &toml::Table, faults: &[Fault]) -> Option<String> {
    let mut table = base.clone();
    let mut sorted: Vec<&Fault> = faults.iter().collect();
    sorted.sort_by_key(|f| f.0);
    if !sorted.is_empty() {
        let mut list = Vec::new();
        for (at, action) in sorted {
            let mut t = fault_table(*at, action)?;
            for key in ["at", "resume_after", "heal_after", "extra", "clear_after"] {
                if let Some(toml::Value::String(v)) = t.get_mut(key) {
                    if let Ok(d) = model::protocol::config::parse_duration(v) {
                        *v = nice(d);
                    }
                }
            }
            list.push(toml::Value::Table(t));
        }
        table.insert("faults".into(), toml::Value::Array(list));
    }
    toml::to_string(&table).ok()
}

/// `n` nearly equal consecutive index ranges covering `0..len` (fewer when `len < n`).
fn split(len: usize, n: usize) -> Vec<std::ops::Range<usize>> {
    let n = n.min(len).max(1);
    (0..n).map(|k| k * len / n..(k + 1) * len / n).collect()
}

/// A duration as scenario text: "3s" for whole seconds, else as [`duration_text`].
fn nice(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        duration_text(d)
    }
}

fn ceil_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// Half of `d` in whole milliseconds; `None` below one millisecond.
fn halve(d: Duration) -> Option<Duration> {
    let half = Duration::from_millis((d.as_millis() / 2) as u64);
    (!half.is_zero() && half < d).then_some(half)
}

/// "kill taskmanager-2 at 2500ms", for the steps.
fn label((at, action): &Fault) -> String {
    let groups = |g: &[Vec<String>]| {
        g.iter()
            .map(|x| x.join(","))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let what = match action {
        FaultAction::Messages { .. } | FaultAction::Slow { .. } => {
            action.aimed_text().unwrap_or_default()
        }
        FaultAction::Kill(n) => format!("kill {n}"),
        FaultAction::Start(n) => format!("start {n}"),
        FaultAction::Pause { node, .. } => format!("pause {node}"),
        FaultAction::Resume(n) => format!("resume {n}"),
        FaultAction::Partition { groups: g, .. } => format!("partition {}", groups(g)),
        FaultAction::Heal => "heal".to_string(),
        FaultAction::Clog { groups: g, .. } => format!("clog {}", groups(g)),
        FaultAction::ClockJump { node, .. } => format!("clock jump of {node}"),
        FaultAction::FailTask {
            operator, subtask, ..
        } => format!("fail task {operator}[{subtask}]"),
    };
    format!("{what} at {}", nice(*at))
}

/// The start of `node` that ends the kill `faults[i]`: the earliest one at or after it.
fn paired_start(faults: &[Fault], i: usize) -> Option<usize> {
    let (at, FaultAction::Kill(node)) = &faults[i] else {
        return None;
    };
    faults
        .iter()
        .enumerate()
        .filter(|(_, (t, a))| t >= at && matches!(a, FaultAction::Start(n) if n == node))
        .min_by_key(|(j, (t, _))| (*t, *j))
        .map(|(j, _)| j)
}

/// `faults` with fault `i` shortened along `dim` (0: its effect or downtime, 1: a clog's
/// extra latency), and what changed; `None` when there is nothing (left) to shorten.
fn shorter(faults: &[Fault], i: usize, dim: usize) -> Option<(Vec<Fault>, String)> {
    let mut out = faults.to_vec();
    let name = label(&faults[i]);
    let (at, action) = &mut out[i];
    let what = match (action, dim) {
        (
            FaultAction::Pause {
                resume_after: Some(d),
                ..
            },
            0,
        ) => {
            let h = halve(*d)?;
            let w = format!("{name}: resume_after {} -> {}", nice(*d), nice(h));
            *d = h;
            w
        }
        (
            FaultAction::Partition {
                heal_after: Some(d),
                ..
            },
            0,
        ) => {
            let h = halve(*d)?;
            let w = format!("{name}: heal_after {} -> {}", nice(*d), nice(h));
            *d = h;
            w
        }
        (
            FaultAction::Clog {
                clear_after: Some(d),
                ..
            },
            0,
        ) => {
            let h = halve(*d)?;
            let w = format!("{name}: clear_after {} -> {}", nice(*d), nice(h));
            *d = h;
            w
        }
        (FaultAction::Clog { extra, .. }, 1) => {
            let h = halve(*extra)?;
            let w = format!("{name}: extra {} -> {}", nice(*extra), nice(h));
            *extra = h;
            w
        }
        (FaultAction::ClockJump { by_ns, .. }, 0) => {
            let h = *by_ns / 2 / 1_000_000 * 1_000_000;
            if h == 0 {
                return None;
            }
            let w = format!("{name}: by {}ms -> {}ms", *by_ns / 1_000_000, h / 1_000_000);
            *by_ns = h;
            w
        }
        (FaultAction::Kill(_), 0) => {
            let kill_at = *at;
            let j = paired_start(faults, i)?;
            let down = faults[j].0 - kill_at;
            let h = halve(down)?;
            out[j].0 = kill_at + h;
            format!("{name}: down {} -> {}", nice(down), nice(h))
        }
        _ => return None,
    };
    Some((out, what))
}

/// `faults` with fault `i` starting later, and what changed: `step` 0 rounds its start up to
/// the next whole second, 1 and 2 move it halfway towards the violation (whole seconds). A
/// kill takes its start along (same downtime); starts, resumes and heals, which end an
/// effect, do not move.
fn later(
    faults: &[Fault],
    i: usize,
    step: usize,
    violation: Option<Duration>,
) -> Option<(Vec<Fault>, String)> {
    let (at, action) = &faults[i];
    if matches!(
        action,
        FaultAction::Start(_) | FaultAction::Resume(_) | FaultAction::Heal
    ) {
        return None;
    }
    let to = match step {
        0 => ceil_secs(*at),
        _ => {
            let v = violation?;
            if v <= *at {
                return None;
            }
            let t = Duration::from_secs((*at + (v - *at) / 2).as_secs());
            if t >= v {
                return None;
            }
            t
        }
    };
    if to <= *at {
        return None;
    }
    let delta = to - *at;
    let mut out = faults.to_vec();
    if let Some(j) = paired_start(faults, i) {
        out[j].0 += delta;
    }
    out[i].0 = to;
    Some((
        out,
        format!("{}: at {} -> {}", label(&faults[i]), nice(*at), nice(to)),
    ))
}

/// The integer at `path` in `table`, if there is one.
fn int_at(table: &toml::Table, path: &[&str]) -> Option<i64> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(*p)?.as_table()?;
    }
    t.get(*last)?.as_integer()
}

/// Sets the integer at `path` in `table`, if its parent tables exist.
fn set_int(table: &mut toml::Table, path: &[&str], value: i64) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for p in parents {
        match t.get_mut(*p).and_then(|v| v.as_table_mut()) {
            Some(next) => t = next,
            None => return,
        }
    }
    t.insert((*last).to_string(), toml::Value::Integer(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_fair_when_every_outage_ends() {
        let s = Duration::from_secs;
        let kill = (s(1), FaultAction::Kill("sink".into()));
        let start = (s(3), FaultAction::Start("sink".into()));
        assert!(fair(&[kill.clone(), start.clone()]));
        assert!(
            !fair(std::slice::from_ref(&kill)),
            "a kill without its start"
        );
        assert!(
            fair(std::slice::from_ref(&start)),
            "a start of a running node is harmless"
        );
        let early_start = (s(0), FaultAction::Start("sink".into()));
        assert!(
            !fair(&[early_start, kill]),
            "the start must come after the kill"
        );
        let pause = |resume_after| {
            (
                s(1),
                FaultAction::Pause {
                    node: "taskmanager-1".into(),
                    resume_after,
                },
            )
        };
        assert!(fair(&[pause(Some(s(2)))]));
        assert!(!fair(&[pause(None)]));
        assert!(fair(&[
            pause(None),
            (s(2), FaultAction::Resume("taskmanager-1".into()))
        ]));
        let partition = (
            s(1),
            FaultAction::Partition {
                groups: vec![vec!["sink".into()], vec!["source".into()]],
                one_way: false,
                heal_after: None,
            },
        );
        assert!(!fair(std::slice::from_ref(&partition)));
        assert!(fair(&[partition, (s(5), FaultAction::Heal)]));
    }

    #[test]
    fn split_covers_every_index_once() {
        for len in 1..20 {
            for n in 1..25 {
                let chunks = split(len, n);
                let all: Vec<usize> = chunks.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "{len} {n}");
                assert!(chunks.iter().all(|r| !r.is_empty()));
            }
        }
    }

    #[test]
    fn durations_halve_in_whole_milliseconds_and_print_nicely() {
        assert_eq!(
            halve(Duration::from_secs(3)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(halve(Duration::from_millis(1)), None);
        assert_eq!(nice(Duration::from_secs(3)), "3s");
        assert_eq!(nice(Duration::from_millis(1500)), "1500ms");
        assert_eq!(
            ceil_secs(Duration::from_millis(2001)),
            Duration::from_secs(3)
        );
        assert_eq!(ceil_secs(Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[test]
    fn a_kill_moves_with_its_start_and_its_downtime_halves() {
        let faults = vec![
            (
                Duration::from_millis(2500),
                FaultAction::Kill("taskmanager-2".into()),
            ),
            (
                Duration::from_secs(8),
                FaultAction::Start("taskmanager-2".into()),
            ),
        ];
        let (l, _) = later(&faults, 0, 0, None).unwrap();
        assert_eq!(l[0].0, Duration::from_secs(3));
        assert_eq!(l[1].0, Duration::from_millis(8500));
        let (s, what) = shorter(&faults, 0, 0).unwrap();
        assert_eq!(s[1].0, Duration::from_millis(5250));
        assert!(what.contains("down 5500ms -> 2750ms"), "{what}");
        assert!(later(&faults, 1, 0, None).is_none(), "starts do not move");
    }
}
