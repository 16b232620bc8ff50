//! Tests of the TaskExecutor: `requestSlot`, the JobMaster connection and slot offers,
//! `submitTask` and the task lifecycle, JobMaster heartbeats and loss, freeing slots, the data
//! plane between tasks, and job leader changes. They drive one TaskExecutor by hand through a
//! `sim::Ctx` and inspect its effects.

use super::*;
use crate::protocol::checkpoint::StreamElement;
use crate::protocol::ids::{ResourceManagerId, SlotId};
use crate::protocol::obs::{LossCause, Obs};
use crate::protocol::rpc::{
    ConnectPurpose, DisconnectCause, JobMasterRpc, RegistrationResponse, ResourceManagerRpc,
    SlotOffer, SourceLogRpc, TaskDeploymentDescriptor, TaskManagerRegistration,
};
use crate::protocol::rpc::{
    InputChannel, SlotStatus, SourceAssignment, StreamConfig, TaskExecutorRegistration,
};
use crate::protocol::timer::{RegistrationTimer, Timer};
use crate::taskmanager::task::{
    PARTITION_REQUEST_BACKOFF_INITIAL, PARTITION_REQUEST_BACKOFF_MAX,
    PARTITION_REQUEST_RESEND_INTERVAL, TASK_DEPLOY_DURATION,
};
use sim::testing::Driver;
use sim::testing::{sent, traces};
use sim::Effect;
use std::time::Duration;

const RM: NodeId = NodeId(0);
/// The JobMaster runs in the JobManager process, with the ResourceManager.
const JM: NodeId = NodeId(0);
const TE: NodeId = NodeId(1);
const OTHER_TE: NodeId = NodeId(2);
const RM_ID: ResourceManagerId = 77;
const INSTANCE: InstanceId = 5;
const JOB: JobId = 42;
const JM_ID: JobMasterId = 900;

type Effects = Vec<Effect<Flink>>;

/// Drives one TaskExecutor by hand through the shared test driver: every handler runs in a
/// detached context, armed timers are remembered so a test can fire them, and the effects are
/// returned for inspection.
struct Harness(Driver<Flink, TaskExecutor>);

impl std::ops::Deref for Harness {
    type Target = Driver<Flink, TaskExecutor>;
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
    fn new(bugs: Bugs) -> Harness {
        let mut config = FlinkConfig::default();
        config.set("taskmanager.numberOfTaskSlots", "2").unwrap();
        let te = TaskExecutor::new(TE, RM, &config, bugs);
        Harness(Driver::new(TE, te, 7, "task-executor-test"))
    }

    /// Runs a handler; every gateway connection it opens completes at once (as when the
    /// target process answers), and the effects of those completions follow its own.
    fn step(&mut self, f: impl FnOnce(&mut TaskExecutor, &mut Ctx<'_, Flink>)) -> Effects {
        let out = self.step_raw(f);
        self.complete_connections(out)
    }

    /// Completes every gateway connection opened in `out`, appending what that does.
    fn complete_connections(&mut self, mut out: Effects) -> Effects {
        let mut i = 0;
        while i < out.len() {
            if let Some((target, connect_id)) = connection(&out[i]) {
                let more =
                    self.step_raw(|te, ctx| te.on_connect_response(ctx, target, connect_id, true));
                out.extend(more);
            }
            i += 1;
        }
        out
    }

    /// Runs a handler and leaves the connections it opens unanswered.
    fn step_raw(&mut self, f: impl FnOnce(&mut TaskExecutor, &mut Ctx<'_, Flink>)) -> Effects {
        self.0.step(f).0
    }

    fn rpc(&mut self, from: NodeId, rpc: TaskExecutorRpc) -> Effects {
        self.step(|te, ctx| te.on_rpc(ctx, from, rpc))
    }

    fn unreachable(&mut self, to: NodeId, msg: Msg) -> Effects {
        self.step(|te, ctx| te.on_unreachable(ctx, to, &msg))
    }

    /// Fires the earliest armed timer matching `pred`, as the kernel would when it pops.
    fn fire(&mut self, pred: impl Fn(&TaskExecutorTimer) -> bool) -> Effects {
        let out = self
            .0
            .fire_own(own_timer, pred, |te, ctx, id, t| te.on_timer(ctx, id, t))
            .0;
        self.complete_connections(out)
    }

    /// The armed TaskExecutor timers matching `pred`, with their delays.
    fn armed(
        &mut self,
        pred: impl Fn(&TaskExecutorTimer) -> bool,
    ) -> Vec<(Duration, TaskExecutorTimer)> {
        self.0.armed_own(own_timer, pred)
    }

    fn fire_step(&mut self, attempt: ExecutionAttemptId) -> Effects {
        self.fire(|t| *t == TaskExecutorTimer::TaskStep { attempt })
    }

    fn state_of(&self, attempt: ExecutionAttemptId) -> Option<ExecutionState> {
        self.component
            .tasks()
            .find(|(a, _)| *a == attempt)
            .map(|(_, s)| s)
    }
}

/// The registration target and id of a gateway connection the effect opens, if it does.
fn connection(e: &Effect<Flink>) -> Option<(RegistrationTarget, u64)> {
    match e {
        Effect::Send {
            msg:
                Msg::Connect {
                    purpose: ConnectPurpose::Registration(target),
                    connect_id,
                },
            ..
        } => Some((*target, *connect_id)),
        _ => None,
    }
}

/// The timer `t` of the TaskExecutor, if it is one.
fn own_timer(t: &Timer) -> Option<&TaskExecutorTimer> {
    match t {
        Timer::TaskExecutor(timer) => Some(timer),
        _ => None,
    }
}

/// A retry of a registration, at the ResourceManager or at a JobMaster.
fn is_registration_retry(t: &TaskExecutorTimer) -> bool {
    matches!(
        t,
        TaskExecutorTimer::ResourceManagerRegistration(RegistrationTimer::Retry { .. })
            | TaskExecutorTimer::JobManagerRegistration {
                timer: RegistrationTimer::Retry { .. },
                ..
            }
    )
}

fn to_job_master(out: &Effects) -> Vec<&JobMasterRpc> {
    sent(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Msg::JobMaster { job_id, rpc } => {
                assert_eq!(to, JM);
                assert_eq!(*job_id, JOB);
                Some(rpc)
            }
            _ => None,
        })
        .collect()
}

fn to_resource_manager(out: &Effects) -> Vec<&ResourceManagerRpc> {
    sent(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Msg::ResourceManager(r) => {
                assert_eq!(to, RM);
                Some(r)
            }
            _ => None,
        })
        .collect()
}

