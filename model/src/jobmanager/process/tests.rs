//! Tests of the JobManager process, driven by hand through `sim::testing::Driver`. Without HA:
//! the components exist from the start, a submission starts its JobMaster at once, and a
//! finished JobMaster is reaped into the Dispatcher's results. With HA, against the real `ha`
//! store ([`HaStore`]) whose replies the tests deliver by hand: the start order of contenders
//! (`START_GAP`), `grantLeadership` (new components under the leader session id, confirmed
//! leadership), the ExecutionPlanStore written before a submission is acknowledged,
//! `revokeLeadership` on a suspended connection (jobs suspended, components and their timers
//! stopped), recovery of a job from the plan store by the next grant, and the JobResultStore
//! entry of a globally terminal job, its clean-up and its effect on the next leader
//! (docs/flink-runtime.md §1.1, §9.1–§9.3).
//!
//! Not covered here: the HA client and the store on their own (their modules test them), more
//! than one contending process, checkpoint pointers and the checkpoint id counter, and the
//! components' own protocol (their tests cover it).

use super::*;
use crate::external::ha::client::{connection_info_path, LATCH_PATH};
use crate::external::ha::node::{DISPATCHER_COMPONENT, RESOURCE_MANAGER_COMPONENT};
use crate::external::ha::store::HaStore;
use crate::jobmanager::test_support::{
    self, sends, sends_to, traces, Effects, CLIENT, HA, JM, TM1,
};
use crate::protocol::ha::{HaData, HaRequest, LeaderInformation, LeaderSessionId};
use crate::protocol::job_graph::JobSpec;
use crate::protocol::rpc::{
    ClientRpc, ConnectPurpose, Msg, RegistrationResponse, ResourceManagerRpc,
    TaskExecutorRegistration, TaskExecutorRpc,
};
use crate::protocol::states::JobStatus;
use crate::protocol::timer::{
    HeartbeatTimer, JobMasterTimer, RegistrationTarget, ResourceManagerTimer, Timer,
};
use crate::taskmanager::task_executor::job_component;
use sim::testing::Driver;
use std::collections::VecDeque;
use std::sync::Arc;

/// A standby JobManager.
const JM2: NodeId = NodeId(3);

fn no_ha() -> ClusterSetup {
    test_support::setup(&[("slot.request.timeout", "5 s")])
}

/// With ZooKeeper HA on the `ha` node; a second JobManager process (`JM2`) is the standby.
fn with_ha() -> ClusterSetup {
    let mut setup = test_support::setup(&[
        ("high-availability.type", "zookeeper"),
        ("slot.request.timeout", "5 s"),
    ]);
    setup.topology.ha = Some(HA);
    setup.topology.jobmanagers.push(JM2);
    setup
}

fn job() -> (JobId, Arc<JobSpec>) {
    let spec = test_support::spec("job", 1, vec![]);
    (test_support::job_id(&spec), spec)
}

fn submission(job_id: JobId, spec: &Arc<JobSpec>) -> DispatcherRpc {
    DispatcherRpc::SubmitJob {
        job_id,
        spec: Arc::clone(spec),
    }
}

fn submit_answers(out: &Effects) -> Vec<(JobId, bool)> {
    sends_to(out, CLIENT)
        .into_iter()
        .filter_map(|m| match m {
            Msg::Client(ClientRpc::SubmitJobResponse { job_id, duplicate }) => {
                Some((*job_id, *duplicate))
            }
            _ => None,
        })
        .collect()
}

fn granted(out: &Effects) -> Vec<u64> {
    traces(out)
        .into_iter()
        .filter_map(|o| match o {
            Obs::LeadershipGranted { leader_session_id } => Some(*leader_session_id),
            _ => None,
        })
        .collect()
}

fn ha_ops(out: &Effects) -> Vec<&Op> {
    sends_to(out, HA)
        .into_iter()
        .filter_map(|m| match m {
            Msg::Ha(HaRequest::Op { op, .. }) => Some(op),
            _ => None,
        })
        .collect()
}

/// One JobManager process and the `ha` store, with the network between them in the tests'
/// hands: requests queue until [`Cluster::deliver`], and a cut loses them.
struct Cluster {
    jm: Driver<Flink, JobManagerProcess>,
    store: HaStore,
    in_flight: VecDeque<HaRequest>,
    /// Partitioned from the `ha` node: requests are lost.
    cut: bool,
}

