//! The `ha` node: a linearizable ZooKeeper-like store behind Flink's ZooKeeper HA services
//! (`ZooKeeperLeaderElectionDriver`, `ZooKeeperCheckpointIDCounter`, `ZooKeeperStateHandleStore`).
//!
//! It owns a tree of znodes (`/leader/latch/latch-0000000007`,
//! `/leader/resource_manager/connection_info`, `/jobs/<job>/checkpoint_id_counter`, ...), the
//! client sessions with their ephemeral nodes, and one-shot watches. Requests are applied one at
//! a time, in arrival order, so the store is linearizable. It does not own the recipes built on
//! top of it (leader latch, leader retrieval, checkpoint id counter): those are in
//! [`crate::external::ha::client`].
//!
//! Durability. Everything in [`HaData`] survives a crash of the node: the tree, the zxid and
//! session counters, the session table (as ZooKeeper replicates sessions across its ensemble), the
//! watches registered by each session (standing in for the ZooKeeper client's re-registration of
//! its watches on reconnect), and per session the answers to its last write requests. Every
//! change goes through [`HaData::apply`] of one [`HaDataOp`], which the actor persists. Only the
//! sessions' liveness (when each was last heard from) is in memory: a restarted store gives every
//! session a fresh deadline of one session timeout from the restart, as a new ZooKeeper leader
//! does, so clients that keep pinging keep their sessions and ephemeral nodes, and the others
//! expire one timeout after the restart.
//!
//! Uncertain writes (docs/flink-runtime.md §7, §10). A request may be applied and its answer lost. Each write
//! request carries a client-chosen `request_id`; the store remembers the answer to the last
//! [`ANSWERS_PER_SESSION`] write requests of each session (durably, in the same change that
//! applies the write), so a retry with the same id is answered the same and never applied twice.
//! Reads are not remembered: a retried read is simply read again.
//!
//! Simplifications against ZooKeeper: no ACLs, no quotas, no container or TTL nodes; a create
//! makes missing ancestors as persistent empty nodes (Curator's `creatingParentsIfNeeded`, which
//! Flink uses everywhere); data and exists watches are one table; a `Connect` is not
//! deduplicated (a retried connect makes another session, which the client closes or which
//! expires unused); a store is one node, not an ensemble.

use crate::protocol::ha::*;
use sim::{NodeId, Time};
use std::collections::BTreeMap;

/// What applying one [`HaDataOp`] produced: the answer (for `Write`) and the fired watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub result: Option<HaResult>,
    pub events: Vec<(NodeId, HaReply)>,
}

/// A change to one path, for firing watches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Created(String),
    Deleted(String),
    DataChanged(String),
}

/// The parent of an absolute, valid, non-root path.
pub fn parent(path: &str) -> &str {
    assert!(path.len() > 1);
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => panic!("relative path {path:?}"),
    }
}

/// Absolute, no trailing slash (except the root), no empty components.
pub fn is_valid_path(path: &str) -> bool {
    path == "/" || (path.starts_with('/') && !path.ends_with('/') && !path.contains("//"))
}

/// The last component of a non-root path.
pub fn name(path: &str) -> &str {
    &path[path.rfind('/').expect("absolute path") + 1..]
}

