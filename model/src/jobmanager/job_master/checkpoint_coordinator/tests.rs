//! Tests of the CheckpointCoordinator: triggering (interval, min pause, concurrency),
//! acknowledgements and declines, timeouts, the tolerable-failure count of the checkpoint
//! failure manager, subsumption, restore assignment and the HA-store ordering. They drive the
//! coordinator directly through a `sim::Ctx`, without a JobMaster.
//!
//! The JobMaster's side of checkpointing (plans from its executions, notifications to tasks) is
//! not tested here.

use super::*;
use crate::protocol::checkpoint::CheckpointingMode;
use crate::protocol::job_graph::{JobVertex, JobVertexId, OperatorInfo};
use sim::testing::traces;
use sim::testing::Driver;
use sim::Effect;

const JM: NodeId = NodeId(0);
const TM1: NodeId = NodeId(1);
const TM2: NodeId = NodeId(2);
const STORAGE: NodeId = NodeId(8);
const JOB: JobId = 42;

type Effects = Vec<Effect<Flink>>;

/// Drives one coordinator by hand, like the JobMaster would, through the shared test driver
/// (detached contexts at the driver's clock, armed timers remembered).
struct Harness(Driver<Flink, CheckpointCoordinator>);

impl std::ops::Deref for Harness {
    type Target = Driver<Flink, CheckpointCoordinator>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Harness {
    fn new(config: CheckpointConfig, bugs: Bugs) -> Harness {
        Harness::with_seed(config, bugs, 7)
    }

    fn with_seed(config: CheckpointConfig, bugs: Bugs, seed: u64) -> Harness {
        let cc = CheckpointCoordinator::new(JOB, config, bugs, Some(STORAGE));
        Harness(Driver::new(JM, cc, seed, "checkpoint-coordinator-test"))
    }

    /// The armed timers, as (delay they were armed with, tag); all are timers of JOB's
    /// JobMaster.
    fn armed_all(&mut self) -> Vec<(Duration, JobMasterTimer)> {
        self.armed(|_| true)
            .into_iter()
            .map(|(d, t)| match t {
                Timer::JobMaster { job_id: JOB, timer } => (d, timer),
                other => panic!("not a timer of JOB's JobMaster: {other:?}"),
            })
            .collect()
    }

    fn armed_triggers(&mut self) -> Vec<Duration> {
        self.armed_all()
            .into_iter()
            .filter(|(_, t)| matches!(t, JobMasterTimer::CheckpointTrigger { .. }))
            .map(|(d, _)| d)
            .collect()
    }

    fn armed_timeouts(&mut self) -> Vec<(Duration, CheckpointId)> {
        self.armed_all()
            .into_iter()
            .filter_map(|(d, t)| match t {
                JobMasterTimer::CheckpointTimeout { checkpoint_id } => Some((d, checkpoint_id)),
                _ => None,
            })
            .collect()
    }

    /// The periodic trigger fires: the armed trigger timer pops (as the kernel would pop
    /// it, whenever it was due), then the coordinator runs with `plan`.
    fn trigger(&mut self, plan: Option<Plan>) -> Effects {
        let is_trigger = |t: &Timer| {
            matches!(
                t,
                Timer::JobMaster {
                    job_id: JOB,
                    timer: JobMasterTimer::CheckpointTrigger { .. },
                }
            )
        };
        if let Some(tag) = self.disarm(is_trigger) {
            let Timer::JobMaster {
                timer: JobMasterTimer::CheckpointTrigger { version },
                ..
            } = tag
            else {
                unreachable!()
            };
            assert!(
                self.component.is_trigger(version),
                "the armed trigger is the live one"
            );
        }
        self.step(|cc, ctx| cc.on_trigger_timer(ctx, plan)).0
    }

    /// Triggers with the default plan and returns the new checkpoint's id.
    fn trigger_one(&mut self) -> CheckpointId {
        let out = self.trigger(Some(plan()));
        let ids = triggered(&out);
        assert_eq!(ids.len(), 1, "one checkpoint triggered: {out:?}");
        ids[0]
    }

    fn ack(&mut self, attempt: ExecutionAttemptId, id: CheckpointId) -> (Effects, Outcome) {
        self.step(|cc, ctx| cc.on_acknowledge(ctx, attempt, id, handle(attempt, id)))
    }

    /// Every task of the default plan acknowledges `id`.
    fn ack_all(&mut self, id: CheckpointId) -> Outcome {
        let mut last = Outcome::Nothing;
        for a in plan().wait_for {
            last = self.ack(a, id).1;
        }
        last
    }

    fn decline(&mut self, id: CheckpointId, reason: &'static str) -> (Effects, Outcome) {
        self.step(|cc, ctx| cc.on_decline(ctx, id, reason))
    }
}

fn config() -> CheckpointConfig {
    CheckpointConfig {
        interval: Duration::from_secs(10),
        mode: CheckpointingMode::ExactlyOnce,
        timeout: Duration::from_secs(60),
        min_pause: Duration::ZERO,
        max_concurrent: 1,
        tolerable_failed: 0,
        num_retained: 1,
    }
}

fn attempt(vertex: u32, subtask: u32) -> ExecutionAttemptId {
    ExecutionAttemptId {
        graph: 3,
        vertex: ExecutionVertexId {
            vertex: JobVertexId(vertex),
            subtask,
        },
        attempt: 0,
    }
}

const SOURCE: u32 = 0;
const SINK: u32 = 1;

/// Two sources on two TaskManagers and one sink: the sources are triggered, all three ack.
fn plan() -> Plan {
    Plan {
        trigger: vec![(attempt(SOURCE, 0), TM1), (attempt(SOURCE, 1), TM2)],
        wait_for: vec![attempt(SOURCE, 0), attempt(SOURCE, 1), attempt(SINK, 0)],
        finished: vec![],
    }
}

fn handle(attempt: ExecutionAttemptId, checkpoint_id: CheckpointId) -> StateHandleId {
    StateHandleId {
        job_id: JOB,
        checkpoint_id,
        attempt,
    }
}

fn handles_of(id: CheckpointId) -> Vec<StateHandleId> {
    plan().wait_for.into_iter().map(|a| handle(a, id)).collect()
}

fn triggered(out: &Effects) -> Vec<CheckpointId> {
    traces(out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::CheckpointTriggered { checkpoint_id, .. } => Some(*checkpoint_id),
            _ => None,
        })
        .collect()
}

