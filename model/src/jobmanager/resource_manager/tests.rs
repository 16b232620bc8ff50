//! Tests of the ResourceManager endpoint and its SlotManager, driven by hand through
//! `sim::testing::Driver`: TaskExecutor registration (instance id and fencing token, FLINK-9427's
//! slots-after-the-first-report order, re-registration), JobMaster registration and the fencing
//! of `declareRequiredResources` by JobMasterId, the batched requirement check that serves jobs
//! from free slots by `requestSlot`, the answers and ask timeouts of `requestSlot` (stale answers
//! ignored, FLINK-21874), reconciliation with slot reports and `notifySlotAvailable`, and both
//! heartbeats with what a timeout closes (docs/flink-runtime.md §1.4, §1.5, §2.3, §5.2).
//!
//! Every change of the SlotManager's view is traced as `SlotStateChanged` with its registration;
//! the planted bug `rm-trusts-stale-slot-report` reconciles with the previous heartbeat's report.
//!
//! Not covered here: active resource management (spare TaskManagers started and released), the
//! other planted bugs, and anything on the other side of the messages (the TaskExecutor and JobMaster
//! have their own tests); HA leadership of the RM is the JobManager process's.

use super::*;
use crate::jobmanager::test_support::{sends, sends_to, setup, traces, Effects, JM, TM1, TM2};
use crate::protocol::rpc::{SlotStatus, TaskExecutorRegistration};
use sim::testing::Driver;
use sim::Effect;
use std::time::Duration;

const RM_ID: ResourceManagerId = 77;
const JOB: JobId = 42;
const JM_ID: JobMasterId = 900;
/// Another JobMaster process of the same job (a newer leader).
const OTHER_JM: NodeId = NodeId(3);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(50);
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

struct Harness(Driver<Flink, ResourceManager>);

impl std::ops::Deref for Harness {
    type Target = Driver<Flink, ResourceManager>;
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
    /// A started ResourceManager of leader session `RM_ID` with Flink's default options.
    fn new() -> Harness {
        Harness::with_bugs(Bugs::NONE)
    }

    /// The same, with planted bugs switched on.
    fn with_bugs(bugs: Bugs) -> Harness {
        let setup = ClusterSetup { bugs, ..setup(&[]) };
        let rm = ResourceManager::new(JM, &setup).with_id(RM_ID);
        let mut h = Harness(Driver::new(JM, rm, 7, "resource-manager-test"));
        h.step(|rm, ctx| rm.on_start(ctx));
        h
    }

    fn heartbeat_report(&mut self, tm: NodeId, slot_report: SlotReport) -> Effects {
        self.rpc(
            tm,
            ResourceManagerRpc::HeartbeatFromTaskManager {
                resource_id: tm,
                slot_report,
            },
        )
    }

    fn rpc(&mut self, from: NodeId, rpc: ResourceManagerRpc) -> Effects {
        self.step(|rm, ctx| rm.on_rpc(ctx, from, rpc)).0
    }

    /// Fires the earliest armed timer matching `pred`, as the kernel would.
    fn pop(&mut self, pred: impl Fn(&ResourceManagerTimer) -> bool) -> Effects {
        self.0
            .fire_own(own_timer, pred, |rm, ctx, id, t| rm.on_timer(ctx, id, t))
            .0
    }

    /// The armed timers matching `pred`, with their delays (every timer the ResourceManager
    /// arms is its own).
    fn armed(
        &mut self,
        pred: impl Fn(&ResourceManagerTimer) -> bool,
    ) -> Vec<(Duration, ResourceManagerTimer)> {
        assert!(self.0.armed(|t| own_timer(t).is_none()).is_empty());
        self.0.armed_own(own_timer, pred)
    }

    /// Answers the one connection `out` opens (to `to`), as the process there would: the
    /// effects of the completed connection.
    fn connected(&mut self, out: &Effects, to: NodeId) -> Effects {
        match sends_to(out, to)[..] {
            [Msg::Connect {
                purpose,
                connect_id,
            }] => {
                let (purpose, connect_id) = (*purpose, *connect_id);
                self.step(|rm, ctx| rm.on_connect_response(ctx, to, purpose, connect_id, true))
                    .0
            }
            ref other => panic!("one connection expected: {other:?}"),
        }
    }