/// The state reports (`updateTaskExecutionState`) in `out`, in order.
fn reports(out: &Effects) -> Vec<(ExecutionAttemptId, ExecutionState)> {
    to_job_master(out)
        .into_iter()
        .filter_map(|r| match r {
            JobMasterRpc::UpdateTaskExecutionState {
                job_master_id,
                attempt,
                state,
                ..
            } => {
                assert_eq!(*job_master_id, JM_ID);
                Some((*attempt, *state))
            }
            _ => None,
        })
        .collect()
}

fn request_slot_answer(out: &Effects) -> Option<(AllocationId, bool)> {
    to_resource_manager(out).into_iter().find_map(|r| match r {
        ResourceManagerRpc::RequestSlotResponse { allocation_id, ok } => {
            Some((*allocation_id, *ok))
        }
        _ => None,
    })
}

fn registration_attempt(out: &Effects) -> Option<u64> {
    to_job_master(out).into_iter().find_map(|r| match r {
        JobMasterRpc::RegisterTaskManager { attempt_id, .. } => Some(*attempt_id),
        _ => None,
    })
}

fn offer(out: &Effects) -> Option<(u64, Vec<SlotOffer>)> {
    to_job_master(out).into_iter().find_map(|r| match r {
        JobMasterRpc::OfferSlots {
            job_master_id,
            offers,
            offer_id,
        } => {
            assert_eq!(*job_master_id, JM_ID);
            Some((*offer_id, offers.clone()))
        }
        _ => None,
    })
}

fn submit_answer(out: &Effects) -> Option<bool> {
    to_job_master(out).into_iter().find_map(|r| match r {
        JobMasterRpc::SubmitTaskResponse { ok, .. } => Some(*ok),
        _ => None,
    })
}

/// A TaskExecutor registered at the RM.
fn registered(bugs: Bugs) -> Harness {
    let mut h = Harness::new(bugs);
    let out = h.step(|te, ctx| te.on_start(ctx));
    let attempt_id = to_resource_manager(&out)
        .into_iter()
        .find_map(|r| match r {
            ResourceManagerRpc::RegisterTaskExecutor { attempt_id, .. } => Some(*attempt_id),
            _ => None,
        })
        .expect("registers at the RM");
    h.rpc(
        RM,
        TaskExecutorRpc::RegistrationResponse {
            attempt_id,
            response: RegistrationResponse::Success {
                instance_id: INSTANCE,
                resource_manager_id: RM_ID,
            },
        },
    );
    assert_eq!(h.component.connected_instance(), Some(INSTANCE));
    h
}

fn request_slot(h: &mut Harness, slot_index: u32, allocation_id: AllocationId) -> Effects {
    h.rpc(
        RM,
        TaskExecutorRpc::RequestSlot {
            slot_id: SlotId {
                task_manager: TE,
                slot_index,
            },
            job_id: JOB,
            allocation_id,
            job_master: JM,
            resource_manager_id: RM_ID,
        },
    )
}

fn registration_success(h: &mut Harness, attempt_id: u64) -> Effects {
    h.rpc(
        JM,
        TaskExecutorRpc::RegisterTaskManagerResponse {
            job_id: JOB,
            attempt_id,
            response: TaskManagerRegistration::Success {
                job_master_id: JM_ID,
            },
        },
    )
}

fn offer_response(h: &mut Harness, offer_id: u64, accepted: Vec<AllocationId>) -> Effects {
    h.rpc(
        JM,
        TaskExecutorRpc::OfferSlotsResponse {
            job_id: JOB,
            job_master_id: JM_ID,
            offer_id,
            accepted,
        },
    )
}

/// Registered at the RM, slot 0 allocated as `allocation_id`, connected to the JobMaster and
/// (when `accept`) the slot accepted.
fn connected(allocation_id: AllocationId, accept: bool) -> Harness {
    connected_with(Bugs::NONE, allocation_id, accept)
}

fn connected_with(bugs: Bugs, allocation_id: AllocationId, accept: bool) -> Harness {
    let mut h = registered(bugs);
    let out = request_slot(&mut h, 0, allocation_id);
    let attempt_id = registration_attempt(&out).expect("registers at the JobMaster");
    let out = registration_success(&mut h, attempt_id);
    assert!(traces(&out).contains(&&Obs::JobManagerConnected {
        job_id: JOB,
        job_master_id: JM_ID
    }));
    let (offer_id, offers) = offer(&out).expect("offers the slot");
    assert_eq!(
        offers,
        vec![SlotOffer {
            allocation_id,
            slot_index: 0
        }]
    );
    if accept {
        let out = offer_response(&mut h, offer_id, vec![allocation_id]);
        assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id }));
    }
    h
}

fn attempt(vertex: u32, subtask: u32) -> ExecutionAttemptId {
    ExecutionAttemptId {
        graph: 1,
        vertex: ExecutionVertexId {
            vertex: JobVertexId(vertex),
            subtask,
        },
        attempt: 0,
    }
}

/// The `source` log node of the hand-driven tests.
const SOURCE_LOG: NodeId = NodeId(90);

/// The log's answer that hands `reader` all 1000 records of `partition`.
fn read_all(reader: ExecutionAttemptId, partition: u32) -> TaskExecutorRpc {
    TaskExecutorRpc::SourceRecords {
        reader,
        partition,
        offset: 0,
        count: 1000,
        end_offset: 1000,
    }
}

fn source_tdd(a: ExecutionAttemptId, allocation_id: AllocationId) -> TaskDeploymentDescriptor {
    TaskDeploymentDescriptor {
        job_id: JOB,
        attempt: a,
        allocation_id,
        task_name: "Source: sequence (1/1)#0".into(),
        source: Some(SourceAssignment {
            log: SOURCE_LOG,
            partitions: vec![0, 1],
            records_per_partition: 1000,
            rate_per_sec: Some(100),
        }),
        inputs: Vec::new(),
        stream: std::sync::Arc::new(crate::protocol::rpc::StreamConfig::minimal()),
        subtask: 0,
        restore: None,
    }
}

fn consumer_tdd(
    a: ExecutionAttemptId,
    allocation_id: AllocationId,
    inputs: Vec<InputChannel>,
) -> TaskDeploymentDescriptor {
    TaskDeploymentDescriptor {
        job_id: JOB,
        attempt: a,
        allocation_id,
        task_name: "count (1/1)#0".into(),
        source: None,
        inputs,
        stream: std::sync::Arc::new(crate::protocol::rpc::StreamConfig::minimal()),
        subtask: 0,
        restore: None,
    }
}

