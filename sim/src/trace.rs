//! The trace: every event of a run, folded into a rolling hash with a fixed definition, offered
//! to observers, and (on request) written as JSON lines.
//!
//! The hash covers each event's index, true time, kind, nodes and payload (messages, timer tags,
//! observations, faults) through [`crate::hash::StableHasher`]. Two runs have the
//! same hash exactly when they traced the same events in the same order.

use crate::actor::{NodeId, Vocabulary};
use crate::fault::Fault;
use crate::hash::StableHasher;
use crate::time::Time;
use std::hash::{Hash, Hasher};
use std::io::Write;

/// Why a message did not arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Sent into a partition.
    Partitioned,
    /// Random loss.
    Lost,
    /// In flight when a partition broke its connection.
    LinkBroken,
    /// Its sender died before the connection-refused answer came back.
    SenderGone,
    /// Its sender died while it was in flight (the sender's connections died with it).
    SenderDied,
    /// The receiver was paused with too many events already waiting.
    ParkedOverflow,
    /// The event queue was full.
    QueueFull,
    /// An aimed message fault ([`Fault::Messages`](crate::Fault::Messages)) dropped it.
    Rule,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Partitioned => "partitioned",
            DropReason::Lost => "lost",
            DropReason::LinkBroken => "link-broken",
            DropReason::SenderGone => "sender-gone",
            DropReason::SenderDied => "sender-died",
            DropReason::ParkedOverflow => "parked-overflow",
            DropReason::QueueFull => "queue-full",
            DropReason::Rule => "fault-rule",
        }
    }
}

/// One traced event, as observers see it.
pub struct Event<'a, V: Vocabulary> {
    /// Position in the trace, from 0.
    pub index: u64,
    /// True time.
    pub time: Time,
    pub kind: EventKind<'a, V>,
}

pub enum EventKind<'a, V: Vocabulary> {
    /// `msg` reaches `to`'s handler.
    Deliver {
        from: NodeId,
        to: NodeId,
        sent: Time,
        msg: &'a V::Msg,
    },
    /// `from` learns that `to` refused or reset the connection for `msg` (process down).
    Unreachable {
        from: NodeId,
        to: NodeId,
        msg: &'a V::Msg,
    },
    /// `msg` from `from` to `to` vanished.
    Drop {
        from: NodeId,
        to: NodeId,
        msg: &'a V::Msg,
        reason: DropReason,
    },
    Timer {
        node: NodeId,
        tag: &'a V::Timer,
    },
    /// A node reported an observation.
    Obs {
        node: NodeId,
        obs: &'a V::Obs,
    },
    /// A node changed its durable state.
    Persist {
        node: NodeId,
        op: &'a V::Op,
    },
    /// A fault was applied. `effective` is false when it changed nothing (e.g. start of a
    /// running node).
    Fault {
        fault: &'a Fault,
        effective: bool,
    },
    /// A node's process started; its `on_start` runs next.
    Started {
        node: NodeId,
    },
    /// A node's process terminated itself.
    Exited {
        node: NodeId,
    },
}

impl<V: Vocabulary> EventKind<'_, V> {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Deliver { .. } => "deliver",
            EventKind::Unreachable { .. } => "unreachable",
            EventKind::Drop { .. } => "drop",
            EventKind::Timer { .. } => "timer",
            EventKind::Obs { .. } => "obs",
            EventKind::Persist { .. } => "persist",
            EventKind::Fault { .. } => "fault",
            EventKind::Started { .. } => "started",
            EventKind::Exited { .. } => "exited",
        }
    }
}

