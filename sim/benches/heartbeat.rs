//! Kernel throughput on a heartbeat cluster, against a bare `BinaryHeap` event loop doing the same
//! work.
//!
//! One coordinator (node 0) and N workers. Every 100 ms (its own periodic timer) a worker sends a
//! heartbeat to the coordinator and arms a 500 ms ack timeout; the coordinator answers each
//! heartbeat with an ack; the worker cancels the timeout when the ack arrives. Latency is uniform
//! in 1–10 ms. Worker i's first tick comes after (i % 100) ms. A run covers 60 s of virtual time.
//!
//! - `kernel/heartbeat/{N}`: the real [`sim::World`] (tracing into the hash, no observer);
//! - `baseline/binary_heap/{N}`: a hand-written loop over `std::collections::BinaryHeap` ordered
//!   by (time, seq), with a ChaCha8 latency stream, FIFO per link and generation-counter timer
//!   cancellation, but no tracing, hashing or fault checks.
//!
//! Throughput is delivered messages (heartbeats + acks) per second. Before benching, each N is
//! run once of each kind and its delivered messages, events and virtual seconds per wall second
//! are printed.
//!
//! Under `cargo test --benches` (no `--bench` argument) the runs cover 1 s of virtual time so the
//! smoke test stays quick.

// A bench measures wall time and reads its probe knob from the environment; the determinism
// ban of sim/clippy.toml is for the simulation, not for the harness around it.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::{Rng as _, SeedableRng};
use sim::{Actor, Clock, Ctx, Latency, Limits, Message, NetConfig, NodeId, NodeSpec, Time};
use sim::{TimerId, Vocabulary, World};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

const SEED: u64 = 7;
const TICK: Duration = Duration::from_millis(100);
const ACK_TIMEOUT: Duration = Duration::from_millis(500);
const LAT_LO: Duration = Duration::from_millis(1);
const LAT_HI: Duration = Duration::from_millis(10);
const SIZES: [u32; 2] = [100, 1000];

/// Virtual seconds per run: 60 under `cargo bench`, 1 as a smoke test.
fn virtual_secs() -> u64 {
    if std::env::args().any(|a| a == "--bench") {
        60
    } else {
        1
    }
}

/// The first tick of worker `i` (node index, 1-based).
fn first_tick(i: u32) -> Duration {
    Duration::from_millis(u64::from(i % 100))
}

// ---------------------------------------------------------------------------------------------
// Kernel
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Hash)]
enum Hb {
    Beat(u64),
    Ack(u64),
}

impl Message for Hb {
    fn name(&self) -> &'static str {
        match self {
            Hb::Beat(_) => "heartbeat",
            Hb::Ack(_) => "ack",
        }
    }
}

#[derive(Clone, Debug, Hash)]
enum Tm {
    Tick,
    AckTimeout,
}

enum HbNode {
    Coordinator {
        beats: u64,
    },
    Worker {
        seq: u64,
        timeout: Option<TimerId>,
        acks: u64,
        timeouts: u64,
    },
}

impl Vocabulary for HbNode {
    type Msg = Hb;
    type Timer = Tm;
    type Obs = ();
    type Op = ();
}

