//! What the engine reports: conntrack events, drops, TRACE steps and LOG hits, with their
//! text and JSON forms (the control socket's streams, the simulator's `events.jsonl`).

use super::*;

/// A packet drop, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropEvent {
    /// When.
    pub at: Instant,
    /// Hook, if the drop happened inside one.
    pub hook: Option<Hook>,
    /// The rule or policy that dropped it, if a rule did.
    pub rule: Option<RuleRef>,
    /// Why (its text is the drop counter's name).
    pub reason: DropReason,
    /// Interface the packet came in on (None for locally generated).
    pub iface: Option<String>,
    /// Short description of the packet.
    pub packet: String,
}

/// What the engine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A conntrack event.
    Conntrack(CtEvent),
    /// A dropped packet.
    Drop(DropEvent),
    /// A rule, user-chain return or policy a TRACEd packet hit.
    Trace(TraceEvent),
    /// What a conntrack helper did with a packet: found a command, rewrote it, refused it.
    Helper(HelperRecord),
    /// A LOG target hit.
    Log {
        /// When.
        at: Instant,
        /// The LOG rule.
        rule: RuleRef,
        /// `--log-prefix` and packet summary.
        line: String,
    },
}

/// One helper action ([`Event::Helper`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperRecord {
    /// When.
    pub at: Instant,
    /// The helper's name (`ftp`, `tftp`, ...).
    pub helper: &'static str,
    /// What it did: `parsed`, `refused`, `malformed`, `unsynced`, `rewrite`, `expect-failed`.
    pub action: &'static str,
    /// The details (the command, the old and new text, the reason).
    pub detail: String,
    /// The packet.
    pub packet: String,
}

/// One step of a TRACEd packet ([`Event::Trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// When.
    pub at: Instant,
    /// Which packet: every step of one packet shares it (from 1, per engine).
    pub id: u64,
    /// The table, chain, rule number, kind and verdict.
    pub step: rules::TraceStep,
    /// The rule as iptables-save prints it (empty for returns and policies).
    pub rule_text: String,
    /// The packet as the step saw it, with its interfaces.
    pub packet: String,
}

impl Event {
    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        match self {
            Event::Conntrack(e) => e.to_json(),
            Event::Drop(d) => {
                let mut s = format!("{{\"time\":{},\"type\":\"drop\",\"reason\":\"{}\"", d.at.as_nanos(), d.reason);
                if let Some(h) = d.hook {
                    s.push_str(&format!(",\"hook\":\"{}\"", h.chain_name()));
                }
                if let Some(r) = &d.rule {
                    s.push_str(&format!(
                        ",\"table\":\"{}\",\"chain\":\"{}\",\"rule\":{}",
                        r.table,
                        json_escape(&r.chain),
                        r.rule_num
                    ));
                }
                if let Some(i) = &d.iface {
                    s.push_str(&format!(",\"iface\":\"{}\"", json_escape(i)));
                }
                s.push_str(&format!(",\"packet\":\"{}\"}}", json_escape(&d.packet)));
                s
            }
            Event::Trace(t) => format!(
                "{{\"time\":{},\"type\":\"trace\",\"id\":{},\"table\":\"{}\",\"chain\":\"{}\",\"kind\":\"{}\",\"rule\":{},\"verdict\":\"{}\",\"text\":\"{}\",\"packet\":\"{}\"}}",
                t.at.as_nanos(),
                t.id,
                t.step.rule.table,
                json_escape(&t.step.rule.chain),
                t.step.kind.name(),
                t.step.rule.rule_num,
                json_escape(&t.step.verdict),
                json_escape(&t.rule_text),
                json_escape(&t.packet)
            ),
            Event::Helper(h) => format!(
                "{{\"time\":{},\"type\":\"helper\",\"helper\":\"{}\",\"action\":\"{}\",\"detail\":\"{}\",\"packet\":\"{}\"}}",
                h.at.as_nanos(),
                json_escape(h.helper),
                h.action,
                json_escape(&h.detail),
                json_escape(&h.packet)
            ),
            Event::Log { at, rule, line } => format!(
                "{{\"time\":{},\"type\":\"log\",\"table\":\"{}\",\"chain\":\"{}\",\"rule\":{},\"line\":\"{}\"}}",
                at.as_nanos(),
                rule.table,
                json_escape(&rule.chain),
                rule.rule_num,
                json_escape(line)
            ),
        }
    }

    /// The event kind as a short name ("new", "destroy", "drop", "log", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Conntrack(e) => match e.kind {
                conntrack::EventKind::New => "new",
                conntrack::EventKind::Update => "update",
                conntrack::EventKind::Destroy => "destroy",
                conntrack::EventKind::ExpectNew => "expect-new",
                conntrack::EventKind::ExpectDestroy => "expect-destroy",
            },
            Event::Drop(_) => "drop",
            Event::Trace(_) => "trace",
            Event::Helper(_) => "helper",
            Event::Log { .. } => "log",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Conntrack(e) => write!(f, "{e}"),
            Event::Drop(d) => {
                write!(f, "    [DROP] {} {}", d.reason, d.packet)?;
                if let Some(h) = d.hook {
                    write!(f, " hook={}", h.chain_name())?;
                }
                if let Some(r) = &d.rule {
                    write!(f, " by {r}")?;
                }
                Ok(())
            }
            Event::Trace(t) => write!(
                f,
                "   [TRACE] {} {}:{}:{}:{} {} {} | {}",
                t.id,
                t.step.rule.table,
                t.step.rule.chain,
                t.step.kind.name(),
                t.step.rule.rule_num,
                t.step.verdict,
                t.rule_text,
                t.packet
            ),
            Event::Helper(h) => write!(
                f,
                "  [HELPER] {} {}: {} | {}",
                h.helper, h.action, h.detail, h.packet
            ),
            Event::Log { line, .. } => write!(f, "     [LOG] {line}"),
        }
    }
}

/// Escapes a string for a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}
