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
use std::time::Duration;

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
    debug_assert!(is_valid_path(path) && path != "/");
    &path[path.rfind('/').expect("absolute path") + 1..]
}

impl HaData {
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// The children's names of `path`, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        debug_assert!(is_valid_path(path));
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
        let applied = self.apply_op(op);
        // The tree stays consistent: every node but the root has a persistent parent that
        // counts it, ephemeral nodes belong to live sessions, and no node was modified by a
        // transaction after the last one.
        debug_assert!(self.nodes.keys().all(|path| path == "/"
            || self
                .nodes
                .get(parent(path))
                .is_some_and(|p| p.stat.ephemeral_owner.is_none())));
        debug_assert!(self
            .nodes
            .iter()
            .all(|(path, n)| n.stat.num_children as usize == self.children(path).len()));
        debug_assert!(self.nodes.values().all(|n| n
            .stat
            .ephemeral_owner
            .is_none_or(|s| self.sessions.contains_key(&s))));
        debug_assert!(self
            .nodes
            .values()
            .all(|n| n.stat.czxid <= n.stat.mzxid && n.stat.mzxid <= self.zxid));
        // Watches are held by live sessions, and session ids are never reused.
        debug_assert!(self
            .watches
            .values()
            .all(|s| !s.is_empty() && s.iter().all(|s| self.sessions.contains_key(s))));
        debug_assert!(self.sessions.keys().all(|s| s.0 <= self.sessions_created));
        applied
    }

    fn apply_op(&mut self, op: HaDataOp) -> Applied {
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
            HaDataOp::SessionClosed { session } => self.apply_session_closed(session),
            HaDataOp::Write {
                session,
                request_id,
                op,
            } => self.apply_write(session, request_id, op),
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

    /// [`HaDataOp::SessionClosed`]: the session's ephemeral nodes go (their watches fire), and
    /// so do its own watches and its record.
    fn apply_session_closed(&mut self, session: SessionId) -> Applied {
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
        debug_assert!(self
            .nodes
            .values()
            .all(|n| n.stat.ephemeral_owner != Some(session)));
        Applied {
            result: None,
            events: self.fire(changes),
        }
    }

    /// [`HaDataOp::Write`]: one write transaction, its answer remembered for retries.
    fn apply_write(&mut self, session: SessionId, request_id: u64, op: Op) -> Applied {
        assert!(op.is_write());
        assert!(self.sessions.contains_key(&session));
        assert!(!self.sessions[&session].answers.contains_key(&request_id));
        // Answers below the retry window are forgotten: such a request is never applied again.
        assert!(self.sessions[&session]
            .answers_forgotten_max
            .is_none_or(|m| request_id > m));
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

    /// One write transaction (one zxid when it changes anything); on failure nothing changes.
    fn execute_write(&mut self, session: SessionId, op: Op, changes: &mut Vec<Change>) -> HaResult {
        let zxid_before = self.zxid;
        self.zxid += 1;
        let result = match op {
            Op::Multi(ops) => {
                let count = ops.len();
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
                    None => {
                        // Every op of a committed multi was applied and answered.
                        assert_eq!(results.len(), count);
                        Ok(OpResult::Multi(results))
                    }
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
        // On failure nothing changes; a change takes exactly one new zxid.
        assert!(result.is_ok() || changes.is_empty());
        assert_eq!(self.zxid, zxid_before + u64::from(!changes.is_empty()));
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
            } => self.create(session, path, data, ephemeral, sequential, changes),
            Op::SetData {
                path,
                data,
                expected_version,
            } => {
                let node = self.nodes.get_mut(&path).ok_or(HaError::NoNode)?;
                if expected_version.is_some_and(|v| v != node.stat.version) {
                    return Err(HaError::BadVersion);
                }
                // zxids grow: this transaction is newer than the node's last change.
                assert!(zxid > node.stat.mzxid);
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

    /// A create: missing ancestors are made, a sequential name gets the parent's `cversion`.
    fn create(
        &mut self,
        session: SessionId,
        path: String,
        data: ZnodeData,
        ephemeral: bool,
        sequential: bool,
        changes: &mut Vec<Change>,
    ) -> HaResult {
        // The zxid of the transaction `execute_one` is part of.
        let zxid = self.zxid;
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

    fn insert_node(
        &mut self,
        path: String,
        data: ZnodeData,
        ephemeral_owner: Option<SessionId>,
        zxid: u64,
        changes: &mut Vec<Change>,
    ) -> Stat {
        // An ephemeral node belongs to a live session.
        assert!(ephemeral_owner.is_none_or(|s| self.sessions.contains_key(&s)));
        let parent_node = self.nodes.get_mut(parent(&path)).expect("parent exists");
        assert!(parent_node.stat.ephemeral_owner.is_none());
        assert!(parent_node.stat.czxid <= zxid);
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
        assert!(parent_node.stat.num_children > 0);
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
        // A watch entry goes whole once fired: no empty entries stay.
        debug_assert!(self.watches.values().all(|s| !s.is_empty()));
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
                Some(n) => {
                    let children = self.children(path);
                    assert_eq!(children.len(), n.stat.num_children as usize);
                    (
                        Ok(OpResult::Children {
                            children,
                            stat: n.stat,
                        }),
                        watch.then(|| (path.clone(), WatchType::Children)),
                    )
                }
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
        // The durable content survived whole: ephemeral nodes of live sessions only.
        debug_assert!(data.nodes.values().all(|n| n
            .stat
            .ephemeral_owner
            .is_none_or(|s| data.sessions.contains_key(&s))));
        let last_heard = data.sessions.keys().map(|s| (*s, now)).collect();
        HaStore { data, last_heard }
    }

    pub fn data(&self) -> &HaData {
        &self.data
    }

    pub fn is_live(&self, session: SessionId) -> bool {
        let live = self.data.sessions.contains_key(&session);
        // A live session has a deadline, and only a live one.
        debug_assert_eq!(live, self.last_heard.contains_key(&session));
        live
    }

    /// When the next session expires unless heard from.
    pub fn next_expiry(&self) -> Option<Time> {
        // Every live session has a deadline, and only live sessions.
        assert_eq!(self.last_heard.len(), self.data.sessions.len());
        self.last_heard
            .iter()
            .map(|(s, t)| *t + self.data.sessions[s].timeout)
            .min()
    }

    fn change(&mut self, out: &mut HaOutput, op: HaDataOp) -> Option<HaResult> {
        let write = matches!(op, HaDataOp::Write { .. });
        let applied = self.data.apply(op.clone());
        // Exactly a write has an answer.
        assert_eq!(applied.result.is_some(), write);
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
        debug_assert!(self
            .last_heard
            .iter()
            .all(|(s, t)| *t + self.data.sessions[s].timeout > now));
        out
    }

    /// Handles one request from `from` at `now` (expiring overdue sessions first).
    pub fn handle(&mut self, now: Time, from: NodeId, request: HaRequest) -> HaOutput {
        let mut out = self.expire(now);
        match request {
            HaRequest::Connect {
                request_id,
                timeout,
            } => self.connect(now, from, request_id, timeout, &mut out),
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
                    assert!(!self.is_live(session));
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

    /// A `Connect`: a new session owned by `from`, unless the store is full.
    fn connect(
        &mut self,
        now: Time,
        from: NodeId,
        request_id: u64,
        timeout: Duration,
        out: &mut HaOutput,
    ) {
        assert!(!timeout.is_zero());
        if self.data.sessions.len() >= SESSIONS_MAX {
            return; // Dropped, as a server refusing connections.
        }
        let session = SessionId(self.data.sessions_created + 1);
        self.change(
            out,
            HaDataOp::SessionOpened {
                session,
                owner: from,
                timeout,
            },
        );
        self.last_heard.insert(session, now);
        assert!(self.is_live(session));
        out.send.push((
            from,
            HaReply::Connected {
                request_id,
                session,
                timeout,
            },
        ));
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
        let result = self
            .change(
                out,
                HaDataOp::Write {
                    session,
                    request_id,
                    op,
                },
            )
            .expect("a write has an answer");
        // Remembered in the same change, so a retry gets the same answer.
        debug_assert_eq!(
            self.data.sessions[&session].answers.get(&request_id),
            Some(&result)
        );
        result
    }
}

#[cfg(test)]
mod tests;
