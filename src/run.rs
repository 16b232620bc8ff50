//! One run: a validated [`Scenario`] and a seed become a `sim` world of Flink processes, run to
//! the scenario's duration under the oracles, and end as a [`RunResult`] with its [`Summary`].
//!
//! The seed draws every random knob (clock drift and offset per node) from its own stream, so
//! the same scenario and seed give the same run, bit for bit.

use crate::fault_schedule::{self, Deferred, Resolution, Resolver, TargetView};
use crate::scenario::{NodeLayout, Scenario};
use crate::summary::{
    CheckpointFigures, FaultOut, Knobs, Loss, NodeClock, StatusAt, Summary, Verdict, ViolationOut,
};
use model::checking::bugs::{Bug, Bugs};
use model::checking::oracle::{Oracles, Setup, Violation};
use model::checking::reference::ReferenceOutput;
use model::process::{ClusterSetup, Process, Submission, Topology};
use model::protocol::job_graph::JobSpec;
use model::protocol::obs::{Endpoint, Obs};
use model::protocol::Flink;
use rand::Rng as _;
use sim::{
    Census, Clock, Event, EventKind, Fault, Latency, Limits, NetConfig, NodeId, NodeSpec, Observer,
    Time, World,
};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// How to run.
#[derive(Default)]
pub struct RunOptions {
    pub seed: u64,
    pub bug: Option<Bug>,
    /// Write the full trace as JSON lines here.
    pub trace: Option<Box<dyn Write>>,
    /// What to keep of the trace in memory (the determinism check compares two runs' taps).
    pub tap: sim::Tap,
}

/// Everything a run produced.
pub struct RunResult {
    pub summary: Summary,
    pub violations: Vec<Violation>,
    /// What [`RunOptions::tap`] asked to keep.
    pub tap: sim::Tap,
}

/// The event budget of a run (a runaway model stops here rather than running forever).
pub const EVENTS_MAX: u64 = 500_000_000;

/// One-way latency of an RPC between endpoints of the same process.
pub const LOCAL_RPC_LATENCY: Duration = Duration::from_micros(20);

/// Collects the figures of the summary from the trace.
#[derive(Default)]
struct Recorder {
    losses: Vec<Loss>,
    faults: Vec<FaultOut>,
    job_status_history: Vec<StatusAt>,
    job_status: Option<model::protocol::states::JobStatus>,
    /// The JobMaster instance whose status the job's is (the newest).
    job_master_id: Option<u64>,
    restarts: u32,
    checkpointing: CheckpointFigures,
}

fn endpoint_name(census: &Census, e: Endpoint) -> String {
    match e {
        Endpoint::ResourceManager(_) => "resourcemanager".to_string(),
        Endpoint::TaskExecutor(n) => census.name(n).to_string(),
        Endpoint::JobMaster(..) => "jobmaster".to_string(),
    }
}

impl Observer<Flink> for Recorder {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, Flink>) {
        self.checkpointing.observe(ev);
        match &ev.kind {
            EventKind::Obs {
                obs:
                    Obs::TargetLost {
                        observer,
                        target,
                        cause,
                    },
                ..
            } => {
                let taskmanager = match (observer, target) {
                    (_, Endpoint::TaskExecutor(n)) | (Endpoint::TaskExecutor(n), _) => {
                        census.name(*n).to_string()
                    }
                    _ => String::new(),
                };
                self.losses.push(Loss {
                    observer: endpoint_name(census, *observer),
                    taskmanager,
                    target: endpoint_name(census, *target),
                    at_ms: ev.time.as_millis(),
                    cause: cause.name().to_string(),
                });
            }
            EventKind::Fault {
                fault,
                effective: true,
            } if !matches!(fault, Fault::Start(_)) || ev.time > Time::ZERO => {
                self.faults.push(FaultOut {
                    at_ms: ev.time.as_millis(),
                    fault: fault.name().to_string(),
                    node: fault.node().map(|n| census.name(n).to_string()),
                    target: None,
                    resolved: None,
                    skipped: None,
                });
            }
            EventKind::Obs {
                obs:
                    Obs::JobStatusChanged {
                        job_master_id,
                        from,
                        to,
                        ..
                    },
                ..
            } => {
                // The job's status is its newest JobMaster's: with HA a deposed JobMaster may
                // still suspend its copy after the new leader's finished.
                if from.is_none() {
                    self.job_master_id = Some(*job_master_id);
                }
                let current = self.job_master_id.is_none_or(|j| j == *job_master_id);
                let ended = self.job_status.is_some_and(|s| s.is_globally_terminal());
                if current && !ended {
                    self.job_status = Some(*to);
                    self.job_status_history.push(StatusAt {
                        status: to.name().to_string(),
                        at_ms: ev.time.as_millis(),
                    });
                }
            }
            EventKind::Obs {
                obs: Obs::RestartScheduled { .. },
                ..
            } => self.restarts += 1,
            EventKind::Exited { node } => self.faults.push(FaultOut {
                at_ms: ev.time.as_millis(),
                fault: "exit".to_string(),
                node: Some(census.name(*node).to_string()),
                target: None,
                resolved: None,
                skipped: None,
            }),
            _ => {}
        }
    }
}

