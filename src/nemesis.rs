//! Random faults drawn from the seed: the validated `[nemesis]` of a scenario and how it turns
//! into ordinary scripted faults ([`Nemesis::draw`]).
//!
//! Everything is drawn from one seeded stream, `sim::rng::stream(seed, "nemesis", 0)`, entry
//! kind by entry kind in a fixed order (`ENTRIES`: kill_taskmanager, partition, pause, kill_sink,
//! kill_checkpoint_storage, clog, clock_jump, fail_task, kill_jobmanager, pause_jobmanager,
//! kill_ha, delay_messages, drop_messages, drop_replies, isolate, slow, kill_leader,
//! pause_leader). For each kind, time walks from 0 in gaps drawn from `every`; an
//! occurrence at or after `quiet_after` ends that kind. A killed node is started again after
//! `down` (clamped to the scenario's duration), and a node is never killed or paused while an
//! earlier kill or pause of it is still in effect; an occurrence with no eligible node is
//! skipped.

use crate::scenario::{DurationRange, FaultAction, FaultSpec, MessageFault, Target};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::time::Duration;

/// `{ every, down, nodes }`: nodes killed, started again after `down`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The gap between the starts of two outages.
    pub every: DurationRange,
    /// How long the nodes stay down.
    pub down: DurationRange,
    /// How many nodes go down together (a burst), drawn per outage; (1, 1) by default.
    pub nodes: (u32, u32),
}

/// `{ every, lasting, extra }`: a clog (added latency) between random halves of the nodes, or
/// between one node and the rest, cleared after `lasting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clog {
    pub every: DurationRange,
    pub lasting: DurationRange,
    /// The latency added to each message across the clog.
    pub extra: DurationRange,
}

/// `{ every, by }`: a JobManager's or TaskManager's wall clock jumps by a signed amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockJumps {
    pub every: DurationRange,
    /// The jump in nanoseconds, drawn from this closed range.
    pub by_ns: (i64, i64),
}

/// A vertex of the job whose tasks the nemesis may fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskTarget {
    /// The name a `fail_task` fault uses for it (its head operator).
    pub operator: String,
    pub vertex: model::protocol::job_graph::JobVertexId,
    pub parallelism: u32,
}

/// `{ every }`: a random subtask of a random vertex throws (user-code failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailures {
    pub every: DurationRange,
    pub targets: Vec<TaskTarget>,
}

/// `{ every, lasting }`: a partition or pause that ends after `lasting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// The gap between the starts of two episodes.
    pub every: DurationRange,
    /// How long each lasts.
    pub lasting: DurationRange,
}

/// `{ every, kinds, count, lasting }` (+ `by` for delays): each occurrence aims a message
/// fault at one RPC kind drawn from `kinds`, for the next `count` matching messages and/or
/// within `lasting`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageFaults {
    pub every: DurationRange,
    /// The RPC kinds (`flinksim list rpcs`) one is drawn from per occurrence.
    pub kinds: Vec<String>,
    /// How many matching messages an occurrence acts on (`None`: all within `lasting`).
    pub count: Option<(u32, u32)>,
    /// The window an occurrence acts within (`None`: until `count` messages matched).
    pub lasting: Option<DurationRange>,
    /// Delays only: how long each message is held.
    pub by: Option<DurationRange>,
}

/// `{ every, lasting, from }`: a random subset of the JobManagers and TaskManagers (with high
/// availability, possibly the leader of the moment) cut from one node of `from` only,
/// symmetric or one way, healed after `lasting`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolations {
    pub every: DurationRange,
    pub lasting: DurationRange,
    /// The nodes a subset is cut from (`ha`, `checkpoint-storage`, `sink`, `source`).
    pub from: Vec<String>,
}

/// `{ every, lasting, per_event }`: one JobManager or TaskManager (with high availability,
/// possibly the leader of the moment) handles its events one after another, each taking
/// `per_event`, for `lasting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slowness {
    pub every: DurationRange,
    pub lasting: DurationRange,
    pub per_event: DurationRange,
}

