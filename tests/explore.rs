//! `explore`: finds a planted bug, reports a replayable seed, and gives the same results whatever
//! the thread count.

mod common;

use common::scenario;
use flinksim::explore::{explore, Exploration, SeedRange, Shard};
use model::bugs::Bug;

fn exploration(seeds: &str, bug: Option<Bug>, keep_going: bool) -> Exploration {
    Exploration {
        seeds: SeedRange::parse(seeds).unwrap(),
        shard: None,
        bug,
        keep_going,
        time_limit: None,
    }
}

fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn explore_finds_a_planted_bug_and_its_seed_replays() {
    let s = scenario("checkpoint-steady-exactly-once");
    let what = exploration("200", Some(Bug::SinkCommitOnBarrier), false);
    let out = explore(std::slice::from_ref(&s), &what, &mut |_, _, _| {});
    assert_eq!(out.failures.len(), 1, "stops at the first failure");
    let f = &out.failures[0];
    assert_eq!(
        f.summary.violations[0].invariant,
        "committed-only-completed"
    );
    assert!(out.stopped.is_some());
    assert_eq!(
        f.replay_command(),
        format!(
            "flinksim replay {} --seed {} --bug sink-commit-on-barrier",
            s.path.display(),
            f.summary.seed
        )
    );
    let again = common::run_seed(&s, f.summary.seed, Some(Bug::SinkCommitOnBarrier)).summary;
    assert_eq!(again.trace_hash, f.summary.trace_hash);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let s = scenario("negative-no-barrier-alignment");
    let what = exploration("40..110", None, true);
    let run = |n| {
        with_threads(n, || {
            let out = explore(std::slice::from_ref(&s), &what, &mut |_, _, _| {});
            out.failures
                .iter()
                .map(|f| (f.summary.seed, f.summary.trace_hash.clone()))
                .collect::<Vec<_>>()
        })
    };
    let one = run(1);
    assert_eq!(one.len(), 70, "the planted bug fails every seed");
    assert_eq!(one, run(2));
}

#[test]
fn shards_split_the_seeds_without_overlap() {
    let shards: Vec<Shard> = (1..=3)
        .map(|k| Shard::parse(&format!("{k}/3")).unwrap())
        .collect();
    for seed in 0..100u64 {
        assert_eq!(shards.iter().filter(|s| s.owns(seed)).count(), 1, "{seed}");
    }
    for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        SeedRange::parse("10").unwrap(),
        SeedRange { start: 0, end: 10 }
    );
    assert_eq!(
        SeedRange::parse("5..8").unwrap(),
        SeedRange { start: 5, end: 8 }
    );
    assert!(SeedRange::parse("8..5").is_err());
}

#[test]
fn a_clean_scenario_explores_without_failures() {
    let s = scenario("checkpoint-tm-killed-mid-checkpoint");
    let out = explore(
        std::slice::from_ref(&s),
        &exploration("64", None, false),
        &mut |_, _, _| {},
    );
    assert_eq!(out.runs, 64);
    assert!(
        out.failures.is_empty(),
        "{:?}",
        out.failures.first().map(|f| &f.summary.violations)
    );
    assert!(out.stopped.is_none());
}