/// The oracles and the recorder as one observer.
struct Watch {
    oracles: Oracles,
    recorder: Recorder,
    probes: model::checking::probes::Probes,
    /// Kept only when a fault names a role.
    targets: Option<TargetView>,
}

impl Observer<Flink> for Watch {
    fn on_event(&mut self, census: &Census, ev: &Event<'_, Flink>) {
        self.oracles.on_event(census, ev);
        self.recorder.on_event(census, ev);
        self.probes.observe(ev);
        if let Some(t) = self.targets.as_mut() {
            t.observe(ev);
        }
    }
    fn wants_stop(&self) -> bool {
        self.oracles.wants_stop()
    }
}

fn latency(r: crate::scenario::DurationRange) -> Latency {
    if r.lo == r.hi {
        Latency::Fixed(r.lo)
    } else {
        Latency::Uniform(r.lo, r.hi)
    }
}

/// Runs `scenario` with `options`. Never panics on behalf of the model: a panic inside the run
/// is caught by the caller (see [`run_catching`]).
pub fn run(scenario: &Scenario, mut options: RunOptions) -> RunResult {
    let wall = std::time::Instant::now();
    let seed = options.seed;
    // `[nemesis]` faults are drawn from the seed into ordinary scripted faults.
    let resolved = scenario.resolve(seed);
    let scenario = &resolved;
    let layout = scenario.layout();
    let names = layout.names().to_vec();
    let topology = layout.topology();

    // Knobs drawn from the seed, each from its own stream.
    let clocks = draw_clocks(scenario, names.len(), seed);

    let net = net_config(scenario, &layout, &topology);
    let latency_max = net.latency_max();
    let loss = net.loss;

    let nodes = names
        .iter()
        .enumerate()
        .zip(&clocks)
        .map(|((i, name), clock)| NodeSpec {
            name: name.clone(),
            clock: *clock,
            start: !topology.spare_taskmanagers.contains(&NodeId(i as u32)),
        })
        .collect();
    // The CLI's `--bug` overrides the scenario's `bug`.
    let bug = options.bug.or(scenario.bug);
    let bugs = bug.map_or(Bugs::NONE, |b| Bugs::NONE.with(b));
    let setup = ClusterSetup {
        topology: topology.clone(),
        config: scenario.flink.clone(),
        bugs,
        submission: scenario.job.as_ref().map(|j| Submission {
            spec: Arc::new(j.spec.clone()),
            at: j.submit_at,
        }),
    };
    let mut world = World::new(seed, net, nodes, move |node, durable| {
        Process::build(node, &setup, durable)
    });
    if let Some(w) = options.trace.take() {
        world.record_trace(w);
    }
    world.tap_trace(std::mem::take(&mut options.tap));

    let deferred = fault_schedule::schedule(&mut world, &scenario.faults, &layout, &topology);

    let job = scenario.job.as_ref().map(|j| Arc::new(j.spec.clone()));
    let setup = Setup {
        reference: job.as_deref().and_then(cached_reference),
        job,
        config: scenario.flink.clone(),
        topology: topology.clone(),
        latency_max,
        loss,
    };
    let mut watch = Watch {
        oracles: Oracles::new(&setup, scenario.expect.invariants.as_deref()),
        recorder: Recorder::default(),
        probes: model::checking::probes::Probes::new(&topology),
        targets: (!deferred.is_empty()).then(TargetView::default),
    };
    let limits = Limits {
        time_max: Time::ZERO + scenario.duration,
        events_max: EVENTS_MAX,
    };
    let graph = scenario
        .job
        .as_ref()
        .filter(|_| !deferred.is_empty())
        .and_then(|j| model::protocol::job_graph::JobGraph::from_spec(&j.spec).ok());
    let mut aimed = Aimed {
        deferred: deferred.into(),
        rng: sim::rng::stream(seed, "targets", 0),
        resolutions: Vec::new(),
        layout: &layout,
        topology: &topology,
        graph: graph.as_ref(),
    };
    let outcome = aimed.run(&mut world, limits, &mut watch);
    let resolutions = std::mem::take(&mut aimed.resolutions);
    let end = outcome.time;
    if watch.oracles.violations.is_empty() {
        watch.oracles.finish(world.census(), end);
    }
    let _ = world.finish_trace();
    let tap = world.take_tap();

    let mut violations = std::mem::take(&mut watch.oracles.violations);
    // Scenario expectations, judged only when the run is otherwise clean.
    if violations.is_empty() {
        violations = expectation_violations(scenario, &watch.recorder, end);
    }
    if outcome.reason == sim::StopReason::EventBudget
        || outcome.reason == sim::StopReason::QueueOverflow
    {
        violations.push(Violation {
            invariant: "run-limits",
            at: end,
            node: None,
            message: format!(
                "the run hit a kernel limit ({:?}) before its duration",
                outcome.reason
            ),
        });
    }

    let census = world.census();
    let summary = Summary {
        scenario: scenario.name.clone(),
        seed,
        result: Verdict::of(&violations),
        violations: violations
            .iter()
            .map(|v| ViolationOut {
                invariant: v.invariant.to_string(),
                at_ms: v.at.as_millis(),
                node: v.node.map(|n| census.name(n).to_string()),
                message: v.message.clone(),
            })
            .collect(),
        trace_hash: format!("{:016x}", outcome.trace_hash),
        events: outcome.events,
        virtual_ms: end.as_millis(),
        job_status: watch.recorder.job_status.map(|s| s.name().to_string()),
        restarts: watch.recorder.restarts,
        job_status_history: std::mem::take(&mut watch.recorder.job_status_history),
        checkpoints_completed: watch.recorder.checkpointing.checkpoints_completed,
        checkpoints_aborted: watch.recorder.checkpointing.checkpoints_aborted,
        records_committed: watch.recorder.checkpointing.records_committed,
        restores: std::mem::take(&mut watch.recorder.checkpointing.restores),
        wall_ms: wall.elapsed().as_millis() as u64,
        bug: bug.map(|b| b.name().to_string()),
        expected_violation: scenario.expect.violation.clone(),
        stop_reason: format!("{:?}", outcome.reason),
        taskmanagers_lost: std::mem::take(&mut watch.recorder.losses),
        faults: with_resolutions(std::mem::take(&mut watch.recorder.faults), &resolutions),
        probes: watch
            .probes
            .hits()
            .map(|(name, n)| (name.to_string(), n))
            .collect(),
        knobs: Knobs {
            latency: scenario.network.latency.to_string(),
            latency_max_ms: latency_max.as_secs_f64() * 1e3,
            clocks: names
                .iter()
                .zip(&clocks)
                .map(|(n, c)| NodeClock {
                    node: n.clone(),
                    drift_ppm: c.drift_ppm,
                    offset_ms: c.offset_ns as f64 / 1e6,
                })
                .collect(),
            drawn: scenario
                .knobs
                .iter()
                .map(|(name, value)| crate::summary::DrawnKnob {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        },
    };
    RunResult {
        summary,
        violations,
        tap,
    }
}

/// Each node's clock: drift and offset drawn from the seed's `clocks` stream, in node order.
fn draw_clocks(scenario: &Scenario, nodes: usize, seed: u64) -> Vec<Clock> {
    let mut clock_rng = sim::rng::stream(seed, "clocks", 0);
    let (dlo, dhi) = scenario.clocks.drift_ppm;
    let (olo, ohi) = scenario.clocks.offset_ns;
    (0..nodes)
        .map(|_| {
            let drift = clock_rng.random_range(dlo..=dhi);
            let offset = clock_rng.random_range(olo..=ohi);
            Clock::new(drift, offset)
        })
        .collect()
}

/// The network of the scenario: default latency, loss, duplication and reordering, per-link
/// latencies both ways, and local RPCs inside each JobManager process.
fn net_config(scenario: &Scenario, layout: &NodeLayout, topology: &Topology) -> NetConfig {
    let mut net = NetConfig {
        latency: latency(scenario.network.latency),
        loss: scenario.network.loss,
        duplicate: scenario.network.duplicate,
        reorder: scenario.network.reorder,
        answer_delay: scenario.network.answer_delay.map(latency),
        ..NetConfig::default()
    };
    for (a, b, l) in &scenario.network.links {
        net.link_latency
            .insert((layout.id(a), layout.id(b)), latency(*l));
        net.link_latency
            .insert((layout.id(b), layout.id(a)), latency(*l));
    }
    // RPCs between endpoints of one JobManager process (RM, Dispatcher, JobMasters) are local.
    for j in &topology.jobmanagers {
        net.link_latency
            .insert((*j, *j), Latency::Fixed(LOCAL_RPC_LATENCY));
    }
    net
}

/// Runs the world, stopping before each fault that names a role to resolve it.
struct Aimed<'a> {
    deferred: std::collections::VecDeque<Deferred>,
    rng: sim::Rng,
    resolutions: Vec<Resolution>,
    layout: &'a NodeLayout,
    topology: &'a Topology,
    graph: Option<&'a model::protocol::job_graph::JobGraph>,
}

impl Aimed<'_> {
    fn run(
        &mut self,
        world: &mut World<Process>,
        limits: Limits,
        watch: &mut Watch,
    ) -> sim::Outcome {
        loop {
            let next = self.deferred.front().map(|d| d.at);
            let Some(at) = next.filter(|t| *t <= limits.time_max) else {
                return world.run(limits, watch);
            };
            if at > world.now() {
                // Everything before `at` happens first; the fault then queues behind the events
                // already due at `at`.
                let before = Limits {
                    time_max: Time::from_nanos(at.as_nanos() - 1),
                    ..limits
                };
                let o = world.run(before, watch);
                if !matches!(
                    o.reason,
                    sim::StopReason::TimeLimit | sim::StopReason::Quiescent
                ) {
                    return o;
                }
            }
            while self.deferred.front().is_some_and(|d| d.at == at) {
                let d = self.deferred.pop_front().expect("front");
                self.fire(world, &d, watch);
            }
        }
    }

    fn fire(&mut self, world: &mut World<Process>, d: &Deferred, watch: &Watch) {
        let view = watch
            .targets
            .as_ref()
            .expect("kept when a fault names a role");
        let mut resolver = Resolver {
            view,
            census: world.census(),
            layout: self.layout,
            topology: self.topology,
            graph: self.graph,
            rng: &mut self.rng,
        };
        let written = crate::nemesis::fault_syntax(&d.action);
        let kind = fault_schedule::kernel_name(&d.action);
        match resolver.resolve(&d.action) {
            Ok((action, nodes)) => {
                fault_schedule::queue(world, d.at, &action, self.layout, self.topology);
                self.resolutions.push(Resolution {
                    at: d.at,
                    written,
                    nodes,
                    resolved: Some(crate::nemesis::fault_syntax(&action)),
                    kind,
                    skipped: None,
                });
            }
            Err(why) => self.resolutions.push(Resolution {
                at: d.at,
                written,
                nodes: Vec::new(),
                resolved: None,
                kind,
                skipped: Some(why),
            }),
        }
    }
}

