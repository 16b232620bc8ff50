//! `trace.perfetto.json`: the run in Chrome's Trace Event Format (a JSON object with
//! `traceEvents`), which <https://ui.perfetto.dev> and `chrome://tracing` load.
//!
//! Layout: one process (pid 1) named after the scenario and seed; one thread per node (tid 1…,
//! named by `thread_name` metadata) and tid 0, `cluster`, for what belongs to no single node
//! (partitions, heals, TaskManager losses). Timestamps are virtual (true) time in
//! microseconds.
//!
//! - Messages: a short slice (`X`) on the receiving node when it handles a message, and on the
//!   sending node when it sends one, joined by a flow (`s` on the sender, `f` with `bp: "e"` on
//!   the receiver, same `id`, `cat` the message class). Slices of one node never overlap: all
//!   messages a node handles or sends at the same instant share one slice, which lasts until
//!   the node's next slice (at most 1 µs). At most [`MAX_FLOWS`] messages are drawn:
//!   control-plane first, then heartbeats, then the data plane, each class sampled evenly
//!   when it does not fit; `otherData` says how many were left out.
//! - Checkpoints: async slices (`b`/`e`, `cat: "checkpoint"`) from trigger to completion or
//!   abortion on the coordinator's node.
//! - Faults and violations: global instants (`i`, `s: "g"`); job status changes, TaskManager
//!   losses and lost control-plane messages: thread instants (`i`, `s: "t"`).

use super::trace::{MsgClass, Outcome, Trace};
use crate::summary::Summary;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{self, Write};

/// At most this many messages are drawn as flows.
pub const MAX_FLOWS: usize = 50_000;
/// The longest slice of a message (ns).
const SLICE_NS: u64 = 1_000;
/// The tid of the `cluster` track.
const CLUSTER_TID: u64 = 0;

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

/// Which deliveries to draw: per class, an even sample that fits what is left of `max` after
/// the classes before it.
pub fn choose(trace: &Trace, max: usize) -> (Vec<bool>, HashMap<MsgClass, (u64, u64)>) {
    let mut totals: HashMap<MsgClass, u64> = HashMap::new();
    for d in &trace.deliveries {
        *totals.entry(trace.class(d)).or_default() += 1;
    }
    let mut budget = max as u64;
    let mut quota: HashMap<MsgClass, u64> = HashMap::new();
    for class in [MsgClass::Control, MsgClass::Heartbeat, MsgClass::Data] {
        let total = totals.get(&class).copied().unwrap_or(0);
        let keep = total.min(budget);
        budget -= keep;
        quota.insert(class, keep);
    }
    let mut seen: HashMap<MsgClass, u64> = HashMap::new();
    let keep: Vec<bool> = trace
        .deliveries
        .iter()
        .map(|d| {
            let class = trace.class(d);
            let (total, quota) = (totals[&class], quota[&class]);
            let j = seen.entry(class).or_default();
            // Keep the j-th of `total` when floor(j·quota/total) steps up at it.
            let kept = (*j + 1) * quota / total > *j * quota / total;
            *j += 1;
            kept
        })
        .collect();
    let stats = totals.iter().map(|(c, &t)| (*c, (t, quota[c]))).collect();
    (keep, stats)
}

/// One instant a node handles or sends messages at.
struct Point {
    ts_ns: u64,
    /// Handled (true) or sent.
    recv: bool,
    label: String,
}