/// A validated `[nemesis]` with at least one entry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Nemesis {
    pub kill_taskmanager: Option<Outage>,
    pub partition: Option<Episode>,
    pub pause: Option<Episode>,
    pub kill_sink: Option<Outage>,
    pub kill_checkpoint_storage: Option<Outage>,
    pub clog: Option<Clog>,
    pub clock_jump: Option<ClockJumps>,
    pub fail_task: Option<TaskFailures>,
    /// With high availability: JobManager processes killed (the leader among them).
    pub kill_jobmanager: Option<Outage>,
    /// With high availability: JobManager processes paused (past the session timeout, a
    /// leader is deposed while it sleeps).
    pub pause_jobmanager: Option<Episode>,
    /// With high availability: the `ha` node killed (ZooKeeper unavailable).
    pub kill_ha: Option<Outage>,
    /// Messages of one RPC kind held for `by` (an answer arriving after its ask timeout).
    pub delay_messages: Option<MessageFaults>,
    /// Messages of one RPC kind lost.
    pub drop_messages: Option<MessageFaults>,
    /// Requests of one RPC kind applied by their receiver, their answers lost.
    pub drop_replies: Option<MessageFaults>,
    /// A subset of the cluster cut from one external node only.
    pub isolate: Option<Isolations>,
    /// A slow process (long handlers), distinct from a pause.
    pub slow: Option<Slowness>,
    /// With high availability: the leader of the moment killed (every JobManager is started
    /// again after `down`).
    pub kill_leader: Option<Outage>,
    /// With high availability: the leader of the moment paused for `lasting`.
    pub pause_leader: Option<Episode>,
    /// Swarm testing: each seed keeps a random subset of the entries (each with probability
    /// 1/2, at least one), drawn from its own stream before the faults.
    pub swarm: bool,
    /// No fault starts at or after this.
    pub quiet_after: Duration,
}

/// The entry names of a `[nemesis]`, in draw order.
pub const ENTRIES: [&str; 18] = [
    "kill_taskmanager",
    "partition",
    "pause",
    "kill_sink",
    "kill_checkpoint_storage",
    "clog",
    "clock_jump",
    "fail_task",
    "kill_jobmanager",
    "pause_jobmanager",
    "kill_ha",
    "delay_messages",
    "drop_messages",
    "drop_replies",
    "isolate",
    "slow",
    "kill_leader",
    "pause_leader",
];

/// The `count` of a message entry without `count` and without `lasting`.
pub const MESSAGE_COUNT_DEFAULT: (u32, u32) = (1, 3);

/// The kinds a message entry draws from without `kinds`, qualified by gateway
/// (`jobmaster.submitTask.response`): every RPC kind, or with `requests` every request that is
/// answered (a `.response` exists for it, or it goes to the `ha` node). The `ha` node's
/// messages only with `ha`.
pub fn default_kinds(requests: bool, ha: bool) -> Vec<String> {
    use model::protocol::rpc::RPC_KINDS;
    RPC_KINDS
        .iter()
        .filter(|k| ha || !k.gateway.starts_with("ha"))
        .filter(|k| {
            !requests
                || (!k.reply
                    && (RPC_KINDS
                        .iter()
                        .any(|r| r.reply && r.name == format!("{}.response", k.name))
                        || k.gateway == "ha"))
        })
        .map(|k| format!("{}.{}", k.gateway, k.name))
        .collect()
}

/// A drawn fault: when, and what.
pub type Drawn = (Duration, FaultAction);

