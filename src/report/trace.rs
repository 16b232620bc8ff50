//! A report's view of `trace.jsonl`: the lines of [`sim::trace`] parsed back into a compact,
//! in-memory model ([`Trace`]) that the renderers share.
//!
//! Payloads are typed: an observation is read back with serde into the model's
//! [`Obs`](model::protocol::obs::Obs), and a message body is the serde JSON of the model's
//! [`Msg`](model::protocol::rpc::Msg), from which a delivery keeps the checkpoint it is about.
//!
//! Parsing is tolerant: a line that is not a JSON object with an integer `t_ns` and a string
//! `kind` is counted in [`Trace::skipped_lines`] and otherwise ignored, as are kinds and
//! observations the renderers do not use (and payloads of another version that do not
//! deserialize). Message bodies are not kept (they make up most of a trace's size); a delivery
//! keeps its nodes, times, message name and the checkpoint id its body names, if any.

use model::protocol::obs::Obs;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::path::Path;

/// How much a message says about the control flow of a run, for choosing what to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MsgClass {
    /// RPCs of the JobManager/TaskManager protocol, checkpointing and external systems.
    Control,
    /// Periodic heartbeats: control plane, but frequent.
    Heartbeat,
    /// The data plane: record batches, credits, source fetches and sink writes (and their
    /// answers). By far the most messages of a running job.
    Data,
}

impl MsgClass {
    pub fn name(self) -> &'static str {
        match self {
            MsgClass::Control => "control",
            MsgClass::Heartbeat => "heartbeat",
            MsgClass::Data => "data",
        }
    }
}

/// The class of a message by its trace name (`msg` of a deliver line).
pub fn classify(msg: &str) -> MsgClass {
    const DATA: &[&str] = &[
        "buffer",
        "credit",
        "fetch",
        "fetch.response",
        "sink.write",
        "sink.write.response",
    ];
    if DATA.contains(&msg) {
        MsgClass::Data
    } else if msg.starts_with("heartbeat") {
        MsgClass::Heartbeat
    } else {
        MsgClass::Control
    }
}

/// A node interned by [`Trace`]: an index into [`Trace::nodes`].
pub type NodeIx = u32;

/// A message reaching its receiver's handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The event's position in the trace.
    pub index: u64,
    /// Delivery time (true time, ns).
    pub t_ns: u64,
    /// Send time (true time, ns).
    pub sent_ns: u64,
    pub from: NodeIx,
    pub to: NodeIx,
    /// An index into [`Trace::msgs`].
    pub msg: u32,
    /// The checkpoint the message is about, when its body names one (`checkpoint_id: N`).
    pub checkpoint: Option<u64>,
}

/// A fault the kernel applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    pub index: u64,
    pub t_ns: u64,
    /// `kill`, `start`, `pause`, `partition`, … ([`sim::Fault::name`]).
    pub fault: String,
    pub node: Option<NodeIx>,
    /// False when it changed nothing (e.g. the start of a running node).
    pub effective: bool,
}

impl FaultEvent {
    /// Whether a reader cares: effective, and not one of the starts that boot the cluster.
    pub fn notable(&self) -> bool {
        self.effective && !(self.fault == "start" && self.t_ns == 0)
    }
}

/// A message that did not reach its handler: dropped, or refused by a dead process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    pub index: u64,
    pub t_ns: u64,
    pub from: NodeIx,
    pub to: NodeIx,
    pub msg: u32,
    /// The drop reason (`partitioned`, `lost`, …) or `unreachable`.
    pub reason: String,
}

/// The observations the renderers use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    CheckpointTriggered {
        job: u64,
        id: u64,
    },
    CheckpointCompleted {
        job: u64,
        id: u64,
    },
    CheckpointAborted {
        job: u64,
        id: u64,
        reason: String,
    },
    /// The job's new status, in the summary's spelling (`RUNNING`).
    JobStatus(String),
    RestoreDecided {
        checkpoint: Option<u64>,
        vertices: u64,
        global: bool,
    },
}

