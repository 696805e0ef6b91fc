//! SAs and policies as text, close to `ip xfrm`: [`parse_state`] reads the arguments of
//! `ip xfrm state add`, [`parse_policy`] those of `ip xfrm policy add`; errors give the column
//! of the bad token. Printing goes both ways: an [`SaConfig`] or [`PolicyConfig`] prints as
//! the arguments that parse back to it, an [`Sa`] or [`Policy`] as `ip xfrm state list` /
//! `ip xfrm policy list` show them (`{:#}`: with `-s`'s lifetimes and statistics).
//!
//! ```
//! use ipsec_hooks::text::{parse_policy, parse_state};
//!
//! let sa = parse_state(
//!     "src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000 reqid 1 mode tunnel \
//!      replay-window 64 aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128",
//! )?;
//! assert_eq!((sa.spi, sa.reqid, sa.replay_window), (0x1000, 1, 64));
//! assert_eq!(parse_state(&sa.to_string())?, sa);
//!
//! let err = parse_policy("src 192.0.2.0/24 dst 198.51.100.0/24 dir sideways").unwrap_err();
//! assert_eq!(err.column, 42);
//! assert_eq!(err.to_string(), "column 42: expected in, out or fwd, found `sideways`");
//! # Ok::<(), ipsec_hooks::text::ParseError>(())
//! ```

use crate::aead;
use crate::flow::{is_icmp, Prefix, Selector, PROTO_NAMES};
use crate::ipsec::Ipsec;
use crate::replay::MAX_REPLAY_WINDOW;
use crate::sa::{Lifetime, Mode, Sa, SaConfig, SaFlags};
use crate::spd::{Action, Direction, Level, Policy, PolicyConfig, Template};
use conntrack::tuple::Family;
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::proto;

/// A parse error: the 1-based column (in characters) of the token at fault, or just past the
/// end when something is missing, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Column of the bad token.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    s: &'a str,
    col: usize,
}

/// Splits on whitespace; `'...'` and `"..."` are one token without their quotes.
fn tokenize(line: &str) -> Result<(Vec<Tok<'_>>, usize), ParseError> {
    let mut toks = Vec::new();
    let mut it = line.char_indices().peekable();
    let mut col = 0usize;
    let mut start: Option<(usize, usize)> = None;
    let mut quote: Option<(char, usize, usize)> = None;
    while let Some((i, c)) = it.next() {
        col += 1;
        if let Some((q, qi, qc)) = quote {
            if c == q {
                toks.push(Tok {
                    s: &line[qi..i],
                    col: qc,
                });
                quote = None;
                // A closing quote must end the token.
                if let Some(&(_, n)) = it.peek() {
                    if !n.is_whitespace() {
                        return Err(ParseError {
                            column: col + 1,
                            message: format!("expected a space after the closing {q}"),
                        });
                    }
                }
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some((si, sc)) = start.take() {
                toks.push(Tok {
                    s: &line[si..i],
                    col: sc,
                });
            }
        } else if (c == '\'' || c == '"') && start.is_none() {
            quote = Some((c, i + c.len_utf8(), col));
        } else if start.is_none() {
            start = Some((i, col));
        }
    }
    if let Some((q, _, qc)) = quote {
        return Err(ParseError {
            column: qc,
            message: format!("unterminated {q}"),
        });
    }
    if let Some((si, sc)) = start {
        toks.push(Tok {
            s: &line[si..],
            col: sc,
        });
    }
    Ok((toks, col + 1))
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    i: usize,
    end: usize,
}

fn fail<T>(column: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        column,
        message: message.into(),
    })
}

impl<'a> Parser<'a> {
    fn new(line: &'a str) -> Result<Parser<'a>, ParseError> {
        let (toks, end) = tokenize(line)?;
        Ok(Parser { toks, i: 0, end })
    }

    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<Tok<'a>> {
        let t = self.peek()?;
        self.i += 1;
        Some(t)
    }

    /// The value after keyword `kw`.
    fn value(&mut self, kw: &str, what: &str) -> Result<Tok<'a>, ParseError> {
        match self.bump() {
            Some(t) => Ok(t),
            None => fail(self.end, format!("expected {what} after `{kw}`")),
        }
    }
}

// ---- values, shared with the TOML tables ----

/// An IPv4 or IPv6 address.
pub fn parse_addr(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("expected an IPv4 or IPv6 address, found `{s}`"))
}