impl Nemesis {
    /// One line listing the entries, e.g.
    /// `kill_taskmanager every 10s..40s down 2s..20s; quiet after 80s`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let outage = |name: &str, o: &Outage| {
            let mut d = format!("{name} every {} down {}", o.every, o.down);
            if o.nodes != (1, 1) {
                d += &format!(" nodes {}..{}", o.nodes.0, o.nodes.1);
            }
            d
        };
        let episode =
            |name: &str, e: &Episode| format!("{name} every {} lasting {}", e.every, e.lasting);
        if let Some(o) = &self.kill_taskmanager {
            parts.push(outage("kill_taskmanager", o));
        }
        if let Some(e) = &self.partition {
            parts.push(episode("partition", e));
        }
        if let Some(e) = &self.pause {
            parts.push(episode("pause", e));
        }
        if let Some(o) = &self.kill_sink {
            parts.push(outage("kill_sink", o));
        }
        if let Some(o) = &self.kill_checkpoint_storage {
            parts.push(outage("kill_checkpoint_storage", o));
        }
        if let Some(c) = &self.clog {
            parts.push(format!(
                "clog every {} lasting {} extra {}",
                c.every, c.lasting, c.extra
            ));
        }
        if let Some(j) = &self.clock_jump {
            parts.push(format!(
                "clock_jump every {} by {}..{}",
                j.every,
                signed_text(j.by_ns.0),
                signed_text(j.by_ns.1)
            ));
        }
        if let Some(f) = &self.fail_task {
            parts.push(format!("fail_task every {}", f.every));
        }
        if let Some(o) = &self.kill_jobmanager {
            parts.push(outage("kill_jobmanager", o));
        }
        if let Some(e) = &self.pause_jobmanager {
            parts.push(episode("pause_jobmanager", e));
        }
        if let Some(o) = &self.kill_ha {
            parts.push(outage("kill_ha", o));
        }
        let messages = |name: &str, m: &MessageFaults| {
            let mut d = format!("{name} every {}", m.every);
            if let Some(by) = &m.by {
                d += &format!(" by {by}");
            }
            if let Some((lo, hi)) = m.count {
                d += &format!(" count {lo}..{hi}");
            }
            if let Some(l) = &m.lasting {
                d += &format!(" lasting {l}");
            }
            d + &format!(" of {} kinds", m.kinds.len())
        };
        if let Some(m) = &self.delay_messages {
            parts.push(messages("delay_messages", m));
        }
        if let Some(m) = &self.drop_messages {
            parts.push(messages("drop_messages", m));
        }
        if let Some(m) = &self.drop_replies {
            parts.push(messages("drop_replies", m));
        }
        if let Some(i) = &self.isolate {
            parts.push(format!(
                "isolate every {} lasting {} from {}",
                i.every,
                i.lasting,
                i.from.join(",")
            ));
        }
        if let Some(w) = &self.slow {
            parts.push(format!(
                "slow every {} lasting {} per_event {}",
                w.every, w.lasting, w.per_event
            ));
        }
        if let Some(o) = &self.kill_leader {
            parts.push(outage("kill_leader", o));
        }
        if let Some(e) = &self.pause_leader {
            parts.push(episode("pause_leader", e));
        }
        if self.swarm {
            parts.push(
                "swarm (per seed: a random subset of these, each at its own rate)".to_string(),
            );
        }
        parts.push(format!("quiet after {:?}", self.quiet_after));
        parts.join("; ")
    }

    /// The entries this nemesis has, in draw order.
    pub fn entries(&self) -> Vec<&'static str> {
        let present = [
            self.kill_taskmanager.is_some(),
            self.partition.is_some(),
            self.pause.is_some(),
            self.kill_sink.is_some(),
            self.kill_checkpoint_storage.is_some(),
            self.clog.is_some(),
            self.clock_jump.is_some(),
            self.fail_task.is_some(),
            self.kill_jobmanager.is_some(),
            self.pause_jobmanager.is_some(),
            self.kill_ha.is_some(),
            self.delay_messages.is_some(),
            self.drop_messages.is_some(),
            self.drop_replies.is_some(),
            self.isolate.is_some(),
            self.slow.is_some(),
            self.kill_leader.is_some(),
            self.pause_leader.is_some(),
        ];
        ENTRIES
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .map(|(e, _)| *e)
            .collect()
    }

    /// With `swarm`, what this seed draws from the stream `swarm`: the entries it keeps (each
    /// with probability 1/2, at least one) and, per kept entry, its own fault rate — a mean gap
    /// drawn from `every`, around which the gaps then vary by ±25 %. Returns the nemesis to draw
    /// faults from and the drawn knobs (name, value). Without `swarm`, this nemesis unchanged.
    pub fn swarm_pick(&self, seed: u64) -> (Nemesis, Vec<(String, String)>) {
        if !self.swarm {
            return (self.clone(), Vec::new());
        }
        let mut rng = sim::rng::stream(seed, "swarm", 0);
        let entries = self.entries();
        let mut keep: Vec<bool> = entries.iter().map(|_| rng.random_bool(0.5)).collect();
        if !keep.iter().any(|k| *k) && !keep.is_empty() {
            let i = rng.random_range(0..keep.len());
            keep[i] = true;
        }
        let kept = |name: &str| entries.iter().zip(&keep).any(|(e, k)| *e == name && *k);
        let mut knobs = vec![(
            "nemesis".to_string(),
            entries
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(e, _)| *e)
                .collect::<Vec<_>>()
                .join(", "),
        )];
        // This seed's rate of an entry: gaps within ±25 % of one mean drawn from `every`.
        let mut rate = |name: &str, every: DurationRange| {
            let mean = uniform(&mut rng, every);
            knobs.push((format!("nemesis.{name}.every"), duration_text(mean)));
            let ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
            DurationRange {
                lo: ms(mean * 3 / 4).max(Duration::from_millis(1)),
                hi: ms(mean * 5 / 4).max(Duration::from_millis(1)),
            }
        };
        let mut pick = Nemesis {
            swarm: false,
            quiet_after: self.quiet_after,
            ..Nemesis::default()
        };
        // In `ENTRIES` order: the draws of the rates follow it.
        macro_rules! keep_at_own_rate {
            ($($entry:ident),*) => {$(
                if let Some(mut e) = self.$entry.clone().filter(|_| kept(stringify!($entry))) {
                    e.every = rate(stringify!($entry), e.every);
                    pick.$entry = Some(e);
                }
            )*};
        }
        keep_at_own_rate!(
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
            delay_messages,
            drop_messages,
            drop_replies,
            isolate,
            slow,
            kill_leader,
            pause_leader
        );
        (pick, knobs)
    }

    /// The faults of this nemesis for `seed`, in draw order (not sorted).
    ///
    /// `taskmanagers` are the TaskManagers running from the start (kill and pause targets),
    /// `nodes` every node a partition may split, `duration` the scenario's end, `scripted`
    /// the scenario's own faults (a node they kill or pause is not drawn while it is down).
    pub fn draw(
        &self,
        seed: u64,
        taskmanagers: &[String],
        nodes: &[String],
        duration: Duration,
        scripted: &[FaultSpec],
    ) -> Vec<Drawn> {
        let mut d = Drawing {
            rng: sim::rng::stream(seed, "nemesis", 0),
            out: Vec::new(),
            busy: scripted_busy(scripted, duration),
            quiet_after: self.quiet_after,
            duration,
        };
        // The order of the entries is the order of the draws: it fixes what each seed means.
        if let Some(o) = &self.kill_taskmanager {
            d.outages(o, taskmanagers);
        }
        if let Some(e) = &self.partition {
            d.partitions(e, nodes);
        }
        if let Some(e) = &self.pause {
            d.pauses(e, taskmanagers);
        }
        if let Some(o) = &self.kill_sink {
            d.outages(o, &["sink".to_string()]);
        }
        if let Some(o) = &self.kill_checkpoint_storage {
            d.outages(o, &["checkpoint-storage".to_string()]);
        }
        if let Some(c) = &self.clog {
            d.clogs(c, nodes);
        }
        if let Some(j) = &self.clock_jump {
            d.clock_jumps(j, nodes);
        }
        if let Some(f) = &self.fail_task {
            d.task_failures(f);
        }
        let jobmanagers: Vec<String> = nodes
            .iter()
            .filter(|n| n.starts_with("jobmanager-"))
            .cloned()
            .collect();
        if let Some(o) = &self.kill_jobmanager {
            d.outages(o, &jobmanagers);
        }
        if let Some(e) = &self.pause_jobmanager {
            d.pauses(e, &jobmanagers);
        }
        if let Some(o) = &self.kill_ha {
            d.outages(o, &["ha".to_string()]);
        }
        if let Some(m) = &self.delay_messages {
            let by = m.by.unwrap_or(DurationRange {
                lo: Duration::from_millis(1),
                hi: Duration::from_millis(1),
            });
            d.message_faults(m, |rng| MessageFault::Delay(uniform(rng, by)));
        }
        if let Some(m) = &self.drop_messages {
            d.message_faults(m, |_| MessageFault::Drop);
        }
        if let Some(m) = &self.drop_replies {
            d.message_faults(m, |_| MessageFault::DropReply);
        }
        let ha = nodes.iter().any(|n| n == "ha");
        // The processes an isolation or slowness may hit; with HA also the leader of the moment.
        let mut cluster: Vec<String> = nodes
            .iter()
            .filter(|n| n.starts_with("jobmanager-") || n.starts_with("taskmanager-"))
            .cloned()
            .collect();
        if let Some(i) = &self.isolate {
            d.isolations(i, &cluster, ha);
        }
        if ha {
            cluster.push(Target::LEADER.to_string());
        }
        if let Some(w) = &self.slow {
            d.slowness(w, &cluster);
        }
        if let Some(o) = &self.kill_leader {
            d.leader_outages(o, &jobmanagers);
        }
        if let Some(e) = &self.pause_leader {
            d.leader_pauses(e, &jobmanagers);
        }
        d.out
    }
}

