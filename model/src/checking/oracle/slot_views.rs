//! Slot views agree (always, with a liveness part judged at the end): the ResourceManager's
//! SlotManager believes only allocations its TaskExecutors made, and once the faults stopped its
//! view of every slot equals the TaskExecutor's (docs/flink-runtime.md §2.3, §2.4: the
//! TaskExecutor's slot table is the truth, reported by `requestSlot` answers, the slot report of
//! a new registration and the one on every heartbeat; FLINK-5810, FLINK-21874).
//!
//! Ground truth, all from the trace: the TaskExecutors' `SlotAllocated` / `SlotFreed` per process
//! life (a process that dies holds nothing), which process life connected under which
//! registration (`ResourceManagerConnected` carries the `InstanceID` the ResourceManager gave it),
//! the SlotManager's `SlotStateChanged`, and the delivery whose handler made a change (the kernel
//! traces a delivery and then, at the same time and node, the observations of its handler).
//! - **Always.** When the SlotManager marks a slot of registration I ALLOCATED to allocation A, it
//!   does so in the handler of a message from that slot's TaskExecutor (its `requestSlot` answer,
//!   its first slot report or a heartbeat's), and the process life that connected under I held A
//!   in that slot index when the message was *sent*. Judging at the send time makes the rule
//!   immune to latency: a report that was true when sent may arrive after the slot was freed
//!   (the next report corrects it). Boundaries are lenient: a holding counts from the time of its
//!   `SlotAllocated` to the time of its `SlotFreed`, both included.
//! - **Always.** The SlotManager holds a slot of registration I in its view (free, pending or
//!   allocated) only once the TaskExecutor connected under I: it processed the answer to its
//!   registration and sent the slot report that registers the slots (FLINK-9427).
//! - **Eventually.** At the end of a run that is quiet ([`super::Quiet`]) and whose last fault
//!   lies at least heartbeat.timeout + pekko.ask.timeout + 2 heartbeat.interval + 8 network
//!   latencies back, every slot of a TaskExecutor that is connected to the ResourceManager under
//!   the registration the ResourceManager holds for it, and whose two views have both been
//!   unchanged for that long, agrees: FREE where the TaskExecutor holds nothing, ALLOCATED to the
//!   allocation it holds, and not PENDING (a `requestSlot` is answered or times out). The message
//!   names the mechanism that stalled: slot report reconciliation, or the `requestSlot` answer and
//!   its ask timeout.
//!
//! A ResourceManager's view ends with its process or its leadership (with HA each grant starts a
//! fresh ResourceManager); a registration's slots end with `TaskExecutorUnregistered`. This
//! oracle does not judge the TaskExecutors' own tables (`slot-exclusivity`) nor leaks at job end
//! (`no-slot-leak`).

use super::{ends_handler, process_died, secs, Invariant, Kind, Oracle, Quiet, Setup, Violation};
use crate::protocol::ids::{AllocationId, InstanceId, JobId, SlotId};
use crate::protocol::obs::Obs;
use crate::protocol::states::SlotState;
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, Message, NodeId, Status, Time};
use std::collections::BTreeMap;
use std::time::Duration;

pub const INVARIANT: Invariant = Invariant {
    name: "slot-views-agree",
    kind: Kind::Always,
    description: "the SlotManager holds a slot of a registration only once its TaskExecutor completed that registration, and marks a slot ALLOCATED to an AllocationID only on a requestSlot answer or slot report of the TaskExecutor process registered under that slot's InstanceID that held the allocation in that slot when it sent the message; once the faults stopped for heartbeat.timeout + pekko.ask.timeout + 2 heartbeat.interval + network, the SlotManager's view of each slot of a connected TaskExecutor equals its slot table",
};

/// One allocation held by one process life of a TaskExecutor in one slot index.
#[derive(Clone, Copy, Debug)]
struct Holding {
    life: u32,
    allocation_id: AllocationId,
    job_id: JobId,
    from: Time,
    /// When it was freed (or the process died); `None`: still held.
    to: Option<Time>,
}

/// The delivery whose handler runs.
#[derive(Clone, Copy, Debug)]
struct Cause {
    node: NodeId,
    time: Time,
    from: NodeId,
    sent: Time,
    rpc: &'static str,
}