impl HaData {
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// The children's names of `path`, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len() && !p[prefix.len()..].contains('/'))
            .map(|(p, _)| p[prefix.len()..].to_string())
            .collect()
    }

    /// Applies one change; see [`Applied`].
    pub fn apply(&mut self, op: HaDataOp) -> Applied {
        match op {
            HaDataOp::SessionOpened {
                session,
                owner,
                timeout,
            } => {
                assert!(session.0 > self.sessions_created);
                assert!(!self.sessions.contains_key(&session));
                self.sessions_created = session.0;
                self.sessions.insert(
                    session,
                    SessionRecord {
                        owner,
                        timeout,
                        answers: BTreeMap::new(),
                        answers_forgotten_max: None,
                        events_fired: 0,
                    },
                );
                Applied::default()
            }
            HaDataOp::SessionClosed { session } => {
                assert!(self.sessions.contains_key(&session));
                // Ephemerals have no children, so any order works; path order keeps it stable.
                let ephemerals: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.stat.ephemeral_owner == Some(session))
                    .map(|(p, _)| p.clone())
                    .collect();
                let mut changes = Vec::new();
                if !ephemerals.is_empty() {
                    self.zxid += 1;
                    for path in ephemerals {
                        self.delete_node(&path, &mut changes);
                    }
                }
                // The closed session's own watches never fire.
                for sessions in self.watches.values_mut() {
                    sessions.remove(&session);
                }
                self.watches.retain(|_, s| !s.is_empty());
                self.sessions.remove(&session);
                Applied {
                    result: None,
                    events: self.fire(changes),
                }
            }
            HaDataOp::Write {
                session,
                request_id,
                op,
            } => {
                assert!(op.is_write());
                assert!(self.sessions.contains_key(&session));
                assert!(!self.sessions[&session].answers.contains_key(&request_id));
                let mut changes = Vec::new();
                let result = self.execute_write(session, op, &mut changes);
                let events = self.fire(changes);
                let record = self.sessions.get_mut(&session).expect("session");
                record.answers.insert(request_id, result.clone());
                while record.answers.len() > ANSWERS_PER_SESSION {
                    let (oldest, _) = record.answers.pop_first().expect("non-empty");
                    record.answers_forgotten_max = Some(
                        record
                            .answers_forgotten_max
                            .map_or(oldest, |m| m.max(oldest)),
                    );
                }
                Applied {
                    result: Some(result),
                    events,
                }
            }
            HaDataOp::WatchAdded {
                session,
                path,
                watch_type,
            } => {
                assert!(self.sessions.contains_key(&session));
                self.watches
                    .entry((path, watch_type))
                    .or_default()
                    .insert(session);
                Applied::default()
            }
        }
    }

    /// One write transaction (one zxid when it changes anything); on failure nothing changes.
    fn execute_write(&mut self, session: SessionId, op: Op, changes: &mut Vec<Change>) -> HaResult {
        let zxid_before = self.zxid;
        self.zxid += 1;
        let result = match op {
            Op::Multi(ops) => {
                // All or nothing: run on the live tree and roll back to a copy on failure. The
                // tree is small (tens of znodes per job), so the copy is cheap enough.
                let saved = self.nodes.clone();
                let mut results = Vec::with_capacity(ops.len());
                let mut failure = None;
                for (index, op) in ops.into_iter().enumerate() {
                    let r = if matches!(op, Op::Multi(_)) || !op.is_write() {
                        Err(HaError::BadArguments)
                    } else {
                        self.execute_one(session, op, changes)
                    };
                    match r {
                        Ok(r) => results.push(r),
                        Err(cause) => {
                            failure = Some(HaError::MultiFailed {
                                index,
                                cause: Box::new(cause),
                            });
                            break;
                        }
                    }
                }
                match failure {
                    None => Ok(OpResult::Multi(results)),
                    Some(e) => {
                        self.nodes = saved;
                        changes.clear();
                        Err(e)
                    }
                }
            }
            op => self.execute_one(session, op, changes),
        };
        if changes.is_empty() {
            // Nothing changed (a failure or a lone check): the zxid is not used.
            self.zxid = zxid_before;
        }
        result
    }

    fn execute_one(&mut self, session: SessionId, op: Op, changes: &mut Vec<Change>) -> HaResult {
        let zxid = self.zxid;
        match op {
            Op::Create {
                path,
                data,
                ephemeral,
                sequential,
            } => {
                if !is_valid_path(&path) || path == "/" {
                    return Err(HaError::BadArguments);
                }
                let parent_path = parent(&path).to_string();
                // Curator's creatingParentsIfNeeded: missing ancestors become persistent nodes.
                let mut missing = Vec::new();
                let mut p = parent_path.clone();
                while !self.nodes.contains_key(&p) {
                    missing.push(p.clone());
                    p = parent(&p).to_string();
                }
                if self.nodes[&p].stat.ephemeral_owner.is_some() {
                    return Err(HaError::NoChildrenForEphemerals);
                }
                if self.nodes.len() + missing.len() + 1 > ZNODES_MAX {
                    return Err(HaError::BadArguments);
                }
                let path = if sequential {
                    let seq = if missing.is_empty() {
                        self.nodes[&parent_path].stat.cversion
                    } else {
                        0
                    };
                    format!("{path}{seq:010}")
                } else {
                    path
                };
                if self.nodes.contains_key(&path) {
                    return Err(HaError::NodeExists);
                }
                for ancestor in missing.into_iter().rev() {
                    self.insert_node(ancestor, ZnodeData::Empty, None, zxid, changes);
                }
                let owner = ephemeral.then_some(session);
                let stat = self.insert_node(path.clone(), data, owner, zxid, changes);
                Ok(OpResult::Created { path, stat })
            }
            Op::SetData {
                path,
                data,
                expected_version,
            } => {
                let node = self.nodes.get_mut(&path).ok_or(HaError::NoNode)?;
                if expected_version.is_some_and(|v| v != node.stat.version) {
                    return Err(HaError::BadVersion);
                }
                node.data = data;
                node.stat.version += 1;
                node.stat.mzxid = zxid;
                changes.push(Change::DataChanged(path));
                Ok(OpResult::Set(node.stat))
            }
            Op::Delete {
                path,
                expected_version,
            } => {
                if path == "/" || !is_valid_path(&path) {
                    return Err(HaError::BadArguments);
                }
                let node = self.nodes.get(&path).ok_or(HaError::NoNode)?;
                if expected_version.is_some_and(|v| v != node.stat.version) {
                    return Err(HaError::BadVersion);
                }
                if node.stat.num_children > 0 {
                    return Err(HaError::NotEmpty);
                }
                self.delete_node(&path, changes);
                Ok(OpResult::Deleted)
            }
            Op::Check {
                path,
                expected_version,
            } => {
                let node = self.nodes.get(&path).ok_or(HaError::NoNode)?;
                if expected_version.is_some_and(|v| v != node.stat.version) {
                    return Err(HaError::BadVersion);
                }
                Ok(OpResult::Checked)
            }
            Op::GetData { .. } | Op::GetChildren { .. } | Op::Exists { .. } | Op::Multi(_) => {
                unreachable!("not a single write: {op:?}")
            }
        }
    }

    fn insert_node(
        &mut self,
        path: String,
        data: ZnodeData,
        ephemeral_owner: Option<SessionId>,
        zxid: u64,
        changes: &mut Vec<Change>,
    ) -> Stat {
        let parent_node = self.nodes.get_mut(parent(&path)).expect("parent exists");
        assert!(parent_node.stat.ephemeral_owner.is_none());
        parent_node.stat.cversion += 1;
        parent_node.stat.num_children += 1;
        let stat = Stat {
            czxid: zxid,
            mzxid: zxid,
            version: 0,
            cversion: 0,
            ephemeral_owner,
            num_children: 0,
        };
        let previous = self.nodes.insert(path.clone(), Znode { data, stat });
        assert!(previous.is_none());
        changes.push(Change::Created(path));
        stat
    }

    fn delete_node(&mut self, path: &str, changes: &mut Vec<Change>) {
        let node = self.nodes.remove(path).expect("node exists");
        assert_eq!(node.stat.num_children, 0);
        let parent_node = self.nodes.get_mut(parent(path)).expect("parent exists");
        parent_node.stat.cversion += 1;
        parent_node.stat.num_children -= 1;
        changes.push(Change::Deleted(path.to_string()));
    }

    /// Fires (and removes) the watches that `changes` trigger, in change order.
    fn fire(&mut self, changes: Vec<Change>) -> Vec<(NodeId, HaReply)> {
        let mut fired: Vec<(SessionId, String, WatchKind)> = Vec::new();
        for change in changes {
            let mut take = |path: &str, watch_type: WatchType, kind: WatchKind| {
                if let Some(sessions) = self.watches.remove(&(path.to_string(), watch_type)) {
                    for s in sessions {
                        fired.push((s, path.to_string(), kind));
                    }
                }
            };
            match change {
                Change::Created(path) => {
                    take(&path, WatchType::Data, WatchKind::NodeCreated);
                    take(
                        parent(&path),
                        WatchType::Children,
                        WatchKind::ChildrenChanged,
                    );
                }
                Change::Deleted(path) => {
                    take(&path, WatchType::Data, WatchKind::NodeDeleted);
                    take(&path, WatchType::Children, WatchKind::NodeDeleted);
                    take(
                        parent(&path),
                        WatchType::Children,
                        WatchKind::ChildrenChanged,
                    );
                }
                Change::DataChanged(path) => {
                    take(&path, WatchType::Data, WatchKind::DataChanged);
                }
            }
        }
        let mut events = Vec::new();
        for (session, path, kind) in fired {
            let record = self.sessions.get_mut(&session).expect("watching session");
            record.events_fired += 1;
            events.push((
                record.owner,
                HaReply::Watch(WatchEvent {
                    session,
                    seq: record.events_fired,
                    path,
                    kind,
                }),
            ));
        }
        events
    }

    /// A read; `None` when it leaves no watch, else the watch to register.
    fn read(&self, op: &Op) -> (HaResult, Option<(String, WatchType)>) {
        match op {
            Op::GetData { path, watch } => match self.nodes.get(path) {
                Some(n) => (
                    Ok(OpResult::Data {
                        data: n.data.clone(),
                        stat: n.stat,
                    }),
                    watch.then(|| (path.clone(), WatchType::Data)),
                ),
                None => (Err(HaError::NoNode), None),
            },
            Op::GetChildren { path, watch } => match self.nodes.get(path) {
                Some(n) => (
                    Ok(OpResult::Children {
                        children: self.children(path),
                        stat: n.stat,
                    }),
                    watch.then(|| (path.clone(), WatchType::Children)),
                ),
                None => (Err(HaError::NoNode), None),
            },
            Op::Exists { path, watch } => (
                Ok(OpResult::Exists(self.nodes.get(path).map(|n| n.stat))),
                watch.then(|| (path.clone(), WatchType::Data)),
            ),
            _ => unreachable!("not a read: {op:?}"),
        }
    }
}