/// An observation a node reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObsEvent {
    pub index: u64,
    pub t_ns: u64,
    pub node: NodeIx,
    pub what: Observation,
}

/// How a checkpoint ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Aborted(String),
    /// Still pending when the trace ended.
    Pending,
}

/// One checkpoint from its trigger to its completion or abortion, on its coordinator's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSpan {
    pub node: NodeIx,
    pub job: u64,
    pub id: u64,
    pub start_ns: u64,
    /// The end, or the trace's end while pending.
    pub end_ns: u64,
    pub outcome: Outcome,
}

/// At most this many lost control-plane messages are kept (the rest are only counted).
pub const LOST_MAX: usize = 10_000;

/// A parsed `trace.jsonl`.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Node names, in order of first appearance.
    pub nodes: Vec<String>,
    /// Message names, in order of first appearance.
    pub msgs: Vec<String>,
    /// Every delivery, in trace order.
    pub deliveries: Vec<Delivery>,
    pub faults: Vec<FaultEvent>,
    pub observations: Vec<ObsEvent>,
    /// Lost control-plane and heartbeat messages, at most [`LOST_MAX`].
    pub lost: Vec<Lost>,
    /// Lost messages not in [`Trace::lost`] (data plane, or over the limit).
    pub lost_left_out: u64,
    /// Lines parsed.
    pub events: u64,
    /// Lines that were not trace events.
    pub skipped_lines: u64,
    /// The latest event time (ns).
    pub end_ns: u64,
    /// The rolling hash on the last line: the run's trace hash when the trace is complete.
    pub last_hash: Option<String>,
    node_ix: HashMap<String, NodeIx>,
    msg_ix: HashMap<String, u32>,
}

/// One line, with every field optional beyond time and kind.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    i: Option<u64>,
    t_ns: u64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    node: Option<Cow<'a, str>>,
    #[serde(default)]
    sent_ns: Option<u64>,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    obs: Option<serde_json::Value>,
    #[serde(borrow, default)]
    fault: Option<Cow<'a, str>>,
    #[serde(default)]
    effective: Option<bool>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    hash: Option<Cow<'a, str>>,
}

impl Trace {
    /// Reads and parses a `trace.jsonl` file.
    pub fn read(path: &Path) -> io::Result<Trace> {
        let f = std::fs::File::open(path)?;
        Trace::parse(io::BufReader::with_capacity(1 << 16, f))
    }