fn submit(h: &mut Harness, tdd: TaskDeploymentDescriptor, job_master_id: JobMasterId) -> Effects {
    h.rpc(
        JM,
        TaskExecutorRpc::SubmitTask {
            tdd: Box::new(tdd),
            job_master_id,
        },
    )
}

/// Submits `tdd` and drives it to RUNNING.
fn running(h: &mut Harness, tdd: TaskDeploymentDescriptor) -> Effects {
    let a = tdd.attempt;
    assert_eq!(submit_answer(&submit(h, tdd, JM_ID)), Some(true));
    h.fire_step(a);
    let out = h.fire_step(a);
    assert_eq!(h.state_of(a), Some(ExecutionState::Running));
    out
}

// ---- requestSlot ----

fn is_rm_registration_timer(t: &TaskExecutorTimer) -> bool {
    matches!(t, TaskExecutorTimer::ResourceManagerRegistration(_))
}

fn rm_registration(out: &Effects) -> Option<u64> {
    to_resource_manager(out).into_iter().find_map(|r| match r {
        ResourceManagerRpc::RegisterTaskExecutor { attempt_id, .. } => Some(*attempt_id),
        _ => None,
    })
}

#[test]
fn a_registration_connects_first_and_a_failed_connection_retries_after_the_error_delay() {
    let mut h = Harness::new(Bugs::NONE);
    let config = h.component.config.clone();
    let out = h.step_raw(|te, ctx| te.on_start(ctx));
    let (target, first) = out.iter().find_map(connection).expect("connects first");
    assert_eq!(target, RegistrationTarget::ResourceManager);
    assert_eq!(rm_registration(&out), None, "no call before the connection");
    // The connection's ask times out; the registration connects again after the error delay.
    assert_eq!(
        h.armed(is_rm_registration_timer),
        [(
            config.ask_timeout,
            TaskExecutorTimer::ResourceManagerRegistration(RegistrationTimer::AttemptTimeout {
                attempt_id: first
            })
        )]
    );
    assert!(sent(&h.fire(is_rm_registration_timer)).is_empty());
    assert_eq!(
        h.armed(is_rm_registration_timer)[0].0,
        config.registration_error_delay
    );
    // A late answer to the failed connection changes nothing.
    assert!(
        sent(&h.step_raw(|te, ctx| te.on_connect_response(ctx, target, first, true))).is_empty()
    );
    let out = h.fire(is_rm_registration_timer);
    let (_, second) = out.iter().find_map(connection).expect("connects again");
    assert_ne!(second, first);
    let attempt = rm_registration(&out).expect("registers over the new connection");
    // A target that runs no ResourceManager fails the connection at once.
    h.step(|te, ctx| {
        te.on_rpc(
            ctx,
            RM,
            TaskExecutorRpc::RegistrationResponse {
                attempt_id: attempt,
                response: RegistrationResponse::Failure {
                    reason: "declined".to_string(),
                },
            },
        )
    });
    // A decline registers again over the same connection after the refused delay.
    assert_eq!(
        h.armed(is_rm_registration_timer)[0].0,
        config.registration_refused_delay
    );
    let out = h.fire(is_rm_registration_timer);
    assert!(
        out.iter().find_map(connection).is_none(),
        "no new connection"
    );
    let again = rm_registration(&out).expect("registers again");
    // An unreachable RM is an error: connect again after the error delay, and a connection
    // the target answers without the endpoint fails the same way.
    h.unreachable(
        RM,
        Msg::ResourceManager(ResourceManagerRpc::RegisterTaskExecutor {
            registration: TaskExecutorRegistration {
                resource_id: TE,
                session_id: 0,
                number_of_slots: 2,
            },
            attempt_id: again,
        }),
    );
    assert_eq!(
        h.armed(is_rm_registration_timer)[0].0,
        config.registration_error_delay
    );
    let out =
        h.0.fire_own(own_timer, is_rm_registration_timer, |te, ctx, id, t| {
            te.on_timer(ctx, id, t)
        })
        .0;
    let (_, third) = out.iter().find_map(connection).expect("connects again");
    assert!(
        sent(&h.step_raw(|te, ctx| te.on_connect_response(ctx, target, third, false))).is_empty()
    );
    assert_eq!(
        h.armed(is_rm_registration_timer)[0].0,
        config.registration_error_delay
    );
}

#[test]
fn request_slot_allocates_acks_and_registers_at_the_job_master() {
    let mut h = registered(Bugs::NONE);
    let out = request_slot(&mut h, 1, 100);
    assert_eq!(request_slot_answer(&out), Some((100, true)));
    assert!(traces(&out).contains(&&Obs::SlotAllocated {
        slot_index: 1,
        allocation_id: 100,
        job_id: JOB
    }));
    assert!(registration_attempt(&out).is_some());
    assert_eq!(
        h.component.slots().collect::<Vec<_>>(),
        vec![(0, None), (1, Some((100, JOB, false)))]
    );
    assert_eq!(
        h.armed(|t| matches!(
            t,
            TaskExecutorTimer::SlotTimeout {
                allocation_id: 100,
                ..
            }
        ))[0]
            .0,
        h.component.config.taskmanager_slot_timeout
    );
    // The RM heartbeat carries the allocation.
    let out = h.rpc(
        RM,
        TaskExecutorRpc::HeartbeatFromResourceManager { resource_id: RM },
    );
    let report = to_resource_manager(&out)
        .into_iter()
        .find_map(|r| match r {
            ResourceManagerRpc::HeartbeatFromTaskManager { slot_report, .. } => {
                Some(slot_report.clone())
            }
            _ => None,
        })
        .expect("answers the RM heartbeat");
    assert_eq!(
        report,
        vec![
            SlotStatus {
                slot_index: 0,
                allocation: None
            },
            SlotStatus {
                slot_index: 1,
                allocation: Some((100, JOB))
            }
        ]
    );
}

#[test]
fn request_slot_for_the_same_allocation_is_idempotent() {
    let mut h = registered(Bugs::NONE);
    request_slot(&mut h, 0, 100);
    let out = request_slot(&mut h, 0, 100);
    assert_eq!(request_slot_answer(&out), Some((100, true)));
    assert!(traces(&out).is_empty(), "nothing changes: {out:?}");
    assert_eq!(registration_attempt(&out), None, "already registering");
}