/// `ADDR[/LEN]`; without a length, one address.
pub fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = parse_addr(a).map_err(|_| format!("expected an address or prefix, found `{s}`"))?;
    match len {
        None => Ok(Prefix::host(addr)),
        Some(l) => l
            .parse::<u8>()
            .ok()
            .and_then(|l| Prefix::new(addr, l))
            .ok_or_else(|| format!("bad prefix length in `{s}`")),
    }
}

/// A number in decimal or `0x` hexadecimal, at most `max`.
pub fn parse_number(s: &str, max: u64) -> Result<u64, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() => u64::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None => s.parse::<u64>().ok(),
    };
    match v {
        Some(v) if v <= max => Ok(v),
        Some(_) => Err(format!("`{s}` is above {max}")),
        None => Err(format!("expected a number, found `{s}`")),
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    parse_number(s, u64::from(u32::MAX)).map(|v| v as u32)
}

/// `0x` followed by an even number of hexadecimal digits (`ip xfrm`'s key material).
pub fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("expected the key as 0x followed by hex digits, found `{s}`");
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(bad)?;
    if h.is_empty() || h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((0..h.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect())
}

/// `transport` or `tunnel`.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "transport" => Ok(Mode::Transport),
        "tunnel" => Ok(Mode::Tunnel),
        "beet" | "ro" | "in_trigger" => Err(format!("mode {s} is not supported")),
        _ => Err(format!("expected transport or tunnel, found `{s}`")),
    }
}

/// `in`, `out` or `fwd`.
pub fn parse_dir(s: &str) -> Result<Direction, String> {
    match s {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        "fwd" => Ok(Direction::Fwd),
        _ => Err(format!("expected in, out or fwd, found `{s}`")),
    }
}

/// `allow` or `block`.
pub fn parse_action(s: &str) -> Result<Action, String> {
    match s {
        "allow" => Ok(Action::Allow),
        "block" => Ok(Action::Block),
        _ => Err(format!("expected allow or block, found `{s}`")),
    }
}

/// `required` or `use`.
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "required" => Ok(Level::Required),
        "use" => Ok(Level::Use),
        _ => Err(format!("expected required or use, found `{s}`")),
    }
}

/// The transformation protocol: only `esp`.
pub fn parse_xfrm_proto(s: &str) -> Result<(), String> {
    match s {
        "esp" => Ok(()),
        "ah" | "comp" | "route2" | "hao" | "ipcomp" => {
            Err(format!("proto {s} is not supported: only esp"))
        }
        _ => Err(format!("expected esp, found `{s}`")),
    }
}

/// An upper protocol: a name of `/etc/protocols`, `any` (0) or a number.
pub fn parse_upper_proto(s: &str) -> Result<u8, String> {
    if s == "any" {
        return Ok(0);
    }
    if let Some((n, _)) = PROTO_NAMES.iter().find(|(_, name)| *name == s) {
        return Ok(*n);
    }
    // Names Linux's protocols file also knows.
    let alias = match s {
        "ipv6-icmp" | "icmpv6" | "icmp6" => Some(proto::ICMPV6),
        "ip" => Some(0),
        _ => None,
    };
    if let Some(n) = alias {
        return Ok(n);
    }
    parse_number(s, 255)
        .map(|v| v as u8)
        .map_err(|_| format!("expected a protocol name or number, found `{s}`"))
}

/// An SA flag word into `flags`.
pub fn set_flag(flags: &mut SaFlags, s: &str) -> Result<(), String> {
    match s {
        "noecn" => flags.noecn = true,
        "decap-dscp" => flags.decap_dscp = true,
        "nopmtudisc" => flags.nopmtudisc = true,
        "af-unspec" => flags.af_unspec = true,
        "esn" => flags.esn = true,
        "wildrecv" | "icmp" | "align4" => return Err(format!("flag {s} is not supported")),
        _ => {
            return Err(format!(
                "expected a flag (noecn, decap-dscp, nopmtudisc, af-unspec, esn), found `{s}`"
            ))
        }
    }
    Ok(())
}

fn is_flag(s: &str) -> bool {
    matches!(
        s,
        "noecn"
            | "decap-dscp"
            | "nopmtudisc"
            | "af-unspec"
            | "esn"
            | "wildrecv"
            | "icmp"
            | "align4"
    )
}

fn at<T>(t: Tok<'_>, r: Result<T, String>) -> Result<T, ParseError> {
    r.map_err(|message| ParseError {
        column: t.col,
        message,
    })
}

// ---- selectors ----

const SELECTOR_WORDS: &[&str] = &[
    "src", "dst", "proto", "sport", "dport", "type", "code", "dev",
];