/// What a store handler produced: durable changes for the actor to persist (already applied to
/// the store), then messages to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaOutput {
    pub persist: Vec<HaDataOp>,
    pub send: Vec<(NodeId, HaReply)>,
}

/// The `ha` node's state machine.
#[derive(Clone, Debug)]
pub struct HaStore {
    data: HaData,
    /// When each live session was last heard from (in memory only).
    last_heard: BTreeMap<SessionId, Time>,
}

impl HaStore {
    /// The node as it (re)starts at `now` from its durable content: every session gets a fresh
    /// deadline of one timeout from `now`.
    pub fn new(data: HaData, now: Time) -> HaStore {
        let last_heard = data.sessions.keys().map(|s| (*s, now)).collect();
        HaStore { data, last_heard }
    }

    pub fn data(&self) -> &HaData {
        &self.data
    }

    pub fn is_live(&self, session: SessionId) -> bool {
        self.data.sessions.contains_key(&session)
    }

    /// When the next session expires unless heard from.
    pub fn next_expiry(&self) -> Option<Time> {
        self.last_heard
            .iter()
            .map(|(s, t)| *t + self.data.sessions[s].timeout)
            .min()
    }

    fn change(&mut self, out: &mut HaOutput, op: HaDataOp) -> Option<HaResult> {
        let applied = self.data.apply(op.clone());
        out.persist.push(op);
        out.send.extend(applied.events);
        applied.result
    }

