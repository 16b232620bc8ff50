//! The glue between the sans-IO HA state machines and the simulated processes: the `ha` node
//! (an [`HaStore`] whose durable content survives its crashes, with a timer for session expiry)
//! and [`HaServices`], one process's [`HaClient`] with its tick timer.

use crate::external::ha::client::{Effect, HaClient};
use crate::external::ha::store::{HaOutput, HaStore};
use crate::protocol::durable::DurableOp;
use crate::protocol::ha::{HaData, HaDataOp, HaReply, HaRequest, Op, ZnodeData};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::Msg;
use crate::protocol::timer::Timer;
use crate::protocol::Flink;
use sim::{Ctx, NodeId, Time, TimerId};
use std::collections::BTreeSet;

/// The leader-retrieval component of the ResourceManager.
pub const RESOURCE_MANAGER_COMPONENT: &str = "resource_manager";
/// The leader-retrieval component of the Dispatcher.
pub const DISPATCHER_COMPONENT: &str = "dispatcher";

/// The local monotonic clock as a `Time` (HA timeouts run on the node's own clock).
pub fn local_now(ctx: &Ctx<'_, Flink>) -> Time {
    Time::from_nanos(ctx.mono_ns())
}

/// The `ha` node.
#[derive(Debug)]
pub struct HaNode {
    /// The durable content until the node starts.
    data: Option<HaData>,
    store: Option<HaStore>,
    expiry: Option<(TimerId, Time)>,
    /// The latch leader last traced.
    leader: Option<Option<(u64, NodeId)>>,
    /// Checkpoint pointers and job results traced as stored (path, creation zxid).
    pointers: BTreeSet<(String, u64)>,
}

impl HaNode {
    pub fn new(data: HaData) -> HaNode {
        HaNode {
            data: Some(data),
            store: None,
            expiry: None,
            leader: None,
            pointers: BTreeSet::new(),
        }
    }

    pub fn store(&self) -> Option<&HaStore> {
        self.store.as_ref()
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Flink>) {
        // A (re)started node has no timer armed and has traced nothing yet.
        assert!(self.expiry.is_none() && self.leader.is_none());
        let data = self.data.take().expect("started once");
        self.store = Some(HaStore::new(data, local_now(ctx)));
        self.after(ctx, HaOutput::default());
    }

    pub fn on_request(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, request: HaRequest) {
        let now = local_now(ctx);
        let out = self
            .store
            .as_mut()
            .expect("started")
            .handle(now, from, request);
        self.after(ctx, out);
    }

    pub fn on_expiry(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) {
        if self.expiry.is_some_and(|(t, _)| t == timer) {
            self.expiry = None;
        }
        let now = local_now(ctx);
        let out = self.store.as_mut().expect("started").expire(now);
        self.after(ctx, out);
    }

    fn after(&mut self, ctx: &mut Ctx<'_, Flink>, out: HaOutput) {
        let changed = !out.persist.is_empty();
        for op in out.persist {
            if let HaDataOp::Write { op, .. } = &op {
                self.trace_pointers(ctx, op);
            }
            ctx.persist(DurableOp::Ha(op));
        }
        for (to, reply) in out.send {
            ctx.send(to, Msg::HaReply(reply));
        }
        let store = self.store.as_ref().expect("started");
        if changed || self.leader.is_none() {
            let leader = latch_leader(store.data());
            if self.leader != Some(leader) {
                // Latch nodes are sequential: a later leader's node, and so its leader session
                // id, is newer.
                if let (Some(Some((old, _))), Some((new, _))) = (self.leader, leader) {
                    assert!(new > old);
                }
                self.leader = Some(leader);
                ctx.trace(Obs::HaLeader {
                    leader_session_id: leader.map(|(id, _)| id),
                    node: leader.map(|(_, n)| n),
                });
            }
        }
        let next = store.next_expiry();
        if next != self.expiry.map(|(_, t)| t) {
            if let Some((t, _)) = self.expiry.take() {
                ctx.cancel_timer(t);
            }
            if let Some(at) = next {
                let after = at.saturating_since(local_now(ctx));
                self.expiry = Some((ctx.set_timer(after, Timer::HaExpiry), at));
            }
        }
        // The expiry timer is armed exactly for the next session deadline.
        assert_eq!(self.expiry.map(|(_, t)| t), next);
    }
}

