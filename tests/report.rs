//! Report folders: besides `summary.json`, `trace.jsonl` and `scenario.toml`, a run's folder
//! gets `report.md`, `trace.perfetto.json` (Chrome Trace Event Format) and `sequence.mmd` (a
//! Mermaid sequence diagram of the messages causally preceding the first violation), all
//! rendered from the trace. The renderers are checked on real runs through the CLI and on small
//! synthetic traces.

use flinksim::report::mermaid::{self, causal_deliveries, is_safe_text_char, MAX_MESSAGES};
use flinksim::report::perfetto;
use flinksim::report::trace::Trace;
use flinksim::summary::Summary;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const FILES: [&str; 6] = [
    "summary.json",
    "trace.jsonl",
    "scenario.toml",
    "report.md",
    "trace.perfetto.json",
    "sequence.mmd",
];

/// A fresh folder under the target directory (left there for a look after a run).
fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `flinksim run FILE --seed SEED [extra…] --out DIR`; returns the exit code.
fn run_cli(file: &str, seed: u64, extra: &[&str], out: &Path) -> Option<i32> {
    let status = Command::new(env!("CARGO_BIN_EXE_flinksim"))
        .args(["run", file, "--seed", &seed.to_string()])
        .args(extra)
        .arg("--out")
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
        .status;
    status.code()
}

/// The report folder of a failing negative scenario with a fault, checkpoints and a restore,
/// made once for every test that reads it.
/// The report folder of a failing run, made once per test process. Its folder is named after
/// the first test that asks (`test`): test runners that run each test in a process of its own
/// (nextest) must not have one process remove the folder another is reading.
fn failing_report(test: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp(&format!("negative-{test}"));
        let code = run_cli(
            "scenarios/negative/negative-restore-older-checkpoint.toml",
            1,
            &[],
            &dir,
        );
        assert_eq!(code, Some(1), "the negative scenario fails");
        dir
    })
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn summary_of(dir: &Path) -> Summary {
    serde_json::from_str(&read(dir, "summary.json")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Checkers of the file formats.

/// Checks a Perfetto document; returns the names of the threads and the events.
fn check_perfetto(doc: &Value) -> (HashMap<u64, String>, Vec<Value>) {
    assert_eq!(doc["displayTimeUnit"], "ms");
    let events = doc["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
        .clone();
    assert!(!events.is_empty());
    let mut threads = HashMap::new();
    let mut starts: HashMap<u64, Value> = HashMap::new();
    let mut finishes: HashMap<u64, Value> = HashMap::new();
    let mut asyncs: HashMap<(String, u64), i32> = HashMap::new();
    for e in &events {
        assert!(e["name"].is_string(), "name: {e}");
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("ph: {e}"));
        assert!(
            ["M", "X", "i", "s", "f", "b", "e"].contains(&ph),
            "phase {ph}: {e}"
        );
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("ts: {e}"));
        assert!(ts >= 0.0 && ts.is_finite(), "ts: {e}");
        assert_eq!(e["pid"].as_u64(), Some(1), "pid: {e}");
        let tid = e["tid"].as_u64().unwrap_or_else(|| panic!("tid: {e}"));
        match ph {
            "M" if e["name"] == "thread_name" => {
                let name = e["args"]["name"].as_str().expect("thread name");
                threads.insert(tid, name.to_string());
            }
            "X" => assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "dur: {e}"),
            "i" => assert!(
                ["g", "p", "t"].contains(&e["s"].as_str().unwrap_or("?")),
                "scope: {e}"
            ),
            "s" => {
                let id = e["id"].as_u64().expect("flow id");
                assert!(e["cat"].is_string(), "flow cat: {e}");
                assert!(starts.insert(id, e.clone()).is_none(), "flow {id} twice");
            }
            "f" => {
                let id = e["id"].as_u64().expect("flow id");
                assert_eq!(e["bp"], "e", "{e}");
                assert!(finishes.insert(id, e.clone()).is_none(), "flow {id} twice");
            }
            "b" | "e" => {
                let key = (
                    e["cat"].as_str().expect("async cat").to_string(),
                    e["id"].as_u64().expect("async id"),
                );
                *asyncs.entry(key).or_default() += if ph == "b" { 1 } else { -1 };
            }
            _ => {}
        }
    }
    assert_eq!(starts.len(), finishes.len(), "every flow start has an end");
    for (id, s) in &starts {
        let f = finishes.get(id).unwrap_or_else(|| panic!("flow {id} ends"));
        assert_eq!(s["cat"], f["cat"], "flow {id}");
        assert!(
            s["ts"].as_f64() <= f["ts"].as_f64(),
            "flow {id} goes forward"
        );
    }
    assert!(
        asyncs.values().all(|&n| n == 0),
        "async slices are balanced"
    );
    for e in &events {
        let tid = e["tid"].as_u64().unwrap();
        assert!(threads.contains_key(&tid), "thread {tid} is named: {e}");
    }
    (threads, events)
}

