//! Targets: what a matching rule does.
//!
//! The standard targets (no `-j`, ACCEPT, DROP, RETURN, a jump or goto to a user chain) are
//! part of the traversal and live here. Each extension target is a file of this directory
//! holding its options and checks (a builder behind [`TargetExt`]), its save form and its
//! effect; [`TARGETS`] lists them by the names `-j` takes. The traversal (`eval.rs`) goes
//! through one `match` on [`Target`], no trait object.

use std::sync::Arc;

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::{Hook, RuleError, Table};

pub(crate) mod connmark;
pub(crate) mod ct;
pub(crate) mod log;
pub(crate) mod mark;
pub(crate) mod nat;
pub(crate) mod reject;
pub(crate) mod tcpmss;
pub(crate) mod trace;

use self::nat::NatTarget;
use self::reject::RejectWith;
use self::tcpmss::TcpMss;

/// What a matching rule does. Chain targets hold the chain index in their table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No `-j`: the rule only counts; traversal continues.
    Continue,
    Accept,
    Drop,
    Return,
    /// `-j chain`: push a return frame.
    Jump(usize),
    /// `-g chain`: no return frame; the chain's end returns to the last `-j` caller.
    Goto(usize),
    /// `-j REJECT`.
    Reject(RejectWith),
    /// raw table `-j NOTRACK`, `-j CT --notrack`, `-j CT --zone N`; continue.
    Ct(ct::Ct),
    /// `-j LOG`: report and continue.
    Log(log::Log),
    /// `-j MARK`; continue.
    Mark(mark::Mark),
    /// `-j CONNMARK`; continue.
    Connmark(connmark::ConnmarkOp),
    /// nat table: SNAT/DNAT/MASQUERADE/REDIRECT/NETMAP; terminal like ACCEPT,
    /// the engine binds the mapping.
    Nat(Arc<NatTarget>),
    /// `-j TRACE`; continue.
    Trace,
    /// `-j TCPMSS`; continue.
    TcpMss(TcpMss),
}

impl Target {
    /// How a trace names what this target did (xtables-monitor's verdict column).
    pub(crate) fn trace_verdict(&self, chain_name: &dyn Fn(usize) -> String) -> String {
        match self {
            Target::Accept => "ACCEPT".into(),
            Target::Drop => "DROP".into(),
            Target::Reject(_) => "REJECT".into(),
            Target::Return => "RETURN".into(),
            Target::Jump(c) => format!("JUMP {}", chain_name(*c)),
            Target::Goto(c) => format!("GOTO {}", chain_name(*c)),
            Target::Nat(t) => nat::kind(t).to_string(),
            Target::Continue
            | Target::Ct(_)
            | Target::Log(_)
            | Target::Mark(_)
            | Target::Connmark(_)
            | Target::Trace
            | Target::TcpMss(_) => "CONTINUE".into(),
        }
    }

    /// A target that works only in some hooks: its name and those hooks. Rules in user chains
    /// are checked at COMMIT against every built-in chain that reaches them.
    pub(crate) fn hook_limits(&self) -> Option<(&'static str, &'static [Hook])> {
        match self {
            Target::Nat(n) => Some(nat::hook_limits(n)),
            Target::TcpMss(m) => m.hook_limits(),
            _ => None,
        }
    }

    /// Appends the iptables-save form (with a leading space); `chain_name` resolves jumps.
    pub(crate) fn write(&self, out: &mut String, chain_name: &dyn Fn(usize) -> String) {
        match self {
            Target::Continue => {}
            Target::Accept => out.push_str(" -j ACCEPT"),
            Target::Drop => out.push_str(" -j DROP"),
            Target::Return => out.push_str(" -j RETURN"),
            Target::Jump(c) => {
                out.push_str(" -j ");
                out.push_str(&chain_name(*c));
            }
            Target::Goto(c) => {
                out.push_str(" -g ");
                out.push_str(&chain_name(*c));
            }
            Target::Reject(r) => reject::save(*r, out),
            Target::Ct(ct) => ct.save(out),
            Target::Log(log) => log.save(out),
            Target::Mark(m) => m.save(out),
            Target::Connmark(op) => op.save(out),
            Target::Nat(t) => nat::save(t, out),
            Target::Trace => trace::save(out),
            Target::TcpMss(m) => m.save(out),
        }
    }
}

/// Target names a user chain may not take, and which `-g` refuses: the targets tunfilter has
/// and those of iptables it does not.
pub(crate) const TARGET_NAMES: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "LOG",
    "NOTRACK",
    "CT",
    "QUEUE",
    "NFQUEUE",
    "NFLOG",
    "MARK",
    "CONNMARK",
    "SNAT",
    "DNAT",
    "MASQUERADE",
    "REDIRECT",
    "NETMAP",
    "TCPMSS",
    "TRACE",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "AUDIT",
    "SET",
    "TPROXY",
    "TEE",
    "SECMARK",
    "CONNSECMARK",
    "CHECKSUM",
    "IDLETIMER",
    "LED",
    "SYNPROXY",
    "ULOG",
];

/// A target as `-j NAME` loads it.
#[derive(Debug)]
pub(crate) struct TargetDef {
    pub(crate) name: &'static str,
    /// The one table it is valid in (`None`: every table).
    pub(crate) table: Option<Table>,
    /// Its builder for a rule at `cx`, the name at column `col`.
    pub(crate) start: fn(&Cx, usize) -> Result<Builder, RuleError>,
}

