//! The planted-bug self-test: its catalogue covers every planted bug with a bundled scenario,
//! and a run catches a bug with the expected invariant and shrinks the failing run.

mod common;

use flinksim::selftest::{load, markdown, run, scenario_of, CASES};
use model::checking::bugs::Bug;
use std::time::Duration;

#[test]
fn the_catalogue_has_every_planted_bug_once_with_a_bundled_scenario() {
    for b in Bug::ALL {
        assert_eq!(
            CASES.iter().filter(|c| c.bug == *b).count(),
            1,
            "{b:?} must have exactly one self-test case"
        );
    }
    assert!(CASES.len() >= 16, "the issue asks for at least 16");
    for c in CASES {
        let s = scenario_of(&common::root(), c).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.budget > 0 && c.budget <= 500, "{:?}", c.bug);
        assert!(
            model::checking::oracle::invariant(c.invariant).is_some(),
            "{}: unknown invariant {}",
            s.name,
            c.invariant
        );
    }
}

#[test]
fn at_least_half_the_catalogue_is_explored_on_a_general_nemesis_scenario() {
    let general = CASES
        .iter()
        .filter(|c| c.on_nemesis() || c.general.is_some())
        .count();
    assert!(2 * general >= CASES.len(), "{general} of {}", CASES.len());
    for c in CASES {
        if let Some(name) = c.general {
            assert!(name.starts_with("nemesis/"), "{:?}: {name}", c.bug);
            assert!(
                !c.on_nemesis(),
                "{:?} is on a nemesis scenario already",
                c.bug
            );
            load(&common::root(), name).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn a_selftest_row_catches_the_bug_and_shrinks_the_run() {
    let cases: Vec<_> = CASES
        .iter()
        .filter(|c| c.bug == Bug::SinkCommitOnBarrier)
        .copied()
        .collect();
    let mut seen = 0;
    let rows = run(&common::root(), &cases, Duration::from_secs(5), &mut |_| {
        seen += 1
    })
    .unwrap();
    assert_eq!(seen, 1);
    let r = &rows[0];
    assert!(r.ok(), "{r:?}");
    let (seed, invariant) = r.caught.clone().unwrap();
    assert!(seed < r.case.budget);
    assert_eq!(invariant, "committed-only-completed");
    let (before, after) = r.shrunk.unwrap();
    assert!(after <= before);
    let table = markdown(&rows);
    assert!(table.contains("| `sink-commit-on-barrier` |"), "{table}");
    assert!(table.contains("| ok |"), "{table}");
    // Its general nemesis scenario finds it as well, by the same invariant.
    let (_, general) = r.general.clone().expect("found on nemesis-checkpointing");
    assert_eq!(general, "committed-only-completed");
    assert!(r.on_nemesis());
    assert!(
        table.contains("1 of 1 planted bugs caught on a general nemesis scenario"),
        "{table}"
    );
}
