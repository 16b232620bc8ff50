//! The fault-free reference of a job's output, and the checks that compare what a sink
//! committed against it ("exactly-once end to end" in docs/architecture.md).
//!
//! This module owns the answer to "what must the sink commit, exactly once, if nothing ever
//! failed", computed straight from the [`JobSpec`] and the shared definitions in
//! [`crate::protocol::records`] — never by running the simulation, so a bug in the model cannot leak into
//! its own yardstick. It also owns the comparison of a committed output with that answer and
//! the wording of the first difference. It does not own collecting the committed output (the
//! sink store and the exactly-once oracle do that), nor the "nothing from an aborted checkpoint"
//! half of the property, which needs the transaction history rather than the final content.
//!
//! Two kinds of job have a reference:
//!
//! - a job whose pipeline holds a keyed `count` emits [`CountOutput`]s. Which record of a key
//!   gets which count depends on how the source partitions interleave at the count subtask,
//!   which differs between runs and is not part of the contract; the multiset does not: per key
//!   `k` (after the last `key_by`) exactly the counts `1..=n_k`, where `n_k` is the number of
//!   source records with that key. So the reference is `n_k` per key, O(distinct keys) memory.
//! - any other job emits the source records, re-keyed by each `key_by` and with each `map`
//!   applied. A record keeps its partition and offset, so the reference is the rule that gives
//!   the expected record at each position ([`RecordsReference::expected`]), O(1) memory.
//!
//! Exchanges (`rebalance`, `forward`, and `key_by` as a partitioner) only move records between
//! subtasks, which changes the order but not the content of the output.

use std::collections::BTreeMap;

use crate::protocol::job_graph::{JobGraph, JobSpec, OperatorKind};
use crate::protocol::records::{
    keyed, map_value, record_at, CountOutput, Record, PARTITIONS_MAX, RECORDS_PER_PARTITION_MAX,
};

/// What a fault-free run of a job commits at its sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceOutput {
    /// A job with a keyed count: per key (as the last `key_by` before the count assigns it), the
    /// final count `n_k >= 1`. The sink must commit `(k, 1)`, …, `(k, n_k)`, each exactly once.
    /// Keys without records are absent.
    Counts(BTreeMap<u64, u64>),
    /// A job without a count: every source record, transformed; see [`RecordsReference`].
    Records(RecordsReference),
}

/// The output of a job without a count: one record per source position (`partitions` ×
/// `records_per_partition`), each equal to [`RecordsReference::expected`] of its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordsReference {
    pub partitions: u32,
    pub records_per_partition: u64,
    /// The `keys` of every `key_by`, in pipeline order; each re-keys with [`keyed`].
    pub key_bys: Vec<u32>,
    /// How many `map` operators the records pass; each applies [`map_value`]. Maps and key_bys
    /// touch different fields, so their relative order does not matter.
    pub maps: u32,
}

impl RecordsReference {
    /// The record a fault-free run commits for source position (`partition`, `offset`).
    pub fn expected(&self, partition: u32, offset: u64) -> Record {
        assert!(partition < self.partitions);
        assert!(offset < self.records_per_partition);
        let mut record = record_at(partition, offset);
        record.key = self
            .key_bys
            .iter()
            .fold(record.key, |key, &keys| keyed(key, keys));
        for _ in 0..self.maps {
            record.value = map_value(record.value);
        }
        assert_eq!((record.partition, record.offset), (partition, offset));
        record
    }
}

impl ReferenceOutput {
    /// How many outputs a fault-free run commits (the `records_committed` of a clean run).
    pub fn outputs(&self) -> u64 {
        match self {
            ReferenceOutput::Counts(counts) => counts.values().sum(),
            ReferenceOutput::Records(records) => {
                records.partitions as u64 * records.records_per_partition
            }
        }
    }
}

