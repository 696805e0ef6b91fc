//! `-m tcp`: the ports of `udp.rs`, plus `--tcp-flags MASK COMP`, `--syn` (`FIN,SYN,RST,ACK
//! SYN`) and `--tcp-option N`. Loaded implicitly by `-p tcp --dport 22`, as iptables does.
//! Without a TCP header (a later fragment) the match never holds, negated or not.

use std::fmt::Write as _;

use super::udp::{self, Ports};
use crate::extension::{Arg, MatchExt, Opt};
use crate::value::parse_uint;
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    udp::SPORT,
    udp::DPORT,
    Opt {
        names: &["--tcp-flags"],
        group: "flags",
        negatable: true,
        args: 2,
    },
    Opt::flag(&["--syn"], "flags", true),
    Opt::value(&["--tcp-option"], true),
];

/// `-m tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tcp {
    pub(crate) ports: Ports,
    /// `--tcp-flags` / `--syn`.
    pub(crate) flags: Option<TcpFlags>,
    /// `--tcp-option N` with its `!`.
    pub(crate) option: Option<(u8, bool)>,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            ports: Ports::new(6),
            flags: None,
            option: None,
        }
    }
}

impl MatchExt for Tcp {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        match arg.name {
            "--tcp-flags" => {
                let mask = TcpFlags::parse_list(arg.text()).map_err(|e| arg.err_at(e))?;
                let c = arg.vals[1];
                let comp =
                    TcpFlags::parse_list(&c.text).map_err(|(off, e)| arg.cx.err(c.col + off, e))?;
                self.flags = Some(TcpFlags {
                    mask,
                    comp,
                    invert: arg.invert,
                });
            }
            "--syn" => {
                self.flags = Some(TcpFlags {
                    invert: arg.invert,
                    ..TcpFlags::SYN
                });
            }
            "--tcp-option" => {
                let n = parse_uint(arg.text(), 255).map_err(|_| {
                    arg.err(format!("bad TCP option kind {} (0..=255)", arg.text()))
                })?;
                self.option = Some((n as u8, arg.invert));
            }
            _ => self.ports.option(arg)?,
        }
        Ok(())
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let (Some(s), Some(d)) = (ctx.sport, ctx.dport) else {
            return false;
        };
        if self.flags.is_some_and(|f| !f.matches(ctx.tcp_flags)) {
            return false;
        }
        if let Some((kind, invert)) = self.option {
            // An unreadable header does not match (the kernel drops such packets).
            match tcp_has_option(ctx, kind) {
                Some(has) if has != invert => {}
                _ => return false,
            }
        }
        self.ports.hit(s, d)
    }

    fn save(&self, out: &mut String) {
        out.push_str(" -m tcp");
        self.ports.save_ports(out);
        if let Some((kind, invert)) = self.option {
            let _ = write!(
                out,
                "{} --tcp-option {kind}",
                if invert { " !" } else { "" }
            );
        }
        if let Some(f) = self.flags {
            f.write(out);
        }
    }
}

/// TCP flag names in bit order (FIN is bit 0), as iptables prints them.
const TCP_FLAGS: [(&str, u8); 8] = [
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ECE", 0x40),
    ("CWR", 0x80),
];

/// `--tcp-flags MASK COMP` (and `--syn`, which is `FIN,SYN,RST,ACK SYN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpFlags {
    pub(crate) mask: u8,
    pub(crate) comp: u8,
    pub(crate) invert: bool,
}

impl TcpFlags {
    pub(crate) const SYN: TcpFlags = TcpFlags {
        mask: 0x17,
        comp: 0x02,
        invert: false,
    };

    /// Parses a comma list of flag names, `ALL` (the six classic flags) or `NONE`.
    pub(crate) fn parse_list(s: &str) -> Result<u8, (usize, String)> {
        let mut v = 0u8;
        let mut offset = 0;
        for part in s.split(',') {
            let bits = match part.to_ascii_uppercase().as_str() {
                "ALL" => 0x3f,
                "NONE" => 0,
                up => TCP_FLAGS
                    .iter()
                    .find(|(n, _)| *n == up)
                    .map(|&(_, b)| b)
                    .ok_or_else(|| (offset, format!("unknown TCP flag {part}")))?,
            };
            v |= bits;
            offset += part.chars().count() + 1;
        }
        Ok(v)
    }

