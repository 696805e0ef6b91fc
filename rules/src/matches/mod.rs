//! Matches: the predicate half of a rule. One [`Match`] is one base option (`-s`, `-p`, ...) or
//! one `-m module` instance with its options; a rule matches when all of its matches do.
//!
//! The base options are part of the rule syntax (`parse.rs` reads them); their evaluation and
//! save form are here. Each extension (`-m NAME`) is a file of this directory holding its
//! options, checks, save form and evaluation behind [`MatchExt`]; [`MODULES`] lists them by the
//! names `-m` takes. Evaluation goes through one `match` on [`Match`], no trait object.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::lex::quote;
use crate::value::{proto_name, Net};
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) mod addrtype;
pub(crate) mod comment;
pub(crate) mod connbytes;
pub(crate) mod connlimit;
pub(crate) mod connmark;
pub(crate) mod conntrack;
pub(crate) mod hashlimit;
pub(crate) mod helper;
pub(crate) mod icmp;
pub(crate) mod iprange;
pub(crate) mod length;
pub(crate) mod limit;
pub(crate) mod mark;
pub(crate) mod multiport;
pub(crate) mod recent;
pub(crate) mod state;
pub(crate) mod string;
pub(crate) mod tcp;
pub(crate) mod ttl;
pub(crate) mod udp;

/// An interface name, `+` at the end meaning "any name with this prefix".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub(crate) name: String,
    pub(crate) wildcard: bool,
}

impl Iface {
    pub(crate) fn parse(s: &str) -> Result<Iface, String> {
        // IFNAMSIZ is 16 with the terminating NUL.
        if s.is_empty() || s.chars().count() > 15 {
            return Err(format!("bad interface name {s:?} (1 to 15 characters)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bad interface name {s:?}"));
        }
        Ok(match s.strip_suffix('+') {
            Some(prefix) => Iface {
                name: prefix.to_string(),
                wildcard: true,
            },
            None => Iface {
                name: s.to_string(),
                wildcard: false,
            },
        })
    }

    fn matches(&self, name: Option<&str>) -> bool {
        let name = name.unwrap_or("");
        if self.wildcard {
            name.starts_with(&self.name)
        } else {
            name == self.name
        }
    }

    fn write(&self, out: &mut String) {
        // iptables-save prints names bare; quote only what would not read back.
        let full = format!("{}{}", self.name, if self.wildcard { "+" } else { "" });
        if full.chars().any(|c| "\"'\\!#".contains(c)) {
            out.push_str(&quote(&full));
        } else {
            out.push_str(&full);
        }
    }
}

/// One match of a rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Match {
    /// `-s`; addresses never parse as `/0` without `!` (those are dropped: they match all).
    Src {
        net: Net,
        invert: bool,
    },
    Dst {
        net: Net,
        invert: bool,
    },
    InIface {
        iface: Iface,
        invert: bool,
    },
    OutIface {
        iface: Iface,
        invert: bool,
    },
    /// `-p`; never 0 (any).
    Proto {
        proto: u8,
        invert: bool,
    },
    /// `-f`: second and later fragments (IPv4).
    Fragment {
        invert: bool,
    },
    /// `-m tcp`.
    Tcp(tcp::Tcp),
    /// `-m udp|udplite|sctp|dccp`.
    Ports(udp::Ports),
    /// `-m multiport`.
    Multiport(multiport::Multiport),
    /// `-m mark`.
    Mark(mark::Mark),
    /// `-m connmark`.
    Connmark(connmark::Connmark),
    /// `-m iprange`.
    IpRange(iprange::IpRange),
    /// `-m length`.
    Length(length::Length),
    /// `-m ttl` / `-m hl`.
    Ttl(ttl::Ttl),
    /// `-m limit`.
    Limit(limit::Limit),
    /// `-m addrtype`.
    AddrType(addrtype::AddrType),
    /// `-m conntrack`.
    Conntrack(Box<conntrack::CtMatch>),
    /// `-m state`.
    State(state::State),
    /// `-m icmp` / `-m icmp6`.
    Icmp(icmp::Icmp),
    /// `-m comment`.
    Comment(comment::Comment),
    /// `-m helper`.
    Helper(helper::Helper),
    /// `-m string`.
    String(Box<string::StringMatch>),
    /// `-m connbytes`.
    Connbytes(connbytes::Connbytes),
    /// `-m connlimit`.
    Connlimit(Box<connlimit::Connlimit>),
    /// `-m recent`.
    Recent(Box<recent::Recent>),
    /// `-m hashlimit`.
    Hashlimit(Box<hashlimit::Hashlimit>),
}

