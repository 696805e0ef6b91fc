//! The TOML configuration (the contract in DESIGN.md, "Configuration").
//!
//! Errors name `file:line:column` and what was expected. Unknown keys are
//! errors too: a typo must not silently change what the router does.

use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Kind of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceKind {
    /// Layer 3: raw IP packets.
    Tun,
    /// Layer 2: Ethernet frames.
    Tap,
}

/// One `[[interface]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Device name.
    pub name: String,
    /// TUN or TAP.
    pub kind: IfaceKind,
    /// MTU of the link.
    pub mtu: u32,
    /// The router's own addresses on this link (with their prefixes).
    pub addresses: Vec<IpNet>,
    /// Namespace to move the device into.
    pub netns: Option<String>,
    /// Kernel-side addresses in that namespace.
    pub peer_addresses: Vec<IpNet>,
    /// Kernel-side routes via this device ("default" or a prefix).
    pub peer_routes: Vec<String>,
    /// Segmentation and checksum offload (`IFF_VNET_HDR`, TSO and checksum offload towards
    /// the kernel): TCP travels as super-packets of up to 64 KiB. TUN only; all interfaces or
    /// none.
    pub offload: bool,
}

/// One `[[route]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Egress interface name.
    pub interface: String,
    /// Next hop, if not on-link.
    pub via: Option<IpAddr>,
}

/// `[rules]`: rule files, resolved against the config file's folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// iptables-save file.
    pub ipv4: Option<PathBuf>,
    /// ip6tables-save file.
    pub ipv6: Option<PathBuf>,
}

/// Default of `[conntrack] new_flows_per_batch`.
pub const DEFAULT_NEW_FLOWS_PER_BATCH: usize = 8;

/// `[conntrack]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Maximum number of connections.
    pub max: usize,
    /// Timeout overrides by name (`tcp_established = 3600`), in seconds.
    pub timeouts: Vec<(String, u64)>,
    /// Pick up TCP connections seen mid-stream (`nf_conntrack_tcp_loose`).
    pub tcp_loose: bool,
    /// Accept out-of-window TCP packets (`nf_conntrack_tcp_be_liberal`).
    pub tcp_be_liberal: bool,
    /// Verify L4 checksums of packets entering the router (`nf_conntrack_checksum`).
    pub checksum: bool,
    /// Live router only: most new connections each shard's part of a worker's read batch
    /// may start; packets of further new connections are dropped and counted (0: no limit).
    /// See [`crate::engine::Engine::set_new_flow_budget`].
    pub new_flows_per_batch: usize,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max: 262_144,
            timeouts: Vec::new(),
            tcp_loose: true,
            tcp_be_liberal: false,
            checksum: true,
            new_flows_per_batch: DEFAULT_NEW_FLOWS_PER_BATCH,
        }
    }
}

/// `[nat]`: how UDP mappings behave (RFC 4787). The defaults are netfilter's:
/// address-and-port-dependent mapping and filtering, refreshed by traffic in
/// both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// `udp_mapping = "endpoint-independent"`: one external port per internal
    /// endpoint whatever the destination (REQ-1).
    pub udp_eim: bool,
    /// `udp_filtering = "endpoint-independent"`: any external host may send to
    /// a mapped port and reach the internal endpoint (REQ-8, "full cone").
    /// Needs endpoint-independent mapping.
    pub udp_eif: bool,
    /// `udp_refresh = "outbound"`: only packets from the internal endpoint keep
    /// the mapping alive (REQ-6 allows this).
    pub udp_outbound_refresh: bool,
}

/// `[defrag]`: limits of fragment reassembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragSettings {
    /// Limits handed to the reassembly module.
    pub limits: l3proto::defrag::DefragConfig,
    /// Send ICMP Time Exceeded (code 1) when a datagram whose first fragment
    /// arrived times out. Off by default: a transit router stays silent.
    pub time_exceeded: bool,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Interfaces, in file order (an interface's index is its id).
    pub interfaces: Vec<InterfaceConfig>,
    /// Static routes.
    pub routes: Vec<RouteConfig>,
    /// Rule files.
    pub rules: RulesConfig,
    /// Conntrack settings.
    pub conntrack: ConntrackConfig,
    /// NAT behaviour.
    pub nat: NatConfig,
    /// Fragment reassembly.
    pub defrag: DefragSettings,
    /// Folder of the config file (relative paths are resolved against it).
    pub base_dir: PathBuf,
    /// The config file itself.
    pub path: PathBuf,
}

