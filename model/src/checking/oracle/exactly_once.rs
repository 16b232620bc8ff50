//! Exactly-once end to end (always, plus an end check): what the `sink` made visible equals the
//! fault-free reference of the job, each output once (docs/architecture.md "exactly-once end to end").
//!
//! Ground truth: the job's spec (`Setup::job`), from which [`reference_output`] computes what a
//! run without failures commits — never the model's own bookkeeping — and the sink's reports of
//! what became visible: `TransactionCommitted` (a two-phase-commit transaction's records, once,
//! at its first commit) and `RecordsWritten` (the at-least-once sink's appends).
//!
//! Which guarantee is judged follows the job: an `at_least_once` sink or
//! `execution.checkpointing.mode: AT_LEAST_ONCE` promise at least once (nothing lost, repeats
//! allowed); a `discard` sink commits nothing and is not judged; otherwise exactly once. In
//! AT_LEAST_ONCE mode barriers are not aligned, so records after a barrier may be in a snapshot
//! and a replay counts them again: a key's count may then run past its reference `n_k`, which is
//! tolerated; a count in `1..=n_k` that never arrives is still a loss.
//!
//! - On every commit (always): each output must be one the reference produces (a count
//!   `1 <= c <= n_k` of a known key; a record at a source position, equal to the expected
//!   record), and under exactly once it must not have been committed before ("key 17: count 311
//!   committed twice").
//! - At the end, for a job that reached FINISHED long enough before the end for its last commits
//!   to land (`pekko.ask.timeout` + four network latencies), the whole output is compared with
//!   the reference by [`check_exactly_once`] / [`check_records_exactly_once`] (or their
//!   at-least-once variants): this is where a loss shows. A job that did not finish has no
//!   complete output to compare; the per-commit checks are all that apply to it.
//!
//! One violation per job: after the first, the job's output is no longer judged.

use super::{secs, Invariant, Kind, Oracle, Setup, Violation};
use crate::checking::reference::{
    check_at_least_once, check_exactly_once, check_records_at_least_once,
    check_records_exactly_once, reference_output, ReferenceOutput,
};
use crate::protocol::checkpoint::{CheckpointingMode, Rec};
use crate::protocol::ids::JobId;
use crate::protocol::job_graph::SinkKind;
use crate::protocol::obs::Obs;
use crate::protocol::records::{CountOutput, Record};
use crate::protocol::states::JobStatus;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "exactly-once",
    kind: Kind::Always,
    description: "the sink's committed output equals the fault-free reference of the job: nothing committed twice (exactly once) or nothing lost (at-least-once sink or AT_LEAST_ONCE mode), and nothing the job never produces",
};

/// The guarantee the job's configuration promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarantee {
    ExactlyOnce,
    AtLeastOnce,
}

impl Guarantee {
    fn name(self) -> &'static str {
        match self {
            Guarantee::ExactlyOnce => "exactly once",
            Guarantee::AtLeastOnce => "at least once",
        }
    }
}

/// A set of (group, item) positions as one bitset per group: items of a group are dense
/// (counts `1..=n`, offsets `0..records`), and the oracle sees every output of a run.
#[derive(Debug, Default)]
struct Positions {
    groups: BTreeMap<u64, Vec<u64>>,
}