impl HaNode {
    /// Traces the checkpoint pointers and job results `op` created (ground truth for the
    /// oracles).
    fn trace_pointers(&mut self, ctx: &mut Ctx<'_, Flink>, op: &Op) {
        match op {
            Op::Multi(ops) => {
                for op in ops {
                    self.trace_pointers(ctx, op);
                }
            }
            Op::Create { path, .. } if path.starts_with("/job-results/") => {
                let store = self.store.as_ref().expect("started");
                let Some(node) = store.data().get(path) else {
                    return;
                };
                let ZnodeData::JobResult { status, .. } = &node.data else {
                    return;
                };
                // Job results outlive the session that wrote them.
                assert!(node.stat.ephemeral_owner.is_none());
                let job_id = path["/job-results/".len()..].parse().ok();
                debug_assert!(job_id.is_some(), "malformed job result path {path}");
                if let Some(job_id) = job_id {
                    if self.pointers.insert((path.clone(), node.stat.czxid)) {
                        ctx.trace(Obs::JobResultStored {
                            job_id,
                            status: *status,
                        });
                    }
                }
            }
            Op::Create { path, .. } if path.contains("/checkpoints/checkpoint-") => {
                let store = self.store.as_ref().expect("started");
                let Some(node) = store.data().get(path) else {
                    return;
                };
                let ZnodeData::CompletedCheckpoint(cp) = &node.data else {
                    return;
                };
                // Checkpoint pointers outlive the session that wrote them.
                assert!(node.stat.ephemeral_owner.is_none());
                let job_id = pointer_job(path);
                debug_assert!(job_id.is_some(), "malformed checkpoint path {path}");
                if let Some(job_id) = job_id {
                    if self.pointers.insert((path.clone(), node.stat.czxid)) {
                        ctx.trace(Obs::CheckpointPointerStored {
                            job_id,
                            checkpoint_id: cp.id,
                            handles: cp.handles.clone(),
                            finished: cp.finished.clone(),
                        });
                    }
                }
            }
            Op::Delete { path, .. } if path.contains("/checkpoints/checkpoint-") => {
                let store = self.store.as_ref().expect("started");
                // Applied: the pointer is gone (a delete of a missing node persists nothing).
                debug_assert!(store.data().get(path).is_none());
                // (The set of traced pointers is volatile: a restarted node still traces the
                // removal of a pointer stored before.)
                self.pointers.retain(|(p, _)| p != path);
                let parsed = pointer_job(path).zip(
                    path.rsplit("checkpoint-")
                        .next()
                        .and_then(|id| id.parse().ok()),
                );
                debug_assert!(parsed.is_some(), "malformed checkpoint path {path}");
                if let Some((job_id, checkpoint_id)) = parsed {
                    ctx.trace(Obs::CheckpointPointerRemoved {
                        job_id,
                        checkpoint_id,
                    });
                }
            }
            _ => {}
        }
    }
}

/// The owner of the lowest latch node and its creation zxid (the leader session id the latch
/// recipe grants), from the store's content.
pub fn latch_leader(data: &HaData) -> Option<(u64, NodeId)> {
    let first = data
        .children(crate::external::ha::client::LATCH_PATH)
        .into_iter()
        .next()?;
    let node = data.get(&format!(
        "{}/{first}",
        crate::external::ha::client::LATCH_PATH
    ))?;
    let owner = node.stat.ephemeral_owner?;
    // Ephemeral nodes belong to live sessions.
    debug_assert!(data.sessions.contains_key(&owner));
    let session = data.sessions.get(&owner)?;
    Some((node.stat.czxid, session.owner))
}

/// One process's HA client and its tick timer: every call returns the client's effects other
/// than sends, which it has sent to the `ha` node.
#[derive(Debug)]
pub struct HaServices {
    store: NodeId,
    client: HaClient,
    tick: Option<(TimerId, Time)>,
}

impl HaServices {
    pub fn new(store: NodeId, client: HaClient) -> HaServices {
        HaServices {
            store,
            client,
            tick: None,
        }
    }

    pub fn client(&self) -> &HaClient {
        &self.client
    }

    pub fn start(&mut self, ctx: &mut Ctx<'_, Flink>) -> Vec<Effect> {
        // Nothing is due before the session starts connecting.
        assert!(self.tick.is_none());
        let now = local_now(ctx);
        let out = self.client.start(now);
        self.finish(ctx, out)
    }

    pub fn on_reply(&mut self, ctx: &mut Ctx<'_, Flink>, reply: HaReply) -> Vec<Effect> {
        let now = local_now(ctx);
        let out = self.client.on_reply(now, reply);
        self.finish(ctx, out)
    }

    pub fn on_tick(&mut self, ctx: &mut Ctx<'_, Flink>, timer: TimerId) -> Vec<Effect> {
        if self.tick.is_some_and(|(t, _)| t == timer) {
            self.tick = None;
        }
        let now = local_now(ctx);
        let out = self.client.on_tick(now);
        self.finish(ctx, out)
    }

    /// Runs `f` on the client at the local time and handles its effects.
    pub fn call<R>(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        f: impl FnOnce(&mut HaClient, Time) -> (R, Vec<Effect>),
    ) -> (R, Vec<Effect>) {
        let now = local_now(ctx);
        let (r, out) = f(&mut self.client, now);
        (r, self.finish(ctx, out))
    }

    /// The tick timer was cancelled with every other timer of the process: arm it again.
    pub fn rearm(&mut self, ctx: &mut Ctx<'_, Flink>) {
        self.tick = None;
        self.finish(ctx, Vec::new());
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Flink>, out: Vec<Effect>) -> Vec<Effect> {
        let mut rest = Vec::new();
        for e in out {
            match e {
                Effect::Send(r) => ctx.send(self.store, Msg::Ha(r)),
                e => rest.push(e),
            }
        }
        let next = self.client.next_tick();
        if next != Time::MAX && self.tick.map(|(_, t)| t) != Some(next) {
            if let Some((t, _)) = self.tick.take() {
                ctx.cancel_timer(t);
            }
            let after = next.saturating_since(local_now(ctx));
            self.tick = Some((ctx.set_timer(after, Timer::HaTick), next));
        }
        // The client's next tick is armed.
        assert!(next == Time::MAX || self.tick.is_some_and(|(_, t)| t == next));
        rest
    }
}

/// The job of a checkpoint pointer path (`/jobs/<job>/checkpoints/checkpoint-<id>`).
fn pointer_job(path: &str) -> Option<crate::protocol::ids::JobId> {
    path.strip_prefix("/jobs/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|j| j.parse().ok())
}
