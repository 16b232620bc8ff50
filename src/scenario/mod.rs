//! Scenario files: TOML parsed into a faithful raw spec ([`raw`]), then validated into a typed
//! [`Scenario`] with durations, node names and Flink defaults resolved. Every error names the
//! file, the line and column, and what was expected; nothing here panics on bad input.

use crate::nemesis::{Episode, Nemesis, Outage};
use model::protocol::config::{parse_duration, FlinkConfig};
use rand::Rng as _;
use sim::NodeId;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A problem with a scenario file that the user can fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub path: PathBuf,
    /// 1-based line and column, when known.
    pub line: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}
/// The raw spec: what the file says, field by field (serde), with source spans.
pub mod raw;

mod expect;
mod faults;
mod job;
mod nemesis;
mod validate;

use validate::Validator;

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it was read from, and its exact text (copied into reports).
    pub path: PathBuf,
    pub source: String,
    pub duration: Duration,
    /// `flinksim check` runs seeds `0..seeds`.
    pub seeds: u64,
    pub cluster: Cluster,
    pub flink: FlinkConfig,
    /// The job the client submits, if any.
    pub job: Option<JobSubmission>,
    pub network: NetworkSpec,
    pub clocks: ClockSpec,
    pub faults: Vec<FaultSpec>,
    pub expect: Expect,
    /// The planted bug this scenario switches on (`bug = "…"`); the CLI's `--bug` overrides it.
    pub bug: Option<model::checking::bugs::Bug>,
    /// Random faults still to be drawn for a seed ([`Scenario::resolve`]); `None` once resolved
    /// and in files without a `[nemesis]` (or with one that has no entries).
    pub nemesis: Option<Nemesis>,
    /// The knobs [`Scenario::resolve`] drew for a seed (name, value), for printing; empty in
    /// a scenario as read.
    pub knobs: Vec<(String, String)>,
    /// `[swarm]`: the job's shape still to be drawn for a seed; `None` once resolved.
    pub swarm: Option<JobSwarm>,
}

/// `[swarm]`: what each seed draws of the job and the cluster before its faults.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSwarm {
    /// `[job] parallelism` drawn from this range.
    pub parallelism: Option<(u32, u32)>,
    /// `taskmanager.numberOfTaskSlots` drawn from this range.
    pub slots: Option<(u32, u32)>,
    /// How many copies of `[job] source` the job reads, drawn from this range (more than one:
    /// `sources = [...]`, the first operator reads their union).
    pub sources: Option<(u32, u32)>,
    /// Alternatives for `[job] operators` as written (each an array of operator tables); one
    /// is drawn.
    pub operators: Vec<toml::Value>,
    /// `[swarm.flink]`: per Flink option (in key order), the alternative values; one is drawn.
    pub flink: Vec<(String, Vec<toml::Value>)>,
}

/// The largest parallelism a `[swarm]` may draw.
pub const SWARM_PARALLELISM_MAX: u32 = 4096;
/// The most slots per TaskManager a `[swarm]` may draw.
pub const SWARM_SLOTS_MAX: u32 = 64;
/// The most sources a `[swarm]` may draw.
pub const SWARM_SOURCES_MAX: u32 = 8;

/// The drawn values `with_job_shape` writes into a scenario; `None` leaves a value as written.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct JobShape<'a> {
    pub parallelism: Option<u32>,
    pub slots: Option<u32>,
    pub operators: Option<&'a toml::Value>,
    /// Copies of `[job] source`.
    pub sources: Option<u32>,
}