    fn register_te_raw(&mut self, tm: NodeId, attempt_id: u64) -> Effects {
        let out = self.register_te_call(tm, attempt_id);
        self.connected(&out, tm)
    }

    /// A `registerTaskExecutor` call: the RM connects back to the TaskExecutor first.
    fn register_te_call(&mut self, tm: NodeId, attempt_id: u64) -> Effects {
        self.rpc(
            tm,
            ResourceManagerRpc::RegisterTaskExecutor {
                registration: TaskExecutorRegistration {
                    resource_id: tm,
                    session_id: 1,
                    number_of_slots: 2,
                },
                attempt_id,
            },
        )
    }

    /// Registers `tm` and returns the instance id of the registration.
    fn register_te(&mut self, tm: NodeId) -> InstanceId {
        let out = self.register_te_raw(tm, 1);
        match sends_to(&out, tm)[..] {
            [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
                response: RegistrationResponse::Success { instance_id, .. },
                ..
            })] => *instance_id,
            ref other => panic!("one registration success expected: {other:?}"),
        }
    }

    fn report_slots(&mut self, tm: NodeId, instance_id: InstanceId, report: SlotReport) -> Effects {
        self.rpc(
            tm,
            ResourceManagerRpc::SendSlotReport {
                resource_id: tm,
                instance_id,
                slot_report: report,
            },
        )
    }

    /// Registers `tm` with `n` free slots and returns the instance id.
    fn register_with_slots(&mut self, tm: NodeId, n: u32) -> InstanceId {
        let instance_id = self.register_te(tm);
        self.report_slots(tm, instance_id, free_slots(n));
        instance_id
    }

    fn register_jm(&mut self, from: NodeId, job_master_id: JobMasterId) -> Effects {
        let out = self.rpc(
            from,
            ResourceManagerRpc::RegisterJobMaster {
                job_id: JOB,
                job_master_id,
                attempt_id: 5,
            },
        );
        self.connected(&out, from)
    }

    fn declare(
        &mut self,
        from: NodeId,
        job_master_id: JobMasterId,
        slots: u32,
        version: u64,
    ) -> Effects {
        self.rpc(
            from,
            ResourceManagerRpc::DeclareRequiredResources {
                job_id: JOB,
                job_master_id,
                slots,
                version,
            },
        )
    }

    /// The batched requirement check runs.
    fn check(&mut self) -> Effects {
        self.pop(|t| *t == ResourceManagerTimer::RequirementCheck)
    }

    fn answer(&mut self, tm: NodeId, allocation_id: AllocationId, ok: bool) -> Effects {
        self.rpc(
            tm,
            ResourceManagerRpc::RequestSlotResponse { allocation_id, ok },
        )
    }

    /// A TaskExecutor with two free slots and a JobMaster that declared `slots`; the first
    /// requirement check has run. Returns the TE's instance id and the `requestSlot`s sent.
    fn with_requests(&mut self, slots: u32) -> (InstanceId, Vec<SlotRequest>) {
        let instance_id = self.register_with_slots(TM1, 2);
        self.register_jm(JM, JM_ID);
        self.declare(JM, JM_ID, slots, 1);
        let out = self.check();
        (instance_id, slot_requests(&out))
    }
}

fn free_slots(n: u32) -> SlotReport {
    (0..n)
        .map(|slot_index| SlotStatus {
            slot_index,
            allocation: None,
        })
        .collect()
}

/// A `requestSlot` the SlotManager sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SlotRequest {
    to: NodeId,
    slot_id: SlotId,
    job_id: JobId,
    allocation_id: AllocationId,
    job_master: NodeId,
    resource_manager_id: ResourceManagerId,
}

fn slot_requests(out: &Effects) -> Vec<SlotRequest> {
    sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Msg::TaskExecutor(TaskExecutorRpc::RequestSlot {
                slot_id,
                job_id,
                allocation_id,
                job_master,
                resource_manager_id,
            }) => Some(SlotRequest {
                to,
                slot_id: *slot_id,
                job_id: *job_id,
                allocation_id: *allocation_id,
                job_master: *job_master,
                resource_manager_id: *resource_manager_id,
            }),
            _ => None,
        })
        .collect()
}