/// A configuration error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in.
    pub file: String,
    /// 1-based line (0 if unknown).
    pub line: usize,
    /// 1-based column (0 if unknown).
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    rules: Option<RawRules>,
    #[serde(default)]
    conntrack: Option<RawConntrack>,
    #[serde(default)]
    nat: Option<RawNat>,
    #[serde(default)]
    defrag: Option<RawDefrag>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefrag {
    #[serde(default)]
    timeout: Option<Spanned<i64>>,
    #[serde(default)]
    memory_high: Option<Spanned<i64>>,
    #[serde(default)]
    memory_low: Option<Spanned<i64>>,
    #[serde(default)]
    max_datagrams: Option<Spanned<i64>>,
    #[serde(default)]
    max_fragments: Option<Spanned<i64>>,
    #[serde(default)]
    per_source: Option<Spanned<i64>>,
    #[serde(default)]
    time_exceeded: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat {
    #[serde(default)]
    udp_mapping: Option<Spanned<String>>,
    #[serde(default)]
    udp_filtering: Option<Spanned<String>>,
    #[serde(default)]
    udp_refresh: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    mtu: Option<Spanned<i64>>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    netns: Option<Spanned<String>>,
    #[serde(default)]
    peer_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    peer_routes: Vec<Spanned<String>>,
    #[serde(default)]
    offload: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Spanned<String>,
    interface: Spanned<String>,
    #[serde(default)]
    via: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    ipv6: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConntrack {
    #[serde(default)]
    max: Option<Spanned<i64>>,
    #[serde(default)]
    tcp_loose: Option<bool>,
    #[serde(default)]
    tcp_be_liberal: Option<bool>,
    #[serde(default)]
    checksum: Option<bool>,
    #[serde(default)]
    new_flows_per_batch: Option<Spanned<i64>>,
    #[serde(default)]
    timeouts: Option<toml::Table>,
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err(s.span().start, message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut c = Config::parse(&text, &path.display().to_string(), &base)?;
        c.path = path.to_path_buf();
        Ok(c)
    }

    /// Parses config text; `file` names it in errors, `base_dir` resolves paths.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx {
            file: file.to_string(),
            text,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let off = e.span().map_or(0, |s| s.start);
            let msg = e.message().to_string();
            let mut err = cx.err(off, msg);
            if e.span().is_none() {
                err.line = 0;
            }
            err
        })?;
        let mut interfaces = Vec::new();
        for i in &raw.interface {
            let name = i.name.get_ref().clone();
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                return Err(cx.at(
                    &i.name,
                    "expected an interface name of 1 to 15 characters without '/' or spaces",
                ));
            }
            if interfaces.iter().any(|o: &InterfaceConfig| o.name == name) {
                return Err(cx.at(&i.name, format!("duplicate interface name {name:?}")));
            }
            let kind = match i.kind.get_ref().as_str() {
                "tun" => IfaceKind::Tun,
                "tap" => IfaceKind::Tap,
                other => {
                    return Err(cx.at(
                        &i.kind,
                        format!("expected \"tun\" or \"tap\", found {other:?}"),
                    ))
                }
            };
            let mtu = match &i.mtu {
                None => 1500,
                Some(m) => {
                    let v = *m.get_ref();
                    // IPv6 needs 1280 (RFC 8200 §5); IPv4 needs 68 (RFC 791).
                    let min = if i.addresses.iter().any(|a| a.get_ref().contains(':')) {
                        1280
                    } else {
                        68
                    };
                    if !(min..=65535).contains(&v) {
                        return Err(cx.at(
                            m,
                            format!("expected an MTU between {min} and 65535, found {v}"),
                        ));
                    }
                    v as u32
                }
            };
            let nets = |v: &[Spanned<String>]| -> Result<Vec<IpNet>, ConfigError> {
                v.iter()
                    .map(|s| {
                        s.get_ref().parse::<IpNet>().map_err(|_| {
                            cx.at(s, format!("expected an address with prefix length like \"192.0.2.1/24\" or \"2001:db8::1/64\", found {:?}", s.get_ref()))
                        })
                    })
                    .collect()
            };
            let addresses = nets(&i.addresses)?;
            let peer_addresses = nets(&i.peer_addresses)?;
            let mut peer_routes = Vec::new();
            for r in &i.peer_routes {
                let v = r.get_ref();
                if v != "default" && v.parse::<IpNet>().is_err() {
                    return Err(cx.at(r, format!("expected \"default\" or a prefix like \"198.51.100.0/24\", found {v:?}")));
                }
                peer_routes.push(v.clone());
            }
            if (!peer_addresses.is_empty() || !peer_routes.is_empty()) && i.netns.is_none() {
                let s = i
                    .peer_addresses
                    .first()
                    .or(i.peer_routes.first())
                    .unwrap_or(&i.name);
                return Err(cx.at(
                    s,
                    "peer_addresses and peer_routes need `netns` (the namespace to configure)",
                ));
            }
            let netns = match &i.netns {
                Some(n) if n.get_ref().is_empty() || n.get_ref().contains('/') => {
                    return Err(cx.at(n, "expected a network namespace name"))
                }
                Some(n) => Some(n.get_ref().clone()),
                None => None,
            };
            let offload = i.offload.as_ref().is_some_and(|o| *o.get_ref());
            if let Some(o) = &i.offload {
                if offload && kind != IfaceKind::Tun {
                    return Err(cx.at(o, "offload is supported on tun interfaces only"));
                }
                if interfaces.first().is_some_and(|f| f.offload != offload) {
                    return Err(cx.at(
                        o,
                        "offload must be set on every interface or on none (a segmented packet may leave by any of them)",
                    ));
                }
            } else if offload_seen(&interfaces) {
                return Err(cx.at(
                    &i.name,
                    "offload must be set on every interface or on none (a segmented packet may leave by any of them)",
                ));
            }
            interfaces.push(InterfaceConfig {
                name,
                kind,
                mtu,
                addresses,
                netns,
                peer_addresses,
                peer_routes,
                offload,
            });
        }
        let mut routes = Vec::new();
        for r in &raw.route {
            let prefix = r.prefix.get_ref().parse::<IpNet>().map_err(|_| {
                cx.at(
                    &r.prefix,
                    format!(
                        "expected a prefix like \"0.0.0.0/0\" or \"2001:db8::/32\", found {:?}",
                        r.prefix.get_ref()
                    ),
                )
            })?;
            if !interfaces.iter().any(|i| &i.name == r.interface.get_ref()) {
                return Err(cx.at(
                    &r.interface,
                    format!("no [[interface]] named {:?}", r.interface.get_ref()),
                ));
            }
            let via = match &r.via {
                None => None,
                Some(v) => {
                    let a = v.get_ref().parse::<IpAddr>().map_err(|_| {
                        cx.at(
                            v,
                            format!("expected a next-hop address, found {:?}", v.get_ref()),
                        )
                    })?;
                    if a.is_ipv4() != prefix.addr().is_ipv4() {
                        return Err(
                            cx.at(v, "next hop and prefix are of different address families")
                        );
                    }
                    Some(a)
                }
            };
            routes.push(RouteConfig {
                prefix: prefix.trunc(),
                interface: r.interface.get_ref().clone(),
                via,
            });
        }
        let rules = raw
            .rules
            .map_or_else(RulesConfig::default, |r| RulesConfig {
                ipv4: r.ipv4.map(|p| base_dir.join(p)),
                ipv6: r.ipv6.map(|p| base_dir.join(p)),
            });
        let mut conntrack = ConntrackConfig::default();
        if let Some(c) = raw.conntrack {
            if let Some(m) = &c.max {
                let v = *m.get_ref();
                if !(1..=(1 << 30)).contains(&v) {
                    return Err(cx.at(
                        m,
                        format!("expected a maximum between 1 and 1073741824, found {v}"),
                    ));
                }
                conntrack.max = v as usize;
            }
            conntrack.tcp_loose = c.tcp_loose.unwrap_or(conntrack.tcp_loose);
            conntrack.tcp_be_liberal = c.tcp_be_liberal.unwrap_or(conntrack.tcp_be_liberal);
            conntrack.checksum = c.checksum.unwrap_or(conntrack.checksum);
            if let Some(m) = &c.new_flows_per_batch {
                let v = *m.get_ref();
                if !(0..=65_536).contains(&v) {
                    return Err(cx.at(
                        m,
                        format!(
                            "expected a number of new connections per batch between 0 (no \
                             limit) and 65536, found {v}"
                        ),
                    ));
                }
                conntrack.new_flows_per_batch = v as usize;
            }
            if let Some(t) = c.timeouts {
                let mut probe = l4proto::Timeouts::default();
                for (k, v) in t {
                    let off = text
                        .find(&format!("{k} "))
                        .or_else(|| text.find(&format!("{k}=")))
                        .unwrap_or(0);
                    let secs = v.as_integer().filter(|s| *s >= 0).ok_or_else(|| {
                        cx.err(off, format!("timeout {k:?}: expected a number of seconds"))
                    })? as u64;
                    probe.set(&k, secs).map_err(|e| cx.err(off, e))?;
                    conntrack.timeouts.push((k, secs));
                }
            }
        }
        let mut nat = NatConfig::default();
        if let Some(n) = raw.nat {
            let choice = |v: &Option<Spanned<String>>,
                          what: &str,
                          yes: &str,
                          no: &str|
             -> Result<Option<bool>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(s) if s.get_ref() == yes => Ok(Some(true)),
                    Some(s) if s.get_ref() == no => Ok(Some(false)),
                    Some(s) => Err(cx.at(
                        s,
                        format!(
                            "{what}: expected \"{yes}\" or \"{no}\", found {:?}",
                            s.get_ref()
                        ),
                    )),
                }
            };
            const EI: &str = "endpoint-independent";
            const APD: &str = "address-and-port-dependent";
            nat.udp_eim = choice(&n.udp_mapping, "udp_mapping", EI, APD)?.unwrap_or(false);
            nat.udp_eif = choice(&n.udp_filtering, "udp_filtering", EI, APD)?.unwrap_or(false);
            nat.udp_outbound_refresh =
                choice(&n.udp_refresh, "udp_refresh", "outbound", "both")?.unwrap_or(false);
            if nat.udp_eif && !nat.udp_eim {
                if let Some(f) = &n.udp_filtering {
                    return Err(cx.at(
                        f,
                        "udp_filtering = \"endpoint-independent\" needs udp_mapping = \"endpoint-independent\" (RFC 4787 REQ-8 filters on the mapping)",
                    ));
                }
            }
        }
        let mut defrag = DefragSettings::default();
        if let Some(d) = raw.defrag {
            let num = |v: &Option<Spanned<i64>>,
                       what: &str,
                       lo: i64,
                       hi: i64|
             -> Result<Option<usize>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(Some(*s.get_ref() as usize)),
                    Some(s) => Err(cx.at(
                        s,
                        format!(
                            "{what}: expected a number between {lo} and {hi}, found {}",
                            s.get_ref()
                        ),
                    )),
                }
            };
            let l = &mut defrag.limits;
            if let Some(t) = num(&d.timeout, "timeout (seconds)", 1, 3600)? {
                l.timeout = Duration::from_secs(t as u64);
            }
            l.mem_high =
                num(&d.memory_high, "memory_high (bytes)", 65_536, 1 << 34)?.unwrap_or(l.mem_high);
            l.mem_low = num(&d.memory_low, "memory_low (bytes)", 0, 1 << 34)?
                .unwrap_or(l.mem_low.min(l.mem_high));
            l.max_datagrams =
                num(&d.max_datagrams, "max_datagrams", 1, 1 << 20)?.unwrap_or(l.max_datagrams);
            l.max_fragments =
                num(&d.max_fragments, "max_fragments", 2, 8192)?.unwrap_or(l.max_fragments);
            l.per_source = num(&d.per_source, "per_source", 1, 1 << 20)?.unwrap_or(l.per_source);
            if l.mem_low > l.mem_high {
                let at = d.memory_low.as_ref().or(d.memory_high.as_ref());
                let msg = format!(
                    "memory_low ({}) must not exceed memory_high ({})",
                    l.mem_low, l.mem_high
                );
                return Err(match at {
                    Some(s) => cx.at(s, msg),
                    None => cx.err(0, msg),
                });
            }
            defrag.time_exceeded = d.time_exceeded.unwrap_or(false);
        }
        Ok(Config {
            interfaces,
            routes,
            rules,
            conntrack,
            nat,
            defrag,
            base_dir: base_dir.to_path_buf(),
            path: PathBuf::from(file),
        })
    }

    /// The id (index) of the interface called `name`.
    pub fn iface_id(&self, name: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name)
    }
}