#[test]
fn request_slot_for_an_occupied_slot_is_refused() {
    let mut h = registered(Bugs::NONE);
    request_slot(&mut h, 0, 100);
    let out = request_slot(&mut h, 0, 200);
    assert_eq!(request_slot_answer(&out), Some((200, false)));
    assert!(traces(&out).is_empty());
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
}

#[test]
fn request_slot_is_refused_unless_connected_to_that_resource_manager() {
    let mut h = Harness::new(Bugs::NONE);
    h.step(|te, ctx| te.on_start(ctx));
    let out = request_slot(&mut h, 0, 100);
    assert_eq!(
        request_slot_answer(&out),
        Some((100, false)),
        "not registered yet"
    );

    let mut h = registered(Bugs::NONE);
    let stale = |h: &mut Harness, from: NodeId, resource_manager_id| {
        h.rpc(
            from,
            TaskExecutorRpc::RequestSlot {
                slot_id: SlotId {
                    task_manager: TE,
                    slot_index: 0,
                },
                job_id: JOB,
                allocation_id: 100,
                job_master: JM,
                resource_manager_id,
            },
        )
    };
    let out = stale(&mut h, RM, RM_ID + 1);
    assert_eq!(
        request_slot_answer(&out),
        Some((100, false)),
        "old RM leader"
    );
    let out = stale(&mut h, OTHER_TE, RM_ID);
    assert_eq!(
        sent(&out),
        vec![(
            OTHER_TE,
            &Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse {
                allocation_id: 100,
                ok: false
            })
        )],
        "not the RM"
    );
    assert!(h.component.slots().all(|(_, s)| s.is_none()));
}

#[test]
fn planted_slot_double_allocation_reassigns_an_occupied_slot() {
    let mut h = registered(Bugs::NONE.with(Bug::SlotDoubleAllocation));
    request_slot(&mut h, 0, 100);
    let out = request_slot(&mut h, 0, 200);
    assert_eq!(request_slot_answer(&out), Some((200, true)));
    let t = traces(&out);
    assert!(t.contains(&&Obs::SlotAllocated {
        slot_index: 0,
        allocation_id: 200,
        job_id: JOB
    }));
    assert!(
        !t.iter().any(|o| matches!(o, Obs::SlotFreed { .. })),
        "silently"
    );
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((200, JOB, false))))
    );
}

// ---- JobMaster connection and offers ----

#[test]
fn accepted_offer_activates_the_slot() {
    let h = connected(100, true);
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, true))))
    );
    assert_eq!(h.component.job_manager_connection(JOB), Some(JM_ID));
}

#[test]
fn duplicate_registration_success_is_ignored() {
    let mut h = registered(Bugs::NONE);
    let out = request_slot(&mut h, 0, 100);
    let attempt_id = registration_attempt(&out).unwrap();
    registration_success(&mut h, attempt_id);
    let out = registration_success(&mut h, attempt_id);
    assert!(out.is_empty(), "FLINK-7526: {out:?}");
}

#[test]
fn rejected_offer_frees_the_slot_and_closes_the_job() {
    let mut h = connected(100, false);
    let (offer_id, _) = h
        .armed(|t| matches!(t, TaskExecutorTimer::OfferSlotsTimeout { .. }))
        .into_iter()
        .find_map(|(_, t)| match t {
            TaskExecutorTimer::OfferSlotsTimeout { offer_id, .. } => Some((offer_id, ())),
            _ => None,
        })
        .unwrap();
    let out = offer_response(&mut h, offer_id, vec![]);
    let t = traces(&out);
    assert!(t.contains(&&Obs::SlotFreed {
        slot_index: 0,
        allocation_id: 100
    }));
    assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
    assert!(
        to_resource_manager(&out).contains(&&ResourceManagerRpc::NotifySlotAvailable {
            instance_id: INSTANCE,
            slot_id: SlotId {
                task_manager: TE,
                slot_index: 0
            },
            allocation_id: 100
        })
    );
    assert_eq!(
        registration_attempt(&out),
        None,
        "no slots: no re-registration"
    );
    assert_eq!(h.component.job_manager_connection(JOB), None);
}

#[test]
fn only_the_latest_offer_is_answered() {
    let mut h = connected(100, false);
    let first = match &h.armed(|t| matches!(t, TaskExecutorTimer::OfferSlotsTimeout { .. }))[0].1 {
        TaskExecutorTimer::OfferSlotsTimeout { offer_id, .. } => *offer_id,
        _ => unreachable!(),
    };
    // The ask times out: the slots are offered again under a new id.
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::OfferSlotsTimeout { .. }));
    let (second, offers) = offer(&out).expect("re-offers");
    assert_ne!(first, second);
    assert_eq!(offers.len(), 1);
    let out = offer_response(&mut h, first, vec![100]);
    assert!(
        out.is_empty(),
        "FLINK-21859: a superseded answer is ignored"
    );
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
    let out = offer_response(&mut h, second, vec![100]);
    assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
}

#[test]
fn registration_rejection_releases_the_jobs_slots() {
    let mut h = registered(Bugs::NONE);
    let out = request_slot(&mut h, 0, 100);
    let attempt_id = registration_attempt(&out).unwrap();
    let out = h.rpc(
        JM,
        TaskExecutorRpc::RegisterTaskManagerResponse {
            job_id: JOB,
            attempt_id,
            response: TaskManagerRegistration::Rejection,
        },
    );
    assert!(traces(&out).contains(&&Obs::SlotFreed {
        slot_index: 0,
        allocation_id: 100
    }));
    assert!(h.component.slots().all(|(_, s)| s.is_none()));
    assert!(h
        .armed(|t| matches!(
            t,
            TaskExecutorTimer::ResourceManagerRegistration(RegistrationTimer::Retry { .. })
                | TaskExecutorTimer::JobManagerRegistration { .. }
        ))
        .is_empty());
}

#[test]
fn unreachable_job_master_registration_retries_after_the_error_delay() {
    let mut h = registered(Bugs::NONE);
    let out = request_slot(&mut h, 0, 100);
    let attempt_id = registration_attempt(&out).unwrap();
    h.unreachable(
        JM,
        Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::RegisterTaskManager {
                session_id: 0,
                attempt_id,
            },
        },
    );
    let retry = h.armed(|t| {
        matches!(
            t,
            TaskExecutorTimer::JobManagerRegistration {
                job_id: JOB,
                timer: RegistrationTimer::Retry { .. },
            }
        )
    });
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].0, h.component.config.registration_error_delay);
    let out = h.fire(is_registration_retry);
    assert!(registration_attempt(&out).is_some_and(|id| id != attempt_id));
}