/// Per node, the closed intervals during which it is down or paused.
type Busy = BTreeMap<String, Vec<(Duration, Duration)>>;

/// The intervals the scripted faults keep nodes down or paused: a kill until the node's next
/// scripted start, a pause until its resume, either at the latest until the end of the run.
fn scripted_busy(scripted: &[FaultSpec], duration: Duration) -> Busy {
    let mut busy = Busy::new();
    for (i, f) in scripted.iter().enumerate() {
        // Until the scripted start (resume) of the node, or the end of the run.
        let until = |back_up: &dyn Fn(&FaultAction) -> bool| {
            scripted[i + 1..]
                .iter()
                .find(|g| g.at >= f.at && back_up(&g.action))
                .map_or(duration, |g| g.at)
        };
        match &f.action {
            FaultAction::Kill(n) => {
                let end = until(&|a| matches!(a, FaultAction::Start(m) if m == n));
                busy.entry(n.clone()).or_default().push((f.at, end));
            }
            FaultAction::Pause { node, resume_after } => {
                let end = match resume_after {
                    Some(d) => f.at + *d,
                    None => until(&|a| matches!(a, FaultAction::Resume(m) if m == node)),
                };
                busy.entry(node.clone()).or_default().push((f.at, end));
            }
            _ => {}
        }
    }
    busy
}