    fn write_list(out: &mut String, v: u8) {
        if v == 0 {
            out.push_str("NONE");
            return;
        }
        let names: Vec<&str> = TCP_FLAGS
            .iter()
            .filter(|(_, b)| v & b != 0)
            .map(|(n, _)| *n)
            .collect();
        out.push_str(&names.join(","));
    }

    #[inline]
    pub(crate) fn matches(&self, flags: Option<u8>) -> bool {
        match flags {
            Some(f) => (f & self.mask == self.comp) != self.invert,
            None => false,
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        let _ = write!(out, "{} --tcp-flags ", if self.invert { " !" } else { "" });
        Self::write_list(out, self.mask);
        out.push(' ');
        Self::write_list(out, self.comp);
    }
}

/// `--tcp-option N`: whether the TCP header carries option kind N.
pub(crate) fn tcp_has_option(ctx: &PacketCtx, kind: u8) -> Option<bool> {
    let tcp = l4_header(ctx)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    let opts = tcp.get(20..doff)?;
    let mut i = 0;
    while let Some(&k) = opts.get(i) {
        if k == kind {
            return Some(true);
        }
        // EOL and NOP are one byte; others carry a length (a zero length would not advance).
        i += if k < 2 {
            1
        } else {
            usize::from(*opts.get(i + 1)?).max(1)
        };
    }
    Some(false)
}

/// The L4 header of `ctx.packet` (after IPv6 extension headers), `None` when absent or short.
fn l4_header<'a>(ctx: &PacketCtx<'a>) -> Option<&'a [u8]> {
    let p = ctx.packet;
    match ctx.family {
        Family::V4 => {
            let ihl = usize::from(*p.first()? & 0x0f) * 4;
            p.get(ihl..)
        }
        Family::V6 => {
            let mut next = *p.get(6)?;
            let mut off = 40;
            // Hop-by-hop, routing, fragment, AH, destination options.
            for _ in 0..16 {
                match next {
                    0 | 43 | 60 => {
                        next = *p.get(off)?;
                        off += (usize::from(*p.get(off + 1)?) + 1) * 8;
                    }
                    44 => {
                        next = *p.get(off)?;
                        off += 8;
                    }
                    51 => {
                        next = *p.get(off)?;
                        off += (usize::from(*p.get(off + 1)?) + 2) * 4;
                    }
                    _ => return p.get(off..),
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_flag_lists() {
        assert_eq!(TcpFlags::parse_list("SYN,ACK").unwrap(), 0x12);
        assert_eq!(TcpFlags::parse_list("ALL").unwrap(), 0x3f);
        assert_eq!(TcpFlags::parse_list("NONE").unwrap(), 0);
        assert_eq!(TcpFlags::parse_list("syn,BOGUS").unwrap_err().0, 4);
        let mut s = String::new();
        TcpFlags::SYN.write(&mut s);
        assert_eq!(s, " --tcp-flags FIN,SYN,RST,ACK SYN");
    }

    #[test]
    fn tcp_options_in_the_packet() {
        // IPv4 header (20 bytes) + TCP header with MSS (kind 2) and a NOP, SACK-permitted (4).
        let mut pkt = vec![0x45u8; 1];
        pkt.resize(20, 0);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 7 << 4; // 28-byte header
        tcp.extend_from_slice(&[2, 4, 0x05, 0xb4, 1, 4, 2, 0]);
        pkt.extend_from_slice(&tcp);
        let mut ctx = PacketCtx {
            packet: &pkt,
            ..PacketCtx::default()
        };
        assert_eq!(tcp_has_option(&ctx, 2), Some(true));
        assert_eq!(tcp_has_option(&ctx, 4), Some(true));
        assert_eq!(tcp_has_option(&ctx, 8), Some(false));
        // Truncated: no answer.
        ctx.packet = &pkt[..30];
        assert_eq!(tcp_has_option(&ctx, 2), None);

        // IPv6 with a hop-by-hop header before TCP.
        let mut p6 = vec![0u8; 40];
        p6[0] = 0x60;
        p6[6] = 0; // hop-by-hop
        p6.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        p6.extend_from_slice(&tcp);
        let c6 = PacketCtx {
            family: Family::V6,
            packet: &p6,
            ..PacketCtx::default()
        };
        assert_eq!(tcp_has_option(&c6, 4), Some(true));
        assert_eq!(tcp_has_option(&c6, 3), Some(false));
    }
}
