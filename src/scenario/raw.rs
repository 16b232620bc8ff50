//! The raw spec: what the file says, field by field (serde), with source spans. Validation
//! (`crate::scenario`) turns it into a [`crate::scenario::Scenario`].

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
    pub swarm: Option<Spanned<Swarm>>,
    pub expect: Option<Expect>,
}

/// `[swarm]`: the job's shape and the slot count, drawn per seed.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// `[job] parallelism`: a count or a range `"A..B"`.
    pub parallelism: Option<Spanned<toml::Value>>,
    /// `taskmanager.numberOfTaskSlots`: a count or a range.
    pub slots: Option<Spanned<toml::Value>>,
    /// How many copies of `[job] source` the job reads (their union): a count or a range.
    pub sources: Option<Spanned<toml::Value>>,
    /// Alternatives for `[job] operators`, each a list of operator tables.
    #[serde(default)]
    pub operators: Vec<Spanned<Vec<toml::Value>>>,
    /// `[swarm.flink]`: Flink options, each with a list of alternative values.
    #[serde(default)]
    pub flink: std::collections::BTreeMap<String, Spanned<Vec<toml::Value>>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub name: Spanned<String>,
    pub parallelism: Spanned<i64>,
    pub max_parallelism: Option<Spanned<i64>>,
    /// When the client submits the job (default 0).
    pub submit_at: Option<Spanned<String>>,
    /// One source; or `sources`, several whose union the first operator reads.
    pub source: Option<Spanned<Source>>,
    pub sources: Option<Spanned<Vec<Spanned<Source>>>>,
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
    /// A range: answers leave their sender that much later, overtaken by what it sends next.
    pub answer_delay: Option<Spanned<String>>,
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
    /// Aimed message faults: RPC names (a string or a list).
    pub delay: Option<Spanned<toml::Value>>,
    pub drop: Option<Spanned<toml::Value>>,
    pub drop_reply: Option<Spanned<toml::Value>>,
    pub from: Option<Spanned<toml::Value>>,
    pub to: Option<Spanned<toml::Value>>,
    pub count: Option<Spanned<i64>>,
    pub lasting: Option<Spanned<String>>,
    pub slow: Option<Spanned<String>>,
    pub per_event: Option<Spanned<String>>,
    /// `isolate_from = "ha"` with `nodes` (default every JobManager and TaskManager).
    pub isolate_from: Option<Spanned<String>>,
    pub nodes: Option<Spanned<Vec<String>>>,
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
    pub delay_messages: Option<Spanned<MessageFaults>>,
    pub drop_messages: Option<Spanned<MessageFaults>>,
    pub drop_replies: Option<Spanned<MessageFaults>>,
    pub isolate: Option<Spanned<Isolate>>,
    pub slow: Option<Spanned<Slow>>,
    pub kill_leader: Option<Spanned<Outage>>,
    pub pause_leader: Option<Spanned<Episode>>,
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

/// `{ every = "5s..20s", kinds = ["submitTask.response"], count = "1..3", lasting = "1s..5s",
/// by = "1s..15s" }` (`by` for delays only).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct MessageFaults {
    pub every: Spanned<String>,
    pub kinds: Option<Spanned<toml::Value>>,
    pub count: Option<Spanned<toml::Value>>,
    pub lasting: Option<Spanned<String>>,
    pub by: Option<Spanned<String>>,
}

/// `{ every = "20s..60s", lasting = "1s..10s", from = ["ha", "sink"] }`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Isolate {
    pub every: Spanned<String>,
    pub lasting: Spanned<String>,
    pub from: Option<Spanned<toml::Value>>,
}

/// `{ every = "20s..60s", lasting = "2s..10s", per_event = "20ms..500ms" }`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Slow {
    pub every: Spanned<String>,
    pub lasting: Spanned<String>,
    pub per_event: Spanned<String>,
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
