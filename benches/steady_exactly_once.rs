//! The steady exactly-once job of issue 4 under criterion: 4 TaskManagers × 2 slots, parallelism
//! 8, 1000 records/s per partition, 1 s EXACTLY_ONCE checkpoints, 60 s of virtual time, keyed
//! count into a two-phase-commit sink. Reports wall time per run; virtual seconds per wall
//! second is 60 s divided by it. `STEADY_PROBE=1` prints events and the ratio once.

use criterion::{criterion_group, criterion_main, Criterion};
use flinksim::run::{run, RunOptions};
use flinksim::scenario::Scenario;
use std::path::Path;

const SCENARIO: &str = r#"
name = "bench-steady-exactly-once"
duration = "60s"
seeds = 1

[cluster]
taskmanagers = 4

[flink]
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"execution.checkpointing.interval" = "1 s"

[job]
name = "keyed-count"
parallelism = 8
source = { kind = "sequence", partitions = 8, records = 70000, rate = "1000/s" }
operators = [{ kind = "key_by", keys = 64 }, { kind = "count" }]
sink = { kind = "two_phase_commit" }

[network]
latency = "1ms..5ms"
"#;

fn scenario() -> Scenario {
    Scenario::parse(Path::new("bench.toml"), SCENARIO).expect("valid bench scenario")
}

fn steady(c: &mut Criterion) {
    let s = scenario();
    if std::env::var_os("STEADY_PROBE").is_some() {
        let t = std::time::Instant::now();
        let r = run(
            &s,
            RunOptions {
                seed: 1,
                bug: None,
                trace: None,
                tap: sim::Tap::None,
            },
        );
        let wall = t.elapsed().as_secs_f64();
        println!(
            "events={} virtual_ms={} wall={:.3}s ratio={:.0}x events/s={:.0} checkpoints={}",
            r.summary.events,
            r.summary.virtual_ms,
            wall,
            r.summary.virtual_ms as f64 / 1000.0 / wall,
            r.summary.events as f64 / wall,
            r.summary.checkpoints_completed,
        );
    }
    let mut g = c.benchmark_group("steady-exactly-once");
    g.sample_size(10);
    g.bench_function("4tm-p8-1000rps-60s", |b| {
        b.iter(|| {
            run(
                &s,
                RunOptions {
                    seed: 1,
                    bug: None,
                    trace: None,
                    tap: sim::Tap::None,
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, steady);
criterion_main!(benches);