impl<V: Vocabulary> Event<'_, V> {
    fn hash_into(&self, h: &mut StableHasher) {
        h.write_u64(self.index);
        h.write_u64(self.time.as_nanos());
        match &self.kind {
            EventKind::Deliver {
                from,
                to,
                sent,
                msg,
            } => {
                h.write_u8(1);
                from.hash(h);
                to.hash(h);
                h.write_u64(sent.as_nanos());
                msg.hash(h);
            }
            EventKind::Unreachable { from, to, msg } => {
                h.write_u8(2);
                from.hash(h);
                to.hash(h);
                msg.hash(h);
            }
            EventKind::Drop {
                from,
                to,
                msg,
                reason,
            } => {
                h.write_u8(3);
                from.hash(h);
                to.hash(h);
                msg.hash(h);
                reason.hash(h);
            }
            EventKind::Timer { node, tag } => {
                h.write_u8(4);
                node.hash(h);
                tag.hash(h);
            }
            EventKind::Obs { node, obs } => {
                h.write_u8(5);
                node.hash(h);
                obs.hash(h);
            }
            EventKind::Persist { node, op } => {
                h.write_u8(6);
                node.hash(h);
                op.hash(h);
            }
            EventKind::Fault { fault, effective } => {
                h.write_u8(7);
                fault.hash(h);
                effective.hash(h);
            }
            EventKind::Started { node } => {
                h.write_u8(8);
                node.hash(h);
            }
            EventKind::Exited { node } => {
                h.write_u8(9);
                node.hash(h);
            }
        }
    }
}

/// What a run keeps of its trace besides the rolling hash, for comparing two runs without
/// writing either out: the hash after every event, or one event's JSON line.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Tap {
    #[default]
    None,
    /// The rolling hash after each event (8 bytes per event).
    Hashes(Vec<u64>),
    /// The JSON line of the event at `index`, once it happened.
    Line { index: u64, line: Option<String> },
    /// Compares the rolling hash after each event with `expected` (another run's `Hashes`) as
    /// the run goes, keeping only the index of the first event that differs or goes beyond
    /// `expected`; a run that ends short of `expected` differs at its end (see
    /// [`Tap::verified`]). One hash vector in memory instead of two.
    Verify {
        expected: Vec<u64>,
        first_difference: Option<u64>,
    },
}

impl Tap {
    /// A `Verify` tap's check of the rolling `hash` after event `index`.
    fn verify_step(&mut self, index: u64, hash: u64) {
        if let Tap::Verify {
            expected,
            first_difference,
        } = self
        {
            if first_difference.is_none() && expected.get(index as usize) != Some(&hash) {
                *first_difference = Some(index);
            }
        }
    }

    /// For a `Verify` tap after a run of `events` events: the first index where the run
    /// differs from `expected`, counting a run that ended early; `None` for other taps.
    pub fn verified(&self, events: u64) -> Option<u64> {
        match self {
            Tap::Verify {
                expected,
                first_difference,
            } => first_difference.or(((expected.len() as u64) > events).then_some(events)),
            _ => None,
        }
    }
}

/// The rolling hash and the optional JSON-lines writer.
pub struct Trace {
    hasher: StableHasher,
    events: u64,
    writer: Option<Box<dyn Write>>,
    write_error: Option<std::io::Error>,
    tap: Tap,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hasher: StableHasher::new(),
            events: 0,
            writer: None,
            write_error: None,
            tap: Tap::None,
        }
    }
}

impl Trace {
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn next_index(&self) -> u64 {
        self.events
    }

    pub fn set_writer(&mut self, writer: Box<dyn Write>) {
        self.writer = Some(writer);
    }

    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = tap;
    }

    pub fn take_tap(&mut self) -> Tap {
        std::mem::take(&mut self.tap)
    }

    pub fn is_recording(&self) -> bool {
        self.writer.is_some()
    }

    /// The first error the writer reported, if any (writing stops after it).
    pub fn take_write_error(&mut self) -> Option<std::io::Error> {
        self.write_error.take()
    }

    pub fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.flush() {
                self.write_error.get_or_insert(e);
            }
        }
    }

    /// Folds `ev` into the hash and writes it if recording. `names` maps node ids to names.
    pub(crate) fn record<V: Vocabulary>(&mut self, ev: &Event<'_, V>, names: &[String]) {
        assert_eq!(ev.index, self.events);
        ev.hash_into(&mut self.hasher);
        self.events += 1;
        match &mut self.tap {
            Tap::None => {}
            Tap::Hashes(v) => v.push(self.hasher.finish()),
            Tap::Verify { .. } => self.tap.verify_step(ev.index, self.hasher.finish()),
            Tap::Line { index, line } => {
                if *index == ev.index {
                    *line = Some(render_line(ev, names, self.hasher.finish()));
                }
            }
        }
        if self.write_error.is_some() {
            return;
        }
        if let Some(w) = self.writer.as_mut() {
            let line = render_line(ev, names, self.hasher.finish());
            if let Err(e) = w.write_all(line.as_bytes()) {
                self.write_error = Some(e);
            }
        }
    }
}

