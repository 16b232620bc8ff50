//! `explore`: finds a planted bug, reports a replayable seed, and gives the same results whatever
//! the thread count.

mod common;

use common::{
    scenario, CHECKPOINTING_BUGS, CONTROL_PLANE_BUGS, HA_BUGS, HEARTBEAT_BUGS, NEMESIS_BUGS,
};
use flinksim::explore::{explore, Exploration, SeedRange, Shard};
use model::checking::bugs::Bug;

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

/// `explore` finds every planted bug in a few seeds of its scenario, with the invariant that
/// should catch it, and the failing seed replays to the same trace hash.
/// (bug, a scenario it breaks, the invariant that catches it): every planted bug.
fn every_bug() -> impl Iterator<Item = &'static (Bug, &'static str, &'static str)> {
    HEARTBEAT_BUGS
        .iter()
        .chain(CONTROL_PLANE_BUGS)
        .chain(CHECKPOINTING_BUGS)
        .chain(HA_BUGS)
        .chain(NEMESIS_BUGS)
}

#[test]
fn explore_finds_every_planted_bug_and_each_failing_seed_replays() {
    for b in Bug::ALL {
        assert!(every_bug().any(|(x, _, _)| x == b), "{b:?} has no entry");
    }
    for (bug, name, invariant) in every_bug() {
        let s = scenario(name);
        let out = explore(
            std::slice::from_ref(&s),
            &exploration("16", Some(*bug), false),
            &mut |_, _, _| {},
        );
        let f = out
            .failures
            .first()
            .unwrap_or_else(|| panic!("{bug:?} not found in 16 seeds of {name}"));
        assert_eq!(
            f.summary.violations[0].invariant, *invariant,
            "{bug:?} on {name}: {:?}",
            f.summary.violations
        );
        let again = common::run_seed(&s, f.summary.seed, Some(*bug)).summary;
        assert_eq!(again.trace_hash, f.summary.trace_hash, "{bug:?} replay");
        assert_eq!(again.violations, f.summary.violations);
    }
}

/// The records of two shards merge into the whole exploration: every seed once, the union of
/// the failures, no shard missing; a lone shard is reported incomplete.
#[test]
fn sharded_exploration_records_merge_into_the_whole() {
    use flinksim::explore::{merge, Record};
    let s = scenario("negative-sink-commit-on-barrier");
    let whole = exploration("0..10", None, true);
    let all = explore(std::slice::from_ref(&s), &whole, &mut |_, _, _| {});
    let records: Vec<Record> = (1..=2)
        .map(|k| {
            let what = Exploration {
                shard: Some(Shard { index: k, count: 2 }),
                ..whole.clone()
            };
            let out = explore(std::slice::from_ref(&s), &what, &mut |_, _, _| {});
            let r = Record::new(std::slice::from_ref(&s), &what, &out);
            // Records survive the JSON file.
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(records[0].file_name(), "exploration-shard-1-of-2.json");
    let merged = merge(&records).unwrap();
    assert_eq!(merged.len(), 1);
    let m = &merged[0];
    assert_eq!(m.runs, 10);
    assert!(m.missing_shards().is_empty());
    let seeds: Vec<u64> = m.failures.iter().map(|f| f.summary.seed).collect();
    let expected: Vec<u64> = all.failures.iter().map(|f| f.summary.seed).collect();
    assert_eq!(seeds, expected);
    assert_eq!(seeds.len(), 10, "the negative scenario fails on every seed");
    let lone = merge(&records[1..]).unwrap();
    assert_eq!(lone[0].missing_shards(), vec![1]);
    let junit = flinksim::explore::junit(&lone);
    assert!(junit.contains("this shard's record is missing"), "{junit}");
    assert!(merge(&[records[0].clone(), records[0].clone()])
        .unwrap_err()
        .contains("appears twice"));
}

/// The nemesis scenarios that catch the cluster-wide oracles' bugs hold those oracles on the
/// seeds that catch the bugs, without the bug: the failure is the bug's, not the scenario's.
#[test]
fn nemesis_seeds_that_catch_a_bug_hold_every_invariant_without_it() {
    for (bug, name, invariant) in NEMESIS_BUGS {
        let s = scenario(name);
        let caught = (0..16)
            .map(|seed| (seed, common::run_seed(&s, seed, Some(*bug)).summary))
            .find(|(_, r)| !r.violations.is_empty())
            .unwrap_or_else(|| panic!("{bug:?} not caught in 16 seeds of {name}"));
        let (seed, r) = caught;
        assert_eq!(r.violations[0].invariant, *invariant, "{bug:?} on {name}");
        let clean = common::run_seed(&s, seed, None).summary;
        assert!(
            clean.violations.is_empty(),
            "{name} seed {seed} without {bug:?}: {:?}",
            clean.violations
        );
    }
}