impl Actor for HbNode {
    type V = Self;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let HbNode::Worker { .. } = self {
            ctx.set_timer(first_tick(ctx.me().0), Tm::Tick);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Hb) {
        match (self, msg) {
            (HbNode::Coordinator { beats }, Hb::Beat(s)) => {
                *beats += 1;
                ctx.send(from, Hb::Ack(s));
            }
            (
                HbNode::Worker {
                    seq, timeout, acks, ..
                },
                Hb::Ack(s),
            ) => {
                *acks += 1;
                if s == *seq {
                    if let Some(t) = timeout.take() {
                        ctx.cancel_timer(t);
                    }
                }
            }
            _ => unreachable!("unexpected message"),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _: TimerId, tag: Tm) {
        let HbNode::Worker {
            seq,
            timeout,
            timeouts,
            ..
        } = self
        else {
            unreachable!("coordinator has no timers")
        };
        match tag {
            Tm::Tick => {
                *seq += 1;
                ctx.send(NodeId(0), Hb::Beat(*seq));
                if let Some(t) = timeout.take() {
                    ctx.cancel_timer(t);
                }
                *timeout = Some(ctx.set_timer(ACK_TIMEOUT, Tm::AckTimeout));
                ctx.set_timer(TICK, Tm::Tick);
            }
            Tm::AckTimeout => {
                *timeouts += 1;
                *timeout = None;
            }
        }
    }

    fn on_unreachable(&mut self, _: &mut Ctx<'_, Self>, _: NodeId, _: Hb) {}
}

fn kernel_world(workers: u32) -> World<HbNode> {
    let nodes = (0..=workers)
        .map(|i| NodeSpec {
            name: if i == 0 {
                "coordinator".into()
            } else {
                format!("w{i}")
            },
            clock: Clock::default(),
            start: true,
        })
        .collect();
    let net = NetConfig {
        latency: Latency::Uniform(LAT_LO, LAT_HI),
        ..NetConfig::default()
    };
    World::new(SEED, net, nodes, |id, _| {
        if id == NodeId(0) {
            HbNode::Coordinator { beats: 0 }
        } else {
            HbNode::Worker {
                seq: 0,
                timeout: None,
                acks: 0,
                timeouts: 0,
            }
        }
    })
}

struct Stats {
    delivered: u64,
    events: u64,
    timeouts: u64,
}

fn kernel_run(world: &mut World<HbNode>, secs: u64) -> Stats {
    let limits = Limits {
        time_max: Time::from_secs(secs),
        ..Limits::default()
    };
    let outcome = world.run(limits, &mut ());
    let mut stats = Stats {
        delivered: 0,
        events: outcome.events,
        timeouts: 0,
    };
    for i in 0..world.census().len() {
        match world.actor(NodeId(i as u32)) {
            Some(HbNode::Coordinator { beats }) => stats.delivered += beats,
            Some(HbNode::Worker { acks, timeouts, .. }) => {
                stats.delivered += acks;
                stats.timeouts += timeouts;
            }
            None => {}
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Baseline: a bare BinaryHeap event loop doing the same work
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick {
        w: u32,
    },
    Timeout {
        w: u32,
        generation: u32,
    },
    /// A heartbeat from worker `w` reaches the coordinator.
    Beat {
        w: u32,
        seq: u64,
    },
    /// An ack reaches worker `w`.
    Ack {
        w: u32,
        seq: u64,
    },
}

struct Baseline {
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    rng: sim::Rng,
    /// Per worker: heartbeat sequence, timeout generation, whether a timeout is armed.
    beat_seq: Vec<u64>,
    generation: Vec<u32>,
    armed: Vec<bool>,
    /// FIFO bookkeeping per directed link: worker → coordinator and back.
    last_up: Vec<u64>,
    last_down: Vec<u64>,
    delivered: u64,
    events: u64,
    timeouts: u64,
}

impl Baseline {
    fn new(workers: u32) -> Baseline {
        let n = workers as usize + 1;
        let mut b = Baseline {
            heap: BinaryHeap::new(),
            seq: 0,
            rng: sim::Rng::seed_from_u64(SEED),
            beat_seq: vec![0; n],
            generation: vec![0; n],
            armed: vec![false; n],
            last_up: vec![0; n],
            last_down: vec![0; n],
            delivered: 0,
            events: 0,
            timeouts: 0,
        };
        for w in 1..=workers {
            b.push(first_tick(w).as_nanos() as u64, Ev::Tick { w });
        }
        b
    }

    #[inline]
    fn push(&mut self, at: u64, ev: Ev) {
        self.heap.push(Reverse((at, self.seq, ev)));
        self.seq += 1;
    }

    #[inline]
    fn latency(&mut self) -> u64 {
        self.rng
            .random_range(LAT_LO.as_nanos() as u64..=LAT_HI.as_nanos() as u64)
    }

    fn run(&mut self, secs: u64) {
        let end = secs * 1_000_000_000;
        while let Some(&Reverse((now, _, _))) = self.heap.peek() {
            if now > end {
                break;
            }
            let Reverse((now, _, ev)) = self.heap.pop().expect("peeked");
            self.events += 1;
            match ev {
                Ev::Tick { w } => {
                    let i = w as usize;
                    self.beat_seq[i] += 1;
                    let seq = self.beat_seq[i];
                    let at = (now + self.latency()).max(self.last_up[i]);
                    self.last_up[i] = at;
                    self.push(at, Ev::Beat { w, seq });
                    if self.armed[i] {
                        self.generation[i] += 1;
                    }
                    self.armed[i] = true;
                    let generation = self.generation[i];
                    self.push(
                        now + ACK_TIMEOUT.as_nanos() as u64,
                        Ev::Timeout { w, generation },
                    );
                    self.push(now + TICK.as_nanos() as u64, Ev::Tick { w });
                }
                Ev::Timeout { w, generation } => {
                    let i = w as usize;
                    if self.armed[i] && self.generation[i] == generation {
                        self.armed[i] = false;
                        self.generation[i] += 1;
                        self.timeouts += 1;
                    }
                }
                Ev::Beat { w, seq } => {
                    self.delivered += 1;
                    let i = w as usize;
                    let at = (now + self.latency()).max(self.last_down[i]);
                    self.last_down[i] = at;
                    self.push(at, Ev::Ack { w, seq });
                }
                Ev::Ack { w, seq } => {
                    self.delivered += 1;
                    let i = w as usize;
                    if seq == self.beat_seq[i] && self.armed[i] {
                        self.armed[i] = false;
                        self.generation[i] += 1;
                    }
                }
            }
        }
    }
}

fn baseline_run(workers: u32, secs: u64) -> Stats {
    let mut b = Baseline::new(workers);
    b.run(secs);
    Stats {
        delivered: b.delivered,
        events: b.events,
        timeouts: b.timeouts,
    }
}

// ---------------------------------------------------------------------------------------------

/// `HEARTBEAT_PROBE=kernel:1000` (or `baseline:100`, …) runs one 60 s run of that kind and exits,
/// for instruction counts that do not depend on machine noise:
/// `HEARTBEAT_PROBE=kernel:1000 perf stat -e instructions target/release/deps/heartbeat-* --bench`.
fn probe() {
    let Ok(spec) = std::env::var("HEARTBEAT_PROBE") else {
        return;
    };
    let (kind, n) = spec.split_once(':').expect("HEARTBEAT_PROBE=kind:N");
    let n: u32 = n.parse().expect("N");
    let stats = match kind {
        "kernel" => kernel_run(&mut kernel_world(n), 60),
        "baseline" => baseline_run(n, 60),
        other => panic!("unknown probe kind {other}"),
    };
    eprintln!(
        "probe {kind} N={n}: delivered {} events {}",
        stats.delivered, stats.events
    );
    std::process::exit(0);
}

fn heartbeat(c: &mut Criterion) {
    probe();
    let secs = virtual_secs();
    let mut delivered = Vec::new();
    for &n in &SIZES {
        let mut world = kernel_world(n);
        let start = Instant::now();
        let k = kernel_run(&mut world, secs);
        let kw = start.elapsed();
        let start = Instant::now();
        let b = baseline_run(n, secs);
        let bw = start.elapsed();
        eprintln!(
            "heartbeat N={n}: kernel   delivered {} msgs, {} traced events, {} timeouts, \
             {:.3} s wall, {:.1} virtual s / wall s",
            k.delivered,
            k.events,
            k.timeouts,
            kw.as_secs_f64(),
            secs as f64 / kw.as_secs_f64()
        );
        eprintln!(
            "heartbeat N={n}: baseline delivered {} msgs, {} heap events, {} timeouts, \
             {:.3} s wall, {:.1} virtual s / wall s",
            b.delivered,
            b.events,
            b.timeouts,
            bw.as_secs_f64(),
            secs as f64 / bw.as_secs_f64()
        );
        assert_eq!(k.timeouts, 0, "acks come back within 20 ms");
        // Same work: the counts can differ only by the messages in flight at the time limit.
        let slack = 2 * u64::from(n);
        assert!(
            k.delivered.abs_diff(b.delivered) <= slack,
            "kernel {} vs baseline {} delivered",
            k.delivered,
            b.delivered
        );
        delivered.push((n, k.delivered, b.delivered));
    }

    let mut group = c.benchmark_group("heartbeat");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for &(n, kernel_delivered, baseline_delivered) in &delivered {
        group.throughput(Throughput::Elements(kernel_delivered));
        group.bench_with_input(BenchmarkId::new("kernel/heartbeat", n), &n, |bch, &n| {
            bch.iter_batched(
                || kernel_world(n),
                // The world is returned so its drop falls outside the measurement.
                |mut world| {
                    kernel_run(&mut world, secs);
                    world
                },
                BatchSize::PerIteration,
            )
        });
        group.throughput(Throughput::Elements(baseline_delivered));
        group.bench_with_input(
            BenchmarkId::new("baseline/binary_heap", n),
            &n,
            |bch, &n| bch.iter(|| baseline_run(n, secs).delivered),
        );
    }
    group.finish();
}

criterion_group!(benches, heartbeat);
criterion_main!(benches);
