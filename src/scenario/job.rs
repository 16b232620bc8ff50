//! Validation of the `[job]` table into a [`JobSubmission`]: operators, parallelism, source
//! and sink, and rates.

use super::*;

impl Validator<'_> {
    pub(super) fn job(
        &self,
        j: &Spanned<raw::Job>,
        flink: &FlinkConfig,
    ) -> Result<JobSubmission, ScenarioError> {
        use model::protocol::job_graph::{
            JobSpec, OperatorKind, OperatorSpec, SinkKind, SinkSpec, SourceSpec,
        };
        let table = j.span();
        let j = j.get_ref();
        let name = j.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(j.name.span(), "`job.name` must not be empty"));
        }
        let parallelism = self.count(&j.parallelism, "`job.parallelism`", 1..32769)? as u32;
        let max_parallelism = match &j.max_parallelism {
            Some(m) => Some(self.count(m, "`job.max_parallelism`", 1..32769)? as u32),
            None => flink.max_parallelism,
        };
        let submit_at = match &j.submit_at {
            Some(d) => self.duration(d, "`job.submit_at`")?,
            None => Duration::ZERO,
        };
        let raw_sources: Vec<&Spanned<raw::Source>> = match (&j.source, &j.sources) {
            (Some(_), Some(s)) => {
                return Err(self.err(
                    s.span(),
                    "`job.source` and `job.sources` both given: use `source` for one source or `sources` for several",
                ))
            }
            (Some(s), None) => vec![s],
            (None, Some(s)) if s.get_ref().is_empty() => {
                return Err(self.err(s.span(), "`job.sources` must hold at least one source"))
            }
            (None, Some(s)) => s.get_ref().iter().collect(),
            (None, None) => {
                return Err(self.err(
                    table,
                    "`[job]` needs `source` (or `sources`, a list of sources whose union the first operator reads)",
                ))
            }
        };
        let mut sources = Vec::new();
        for src in raw_sources {
            let src = src.get_ref();
            if src.kind.get_ref() != "sequence" {
                return Err(self.err(
                    src.kind.span(),
                    format!(
                        "`source.kind`: expected \"sequence\", got `{}`",
                        src.kind.get_ref()
                    ),
                ));
            }
            let rate_per_sec = match &src.rate {
                None => None,
                Some(r) => Some(self.rate(r)?),
            };
            let records =
                self.count(&src.records, "`source.records`", 0..1_000_000_000_001)? as u64;
            if let Some(first) = sources.first().map(|s: &SourceSpec| s.records) {
                if records != first {
                    return Err(self.err(
                        src.records.span(),
                        format!(
                            "`source.records`: {records} differs from the first source's {first}; every source's partitions hold the same number of records"
                        ),
                    ));
                }
            }
            sources.push(SourceSpec {
                partitions: self.count(&src.partitions, "`source.partitions`", 1..100_001)? as u32,
                records,
                rate_per_sec,
            });
        }
        let mut sources = sources.into_iter();
        let source = sources.next().expect("at least one source");
        let more_sources: Vec<SourceSpec> = sources.collect();
        let mut operators = Vec::new();
        for op in &j.operators {
            let o = op.get_ref();
            let kind = match o.kind.get_ref().as_str() {
                "key_by" => OperatorKind::KeyBy {
                    keys: match &o.keys {
                        Some(k) => self.count(k, "`keys`", 1..1_000_000_001)? as u32,
                        None => return Err(self.err(op.span(), "`key_by` needs `keys`, the number of distinct keys")),
                    },
                },
                "rebalance" => OperatorKind::Rebalance,
                "forward" => OperatorKind::Forward,
                "map" => OperatorKind::Map,
                "count" => OperatorKind::Count,
                other => {
                    return Err(self.err(
                        o.kind.span(),
                        format!("operator `kind`: expected key_by, rebalance, forward, map or count, got `{other}`"),
                    ))
                }
            };
            if o.keys.is_some() && !matches!(kind, OperatorKind::KeyBy { .. }) {
                return Err(self.err(op.span(), "`keys` belongs to `key_by`"));
            }
            let parallelism = match &o.parallelism {
                Some(p) => Some(self.count(p, "operator `parallelism`", 1..32769)? as u32),
                None => None,
            };
            operators.push(OperatorSpec {
                kind,
                name: o.name.as_ref().map(|n| n.get_ref().clone()),
                parallelism,
            });
        }
        let sink = match &j.sink {
            None => SinkSpec {
                kind: SinkKind::Discard,
                parallelism: None,
            },
            Some(s) => {
                let s_ref = s.get_ref();
                let kind = match s_ref.kind.get_ref().as_str() {
                    "two_phase_commit" => SinkKind::TwoPhaseCommit,
                    "at_least_once" => SinkKind::AtLeastOnce,
                    "discard" => SinkKind::Discard,
                    other => {
                        return Err(self.err(
                            s_ref.kind.span(),
                            format!("`sink.kind`: expected two_phase_commit, at_least_once or discard, got `{other}`"),
                        ))
                    }
                };
                let parallelism = match &s_ref.parallelism {
                    Some(p) => Some(self.count(p, "`sink.parallelism`", 1..32769)? as u32),
                    None => None,
                };
                SinkSpec { kind, parallelism }
            }
        };
        Ok(JobSubmission {
            spec: JobSpec {
                name,
                parallelism,
                max_parallelism,
                chaining: flink.operator_chaining,
                source,
                more_sources,
                operators,
                sink,
            },
            submit_at,
        })
    }

    /// "1000/s", "60/min" or a plain number (per second).
    pub(super) fn rate(&self, r: &Spanned<toml::Value>) -> Result<u64, ScenarioError> {
        let bad = || {
            self.err(
                r.span(),
                "`source.rate`: expected records per partition like \"1000/s\" or \"600/min\"",
            )
        };
        let per_sec = match r.get_ref() {
            toml::Value::Integer(i) if *i > 0 => *i as u64,
            toml::Value::String(s) => {
                let (n, unit) = s.split_once('/').ok_or_else(bad)?;
                let n: u64 = n.trim().parse().map_err(|_| bad())?;
                match unit.trim() {
                    "s" | "sec" | "second" => n,
                    "min" | "minute" => n.div_ceil(60),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        if per_sec == 0 {
            return Err(bad());
        }
        Ok(per_sec)
    }
}