/// The SlotManager's view of one slot.
#[derive(Clone, Copy, Debug)]
struct RmSlot {
    instance_id: InstanceId,
    state: SlotState,
    since: Time,
}

pub struct SlotViewsAgree {
    bound: Duration,
    quiet: Quiet,
    cause: Option<Cause>,
    /// Node -> its process life (bumped when the process stops) and when that life started.
    lives: BTreeMap<NodeId, (u32, Time)>,
    /// (TaskManager, slot index) -> every allocation its process lives held there, in order.
    holdings: BTreeMap<(NodeId, u32), Vec<Holding>>,
    /// Registration -> the TaskManager process life that connected under it.
    instances: BTreeMap<InstanceId, (NodeId, u32)>,
    /// TaskManager -> the ResourceManager it is connected to, and under which registration.
    connected: BTreeMap<NodeId, (NodeId, InstanceId)>,
    /// (ResourceManager, TaskManager) -> the registration it holds.
    registered: BTreeMap<(NodeId, NodeId), InstanceId>,
    /// (ResourceManager, slot) -> its SlotManager's view.
    rm_slots: BTreeMap<(NodeId, SlotId), RmSlot>,
}

impl SlotViewsAgree {
    pub fn new(setup: &Setup) -> SlotViewsAgree {
        let c = &setup.config;
        SlotViewsAgree {
            bound: c.heartbeat_timeout
                + c.ask_timeout
                + c.heartbeat_interval * 2
                + setup.latency_max * 8,
            quiet: Quiet::default(),
            cause: None,
            lives: BTreeMap::new(),
            holdings: BTreeMap::new(),
            instances: BTreeMap::new(),
            connected: BTreeMap::new(),
            registered: BTreeMap::new(),
            rm_slots: BTreeMap::new(),
        }
    }

    fn life(&self, node: NodeId) -> u32 {
        self.lives.get(&node).map_or(0, |(life, _)| *life)
    }

    /// The ResourceManager on `rm` is gone (its process or its leadership): so is its view.
    fn forget_resource_manager(&mut self, rm: NodeId) {
        self.registered.retain(|(r, _), _| *r != rm);
        self.rm_slots.retain(|(r, _), _| *r != rm);
    }

    fn process_died(&mut self, n: NodeId, at: Time) {
        let life = self.life(n);
        for ((tm, _), list) in self.holdings.range_mut((n, 0)..=(n, u32::MAX)) {
            debug_assert_eq!(*tm, n);
            for h in list.iter_mut().filter(|h| h.to.is_none()) {
                h.to = Some(at);
            }
        }
        self.lives.insert(n, (life + 1, at));
        self.connected.remove(&n);
        self.forget_resource_manager(n);
    }

