//! Validation of `[expect]`: the final job status and checkpoint counts a run must reach.

use super::*;

impl Validator<'_> {
    pub(super) fn expect(
        &self,
        e: &raw::Expect,
        flink: &FlinkConfig,
        has_job: bool,
    ) -> Result<Expect, ScenarioError> {
        if let Some((key, _)) = e.other.iter().next() {
            return Err(ScenarioError {
                path: self.path.to_path_buf(),
                line: self.find_key_line(key),
                message: format!(
                                        "unknown key `{key}` in [expect]; expected one of `invariants`, `violation`, `taskmanagers_lost`, `job_status`, `min_completed_checkpoints`"
                ),
            });
        }
        let job_status = match &e.job_status {
            None => None,
            Some(j) => Some(
                model::protocol::states::JobStatus::from_name(j.get_ref()).ok_or_else(|| {
                    self.err(
                        j.span(),
                        format!(
                            "`expect.job_status`: expected one of {}, got `{}`",
                            model::protocol::states::JobStatus::ALL
                                .map(|s| s.name())
                                .join(", "),
                            j.get_ref()
                        ),
                    )
                })?,
            ),
        };
        let min_completed_checkpoints = match &e.min_completed_checkpoints {
            None => None,
            Some(m) => {
                let n = self.count(
                    m,
                    "`expect.min_completed_checkpoints`",
                    0..1_000_000_000_001,
                )? as u64;
                if flink.checkpointing.is_none() {
                    return Err(self.err(
                        m.span(),
                        "`expect.min_completed_checkpoints` needs checkpointing: set \"execution.checkpointing.interval\" in [flink]",
                    ));
                }
                if !has_job {
                    return Err(self.err(
                        m.span(),
                        "`expect.min_completed_checkpoints` needs a [job] to checkpoint",
                    ));
                }
                Some(n)
            }
        };
        let known = |name: &str, span: Range<usize>| -> Result<String, ScenarioError> {
            if model::checking::oracle::invariant(name).is_some() {
                Ok(name.to_string())
            } else {
                Err(self.err(
                    span,
                    format!(
                        "unknown invariant `{name}`; known: {}",
                        model::checking::oracle::INVARIANTS
                            .iter()
                            .map(|i| i.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        let invariants =
            match &e.invariants {
                None => None,
                Some(v) => match v.get_ref() {
                    toml::Value::String(s) if s == "all" => None,
                    toml::Value::Array(items) => {
                        let mut names = Vec::new();
                        for item in items {
                            match item.as_str() {
                                Some(s) => names.push(known(s, v.span())?),
                                None => return Err(self.err(
                                    v.span(),
                                    "`invariants`: expected \"all\" or a list of invariant names",
                                )),
                            }
                        }
                        Some(names)
                    }
                    _ => {
                        return Err(self.err(
                            v.span(),
                            "`invariants`: expected \"all\" or a list of invariant names",
                        ))
                    }
                },
            };
        let violation = e
            .violation
            .as_ref()
            .map(|v| known(v.get_ref(), v.span()))
            .transpose()?;
        let taskmanagers_lost = e
            .taskmanagers_lost
            .as_ref()
            .map(|n| {
                self.count(n, "`taskmanagers_lost`", 0..1_000_000)
                    .map(|n| n as u32)
            })
            .transpose()?;
        Ok(Expect {
            invariants,
            violation,
            taskmanagers_lost,
            job_status,
            min_completed_checkpoints,
        })
    }

    pub(super) fn find_key_line(&self, key: &str) -> Option<(usize, usize)> {
        let mut section = String::new();
        for (i, line) in self.source.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with('[') {
                section = t.to_string();
            } else if section.starts_with("[expect]") && t.starts_with(key) {
                return Some((i + 1, line.len() - t.len() + 1));
            }
        }
        None
    }
}
