//! Security associations: their configuration ([`SaConfig`], what `ip xfrm state add` says)
//! and their run-time state ([`Sa`]: key, sequence numbers, window, lifetimes, counters).

use crate::aead::{self, GcmKey};
use crate::flow::Selector;
use crate::replay::{ReplayWindow, MAX_REPLAY_WINDOW};
use conntrack::tuple::Family;
use core::fmt;
use std::net::IpAddr;
use std::time::Duration;
use wire::Instant;

/// Encapsulation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// ESP between the IP header and the payload; the endpoints are the packet's.
    #[default]
    Transport,
    /// The whole packet inside a new outer header between the SA's endpoints.
    Tunnel,
}

impl Mode {
    /// `transport` or `tunnel`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Transport => "transport",
            Mode::Tunnel => "tunnel",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `flag` words of `ip xfrm state` that this crate honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SaFlags {
    /// `noecn`: no ECN propagation (RFC 6040) between outer and inner header.
    pub noecn: bool,
    /// `decap-dscp`: copy the outer DSCP into the inner header on decapsulation.
    pub decap_dscp: bool,
    /// `nopmtudisc`: the outer IPv4 header never has DF.
    pub nopmtudisc: bool,
    /// `af-unspec`: without a `sel`, the SA selects flows of both families (otherwise only
    /// its own, as Linux fills the selector's family from the SA's).
    pub af_unspec: bool,
    /// `esn`: 64-bit extended sequence numbers (RFC 4304).
    pub esn: bool,
}

impl SaFlags {
    /// The set flags' names in `ip xfrm`'s order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.noecn, "noecn"),
            (self.decap_dscp, "decap-dscp"),
            (self.nopmtudisc, "nopmtudisc"),
            (self.af_unspec, "af-unspec"),
            (self.esn, "esn"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
    }

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }
}

/// Soft and hard limits (`limit ...`); `None` is unlimited. As in Linux, a byte or packet
/// limit is reached when the count before a packet is at least the limit (the packet that
/// crosses it still passes), and an add-time or use-time limit of 0 seconds is no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Lifetime {
    /// `byte-soft`.
    pub soft_bytes: Option<u64>,
    /// `byte-hard`.
    pub hard_bytes: Option<u64>,
    /// `packet-soft`.
    pub soft_packets: Option<u64>,
    /// `packet-hard`.
    pub hard_packets: Option<u64>,
    /// `time-soft`: seconds after the SA was added.
    pub soft_add_secs: Option<u64>,
    /// `time-hard`.
    pub hard_add_secs: Option<u64>,
    /// `time-use-soft`: seconds after the SA's first use.
    pub soft_use_secs: Option<u64>,
    /// `time-use-hard`.
    pub hard_use_secs: Option<u64>,
}

impl Lifetime {
    /// `(keyword, value)` of each set limit, in `ip xfrm`'s order.
    pub fn items(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("time-soft", self.soft_add_secs),
            ("time-hard", self.hard_add_secs),
            ("time-use-soft", self.soft_use_secs),
            ("time-use-hard", self.hard_use_secs),
            ("byte-soft", self.soft_bytes),
            ("byte-hard", self.hard_bytes),
            ("packet-soft", self.soft_packets),
            ("packet-hard", self.hard_packets),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }

    /// Sets the limit named `keyword` (`time-soft`, ..., `packet-hard`); false if unknown.
    pub fn set(&mut self, keyword: &str, v: u64) -> bool {
        let slot = match keyword {
            "time-soft" => &mut self.soft_add_secs,
            "time-hard" => &mut self.hard_add_secs,
            "time-use-soft" => &mut self.soft_use_secs,
            "time-use-hard" => &mut self.hard_use_secs,
            "byte-soft" => &mut self.soft_bytes,
            "byte-hard" => &mut self.hard_bytes,
            "packet-soft" => &mut self.soft_packets,
            "packet-hard" => &mut self.hard_packets,
            _ => return false,
        };
        *slot = Some(v);
        true
    }
}

/// Which limit a lifetime event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// A byte count.
    Bytes,
    /// A packet count.
    Packets,
    /// Seconds since the SA was added.
    AddTime,
    /// Seconds since its first use.
    UseTime,
}

impl Limit {
    /// `bytes`, `packets`, `add-time` or `use-time`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Bytes => "bytes",
            Limit::Packets => "packets",
            Limit::AddTime => "add-time",
            Limit::UseTime => "use-time",
        }
    }
}