impl Cluster {
    fn new(me: NodeId, setup: &ClusterSetup) -> Cluster {
        Cluster {
            jm: Driver::new(
                me,
                JobManagerProcess::new(me, setup),
                7,
                "jobmanager-process-test",
            ),
            store: HaStore::new(HaData::default(), sim::Time::ZERO),
            in_flight: VecDeque::new(),
            cut: false,
        }
    }

    /// The process has started and leads: its grant was confirmed and its recovery ran.
    fn leading() -> (Cluster, u64) {
        let mut c = Cluster::new(JM, &with_ha());
        c.step(|p, ctx| p.on_start(ctx));
        let out = c.deliver();
        let [token] = granted(&out)[..] else {
            panic!("one grant: {out:?}");
        };
        (c, token)
    }

    /// Leads, with `job` submitted and running.
    fn running(job_id: JobId, spec: &Arc<JobSpec>) -> (Cluster, u64) {
        let (mut c, token) = Cluster::leading();
        c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, spec)));
        let out = c.deliver();
        assert_eq!(submit_answers(&out), [(job_id, false)]);
        (c, token)
    }

    fn process(&self) -> &JobManagerProcess {
        &self.jm.component
    }

    fn components(&self) -> &Components {
        self.process().components.as_ref().expect("leading")
    }

    /// Runs `f` on the process; its requests to the `ha` node are sent.
    fn step(&mut self, f: impl FnOnce(&mut JobManagerProcess, &mut Ctx<'_, Flink>)) -> Effects {
        let (out, ()) = self.jm.step(f);
        self.send(&out);
        out
    }

    fn send(&mut self, out: &Effects) {
        for (to, m) in sends(out) {
            if let (true, Msg::Ha(request)) = (to == HA, m) {
                if !self.cut {
                    self.in_flight.push_back(request.clone());
                }
            }
        }
    }

    /// Delivers every request in flight and the store's replies, until nothing is in flight;
    /// returns the process's effects meanwhile.
    fn deliver(&mut self) -> Effects {
        let mut all = Vec::new();
        while let Some(request) = self.in_flight.pop_front() {
            let me = self.jm.component.me;
            let reply = self.store.handle(self.jm.now(), me, request);
            for (to, reply) in reply.send {
                assert_eq!(to, me, "one client");
                all.extend(self.step(|p, ctx| p.on_ha_reply(ctx, reply)));
            }
        }
        all
    }

    /// The HA client's next tick (its clock moves there); the requests it sends are delivered
    /// unless the process is cut off.
    fn tick(&mut self) -> Effects {
        let (mut out, ()) = self.jm.fire(
            |t| *t == Timer::HaTick,
            |p, ctx, id, _| p.on_ha_tick(ctx, id),
        );
        self.send(&out);
        out.extend(self.deliver());
        out
    }

    /// Cut off from the `ha` node, ticks until leadership is revoked.
    fn lose_leadership(&mut self) -> Effects {
        self.cut = true;
        for _ in 0..10 {
            let out = self.tick();
            if traces(&out)
                .iter()
                .any(|o| matches!(o, Obs::LeadershipRevoked { .. }))
            {
                return out;
            }
        }
        panic!("leadership is revoked within ten ticks");
    }

    /// The partition heals: ticks until leadership is granted again; returns the new token.
    fn regain_leadership(&mut self) -> (Effects, u64) {
        self.cut = false;
        for _ in 0..10 {
            let out = self.tick();
            if let [token] = granted(&out)[..] {
                return (out, token);
            }
        }
        panic!("leadership is granted again within ten ticks");
    }

    /// The leader information `component` published in the store.
    fn published(&self, component: &str) -> Option<LeaderInformation> {
        match &self
            .store
            .data()
            .get(&connection_info_path(component))?
            .data
        {
            ZnodeData::LeaderInformation(info) => Some(*info),
            other => panic!("{other:?}"),
        }
    }

    fn znode(&self, path: &str) -> Option<&ZnodeData> {
        self.store.data().get(path).map(|n| &n.data)
    }

    /// The job's JobMaster waits for slots; its `slot.request.timeout` fires and (without a
    /// restart strategy) fails the job.
    fn fail_job(&mut self, job_id: JobId) -> Effects {
        let (out, ()) = self.jm.fire(
            |t| {
                matches!(t, Timer::JobMaster {
                    job_id: job,
                    timer: JobMasterTimer::SlotRequestTimeout { .. },
                } if *job == job_id)
            },
            |p, ctx, id, tag| {
                let Timer::JobMaster { timer, .. } = tag else {
                    unreachable!("matched")
                };
                p.step(ctx, |c, ctx| {
                    c.job_masters
                        .get_mut(&job_id)
                        .expect("the job's JobMaster")
                        .on_timer(ctx, id, timer)
                })
            },
        );
        self.send(&out);
        out
    }
}

