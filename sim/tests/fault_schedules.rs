//! Random fault schedules on a small ping cluster: a run is reproducible from its seed and
//! schedule, every link stays FIFO, and handlers only ever run on processes that are up.

mod common;

use common::*;
use proptest::prelude::*;
use sim::{Fault, Latency, NetConfig, NodeId, Time, World};
use std::collections::BTreeMap;

const NODES: u32 = 4;

#[derive(Clone, Debug)]
enum F {
    Kill(u32),
    Start(u32),
    Pause(u32),
    Resume(u32),
    /// `mask` bit i set: node i in group 1, else group 0.
    Partition {
        mask: u8,
        one_way: bool,
        heal_ms: u64,
    },
}

fn fault() -> impl Strategy<Value = F> {
    prop_oneof![
        (0..NODES).prop_map(F::Kill),
        (0..NODES).prop_map(F::Start),
        (0..NODES).prop_map(F::Pause),
        (0..NODES).prop_map(F::Resume),
        (any::<u8>(), any::<bool>(), 1..1500u64).prop_map(|(mask, one_way, heal_ms)| {
            F::Partition {
                mask,
                one_way,
                heal_ms,
            }
        }),
    ]
}

fn schedule() -> impl Strategy<Value = Vec<(u64, F)>> {
    prop::collection::vec((0..3000u64, fault()), 0..25)
}

fn to_fault(f: &F) -> Fault {
    match *f {
        F::Kill(n) => Fault::Kill(NodeId(n)),
        F::Start(n) => Fault::Start(NodeId(n)),
        F::Pause(n) => Fault::Pause(NodeId(n)),
        F::Resume(n) => Fault::Resume(NodeId(n)),
        F::Partition {
            mask,
            one_way,
            heal_ms,
        } => {
            let (g1, g0): (Vec<_>, Vec<_>) =
                (0..NODES).map(NodeId).partition(|n| mask & (1 << n.0) != 0);
            Fault::Partition {
                groups: vec![g0, g1],
                one_way,
                heal_after: Some(ms(heal_ms)),
            }
        }
    }
}

fn build(seed: u64, faults: &[(u64, F)]) -> World<Probe> {
    let net = NetConfig {
        latency: Latency::Uniform(ms(1), ms(20)),
        ..NetConfig::default()
    };
    let mut w = ping_cluster(seed, net, NODES, ms(30));
    for (at, f) in faults {
        w.schedule(at_ms(*at), to_fault(f));
    }
    w
}

/// Per directed link, deliveries must come in the order their sender sent them: by send time,
/// then sender incarnation, then that incarnation's send counter.
fn fifo_violations(log: &Log) -> Vec<String> {
    let mut last: BTreeMap<(NodeId, NodeId), (Time, u64, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for (t, from, to, sent, msg) in log.delivers() {
        let key = (sent, msg.boot, msg.n);
        if let Some(prev) = last.insert((from, to), key) {
            if prev >= key {
                out.push(format!(
                    "{from:?}->{to:?} at {t:?}: {key:?} delivered after {prev:?}"
                ));
            }
        }
        if t < sent {
            out.push(format!(
                "{from:?}->{to:?} delivered at {t:?} before sent {sent:?}"
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_fault_schedules_are_reproducible_and_keep_links_fifo(
        seed in any::<u64>(),
        faults in schedule(),
    ) {
        let until = Time::from_secs(4);
        let (a, log_a) = run_until(&mut build(seed, &faults), until);
        let (b, log_b) = run_until(&mut build(seed, &faults), until);
        prop_assert_eq!(a, b);
        prop_assert!(log_a.recs == log_b.recs, "event lists differ");
        prop_assert!(log_a.violations.is_empty(), "{:?}", log_a.violations);
        let fifo = fifo_violations(&log_a);
        prop_assert!(fifo.is_empty(), "{:?}", fifo);
        prop_assert!(log_a.delivers().count() > 0);
    }
}