    /// Parses trace lines; only I/O errors are errors, bad lines are skipped.
    pub fn parse<R: BufRead>(mut r: R) -> io::Result<Trace> {
        let mut t = Trace::default();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Line<'_>>(&buf) {
                Ok(line) => t.add(line),
                Err(_) => t.skipped_lines += 1,
            }
        }
        Ok(t)
    }

    /// The name of an interned node.
    pub fn node_name(&self, n: NodeIx) -> &str {
        self.nodes.get(n as usize).map_or("?", String::as_str)
    }

    /// The interned node of a name, if the trace mentions it.
    pub fn node_of(&self, name: &str) -> Option<NodeIx> {
        self.node_ix.get(name).copied()
    }

    /// The name of an interned message.
    pub fn msg_name(&self, m: u32) -> &str {
        self.msgs.get(m as usize).map_or("?", String::as_str)
    }

    /// The class of a delivery's message.
    pub fn class(&self, d: &Delivery) -> MsgClass {
        classify(self.msg_name(d.msg))
    }

    fn intern_node(&mut self, name: &str) -> NodeIx {
        if let Some(&n) = self.node_ix.get(name) {
            return n;
        }
        let n = self.nodes.len() as NodeIx;
        self.nodes.push(name.to_string());
        self.node_ix.insert(name.to_string(), n);
        n
    }

    fn intern_msg(&mut self, name: &str) -> u32 {
        if let Some(&m) = self.msg_ix.get(name) {
            return m;
        }
        let m = self.msgs.len() as u32;
        self.msgs.push(name.to_string());
        self.msg_ix.insert(name.to_string(), m);
        m
    }

    fn add(&mut self, line: Line<'_>) {
        let index = line.i.unwrap_or(self.events);
        self.events += 1;
        self.end_ns = self.end_ns.max(line.t_ns);
        if let Some(h) = &line.hash {
            self.last_hash = Some(h.to_string());
        }
        let t_ns = line.t_ns;
        match line.kind.as_ref() {
            "deliver" => {
                let (Some(from), Some(to), Some(msg)) = (&line.from, &line.to, &line.msg) else {
                    return;
                };
                let (from, to, msg) = (
                    self.intern_node(from),
                    self.intern_node(to),
                    self.intern_msg(msg),
                );
                let checkpoint = line.body.as_ref().and_then(checkpoint_of);
                self.deliveries.push(Delivery {
                    index,
                    t_ns,
                    sent_ns: line.sent_ns.unwrap_or(t_ns).min(t_ns),
                    from,
                    to,
                    msg,
                    checkpoint,
                });
            }
            kind @ ("drop" | "unreachable") => {
                let (Some(from), Some(to), Some(msg)) = (&line.from, &line.to, &line.msg) else {
                    return;
                };
                if classify(msg) == MsgClass::Data || self.lost.len() >= LOST_MAX {
                    self.lost_left_out += 1;
                    return;
                }
                let reason = match kind {
                    "drop" => line.reason.as_deref().unwrap_or("dropped").to_string(),
                    _ => "unreachable".to_string(),
                };
                let lost = Lost {
                    index,
                    t_ns,
                    from: self.intern_node(from),
                    to: self.intern_node(to),
                    msg: self.intern_msg(msg),
                    reason,
                };
                self.lost.push(lost);
            }
            "fault" => {
                let node = line.node.as_deref().map(|n| self.intern_node(n));
                self.faults.push(FaultEvent {
                    index,
                    t_ns,
                    fault: line.fault.as_deref().unwrap_or("fault").to_string(),
                    node,
                    effective: line.effective.unwrap_or(true),
                });
            }
            "obs" => {
                let (Some(node), Some(obs)) = (&line.node, line.obs) else {
                    return;
                };
                if let Some(what) = observation(obs) {
                    let node = self.intern_node(node);
                    self.observations.push(ObsEvent {
                        index,
                        t_ns,
                        node,
                        what,
                    });
                }
            }
            _ => {
                // started, exited, timer, persist, and kinds of later versions: only the node.
                if let Some(n) = &line.node {
                    self.intern_node(n);
                }
            }
        }
    }

    /// Every checkpoint triggered, in trigger order, with how it ended.
    pub fn checkpoint_spans(&self) -> Vec<CheckpointSpan> {
        let mut spans: Vec<CheckpointSpan> = Vec::new();
        // (node, job, id) -> index into spans of the pending checkpoint.
        let mut open: HashMap<(NodeIx, u64, u64), usize> = HashMap::new();
        for o in &self.observations {
            let (job, id, outcome) = match &o.what {
                Observation::CheckpointTriggered { job, id } => {
                    open.insert((o.node, *job, *id), spans.len());
                    spans.push(CheckpointSpan {
                        node: o.node,
                        job: *job,
                        id: *id,
                        start_ns: o.t_ns,
                        end_ns: self.end_ns.max(o.t_ns),
                        outcome: Outcome::Pending,
                    });
                    continue;
                }
                Observation::CheckpointCompleted { job, id } => (job, id, Outcome::Completed),
                Observation::CheckpointAborted { job, id, reason } => {
                    (job, id, Outcome::Aborted(reason.clone()))
                }
                _ => continue,
            };
            if let Some(i) = open.remove(&(o.node, *job, *id)) {
                spans[i].end_ns = o.t_ns.max(spans[i].start_ns);
                spans[i].outcome = outcome;
            }
        }
        spans
    }
}