/// The timer `t` of the ResourceManager, if it is one.
fn own_timer(t: &Timer) -> Option<&ResourceManagerTimer> {
    match t {
        Timer::ResourceManager(timer) => Some(timer),
        _ => None,
    }
}

fn is_te_timeout(tm: NodeId) -> impl Fn(&ResourceManagerTimer) -> bool {
    move |t| {
        *t == ResourceManagerTimer::TaskManagerHeartbeat(HeartbeatTimer::Timeout { target: tm })
    }
}

fn is_request_timeout(allocation_id: AllocationId) -> impl Fn(&ResourceManagerTimer) -> bool {
    move |t| *t == ResourceManagerTimer::RequestSlotTimeout { allocation_id }
}

/// Two `registerTaskExecutor` calls of one TaskExecutor (its first attempt timed out) whose
/// connections back complete newest first: the older completion declines.
fn newer_then_outdated(bugs: Bugs) -> (Harness, Effects, Effects) {
    let mut h = Harness::with_bugs(bugs);
    let first = h.register_te_call(TM1, 1);
    let second = h.register_te_call(TM1, 2);
    let newer = h.connected(&second, TM1);
    let outdated = h.connected(&first, TM1);
    (h, newer, outdated)
}

#[test]
fn only_the_latest_registration_call_registers_when_its_connection_completes() {
    let (h, newer, outdated) = newer_then_outdated(Bugs::NONE);
    let [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
        attempt_id: 2,
        response: RegistrationResponse::Success { instance_id, .. },
    })] = sends_to(&newer, TM1)[..]
    else {
        panic!("the newer call registers: {newer:?}");
    };
    assert!(matches!(
        sends_to(&outdated, TM1)[..],
        [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
            attempt_id: 1,
            response: RegistrationResponse::Failure { .. },
        })]
    ));
    assert!(
        traces(&outdated).contains(&&Obs::OutdatedConnectionDeclined {
            task_executor: TM1,
            newer_registered: true,
        })
    );
    // The registration the TaskExecutor holds stays.
    assert_eq!(
        h.component.registered().collect::<Vec<_>>(),
        [(TM1, *instance_id, false)]
    );
}

#[test]
fn with_the_outdated_connection_bug_a_late_connection_replaces_the_registration() {
    let (h, newer, outdated) =
        newer_then_outdated(Bugs::NONE.with(Bug::OutdatedConnectionRegisters));
    let first = |out: &Effects| match sends_to(out, TM1)[..] {
        [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
            response: RegistrationResponse::Success { instance_id, .. },
            ..
        })] => *instance_id,
        ref other => panic!("a registration success: {other:?}"),
    };
    let (held, replaced) = (first(&newer), first(&outdated));
    assert_ne!(held, replaced);
    assert_eq!(
        h.component.registered().collect::<Vec<_>>(),
        [(TM1, replaced, false)]
    );
}

#[test]
fn a_connection_back_that_fails_declines_the_registration() {
    let mut h = Harness::new();
    let out = h.register_te_call(TM1, 4);
    let [Msg::Connect {
        purpose,
        connect_id,
    }] = sends_to(&out, TM1)[..]
    else {
        panic!("a connection back: {out:?}");
    };
    let (purpose, connect_id) = (*purpose, *connect_id);
    let out = h
        .step(|rm, ctx| rm.on_connect_response(ctx, TM1, purpose, connect_id, false))
        .0;
    assert!(matches!(
        sends_to(&out, TM1)[..],
        [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
            attempt_id: 4,
            response: RegistrationResponse::Failure { .. },
        })]
    ));
    assert_eq!(h.component.registered().count(), 0);
    // A second answer to the same connection finds nothing.
    assert!(h
        .step(|rm, ctx| rm.on_connect_response(ctx, TM1, purpose, connect_id, true))
        .0
        .is_empty());
}

