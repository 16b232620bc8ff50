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
pub mod raw {
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use toml::Spanned;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Scenario {
        pub name: Spanned<String>,
        #[serde(default)]
        pub description: String,
        pub duration: Spanned<String>,
        pub seeds: Option<Spanned<i64>>,
        /// A planted bug (`flinksim list bugs`) a negative scenario switches on.
        pub bug: Option<Spanned<String>>,
        pub cluster: Option<Spanned<Cluster>>,
        pub flink: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
        pub job: Option<Spanned<Job>>,
        pub network: Option<Network>,
        pub clocks: Option<Clocks>,
        #[serde(default)]
        pub faults: Vec<Spanned<Fault>>,
        pub nemesis: Option<Spanned<Nemesis>>,
        pub expect: Option<Expect>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Job {
        pub name: Spanned<String>,
        pub parallelism: Spanned<i64>,
        pub max_parallelism: Option<Spanned<i64>>,
        /// When the client submits the job (default 0).
        pub submit_at: Option<Spanned<String>>,
        pub source: Spanned<Source>,
        #[serde(default)]
        pub operators: Vec<Spanned<Operator>>,
        pub sink: Option<Spanned<Sink>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Source {
        pub kind: Spanned<String>,
        pub partitions: Spanned<i64>,
        pub records: Spanned<i64>,
        pub rate: Option<Spanned<toml::Value>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Operator {
        pub kind: Spanned<String>,
        pub keys: Option<Spanned<i64>>,
        pub name: Option<Spanned<String>>,
        pub parallelism: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Sink {
        pub kind: Spanned<String>,
        pub parallelism: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Cluster {
        pub jobmanagers: Option<Spanned<i64>>,
        pub taskmanagers: Spanned<i64>,
        pub spare_taskmanagers: Option<Spanned<i64>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Network {
        pub latency: Option<Spanned<String>>,
        pub loss: Option<Spanned<toml::Value>>,
        pub duplicate: Option<Spanned<toml::Value>>,
        pub reorder: Option<bool>,
        #[serde(default)]
        pub links: Vec<Spanned<Link>>,
    }

    /// A per-link latency override, both directions.
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Link {
        pub between: Spanned<Vec<String>>,
        pub latency: Spanned<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Clocks {
        pub drift_ppm: Option<Spanned<toml::Value>>,
        pub offset: Option<Spanned<String>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Fault {
        pub at: Spanned<String>,
        pub kill: Option<Spanned<String>>,
        pub start: Option<Spanned<String>>,
        pub pause: Option<Spanned<String>>,
        pub resume: Option<Spanned<String>>,
        pub resume_after: Option<Spanned<String>>,
        pub partition: Option<Spanned<Vec<Vec<String>>>>,
        pub one_way: Option<bool>,
        pub heal_after: Option<Spanned<String>>,
        pub heal: Option<Spanned<bool>>,
        pub clog: Option<Spanned<Vec<Vec<String>>>>,
        pub extra: Option<Spanned<String>>,
        pub clear_after: Option<Spanned<String>>,
        pub clock_jump: Option<Spanned<String>>,
        pub by: Option<Spanned<String>>,
        pub fail_task: Option<Spanned<String>>,
    }

    /// `[nemesis]`: random faults drawn from the seed.
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Nemesis {
        pub kill_taskmanager: Option<Spanned<Outage>>,
        pub partition: Option<Spanned<Episode>>,
        pub pause: Option<Spanned<Episode>>,
        pub kill_sink: Option<Spanned<Outage>>,
        pub kill_checkpoint_storage: Option<Spanned<Outage>>,
        pub clog: Option<Spanned<Clog>>,
        pub clock_jump: Option<Spanned<ClockJump>>,
        pub fail_task: Option<Spanned<Every>>,
        pub kill_jobmanager: Option<Spanned<Outage>>,
        pub pause_jobmanager: Option<Spanned<Episode>>,
        pub kill_ha: Option<Spanned<Outage>>,
        pub swarm: Option<Spanned<bool>>,
        pub quiet_after: Option<Spanned<String>>,
    }

    /// `{ every = "10s..40s", down = "2s..20s", nodes = "1..2" }`
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Outage {
        pub every: Spanned<String>,
        pub down: Spanned<String>,
        pub nodes: Option<Spanned<toml::Value>>,
    }

    /// `{ every = "10s..30s", lasting = "1s..5s", extra = "100ms..2s" }`
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Clog {
        pub every: Spanned<String>,
        pub lasting: Spanned<String>,
        pub extra: Spanned<String>,
    }

    /// `{ every = "20s..60s", by = "-30s..30s" }`
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ClockJump {
        pub every: Spanned<String>,
        pub by: Spanned<String>,
    }

    /// `{ every = "20s..60s" }`
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Every {
        pub every: Spanned<String>,
    }

    /// `{ every = "20s..60s", lasting = "1s..15s" }`
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Episode {
        pub every: Spanned<String>,
        pub lasting: Spanned<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Expect {
        pub invariants: Option<Spanned<toml::Value>>,
        pub violation: Option<Spanned<String>>,
        pub taskmanagers_lost: Option<Spanned<i64>>,
        pub job_status: Option<Spanned<String>>,
        pub min_completed_checkpoints: Option<Spanned<i64>>,
        #[serde(flatten)]
        pub other: BTreeMap<String, toml::Value>,
    }
}

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
    m.to_string()
}

struct Validator<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let offset = span.start.min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError {
            path: self.path.to_path_buf(),
            line: Some((line, col)),
            message: message.into(),
        }
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn duration(&self, s: &Spanned<String>, what: &str) -> Result<Duration, ScenarioError> {
        let d =
            parse_duration(s.get_ref()).map_err(|e| self.err(s.span(), format!("{what}: {e}")))?;
        if d > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        Ok(d)
    }

    fn signed_duration(&self, s: &Spanned<String>, what: &str) -> Result<i64, ScenarioError> {
        let text = s.get_ref().trim();
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let d = parse_duration(body).map_err(|e| self.err(s.span(), format!("{what}: {e}")))?;
        if d > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        let ns = d.as_nanos() as i64;
        Ok(if neg { -ns } else { ns })
    }

    fn duration_range(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<DurationRange, ScenarioError> {
        let text = s.get_ref();
        let (lo, hi) = match text.split_once("..") {
            Some((a, b)) => (a, b),
            None => (text.as_str(), text.as_str()),
        };
        let parse = |t: &str| {
            parse_duration(t).map_err(|e| {
                self.err(
                    s.span(),
                    format!("{what}: {e} (a single duration or a range like \"1ms..5ms\")"),
                )
            })
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        if hi > Duration::from_secs(3600) {
            return Err(self.err(s.span(), format!("{what}: at most 1 hour")));
        }
        Ok(DurationRange { lo, hi })
    }

    fn signed_range(&self, s: &Spanned<String>, what: &str) -> Result<(i64, i64), ScenarioError> {
        let text = s.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let mk = |t: &str| Spanned::new(s.span(), t.to_string());
        let (lo, hi) = (
            self.signed_duration(&mk(a), what)?,
            self.signed_duration(&mk(b), what)?,
        );
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        Ok((lo, hi))
    }

    fn count(&self, v: &Spanned<i64>, what: &str, range: Range<i64>) -> Result<i64, ScenarioError> {
        let n = *v.get_ref();
        if !range.contains(&n) {
            return Err(self.err(
                v.span(),
                format!(
                    "{what}: expected {}..={}, got {n}",
                    range.start,
                    range.end - 1
                ),
            ));
        }
        Ok(n)
    }

    fn node(&self, name: &Spanned<String>, nodes: &[String]) -> Result<String, ScenarioError> {
        let n = name.get_ref();
        if nodes.iter().any(|x| x == n) {
            return Ok(n.clone());
        }
        let hint = if n == "ha" {
            "node `ha` exists only with \"high-availability.type\" = \"ZOOKEEPER\" in [flink]"
                .to_string()
        } else if JOB_NODES.contains(&n.as_str()) {
            format!("node `{n}` exists only in scenarios with a [job]")
        } else {
            format!("unknown node `{n}`")
        };
        Err(self.err(
            name.span(),
            format!(
                "{hint}; nodes in this scenario: {} (names are jobmanager-N, taskmanager-N and, with a job, {})",
                compact_names(nodes),
                JOB_NODES.join(", ")
            ),
        ))
    }

    fn groups(
        &self,
        g: &Spanned<Vec<Vec<String>>>,
        nodes: &[String],
        what: &str,
    ) -> Result<Vec<Vec<String>>, ScenarioError> {
        let groups = g.get_ref();
        if groups.len() < 2 || groups.iter().any(|x| x.is_empty()) {
            return Err(self.err(
                g.span(),
                format!("{what}: expected at least two non-empty groups, like [[\"jobmanager-1\"], [\"taskmanager-1\"]]"),
            ));
        }
        let mut seen = Vec::new();
        for group in groups {
            for n in group {
                self.node(&Spanned::new(g.span(), n.clone()), nodes)?;
                if seen.contains(n) {
                    return Err(self.err(g.span(), format!("{what}: node `{n}` is in two groups")));
                }
                seen.push(n.clone());
            }
        }
        Ok(groups.clone())
    }

    fn validate(&self, raw: raw::Scenario, source: &str) -> Result<Scenario, ScenarioError> {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(self.err(
                raw.name.span(),
                "`name`: expected a non-empty name of letters, digits, '-', '_' or '.' (it names the report folder)",
            ));
        }
        let duration = self.duration(&raw.duration, "`duration`")?;
        if duration.is_zero() {
            return Err(self.err(raw.duration.span(), "`duration` must be greater than zero"));
        }
        let seeds = match &raw.seeds {
            Some(s) => self.count(s, "`seeds`", 1..1_000_001)? as u64,
            None => 10,
        };

        let cluster = match &raw.cluster {
            None => Cluster {
                jobmanagers: 1,
                taskmanagers: 1,
                spare_taskmanagers: 0,
            },
            Some(c) => {
                let c_ref = c.get_ref();
                let jobmanagers = match &c_ref.jobmanagers {
                    Some(j) => self.count(j, "`cluster.jobmanagers`", 1..10)?,
                    None => 1,
                };
                let taskmanagers = self.count(
                    &c_ref.taskmanagers,
                    "`cluster.taskmanagers`",
                    0..NODES_MAX as i64,
                )?;
                let spare = match &c_ref.spare_taskmanagers {
                    Some(s) => self.count(
                        s,
                        "`cluster.spare_taskmanagers`",
                        0..(NODES_MAX as i64 - taskmanagers),
                    )?,
                    None => 0,
                };
                Cluster {
                    jobmanagers: jobmanagers as u32,
                    taskmanagers: taskmanagers as u32,
                    spare_taskmanagers: spare as u32,
                }
            }
        };
        let bug = match &raw.bug {
            None => None,
            Some(b) => Some(
                model::checking::bugs::Bug::from_name(b.get_ref().trim()).ok_or_else(|| {
                    self.err(
                        b.span(),
                        format!(
                            "unknown bug `{}`; planted bugs: {}",
                            b.get_ref(),
                            model::checking::bugs::Bug::ALL
                                .iter()
                                .map(|b| b.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
            ),
        };

        let mut flink = FlinkConfig::default();
        let mut last_flink_span = None;
        if let Some(table) = &raw.flink {
            for (key, value) in table {
                let text = match value.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(self.err(
                            value.span(),
                            format!(
                                "`{}`: expected a string or a number, got a {}",
                                key.get_ref(),
                                other.type_str()
                            ),
                        ))
                    }
                };
                flink
                    .set(key.get_ref(), &text)
                    .map_err(|e| self.err(key.span(), e))?;
                last_flink_span = Some(key.span());
            }
        }
        flink.validate().map_err(|e| match &last_flink_span {
            Some(s) => self.err(s.clone(), e),
            None => ScenarioError {
                path: self.path.to_path_buf(),
                line: None,
                message: e,
            },
        })?;
        let ha = flink.high_availability != model::protocol::config::HighAvailability::None;
        if cluster.jobmanagers > 1 && !ha {
            let span = raw
                .cluster
                .as_ref()
                .and_then(|c| c.get_ref().jobmanagers.as_ref())
                .map(|j| j.span())
                .expect("jobmanagers > 1 was written");
            return Err(self.err(
                span,
                "`cluster.jobmanagers` > 1 requires high availability: set \"high-availability.type\" = \"ZOOKEEPER\" in [flink]",
            ));
        }
        // The external systems of a job are nodes too, and so is the `ha` node (the
        // ZooKeeper-like store) with high availability.
        let nodes = NodeLayout::new(&cluster, raw.job.is_some(), ha).fault_targets();

        let network = match &raw.network {
            None => NetworkSpec {
                latency: DurationRange {
                    lo: Duration::from_millis(1),
                    hi: Duration::from_millis(5),
                },
                loss: 0.0,
                duplicate: 0.0,
                loss_range: None,
                duplicate_range: None,
                reorder: false,
                links: Vec::new(),
            },
            Some(n) => {
                let latency = match &n.latency {
                    Some(l) => self.duration_range(l, "`network.latency`")?,
                    None => DurationRange {
                        lo: Duration::from_millis(1),
                        hi: Duration::from_millis(5),
                    },
                };
                // A probability, or a range of them ("0..0.05") drawn once per seed.
                let prob = |p: &Option<Spanned<toml::Value>>,
                            what: &str|
                 -> Result<(f64, Option<(f64, f64)>), ScenarioError> {
                    let Some(p) = p else {
                        return Ok((0.0, None));
                    };
                    let bad = || {
                        self.err(
                            p.span(),
                            format!(
                                "{what}: expected a probability in 0.0..=1.0 (e.g. 0.01) or a range of them drawn per seed (e.g. \"0..0.05\"), got {}",
                                p.get_ref()
                            ),
                        )
                    };
                    let ok = |x: f64| (0.0..=1.0).contains(&x);
                    match p.get_ref() {
                        toml::Value::Float(x) if ok(*x) => Ok((*x, None)),
                        toml::Value::Integer(x) if ok(*x as f64) => Ok((*x as f64, None)),
                        toml::Value::String(t) => {
                            let (a, b) = t.split_once("..").ok_or_else(bad)?;
                            let lo: f64 = a.trim().parse().map_err(|_| bad())?;
                            let hi: f64 = b.trim().parse().map_err(|_| bad())?;
                            if !ok(lo) || !ok(hi) || lo > hi {
                                return Err(bad());
                            }
                            Ok((lo, Some((lo, hi))))
                        }
                        _ => Err(bad()),
                    }
                };
                let (loss, loss_range) = prob(&n.loss, "`network.loss`")?;
                let (duplicate, duplicate_range) = prob(&n.duplicate, "`network.duplicate`")?;
                let mut links = Vec::new();
                for l in &n.links {
                    let between = &l.get_ref().between;
                    if between.get_ref().len() != 2 {
                        return Err(self.err(
                            between.span(),
                            "`between`: expected two node names, like [\"jobmanager-1\", \"taskmanager-1\"]",
                        ));
                    }
                    let a = self.node(
                        &Spanned::new(between.span(), between.get_ref()[0].clone()),
                        &nodes,
                    )?;
                    let b = self.node(
                        &Spanned::new(between.span(), between.get_ref()[1].clone()),
                        &nodes,
                    )?;
                    let latency = self.duration_range(&l.get_ref().latency, "`latency`")?;
                    links.push((a, b, latency));
                }
                NetworkSpec {
                    latency,
                    loss,
                    duplicate,
                    loss_range,
                    duplicate_range,
                    reorder: n.reorder.unwrap_or(false),
                    links,
                }
            }
        };

        let clocks = match &raw.clocks {
            None => ClockSpec {
                drift_ppm: (0, 0),
                offset_ns: (0, 0),
            },
            Some(c) => {
                let drift_ppm = match &c.drift_ppm {
                    None => (0, 0),
                    Some(v) => self.ppm_range(v)?,
                };
                let offset_ns = match &c.offset {
                    None => (0, 0),
                    Some(o) => self.signed_range(o, "`clocks.offset`")?,
                };
                ClockSpec {
                    drift_ppm,
                    offset_ns,
                }
            }
        };

        let job = match &raw.job {
            Some(j) => Some(self.job(j, &flink)?),
            None => None,
        };
        let graph = match &job {
            Some(j) => Some(
                model::protocol::job_graph::JobGraph::from_spec(&j.spec).map_err(|e| {
                    self.err(raw.job.as_ref().expect("job").span(), format!("[job]: {e}"))
                })?,
            ),
            None => None,
        };

        let mut faults = Vec::new();
        for f in &raw.faults {
            faults.push(self.fault(f, &nodes, duration, graph.as_ref())?);
        }
        faults.sort_by_key(|f| f.at);

        let nemesis = match &raw.nemesis {
            None => None,
            Some(n) => self.nemesis(n, &cluster, &nodes, graph.as_ref(), duration)?,
        };

        let expect = match &raw.expect {
            None => Expect::default(),
            Some(e) => self.expect(e, &flink, job.is_some())?,
        };

        Ok(Scenario {
            name,
            description: raw.description.clone(),
            path: self.path.to_path_buf(),
            source: source.to_string(),
            duration,
            seeds,
            cluster,
            flink,
            job,
            network,
            clocks,
            faults,
            expect,
            bug,
            nemesis,
            knobs: Vec::new(),
        })
    }

    /// A `[nemesis]` range: "10s..40s" or a single duration, up to the longest scenario.
    fn nemesis_range(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<DurationRange, ScenarioError> {
        let text = s.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let parse = |t: &str| {
            parse_duration(t).map_err(|e| {
                self.err(
                    s.span(),
                    format!("{what}: {e} (a single duration or a range like \"10s..40s\")"),
                )
            })
        };
        let (lo, hi) = (parse(a)?, parse(b)?);
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        if hi > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        if lo.is_zero() {
            return Err(self.err(
                s.span(),
                format!("{what}: must be greater than zero, got `{text}`"),
            ));
        }
        Ok(DurationRange { lo, hi })
    }

    fn nemesis(
        &self,
        n: &Spanned<raw::Nemesis>,
        cluster: &Cluster,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
        duration: Duration,
    ) -> Result<Option<Nemesis>, ScenarioError> {
        let r = n.get_ref();
        let has_job = graph.is_some();
        let outage = |o: &Option<Spanned<raw::Outage>>,
                      key: &str,
                      targets: u32|
         -> Result<Option<Outage>, ScenarioError> {
            o.as_ref()
                .map(|o| {
                    let o = o.get_ref();
                    let nodes = match &o.nodes {
                        None => (1, 1),
                        Some(v) => {
                            self.count_range(v, &format!("`nemesis.{key}.nodes`"), targets)?
                        }
                    };
                    Ok(Outage {
                        every: self.nemesis_range(&o.every, &format!("`nemesis.{key}.every`"))?,
                        down: self.nemesis_range(&o.down, &format!("`nemesis.{key}.down`"))?,
                        nodes,
                    })
                })
                .transpose()
        };
        let episode = |e: &Option<Spanned<raw::Episode>>,
                       key: &str|
         -> Result<Option<Episode>, ScenarioError> {
            e.as_ref()
                .map(|e| {
                    let e = e.get_ref();
                    Ok(Episode {
                        every: self.nemesis_range(&e.every, &format!("`nemesis.{key}.every`"))?,
                        lasting: self
                            .nemesis_range(&e.lasting, &format!("`nemesis.{key}.lasting`"))?,
                    })
                })
                .transpose()
        };
        let needs_job = |o: &Option<Spanned<raw::Outage>>, key: &str, node: &str| {
            match o {
                Some(o) if !has_job => Err(self.err(
                    o.span(),
                    format!("`nemesis.{key}` needs a [job]: node `{node}` exists only in scenarios with a [job]"),
                )),
                _ => Ok(()),
            }
        };
        needs_job(&r.kill_sink, "kill_sink", "sink")?;
        needs_job(
            &r.kill_checkpoint_storage,
            "kill_checkpoint_storage",
            "checkpoint-storage",
        )?;
        if cluster.taskmanagers == 0 {
            for (key, span) in [
                (
                    "kill_taskmanager",
                    r.kill_taskmanager.as_ref().map(|x| x.span()),
                ),
                ("pause", r.pause.as_ref().map(|x| x.span())),
            ] {
                if let Some(span) = span {
                    return Err(self.err(
                        span,
                        format!("`nemesis.{key}` needs a TaskManager: `cluster.taskmanagers` is 0"),
                    ));
                }
            }
        }
        if let Some(p) = &r.partition {
            if nodes.len() < 2 {
                return Err(self.err(
                    p.span(),
                    "`nemesis.partition` needs at least two nodes to split",
                ));
            }
        }
        if let Some(c) = &r.clog {
            if nodes.len() < 2 {
                return Err(self.err(c.span(), "`nemesis.clog` needs at least two nodes to split"));
            }
        }
        let kill_taskmanager = outage(
            &r.kill_taskmanager,
            "kill_taskmanager",
            cluster.taskmanagers,
        )?;
        let partition = episode(&r.partition, "partition")?;
        let pause = episode(&r.pause, "pause")?;
        let kill_sink = outage(&r.kill_sink, "kill_sink", 1)?;
        let kill_checkpoint_storage =
            outage(&r.kill_checkpoint_storage, "kill_checkpoint_storage", 1)?;
        let clog = r
            .clog
            .as_ref()
            .map(|c| {
                let c = c.get_ref();
                Ok::<_, ScenarioError>(crate::nemesis::Clog {
                    every: self.nemesis_range(&c.every, "`nemesis.clog.every`")?,
                    lasting: self.nemesis_range(&c.lasting, "`nemesis.clog.lasting`")?,
                    extra: self.nemesis_range(&c.extra, "`nemesis.clog.extra`")?,
                })
            })
            .transpose()?;
        let clock_jump = r
            .clock_jump
            .as_ref()
            .map(|j| {
                let j = j.get_ref();
                let text = j.by.get_ref();
                // "-30s..30s": the first ".." that is not part of a sign.
                let (a, b) = text.split_once("..").unwrap_or((text, text));
                let part = |t: &str| {
                    self.signed_duration(
                        &Spanned::new(j.by.span(), t.to_string()),
                        "`nemesis.clock_jump.by`",
                    )
                };
                let (lo, hi) = (part(a)?, part(b)?);
                if lo > hi {
                    return Err(self.err(
                        j.by.span(),
                        format!("`nemesis.clock_jump.by`: range `{text}` is empty (low > high)"),
                    ));
                }
                Ok(crate::nemesis::ClockJumps {
                    every: self.nemesis_range(&j.every, "`nemesis.clock_jump.every`")?,
                    by_ns: (lo, hi),
                })
            })
            .transpose()?;
        let fail_task = match (&r.fail_task, graph) {
            (None, _) => None,
            (Some(f), None) => {
                return Err(self.err(f.span(), "`nemesis.fail_task` needs a [job]"));
            }
            (Some(f), Some(graph)) => Some(crate::nemesis::TaskFailures {
                every: self.nemesis_range(&f.get_ref().every, "`nemesis.fail_task.every`")?,
                targets: graph
                    .vertices
                    .iter()
                    .map(|v| crate::nemesis::TaskTarget {
                        operator: v.operators[0].name.clone(),
                        vertex: v.id,
                        parallelism: v.parallelism,
                    })
                    .collect(),
            }),
        };
        // The JobManager and `ha` entries need high availability (a second JobManager to take
        // over, and the `ha` node).
        let ha = nodes.iter().any(|n| n == "ha");
        for (key, span) in [
            (
                "kill_jobmanager",
                r.kill_jobmanager.as_ref().map(|x| x.span()),
            ),
            (
                "pause_jobmanager",
                r.pause_jobmanager.as_ref().map(|x| x.span()),
            ),
            ("kill_ha", r.kill_ha.as_ref().map(|x| x.span())),
        ] {
            if let (Some(span), false) = (span, ha) {
                return Err(self.err(
                    span,
                    format!("`nemesis.{key}` needs high availability: set \"high-availability.type\" = \"ZOOKEEPER\" in [flink] (and `cluster.jobmanagers` > 1)"),
                ));
            }
        }
        let kill_jobmanager = outage(&r.kill_jobmanager, "kill_jobmanager", cluster.jobmanagers)?;
        let pause_jobmanager = episode(&r.pause_jobmanager, "pause_jobmanager")?;
        let kill_ha = outage(&r.kill_ha, "kill_ha", 1)?;
        let any = kill_taskmanager.is_some()
            || partition.is_some()
            || pause.is_some()
            || kill_sink.is_some()
            || kill_checkpoint_storage.is_some()
            || clog.is_some()
            || clock_jump.is_some()
            || fail_task.is_some()
            || kill_jobmanager.is_some()
            || pause_jobmanager.is_some()
            || kill_ha.is_some();
        let quiet_after = match &r.quiet_after {
            Some(q) => {
                let d = self.duration(q, "`nemesis.quiet_after`")?;
                if d >= duration {
                    return Err(self.err(
                        q.span(),
                        format!(
                            "`nemesis.quiet_after` = {d:?} must be before the scenario's duration ({duration:?}), so that recovery is judged after it"
                        ),
                    ));
                }
                d
            }
            None if any => {
                return Err(self.err(
                    n.span(),
                    "[nemesis] needs `quiet_after`, the time after which no new fault starts (e.g. quiet_after = \"80s\")",
                ))
            }
            None => Duration::ZERO,
        };
        if !any {
            return Ok(None);
        }
        Ok(Some(Nemesis {
            kill_taskmanager,
            partition,
            pause,
            kill_sink,
            kill_checkpoint_storage,
            clog,
            clock_jump,
            fail_task,
            kill_jobmanager,
            pause_jobmanager,
            kill_ha,
            swarm: r.swarm.as_ref().is_some_and(|s| *s.get_ref()),
            quiet_after,
        }))
    }

    /// A count or a range of counts: `2` or `"1..3"`, within 1..=`max`.
    fn count_range(
        &self,
        v: &Spanned<toml::Value>,
        what: &str,
        max: u32,
    ) -> Result<(u32, u32), ScenarioError> {
        let bad = || {
            self.err(
                v.span(),
                format!(
                    "{what}: expected a count like 2 or a range like \"1..3\" within 1..={max}"
                ),
            )
        };
        let (lo, hi) = match v.get_ref() {
            toml::Value::Integer(n) => (*n, *n),
            toml::Value::String(t) => {
                let (a, b) = t.split_once("..").unwrap_or((t, t));
                (
                    a.trim().parse::<i64>().map_err(|_| bad())?,
                    b.trim().parse::<i64>().map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        };
        if lo < 1 || lo > hi || hi > i64::from(max) {
            return Err(bad());
        }
        Ok((lo as u32, hi as u32))
    }

    fn ppm_range(&self, v: &Spanned<toml::Value>) -> Result<(i64, i64), ScenarioError> {
        let bad = || {
            self.err(
                v.span(),
                format!(
                    "`clocks.drift_ppm`: expected an integer or a range like \"0..100\" within ±{}",
                    sim::clock::DRIFT_PPM_MAX
                ),
            )
        };
        let (lo, hi) = match v.get_ref() {
            toml::Value::Integer(i) => (*i, *i),
            toml::Value::String(s) => {
                let (a, b) = s.split_once("..").unwrap_or((s, s));
                (
                    a.trim().parse::<i64>().map_err(|_| bad())?,
                    b.trim().parse::<i64>().map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        };
        let max = sim::clock::DRIFT_PPM_MAX;
        if lo > hi || lo < -max || hi > max {
            return Err(bad());
        }
        Ok((lo, hi))
    }

    fn fault(
        &self,
        f: &Spanned<raw::Fault>,
        nodes: &[String],
        duration: Duration,
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<FaultSpec, ScenarioError> {
        let span = f.span();
        let r = f.get_ref();
        let at = self.duration(&r.at, "`at`")?;
        if at > duration {
            return Err(self.err(
                r.at.span(),
                format!(
                    "`at` = {:?} is after the scenario's duration ({:?})",
                    at, duration
                ),
            ));
        }
        let actions = [
            r.fail_task.is_some(),
            r.kill.is_some(),
            r.start.is_some(),
            r.pause.is_some(),
            r.resume.is_some(),
            r.partition.is_some(),
            r.heal.is_some(),
            r.clog.is_some(),
            r.clock_jump.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            return Err(self.err(
                span,
                format!(
                                        "a [[faults]] entry needs exactly one action (kill, start, pause, resume, partition, heal, clog, clock_jump or fail_task); this one has {actions}"
                ),
            ));
        }
        let opt =
            |d: &Option<Spanned<String>>, what: &str| -> Result<Option<Duration>, ScenarioError> {
                d.as_ref().map(|d| self.duration(d, what)).transpose()
            };
        // Keys that belong to another action are mistakes, not silently ignored.
        let stray = |present: bool, key: &str, action: &str| -> Result<(), ScenarioError> {
            if present {
                Err(self.err(
                    span.clone(),
                    format!("`{key}` belongs to `{action}`, not to this fault"),
                ))
            } else {
                Ok(())
            }
        };
        let action = if let Some(n) = &r.kill {
            FaultAction::Kill(self.node(n, nodes)?)
        } else if let Some(n) = &r.start {
            FaultAction::Start(self.node(n, nodes)?)
        } else if let Some(n) = &r.pause {
            FaultAction::Pause {
                node: self.node(n, nodes)?,
                resume_after: opt(&r.resume_after, "`resume_after`")?,
            }
        } else if let Some(n) = &r.resume {
            FaultAction::Resume(self.node(n, nodes)?)
        } else if let Some(g) = &r.partition {
            FaultAction::Partition {
                groups: self.groups(g, nodes, "`partition`")?,
                one_way: r.one_way.unwrap_or(false),
                heal_after: opt(&r.heal_after, "`heal_after`")?,
            }
        } else if r.heal.is_some() {
            FaultAction::Heal
        } else if let Some(g) = &r.clog {
            let extra = match &r.extra {
                Some(e) => self.duration(e, "`extra`")?,
                None => {
                    return Err(self.err(
                        span,
                        "`clog` needs `extra`, the added latency (e.g. \"200ms\")",
                    ))
                }
            };
            FaultAction::Clog {
                groups: self.groups(g, nodes, "`clog`")?,
                one_way: r.one_way.unwrap_or(false),
                extra,
                clear_after: opt(&r.clear_after, "`clear_after`")?,
            }
        } else if let Some(t) = &r.fail_task {
            self.fail_task(t, graph)?
        } else if let Some(n) = &r.clock_jump {
            let by = match &r.by {
                Some(b) => self.signed_duration(b, "`by`")?,
                None => {
                    return Err(self.err(span, "`clock_jump` needs `by`, e.g. \"-5s\" or \"30s\""))
                }
            };
            FaultAction::ClockJump {
                node: self.node(n, nodes)?,
                by_ns: by,
            }
        } else {
            unreachable!("exactly one action")
        };
        let is = |k: &str| match &action {
            FaultAction::Pause { .. } => k == "pause",
            FaultAction::Partition { .. } => k == "partition",
            FaultAction::Clog { .. } => k == "clog",
            FaultAction::ClockJump { .. } => k == "clock_jump",
            _ => false,
        };
        stray(
            r.resume_after.is_some() && !is("pause"),
            "resume_after",
            "pause",
        )?;
        stray(
            r.heal_after.is_some() && !is("partition"),
            "heal_after",
            "partition",
        )?;
        stray(
            r.one_way.is_some() && !is("partition") && !is("clog"),
            "one_way",
            "partition",
        )?;
        stray(r.extra.is_some() && !is("clog"), "extra", "clog")?;
        stray(
            r.clear_after.is_some() && !is("clog"),
            "clear_after",
            "clog",
        )?;
        stray(r.by.is_some() && !is("clock_jump"), "by", "clock_jump")?;
        Ok(FaultSpec {
            at,
            action,
            line: self.line_of(&span),
        })
    }

    fn expect(
        &self,
        e: &raw::Expect,
        flink: &FlinkConfig,
        has_job: bool,
    ) -> Result<Expect, ScenarioError> {
        if let Some((key, _)) = e.other.iter().next() {
            return Err(ScenarioError {
                path: self.path.to_path_buf(),
                line: self.find_key_line(key),
                message: format!(
                                        "unknown key `{key}` in [expect]; expected one of `invariants`, `violation`, `taskmanagers_lost`, `job_status`, `min_completed_checkpoints`"
                ),
            });
        }
        let job_status = match &e.job_status {
            None => None,
            Some(j) => Some(
                model::protocol::states::JobStatus::from_name(j.get_ref()).ok_or_else(|| {
                    self.err(
                        j.span(),
                        format!(
                            "`expect.job_status`: expected one of {}, got `{}`",
                            model::protocol::states::JobStatus::ALL
                                .map(|s| s.name())
                                .join(", "),
                            j.get_ref()
                        ),
                    )
                })?,
            ),
        };
        let min_completed_checkpoints = match &e.min_completed_checkpoints {
            None => None,
            Some(m) => {
                let n = self.count(
                    m,
                    "`expect.min_completed_checkpoints`",
                    0..1_000_000_000_001,
                )? as u64;
                if flink.checkpointing.is_none() {
                    return Err(self.err(
                        m.span(),
                        "`expect.min_completed_checkpoints` needs checkpointing: set \"execution.checkpointing.interval\" in [flink]",
                    ));
                }
                if !has_job {
                    return Err(self.err(
                        m.span(),
                        "`expect.min_completed_checkpoints` needs a [job] to checkpoint",
                    ));
                }
                Some(n)
            }
        };
        let known = |name: &str, span: Range<usize>| -> Result<String, ScenarioError> {
            if model::checking::oracle::invariant(name).is_some() {
                Ok(name.to_string())
            } else {
                Err(self.err(
                    span,
                    format!(
                        "unknown invariant `{name}`; known: {}",
                        model::checking::oracle::INVARIANTS
                            .iter()
                            .map(|i| i.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        let invariants =
            match &e.invariants {
                None => None,
                Some(v) => match v.get_ref() {
                    toml::Value::String(s) if s == "all" => None,
                    toml::Value::Array(items) => {
                        let mut names = Vec::new();
                        for item in items {
                            match item.as_str() {
                                Some(s) => names.push(known(s, v.span())?),
                                None => return Err(self.err(
                                    v.span(),
                                    "`invariants`: expected \"all\" or a list of invariant names",
                                )),
                            }
                        }
                        Some(names)
                    }
                    _ => {
                        return Err(self.err(
                            v.span(),
                            "`invariants`: expected \"all\" or a list of invariant names",
                        ))
                    }
                },
            };
        let violation = e
            .violation
            .as_ref()
            .map(|v| known(v.get_ref(), v.span()))
            .transpose()?;
        let taskmanagers_lost = e
            .taskmanagers_lost
            .as_ref()
            .map(|n| {
                self.count(n, "`taskmanagers_lost`", 0..1_000_000)
                    .map(|n| n as u32)
            })
            .transpose()?;
        Ok(Expect {
            invariants,
            violation,
            taskmanagers_lost,
            job_status,
            min_completed_checkpoints,
        })
    }

    fn job(
        &self,
        j: &Spanned<raw::Job>,
        flink: &FlinkConfig,
    ) -> Result<JobSubmission, ScenarioError> {
        use model::protocol::job_graph::{
            JobSpec, OperatorKind, OperatorSpec, SinkKind, SinkSpec, SourceSpec,
        };
        let j = j.get_ref();
        let name = j.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(j.name.span(), "`job.name` must not be empty"));
        }
        let parallelism = self.count(&j.parallelism, "`job.parallelism`", 1..32769)? as u32;
        let max_parallelism = match &j.max_parallelism {
            Some(m) => Some(self.count(m, "`job.max_parallelism`", 1..32769)? as u32),
            None => flink.max_parallelism,
        };
        let submit_at = match &j.submit_at {
            Some(d) => self.duration(d, "`job.submit_at`")?,
            None => Duration::ZERO,
        };
        let src = j.source.get_ref();
        if src.kind.get_ref() != "sequence" {
            return Err(self.err(
                src.kind.span(),
                format!(
                    "`source.kind`: expected \"sequence\", got `{}`",
                    src.kind.get_ref()
                ),
            ));
        }
        let rate_per_sec = match &src.rate {
            None => None,
            Some(r) => Some(self.rate(r)?),
        };
        let source = SourceSpec {
            partitions: self.count(&src.partitions, "`source.partitions`", 1..100_001)? as u32,
            records: self.count(&src.records, "`source.records`", 0..1_000_000_000_001)? as u64,
            rate_per_sec,
        };
        let mut operators = Vec::new();
        for op in &j.operators {
            let o = op.get_ref();
            let kind = match o.kind.get_ref().as_str() {
                "key_by" => OperatorKind::KeyBy {
                    keys: match &o.keys {
                        Some(k) => self.count(k, "`keys`", 1..1_000_000_001)? as u32,
                        None => return Err(self.err(op.span(), "`key_by` needs `keys`, the number of distinct keys")),
                    },
                },
                "rebalance" => OperatorKind::Rebalance,
                "forward" => OperatorKind::Forward,
                "map" => OperatorKind::Map,
                "count" => OperatorKind::Count,
                other => {
                    return Err(self.err(
                        o.kind.span(),
                        format!("operator `kind`: expected key_by, rebalance, forward, map or count, got `{other}`"),
                    ))
                }
            };
            if o.keys.is_some() && !matches!(kind, OperatorKind::KeyBy { .. }) {
                return Err(self.err(op.span(), "`keys` belongs to `key_by`"));
            }
            let parallelism = match &o.parallelism {
                Some(p) => Some(self.count(p, "operator `parallelism`", 1..32769)? as u32),
                None => None,
            };
            operators.push(OperatorSpec {
                kind,
                name: o.name.as_ref().map(|n| n.get_ref().clone()),
                parallelism,
            });
        }
        let sink = match &j.sink {
            None => SinkSpec {
                kind: SinkKind::Discard,
                parallelism: None,
            },
            Some(s) => {
                let s_ref = s.get_ref();
                let kind = match s_ref.kind.get_ref().as_str() {
                    "two_phase_commit" => SinkKind::TwoPhaseCommit,
                    "at_least_once" => SinkKind::AtLeastOnce,
                    "discard" => SinkKind::Discard,
                    other => {
                        return Err(self.err(
                            s_ref.kind.span(),
                            format!("`sink.kind`: expected two_phase_commit, at_least_once or discard, got `{other}`"),
                        ))
                    }
                };
                let parallelism = match &s_ref.parallelism {
                    Some(p) => Some(self.count(p, "`sink.parallelism`", 1..32769)? as u32),
                    None => None,
                };
                SinkSpec { kind, parallelism }
            }
        };
        Ok(JobSubmission {
            spec: JobSpec {
                name,
                parallelism,
                max_parallelism,
                source,
                operators,
                sink,
            },
            submit_at,
        })
    }

    /// "1000/s", "60/min" or a plain number (per second).
    fn rate(&self, r: &Spanned<toml::Value>) -> Result<u64, ScenarioError> {
        let bad = || {
            self.err(
                r.span(),
                "`source.rate`: expected records per partition like \"1000/s\" or \"600/min\"",
            )
        };
        let per_sec = match r.get_ref() {
            toml::Value::Integer(i) if *i > 0 => *i as u64,
            toml::Value::String(s) => {
                let (n, unit) = s.split_once('/').ok_or_else(bad)?;
                let n: u64 = n.trim().parse().map_err(|_| bad())?;
                match unit.trim() {
                    "s" | "sec" | "second" => n,
                    "min" | "minute" => n.div_ceil(60),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        if per_sec == 0 {
            return Err(bad());
        }
        Ok(per_sec)
    }

    /// `fail_task = "count[1]"`: an operator name or kind and a subtask index.
    fn fail_task(
        &self,
        t: &Spanned<String>,
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<FaultAction, ScenarioError> {
        let Some(graph) = graph else {
            return Err(self.err(t.span(), "`fail_task` needs a [job]"));
        };
        let text = t.get_ref().trim();
        let parsed = text
            .strip_suffix(']')
            .and_then(|x| x.split_once('['))
            .and_then(|(op, idx)| idx.trim().parse::<u32>().ok().map(|i| (op.trim(), i)));
        let Some((operator, subtask)) = parsed else {
            return Err(self.err(
                t.span(),
                format!(
                    "`fail_task`: expected \"operator[subtask]\" like \"count[1]\", got `{text}`"
                ),
            ));
        };
        let Some(vertex) = graph.find_vertex(operator) else {
            let names: Vec<String> = graph
                .vertices
                .iter()
                .flat_map(|v| v.operators.iter().map(|o| o.name.clone()))
                .collect();
            return Err(self.err(
                t.span(),
                format!(
                    "`fail_task`: no operator named `{operator}`; the job has {}",
                    names.join(", ")
                ),
            ));
        };
        let p = graph.vertex(vertex).parallelism;
        if subtask >= p {
            return Err(self.err(
                t.span(),
                format!("`fail_task`: subtask {subtask} out of range; `{operator}` has parallelism {p} (subtasks 0..{})", p - 1),
            ));
        }
        Ok(FaultAction::FailTask {
            operator: operator.to_string(),
            vertex,
            subtask,
        })
    }

    fn find_key_line(&self, key: &str) -> Option<(usize, usize)> {
        let mut section = String::new();
        for (i, line) in self.source.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with('[') {
                section = t.to_string();
            } else if section.starts_with("[expect]") && t.starts_with(key) {
                return Some((i + 1, line.len() - t.len() + 1));
            }
        }
        None
    }
}

/// "taskmanager-1..taskmanager-3, source" style listing for error messages: numbered names
/// grouped by prefix, other names as they are.
fn compact_names(nodes: &[String]) -> String {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut singles = Vec::new();
    for n in nodes {
        match n.rsplit_once('-') {
            Some((prefix, num)) if num.parse::<u32>().is_ok() => {
                groups.entry(prefix).or_default().push(num)
            }
            _ => singles.push(n.clone()),
        }
    }
    groups
        .iter()
        .map(|(prefix, nums)| match nums.as_slice() {
            [one] => format!("{prefix}-{one}"),
            [first, .., last] => format!("{prefix}-{first}..{prefix}-{last}"),
            [] => String::new(),
        })
        .chain(singles)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "[job]\nname = \"j\"\nparallelism = 2\nsource = { kind = \"sequence\", partitions = 2, records = 10 }\n";

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("t.toml"), text)
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