impl Positions {
    /// Adds a position; false when it was there already.
    fn insert(&mut self, (group, item): (u64, u64)) -> bool {
        let bits = self.groups.entry(group).or_default();
        let (word, bit) = ((item / 64) as usize, item % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let fresh = bits[word] & (1 << bit) == 0;
        bits[word] |= 1 << bit;
        fresh
    }
}

/// What one job committed so far.
#[derive(Debug, Default)]
struct Output {
    counts: Vec<CountOutput>,
    records: Vec<Record>,
    /// Under exactly once: every (key, count) or (partition, offset) committed, to see a repeat
    /// as it happens.
    seen: Positions,
    /// A violation was reported for this job: its output is no longer judged.
    violated: bool,
}

pub struct ExactlyOnce {
    /// `None`: not judged (no job, a `discard` sink, or a spec without a reference).
    reference: Option<Arc<ReferenceOutput>>,
    guarantee: Guarantee,
    sink: Option<NodeId>,
    /// How long after FINISHED the job's last commits may still be on their way to the sink.
    settle: Duration,
    outputs: BTreeMap<JobId, Output>,
    /// Jobs that reached FINISHED, and when (first time).
    finished: BTreeMap<JobId, Time>,
    /// AT_LEAST_ONCE mode: unaligned barriers let post-barrier records into keyed state, so a
    /// replay counts them again and a key's count may run past its reference `n`. Only losses
    /// (a count in `1..=n` never committed) are violations then.
    overcount_allowed: bool,
}

impl ExactlyOnce {
    pub fn new(setup: &Setup) -> ExactlyOnce {
        let at_least_once_mode = setup
            .config
            .checkpointing
            .is_some_and(|c| c.mode == CheckpointingMode::AtLeastOnce);
        let (reference, guarantee) = match setup.job.as_deref() {
            None => (None, Guarantee::ExactlyOnce),
            Some(job) => {
                let guarantee = match job.sink.kind {
                    SinkKind::AtLeastOnce => Guarantee::AtLeastOnce,
                    _ if at_least_once_mode => Guarantee::AtLeastOnce,
                    _ => Guarantee::ExactlyOnce,
                };
                // A spec without a reference is rejected before a run starts; nothing to judge.
                let reference = match job.sink.kind {
                    SinkKind::Discard => None,
                    _ => setup
                        .reference
                        .clone()
                        .or_else(|| reference_output(job).ok().map(Arc::new)),
                };
                (reference, guarantee)
            }
        };
        ExactlyOnce {
            reference,
            guarantee,
            sink: setup.topology.sink,
            settle: setup.config.ask_timeout + setup.latency_max * 4,
            outputs: BTreeMap::new(),
            finished: BTreeMap::new(),
            overcount_allowed: at_least_once_mode,
        }
    }

    /// Takes in the committed `recs` of `job_id`; returns the first problem with them.
    fn commit(&mut self, job_id: JobId, recs: &[Rec]) -> Option<String> {
        let reference = self.reference.as_deref()?;
        let output = self.outputs.entry(job_id).or_default();
        if output.violated {
            return None;
        }
        for rec in recs {
            let overcount = |n: u64| matches!(rec, Rec::Count(c) if c.count > n);
            let tolerated = self.overcount_allowed
                && matches!(reference, ReferenceOutput::Counts(counts)
                    if matches!(rec, Rec::Count(c) if counts.get(&c.key).is_some_and(|&n| overcount(n))));
            if let Some(why) = produced(reference, rec).filter(|_| !tolerated) {
                output.violated = true;
                return Some(why);
            }
            let position = match rec {
                Rec::Count(c) => (c.key, c.count),
                Rec::Record(r) => (u64::from(r.partition), r.offset),
            };
            if self.guarantee == Guarantee::ExactlyOnce && !output.seen.insert(position) {
                output.violated = true;
                return Some(match rec {
                    Rec::Count(c) => format!("key {}: count {} committed twice", c.key, c.count),
                    Rec::Record(r) => format!(
                        "partition {}: offset {} committed twice",
                        r.partition, r.offset
                    ),
                });
            }
            match rec {
                Rec::Count(c) => output.counts.push(*c),
                Rec::Record(r) => output.records.push(*r),
            }
        }
        None
    }