    fn on_obs(
        &mut self,
        census: &Census,
        ev: &Event<'_, Flink>,
        node: NodeId,
        obs: &Obs,
    ) -> Option<Violation> {
        let at = ev.time;
        match obs {
            Obs::SlotAllocated {
                slot_index,
                allocation_id,
                job_id,
            } => {
                let life = self.life(node);
                let list = self.holdings.entry((node, *slot_index)).or_default();
                let repeat = list
                    .last()
                    .is_some_and(|h| h.to.is_none() && h.allocation_id == *allocation_id);
                if !repeat {
                    list.push(Holding {
                        life,
                        allocation_id: *allocation_id,
                        job_id: *job_id,
                        from: at,
                        to: None,
                    });
                }
            }
            Obs::SlotFreed {
                slot_index,
                allocation_id,
            } => {
                if let Some(list) = self.holdings.get_mut(&(node, *slot_index)) {
                    for h in list
                        .iter_mut()
                        .filter(|h| h.to.is_none() && h.allocation_id == *allocation_id)
                    {
                        h.to = Some(at);
                    }
                }
            }
            Obs::ResourceManagerConnected {
                resource_manager,
                instance_id,
            } => {
                let life = self.life(node);
                self.instances.insert(*instance_id, (node, life));
                self.connected
                    .insert(node, (*resource_manager, *instance_id));
            }
            Obs::ResourceManagerDisconnected { .. } => {
                self.connected.remove(&node);
            }
            Obs::TaskExecutorRegistered {
                task_executor,
                instance_id,
            } => {
                self.registered.insert((node, *task_executor), *instance_id);
            }
            Obs::TaskExecutorUnregistered { task_executor, .. } => {
                let tm = *task_executor;
                self.registered.remove(&(node, tm));
                self.rm_slots
                    .retain(|(r, s), _| *r != node || s.task_manager != tm);
            }
            Obs::LeadershipGranted { .. } | Obs::LeadershipRevoked { .. } => {
                self.forget_resource_manager(node);
            }
            Obs::SlotStateChanged {
                slot_id,
                instance_id,
                state,
            } => {
                if !self.instances.contains_key(instance_id) {
                    return Some(Violation {
                        invariant: INVARIANT.name,
                        at,
                        node: Some(node),
                        message: format!(
                            "the SlotManager on {} put slot {} of {} ({}) in its view under registration {instance_id:x}, but {} has not completed that registration (it never connected under it): slots register only from the TaskExecutor's own slot report, sent once it processed the answer to its registration (FLINK-9427)",
                            census.name(node),
                            slot_id.slot_index,
                            census.name(slot_id.task_manager),
                            state,
                            census.name(slot_id.task_manager),
                        ),
                    });
                }
                self.rm_slots.insert(
                    (node, *slot_id),
                    RmSlot {
                        instance_id: *instance_id,
                        state: *state,
                        since: at,
                    },
                );
                if let SlotState::Allocated {
                    allocation_id,
                    job_id,
                } = *state
                {
                    return self
                        .judge_allocated(
                            census,
                            at,
                            node,
                            *slot_id,
                            *instance_id,
                            allocation_id,
                            job_id,
                        )
                        .map(|message| Violation {
                            invariant: INVARIANT.name,
                            at,
                            node: Some(node),
                            message,
                        });
                }
            }
            _ => {}
        }
        None
    }

    /// The always rule for the SlotManager on `rm` marking `slot_id` of registration
    /// `instance_id` ALLOCATED to `allocation_id`: what is wrong, if anything.
    #[allow(clippy::too_many_arguments)]
    fn judge_allocated(
        &self,
        census: &Census,
        at: Time,
        rm: NodeId,
        slot_id: SlotId,
        instance_id: InstanceId,
        allocation_id: AllocationId,
        job_id: JobId,
    ) -> Option<String> {
        let tm = slot_id.task_manager;
        let index = slot_id.slot_index;
        let what = format!(
            "the SlotManager on {} marked slot {index} of {} (registration {instance_id:x}) ALLOCATED to allocation {allocation_id:x} (job {job_id:x})",
            census.name(rm),
            census.name(tm),
        );
        let cause = self
            .cause
            .filter(|c| c.node == rm && c.time == at && c.from == tm);
        let Some(cause) = cause else {
            return Some(format!(
                "{what} outside the handler of a message from {} (its requestSlot answer or a slot report); the SlotManager may only believe what the TaskExecutor reports",
                census.name(tm)
            ));
        };
        let Some(&(registered_tm, life)) = self.instances.get(&instance_id) else {
            return Some(format!(
                "{what} on a {} sent at {}, but no process of {} ever connected under that registration",
                cause.rpc,
                cause.sent,
                census.name(tm)
            ));
        };
        if registered_tm != tm {
            return Some(format!(
                "{what}, but registration {instance_id:x} is {}'s",
                census.name(registered_tm)
            ));
        }
        let s = cause.sent;
        let list = self.holdings.get(&(tm, index)).map_or(&[][..], |l| &l[..]);
        let of_life = || list.iter().filter(|h| h.life == life);
        let covers = |h: &&Holding| h.from <= s && h.to.is_none_or(|t| t >= s);
        if of_life().any(|h| h.allocation_id == allocation_id && covers(&h)) {
            return None;
        }
        let then = match of_life().find(covers) {
            Some(h) => format!(
                "held allocation {:x} (job {:x}) in that slot then",
                h.allocation_id, h.job_id
            ),
            None => "had that slot free then".to_string(),
        };
        let history = match of_life().find(|h| h.allocation_id == allocation_id) {
            Some(Holding { to: Some(t), .. }) if *t < s => {
                format!("; it had freed allocation {allocation_id:x} at {t}")
            }
            Some(h) => format!("; it allocated {allocation_id:x} only at {}", h.from),
            None => format!("; it never allocated {allocation_id:x} in that slot"),
        };
        Some(format!(
            "{what} on a {} sent at {s}, but the process of {} registered under {instance_id:x} {then}{history}; the SlotManager believes an allocation the TaskExecutor did not hold (a stale report or answer applied)",
            cause.rpc,
            census.name(tm)
        ))
    }