// ---- submitTask ----

#[test]
fn submit_task_is_refused_without_a_job_master_connection() {
    let mut h = registered(Bugs::NONE);
    request_slot(&mut h, 0, 100);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(false));
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn submit_task_is_refused_for_another_job_master_id() {
    let mut h = connected(100, true);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID + 1);
    assert_eq!(submit_answer(&out), Some(false));
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn submit_task_is_refused_for_a_slot_the_job_does_not_hold() {
    let mut h = connected(100, true);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 999), JM_ID);
    assert_eq!(submit_answer(&out), Some(false), "no such slot");
    // A slot of another job.
    let out = h.rpc(
        RM,
        TaskExecutorRpc::RequestSlot {
            slot_id: SlotId {
                task_manager: TE,
                slot_index: 1,
            },
            job_id: JOB + 1,
            allocation_id: 200,
            job_master: JM,
            resource_manager_id: RM_ID,
        },
    );
    assert_eq!(request_slot_answer(&out), Some((200, true)));
    let out = submit(&mut h, source_tdd(attempt(0, 0), 200), JM_ID);
    assert_eq!(submit_answer(&out), Some(false), "another job's slot");
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn submit_task_activates_an_allocated_slot_whose_acceptance_was_lost() {
    let mut h = connected(100, false);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(true));
    assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
    assert!(h
        .armed(|t| matches!(t, TaskExecutorTimer::SlotTimeout { .. }))
        .is_empty());
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, true))))
    );
}

#[test]
fn task_lifecycle_is_reported_in_order() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    let mut out = submit(&mut h, source_tdd(a, 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(true));
    assert_eq!(
        h.armed(|t| *t == TaskExecutorTimer::TaskStep { attempt: a })[0].0,
        TASK_DEPLOY_DURATION
    );
    out.extend(h.fire_step(a));
    out.extend(h.fire_step(a));
    // RUNNING: each partition is fetched from the log, one interval's worth at a time
    // (100 records/s for 100 ms = 10 records).
    assert_eq!(
        h.armed(|t| *t == TaskExecutorTimer::TaskStep { attempt: a })[0].0,
        crate::taskmanager::task::SOURCE_FETCH_INTERVAL
    );
    for partition in [0, 1] {
        let fetch = Msg::SourceLog(SourceLogRpc::Fetch {
            reader: a,
            partition,
            offset: 0,
            max_records: 10,
        });
        assert!(sent(&out).contains(&(SOURCE_LOG, &fetch)), "{fetch:?}");
    }
    for partition in [0, 1] {
        out.extend(h.rpc(SOURCE_LOG, read_all(a, partition)));
    }
    assert_eq!(
        reports(&out),
        vec![
            (a, ExecutionState::Initializing),
            (a, ExecutionState::Running),
            (a, ExecutionState::Finished)
        ]
    );
    let changes: Vec<(Option<ExecutionState>, ExecutionState)> = traces(&out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::TaskStateChanged { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (None, ExecutionState::Deploying),
            (
                Some(ExecutionState::Deploying),
                ExecutionState::Initializing
            ),
            (Some(ExecutionState::Initializing), ExecutionState::Running),
            (Some(ExecutionState::Running), ExecutionState::Finished),
        ]
    );
    assert_eq!(h.state_of(a), Some(ExecutionState::Finished));
    // The slot stays ACTIVE: the JobMaster frees slots.
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, true))))
    );
}

#[test]
fn an_unknown_attempt_answer_fails_the_task() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.rpc(
        JM,
        TaskExecutorRpc::UpdateTaskExecutionStateResponse {
            attempt: a,
            ok: false,
        },
    );
    assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
    assert!(h
        .armed(|t| *t == TaskExecutorTimer::TaskStep { attempt: a })
        .is_empty());
}

#[test]
fn cancel_task_cancels_without_reporting_canceling() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.rpc(JM, TaskExecutorRpc::CancelTask { attempt: a });
    assert_eq!(h.state_of(a), Some(ExecutionState::Canceling));
    assert!(reports(&out).is_empty());
    let out = h.rpc(JM, TaskExecutorRpc::CancelTask { attempt: a });
    assert!(out.is_empty(), "a repeated cancel changes nothing");
    let out = h.fire_step(a);
    assert_eq!(reports(&out), vec![(a, ExecutionState::Canceled)]);
    assert!(h
        .rpc(JM, TaskExecutorRpc::CancelTask { attempt: a })
        .is_empty());
}

#[test]
fn fail_task_signal_fails_the_running_subtask() {
    let code = fail_task_signal(JobVertexId(3), 1);
    assert_eq!(fail_task_of_signal(code), Some((JobVertexId(3), 1)));
    assert_eq!(fail_task_of_signal(0), None);

    let mut h = connected(100, true);
    let a = attempt(3, 1);
    running(&mut h, source_tdd(a, 100));
    let out = h.step(|te, ctx| te.on_signal(ctx, fail_task_signal(JobVertexId(3), 0)));
    assert!(out.is_empty(), "another subtask");
    let out = h.step(|te, ctx| te.on_signal(ctx, code));
    assert!(
        to_job_master(&out).contains(&&JobMasterRpc::UpdateTaskExecutionState {
            job_master_id: JM_ID,
            attempt: a,
            state: ExecutionState::Failed,
            error: Some(INJECTED_FAILURE.to_string()),
        })
    );
}

// ---- JobMaster heartbeats and loss ----

