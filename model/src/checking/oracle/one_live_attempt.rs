//! One live attempt (always): at most one attempt of a subtask reads from the `source` node or
//! writes to the `sink` node at a time, judged cluster-wide: across every TaskManager and
//! every JobMaster leader (docs/flink-runtime.md §4.2: a vertex has one current execution; §5.3:
//! a TaskExecutor that loses its JobMaster fails that job's tasks; §6.1: a failover waits for
//! the old attempts to be terminal).
//!
//! The effects are what the outside world sees of a task: a `fetch` of a source reader and a
//! `write` of a sink writer, each judged by when it was *sent* and from which node, once it is
//! delivered (a request lost on the way had no effect). Two rules:
//!
//! - **A. Nothing after the end.** No attempt sends an effect after its TaskManager reported it
//!   terminal (`TaskStateChanged` to FINISHED, CANCELED or FAILED): a terminal task's reader and
//!   writer are closed.
//! - **B. No lasting overlap.** Two attempts of one subtask (the same job, job vertex and
//!   subtask index, in any execution graph) never both send effects over an overlap longer
//!   than the detection [`grace`](OneLiveAttempt::grace). Flink does let two attempts overlap
//!   briefly: a JobMaster that declared a TaskManager lost restarts its tasks elsewhere while
//!   the TaskManager, which hears of it only by its own heartbeat timeout, a disconnect or a
//!   leader change, still runs the old ones. The grace bounds that window: one heartbeat timeout
//!   and interval, two one-way latencies, the longest message delay or clog the run injected,
//!   one second of handler time, and with ZooKeeper HA twice the session timeout (a leader cut
//!   off from the `ha` node keeps its job until its session expires). Overlaps on a paused or
//!   slowed node are excused (a frozen or overloaded process hears of its loss late by any
//!   amount, in Flink too).
//!
//! Ground truth: the deliveries themselves (sender, send time, attempt) and the TaskManagers'
//! own `TaskStateChanged` reports; the execution graph's job from the JobMaster's
//! `ExecutionCreated`. A killed TaskManager's attempts are gone with it.
//!
//! This oracle does not judge the JobMaster's view of attempts (`attempt-order`,
//! `stale-attempts`) nor whether the output is right (`exactly-once`): it names the mechanism
//! when a stale attempt keeps working (a TaskExecutor that did not fail its tasks, a reader that
//! outlived its task).

use super::{attempt_name, process_died, secs, Invariant, Kind, Oracle, Quiet, Setup, Violation};
use crate::protocol::config::HighAvailability;
use crate::protocol::ids::{ExecutionAttemptId, JobId};
use crate::protocol::job_graph::ExecutionVertexId;
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{Msg, SinkRpc, SourceLogRpc};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Fault, MessageAction, MessageRule, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "one-live-attempt",
    kind: Kind::Always,
    description: "cluster-wide, no attempt reads from the source or writes to the sink after its TaskManager reported it terminal, and two attempts of one subtask never both do so for longer than the failure-detection grace",
};

/// When an attempt sent its first and its last effect so far, and from where.
#[derive(Clone, Copy, Debug)]
struct Span {
    node: NodeId,
    first: Time,
    last: Time,
}

/// A node's disturbances: paused or slowed now, and when that last changed.
#[derive(Clone, Copy, Debug, Default)]
struct Disturbed {
    now: bool,
    since: Option<Time>,
}

pub struct OneLiveAttempt {
    /// The grace without injected delays.
    base_grace: Duration,
    /// The longest message delay or clog injected so far.
    longest_delay: Duration,
    /// [`OneLiveAttempt::grace`] for the current longest delay, once computed.
    grace: Option<Duration>,
    /// Execution graph -> its job.
    graph_job: BTreeMap<u64, JobId>,
    /// (TaskManager, attempt) -> when it reported the attempt terminal.
    terminal: BTreeMap<(NodeId, ExecutionAttemptId), Time>,
    /// (job, subtask) -> attempt -> its effects' span, for attempts still alive.
    spans: BTreeMap<(JobId, ExecutionVertexId), BTreeMap<ExecutionAttemptId, Span>>,
    /// Node -> paused or slowed.
    disturbed: BTreeMap<NodeId, Disturbed>,
    /// The older attempts of pairs already reported (each pair is reported once).
    reported: BTreeSet<ExecutionAttemptId>,
}