/// Whether `node` is neither down nor paused anywhere in `from..=to`.
fn free(busy: &Busy, node: &str, from: Duration, to: Duration) -> bool {
    busy.get(node)
        .is_none_or(|v| v.iter().all(|&(s, e)| to < s || from > e))
}

/// One seed's drawing of a nemesis schedule: the random stream, the faults drawn so far and
/// the intervals nodes are already busy (so two outages never overlap on one node).
struct Drawing {
    rng: sim::rng::Rng,
    out: Vec<Drawn>,
    busy: Busy,
    quiet_after: Duration,
    duration: Duration,
}

impl Drawing {
    /// Advances `t` by a gap drawn from `every`; false once it reaches the quiet phase.
    fn next(&mut self, t: &mut Duration, every: DurationRange) -> bool {
        *t += uniform(&mut self.rng, every);
        *t < self.quiet_after
    }

    /// Outages of `o` (kill, then start again) on free nodes among `targets`.
    fn outages(&mut self, o: &Outage, targets: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, o.every) {
            let up_at = (t + uniform(&mut self.rng, o.down)).min(self.duration);
            let candidates: Vec<&String> = targets
                .iter()
                .filter(|n| free(&self.busy, n, t, up_at))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let chosen: Vec<String> = if o.nodes == (1, 1) {
                vec![candidates[self.rng.random_range(0..candidates.len())].clone()]
            } else {
                let k = self.rng.random_range(o.nodes.0..=o.nodes.1) as usize;
                let mut c: Vec<String> = candidates
                    .choose_multiple(&mut self.rng, k.min(candidates.len()))
                    .map(|n| (*n).clone())
                    .collect();
                c.sort();
                c
            };
            for node in &chosen {
                self.busy.entry(node.clone()).or_default().push((t, up_at));
                self.out.push((t, FaultAction::Kill(node.clone())));
            }
            for node in chosen {
                self.out.push((up_at, FaultAction::Start(node)));
            }
        }
    }

    /// Partitions of the `nodes`: halves, an isolated node, or either one way.
    fn partitions(&mut self, e: &Episode, nodes: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, e.every) {
            let lasting = uniform(&mut self.rng, e.lasting);
            if nodes.len() < 2 {
                continue;
            }
            let shape = self.rng.random_range(0..3u32);
            let (halves, one_way) = match shape {
                0 => (true, false),
                1 => (false, false),
                _ => (self.rng.random_bool(0.5), true),
            };
            let groups = split(&mut self.rng, nodes, halves);
            self.out.push((
                t,
                FaultAction::Partition {
                    groups,
                    one_way,
                    heal_after: Some(lasting),
                },
            ));
        }
    }

    /// Pauses of one free node among `targets` at a time.
    fn pauses(&mut self, e: &Episode, targets: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, e.every) {
            let lasting = uniform(&mut self.rng, e.lasting);
            let candidates: Vec<&String> = targets
                .iter()
                .filter(|n| free(&self.busy, n, t, t + lasting))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let node = candidates[self.rng.random_range(0..candidates.len())].clone();
            self.busy
                .entry(node.clone())
                .or_default()
                .push((t, t + lasting));
            self.out.push((
                t,
                FaultAction::Pause {
                    node,
                    resume_after: Some(lasting),
                },
            ));
        }
    }

    /// Clogged links between two groups of the `nodes`.
    fn clogs(&mut self, c: &Clog, nodes: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, c.every) {
            let lasting = uniform(&mut self.rng, c.lasting);
            let extra = uniform(&mut self.rng, c.extra);
            if nodes.len() < 2 {
                continue;
            }
            let halves = self.rng.random_bool(0.5);
            self.out.push((
                t,
                FaultAction::Clog {
                    groups: split(&mut self.rng, nodes, halves),
                    one_way: false,
                    extra,
                    clear_after: Some(lasting),
                },
            ));
        }
    }

    /// Clock jumps of one JobManager or TaskManager at a time.
    fn clock_jumps(&mut self, j: &ClockJumps, nodes: &[String]) {
        let cluster: Vec<&String> = nodes
            .iter()
            .filter(|n| n.starts_with("jobmanager-") || n.starts_with("taskmanager-"))
            .collect();
        let mut t = Duration::ZERO;
        while self.next(&mut t, j.every) {
            let by_ns = self.rng.random_range(j.by_ns.0..=j.by_ns.1);
            // Whole milliseconds, so the resolved file reads naturally.
            let by_ns = by_ns / 1_000_000 * 1_000_000;
            if cluster.is_empty() {
                continue;
            }
            let node = cluster[self.rng.random_range(0..cluster.len())].clone();
            self.out.push((t, FaultAction::ClockJump { node, by_ns }));
        }
    }

    /// Failures of one subtask of one of the target operators at a time.
    fn task_failures(&mut self, f: &TaskFailures) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, f.every) {
            if f.targets.is_empty() {
                continue;
            }
            let target = &f.targets[self.rng.random_range(0..f.targets.len())];
            let subtask = self.rng.random_range(0..target.parallelism.max(1));
            self.out.push((
                t,
                FaultAction::FailTask {
                    operator: target.operator.clone(),
                    vertex: target.vertex,
                    subtask,
                },
            ));
        }
    }
}