#[test]
fn job_master_heartbeat_is_answered_with_the_deployed_attempts() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.rpc(
        JM,
        TaskExecutorRpc::HeartbeatFromJobManager {
            job_id: JOB,
            job_master_id: JM_ID,
            allocated: vec![100, 555],
        },
    );
    let jm = to_job_master(&out);
    assert!(jm.contains(&&JobMasterRpc::HeartbeatFromTaskManager { deployed: vec![a] }));
    assert!(
        jm.contains(&&JobMasterRpc::FailSlot { allocation_id: 555 }),
        "the JobMaster lists a slot this TE does not hold"
    );
    assert!(traces(&out).is_empty(), "the listed slot stays");
    // Another JobMaster instance is not monitored: no answer.
    let out = h.rpc(
        JM,
        TaskExecutorRpc::HeartbeatFromJobManager {
            job_id: JOB,
            job_master_id: JM_ID + 1,
            allocated: vec![],
        },
    );
    assert!(out.is_empty());
    // The JobMaster no longer lists the ACTIVE slot: it is freed, failing its task.
    let out = h.rpc(
        JM,
        TaskExecutorRpc::HeartbeatFromJobManager {
            job_id: JOB,
            job_master_id: JM_ID,
            allocated: vec![],
        },
    );
    assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
    assert!(traces(&out).contains(&&Obs::SlotFreed {
        slot_index: 0,
        allocation_id: 100
    }));
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn job_master_heartbeat_loss_fails_tasks_and_parks_slots() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::JobManagerHeartbeatTimeout { .. }));
    let t = traces(&out);
    let lost = t
        .iter()
        .position(|o| {
            **o == Obs::TargetLost {
                observer: Endpoint::TaskExecutor(TE),
                target: Endpoint::JobMaster(JM, JOB),
                cause: LossCause::HeartbeatTimeout,
            }
        })
        .expect("declares the JobMaster lost");
    let stopped = t
        .iter()
        .position(|o| matches!(o, Obs::HeartbeatMonitorStopped { .. }))
        .expect("unmonitors");
    assert!(lost < stopped);
    assert!(t.contains(&&Obs::SlotDeactivated { allocation_id: 100 }));
    assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
    assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
    assert_eq!(h.state_of(a), Some(ExecutionState::Failed));
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
    assert!(registration_attempt(&out).is_some(), "re-registers");
    assert!(
        to_job_master(&out).contains(&&JobMasterRpc::DisconnectTaskManager {
            resource_id: TE,
            cause: DisconnectCause::HeartbeatTimeout
        })
    );
    // The parked slot times out unless a new leader accepts it.
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::SlotTimeout { .. }));
    assert!(traces(&out).contains(&&Obs::SlotFreed {
        slot_index: 0,
        allocation_id: 100
    }));
    assert!(h.component.slots().all(|(_, s)| s.is_none()));
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn disconnect_from_the_job_master_reconnects_without_declaring_a_loss() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.rpc(
        JM,
        TaskExecutorRpc::DisconnectJobManager {
            job_id: JOB,
            cause: DisconnectCause::HeartbeatTimeout,
        },
    );
    assert!(!traces(&out)
        .iter()
        .any(|o| matches!(o, Obs::TargetLost { .. })));
    assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
    let attempt_id = registration_attempt(&out).expect("re-registers");
    // A new leader session accepts the parked slot through a new offer.
    let out = h.rpc(
        JM,
        TaskExecutorRpc::RegisterTaskManagerResponse {
            job_id: JOB,
            attempt_id,
            response: TaskManagerRegistration::Success {
                job_master_id: JM_ID + 1,
            },
        },
    );
    let offer_id = to_job_master(&out)
        .into_iter()
        .find_map(|r| match r {
            JobMasterRpc::OfferSlots {
                offer_id, offers, ..
            } => {
                assert_eq!(offers.len(), 1);
                Some(*offer_id)
            }
            _ => None,
        })
        .expect("offers the parked slot");
    let out = h.rpc(
        JM,
        TaskExecutorRpc::OfferSlotsResponse {
            job_id: JOB,
            job_master_id: JM_ID + 1,
            offer_id,
            accepted: vec![100],
        },
    );
    assert!(traces(&out).contains(&&Obs::SlotActivated { allocation_id: 100 }));
}

#[test]
fn losing_the_resource_manager_leaves_tasks_running() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::ResourceManagerHeartbeatTimeout { .. }));
    assert!(traces(&out).contains(&&Obs::ResourceManagerDisconnected {
        resource_manager: RM
    }));
    assert_eq!(h.state_of(a), Some(ExecutionState::Running));
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, true))))
    );
    assert_eq!(h.component.job_manager_connection(JOB), Some(JM_ID));
}

// ---- freeing ----

#[test]
fn slot_timeout_frees_an_unaccepted_slot_and_notifies_the_resource_manager() {
    let mut h = registered(Bugs::NONE);
    request_slot(&mut h, 1, 100);
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::SlotTimeout { .. }));
    assert!(traces(&out).contains(&&Obs::SlotFreed {
        slot_index: 1,
        allocation_id: 100
    }));
    assert_eq!(
        to_resource_manager(&out),
        vec![&ResourceManagerRpc::NotifySlotAvailable {
            instance_id: INSTANCE,
            slot_id: SlotId {
                task_manager: TE,
                slot_index: 1
            },
            allocation_id: 100
        }]
    );
    assert!(h.component.slots().all(|(_, s)| s.is_none()));
    // The job left: its registration stops.
    assert!(h
        .armed(|t| matches!(
            t,
            TaskExecutorTimer::JobManagerRegistration {
                timer: RegistrationTimer::AttemptTimeout { .. },
                ..
            }
        ))
        .is_empty());
}

#[test]
fn an_accepted_slot_does_not_time_out() {
    let mut h = connected(100, true);
    assert!(h
        .armed(|t| matches!(t, TaskExecutorTimer::SlotTimeout { .. }))
        .is_empty());
}

#[test]
fn free_slot_fails_its_tasks_and_closes_the_job() {
    let mut h = connected(100, true);
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.rpc(JM, TaskExecutorRpc::FreeSlot { allocation_id: 100 });
    assert_eq!(reports(&out), vec![(a, ExecutionState::Failed)]);
    let t = traces(&out);
    assert!(t.contains(&&Obs::SlotFreed {
        slot_index: 0,
        allocation_id: 100
    }));
    assert!(t.contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
    assert!(!t.iter().any(|o| matches!(o, Obs::TargetLost { .. })));
    assert_eq!(registration_attempt(&out), None, "no re-registration");
    assert!(to_resource_manager(&out).iter().any(|r| matches!(
        r,
        ResourceManagerRpc::NotifySlotAvailable {
            allocation_id: 100,
            ..
        }
    )));
    assert_eq!(h.component.tasks().count(), 0);
    assert_eq!(h.component.job_manager_connection(JOB), None);
}

// ---- data plane ----

/// A buffer from `producer` to `consumer` with `elements`.
fn buffer(
    producer: ExecutionAttemptId,
    consumer: ExecutionAttemptId,
    seq: u64,
    elements: Vec<StreamElement>,
) -> TaskExecutorRpc {
    TaskExecutorRpc::DataBatch {
        producer,
        consumer,
        seq,
        elements: elements.into(),
    }
}

fn buffers_to(out: &Effects, consumer: ExecutionAttemptId) -> Vec<u64> {
    sent(out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                consumer: c, seq, ..
            }) if *c == consumer => Some(*seq),
            _ => None,
        })
        .collect()
}

