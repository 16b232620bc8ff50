//! Exactly-once checkpointing end to end: the checkpointing scenarios hold every invariant and
//! commit exactly the input, a TaskManager killed mid-checkpoint restores from the latest
//! completed checkpoint, and every planted checkpointing bug is caught by its oracle on its
//! negative scenario, reproducibly.

mod common;

use common::{run_seed, scenario, CHECKPOINTING_BUGS as CAUGHT};
use model::checking::bugs::Bug;

/// Records the bundled checkpointing jobs read: 4 partitions × 4000.
const INPUT: u64 = 16_000;

#[test]
fn exactly_once_scenarios_commit_exactly_the_input() {
    for name in [
        "checkpoint-steady-exactly-once",
        "checkpoint-tm-killed-mid-checkpoint",
        "checkpoint-storage-unavailable",
        "checkpoint-sink-partitioned",
        "checkpoint-timeout-long-pause",
    ] {
        for seed in 0..3 {
            let s = run_seed(&scenario(name), seed, None).summary;
            assert!(s.passed(), "{name} seed {seed}: {:?}", s.violations);
            assert_eq!(s.job_status.as_deref(), Some("FINISHED"), "{name}");
            assert_eq!(s.records_committed, INPUT, "{name} seed {seed}");
            assert!(s.checkpoints_completed >= 2, "{name} seed {seed}");
        }
    }
}

#[test]
fn a_taskmanager_killed_mid_checkpoint_restores_the_latest_completed_checkpoint() {
    let s = run_seed(&scenario("checkpoint-tm-killed-mid-checkpoint"), 1, None).summary;
    assert!(s.passed(), "{:?}", s.violations);
    assert_eq!(s.restores.len(), 1, "{:?}", s.restores);
    let restore = &s.restores[0];
    // Killed at 2.5 s; the consumers' data connections fail at once, well before the 5 s
    // heartbeat timeout would.
    assert!((2_500..4_500).contains(&restore.at_ms), "{restore:?}");
    let id = restore
        .checkpoint_id
        .expect("a checkpoint completed before the kill");
    assert!(id >= 1);
    assert!(
        s.checkpoints_aborted >= 1,
        "the pending checkpoint is aborted"
    );
    assert_eq!(s.records_committed, INPUT);
    assert_eq!(s.restarts, 1);
}

#[test]
fn at_least_once_mode_loses_nothing_and_may_repeat() {
    let mut repeated = false;
    for seed in 0..3 {
        let s = run_seed(&scenario("checkpoint-at-least-once-kills"), seed, None).summary;
        assert!(s.passed(), "seed {seed}: {:?}", s.violations);
        assert_eq!(s.restores.len(), 2, "seed {seed}: {:?}", s.restores);
        // 4 × 10 000 records; a replay after each restore repeats what the sink had written.
        assert!(s.records_committed >= 40_000, "seed {seed}");
        repeated |= s.records_committed > 40_000;
    }
    assert!(repeated, "a restore replays records the sink already wrote");
}

#[test]
fn every_checkpointing_bug_is_caught_by_its_oracle_within_200_seeds_and_replays() {
    for (bug, name, invariant) in CAUGHT {
        let s = scenario(name);
        assert_eq!(s.bug, Some(*bug), "{name} plants {bug:?}");
        let (seed, r) = (0..200)
            .map(|seed| (seed, run_seed(&s, seed, None).summary))
            .find(|(_, r)| !r.violations.is_empty())
            .unwrap_or_else(|| panic!("{bug:?} not caught on {name}"));
        assert_eq!(
            r.violations[0].invariant, *invariant,
            "{bug:?} on {name} seed {seed}: {:?}",
            r.violations
        );
        assert!(r.as_expected(), "{name} declares {invariant}");
        // The replay of the failing seed reproduces it bit for bit.
        let again = run_seed(&s, seed, None).summary;
        assert_eq!(again.trace_hash, r.trace_hash, "{name} seed {seed}");
        assert_eq!(again.violations[0].message, r.violations[0].message);
        // Without the bug the same scenario and seed hold every invariant.
        let mut fixed = s.clone();
        fixed.bug = None;
        let clean = run_seed(&fixed, seed, None).summary;
        assert!(
            clean.violations.is_empty(),
            "{name} seed {seed} without {bug:?}: {:?}",
            clean.violations
        );
    }
}

#[test]
fn the_cli_bug_flag_plants_a_checkpointing_bug_in_a_clean_scenario() {
    let s = scenario("checkpoint-steady-exactly-once");
    assert_eq!(s.bug, None);
    let r = run_seed(&s, 0, Some(Bug::SinkCommitOnBarrier)).summary;
    assert_eq!(r.violations[0].invariant, "committed-only-completed");
    assert_eq!(r.bug.as_deref(), Some("sink-commit-on-barrier"));
}