impl Drawing {
    /// Message faults of `m`, each on one kind drawn from `m.kinds`; `fault` draws the action
    /// (a delay's hold time) after the kind, count and window.
    fn message_faults(
        &mut self,
        m: &MessageFaults,
        fault: impl Fn(&mut sim::rng::Rng) -> MessageFault,
    ) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, m.every) {
            let kind = m.kinds[self.rng.random_range(0..m.kinds.len())].clone();
            // "*": every message.
            let kinds = if kind == "*" { Vec::new() } else { vec![kind] };
            let count = m.count.map(|(lo, hi)| self.rng.random_range(lo..=hi));
            let lasting = m.lasting.map(|l| uniform(&mut self.rng, l));
            let fault = fault(&mut self.rng);
            self.out.push((
                t,
                FaultAction::Messages {
                    fault,
                    kinds,
                    from: Vec::new(),
                    to: Vec::new(),
                    count,
                    lasting,
                },
            ));
        }
    }

    /// Isolations of a random non-empty subset of `cluster` from one node of `i.from`; with
    /// `ha`, the subset names the leader of the moment instead of any JobManager half the
    /// time. A third are one way, in a random direction.
    fn isolations(&mut self, i: &Isolations, cluster: &[String], ha: bool) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, i.every) {
            let lasting = uniform(&mut self.rng, i.lasting);
            let from = i.from[self.rng.random_range(0..i.from.len())].clone();
            let leader = ha && self.rng.random_bool(0.5);
            let pool: Vec<&String> = cluster
                .iter()
                .filter(|n| !(leader && n.starts_with("jobmanager-")))
                .collect();
            let mut members: Vec<String> = pool
                .iter()
                .filter(|_| self.rng.random_bool(0.5))
                .map(|n| (*n).clone())
                .collect();
            if leader {
                members.insert(0, Target::LEADER.to_string());
            } else if members.is_empty() && !pool.is_empty() {
                members.push(pool[self.rng.random_range(0..pool.len())].clone());
            }
            let one_way = self.rng.random_range(0..3u32) == 0;
            let outward = self.rng.random_bool(0.5);
            if members.is_empty() {
                continue;
            }
            let groups = if one_way && !outward {
                vec![vec![from], members]
            } else {
                vec![members, vec![from]]
            };
            self.out.push((
                t,
                FaultAction::Partition {
                    groups,
                    one_way,
                    heal_after: Some(lasting),
                },
            ));
        }
    }

    /// Slowness of one of `targets` at a time.
    fn slowness(&mut self, w: &Slowness, targets: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, w.every) {
            let lasting = uniform(&mut self.rng, w.lasting);
            let per_event = uniform(&mut self.rng, w.per_event);
            if targets.is_empty() {
                continue;
            }
            let node = targets[self.rng.random_range(0..targets.len())].clone();
            self.out.push((
                t,
                FaultAction::Slow {
                    node,
                    per_event,
                    lasting: Some(lasting),
                },
            ));
        }
    }

    /// Kills of the leader of the moment, when every JobManager is free for the outage (which
    /// one leads is known only when the fault fires); each JobManager is started again after
    /// `down` (a start of a running one has no effect).
    fn leader_outages(&mut self, o: &Outage, jobmanagers: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, o.every) {
            let up_at = (t + uniform(&mut self.rng, o.down)).min(self.duration);
            if !self.all_free(jobmanagers, t, up_at) {
                continue;
            }
            self.out
                .push((t, FaultAction::Kill(Target::LEADER.to_string())));
            for jm in jobmanagers {
                self.out.push((up_at, FaultAction::Start(jm.clone())));
            }
        }
    }

    /// Pauses of the leader of the moment, when every JobManager is free for the pause.
    fn leader_pauses(&mut self, e: &Episode, jobmanagers: &[String]) {
        let mut t = Duration::ZERO;
        while self.next(&mut t, e.every) {
            let lasting = uniform(&mut self.rng, e.lasting);
            if !self.all_free(jobmanagers, t, t + lasting) {
                continue;
            }
            self.out.push((
                t,
                FaultAction::Pause {
                    node: Target::LEADER.to_string(),
                    resume_after: Some(lasting),
                },
            ));
        }
    }

    /// Whether every one of `nodes` is free in `from..=to`; if so, they are all marked busy
    /// then.
    fn all_free(&mut self, nodes: &[String], from: Duration, to: Duration) -> bool {
        if !nodes.iter().all(|n| free(&self.busy, n, from, to)) {
            return false;
        }
        for n in nodes {
            self.busy.entry(n.clone()).or_default().push((from, to));
        }
        true
    }
}