    fn violation(&self, at: Time, job_id: JobId, why: &str) -> Violation {
        Violation {
            invariant: INVARIANT.name,
            at,
            node: self.sink,
            message: format!("job {job_id:x} ({}): {why}", self.guarantee.name()),
        }
    }
}

/// Why the reference never produces `rec`, if it does not (the wording of `reference`'s checks).
fn produced(reference: &ReferenceOutput, rec: &Rec) -> Option<String> {
    match (reference, rec) {
        (ReferenceOutput::Counts(counts), Rec::Count(c)) => match counts.get(&c.key) {
            None => Some(format!("key {} committed but never produced", c.key)),
            Some(&n) if c.count == 0 || c.count > n => Some(format!(
                "key {}: count {} committed but only counts 1..{n} produced",
                c.key, c.count
            )),
            Some(_) => None,
        },
        (ReferenceOutput::Records(reference), Rec::Record(r)) => {
            if r.partition >= reference.partitions || reference.records_per_partition == 0 {
                return Some(format!(
                    "partition {} committed but never produced",
                    r.partition
                ));
            }
            if r.offset >= reference.records_per_partition {
                return Some(format!(
                    "partition {}: offset {} committed but only offsets 0..{} produced",
                    r.partition,
                    r.offset,
                    reference.records_per_partition - 1
                ));
            }
            let want = reference.expected(r.partition, r.offset);
            (*r != want).then(|| {
                format!(
                    "partition {}: offset {} committed with key {}, value {} but the reference has key {}, value {}",
                    r.partition, r.offset, r.key, r.value, want.key, want.value
                )
            })
        }
        (ReferenceOutput::Counts(_), Rec::Record(r)) => Some(format!(
            "the record of partition {} offset {} committed, but the job's output is counts",
            r.partition, r.offset
        )),
        (ReferenceOutput::Records(_), Rec::Count(c)) => Some(format!(
            "the count ({}, {}) committed, but the job's output is records",
            c.key, c.count
        )),
    }
}

impl Oracle for ExactlyOnce {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, _census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        let EventKind::Obs { obs, .. } = &ev.kind else {
            return;
        };
        let (job_id, records) = match obs {
            Obs::TransactionCommitted { txn, records, .. } => (txn.job_id, records),
            Obs::RecordsWritten { job_id, records } => (*job_id, records),
            Obs::JobStatusChanged {
                job_id,
                to: JobStatus::Finished,
                ..
            } => {
                self.finished.entry(*job_id).or_insert(ev.time);
                return;
            }
            _ => return,
        };
        if let Some(why) = self.commit(job_id, records) {
            out.push(self.violation(ev.time, job_id, &why));
        }
    }