#[test]
fn a_task_executor_registration_is_answered_with_its_instance_id_and_the_fencing_token() {
    let mut h = Harness::new();
    let out = h.register_te_raw(TM1, 3);
    let [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
        attempt_id: 3,
        response:
            RegistrationResponse::Success {
                instance_id,
                resource_manager_id: RM_ID,
            },
    })] = sends_to(&out, TM1)[..]
    else {
        panic!("a success echoing the attempt, with the RM's leader id: {out:?}");
    };
    assert!(traces(&out).contains(&&Obs::TaskExecutorRegistered {
        task_executor: TM1,
        instance_id: *instance_id,
    }));
    // The TE became a heartbeat target; its slots are not registered before its slot report.
    assert_eq!(h.armed(is_te_timeout(TM1)).len(), 1);
    assert_eq!(h.armed(is_te_timeout(TM1))[0].0, HEARTBEAT_TIMEOUT);
    assert_eq!(
        h.component.registered().collect::<Vec<_>>(),
        [(TM1, *instance_id, false)]
    );
}

#[test]
fn slots_are_registered_by_the_first_slot_report_of_the_current_registration_only() {
    let mut h = Harness::new();
    let instance_id = h.register_te(TM1);
    h.register_jm(JM, JM_ID);
    h.declare(JM, JM_ID, 1, 1);
    // Before the slot report the SlotManager has no slot to give (FLINK-9427).
    assert!(slot_requests(&h.check()).is_empty());

    // A report under another registration id is refused: the TE must reconnect.
    let out = h.report_slots(TM1, instance_id + 1, free_slots(2));
    assert_eq!(
        sends_to(&out, TM1),
        [&Msg::TaskExecutor(TaskExecutorRpc::SlotReportResponse {
            instance_id: instance_id + 1,
            ok: false,
        })]
    );
    assert!(traces(&out).is_empty());
    assert!(h
        .armed(|t| *t == ResourceManagerTimer::RequirementCheck)
        .is_empty());

    let out = h.report_slots(TM1, instance_id, free_slots(2));
    assert_eq!(
        sends_to(&out, TM1),
        [&Msg::TaskExecutor(TaskExecutorRpc::SlotReportResponse {
            instance_id,
            ok: true,
        })]
    );
    assert!(traces(&out).contains(&&Obs::SlotsRegistered {
        task_executor: TM1,
        instance_id,
        slots: 2,
    }));
    assert_eq!(
        h.component.registered().collect::<Vec<_>>(),
        [(TM1, instance_id, true)]
    );
    // The new slots fulfil the requirement declared before they registered.
    let requests = slot_requests(&h.check());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].to, TM1);
}

#[test]
fn a_declared_requirement_is_served_from_free_slots_by_request_slot() {
    let mut h = Harness::new();
    h.register_with_slots(TM1, 2);
    h.register_jm(JM, JM_ID);
    let out = h.declare(JM, JM_ID, 1, 1);
    assert_eq!(
        sends_to(&out, JM),
        [&Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::DeclareRequiredResourcesResponse { version: 1 },
        }]
    );
    // Checked after `slotmanager.requirement-check.delay`, not at once.
    assert!(slot_requests(&out).is_empty());
    assert_eq!(
        h.armed(|t| *t == ResourceManagerTimer::RequirementCheck),
        [(
            REQUIREMENT_CHECK_DELAY,
            ResourceManagerTimer::RequirementCheck
        )]
    );

    let out = h.check();
    let requests = slot_requests(&out);
    assert_eq!(requests.len(), 1, "one slot for one required: {out:?}");
    let r = requests[0];
    assert_eq!(r.to, TM1);
    assert_eq!(r.slot_id.task_manager, TM1);
    assert_eq!(r.job_id, JOB);
    assert_eq!(
        r.job_master, JM,
        "the TE connects to the declaring JobMaster"
    );
    assert_eq!(r.resource_manager_id, RM_ID);
    assert!(traces(&out).contains(&&Obs::SlotRequested {
        slot_id: r.slot_id,
        allocation_id: r.allocation_id,
        job_id: JOB,
    }));
    assert_eq!(
        h.armed(is_request_timeout(r.allocation_id)),
        [(
            ASK_TIMEOUT,
            ResourceManagerTimer::RequestSlotTimeout {
                allocation_id: r.allocation_id
            }
        )]
    );
}