/// The observations the renderers use, from an observation as the trace serialized it.
fn observation(json: serde_json::Value) -> Option<Observation> {
    let obs: Obs = serde_json::from_value(json).ok()?;
    Some(match obs {
        Obs::CheckpointTriggered {
            job_id,
            checkpoint_id,
            ..
        } => Observation::CheckpointTriggered {
            job: job_id,
            id: checkpoint_id,
        },
        Obs::CheckpointCompleted {
            job_id,
            checkpoint_id,
            ..
        } => Observation::CheckpointCompleted {
            job: job_id,
            id: checkpoint_id,
        },
        Obs::CheckpointAborted {
            job_id,
            checkpoint_id,
            reason,
        } => Observation::CheckpointAborted {
            job: job_id,
            id: checkpoint_id,
            reason: reason.to_string(),
        },
        Obs::JobStatusChanged { to, .. } => Observation::JobStatus(to.name().to_string()),
        Obs::RestoreDecided {
            checkpoint_id,
            vertices,
            global,
            ..
        } => Observation::RestoreDecided {
            checkpoint: checkpoint_id,
            vertices: vertices.into(),
            global,
        },
        _ => return None,
    })
}

/// The checkpoint a message is about: the first `checkpoint_id` in its serialized body
/// (`notifyCheckpointComplete`, `acknowledgeCheckpoint`, barriers, …).
pub fn checkpoint_of(body: &serde_json::Value) -> Option<u64> {
    match body {
        serde_json::Value::Object(fields) => {
            fields.iter().find_map(|(key, value)| match key.as_str() {
                "checkpoint_id" => value.as_u64(),
                _ => checkpoint_of(value),
            })
        }
        serde_json::Value::Array(items) => items.iter().find_map(checkpoint_of),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An observation as the run's trace writes it, read back.
    fn round_trip(obs: Obs) -> Option<Observation> {
        let json = <model::protocol::Flink as sim::Vocabulary>::trace_obs(&obs);
        observation(serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn observations_are_read_back_with_serde() {
        assert_eq!(
            round_trip(Obs::CheckpointAborted {
                job_id: 7,
                checkpoint_id: 15,
                reason: "CHECKPOINT_EXPIRED".into()
            }),
            Some(Observation::CheckpointAborted {
                job: 7,
                id: 15,
                reason: "CHECKPOINT_EXPIRED".into()
            })
        );
        assert_eq!(
            round_trip(Obs::JobStatusChanged {
                job_id: 1,
                job_master_id: 2,
                from: Some(model::protocol::states::JobStatus::Created),
                to: model::protocol::states::JobStatus::Running
            }),
            Some(Observation::JobStatus("RUNNING".into()))
        );
        assert_eq!(
            round_trip(Obs::RestoreDecided {
                job_id: 1,
                checkpoint_id: Some(14),
                vertices: 8,
                global: true
            }),
            Some(Observation::RestoreDecided {
                checkpoint: Some(14),
                vertices: 8,
                global: true
            })
        );
        assert_eq!(round_trip(Obs::JobSubmitted { job_id: 3 }), None);
        assert_eq!(
            observation(serde_json::json!("CheckpointAborted { job_id: 7 }")),
            None
        );
    }

    #[test]
    fn a_delivery_is_about_the_first_checkpoint_its_body_names() {
        let body = serde_json::json!({"TaskExecutor": {"NotifyCheckpointComplete": {"attempt": [1, 2], "checkpoint_id": 9}}});
        assert_eq!(checkpoint_of(&body), Some(9));
        assert_eq!(checkpoint_of(&serde_json::json!({"Client": "Ack"})), None);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let text = "not json\n{\"t_ns\":5,\"kind\":\"deliver\",\"from\":\"a\",\"to\":\"b\",\"sent_ns\":1,\"msg\":\"x\"}\n\n[1,2]\n{\"t_ns\":\"late\",\"kind\":\"obs\"}\n";
        let t = Trace::parse(text.as_bytes()).unwrap();
        assert_eq!(t.events, 1);
        assert_eq!(t.skipped_lines, 3);
        assert_eq!(t.deliveries.len(), 1);
        assert_eq!(t.nodes, ["a", "b"]);
    }
}