/// Checks a Mermaid sequence diagram; returns the number of messages.
fn check_mermaid(text: &str) -> usize {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("sequenceDiagram"));
    let mut declared = HashSet::new();
    let id_ok =
        |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let text_ok = |t: &str| {
        assert!(!t.trim().is_empty(), "empty text");
        assert!(
            t.chars().all(is_safe_text_char),
            "forbidden character in {t:?}"
        );
        for c in [';', '#', ':', '"', '<', '>', '{', '}'] {
            assert!(!t.contains(c), "{c:?} in {t:?}");
        }
    };
    let mut messages = 0;
    for line in lines {
        if line.starts_with("%%") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("participant ") {
            let (id, alias) = rest.split_once(" as ").expect("participant ID as NAME");
            assert!(id_ok(id), "participant id {id:?}");
            text_ok(alias);
            declared.insert(id.to_string());
        } else if let Some(rest) = line.strip_prefix("Note over ") {
            let (over, note) = rest.split_once(": ").expect("Note over X: text");
            for id in over.split(',') {
                assert!(declared.contains(id), "undeclared {id:?} in {line:?}");
            }
            text_ok(note);
        } else {
            let (arrow, msg) = line.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
            let (from, to) = arrow
                .split_once("->>")
                .or_else(|| arrow.split_once("-)"))
                .unwrap_or_else(|| panic!("not a message: {line:?}"));
            assert!(declared.contains(from), "undeclared {from:?} in {line:?}");
            assert!(declared.contains(to), "undeclared {to:?} in {line:?}");
            text_ok(msg);
            messages += 1;
        }
    }
    assert!(messages <= MAX_MESSAGES, "{messages} messages");
    messages
}

// ---------------------------------------------------------------------------------------------
// Real runs.

#[test]
fn a_failing_run_gets_every_report_file() {
    let dir = failing_report("failing");
    for f in FILES {
        let p = dir.join(f);
        assert!(p.is_file(), "{} exists", p.display());
        assert!(std::fs::metadata(&p).unwrap().len() > 0, "{f} is not empty");
    }
}

#[test]
fn the_perfetto_trace_is_well_formed_with_tracks_flows_checkpoints_and_faults() {
    let dir = failing_report("perfetto");
    let doc: Value = serde_json::from_str(&read(dir, "trace.perfetto.json")).unwrap();
    let (threads, events) = check_perfetto(&doc);
    // A track for every node the trace mentions.
    let trace = Trace::read(&dir.join("trace.jsonl")).unwrap();
    let names: HashSet<&str> = threads.values().map(String::as_str).collect();
    for n in &trace.nodes {
        assert!(names.contains(n.as_str()), "a track for {n}");
    }
    let named = |ph: &str, name: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == ph && e["name"].as_str().is_some_and(|n| n.contains(name)))
            .count()
    };
    // The scenario kills taskmanager-2 at 2.5 s: a global instant on its track.
    let kill = events
        .iter()
        .find(|e| e["ph"] == "i" && e["name"] == "kill taskmanager-2")
        .expect("the kill is drawn");
    assert_eq!(kill["s"], "g");
    assert_eq!(kill["ts"].as_f64(), Some(2_500_000.0));
    assert_eq!(threads[&kill["tid"].as_u64().unwrap()], "taskmanager-2");
    // Checkpoints as async spans, the violation as an instant.
    let s = summary_of(dir);
    assert!(s.checkpoints_completed >= 2);
    assert!(named("b", "checkpoint") as u64 >= s.checkpoints_completed);
    assert_eq!(named("i", "VIOLATION restored-state"), 1);
    // Messages: every delivery of this small run is drawn, as a flow.
    let flows = named("s", "");
    assert_eq!(flows, trace.deliveries.len());
    assert_eq!(doc["otherData"]["flows"].as_u64(), Some(flows as u64));
    assert_eq!(doc["otherData"]["messages_left_out"]["data"], 0);
    assert!(named("s", "triggerCheckpoint") > 0);
}