/// Reads selector words (`src`, `dst`, `proto`, `sport`, `dport`, `type`, `code`) while they
/// come, each once; stops at any other word or at a repeated one.
fn selector(p: &mut Parser<'_>, default: Family) -> Result<Selector, ParseError> {
    let mut src: Option<(Tok<'_>, Prefix)> = None;
    let mut dst: Option<(Tok<'_>, Prefix)> = None;
    let mut upper: Option<u8> = None;
    let mut ports: [Option<(Tok<'_>, u16, &str)>; 2] = [None, None];
    let mut seen: Vec<&str> = Vec::new();
    while let Some(t) = p.peek() {
        if !SELECTOR_WORDS.contains(&t.s) || seen.contains(&t.s) {
            break;
        }
        p.bump();
        seen.push(t.s);
        match t.s {
            "src" | "dst" => {
                let v = p.value(t.s, "an address or prefix")?;
                let pfx = at(v, parse_prefix(v.s))?;
                if t.s == "src" {
                    src = Some((v, pfx));
                } else {
                    dst = Some((v, pfx));
                }
            }
            "proto" => {
                let v = p.value("proto", "a protocol")?;
                upper = Some(at(v, parse_upper_proto(v.s))?);
            }
            "dev" => return fail(t.col, "`dev` in a selector is not supported"),
            kw => {
                let v = p.value(kw, "a number")?;
                let max = if matches!(kw, "type" | "code") {
                    255
                } else {
                    65535
                };
                let n = at(v, parse_number(v.s, max))? as u16;
                let i = usize::from(matches!(kw, "dport" | "code"));
                if ports[i].is_some() {
                    return fail(
                        t.col,
                        format!("`{kw}` conflicts with the selector's other port word"),
                    );
                }
                ports[i] = Some((t, n, kw));
            }
        }
    }
    let family = match (&src, &dst) {
        (Some((_, s)), _) => s.family(),
        (None, Some((_, d))) => d.family(),
        _ => default,
    };
    if let (Some((_, s)), Some((dt, d))) = (&src, &dst) {
        if s.family() != d.family() {
            return fail(dt.col, "src and dst must be of the same family");
        }
    }
    let upper = upper.unwrap_or(0);
    let mut sel = Selector {
        src: src.map_or(Prefix::any(family), |(_, p)| p),
        dst: dst.map_or(Prefix::any(family), |(_, p)| p),
        proto: upper,
        sport: None,
        dport: None,
    };
    for (i, slot) in ports.into_iter().enumerate() {
        let Some((t, n, kw)) = slot else { continue };
        let icmp_word = matches!(kw, "type" | "code");
        if icmp_word && !is_icmp(upper) {
            return fail(t.col, format!("`{kw}` needs proto icmp or ipv6-icmp"));
        }
        if !icmp_word
            && !matches!(
                upper,
                0 | proto::TCP | proto::UDP | proto::SCTP | proto::DCCP | proto::UDPLITE
            )
        {
            return fail(t.col, format!("`{kw}` needs a protocol with ports"));
        }
        // As iproute2: port 0 is any port; ICMP type and code 0 are values.
        let v = (icmp_word || n != 0).then_some(n);
        if i == 0 {
            sel.sport = v;
        } else {
            sel.dport = v;
        }
    }
    Ok(sel)
}

/// A selector alone (`src 192.0.2.0/24 dst 198.51.100.0/24 proto tcp dport 80`), as the
/// `sel` of an SA or a policy delete takes it.
pub fn parse_selector(line: &str) -> Result<Selector, ParseError> {
    let mut p = Parser::new(line)?;
    if p.peek().is_none() {
        return fail(p.end, "expected a selector (src, dst, proto, ...)");
    }
    let sel = selector(&mut p, Family::V4)?;
    match p.peek() {
        Some(t) => fail(t.col, format!("unexpected `{}` in a selector", t.s)),
        None => Ok(sel),
    }
}

// ---- states ----

const STATE_UNSUPPORTED: &[&str] = &[
    "encap",
    "coa",
    "ctx",
    "mark",
    "if_id",
    "offload",
    "output-mark",
    "tfcpad",
    "seq",
    "extra-flag",
    "dir",
    "pcpu-num",
];

/// Reads the arguments of `ip xfrm state add`: `src`, `dst`, `proto esp`, `spi` and `aead`
/// are required; `mode` (default transport), `reqid`, `replay-window`, `replay-seq`,
/// `replay-oseq` (`-hi` with ESN), `flag ...`, `sel ...` and `limit ...` are optional. Without
/// `sel` the SA selects every flow of its family (of both with `flag af-unspec`).
pub fn parse_state(line: &str) -> Result<SaConfig, ParseError> {
    let mut p = Parser::new(line)?;
    let mut src: Option<IpAddr> = None;
    let mut dst: Option<(Tok<'_>, IpAddr)> = None;
    let mut proto_seen = false;
    let mut spi: Option<u32> = None;
    let mut mode = Mode::Transport;
    let mut reqid = 0;
    let mut window: Option<(Tok<'_>, u32)> = None;
    let mut flags = SaFlags::default();
    let mut esn_tok: Option<Tok<'_>> = None;
    let mut aead_key: Option<Vec<u8>> = None;
    let mut sel: Option<Selector> = None;
    let mut lifetime = Lifetime::default();
    let mut seq = [0u32; 4]; // replay-seq, replay-seq-hi, replay-oseq, replay-oseq-hi
    let mut seen: Vec<&str> = Vec::new();
    while let Some(t) = p.bump() {
        let once = !matches!(t.s, "limit" | "flag");
        if once && seen.contains(&t.s) {
            return fail(t.col, format!("`{}` given twice", t.s));
        }
        seen.push(t.s);
        match t.s {
            "src" | "dst" => {
                let v = p.value(t.s, "an address")?;
                let a = at(v, parse_addr(v.s))?;
                if t.s == "src" {
                    src = Some(a);
                } else {
                    dst = Some((v, a));
                }
            }
            "proto" => {
                let v = p.value("proto", "esp")?;
                at(v, parse_xfrm_proto(v.s))?;
                proto_seen = true;
            }
            "spi" => {
                let v = p.value("spi", "an SPI")?;
                let s = at(v, parse_u32(v.s))?;
                if s == 0 {
                    return fail(v.col, "spi 0 is reserved (RFC 4303)");
                }
                spi = Some(s);
            }
            "mode" => {
                let v = p.value("mode", "transport or tunnel")?;
                mode = at(v, parse_mode(v.s))?;
            }
            "reqid" => {
                let v = p.value("reqid", "a number")?;
                reqid = at(v, parse_u32(v.s))?;
            }
            "replay-window" => {
                let v = p.value("replay-window", "a number")?;
                let w = at(v, parse_u32(v.s))?;
                if w > MAX_REPLAY_WINDOW {
                    return fail(v.col, format!("replay-window {w} is above {MAX_REPLAY_WINDOW}"));
                }
                window = Some((v, w));
            }
            "replay-seq" | "replay-seq-hi" | "replay-oseq" | "replay-oseq-hi" => {
                let v = p.value(t.s, "a number")?;
                let i = match t.s {
                    "replay-seq" => 0,
                    "replay-seq-hi" => 1,
                    "replay-oseq" => 2,
                    _ => 3,
                };
                seq[i] = at(v, parse_u32(v.s))?;
            }
            "flag" => {
                let v = p.value("flag", "a flag")?;
                at(v, set_flag(&mut flags, v.s))?;
                if v.s == "esn" {
                    esn_tok = Some(v);
                }
                while let Some(n) = p.peek().filter(|n| is_flag(n.s)) {
                    p.bump();
                    at(n, set_flag(&mut flags, n.s))?;
                    if n.s == "esn" {
                        esn_tok = Some(n);
                    }
                }
            }
            "aead" => {
                let name = p.value("aead", "the algorithm name")?;
                if name.s != aead::ALG_NAME {
                    return fail(
                        name.col,
                        format!("expected '{}', found `{}`", aead::ALG_NAME, name.s),
                    );
                }
                let k = p.value(name.s, "the key")?;
                let key = at(k, parse_key(k.s))?;
                if let Err(e) = aead::GcmKey::new(&key) {
                    return fail(k.col, e.to_string());
                }
                let icv = p.value(k.s, "the ICV length in bits")?;
                let bits = at(icv, parse_u32(icv.s))?;
                if bits != aead::ICV_BITS {
                    return fail(
                        icv.col,
                        format!("ICV length {bits}: only {} is supported", aead::ICV_BITS),
                    );
                }
                aead_key = Some(key);
            }
            "enc" | "auth" | "auth-trunc" | "comp" => {
                return fail(
                    t.col,
                    format!("`{}` is not supported: only aead '{}'", t.s, aead::ALG_NAME),
                )
            }
            "sel" => {
                if p.peek().is_none_or(|n| !SELECTOR_WORDS.contains(&n.s)) {
                    return fail(
                        p.peek().map_or(p.end, |n| n.col),
                        "expected a selector (src, dst, proto, ...) after `sel`",
                    );
                }
                let family = dst.map_or(Family::V4, |(_, a)| Family::of(&a));
                sel = Some(selector(&mut p, family)?);
            }
            "limit" => {
                let k = p.value("limit", "a limit (time-soft, byte-hard, ...)")?;
                let v = p.value(k.s, "a number")?;
                let n = at(v, parse_number(v.s, u64::MAX))?;
                if !lifetime.set(k.s, n) {
                    return fail(k.col, format!(
                        "expected time-soft, time-hard, time-use-soft, time-use-hard, byte-soft, byte-hard, packet-soft or packet-hard, found `{}`",
                        k.s
                    ));
                }
            }
            kw if STATE_UNSUPPORTED.contains(&kw) => {
                return fail(t.col, format!("`{kw}` is not supported"))
            }
            other => {
                return fail(t.col, format!(
                    "unexpected `{other}`: expected src, dst, proto, spi, mode, reqid, replay-window, flag, aead, sel or limit"
                ))
            }
        }
    }
    let missing = |what: &str| fail(p.end, format!("missing `{what}`"));
    let Some(src) = src else {
        return missing("src");
    };
    let Some((dt, dst)) = dst else {
        return missing("dst");
    };
    if src.is_ipv4() != dst.is_ipv4() {
        return fail(dt.col, "src and dst must be of the same family");
    }
    if !proto_seen {
        return missing("proto esp");
    }
    let Some(spi) = spi else {
        return missing("spi");
    };
    let Some(key) = aead_key else {
        return missing(&format!("aead '{}' KEY 128", aead::ALG_NAME));
    };
    let replay_window = window.map_or(0, |(_, w)| w);
    if flags.esn && replay_window == 0 {
        let col = esn_tok.map_or(p.end, |t| t.col);
        return fail(col, "flag esn needs a replay-window above 0");
    }
    if !flags.esn && (seq[1] != 0 || seq[3] != 0) {
        return fail(p.end, "replay-seq-hi and replay-oseq-hi need flag esn");
    }
    let selector = match sel {
        Some(s) => Some(s),
        None if flags.af_unspec => None,
        None => Some(Selector::any(Family::of(&dst))),
    };
    let cfg = SaConfig {
        src,
        dst,
        spi,
        reqid,
        mode,
        replay_window,
        flags,
        key,
        icv_bits: aead::ICV_BITS,
        selector,
        lifetime,
        replay_seq: (u64::from(seq[1]) << 32) | u64::from(seq[0]),
        replay_oseq: (u64::from(seq[3]) << 32) | u64::from(seq[2]),
    };
    cfg.validate().map_err(|e| ParseError {
        column: p.end,
        message: e.0,
    })?;
    Ok(cfg)
}

/// Reads the arguments of `ip xfrm state delete` / `get`: `src ADDR dst ADDR proto esp spi
/// SPI` (src optional); returns the destination and SPI that name the SA.
pub fn parse_state_id(line: &str) -> Result<(IpAddr, u32), ParseError> {
    let mut p = Parser::new(line)?;
    let (mut dst, mut spi) = (None, None);
    while let Some(t) = p.bump() {
        match t.s {
            "src" => {
                let v = p.value("src", "an address")?;
                at(v, parse_addr(v.s))?;
            }
            "dst" => {
                let v = p.value("dst", "an address")?;
                dst = Some(at(v, parse_addr(v.s))?);
            }
            "proto" => {
                let v = p.value("proto", "esp")?;
                at(v, parse_xfrm_proto(v.s))?;
            }
            "spi" => {
                let v = p.value("spi", "an SPI")?;
                spi = Some(at(v, parse_u32(v.s))?);
            }
            other => {
                return fail(
                    t.col,
                    format!("unexpected `{other}`: expected src, dst, proto or spi"),
                )
            }
        }
    }
    match (dst, spi) {
        (Some(d), Some(s)) => Ok((d, s)),
        (None, _) => fail(p.end, "missing `dst`"),
        (_, None) => fail(p.end, "missing `spi`"),
    }
}

// ---- policies ----

const POLICY_UNSUPPORTED: &[&str] = &["index", "mark", "ctx", "flag", "limit", "if_id", "offload"];

const TMPL_WORDS: &[&str] = &["src", "dst", "proto", "spi", "mode", "reqid", "level"];

fn template(p: &mut Parser<'_>, tmpl: Tok<'_>) -> Result<Template, ParseError> {
    let mut t = Template::transport(0);
    let mut seen: Vec<&str> = Vec::new();
    let mut addrs: [Option<(Tok<'_>, IpAddr)>; 2] = [None, None];
    while let Some(k) = p.peek() {
        if !TMPL_WORDS.contains(&k.s) || seen.contains(&k.s) {
            break;
        }
        p.bump();
        seen.push(k.s);
        match k.s {
            "src" | "dst" => {
                let v = p.value(k.s, "an address")?;
                let a = at(v, parse_addr(v.s))?;
                addrs[usize::from(k.s == "dst")] = Some((v, a));
            }
            "proto" => {
                let v = p.value("proto", "esp")?;
                at(v, parse_xfrm_proto(v.s))?;
            }
            "spi" => {
                let v = p.value("spi", "an SPI")?;
                t.spi = Some(at(v, parse_u32(v.s))?).filter(|&s| s != 0);
            }
            "mode" => {
                let v = p.value("mode", "transport or tunnel")?;
                t.mode = at(v, parse_mode(v.s))?;
            }
            "reqid" => {
                let v = p.value("reqid", "a number")?;
                t.reqid = at(v, parse_u32(v.s))?;
            }
            _ => {
                let v = p.value("level", "required or use")?;
                t.level = at(v, parse_level(v.s))?;
            }
        }
    }
    if !seen.contains(&"proto") {
        return fail(
            p.peek().map_or(p.end, |n| n.col),
            format!("`tmpl` at column {} needs `proto esp`", tmpl.col),
        );
    }
    if let [Some((_, s)), Some((dt, d))] = addrs {
        if s.is_ipv4() != d.is_ipv4() {
            return fail(dt.col, "tmpl src and dst must be of the same family");
        }
    }
    // An unspecified address is no address (a transport template's).
    let some = |a: Option<(Tok<'_>, IpAddr)>| a.map(|(_, a)| a).filter(|a| !a.is_unspecified());
    t.src = some(addrs[0]);
    t.dst = some(addrs[1]);
    if t.mode == Mode::Tunnel && (t.src.is_none() || t.dst.is_none()) {
        return fail(tmpl.col, "a tunnel-mode tmpl needs its src and dst");
    }
    Ok(t)
}

/// Reads the arguments of `ip xfrm policy add`: a selector (`src`, `dst`, `proto`, `sport`,
/// `dport`, `type`, `code`; default any IPv4), `dir in|out|fwd` (required), `priority N`,
/// `action allow|block`, `ptype main`, and `tmpl ...` any number of times (innermost first).
pub fn parse_policy(line: &str) -> Result<PolicyConfig, ParseError> {
    let mut p = Parser::new(line)?;
    let mut sel: Option<Selector> = None;
    let mut dir: Option<Direction> = None;
    let mut priority = 0;
    let mut action = Action::Allow;
    let mut templates = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    while let Some(t) = p.peek() {
        if SELECTOR_WORDS.contains(&t.s) {
            if sel.is_some() {
                return fail(t.col, format!("`{}` given twice", t.s));
            }
            sel = Some(selector(&mut p, Family::V4)?);
            continue;
        }
        p.bump();
        if t.s != "tmpl" && seen.contains(&t.s) {
            return fail(t.col, format!("`{}` given twice", t.s));
        }
        seen.push(t.s);
        match t.s {
            "dir" => {
                let v = p.value("dir", "in, out or fwd")?;
                dir = Some(at(v, parse_dir(v.s))?);
            }
            "priority" => {
                let v = p.value("priority", "a number")?;
                priority = at(v, parse_u32(v.s))?;
            }
            "action" => {
                let v = p.value("action", "allow or block")?;
                action = at(v, parse_action(v.s))?;
            }
            "ptype" => {
                let v = p.value("ptype", "main")?;
                if v.s != "main" {
                    return fail(v.col, format!("ptype {}: only main is supported", v.s));
                }
            }
            "tmpl" => {
                if templates.len() == crate::spd::MAX_DEPTH {
                    return fail(t.col, format!("more than {} templates", crate::spd::MAX_DEPTH));
                }
                templates.push(template(&mut p, t)?);
            }
            kw if POLICY_UNSUPPORTED.contains(&kw) => {
                return fail(t.col, format!("`{kw}` is not supported"))
            }
            other => {
                return fail(t.col, format!(
                    "unexpected `{other}`: expected src, dst, proto, sport, dport, dir, priority, action or tmpl"
                ))
            }
        }
    }
    let Some(dir) = dir else {
        return fail(p.end, "missing `dir in|out|fwd`");
    };
    let cfg = PolicyConfig {
        selector: sel.unwrap_or(Selector::any(Family::V4)),
        dir,
        priority,
        action,
        templates,
    };
    cfg.validate().map_err(|e| ParseError {
        column: p.end,
        message: e.0,
    })?;
    Ok(cfg)
}

/// Reads the arguments of `ip xfrm policy delete`: a selector and `dir`.
pub fn parse_policy_id(line: &str) -> Result<(Direction, Selector), ParseError> {
    let mut p = Parser::new(line)?;
    let mut sel = None;
    let mut dir = None;
    while let Some(t) = p.peek() {
        if SELECTOR_WORDS.contains(&t.s) && sel.is_none() {
            sel = Some(selector(&mut p, Family::V4)?);
            continue;
        }
        p.bump();
        match t.s {
            "dir" if dir.is_none() => {
                let v = p.value("dir", "in, out or fwd")?;
                dir = Some(at(v, parse_dir(v.s))?);
            }
            "ptype" => {
                p.value("ptype", "main")?;
            }
            other => {
                return fail(
                    t.col,
                    format!("unexpected `{other}`: expected a selector or dir"),
                )
            }
        }
    }
    match dir {
        Some(d) => Ok((d, sel.unwrap_or(Selector::any(Family::V4)))),
        None => fail(p.end, "missing `dir in|out|fwd`"),
    }
}

// ---- printing ----

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The arguments of `ip xfrm state add` that [`parse_state`] reads back to this value.
impl fmt::Display for SaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "src {} dst {} proto esp spi 0x{:08x} reqid {} mode {}",
            self.src, self.dst, self.spi, self.reqid, self.mode
        )?;
        if self.replay_window != 0 {
            write!(f, " replay-window {}", self.replay_window)?;
        }
        if !self.flags.is_empty() {
            f.write_str(" flag")?;
            for n in self.flags.names() {
                write!(f, " {n}")?;
            }
        }
        for (kw, v) in [
            ("replay-seq", self.replay_seq),
            ("replay-oseq", self.replay_oseq),
        ] {
            if v as u32 != 0 {
                write!(f, " {kw} 0x{:x}", v as u32)?;
            }
            if v >> 32 != 0 {
                write!(f, " {kw}-hi 0x{:x}", v >> 32)?;
            }
        }
        write!(
            f,
            " aead '{}' {} {}",
            aead::ALG_NAME,
            Hex(&self.key),
            self.icv_bits
        )?;
        match &self.selector {
            Some(s) if self.flags.af_unspec || *s != Selector::any(self.family()) => {
                write!(f, " sel {s}")?
            }
            _ => {}
        }
        for (kw, v) in self.lifetime.items() {
            write!(f, " limit {kw} {v}")?;
        }
        Ok(())
    }
}

fn inf(v: Option<u64>) -> String {
    v.map_or_else(|| "(INF)".to_string(), |v| v.to_string())
}

/// As `ip xfrm state list` (`{:#}`: `ip -s xfrm state list`, with lifetimes and statistics;
/// times are the engine's clock).
impl fmt::Display for Sa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cfg;
        writeln!(f, "src {} dst {}", c.src, c.dst)?;
        writeln!(
            f,
            "\tproto esp spi 0x{:08x} reqid {} mode {}",
            c.spi, c.reqid, c.mode
        )?;
        // iproute2 passes windows above 32 and ESN ones in the ESN attribute, and the
        // classic field then reads 0.
        let esn_ctx = c.flags.esn || c.replay_window > 32;
        write!(
            f,
            "\treplay-window {} ",
            if esn_ctx { 0 } else { c.replay_window }
        )?;
        if !c.flags.is_empty() {
            let names: Vec<&str> = c.flags.names().collect();
            write!(f, "flag {}", names.join(" "))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "\taead {} {} {}",
            aead::ALG_NAME,
            Hex(&c.key),
            c.icv_bits
        )?;
        let bitmap = self.replay.linux_bitmap();
        if esn_ctx {
            writeln!(f, "\tanti-replay esn context:")?;
            writeln!(
                f,
                "\t seq-hi 0x{:x}, seq 0x{:x}, oseq-hi 0x{:x}, oseq 0x{:x}",
                self.seq() >> 32,
                self.seq() as u32,
                self.oseq >> 32,
                self.oseq as u32
            )?;
            write!(
                f,
                "\t replay_window {}, bitmap-length {}",
                c.replay_window,
                bitmap.len()
            )?;
            for (j, w) in bitmap.iter().rev().enumerate() {
                if j % 8 == 0 {
                    write!(f, "\n\t ")?;
                }
                write!(f, "{w:08x} ")?;
            }
            writeln!(f)?;
        } else {
            writeln!(
                f,
                "\tanti-replay context: seq 0x{:x}, oseq 0x{:x}, bitmap 0x{:08x}",
                self.seq(),
                self.oseq,
                bitmap.first().copied().unwrap_or(0)
            )?;
        }
        if let Some(s) = &c.selector {
            writeln!(f, "\tsel {s} ")?;
        }
        if f.alternate() {
            let lt = &c.lifetime;
            let secs = |v: Option<u64>| v.unwrap_or(0);
            writeln!(f, "\tlifetime config:")?;
            writeln!(
                f,
                "\t  limit: soft {}(bytes), hard {}(bytes)",
                inf(lt.soft_bytes),
                inf(lt.hard_bytes)
            )?;
            writeln!(
                f,
                "\t  limit: soft {}(packets), hard {}(packets)",
                inf(lt.soft_packets),
                inf(lt.hard_packets)
            )?;
            writeln!(
                f,
                "\t  expire add: soft {}(sec), hard {}(sec)",
                secs(lt.soft_add_secs),
                secs(lt.hard_add_secs)
            )?;
            writeln!(
                f,
                "\t  expire use: soft {}(sec), hard {}(sec)",
                secs(lt.soft_use_secs),
                secs(lt.hard_use_secs)
            )?;
            let k = &self.counters;
            writeln!(f, "\tlifetime current:")?;
            writeln!(f, "\t  {}(bytes), {}(packets)", k.bytes, k.packets)?;
            let used = self
                .used
                .map_or_else(|| "-".to_string(), |u| format!("{u:?}"));
            writeln!(f, "\t  add {:?} use {}", self.added, used)?;
            writeln!(f, "\tstats:")?;
            writeln!(
                f,
                "\t  replay-window {} replay {} failed {}",
                k.replay_window, k.replay, k.integrity_failed
            )?;
        }
        Ok(())
    }
}

fn any_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// The arguments of `ip xfrm policy add` that [`parse_policy`] reads back to this value.
impl fmt::Display for PolicyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dir {} priority {}",
            self.selector, self.dir, self.priority
        )?;
        if self.action == Action::Block {
            f.write_str(" action block")?;
        }
        for t in &self.templates {
            f.write_str(" tmpl")?;
            if let Some(s) = t.src {
                write!(f, " src {s}")?;
            }
            if let Some(d) = t.dst {
                write!(f, " dst {d}")?;
            }
            f.write_str(" proto esp")?;
            if let Some(s) = t.spi {
                write!(f, " spi 0x{s:08x}")?;
            }
            write!(f, " reqid {} mode {}", t.reqid, t.mode)?;
            if t.level == Level::Use {
                f.write_str(" level use")?;
            }
        }
        Ok(())
    }
}

/// As `ip xfrm policy list`.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cfg;
        writeln!(f, "{} ", c.selector)?;
        write!(f, "\tdir {} ", c.dir)?;
        if c.action == Action::Block {
            f.write_str("action block ")?;
        }
        writeln!(f, "priority {} ", c.priority)?;
        let family = c.selector.family();
        for t in &c.templates {
            let fam = t.dst.map_or(family, |d| Family::of(&d));
            writeln!(
                f,
                "\ttmpl src {} dst {}",
                t.src.unwrap_or(any_addr(fam)),
                t.dst.unwrap_or(any_addr(fam))
            )?;
            write!(f, "\t\tproto esp ")?;
            if let Some(s) = t.spi {
                write!(f, "spi 0x{s:08x} ")?;
            }
            writeln!(f, "reqid {} mode {}", t.reqid, t.mode)?;
            if t.level == Level::Use {
                writeln!(f, "\t\tlevel use ")?;
            }
        }
        Ok(())
    }
}

/// Every SA as `ip xfrm state list` prints them (`{:#}`: with `-s`).
#[derive(Debug)]
pub struct StateList<'a>(pub &'a Ipsec);

impl fmt::Display for StateList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (_, sa) in self.0.sas() {
            if f.alternate() {
                write!(f, "{sa:#}")?;
            } else {
                write!(f, "{sa}")?;
            }
        }
        Ok(())
    }
}

/// Every policy as `ip xfrm policy list` prints them.
#[derive(Debug)]
pub struct PolicyList<'a>(pub &'a Ipsec);

impl fmt::Display for PolicyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0.spd().iter() {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
