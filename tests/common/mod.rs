//! Helpers shared by the scenario tests.
#![allow(dead_code)]

use flinksim::run::{run, RunOptions, RunResult};
use flinksim::scenario::Scenario;
use model::bugs::Bug;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str) -> Scenario {
    let path = root().join("scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

pub fn bundled() -> Vec<Scenario> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

pub fn run_seed(s: &Scenario, seed: u64, bug: Option<Bug>) -> RunResult {
    run(
        s,
        RunOptions {
            seed,
            bug,
            trace: None,
            tap: sim::Tap::None,
        },
    )
}

pub fn parse(text: &str) -> Scenario {
    Scenario::parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}
