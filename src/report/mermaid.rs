//! `sequence.mmd`: a Mermaid `sequenceDiagram` of the messages that causally precede the first
//! violation of a run.
//!
//! Causality is Lamport's happened-before, computed backwards over the deliveries
//! ([`causal_deliveries`]): the violation's node has a *horizon* at the violation's time (every
//! node has, when the violation names none); walking the trace from its end, a delivery to a
//! node at or before that node's horizon happened before the violation, and moves its sender's
//! horizon to the send time. A violation carries only a millisecond, so the horizon is the end
//! of that millisecond (or of the trace, when earlier).
//!
//! Of the causally preceding messages the diagram shows the latest [`MAX_MESSAGES`]
//! control-plane ones ([`select`]): RPCs first, heartbeats to fill up (or as RPCs, when the
//! violation is about heartbeats), and the data plane (record batches, credits, source fetches,
//! sink writes) only when nothing else precedes the violation. Faults in the shown period are
//! notes over their node, and the violation is the final note. A passing run shows the last
//! control-plane messages before its end instead.

use super::secs_ns;
use super::trace::{MsgClass, NodeIx, Trace};
use crate::summary::Summary;
use std::collections::HashMap;
use std::fmt::Write as _;

/// At most this many messages are drawn.
pub const MAX_MESSAGES: usize = 60;
/// At most this many fault notes are drawn (the latest ones).
pub const MAX_FAULT_NOTES: usize = 20;
/// The longest text of a message or note.
const TEXT_MAX: usize = 120;

/// The deliveries (indices into `trace.deliveries`, ascending) that happened before an event on
/// `node` at `horizon_ns`, or, with `node` `None` (or a node the trace never mentions), before
/// `horizon_ns` on every node.
pub fn causal_deliveries(trace: &Trace, node: Option<&str>, horizon_ns: u64) -> Vec<usize> {
    let mut horizon: Vec<Option<u64>> = match node.and_then(|n| trace.node_of(n)) {
        Some(n) => {
            let mut h = vec![None; trace.nodes.len()];
            h[n as usize] = Some(horizon_ns);
            h
        }
        None => vec![Some(horizon_ns); trace.nodes.len()],
    };
    let mut out = Vec::new();
    for (i, d) in trace.deliveries.iter().enumerate().rev() {
        let Some(Some(h)) = horizon.get(d.to as usize) else {
            continue;
        };
        if d.t_ns > *h {
            continue;
        }
        out.push(i);
        if let Some(slot) = horizon.get_mut(d.from as usize) {
            *slot = Some(slot.map_or(d.sent_ns, |s| s.max(d.sent_ns)));
        }
    }
    out.reverse();
    out
}

/// Of `candidates` (ascending delivery indices), the latest `cap` messages by preference,
/// ascending: control-plane messages first, then heartbeats (first already when
/// `heartbeats_first`, e.g. for a heartbeat violation), then, only when there is nothing else,
/// the data plane.
pub fn select(
    trace: &Trace,
    candidates: &[usize],
    cap: usize,
    heartbeats_first: bool,
) -> Vec<usize> {
    let tier = |i: usize| match trace.class(&trace.deliveries[i]) {
        MsgClass::Control => 0,
        MsgClass::Heartbeat if heartbeats_first => 0,
        MsgClass::Heartbeat => 1,
        MsgClass::Data => 2,
    };
    let mut chosen: Vec<usize> = Vec::new();
    for t in 0..2 {
        let room = cap - chosen.len();
        chosen.extend(
            candidates
                .iter()
                .rev()
                .copied()
                .filter(|&i| tier(i) == t)
                .take(room),
        );
    }
    if chosen.is_empty() {
        chosen.extend(candidates.iter().rev().copied().take(cap));
    }
    chosen.sort_unstable();
    chosen
}

/// Mermaid participant ids for node names: letters, digits and `_`, never a keyword.
struct Participants {
    order: Vec<NodeIx>,
    ids: HashMap<NodeIx, String>,
}

