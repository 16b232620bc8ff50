//! The scenario check `scripts/mutants` runs against every mutant, after the unit tests: a fixed,
//! fast subset of the bundled library — every scenario but the scale ones, each for its first
//! [`SEEDS`] seeds (negative scenarios must still fail with their declared invariant, so a mutant
//! that blinds an oracle is killed here). Built only with the `mutants` feature: `cargo test`
//! (and CI) leave it out, because CI runs the whole library with `flinksim check` instead.

mod common;

/// Seeds per scenario: enough for every negative scenario to fail as declared.
const SEEDS: u64 = 3;

#[test]
fn the_library_subset_holds_and_its_negative_scenarios_fail_as_declared() {
    let mut failed = Vec::new();
    let mut runs = 0;
    for mut scenario in common::bundled() {
        scenario.seeds = scenario.seeds.min(SEEDS);
        let result = flinksim::check::run_file(scenario, 0);
        runs += result.seeds.len();
        failed.extend(result.unexpected().map(|s| {
            format!(
                "{} seed {}: {}",
                result.scenario.name,
                s.seed,
                s.violations
                    .first()
                    .map_or("no violation".to_string(), |v| format!(
                        "{}: {}",
                        v.invariant, v.message
                    ))
            )
        }));
    }
    assert!(runs > 100, "only {runs} runs");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