/// Renders one event as a JSON object on one line (with `\n`).
pub fn render_line<V: Vocabulary>(ev: &Event<'_, V>, names: &[String], hash: u64) -> String {
    let name = |n: &NodeId| json_str(&names[n.index()]);
    let mut s = format!(
        "{{\"i\":{},\"t_ns\":{},\"kind\":\"{}\"",
        ev.index,
        ev.time.as_nanos(),
        ev.kind.name()
    );
    match &ev.kind {
        EventKind::Deliver {
            from,
            to,
            sent,
            msg,
        } => {
            s += &format!(
                ",\"from\":{},\"to\":{},\"sent_ns\":{},\"msg\":{},\"body\":{}",
                name(from),
                name(to),
                sent.as_nanos(),
                json_str(crate::actor::Message::name(*msg)),
                V::trace_msg(msg)
            );
        }
        EventKind::Unreachable { from, to, msg } => {
            s += &format!(
                ",\"from\":{},\"to\":{},\"msg\":{},\"body\":{}",
                name(from),
                name(to),
                json_str(crate::actor::Message::name(*msg)),
                V::trace_msg(msg)
            );
        }
        EventKind::Drop {
            from,
            to,
            msg,
            reason,
        } => {
            s += &format!(
                ",\"from\":{},\"to\":{},\"reason\":\"{}\",\"msg\":{},\"body\":{}",
                name(from),
                name(to),
                reason.name(),
                json_str(crate::actor::Message::name(*msg)),
                V::trace_msg(msg)
            );
        }
        EventKind::Timer { node, tag } => {
            s += &format!(",\"node\":{},\"timer\":{}", name(node), V::trace_timer(tag));
        }
        EventKind::Obs { node, obs } => {
            s += &format!(",\"node\":{},\"obs\":{}", name(node), V::trace_obs(obs));
        }
        EventKind::Persist { node, op } => {
            s += &format!(",\"node\":{},\"op\":{}", name(node), V::trace_op(op));
        }
        EventKind::Fault { fault, effective } => {
            s += &format!(
                ",\"fault\":\"{}\",\"effective\":{},\"detail\":{}",
                fault.name(),
                effective,
                json_str(&format!("{fault:?}"))
            );
            if let Some(n) = fault.node() {
                s += &format!(",\"node\":{}", name(&n));
            }
        }
        EventKind::Started { node } | EventKind::Exited { node } => {
            s += &format!(",\"node\":{}", name(node));
        }
    }
    s += &format!(",\"hash\":\"{hash:016x}\"}}\n");
    s
}

/// A JSON string literal for `raw`.
pub fn json_str(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('"');
    for c in raw.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    /// What a `Verify` tap over `expected` reports for a run with rolling hashes `run`.
    fn verified(expected: &[u64], run: &[u64]) -> Option<u64> {
        let mut tap = super::Tap::Verify {
            expected: expected.to_vec(),
            first_difference: None,
        };
        for (i, h) in run.iter().enumerate() {
            tap.verify_step(i as u64, *h);
        }
        tap.verified(run.len() as u64)
    }

    #[test]
    fn verify_reports_the_first_unequal_hash_or_the_shorter_end() {
        assert_eq!(verified(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(verified(&[1, 2, 3], &[1, 9, 3]), Some(1));
        assert_eq!(verified(&[1, 2, 3], &[1, 9, 7]), Some(1));
        assert_eq!(verified(&[1, 2, 3], &[1, 2]), Some(2));
        assert_eq!(verified(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(verified(&[], &[5]), Some(0));
        assert_eq!(verified(&[], &[]), None);
    }

    use super::json_str;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