#[test]
fn end_of_partition_in_band_completes_a_consumer() {
    let mut h = connected(100, true);
    let producer = attempt(0, 0);
    let consumer = attempt(1, 0);
    let tdd = consumer_tdd(
        consumer,
        100,
        vec![InputChannel {
            producer,
            task_manager: OTHER_TE,
        }],
    );
    let out = running(&mut h, tdd);
    assert!(sent(&out).contains(&(
        OTHER_TE,
        &Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer })
    )));
    // A buffer out of order is not taken; the progress tells the producer where we are.
    let out = h.rpc(OTHER_TE, buffer(producer, consumer, 1, vec![]));
    assert_eq!(h.state_of(consumer), Some(ExecutionState::Running));
    assert!(sent(&out).contains(&(
        OTHER_TE,
        &Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
            producer,
            consumer,
            received: 0,
            consumed: 0
        })
    )));
    let out = h.rpc(
        OTHER_TE,
        buffer(
            producer,
            consumer,
            0,
            vec![StreamElement::EndOfData, StreamElement::EndOfPartition],
        ),
    );
    assert_eq!(reports(&out), vec![(consumer, ExecutionState::Finished)]);
    assert!(sent(&out).contains(&(
        OTHER_TE,
        &Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
            producer,
            consumer,
            received: 1,
            consumed: 1
        })
    )));
}

#[test]
fn a_producer_sends_its_partition_within_the_consumers_credit() {
    let mut h = connected(100, true);
    let producer = attempt(0, 0);
    let mut tdd = source_tdd(producer, 100);
    tdd.stream = std::sync::Arc::new(StreamConfig {
        output: Some(crate::protocol::rpc::OutputConfig {
            partitioner: crate::protocol::job_graph::Partitioner::Rebalance,
            key_by: None,
            consumer_parallelism: 2,
            consumer_max_parallelism: 128,
        }),
        ..StreamConfig::minimal()
    });
    running(&mut h, tdd);
    let early = attempt(1, 0);
    let out = h.rpc(
        OTHER_TE,
        TaskExecutorRpc::RequestSubpartition {
            producer,
            consumer: early,
        },
    );
    assert!(
        buffers_to(&out, early).is_empty(),
        "registered; no data yet"
    );
    // 2 × 1000 records, rebalanced: 1000 per consumer, 64 per buffer; the credit of a
    // channel is its 2 exclusive buffers.
    let mut out = h.rpc(SOURCE_LOG, read_all(producer, 0));
    out.extend(h.rpc(SOURCE_LOG, read_all(producer, 1)));
    assert_eq!(buffers_to(&out, early), vec![0, 1]);
    let out = h.rpc(
        OTHER_TE,
        TaskExecutorRpc::ChannelProgress {
            producer,
            consumer: early,
            received: 2,
            consumed: 1,
        },
    );
    assert_eq!(
        buffers_to(&out, early),
        vec![2],
        "one buffer recycled: one credit"
    );
    // A consumer that connects later gets what was kept for it, within its credit.
    let late = attempt(1, 1);
    let out = h.rpc(
        OTHER_TE,
        TaskExecutorRpc::RequestSubpartition {
            producer,
            consumer: late,
        },
    );
    assert_eq!(buffers_to(&out, late), vec![0, 1]);
    let unknown = attempt(9, 0);
    let out = h.rpc(
        OTHER_TE,
        TaskExecutorRpc::RequestSubpartition {
            producer: unknown,
            consumer: late,
        },
    );
    assert_eq!(
        sent(&out),
        vec![(
            OTHER_TE,
            &Msg::TaskExecutor(TaskExecutorRpc::PartitionNotFound {
                producer: unknown,
                consumer: late
            })
        )]
    );
}

#[test]
fn partition_not_found_backs_off_then_fails_the_consumer() {
    let mut h = connected(100, true);
    let producer = attempt(0, 0);
    let consumer = attempt(1, 0);
    let tdd = consumer_tdd(
        consumer,
        100,
        vec![InputChannel {
            producer,
            task_manager: OTHER_TE,
        }],
    );
    running(&mut h, tdd);
    let not_found = TaskExecutorRpc::PartitionNotFound { producer, consumer };
    let mut backoffs = Vec::new();
    loop {
        let out = h.rpc(OTHER_TE, not_found.clone());
        if let Some(r) = reports(&out).first() {
            assert_eq!(*r, (consumer, ExecutionState::Failed));
            break;
        }
        // A duplicate of the same answer does not double the backoff again.
        assert!(h.rpc(OTHER_TE, not_found.clone()).is_empty());
        let retry = h.armed(|t| matches!(t, TaskExecutorTimer::PartitionRequestRetry { .. }));
        assert_eq!(retry.len(), 1);
        backoffs.push(retry[0].0);
        let out = h.fire(|t| matches!(t, TaskExecutorTimer::PartitionRequestRetry { .. }));
        assert_eq!(
            sent(&out),
            vec![(
                OTHER_TE,
                &Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer })
            )]
        );
    }
    assert_eq!(backoffs.first(), Some(&PARTITION_REQUEST_BACKOFF_INITIAL));
    assert_eq!(backoffs.last(), Some(&PARTITION_REQUEST_BACKOFF_MAX));
    assert!(backoffs
        .windows(2)
        .all(|w| w[1] == (w[0] * 2).min(PARTITION_REQUEST_BACKOFF_MAX)));
    assert_eq!(backoffs.len(), 8, "100 ms doubling to 10 s");
}

#[test]
fn an_unanswered_partition_request_is_repeated_until_the_partition_ends() {
    let mut h = connected(100, true);
    let producer = attempt(0, 0);
    let consumer = attempt(1, 0);
    let tdd = consumer_tdd(
        consumer,
        100,
        vec![InputChannel {
            producer,
            task_manager: OTHER_TE,
        }],
    );
    running(&mut h, tdd);
    let request = (
        OTHER_TE,
        Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }),
    );
    for _ in 0..3 {
        let resend = h.armed(|t| matches!(t, TaskExecutorTimer::PartitionRequestRetry { .. }));
        assert_eq!(resend.len(), 1);
        assert_eq!(resend[0].0, PARTITION_REQUEST_RESEND_INTERVAL);
        let out = h.fire(|t| matches!(t, TaskExecutorTimer::PartitionRequestRetry { .. }));
        assert_eq!(sent(&out), vec![(request.0, &request.1)]);
    }
    h.rpc(
        OTHER_TE,
        buffer(
            producer,
            consumer,
            0,
            vec![StreamElement::EndOfData, StreamElement::EndOfPartition],
        ),
    );
    assert_eq!(h.state_of(consumer), Some(ExecutionState::Finished));
    assert!(h
        .armed(|t| matches!(t, TaskExecutorTimer::PartitionRequestRetry { .. }))
        .is_empty());
}