#[test]
fn requirements_are_whole_declarations_checked_in_one_batch() {
    let mut h = Harness::new();
    h.register_with_slots(TM1, 2);
    h.register_jm(JM, JM_ID);
    h.declare(JM, JM_ID, 2, 1);
    h.declare(JM, JM_ID, 1, 2);
    // One check for both changes; the later declaration replaces the earlier (not a delta).
    assert_eq!(
        h.armed(|t| *t == ResourceManagerTimer::RequirementCheck)
            .len(),
        1
    );
    let requests = slot_requests(&h.check());
    assert_eq!(requests.len(), 1);

    // Once the slot is allocated, a repeated declaration asks for nothing more; a larger one
    // asks for the difference.
    h.answer(TM1, requests[0].allocation_id, true);
    h.declare(JM, JM_ID, 1, 3);
    assert!(slot_requests(&h.check()).is_empty());
    h.declare(JM, JM_ID, 2, 4);
    let more = slot_requests(&h.check());
    assert_eq!(more.len(), 1);
    assert_ne!(more[0].slot_id, requests[0].slot_id);
}

#[test]
fn declarations_are_fenced_by_the_registered_job_master_id() {
    let mut h = Harness::new();
    h.register_with_slots(TM1, 2);
    h.check();
    // No JobMaster registered for the job: ignored.
    assert!(h.declare(JM, JM_ID, 1, 1).is_empty());
    h.register_jm(JM, JM_ID);
    // Another JobMasterId than the registered one: ignored, not acknowledged.
    assert!(h.declare(JM, JM_ID + 1, 1, 1).is_empty());
    assert!(h
        .armed(|t| *t == ResourceManagerTimer::RequirementCheck)
        .is_empty());
    assert_eq!(sends_to(&h.declare(JM, JM_ID, 1, 2), JM).len(), 1);
}

#[test]
fn a_newer_job_master_replaces_the_registered_one_which_is_disconnected() {
    let mut h = Harness::new();
    let out = h.register_jm(JM, JM_ID);
    assert_eq!(
        sends_to(&out, JM),
        [&Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::RegisterJobMasterResponse {
                attempt_id: 5,
                response: JobMasterRegistration::Success {
                    resource_manager_id: RM_ID
                },
            },
        }]
    );
    // The RM is the heartbeat sender towards the JobMaster.
    let jm_timeout = |target| ResourceManagerTimer::JobManagerHeartbeat {
        job_id: JOB,
        timer: HeartbeatTimer::Timeout { target },
    };
    assert_eq!(h.armed(|t| *t == jm_timeout(JM)).len(), 1);

    let out = h.register_jm(OTHER_JM, JM_ID + 1);
    assert_eq!(
        sends_to(&out, JM),
        [&Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::DisconnectResourceManager {
                cause: DisconnectCause::Reconnect
            },
        }]
    );
    assert_eq!(
        sends_to(&out, OTHER_JM).len(),
        1,
        "the newer one is registered"
    );
    assert!(h.armed(|t| *t == jm_timeout(JM)).is_empty());
    assert_eq!(h.armed(|t| *t == jm_timeout(OTHER_JM)).len(), 1);
    // The replaced JobMaster's declarations no longer count.
    assert!(h.declare(JM, JM_ID, 1, 1).is_empty());
    assert_eq!(
        sends_to(&h.declare(OTHER_JM, JM_ID + 1, 1, 1), OTHER_JM).len(),
        1
    );
}

#[test]
fn a_failed_request_slot_frees_the_slot_and_the_check_runs_again() {
    let mut h = Harness::new();
    let (_, requests) = h.with_requests(1);
    let first = requests[0];
    let out = h.answer(TM1, first.allocation_id, false);
    assert!(h.armed(is_request_timeout(first.allocation_id)).is_empty());
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::SetTimer {
            tag: Timer::ResourceManager(ResourceManagerTimer::RequirementCheck),
            ..
        }
    )));
    let again = slot_requests(&h.check());
    assert_eq!(again.len(), 1);
    assert_ne!(
        again[0].allocation_id, first.allocation_id,
        "every allocation gets a fresh AllocationID"
    );
}