fn aborted(out: &Effects) -> Vec<(CheckpointId, &'static str)> {
    traces(out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::CheckpointAborted {
                job_id,
                checkpoint_id,
                reason,
            } => {
                assert_eq!(*job_id, JOB);
                let std::borrow::Cow::Borrowed(reason) = reason else {
                    panic!("the coordinator's abort reasons are Flink's constants")
                };
                Some((*checkpoint_id, *reason))
            }
            _ => None,
        })
        .collect()
}

/// The handles of every `Delete` sent to checkpoint storage, in order.
fn deleted(out: &Effects) -> Vec<StateHandleId> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Msg::CheckpointStorage(CheckpointStorageRpc::Delete { handles }),
            } => {
                assert_eq!(*to, STORAGE);
                Some(handles.clone())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

fn trigger_messages(out: &Effects) -> Vec<(NodeId, ExecutionAttemptId, CheckpointId, u64)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg:
                    Msg::TaskExecutor(TaskExecutorRpc::TriggerCheckpoint {
                        attempt,
                        checkpoint_id,
                        timestamp_ms,
                    }),
            } => Some((*to, *attempt, *checkpoint_id, *timestamp_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn start_scheduler_arms_the_first_trigger_within_min_pause_and_interval() {
    // (min_pause, interval, lowest delay, highest delay)
    let table = [
        (0, 10_000, 0, 10_000),
        (4_000, 10_000, 4_000, 10_000),
        (10_000, 10_000, 10_000, 10_000),
        (30_000, 10_000, 10_000, 10_000), // a pause longer than the interval is capped
    ];
    for (min_pause, interval, lo, hi) in table {
        for seed in 0..20 {
            let mut h = Harness::with_seed(
                CheckpointConfig {
                    min_pause: Duration::from_millis(min_pause),
                    interval: Duration::from_millis(interval),
                    ..config()
                },
                Bugs::NONE,
                seed,
            );
            assert!(!h.component.is_scheduler_running());
            let (out, ()) = h.step(|cc, ctx| cc.start_scheduler(ctx));
            let armed = h.armed_all();
            assert_eq!(armed.len(), 1, "{out:?}");
            let (after, tag) = &armed[0];
            assert!(
                *after >= Duration::from_millis(lo) && *after <= Duration::from_millis(hi),
                "min_pause {min_pause} interval {interval}: first trigger after {after:?}"
            );
            let JobMasterTimer::CheckpointTrigger { version } = *tag else {
                panic!("{tag:?}");
            };
            assert!(h.component.is_scheduler_running());
            assert!(h.component.is_trigger(version));
            assert!(!h.component.is_trigger(version + 1));
            // Starting a running scheduler changes nothing.
            let (out, ()) = h.step(|cc, ctx| cc.start_scheduler(ctx));
            assert!(out.is_empty());
            assert_eq!(h.armed_all().len(), 1);
        }
    }
}

#[test]
fn each_trigger_sends_trigger_checkpoint_with_the_next_id_and_arms_its_timeout() {
    let mut h = Harness::new(
        CheckpointConfig {
            max_concurrent: 3,
            ..config()
        },
        Bugs::NONE,
    );
    h.step(|cc, ctx| cc.start_scheduler(ctx));
    for expected in 1..=3u64 {
        h.advance(Duration::from_secs(10));
        let out = h.trigger(Some(plan()));
        let ts = h.now().as_millis();
        assert_eq!(
            trigger_messages(&out),
            vec![
                (TM1, attempt(SOURCE, 0), expected, ts),
                (TM2, attempt(SOURCE, 1), expected, ts),
            ]
        );
        assert_eq!(
            traces(&out),
            vec![&Obs::CheckpointTriggered {
                job_id: JOB,
                checkpoint_id: expected,
                tasks: plan().wait_for,
                triggered: vec![attempt(SOURCE, 0), attempt(SOURCE, 1)],
            }]
        );
        assert!(
            h.armed_timeouts()
                .contains(&(Duration::from_secs(60), expected)),
            "timeout of {expected} armed at config.timeout"
        );
        // Fixed rate: the next trigger one interval later.
        assert!(h.armed_triggers().contains(&Duration::from_secs(10)));
    }
    assert_eq!(h.component.pending_ids(), vec![1, 2, 3]);
}

#[test]
fn without_a_plan_nothing_is_triggered_but_the_next_trigger_is_armed() {
    let empty_trigger = Plan {
        trigger: vec![],
        ..plan()
    };
    let empty_wait = Plan {
        wait_for: vec![],
        ..plan()
    };
    for p in [None, Some(empty_trigger), Some(empty_wait)] {
        let mut h = Harness::new(config(), Bugs::NONE);
        let out = h.trigger(p.clone());
        assert!(traces(&out).is_empty(), "{p:?}: {out:?}");
        assert!(trigger_messages(&out).is_empty());
        assert_eq!(h.armed_triggers(), vec![Duration::from_secs(10)]);
        assert!(h.armed_timeouts().is_empty());
        assert!(h.component.pending_ids().is_empty());
        // The id was not used up.
        assert_eq!(h.trigger_one(), 1);
    }
}

#[test]
fn max_concurrent_blocks_a_trigger_while_one_is_pending() {
    let mut h = Harness::new(config(), Bugs::NONE);
    assert_eq!(h.trigger_one(), 1);
    let out = h.trigger(Some(plan()));
    assert!(triggered(&out).is_empty());
    assert!(trigger_messages(&out).is_empty());
    assert_eq!(h.component.pending_ids(), vec![1]);
    assert_eq!(h.armed_triggers(), vec![Duration::from_secs(10)]);

    assert_eq!(h.ack_all(1), Outcome::Completed(1));
    assert_eq!(h.trigger_one(), 2, "the blocked trigger used no id");
}

#[test]
fn min_pause_defers_the_trigger_after_a_completion() {
    let mut h = Harness::new(
        CheckpointConfig {
            min_pause: Duration::from_secs(5),
            ..config()
        },
        Bugs::NONE,
    );
    assert_eq!(h.trigger_one(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.ack_all(1), Outcome::Completed(1)); // completed at t = 1 s
    h.advance(Duration::from_secs(2)); // t = 3 s: 2 s of the 5 s pause passed
    let out = h.trigger(Some(plan()));
    assert!(triggered(&out).is_empty(), "{out:?}");
    assert!(trigger_messages(&out).is_empty());
    assert_eq!(
        h.armed_triggers(),
        vec![Duration::from_secs(3)],
        "the trigger waits out the pause, instead of a full interval"
    );
    h.advance(Duration::from_secs(3)); // t = 6 s
    assert_eq!(h.trigger_one(), 2);
}

#[test]
fn acks_from_every_task_complete_the_checkpoint() {
    let mut h = Harness::new(config(), Bugs::NONE);
    let id = h.trigger_one();
    let [a, b, c] = plan().wait_for[..] else {
        unreachable!()
    };
    // (attempt, outcome); a duplicate ack changes nothing.
    for (who, outcome) in [
        (a, Outcome::Nothing),
        (a, Outcome::Nothing),
        (b, Outcome::Nothing),
    ] {
        let (out, o) = h.ack(who, id);
        assert_eq!(o, outcome);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.component.pending_ids(), vec![id]);
    }
    let (out, o) = h.ack(c, id);
    assert_eq!(o, Outcome::Completed(id));
    assert_eq!(
        traces(&out),
        vec![&Obs::CheckpointCompleted {
            job_id: JOB,
            checkpoint_id: id,
            handles: handles_of(id),
            finished: vec![],
        }]
    );
    assert!(deleted(&out).is_empty());
    assert!(h.component.pending_ids().is_empty());
    assert!(h.armed_timeouts().is_empty(), "the timeout was cancelled");
    let latest = h.component.latest_completed().expect("completed");
    assert_eq!(latest.id, id);
    assert_eq!(latest.handles, handles_of(id));

    // A repeated ack after completion (a duplicated message): the completed checkpoint
    // holds that state, so nothing is discarded.
    let (out, o) = h.ack(c, id);
    assert_eq!(o, Outcome::Nothing);
    assert!(deleted(&out).is_empty());
}

#[test]
fn an_ack_from_an_unknown_attempt_or_checkpoint_is_discarded() {
    let mut h = Harness::new(config(), Bugs::NONE);
    let id = h.trigger_one();
    let stranger = ExecutionAttemptId {
        attempt: 1,
        ..attempt(SINK, 0)
    };
    // (attempt, checkpoint)
    for (who, cp) in [(stranger, id), (attempt(SINK, 0), id + 5)] {
        let (out, o) = h.ack(who, cp);
        assert_eq!(o, Outcome::Nothing);
        assert_eq!(deleted(&out), vec![handle(who, cp)]);
        assert!(traces(&out).is_empty());
    }
    assert_eq!(h.component.pending_ids(), vec![id]);
    assert_eq!(h.ack_all(id), Outcome::Completed(id));
    assert_eq!(
        h.component.latest_completed().unwrap().handles,
        handles_of(id)
    );
}

#[test]
fn completing_a_checkpoint_subsumes_older_pending_ones() {
    let mut h = Harness::new(
        CheckpointConfig {
            max_concurrent: 3,
            ..config()
        },
        Bugs::NONE,
    );
    let (one, two, three) = (h.trigger_one(), h.trigger_one(), h.trigger_one());
    let src = attempt(SOURCE, 0);
    h.ack(src, one);
    let mut last = (Vec::new(), Outcome::Nothing);
    for a in plan().wait_for {
        last = h.ack(a, two);
    }
    let (out, o) = last;
    assert_eq!(o, Outcome::Completed(two));
    assert_eq!(aborted(&out), vec![(one, "CHECKPOINT_SUBSUMED")]);
    assert_eq!(
        deleted(&out),
        vec![handle(src, one)],
        "the subsumed ack's state"
    );
    assert_eq!(
        h.component.pending_ids(),
        vec![three],
        "newer ones stay pending"
    );
    assert_eq!(
        h.armed_timeouts()
            .into_iter()
            .map(|(_, id)| id)
            .collect::<Vec<_>>(),
        vec![three]
    );
}

#[test]
fn num_retained_keeps_the_latest_completed_checkpoints() {
    // (num_retained, bugs, checkpoint deleted when 3 completes, checkpoint to restore)
    let table = [
        (1, Bugs::NONE, Some(2), 3),
        (2, Bugs::NONE, Some(1), 3),
        (3, Bugs::NONE, None, 3),
        (2, Bugs::NONE.with(Bug::RestoreOlderCheckpoint), Some(1), 2),
    ];
    for (num_retained, bugs, deleted_id, restore) in table {
        let mut h = Harness::new(
            CheckpointConfig {
                num_retained,
                ..config()
            },
            bugs,
        );
        assert!(h.component.checkpoint_to_restore().is_none());
        for id in 1..=2 {
            assert_eq!(h.trigger_one(), id);
            assert_eq!(h.ack_all(id), Outcome::Completed(id));
        }
        assert_eq!(h.trigger_one(), 3);
        let mut out = Vec::new();
        for a in plan().wait_for {
            out = h.ack(a, 3).0;
        }
        let expected = deleted_id.map(handles_of).unwrap_or_default();
        assert_eq!(deleted(&out), expected, "num_retained {num_retained}");
        assert_eq!(h.component.latest_completed().unwrap().id, 3);
        let r = h.component.checkpoint_to_restore().expect("retained");
        assert_eq!(r.id, restore, "num_retained {num_retained} {bugs:?}");
        assert_eq!(r.handles, handles_of(restore));
    }
}

#[test]
fn a_decline_aborts_the_checkpoint() {
    // (reason declined with, reason the abort carries)
    let table = [
        ("CHECKPOINT_DECLINED", "CHECKPOINT_DECLINED"),
        ("CHECKPOINT_ASYNC_EXCEPTION", "CHECKPOINT_ASYNC_EXCEPTION"),
        (
            "CHECKPOINT_DECLINED_SUBSUMED",
            "CHECKPOINT_DECLINED_SUBSUMED",
        ),
        (
            "CHECKPOINT_DECLINED_INPUT_END_OF_STREAM",
            "CHECKPOINT_DECLINED_INPUT_END_OF_STREAM",
        ),
        ("something the task made up", "CHECKPOINT_DECLINED"),
    ];
    for (declined, reason) in table {
        let mut h = Harness::new(
            CheckpointConfig {
                tolerable_failed: 5,
                ..config()
            },
            Bugs::NONE,
        );
        let id = h.trigger_one();
        h.ack(attempt(SOURCE, 1), id);
        let (out, o) = h.decline(id, declined);
        assert_eq!(o, Outcome::Aborted(id), "{declined}");
        assert_eq!(aborted(&out), vec![(id, reason)]);
        assert_eq!(deleted(&out), vec![handle(attempt(SOURCE, 1), id)]);
        assert!(h.component.pending_ids().is_empty());
        assert!(h.armed_timeouts().is_empty(), "timeout cancelled");
        // Declining it again, or an unknown checkpoint, does nothing.
        let (out, o) = h.decline(id, declined);
        assert_eq!(o, Outcome::Nothing);
        assert!(out.is_empty());
    }
}

#[test]
fn a_timeout_aborts_the_checkpoint_as_expired() {
    let mut h = Harness::new(
        CheckpointConfig {
            tolerable_failed: 1,
            ..config()
        },
        Bugs::NONE,
    );
    let id = h.trigger_one();
    assert_eq!(h.armed_timeouts(), vec![(Duration::from_secs(60), id)]);
    h.advance(Duration::from_secs(60));
    let (out, o) = h.step(|cc, ctx| cc.on_timeout(ctx, id));
    assert_eq!(o, Outcome::Aborted(id));
    assert_eq!(aborted(&out), vec![(id, "CHECKPOINT_EXPIRED")]);
    assert!(h.component.pending_ids().is_empty());
    // A stale timeout of a checkpoint no longer pending.
    let (out, o) = h.step(|cc, ctx| cc.on_timeout(ctx, id));
    assert_eq!(o, Outcome::Nothing);
    assert!(out.is_empty());
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Complete,
    Decline(&'static str),
    Expire,
}

#[test]
fn consecutive_counted_failures_beyond_the_tolerable_fail_the_job() {
    use Step::*;
    const DECLINED: Step = Decline("CHECKPOINT_DECLINED");
    const SUBSUMED: Step = Decline("CHECKPOINT_DECLINED_SUBSUMED");
    // (tolerable_failed, steps, whether each failing step returns FailJob)
    let table: &[(u32, &[Step], &[bool])] = &[
        (0, &[DECLINED], &[true]),
        (1, &[DECLINED, DECLINED], &[false, true]),
        (1, &[Expire, DECLINED], &[false, true]),
        (1, &[DECLINED, Complete, DECLINED], &[false, false, false]),
        (1, &[SUBSUMED, SUBSUMED, SUBSUMED], &[false, false, false]),
        (2, &[DECLINED, Expire, DECLINED], &[false, false, true]),
        // The count starts over after the job was failed.
        (1, &[DECLINED, DECLINED, DECLINED], &[false, true, false]),
    ];
    for &(tolerable_failed, steps, fail_job) in table {
        let mut h = Harness::new(
            CheckpointConfig {
                tolerable_failed,
                ..config()
            },
            Bugs::NONE,
        );
        for (i, (step, fail)) in steps.iter().zip(fail_job).enumerate() {
            let id = h.trigger_one();
            let o = match step {
                Complete => h.ack_all(id),
                Decline(reason) => h.decline(id, reason).1,
                Expire => h.step(|cc, ctx| cc.on_timeout(ctx, id)).1,
            };
            let expected = match (step, fail) {
                (Complete, _) => Outcome::Completed(id),
                (_, true) => Outcome::FailJob,
                (_, false) => Outcome::Aborted(id),
            };
            assert_eq!(
                o, expected,
                "tolerable {tolerable_failed}, step {i} ({step:?}) of {steps:?}"
            );
        }
    }
}

#[test]
fn stop_scheduler_aborts_pending_as_suspended_and_does_not_count() {
    let mut h = Harness::new(
        CheckpointConfig {
            max_concurrent: 2,
            tolerable_failed: 1,
            ..config()
        },
        Bugs::NONE,
    );
    h.step(|cc, ctx| cc.start_scheduler(ctx));
    let version = match h.armed_all()[0].1 {
        JobMasterTimer::CheckpointTrigger { version } => version,
        ref t => panic!("{t:?}"),
    };
    let (one, two) = (h.trigger_one(), h.trigger_one());
    h.ack(attempt(SINK, 0), two);
    let (out, ids) = h.step(|cc, ctx| cc.stop_scheduler(ctx));
    assert_eq!(ids, vec![one, two]);
    assert_eq!(
        aborted(&out),
        vec![
            (one, "CHECKPOINT_COORDINATOR_SUSPEND"),
            (two, "CHECKPOINT_COORDINATOR_SUSPEND")
        ]
    );
    assert_eq!(deleted(&out), vec![handle(attempt(SINK, 0), two)]);
    assert!(!h.component.is_scheduler_running());
    assert!(!h.component.is_trigger(version));
    assert!(h.armed_all().is_empty(), "trigger and timeouts cancelled");

    // Two suspended checkpoints were not counted: one counted failure is still tolerable.
    h.step(|cc, ctx| cc.start_scheduler(ctx));
    let three = h.trigger_one();
    assert_eq!(three, 3);
    assert_eq!(
        h.decline(three, "CHECKPOINT_DECLINED").1,
        Outcome::Aborted(three)
    );
}

#[test]
fn complete_with_missing_ack_completes_one_ack_short() {
    // (bugs, outcome of the second of three acks)
    let table = [
        (Bugs::NONE, Outcome::Nothing),
        (
            Bugs::NONE.with(Bug::CompleteWithMissingAck),
            Outcome::Completed(1),
        ),
    ];
    for (bugs, second) in table {
        let mut h = Harness::new(config(), bugs);
        let id = h.trigger_one();
        let [a, b, c] = plan().wait_for[..] else {
            unreachable!()
        };
        assert_eq!(h.ack(a, id).1, Outcome::Nothing, "{bugs:?}");
        let (out, o) = h.ack(b, id);
        assert_eq!(o, second, "{bugs:?}");
        if o == Outcome::Completed(id) {
            assert_eq!(
                traces(&out),
                vec![&Obs::CheckpointCompleted {
                    job_id: JOB,
                    checkpoint_id: id,
                    handles: vec![handle(a, id), handle(b, id)],
                    finished: vec![],
                }]
            );
            // The missing task's late ack finds no pending checkpoint.
            let (out, o) = h.ack(c, id);
            assert_eq!(o, Outcome::Nothing);
            assert_eq!(deleted(&out), vec![handle(c, id)]);
        }
    }
}

fn graph(kind: &'static str, parallelism: u32) -> JobGraph {
    let vertex = |id: u32, kind: &'static str| JobVertex {
        id: JobVertexId(id),
        name: kind.to_string(),
        operators: vec![OperatorInfo {
            kind,
            name: kind.to_string(),
        }],
        parallelism,
        max_parallelism: 128,
        is_source: kind == "source",
        has_sink: false,
    };
    JobGraph {
        name: "test".to_string(),
        vertices: vec![vertex(0, "source"), vertex(1, kind)],
        edges: vec![],
    }
}

#[test]
fn assign_state_gives_each_subtask_its_own_handle_when_parallelism_is_unchanged() {
    for (kind, parallelism) in [("count", 4), ("count", 1), ("map", 3), ("source", 2)] {
        let g = graph(kind, parallelism);
        let mut handles = Vec::new();
        for v in 0..2 {
            for s in 0..parallelism {
                handles.push(handle(attempt(v, s), 7));
            }
        }
        let completed = CompletedCheckpoint {
            id: 7,
            handles,
            finished: vec![ExecutionVertexId {
                vertex: JobVertexId(1),
                subtask: 0,
            }],
        };
        for s in 0..parallelism {
            let ev = ExecutionVertexId {
                vertex: JobVertexId(1),
                subtask: s,
            };
            let restore = assign_state(&g, &completed, ev);
            assert_eq!(restore.checkpoint_id, 7);
            assert_eq!(
                restore.handles,
                vec![handle(attempt(1, s), 7)],
                "{kind} parallelism {parallelism} subtask {s}"
            );
            assert_eq!(restore.finished, s == 0);
        }
    }
}

fn ha(external_ids: bool, pointer_before_notify: bool) -> HaCheckpointing {
    HaCheckpointing {
        external_ids,
        pointer_before_notify,
    }
}

#[test]
fn with_ha_ids_come_from_the_counter_and_completion_waits_for_the_pointer() {
    let mut h = Harness::new(config(), Bugs::NONE);
    h.component = CheckpointCoordinator::new(JOB, config(), Bugs::NONE, Some(STORAGE))
        .with_ha(ha(true, true), None);
    h.step(|cc, ctx| cc.start_scheduler(ctx));
    // The trigger asks the `ha` store's counter instead of counting itself ...
    let out = h.trigger(Some(plan()));
    assert!(triggered(&out).is_empty(), "{out:?}");
    let (_, needs) = h.step(|cc, ctx| cc.on_trigger_timer(ctx, Some(plan())));
    assert!(!needs, "one id request at a time");
    // ... and triggers with the id it answers.
    let (out, _) = h.step(|cc, ctx| cc.on_checkpoint_id(ctx, Some(41), Some(plan())));
    assert_eq!(triggered(&out), vec![41]);
    // All acknowledged: the pointer is written first; no completion yet.
    assert_eq!(h.ack_all(41), Outcome::Nothing);
    assert!(h.component.is_finalizing());
    let ops = h.component.take_pointer_ops();
    assert!(
        matches!(&ops[..], [PointerOp::Add { checkpoint, awaited: true }] if checkpoint.id == 41),
        "{ops:?}"
    );
    let (out, o) = h.step(|cc, ctx| cc.on_pointer_written(ctx, 41, true));
    assert_eq!(o, Outcome::Completed(41));
    assert!(traces(&out).iter().any(|t| matches!(
        t,
        Obs::CheckpointCompleted {
            checkpoint_id: 41,
            ..
        }
    )));
    assert!(!h.component.is_finalizing());
    assert_eq!(h.component.latest_completed().map(|c| c.id), Some(41));
}

#[test]
fn a_failed_pointer_write_fails_the_checkpoint_and_discards_its_state() {
    let mut h = Harness::new(config(), Bugs::NONE);
    h.component = CheckpointCoordinator::new(JOB, config(), Bugs::NONE, Some(STORAGE))
        .with_ha(ha(true, true), None);
    h.step(|cc, ctx| cc.start_scheduler(ctx));
    h.trigger(Some(plan()));
    h.step(|cc, ctx| cc.on_checkpoint_id(ctx, Some(3), Some(plan())));
    h.ack_all(3);
    let (out, o) = h.step(|cc, ctx| cc.on_pointer_written(ctx, 3, false));
    assert_eq!(o, Outcome::Aborted(3));
    assert!(traces(&out).iter().any(|t| matches!(
        t,
        Obs::CheckpointAborted { reason, .. } if reason == "FINALIZE_CHECKPOINT_FAILURE"
    )));
    // Certainly not in the `ha` store: the state goes.
    let all: Vec<_> = plan().wait_for.iter().map(|&a| handle(a, 3)).collect();
    assert_eq!(deleted(&out), all);
    assert_eq!(h.component.latest_completed(), None);
}

#[test]
fn a_pointer_write_of_unknown_outcome_keeps_its_state_past_suspension() {
    // (bugs, whether suspension discards the state)
    let table = [
        (Bugs::NONE, false),
        (Bugs::NONE.with(Bug::DiscardOnUnknownPointerWrite), true),
    ];
    for (bugs, discards) in table {
        let mut h = Harness::new(config(), bugs);
        h.component = CheckpointCoordinator::new(JOB, config(), bugs, Some(STORAGE))
            .with_ha(ha(true, true), None);
        h.step(|cc, ctx| cc.start_scheduler(ctx));
        h.trigger(Some(plan()));
        h.step(|cc, ctx| cc.on_checkpoint_id(ctx, Some(3), Some(plan())));
        h.ack_all(3);
        // The write's answer is lost: nothing to tell the coordinator.
        let (out, _) = h.step(|cc, ctx| cc.suspend(ctx));
        let all: Vec<_> = plan().wait_for.iter().map(|&a| handle(a, 3)).collect();
        let expected = if discards { all } else { vec![] };
        assert_eq!(deleted(&out), expected, "{bugs:?}");
        assert!(!h.component.is_finalizing(), "{bugs:?}");
    }
}

#[test]
fn the_stale_pointer_bug_completes_at_once_and_writes_the_previous_pointer() {
    let mut h = Harness::new(config(), Bugs::NONE);
    h.component = CheckpointCoordinator::new(JOB, config(), Bugs::NONE, Some(STORAGE))
        .with_ha(ha(false, false), None);
    let first = h.trigger_one();
    assert_eq!(h.ack_all(first), Outcome::Completed(first));
    assert!(
        h.component.take_pointer_ops().is_empty(),
        "no previous checkpoint"
    );
    let second = h.trigger_one();
    assert_eq!(h.ack_all(second), Outcome::Completed(second));
    let ops = h.component.take_pointer_ops();
    assert!(
        matches!(&ops[..], [PointerOp::Add { checkpoint, awaited: false }] if checkpoint.id == first),
        "{ops:?}"
    );
}

#[test]
fn a_recovered_checkpoint_is_the_one_to_restore() {
    let recovered = CompletedCheckpoint {
        id: 9,
        handles: handles_of(9),
        finished: vec![],
    };
    let cc = CheckpointCoordinator::new(JOB, config(), Bugs::NONE, Some(STORAGE))
        .with_ha(ha(true, true), Some(recovered.clone()));
    assert_eq!(cc.checkpoint_to_restore(), Some(&recovered));
}