/// One SA as configured (`ip xfrm state add ...`); [`SaConfig::validate`] checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct SaConfig {
    /// Source of the ESP packets (the tunnel's local end outbound, the peer inbound).
    pub src: IpAddr,
    /// Destination of the ESP packets: with the SPI, the inbound lookup key.
    pub dst: IpAddr,
    /// Security Parameters Index (not 0).
    pub spi: u32,
    /// Request id binding the SA to policy templates.
    pub reqid: u32,
    /// Transport or tunnel.
    pub mode: Mode,
    /// Anti-replay window (0: off; at most 4096).
    pub replay_window: u32,
    /// Flags.
    pub flags: SaFlags,
    /// `rfc4106(gcm(aes))` key material: the AES key then the 4-byte salt (20, 28 or 36 bytes).
    pub key: Vec<u8>,
    /// The ICV length in bits (only 128).
    pub icv_bits: u32,
    /// The flows the SA carries; `None` (with `flag af-unspec` and no `sel`) is every flow.
    pub selector: Option<Selector>,
    /// Limits.
    pub lifetime: Lifetime,
    /// Initial inbound top sequence number (`replay-seq`, `replay-seq-hi`).
    pub replay_seq: u64,
    /// Initial outbound sequence number, the last one sent (`replay-oseq`, `replay-oseq-hi`).
    pub replay_oseq: u64,
}

/// The key stays out of `Debug` output (logs): only its length shows.
impl fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("reqid", &self.reqid)
            .field("mode", &self.mode)
            .field("replay_window", &self.replay_window)
            .field("flags", &self.flags)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("selector", &self.selector)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// What is wrong with an [`SaConfig`] or a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl SaConfig {
    /// A tunnel or transport SA with defaults: reqid 0, no window, no flags, the selector any
    /// flow of the SA's family, no limits.
    pub fn new(src: IpAddr, dst: IpAddr, spi: u32, mode: Mode, key: Vec<u8>) -> SaConfig {
        SaConfig {
            src,
            dst,
            spi,
            reqid: 0,
            mode,
            replay_window: 0,
            flags: SaFlags::default(),
            key,
            icv_bits: aead::ICV_BITS,
            selector: Some(Selector::any(Family::of(&src))),
            lifetime: Lifetime::default(),
            replay_seq: 0,
            replay_oseq: 0,
        }
    }

    /// The family of the endpoints.
    pub fn family(&self) -> Family {
        Family::of(&self.dst)
    }

    /// Checks what Linux and iproute2 check, and what this crate supports.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            return err("src and dst must be of the same family");
        }
        if self.spi == 0 {
            return err("spi 0 is reserved (RFC 4303)");
        }
        if let Err(e) = GcmKey::new(&self.key) {
            return err(e.to_string());
        }
        if self.icv_bits != aead::ICV_BITS {
            return err(format!(
                "ICV length {} bits: only {} is supported",
                self.icv_bits,
                aead::ICV_BITS
            ));
        }
        if self.replay_window > MAX_REPLAY_WINDOW {
            return err(format!(
                "replay-window {} is above {MAX_REPLAY_WINDOW}",
                self.replay_window
            ));
        }
        if self.flags.esn && self.replay_window == 0 {
            return err("flag esn needs a replay-window above 0");
        }
        if !self.flags.esn
            && (self.replay_seq > u64::from(u32::MAX) || self.replay_oseq > u64::from(u32::MAX))
        {
            return err("replay-seq-hi and replay-oseq-hi need flag esn");
        }
        if let Some(sel) = &self.selector {
            if sel.src.family() != sel.dst.family() {
                return err("the selector's src and dst must be of the same family");
            }
            if self.mode == Mode::Transport && sel.family() != self.family() {
                return err(
                    "a transport-mode SA carries its own family: the selector must be of it too",
                );
            }
        }
        Ok(())
    }
}

/// An SA's counters (`ip -s xfrm state`: lifetime current and stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets processed.
    pub packets: u64,
    /// Bytes processed: inbound the decrypted payload, outbound the packet before its trailer
    /// (as Linux's `curlft.bytes`).
    pub bytes: u64,
    /// Packets refused as already received (`stats: replay`).
    pub replay: u64,
    /// Packets refused as below the window (`stats: replay-window`).
    pub replay_window: u64,
    /// Packets whose ICV failed (`stats: failed`).
    pub integrity_failed: u64,
    /// Dummy packets (next header 59) received and dropped.
    pub dummy: u64,
}