/// The summary's faults with each role's resolution: the fault it became names the fault as
/// written; a fault whose role stood for no node is listed as skipped.
fn with_resolutions(mut faults: Vec<FaultOut>, resolutions: &[Resolution]) -> Vec<FaultOut> {
    for r in resolutions {
        let at_ms = r.at.as_millis();
        if let Some(why) = &r.skipped {
            faults.push(FaultOut {
                at_ms,
                fault: r.kind.to_string(),
                node: None,
                target: Some(r.written.clone()),
                resolved: None,
                skipped: Some(why.clone()),
            });
            continue;
        }
        let hit = faults.iter_mut().find(|f| {
            f.at_ms == at_ms
                && f.fault == r.kind
                && f.target.is_none()
                && f.node.as_ref().is_none_or(|n| r.nodes.contains(n))
        });
        if let Some(f) = hit {
            f.target = Some(r.written.clone());
            f.resolved.clone_from(&r.resolved);
        }
    }
    faults.sort_by_key(|f| f.at_ms);
    faults
}

/// What `[expect]` asks of the run that it did not get (judged only when no oracle failed).
fn expectation_violations(scenario: &Scenario, recorder: &Recorder, end: Time) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(expected) = scenario.expect.job_status {
        let got = recorder.job_status;
        if got != Some(expected) {
            violations.push(Violation {
                invariant: "expect",
                at: end,
                node: None,
                message: format!(
                    "expected the job to end {}, it is {}",
                    expected.name(),
                    got.map_or("not submitted", |s| s.name())
                ),
            });
        }
    }
    if let Some(n) = scenario.expect.taskmanagers_lost {
        let seen = recorder
            .losses
            .iter()
            .filter(|l| l.observer == "resourcemanager")
            .count() as u32;
        if seen != n {
            violations.push(Violation {
                invariant: "expect",
                at: end,
                node: None,
                message: format!(
                    "expected the ResourceManager to declare {n} TaskManager loss(es), it declared {seen}"
                ),
            });
        }
    }
    if let Some(n) = scenario.expect.min_completed_checkpoints {
        let seen = recorder.checkpointing.checkpoints_completed;
        if seen < n {
            violations.push(Violation {
                invariant: "expect",
                at: end,
                node: None,
                message: format!(
                    "expected at least {n} completed checkpoint(s), the job completed {seen}"
                ),
            });
        }
    }
    violations
}