/// The ResourceManager's answer to a TaskExecutor's registration carries its fencing token.
fn resource_manager_id(c: &mut Cluster) -> u64 {
    let rpc = ResourceManagerRpc::RegisterTaskExecutor {
        registration: TaskExecutorRegistration {
            resource_id: TM1,
            session_id: 1,
            number_of_slots: 1,
        },
        attempt_id: 1,
    };
    let out = c.step(|p, ctx| {
        p.step(ctx, |components, ctx| {
            components.resource_manager.on_rpc(ctx, TM1, rpc)
        })
    });
    // The RM connects back to the TaskExecutor before it answers.
    let connect_id = match sends_to(&out, TM1)[..] {
        [Msg::Connect {
            purpose: ConnectPurpose::ResourceManagerToTaskExecutor,
            connect_id,
        }] => *connect_id,
        ref other => panic!("a connection to the TaskExecutor: {other:?}"),
    };
    let out = c.step(|p, ctx| {
        p.step(ctx, |components, ctx| {
            components.resource_manager.on_connect_response(
                ctx,
                TM1,
                ConnectPurpose::ResourceManagerToTaskExecutor,
                connect_id,
                true,
            )
        })
    });
    match sends_to(&out, TM1)[..] {
        [Msg::TaskExecutor(TaskExecutorRpc::RegistrationResponse {
            response:
                RegistrationResponse::Success {
                    resource_manager_id,
                    ..
                },
            ..
        })] => *resource_manager_id,
        ref other => panic!("a registration success: {other:?}"),
    }
}

#[test]
fn without_ha_the_components_exist_from_the_start() {
    let mut c = Cluster::new(JM, &no_ha());
    assert_eq!(c.process().leader_session_id(), None);
    assert!(c.components().token.is_none());
    let out = c.step(|p, ctx| p.on_start(ctx));
    // The ResourceManager's heartbeat loop runs; there is no HA traffic.
    let ticks = c.jm.armed(|t| {
        *t == Timer::ResourceManager(ResourceManagerTimer::TaskManagerHeartbeat(
            HeartbeatTimer::Tick,
        ))
    });
    assert_eq!(ticks.len(), 1);
    assert!(sends(&out).is_empty());
    assert_eq!(
        resource_manager_id(&mut c),
        crate::jobmanager::resource_manager::DEFAULT_LEADER_ID
    );
}

#[test]
fn without_ha_a_submission_starts_its_job_master_at_once() {
    let mut c = Cluster::new(JM, &no_ha());
    c.step(|p, ctx| p.on_start(ctx));
    let (job_id, spec) = job();
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert_eq!(submit_answers(&out), [(job_id, false)]);
    assert!(traces(&out).contains(&&Obs::JobSubmitted { job_id }));
    let jm = &c.components().job_masters[&job_id];
    assert_eq!(jm.status(), JobStatus::Running);
    // The started JobMaster connects to the ResourceManager (of this process) to register.
    assert!(sends_to(&out, JM).iter().any(|m| matches!(
        m,
        Msg::Connect {
            purpose: ConnectPurpose::Registration(RegistrationTarget::ResourceManagerForJob(j)),
            ..
        } if *j == job_id
    )));
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert_eq!(submit_answers(&out), [(job_id, true)]);
    assert_eq!(c.components().job_masters.len(), 1);
}

#[test]
fn without_ha_a_globally_terminal_job_master_is_reaped_into_the_results() {
    let mut c = Cluster::new(JM, &no_ha());
    c.step(|p, ctx| p.on_start(ctx));
    let (job_id, spec) = job();
    c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    let out = c.fail_job(job_id);
    assert!(traces(&out).iter().any(|o| matches!(
        o,
        Obs::JobStatusChanged {
            to: JobStatus::Failed,
            ..
        }
    )));
    assert!(c.components().job_masters.is_empty(), "reaped");
    assert_eq!(
        c.components().dispatcher.result(job_id),
        Some(JobStatus::Failed)
    );
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert_eq!(submit_answers(&out), [(job_id, true)]);
}

