//! The `source` node: a partitioned, replayable log (Kafka-like) holding the job's input.
//!
//! Record `offset` of `partition` is a pure function of the two (`records::record_at` defines
//! it), so the log stores only each partition's length and answers a fetch with how many records
//! follow an offset. It is a node so that it can be slow, partitioned or down; its content is
//! fixed for the run, so a restart loses nothing.

use crate::process::ClusterSetup;

use crate::protocol::rpc::{Msg, SourceLogRpc, TaskExecutorRpc};
use crate::protocol::Flink;
use sim::{Ctx, NodeId};

/// The most records one fetch returns (Kafka's `max.poll.records`-like bound).
pub const FETCH_RECORDS_MAX: u64 = 10_000;

#[derive(Debug)]
pub struct SourceLog {
    partitions: u32,
    records_per_partition: u64,
}

impl SourceLog {
    pub fn new(setup: &ClusterSetup) -> SourceLog {
        let (partitions, records_per_partition) = setup.submission.as_ref().map_or((0, 0), |s| {
            (s.spec.total_partitions(), s.spec.source.records)
        });
        SourceLog {
            partitions,
            records_per_partition,
        }
    }

    pub fn on_rpc(&mut self, ctx: &mut Ctx<'_, Flink>, from: NodeId, rpc: SourceLogRpc) {
        match rpc {
            SourceLogRpc::Fetch {
                reader,
                partition,
                offset,
                max_records,
            } => {
                assert!(
                    partition < self.partitions,
                    "fetch of unknown partition {partition}"
                );
                let end_offset = self.records_per_partition;
                // A reader asks for something, from a position it reached within the log.
                assert!(max_records > 0);
                assert!(
                    offset <= end_offset,
                    "fetch beyond the end of partition {partition}"
                );
                let available = end_offset.saturating_sub(offset);
                let count = available.min(max_records).min(FETCH_RECORDS_MAX);
                assert!(offset + count <= end_offset);
                ctx.send(
                    from,
                    Msg::TaskExecutor(TaskExecutorRpc::SourceRecords {
                        reader,
                        partition,
                        offset,
                        count,
                        end_offset,
                    }),
                );
            }
        }
    }
}