/// The fault-free reference output of `spec`, computed once per spec for all the runs of this
/// process (explorations run thousands of seeds of one scenario; the reference depends only on
/// the spec, so sharing it cannot change a run).
fn cached_reference(spec: &JobSpec) -> Option<Arc<ReferenceOutput>> {
    use std::sync::Mutex;
    /// The specs seen last, with their references (a few dozen: `check` walks many scenarios,
    /// and a `[swarm]` draws a spec per seed).
    static CACHE: Mutex<Vec<(JobSpec, Option<Arc<ReferenceOutput>>)>> = Mutex::new(Vec::new());
    const ENTRIES_MAX: usize = 32;
    if let Ok(cache) = CACHE.lock() {
        if let Some((_, r)) = cache.iter().find(|(s, _)| s == spec) {
            return r.clone();
        }
    }
    let reference = model::checking::reference::reference_output(spec)
        .ok()
        .map(Arc::new);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= ENTRIES_MAX {
            cache.remove(0);
        }
        cache.push((spec.clone(), reference.clone()));
    }
    reference
}

/// Like [`run`], but a panic inside the run becomes a failed result (invariant `no-panic`)
/// instead of tearing down the caller.
pub fn run_catching(scenario: &Scenario, options: RunOptions) -> RunResult {
    let seed = options.seed;
    let bug = options.bug.or(scenario.bug);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(scenario, options))) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            let v = Violation {
                invariant: "no-panic",
                at: Time::ZERO,
                node: None,
                message: format!("the model panicked: {message}"),
            };
            RunResult {
                summary: Summary::panicked(scenario, seed, bug, &v),
                violations: vec![v],
                tap: sim::Tap::None,
            }
        }
    }
}