#[test]
fn an_unreachable_producer_fails_the_consumer_at_once() {
    let mut h = connected(100, true);
    let producer = attempt(0, 0);
    let consumer = attempt(1, 0);
    let tdd = consumer_tdd(
        consumer,
        100,
        vec![InputChannel {
            producer,
            task_manager: OTHER_TE,
        }],
    );
    running(&mut h, tdd);
    let out = h.unreachable(
        OTHER_TE,
        Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }),
    );
    assert_eq!(reports(&out), vec![(consumer, ExecutionState::Failed)]);
}

/// The leader JobManager after a failover (HA), and its leader session id.
const NEW_JM: NodeId = NodeId(5);
const NEW_JM_ID: JobMasterId = 901;

fn new_job_leader(h: &mut Harness) -> Effects {
    let info = LeaderInformation {
        address: NEW_JM,
        leader_session_id: crate::protocol::ha::LeaderSessionId(NEW_JM_ID),
    };
    h.step(|te, ctx| te.on_job_leader(ctx, JOB, Some(info)))
}

#[test]
fn a_job_leader_change_closes_the_old_connection_and_registers_at_the_new_leader() {
    let mut h = connected(100, true);
    let out = new_job_leader(&mut h);
    // The old connection is closed (the old JobMaster is told) ...
    assert!(traces(&out).contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
    assert!(sent(&out).iter().any(|(to, m)| *to == JM
        && matches!(
            m,
            Msg::JobMaster {
                rpc: JobMasterRpc::DisconnectTaskManager { .. },
                ..
            }
        )));
    // ... the slot is parked for the new leader, and the TE registers there.
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
    assert!(sent(&out).iter().any(|(to, m)| *to == NEW_JM
        && matches!(
            m,
            Msg::JobMaster {
                rpc: JobMasterRpc::RegisterTaskManager { .. },
                ..
            }
        )));
    assert_eq!(h.component.job_manager_connection(JOB), None);
    // A late call of the deposed JobMaster is refused.
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(false));
    assert_eq!(h.component.tasks().count(), 0);
}

#[test]
fn the_planted_bugs_keep_the_deposed_job_master() {
    // tm-ignores-leader-change: the notification changes nothing.
    let mut h = connected_with(Bugs::NONE.with(Bug::TmIgnoresLeaderChange), 100, true);
    let out = new_job_leader(&mut h);
    assert!(sent(&out).is_empty(), "{out:?}");
    assert_eq!(h.component.job_manager_connection(JOB), Some(JM_ID));
    // no-fencing-check: a submission under another JobMasterId is taken.
    let mut h = connected_with(Bugs::NONE.with(Bug::NoFencingCheck), 100, true);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID + 1);
    assert_eq!(submit_answer(&out), Some(true));
    assert_eq!(h.component.tasks().count(), 1);
}

/// The fetches `out` sends to the source log.
fn fetches(out: &Effects) -> Vec<(ExecutionAttemptId, u32)> {
    sent(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Msg::SourceLog(SourceLogRpc::Fetch {
                reader, partition, ..
            }) => {
                assert_eq!(to, SOURCE_LOG);
                Some((*reader, *partition))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_planted_disconnect_bug_leaves_the_tasks_running() {
    let mut h = connected_with(
        Bugs::NONE.with(Bug::TasksOutliveJobMasterDisconnect),
        100,
        true,
    );
    let a = attempt(0, 0);
    running(&mut h, source_tdd(a, 100));
    let out = h.fire(|t| matches!(t, TaskExecutorTimer::JobManagerHeartbeatTimeout { .. }));
    assert!(traces(&out).contains(&&Obs::JobManagerDisconnected { job_id: JOB }));
    // The slot is parked as in Flink, but the task is neither failed nor reported.
    assert!(reports(&out).is_empty());
    assert_eq!(h.state_of(a), Some(ExecutionState::Running));
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
    // It goes on reading.
    let out = h.fire_step(a);
    assert!(!fetches(&out).is_empty());
}

#[test]
fn the_planted_reader_bug_keeps_a_cancelled_source_fetching() {
    for bug in [false, true] {
        let bugs = if bug {
            Bugs::NONE.with(Bug::ReaderOutlivesTask)
        } else {
            Bugs::NONE
        };
        let mut h = connected_with(bugs, 100, true);
        let a = attempt(0, 0);
        running(&mut h, source_tdd(a, 100));
        h.rpc(JM, TaskExecutorRpc::CancelTask { attempt: a });
        let out = h.fire_step(a);
        assert_eq!(reports(&out), vec![(a, ExecutionState::Canceled)]);
        let armed = h.armed(|t| *t == TaskExecutorTimer::TaskStep { attempt: a });
        assert_eq!(armed.is_empty(), !bug, "bug {bug}");
        if bug {
            // Both partitions are fetched again, every interval, and nothing is reported.
            for _ in 0..3 {
                let out = h.fire_step(a);
                assert_eq!(fetches(&out), vec![(a, 0), (a, 1)]);
                assert!(reports(&out).is_empty());
            }
            assert_eq!(h.state_of(a), Some(ExecutionState::Canceled));
        }
    }
}

#[test]
fn the_planted_submit_bug_refuses_a_slot_whose_offer_is_unanswered() {
    let mut h = connected_with(Bugs::NONE.with(Bug::SubmitNeedsActiveSlot), 100, false);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(false));
    assert_eq!(
        h.component.slots().next(),
        Some((0, Some((100, JOB, false))))
    );
    // Once the offer is accepted the slot takes tasks.
    let mut h = connected_with(Bugs::NONE.with(Bug::SubmitNeedsActiveSlot), 100, true);
    let out = submit(&mut h, source_tdd(attempt(0, 0), 100), JM_ID);
    assert_eq!(submit_answer(&out), Some(true));
}