/// `source` with `[swarm]` removed and the given values written into `[job]` and `[flink]`.
pub(crate) fn with_job_shape(
    source: &str,
    shape: JobShape<'_>,
    flink_options: &[(&str, &toml::Value)],
) -> Option<String> {
    let JobShape {
        parallelism,
        slots,
        operators,
        sources,
    } = shape;
    let mut table: toml::Table = toml::from_str(source).ok()?;
    table.remove("swarm");
    let parallelism = parallelism.map(|p| toml::Value::Integer(i64::from(p)));
    let job_keys: Vec<(&str, &toml::Value)> = [
        ("parallelism", parallelism.as_ref()),
        ("operators", operators),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    if let Some(copies) = sources.filter(|n| *n > 1) {
        let toml::Value::Table(job) = table.get_mut("job")? else {
            return None;
        };
        let one = job.remove("source")?;
        let all = vec![one; copies as usize];
        job.insert("sources".to_string(), toml::Value::Array(all));
    }
    let slots = slots.map(|n| toml::Value::Integer(i64::from(n)));
    let flink_keys: Vec<(&str, &toml::Value)> = slots
        .iter()
        .map(|v| ("taskmanager.numberOfTaskSlots", v))
        .chain(flink_options.iter().copied())
        .collect();
    if !job_keys.is_empty() {
        let toml::Value::Table(job) = table.get_mut("job")? else {
            return None;
        };
        for (key, value) in job_keys {
            job.insert(key.to_string(), value.clone());
        }
    }
    if !flink_keys.is_empty() {
        let flink = table
            .entry("flink")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(flink) = flink else {
            return None;
        };
        for (key, value) in flink_keys {
            flink.insert(key.to_string(), value.clone());
        }
    }
    toml::to_string(&table).ok()
}

/// An operator list as a knob value: `key_by(64), count`.
fn operators_text(ops: &toml::Value) -> String {
    let Some(list) = ops.as_array() else {
        return String::new();
    };
    list.iter()
        .map(|op| {
            let kind = op.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
            match op.get("keys").and_then(|k| k.as_integer()) {
                Some(k) => format!("{kind}({k})"),
                None => kind.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub jobmanagers: u32,
    /// TaskManagers started with the cluster.
    pub taskmanagers: u32,
    /// Stopped TaskManagers an active ResourceManager may start (named after the others).
    pub spare_taskmanagers: u32,
}

impl Cluster {
    /// Node names in node-id order: JobManagers, then TaskManagers (spares last).
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.jobmanagers)
            .map(|i| format!("jobmanager-{i}"))
            .chain(
                (1..=self.taskmanagers + self.spare_taskmanagers)
                    .map(|i| format!("taskmanager-{i}")),
            )
            .collect()
    }
}

/// The nodes of a run in node-id order, the one place that lays them out: the JobManagers, the
/// TaskManagers (spares last), then with a job the `client`, `source`, `checkpoint-storage` and
/// `sink`, then with high availability the `ha` node. Faults may name every node but the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLayout {
    names: Vec<String>,
    jobmanagers: usize,
    taskmanagers_started: usize,
    /// The cluster's nodes (JobManagers and TaskManagers).
    cluster: usize,
    has_job: bool,
    ha: bool,
}

impl NodeLayout {
    pub fn new(cluster: &Cluster, has_job: bool, ha: bool) -> NodeLayout {
        let mut names = cluster.node_names();
        let cluster_nodes = names.len();
        if has_job {
            names.push("client".to_string());
            names.extend(JOB_NODES.iter().map(|n| n.to_string()));
        }
        if ha {
            names.push("ha".to_string());
        }
        NodeLayout {
            names,
            jobmanagers: cluster.jobmanagers as usize,
            taskmanagers_started: cluster.taskmanagers as usize,
            cluster: cluster_nodes,
            has_job,
            ha,
        }
    }

    /// Every node, in node-id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The id of a node by name; the name must be one of [`NodeLayout::names`] (validated).
    pub fn id(&self, name: &str) -> NodeId {
        let index = self.names.iter().position(|n| n == name);
        NodeId(index.expect("validated node name") as u32)
    }

    /// The nodes a fault may name, in node-id order (all but the client).
    pub fn fault_targets(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| n.as_str() != "client")
            .cloned()
            .collect()
    }

    /// The processes by role, for the model.
    pub fn topology(&self) -> model::process::Topology {
        let id = |i: usize| NodeId(i as u32);
        let job_node = |offset: usize| self.has_job.then(|| id(self.cluster + offset));
        model::process::Topology {
            jobmanagers: (0..self.jobmanagers).map(id).collect(),
            taskmanagers: (self.jobmanagers..self.cluster).map(id).collect(),
            spare_taskmanagers: (self.jobmanagers + self.taskmanagers_started..self.cluster)
                .map(id)
                .collect(),
            client: job_node(0),
            source_log: job_node(1),
            checkpoint_storage: job_node(2),
            sink: job_node(3),
            ha: self.ha.then(|| id(self.names.len() - 1)),
        }
    }
}