/// Calls `$method` of the extension inside `$m` (every variant but the base options).
macro_rules! ext {
    ($m:expr, $e:ident => $call:expr, base => $base:expr) => {
        match $m {
            Match::Tcp($e) => $call,
            Match::Ports($e) => $call,
            Match::Multiport($e) => $call,
            Match::Mark($e) => $call,
            Match::Connmark($e) => $call,
            Match::IpRange($e) => $call,
            Match::Length($e) => $call,
            Match::Ttl($e) => $call,
            Match::Limit($e) => $call,
            Match::AddrType($e) => $call,
            Match::Conntrack($e) => $call,
            Match::State($e) => $call,
            Match::Icmp($e) => $call,
            Match::Comment($e) => $call,
            Match::Helper($e) => $call,
            Match::String($e) => $call,
            Match::Connbytes($e) => $call,
            Match::Connlimit($e) => $call,
            Match::Recent($e) => $call,
            Match::Hashlimit($e) => $call,
            Match::Src { .. }
            | Match::Dst { .. }
            | Match::InIface { .. }
            | Match::OutIface { .. }
            | Match::Proto { .. }
            | Match::Fragment { .. } => $base,
        }
    };
}

impl Match {
    /// Whether the packet matches; `marks` are the marks as the traversal has left them.
    pub(crate) fn matches(&self, ctx: &PacketCtx, marks: &Marks) -> bool {
        match self {
            Match::Src { net, invert } => net.contains(ctx.src) != *invert,
            Match::Dst { net, invert } => net.contains(ctx.dst) != *invert,
            Match::InIface { iface, invert } => iface.matches(ctx.in_iface) != *invert,
            Match::OutIface { iface, invert } => iface.matches(ctx.out_iface) != *invert,
            Match::Proto { proto, invert } => (ctx.proto == *proto) != *invert,
            Match::Fragment { invert } => ctx.fragment != *invert,
            Match::Tcp(m) => m.matches(ctx, marks),
            Match::Ports(m) => m.matches(ctx, marks),
            Match::Multiport(m) => m.matches(ctx, marks),
            Match::Mark(m) => m.matches(ctx, marks),
            Match::Connmark(m) => m.matches(ctx, marks),
            Match::IpRange(m) => m.matches(ctx, marks),
            Match::Length(m) => m.matches(ctx, marks),
            Match::Ttl(m) => m.matches(ctx, marks),
            Match::Limit(m) => m.matches(ctx, marks),
            Match::AddrType(m) => m.matches(ctx, marks),
            Match::Conntrack(m) => m.matches(ctx, marks),
            Match::State(m) => m.matches(ctx, marks),
            Match::Icmp(m) => m.matches(ctx, marks),
            Match::Comment(m) => m.matches(ctx, marks),
            Match::Helper(m) => m.matches(ctx, marks),
            Match::String(m) => m.matches(ctx, marks),
            Match::Connbytes(m) => m.matches(ctx, marks),
            Match::Connlimit(m) => m.matches(ctx, marks),
            Match::Recent(m) => m.matches(ctx, marks),
            Match::Hashlimit(m) => m.matches(ctx, marks),
        }
    }