    /// Expires every session not heard from within its timeout: its ephemeral nodes are
    /// deleted and the watches on them fire.
    pub fn expire(&mut self, now: Time) -> HaOutput {
        let mut out = HaOutput::default();
        let expired: Vec<SessionId> = self
            .last_heard
            .iter()
            .filter(|(s, t)| **t + self.data.sessions[s].timeout <= now)
            .map(|(s, _)| *s)
            .collect();
        for session in expired {
            self.last_heard.remove(&session);
            self.change(&mut out, HaDataOp::SessionClosed { session });
        }
        out
    }

    /// Handles one request from `from` at `now` (expiring overdue sessions first).
    pub fn handle(&mut self, now: Time, from: NodeId, request: HaRequest) -> HaOutput {
        let mut out = self.expire(now);
        match request {
            HaRequest::Connect {
                request_id,
                timeout,
            } => {
                assert!(!timeout.is_zero());
                if self.data.sessions.len() >= SESSIONS_MAX {
                    return out; // Dropped, as a server refusing connections.
                }
                let session = SessionId(self.data.sessions_created + 1);
                self.change(
                    &mut out,
                    HaDataOp::SessionOpened {
                        session,
                        owner: from,
                        timeout,
                    },
                );
                self.last_heard.insert(session, now);
                out.send.push((
                    from,
                    HaReply::Connected {
                        request_id,
                        session,
                        timeout,
                    },
                ));
            }
            HaRequest::Ping {
                session,
                request_id,
            } => {
                let (events_fired, result) = match self.data.sessions.get(&session) {
                    Some(record) => {
                        self.last_heard.insert(session, now);
                        (record.events_fired, Ok(()))
                    }
                    None => (0, Err(HaError::SessionExpired)),
                };
                out.send.push((
                    from,
                    HaReply::Pong {
                        session,
                        request_id,
                        events_fired,
                        result,
                    },
                ));
            }
            HaRequest::Close {
                session,
                request_id,
            } => {
                let result = if self.is_live(session) {
                    self.last_heard.remove(&session);
                    self.change(&mut out, HaDataOp::SessionClosed { session });
                    Ok(OpResult::Closed)
                } else {
                    Err(HaError::SessionExpired)
                };
                out.send.push((
                    from,
                    HaReply::Response {
                        session,
                        request_id,
                        result,
                    },
                ));
            }
            HaRequest::Op {
                session,
                request_id,
                op,
            } => {
                let result = self.on_op(now, &mut out, session, request_id, op);
                out.send.push((
                    from,
                    HaReply::Response {
                        session,
                        request_id,
                        result,
                    },
                ));
            }
        }
        out
    }