#[test]
fn the_sequence_diagram_shows_what_causally_precedes_the_violation() {
    let dir = failing_report("sequence");
    let mmd = read(dir, "sequence.mmd");
    let messages = check_mermaid(&mmd);
    assert!(messages > 0, "{mmd}");
    assert!(
        mmd.lines()
            .any(|l| l.starts_with("Note over jobmanager_1: VIOLATION restored-state @4.")),
        "{mmd}"
    );
    // The violation is the last note, and no data-plane message is drawn.
    assert!(
        mmd.lines().last().unwrap().starts_with("Note over"),
        "{mmd}"
    );
    for data in ["buffer", "credit", "sink.write", "fetch"] {
        assert!(!mmd.contains(&format!(": {data} ")), "{data} in {mmd}");
    }
    // Every drawn message was delivered at or before the violation.
    for line in mmd.lines().filter(|l| l.contains("->>")) {
        let at: f64 = line
            .rsplit('@')
            .next()
            .unwrap()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(at <= 4.087, "{line}");
    }
    assert!(
        mmd.contains("participant jobmanager_1 as jobmanager-1"),
        "{mmd}"
    );
}

#[test]
fn the_markdown_report_explains_the_failure() {
    let dir = failing_report("markdown");
    let md = read(dir, "report.md");
    let inv = model::checking::oracle::invariant("restored-state").unwrap();
    assert!(
        md.starts_with("# negative-restore-older-checkpoint, seed 1\n"),
        "{md}"
    );
    assert!(md.contains("**FAIL**"), "{md}");
    assert!(md.contains("`restored-state`"), "{md}");
    assert!(
        md.contains(inv.description),
        "the invariant in plain words: {md}"
    );
    assert!(md.contains("failed with it **as expected**"), "{md}");
    assert!(
        md.contains("restore from checkpoint 1 but checkpoint 2"),
        "{md}"
    );
    // Fault schedule and timeline.
    assert!(md.contains("## Fault schedule"), "{md}");
    assert!(
        md.contains("| 2.500s | kill taskmanager-2 | `kill = \"taskmanager-2\"` |"),
        "{md}"
    );
    assert!(
        md.contains("| 2.500s | taskmanager-2 | fault: kill taskmanager-2 |"),
        "{md}"
    );
    assert!(md.contains("job **RUNNING**"), "{md}");
    assert!(md.contains("checkpoints 1–2 completed (2)"), "{md}");
    // Commands.
    let d = dir.display();
    assert!(md.contains(&format!("flinksim replay {d}\n")), "{md}");
    let s = summary_of(dir);
    let bug = s.bug.as_deref().expect("a planted bug");
    assert!(
        md.contains(&format!(
            "flinksim shrink {d}/scenario.toml --seed 1 --bug {bug}\n"
        )),
        "{md}"
    );
    // Figures and links.
    assert!(
        md.contains(&format!("| trace hash | `{}` |", s.trace_hash)),
        "{md}"
    );
    for f in ["trace.perfetto.json", "sequence.mmd", "summary.json"] {
        assert!(md.contains(&format!("]({f})")), "a link to {f}");
    }
    assert!(md.contains("```mermaid\nsequenceDiagram\n"), "{md}");
    assert!(
        !md.contains("**Warning:**"),
        "the trace matches the summary: {md}"
    );
}

