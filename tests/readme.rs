//! The README's reference sections are checked against the code: every Flink configuration key
//! the scenario parser accepts, every planted bug, invariant and coverage probe, and every
//! scenario folder appear in it, so the documentation cannot silently fall behind.

mod common;

fn readme() -> String {
    std::fs::read_to_string(common::root().join("README.md")).unwrap()
}

fn missing<'a>(readme: &str, names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect()
}

#[test]
fn every_config_key_is_in_the_scenario_reference() {
    let keys = model::protocol::config::OPTIONS.iter().map(|o| o.key);
    assert_eq!(missing(&readme(), keys), Vec::<&str>::new());
}

#[test]
fn every_bug_invariant_and_probe_is_documented() {
    let readme = readme();
    let bugs = model::checking::bugs::Bug::ALL.iter().map(|b| b.name());
    assert_eq!(missing(&readme, bugs), Vec::<&str>::new());
    let invariants = model::checking::oracle::INVARIANTS.iter().map(|i| i.name);
    assert_eq!(missing(&readme, invariants), Vec::<&str>::new());
    let probes = model::checking::probes::PROBES.iter().map(|p| p.name);
    assert_eq!(missing(&readme, probes), Vec::<&str>::new());
}

#[test]
fn every_scenario_folder_is_in_the_library_table() {
    let readme = readme();
    let root = common::root().join("scenarios");
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let folder = format!("{}/", entry.file_name().to_str().unwrap());
            assert!(readme.contains(&format!("`{folder}`")), "{folder}");
        }
    }
}
