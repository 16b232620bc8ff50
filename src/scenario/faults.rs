//! Validation of scripted `[[faults]]`: when, what (kills, partitions, pauses, clock steps,
//! task failures...) and on which nodes or subtasks.

use super::*;

impl Validator<'_> {
    pub(super) fn fault(
        &self,
        f: &Spanned<raw::Fault>,
        nodes: &[String],
        duration: Duration,
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<FaultSpec, ScenarioError> {
        let span = f.span();
        let r = f.get_ref();
        let at = self.duration(&r.at, "`at`")?;
        if at > duration {
            return Err(self.err(
                r.at.span(),
                format!(
                    "`at` = {:?} is after the scenario's duration ({:?})",
                    at, duration
                ),
            ));
        }
        let actions = [
            r.fail_task.is_some(),
            r.kill.is_some(),
            r.start.is_some(),
            r.pause.is_some(),
            r.resume.is_some(),
            r.partition.is_some(),
            r.heal.is_some(),
            r.clog.is_some(),
            r.clock_jump.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            return Err(self.err(
                span,
                format!(
                                        "a [[faults]] entry needs exactly one action (kill, start, pause, resume, partition, heal, clog, clock_jump or fail_task); this one has {actions}"
                ),
            ));
        }
        let opt =
            |d: &Option<Spanned<String>>, what: &str| -> Result<Option<Duration>, ScenarioError> {
                d.as_ref().map(|d| self.duration(d, what)).transpose()
            };
        // Keys that belong to another action are mistakes, not silently ignored.
        let stray = |present: bool, key: &str, action: &str| -> Result<(), ScenarioError> {
            if present {
                Err(self.err(
                    span.clone(),
                    format!("`{key}` belongs to `{action}`, not to this fault"),
                ))
            } else {
                Ok(())
            }
        };
        let action = if let Some(n) = &r.kill {
            FaultAction::Kill(self.node(n, nodes)?)
        } else if let Some(n) = &r.start {
            FaultAction::Start(self.node(n, nodes)?)
        } else if let Some(n) = &r.pause {
            FaultAction::Pause {
                node: self.node(n, nodes)?,
                resume_after: opt(&r.resume_after, "`resume_after`")?,
            }
        } else if let Some(n) = &r.resume {
            FaultAction::Resume(self.node(n, nodes)?)
        } else if let Some(g) = &r.partition {
            FaultAction::Partition {
                groups: self.groups(g, nodes, "`partition`")?,
                one_way: r.one_way.unwrap_or(false),
                heal_after: opt(&r.heal_after, "`heal_after`")?,
            }
        } else if r.heal.is_some() {
            FaultAction::Heal
        } else if let Some(g) = &r.clog {
            let extra = match &r.extra {
                Some(e) => self.duration(e, "`extra`")?,
                None => {
                    return Err(self.err(
                        span,
                        "`clog` needs `extra`, the added latency (e.g. \"200ms\")",
                    ))
                }
            };
            FaultAction::Clog {
                groups: self.groups(g, nodes, "`clog`")?,
                one_way: r.one_way.unwrap_or(false),
                extra,
                clear_after: opt(&r.clear_after, "`clear_after`")?,
            }
        } else if let Some(t) = &r.fail_task {
            self.fail_task(t, graph)?
        } else if let Some(n) = &r.clock_jump {
            let by = match &r.by {
                Some(b) => self.signed_duration(b, "`by`")?,
                None => {
                    return Err(self.err(span, "`clock_jump` needs `by`, e.g. \"-5s\" or \"30s\""))
                }
            };
            FaultAction::ClockJump {
                node: self.node(n, nodes)?,
                by_ns: by,
            }
        } else {
            unreachable!("exactly one action")
        };
        let is = |k: &str| match &action {
            FaultAction::Pause { .. } => k == "pause",
            FaultAction::Partition { .. } => k == "partition",
            FaultAction::Clog { .. } => k == "clog",
            FaultAction::ClockJump { .. } => k == "clock_jump",
            _ => false,
        };
        stray(
            r.resume_after.is_some() && !is("pause"),
            "resume_after",
            "pause",
        )?;
        stray(
            r.heal_after.is_some() && !is("partition"),
            "heal_after",
            "partition",
        )?;
        stray(
            r.one_way.is_some() && !is("partition") && !is("clog"),
            "one_way",
            "partition",
        )?;
        stray(r.extra.is_some() && !is("clog"), "extra", "clog")?;
        stray(
            r.clear_after.is_some() && !is("clog"),
            "clear_after",
            "clog",
        )?;
        stray(r.by.is_some() && !is("clock_jump"), "by", "clock_jump")?;
        Ok(FaultSpec {
            at,
            action,
            line: self.line_of(&span),
        })
    }

    /// `fail_task = "count[1]"`: an operator name or kind and a subtask index.
    pub(super) fn fail_task(
        &self,
        t: &Spanned<String>,
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<FaultAction, ScenarioError> {
        let Some(graph) = graph else {
            return Err(self.err(t.span(), "`fail_task` needs a [job]"));
        };
        let text = t.get_ref().trim();
        let parsed = text
            .strip_suffix(']')
            .and_then(|x| x.split_once('['))
            .and_then(|(op, idx)| idx.trim().parse::<u32>().ok().map(|i| (op.trim(), i)));
        let Some((operator, subtask)) = parsed else {
            return Err(self.err(
                t.span(),
                format!(
                    "`fail_task`: expected \"operator[subtask]\" like \"count[1]\", got `{text}`"
                ),
            ));
        };
        let Some(vertex) = graph.find_vertex(operator) else {
            let names: Vec<String> = graph
                .vertices
                .iter()
                .flat_map(|v| v.operators.iter().map(|o| o.name.clone()))
                .collect();
            return Err(self.err(
                t.span(),
                format!(
                    "`fail_task`: no operator named `{operator}`; the job has {}",
                    names.join(", ")
                ),
            ));
        };
        let p = graph.vertex(vertex).parallelism;
        if subtask >= p {
            return Err(self.err(
                t.span(),
                format!("`fail_task`: subtask {subtask} out of range; `{operator}` has parallelism {p} (subtasks 0..{})", p - 1),
            ));
        }
        Ok(FaultAction::FailTask {
            operator: operator.to_string(),
            vertex,
            subtask,
        })
    }
}
