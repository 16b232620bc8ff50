//! Validation of a raw spec into a [`Scenario`]: the checks every section shares (durations,
//! ranges, counts, node names, error positions) and the top-level sections (name, cluster,
//! bug, `[flink]`, network, clocks). The job, faults, nemesis and expectations have their own
//! files.

use super::*;

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) source: &'a str,
}

impl Validator<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let offset = span.start.min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError {
            path: self.path.to_path_buf(),
            line: Some((line, col)),
            message: message.into(),
        }
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        self.source[..span.start.min(self.source.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub(super) fn duration(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<Duration, ScenarioError> {
        let d =
            parse_duration(s.get_ref()).map_err(|e| self.err(s.span(), format!("{what}: {e}")))?;
        if d > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        Ok(d)
    }

    pub(super) fn signed_duration(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<i64, ScenarioError> {
        let text = s.get_ref().trim();
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let d = parse_duration(body).map_err(|e| self.err(s.span(), format!("{what}: {e}")))?;
        if d > DURATION_MAX {
            return Err(self.err(s.span(), format!("{what}: at most 7 days")));
        }
        let ns = d.as_nanos() as i64;
        Ok(if neg { -ns } else { ns })
    }

    pub(super) fn duration_range(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<DurationRange, ScenarioError> {
        let text = s.get_ref();
        let (lo, hi) = match text.split_once("..") {
            Some((a, b)) => (a, b),
            None => (text.as_str(), text.as_str()),
        };
        let parse = |t: &str| {
            parse_duration(t).map_err(|e| {
                self.err(
                    s.span(),
                    format!("{what}: {e} (a single duration or a range like \"1ms..5ms\")"),
                )
            })
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        if hi > Duration::from_secs(3600) {
            return Err(self.err(s.span(), format!("{what}: at most 1 hour")));
        }
        Ok(DurationRange { lo, hi })
    }

    pub(super) fn signed_range(
        &self,
        s: &Spanned<String>,
        what: &str,
    ) -> Result<(i64, i64), ScenarioError> {
        let text = s.get_ref();
        let (a, b) = text.split_once("..").unwrap_or((text, text));
        let mk = |t: &str| Spanned::new(s.span(), t.to_string());
        let (lo, hi) = (
            self.signed_duration(&mk(a), what)?,
            self.signed_duration(&mk(b), what)?,
        );
        if lo > hi {
            return Err(self.err(
                s.span(),
                format!("{what}: range `{text}` is empty (low > high)"),
            ));
        }
        Ok((lo, hi))
    }

    pub(super) fn count(
        &self,
        v: &Spanned<i64>,
        what: &str,
        range: Range<i64>,
    ) -> Result<i64, ScenarioError> {
        let n = *v.get_ref();
        if !range.contains(&n) {
            return Err(self.err(
                v.span(),
                format!(
                    "{what}: expected {}..={}, got {n}",
                    range.start,
                    range.end - 1
                ),
            ));
        }
        Ok(n)
    }

    pub(super) fn node(
        &self,
        name: &Spanned<String>,
        nodes: &[String],
    ) -> Result<String, ScenarioError> {
        let n = name.get_ref();
        if nodes.iter().any(|x| x == n) {
            return Ok(n.clone());
        }
        let hint = if n == "ha" {
            "node `ha` exists only with \"high-availability.type\" = \"ZOOKEEPER\" in [flink]"
                .to_string()
        } else if JOB_NODES.contains(&n.as_str()) {
            format!("node `{n}` exists only in scenarios with a [job]")
        } else {
            format!("unknown node `{n}`")
        };
        Err(self.err(
            name.span(),
            format!(
                "{hint}; nodes in this scenario: {} (names are jobmanager-N, taskmanager-N and, with a job, {})",
                compact_names(nodes),
                JOB_NODES.join(", ")
            ),
        ))
    }

    pub(super) fn groups(
        &self,
        g: &Spanned<Vec<Vec<String>>>,
        nodes: &[String],
        graph: Option<&model::protocol::job_graph::JobGraph>,
        what: &str,
    ) -> Result<Vec<Vec<String>>, ScenarioError> {
        let groups = g.get_ref();
        if groups.len() < 2 || groups.iter().any(|x| x.is_empty()) {
            return Err(self.err(
                g.span(),
                format!("{what}: expected at least two non-empty groups, like [[\"jobmanager-1\"], [\"taskmanager-1\"]]"),
            ));
        }
        let mut seen = Vec::new();
        for group in groups {
            for n in group {
                self.target(&Spanned::new(g.span(), n.clone()), nodes, graph)?;
                if seen.contains(n) {
                    return Err(self.err(g.span(), format!("{what}: node `{n}` is in two groups")));
                }
                seen.push(n.clone());
            }
        }
        Ok(groups.clone())
    }

    pub(super) fn validate(
        &self,
        raw: raw::Scenario,
        source: &str,
    ) -> Result<Scenario, ScenarioError> {
        let name = self.name(&raw.name)?;
        let duration = self.duration(&raw.duration, "`duration`")?;
        if duration.is_zero() {
            return Err(self.err(raw.duration.span(), "`duration` must be greater than zero"));
        }
        let seeds = match &raw.seeds {
            Some(s) => self.count(s, "`seeds`", 1..1_000_001)? as u64,
            None => 10,
        };

        let cluster = self.cluster(raw.cluster.as_ref())?;
        let bug = self.bug(raw.bug.as_ref())?;

        let flink = self.flink(raw.flink.as_ref())?;
        let ha = flink.high_availability != model::protocol::config::HighAvailability::None;
        if cluster.jobmanagers > 1 && !ha {
            let span = raw
                .cluster
                .as_ref()
                .and_then(|c| c.get_ref().jobmanagers.as_ref())
                .map(|j| j.span())
                .expect("jobmanagers > 1 was written");
            return Err(self.err(
                span,
                "`cluster.jobmanagers` > 1 requires high availability: set \"high-availability.type\" = \"ZOOKEEPER\" in [flink]",
            ));
        }
        // The external systems of a job are nodes too, and so is the `ha` node (the
        // ZooKeeper-like store) with high availability.
        let nodes = NodeLayout::new(&cluster, raw.job.is_some(), ha).fault_targets();

        let network = self.network(raw.network.as_ref(), &nodes)?;

        let clocks = self.clocks(raw.clocks.as_ref())?;

        let job = match &raw.job {
            Some(j) => Some(self.job(j, &flink)?),
            None => None,
        };
        let graph = match &job {
            Some(j) => Some(
                model::protocol::job_graph::JobGraph::from_spec(&j.spec).map_err(|e| {
                    self.err(raw.job.as_ref().expect("job").span(), format!("[job]: {e}"))
                })?,
            ),
            None => None,
        };

        let mut faults = Vec::new();
        for f in &raw.faults {
            faults.push(self.fault(f, &nodes, duration, graph.as_ref())?);
        }
        faults.sort_by_key(|f| f.at);

        let nemesis = match &raw.nemesis {
            None => None,
            Some(n) => self.nemesis(n, &cluster, &nodes, graph.as_ref(), duration)?,
        };

        let swarm = match &raw.swarm {
            None => None,
            Some(sw) => Some(self.swarm(sw, raw.job.is_some())?),
        };

        let expect = match &raw.expect {
            None => Expect::default(),
            Some(e) => self.expect(e, &flink, job.is_some())?,
        };

        Ok(Scenario {
            name,
            description: raw.description.clone(),
            path: self.path.to_path_buf(),
            source: source.to_string(),
            duration,
            seeds,
            cluster,
            flink,
            job,
            network,
            clocks,
            faults,
            expect,
            bug,
            nemesis,
            knobs: Vec::new(),
            swarm,
        })
    }

    /// Whether a drawn variant of this file (`None`: it could not be written) is a valid
    /// scenario; the error's message if not.
    fn parses(&self, text: Option<String>) -> Result<(), String> {
        let text = text.ok_or_else(|| "it cannot be written into the file".to_string())?;
        super::Scenario::parse(self.path, &text)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// `[swarm]`: ranges within bounds, and every combination of their ends with every
    /// operator alternative makes a valid scenario.
    fn swarm(
        &self,
        sw: &Spanned<raw::Swarm>,
        has_job: bool,
    ) -> Result<super::JobSwarm, ScenarioError> {
        let r = sw.get_ref();
        if r.parallelism.is_none()
            && r.slots.is_none()
            && r.sources.is_none()
            && r.operators.is_empty()
            && r.flink.is_empty()
        {
            return Err(self.err(
                sw.span(),
                "[swarm] expects at least one of `parallelism`, `slots`, `sources`, `operators` or a [swarm.flink] option",
            ));
        }
        // Each alternative value of a Flink option must make a valid scenario on its own.
        for (key, values) in &r.flink {
            if values.get_ref().is_empty() {
                return Err(self.err(
                    values.span(),
                    format!("[swarm.flink] `{key}` expects a non-empty list of alternative values"),
                ));
            }
            for (i, value) in values.get_ref().iter().enumerate() {
                let text = super::with_job_shape(
                    self.source,
                    super::JobShape::default(),
                    &[(key.as_str(), value)],
                );
                if let Err(why) = self.parses(text) {
                    return Err(self.err(
                        values.span(),
                        format!(
                            "[swarm.flink] `{key}` alternative {} ({value}): {why}",
                            i + 1
                        ),
                    ));
                }
            }
        }
        if !has_job && (r.parallelism.is_some() || r.sources.is_some() || !r.operators.is_empty()) {
            return Err(self.err(
                sw.span(),
                "[swarm] `parallelism`, `sources` and `operators` need a [job]",
            ));
        }
        let sources = match &r.sources {
            Some(v) => {
                let range = self.count_range(v, "`swarm.sources`", super::SWARM_SOURCES_MAX)?;
                let single = toml::from_str::<toml::Table>(self.source)
                    .ok()
                    .and_then(|t| t.get("job")?.as_table()?.get("source").cloned());
                if single.is_none() {
                    return Err(self.err(
                        v.span(),
                        "`swarm.sources` copies `[job] source`: the job must give one `source` (not `sources`)",
                    ));
                }
                Some(range)
            }
            None => None,
        };
        let parallelism = match &r.parallelism {
            Some(v) => {
                Some(self.count_range(v, "`swarm.parallelism`", super::SWARM_PARALLELISM_MAX)?)
            }
            None => None,
        };
        let slots = match &r.slots {
            Some(v) => Some(self.count_range(v, "`swarm.slots`", super::SWARM_SLOTS_MAX)?),
            None => None,
        };
        let ends = |range: Option<(u32, u32)>| match range {
            Some((lo, hi)) => vec![Some(lo), Some(hi)],
            None => vec![None],
        };
        let alternatives: Vec<(Option<toml::Value>, std::ops::Range<usize>)> =
            if r.operators.is_empty() {
                vec![(None, sw.span())]
            } else {
                r.operators
                    .iter()
                    .map(|o| (Some(toml::Value::Array(o.get_ref().clone())), o.span()))
                    .collect()
            };
        for (i, (ops, span)) in alternatives.iter().enumerate() {
            for p in ends(parallelism) {
                for n in ends(slots) {
                    for k in ends(sources) {
                        let shape = super::JobShape {
                            parallelism: p,
                            slots: n,
                            operators: ops.as_ref(),
                            sources: k,
                        };
                        let text = super::with_job_shape(self.source, shape, &[]);
                        if let Err(why) = self.parses(text) {
                            let mut with = Vec::new();
                            if let Some(p) = p {
                                with.push(format!("parallelism {p}"));
                            }
                            if let Some(n) = n {
                                with.push(format!("{n} slots"));
                            }
                            if let Some(k) = k {
                                with.push(format!("{k} sources"));
                            }
                            if ops.is_some() {
                                with.push(format!("operators alternative {}", i + 1));
                            }
                            return Err(self.err(
                                span.clone(),
                                format!("[swarm]: with {}: {why}", with.join(", ")),
                            ));
                        }
                    }
                }
            }
        }
        Ok(super::JobSwarm {
            parallelism,
            slots,
            sources,
            operators: alternatives.into_iter().filter_map(|(o, _)| o).collect(),
            flink: r
                .flink
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                .collect(),
        })
    }

    /// `name`: it names the report folder, so only letters, digits, '-', '_' and '.'.
    fn name(&self, name: &Spanned<String>) -> Result<String, ScenarioError> {
        let text = name.get_ref().trim().to_string();
        if text.is_empty()
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(self.err(
                name.span(),
                "`name`: expected a non-empty name of letters, digits, '-', '_' or '.' (it names the report folder)",
            ));
        }
        Ok(text)
    }

    /// `[cluster]`: how many JobManagers, TaskManagers and spare TaskManagers.
    fn cluster(&self, cluster: Option<&Spanned<raw::Cluster>>) -> Result<Cluster, ScenarioError> {
        Ok(match cluster {
            None => Cluster {
                jobmanagers: 1,
                taskmanagers: 1,
                spare_taskmanagers: 0,
            },
            Some(c) => {
                let c_ref = c.get_ref();
                let jobmanagers = match &c_ref.jobmanagers {
                    Some(j) => self.count(j, "`cluster.jobmanagers`", 1..10)?,
                    None => 1,
                };
                let taskmanagers = self.count(
                    &c_ref.taskmanagers,
                    "`cluster.taskmanagers`",
                    0..NODES_MAX as i64,
                )?;
                let spare = match &c_ref.spare_taskmanagers {
                    Some(s) => self.count(
                        s,
                        "`cluster.spare_taskmanagers`",
                        0..(NODES_MAX as i64 - taskmanagers),
                    )?,
                    None => 0,
                };
                Cluster {
                    jobmanagers: jobmanagers as u32,
                    taskmanagers: taskmanagers as u32,
                    spare_taskmanagers: spare as u32,
                }
            }
        })
    }

    /// `bug`: the name of a planted bug, if any.
    fn bug(
        &self,
        bug: Option<&Spanned<String>>,
    ) -> Result<Option<model::checking::bugs::Bug>, ScenarioError> {
        Ok(match bug {
            None => None,
            Some(b) => Some(
                model::checking::bugs::Bug::from_name(b.get_ref().trim()).ok_or_else(|| {
                    self.err(
                        b.span(),
                        format!(
                            "unknown bug `{}`; planted bugs: {}",
                            b.get_ref(),
                            model::checking::bugs::Bug::ALL
                                .iter()
                                .map(|b| b.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
            ),
        })
    }

    /// `[flink]`: Flink's configuration keys over Flink's defaults, then the checks across keys.
    fn flink(
        &self,
        table: Option<&BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    ) -> Result<FlinkConfig, ScenarioError> {
        let mut flink = FlinkConfig::default();
        let mut last_flink_span = None;
        if let Some(table) = table {
            for (key, value) in table {
                let text = match value.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(self.err(
                            value.span(),
                            format!(
                                "`{}`: expected a string or a number, got a {}",
                                key.get_ref(),
                                other.type_str()
                            ),
                        ))
                    }
                };
                flink
                    .set(key.get_ref(), &text)
                    .map_err(|e| self.err(key.span(), e))?;
                last_flink_span = Some(key.span());
            }
        }
        flink.validate().map_err(|e| match &last_flink_span {
            Some(s) => self.err(s.clone(), e),
            None => ScenarioError {
                path: self.path.to_path_buf(),
                line: None,
                message: e,
            },
        })?;
        Ok(flink)
    }

    /// `[network]`: latency, loss and duplication (fixed or drawn per seed), reordering and
    /// per-link latencies between `nodes`.
    fn network(
        &self,
        network: Option<&raw::Network>,
        nodes: &[String],
    ) -> Result<NetworkSpec, ScenarioError> {
        Ok(match network {
            None => NetworkSpec {
                latency: DurationRange {
                    lo: Duration::from_millis(1),
                    hi: Duration::from_millis(5),
                },
                loss: 0.0,
                duplicate: 0.0,
                loss_range: None,
                duplicate_range: None,
                reorder: false,
                answer_delay: None,
                links: Vec::new(),
            },
            Some(n) => {
                let latency = match &n.latency {
                    Some(l) => self.duration_range(l, "`network.latency`")?,
                    None => DurationRange {
                        lo: Duration::from_millis(1),
                        hi: Duration::from_millis(5),
                    },
                };
                // A probability, or a range of them ("0..0.05") drawn once per seed.
                let prob = |p: &Option<Spanned<toml::Value>>,
                            what: &str|
                 -> Result<(f64, Option<(f64, f64)>), ScenarioError> {
                    let Some(p) = p else {
                        return Ok((0.0, None));
                    };
                    let bad = || {
                        self.err(
                            p.span(),
                            format!(
                                "{what}: expected a probability in 0.0..=1.0 (e.g. 0.01) or a range of them drawn per seed (e.g. \"0..0.05\"), got {}",
                                p.get_ref()
                            ),
                        )
                    };
                    let ok = |x: f64| (0.0..=1.0).contains(&x);
                    match p.get_ref() {
                        toml::Value::Float(x) if ok(*x) => Ok((*x, None)),
                        toml::Value::Integer(x) if ok(*x as f64) => Ok((*x as f64, None)),
                        toml::Value::String(t) => {
                            let (a, b) = t.split_once("..").ok_or_else(bad)?;
                            let lo: f64 = a.trim().parse().map_err(|_| bad())?;
                            let hi: f64 = b.trim().parse().map_err(|_| bad())?;
                            if !ok(lo) || !ok(hi) || lo > hi {
                                return Err(bad());
                            }
                            Ok((lo, Some((lo, hi))))
                        }
                        _ => Err(bad()),
                    }
                };
                let (loss, loss_range) = prob(&n.loss, "`network.loss`")?;
                let (duplicate, duplicate_range) = prob(&n.duplicate, "`network.duplicate`")?;
                let mut links = Vec::new();
                for l in &n.links {
                    let between = &l.get_ref().between;
                    if between.get_ref().len() != 2 {
                        return Err(self.err(
                            between.span(),
                            "`between`: expected two node names, like [\"jobmanager-1\", \"taskmanager-1\"]",
                        ));
                    }
                    let a = self.node(
                        &Spanned::new(between.span(), between.get_ref()[0].clone()),
                        nodes,
                    )?;
                    let b = self.node(
                        &Spanned::new(between.span(), between.get_ref()[1].clone()),
                        nodes,
                    )?;
                    let latency = self.duration_range(&l.get_ref().latency, "`latency`")?;
                    links.push((a, b, latency));
                }
                NetworkSpec {
                    latency,
                    loss,
                    duplicate,
                    loss_range,
                    duplicate_range,
                    reorder: n.reorder.unwrap_or(false),
                    answer_delay: match &n.answer_delay {
                        Some(d) => Some(self.duration_range(d, "`network.answer_delay`")?),
                        None => None,
                    },
                    links,
                }
            }
        })
    }

    /// `[clocks]`: drift and offset ranges drawn per node and seed.
    fn clocks(&self, clocks: Option<&raw::Clocks>) -> Result<ClockSpec, ScenarioError> {
        Ok(match clocks {
            None => ClockSpec {
                drift_ppm: (0, 0),
                offset_ns: (0, 0),
            },
            Some(c) => {
                let drift_ppm = match &c.drift_ppm {
                    None => (0, 0),
                    Some(v) => self.ppm_range(v)?,
                };
                let offset_ns = match &c.offset {
                    None => (0, 0),
                    Some(o) => self.signed_range(o, "`clocks.offset`")?,
                };
                ClockSpec {
                    drift_ppm,
                    offset_ns,
                }
            }
        })
    }

    /// A count or a range of counts: `2` or `"1..3"`, within 1..=`max`.
    pub(super) fn count_range(
        &self,
        v: &Spanned<toml::Value>,
        what: &str,
        max: u32,
    ) -> Result<(u32, u32), ScenarioError> {
        let bad = || {
            self.err(
                v.span(),
                format!(
                    "{what}: expected a count like 2 or a range like \"1..3\" within 1..={max}"
                ),
            )
        };
        let (lo, hi) = match v.get_ref() {
            toml::Value::Integer(n) => (*n, *n),
            toml::Value::String(t) => {
                let (a, b) = t.split_once("..").unwrap_or((t, t));
                (
                    a.trim().parse::<i64>().map_err(|_| bad())?,
                    b.trim().parse::<i64>().map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        };
        if lo < 1 || lo > hi || hi > i64::from(max) {
            return Err(bad());
        }
        Ok((lo as u32, hi as u32))
    }

    pub(super) fn ppm_range(&self, v: &Spanned<toml::Value>) -> Result<(i64, i64), ScenarioError> {
        let bad = || {
            self.err(
                v.span(),
                format!(
                    "`clocks.drift_ppm`: expected an integer or a range like \"0..100\" within ±{}",
                    sim::clock::DRIFT_PPM_MAX
                ),
            )
        };
        let (lo, hi) = match v.get_ref() {
            toml::Value::Integer(i) => (*i, *i),
            toml::Value::String(s) => {
                let (a, b) = s.split_once("..").unwrap_or((s, s));
                (
                    a.trim().parse::<i64>().map_err(|_| bad())?,
                    b.trim().parse::<i64>().map_err(|_| bad())?,
                )
            }
            _ => return Err(bad()),
        };
        let max = sim::clock::DRIFT_PPM_MAX;
        if lo > hi || lo < -max || hi > max {
            return Err(bad());
        }
        Ok((lo, hi))
    }
}

/// "taskmanager-1..taskmanager-3, source" style listing for error messages: numbered names
/// grouped by prefix, other names as they are.
pub(super) fn compact_names(nodes: &[String]) -> String {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut singles = Vec::new();
    for n in nodes {
        match n.rsplit_once('-') {
            Some((prefix, num)) if num.parse::<u32>().is_ok() => {
                groups.entry(prefix).or_default().push(num)
            }
            _ => singles.push(n.clone()),
        }
    }
    groups
        .iter()
        .map(|(prefix, nums)| match nums.as_slice() {
            [one] => format!("{prefix}-{one}"),
            [first, .., last] => format!("{prefix}-{first}..{prefix}-{last}"),
            [] => String::new(),
        })
        .chain(singles)
        .collect::<Vec<_>>()
        .join(", ")
}