#[test]
fn a_passing_run_shows_its_last_control_plane_messages() {
    let dir = tmp("pass");
    assert_eq!(run_cli("scenarios/tm-killed.toml", 7, &[], &dir), Some(0));
    let mmd = read(&dir, "sequence.mmd");
    assert!(check_mermaid(&mmd) > 0);
    assert!(mmd.contains("%% the run passed"), "{mmd}");
    assert!(!mmd.contains("VIOLATION"), "{mmd}");
    let md = read(&dir, "report.md");
    assert!(md.contains("**PASS**"), "{md}");
    assert!(!md.contains("## Violations"), "{md}");
    assert!(md.contains("kill taskmanager-2"), "{md}");
    check_perfetto(&serde_json::from_str(&read(&dir, "trace.perfetto.json")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_heartbeat_violation_draws_heartbeats() {
    let dir = tmp("heartbeat");
    let code = run_cli(
        "scenarios/tm-killed.toml",
        7,
        &["--bug", "heartbeat-timeout-not-reset"],
        &dir,
    );
    assert_eq!(code, Some(1));
    let mmd = read(&dir, "sequence.mmd");
    check_mermaid(&mmd);
    assert!(mmd.contains(": heartbeat"), "{mmd}");
    assert!(mmd.contains("VIOLATION heartbeat-detection"), "{mmd}");
    let md = read(&dir, "report.md");
    assert!(md.contains("--bug heartbeat-timeout-not-reset"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Synthetic traces.

fn deliver(i: u64, t: u64, from: &str, to: &str, sent: u64, msg: &str) -> String {
    json!({"i": i, "t_ns": t, "kind": "deliver", "from": from, "to": to, "sent_ns": sent,
           "msg": msg, "body": {msg: {"checkpoint_id": 7}}, "hash": "00"})
    .to_string()
}

fn summary(violations: Value) -> Summary {
    serde_json::from_value(json!({
        "scenario": "synthetic", "seed": 1,
        "result": if violations.as_array().unwrap().is_empty() { "pass" } else { "fail" },
        "violations": violations, "trace_hash": "00", "events": 0, "virtual_ms": 0,
        "job_status": null, "restarts": 0, "job_status_history": [],
        "checkpoints_completed": 0, "records_committed": 0, "wall_ms": 0, "bug": null,
        "expected_violation": null, "stop_reason": "Observer", "taskmanagers_lost": [],
        "faults": [], "knobs": {"latency": "1ms", "latency_max_ms": 1.0, "clocks": []}
    }))
    .unwrap()
}

/// a→b (m1), d→a (m2), a→d (m5), b→c (m3), c→b (m6), d→c (m4), in delivery order.
fn lamport_trace() -> Trace {
    let lines = [
        deliver(0, 10, "a", "b", 0, "m1"),
        deliver(1, 12, "d", "a", 5, "m2"),
        deliver(2, 25, "a", "d", 15, "m5"),
        deliver(3, 30, "b", "c", 20, "m3"),
        deliver(4, 38, "c", "b", 35, "m6"),
        deliver(5, 50, "d", "c", 40, "m4"),
    ];
    Trace::parse(lines.join("\n").as_bytes()).unwrap()
}

fn names(t: &Trace, picked: &[usize]) -> Vec<String> {
    picked
        .iter()
        .map(|&i| t.msg_name(t.deliveries[i].msg).to_string())
        .collect()
}

#[test]
fn the_causal_walk_picks_only_messages_that_happened_before() {
    let t = lamport_trace();
    assert_eq!(t.deliveries.len(), 6);
    // At c at 45: m3 reached c; b sent it after m1 reached b. m2 reached a after a sent m1,
    // m4 reaches c too late, m6 left c, and m5 went to d, which told c nothing before 45.
    assert_eq!(
        names(&t, &causal_deliveries(&t, Some("c"), 45)),
        ["m1", "m3"]
    );
    // At c at 55, m4 from d brings in what d knew when sending it (m5, and m2 before it), but
    // still not m6, which b received after sending m3.
    assert_eq!(
        names(&t, &causal_deliveries(&t, Some("c"), 55)),
        ["m1", "m2", "m5", "m3", "m4"]
    );
    // At a at 14: only m2 (a learned nothing else).
    assert_eq!(names(&t, &causal_deliveries(&t, Some("a"), 14)), ["m2"]);
    // Without a node: every delivery up to the horizon, on any node.
    assert_eq!(
        names(&t, &causal_deliveries(&t, None, 37)),
        ["m1", "m2", "m5", "m3"]
    );
    // A node the trace never mentions counts as none.
    assert_eq!(causal_deliveries(&t, Some("zz"), 37).len(), 4);
    assert!(causal_deliveries(&t, Some("c"), 5).is_empty());
}

#[test]
fn the_diagram_prefers_control_messages_and_marks_faults_and_the_violation() {
    let mut lines = vec![
        deliver(
            0,
            1_000_000,
            "jobmanager-1",
            "taskmanager-1",
            0,
            "triggerCheckpoint",
        ),
        deliver(1, 2_000_000, "taskmanager-1", "sink", 1_000_000, "buffer"),
        json!({"i": 2, "t_ns": 2_500_000, "kind": "fault", "fault": "kill", "effective": true,
               "detail": "Kill(NodeId(1))", "node": "taskmanager-1", "hash": "00"})
        .to_string(),
        deliver(
            3,
            3_000_000,
            "taskmanager-1",
            "sink",
            2_000_000,
            "preCommit",
        ),
        deliver(4, 3_500_000, "sink", "other", 3_000_000, "commit.response"),
    ];
    lines.push("garbage".into());
    let t = Trace::parse(lines.join("\n").as_bytes()).unwrap();
    assert_eq!(t.skipped_lines, 1);
    let s = summary(json!([{"invariant": "committed-only-completed", "at_ms": 3,
                              "node": "sink", "message": "txn #1: committed; too early"}]));
    let mmd = mermaid::render(&t, &s);
    assert_eq!(check_mermaid(&mmd), 2, "{mmd}");
    assert!(
        mmd.contains("jobmanager_1->>taskmanager_1: triggerCheckpoint cp 7 @0.001s"),
        "{mmd}"
    );
    assert!(
        mmd.contains("taskmanager_1->>sink: preCommit cp 7 @0.003s"),
        "{mmd}"
    );
    assert!(!mmd.contains("buffer"), "the data plane is left out: {mmd}");
    assert!(
        !mmd.contains("commit.response"),
        "after the violation: {mmd}"
    );
    assert!(
        mmd.contains("Note over taskmanager_1: kill @0.002s"),
        "{mmd}"
    );
    assert!(
        mmd.contains("Note over sink: VIOLATION committed-only-completed @0.003s"),
        "{mmd}"
    );
    assert!(
        mmd.contains("Note over sink: txn  1  committed  too early"),
        "{mmd}"
    );
    assert!(
        mmd.contains("%% 1 unreadable trace line(s) skipped"),
        "{mmd}"
    );

    // With nothing but the data plane before it, the data plane is drawn.
    let t = Trace::parse(lines[1].as_bytes()).unwrap();
    let mmd = mermaid::render(&t, &s);
    assert_eq!(check_mermaid(&mmd), 1, "{mmd}");
    assert!(mmd.contains("taskmanager_1->>sink: buffer"), "{mmd}");
    assert!(
        mmd.contains("data-plane messages (no others precede it)"),
        "{mmd}"
    );

    // An empty trace still makes a diagram with the violation.
    let mmd = mermaid::render(&Trace::default(), &s);
    assert_eq!(check_mermaid(&mmd), 0, "{mmd}");
    assert!(mmd.contains("VIOLATION"), "{mmd}");
}

#[test]
fn the_perfetto_budget_keeps_control_messages_and_samples_the_data_plane_evenly() {
    let mut lines = Vec::new();
    for i in 0..100u64 {
        let msg = if i % 10 == 0 { "submitTask" } else { "buffer" };
        lines.push(deliver(
            i,
            i * 1_000 + 500,
            "taskmanager-1",
            "taskmanager-2",
            i * 1_000,
            msg,
        ));
    }
    let t = Trace::parse(lines.join("\n").as_bytes()).unwrap();
    let (keep, _) = perfetto::choose(&t, 28);
    let kept: Vec<usize> = (0..100).filter(|&i| keep[i]).collect();
    assert_eq!(kept.len(), 28);
    // All 10 control messages, and 18 of the 90 batches spread over the whole run.
    assert!((0..100).step_by(10).all(|i| keep[i]));
    let batches: Vec<usize> = kept.iter().copied().filter(|i| i % 10 != 0).collect();
    assert_eq!(batches.len(), 18);
    assert!(
        batches[0] < 10 && *batches.last().unwrap() > 90,
        "{batches:?}"
    );

    let doc = perfetto::render(&t, &summary(json!([])));
    let (threads, events) = check_perfetto(&doc);
    assert_eq!(threads.len(), 3, "cluster and two nodes: {threads:?}");
    assert_eq!(events.iter().filter(|e| e["ph"] == "s").count(), 100);
}

#[test]
fn a_garbage_trace_still_gets_a_report() {
    let scenario = flinksim::scenario::Scenario::parse(
        Path::new("tiny.toml"),
        "name = \"tiny\"\nduration = \"5s\"\n[cluster]\ntaskmanagers = 1\n",
    )
    .unwrap();
    let result = flinksim::run::run(&scenario, flinksim::run::RunOptions::default());
    let dir = tmp("garbage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trace.jsonl"), b"{\"t_ns\": 1,\n\xff\xfe\n[]\n").unwrap();
    flinksim::report::write(&dir, &scenario, &result.summary).unwrap();
    for f in FILES {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let md = read(&dir, "report.md");
    assert!(md.contains("3 unreadable line(s)"), "{md}");
    assert!(
        md.contains("**Warning:** `trace.jsonl` does not match"),
        "{md}"
    );
    check_mermaid(&read(&dir, "sequence.mmd"));
    check_perfetto(&serde_json::from_str(&read(&dir, "trace.perfetto.json")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