/// Two groups of `nodes`: random halves, or one random node and the rest.
fn split(rng: &mut sim::rng::Rng, nodes: &[String], halves: bool) -> Vec<Vec<String>> {
    if halves {
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.shuffle(rng);
        let (a, b) = order.split_at(nodes.len() / 2);
        let mut a = a.to_vec();
        let mut b = b.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        vec![
            a.iter().map(|&i| nodes[i].clone()).collect(),
            b.iter().map(|&i| nodes[i].clone()).collect(),
        ]
    } else {
        let i = rng.random_range(0..nodes.len());
        vec![
            vec![nodes[i].clone()],
            nodes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, n)| n.clone())
                .collect(),
        ]
    }
}

/// A signed duration as scenario text ("-5000ms").
fn signed_text(ns: i64) -> String {
    let d = duration_text(Duration::from_nanos(ns.unsigned_abs()));
    if ns < 0 {
        format!("-{d}")
    } else {
        d
    }
}

/// Uniform in the range: whole milliseconds when both ends are, nanoseconds otherwise.
fn uniform(rng: &mut sim::rng::Rng, r: DurationRange) -> Duration {
    let unit = if whole_ms(r.lo) && whole_ms(r.hi) {
        1_000_000
    } else {
        1
    };
    let (lo, hi) = (r.lo.as_nanos() as u64, r.hi.as_nanos() as u64);
    Duration::from_nanos(rng.random_range(lo / unit..=hi / unit) * unit)
}

fn whole_ms(d: Duration) -> bool {
    Duration::from_millis(d.as_millis() as u64) == d
}