    fn finish(&mut self, _census: &Census, end: Time, out: &mut Vec<Violation>) {
        let Some(reference) = self.reference.as_deref() else {
            return;
        };
        for (&job_id, &finished_at) in &self.finished {
            if end.saturating_since(finished_at) < self.settle {
                continue; // its last commits may still be on their way
            }
            let output = self.outputs.entry(job_id).or_default();
            if output.violated {
                continue;
            }
            let result = match (reference, self.guarantee) {
                (ReferenceOutput::Counts(_), Guarantee::ExactlyOnce) => {
                    check_exactly_once(reference, &output.counts)
                }
                (ReferenceOutput::Counts(counts), Guarantee::AtLeastOnce) => {
                    if self.overcount_allowed {
                        // Counts past a key's reference were tolerated as they came.
                        let within: Vec<CountOutput> = output
                            .counts
                            .iter()
                            .filter(|c| counts.get(&c.key).is_some_and(|&n| c.count <= n))
                            .copied()
                            .collect();
                        check_at_least_once(reference, &within)
                    } else {
                        check_at_least_once(reference, &output.counts)
                    }
                }
                (ReferenceOutput::Records(_), Guarantee::ExactlyOnce) => {
                    check_records_exactly_once(reference, &output.records)
                }
                (ReferenceOutput::Records(_), Guarantee::AtLeastOnce) => {
                    check_records_at_least_once(reference, &output.records)
                }
            };
            if let Err(why) = result {
                output.violated = true;
                let why = format!(
                    "{why} (the job finished at {finished_at}, {} before the end)",
                    secs(end.saturating_since(finished_at))
                );
                out.push(self.violation(end, job_id, &why));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM};
    use crate::protocol::checkpoint::{CheckpointConfig, TxnId};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::job_graph::{JobSpec, OperatorKind, OperatorSpec, SinkSpec, SourceSpec};
    use std::sync::Arc;

    const SINK: NodeId = NodeId(2);

    fn job(operators: Vec<OperatorKind>, sink: SinkKind) -> JobSpec {
        JobSpec {
            name: "exactly-once-test".into(),
            parallelism: 2,
            max_parallelism: None,
            chaining: true,
            source: SourceSpec {
                partitions: 2,
                records: 30,
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
                kind: sink,
                parallelism: None,
            },
        }
    }

    fn count_job(sink: SinkKind) -> JobSpec {
        job(
            vec![OperatorKind::KeyBy { keys: 3 }, OperatorKind::Count],
            sink,
        )
    }

    fn checkpointing(mode: CheckpointingMode) -> CheckpointConfig {
        CheckpointConfig {
            interval: Duration::from_secs(1),
            mode,
            timeout: Duration::from_secs(600),
            min_pause: Duration::ZERO,
            max_concurrent: 1,
            tolerable_failed: 0,
            num_retained: 1,
        }
    }

    fn oracle(spec: JobSpec, mode: CheckpointingMode) -> ExactlyOnce {
        let mut config = FlinkConfig::default();
        config.checkpointing = Some(checkpointing(mode));
        let mut s = setup(config);
        s.topology.sink = Some(SINK);
        s.job = Some(Arc::new(spec));
        ExactlyOnce::new(&s)
    }

    /// Every output of a fault-free run of `spec`, in reference order.
    fn all_outputs(spec: &JobSpec) -> Vec<Rec> {
        match reference_output(spec).unwrap() {
            ReferenceOutput::Counts(counts) => counts
                .iter()
                .flat_map(|(&key, &n)| {
                    (1..=n).map(move |count| Rec::Count(CountOutput { key, count }))
                })
                .collect(),
            ReferenceOutput::Records(r) => (0..r.partitions)
                .flat_map(|p| (0..r.records_per_partition).map(move |o| (p, o)))
                .map(|(p, o)| Rec::Record(r.expected(p, o)))
                .collect(),
        }
    }

    fn committed(n: u64, checkpoint_id: u64, recs: &[Rec]) -> Step {
        Step::Obs(
            SINK,
            Obs::TransactionCommitted {
                txn: TxnId {
                    job_id: 5,
                    subtask: 0,
                    epoch: 1,
                    n,
                },
                checkpoint_id: Some(checkpoint_id),
                records: Arc::from(recs),
            },
        )
    }

    fn finished() -> Step {
        Step::Obs(
            JM,
            Obs::JobStatusChanged {
                job_id: 5,
                job_master_id: 9,
                from: Some(JobStatus::Running),
                to: JobStatus::Finished,
            },
        )
    }

    fn run(o: &mut ExactlyOnce, steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        feed(o, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn a_complete_output_committed_in_transactions_holds() {
        let spec = count_job(SinkKind::TwoPhaseCommit);
        let all = all_outputs(&spec);
        let (first, second) = all.split_at(all.len() / 3);
        let steps = [
            (1_000, committed(1, 1, first)),
            (2_000, committed(2, 2, second)),
            (3_000, finished()),
        ];
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &steps, 60_000), vec![]);
    }

    #[test]
    fn a_count_committed_twice_is_caught_as_it_happens() {
        let spec = count_job(SinkKind::TwoPhaseCommit);
        let all = all_outputs(&spec);
        let Rec::Count(c) = all[4] else {
            unreachable!()
        };
        // A replayed transaction commits outputs already visible (no end of the run needed).
        let steps = [
            (1_000, committed(1, 1, &all[..10])),
            (2_000, committed(2, 2, &all[4..12])),
        ];
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        let w = world([true; 3]);
        let v = feed(&mut o, w.census(), &steps, None);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Time::from_millis(2_000));
        assert_eq!(v[0].node, Some(SINK));
        assert_eq!(
            v[0].message,
            format!(
                "job 5 (exactly once): key {}: count {} committed twice",
                c.key, c.count
            )
        );
    }

    #[test]
    fn a_lost_transaction_is_caught_once_the_job_finished() {
        let spec = count_job(SinkKind::TwoPhaseCommit);
        let all = all_outputs(&spec);
        let Rec::Count(c) = all[0] else {
            unreachable!()
        };
        // The first transaction's records never became visible.
        let steps = [(2_000, committed(2, 2, &all[3..])), (3_000, finished())];
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        let v = run(&mut o, &steps, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains(&format!("key {}: counts 1..3 missing", c.key)),
            "{}",
            v[0].message
        );
        // Without FINISHED (or too close to it) the output is incomplete, not wrong.
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &steps[..1], 60_000), vec![]);
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &steps, 3_001), vec![]);
    }

    #[test]
    fn a_count_the_job_never_produces_is_caught_even_before_it_finishes() {
        let spec = count_job(SinkKind::TwoPhaseCommit);
        let reference = reference_output(&spec).unwrap();
        let ReferenceOutput::Counts(counts) = &reference else {
            unreachable!()
        };
        let (&key, &n) = counts.iter().next().unwrap();
        let beyond = [Rec::Count(CountOutput { key, count: n + 1 })];
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        let v = run(&mut o, &[(1_000, committed(1, 1, &beyond))], 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].message,
            format!(
                "job 5 (exactly once): key {key}: count {} committed but only counts 1..{n} produced",
                n + 1
            )
        );
    }

    #[test]
    fn at_least_once_allows_repeats_but_not_losses() {
        let spec = count_job(SinkKind::AtLeastOnce);
        let all = all_outputs(&spec);
        let written = |recs: &[Rec]| {
            Step::Obs(
                SINK,
                Obs::RecordsWritten {
                    job_id: 5,
                    records: Arc::from(recs),
                },
            )
        };
        let repeats = [
            (1_000, written(&all[..20])),
            (2_000, written(&all[10..])),
            (3_000, finished()),
        ];
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &repeats, 60_000), vec![]);
        let lossy = [(1_000, written(&all[1..])), (3_000, finished())];
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        let v = run(&mut o, &lossy, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.starts_with("job 5 (at least once): key "),
            "{}",
            v[0].message
        );
        assert!(v[0].message.contains("count 1 missing"), "{}", v[0].message);
        // AT_LEAST_ONCE mode with a two-phase-commit sink promises the same.
        let spec = count_job(SinkKind::TwoPhaseCommit);
        let mut o = oracle(spec, CheckpointingMode::AtLeastOnce);
        let repeats = [
            (1_000, committed(1, 1, &all[..20])),
            (2_000, committed(2, 2, &all[10..])),
            (3_000, finished()),
        ];
        assert_eq!(run(&mut o, &repeats, 60_000), vec![]);
        // In AT_LEAST_ONCE mode a replay may count past a key's reference: tolerated, while a
        // loss is still caught.
        let CountOutput { key, count } = match all.last() {
            Some(Rec::Count(c)) => *c,
            other => panic!("a count job's output, got {other:?}"),
        };
        let beyond = Rec::Count(CountOutput {
            key,
            count: count + 1,
        });
        let spec = count_job(SinkKind::AtLeastOnce);
        let overcount = [
            (1_000, written(&all)),
            (2_000, written(&[beyond])),
            (3_000, finished()),
        ];
        let mut o = oracle(spec.clone(), CheckpointingMode::AtLeastOnce);
        assert_eq!(run(&mut o, &overcount, 60_000), vec![]);
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        let v = run(&mut o, &overcount, 60_000);
        assert_eq!(
            v.len(),
            1,
            "with aligned checkpoints an overcount is a violation"
        );
        let lossy = [(1_000, written(&all[1..])), (3_000, finished())];
        let mut o = oracle(spec, CheckpointingMode::AtLeastOnce);
        let v = run(&mut o, &lossy, 60_000);
        assert!(v[0].message.contains("count 1 missing"), "{}", v[0].message);
    }

    #[test]
    fn records_are_judged_by_position_and_content() {
        let spec = job(vec![OperatorKind::Map], SinkKind::TwoPhaseCommit);
        let all = all_outputs(&spec);
        let ok = [
            (1_000, committed(1, 1, &all[..7])),
            (2_000, committed(2, 2, &all[7..])),
            (3_000, finished()),
        ];
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &ok, 60_000), vec![]);
        // A record that skipped its map.
        let Rec::Record(mut r) = all[3] else {
            unreachable!()
        };
        r.value -= 1;
        let mut o = oracle(spec.clone(), CheckpointingMode::ExactlyOnce);
        let v = run(
            &mut o,
            &[(1_000, committed(1, 1, &[Rec::Record(r)]))],
            60_000,
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(&format!(
                "partition {}: offset {} committed with key {}, value {} but the reference has",
                r.partition, r.offset, r.key, r.value
            )),
            "{}",
            v[0].message
        );
        // The same position twice.
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        let twice = [
            (1_000, committed(1, 1, &all[..7])),
            (2_000, committed(2, 2, &all[6..])),
        ];
        let v = run(&mut o, &twice, 60_000);
        assert_eq!(v.len(), 1, "{v:?}");
        let Rec::Record(r) = all[6] else {
            unreachable!()
        };
        assert!(
            v[0].message.ends_with(&format!(
                "partition {}: offset {} committed twice",
                r.partition, r.offset
            )),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_discard_sink_or_no_job_is_not_judged() {
        let spec = count_job(SinkKind::Discard);
        let mut o = oracle(spec, CheckpointingMode::ExactlyOnce);
        assert_eq!(run(&mut o, &[(3_000, finished())], 60_000), vec![]);
        let mut o = ExactlyOnce::new(&setup(FlinkConfig::default()));
        assert_eq!(run(&mut o, &[(3_000, finished())], 60_000), vec![]);
    }
}
