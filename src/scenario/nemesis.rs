//! Validation of the `[nemesis]` table into the [`Nemesis`] that `crate::nemesis` draws a
//! fault schedule from per seed: time ranges, fault kinds and their weights and targets.

use super::*;

impl Validator<'_> {
    /// A `[nemesis]` range: "10s..40s" or a single duration, up to the longest scenario.
    pub(super) fn nemesis_range(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<DurationRange, ScenarioError> {
        let text = s.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let parse = |t: &str| {
            parse_duration(t).map_err(|e| {
                self.err(
                    s.span(),
                    format!("{what}: {e} (a single duration or a range like \"10s..40s\")"),
                )
            })
        };
        let (lo, hi) = (parse(a)?, parse(b)?);
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        if hi > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        if lo.is_zero() {
            return Err(self.err(
                s.span(),
                format!("{what}: must be greater than zero, got `{text}`"),
            ));
        }
        Ok(DurationRange { lo, hi })
    }

    pub(super) fn nemesis(
        &self,
        n: &Spanned<raw::Nemesis>,
        cluster: &Cluster,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
        duration: Duration,
    ) -> Result<Option<Nemesis>, ScenarioError> {
        let r = n.get_ref();
        // Checked in this order, so a file with several problems always reports the same one.
        self.nemesis_targets_exist(r, cluster, nodes, graph.is_some())?;
        let kill_taskmanager = self.outage(
            &r.kill_taskmanager,
            "kill_taskmanager",
            cluster.taskmanagers,
        )?;
        let partition = self.episode(&r.partition, "partition")?;
        let pause = self.episode(&r.pause, "pause")?;
        let kill_sink = self.outage(&r.kill_sink, "kill_sink", 1)?;
        let kill_checkpoint_storage =
            self.outage(&r.kill_checkpoint_storage, "kill_checkpoint_storage", 1)?;
        let clog = r
            .clog
            .as_ref()
            .map(|c| self.clog(c.get_ref()))
            .transpose()?;
        let clock_jump = r
            .clock_jump
            .as_ref()
            .map(|j| self.clock_jump(j.get_ref()))
            .transpose()?;
        let fail_task = match (&r.fail_task, graph) {
            (None, _) => None,
            (Some(f), None) => {
                return Err(self.err(f.span(), "`nemesis.fail_task` needs a [job]"));
            }
            (Some(f), Some(graph)) => Some(self.fail_task_entry(f.get_ref(), graph)?),
        };
        self.nemesis_needs_ha(r, nodes)?;
        let kill_jobmanager =
            self.outage(&r.kill_jobmanager, "kill_jobmanager", cluster.jobmanagers)?;
        let pause_jobmanager = self.episode(&r.pause_jobmanager, "pause_jobmanager")?;
        let kill_ha = self.outage(&r.kill_ha, "kill_ha", 1)?;
        let ha = nodes.iter().any(|n| n == "ha");
        let delay_messages = self.message_entry(&r.delay_messages, "delay_messages", ha)?;
        let drop_messages = self.message_entry(&r.drop_messages, "drop_messages", ha)?;
        let drop_replies = self.message_entry(&r.drop_replies, "drop_replies", ha)?;
        let isolate = r
            .isolate
            .as_ref()
            .map(|i| self.isolate_entry(i, nodes))
            .transpose()?;
        let slow = r
            .slow
            .as_ref()
            .map(|w| self.slow_entry(w.get_ref()))
            .transpose()?;
        let kill_leader = self.outage(&r.kill_leader, "kill_leader", 1)?;
        let pause_leader = self.episode(&r.pause_leader, "pause_leader")?;
        let any = kill_taskmanager.is_some()
            || partition.is_some()
            || pause.is_some()
            || kill_sink.is_some()
            || kill_checkpoint_storage.is_some()
            || clog.is_some()
            || clock_jump.is_some()
            || fail_task.is_some()
            || kill_jobmanager.is_some()
            || pause_jobmanager.is_some()
            || kill_ha.is_some()
            || delay_messages.is_some()
            || drop_messages.is_some()
            || drop_replies.is_some()
            || isolate.is_some()
            || slow.is_some()
            || kill_leader.is_some()
            || pause_leader.is_some();
        let quiet_after = self.quiet_after(n, any, duration)?;
        if !any {
            return Ok(None);
        }
        Ok(Some(Nemesis {
            kill_taskmanager,
            partition,
            pause,
            kill_sink,
            kill_checkpoint_storage,
            clog,
            clock_jump,
            fail_task,
            kill_jobmanager,
            pause_jobmanager,
            kill_ha,
            delay_messages,
            drop_messages,
            drop_replies,
            isolate,
            slow,
            kill_leader,
            pause_leader,
            swarm: r.swarm.as_ref().is_some_and(|s| *s.get_ref()),
            quiet_after,
        }))
    }

    /// The nodes the job-, TaskManager- and link-level entries aim at exist in this scenario.
    fn nemesis_targets_exist(
        &self,
        r: &raw::Nemesis,
        cluster: &Cluster,
        nodes: &[String],
        has_job: bool,
    ) -> Result<(), ScenarioError> {
        let needs_job = |o: &Option<Spanned<raw::Outage>>, key: &str, node: &str| {
            match o {
                Some(o) if !has_job => Err(self.err(
                    o.span(),
                    format!("`nemesis.{key}` needs a [job]: node `{node}` exists only in scenarios with a [job]"),
                )),
                _ => Ok(()),
            }
        };
        needs_job(&r.kill_sink, "kill_sink", "sink")?;
        needs_job(
            &r.kill_checkpoint_storage,
            "kill_checkpoint_storage",
            "checkpoint-storage",
        )?;
        if cluster.taskmanagers == 0 {
            for (key, span) in [
                (
                    "kill_taskmanager",
                    r.kill_taskmanager.as_ref().map(|x| x.span()),
                ),
                ("pause", r.pause.as_ref().map(|x| x.span())),
            ] {
                if let Some(span) = span {
                    return Err(self.err(
                        span,
                        format!("`nemesis.{key}` needs a TaskManager: `cluster.taskmanagers` is 0"),
                    ));
                }
            }
        }
        if let Some(p) = &r.partition {
            if nodes.len() < 2 {
                return Err(self.err(
                    p.span(),
                    "`nemesis.partition` needs at least two nodes to split",
                ));
            }
        }
        if let Some(c) = &r.clog {
            if nodes.len() < 2 {
                return Err(self.err(c.span(), "`nemesis.clog` needs at least two nodes to split"));
            }
        }
        Ok(())
    }

    /// The JobManager and `ha` entries need high availability (a second JobManager to take
    /// over, and the `ha` node).
    fn nemesis_needs_ha(&self, r: &raw::Nemesis, nodes: &[String]) -> Result<(), ScenarioError> {
        let ha = nodes.iter().any(|n| n == "ha");
        for (key, span) in [
            (
                "kill_jobmanager",
                r.kill_jobmanager.as_ref().map(|x| x.span()),
            ),
            (
                "pause_jobmanager",
                r.pause_jobmanager.as_ref().map(|x| x.span()),
            ),
            ("kill_ha", r.kill_ha.as_ref().map(|x| x.span())),
            ("kill_leader", r.kill_leader.as_ref().map(|x| x.span())),
            ("pause_leader", r.pause_leader.as_ref().map(|x| x.span())),
        ] {
            if let (Some(span), false) = (span, ha) {
                return Err(self.err(
                    span,
                    format!("`nemesis.{key}` needs high availability: set \"high-availability.type\" = \"ZOOKEEPER\" in [flink] (and `cluster.jobmanagers` > 1)"),
                ));
            }
        }
        Ok(())
    }

    /// An outage entry `nemesis.{key}` over `targets` candidate nodes.
    fn outage(
        &self,
        o: &Option<Spanned<raw::Outage>>,
        key: &str,
        targets: u32,
    ) -> Result<Option<Outage>, ScenarioError> {
        o.as_ref()
            .map(|o| {
                let o = o.get_ref();
                let nodes = match &o.nodes {
                    None => (1, 1),
                    Some(v) => self.count_range(v, &format!("`nemesis.{key}.nodes`"), targets)?,
                };
                Ok(Outage {
                    every: self.nemesis_range(&o.every, &format!("`nemesis.{key}.every`"))?,
                    down: self.nemesis_range(&o.down, &format!("`nemesis.{key}.down`"))?,
                    nodes,
                })
            })
            .transpose()
    }

    /// An episode entry `nemesis.{key}` (partitions, pauses).
    fn episode(
        &self,
        e: &Option<Spanned<raw::Episode>>,
        key: &str,
    ) -> Result<Option<Episode>, ScenarioError> {
        e.as_ref()
            .map(|e| {
                let e = e.get_ref();
                Ok(Episode {
                    every: self.nemesis_range(&e.every, &format!("`nemesis.{key}.every`"))?,
                    lasting: self.nemesis_range(&e.lasting, &format!("`nemesis.{key}.lasting`"))?,
                })
            })
            .transpose()
    }

    fn clog(&self, c: &raw::Clog) -> Result<crate::nemesis::Clog, ScenarioError> {
        Ok(crate::nemesis::Clog {
            every: self.nemesis_range(&c.every, "`nemesis.clog.every`")?,
            lasting: self.nemesis_range(&c.lasting, "`nemesis.clog.lasting`")?,
            extra: self.nemesis_range(&c.extra, "`nemesis.clog.extra`")?,
        })
    }

    fn clock_jump(&self, j: &raw::ClockJump) -> Result<crate::nemesis::ClockJumps, ScenarioError> {
        let text = j.by.get_ref();
        // "-30s..30s": the first ".." that is not part of a sign.
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let part = |t: &str| {
            self.signed_duration(
                &Spanned::new(j.by.span(), t.to_string()),
                "`nemesis.clock_jump.by`",
            )
        };
        let (lo, hi) = (part(a)?, part(b)?);
        if lo > hi {
            return Err(self.err(
                j.by.span(),
                format!("`nemesis.clock_jump.by`: range `{text}` is empty (low > high)"),
            ));
        }
        Ok(crate::nemesis::ClockJumps {
            every: self.nemesis_range(&j.every, "`nemesis.clock_jump.every`")?,
            by_ns: (lo, hi),
        })
    }

    /// `nemesis.fail_task`: failures of any subtask of any vertex of the job.
    fn fail_task_entry(
        &self,
        f: &raw::Every,
        graph: &model::protocol::job_graph::JobGraph,
    ) -> Result<crate::nemesis::TaskFailures, ScenarioError> {
        Ok(crate::nemesis::TaskFailures {
            every: self.nemesis_range(&f.every, "`nemesis.fail_task.every`")?,
            targets: graph
                .vertices
                .iter()
                .map(|v| crate::nemesis::TaskTarget {
                    operator: v.operators[0].name.clone(),
                    vertex: v.id,
                    parallelism: v.parallelism,
                })
                .collect(),
        })
    }

    /// `nemesis.delay_messages`, `drop_messages` or `drop_replies`: the kinds (default every
    /// RPC kind; for `drop_replies` every request that is answered; the `ha` node's only with
    /// high availability), `count` (default 1..3
    /// unless `lasting` is given), `lasting`, and `by` (delays only, required).
    fn message_entry(
        &self,
        m: &Option<Spanned<raw::MessageFaults>>,
        key: &str,
        ha: bool,
    ) -> Result<Option<crate::nemesis::MessageFaults>, ScenarioError> {
        let Some(m) = m else { return Ok(None) };
        let (span, m) = (m.span(), m.get_ref());
        let replies = key == "drop_replies";
        let kinds = match &m.kinds {
            Some(v) => self.message_kinds(v, &format!("`nemesis.{key}.kinds`"), replies)?,
            None => crate::nemesis::default_kinds(replies, ha),
        };
        let by = match (&m.by, key == "delay_messages") {
            (Some(b), true) => Some(self.nemesis_range(b, "`nemesis.delay_messages.by`")?),
            (None, true) => {
                return Err(self.err(
                    span,
                    "`nemesis.delay_messages` needs `by`, how long each message is held (e.g. by = \"1s..15s\")",
                ))
            }
            (Some(b), false) => {
                return Err(self.err(
                    b.span(),
                    format!("`nemesis.{key}.by`: only `delay_messages` holds messages"),
                ))
            }
            (None, false) => None,
        };
        let lasting = m
            .lasting
            .as_ref()
            .map(|l| self.nemesis_range(l, &format!("`nemesis.{key}.lasting`")))
            .transpose()?;
        let count = match &m.count {
            Some(c) => Some(self.count_range(c, &format!("`nemesis.{key}.count`"), 10_000)?),
            None if lasting.is_none() => Some(crate::nemesis::MESSAGE_COUNT_DEFAULT),
            None => None,
        };
        Ok(Some(crate::nemesis::MessageFaults {
            every: self.nemesis_range(&m.every, &format!("`nemesis.{key}.every`"))?,
            kinds,
            count,
            lasting,
            by,
        }))
    }

    /// `nemesis.isolate`: `from` (default `ha`, `checkpoint-storage`, `sink` and `source`,
    /// those the scenario has) names nodes that are not JobManagers or TaskManagers.
    fn isolate_entry(
        &self,
        i: &Spanned<raw::Isolate>,
        nodes: &[String],
    ) -> Result<crate::nemesis::Isolations, ScenarioError> {
        let (span, i) = (i.span(), i.get_ref());
        let cluster = |n: &str| n.starts_with("jobmanager-") || n.starts_with("taskmanager-");
        let from = match &i.from {
            Some(v) => {
                let from = self.strings(v, "`nemesis.isolate.from`")?;
                if let Some(bad) = from.iter().find(|f| !nodes.contains(f) || cluster(f)) {
                    return Err(self.err(
                        v.span(),
                        format!(
                            "`nemesis.isolate.from`: `{bad}` is not an external node of this scenario (expected some of {})",
                            nodes.iter().filter(|n| !cluster(n)).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                from
            }
            None => ["ha", "checkpoint-storage", "sink", "source"]
                .iter()
                .filter(|n| nodes.iter().any(|m| m == *n))
                .map(|n| n.to_string())
                .collect(),
        };
        if from.is_empty() || !nodes.iter().any(|n| cluster(n)) {
            return Err(self.err(
                span,
                "`nemesis.isolate` needs an external node (`ha`, `checkpoint-storage`, `sink` or `source`) and a JobManager or TaskManager to cut from it",
            ));
        }
        Ok(crate::nemesis::Isolations {
            every: self.nemesis_range(&i.every, "`nemesis.isolate.every`")?,
            lasting: self.nemesis_range(&i.lasting, "`nemesis.isolate.lasting`")?,
            from,
        })
    }

    fn slow_entry(&self, w: &raw::Slow) -> Result<crate::nemesis::Slowness, ScenarioError> {
        Ok(crate::nemesis::Slowness {
            every: self.nemesis_range(&w.every, "`nemesis.slow.every`")?,
            lasting: self.nemesis_range(&w.lasting, "`nemesis.slow.lasting`")?,
            per_event: self.nemesis_range(&w.per_event, "`nemesis.slow.per_event`")?,
        })
    }

    /// `nemesis.quiet_after`: required with any entry, and before the end of the run.
    fn quiet_after(
        &self,
        n: &Spanned<raw::Nemesis>,
        any: bool,
        duration: Duration,
    ) -> Result<Duration, ScenarioError> {
        Ok(match &n.get_ref().quiet_after {
            Some(q) => {
                let d = self.duration(q, "`nemesis.quiet_after`")?;
                if d >= duration {
                    return Err(self.err(
                        q.span(),
                        format!(
                            "`nemesis.quiet_after` = {d:?} must be before the scenario's duration ({duration:?}), so that recovery is judged after it"
                        ),
                    ));
                }
                d
            }
            None if any => {
                return Err(self.err(
                    n.span(),
                    "[nemesis] needs `quiet_after`, the time after which no new fault starts (e.g. quiet_after = \"80s\")",
                ))
            }
            None => Duration::ZERO,
        })
    }
}