    /// Appends the iptables-save form (with a leading space).
    pub(crate) fn write(&self, out: &mut String) {
        let not = |inv: bool| if inv { " !" } else { "" };
        match self {
            Match::Src { net, invert } => {
                let _ = write!(out, "{} -s ", not(*invert));
                net.write(out);
            }
            Match::Dst { net, invert } => {
                let _ = write!(out, "{} -d ", not(*invert));
                net.write(out);
            }
            Match::InIface { iface, invert } => {
                let _ = write!(out, "{} -i ", not(*invert));
                iface.write(out);
            }
            Match::OutIface { iface, invert } => {
                let _ = write!(out, "{} -o ", not(*invert));
                iface.write(out);
            }
            Match::Proto { proto, invert } => {
                let _ = write!(out, "{} -p {}", not(*invert), proto_name(*proto));
            }
            Match::Fragment { invert } => {
                let _ = write!(out, "{} -f", not(*invert));
            }
            m => ext!(m, e => e.save(out), base => {}),
        }
    }

    /// Applies an option of this extension (see [`MatchExt::option`]).
    pub(crate) fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        ext!(self, e => e.option(arg), base => Ok(()))
    }

    /// See [`MatchExt::finish`].
    pub(crate) fn finish(&mut self, done: &Done) -> Result<(), RuleError> {
        ext!(self, e => e.finish(done), base => Ok(()))
    }

    /// See [`MatchExt::check`].
    pub(crate) fn check(&self, done: &Done) -> Result<(), RuleError> {
        ext!(self, e => e.check(done), base => Ok(()))
    }
}

/// A match extension as `-m NAME` loads it.
#[derive(Debug)]
pub(crate) struct MatchDef {
    pub(crate) name: &'static str,
    /// The one family it exists in, with the error for the other.
    pub(crate) only: Option<(Family, &'static str)>,
    pub(crate) options: &'static [Opt],
    /// Options of the real extension that tunfilter refuses by name ("option X is not
    /// supported") rather than calling them unknown.
    pub(crate) refuses: fn(&str) -> bool,
    /// The protocol this module is about: `-p` of it loads the module implicitly
    /// (`-p tcp --dport 22`), and the module needs that `-p`, not negated.
    pub(crate) proto: Option<u8>,
    /// The match before any option: iptables' defaults.
    pub(crate) new: fn(Family) -> Match,
}

impl MatchDef {
    /// The option `name` (any spelling) of this module.
    pub(crate) fn option(&self, name: &str) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.names.contains(&name))
    }
}

fn refuses_none(_: &str) -> bool {
    false
}