#[test]
fn a_late_answer_to_a_timed_out_request_slot_is_ignored() {
    let mut h = Harness::new();
    let (_, requests) = h.with_requests(1);
    let first = requests[0];
    // The ask timeout passes: the slot is free again and requested anew.
    h.pop(is_request_timeout(first.allocation_id));
    // Requested at the check, 50 ms in; the ask timeout runs from there.
    assert_eq!(h.now(), sim::Time::from_millis(10_050));
    let second = slot_requests(&h.check());
    assert_eq!(second.len(), 1);
    let second = second[0];
    assert_ne!(second.allocation_id, first.allocation_id);

    // The answer to the first request comes late: it confirms nothing (FLINK-21874).
    assert!(h.answer(TM1, first.allocation_id, true).is_empty());
    assert_eq!(h.armed(is_request_timeout(second.allocation_id)).len(), 1);
    // The current request is still pending and its answer counts.
    h.answer(TM1, second.allocation_id, true);
    assert!(h.armed(is_request_timeout(second.allocation_id)).is_empty());
    h.declare(JM, JM_ID, 1, 2);
    assert!(
        slot_requests(&h.check()).is_empty(),
        "the slot is allocated"
    );
}

#[test]
fn a_slot_report_showing_an_allocated_slot_free_frees_it_but_leaves_pending_ones() {
    let mut h = Harness::new();
    let (_, requests) = h.with_requests(2);
    assert_eq!(requests.len(), 2);
    let (a, b) = (requests[0], requests[1]);
    h.answer(TM1, a.allocation_id, true);
    // The TE's heartbeat report shows both slots free: the allocated one is freed, the pending
    // one (a report sent before the TE saw the request) is kept.
    let out = h.rpc(
        TM1,
        ResourceManagerRpc::HeartbeatFromTaskManager {
            resource_id: TM1,
            slot_report: free_slots(2),
        },
    );
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::SetTimer {
            tag: Timer::ResourceManager(ResourceManagerTimer::RequirementCheck),
            ..
        }
    )));
    assert_eq!(h.armed(is_request_timeout(b.allocation_id)).len(), 1);
    let again = slot_requests(&h.check());
    assert_eq!(again.len(), 1, "only the freed slot is requested again");
    assert_eq!(again[0].slot_id, a.slot_id);
    assert_ne!(again[0].allocation_id, a.allocation_id);
}

#[test]
fn notify_slot_available_frees_a_slot_only_for_its_current_allocation_and_registration() {
    let mut h = Harness::new();
    let (instance_id, requests) = h.with_requests(1);
    let a = requests[0];
    h.answer(TM1, a.allocation_id, true);
    let notify = |instance_id, allocation_id| ResourceManagerRpc::NotifySlotAvailable {
        instance_id,
        slot_id: a.slot_id,
        allocation_id,
    };
    // Another allocation of the slot, or another registration of the TE: nothing happens.
    assert!(h
        .rpc(TM1, notify(instance_id, a.allocation_id + 1))
        .is_empty());
    assert!(h
        .rpc(TM1, notify(instance_id + 1, a.allocation_id))
        .is_empty());
    assert!(h
        .armed(|t| *t == ResourceManagerTimer::RequirementCheck)
        .is_empty());

    h.rpc(TM1, notify(instance_id, a.allocation_id));
    let again = slot_requests(&h.check());
    assert_eq!(again.len(), 1, "the freed slot serves the job again");
    assert_ne!(again[0].allocation_id, a.allocation_id);
}

#[test]
fn a_task_executor_registering_again_replaces_its_old_registration() {
    let mut h = Harness::new();
    let old = h.register_with_slots(TM1, 2);
    let out = h.register_te_raw(TM1, 2);
    assert!(traces(&out).contains(&&Obs::TaskExecutorUnregistered {
        task_executor: TM1,
        instance_id: old,
    }));
    let [(_, new, false)] = h.component.registered().collect::<Vec<_>>()[..] else {
        panic!("one registration, slots not yet registered");
    };
    assert_ne!(new, old);
    // No disconnect is sent to the TE; reports of the old registration are refused.
    assert!(!sends_to(&out, TM1).iter().any(|m| matches!(
        m,
        Msg::TaskExecutor(TaskExecutorRpc::DisconnectResourceManager { .. })
    )));
    let out = h.report_slots(TM1, old, free_slots(2));
    assert_eq!(
        sends_to(&out, TM1),
        [&Msg::TaskExecutor(TaskExecutorRpc::SlotReportResponse {
            instance_id: old,
            ok: false
        })]
    );
}