/// The job of a scenario and when the client submits it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSubmission {
    pub spec: model::protocol::job_graph::JobSpec,
    pub submit_at: Duration,
}

/// A closed range of durations; equal ends mean a fixed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationRange {
    pub lo: Duration,
    pub hi: Duration,
}

impl fmt::Display for DurationRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{:?}", self.lo)
        } else {
            write!(f, "{:?}..{:?}", self.lo, self.hi)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetworkSpec {
    pub latency: DurationRange,
    pub loss: f64,
    pub duplicate: f64,
    /// Swarm knobs: `loss = "0..0.05"` draws one loss probability per seed from this range
    /// ([`Scenario::resolve`]); `loss` holds the low end until then.
    pub loss_range: Option<(f64, f64)>,
    pub duplicate_range: Option<(f64, f64)>,
    pub reorder: bool,
    /// `network.answer_delay`: answers leave their sender a draw from this later, and what it
    /// sends meanwhile may arrive first; `None`: at once.
    pub answer_delay: Option<DurationRange>,
    /// (node a, node b, latency) for both directions between a and b.
    pub links: Vec<(String, String, DurationRange)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSpec {
    /// Drift per node, drawn uniformly from this range (ppm).
    pub drift_ppm: (i64, i64),
    /// Wall-clock offset per node, drawn uniformly from this range (ns).
    pub offset_ns: (i64, i64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    pub at: Duration,
    pub action: FaultAction,
    /// 1-based line in the file.
    pub line: usize,
}

/// A node as a fault names it: by name, or by its role when the fault fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `jobmanager-1`, `taskmanager-3`, `ha`, `sink`, ...
    Node(String),
    /// `leader`: the JobManager leading when the fault fires (with HA, the one most recently
    /// granted leadership that still holds it; without HA the only one).
    Leader,
    /// `taskmanager-of:count[1]`: the TaskManager running (the newest live attempt of) that
    /// subtask when the fault fires.
    TaskManagerOf {
        operator: String,
        vertex: model::protocol::job_graph::JobVertexId,
        subtask: u32,
    },
    /// `random-taskmanager`: a TaskManager drawn from the seed among those the fault can act on
    /// (running ones; for `start`, stopped ones; for `resume`, paused ones).
    RandomTaskManager,
}

impl Target {
    pub const LEADER: &'static str = "leader";
    pub const RANDOM_TASKMANAGER: &'static str = "random-taskmanager";
    pub const TASKMANAGER_OF: &'static str = "taskmanager-of:";

    /// Reads a target; `None` when the text is not a role (a node name, or a bad
    /// `taskmanager-of:`, which the validator explains). `graph` resolves operator names.
    pub fn role(
        text: &str,
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Option<Target> {
        let text = text.trim();
        if text == Target::LEADER {
            return Some(Target::Leader);
        }
        if text == Target::RANDOM_TASKMANAGER {
            return Some(Target::RandomTaskManager);
        }
        let (operator, subtask) = parse_subtask(text.strip_prefix(Target::TASKMANAGER_OF)?)?;
        let graph = graph?;
        let vertex = graph.find_vertex(operator)?;
        (subtask < graph.vertex(vertex).parallelism).then(|| Target::TaskManagerOf {
            operator: operator.to_string(),
            vertex,
            subtask,
        })
    }

    /// Whether a node name is a role, resolved only when its fault fires.
    pub fn is_role(text: &str) -> bool {
        let text = text.trim();
        text == Target::LEADER
            || text == Target::RANDOM_TASKMANAGER
            || text.starts_with(Target::TASKMANAGER_OF)
    }
}

/// `"count[1]"` as (operator, subtask).
pub fn parse_subtask(text: &str) -> Option<(&str, u32)> {
    text.trim()
        .strip_suffix(']')
        .and_then(|x| x.split_once('['))
        .and_then(|(op, idx)| idx.trim().parse::<u32>().ok().map(|i| (op.trim(), i)))
}

/// What an aimed message fault does to the messages it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageFault {
    /// `delay = KINDS`, `by = "15s"`.
    Delay(Duration),
    /// `drop = KINDS`.
    Drop,
    /// `drop_reply = KINDS`: the receiver applies the request; its answer is lost.
    DropReply,
}

impl MessageFault {
    pub fn key(self) -> &'static str {
        match self {
            MessageFault::Delay(_) => "delay",
            MessageFault::Drop => "drop",
            MessageFault::DropReply => "drop_reply",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    Kill(String),
    Start(String),
    Pause {
        node: String,
        resume_after: Option<Duration>,
    },
    Resume(String),
    Partition {
        groups: Vec<Vec<String>>,
        one_way: bool,
        heal_after: Option<Duration>,
    },
    /// Heals every partition and clog.
    Heal,
    Clog {
        groups: Vec<Vec<String>>,
        one_way: bool,
        extra: Duration,
        clear_after: Option<Duration>,
    },
    ClockJump {
        node: String,
        by_ns: i64,
    },
    /// The task running `subtask` of the job vertex holding `operator` throws.
    FailTask {
        operator: String,
        vertex: model::protocol::job_graph::JobVertexId,
        subtask: u32,
    },
    /// Messages of `kinds` (RPC names, `flinksim list rpcs`; empty: all) from `from` to `to`
    /// (empty: any) are delayed, dropped or lose their reply, for the next `count` of them or
    /// for `lasting`.
    Messages {
        fault: MessageFault,
        kinds: Vec<String>,
        from: Vec<String>,
        to: Vec<String>,
        count: Option<u32>,
        lasting: Option<Duration>,
    },
    /// The node's handlers take `per_event` each, for `lasting` (or to the end).
    Slow {
        node: String,
        per_event: Duration,
        lasting: Option<Duration>,
    },
}

impl FaultAction {
    /// Every node name the action holds (roles included).
    pub fn node_names(&self) -> Vec<&str> {
        match self {
            FaultAction::Kill(n) | FaultAction::Start(n) | FaultAction::Resume(n) => vec![n],
            FaultAction::Pause { node, .. }
            | FaultAction::ClockJump { node, .. }
            | FaultAction::Slow { node, .. } => vec![node],
            FaultAction::Partition { groups, .. } | FaultAction::Clog { groups, .. } => {
                groups.iter().flatten().map(String::as_str).collect()
            }
            FaultAction::Messages { from, to, .. } => {
                from.iter().chain(to).map(String::as_str).collect()
            }
            FaultAction::Heal | FaultAction::FailTask { .. } => Vec::new(),
        }
    }

    /// Prose for the aimed faults (messages and slowness), e.g. `drop the reply of zk-multi
    /// from leader (next 1)`; `None` for the others.
    pub fn aimed_text(&self) -> Option<String> {
        let list = |v: &[String], none: &str| {
            if v.is_empty() {
                none.to_string()
            } else {
                v.join(",")
            }
        };
        let window = |count: &Option<u32>, lasting: &Option<Duration>| match (count, lasting) {
            (Some(n), Some(d)) => format!(" (next {n}, within {d:?})"),
            (Some(n), None) => format!(" (next {n})"),
            (None, Some(d)) => format!(" (for {d:?})"),
            (None, None) => String::new(),
        };
        match self {
            FaultAction::Messages {
                fault,
                kinds,
                from,
                to,
                count,
                lasting,
            } => {
                let what = match fault {
                    MessageFault::Delay(by) => {
                        format!("delay {} by {by:?}", list(kinds, "every message"))
                    }
                    MessageFault::Drop => format!("drop {}", list(kinds, "every message")),
                    MessageFault::DropReply => {
                        format!("drop the reply of {}", list(kinds, "every request"))
                    }
                };
                let from = if from.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", from.join(","))
                };
                let to = if to.is_empty() {
                    String::new()
                } else {
                    format!(" to {}", to.join(","))
                };
                Some(format!("{what}{from}{to}{}", window(count, lasting)))
            }
            FaultAction::Slow {
                node,
                per_event,
                lasting,
            } => Some(format!(
                "slow {node} ({per_event:?} per event){}",
                window(&None, lasting)
            )),
            _ => None,
        }
    }

    /// Whether it names a role (`leader`, ...) that is resolved only when it fires.
    pub fn has_roles(&self) -> bool {
        self.node_names().iter().any(|n| Target::is_role(n))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Expect {
    /// `None` = all invariants.
    pub invariants: Option<Vec<String>>,
    /// A negative scenario: the run must fail with this invariant.
    pub violation: Option<String>,
    /// Exactly this many TaskManager losses declared by the ResourceManager.
    pub taskmanagers_lost: Option<u32>,
    /// The JobStatus the run must end in.
    pub job_status: Option<model::protocol::states::JobStatus>,
    /// At least this many checkpoints completed (requires checkpointing to be enabled).
    pub min_completed_checkpoints: Option<u64>,
}

/// The external systems of a job that faults may name, in the runner's node order (it creates
/// them after the job's `client`, which is not a fault target).
pub const JOB_NODES: &[&str] = &["source", "checkpoint-storage", "sink"];

/// The largest cluster a scenario may describe.
pub const NODES_MAX: usize = 2048;
/// The longest virtual duration a scenario may ask for.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the scenario file: {e}"),
        })?;
        Scenario::parse(path, &source)
    }

    /// Validates scenario text; `path` is used in errors only.
    pub fn parse(path: &Path, source: &str) -> Result<Scenario, ScenarioError> {
        let v = Validator { path, source };
        let raw: raw::Scenario = toml::from_str(source).map_err(|e| {
            let message = e.message().trim().to_string();
            let message = explain_toml_message(&message);
            match e.span() {
                Some(span) => v.err(span, message),
                None => ScenarioError {
                    path: path.to_path_buf(),
                    line: None,
                    message,
                },
            }
        })?;
        v.validate(raw, source)
    }

    /// This scenario for `seed` with everything drawn from the seed written out: the swarm knobs
    /// (a `loss`/`duplicate` range becomes one value; a `swarm` nemesis keeps a subset of its
    /// entries) and the `[nemesis]` faults, appended to `faults` (sorted by time, scripted first
    /// on ties). `nemesis` is `None`, `knobs` lists what was drawn, and `source` is a standalone
    /// scenario text without `[nemesis]` or ranges whose `faults` are exactly these (so a
    /// report's `scenario.toml` replays without the seed's draw). With nothing to draw, an
    /// unchanged copy.
    pub fn resolve(&self, seed: u64) -> Scenario {
        if let Some(swarm) = &self.swarm {
            let (base, mut knobs) = self.draw_job_shape(seed, swarm);
            let mut resolved = base.resolve(seed);
            knobs.append(&mut resolved.knobs);
            resolved.knobs = knobs;
            return resolved;
        }
        let net = &self.network;
        if self.nemesis.is_none() && net.loss_range.is_none() && net.duplicate_range.is_none() {
            return self.clone();
        }
        let mut knobs = Vec::new();
        let mut rng = sim::rng::stream(seed, "knobs", 0);
        let mut draw_prob = |range: Option<(f64, f64)>, fixed: f64, name: &str| match range {
            Some((lo, hi)) => {
                // Four decimals, so that the resolved file reads naturally.
                let v = (rng.random_range(lo..=hi) * 1e4).round() / 1e4;
                knobs.push((name.to_string(), v.to_string()));
                v
            }
            None => fixed,
        };
        let loss = draw_prob(net.loss_range, net.loss, "network.loss");
        let duplicate = draw_prob(net.duplicate_range, net.duplicate, "network.duplicate");
        let nemesis = self.nemesis.as_ref().map(|n| {
            let (picked, drawn) = n.swarm_pick(seed);
            knobs.extend(drawn);
            picked
        });
        let taskmanagers: Vec<String> = (1..=self.cluster.taskmanagers)
            .map(|i| format!("taskmanager-{i}"))
            .collect();
        let mut drawn = match &nemesis {
            Some(n) => n.draw(
                seed,
                &taskmanagers,
                &self.node_names(),
                self.duration,
                &self.faults,
            ),
            None => Vec::new(),
        };
        drawn.sort_by_key(|(at, _)| *at);
        let text = self.resolved_text(seed, nemesis.as_ref(), &drawn, loss, duplicate);
        if let Some(mut resolved) = text.and_then(|t| Scenario::parse(&self.path, &t).ok()) {
            resolved.knobs = knobs;
            return resolved;
        }
        // Not expected: the drawn faults are valid by construction. Keep the run going with
        // the faults, even though `source` still shows the `[nemesis]`.
        debug_assert!(false, "the resolved scenario text does not re-parse");
        let mut resolved = self.clone();
        resolved
            .faults
            .extend(drawn.into_iter().map(|(at, action)| FaultSpec {
                at,
                action,
                line: 0,
            }));
        resolved.faults.sort_by_key(|f| f.at);
        resolved.nemesis = None;
        resolved.network.loss = loss;
        resolved.network.duplicate = duplicate;
        resolved.network.loss_range = None;
        resolved.network.duplicate_range = None;
        resolved.knobs = knobs;
        resolved
    }

    /// What `[swarm]` draws for `seed` (from its own stream, before anything else): the
    /// scenario with those values written in and `[swarm]` gone, and the knobs drawn.
    fn draw_job_shape(&self, seed: u64, swarm: &JobSwarm) -> (Scenario, Vec<(String, String)>) {
        let mut rng = sim::rng::stream(seed, "job-shape", 0);
        let mut knobs = Vec::new();
        let parallelism = swarm.parallelism.map(|(lo, hi)| {
            let p = rng.random_range(lo..=hi);
            knobs.push(("job.parallelism".to_string(), p.to_string()));
            p
        });
        let slots = swarm.slots.map(|(lo, hi)| {
            let n = rng.random_range(lo..=hi);
            knobs.push(("taskmanager.numberOfTaskSlots".to_string(), n.to_string()));
            n
        });
        let operators = (!swarm.operators.is_empty()).then(|| {
            let ops = &swarm.operators[rng.random_range(0..swarm.operators.len())];
            knobs.push(("job.operators".to_string(), operators_text(ops)));
            ops
        });
        let options: Vec<(&str, &toml::Value)> = swarm
            .flink
            .iter()
            .map(|(key, values)| {
                let v = &values[rng.random_range(0..values.len())];
                knobs.push((key.clone(), v.to_string()));
                (key.as_str(), v)
            })
            .collect();
        // Drawn last, so that scenarios without it draw what they always drew.
        let sources = swarm.sources.map(|(lo, hi)| {
            let n = rng.random_range(lo..=hi);
            knobs.push(("job.sources".to_string(), n.to_string()));
            n
        });
        let shape = JobShape {
            parallelism,
            slots,
            operators,
            sources,
        };
        let text = with_job_shape(&self.source, shape, &options);
        match text.and_then(|t| Scenario::parse(&self.path, &t).ok()) {
            Some(base) => (base, knobs),
            None => {
                // Not expected: every combination was parsed when the file was read.
                debug_assert!(false, "the drawn job shape does not parse");
                let mut base = self.clone();
                base.swarm = None;
                (base, knobs)
            }
        }
    }

    fn resolved_text(
        &self,
        seed: u64,
        nemesis: Option<&Nemesis>,
        drawn: &[crate::nemesis::Drawn],
        loss: f64,
        duplicate: f64,
    ) -> Option<String> {
        let mut table: toml::Table = toml::from_str(&self.source).ok()?;
        table.remove("nemesis");
        if let Some(toml::Value::Table(net)) = table.get_mut("network") {
            if self.network.loss_range.is_some() {
                net.insert("loss".into(), toml::Value::Float(loss));
            }
            if self.network.duplicate_range.is_some() {
                net.insert("duplicate".into(), toml::Value::Float(duplicate));
            }
        }
        if !drawn.is_empty() {
            let faults = table
                .entry("faults")
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(faults) = faults else {
                return None;
            };
            for (at, action) in drawn {
                faults.push(toml::Value::Table(crate::nemesis::fault_table(
                    *at, action,
                )?));
            }
        }
        let body = toml::to_string(&table).ok()?;
        let from = match (nemesis, &self.nemesis) {
            (Some(n), Some(all)) if all.swarm => format!(
                "{}\n# (swarm: this seed kept {})",
                all.describe(),
                n.entries().join(", ")
            ),
            (Some(n), _) => n.describe(),
            _ => "swarm knobs".to_string(),
        };
        Some(format!(
            "# {}, everything drawn for seed {seed} written out (faults in [[faults]]) from:\n# {from}\n\n{body}",
            self.path.display(),
        ))
    }

    /// The `[nemesis]` entries, for printing; `None` without one (or once resolved).
    pub fn nemesis_description(&self) -> Option<String> {
        self.nemesis.as_ref().map(|n| n.describe())
    }

    /// Every node a fault may name: the cluster, and the external systems of a job.
    pub fn node_names(&self) -> Vec<String> {
        self.layout().fault_targets()
    }

    /// The nodes of a run of this scenario.
    pub fn layout(&self) -> NodeLayout {
        let ha = self.flink.high_availability != model::protocol::config::HighAvailability::None;
        NodeLayout::new(&self.cluster, self.job.is_some(), ha)
    }
}