/// One SA at run time.
#[derive(Debug)]
pub struct Sa {
    pub(crate) cfg: SaConfig,
    pub(crate) key: GcmKey,
    pub(crate) replay: ReplayWindow,
    /// The last sequence number sent.
    pub(crate) oseq: u64,
    pub(crate) added: Instant,
    pub(crate) used: Option<Instant>,
    /// A soft limit was reached (Linux's `km.dying`): still used, but a fresher SA wins.
    pub(crate) dying: bool,
    /// The last sequence number was sent; the exhaustion event went out.
    pub(crate) exhausted: bool,
    pub(crate) counters: SaCounters,
    /// Identification field of the next outer IPv4 header.
    pub(crate) ident: u16,
    /// When each timed limit fires, `None` once fired or when absent: soft add, hard add,
    /// soft use, hard use.
    pub(crate) deadlines: [Option<Instant>; 4],
}

impl Sa {
    /// Builds the run-time SA; `cfg` must have passed [`SaConfig::validate`].
    pub(crate) fn new(cfg: SaConfig, now: Instant) -> Result<Sa, ConfigError> {
        cfg.validate()?;
        let key = GcmKey::new(&cfg.key).map_err(|e| ConfigError(e.to_string()))?;
        let mut replay = ReplayWindow::new(cfg.replay_window, cfg.flags.esn);
        replay.set_top(cfg.replay_seq);
        let after = |s: Option<u64>| s.filter(|&s| s > 0).map(|s| now + Duration::from_secs(s));
        let deadlines = [
            after(cfg.lifetime.soft_add_secs),
            after(cfg.lifetime.hard_add_secs),
            None,
            None,
        ];
        Ok(Sa {
            oseq: cfg.replay_oseq,
            ident: (cfg.spi ^ (cfg.spi >> 16)) as u16,
            cfg,
            key,
            replay,
            added: now,
            used: None,
            dying: false,
            exhausted: false,
            counters: SaCounters::default(),
            deadlines,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The last sequence number sent.
    pub fn oseq(&self) -> u64 {
        self.oseq
    }

    /// The highest sequence number received.
    pub fn seq(&self) -> u64 {
        self.replay.top()
    }

    /// Whether a soft limit was reached.
    pub fn is_dying(&self) -> bool {
        self.dying
    }

    /// Whether the last sequence number was sent.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// When the SA was added.
    pub fn added(&self) -> Instant {
        self.added
    }

    /// When it was first used.
    pub fn used(&self) -> Option<Instant> {
        self.used
    }

    /// The last sequence number the SA may send.
    pub(crate) fn max_seq(&self) -> u64 {
        if self.cfg.flags.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// The earliest timed limit still to fire.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Records the first use, arming the use-time limits.
    pub(crate) fn touch(&mut self, now: Instant) {
        if self.used.is_none() {
            self.used = Some(now);
            let lt = &self.cfg.lifetime;
            let after = |s: Option<u64>| s.filter(|&s| s > 0).map(|s| now + Duration::from_secs(s));
            self.deadlines[2] = after(lt.soft_use_secs);
            self.deadlines[3] = after(lt.hard_use_secs);
        }
    }

    /// Linux's `xfrm_state_check_expire` for the counts: `Err` when a hard limit is reached
    /// (the SA must go), `Ok(Some(limit))` when a soft one is reached now for the first time.
    pub(crate) fn check_counts(&mut self) -> Result<Option<Limit>, Limit> {
        let lt = &self.cfg.lifetime;
        let c = &self.counters;
        let reached = |limit: Option<u64>, v: u64| limit.is_some_and(|l| v >= l);
        if reached(lt.hard_bytes, c.bytes) {
            return Err(Limit::Bytes);
        }
        if reached(lt.hard_packets, c.packets) {
            return Err(Limit::Packets);
        }
        if !self.dying {
            let soft = if reached(lt.soft_bytes, c.bytes) {
                Some(Limit::Bytes)
            } else if reached(lt.soft_packets, c.packets) {
                Some(Limit::Packets)
            } else {
                None
            };
            if soft.is_some() {
                self.dying = true;
                return Ok(soft);
            }
        }
        Ok(None)
    }
}