#[test]
fn heartbeats_are_requested_every_interval_and_a_response_resets_the_monitor() {
    let mut h = Harness::new();
    h.register_te(TM1);
    let out = h.pop(|t| *t == ResourceManagerTimer::TaskManagerHeartbeat(HeartbeatTimer::Tick));
    assert_eq!(h.now(), sim::Time::from_secs(10));
    assert_eq!(
        sends_to(&out, TM1),
        [&Msg::TaskExecutor(
            TaskExecutorRpc::HeartbeatFromResourceManager { resource_id: JM }
        )]
    );
    assert_eq!(
        h.armed(|t| *t == ResourceManagerTimer::TaskManagerHeartbeat(HeartbeatTimer::Tick))
            .len(),
        1,
        "the loop re-arms"
    );
    h.advance(Duration::from_secs(20));
    h.rpc(
        TM1,
        ResourceManagerRpc::HeartbeatFromTaskManager {
            resource_id: TM1,
            slot_report: Vec::new(),
        },
    );
    // The monitor runs from the response at 30 s: it times out at 80 s, not at 50 s.
    let out = h.pop(is_te_timeout(TM1));
    assert_eq!(h.now(), sim::Time::from_secs(80));
    assert!(traces(&out)
        .iter()
        .any(|o| matches!(o, Obs::TargetLost { .. })));
}

#[test]
fn a_task_executor_heartbeat_timeout_closes_its_connection_and_its_slots_go() {
    let mut h = Harness::new();
    let (instance_id, requests) = h.with_requests(2);
    for r in &requests {
        h.answer(TM1, r.allocation_id, true);
    }
    let out = h.pop(is_te_timeout(TM1));
    let obs = traces(&out);
    assert!(obs.contains(&&Obs::TargetLost {
        observer: Endpoint::ResourceManager(JM),
        target: Endpoint::TaskExecutor(TM1),
        cause: LossCause::HeartbeatTimeout,
    }));
    assert!(obs.contains(&&Obs::TaskExecutorUnregistered {
        task_executor: TM1,
        instance_id,
    }));
    // Every JobMaster hears of the loss, and the TE is told to reconnect.
    assert_eq!(
        sends_to(&out, JM),
        [&Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::DisconnectTaskManager {
                resource_id: TM1,
                cause: DisconnectCause::HeartbeatTimeout,
            },
        }]
    );
    assert_eq!(
        sends_to(&out, TM1),
        [&Msg::TaskExecutor(
            TaskExecutorRpc::DisconnectResourceManager {
                cause: DisconnectCause::HeartbeatTimeout
            }
        )]
    );
    assert_eq!(h.component.registered().count(), 0);
    // The job's requirement is still there and is met on another TaskExecutor.
    h.register_with_slots(TM2, 2);
    let again = slot_requests(&h.check());
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|r| r.to == TM2 && r.job_id == JOB));
}

#[test]
fn a_job_master_heartbeat_timeout_disconnects_it_but_keeps_its_requirement() {
    let mut h = Harness::new();
    h.register_jm(JM, JM_ID);
    h.declare(JM, JM_ID, 1, 1);
    let out = h.pop(|t| {
        matches!(
            t,
            ResourceManagerTimer::JobManagerHeartbeat {
                timer: HeartbeatTimer::Timeout { .. },
                ..
            }
        )
    });
    assert!(traces(&out).contains(&&Obs::TargetLost {
        observer: Endpoint::ResourceManager(JM),
        target: Endpoint::JobMaster(JM, JOB),
        cause: LossCause::HeartbeatTimeout,
    }));
    assert_eq!(
        sends_to(&out, JM),
        [&Msg::JobMaster {
            job_id: JOB,
            rpc: JobMasterRpc::DisconnectResourceManager {
                cause: DisconnectCause::HeartbeatTimeout
            },
        }]
    );
    // Its declarations are fenced off until it registers again...
    assert!(h.declare(JM, JM_ID, 1, 2).is_empty());
    // ...but the requirement is retained: new slots still go to the job.
    h.register_with_slots(TM1, 1);
    let requests = slot_requests(&h.check());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].job_id, JOB);
}