    /// The TaskExecutor's current process: what it holds in `index`, and since when.
    fn te_view(&self, tm: NodeId, index: u32) -> (Option<AllocationId>, Time) {
        let (life, started) = self.lives.get(&tm).copied().unwrap_or((0, Time::ZERO));
        let mut held = None;
        let mut since = started;
        for h in self
            .holdings
            .get(&(tm, index))
            .into_iter()
            .flatten()
            .filter(|h| h.life == life)
        {
            since = since.max(h.to.unwrap_or(h.from));
            if h.to.is_none() {
                held = Some(h.allocation_id);
            }
        }
        (held, since)
    }

    /// The eventually rule for one connected TaskExecutor: its disagreeing slots, named.
    fn disagreements(
        &self,
        census: &Census,
        end: Time,
        bound: Duration,
        tm: NodeId,
        (rm, instance_id): (NodeId, InstanceId),
    ) -> Vec<(String, &'static str)> {
        let first = SlotId {
            task_manager: tm,
            slot_index: 0,
        };
        let last = SlotId {
            task_manager: tm,
            slot_index: u32::MAX,
        };
        let mut found = Vec::new();
        for ((_, slot_id), view) in self.rm_slots.range((rm, first)..=(rm, last)) {
            if view.instance_id != instance_id {
                continue;
            }
            let (held, te_since) = self.te_view(tm, slot_id.slot_index);
            let since = self.quiet.last_fault.max(view.since).max(te_since);
            if end.saturating_since(since) < bound {
                continue;
            }
            let mechanism = match (view.state, held) {
                (SlotState::Free, None) => continue,
                (SlotState::Allocated { allocation_id, .. }, Some(a)) if a == allocation_id => {
                    continue
                }
                (SlotState::Pending { .. }, _) => "the requestSlot answer and its ask timeout",
                _ => "slot report reconciliation",
            };
            let truth = match held {
                Some(a) => format!("{} holds allocation {a:x}", census.name(tm)),
                None => format!("{} has it free", census.name(tm)),
            };
            found.push((
                format!(
                    "slot {} is {} in the SlotManager's view while {truth} (both unchanged for {})",
                    slot_id.slot_index,
                    view.state,
                    secs(end.saturating_since(since))
                ),
                mechanism,
            ));
        }
        found
    }
}