    fn on_op(
        &mut self,
        now: Time,
        out: &mut HaOutput,
        session: SessionId,
        request_id: u64,
        op: Op,
    ) -> HaResult {
        let Some(record) = self.data.sessions.get(&session) else {
            return Err(HaError::SessionExpired);
        };
        self.last_heard.insert(session, now);
        if !op.is_write() {
            let (result, watch) = self.data.read(&op);
            if let Some((path, watch_type)) = watch {
                let known = self
                    .data
                    .watches
                    .get(&(path.clone(), watch_type))
                    .is_some_and(|s| s.contains(&session));
                if !known {
                    self.change(
                        out,
                        HaDataOp::WatchAdded {
                            session,
                            path,
                            watch_type,
                        },
                    );
                }
            }
            return result;
        }
        // A retried write: the same answer, not applied again.
        if let Some(answer) = record.answers.get(&request_id) {
            return answer.clone();
        }
        if record
            .answers_forgotten_max
            .is_some_and(|m| request_id <= m)
        {
            return Err(HaError::RequestTooOld);
        }
        self.change(
            out,
            HaDataOp::Write {
                session,
                request_id,
                op,
            },
        )
        .expect("a write has an answer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);
    const TIMEOUT: Duration = Duration::from_secs(6);

    struct Harness {
        store: HaStore,
        persisted: Vec<HaDataOp>,
        next_request_id: u64,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                store: HaStore::new(HaData::default(), Time::ZERO),
                persisted: Vec::new(),
                next_request_id: 1,
            }
        }

        fn send(&mut self, now: Time, from: NodeId, request: HaRequest) -> Vec<(NodeId, HaReply)> {
            let out = self.store.handle(now, from, request);
            self.persisted.extend(out.persist);
            out.send
        }

        fn connect(&mut self, now: Time, from: NodeId) -> SessionId {
            let replies = self.send(
                now,
                from,
                HaRequest::Connect {
                    request_id: 0,
                    timeout: TIMEOUT,
                },
            );
            match replies.as_slice() {
                [(to, HaReply::Connected { session, .. })] => {
                    assert_eq!(*to, from);
                    *session
                }
                other => panic!("unexpected {other:?}"),
            }
        }

        /// Sends `op` with a fresh request id; returns the result and the watch events.
        fn op(
            &mut self,
            now: Time,
            from: NodeId,
            session: SessionId,
            op: Op,
        ) -> (HaResult, Vec<(NodeId, WatchEvent)>) {
            let request_id = self.next_request_id;
            self.next_request_id += 1;
            self.op_with_id(now, from, session, request_id, op)
        }

        fn op_with_id(
            &mut self,
            now: Time,
            from: NodeId,
            session: SessionId,
            request_id: u64,
            op: Op,
        ) -> (HaResult, Vec<(NodeId, WatchEvent)>) {
            let replies = self.send(
                now,
                from,
                HaRequest::Op {
                    session,
                    request_id,
                    op,
                },
            );
            split(replies, from, session, request_id)
        }

        fn expire(&mut self, now: Time) -> Vec<(NodeId, WatchEvent)> {
            let out = self.store.expire(now);
            self.persisted.extend(out.persist);
            out.send
                .into_iter()
                .map(|(to, r)| match r {
                    HaReply::Watch(e) => (to, e),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        }
    }

    fn split(
        replies: Vec<(NodeId, HaReply)>,
        from: NodeId,
        session: SessionId,
        request_id: u64,
    ) -> (HaResult, Vec<(NodeId, WatchEvent)>) {
        let mut result = None;
        let mut events = Vec::new();
        for (to, reply) in replies {
            match reply {
                HaReply::Response {
                    session: s,
                    request_id: r,
                    result: res,
                } => {
                    assert_eq!((to, s, r), (from, session, request_id));
                    assert!(result.is_none());
                    result = Some(res);
                }
                HaReply::Watch(e) => events.push((to, e)),
                other => panic!("unexpected {other:?}"),
            }
        }
        (result.expect("one response"), events)
    }

    fn create(path: &str, data: ZnodeData, ephemeral: bool, sequential: bool) -> Op {
        Op::Create {
            path: path.into(),
            data,
            ephemeral,
            sequential,
        }
    }

    fn set(path: &str, value: u64, expected_version: Option<u64>) -> Op {
        Op::SetData {
            path: path.into(),
            data: ZnodeData::Counter(value),
            expected_version,
        }
    }

    fn get(path: &str, watch: bool) -> Op {
        Op::GetData {
            path: path.into(),
            watch,
        }
    }

    const T0: Time = Time::ZERO;

    #[test]
    fn ha_store_create_get_and_compare_and_set() {
        let mut h = Harness::new();
        let s = h.connect(T0, A);
        let path = "/jobs/j1/checkpoint_id_counter";
        let (r, _) = h.op(T0, A, s, create(path, ZnodeData::Counter(1), false, false));
        let Ok(OpResult::Created {
            path: created,
            stat,
        }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(created, path);
        assert_eq!(stat.version, 0);
        // The ancestors were made as persistent empty nodes.
        assert_eq!(h.store.data().children("/jobs"), vec!["j1".to_string()]);
        assert_eq!(h.store.data().get("/jobs").unwrap().stat.num_children, 1);
        // A second create of the same path fails.
        let (r, _) = h.op(T0, A, s, create(path, ZnodeData::Counter(9), false, false));
        assert_eq!(r, Err(HaError::NodeExists));
        // CAS at the right version succeeds and bumps the version.
        let (r, _) = h.op(T0, A, s, set(path, 2, Some(0)));
        let Ok(OpResult::Set(stat)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(stat.version, 1);
        // CAS at a stale version fails and changes nothing.
        let (r, _) = h.op(T0, A, s, set(path, 7, Some(0)));
        assert_eq!(r, Err(HaError::BadVersion));
        let (r, _) = h.op(T0, A, s, get(path, false));
        let Ok(OpResult::Data { data, stat }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(data, ZnodeData::Counter(2));
        assert_eq!(stat.version, 1);
        // Unconditional set, then delete with a stale version, then with the right one.
        let (r, _) = h.op(T0, A, s, set(path, 3, None));
        assert!(matches!(r, Ok(OpResult::Set(Stat { version: 2, .. }))));
        let del = |v| Op::Delete {
            path: path.into(),
            expected_version: Some(v),
        };
        assert_eq!(h.op(T0, A, s, del(1)).0, Err(HaError::BadVersion));
        // A parent with children cannot be deleted.
        let (r, _) = h.op(
            T0,
            A,
            s,
            Op::Delete {
                path: "/jobs/j1".into(),
                expected_version: None,
            },
        );
        assert_eq!(r, Err(HaError::NotEmpty));
        assert_eq!(h.op(T0, A, s, del(2)).0, Ok(OpResult::Deleted));
        assert_eq!(h.op(T0, A, s, get(path, false)).0, Err(HaError::NoNode));
        assert_eq!(h.op(T0, A, s, set(path, 1, None)).0, Err(HaError::NoNode));
    }

    #[test]
    fn ha_store_sequential_names_follow_the_parent_cversion() {
        let mut h = Harness::new();
        let s = h.connect(T0, A);
        let mut names = Vec::new();
        for _ in 0..3 {
            let (r, _) = h.op(
                T0,
                A,
                s,
                create("/leader/latch/latch-", ZnodeData::Empty, true, true),
            );
            let Ok(OpResult::Created { path, .. }) = r else {
                panic!("{r:?}")
            };
            names.push(path);
        }
        assert_eq!(
            names,
            vec![
                "/leader/latch/latch-0000000000",
                "/leader/latch/latch-0000000001",
                "/leader/latch/latch-0000000002"
            ]
        );
        // A delete bumps the parent's cversion too, so numbers are never reused.
        let (r, _) = h.op(
            T0,
            A,
            s,
            Op::Delete {
                path: names[2].clone(),
                expected_version: None,
            },
        );
        assert_eq!(r, Ok(OpResult::Deleted));
        let (r, _) = h.op(
            T0,
            A,
            s,
            create("/leader/latch/latch-", ZnodeData::Empty, true, true),
        );
        assert!(
            matches!(&r, Ok(OpResult::Created { path, .. }) if path == "/leader/latch/latch-0000000004"),
            "{r:?}"
        );
        // Ephemeral nodes cannot have children.
        let (r, _) = h.op(
            T0,
            A,
            s,
            create(&format!("{}/x", names[0]), ZnodeData::Empty, false, false),
        );
        assert_eq!(r, Err(HaError::NoChildrenForEphemerals));
    }

    #[test]
    fn ha_store_ephemerals_vanish_on_expiry_and_watches_fire_once() {
        let mut h = Harness::new();
        let a = h.connect(T0, A);
        let b = h.connect(T0, B);
        let (r, _) = h.op(
            T0,
            A,
            a,
            create("/leader/latch/latch-", ZnodeData::Empty, true, true),
        );
        let Ok(OpResult::Created { path, .. }) = r else {
            panic!("{r:?}")
        };
        // B watches A's node (data) and the latch (children), twice each: still one watch.
        for _ in 0..2 {
            let (r, _) = h.op(T0, B, b, get(&path, true));
            assert!(matches!(r, Ok(OpResult::Data { .. })));
            let (r, _) = h.op(
                T0,
                B,
                b,
                Op::GetChildren {
                    path: "/leader/latch".into(),
                    watch: true,
                },
            );
            assert!(
                matches!(r, Ok(OpResult::Children { ref children, .. }) if children.len() == 1)
            );
        }
        // B keeps pinging; A goes silent.
        let half = Time::ZERO + TIMEOUT / 2;
        let pong = h.send(
            half,
            B,
            HaRequest::Ping {
                session: b,
                request_id: 99,
            },
        );
        assert!(matches!(
            pong.as_slice(),
            [(_, HaReply::Pong { result: Ok(()), .. })]
        ));
        assert_eq!(h.store.next_expiry(), Some(Time::ZERO + TIMEOUT));
        assert!(h
            .expire(Time::ZERO + (TIMEOUT - Duration::from_nanos(1)))
            .is_empty());
        let events = h.expire(Time::ZERO + TIMEOUT);
        assert_eq!(
            events,
            vec![
                (
                    B,
                    WatchEvent {
                        session: b,
                        seq: 1,
                        path: path.clone(),
                        kind: WatchKind::NodeDeleted
                    }
                ),
                (
                    B,
                    WatchEvent {
                        session: b,
                        seq: 2,
                        path: "/leader/latch".into(),
                        kind: WatchKind::ChildrenChanged
                    }
                ),
            ]
        );
        assert!(h.store.data().get(&path).is_none());
        assert!(!h.store.is_live(a));
        assert!(h.store.is_live(b));
        // Nothing fires twice.
        assert!(h
            .expire(half + (TIMEOUT - Duration::from_nanos(1)))
            .is_empty());
        assert_eq!(h.store.data().sessions[&b].events_fired, 2);
    }

    #[test]
    fn ha_store_watches_are_one_shot_and_exists_watches_fire_on_create() {
        let mut h = Harness::new();
        let a = h.connect(T0, A);
        let b = h.connect(T0, B);
        let path = "/leader/dispatcher/connection_info";
        let (r, _) = h.op(
            T0,
            B,
            b,
            Op::Exists {
                path: path.into(),
                watch: true,
            },
        );
        assert_eq!(r, Ok(OpResult::Exists(None)));
        let (_, events) = h.op(T0, A, a, create(path, ZnodeData::Counter(1), false, false));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, B);
        assert_eq!(events[0].1.kind, WatchKind::NodeCreated);
        // The watch is gone: a change now fires nothing.
        let (_, events) = h.op(T0, A, a, set(path, 2, None));
        assert!(events.is_empty());
        // Re-armed by a read, it fires once on the next change only.
        assert!(h.op(T0, B, b, get(path, true)).0.is_ok());
        let (_, events) = h.op(T0, A, a, set(path, 3, None));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.kind, WatchKind::DataChanged);
        assert_eq!(events[0].1.seq, 2);
        let (_, events) = h.op(T0, A, a, set(path, 4, None));
        assert!(events.is_empty());
        // A read of a missing node leaves no watch.
        assert_eq!(h.op(T0, B, b, get("/nope", true)).0, Err(HaError::NoNode));
        assert!(!h.store.data().watches.keys().any(|(p, _)| p == "/nope"));
    }

    #[test]
    fn ha_store_multi_is_all_or_nothing() {
        let mut h = Harness::new();
        let s = h.connect(T0, A);
        let b = h.connect(T0, B);
        assert!(h
            .op(T0, A, s, create("/a", ZnodeData::Counter(1), false, false))
            .0
            .is_ok());
        assert!(h
            .op(
                T0,
                B,
                b,
                Op::GetChildren {
                    path: "/".into(),
                    watch: true,
                },
            )
            .0
            .is_ok());
        let before = h.store.data().clone();
        // Creates /b, sets /a, then fails a CAS on /a: nothing may remain, no watch fires.
        let multi = Op::Multi(vec![
            create("/b", ZnodeData::Empty, false, false),
            set("/a", 2, Some(0)),
            set("/a", 3, Some(0)),
        ]);
        let (r, events) = h.op(T0, A, s, multi);
        assert_eq!(
            r,
            Err(HaError::MultiFailed {
                index: 2,
                cause: Box::new(HaError::BadVersion)
            })
        );
        assert!(events.is_empty());
        assert_eq!(h.store.data().nodes, before.nodes);
        assert_eq!(h.store.data().zxid, before.zxid);
        // The same ops without the failing one apply together, under one zxid.
        let multi = Op::Multi(vec![
            Op::Check {
                path: "/a".into(),
                expected_version: Some(0),
            },
            create("/b", ZnodeData::Empty, false, false),
            set("/a", 2, Some(0)),
        ]);
        let (r, events) = h.op(T0, A, s, multi);
        let Ok(OpResult::Multi(results)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(results.len(), 3);
        assert_eq!(events.len(), 1, "the root's children watch fired once");
        let zxid = h.store.data().zxid;
        assert_eq!(zxid, before.zxid + 1);
        assert_eq!(h.store.data().get("/b").unwrap().stat.czxid, zxid);
        assert_eq!(h.store.data().get("/a").unwrap().stat.mzxid, zxid);
        // Reads are refused inside a multi.
        let (r, _) = h.op(T0, A, s, Op::Multi(vec![get("/a", false)]));
        assert!(matches!(r, Err(HaError::MultiFailed { index: 0, .. })));
    }

    #[test]
    fn ha_store_retried_write_is_applied_once_and_answered_the_same() {
        let mut h = Harness::new();
        let s = h.connect(T0, A);
        let op = create("/leader/latch/latch-", ZnodeData::Empty, true, true);
        let (first, _) = h.op_with_id(T0, A, s, 7, op.clone());
        // The answer was lost; the client retries with the same id.
        let (again, _) = h.op_with_id(T0, A, s, 7, op.clone());
        assert_eq!(first, again);
        assert_eq!(h.store.data().children("/leader/latch").len(), 1);
        // A CAS retried after another writer moved on still gets its own (successful) answer.
        assert!(h
            .op_with_id(
                T0,
                A,
                s,
                8,
                create("/c", ZnodeData::Counter(1), false, false)
            )
            .0
            .is_ok());
        let (r1, _) = h.op_with_id(T0, A, s, 9, set("/c", 2, Some(0)));
        let b = h.connect(T0, B);
        assert!(h.op(T0, B, b, set("/c", 5, None)).0.is_ok());
        let (r2, _) = h.op_with_id(T0, A, s, 9, set("/c", 2, Some(0)));
        assert_eq!(r1, r2);
        assert!(r1.is_ok());
        assert_eq!(
            h.store.data().get("/c").unwrap().data,
            ZnodeData::Counter(5)
        );
        // Once the window has moved past an id, a retry is refused rather than re-applied.
        for id in 100..100 + ANSWERS_PER_SESSION as u64 {
            assert!(h.op_with_id(T0, A, s, id, set("/c", id, None)).0.is_ok());
        }
        let (r, _) = h.op_with_id(T0, A, s, 7, op);
        assert_eq!(r, Err(HaError::RequestTooOld));
        assert_eq!(h.store.data().children("/leader/latch").len(), 1);
    }

    #[test]
    fn ha_store_expired_and_unknown_sessions_get_session_expired() {
        let mut h = Harness::new();
        let s = h.connect(T0, A);
        let late = Time::ZERO + TIMEOUT;
        // Handling a request expires overdue sessions first.
        let (r, _) = h.op(late, A, s, create("/x", ZnodeData::Empty, false, false));
        assert_eq!(r, Err(HaError::SessionExpired));
        assert!(h.store.data().get("/x").is_none());
        let pong = h.send(
            late,
            A,
            HaRequest::Ping {
                session: s,
                request_id: 1,
            },
        );
        assert!(matches!(
            pong.as_slice(),
            [(
                _,
                HaReply::Pong {
                    result: Err(HaError::SessionExpired),
                    ..
                }
            )]
        ));
        let (r, _) = h.op(late, A, SessionId(42), get("/", false));
        assert_eq!(r, Err(HaError::SessionExpired));
        // An explicit close ends a session at once; session ids are never reused.
        let s2 = h.connect(late, A);
        assert!(s2 > s);
        assert!(h
            .op(late, A, s2, create("/e", ZnodeData::Empty, true, false))
            .0
            .is_ok());
        let replies = h.send(
            late,
            A,
            HaRequest::Close {
                session: s2,
                request_id: 5,
            },
        );
        assert!(matches!(
            replies.as_slice(),
            [(
                _,
                HaReply::Response {
                    result: Ok(OpResult::Closed),
                    ..
                }
            )]
        ));
        assert!(h.store.data().get("/e").is_none());
        assert_eq!(h.store.next_expiry(), None);
    }

    #[test]
    fn ha_store_durable_data_survives_a_crash() {
        let mut h = Harness::new();
        let a = h.connect(T0, A);
        let b = h.connect(T0, B);
        assert!(h
            .op_with_id(
                T0,
                A,
                a,
                1,
                create(
                    "/jobs/j/checkpoint_id_counter",
                    ZnodeData::Counter(4),
                    false,
                    false
                )
            )
            .0
            .is_ok());
        let (latch, _) = h.op_with_id(
            T0,
            A,
            a,
            2,
            create("/leader/latch/latch-", ZnodeData::Empty, true, true),
        );
        let Ok(OpResult::Created { path: latch, .. }) = latch else {
            panic!()
        };
        assert!(h.op(T0, B, b, get(&latch, true)).0.is_ok());
        // Replaying the persisted ops from scratch rebuilds exactly the same content.
        let mut replayed = HaData::default();
        for op in h.persisted.clone() {
            replayed.apply(op);
        }
        assert_eq!(&replayed, h.store.data());
        // Crash at 4 s, restart at 5 s: sessions get one fresh timeout from the restart.
        let restart = Time::from_secs(5);
        h.store = HaStore::new(replayed, restart);
        assert_eq!(h.store.next_expiry(), Some(restart + TIMEOUT));
        // A retry of a write answered before the crash gets the same answer.
        let (r, _) = h.op_with_id(
            restart,
            A,
            a,
            2,
            create("/leader/latch/latch-", ZnodeData::Empty, true, true),
        );
        assert!(matches!(&r, Ok(OpResult::Created { path, .. }) if *path == latch));
        assert_eq!(h.store.data().children("/leader/latch").len(), 1);
        // B stays alive; A does not: A's ephemeral goes and B's surviving watch fires.
        h.send(
            restart + TIMEOUT / 2,
            B,
            HaRequest::Ping {
                session: b,
                request_id: 3,
            },
        );
        let events = h.expire(restart + TIMEOUT + Duration::from_secs(1));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.kind, WatchKind::NodeDeleted);
        let counter = h.store.data().get("/jobs/j/checkpoint_id_counter").unwrap();
        assert_eq!(counter.data, ZnodeData::Counter(4));
        // Session ids and zxids keep increasing across the crash.
        let c = h.connect(restart, A);
        assert!(c > b);
    }
}
