//! Flink's heartbeat mechanism (`HeartbeatManagerImpl`, `HeartbeatManagerSenderImpl`,
//! `DefaultHeartbeatMonitor`) for one endpoint and one kind of peer.
//!
//! One monitor per target, armed for `heartbeat.timeout` and reset on every heartbeat from that
//! target. A sender additionally loops every `heartbeat.interval` and requests a heartbeat from
//! every target; a receiver answers requests from targets it monitors. Failed heartbeat RPCs
//! (target unreachable) are counted per target; at `heartbeat.rpc-failure-threshold` consecutive
//! failures the target is unreachable. This module keeps the monitors and says what happened;
//! the owning endpoint decides what a loss means (its "heartbeat listener").

use crate::checking::bugs::{Bug, Bugs};
use crate::protocol::config::FlinkConfig;
use crate::protocol::ids::JobId;
use crate::protocol::obs::{Endpoint, Obs};
use crate::protocol::timer::{HeartbeatPair, HeartbeatTimer, Timer};
use crate::protocol::Flink;
use sim::{Ctx, NodeId, TimerId};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

#[derive(Debug)]
struct Monitor {
    timer: TimerId,
    failures: u32,
}

#[derive(Debug)]
pub struct HeartbeatManager {
    pair: HeartbeatPair,
    /// The job of a per-job pair (JobMaster ↔ TE, RM ↔ JobMaster); it names the owner of its
    /// timers.
    job: Option<JobId>,
    role: Role,
    observer: Endpoint,
    interval: Duration,
    timeout: Duration,
    failure_threshold: Option<u32>,
    monitors: BTreeMap<NodeId, Monitor>,
    bugs: Bugs,
}

impl HeartbeatManager {
    pub fn new(
        pair: HeartbeatPair,
        role: Role,
        observer: Endpoint,
        config: &FlinkConfig,
        bugs: Bugs,
    ) -> HeartbeatManager {
        HeartbeatManager::for_job(pair, role, observer, None, config, bugs)
    }

    /// A manager of a per-job pair. `job` is required for JobMaster pairs.
    pub fn for_job(
        pair: HeartbeatPair,
        role: Role,
        observer: Endpoint,
        job: Option<JobId>,
        config: &FlinkConfig,
        bugs: Bugs,
    ) -> HeartbeatManager {
        assert!(config.heartbeat_timeout >= config.heartbeat_interval);
        assert_eq!(
            job.is_some(),
            pair != HeartbeatPair::ResourceManagerTaskExecutor,
            "exactly the JobMaster pairs are per job"
        );
        HeartbeatManager {
            pair,
            job,
            role,
            observer,
            interval: config.heartbeat_interval,
            timeout: config.heartbeat_timeout,
            failure_threshold: config.heartbeat_rpc_failure_threshold,
            monitors: BTreeMap::new(),
            bugs,
        }
    }

    fn target_endpoint(&self, target: NodeId) -> Endpoint {
        let job = || self.job.expect("per-job pair");
        match (self.pair, self.role) {
            (HeartbeatPair::ResourceManagerTaskExecutor, Role::Sender) => {
                Endpoint::TaskExecutor(target)
            }
            (HeartbeatPair::ResourceManagerTaskExecutor, Role::Receiver) => {
                Endpoint::ResourceManager(target)
            }
            (HeartbeatPair::JobMasterTaskExecutor, Role::Sender) => Endpoint::TaskExecutor(target),
            (HeartbeatPair::JobMasterTaskExecutor, Role::Receiver) => {
                Endpoint::JobMaster(target, job())
            }
            (HeartbeatPair::ResourceManagerJobMaster, Role::Sender) => {
                Endpoint::JobMaster(target, job())
            }
            (HeartbeatPair::ResourceManagerJobMaster, Role::Receiver) => {
                Endpoint::ResourceManager(target)
            }
        }
    }

    /// Starts the sender loop (senders only).
    pub fn start(&self, ctx: &mut Ctx<'_, Flink>) {
        assert_eq!(self.role, Role::Sender);
        ctx.set_timer(self.interval, self.timer(HeartbeatTimer::Tick));
    }