/// Writes the Perfetto JSON of `trace` to `w`.
pub fn write<W: Write>(w: &mut W, trace: &Trace, summary: &Summary) -> io::Result<()> {
    let doc = render(trace, summary);
    serde_json::to_writer(&mut *w, &doc).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

/// The Perfetto JSON document of `trace`.
pub fn render(trace: &Trace, summary: &Summary) -> Value {
    let mut events: Vec<Value> = Vec::new();
    // Tracks: the trace's nodes, then nodes only the summary names.
    let mut names: Vec<String> = trace.nodes.clone();
    let extra = |name: &str, names: &mut Vec<String>| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    for v in &summary.violations {
        if let Some(n) = &v.node {
            extra(n, &mut names);
        }
    }
    let tid_of = |names: &[String], name: &str| -> u64 {
        names
            .iter()
            .position(|n| n == name)
            .map_or(CLUSTER_TID, |i| i as u64 + 1)
    };
    // Losses are drawn on the lost TaskManager's track when it is a node.
    let node_tid = |n: u32| n as u64 + 1;

    events.push(json!({
        "name": "process_name", "ph": "M", "ts": 0, "pid": 1, "tid": CLUSTER_TID,
        "args": { "name": format!("flinksim {} seed {}", summary.scenario, summary.seed) }
    }));
    let thread_meta = |tid: u64, name: &str, events: &mut Vec<Value>| {
        events.push(json!({
            "name": "thread_name", "ph": "M", "ts": 0, "pid": 1, "tid": tid,
            "args": { "name": name }
        }));
        events.push(json!({
            "name": "thread_sort_index", "ph": "M", "ts": 0, "pid": 1, "tid": tid,
            "args": { "sort_index": tid }
        }));
    };
    thread_meta(CLUSTER_TID, "cluster", &mut events);
    for (i, n) in names.iter().enumerate() {
        thread_meta(i as u64 + 1, n, &mut events);
    }

    // Messages.
    let (keep, stats) = choose(trace, MAX_FLOWS);
    let mut points: Vec<Vec<Point>> = (0..names.len()).map(|_| Vec::new()).collect();
    for (d, _) in trace.deliveries.iter().zip(&keep).filter(|(_, k)| **k) {
        let msg = trace.msg_name(d.msg);
        if let Some(p) = points.get_mut(d.to as usize) {
            p.push(Point {
                ts_ns: d.t_ns,
                recv: true,
                label: format!("{msg} from {}", trace.node_name(d.from)),
            });
        }
        if let Some(p) = points.get_mut(d.from as usize) {
            p.push(Point {
                ts_ns: d.sent_ns,
                recv: false,
                label: format!("{msg} to {}", trace.node_name(d.to)),
            });
        }
    }
    // (node, instant) -> the middle of its slice, where flows attach.
    let mut anchor: HashMap<(usize, u64), f64> = HashMap::new();
    for (node, mut pts) in points.into_iter().enumerate() {
        pts.sort_by_key(|p| (p.ts_ns, !p.recv));
        let mut i = 0;
        while i < pts.len() {
            let ts = pts[i].ts_ns;
            let j = i + pts[i..].iter().take_while(|p| p.ts_ns == ts).count();
            let next = pts.get(j).map_or(ts + SLICE_NS, |p| p.ts_ns);
            let dur_ns = (next - ts).min(SLICE_NS);
            let group = &pts[i..j];
            let received = group.iter().filter(|p| p.recv).count();
            let first = &group[0];
            let name = match (first.recv, group.len()) {
                (true, 1) => first.label.clone(),
                (true, n) => format!("{} (+{})", first.label, n - 1),
                (false, 1) => format!("send {}", first.label),
                (false, n) => format!("send {} (+{})", first.label, n - 1),
            };
            let listed: Vec<String> = group
                .iter()
                .take(16)
                .map(|p| format!("{} {}", if p.recv { "got" } else { "sent" }, p.label))
                .collect();
            events.push(json!({
                "name": name, "cat": "message", "ph": "X", "ts": us(ts), "dur": us(dur_ns),
                "pid": 1, "tid": node_tid(node as u32),
                "args": { "received": received, "sent": group.len() - received,
                          "messages": listed }
            }));
            anchor.insert((node, ts), us(ts) + us(dur_ns) / 2.0);
            i = j;
        }
    }
    let mut flows = 0u64;
    for (d, _) in trace.deliveries.iter().zip(&keep).filter(|(_, k)| **k) {
        let (Some(&s), Some(&f)) = (
            anchor.get(&(d.from as usize, d.sent_ns)),
            anchor.get(&(d.to as usize, d.t_ns)),
        ) else {
            continue;
        };
        flows += 1;
        let name = trace.msg_name(d.msg);
        let cat = trace.class(d).name();
        events.push(json!({
            "name": name, "cat": cat, "ph": "s", "id": flows, "ts": s,
            "pid": 1, "tid": node_tid(d.from)
        }));
        events.push(json!({
            "name": name, "cat": cat, "ph": "f", "bp": "e", "id": flows, "ts": f,
            "pid": 1, "tid": node_tid(d.to)
        }));
    }

    // Checkpoints.
    for (k, c) in trace.checkpoint_spans().iter().enumerate() {
        let outcome = match &c.outcome {
            Outcome::Completed => "completed".to_string(),
            Outcome::Aborted(r) => format!("aborted: {r}"),
            Outcome::Pending => "pending at the end of the trace".to_string(),
        };
        let common = |ph: &str, ts: u64| {
            json!({
                "name": "checkpoint", "cat": "checkpoint", "ph": ph, "id": k as u64 + 1,
                "ts": us(ts), "pid": 1, "tid": node_tid(c.node)
            })
        };
        let mut b = common("b", c.start_ns);
        b["args"] = json!({ "checkpoint_id": c.id, "job": format!("{:016x}", c.job) });
        let mut e = common("e", c.end_ns);
        e["args"] = json!({ "checkpoint_id": c.id, "outcome": outcome });
        events.push(b);
        events.push(e);
        if let Outcome::Aborted(r) = &c.outcome {
            events.push(instant(
                &format!("checkpoint {} aborted ({r})", c.id),
                c.end_ns,
                node_tid(c.node),
                "t",
                Map::new(),
            ));
        }
    }

    // Observations: job status.
    for o in &trace.observations {
        if let super::trace::Observation::JobStatus(s) = &o.what {
            events.push(instant(
                &format!("job {s}"),
                o.t_ns,
                node_tid(o.node),
                "t",
                Map::new(),
            ));
        }
    }

    // Faults.
    for f in trace.faults.iter().filter(|f| f.notable()) {
        let name = match f.node {
            Some(n) => format!("{} {}", f.fault, trace.node_name(n)),
            None => f.fault.clone(),
        };
        events.push(instant(
            &name,
            f.t_ns,
            f.node.map_or(CLUSTER_TID, node_tid),
            "g",
            Map::new(),
        ));
    }

    // Lost control-plane messages.
    for l in &trace.lost {
        let mut args = Map::new();
        args.insert("from".into(), json!(trace.node_name(l.from)));
        events.push(instant(
            &format!("lost {} ({})", trace.msg_name(l.msg), l.reason),
            l.t_ns,
            node_tid(l.to),
            "t",
            args,
        ));
    }

    // TaskManager losses, as the summary records them.
    for l in &summary.taskmanagers_lost {
        let mut args = Map::new();
        args.insert("observer".into(), json!(l.observer));
        args.insert("cause".into(), json!(l.cause));
        events.push(instant(
            &format!("{} lost {} ({})", l.observer, l.target, l.cause),
            l.at_ms.saturating_mul(1_000_000),
            tid_of(&names, &l.taskmanager),
            "t",
            args,
        ));
    }

    // Violations.
    for v in &summary.violations {
        let mut args = Map::new();
        args.insert("message".into(), json!(v.message));
        let tid = v.node.as_deref().map_or(CLUSTER_TID, |n| tid_of(&names, n));
        events.push(instant(
            &format!("VIOLATION {}", v.invariant),
            v.at_ms.saturating_mul(1_000_000),
            tid,
            "g",
            args,
        ));
    }

    let mut left_out = Map::new();
    let mut drawn = Map::new();
    for class in [MsgClass::Control, MsgClass::Heartbeat, MsgClass::Data] {
        let (total, kept) = stats.get(&class).copied().unwrap_or((0, 0));
        left_out.insert(class.name().into(), json!(total - kept));
        drawn.insert(class.name().into(), json!(kept));
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "scenario": summary.scenario,
            "seed": summary.seed.to_string(),
            "result": summary.result,
            "trace_hash": summary.trace_hash,
            "events": trace.events,
            "deliveries": trace.deliveries.len(),
            "flows": flows,
            "messages_drawn": drawn,
            "messages_left_out": left_out,
            "lost_messages_left_out": trace.lost_left_out,
            "skipped_trace_lines": trace.skipped_lines,
            "note": format!(
                "at most {MAX_FLOWS} messages are drawn: control plane first, then heartbeats, \
                 then the data plane, each sampled evenly when it does not fit"
            ),
        }
    })
}

/// An instant event; `scope` is `g` (global), `p` (process) or `t` (thread).
fn instant(name: &str, ts_ns: u64, tid: u64, scope: &str, args: Map<String, Value>) -> Value {
    json!({
        "name": name, "cat": "event", "ph": "i", "s": scope, "ts": us(ts_ns),
        "pid": 1, "tid": tid, "args": args
    })
}