/// A duration as scenario text: "12345ms", or "…ns" when not a whole millisecond.
pub fn duration_text(d: Duration) -> String {
    if whole_ms(d) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

fn groups_value(groups: &[Vec<String>]) -> toml::Value {
    toml::Value::Array(
        groups
            .iter()
            .map(|g| toml::Value::Array(g.iter().map(|n| toml::Value::String(n.clone())).collect()))
            .collect(),
    )
}

/// A fault as a `[[faults]]` table, in the syntax users write; it parses back to the same
/// action (`None` is kept for callers that may meet actions without a text form).
pub fn fault_table(at: Duration, action: &FaultAction) -> Option<toml::Table> {
    use toml::Value;
    let mut t = toml::Table::new();
    t.insert("at".into(), Value::String(duration_text(at)));
    match action {
        FaultAction::Kill(n) => {
            t.insert("kill".into(), Value::String(n.clone()));
        }
        FaultAction::Start(n) => {
            t.insert("start".into(), Value::String(n.clone()));
        }
        FaultAction::Pause { node, resume_after } => {
            t.insert("pause".into(), Value::String(node.clone()));
            if let Some(d) = resume_after {
                t.insert("resume_after".into(), Value::String(duration_text(*d)));
            }
        }
        FaultAction::Partition {
            groups,
            one_way,
            heal_after,
        } => {
            t.insert("partition".into(), groups_value(groups));
            if let Some(d) = heal_after {
                t.insert("heal_after".into(), Value::String(duration_text(*d)));
            }
            t.insert("one_way".into(), Value::Boolean(*one_way));
        }
        FaultAction::Resume(n) => {
            t.insert("resume".into(), Value::String(n.clone()));
        }
        FaultAction::Heal => {
            t.insert("heal".into(), Value::Boolean(true));
        }
        FaultAction::Clog {
            groups,
            one_way,
            extra,
            clear_after,
        } => {
            t.insert("clog".into(), groups_value(groups));
            t.insert("extra".into(), Value::String(duration_text(*extra)));
            if let Some(d) = clear_after {
                t.insert("clear_after".into(), Value::String(duration_text(*d)));
            }
            t.insert("one_way".into(), Value::Boolean(*one_way));
        }
        FaultAction::ClockJump { node, by_ns } => {
            t.insert("clock_jump".into(), Value::String(node.clone()));
            let by = if by_ns % 1_000_000 == 0 {
                format!("{}ms", by_ns / 1_000_000)
            } else {
                format!("{by_ns}ns")
            };
            t.insert("by".into(), Value::String(by));
        }
        FaultAction::FailTask {
            operator, subtask, ..
        } => {
            t.insert(
                "fail_task".into(),
                Value::String(format!("{operator}[{subtask}]")),
            );
        }
        FaultAction::Messages {
            fault,
            kinds,
            from,
            to,
            count,
            lasting,
        } => {
            let list = |v: &[String]| match v {
                [one] => Value::String(one.clone()),
                _ => Value::Array(v.iter().map(|x| Value::String(x.clone())).collect()),
            };
            let kinds = if kinds.is_empty() {
                Value::String("*".into())
            } else {
                list(kinds)
            };
            t.insert(fault.key().into(), kinds);
            if let MessageFault::Delay(by) = fault {
                t.insert("by".into(), Value::String(duration_text(*by)));
            }
            if !from.is_empty() {
                t.insert("from".into(), list(from));
            }
            if !to.is_empty() {
                t.insert("to".into(), list(to));
            }
            if let Some(n) = count {
                t.insert("count".into(), Value::Integer(i64::from(*n)));
            }
            if let Some(d) = lasting {
                t.insert("lasting".into(), Value::String(duration_text(*d)));
            }
        }
        FaultAction::Slow {
            node,
            per_event,
            lasting,
        } => {
            t.insert("slow".into(), Value::String(node.clone()));
            t.insert("per_event".into(), Value::String(duration_text(*per_event)));
            if let Some(d) = lasting {
                t.insert("lasting".into(), Value::String(duration_text(*d)));
            }
        }
    }
    Some(t)
}

/// A fault in scenario syntax without its `at`, the action first, e.g.
/// `partition = [["sink"], ["source"]], heal_after = "2s", one_way = false`.
pub fn fault_syntax(action: &FaultAction) -> String {
    const ACTIONS: [&str; 13] = [
        "kill",
        "start",
        "pause",
        "resume",
        "partition",
        "heal",
        "clog",
        "clock_jump",
        "fail_task",
        "delay",
        "drop",
        "drop_reply",
        "slow",
    ];
    match fault_table(Duration::ZERO, action) {
        Some(t) => {
            let mut keys: Vec<&String> = t.keys().filter(|k| k.as_str() != "at").collect();
            keys.sort_by_key(|k| !ACTIONS.contains(&k.as_str()));
            keys.iter()
                .map(|k| format!("{k} = {}", t[k.as_str()]))
                .collect::<Vec<_>>()
                .join(", ")
        }
        None => format!("{action:?}"),
    }
}

/// One line for a fault: its time and action in scenario syntax, e.g.
/// `   12.345s  kill = "taskmanager-2"`.
pub fn describe_fault(at: Duration, action: &FaultAction) -> String {
    format!("{:>10.3}s  {}", at.as_secs_f64(), fault_syntax(action))
}
