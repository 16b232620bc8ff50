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
            r.delay.is_some(),
            r.drop.is_some(),
            r.drop_reply.is_some(),
            r.slow.is_some(),
            r.isolate_from.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            return Err(self.err(
                span,
                format!(
                    "a [[faults]] entry needs exactly one action (kill, start, pause, resume, partition, isolate_from, heal, clog, clock_jump, fail_task, delay, drop, drop_reply or slow); this one has {actions}"
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
            FaultAction::Kill(self.target(n, nodes, graph)?)
        } else if let Some(n) = &r.start {
            FaultAction::Start(self.target(n, nodes, graph)?)
        } else if let Some(n) = &r.pause {
            FaultAction::Pause {
                node: self.target(n, nodes, graph)?,
                resume_after: opt(&r.resume_after, "`resume_after`")?,
            }
        } else if let Some(n) = &r.resume {
            FaultAction::Resume(self.target(n, nodes, graph)?)
        } else if let Some(g) = &r.partition {
            FaultAction::Partition {
                groups: self.groups(g, nodes, graph, "`partition`")?,
                one_way: r.one_way.unwrap_or(false),
                heal_after: opt(&r.heal_after, "`heal_after`")?,
            }
        } else if let Some(x) = &r.isolate_from {
            self.isolate(x, r.nodes.as_ref(), nodes, graph)?
                .with_partition(
                    r.one_way.unwrap_or(false),
                    opt(&r.heal_after, "`heal_after`")?,
                )
        } else if let Some((fault, kinds)) = self.message_fault(r)? {
            let names = |v: &Option<Spanned<toml::Value>>, what: &str| match v {
                Some(v) => self.targets_list(v, nodes, graph, what),
                None => Ok(Vec::new()),
            };
            let count = match &r.count {
                Some(c) => Some(self.count(c, "`count`", 1..1_000_001)? as u32),
                None => None,
            };
            let lasting = opt(&r.lasting, "`lasting`")?;
            FaultAction::Messages {
                fault,
                kinds,
                from: names(&r.from, "`from`")?,
                to: names(&r.to, "`to`")?,
                // Neither a count nor a window: the next matching message only.
                count: count.or(lasting.is_none().then_some(1)),
                lasting,
            }
        } else if let Some(n) = &r.slow {
            let per_event = match &r.per_event {
                Some(d) => self.duration(d, "`per_event`")?,
                None => return Err(self.err(
                    span,
                    "`slow` needs `per_event`, how long each event takes the node (e.g. \"200ms\")",
                )),
            };
            if per_event.is_zero() {
                return Err(self.err(span, "`per_event` must be greater than zero"));
            }
            FaultAction::Slow {
                node: self.target(n, nodes, graph)?,
                per_event,
                lasting: opt(&r.lasting, "`lasting`")?,
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
                groups: self.groups(g, nodes, graph, "`clog`")?,
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
                node: self.target(n, nodes, graph)?,
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
            FaultAction::Messages { fault, .. } => {
                k == "message" || matches!(fault, MessageFault::Delay(_)) && k == "delay"
            }
            FaultAction::Slow { .. } => k == "slow",
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
            "partition, isolate_from or clog",
        )?;
        stray(r.extra.is_some() && !is("clog"), "extra", "clog")?;
        stray(
            r.clear_after.is_some() && !is("clog"),
            "clear_after",
            "clog",
        )?;
        stray(
            r.by.is_some() && !is("clock_jump") && !is("delay"),
            "by",
            "clock_jump or delay",
        )?;
        stray(
            (r.from.is_some() || r.to.is_some() || r.count.is_some()) && !is("message"),
            "from, to and count",
            "delay, drop or drop_reply",
        )?;
        stray(
            r.lasting.is_some() && !is("message") && !is("slow"),
            "lasting",
            "delay, drop, drop_reply or slow",
        )?;
        stray(r.per_event.is_some() && !is("slow"), "per_event", "slow")?;
        stray(
            r.nodes.is_some() && r.isolate_from.is_none(),
            "nodes",
            "isolate_from",
        )?;
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
        let (operator, vertex, subtask) =
            self.subtask(t.span(), t.get_ref(), graph, "`fail_task`")?;
        Ok(FaultAction::FailTask {
            operator,
            vertex,
            subtask,
        })
    }

    /// `"count[1]"` (an operator name or kind and a subtask index) of the job, for `what`.
    pub(super) fn subtask(
        &self,
        span: Range<usize>,
        text: &str,
        graph: Option<&model::protocol::job_graph::JobGraph>,
        what: &str,
    ) -> Result<(String, model::protocol::job_graph::JobVertexId, u32), ScenarioError> {
        let Some(graph) = graph else {
            return Err(self.err(span, format!("{what} needs a [job]")));
        };
        let text = text.trim();
        let Some((operator, subtask)) = parse_subtask(text) else {
            return Err(self.err(
                span,
                format!("{what}: expected \"operator[subtask]\" like \"count[1]\", got `{text}`"),
            ));
        };
        let Some(vertex) = graph.find_vertex(operator) else {
            let names: Vec<String> = graph
                .vertices
                .iter()
                .flat_map(|v| v.operators.iter().map(|o| o.name.clone()))
                .collect();
            return Err(self.err(
                span,
                format!(
                    "{what}: no operator named `{operator}`; the job has {}",
                    names.join(", ")
                ),
            ));
        };
        let p = graph.vertex(vertex).parallelism;
        if subtask >= p {
            return Err(self.err(
                span,
                format!("{what}: subtask {subtask} out of range; `{operator}` has parallelism {p} (subtasks 0..{})", p - 1),
            ));
        }
        Ok((operator.to_string(), vertex, subtask))
    }

    /// A node a fault acts on: a node name, or a role resolved when the fault fires (`leader`,
    /// `random-taskmanager`, `taskmanager-of:count[1]`).
    pub(super) fn target(
        &self,
        name: &Spanned<String>,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<String, ScenarioError> {
        let text = name.get_ref().trim();
        if let Some(rest) = text.strip_prefix(Target::TASKMANAGER_OF) {
            self.subtask(name.span(), rest, graph, "`taskmanager-of:`")?;
            return Ok(text.to_string());
        }
        if Target::is_role(text) {
            return Ok(text.to_string());
        }
        self.node(name, nodes)
    }

    /// A node name or a list of them (roles allowed), for `what`.
    pub(super) fn targets_list(
        &self,
        v: &Spanned<toml::Value>,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
        what: &str,
    ) -> Result<Vec<String>, ScenarioError> {
        self.strings(v, what)?
            .into_iter()
            .map(|n| self.target(&Spanned::new(v.span(), n), nodes, graph))
            .collect()
    }

    /// A string or a non-empty list of strings.
    pub(super) fn strings(
        &self,
        v: &Spanned<toml::Value>,
        what: &str,
    ) -> Result<Vec<String>, ScenarioError> {
        let bad = || {
            self.err(
                v.span(),
                format!("{what}: expected a string or a list of strings"),
            )
        };
        match v.get_ref() {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
                .collect(),
            _ => Err(bad()),
        }
    }

    /// `delay`, `drop` or `drop_reply` with the message kinds it names (each one of
    /// `flinksim list rpcs`, or `"*"` for every message).
    fn message_fault(
        &self,
        r: &raw::Fault,
    ) -> Result<Option<(MessageFault, Vec<String>)>, ScenarioError> {
        let (fault, v) = if let Some(v) = &r.delay {
            let by = match &r.by {
                Some(b) => self.duration(b, "`by`")?,
                None => {
                    return Err(self.err(
                        v.span(),
                        "`delay` needs `by`, how long the messages are held (e.g. \"15s\")",
                    ))
                }
            };
            (MessageFault::Delay(by), v)
        } else if let Some(v) = &r.drop {
            (MessageFault::Drop, v)
        } else if let Some(v) = &r.drop_reply {
            (MessageFault::DropReply, v)
        } else {
            return Ok(None);
        };
        let what = format!("`{}`", fault.key());
        let kinds = self.message_kinds(v, &what, fault == MessageFault::DropReply)?;
        if kinds.iter().any(|k| k == "*") {
            return Ok(Some((fault, Vec::new())));
        }
        Ok(Some((fault, kinds)))
    }

    /// Message kinds: each one of `flinksim list rpcs` or `"*"` for every message; with
    /// `requests`, no reply (the fault loses the reply of the requests it names).
    pub(super) fn message_kinds(
        &self,
        v: &Spanned<toml::Value>,
        what: &str,
        requests: bool,
    ) -> Result<Vec<String>, ScenarioError> {
        let kinds = self.strings(v, what)?;
        for k in kinds.iter().filter(|k| *k != "*") {
            let known = model::protocol::rpc::RPC_KINDS
                .iter()
                .any(|rk| sim::fault::kind_matches(k, rk.gateway, rk.name));
            if !known {
                return Err(self.err(
                    v.span(),
                    format!(
                        "{what}: unknown message kind `{k}` (`flinksim list rpcs` lists them, e.g. \"submitTask\", \"submitTask.response\", \"jobmaster.heartbeatFromTaskManager\", or \"*\" for all)"
                    ),
                ));
            }
            let reply = model::protocol::rpc::RPC_KINDS
                .iter()
                .any(|rk| rk.reply && sim::fault::kind_matches(k, rk.gateway, rk.name));
            if requests && reply {
                return Err(self.err(
                    v.span(),
                    format!("{what}: `{k}` is itself a reply; name the request whose reply is lost, or use `drop`"),
                ));
            }
        }
        Ok(kinds)
    }

    /// `isolate_from = "ha"` with `nodes`: those nodes (default every JobManager and
    /// TaskManager) cannot reach the one node, and it cannot reach them.
    fn isolate(
        &self,
        from: &Spanned<String>,
        group: Option<&Spanned<Vec<String>>>,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
    ) -> Result<Isolation, ScenarioError> {
        let from_node = self.target(from, nodes, graph)?;
        let members = match group {
            Some(g) => {
                if g.get_ref().is_empty() {
                    return Err(self.err(g.span(), "`nodes`: expected at least one node"));
                }
                g.get_ref()
                    .iter()
                    .map(|n| self.target(&Spanned::new(g.span(), n.clone()), nodes, graph))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => nodes
                .iter()
                .filter(|n| n.starts_with("jobmanager-") || n.starts_with("taskmanager-"))
                .filter(|n| **n != from_node)
                .cloned()
                .collect(),
        };
        if members.contains(&from_node) {
            return Err(self.err(
                from.span(),
                format!("`isolate_from`: `{from_node}` is also in `nodes`"),
            ));
        }
        Ok(Isolation {
            groups: vec![members, vec![from_node]],
        })
    }
}

/// The groups of an `isolate_from` fault, before its partition options.
struct Isolation {
    groups: Vec<Vec<String>>,
}

impl Isolation {
    fn with_partition(self, one_way: bool, heal_after: Option<Duration>) -> FaultAction {
        FaultAction::Partition {
            groups: self.groups,
            one_way,
            heal_after,
        }
    }
}