/// Whether an interface parsed so far has offload on.
fn offload_seen(interfaces: &[InterfaceConfig]) -> bool {
    interfaces.iter().any(|i| i.offload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
netns = "lan"
peer_addresses = ["192.0.2.2/24", "2001:db8:1::2/64"]
peer_routes = ["default"]

[[interface]]
name = "wan0"
kind = "tap"
addresses = ["198.51.100.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[rules]
ipv4 = "gateway.rules"

[conntrack]
max = 1000
timeouts = { tcp_established = 3600 }
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "gw.toml", Path::new("/etc/tf"))
    }

    #[test]
    fn parses_the_contract_keys() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[1].kind, IfaceKind::Tap);
        assert_eq!(c.interfaces[1].mtu, 1500);
        assert_eq!(c.interfaces[0].netns.as_deref(), Some("lan"));
        assert_eq!(c.routes[0].via, Some("198.51.100.254".parse().unwrap()));
        assert_eq!(c.rules.ipv4, Some(PathBuf::from("/etc/tf/gateway.rules")));
        assert_eq!(c.conntrack.max, 1000);
        assert_eq!(
            c.conntrack.timeouts,
            vec![("tcp_established".to_string(), 3600)]
        );
        assert_eq!(c.iface_id("wan0"), Some(1));
    }

    fn err(t: &str) -> String {
        parse(t).unwrap_err().to_string()
    }

    #[test]
    fn errors_have_positions() {
        let bad = GOOD.replace("\"192.0.2.1/24\"", "\"192.0.2.300/24\"");
        assert_eq!(
            err(&bad),
            "gw.toml:6:14: expected an address with prefix length like \"192.0.2.1/24\" or \"2001:db8::1/64\", found \"192.0.2.300/24\""
        );
        let bad = GOOD.replace("kind = \"tap\"", "kind = \"tunnel\"");
        assert!(
            err(&bad).starts_with("gw.toml:13:8: expected \"tun\" or \"tap\""),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("interface = \"wan0\"", "interface = \"wan9\"");
        assert!(
            err(&bad).starts_with("gw.toml:18:13: no [[interface]] named \"wan9\""),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("mtu = 1500", "mtu = 100");
        assert!(
            err(&bad).contains("gw.toml:5:7: expected an MTU between 1280"),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("max = 1000", "maxx = 1000");
        assert!(
            err(&bad).starts_with("gw.toml:25:1: unknown field `maxx`"),
            "{}",
            err(&bad)
        );
        let bad = GOOD.replace("tcp_established", "tcp_establish");
        assert!(err(&bad).contains("tcp_establish"), "{}", err(&bad));
        let bad = GOOD.replace("via = \"198.51.100.254\"", "via = \"2001:db8::1\"");
        assert!(err(&bad).contains("different address families"));
        assert!(err("[[interface]]\nname = \"x\"\n").contains("missing field `kind`"));
    }
}

#[cfg(test)]
mod offload_tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "gw.toml", Path::new("."))
    }

    const TWO_TUNS: &str = "[[interface]]\nname = \"lan0\"\nkind = \"tun\"\noffload = true\n\
                            [[interface]]\nname = \"wan0\"\nkind = \"tun\"\noffload = true\n";

    #[test]
    fn offload_is_all_or_nothing_and_tun_only() {
        let c = parse(TWO_TUNS).unwrap();
        assert!(c.interfaces.iter().all(|i| i.offload));
        assert!(
            !parse("[[interface]]\nname = \"a\"\nkind = \"tun\"\n")
                .unwrap()
                .interfaces[0]
                .offload
        );
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e(&TWO_TUNS.replacen("offload = true\n", "", 2).replacen(
                "kind = \"tun\"\n",
                "kind = \"tun\"\noffload = true\n",
                1
            )),
            "gw.toml:6:8: offload must be set on every interface or on none (a segmented packet \
             may leave by any of them)"
        );
        assert_eq!(
            e(&TWO_TUNS.replace(
                "name = \"wan0\"\nkind = \"tun\"\noffload = true",
                "name = \"wan0\"\nkind = \"tun\"\noffload = false"
            )),
            "gw.toml:8:11: offload must be set on every interface or on none (a segmented packet \
             may leave by any of them)"
        );
        assert_eq!(
            e(&TWO_TUNS.replace("kind = \"tun\"\noffload", "kind = \"tap\"\noffload")),
            "gw.toml:4:11: offload is supported on tun interfaces only"
        );
    }

    #[test]
    fn new_flows_per_batch_has_a_default_and_a_range() {
        let base = "[[interface]]\nname = \"a\"\nkind = \"tun\"\n[conntrack]\n";
        assert_eq!(
            parse(base).unwrap().conntrack.new_flows_per_batch,
            DEFAULT_NEW_FLOWS_PER_BATCH
        );
        let with = |v: &str| parse(&format!("{base}new_flows_per_batch = {v}\n"));
        assert_eq!(with("0").unwrap().conntrack.new_flows_per_batch, 0);
        assert_eq!(with("64").unwrap().conntrack.new_flows_per_batch, 64);
        assert_eq!(
            with("-1").unwrap_err().to_string(),
            "gw.toml:5:23: expected a number of new connections per batch between 0 (no \
             limit) and 65536, found -1"
        );
    }
}