/// Makes serde's messages read as advice about the file.
fn explain_toml_message(m: &str) -> String {
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown key {rest}");
    }
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!("missing required key {rest}");
    }
    // A sub-table header (`[swarm.flink]`) whose parent table has no header of its own: the
    // parent is implicit and has no position, which its positioned reading refuses.
    if m.contains("expected a borrowed string") {
        return format!(
            "{m} (a sub-table such as [swarm.flink] needs its parent table's header, [swarm], above it)"
        );
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::validate::compact_names;
    use super::*;
    use std::collections::BTreeSet;

    const JOB: &str = "[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n";

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("t.toml"), text)
    }

    #[test]
    fn swarm_draws_flink_options_per_seed_and_checks_every_alternative() {
        let base = format!("name = \"s\"\nduration = \"30s\"\n{JOB}");
        let text =
            format!("{base}[swarm]\n[swarm.flink]\n\"heartbeat.timeout\" = [\"20 s\", \"60 s\"]\n");
        let s = parse(&text).unwrap();
        let mut seen = BTreeSet::new();
        for seed in 0..32 {
            let r = s.resolve(seed);
            assert_eq!(r.knobs.len(), 1);
            assert_eq!(r.knobs[0].0, "heartbeat.timeout");
            seen.insert(r.flink.heartbeat_timeout);
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [Duration::from_secs(20), Duration::from_secs(60)]
        );
        // An alternative that is not a valid value is refused with its line.
        let bad =
            format!("{base}[swarm]\nflink = {{ \"heartbeat.timeout\" = [\"20 s\", \"soon\"] }}\n");
        let e = parse(&bad).unwrap_err();
        assert!(
            e.message
                .contains("[swarm.flink] `heartbeat.timeout` alternative 2"),
            "{}",
            e.message
        );
        assert!(e.line.is_some());
        // Without the [swarm] header the error says what is missing.
        let implicit = format!("{base}[swarm.flink]\n\"heartbeat.timeout\" = [\"5 s\"]\n");
        let e = parse(&implicit).unwrap_err();
        assert!(
            e.message.contains("needs its parent table's header"),
            "{}",
            e.message
        );
    }

    #[test]
    fn swarm_draws_the_job_shape_and_slots_per_seed() {
        let text = format!(
            "name = \"s\"\nduration = \"30s\"\n{JOB}operators = [{{ kind = \"map\" }}]\n[swarm]\nparallelism = \"2..5\"\nslots = \"1..3\"\noperators = [[{{ kind = \"map\" }}], [{{ kind = \"key_by\", keys = 8 }}, {{ kind = \"count\" }}]]\n"
        );
        let s = parse(&text).unwrap();
        assert!(s.swarm.is_some());
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let r = s.resolve(seed);
            assert!(r.swarm.is_none());
            assert_eq!(r, s.resolve(seed), "seed {seed} draws the same every time");
            let spec = &r.job.as_ref().unwrap().spec;
            assert!((2..=5).contains(&spec.parallelism));
            assert!((1..=3).contains(&r.flink.number_of_task_slots));
            let names: Vec<&str> = r.knobs.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "job.parallelism",
                    "taskmanager.numberOfTaskSlots",
                    "job.operators"
                ]
            );
            seen.insert((
                spec.parallelism,
                r.flink.number_of_task_slots,
                spec.operators.len(),
            ));
        }
        // Every value of each knob is drawn somewhere in 64 seeds.
        let ps: BTreeSet<u32> = seen.iter().map(|x| x.0).collect();
        let ns: BTreeSet<u32> = seen.iter().map(|x| x.1).collect();
        let os: BTreeSet<usize> = seen.iter().map(|x| x.2).collect();
        assert_eq!(ps.len(), 4);
        assert_eq!(ns.len(), 3);
        assert_eq!(os.len(), 2);
    }

    #[test]
    fn a_jobs_external_systems_are_fault_targets() {
        let s = parse(&format!(
            "name = \"x\"\nduration = \"30s\"\n{JOB}[[faults]]\nat = \"1s\"\nkill = \"checkpoint-storage\"\n[[faults]]\nat = \"2s\"\npause = \"sink\"\n[[faults]]\nat = \"3s\"\npartition = [[\"source\"], [\"taskmanager-1\"]]\n"
        ))
        .unwrap();
        assert_eq!(
            s.node_names()[s.cluster.node_names().len()..],
            ["source", "checkpoint-storage", "sink"]
        );
        assert_eq!(
            s.faults[0].action,
            FaultAction::Kill("checkpoint-storage".into())
        );
        let e = parse("name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"1s\"\nkill = \"checkpoint-storage\"\n")
            .unwrap_err();
        assert!(
            e.message.contains("exists only in scenarios with a [job]"),
            "{e}"
        );
        let e = parse("name = \"x\"\nduration = \"30s\"\n[[faults]]\nat = \"1s\"\nkill = \"ha\"\n")
            .unwrap_err();
        assert!(
            e.message
                .contains("`ha` exists only with \"high-availability.type\""),
            "{e}"
        );
    }

    #[test]
    fn a_scenario_may_plant_a_bug() {
        let s =
            parse("name = \"x\"\nduration = \"30s\"\nbug = \"sink-commit-on-barrier\"\n").unwrap();
        assert_eq!(s.bug, Some(model::checking::bugs::Bug::SinkCommitOnBarrier));
        assert_eq!(
            parse("name = \"x\"\nduration = \"30s\"\n").unwrap().bug,
            None
        );
        let e = parse("name = \"x\"\nduration = \"30s\"\nbug = \"nope\"\n").unwrap_err();
        assert_eq!(e.line, Some((3, 7)));
        assert!(
            e.message.contains("no-abort-of-lingering-transactions"),
            "{e}"
        );
    }

    #[test]
    fn min_completed_checkpoints_needs_checkpointing_and_a_job() {
        let cp = "[flink]\n\"execution.checkpointing.interval\" = \"1 s\"\n";
        let s = parse(&format!(
            "name = \"x\"\nduration = \"30s\"\n{cp}{JOB}[expect]\nmin_completed_checkpoints = 3\n"
        ))
        .unwrap();
        assert_eq!(s.expect.min_completed_checkpoints, Some(3));
        assert!(s.flink.checkpointing.is_some());
        let e = parse(&format!(
            "name = \"x\"\nduration = \"30s\"\n{JOB}[expect]\nmin_completed_checkpoints = 3\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("needs checkpointing"), "{e}");
        let e = parse(&format!(
            "name = \"x\"\nduration = \"30s\"\n{cp}[expect]\nmin_completed_checkpoints = 3\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("needs a [job]"), "{e}");
    }

    #[test]
    fn node_listings_keep_unnumbered_names() {
        let names: Vec<String> = [
            "jobmanager-1",
            "taskmanager-1",
            "taskmanager-2",
            "source",
            "checkpoint-storage",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            compact_names(&names),
            "jobmanager-1, taskmanager-1..taskmanager-2, source, checkpoint-storage"
        );
    }
}
