//! Why packets are dropped, and Linux's `/proc/net/xfrm_stat` counters they add to.
//!
//! Every drop has a typed reason ([`InDrop`] inbound, [`OutDrop`] outbound) that names the
//! `xfrm_stat` counter Linux would raise for it ([`XfrmStat`]); [`XfrmStats`] holds the
//! counters and prints them as the proc file does.

use core::fmt;

macro_rules! stats {
    ($($v:ident = $name:literal,)*) => {
        /// One counter of `/proc/net/xfrm_stat` (Linux 6.1's list, in its order).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // Each is Linux's counter of the same name.
        pub enum XfrmStat { $($v,)* }

        impl XfrmStat {
            /// Every counter, in the proc file's order.
            pub const ALL: &'static [XfrmStat] = &[$(XfrmStat::$v,)*];

            /// Its name in the proc file.
            pub fn name(self) -> &'static str {
                match self { $(XfrmStat::$v => $name,)* }
            }
        }
    };
}

stats! {
    InError = "XfrmInError",
    InBufferError = "XfrmInBufferError",
    InHdrError = "XfrmInHdrError",
    InNoStates = "XfrmInNoStates",
    InStateProtoError = "XfrmInStateProtoError",
    InStateModeError = "XfrmInStateModeError",
    InStateSeqError = "XfrmInStateSeqError",
    InStateExpired = "XfrmInStateExpired",
    InStateMismatch = "XfrmInStateMismatch",
    InStateInvalid = "XfrmInStateInvalid",
    InTmplMismatch = "XfrmInTmplMismatch",
    InNoPols = "XfrmInNoPols",
    InPolBlock = "XfrmInPolBlock",
    InPolError = "XfrmInPolError",
    OutError = "XfrmOutError",
    OutBundleGenError = "XfrmOutBundleGenError",
    OutBundleCheckError = "XfrmOutBundleCheckError",
    OutNoStates = "XfrmOutNoStates",
    OutStateProtoError = "XfrmOutStateProtoError",
    OutStateModeError = "XfrmOutStateModeError",
    OutStateSeqError = "XfrmOutStateSeqError",
    OutStateExpired = "XfrmOutStateExpired",
    OutPolBlock = "XfrmOutPolBlock",
    OutPolDead = "XfrmOutPolDead",
    OutPolError = "XfrmOutPolError",
    FwdHdrError = "XfrmFwdHdrError",
    OutStateInvalid = "XfrmOutStateInvalid",
    AcquireError = "XfrmAcquireError",
}

/// Why an inbound packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InDrop {
    /// Not an IPv4 or IPv6 packet carrying ESP.
    NotEsp,
    /// A fragment: ESP is decapsulated only after reassembly.
    Fragment,
    /// Fewer than the 8 bytes of the ESP header.
    TruncatedHeader,
    /// The packet was already decapsulated as often as a security path records (6).
    SecPathFull,
    /// No SA for the destination address and SPI.
    NoState,
    /// Sequence number 0.
    SeqZero,
    /// Sequence number below the anti-replay window.
    TooOld,
    /// Sequence number already received.
    Replayed,
    /// The SA reached a hard byte or packet limit with this packet.
    Expired,
    /// Too short for the IV, the ICV and the trailer.
    Truncated,
    /// The ICV did not verify.
    Integrity,
    /// The pad length points before the payload.
    BadPadLength,
    /// The padding is not 1, 2, 3, ...
    BadPadding,
    /// Tunnel mode: the next header is not IPv4 or IPv6, or the inner packet is malformed.
    BadInner,
    /// The inbound policy blocks the flow.
    PolicyBlock,
    /// The inbound policy asks for IPsec and the packet came in clear.
    Unprotected,
    /// The packet was decapsulated by SAs other than the policy's templates ask for.
    TemplateMismatch,
    /// The packet came through a tunnel-mode SA and no inbound policy selects its flow.
    NoPolicy,
}

impl InDrop {
    /// The `xfrm_stat` counter Linux raises for it.
    pub fn stat(self) -> XfrmStat {
        use InDrop::*;
        match self {
            NotEsp | Fragment | TruncatedHeader => XfrmStat::InHdrError,
            SecPathFull => XfrmStat::InBufferError,
            NoState => XfrmStat::InNoStates,
            SeqZero | TooOld | Replayed => XfrmStat::InStateSeqError,
            Expired => XfrmStat::InStateExpired,
            Truncated | Integrity | BadPadLength | BadPadding => XfrmStat::InStateProtoError,
            BadInner => XfrmStat::InStateModeError,
            PolicyBlock => XfrmStat::InPolBlock,
            Unprotected | TemplateMismatch => XfrmStat::InTmplMismatch,
            NoPolicy => XfrmStat::InNoPols,
        }
    }