#[test]
fn with_ha_a_standby_contends_one_start_gap_after_the_first_jobmanager() {
    let setup = with_ha();
    let mut first = Cluster::new(JM, &setup);
    let out = first.step(|p, ctx| p.on_start(ctx));
    assert!(matches!(
        sends_to(&out, HA)[..],
        [Msg::Ha(HaRequest::Connect { .. })]
    ));

    let mut standby = Cluster::new(JM2, &setup);
    let out = standby.step(|p, ctx| p.on_start(ctx));
    assert!(sends(&out).is_empty(), "the standby waits");
    assert_eq!(
        standby.jm.armed(|t| *t == Timer::HaTick),
        [(START_GAP, Timer::HaTick)]
    );
    let (out, ()) = standby.jm.fire(
        |t| *t == Timer::HaTick,
        |p, ctx, id, _| p.on_ha_tick(ctx, id),
    );
    assert_eq!(standby.jm.now(), sim::Time::ZERO + START_GAP);
    assert!(matches!(
        sends_to(&out, HA)[..],
        [Msg::Ha(HaRequest::Connect { .. })]
    ));
}

#[test]
fn with_ha_a_grant_starts_new_components_under_the_leader_session_id() {
    let mut c = Cluster::new(JM, &with_ha());
    c.step(|p, ctx| p.on_start(ctx));
    // Not (yet) the leader: no components, and the fenced Dispatcher does not answer.
    assert!(c.process().components.is_none());
    let (job_id, spec) = job();
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert!(out.is_empty());

    let out = c.deliver();
    let [token] = granted(&out)[..] else {
        panic!("one grant: {out:?}");
    };
    assert_eq!(c.process().leader_session_id(), Some(token));
    assert_eq!(c.components().token, Some(token));
    // The token is the latch's leader session: the zxid that created our latch node.
    let latch = c
        .process()
        .ha
        .as_ref()
        .unwrap()
        .services
        .client()
        .latch()
        .unwrap()
        .node()
        .unwrap()
        .to_string();
    assert_eq!(c.store.data().get(&latch).unwrap().stat.czxid, token);
    // The ResourceManager and the Dispatcher confirmed their leadership.
    let info = LeaderInformation {
        address: JM,
        leader_session_id: LeaderSessionId(token),
    };
    assert_eq!(c.published(RESOURCE_MANAGER_COMPONENT), Some(info));
    assert_eq!(c.published(DISPATCHER_COMPONENT), Some(info));
    // The new ResourceManager's fencing token is the leader session id.
    assert_eq!(resource_manager_id(&mut c), token);
}

#[test]
fn with_ha_a_submission_is_acknowledged_only_once_its_plan_is_written() {
    let (mut c, token) = Cluster::leading();
    let (job_id, spec) = job();
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    // The plan goes to the ExecutionPlanStore first, guarded by our latch node.
    assert!(submit_answers(&out).is_empty());
    assert!(c.components().job_masters.is_empty());
    let plan = plan_path(job_id);
    match &ha_ops(&out)[..] {
        [Op::Multi(ops)] => match &ops[..] {
            [Op::Check { path: latch, .. }, Op::Create {
                path,
                data: ZnodeData::ExecutionPlan(written),
                ephemeral: false,
                ..
            }] => {
                assert!(latch.starts_with(LATCH_PATH));
                assert_eq!(path, &plan);
                assert_eq!(written, &spec);
            }
            other => panic!("a guarded create: {other:?}"),
        },
        other => panic!("one write: {other:?}"),
    }
    // A second submission while the first is in flight is a duplicate, answered at once.
    let again = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert_eq!(submit_answers(&again), [(job_id, true)]);
    assert!(ha_ops(&again).is_empty());

    let out = c.deliver();
    assert!(matches!(c.znode(&plan), Some(ZnodeData::ExecutionPlan(_))));
    assert_eq!(submit_answers(&out), [(job_id, false)]);
    assert!(traces(&out).contains(&&Obs::JobSubmitted { job_id }));
    // The JobMaster runs under the leader session, and its leadership is published.
    let jm = &c.components().job_masters[&job_id];
    assert_eq!(jm.id(), token);
    assert_eq!(jm.status(), JobStatus::Running);
    assert_eq!(
        c.published(&job_component(job_id)),
        Some(LeaderInformation {
            address: JM,
            leader_session_id: LeaderSessionId(token),
        })
    );
}