    /// The sender loop fired: re-arms it. The caller then requests a heartbeat from each of
    /// [`targets`](Self::targets).
    pub fn on_tick(&self, ctx: &mut Ctx<'_, Flink>) {
        assert_eq!(self.role, Role::Sender, "only a sender loops");
        self.start(ctx);
    }

    pub fn targets(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.monitors.keys().copied()
    }

    pub fn is_monitored(&self, target: NodeId) -> bool {
        self.monitors.contains_key(&target)
    }

    /// Arms a monitor for `target` (replacing an existing one).
    pub fn monitor_target(&mut self, ctx: &mut Ctx<'_, Flink>, target: NodeId) {
        if let Some(old) = self.monitors.remove(&target) {
            ctx.cancel_timer(old.timer);
        }
        let timer = self.arm(ctx, target);
        let previous = self.monitors.insert(target, Monitor { timer, failures: 0 });
        assert!(previous.is_none(), "the old monitor was removed first");
        ctx.trace(Obs::HeartbeatMonitorStarted {
            observer: self.observer,
            target: self.target_endpoint(target),
        });
    }

    /// Stops monitoring `target`; returns whether it was monitored.
    pub fn unmonitor_target(&mut self, ctx: &mut Ctx<'_, Flink>, target: NodeId) -> bool {
        let Some(m) = self.monitors.remove(&target) else {
            return false;
        };
        ctx.cancel_timer(m.timer);
        ctx.trace(Obs::HeartbeatMonitorStopped {
            observer: self.observer,
            target: self.target_endpoint(target),
        });
        true
    }

    fn arm(&self, ctx: &mut Ctx<'_, Flink>, target: NodeId) -> TimerId {
        assert!(!self.timeout.is_zero(), "heartbeat.timeout is positive");
        ctx.set_timer(self.timeout, self.timer(HeartbeatTimer::Timeout { target }))
    }

    /// `timer` as a timer of the endpoint this manager serves.
    fn timer(&self, timer: HeartbeatTimer) -> Timer {
        self.pair.timer(self.role == Role::Sender, self.job, timer)
    }

    /// A heartbeat (request or response) from `target` arrived. Resets its monitor and failure
    /// count; returns false when `target` is not monitored (then nothing is reset).
    pub fn report_heartbeat(&mut self, ctx: &mut Ctx<'_, Flink>, target: NodeId) -> bool {
        let no_reset = self.bugs.has(Bug::HeartbeatTimeoutNotReset);
        let timeout = self.timeout;
        let tag = self.timer(HeartbeatTimer::Timeout { target });
        let Some(m) = self.monitors.get_mut(&target) else {
            return false;
        };
        m.failures = 0;
        if !no_reset {
            ctx.cancel_timer(m.timer);
            m.timer = ctx.set_timer(timeout, tag);
        }
        true
    }

    /// A heartbeat RPC to `target` failed because the target is unreachable. Returns true when
    /// this makes `heartbeat.rpc-failure-threshold` consecutive failures.
    pub fn report_rpc_failure(&mut self, target: NodeId) -> bool {
        let Some(m) = self.monitors.get_mut(&target) else {
            return false;
        };
        m.failures += 1;
        assert!(
            self.failure_threshold != Some(0),
            "heartbeat.rpc-failure-threshold is positive or off"
        );
        match self.failure_threshold {
            Some(threshold) => m.failures >= threshold,
            None => false,
        }
    }

    /// A monitor timer fired: true if it is the current monitor of `target` (a timeout).
    pub fn on_timeout(&self, timer: TimerId, target: NodeId) -> bool {
        self.monitors.get(&target).is_some_and(|m| m.timer == timer)
    }

    /// Stops every monitor (the endpoint shuts down).
    pub fn unmonitor_all(&mut self, ctx: &mut Ctx<'_, Flink>) {
        let targets: Vec<NodeId> = self.monitors.keys().copied().collect();
        for t in targets {
            let was_monitored = self.unmonitor_target(ctx, t);
            assert!(was_monitored);
        }
        assert!(self.monitors.is_empty());
    }
}
