//! A source task's reader of its partitions of the `source` log (like a Kafka consumer): the
//! fetch plan that keeps a configured rate, periodic fetches with a re-fetch after the ask
//! timeout or an unreachable log, the records handed to the stream, the restored read position,
//! and the end of every partition.
//!
//! It does not own what the records become (`stream_task`) nor the log itself
//! (`external::source_log`).

use super::Task;
use crate::protocol::rpc::{Msg, SourceLogRpc};
use crate::protocol::states::ExecutionState;
use crate::protocol::Flink;
use sim::{Ctx, NodeId};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a source fetches from the log: each fetch asks for one interval's worth of its rate.
/// A rate below one record per interval fetches one record every `1 s / rate` instead, so a
/// slow source costs events in proportion to its records, not to the interval.
pub const SOURCE_FETCH_INTERVAL: Duration = Duration::from_millis(100);

/// The fetch size and interval that keep `rate_per_sec` per partition (unthrottled: the log's
/// maximum every [`SOURCE_FETCH_INTERVAL`]).
pub fn source_fetch_plan(rate_per_sec: Option<u64>) -> (u64, Duration) {
    let plan = match rate_per_sec {
        Some(rate) => {
            let nanos = u128::from(rate) * SOURCE_FETCH_INTERVAL.as_nanos();
            let per_fetch = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
            if per_fetch >= 1 {
                let exact = nanos.is_multiple_of(1_000_000_000);
                (per_fetch + u64::from(!exact), SOURCE_FETCH_INTERVAL)
            } else {
                (1, Duration::from_nanos(1_000_000_000 / rate.max(1)))
            }
        }
        None => (
            crate::external::source_log::FETCH_RECORDS_MAX,
            SOURCE_FETCH_INTERVAL,
        ),
    };
    // Every fetch asks for something, and fetches are spaced.
    assert!(plan.0 >= 1 && !plan.1.is_zero());
    plan
}

/// A source subtask's reader of its partitions of the `source` log.
#[derive(Debug)]
pub(super) struct SourceReader {
    log: NodeId,
    per_fetch: u64,
    /// How long between fetches ([`source_fetch_plan`]).
    interval: Duration,
    partitions: BTreeMap<u32, PartitionProgress>,
}

#[derive(Debug)]
struct PartitionProgress {
    next_offset: u64,
    /// Learnt from the log's first answer.
    end_offset: Option<u64>,
    /// When the fetch in flight was sent (local monotonic ns).
    fetch_sent_ns: Option<u64>,
}

impl PartitionProgress {
    /// Read to its end.
    fn done(&self) -> bool {
        self.end_offset.is_some_and(|end| self.next_offset >= end)
    }
}

/// Asks `log` for up to `max_records` records of `partition` from `p`'s read position.
fn send_fetch(
    ctx: &mut Ctx<'_, Flink>,
    log: NodeId,
    max_records: u64,
    reader: crate::protocol::ids::ExecutionAttemptId,
    partition: u32,
    p: &PartitionProgress,
) {
    ctx.send(
        log,
        Msg::SourceLog(SourceLogRpc::Fetch {
            reader,
            partition,
            offset: p.next_offset,
            max_records,
        }),
    );
}

impl Task {
    /// RUNNING source: starts reading its partitions from the `source` log. Returns true when
    /// there is nothing to read (no partitions, or empty ones are only known after a fetch).
    pub fn start_reading(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) -> bool {
        assert_eq!(self.state, ExecutionState::Running);
        // RUNNING is entered once: the reader starts once.
        assert!(self.reader.is_none());
        let source = self.source.as_ref().expect("a source task");
        let (per_fetch, interval) = source_fetch_plan(source.rate_per_sec);
        let restored = self.stream.restored_offsets();
        let start = |p: u32| {
            restored
                .and_then(|r| r.iter().find(|(q, _)| *q == p))
                .map_or(0, |(_, o)| *o)
        };
        let ended = self.stream.end_of_input();
        self.reader = Some(SourceReader {
            log: source.log,
            per_fetch,
            interval,
            partitions: source
                .partitions
                .iter()
                .map(|p| {
                    (
                        *p,
                        PartitionProgress {
                            next_offset: start(*p),
                            end_offset: ended.then_some(start(*p)),
                            fetch_sent_ns: None,
                        },
                    )
                })
                .collect(),
        });
        if self.reading_done() {
            return true;
        }
        self.fetch_tick(ctx, ask_timeout);
        false
    }

