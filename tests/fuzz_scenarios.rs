//! Reliability of the parser: mutations of the bundled scenario files (a line dropped,
//! duplicated or swapped, a value replaced by a wrong type, random bytes spliced in, the file
//! cut short) never panic the parser; a file it refuses gets an error that names the file and
//! says what is wrong. `FLINKSIM_FUZZ_CASES` sets the number of cases (default 256; 10 000 on
//! demand).

mod common;

use flinksim::scenario::Scenario;
use proptest::prelude::*;
use std::path::Path;

fn cases() -> u32 {
    std::env::var("FLINKSIM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Replacement values of the wrong shape or out of range.
const JUNK: &[&str] = &[
    "\"\"",
    "-1",
    "0",
    "1e309",
    "\"5 parsecs\"",
    "\"1s..\"",
    "\"..\"",
    "[]",
    "{}",
    "true",
    "\"taskmanager-99\"",
    "\"count[99]\"",
    "18446744073709551616",
    "\"-30s..-40s\"",
    "[[\"ha\"]]",
    "\"\u{0}\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceValue(usize, usize),
    Splice(usize, String),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0..JUNK.len()).prop_map(|(a, j)| Mutation::ReplaceValue(a, j)),
        (any::<usize>(), "[ -~\\[\\]{}=\"\n]{0,12}").prop_map(|(a, s)| Mutation::Splice(a, s)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        Mutation::DuplicateLine(i) => {
            if let Some(l) = lines.get(i % n).cloned() {
                lines.insert(i % n, l);
            }
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        Mutation::ReplaceValue(i, j) => {
            if let Some(l) = lines.get_mut(i % n) {
                if let Some(eq) = l.find(" = ") {
                    *l = format!("{} = {}", &l[..eq], JUNK[*j]);
                }
            }
        }
        Mutation::Splice(i, s) => {
            let at = i % (text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|k| text.is_char_boundary(*k))
                .unwrap_or(0);
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
        Mutation::Truncate(i) => {
            let at = i % (text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|k| text.is_char_boundary(*k))
                .unwrap_or(0);
            return text[..at].to_string();
        }
    }
    lines.join("\n")
}

/// Bundled file number `file` (modulo their count) with `mutations` applied in turn.
fn mutated(file: usize, mutations: &[Mutation]) -> String {
    let paths = common::bundled_paths();
    let path = &paths[file % paths.len()];
    let mut text = std::fs::read_to_string(path).unwrap();
    for m in mutations {
        text = apply(&text, m);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_scenario_files_parse_or_give_a_clear_error(
        file in 0usize..1000,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let text = mutated(file, &mutations);
        let name = Path::new("fuzzed.toml");
        let parsed = std::panic::catch_unwind(|| Scenario::parse(name, &text));
        prop_assert!(parsed.is_ok(), "the parser panicked on:\n{text}");
        if let Err(e) = parsed.unwrap() {
            let shown = e.to_string();
            prop_assert!(shown.contains("fuzzed.toml"), "{shown}");
            prop_assert!(shown.len() > "fuzzed.toml".len() + 5, "{shown}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 8 + 1, ..ProptestConfig::default() })]

    /// A file the parser refuses makes the CLI exit 2 with a message naming the file, never a
    /// panic or a stack trace.
    #[test]
    fn the_cli_refuses_a_broken_file_with_exit_2(
        file in 0usize..1000,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let text = mutated(file, &mutations);
        if Scenario::parse(Path::new("fuzzed.toml"), &text).is_ok() {
            return Ok(()); // a valid file: running it is the other tests' business
        }
        let dir = std::env::temp_dir().join(format!("flinksim-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fuzzed.toml");
        std::fs::write(&file, &text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flinksim"))
            .args(["run", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert_eq!(out.status.code(), Some(2), "{}\n{}", stderr, text);
        prop_assert!(stderr.contains("fuzzed.toml"), "{}", stderr);
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
    }
}