/// Every match extension, by the names `-m` takes.
pub(crate) const MODULES: &[MatchDef] = &[
    MatchDef {
        name: "tcp",
        only: None,
        options: tcp::OPTIONS,
        refuses: udp::refuses,
        proto: Some(6),
        new: |_| Match::Tcp(tcp::Tcp::default()),
    },
    MatchDef {
        name: "udp",
        only: None,
        options: udp::OPTIONS,
        refuses: udp::refuses,
        proto: Some(17),
        new: |_| Match::Ports(udp::Ports::new(17)),
    },
    MatchDef {
        name: "udplite",
        only: None,
        options: udp::OPTIONS,
        refuses: udp::refuses,
        proto: Some(136),
        new: |_| Match::Ports(udp::Ports::new(136)),
    },
    MatchDef {
        name: "sctp",
        only: None,
        options: udp::OPTIONS,
        refuses: udp::refuses,
        proto: Some(132),
        new: |_| Match::Ports(udp::Ports::new(132)),
    },
    MatchDef {
        name: "dccp",
        only: None,
        options: udp::OPTIONS,
        refuses: udp::refuses,
        proto: Some(33),
        new: |_| Match::Ports(udp::Ports::new(33)),
    },
    MatchDef {
        name: "conntrack",
        only: None,
        options: conntrack::OPTIONS,
        refuses: conntrack::refuses,
        proto: None,
        new: |_| Match::Conntrack(Box::default()),
    },
    MatchDef {
        name: "state",
        only: None,
        options: state::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::State(state::State::default()),
    },
    MatchDef {
        name: "icmp",
        only: Some((Family::V4, "-m icmp is IPv4 only: use -m icmp6")),
        options: icmp::OPTIONS,
        refuses: refuses_none,
        proto: Some(1),
        new: |_| Match::Icmp(icmp::Icmp::new(false)),
    },
    MatchDef {
        name: "icmp6",
        only: Some((Family::V6, "-m icmp6 is IPv6 only: use -m icmp")),
        options: icmp::OPTIONS6,
        refuses: refuses_none,
        proto: Some(58),
        new: |_| Match::Icmp(icmp::Icmp::new(true)),
    },
    MatchDef {
        name: "comment",
        only: None,
        options: comment::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Comment(comment::Comment::default()),
    },
    MatchDef {
        name: "helper",
        only: None,
        options: helper::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Helper(helper::Helper::default()),
    },
    MatchDef {
        name: "multiport",
        only: None,
        options: multiport::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Multiport(multiport::Multiport::default()),
    },
    MatchDef {
        name: "mark",
        only: None,
        options: mark::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Mark(mark::Mark::default()),
    },
    MatchDef {
        name: "connmark",
        only: None,
        options: connmark::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Connmark(connmark::Connmark::default()),
    },
    MatchDef {
        name: "iprange",
        only: None,
        options: iprange::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::IpRange(iprange::IpRange::default()),
    },
    MatchDef {
        name: "length",
        only: None,
        options: length::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Length(length::Length::default()),
    },
    MatchDef {
        name: "ttl",
        only: Some((Family::V4, "-m ttl is IPv4 only: use -m hl")),
        options: ttl::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Ttl(ttl::Ttl::new(false)),
    },
    MatchDef {
        name: "hl",
        only: Some((Family::V6, "-m hl is IPv6 only: use -m ttl")),
        options: ttl::OPTIONS_HL,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Ttl(ttl::Ttl::new(true)),
    },
    MatchDef {
        name: "limit",
        only: None,
        options: limit::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Limit(limit::Limit::default()),
    },
    MatchDef {
        name: "addrtype",
        only: None,
        options: addrtype::OPTIONS,
        refuses: addrtype::refuses,
        proto: None,
        new: |_| Match::AddrType(addrtype::AddrType::default()),
    },
    MatchDef {
        name: "string",
        only: None,
        options: string::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::String(Box::default()),
    },
    MatchDef {
        name: "connbytes",
        only: None,
        options: connbytes::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |_| Match::Connbytes(connbytes::Connbytes::default()),
    },
    MatchDef {
        name: "connlimit",
        only: None,
        options: connlimit::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |family| Match::Connlimit(Box::new(connlimit::Connlimit::for_family(family))),
    },
    MatchDef {
        name: "recent",
        only: None,
        options: recent::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |family| Match::Recent(Box::new(recent::Recent::new(family))),
    },
    MatchDef {
        name: "hashlimit",
        only: None,
        options: hashlimit::OPTIONS,
        refuses: refuses_none,
        proto: None,
        new: |family| Match::Hashlimit(Box::new(hashlimit::Hashlimit::new(family))),
    },
];

/// The extension `-m name` loads.
pub(crate) fn module(name: &str) -> Option<&'static MatchDef> {
    MODULES.iter().find(|d| d.name == name)
}

/// The extension `-p proto` loads implicitly in `family`, if any.
pub(crate) fn module_of_proto(proto: u8, family: Family) -> Option<&'static MatchDef> {
    MODULES
        .iter()
        .find(|d| d.proto == Some(proto) && d.only.is_none_or(|(f, _)| f == family))
}