impl OneLiveAttempt {
    pub fn new(setup: &Setup) -> OneLiveAttempt {
        let c = &setup.config;
        let mut base_grace = c.heartbeat_timeout
            + c.heartbeat_interval
            + setup.latency_max * 2
            + Duration::from_secs(1);
        if c.high_availability == HighAvailability::ZooKeeper {
            base_grace += c.ha_session.session_timeout * 2;
        }
        OneLiveAttempt {
            base_grace,
            longest_delay: Duration::ZERO,
            grace: None,
            graph_job: BTreeMap::new(),
            terminal: BTreeMap::new(),
            spans: BTreeMap::new(),
            disturbed: BTreeMap::new(),
            reported: BTreeSet::new(),
        }
    }

    /// How long two attempts of a subtask may overlap, in true time. Computed once per
    /// longest delay (clock drifts are fixed for a run), since effects are frequent.
    pub fn grace(&mut self, census: &Census) -> Duration {
        let (base, delay) = (self.base_grace, self.longest_delay);
        *self
            .grace
            .get_or_insert_with(|| Quiet::stretched(census, base + delay))
    }

    /// Whether `node` was paused or slowed at any time from `since` on.
    fn excused(disturbed: &BTreeMap<NodeId, Disturbed>, node: NodeId, since: Time) -> bool {
        disturbed
            .get(&node)
            .is_some_and(|d| d.now || d.since.is_some_and(|t| t >= since))
    }

    fn disturb(&mut self, node: NodeId, at: Time, now: bool) {
        let d = self.disturbed.entry(node).or_default();
        d.now = now;
        d.since = Some(at);
    }

    fn on_fault(&mut self, fault: &Fault, at: Time) {
        match fault {
            Fault::Pause(n) => self.disturb(*n, at, true),
            Fault::Resume(n) => self.disturb(*n, at, false),
            Fault::Slow { node, per_event } => self.disturb(*node, at, !per_event.is_zero()),
            Fault::Messages(MessageRule {
                action: MessageAction::Delay(by),
                ..
            }) => self.lengthen(*by),
            Fault::Clog { extra, .. } => self.lengthen(*extra),
            _ => {}
        }
    }

    /// A message delay or clog of `by` was injected.
    fn lengthen(&mut self, by: Duration) {
        if by > self.longest_delay {
            self.longest_delay = by;
            self.grace = None;
        }
    }

    fn on_effect(
        &mut self,
        census: &Census,
        from: NodeId,
        sent: Time,
        attempt: &ExecutionAttemptId,
        what: &str,
        out: &mut Vec<Violation>,
    ) {
        let Some(job) = self.graph_job.get(&attempt.graph).copied() else {
            return;
        };
        if let Some(ended) = self.terminal.get(&(from, *attempt)) {
            if sent > *ended {
                out.push(Violation {
                    invariant: INVARIANT.name,
                    at: sent,
                    node: Some(from),
                    message: format!(
                        "{} of job {job} sent a {what} from {} {} after its TaskManager reported it terminal: a finished, cancelled or failed task's reader and writer must be closed",
                        attempt_name(attempt),
                        census.name(from),
                        secs(sent.saturating_since(*ended))
                    ),
                });
            }
            return;
        }
        if self.reported.contains(attempt) {
            return;
        }
        let grace = self.grace(census);
        let attempts = self.spans.entry((job, attempt.vertex)).or_default();
        let span = attempts.entry(*attempt).or_insert(Span {
            node: from,
            first: sent,
            last: sent,
        });
        span.last = span.last.max(sent);
        let me = *span;
        let disturbed = &self.disturbed;
        let clash = attempts.iter().find_map(|(other, o)| {
            if other == attempt {
                return None;
            }
            let start = me.first.max(o.first);
            let end = me.last.min(o.last);
            // A pause or slowness shortly before the overlap began may be what caused it.
            let since = Time::from_nanos(start.as_nanos().saturating_sub(sim::time::nanos(grace)));
            let excused =
                Self::excused(disturbed, me.node, since) || Self::excused(disturbed, o.node, since);
            (end.saturating_since(start) > grace && !excused).then_some((*other, *o, start, end))
        });
        let Some((other, o, start, end)) = clash else {
            return;
        };
        out.push(Violation {
            invariant: INVARIANT.name,
            at: sent,
            node: Some(from),
            message: format!(
                "two attempts of subtask {} of vertex {} of job {job} were live at once for {} (longer than the failure-detection grace of {}): {} on {} and {} on {} both read from the source or wrote to the sink; the older one should have been failed or cancelled",
                attempt.vertex.subtask,
                attempt.vertex.vertex.0,
                secs(end.saturating_since(start)),
                secs(grace),
                attempt_name(&other),
                census.name(o.node),
                attempt_name(attempt),
                census.name(me.node),
            ),
        });
        // Reported once per pair: forget the older of the two.
        let older = if o.first <= me.first { other } else { *attempt };
        attempts.remove(&older);
        self.reported.insert(older);
    }

