//! Tests of the Dispatcher, driven by hand through `sim::testing::Driver`: `submitJob` answers
//! the client and hands a new JobMaster to the process, duplicates (a running job, or one with a
//! result) are rejected, a job's result is kept once it is globally terminal, and the
//! bookkeeping the HA path uses (docs/flink-runtime.md §1.1, §9.2).
//!
//! Not covered here: starting the JobMaster and reaping it, and everything with high
//! availability (the ExecutionPlanStore and JobResultStore): the JobManager process does those
//! and its tests cover them.

use super::*;
use crate::jobmanager::test_support::{self, sends, traces, Effects, CLIENT, JM};
use crate::protocol::job_graph::JobSpec;
use sim::testing::Driver;
use std::sync::Arc;

fn dispatcher() -> Driver<Flink, Dispatcher> {
    Driver::new(
        JM,
        Dispatcher::new(JM, &test_support::setup(&[])),
        7,
        "dispatcher-test",
    )
}

fn job(name: &str) -> (JobId, Arc<JobSpec>) {
    let spec = test_support::spec(name, 1, vec![]);
    (test_support::job_id(&spec), spec)
}

fn submit(
    d: &mut Driver<Flink, Dispatcher>,
    job_id: JobId,
    spec: &Arc<JobSpec>,
) -> (Effects, Option<JobMaster>) {
    let rpc = DispatcherRpc::SubmitJob {
        job_id,
        spec: Arc::clone(spec),
    };
    d.step(|dispatcher, ctx| dispatcher.on_rpc(ctx, CLIENT, rpc))
}

fn answer(job_id: JobId, duplicate: bool) -> Msg {
    Msg::Client(ClientRpc::SubmitJobResponse { job_id, duplicate })
}

#[test]
fn a_submission_is_acknowledged_and_hands_a_new_job_master_to_the_process() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    let (out, jm) = submit(&mut d, job_id, &spec);
    assert_eq!(sends(&out), [(CLIENT, &answer(job_id, false))]);
    assert_eq!(traces(&out), [&Obs::JobSubmitted { job_id }]);
    let jm = jm.expect("a JobMaster for the job");
    assert_eq!(jm.job_id(), job_id);
    // Not started: the process starts it (nothing went to the ResourceManager yet).
    assert_eq!(jm.status(), JobStatus::Initializing);
    assert!(!jm.is_shut_down());
    assert!(d.component.is_known(job_id));
    assert_eq!(d.component.result(job_id), None);
}

#[test]
fn a_submission_of_a_running_job_is_rejected_as_a_duplicate() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    submit(&mut d, job_id, &spec);
    let (out, jm) = submit(&mut d, job_id, &spec);
    assert!(jm.is_none(), "no second JobMaster");
    assert_eq!(sends(&out), [(CLIENT, &answer(job_id, true))]);
    assert_eq!(traces(&out), [&Obs::JobSubmissionRejected { job_id }]);
}

#[test]
fn a_globally_terminal_job_keeps_its_result_and_is_never_run_again() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    submit(&mut d, job_id, &spec);
    d.step(|dispatcher, ctx| dispatcher.job_reached_terminal_state(ctx, job_id, JobStatus::Failed));
    assert_eq!(d.component.result(job_id), Some(JobStatus::Failed));
    assert!(d.component.is_known(job_id));
    // A job that has a result is a duplicate too (the JobResultStore's rule).
    let (out, jm) = submit(&mut d, job_id, &spec);
    assert!(jm.is_none());
    assert_eq!(sends(&out), [(CLIENT, &answer(job_id, true))]);
}

#[test]
fn each_job_gets_its_own_job_master_with_a_fresh_fencing_token() {
    let mut d = dispatcher();
    let (a, spec_a) = job("a");
    let (b, spec_b) = job("b");
    assert_ne!(a, b);
    let jm_a = submit(&mut d, a, &spec_a).1.unwrap();
    let jm_b = submit(&mut d, b, &spec_b).1.unwrap();
    assert_eq!((jm_a.job_id(), jm_b.job_id()), (a, b));
    assert_ne!(jm_a.id(), jm_b.id());
    // One job's end leaves the other running.
    d.step(|dispatcher, ctx| dispatcher.job_reached_terminal_state(ctx, a, JobStatus::Finished));
    assert_eq!(d.component.result(a), Some(JobStatus::Finished));
    assert_eq!(d.component.result(b), None);
    assert!(d.component.is_known(b));
}

#[test]
#[should_panic(expected = "Suspended")]
fn a_suspended_job_is_not_a_result() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    submit(&mut d, job_id, &spec);
    // SUSPENDED is only locally terminal: another leader goes on with the job.
    d.step(|dispatcher, ctx| {
        dispatcher.job_reached_terminal_state(ctx, job_id, JobStatus::Suspended)
    });
}

#[test]
fn without_high_availability_a_new_dispatcher_has_forgotten_the_results() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    submit(&mut d, job_id, &spec);
    d.step(|dispatcher, ctx| {
        dispatcher.job_reached_terminal_state(ctx, job_id, JobStatus::Finished)
    });
    // A restarted JobManager process: the in-memory JobResultStore is empty.
    let mut restarted = dispatcher();
    assert_eq!(restarted.component.result(job_id), None);
    let (out, jm) = submit(&mut restarted, job_id, &spec);
    assert!(jm.is_some());
    assert_eq!(sends(&out), [(CLIENT, &answer(job_id, false))]);
}

#[test]
fn the_high_availability_bookkeeping_makes_jobs_known_and_unknown() {
    let mut d = dispatcher();
    let (job_id, spec) = job("job");
    // A submission or recovery in progress (its plan being written or read) is known...
    d.component.mark_running(job_id);
    assert!(d.component.is_known(job_id));
    let (out, jm) = submit(&mut d, job_id, &spec);
    assert!(jm.is_none());
    assert_eq!(sends(&out), [(CLIENT, &answer(job_id, true))]);
    // ...until it did not go through.
    d.component.unmark(job_id);
    assert!(!d.component.is_known(job_id));
    // A result found in the JobResultStore.
    let (other, _) = job("other");
    d.component.record_result(other, JobStatus::Canceled);
    assert!(d.component.is_known(other));
    assert_eq!(d.component.result(other), Some(JobStatus::Canceled));
}