    /// A short name, for events and logs.
    pub fn name(self) -> &'static str {
        use InDrop::*;
        match self {
            NotEsp => "not-esp",
            Fragment => "fragment",
            TruncatedHeader => "truncated-header",
            SecPathFull => "secpath-full",
            NoState => "no-state",
            SeqZero => "seq-zero",
            TooOld => "too-old",
            Replayed => "replayed",
            Expired => "expired",
            Truncated => "truncated",
            Integrity => "integrity",
            BadPadLength => "bad-pad-length",
            BadPadding => "bad-padding",
            BadInner => "bad-inner",
            PolicyBlock => "policy-block",
            Unprotected => "unprotected",
            TemplateMismatch => "template-mismatch",
            NoPolicy => "no-policy",
        }
    }
}

/// Why an outbound packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutDrop {
    /// The outbound policy blocks the flow.
    PolicyBlock,
    /// A template of the policy has no SA (an `Acquire` event asks for one).
    NoState,
    /// More than 6 templates (Linux's `XFRM_MAX_DEPTH`).
    BundleTooDeep,
    /// The SA sent its last sequence number.
    SeqExhausted,
    /// The SA reached a hard byte or packet limit with this packet.
    Expired,
    /// Not an IPv4 or IPv6 packet, or a transport-mode SA of the other family.
    BadPacket,
    /// The result would not fit in an IP packet (65535 bytes).
    TooBig,
    /// The cipher refused the input.
    Crypto,
}

impl OutDrop {
    /// The `xfrm_stat` counter Linux raises for it.
    pub fn stat(self) -> XfrmStat {
        use OutDrop::*;
        match self {
            PolicyBlock => XfrmStat::OutPolBlock,
            NoState => XfrmStat::OutNoStates,
            BundleTooDeep => XfrmStat::OutBundleGenError,
            SeqExhausted => XfrmStat::OutStateSeqError,
            Expired => XfrmStat::OutStateExpired,
            BadPacket => XfrmStat::OutStateModeError,
            TooBig => XfrmStat::OutError,
            Crypto => XfrmStat::OutStateProtoError,
        }
    }

    /// A short name, for events and logs.
    pub fn name(self) -> &'static str {
        use OutDrop::*;
        match self {
            PolicyBlock => "policy-block",
            NoState => "no-state",
            BundleTooDeep => "bundle-too-deep",
            SeqExhausted => "seq-exhausted",
            Expired => "expired",
            BadPacket => "bad-packet",
            TooBig => "too-big",
            Crypto => "crypto",
        }
    }
}

impl fmt::Display for InDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for OutDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `xfrm_stat` counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XfrmStats {
    counts: [u64; 28],
}

impl XfrmStats {
    /// The value of one counter.
    pub fn get(&self, s: XfrmStat) -> u64 {
        self.counts[s as usize]
    }

    /// Adds one to a counter.
    pub fn bump(&mut self, s: XfrmStat) {
        self.counts[s as usize] += 1;
    }

    /// Every counter with its name, in the proc file's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        XfrmStat::ALL.iter().map(|&s| (s.name(), self.get(s)))
    }

    /// The sum of every counter: each drop adds exactly one.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// As `/proc/net/xfrm_stat`: one `name<TAB>value` line per counter, the name left-aligned in
/// 24 columns.
impl fmt::Display for XfrmStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, v) in self.iter() {
            writeln!(f, "{name:<24}\t{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_file_layout() {
        let mut s = XfrmStats::default();
        s.bump(InDrop::Replayed.stat());
        s.bump(InDrop::TooOld.stat());
        s.bump(OutDrop::NoState.stat());
        let text = s.to_string();
        assert_eq!(text.lines().count(), XfrmStat::ALL.len());
        assert!(text.starts_with("XfrmInError             \t0\n"));
        assert!(text.contains("XfrmInStateSeqError     \t2\n"));
        assert!(text.contains("XfrmOutNoStates         \t1\n"));
        assert_eq!(s.total(), 3);
        assert_eq!(XfrmStat::ALL.len(), 28);
    }
}