/// The output a fault-free run of `spec` commits, or why the spec has none: the spec is invalid
/// (the [`JobGraph`] rejects it), its source exceeds what [`record_at`] addresses, or its
/// pipeline continues after the count with something other than an exchange.
///
/// O(records) time; O(distinct keys) memory for a count job, O(1) otherwise.
pub fn reference_output(spec: &JobSpec) -> Result<ReferenceOutput, String> {
    // Only a job that can run has an output; this also guarantees a key_by before the count.
    JobGraph::from_spec(spec)?;
    // Every source's partitions hold as many records (the JobGraph checked it); the source log
    // numbers their partitions one after another.
    let partitions = spec.total_partitions();
    let records = spec.source.records;
    if partitions > PARTITIONS_MAX {
        return Err(format!(
            "source partitions {partitions} exceed the source log's limit of {PARTITIONS_MAX}"
        ));
    }
    if records > RECORDS_PER_PARTITION_MAX {
        return Err(format!(
            "source records {records} per partition exceed the source log's limit of \
             {RECORDS_PER_PARTITION_MAX}"
        ));
    }

    let mut key_bys = Vec::new();
    let mut maps = 0u32;
    // The index of the count operator, once seen.
    let mut count_at: Option<usize> = None;
    for (index, operator) in spec.operators.iter().enumerate() {
        match (&operator.kind, count_at) {
            (OperatorKind::Rebalance | OperatorKind::Forward, _) => {}
            (OperatorKind::KeyBy { keys }, None) => key_bys.push(*keys),
            (OperatorKind::Map, None) => maps += 1,
            (OperatorKind::Count, None) => count_at = Some(index),
            (kind, Some(count)) => {
                // A count emits (key, count) pairs, not records; re-keying or mapping them has no
                // agreed meaning yet, so refuse rather than guess.
                return Err(format!(
                    "operators[{index}] ({}) follows the count at operators[{count}]: only \
                     rebalance and forward may follow a count",
                    kind.name()
                ));
            }
        }
    }

    if count_at.is_none() {
        return Ok(ReferenceOutput::Records(RecordsReference {
            partitions,
            records_per_partition: records,
            key_bys,
            maps,
        }));
    }
    // The job graph requires a key_by right before the count.
    assert!(!key_bys.is_empty());
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for partition in 0..partitions {
        for offset in 0..records {
            let key = key_bys
                .iter()
                .fold(record_at(partition, offset).key, |key, &keys| {
                    keyed(key, keys)
                });
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    let reference = ReferenceOutput::Counts(counts);
    assert_eq!(reference.outputs(), partitions as u64 * records);
    Ok(reference)
}

/// Checks a count job's committed output against its reference, exactly once: per key `k` the
/// committed counts are exactly `1..=n_k`, each once, in any order, and no other key appears.
///
/// The error names the first problem in (key, count) order, e.g. "key 17: count 311 committed
/// twice", "key 4: counts 12..15 missing" (a range is inclusive at both ends), "key 99 committed
/// but never produced", "key 30: count 4 committed but only counts 1..3 produced".
///
/// Panics if `reference` is not of a count job: choosing the check is the caller's job.
pub fn check_exactly_once(
    reference: &ReferenceOutput,
    committed: &[CountOutput],
) -> Result<(), String> {
    check_counts(reference, committed, Repeats::Forbidden)
}

/// Checks a count job's committed output against its reference, at least once: nothing lost
/// (every `(k, c)` with `1 <= c <= n_k` committed), repeats allowed. Anything else is still an
/// error — a key never produced, or a count outside `1..=n_k` — because keyed state is restored
/// from a checkpoint consistently with the source offsets even when the sink is only
/// at-least-once, so a replay repeats identical outputs and never invents new ones.
///
/// Messages as for [`check_exactly_once`]. Panics if `reference` is not of a count job.
pub fn check_at_least_once(
    reference: &ReferenceOutput,
    committed: &[CountOutput],
) -> Result<(), String> {
    check_counts(reference, committed, Repeats::Allowed)
}

/// Checks a records job's committed output against its reference, exactly once: every source
/// position committed exactly once, and each committed record equal to
/// [`RecordsReference::expected`] of its position. Positions are checked before contents; the
/// error names the first problem in (partition, offset) order, e.g. "partition 1: offset 7
/// committed twice", "partition 2: offsets 10..19 missing", "partition 3 committed but never
/// produced", "partition 0: offset 4 committed with key 3, value 10 but the reference has key 5,
/// value 11".
///
/// Panics if `reference` is not of a records job.
pub fn check_records_exactly_once(
    reference: &ReferenceOutput,
    committed: &[Record],
) -> Result<(), String> {
    check_records(reference, committed, Repeats::Forbidden)
}

/// As [`check_records_exactly_once`], but a position may be committed more than once (every copy
/// must still equal the expected record).
pub fn check_records_at_least_once(
    reference: &ReferenceOutput,
    committed: &[Record],
) -> Result<(), String> {
    check_records(reference, committed, Repeats::Allowed)
}

/// Whether a check accepts an output committed more than once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeats {
    Forbidden,
    Allowed,
}

/// The words a check's messages use for a group of outputs and an item within it.
struct Words {
    group: &'static str,
    item: &'static str,
    items: &'static str,
}

const COUNT_WORDS: Words = Words {
    group: "key",
    item: "count",
    items: "counts",
};

const RECORD_WORDS: Words = Words {
    group: "partition",
    item: "offset",
    items: "offsets",
};

fn check_counts(
    reference: &ReferenceOutput,
    committed: &[CountOutput],
    repeats: Repeats,
) -> Result<(), String> {
    let ReferenceOutput::Counts(counts) = reference else {
        panic!("a count check needs the reference of a count job, not {reference:?}");
    };
    let expected = counts.iter().map(|(&key, &n)| {
        assert!(n >= 1, "key {key}: a reference key has at least one record");
        (key, 1, n + 1)
    });
    let mut positions: Vec<(u64, u64)> = committed.iter().map(|o| (o.key, o.count)).collect();
    positions.sort_unstable();
    check_positions(&COUNT_WORDS, expected, &positions, repeats)
}

fn check_records(
    reference: &ReferenceOutput,
    committed: &[Record],
    repeats: Repeats,
) -> Result<(), String> {
    let ReferenceOutput::Records(records) = reference else {
        panic!("a records check needs the reference of a records job, not {reference:?}");
    };
    // An empty partition has no group, so a record in it reads "committed but never produced".
    let expected = (0..records.partitions)
        .filter(|_| records.records_per_partition > 0)
        .map(|partition| (partition as u64, 0, records.records_per_partition));
    let mut sorted = committed.to_vec();
    sorted.sort_unstable();
    let positions: Vec<(u64, u64)> = sorted
        .iter()
        .map(|r| (r.partition as u64, r.offset))
        .collect();
    check_positions(&RECORD_WORDS, expected, &positions, repeats)?;
    for record in &sorted {
        let want = records.expected(record.partition, record.offset);
        if *record != want {
            return Err(format!(
                "partition {}: offset {} committed with key {}, value {} but the reference has \
                 key {}, value {}",
                record.partition, record.offset, record.key, record.value, want.key, want.value
            ));
        }
    }
    Ok(())
}

/// Compares committed `(group, item)` pairs, sorted, with the expected groups, each
/// `(group, first, end)` expecting the items `first..end` once (or at least once), ascending by
/// group. Returns the first problem in (group, item) order.
fn check_positions(
    words: &Words,
    expected: impl Iterator<Item = (u64, u64, u64)>,
    committed: &[(u64, u64)],
    repeats: Repeats,
) -> Result<(), String> {
    assert!(committed.is_sorted());
    let mut expected = expected.peekable();
    let mut committed_groups = committed.chunk_by(|a, b| a.0 == b.0).peekable();
    let mut previous_group: Option<u64> = None;
    loop {
        let next_expected = expected.peek().map(|&(group, _, _)| group);
        let next_committed = committed_groups.peek().map(|items| items[0].0);
        let (group, first, end, items) = match (next_expected, next_committed) {
            (None, None) => return Ok(()),
            (Some(e), c) if c.is_none_or(|c| e < c) => {
                let (group, first, end) = expected.next().expect("peeked");
                (group, first, end, &[][..])
            }
            (e, Some(c)) if e.is_none_or(|e| c < e) => {
                return Err(format!("{} {c} committed but never produced", words.group));
            }
            (Some(e), Some(c)) => {
                assert_eq!(e, c);
                let (group, first, end) = expected.next().expect("peeked");
                (group, first, end, committed_groups.next().expect("peeked"))
            }
            (None, Some(_)) | (Some(_), None) => unreachable!("the guards above cover these"),
        };
        if let Some(previous) = previous_group {
            assert!(previous < group, "expected groups ascend");
        }
        previous_group = Some(group);
        check_group(words, group, first, end, items, repeats)?;
    }
}

/// Checks one group's committed items (sorted, all of `group`) against `first..end`.
fn check_group(
    words: &Words,
    group: u64,
    first: u64,
    end: u64,
    items: &[(u64, u64)],
    repeats: Repeats,
) -> Result<(), String> {
    assert!(first < end, "an expected group is not empty");
    // The smallest expected item not yet seen committed.
    let mut next = first;
    for run in items.chunk_by(|a, b| a == b) {
        let (item_group, item) = run[0];
        assert_eq!(item_group, group);
        if item > next && next < end {
            let last_missing = item.min(end) - 1;
            return Err(format!(
                "{} {group}: {} missing",
                words.group,
                describe(words, next, last_missing)
            ));
        }
        if item < first || item >= end {
            return Err(format!(
                "{} {group}: {} {item} committed but only {} produced",
                words.group,
                words.item,
                describe(words, first, end - 1)
            ));
        }
        if run.len() > 1 && repeats == Repeats::Forbidden {
            let times = match run.len() {
                2 => "twice".to_string(),
                n => format!("{n} times"),
            };
            return Err(format!(
                "{} {group}: {} {item} committed {times}",
                words.group, words.item
            ));
        }
        // `item < end`, so this cannot overflow.
        next = item + 1;
    }
    if next < end {
        return Err(format!(
            "{} {group}: {} missing",
            words.group,
            describe(words, next, end - 1)
        ));
    }
    assert_eq!(next, end);
    Ok(())
}

/// "count 12" or "counts 12..15" (inclusive).
fn describe(words: &Words, first: u64, last: u64) -> String {
    assert!(first <= last);
    if first == last {
        format!("{} {first}", words.item)
    } else {
        format!("{} {first}..{last}", words.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::job_graph::{OperatorSpec, SinkKind, SinkSpec, SourceSpec};

    fn job(partitions: u32, records: u64, operators: Vec<OperatorKind>) -> JobSpec {
        JobSpec {
            name: "reference-test".into(),
            parallelism: 4,
            max_parallelism: None,
            chaining: true,
            source: SourceSpec {
                partitions,
                records,
                rate_per_sec: None,
            },
            more_sources: Vec::new(),
            operators: operators
                .into_iter()
                .map(|kind| OperatorSpec {
                    kind,
                    name: None,
                    parallelism: None,
                })
                .collect(),
            sink: SinkSpec {
                kind: SinkKind::TwoPhaseCommit,
                parallelism: None,
            },
        }
    }

    /// docs/scenarios.md's example job.
    fn keyed_count() -> JobSpec {
        job(
            4,
            20_000,
            vec![OperatorKind::KeyBy { keys: 64 }, OperatorKind::Count],
        )
    }

    /// A naive fault-free run of a count job, written independently of `reference_output`: reads
    /// the partitions round-robin, one record each in turn, and keeps a running count per key.
    fn naive_count_run(partitions: u32, records: u64, key_bys: &[u32]) -> Vec<CountOutput> {
        let mut running: BTreeMap<u64, u64> = BTreeMap::new();
        let mut output = Vec::new();
        for offset in 0..records {
            for partition in 0..partitions {
                let mut key = record_at(partition, offset).key;
                for &keys in key_bys {
                    key %= keys as u64;
                }
                let count = running.entry(key).or_insert(0);
                *count += 1;
                output.push(CountOutput { key, count: *count });
            }
        }
        output
    }

    fn counts(table: &[(u64, u64)]) -> ReferenceOutput {
        ReferenceOutput::Counts(table.iter().copied().collect())
    }

    /// Every (key, 1..=n) of a count reference, in key then count order.
    fn exact(reference: &ReferenceOutput) -> Vec<CountOutput> {
        let ReferenceOutput::Counts(counts) = reference else {
            unreachable!()
        };
        counts
            .iter()
            .flat_map(|(&key, &n)| (1..=n).map(move |count| CountOutput { key, count }))
            .collect()
    }

    fn out(key: u64, count: u64) -> CountOutput {
        CountOutput { key, count }
    }

    #[test]
    fn keyed_count_example_produces_80_000_counts_over_64_keys() {
        let reference = reference_output(&keyed_count()).unwrap();
        let ReferenceOutput::Counts(counts) = &reference else {
            panic!("{reference:?}");
        };
        assert_eq!(counts.len(), 64);
        assert_eq!(
            counts.keys().copied().collect::<Vec<_>>(),
            (0..64).collect::<Vec<_>>()
        );
        assert_eq!(counts.values().sum::<u64>(), 80_000);
        assert_eq!(reference.outputs(), 80_000);
        // The mean is 1 250; keys spread evenly.
        for (&key, &n) in counts {
            assert!((1_000..=1_500).contains(&n), "key {key}: {n}");
        }
        // The naive run agrees, and is exactly once.
        let naive = naive_count_run(4, 20_000, &[64]);
        assert_eq!(naive.len(), 80_000);
        check_exactly_once(&reference, &naive).unwrap();
    }

    #[test]
    fn count_references_agree_with_a_naive_run() {
        use OperatorKind::*;
        // (partitions, records, operators, the key_bys the naive run applies)
        let table: Vec<(u32, u64, Vec<OperatorKind>, Vec<u32>)> = vec![
            (1, 1, vec![KeyBy { keys: 1 }, Count], vec![1]),
            (2, 50, vec![KeyBy { keys: 5 }, Count], vec![5]),
            (
                3,
                40,
                vec![Map, KeyBy { keys: 7 }, Count, Rebalance],
                vec![7],
            ),
            (
                2,
                100,
                vec![KeyBy { keys: 10 }, Map, KeyBy { keys: 3 }, Count],
                vec![10, 3],
            ),
            (
                4,
                30,
                vec![Rebalance, Map, KeyBy { keys: 1_000 }, Count],
                vec![1_000],
            ),
        ];
        for (index, (partitions, records, operators, key_bys)) in table.into_iter().enumerate() {
            let reference = reference_output(&job(partitions, records, operators)).unwrap();
            let naive = naive_count_run(partitions, records, &key_bys);
            assert_eq!(reference.outputs(), naive.len() as u64, "case {index}");
            check_exactly_once(&reference, &naive).unwrap_or_else(|e| panic!("case {index}: {e}"));
            let mut sorted = naive.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, exact(&reference), "case {index}");
        }
    }

    #[test]
    fn a_job_without_records_has_an_empty_reference() {
        let reference = reference_output(&job(
            3,
            0,
            vec![OperatorKind::KeyBy { keys: 4 }, OperatorKind::Count],
        ))
        .unwrap();
        assert_eq!(reference, counts(&[]));
        check_exactly_once(&reference, &[]).unwrap();
        assert_eq!(
            check_exactly_once(&reference, &[out(2, 1)]).unwrap_err(),
            "key 2 committed but never produced"
        );
        let reference = reference_output(&job(3, 0, vec![OperatorKind::Map])).unwrap();
        assert_eq!(reference.outputs(), 0);
        check_records_exactly_once(&reference, &[]).unwrap();
        assert_eq!(
            check_records_exactly_once(&reference, &[record_at(0, 0)]).unwrap_err(),
            "partition 0 committed but never produced"
        );
    }

    #[test]
    fn specs_without_a_reference_are_rejected_with_a_reason() {
        use OperatorKind::*;
        // (spec, a fragment the error must contain)
        let too_many_partitions = {
            let mut spec = job(1, 1, vec![Map]);
            spec.source.partitions = PARTITIONS_MAX + 1;
            spec
        };
        let too_many_records = job(1, RECORDS_PER_PARTITION_MAX + 1, vec![Map]);
        let mut zero_parallelism = keyed_count();
        zero_parallelism.parallelism = 0;
        let table = [
            (
                job(1, 1, vec![KeyBy { keys: 2 }, Count, Map]),
                "operators[2] (map) follows the count at operators[1]",
            ),
            (
                job(
                    1,
                    1,
                    vec![KeyBy { keys: 2 }, Count, KeyBy { keys: 2 }, Count],
                ),
                "operators[2] (key_by) follows the count at operators[1]",
            ),
            (
                job(1, 1, vec![Map, KeyBy { keys: 2 }, Count, Forward, Map]),
                "operators[4] (map) follows the count at operators[2]",
            ),
            // The job graph's own validation passes through.
            (zero_parallelism, "job parallelism 0"),
            (job(1, 1, vec![Count]), "needs a key_by"),
            (too_many_partitions, "source partitions 16777217 exceed"),
            (
                too_many_records,
                "source records 1099511627777 per partition exceed",
            ),
        ];
        for (index, (spec, fragment)) in table.iter().enumerate() {
            let error = reference_output(spec).expect_err(&format!("case {index} must fail"));
            assert!(
                error.contains(fragment),
                "case {index}: {error:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn check_exactly_once_accepts_the_exact_output_in_any_order() {
        let reference = counts(&[(4, 20), (17, 400), (30, 3)]);
        let in_order = exact(&reference);
        let mut reversed = in_order.clone();
        reversed.reverse();
        let mut by_count = in_order.clone();
        by_count.sort_by_key(|o| (o.count, o.key));
        for committed in [in_order, reversed, by_count] {
            check_exactly_once(&reference, &committed).unwrap();
            check_at_least_once(&reference, &committed).unwrap();
        }
    }

    /// Applies `mutation` to the exact output of `reference` and returns the result.
    fn mutate(
        reference: &ReferenceOutput,
        mutation: &dyn Fn(&mut Vec<CountOutput>),
    ) -> Vec<CountOutput> {
        let mut committed = exact(reference);
        mutation(&mut committed);
        committed
    }

    #[test]
    fn check_exactly_once_names_the_first_problem() {
        let reference = counts(&[(4, 20), (17, 400), (30, 3)]);
        type Mutation = Box<dyn Fn(&mut Vec<CountOutput>)>;
        // (mutation, the exact message)
        let table: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.push(out(17, 311))),
                "key 17: count 311 committed twice",
            ),
            (
                Box::new(|c| c.extend([out(17, 311), out(17, 311)])),
                "key 17: count 311 committed 3 times",
            ),
            (
                Box::new(|c| c.retain(|o| !(o.key == 4 && (12..=15).contains(&o.count)))),
                "key 4: counts 12..15 missing",
            ),
            (
                Box::new(|c| c.retain(|&o| o != out(4, 12))),
                "key 4: count 12 missing",
            ),
            (
                Box::new(|c| c.retain(|&o| o != out(4, 1))),
                "key 4: count 1 missing",
            ),
            (
                Box::new(|c| c.retain(|o| !(o.key == 4 && o.count >= 19))),
                "key 4: counts 19..20 missing",
            ),
            (
                Box::new(|c| c.push(out(99, 1))),
                "key 99 committed but never produced",
            ),
            (
                Box::new(|c| c.push(out(0, 5))),
                "key 0 committed but never produced",
            ),
            (
                Box::new(|c| c.push(out(18, 1))),
                "key 18 committed but never produced",
            ),
            (
                Box::new(|c| c.retain(|o| o.key != 30)),
                "key 30: counts 1..3 missing",
            ),
            (
                Box::new(|c| c.retain(|o| o.key != 4)),
                "key 4: counts 1..20 missing",
            ),
            (Box::new(|c| c.clear()), "key 4: counts 1..20 missing"),
            (
                Box::new(|c| c.push(out(30, 4))),
                "key 30: count 4 committed but only counts 1..3 produced",
            ),
            (
                Box::new(|c| c.push(out(30, 0))),
                "key 30: count 0 committed but only counts 1..3 produced",
            ),
            (
                Box::new(|c| c.retain(|&o| o != out(30, 3))),
                "key 30: count 3 missing",
            ),
            (
                // A gap comes before a count past the end in count order.
                Box::new(|c| {
                    c.retain(|&o| o != out(30, 3));
                    c.push(out(30, 5));
                }),
                "key 30: count 3 missing",
            ),
            (
                // The smallest key with a problem is named, whatever the order of the list.
                Box::new(|c| {
                    c.push(out(17, 311));
                    c.retain(|&o| o != out(4, 7));
                    c.reverse();
                }),
                "key 4: count 7 missing",
            ),
            (
                // Within a key, the smallest count with a problem.
                Box::new(|c| {
                    c.push(out(17, 300));
                    c.retain(|&o| o != out(17, 5));
                }),
                "key 17: count 5 missing",
            ),
        ];
        for (index, (mutation, message)) in table.iter().enumerate() {
            let committed = mutate(&reference, mutation);
            assert_eq!(
                check_exactly_once(&reference, &committed),
                Err(message.to_string()),
                "case {index}"
            );
        }
    }

    #[test]
    fn check_at_least_once_accepts_repeats_but_not_losses() {
        let reference = counts(&[(4, 20), (17, 400), (30, 3)]);
        type Mutation = Box<dyn Fn(&mut Vec<CountOutput>)>;
        // (mutation, the exact message, or None when accepted)
        let table: Vec<(Mutation, Option<&str>)> = vec![
            (Box::new(|_| {}), None),
            (Box::new(|c| c.push(out(17, 311))), None),
            (
                // A replay from a checkpoint repeats a suffix of each key.
                Box::new(|c| {
                    let replay: Vec<_> = c.iter().filter(|o| o.count > 10).copied().collect();
                    c.extend(replay);
                }),
                None,
            ),
            (
                Box::new(|c| {
                    let all = c.clone();
                    c.extend(all.iter().rev());
                    c.extend(all);
                }),
                None,
            ),
            (
                Box::new(|c| c.retain(|o| !(o.key == 4 && (12..=15).contains(&o.count)))),
                Some("key 4: counts 12..15 missing"),
            ),
            (
                Box::new(|c| {
                    c.push(out(4, 1));
                    c.retain(|&o| o != out(30, 2));
                }),
                Some("key 30: count 2 missing"),
            ),
            (Box::new(|c| c.clear()), Some("key 4: counts 1..20 missing")),
            (
                Box::new(|c| c.push(out(99, 1))),
                Some("key 99 committed but never produced"),
            ),
            (
                Box::new(|c| c.push(out(30, 4))),
                Some("key 30: count 4 committed but only counts 1..3 produced"),
            ),
        ];
        for (index, (mutation, message)) in table.iter().enumerate() {
            let committed = mutate(&reference, mutation);
            assert_eq!(
                check_at_least_once(&reference, &committed),
                message.map_or(Ok(()), |m| Err(m.to_string())),
                "case {index}"
            );
        }
    }

    #[test]
    fn records_references_apply_key_bys_and_maps_in_order() {
        use OperatorKind::*;
        // (operators, expected key_bys, expected maps)
        let table: Vec<(Vec<OperatorKind>, Vec<u32>, u32)> = vec![
            (vec![], vec![], 0),
            (vec![Map], vec![], 1),
            (vec![Rebalance, Map, Forward], vec![], 1),
            (vec![KeyBy { keys: 8 }], vec![8], 0),
            (
                vec![KeyBy { keys: 10 }, Map, Rebalance, Map, KeyBy { keys: 3 }],
                vec![10, 3],
                2,
            ),
        ];
        for (index, (operators, key_bys, maps)) in table.into_iter().enumerate() {
            let reference = reference_output(&job(3, 100, operators)).unwrap();
            let ReferenceOutput::Records(records) = &reference else {
                panic!("case {index}: {reference:?}");
            };
            assert_eq!(
                *records,
                RecordsReference {
                    partitions: 3,
                    records_per_partition: 100,
                    key_bys: key_bys.clone(),
                    maps,
                },
                "case {index}"
            );
            assert_eq!(reference.outputs(), 300);
            let source = record_at(2, 41);
            let mut key = source.key;
            for keys in &key_bys {
                key %= *keys as u64;
            }
            let want = Record {
                key,
                value: source.value.wrapping_add(maps as u64),
                ..source
            };
            assert_eq!(records.expected(2, 41), want, "case {index}");
        }
    }

    #[test]
    fn check_records_names_the_first_problem() {
        let reference = reference_output(&job(
            3,
            100,
            vec![OperatorKind::Map, OperatorKind::KeyBy { keys: 16 }],
        ))
        .unwrap();
        let ReferenceOutput::Records(records) = &reference else {
            panic!("{reference:?}");
        };
        let exact: Vec<Record> = (0..3)
            .flat_map(|p| (0..100).map(move |o| (p, o)))
            .map(|(p, o)| records.expected(p, o))
            .collect();
        let mut shuffled = exact.clone();
        shuffled.sort_by_key(|r| (r.offset, std::cmp::Reverse(r.partition)));
        check_records_exactly_once(&reference, &exact).unwrap();
        check_records_exactly_once(&reference, &shuffled).unwrap();
        check_records_at_least_once(&reference, &shuffled).unwrap();

        let expected = |p: u32, o: u64| records.expected(p, o);
        let unmapped = Record {
            value: record_at(0, 4).value,
            ..expected(0, 4)
        };
        type Mutation<'a> = Box<dyn Fn(&mut Vec<Record>) + 'a>;
        // (mutation, exactly-once message, at-least-once message)
        let table: Vec<(Mutation, Option<String>, Option<String>)> = vec![
            (
                Box::new(|c| c.push(expected(1, 7))),
                Some("partition 1: offset 7 committed twice".into()),
                None,
            ),
            (
                Box::new(|c| c.retain(|r| !(r.partition == 2 && (10..20).contains(&r.offset)))),
                Some("partition 2: offsets 10..19 missing".into()),
                Some("partition 2: offsets 10..19 missing".into()),
            ),
            (
                Box::new(|c| c.push(record_at(3, 0))),
                Some("partition 3 committed but never produced".into()),
                Some("partition 3 committed but never produced".into()),
            ),
            (
                Box::new(|c| c.push(record_at(0, 100))),
                Some("partition 0: offset 100 committed but only offsets 0..99 produced".into()),
                Some("partition 0: offset 100 committed but only offsets 0..99 produced".into()),
            ),
            (
                Box::new(|c| c[4] = unmapped),
                Some(format!(
                    "partition 0: offset 4 committed with key {}, value {} but the reference \
                     has key {}, value {}",
                    unmapped.key,
                    unmapped.value,
                    expected(0, 4).key,
                    expected(0, 4).value
                )),
                Some(format!(
                    "partition 0: offset 4 committed with key {}, value {} but the reference \
                     has key {}, value {}",
                    unmapped.key,
                    unmapped.value,
                    expected(0, 4).key,
                    expected(0, 4).value
                )),
            ),
            (
                // A repeat must still carry the right content.
                Box::new(|c| c.push(unmapped)),
                Some("partition 0: offset 4 committed twice".into()),
                Some(format!(
                    "partition 0: offset 4 committed with key {}, value {} but the reference \
                     has key {}, value {}",
                    unmapped.key,
                    unmapped.value,
                    expected(0, 4).key,
                    expected(0, 4).value
                )),
            ),
        ];
        for (index, (mutation, exactly_once, at_least_once)) in table.iter().enumerate() {
            let mut committed = exact.clone();
            mutation(&mut committed);
            assert_eq!(
                check_records_exactly_once(&reference, &committed),
                exactly_once.clone().map_or(Ok(()), Err),
                "case {index}"
            );
            assert_eq!(
                check_records_at_least_once(&reference, &committed),
                at_least_once.clone().map_or(Ok(()), Err),
                "case {index}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "a count check needs the reference of a count job")]
    fn a_count_check_of_a_records_reference_is_a_bug() {
        let reference = reference_output(&job(1, 1, vec![OperatorKind::Map])).unwrap();
        let _ = check_exactly_once(&reference, &[]);
    }

    #[test]
    #[should_panic(expected = "a records check needs the reference of a records job")]
    fn a_records_check_of_a_count_reference_is_a_bug() {
        let _ = check_records_exactly_once(&counts(&[(1, 1)]), &[]);
    }

    #[test]
    fn reference_of_the_largest_example_is_cheap() {
        // 4 partitions × 100 000 records, the largest size a scenario is expected to use.
        let spec = job(
            4,
            100_000,
            vec![OperatorKind::KeyBy { keys: 64 }, OperatorKind::Count],
        );
        let reference = reference_output(&spec).unwrap();
        assert_eq!(reference.outputs(), 400_000);
        let ReferenceOutput::Counts(counts) = &reference else {
            panic!("{reference:?}");
        };
        assert_eq!(counts.len(), 64);
        check_exactly_once(&reference, &exact(&reference)).unwrap();
    }
}
