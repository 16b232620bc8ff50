//! A nemesis scenario under criterion: the bundled `nemesis/nemesis-checkpointing.toml` (random
//! TaskManager kills, partitions and pauses drawn from the seed over a checkpointed
//! exactly-once job), seeds 0..8 resolved and run one after another, all oracles on, untraced —
//! what `flinksim explore` does per seed. Reports wall time per 8 runs.

use criterion::{criterion_group, criterion_main, Criterion};
use flinksim::run::{run, RunOptions};
use flinksim::scenario::Scenario;
use std::path::Path;

const SEEDS: u64 = 8;

fn nemesis(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/nemesis/nemesis-checkpointing.toml");
    let scenario = Scenario::load(&path).expect("the bundled nemesis scenario");
    let mut g = c.benchmark_group("nemesis-checkpointing");
    g.sample_size(10);
    g.bench_function("8-seeds", |b| {
        b.iter(|| {
            (0..SEEDS)
                .map(|seed| {
                    let s = scenario.resolve(seed);
                    run(
                        &s,
                        RunOptions {
                            seed,
                            ..RunOptions::default()
                        },
                    )
                    .summary
                    .events
                })
                .sum::<u64>()
        })
    });
    g.finish();
}

criterion_group!(benches, nemesis);
criterion_main!(benches);