    fn forget(&mut self, node: NodeId, attempt: &ExecutionAttemptId) {
        let Some(job) = self.graph_job.get(&attempt.graph) else {
            return;
        };
        if let Some(attempts) = self.spans.get_mut(&(*job, attempt.vertex)) {
            if attempts.get(attempt).is_some_and(|s| s.node == node) {
                attempts.remove(attempt);
            }
        }
    }
}

impl Oracle for OneLiveAttempt {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if let Some(n) = process_died(ev) {
            for attempts in self.spans.values_mut() {
                attempts.retain(|_, s| s.node != n);
            }
            self.terminal.retain(|(tm, _), _| *tm != n);
            return;
        }
        match &ev.kind {
            EventKind::Fault {
                fault,
                effective: true,
            } => self.on_fault(fault, ev.time),
            EventKind::Deliver {
                from, sent, msg, ..
            } => match msg {
                Msg::SourceLog(SourceLogRpc::Fetch { reader, .. }) => {
                    self.on_effect(census, *from, *sent, reader, "fetch", out)
                }
                Msg::Sink(SinkRpc::Write { writer, .. }) => {
                    self.on_effect(census, *from, *sent, writer, "write", out)
                }
                _ => {}
            },
            EventKind::Obs { node, obs } => match obs {
                Obs::ExecutionCreated { job_id, attempt } => {
                    self.graph_job.insert(attempt.graph, *job_id);
                }
                Obs::TaskStateChanged { attempt, to, .. } if to.is_terminal() => {
                    self.terminal.insert((*node, *attempt), ev.time);
                    self.forget(*node, attempt);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish(&mut self, _: &Census, _: Time, _: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{attempt, feed, setup, world, Step, JM, TM1, TM2};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::states::ExecutionState;

    fn config() -> FlinkConfig {
        let mut c = FlinkConfig::default();
        c.heartbeat_interval = Duration::from_secs(1);
        c.heartbeat_timeout = Duration::from_secs(5);
        c
    }

    fn created(a: ExecutionAttemptId) -> (u64, Step) {
        (
            0,
            Step::Obs(
                JM,
                Obs::ExecutionCreated {
                    job_id: 5,
                    attempt: a,
                },
            ),
        )
    }

    fn fetch(ms: u64, tm: NodeId, a: ExecutionAttemptId) -> (u64, Step) {
        fetch_delivered(ms + 5, ms, tm, a)
    }

    /// A fetch sent at `sent` and delivered at `ms`.
    fn fetch_delivered(ms: u64, sent: u64, tm: NodeId, a: ExecutionAttemptId) -> (u64, Step) {
        (
            ms,
            Step::DeliverSent(
                tm,
                NodeId(9),
                sent,
                Msg::SourceLog(SourceLogRpc::Fetch {
                    reader: a,
                    partition: 0,
                    offset: 0,
                    max_records: 10,
                }),
            ),
        )
    }

    fn write(ms: u64, tm: NodeId, a: ExecutionAttemptId) -> (u64, Step) {
        (
            ms + 5,
            Step::DeliverSent(
                tm,
                NodeId(9),
                ms,
                Msg::Sink(SinkRpc::Write {
                    writer: a,
                    job_id: 5,
                    subtask: a.vertex.subtask,
                    seq: ms,
                    txn: None,
                    records: std::sync::Arc::from(Vec::new()),
                }),
            ),
        )
    }

    fn terminal(ms: u64, tm: NodeId, a: ExecutionAttemptId) -> (u64, Step) {
        (
            ms,
            Step::Obs(
                tm,
                Obs::TaskStateChanged {
                    attempt: a,
                    allocation_id: 1,
                    from: Some(ExecutionState::Canceling),
                    to: ExecutionState::Canceled,
                },
            ),
        )
    }

    fn run(steps: &[(u64, Step)]) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut o = OneLiveAttempt::new(&setup(config()));
        feed(&mut o, w.census(), steps, Some(60_000))
    }

    #[test]
    fn a_restart_after_the_old_attempt_ended_holds() {
        let (a0, a1) = (attempt(0, 0, 0), attempt(0, 0, 1));
        let mut steps = vec![created(a0), created(a1)];
        steps.extend((0..10).map(|i| fetch(i * 1000, TM1, a0)));
        steps.push(terminal(10_000, TM1, a0));
        steps.extend((11..30).map(|i| fetch(i * 1000, TM2, a1)));
        assert!(run(&steps).is_empty());
    }

    #[test]
    fn a_brief_overlap_within_the_grace_holds() {
        // The grace is 5 s + 1 s + 20 ms + 1 s; the old attempt goes on 4 s after the new began.
        let (a0, a1) = (attempt(0, 0, 0), attempt(0, 0, 1));
        let mut steps = vec![created(a0), created(a1)];
        steps.extend((0..14).map(|i| write(i * 1000, TM1, a0)));
        steps.extend((10..30).map(|i| write(i * 1000, TM2, a1)));
        assert!(run(&steps).is_empty());
    }

    #[test]
    fn an_effect_after_the_attempt_ended_fails() {
        let a0 = attempt(0, 0, 0);
        let steps = vec![
            created(a0),
            fetch(1000, TM1, a0),
            terminal(2000, TM1, a0),
            fetch(2500, TM1, a0),
        ];
        let v = run(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0]
            .message
            .contains("after its TaskManager reported it terminal"));
        assert_eq!(v[0].at, Time::from_millis(2500));
    }

    #[test]
    fn a_request_sent_before_the_end_and_delivered_after_holds() {
        let a0 = attempt(0, 0, 0);
        let steps = vec![
            created(a0),
            terminal(2000, TM1, a0),
            fetch_delivered(2600, 1900, TM1, a0),
        ];
        assert!(run(&steps).is_empty());
    }

    #[test]
    fn two_attempts_live_past_the_grace_fail_and_name_both() {
        let (a0, a1) = (attempt(1, 2, 0), attempt(1, 2, 1));
        let mut steps = vec![created(a0), created(a1)];
        for i in 0..30 {
            steps.push(write(i * 1000, TM1, a0));
            if i >= 5 {
                steps.push(write(i * 1000 + 1, TM2, a1));
            }
        }
        let v = run(&steps);
        assert_eq!(v.len(), 1, "{v:?}");
        let m = &v[0].message;
        assert!(m.contains("subtask 2 of vertex 1"), "{m}");
        assert!(m.contains("attempt 0 on taskmanager-1"), "{m}");
        assert!(m.contains("attempt 1 on taskmanager-2"), "{m}");
        // Caught once the overlap exceeds the 7.02 s grace: at the new attempt's write 8 s on.
        assert_eq!(v[0].at, Time::from_millis(13_001));
    }

    #[test]
    fn an_overlap_on_a_paused_taskmanager_is_excused() {
        let (a0, a1) = (attempt(1, 2, 0), attempt(1, 2, 1));
        let mut steps = vec![
            created(a0),
            created(a1),
            (3000, Step::Fault(Fault::Pause(TM1))),
        ];
        steps.push((4000, Step::Fault(Fault::Resume(TM1))));
        for i in 5..30 {
            steps.push(write(i * 1000, TM1, a0));
            steps.push(write(i * 1000 + 1, TM2, a1));
        }
        assert!(run(&steps).is_empty());
        // Without the pause the same overlap fails.
        steps.drain(2..4);
        assert_eq!(run(&steps).len(), 1);
    }

    #[test]
    fn an_injected_delay_lengthens_the_grace() {
        let (a0, a1) = (attempt(1, 2, 0), attempt(1, 2, 1));
        let rule = sim::MessageRule {
            kinds: vec!["heartbeat".into()],
            from: vec![],
            to: vec![],
            action: MessageAction::Delay(Duration::from_secs(20)),
            count: Some(1),
            lasting: None,
        };
        let mut steps = vec![
            created(a0),
            created(a1),
            (1, Step::Fault(Fault::Messages(rule))),
        ];
        for i in 0..25 {
            steps.push(write(i * 1000, TM1, a0));
            steps.push(write(i * 1000 + 1, TM2, a1));
        }
        assert!(run(&steps).is_empty());
    }

    #[test]
    fn a_killed_taskmanagers_attempts_are_forgotten() {
        let (a0, a1) = (attempt(1, 2, 0), attempt(1, 2, 1));
        let mut steps = vec![created(a0), created(a1)];
        steps.extend((0..5).map(|i| write(i * 1000, TM1, a0)));
        steps.push((5000, Step::Fault(Fault::Kill(TM1))));
        steps.extend((5..40).map(|i| write(i * 1000 + 1, TM2, a1)));
        assert!(run(&steps).is_empty());
    }
}
