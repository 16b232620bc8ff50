//! The command line (docs/scenarios.md is the contract): `run`, `replay`, `check`, `explore`, `list`.
//!
//! Exit codes: 0 pass, 1 fail, 2 usage errors and bad scenario files (with a message naming the
//! file, line and problem; never a panic).

use crate::report;
use crate::run::{run_catching, RunOptions, RunResult};
use crate::scenario::Scenario;
use clap::{Parser, Subcommand, ValueEnum};
use model::checking::bugs::Bug;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints a line to stdout; a closed pipe (`flinksim … | head`) is not an error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "flinksim",
    version,
    about = "Deterministic simulation testbed for Apache Flink's distributed runtime",
    long_about = "Runs Flink's JobManager/TaskManager protocol as actors on a seeded discrete-event \
scheduler with a simulated network, clocks and crashes. Same scenario + same seed = the same run.\n\n\
Exit codes: 0 pass, 1 fail, 2 usage error or bad scenario file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one scenario with one seed; prints a one-line verdict and writes a report folder.
    Run {
        /// The scenario file (TOML).
        file: PathBuf,
        /// The seed; every random choice of the run derives from it.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Switch on a planted bug (see `flinksim list bugs`).
        #[arg(long, value_name = "NAME")]
        bug: Option<String>,
        /// Report folder (default: reports/<scenario>/<seed>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the summary JSON object instead of the verdict line.
        #[arg(long)]
        json: bool,
        /// Run twice and compare the traces event by event; on a mismatch name the first
        /// differing event (index, virtual time, both versions) and exit 1.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Re-run a recorded run with full tracing and check it reproduces the same trace hash.
    ///
    /// `replay DIR` replays a report folder; `replay FILE --seed N` a scenario file and seed.
    Replay {
        /// A report folder (with summary.json and scenario.toml) or a scenario file.
        path: PathBuf,
        /// The seed (required with a scenario file).
        #[arg(long)]
        seed: Option<u64>,
        /// Planted bug (with a scenario file).
        #[arg(long, value_name = "NAME")]
        bug: Option<String>,
        /// Report folder (default: the replayed folder, or reports/<scenario>/<seed>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the summary JSON object instead of the verdict line.
        #[arg(long)]
        json: bool,
    },
    /// Minimize a failing run: the fewest faults (delta debugging), then shorter and later
    /// faults, then a smaller workload, keeping the violated invariant; writes a standalone
    /// scenario file.
    Shrink {
        /// A scenario file, or a report folder (seed and bug from its summary.json).
        path: PathBuf,
        /// The failing seed (required with a scenario file).
        #[arg(long)]
        seed: Option<u64>,
        /// Switch on a planted bug (see `flinksim list bugs`).
        #[arg(long, value_name = "NAME")]
        bug: Option<String>,
        /// Where to write the shrunk scenario (default: DIR/shrunk.toml for a report folder,
        /// reports/<scenario>/<seed>/shrunk.toml for a scenario file).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Wall-time budget (default "2 min"); the best scenario so far is written when it runs
        /// out.
        #[arg(long, value_name = "DURATION")]
        time_limit: Option<String>,
    },
    /// The CI suite: every scenario under PATHs (default scenarios/) for its `seeds`; negative
    /// scenarios must fail as declared.
    Check {
        /// Scenario files or folders (searched recursively for *.toml).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Also write the results as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// The determinism gate: every N-th seed (0, N, 2N, …) runs twice and the traces must
        /// be identical event by event; 0 switches the gate off.
        #[arg(long, value_name = "N", default_value_t = crate::check::DETERMINISM_EVERY)]
        determinism_every: u64,
        /// Threads for a scenario's seeds (default: all cores). Results do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Many seeds in parallel, looking for failing ones; prints each failing seed with its
    /// invariant and replay command. Stops after the first failing batch unless --keep-going.
    Explore {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Seeds: N (0..N) or A..B.
        #[arg(long, default_value = "1000")]
        seeds: String,
        /// Threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only the K-th of N deterministic slices of the seeds (seed mod N = K-1), for CI
        /// matrices and batch systems.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// Switch on a planted bug (see `flinksim list bugs`).
        #[arg(long, value_name = "NAME")]
        bug: Option<String>,
        /// Go on after failures and report them all.
        #[arg(long)]
        keep_going: bool,
        /// Stop starting new seeds after this much wall time (e.g. "10 min").
        #[arg(long, value_name = "DURATION")]
        time_limit: Option<String>,
        /// Where to write the exploration record (exploration[-shard-K-of-N].json, for
        /// `merge`) and a report folder <scenario>/<seed>/ for each of the first failing seeds.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
    },
    /// Join the records of sharded explorations (exploration*.json written by `explore --out`)
    /// into one table, and optionally one JUnit file; names missing shards.
    Merge {
        /// Exploration records, or folders searched recursively for exploration*.json.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write the merged results as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// The planted-bug self-test: explore each bug's bundled scenario with the bug on until
    /// it fails, check the invariant that caught it, shrink the failing run; prints the table
    /// (bug, invariant, seeds to detection, shrunk fault count) and writes it to --out.
    Selftest {
        /// Only this planted bug (default: every one, `flinksim list bugs`).
        #[arg(long, value_name = "NAME")]
        bug: Option<String>,
        /// Where to write the table (Markdown).
        #[arg(long, value_name = "FILE", default_value = "reports/selftest.md")]
        out: PathBuf,
        /// Wall-time budget of each shrink (default "20 s").
        #[arg(long, value_name = "DURATION")]
        shrink_time: Option<String>,
        /// Threads for the explorations (default: all cores). Results do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// List what exists, one line each.
    List {
        #[arg(value_enum)]
        what: ListWhat,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ListWhat {
    /// Invariants the oracles check.
    Invariants,
    /// Planted bugs for `--bug`.
    Bugs,
    /// Supported Flink configuration keys and their defaults.
    Config,
    /// Coverage probes: situations the bundled suite must reach (`scenarios/probes.toml`).
    Probes,
    /// Message kinds aimed message faults (`delay`, `drop`, `drop_reply`) can name.
    Rpcs,
}

/// A failure to do what was asked (exit 2).
struct UsageError(String);

impl From<crate::scenario::ScenarioError> for UsageError {
    fn from(e: crate::scenario::ScenarioError) -> Self {
        UsageError(e.to_string())
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_bug(name: Option<&str>) -> Result<Option<Bug>, UsageError> {
    match name {
        None => Ok(None),
        Some(n) => Bug::from_name(n).map(Some).ok_or_else(|| {
            UsageError(format!(
                "unknown planted bug `{n}`; known: {}",
                Bug::ALL
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

fn execute(cli: Cli) -> Result<ExitCode, UsageError> {
    match cli.command {
        Command::Run {
            file,
            seed,
            bug,
            out,
            json,
            check_determinism,
        } => {
            let scenario = Scenario::load(&file)?;
            let bug = parse_bug(bug.as_deref())?;
            let dir = out.unwrap_or_else(|| report::default_dir(&scenario, seed));
            let (result, difference) =
                run_with_report(&scenario, seed, bug, &dir, check_determinism)?;
            print_result(&scenario, &result, &dir, json);
            match difference {
                Some(d) => {
                    say!("NOT DETERMINISTIC: {d}");
                    Ok(ExitCode::from(1))
                }
                None => {
                    if check_determinism && !json {
                        say!(
                            "deterministic: a second run traced the same {} events",
                            result.summary.events
                        );
                    }
                    Ok(exit_for(&result))
                }
            }
        }
        Command::Replay {
            path,
            seed,
            bug,
            out,
            json,
        } => replay(&path, seed, bug.as_deref(), out, json),
        Command::Check {
            paths,
            junit,
            determinism_every,
            jobs,
        } => check(&paths, junit.as_deref(), determinism_every, jobs),
        Command::Explore {
            files,
            seeds,
            jobs,
            shard,
            bug,
            keep_going,
            time_limit,
            out,
        } => {
            let scenarios = files
                .iter()
                .map(|f| Scenario::load(f))
                .collect::<Result<Vec<_>, _>>()?;
            let what = crate::explore::Exploration {
                seeds: crate::explore::SeedRange::parse(&seeds).map_err(UsageError)?,
                shard: shard
                    .as_deref()
                    .map(crate::explore::Shard::parse)
                    .transpose()
                    .map_err(UsageError)?,
                bug: parse_bug(bug.as_deref())?,
                keep_going,
                time_limit: time_limit
                    .as_deref()
                    .map(|t| {
                        model::protocol::config::parse_duration(t)
                            .map_err(|e| UsageError(format!("--time-limit: {e}")))
                    })
                    .transpose()?,
            };
            explore(&scenarios, &what, jobs, &out)
        }
        Command::Merge { paths, junit } => merge(&paths, junit.as_deref()),
        Command::Shrink {
            path,
            seed,
            bug,
            out,
            time_limit,
        } => shrink(&path, seed, bug.as_deref(), out, time_limit.as_deref()),
        Command::Selftest {
            bug,
            out,
            shrink_time,
            jobs,
        } => selftest(bug.as_deref(), &out, shrink_time.as_deref(), jobs),
        Command::List { what } => {
            list(what);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn selftest(
    bug: Option<&str>,
    out: &Path,
    shrink_time: Option<&str>,
    jobs: Option<usize>,
) -> Result<ExitCode, UsageError> {
    use crate::selftest::{markdown, CASES};
    let bug = parse_bug(bug)?;
    let cases: Vec<_> = CASES
        .iter()
        .filter(|c| bug.is_none_or(|b| b == c.bug))
        .copied()
        .collect();
    let shrink_time = model::protocol::config::parse_duration(shrink_time.unwrap_or("20 s"))
        .map_err(|e| UsageError(format!("--shrink-time: {e}")))?;
    let (_, pool) = thread_pool(jobs)?;
    eprintln!(
        "selftest: {} planted bug(s), each explored on its scenario until caught",
        cases.len()
    );
    let rows = pool
        .install(|| {
            crate::selftest::run(Path::new("."), &cases, shrink_time, &mut |r| {
                let verdict = match &r.caught {
                    Some((seed, inv)) => format!("caught by {inv} at seed {seed}"),
                    None => format!("NOT caught in {} seeds", r.case.budget),
                };
                let general = match (r.case.general, &r.general) {
                    (Some(name), Some((seed, inv))) => {
                        format!("; on {name} by {inv} at seed {seed}")
                    }
                    (Some(name), None) => format!("; not on {name}"),
                    (None, _) => String::new(),
                };
                let verdict = verdict + &general;
                eprintln!(
                    "  {:<38} {verdict} ({:.1} s)",
                    r.case.bug.name(),
                    r.wall.as_secs_f64()
                );
            })
        })
        .map_err(UsageError)?;
    let table = markdown(&rows);
    say!("{table}");
    let missed = rows.iter().filter(|r| !r.ok()).count();
    let text = format!(
        "# Planted-bug self-test\n\nWritten by `flinksim selftest` (every planted bug explored on its bundled scenario with the bug switched on, seeds from 0 up to the budget; the first failing seed must be caught by the listed invariant, and its run is shrunk; a bug whose scenario was written for it is explored on a general nemesis scenario too, up to 1000 seeds). Seeds to detection count from 1.\n\n{table}"
    );
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(out, text)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", out.display())))?;
    say!(
        "{} of {} planted bugs caught by their invariant; table written to {}",
        rows.len() - missed,
        rows.len(),
        out.display()
    );
    Ok(if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--jobs` (default: all cores) and a thread pool of that many threads.
fn thread_pool(jobs: Option<usize>) -> Result<(usize, rayon::ThreadPool), UsageError> {
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if jobs == 0 {
        return Err(UsageError("--jobs must be at least 1".into()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| UsageError(format!("cannot start {jobs} threads: {e}")))?;
    Ok((jobs, pool))
}

/// Failing seeds of an exploration that get a report folder.
const EXPLORE_REPORTS_MAX: usize = 5;

fn explore(
    scenarios: &[Scenario],
    what: &crate::explore::Exploration,
    jobs: Option<usize>,
    out_dir: &Path,
) -> Result<ExitCode, UsageError> {
    use std::io::IsTerminal as _;
    let (jobs, pool) = thread_pool(jobs)?;
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    say!(
        "exploring {} over seeds {}..{}{}{} on {jobs} thread(s)",
        names.join(", "),
        what.seeds.start,
        what.seeds.end,
        what.shard
            .map(|s| format!(" (shard {}/{})", s.index, s.count))
            .unwrap_or_default(),
        what.bug
            .map(|b| format!(" with bug {}", b.name()))
            .unwrap_or_default()
    );
    let total: u64 = scenarios.len() as u64
        * (what.seeds.start..what.seeds.end)
            .filter(|s| what.shard.is_none_or(|sh| sh.owns(*s)))
            .count() as u64;
    // A progress bar on a terminal, plain lines otherwise (CI logs).
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:32}] {pos}/{len} seeds  {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut progress = |runs: u64, failures: u64, wall: std::time::Duration| {
        let rate = runs as f64 / wall.as_secs_f64().max(1e-9);
        match &bar {
            Some(bar) => {
                bar.set_position(runs);
                bar.set_message(format!("{failures} failing, {rate:.0} seeds/s"));
            }
            None if runs.is_multiple_of(crate::explore::BATCH as u64 * 16) => {
                eprintln!("  {runs}/{total} seeds, {failures} failing, {rate:.0} seeds/s");
            }
            None => {}
        }
    };
    let out = pool.install(|| crate::explore::explore(scenarios, what, &mut progress));
    if let Some(bar) = &bar {
        bar.finish();
    }
    let record = crate::explore::Record::new(scenarios, what, &out);
    let record_path = out_dir.join(record.file_name());
    let cannot =
        |p: &Path, e: std::io::Error| UsageError(format!("cannot write {}: {e}", p.display()));
    std::fs::create_dir_all(out_dir).map_err(|e| cannot(out_dir, e))?;
    let json = serde_json::to_string_pretty(&record).expect("a record serializes");
    std::fs::write(&record_path, json + "\n").map_err(|e| cannot(&record_path, e))?;
    // Report folders (full trace, report.md, Perfetto, Mermaid) for the first failing seeds.
    let mut reports = Vec::new();
    for f in out.failures.iter().take(EXPLORE_REPORTS_MAX) {
        let Some(scenario) = scenarios.iter().find(|s| s.name == f.scenario) else {
            continue;
        };
        let dir = out_dir
            .join(&scenario.name)
            .join(f.summary.seed.to_string());
        run_with_report_quietly(scenario, f.summary.seed, what.bug, &dir)?;
        reports.push(dir);
    }
    say!(
        "{} run(s), {} event(s), {} failing, {:.1}s, {:.0} seeds/s, traces digest {:016x}",
        out.runs,
        out.events,
        out.failures.len(),
        out.wall.as_secs_f64(),
        out.runs as f64 / out.wall.as_secs_f64().max(1e-9),
        out.traces_digest
    );
    if let Some(why) = &out.stopped {
        say!("{why}");
    }
    say!("exploration record: {}", record_path.display());
    if !out.failures.is_empty() {
        print_failures(&out.failures);
        for dir in &reports {
            say!(
                "report: {} (flinksim replay {})",
                dir.join("report.md").display(),
                dir.display()
            );
        }
    }
    Ok(if out.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The table of failing seeds: seed, scenario, invariant, replay command, message.
fn print_failures(failures: &[crate::explore::Failure]) {
    {
        say!(
            "{:<8} {:<36} {:<26} replay",
            "seed",
            "scenario",
            "invariant"
        );
        for f in failures {
            let v = f.summary.violations.first();
            say!(
                "{:<8} {:<36} {:<26} {}",
                f.summary.seed,
                f.scenario,
                v.map_or("?", |v| v.invariant.as_str()),
                f.replay_command()
            );
            if let Some(v) = v {
                say!("         {}", v.message);
            }
        }
    }
}

fn shrink(
    path: &Path,
    seed: Option<u64>,
    bug: Option<&str>,
    out: Option<PathBuf>,
    time_limit: Option<&str>,
) -> Result<ExitCode, UsageError> {
    use std::io::IsTerminal as _;
    let (scenario, seed, bug) = if path.is_dir() {
        if seed.is_some() || bug.is_some() {
            return Err(UsageError(
                "`shrink DIR` takes the seed and bug from DIR/summary.json; --seed/--bug go with `shrink FILE`".into(),
            ));
        }
        let recorded = report::read_summary(path).map_err(UsageError)?;
        let scenario = Scenario::load(&path.join("scenario.toml"))?;
        let bug = parse_bug(recorded.bug.as_deref())?;
        (scenario, recorded.seed, bug)
    } else {
        let Some(seed) = seed else {
            return Err(UsageError(format!(
                "`shrink {}`: a scenario file needs --seed N (or pass a report folder)",
                path.display()
            )));
        };
        (Scenario::load(path)?, seed, parse_bug(bug)?)
    };
    let time = match time_limit {
        Some(t) => model::protocol::config::parse_duration(t)
            .map_err(|e| UsageError(format!("--time-limit: {e}")))?,
        None => std::time::Duration::from_secs(120),
    };
    let limits = crate::shrink::Limits {
        time: Some(time),
        ..crate::shrink::Limits::default()
    };
    // Next to the failing run: in the report folder given, else in the default one.
    let out = out.unwrap_or_else(|| {
        if path.is_dir() {
            path.join("shrunk.toml")
        } else {
            report::default_dir(&scenario, seed).join("shrunk.toml")
        }
    });
    let tty = std::io::stderr().is_terminal();
    let mut progress = |p: &crate::shrink::Progress| {
        if tty {
            eprint!(
                "\r  shrinking ({}): {} run(s), {} fault(s) left, {:.1}s   ",
                p.phase,
                p.runs,
                p.faults,
                p.elapsed.as_secs_f64()
            );
        } else if p.runs.is_multiple_of(25) {
            eprintln!(
                "  shrinking ({}): {} run(s), {} fault(s) left, {:.1}s",
                p.phase,
                p.runs,
                p.faults,
                p.elapsed.as_secs_f64()
            );
        }
    };
    let result = crate::shrink::shrink(&scenario, seed, bug, &limits, &mut progress);
    if tty {
        eprintln!();
    }
    let shrunk = match result {
        Ok(s) => s,
        Err(not) => {
            say!(
                "{} seed {seed} passes (trace hash {}): nothing to shrink",
                scenario.name,
                not.summary.trace_hash
            );
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&out, &shrunk.scenario.source)
        .map_err(|e| UsageError(format!("cannot write {}: {e}", out.display())))?;
    say!(
        "shrunk from {} faults to {} ({} run(s), {:.1}s{}); it still violates {}",
        shrunk.faults_before,
        shrunk.faults_after,
        shrunk.runs,
        shrunk.wall.as_secs_f64(),
        if shrunk.complete {
            ""
        } else {
            ", stopped by the budget: not minimal"
        },
        shrunk.invariant
    );
    for step in &shrunk.steps {
        say!("  {step}");
    }
    for f in &shrunk.scenario.faults {
        say!(
            "  fault {}",
            crate::nemesis::describe_fault(f.at, &f.action)
        );
    }
    if let Some(v) = shrunk.summary.violations.first() {
        say!(
            "  {} at {:.3}s: {}",
            v.invariant,
            v.at_ms as f64 / 1e3,
            v.message
        );
    }
    say!("wrote {}", out.display());
    say!(
        "run it: flinksim run {} --seed {seed}   (trace hash {})",
        out.display(),
        shrunk.summary.trace_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn merge(paths: &[PathBuf], junit: Option<&Path>) -> Result<ExitCode, UsageError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            find_records(p, &mut files).map_err(|e| UsageError(format!("{}: {e}", p.display())))?;
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(UsageError(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(UsageError(
            "no exploration records (exploration*.json) found; `flinksim explore --out DIR` writes them".into(),
        ));
    }
    let mut records = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| UsageError(format!("{}: cannot read: {e}", f.display())))?;
        let r: crate::explore::Record = serde_json::from_str(&text).map_err(|e| {
            UsageError(format!(
                "{}: not a flinksim exploration record: {e}",
                f.display()
            ))
        })?;
        records.push(r);
    }
    let merged = crate::explore::merge(&records).map_err(UsageError)?;
    say!("{} record(s) from {} file(s)", records.len(), files.len());
    say!(
        "{:<40} {:<14} {:>8} {:>8} {:>9}  shards",
        "exploration",
        "seeds",
        "runs",
        "failing",
        "wall"
    );
    let mut bad = false;
    for m in &merged {
        let missing = m.missing_shards();
        let shards = match m.shard_count {
            Some(n) if missing.is_empty() => format!("{n}/{n}"),
            Some(n) => format!(
                "{}/{n}, MISSING {}",
                m.shards.len(),
                missing
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => "-".to_string(),
        };
        say!(
            "{:<40} {:<14} {:>8} {:>8} {:>8.1}s  {shards}",
            format!(
                "{}{}",
                m.scenarios.join("+"),
                m.bug
                    .as_ref()
                    .map(|b| format!(" (bug {b})"))
                    .unwrap_or_default()
            ),
            m.seeds,
            m.runs,
            m.failures.len(),
            m.wall_ms as f64 / 1e3
        );
        for why in &m.stopped {
            say!("    {why}");
        }
        bad |= !m.failures.is_empty() || !missing.is_empty();
    }
    let failures: Vec<crate::explore::Failure> = merged
        .iter()
        .flat_map(|m| m.failures.iter().cloned())
        .collect();
    if !failures.is_empty() {
        print_failures(&failures);
    }
    if let Some(path) = junit {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, crate::explore::junit(&merged))
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Every exploration*.json under `dir`.
fn find_records(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            find_records(&p, out)?;
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("exploration") && n.ends_with(".json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn exit_for(result: &RunResult) -> ExitCode {
    if result.summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// [`run_with_report`] without printing the drawn knobs (explore lists many failing seeds).
fn run_with_report_quietly(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    dir: &Path,
) -> Result<RunResult, UsageError> {
    run_with_report_inner(scenario, seed, bug, dir, false, false).map(|(r, _)| r)
}

/// Runs with the full trace into the report folder `dir` and writes the report, first printing
/// (on stderr) the seed, the drawn knobs and the fault schedule of a scenario that draws any. With
/// `check_determinism`, runs a second time and returns the first difference between the two.
fn run_with_report(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    dir: &Path,
    check_determinism: bool,
) -> Result<(RunResult, Option<crate::determinism::Difference>), UsageError> {
    run_with_report_inner(scenario, seed, bug, dir, check_determinism, true)
}

fn run_with_report_inner(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    dir: &Path,
    check_determinism: bool,
    print_knobs: bool,
) -> Result<(RunResult, Option<crate::determinism::Difference>), UsageError> {
    let trace = report::open_trace(dir).map_err(|e| {
        UsageError(format!(
            "cannot write the report folder {}: {e}",
            dir.display()
        ))
    })?;
    // The report's scenario.toml holds the faults the nemesis drew for this seed, so that `run`
    // on it alone reproduces the run.
    let drawn = scenario.nemesis.is_some();
    let scenario = &scenario.resolve(seed);
    if print_knobs && (drawn || !scenario.knobs.is_empty()) {
        print_drawn(scenario, seed);
    }
    let (result, difference) = if check_determinism {
        let checked = crate::determinism::check(scenario, seed, bug, Some(trace));
        (checked.result, checked.difference)
    } else {
        let options = RunOptions {
            seed,
            bug,
            trace: Some(trace),
            tap: sim::Tap::None,
        };
        (run_catching(scenario, options), None)
    };
    report::write(dir, scenario, &result.summary).map_err(|e| {
        UsageError(format!(
            "cannot write the report folder {}: {e}",
            dir.display()
        ))
    })?;
    Ok((result, difference))
}

/// On stderr (stdout keeps the verdict line and `--json`): the seed, every knob drawn from it
/// and the resulting fault schedule.
fn print_drawn(scenario: &Scenario, seed: u64) {
    let knobs = scenario
        .knobs
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    eprintln!(
        "seed {seed}: drawn knobs: {}; {} fault(s):",
        if knobs.is_empty() { "none" } else { &knobs },
        scenario.faults.len()
    );
    for f in &scenario.faults {
        eprintln!("  {}", crate::nemesis::describe_fault(f.at, &f.action));
    }
}

/// The command that reproduces a run from its scenario file.
pub fn rerun_command(scenario: &Scenario, seed: u64, bug: Option<&str>) -> String {
    let mut c = format!("flinksim run {} --seed {seed}", scenario.path.display());
    if let Some(b) = bug {
        c += &format!(" --bug {b}");
    }
    c
}

fn print_result(scenario: &Scenario, result: &RunResult, dir: &Path, json: bool) {
    let s = &result.summary;
    if json {
        say!("{}", serde_json::to_string(s).expect("summary serializes"));
        return;
    }
    let verdict = if s.passed() { "PASS" } else { "FAIL" };
    let mut line = format!(
        "{verdict} {} seed={} trace_hash={} events={} virtual={:.3}s wall={}ms",
        s.scenario,
        s.seed,
        s.trace_hash,
        s.events,
        s.virtual_ms as f64 / 1e3,
        s.wall_ms
    );
    if let Some(b) = &s.bug {
        line += &format!(" bug={b}");
    }
    if let Some(v) = s.violations.first() {
        line += &format!(
            " violated={} replay=\"flinksim replay {}\"",
            v.invariant,
            dir.display()
        );
    }
    say!("{line}");
    for v in &s.violations {
        say!(
            "  {} at {:.3}s{}: {}",
            v.invariant,
            v.at_ms as f64 / 1e3,
            v.node
                .as_ref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default(),
            v.message
        );
    }
    if !s.passed() {
        say!("  replay: flinksim replay {}", dir.display());
        say!(
            "  rerun:  {}",
            rerun_command(scenario, s.seed, s.bug.as_deref())
        );
    }
    if let Some(expected) = &s.expected_violation {
        let how = if s.as_expected() {
            "as expected"
        } else {
            "NOT as expected"
        };
        say!("  negative scenario: expects a violation of {expected} ({how})");
    }
}

fn replay(
    path: &Path,
    seed: Option<u64>,
    bug: Option<&str>,
    out: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode, UsageError> {
    if path.is_dir() {
        if seed.is_some() || bug.is_some() {
            return Err(UsageError(
                "`replay DIR` takes the seed and bug from DIR/summary.json; --seed/--bug go with `replay FILE`".into(),
            ));
        }
        let recorded = report::read_summary(path).map_err(UsageError)?;
        let scenario = Scenario::load(&path.join("scenario.toml"))?;
        let bug = parse_bug(recorded.bug.as_deref())?;
        let dir = out.unwrap_or_else(|| path.to_path_buf());
        let (result, _) = run_with_report(&scenario, recorded.seed, bug, &dir, false)?;
        print_result(&scenario, &result, &dir, json);
        let same = result.summary.trace_hash == recorded.trace_hash;
        if !json {
            if same {
                say!(
                    "replay: trace hash {} matches the recorded run; full trace in {}",
                    recorded.trace_hash,
                    dir.join("trace.jsonl").display()
                );
            } else {
                say!(
                    "replay: TRACE HASH MISMATCH: recorded {}, replayed {} — the run is not deterministic (or the scenario/binary changed)",
                    recorded.trace_hash, result.summary.trace_hash
                );
            }
        }
        if !same {
            return Ok(ExitCode::from(1));
        }
        Ok(exit_for(&result))
    } else {
        let Some(seed) = seed else {
            return Err(UsageError(format!(
                "`replay {}`: a scenario file needs --seed N (or pass a report folder)",
                path.display()
            )));
        };
        let scenario = Scenario::load(path)?;
        let bug = parse_bug(bug)?;
        let dir = out.unwrap_or_else(|| report::default_dir(&scenario, seed));
        // No recorded hash to compare with: run twice and require the same trace.
        let (result, difference) = run_with_report(&scenario, seed, bug, &dir, true)?;
        print_result(&scenario, &result, &dir, json);
        if let Some(d) = difference {
            say!("replay: NOT DETERMINISTIC: {d}");
            return Ok(ExitCode::from(1));
        }
        if !json {
            say!(
                "replay: trace hash {} reproduced by a second run; full trace in {}",
                result.summary.trace_hash,
                dir.join("trace.jsonl").display()
            );
        }
        Ok(exit_for(&result))
    }
}

fn check(
    paths: &[PathBuf],
    junit: Option<&Path>,
    determinism_every: u64,
    jobs: Option<usize>,
) -> Result<ExitCode, UsageError> {
    use crate::check;
    let (_, pool) = thread_pool(jobs)?;
    let files = check::collect(paths).map_err(UsageError)?;
    let scenarios = check::load_all(&files)?;
    let required = check::required_probes(paths).map_err(UsageError)?;
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    say!(
        "{:<36} {:>6} {:>9} {:>10}  verdict",
        "scenario",
        "seeds",
        "events",
        "wall"
    );
    for scenario in scenarios {
        let r = pool.install(|| check::run_file(scenario, determinism_every));
        let events: u64 = r.seeds.iter().map(|s| s.events).sum();
        let wall: u64 = r.seeds.iter().map(|s| s.wall_ms).sum();
        let verdict = match (&r.scenario.expect.violation, r.ok()) {
            (None, true) => "ok".to_string(),
            (Some(inv), true) => format!("ok (fails with {inv} as expected)"),
            (_, false) => format!("FAILED on {} seed(s)", check::failed_seeds(&r)),
        };
        say!(
            "{:<36} {:>6} {:>9} {:>8}ms  {verdict}",
            r.scenario.name,
            r.seeds.len(),
            events,
            wall
        );
        for s in r.unexpected().take(5) {
            let what = s
                .violations
                .first()
                .map(|v| format!("{}: {}", v.invariant, v.message))
                .unwrap_or_else(|| "no violation, but one was expected".to_string());
            say!("    seed {}: {what}", s.seed);
            say!(
                "    replay: flinksim replay {} --seed {}",
                r.scenario.path.display(),
                s.seed
            );
        }
        for (seed, d) in r.nondeterministic().take(3) {
            say!("    seed {seed} is NOT deterministic: {d}");
        }
        results.push(r);
    }
    // Coverage probes: every one is listed with its hits; a required one never hit fails.
    say!("");
    say!("{:<42} {:>8}  reached in", "coverage probe", "hits");
    let mut probes = Vec::new();
    for (name, hits, reached_in) in check::probe_hits(&results) {
        let required_by = required.iter().find(|(n, _)| *n == name).map(|(_, f)| f);
        let mut shown = reached_in
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if reached_in.len() > 3 {
            shown += &format!(" and {} more", reached_in.len() - 3);
        }
        let note = match (hits, required_by) {
            (0, Some(f)) => format!("NEVER REACHED (required by {})", f.display()),
            (0, None) => "never reached (not required here)".to_string(),
            _ => shown,
        };
        say!("{name:<42} {hits:>8}  {note}");
        if let Some(f) = required_by {
            probes.push(check::ProbeVerdict {
                name,
                hits,
                required_by: f.clone(),
            });
        }
    }
    let unreached = probes.iter().filter(|p| p.hits == 0).count();
    let failed = results.iter().filter(|r| !r.ok()).count();
    let runs: usize = results.iter().map(|r| r.seeds.len()).sum();
    let rerun: usize = results.iter().map(|r| r.determinism.len()).sum();
    say!(
        "{} scenario(s), {runs} run(s), {failed} failed, {rerun} seed(s) rerun for determinism, {} of {} required probe(s) reached, {:.1}s",
        results.len(),
        probes.len() - unreached,
        probes.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = junit {
        // The folder may not exist yet (e.g. `target/` with another CARGO_TARGET_DIR).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, check::junit(&results, &probes))
            .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(if failed == 0 && unreached == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list(what: ListWhat) {
    match what {
        ListWhat::Probes => {
            for p in model::checking::probes::PROBES {
                say!("{:<42} {}", p.name, p.description);
            }
        }
        ListWhat::Invariants => {
            for i in model::checking::oracle::INVARIANTS {
                say!("{:<25} {:<10} {}", i.name, i.kind.name(), i.description);
            }
        }
        ListWhat::Bugs => {
            for b in Bug::ALL {
                say!("{:<34} {}", b.name(), b.description());
            }
        }
        ListWhat::Rpcs => {
            for k in model::protocol::rpc::RPC_KINDS {
                let reply = if k.reply { "reply" } else { "" };
                say!("{:<36} {:<20} {}", k.name, k.gateway, reply);
            }
        }
        ListWhat::Config => {
            for o in model::protocol::config::OPTIONS {
                say!("{:<52} {:<12} {}", o.key, o.default, o.description);
            }
        }
    }
}
