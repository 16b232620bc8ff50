//! Faults that name a role (`leader`, `taskmanager-of:...`, `random-taskmanager`) resolve when
//! they fire, and the summary names the node; message faults and slow processes act on the
//! run; none of it touches runs that do not use them.

mod common;

use common::*;

const HA_HEAD: &str = r#"
name = "aimed"
duration = "60s"
[cluster]
jobmanagers = 2
taskmanagers = 2
[flink]
"high-availability.type" = "ZOOKEEPER"
"high-availability.zookeeper.client.session-timeout" = "6 s"
"taskmanager.numberOfTaskSlots" = 2
"heartbeat.interval" = "1 s"
"heartbeat.timeout" = "5 s"
"execution.checkpointing.interval" = "1 s"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = 10
"restart-strategy.fixed-delay.delay" = "1 s"
[job]
name = "keyed-count"
parallelism = 4
source = { kind = "sequence", partitions = 4, records = 20000, rate = "1000/s" }
operators = [{ kind = "key_by", keys = 64 }, { kind = "count" }]
sink = { kind = "two_phase_commit" }
"#;

#[test]
fn kill_leader_kills_the_jobmanager_that_leads_then() {
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"8s\"\nkill = \"leader\"\n[expect]\njob_status = \"FINISHED\"\n"
    ));
    for seed in 1..4 {
        let r = run_seed(&s, seed, None);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        let f = &r.summary.faults[0];
        assert_eq!(f.fault, "kill");
        assert_eq!(f.target.as_deref(), Some("kill = \"leader\""));
        let node = f.node.clone().expect("resolved");
        assert!(node.starts_with("jobmanager-"), "{node}");
        assert_eq!(
            f.resolved.as_deref(),
            Some(format!("kill = \"{node}\"").as_str())
        );
        // The job's JobMaster moved: after the kill another JobManager leads.
        assert!(r.summary.restores.iter().any(|x| x.at_ms > 8000) || r.summary.restarts > 0);
    }
}

#[test]
fn taskmanager_of_names_the_taskmanager_running_the_subtask() {
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"8s\"\nkill = \"taskmanager-of:count[1]\"\n[[faults]]\nat = \"10s\"\nstart = \"random-taskmanager\"\n"
    ));
    let r = run_seed(&s, 3, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let kill = &r.summary.faults[0];
    let start = &r.summary.faults[1];
    assert_eq!(kill.fault, "kill");
    assert!(kill.node.as_deref().unwrap().starts_with("taskmanager-"));
    // The only stopped TaskManager is the one killed.
    assert_eq!(start.fault, "start");
    assert_eq!(start.node, kill.node);
    assert_eq!(
        start.target.as_deref(),
        Some("start = \"random-taskmanager\"")
    );
}

#[test]
fn a_role_that_stands_for_no_node_is_skipped_and_says_why() {
    // At 1 ms nobody leads yet (the first election takes a few seconds), and no task runs.
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"1ms\"\npause = \"leader\"\nresume_after = \"1s\"\n[[faults]]\nat = \"2ms\"\nkill = \"taskmanager-of:count[0]\"\n"
    ));
    let r = run_seed(&s, 1, None);
    let skipped: Vec<_> = r
        .summary
        .faults
        .iter()
        .filter(|f| f.skipped.is_some())
        .collect();
    assert_eq!(skipped.len(), 2, "{:?}", r.summary.faults);
    assert_eq!(skipped[0].skipped.as_deref(), Some("no JobManager leads"));
    assert_eq!(
        skipped[1].skipped.as_deref(),
        Some("no TaskManager runs count[0]")
    );
    assert!(skipped.iter().all(|f| f.node.is_none()));
}

#[test]
fn role_faults_are_deterministic() {
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"6s\"\npartition = [[\"leader\"], [\"random-taskmanager\"]]\nheal_after = \"8s\"\n"
    ));
    let a = run_seed(&s, 9, None);
    let b = run_seed(&s, 9, None);
    assert_eq!(a.summary.trace_hash, b.summary.trace_hash);
    assert_eq!(a.summary.faults, b.summary.faults);
    let resolved = a.summary.faults[0].resolved.clone().unwrap();
    assert!(
        resolved.starts_with("partition = [[\"jobmanager-"),
        "{resolved}"
    );
}

#[test]
fn a_lost_submit_task_answer_fails_the_deployment_by_ask_timeout() {
    // Every submitTask answer is lost for a while: the JobMaster's ask times out
    // (pekko.ask.timeout, 10 s) and it fails the execution, so the job restarts.
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"4s\"\ndrop = \"submitTask.response\"\nlasting = \"5s\"\n[expect]\njob_status = \"FINISHED\"\n"
    ));
    let r = run_seed(&s, 1, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.summary.restarts >= 1, "restarts {}", r.summary.restarts);
    let quiet = parse(&format!("{HA_HEAD}\n[expect]\njob_status = \"FINISHED\"\n"));
    assert_eq!(run_seed(&quiet, 1, None).summary.restarts, 0);
}

#[test]
fn a_slow_taskmanager_slows_its_tasks_but_the_job_finishes() {
    let s = parse(&format!(
        "{HA_HEAD}\n[[faults]]\nat = \"7s\"\nslow = \"taskmanager-of:source[0]\"\nper_event = \"20ms\"\nlasting = \"10s\"\n[expect]\njob_status = \"FINISHED\"\n"
    ));
    let r = run_seed(&s, 2, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let slow = &r.summary.faults[0];
    assert_eq!(slow.fault, "slow");
    let end = r
        .summary
        .faults
        .iter()
        .find(|f| f.fault == "slow-end")
        .unwrap();
    assert_eq!((end.at_ms, &end.node), (17_000, &slow.node));
    assert!(slow.node.is_some());
}
