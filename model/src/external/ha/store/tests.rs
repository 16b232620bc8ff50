//! Tests of the `ha` store on its own, request by request through [`HaStore::handle`]: sessions
//! and their expiry, ephemeral and sequential znodes, versioned writes, watches, all-or-nothing
//! multis, retried writes and durability across a crash. The client recipes on top are tested
//! in `client/tests.rs`.

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
        assert!(matches!(r, Ok(OpResult::Children { ref children, .. }) if children.len() == 1));
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