impl Oracle for SlotViewsAgree {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        self.quiet.observe(ev);
        if ends_handler(ev) {
            self.cause = None;
        }
        if let EventKind::Deliver {
            from,
            to,
            sent,
            msg,
            ..
        } = &ev.kind
        {
            self.cause = Some(Cause {
                node: *to,
                time: ev.time,
                from: *from,
                sent: *sent,
                rpc: msg.name(),
            });
        }
        if let Some(n) = process_died(ev) {
            self.process_died(n, ev.time);
            return;
        }
        match &ev.kind {
            EventKind::Started { node } => {
                let life = self.life(*node);
                self.lives.insert(*node, (life, ev.time));
            }
            EventKind::Obs { node, obs } => {
                if let Some(v) = self.on_obs(census, ev, *node, obs) {
                    out.push(v);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, census: &Census, end: Time, out: &mut Vec<Violation>) {
        if !self.quiet.judged(census) {
            return;
        }
        let bound = Quiet::stretched(census, self.bound);
        for (&tm, &(rm, instance_id)) in &self.connected {
            let up = |n: NodeId| census.status(n) == Status::Up;
            if !up(tm) || !up(rm) || self.registered.get(&(rm, tm)) != Some(&instance_id) {
                continue;
            }
            let found = self.disagreements(census, end, bound, tm, (rm, instance_id));
            let Some(&(_, mechanism)) = found.first() else {
                continue;
            };
            let slots: Vec<&str> = found.iter().map(|(s, _)| s.as_str()).collect();
            out.push(Violation {
                invariant: INVARIANT.name,
                at: end,
                node: Some(rm),
                message: format!(
                    "{mechanism} stalled: {} is connected to the ResourceManager on {} under registration {instance_id:x}, but {} (bound {}); heartbeat slot reports must bring the SlotManager's view to the TaskExecutor's",
                    census.name(tm),
                    census.name(rm),
                    slots.join(", "),
                    secs(bound)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::rpc::{Msg, ResourceManagerRpc, SlotStatus};
    use sim::Fault;

    const I1: InstanceId = 0x11;
    const I2: InstanceId = 0x22;
    const A: AllocationId = 0xa;

    fn slot() -> SlotId {
        SlotId {
            task_manager: TM1,
            slot_index: 0,
        }
    }

    fn connected(instance_id: InstanceId) -> Step {
        Step::Obs(
            TM1,
            Obs::ResourceManagerConnected {
                resource_manager: JM,
                instance_id,
            },
        )
    }

    fn registered(instance_id: InstanceId) -> Step {
        Step::Obs(
            JM,
            Obs::TaskExecutorRegistered {
                task_executor: TM1,
                instance_id,
            },
        )
    }

    fn rm(instance_id: InstanceId, state: SlotState) -> Step {
        Step::Obs(
            JM,
            Obs::SlotStateChanged {
                slot_id: slot(),
                instance_id,
                state,
            },
        )
    }

    fn allocated() -> SlotState {
        SlotState::Allocated {
            allocation_id: A,
            job_id: 5,
        }
    }

    fn te_allocated() -> Step {
        Step::Obs(
            TM1,
            Obs::SlotAllocated {
                slot_index: 0,
                allocation_id: A,
                job_id: 5,
            },
        )
    }

    fn te_freed() -> Step {
        Step::Obs(
            TM1,
            Obs::SlotFreed {
                slot_index: 0,
                allocation_id: A,
            },
        )
    }

    /// A heartbeat slot report from taskmanager-1 sent at `sent_ms`, showing `allocation`.
    fn heartbeat(sent_ms: u64, allocation: Option<AllocationId>) -> Step {
        Step::DeliverSent(
            TM1,
            JM,
            sent_ms,
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager {
                resource_id: TM1,
                slot_report: vec![SlotStatus {
                    slot_index: 0,
                    allocation: allocation.map(|a| (a, 5)),
                }],
            }),
        )
    }

    /// taskmanager-1 registered under I1 with one free slot, a requestSlot for A answered.
    fn allocated_by_answer() -> Vec<(u64, Step)> {
        vec![
            (100, registered(I1)),
            (101, connected(I1)),
            (102, rm(I1, SlotState::Free)),
            (
                200,
                rm(
                    I1,
                    SlotState::Pending {
                        allocation_id: A,
                        job_id: 5,
                    },
                ),
            ),
            (201, te_allocated()),
            (
                202,
                Step::DeliverSent(
                    TM1,
                    JM,
                    201,
                    Msg::ResourceManager(ResourceManagerRpc::RequestSlotResponse {
                        allocation_id: A,
                        ok: true,
                    }),
                ),
            ),
            (202, rm(I1, allocated())),
        ]
    }

    fn check(steps: &[(u64, Step)], end_ms: u64) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut oracle = SlotViewsAgree::new(&setup(FlinkConfig::default()));
        feed(&mut oracle, w.census(), steps, Some(end_ms))
    }

    #[test]
    fn allocations_from_answers_and_reports_true_when_sent_hold() {
        let mut steps = allocated_by_answer();
        steps.extend([
            // The TaskExecutor frees A; notifySlotAvailable frees it at the RM.
            (3_000, te_freed()),
            (3_002, rm(I1, SlotState::Free)),
            // A report sent before the free arrives late: true when sent, so allowed; the next
            // report corrects it.
            (3_003, heartbeat(2_999, Some(A))),
            (3_003, rm(I1, allocated())),
            (13_002, heartbeat(13_000, None)),
            (13_002, rm(I1, SlotState::Free)),
        ]);
        assert_eq!(check(&steps, 200_000), vec![]);
    }

    #[test]
    fn slots_registered_before_the_task_executor_completed_its_registration_are_caught() {
        // The SlotManager takes taskmanager-1's slots with the registration, before the
        // TaskExecutor processed the answer (FLINK-9427).
        let steps = vec![
            (100, registered(I1)),
            (100, rm(I1, SlotState::Free)),
            (103, connected(I1)),
        ];
        let v = check(&steps, 1_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "put slot 0 of taskmanager-1 (FREE) in its view under registration 11, but taskmanager-1 has not completed that registration"
            ),
            "{}",
            v[0].message
        );
        // A TaskExecutor connected under another registration does not count.
        let steps = vec![
            (90, connected(I2)),
            (100, registered(I1)),
            (100, rm(I1, SlotState::Free)),
        ];
        assert_eq!(check(&steps, 1_000).len(), 1);
    }

    #[test]
    fn an_allocation_freed_before_the_report_was_sent_is_caught() {
        let mut steps = allocated_by_answer();
        steps.extend([
            (3_000, te_freed()),
            (3_002, rm(I1, SlotState::Free)),
            // The report was sent after the free, yet the SlotManager believes A again.
            (13_002, heartbeat(13_000, None)),
            (13_002, rm(I1, allocated())),
        ]);
        let v = check(&steps, 14_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains(
                "marked slot 0 of taskmanager-1 (registration 11) ALLOCATED to allocation a (job 5) on a heartbeatFromTaskManager sent at 13.000s, but the process of taskmanager-1 registered under 11 had that slot free then; it had freed allocation a at 3.000s"
            ),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn an_allocation_of_a_dead_process_applied_to_its_successor_is_caught() {
        let mut steps = allocated_by_answer();
        steps.extend([
            (5_000, Step::Fault(Fault::Kill(TM1))),
            (7_000, registered(I2)),
            (7_001, connected(I2)),
            // The SlotManager keeps the dead process's allocation for the new registration.
            (7_003, heartbeat(7_002, None)),
            (7_003, rm(I2, allocated())),
        ]);
        let v = check(&steps, 8_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("registered under 22 had that slot free then; it never allocated a"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn an_allocation_outside_a_taskexecutor_message_is_caught() {
        let mut steps = allocated_by_answer();
        steps.truncate(4);
        // Marked ALLOCATED on sending requestSlot, in the requirement check's timer handler.
        steps.push((
            200,
            Step::Timer(
                JM,
                crate::protocol::timer::Timer::ResourceManager(
                    crate::protocol::timer::ResourceManagerTimer::RequirementCheck,
                ),
            ),
        ));
        steps.push((200, rm(I1, allocated())));
        let v = check(&steps, 1_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("outside the handler of a message from taskmanager-1"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn views_left_apart_after_the_faults_are_caught_naming_the_mechanism() {
        let mut steps = allocated_by_answer();
        // The TaskExecutor freed A, but no report ever reconciled the SlotManager's view.
        steps.push((3_000, te_freed()));
        // Within the bound (heartbeat.timeout + ask timeout + 2 intervals + network) it may be.
        assert_eq!(check(&steps, 60_000), vec![]);
        let v = check(&steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.starts_with(
                "slot report reconciliation stalled: taskmanager-1 is connected to the ResourceManager on jobmanager-1 under registration 11, but slot 0 is ALLOCATED to allocation a (job 5) in the SlotManager's view while taskmanager-1 has it free"
            ),
            "{}",
            v[0].message
        );
        // A requestSlot pending for ever names the answer and its ask timeout.
        let mut steps = allocated_by_answer();
        steps.truncate(4);
        let v = check(&steps, 200_000);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .starts_with("the requestSlot answer and its ask timeout stalled"),
            "{}",
            v[0].message
        );
        // A TaskExecutor no longer registered under the connection is not judged.
        let mut steps = allocated_by_answer();
        steps.push((3_000, te_freed()));
        steps.push((
            3_001,
            Step::Obs(
                JM,
                Obs::TaskExecutorUnregistered {
                    task_executor: TM1,
                    instance_id: I1,
                },
            ),
        ));
        assert_eq!(check(&steps, 200_000), vec![]);
    }
}