impl Participants {
    fn new() -> Self {
        Participants {
            order: Vec::new(),
            ids: HashMap::new(),
        }
    }

    fn add(&mut self, trace: &Trace, n: NodeIx) {
        if self.ids.contains_key(&n) {
            return;
        }
        let base = ident(trace.node_name(n));
        let mut id = base.clone();
        let mut k = 2;
        while self.ids.values().any(|v| v == &id) {
            id = format!("{base}_{k}");
            k += 1;
        }
        self.ids.insert(n, id);
        self.order.push(n);
    }

    fn id(&self, n: NodeIx) -> &str {
        self.ids.get(&n).map_or("unknown", String::as_str)
    }

    /// `A` or `A,B`: the span of a note over every participant.
    fn all(&self) -> String {
        match (self.order.first(), self.order.last()) {
            (Some(&a), Some(&b)) if a != b => format!("{},{}", self.id(a), self.id(b)),
            (Some(&a), _) => self.id(a).to_string(),
            _ => "unknown".to_string(),
        }
    }
}

/// A safe Mermaid id for a node name.
fn ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "activate",
        "actor",
        "alt",
        "and",
        "as",
        "autonumber",
        "box",
        "break",
        "create",
        "critical",
        "deactivate",
        "destroy",
        "else",
        "end",
        "left",
        "link",
        "links",
        "loop",
        "note",
        "of",
        "opt",
        "over",
        "par",
        "participant",
        "rect",
        "right",
        "title",
    ];
    let mut id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert_str(0, "n_");
    }
    if KEYWORDS.contains(&id.to_ascii_lowercase().as_str()) {
        id.push_str("_node");
    }
    id
}

/// Characters allowed in message and note texts; everything else becomes a space.
pub fn is_safe_text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " .-_@()[]+/,=*'!?".contains(c)
}

/// Text Mermaid takes literally: no `;`, `#`, `:`, quotes, brackets of HTML, or line breaks.
fn text(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if is_safe_text_char(c) { c } else { ' ' })
        .collect();
    if s.len() > TEXT_MAX {
        s.truncate(TEXT_MAX - 3);
        s.push_str("...");
    }
    let s = s.trim();
    if s.is_empty() {
        "(no text)".to_string()
    } else {
        s.to_string()
    }
}

/// A diagram line in chronological (trace) order.
enum Item {
    Msg(usize),
    Fault(usize),
}