#[test]
fn a_terminal_disconnect_of_the_job_master_clears_the_requirement() {
    let mut h = Harness::new();
    h.register_jm(JM, JM_ID);
    h.declare(JM, JM_ID, 1, 1);
    let disconnect = |job_master_id, terminal| ResourceManagerRpc::DisconnectJobManager {
        job_id: JOB,
        job_master_id,
        terminal,
    };
    // A non-terminal disconnect keeps the requirement (a JobMaster that reconnects).
    h.rpc(JM, disconnect(JM_ID, false));
    h.register_with_slots(TM1, 2);
    let requests = slot_requests(&h.check());
    assert_eq!(requests.len(), 1);
    h.answer(TM1, requests[0].allocation_id, true);

    h.rpc(JM, disconnect(JM_ID, true));
    // The slot comes back and nothing asks for it.
    h.rpc(
        TM1,
        ResourceManagerRpc::HeartbeatFromTaskManager {
            resource_id: TM1,
            slot_report: free_slots(2),
        },
    );
    assert!(slot_requests(&h.check()).is_empty());
}

/// The SlotManager's traced changes of its view, in order.
fn slot_states(out: &Effects) -> Vec<(SlotId, InstanceId, SlotState)> {
    traces(out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::SlotStateChanged {
                slot_id,
                instance_id,
                state,
            } => Some((*slot_id, *instance_id, *state)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_change_of_the_slot_managers_view_is_traced_with_its_registration() {
    let mut h = Harness::new();
    let instance_id = h.register_te(TM1);
    let out = h.report_slots(TM1, instance_id, free_slots(2));
    let slot = |slot_index| SlotId {
        task_manager: TM1,
        slot_index,
    };
    assert_eq!(
        slot_states(&out),
        [
            (slot(0), instance_id, SlotState::Free),
            (slot(1), instance_id, SlotState::Free)
        ]
    );
    h.register_jm(JM, JM_ID);
    h.declare(JM, JM_ID, 1, 1);
    let out = h.check();
    let r = slot_requests(&out)[0];
    let (allocation_id, job_id) = (r.allocation_id, JOB);
    assert_eq!(
        slot_states(&out),
        [(
            r.slot_id,
            instance_id,
            SlotState::Pending {
                allocation_id,
                job_id
            }
        )]
    );
    let out = h.answer(TM1, allocation_id, true);
    assert_eq!(
        slot_states(&out),
        [(
            r.slot_id,
            instance_id,
            SlotState::Allocated {
                allocation_id,
                job_id
            }
        )]
    );
    // A report that agrees changes (and traces) nothing; one that shows the slot free frees it.
    let mut report = free_slots(2);
    report[r.slot_id.slot_index as usize].allocation = Some((allocation_id, job_id));
    assert_eq!(slot_states(&h.heartbeat_report(TM1, report)), []);
    let out = h.heartbeat_report(TM1, free_slots(2));
    assert_eq!(
        slot_states(&out),
        [(r.slot_id, instance_id, SlotState::Free)]
    );
}

#[test]
fn with_the_stale_report_bug_a_heartbeat_is_reconciled_with_the_previous_report() {
    let mut h = Harness::with_bugs(Bugs::NONE.with(Bug::RmTrustsStaleSlotReport));
    let (instance_id, requests) = h.with_requests(1);
    let r = requests[0];
    let allocated = SlotState::Allocated {
        allocation_id: r.allocation_id,
        job_id: JOB,
    };
    h.answer(TM1, r.allocation_id, true);
    let mut report = free_slots(2);
    report[r.slot_id.slot_index as usize].allocation = Some((r.allocation_id, JOB));
    // The first heartbeat is only kept.
    assert_eq!(slot_states(&h.heartbeat_report(TM1, report)), []);
    // The TE freed the slot and said so; the next heartbeat (all free) brings back the
    // previous report's allocation.
    h.rpc(
        TM1,
        ResourceManagerRpc::NotifySlotAvailable {
            instance_id,
            slot_id: r.slot_id,
            allocation_id: r.allocation_id,
        },
    );
    let out = h.heartbeat_report(TM1, free_slots(2));
    assert_eq!(slot_states(&out), [(r.slot_id, instance_id, allocated)]);
}