    /// The source's periodic fetch: one fetch per unfinished partition that has none in flight
    /// (or whose fetch went unanswered for the ask timeout), then the next tick.
    pub fn fetch_tick(&mut self, ctx: &mut Ctx<'_, Flink>, ask_timeout: Duration) {
        assert_eq!(self.state, ExecutionState::Running);
        let attempt = self.attempt;
        let now = ctx.mono_ns();
        let timeout = u64::try_from(ask_timeout.as_nanos()).unwrap_or(u64::MAX);
        let backpressured = self.stream.backpressured();
        let reader = self.reader.as_mut().expect("a reading source");
        let interval = reader.interval;
        for (partition, p) in reader.partitions.iter_mut() {
            if backpressured {
                break;
            }
            if p.done() {
                continue;
            }
            let due = p
                .fetch_sent_ns
                .is_none_or(|sent| now.saturating_sub(sent) >= timeout);
            if !due {
                continue;
            }
            p.fetch_sent_ns = Some(now);
            send_fetch(ctx, reader.log, reader.per_fetch, attempt, *partition, p);
        }
        self.arm_step(ctx, interval);
    }

    /// With the planted bug `reader-outlives-task`: the reader of a cancelled or failed source
    /// was never closed. It fetches every unfinished partition from its last position each
    /// interval (answers reach no task and are dropped) for as long as the TaskExecutor retains
    /// the terminal task. `send_now` false only arms the next round.
    pub fn zombie_fetch(&mut self, ctx: &mut Ctx<'_, Flink>, send_now: bool) {
        assert!(self.state.is_terminal());
        let attempt = self.attempt;
        let Some(reader) = self.reader.as_ref() else {
            return;
        };
        if send_now {
            for (partition, p) in reader.partitions.iter().filter(|(_, p)| !p.done()) {
                send_fetch(ctx, reader.log, reader.per_fetch, attempt, *partition, p);
            }
        }
        let interval = reader.interval;
        self.set_step(ctx, interval);
    }

    /// The log answered a fetch: the records are emitted. Stale answers (an offset already
    /// read) change nothing. Returns true when every partition has been read to its end.
    pub fn on_source_records(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        partition: u32,
        offset: u64,
        count: u64,
        end: u64,
    ) -> bool {
        let Some(reader) = self.reader.as_mut() else {
            return false;
        };
        let Some(p) = reader.partitions.get_mut(&partition) else {
            return false;
        };
        // Fetches ask from the read position, which only grows; answers are bounded.
        assert!(offset <= p.next_offset);
        assert!(count <= crate::external::source_log::FETCH_RECORDS_MAX);
        if offset == p.next_offset {
            p.next_offset += count;
            p.end_offset = Some(end);
            p.fetch_sent_ns = None;
            assert!(p.next_offset <= end);
            self.stream
                .emit_source_records(ctx, partition, offset, count);
        }
        self.reading_done()
    }

    /// A fetch found the log down: retry on the next tick (the reader keeps retrying, as a
    /// Kafka consumer does, instead of failing the task).
    pub fn on_fetch_unreachable(&mut self, partition: u32) {
        if let Some(p) = self
            .reader
            .as_mut()
            .and_then(|r| r.partitions.get_mut(&partition))
        {
            p.fetch_sent_ns = None;
        }
    }

    fn reading_done(&self) -> bool {
        self.reader
            .as_ref()
            .is_some_and(|r| r.partitions.values().all(PartitionProgress::done))
    }

    /// Records read so far, per partition (for tests and reports).
    pub fn source_offsets(&self) -> Vec<(u32, u64)> {
        self.reader.as_ref().map_or_else(Vec::new, |r| {
            r.partitions
                .iter()
                .map(|(p, s)| (*p, s.next_offset))
                .collect()
        })
    }
}