/// The diagram of a run: causally preceding messages of its first violation, or its last
/// control-plane messages when it passed.
pub fn render(trace: &Trace, summary: &Summary) -> String {
    let violation = summary.violations.first();
    let (node, horizon_ns) = match violation {
        Some(v) => (
            v.node.as_deref(),
            v.at_ms
                .saturating_mul(1_000_000)
                .saturating_add(999_999)
                .min(trace.end_ns),
        ),
        None => (None, trace.end_ns),
    };
    let causal = causal_deliveries(trace, node, horizon_ns);
    let heartbeats_first = violation
        .is_some_and(|v| v.invariant.contains("heartbeat") || v.message.contains("heartbeat"));
    let shown = select(trace, &causal, MAX_MESSAGES, heartbeats_first);
    let data_only = shown
        .first()
        .is_some_and(|&i| trace.class(&trace.deliveries[i]) == MsgClass::Data);

    let mut out = String::from("sequenceDiagram\n");
    let _ = writeln!(
        out,
        "%% flinksim {} seed {}",
        text(&summary.scenario),
        summary.seed
    );
    match violation {
        Some(v) => {
            let _ = writeln!(
                out,
                "%% the messages that causally precede the first violation ({} at {}{}): {} of {} shown, the latest {}",
                text(&v.invariant),
                super::secs_ms(v.at_ms),
                v.node.as_deref().map(|n| format!(" on {}", text(n))).unwrap_or_default(),
                shown.len(),
                causal.len(),
                if data_only { "data-plane messages (no others precede it)" } else { "control-plane messages (data plane left out)" }
            );
        }
        None => {
            let _ = writeln!(
                out,
                "%% the run passed, no violation: the last {} control-plane messages before its end at {} (data plane left out)",
                shown.len(),
                secs_ns(trace.end_ns)
            );
        }
    }
    if trace.skipped_lines > 0 {
        let _ = writeln!(
            out,
            "%% {} unreadable trace line(s) skipped",
            trace.skipped_lines
        );
    }

    // Faults during the shown period, over the nodes shown.
    let mut parts = Participants::new();
    for &i in &shown {
        let d = &trace.deliveries[i];
        parts.add(trace, d.from);
        parts.add(trace, d.to);
    }
    let violation_node = node.and_then(|n| trace.node_of(n));
    let from_ns = shown.first().map_or(0, |&i| trace.deliveries[i].t_ns);
    let mut faults: Vec<usize> = trace
        .faults
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.notable()
                && (from_ns..=horizon_ns).contains(&f.t_ns)
                && f.node
                    .is_none_or(|n| parts.ids.contains_key(&n) || Some(n) == violation_node)
        })
        .map(|(i, _)| i)
        .collect();
    if faults.len() > MAX_FAULT_NOTES {
        faults.drain(..faults.len() - MAX_FAULT_NOTES);
    }
    for &i in &faults {
        if let Some(n) = trace.faults[i].node {
            parts.add(trace, n);
        }
    }
    if let Some(n) = violation_node {
        parts.add(trace, n);
    }
    if parts.order.is_empty() {
        out.push_str("participant unknown as (no messages)\n");
    }
    for &n in &parts.order {
        let _ = writeln!(
            out,
            "participant {} as {}",
            parts.id(n),
            text(trace.node_name(n))
        );
    }

    let mut items: Vec<(u64, Item)> = shown
        .iter()
        .map(|&i| (trace.deliveries[i].index, Item::Msg(i)))
        .chain(
            faults
                .iter()
                .map(|&i| (trace.faults[i].index, Item::Fault(i))),
        )
        .collect();
    items.sort_by_key(|(index, _)| *index);
    for (_, item) in &items {
        match *item {
            Item::Msg(i) => {
                let d = &trace.deliveries[i];
                let cp = d.checkpoint.map(|c| format!(" cp {c}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{}->>{}: {}",
                    parts.id(d.from),
                    parts.id(d.to),
                    text(&format!(
                        "{}{cp} @{}",
                        trace.msg_name(d.msg),
                        secs_ns(d.t_ns)
                    ))
                );
            }
            Item::Fault(i) => {
                let f = &trace.faults[i];
                let over = f
                    .node
                    .map_or_else(|| parts.all(), |n| parts.id(n).to_string());
                let _ = writeln!(
                    out,
                    "Note over {over}: {}",
                    text(&format!("{} @{}", f.fault, secs_ns(f.t_ns)))
                );
            }
        }
    }
    if let Some(v) = violation {
        let over = violation_node.map_or_else(|| parts.all(), |n| parts.id(n).to_string());
        let _ = writeln!(
            out,
            "Note over {over}: {}",
            text(&format!(
                "VIOLATION {} @{}",
                v.invariant,
                super::secs_ms(v.at_ms)
            ))
        );
        let _ = writeln!(out, "Note over {over}: {}", text(&v.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe() {
        assert_eq!(ident("taskmanager-1"), "taskmanager_1");
        assert_eq!(ident("end"), "end_node");
        assert_eq!(ident("1st"), "n_1st");
        assert_eq!(ident(""), "n_");
    }

    #[test]
    fn text_has_no_mermaid_syntax() {
        assert_eq!(text("a;b#c:d\ne"), "a b c d e");
        assert_eq!(text(":::"), "(no text)");
        assert!(text(&"x".repeat(500)).len() <= TEXT_MAX);
    }
}
