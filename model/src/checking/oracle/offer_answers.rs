//! An offer's answer decides only that offer's slots (always): when a TaskExecutor handles the
//! answer to one of its `offerSlots` calls, the slots it activates (accepted) or frees
//! (rejected) in that handler are slots that very offer contained. An older answer arriving
//! after a newer offer cannot have judged the slots offered since; a TaskExecutor that lets it
//! decide them frees slots the JobMaster accepts in the newer answer (FLINK-21859, fixed with an
//! offer id per job: only the latest offer's answer is used; docs/flink-runtime.md §2).
//!
//! Ground truth: the `offerSlots` messages as the JobMaster receives them (their offer id and
//! slots), and the TaskExecutor's `SlotActivated` / `SlotFreed` observations in the handler of an
//! `offerSlots` answer (a handler's observations follow its delivery, `ends_handler`).
//!
//! It does not judge whether the JobMaster should accept a slot, nor what happens to a slot the
//! JobMaster holds that its TaskExecutor freed for another reason (`held-slot-takes-tasks`,
//! `slot-views-agree`).

use super::{ends_handler, process_died, Invariant, Kind, Oracle, Setup, Violation};
use crate::protocol::ids::{AllocationId, JobId};
use crate::protocol::obs::Obs;
use crate::protocol::rpc::{JobMasterRpc, Msg, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Census, Event, EventKind, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};

pub const INVARIANT: Invariant = Invariant {
    name: "offer-answer-decides-its-offer",
    kind: Kind::Always,
    description: "the answer to an offerSlots call activates or frees only slots that offer contained: an older answer never decides the slots a later offer added (FLINK-21859)",
};

/// The answer whose handler runs: (TaskExecutor, job, offer id).
type Handling = (NodeId, JobId, u64);

pub struct OfferAnswers {
    /// (TaskExecutor, job, offer id) -> the slots that offer contained.
    offers: BTreeMap<Handling, BTreeSet<AllocationId>>,
    handling: Option<Handling>,
}

impl OfferAnswers {
    pub fn new(_setup: &Setup) -> OfferAnswers {
        OfferAnswers {
            offers: BTreeMap::new(),
            handling: None,
        }
    }

    fn judge(
        &self,
        census: &Census,
        node: NodeId,
        at: Time,
        allocation_id: AllocationId,
        what: &str,
        out: &mut Vec<Violation>,
    ) {
        let Some(handling) = self.handling.filter(|h| h.0 == node) else {
            return;
        };
        // An offer whose delivery the trace did not show (lost on the way, or sent to a
        // JobMaster that died) has unknown contents; its answer cannot exist.
        let Some(offered) = self.offers.get(&handling) else {
            return;
        };
        if offered.contains(&allocation_id) {
            return;
        }
        let (_, job_id, offer_id) = handling;
        let latest = self
            .offers
            .range((node, job_id, offer_id)..=(node, job_id, u64::MAX))
            .next_back()
            .map(|((_, _, id), _)| *id)
            .unwrap_or(offer_id);
        out.push(Violation {
            invariant: INVARIANT.name,
            at,
            node: Some(node),
            message: format!(
                "{} {what} slot {allocation_id:x} of job {job_id:x} on the answer to its offer {offer_id}, which did not offer that slot (its latest offer is {latest}): only an offer's own answer may decide its slots",
                census.name(node),
            ),
        });
    }
}

impl Oracle for OfferAnswers {
    fn invariant(&self) -> &'static Invariant {
        &INVARIANT
    }

    fn observe(&mut self, census: &Census, ev: &Event<'_, Flink>, out: &mut Vec<Violation>) {
        if ends_handler(ev) {
            self.handling = None;
        }
        if let Some(n) = process_died(ev) {
            self.offers.retain(|(te, _, _), _| *te != n);
            return;
        }
        match &ev.kind {
            EventKind::Deliver {
                from,
                msg:
                    Msg::JobMaster {
                        job_id,
                        rpc:
                            JobMasterRpc::OfferSlots {
                                offers, offer_id, ..
                            },
                    },
                ..
            } => {
                self.offers.insert(
                    (*from, *job_id, *offer_id),
                    offers.iter().map(|o| o.allocation_id).collect(),
                );
            }
            EventKind::Deliver {
                to,
                msg:
                    Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                        job_id, offer_id, ..
                    }),
                ..
            } => self.handling = Some((*to, *job_id, *offer_id)),
            EventKind::Obs { node, obs } => match obs {
                Obs::SlotActivated { allocation_id } => {
                    self.judge(census, *node, ev.time, *allocation_id, "activated", out)
                }
                Obs::SlotFreed { allocation_id, .. } => {
                    self.judge(census, *node, ev.time, *allocation_id, "freed", out)
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish(&mut self, _: &Census, _: Time, _: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checking::oracle::testing::{feed, setup, world, Step, JM, TM1};
    use crate::protocol::config::FlinkConfig;
    use crate::protocol::rpc::SlotOffer;

    fn offer(offer_id: u64, slots: &[AllocationId]) -> Step {
        Step::Deliver(
            TM1,
            JM,
            Msg::JobMaster {
                job_id: 5,
                rpc: JobMasterRpc::OfferSlots {
                    job_master_id: 9,
                    offers: slots
                        .iter()
                        .enumerate()
                        .map(|(i, a)| SlotOffer {
                            allocation_id: *a,
                            slot_index: i as u32,
                        })
                        .collect(),
                    offer_id,
                },
            },
        )
    }

    fn answer(offer_id: u64, accepted: &[AllocationId]) -> Step {
        Step::Deliver(
            JM,
            TM1,
            Msg::TaskExecutor(TaskExecutorRpc::OfferSlotsResponse {
                job_id: 5,
                job_master_id: 9,
                offer_id,
                accepted: accepted.to_vec(),
            }),
        )
    }

    fn freed(allocation_id: AllocationId) -> Step {
        Step::Obs(
            TM1,
            Obs::SlotFreed {
                slot_index: 1,
                allocation_id,
            },
        )
    }

    fn run(steps: Vec<(u64, Step)>) -> Vec<Violation> {
        let w = world([true; 3]);
        let mut o = OfferAnswers::new(&setup(FlinkConfig::default()));
        feed(&mut o, w.census(), &steps, Some(1000))
    }

    #[test]
    fn an_answer_freeing_the_slots_of_its_own_offer_holds() {
        let v = run(vec![
            (1, offer(1, &[100, 200])),
            (2, answer(1, &[100])),
            (2, freed(200)),
            (3, Step::Obs(TM1, Obs::SlotActivated { allocation_id: 100 })),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn an_older_answer_freeing_a_slot_a_newer_offer_added_is_a_violation() {
        let v = run(vec![
            (1, offer(1, &[100])),
            (2, offer(2, &[100, 200])),
            (3, answer(1, &[100])),
            (3, freed(200)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, INVARIANT.name);
        assert!(
            v[0].message.contains("on the answer to its offer 1")
                && v[0].message.contains("its latest offer is 2"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_slot_freed_outside_an_answer_handler_is_not_judged() {
        // The free at 4 ms belongs to a later handler (a timer, say), not to the answer.
        let v = run(vec![
            (1, offer(1, &[100])),
            (2, answer(1, &[100])),
            (
                4,
                Step::Timer(
                    TM1,
                    crate::protocol::timer::Timer::TaskExecutor(
                        crate::protocol::timer::TaskExecutorTimer::OfferSlotsTimeout {
                            job_id: 5,
                            offer_id: 1,
                        },
                    ),
                ),
            ),
            (4, freed(300)),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }
}