/// Every target `-j` loads, by name. (Jumps to user chains are resolved at COMMIT.)
pub(crate) const TARGETS: &[TargetDef] = &[
    TargetDef {
        name: "ACCEPT",
        table: None,
        start: |_, _| Ok(Builder::Ready(Target::Accept)),
    },
    TargetDef {
        name: "DROP",
        table: None,
        start: |_, _| Ok(Builder::Ready(Target::Drop)),
    },
    TargetDef {
        name: "RETURN",
        table: None,
        start: |_, _| Ok(Builder::Ready(Target::Return)),
    },
    TargetDef {
        name: "REJECT",
        table: Some(Table::Filter),
        start: |_, _| Ok(Builder::Reject(reject::Builder::default())),
    },
    TargetDef {
        name: "LOG",
        table: None,
        start: |_, _| Ok(Builder::Log(log::Builder::default())),
    },
    TargetDef {
        name: "NOTRACK",
        table: Some(Table::Raw),
        start: |_, _| Ok(Builder::Ready(Target::Ct(ct::Ct::NoTrack { ct: false }))),
    },
    TargetDef {
        name: "CT",
        table: Some(Table::Raw),
        start: |_, _| Ok(Builder::Ct(ct::Builder::default())),
    },
    TargetDef {
        name: "MARK",
        table: None,
        start: |_, _| Ok(Builder::Mark(mark::Builder::default())),
    },
    TargetDef {
        name: "TRACE",
        table: None,
        start: |_, _| Ok(Builder::Ready(Target::Trace)),
    },
    TargetDef {
        name: "TCPMSS",
        table: None,
        start: |_, _| Ok(Builder::TcpMss(tcpmss::Builder::default())),
    },
    TargetDef {
        name: "CONNMARK",
        table: None,
        start: |_, _| Ok(Builder::Connmark(connmark::Builder::default())),
    },
    TargetDef {
        name: "SNAT",
        table: Some(Table::Nat),
        start: |cx, col| nat::Builder::start("SNAT", cx, col).map(Builder::Nat),
    },
    TargetDef {
        name: "DNAT",
        table: Some(Table::Nat),
        start: |cx, col| nat::Builder::start("DNAT", cx, col).map(Builder::Nat),
    },
    TargetDef {
        name: "MASQUERADE",
        table: Some(Table::Nat),
        start: |cx, col| nat::Builder::start("MASQUERADE", cx, col).map(Builder::Nat),
    },
    TargetDef {
        name: "REDIRECT",
        table: Some(Table::Nat),
        start: |cx, col| nat::Builder::start("REDIRECT", cx, col).map(Builder::Nat),
    },
    TargetDef {
        name: "NETMAP",
        table: Some(Table::Nat),
        start: |cx, col| nat::Builder::start("NETMAP", cx, col).map(Builder::Nat),
    },
];

/// The target `-j name` loads.
pub(crate) fn target(name: &str) -> Option<&'static TargetDef> {
    TARGETS.iter().find(|d| d.name == name)
}

/// A target being built from the rule's options.
#[derive(Debug)]
pub(crate) enum Builder {
    /// A target without options.
    Ready(Target),
    Reject(reject::Builder),
    Log(log::Builder),
    Ct(ct::Builder),
    Mark(mark::Builder),
    Connmark(connmark::Builder),
    TcpMss(tcpmss::Builder),
    Nat(nat::Builder),
}

impl Builder {
    /// See [`TargetExt::takes`]; a target without options takes none.
    pub(crate) fn takes(&self, opt: &Tok, cx: &Cx) -> Result<Option<u8>, RuleError> {
        match self {
            Builder::Ready(_) => Ok(None),
            Builder::Reject(b) => b.takes(opt, cx),
            Builder::Log(b) => b.takes(opt, cx),
            Builder::Ct(b) => b.takes(opt, cx),
            Builder::Mark(b) => b.takes(opt, cx),
            Builder::Connmark(b) => b.takes(opt, cx),
            Builder::TcpMss(b) => b.takes(opt, cx),
            Builder::Nat(b) => b.takes(opt, cx),
        }
    }

    /// See [`TargetExt::option`]; only called for options [`Builder::takes`] accepted.
    pub(crate) fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        match self {
            Builder::Ready(_) => Ok(()),
            Builder::Reject(b) => b.option(arg),
            Builder::Log(b) => b.option(arg),
            Builder::Ct(b) => b.option(arg),
            Builder::Mark(b) => b.option(arg),
            Builder::Connmark(b) => b.option(arg),
            Builder::TcpMss(b) => b.option(arg),
            Builder::Nat(b) => b.option(arg),
        }
    }

    /// See [`TargetExt::finish`].
    pub(crate) fn finish(
        self,
        cx: &Cx,
        col: usize,
        proto: Option<(u8, bool)>,
    ) -> Result<Target, RuleError> {
        Ok(match self {
            Builder::Ready(t) => t,
            Builder::Reject(b) => Target::Reject(b.finish(cx, col, proto)?),
            Builder::Log(b) => Target::Log(b.finish(cx, col, proto)?),
            Builder::Ct(b) => Target::Ct(b.finish(cx, col, proto)?),
            Builder::Mark(b) => Target::Mark(b.finish(cx, col, proto)?),
            Builder::Connmark(b) => Target::Connmark(b.finish(cx, col, proto)?),
            Builder::TcpMss(b) => Target::TcpMss(b.finish(cx, col, proto)?),
            Builder::Nat(b) => Target::Nat(Arc::new(b.finish(cx, col, proto)?)),
        })
    }
}
