//! The vocabulary of ZooKeeper high availability, shared by the `ha` node, its clients and the
//! oracles: session and leader-session ids, znodes and their data, the requests and replies on
//! the wire, watches, and the store's durable content with the changes ([`HaDataOp`]) that
//! build it.
//!
//! It owns data types only. Applying requests is the store's
//! ([`crate::external::ha::store`]); the recipes built on them are the client's
//! ([`crate::external::ha::client`]).

use serde::Serialize;
use sim::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How many write answers a session's retry window holds (older ones are forgotten).
pub const ANSWERS_PER_SESSION: usize = 64;
/// How many sessions the store holds at once; a `Connect` beyond it is dropped unanswered
/// (ZooKeeper's `maxClientCnxns`).
pub const SESSIONS_MAX: usize = 1024;
/// How many znodes the tree holds at once; a create beyond it fails with `BadArguments`.
pub const ZNODES_MAX: usize = 100_000;

/// A ZooKeeper session id, from a durable monotonic counter (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct SessionId(pub u64);

/// A leader session id (Flink's leader session UUID, the fencing token of a grant).
///
/// The latch recipe takes the zxid that created its latch node: it is unique across every grant
/// of every contender and survives store crashes, which is all Flink needs of the random UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct LeaderSessionId(pub u64);

/// What `/leader/<component>/connection_info` holds (Flink's `LeaderInformation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct LeaderInformation {
    pub address: NodeId,
    pub leader_session_id: LeaderSessionId,
}

/// The content of a znode: typed rather than serialized bytes, to keep traces readable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub enum ZnodeData {
    #[default]
    Empty,
    Bytes(Vec<u8>),
    LeaderInformation(LeaderInformation),
    /// A shared counter (`checkpoint_id_counter`).
    Counter(u64),
    /// An `ExecutionPlanStore` entry: the submitted job.
    ExecutionPlan(std::sync::Arc<crate::protocol::job_graph::JobSpec>),
    /// A `CompletedCheckpointStore` entry: the pointer to a completed checkpoint's state.
    CompletedCheckpoint(std::sync::Arc<crate::protocol::checkpoint::CompletedCheckpoint>),
    /// A `JobResultStore` entry: the globally terminal status, dirty until cleanup finished.
    JobResult {
        status: crate::protocol::states::JobStatus,
        clean: bool,
    },
}

/// A znode's metadata, as ZooKeeper's `Stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Stat {
    /// The zxid of the transaction that created the node.
    pub czxid: u64,
    /// The zxid of the transaction that last changed the node's data.
    pub mzxid: u64,
    /// Data version: bumped by every `SetData`.
    pub version: u64,
    /// Children version: bumped by every create or delete of a child. Sequential children are
    /// numbered with it, as in ZooKeeper.
    pub cversion: u64,
    pub ephemeral_owner: Option<SessionId>,
    pub num_children: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Znode {
    pub data: ZnodeData,
    pub stat: Stat,
}

/// One operation on the tree. Reads may carry a watch; `Multi` holds only writes and checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// With `sequential`, the created name is `path` followed by the parent's `cversion` in ten
    /// digits (`/leader/latch/latch-` → `/leader/latch/latch-0000000007`).
    Create {
        path: String,
        data: ZnodeData,
        ephemeral: bool,
        sequential: bool,
    },
    /// Compare-and-set when `expected_version` is given.
    SetData {
        path: String,
        data: ZnodeData,
        expected_version: Option<u64>,
    },
    Delete {
        path: String,
        expected_version: Option<u64>,
    },
    /// Fails unless the node exists (at `expected_version`); only useful inside `Multi`.
    Check {
        path: String,
        expected_version: Option<u64>,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    /// With `watch`, a watch is left even when the node does not exist (it fires on creation).
    Exists {
        path: String,
        watch: bool,
    },
    /// All or nothing, one transaction (Flink's `addAndLock`).
    Multi(Vec<Op>),
}

impl Op {
    /// Whether the op changes the tree (and so is applied through the durable log and remembered
    /// for retries).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Op::GetData { .. } | Op::GetChildren { .. } | Op::Exists { .. }
        )
    }
}

/// The answer to one successful [`Op`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OpResult {
    /// The created path (the sequential name when asked) and its stat.
    Created {
        path: String,
        stat: Stat,
    },
    Set(Stat),
    Deleted,
    Checked,
    Data {
        data: ZnodeData,
        stat: Stat,
    },
    /// The children's names (last path component), sorted.
    Children {
        children: Vec<String>,
        stat: Stat,
    },
    Exists(Option<Stat>),
    Multi(Vec<OpResult>),
    /// The answer to `Close`.
    Closed,
}