#[test]
fn with_ha_a_revocation_suspends_the_jobs_and_stops_every_component() {
    let (job_id, spec) = job();
    let (mut c, token) = Cluster::running(job_id, &spec);
    let out = c.lose_leadership();
    assert!(traces(&out).contains(&&Obs::LeadershipRevoked {
        leader_session_id: token
    }));
    assert!(traces(&out).iter().any(|o| matches!(
        o,
        Obs::JobStatusChanged {
            job_id: j,
            job_master_id,
            to: JobStatus::Suspended,
            ..
        } if *j == job_id && *job_master_id == token
    )));
    assert!(c.process().components.is_none());
    assert_eq!(c.process().leader_session_id(), None);
    // The stopped endpoints' timers went with them; only the HA client's tick is left.
    let armed: Vec<Timer> = c.jm.armed(|_| true).into_iter().map(|(_, t)| t).collect();
    assert_eq!(armed, [Timer::HaTick]);
    // The plan stays for the next leader (SUSPENDED is only locally terminal).
    assert!(c.znode(&plan_path(job_id)).is_some());
    // A deposed Dispatcher does not answer.
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert!(out.is_empty());
}

#[test]
fn with_ha_the_next_grant_recovers_the_job_from_the_execution_plan_store() {
    let (job_id, spec) = job();
    let (mut c, old) = Cluster::running(job_id, &spec);
    c.lose_leadership();
    let (out, token) = c.regain_leadership();
    assert_ne!(token, old, "every grant has a leader session of its own");
    assert!(traces(&out).contains(&&Obs::JobRecovered {
        job_id,
        leader_session_id: token,
        checkpoint_id: None,
    }));
    // A fresh JobMaster: the new leader session is its JobMasterId.
    let jm = &c.components().job_masters[&job_id];
    assert_eq!(jm.id(), token);
    assert_eq!(jm.status(), JobStatus::Running);
    assert!(c.components().dispatcher.is_known(job_id));
    // Recovered, not submitted: the client hears nothing.
    assert!(submit_answers(&out).is_empty());
}

#[test]
fn with_ha_a_globally_terminal_job_gets_a_result_and_its_plan_is_removed() {
    let (job_id, spec) = job();
    let (mut c, _) = Cluster::running(job_id, &spec);
    let out = c.fail_job(job_id);
    assert!(c.components().job_masters.is_empty(), "reaped");
    // The result is written (dirty) before the plan is touched.
    let result = ha_stores::result_path(job_id);
    match &ha_ops(&out)[..] {
        [Op::Multi(ops)] => assert!(
            matches!(
                &ops[..],
                [Op::Check { .. }, Op::Create {
                    path,
                    data: ZnodeData::JobResult {
                        status: JobStatus::Failed,
                        clean: false
                    },
                    ..
                }] if *path == result
            ),
            "{ops:?}"
        ),
        other => panic!("one write: {other:?}"),
    }
    assert!(c.znode(&plan_path(job_id)).is_some());
    c.deliver();
    // Then the plan goes and the result is marked clean.
    assert_eq!(c.znode(&plan_path(job_id)), None);
    assert_eq!(
        c.znode(&result),
        Some(&ZnodeData::JobResult {
            status: JobStatus::Failed,
            clean: true
        })
    );
}

#[test]
fn with_ha_the_next_leader_finds_the_result_and_does_not_run_the_job_again() {
    let (job_id, spec) = job();
    let (mut c, _) = Cluster::running(job_id, &spec);
    c.fail_job(job_id);
    c.deliver();
    c.lose_leadership();
    let (out, _) = c.regain_leadership();
    assert!(traces(&out).contains(&&Obs::JobResultFound {
        job_id,
        status: JobStatus::Failed,
    }));
    assert!(!traces(&out)
        .iter()
        .any(|o| matches!(o, Obs::JobRecovered { .. })));
    assert!(c.components().job_masters.is_empty());
    assert_eq!(
        c.components().dispatcher.result(job_id),
        Some(JobStatus::Failed)
    );
    // A resubmission is a duplicate, answered without touching the store.
    let out = c.step(|p, ctx| p.on_dispatcher_rpc(ctx, CLIENT, submission(job_id, &spec)));
    assert_eq!(submit_answers(&out), [(job_id, true)]);
    assert!(ha_ops(&out).is_empty());
}