/// ZooKeeper's error codes that the model needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HaError {
    NodeExists,
    NoNode,
    BadVersion,
    SessionExpired,
    NotEmpty,
    NoChildrenForEphemerals,
    BadArguments,
    /// A retry whose answer has left the session's retry window: the store cannot tell whether
    /// it was applied.
    RequestTooOld,
    /// `Multi` failed at op `index` with `cause`; nothing of it was applied.
    MultiFailed {
        index: usize,
        cause: Box<HaError>,
    },
}

pub type HaResult = Result<OpResult, HaError>;

/// What a client sends to the `ha` node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HaRequest {
    /// Open a session; the owner of the session is the sender.
    Connect { request_id: u64, timeout: Duration },
    /// Keep the session alive.
    Ping { session: SessionId, request_id: u64 },
    /// End the session now: its ephemeral nodes go, its watches fire.
    Close { session: SessionId, request_id: u64 },
    Op {
        session: SessionId,
        request_id: u64,
        op: Op,
    },
}

impl HaRequest {
    pub fn name(&self) -> &'static str {
        match self {
            HaRequest::Connect { .. } => "zk-connect",
            HaRequest::Ping { .. } => "zk-ping",
            HaRequest::Close { .. } => "zk-close",
            HaRequest::Op { op, .. } => match op {
                Op::Create { .. } => "zk-create",
                Op::SetData { .. } => "zk-set-data",
                Op::Delete { .. } => "zk-delete",
                Op::Check { .. } => "zk-check",
                Op::GetData { .. } => "zk-get-data",
                Op::GetChildren { .. } => "zk-get-children",
                Op::Exists { .. } => "zk-exists",
                Op::Multi(_) => "zk-multi",
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum WatchKind {
    NodeCreated,
    NodeDeleted,
    DataChanged,
    ChildrenChanged,
}

/// A fired one-shot watch. `seq` numbers the events of a session from 1, so that a client can
/// see that it missed one (the network may lose it; ZooKeeper's TCP connection would not).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct WatchEvent {
    pub session: SessionId,
    pub seq: u64,
    pub path: String,
    pub kind: WatchKind,
}

/// What the `ha` node sends to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HaReply {
    Connected {
        request_id: u64,
        session: SessionId,
        timeout: Duration,
    },
    /// The answer to a ping; `events_fired` is the session's latest watch event `seq`.
    Pong {
        session: SessionId,
        request_id: u64,
        events_fired: u64,
        result: Result<(), HaError>,
    },
    Response {
        session: SessionId,
        request_id: u64,
        result: HaResult,
    },
    Watch(WatchEvent),
}

impl HaReply {
    pub fn name(&self) -> &'static str {
        match self {
            HaReply::Connected { .. } => "zk-connected",
            HaReply::Pong { .. } => "zk-pong",
            HaReply::Response { .. } => "zk-response",
            HaReply::Watch(_) => "zk-watch-event",
        }
    }
}

/// Which watch table a registration goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum WatchType {
    /// `GetData` and `Exists` watches: fire on create, delete and data change of the node.
    Data,
    /// `GetChildren` watches: fire on delete of the node and on create/delete of a child.
    Children,
}

/// A session as the store keeps it durably.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SessionRecord {
    /// Where watch events go (the node that connected).
    pub owner: NodeId,
    pub timeout: Duration,
    /// The answers to the session's last write requests, by request id.
    pub answers: BTreeMap<u64, HaResult>,
    /// The largest request id whose answer has been forgotten.
    pub answers_forgotten_max: Option<u64>,
    /// The `seq` of the session's latest watch event.
    pub events_fired: u64,
}

/// The store's durable content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct HaData {
    /// The id of the latest write transaction.
    pub zxid: u64,
    pub sessions_created: u64,
    pub nodes: BTreeMap<String, Znode>,
    pub sessions: BTreeMap<SessionId, SessionRecord>,
    pub watches: BTreeMap<(String, WatchType), BTreeSet<SessionId>>,
}

impl Default for HaData {
    fn default() -> HaData {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Znode {
                data: ZnodeData::Empty,
                stat: Stat::default(),
            },
        );
        HaData {
            zxid: 0,
            sessions_created: 0,
            nodes,
            sessions: BTreeMap::new(),
            watches: BTreeMap::new(),
        }
    }
}

/// A change to the store's durable content. Applying the same ops to the same data gives the
/// same data and the same watch events, so replaying them after a crash rebuilds the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HaDataOp {
    SessionOpened {
        session: SessionId,
        owner: NodeId,
        timeout: Duration,
    },
    /// Closed or expired: the session's ephemeral nodes are deleted and its watches dropped.
    SessionClosed { session: SessionId },
    /// A write request of `session`, applied (or failed) and its answer remembered.
    Write {
        session: SessionId,
        request_id: u64,
        op: Op,
    },
    WatchAdded {
        session: SessionId,
        path: String,
        watch_type: WatchType,
    },
}
